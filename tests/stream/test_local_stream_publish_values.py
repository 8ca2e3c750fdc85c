"""The batch fast path: ``Stream.publish_values`` (and ``publish_many`` of plain bytes), its
positions (``PositionRange``) and the default for adapters without a batch format."""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from lakekit.adapters.local.stream import LocalStream
from lakekit.errors import InvalidInputError
from lakekit.interfaces.stream import (
    Message,
    PositionRange,
    RecordPosition,
    Stream,
    StreamAdapter,
)

OpenStream = Callable[..., Stream]
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_values_go_to_one_partition_with_dense_offsets_in_input_order(
    open_stream: OpenStream,
) -> None:
    stream = open_stream(partitions=3)
    first = stream.publish_values([b"a", b"b", b"c"])
    second = stream.publish_values([b"d", b"e"])
    assert isinstance(first, PositionRange)
    assert len(first) == 3 and first.length == 3
    assert first == [RecordPosition(first.partition, first.first_offset + i) for i in range(3)]
    assert second.partition != first.partition  # unkeyed calls rotate, as publish_many
    records = stream.read(first.partition)
    assert [(r.offset, r.value) for r in records] == [(0, b"a"), (1, b"b"), (2, b"c")]


def test_a_key_picks_crc32_of_the_key_and_every_record_carries_it(
    open_stream: OpenStream,
) -> None:
    stream = open_stream(partitions=5)
    positions = stream.publish_values([b"x", b"y"], key="user-7")
    assert positions[0].partition == zlib.crc32(b"user-7") % 5
    again = stream.publish_values([b"z"], key=b"user-7")
    assert again[0] == RecordPosition(positions[0].partition, 2)
    records = stream.read(positions[0].partition)
    assert [(r.value, r.key, r.headers) for r in records] == [
        (b"x", b"user-7", {}),
        (b"y", b"user-7", {}),
        (b"z", b"user-7", {}),
    ]


def test_one_timestamp_for_the_batch_defaults_to_the_publish_time(
    open_stream: OpenStream,
) -> None:
    stream = open_stream(partitions=1)
    stream.publish_values([b"a", b"b"], timestamp=T0 + timedelta(milliseconds=7))
    before = datetime.now(UTC) - timedelta(seconds=1)
    stream.publish_values([b"c"])
    records = stream.read(0)
    assert [r.timestamp for r in records[:2]] == [T0 + timedelta(milliseconds=7)] * 2
    assert before <= records[2].timestamp <= datetime.now(UTC) + timedelta(seconds=1)
    assert stream.adapter.offsets_for_time(T0 + timedelta(milliseconds=8)) == {0: 2}


def test_str_and_bytes_like_values_are_stored_as_bytes(open_stream: OpenStream) -> None:
    stream = open_stream(partitions=1)
    stream.publish_values(["text", bytearray(b"ba"), memoryview(b"mv"), b""])
    stream.publish_values([memoryview(bytes(range(8))).cast("I")])  # 2 items, 8 bytes
    assert [r.value for r in stream.read(0)] == [b"text", b"ba", b"mv", b"", bytes(range(8))]


def test_bad_input_is_rejected_before_anything_is_written(open_stream: OpenStream) -> None:
    stream = open_stream(partitions=1)
    with pytest.raises(InvalidInputError, match="bytes or str, got int at index 1"):
        stream.publish_values([b"ok", 7])  # type: ignore[list-item]
    with pytest.raises(InvalidInputError, match="sequence of values"):
        stream.publish_values(b"not a list")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="key must be bytes"):
        stream.publish_values([b"v"], key=5)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="timezone-aware"):
        stream.publish_values([b"v"], timestamp=datetime(2026, 1, 1))
    assert stream.publish_values([]) == []
    assert stream.offsets("latest") == {0: 0}


def test_publish_many_of_plain_bytes_takes_the_fast_path(tmp_path: Path) -> None:
    class Counting(LocalStream):
        calls: list[str]

        def publish(self, messages: Sequence[Message]) -> list[RecordPosition]:
            self.calls.append("publish")
            return super().publish(messages)

        def publish_values(self, values: Sequence[bytes | str], **kwargs: object) -> PositionRange:  # type: ignore[override]
            self.calls.append("publish_values")
            return super().publish_values(values, **kwargs)  # type: ignore[arg-type]

    adapter = Counting("events", directory=tmp_path, partitions=2)
    adapter.calls = []
    stream = Stream(adapter)
    try:
        positions = stream.publish_many([b"a", b"b"])
        assert isinstance(positions, list) and len(positions) == 2
        stream.publish_many(["text", b"b"])  # not all bytes: the Message path
        assert adapter.calls == ["publish_values", "publish"]
        assert [r.value for r in stream.read(positions[0].partition)] == [b"a", b"b"]
    finally:
        stream.close()


def test_adapters_without_a_batch_format_publish_values_through_publish(
    tmp_path: Path,
) -> None:
    class Plain(LocalStream):
        publish_values = StreamAdapter.publish_values  # type: ignore[assignment]

    stream = Stream(Plain("events", directory=tmp_path, partitions=3))
    try:
        positions = stream.publish_values(["a", b"b"], key="k", timestamp=T0)
        assert isinstance(positions, list)
        assert {p.partition for p in positions} == {zlib.crc32(b"k") % 3}
        records = stream.read(positions[0].partition)
        assert [(r.value, r.key, r.timestamp) for r in records] == [
            (b"a", b"k", T0),
            (b"b", b"k", T0),
        ]
        with pytest.raises(InvalidInputError, match="key must be bytes"):
            stream.adapter.publish_values([b"v"], key="str")  # type: ignore[arg-type]
    finally:
        stream.close()


def test_a_position_range_is_a_sequence_of_positions() -> None:
    positions = PositionRange(2, 10, 4)
    assert list(positions) == [RecordPosition(2, o) for o in range(10, 14)]
    assert positions[-1] == RecordPosition(2, 13)
    assert positions[1:3] == PositionRange(2, 11, 2)
    assert positions[1:3] == [RecordPosition(2, 11), RecordPosition(2, 12)]
    assert positions == (RecordPosition(2, 10), *positions[1:])
    assert positions != PositionRange(1, 10, 4)
    assert positions != [RecordPosition(2, 10)]
    assert PositionRange(0, 5, 0) == PositionRange(3, 9, 0) == []
    assert RecordPosition(2, 12) in positions
    assert repr(positions) == "PositionRange(partition=2, first_offset=10, length=4)"
    with pytest.raises(IndexError):
        positions[4]
    with pytest.raises(InvalidInputError, match="step"):
        positions[::2]
    with pytest.raises(InvalidInputError, match="length"):
        PositionRange(0, 0, -1)
