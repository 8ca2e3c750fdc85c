"""Reading by column: ``Consumer.poll_batch`` / ``Stream.read_block`` return ``RecordBlock``s,
one run per batch frame, whose values are sliced in C and whose Arrow table wraps the frame's
bytes; adapters without a columnar store get the same blocks built from ``read()``."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from lakekit.adapters.local.stream import LocalStream
from lakekit.errors import InvalidInputError
from lakekit.interfaces.stream import (
    Message,
    Record,
    RecordBlock,
    RecordRun,
    Stream,
    StreamAdapter,
)

OpenStream = Callable[..., Stream]
T0 = datetime(2026, 1, 1, tzinfo=UTC)
BATCH_MAGIC = b"\xa7\x2b"


def value_data(table: pa.Table, chunk: int = 0) -> bytes:
    """The bytes of the data buffer behind the ``value`` column's chunk."""
    buffer = table.column("value").chunk(chunk).buffers()[2]
    assert buffer is not None
    return buffer.to_pybytes()


def rows(table: pa.Table) -> list[tuple[Any, ...]]:
    return [
        (r["partition"], r["offset"], r["timestamp"], r["key"], r["value"], dict(r["headers"]))
        for r in table.to_pylist()
    ]


def as_rows(records: Sequence[Record]) -> list[tuple[Any, ...]]:
    return [(r.partition, r.offset, r.timestamp, r.key, r.value, dict(r.headers)) for r in records]


def test_a_poll_returns_one_run_per_frame_with_values_wrapped_not_copied(
    open_stream: OpenStream,
) -> None:
    stream = open_stream(partitions=1)
    batches = [[b"%d-%03d" % (b, i) for i in range(100)] for b in range(3)]
    for batch in batches:
        stream.publish_values(batch, timestamp=T0)
    with stream.consumer("g") as consumer:
        block = consumer.poll_batch(max_records=1000)
        assert consumer.poll_batch(timeout=0.05) == []
        consumer.commit()
    assert [(run.partition, run.first_offset, len(run)) for run in block.runs] == [
        (0, 0, 100),
        (0, 100, 100),
        (0, 200, 100),
    ]
    assert list(block.values) == [v for batch in batches for v in batch]
    assert list(block.offsets) == list(range(300))
    assert set(block.timestamps) == {T0}
    assert block.next_offsets == {0: 300}
    assert stream.committed("g") == {0: 300}
    table = block.to_arrow()
    table.validate(full=True)
    assert table.num_rows == 300 and table.column("value").num_chunks == 3
    for chunk in range(3):
        body = value_data(table, chunk)  # the frame's body itself: header, lengths, values
        assert body.startswith(BATCH_MAGIC)
        assert body.endswith(b"".join(batches[chunk]))
    assert rows(table) == as_rows(block.records())


def test_a_read_from_the_middle_of_a_frame_slices_it(open_stream: OpenStream) -> None:
    stream = open_stream(partitions=1)
    rng = random.Random(5)
    values = [rng.randbytes(rng.randrange(0, 40)) for _ in range(50)] + [b""] * 5
    stream.publish_values(values)
    block = stream.read_block(0, 7, 20)
    assert list(block.values) == values[7:27]
    assert list(block.offsets) == list(range(7, 27))
    table = block.to_arrow()
    table.validate(full=True)
    assert table.column("value").to_pylist() == values[7:27]
    empties = stream.read_block(0, 50, 10)  # equal lengths, all zero
    assert list(empties.values) == [b""] * 5
    assert empties.to_arrow().column("value").to_pylist() == [b""] * 5
    assert stream.read_block(0, 55) == [] and not stream.read_block(0, 55)


def test_per_record_keys_timestamps_and_headers_come_back_by_column(
    open_stream: OpenStream,
) -> None:
    stream = open_stream(partitions=1)
    ms = timedelta(milliseconds=1)
    messages = [
        Message(b"a", b"k1", {"trace": "1"}, T0 + 3 * ms),
        Message(b"bb", None, {}, T0),
        Message(b"ccc", b"", {"ünï": "çödé"}, T0 + 9 * ms),
    ]
    stream.publish_many(messages)
    stream.publish_values([b"d", b"e"], key=b"shared", timestamp=T0)
    block = stream.read_block(0)
    assert list(block.keys) == [b"k1", None, b"", b"shared", b"shared"]
    assert list(block.timestamps) == [T0 + 3 * ms, T0, T0 + 9 * ms, T0, T0]
    assert [dict(h) for h in block.headers] == [{"trace": "1"}, {}, {"ünï": "çödé"}, {}, {}]
    assert block == stream.read(0)
    table = block.to_arrow()
    table.validate(full=True)
    assert rows(table) == as_rows(stream.read(0))
    assert table.schema.field("timestamp").type == pa.timestamp("us", tz="UTC")


