"""LocalStream's log formats: format-1 streams (one record per frame) still read and continue;
batch frames are atomic, bounded in size and refuse what this version cannot read."""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import google_crc32c
import pytest

from lakekit.errors import ConfigurationError, LakekitError
from lakekit.interfaces.stream import Message, Stream

OpenStream = Callable[..., Stream]
Segments = Callable[..., list[Path]]
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def v1_frame(offset: int, ts: datetime, value: bytes, key: bytes | None, headers: bytes) -> bytes:
    """A format-1 record frame, built from the documented layout (not from lakekit's code)."""
    ts_ms = int(ts.timestamp() * 1000)
    key_len = -1 if key is None else len(key)
    body = struct.pack(">HqqiI", 0xA71B, offset, ts_ms, key_len, len(headers))
    body += (key or b"") + headers + value
    return struct.pack(">II", len(body), zlib.crc32(body)) + body


def write_format_1_stream(directory: Path) -> None:
    """Stream ``events`` as lakekit wrote it before batch frames: 1 partition, 3 records, a
    committed consumer group."""
    (directory / "p0").mkdir(parents=True)
    (directory / "stream.json").write_text(json.dumps({"format": 1, "partitions": 1}))
    frames = [
        v1_frame(0, T0, b"old-0", b"k", b'{"h":"v"}'),
        v1_frame(1, T0 + timedelta(seconds=1), b"old-1", None, b""),
        v1_frame(2, T0 + timedelta(seconds=2), b"old-2", b"", b""),
    ]
    (directory / "p0" / f"{0:020d}.log").write_bytes(b"".join(frames))
    (directory / "p0" / f"{0:020d}.idx").write_bytes(struct.pack(">qqq", 0, 0, -(2**63)))
    group = directory / "groups" / "g"
    group.mkdir(parents=True)
    (group / "offsets.json").write_text(json.dumps({"format": 1, "offsets": {"0": 2}}))


def test_format_1_streams_are_read_upgraded_and_continued(
    open_stream: OpenStream, tmp_path: Path
) -> None:
    write_format_1_stream(tmp_path / "events")
    stream = open_stream(partitions=1)
    assert json.loads((tmp_path / "events" / "stream.json").read_text())["format"] == 3
    old = stream.read(0)
    assert [(r.offset, r.value, r.key, r.headers) for r in old] == [
        (0, b"old-0", b"k", {"h": "v"}),
        (1, b"old-1", None, {}),
        (2, b"old-2", b"", {}),
    ]
    assert [r.timestamp for r in old] == [T0 + timedelta(seconds=s) for s in range(3)]
    assert stream.committed("g") == {0: 2}  # offsets.json of format 1

    positions = stream.publish_values([b"new-3", b"new-4"])  # batch frames, same segment
    assert [p.offset for p in positions] == [3, 4]
    assert len(list((tmp_path / "events" / "p0").glob("*.log"))) == 1
    with stream.consumer("g") as consumer:
        assert [r.value for r in consumer.poll(10)] == [b"old-2", b"new-3", b"new-4"]
        consumer.commit()
    assert stream.committed("g") == {0: 5}
    stream.close()

    reopened = open_stream(partitions=1)
    replayed = [r.value for r in reopened.replay()]
    assert replayed == [b"old-0", b"old-1", b"old-2", b"new-3", b"new-4"]
    assert reopened.adapter.offsets_for_time(T0 + timedelta(seconds=1)) == {0: 1}
    assert reopened.committed("g") == {0: 5}

    block = reopened.read_block(0)  # record frames and batch frames, by column
    assert block == reopened.read(0)
    assert list(block.values) == replayed
    assert [len(run) for run in block.runs] == [1, 1, 1, 2]
    table = block.to_arrow()
    table.validate(full=True)
    assert table.column("value").to_pylist() == replayed
    assert table.column("key").to_pylist() == [b"k", None, b"", None, None]
    assert [dict(h) for h in table.column("headers").to_pylist()] == [{"h": "v"}] + [{}] * 4


def format_2_frame(first_offset: int, ts_ms: int, values: list[bytes]) -> bytes:
    """A format-2 batch frame (no key, no headers; a value length per record even when they
    are equal), built from the documented layout (not from lakekit's code)."""
    count = len(values)
    body = struct.pack(">HHqIqq", 0xA72B, 0, first_offset, count, ts_ms, ts_ms)
    body += struct.pack(f">{count}I", *map(len, values)) + b"".join(values)
    return struct.pack(">II", len(body), google_crc32c.value(body)) + body