def test_a_batch_cut_into_several_frames_reads_as_several_runs(open_stream: OpenStream) -> None:
    stream = open_stream(partitions=1)
    values = [b"%06d" % i + b"." * 994 for i in range(2500)]  # ~2.5 MB: three frames
    stream.publish_values(values)
    block = stream.read_block(0, 0, 5000)
    assert len(block.runs) == 3
    assert list(block.values) == values
    assert block.to_arrow().column("value").to_pylist() == values


def test_record_views_of_a_block_are_built_on_demand_and_compare_as_records(
    open_stream: OpenStream,
) -> None:
    stream = open_stream(partitions=2)
    stream.publish_values([b"x", b"y"], key=b"a")
    stream.publish_values([b"z"], key=b"b")
    with stream.consumer("g") as consumer:
        block = consumer.poll_batch()
    records = stream.read(0) + stream.read(1)
    assert sorted(block, key=lambda r: (r.partition, r.offset)) == records
    assert block[-1] == block.records()[-1] and block[:2] == block.records()[:2]
    assert len(block) == 3 and block.stream == "events"
    assert block != records[:2] and block != "not records"
    with pytest.raises(TypeError):
        hash(block)
    assert repr(block).startswith("RecordBlock(stream='events', records=3, runs=[p")


def test_committing_a_block_acknowledges_its_records_only(open_stream: OpenStream) -> None:
    stream = open_stream(partitions=1)
    stream.publish_values([b"%d" % i for i in range(10)])
    with stream.consumer("g") as consumer:
        first = consumer.poll_batch(max_records=4)
        second = consumer.poll_batch(max_records=4)
        consumer.commit(first)
        assert stream.committed("g") == {0: 4}
    with stream.consumer("g") as consumer:
        again = consumer.poll_batch(max_records=100)
    assert list(again.values) == [*list(second.values), b"8", b"9"]


def test_adapters_without_a_columnar_store_build_blocks_from_read(tmp_path: Path) -> None:
    class Plain(LocalStream):
        read_block = StreamAdapter.read_block

    plain = Stream(Plain("events", directory=tmp_path, partitions=2))
    local = Stream(LocalStream("events", directory=tmp_path, partitions=2))
    try:
        plain.publish_many([Message(b"v%d" % i, b"k%d" % i, {"i": str(i)}) for i in range(9)])
        with plain.consumer("a") as a, local.consumer("b") as b:
            built, native = a.poll_batch(max_records=100), b.poll_batch(max_records=100)
        assert all(type(run) is RecordRun for run in built.runs)
        assert built.records() == native.records()
        assert rows(built.to_arrow()) == rows(native.to_arrow())
        assert built.next_offsets == native.next_offsets
    finally:
        plain.close()
        local.close()


def test_record_blocks_from_records_group_consecutive_partitions() -> None:
    records = [
        Record("s", 1, 5, T0, b"a"),
        Record("s", 1, 6, T0, b"b", b"k"),
        Record("s", 0, 2, T0, b"c", None, {"h": "v"}),
        Record("s", 1, 7, T0, b"d"),
    ]
    block = RecordBlock.from_records("s", records)
    assert [(run.partition, list(run.offsets)) for run in block.runs] == [
        (1, [5, 6]),
        (0, [2]),
        (1, [7]),
    ]
    assert block.records() == records and list(block.partitions) == [1, 1, 0, 1]
    assert block.next_offsets == {1: 8, 0: 3}
    assert RecordBlock("s") == [] and len(RecordBlock("s", [RecordRun(0, [], [], [])])) == 0
    with pytest.raises(InvalidInputError, match="values has 1 entries for 2 offsets"):
        RecordRun(0, [1, 2], [b"a"], [T0, T0])
    with pytest.raises(InvalidInputError, match="keys has 2 entries for 1 offsets"):
        RecordRun(0, [1], [b"a"], [T0], keys=[None, None])


def test_read_block_rejects_what_read_rejects(open_stream: OpenStream) -> None:
    stream = open_stream(partitions=2)
    with pytest.raises(InvalidInputError, match=r"partitions 0\.\.1"):
        stream.read_block(2)
    with pytest.raises(InvalidInputError, match="offset"):
        stream.read_block(0, -1)
    with pytest.raises(InvalidInputError, match="max_records"):
        stream.read_block(0, 0, 0)
    with pytest.raises(InvalidInputError, match="max_records"):
        stream.adapter.read_block(0, 0, 0)
    with stream.consumer("g") as consumer:
        with pytest.raises(InvalidInputError, match="max_records must be an int >= 1"):
            consumer.poll_batch(max_records=0)
        with pytest.raises(InvalidInputError, match="max_records must be an int >= 1"):
            consumer.poll(max_records=0)
    with pytest.raises(InvalidInputError, match="closed"):
        consumer.poll_batch()