def test_format_2_streams_are_read_upgraded_and_continued(
    open_stream: OpenStream, tmp_path: Path, segments: Segments
) -> None:
    directory = tmp_path / "events"
    (directory / "p0").mkdir(parents=True)
    (directory / "stream.json").write_text(json.dumps({"format": 2, "partitions": 1}))
    ts_ms = int(T0.timestamp() * 1000)
    frames = format_2_frame(0, ts_ms, [b"aa", b"bb", b"cc"]) + format_2_frame(3, ts_ms, [b"d"])
    (directory / "p0" / f"{0:020d}.log").write_bytes(frames)
    stream = open_stream(partitions=1)
    assert json.loads((directory / "stream.json").read_text())["format"] == 3
    assert [r.value for r in stream.read(0)] == [b"aa", b"bb", b"cc", b"d"]
    assert list(stream.read_block(0, 1).values) == [b"bb", b"cc", b"d"]
    stream.publish_values([b"ee", b"ff"])  # format 3: one shared value length
    data = segments(0)[0].read_bytes()
    new = data[len(frames) :]
    assert struct.unpack_from(">HHqI", new, 8) == (0xA72B, 0x10, 4, 2)
    assert struct.unpack_from(">I", new, 8 + 32) == (2,) and new.endswith(b"eeff")
    stream.close()
    reopened = open_stream(partitions=1)
    assert [r.value for r in reopened.replay()] == [b"aa", b"bb", b"cc", b"d", b"ee", b"ff"]


def test_a_stream_of_a_newer_format_is_refused(tmp_path: Path, open_stream: OpenStream) -> None:
    (tmp_path / "events").mkdir()
    (tmp_path / "events" / "stream.json").write_text(json.dumps({"format": 4, "partitions": 1}))
    with pytest.raises(ConfigurationError, match=r"format 4.*upgrade lakekit"):
        open_stream(partitions=1)


def test_a_frame_with_unknown_flags_is_reported_not_guessed(
    open_stream: OpenStream, segments: Segments
) -> None:
    stream = open_stream(partitions=1)
    stream.publish(b"first")
    stream.publish(b"second")
    stream.close()
    segment = segments(0)[0]
    data = bytearray(segment.read_bytes())
    body_len = struct.unpack_from(">I", data, 0)[0]
    data[10:12] = struct.pack(">H", 0x20)  # a flag this version does not know
    data[4:8] = struct.pack(">I", google_crc32c.value(bytes(data[8 : 8 + body_len])))
    segment.write_bytes(bytes(data))
    with pytest.raises(LakekitError, match=r"record offset 0\).*unknown batch flags 0x0020"):
        open_stream(partitions=1)


def test_large_batches_are_cut_into_frames_of_about_one_mib(
    open_stream: OpenStream, segments: Segments
) -> None:
    stream = open_stream(partitions=1)
    values = [b"%06d" % i + b"." * 994 for i in range(3000)]  # ~3 MB
    positions = stream.publish_values(values)
    assert list(positions.offsets) == list(range(3000))  # type: ignore[attr-defined]
    data = segments(0)[0].read_bytes()
    frames, position = [], 0
    while position < len(data):
        body_len = struct.unpack_from(">I", data, position)[0]
        frames.append(struct.unpack_from(">qI", data, position + 12))  # base offset, count
        position += 8 + body_len
    assert len(frames) == 3
    assert [base for base, _ in frames] == [0, frames[0][1], frames[0][1] + frames[1][1]]
    assert all(count * 1004 <= 1024 * 1024 for _, count in frames)
    assert [r.value for r in stream.read(0, 0, 3000)] == values
    assert [r.offset for r in stream.read(0, 1040, 5)] == list(range(1040, 1045))


def test_a_batch_torn_by_a_crash_disappears_whole(
    open_stream: OpenStream, segments: Segments
) -> None:
    stream = open_stream(partitions=1)
    stream.publish_values([b"kept-0", b"kept-1"])
    segment = segments(0)[0]
    intact = segment.stat().st_size
    stream.publish_values([b"torn-%d" % i for i in range(50)])
    stream.close()
    with segment.open("r+b") as fh:  # the writer died after writing most of the frame
        fh.truncate(intact + (segment.stat().st_size - intact) * 9 // 10)
    reader = open_stream(partitions=1)
    assert [r.value for r in reader.read(0)] == [b"kept-0", b"kept-1"]
    assert segment.stat().st_size == intact  # cut off when the stream was opened
    assert reader.publish(b"next").offset == 2


def test_records_read_back_are_immutable_and_equal_to_constructed_ones(
    open_stream: OpenStream,
) -> None:
    from dataclasses import FrozenInstanceError

    from lakekit.interfaces.stream import Record

    stream = open_stream(partitions=1)
    stream.publish_many([Message(b"v0", b"k", {"a": "b"}, T0), Message(b"v1", None, {}, T0)])
    stream.publish_values([b"v2", b"v3"], timestamp=T0)
    records = stream.read(0)
    expected = [
        Record("events", 0, 0, T0, b"v0", b"k", {"a": "b"}),
        Record("events", 0, 1, T0, b"v1", None, {}),
        Record("events", 0, 2, T0, b"v2", None, {}),
        Record("events", 0, 3, T0, b"v3", None, {}),
    ]
    assert records == expected
    with pytest.raises(FrozenInstanceError):
        records[0].value = b"changed"  # type: ignore[misc]
    records[2].headers["mine"] = "only"  # type: ignore[index]
    assert records[3].headers == {}  # every record has its own headers dict
    assert repr(records[1]).startswith("Record(stream='events', partition=0, offset=1")
