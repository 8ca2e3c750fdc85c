"""LocalStream's log on disk: documented format, segments, index, crash repair, corruption."""

from __future__ import annotations

import struct
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import google_crc32c
import pytest

from lakekit.errors import LakekitError
from lakekit.interfaces.stream import Message, Stream

OpenStream = Callable[..., Stream]
Segments = Callable[..., list[Path]]
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def values(stream: Stream, partition: int = 0) -> list[bytes]:
    return [r.value for r in stream.replay() if r.partition == partition]


def test_batch_frames_on_disk_follow_the_documented_format(
    open_stream: OpenStream, segments: Segments
) -> None:
    stream = open_stream(partitions=1)
    ts = T0 + timedelta(milliseconds=5)
    stream.publish(b"the value", key=b"k1", headers={"h": "v"}, timestamp=ts)
    stream.publish_many([b"second", b"third!"])
    [segment] = segments(0)
    assert segment.name == "00000000000000000000.log"
    data = segment.read_bytes()

    body_len, crc = struct.unpack_from(">II", data, 0)
    body = data[8 : 8 + body_len]
    assert google_crc32c.value(body) == crc
    magic, flags, base, count, base_ts, max_ts = struct.unpack_from(">HHqIqq", body, 0)
    # shared key + headers + one value length
    assert (magic, flags, base, count) == (0xA72B, 0x8 | 0x4 | 0x10, 0, 1)
    assert base_ts == max_ts == int(ts.timestamp() * 1000)
    assert struct.unpack_from(">I", body, 32) == (2,)
    assert body[36:38] == b"k1"
    assert struct.unpack_from(">II", body, 38) == (9, 9)  # header length, value length
    assert body[46:] == b'{"h":"v"}the value'

    second = data[8 + body_len :]
    body_len, crc = struct.unpack_from(">II", second, 0)
    body = second[8 : 8 + body_len]
    assert google_crc32c.value(body) == crc
    assert len(second) == 8 + body_len
    # no key, no headers; both values 6 bytes long: their length is stored once
    assert struct.unpack_from(">HHqI", body, 0) == (0xA72B, 0x10, 1, 2)
    assert struct.unpack_from(">I", body, 32) == (6,)
    assert body[36:] == b"secondthird!"

    stream.publish_many([b"x", b"yyy"])  # lengths differ: one length per value
    third = segment.read_bytes()[len(data) :]
    body = third[8:]
    assert struct.unpack_from(">HHqI", body, 0) == (0xA72B, 0, 3, 2)
    assert struct.unpack_from(">II", body, 32) == (1, 3)
    assert body[40:] == b"xyyy"
    stream.close()  # the active segment's index is completed on close (else <= 1 MiB late)
    index = segment.with_suffix(".idx").read_bytes()
    assert struct.unpack(">qqq", index) == (0, 0, -(2**63))


def test_per_record_keys_and_timestamps_are_stored_as_columns(
    open_stream: OpenStream, segments: Segments
) -> None:
    stream = open_stream(partitions=1)
    stamps = [T0 + timedelta(milliseconds=ms) for ms in (30, 10, 20)]
    messages = [
        Message(b"a", b"x", {}, stamps[0]),
        Message(b"bb", None, {}, stamps[1]),
        Message(b"", b"", {}, stamps[2]),
    ]
    assert [p.offset for p in stream.publish_many(messages)] == [0, 1, 2]
    data = segments(0)[0].read_bytes()
    body = data[8:]
    _magic, flags, _base, count, base_ts, max_ts = struct.unpack_from(">HHqIqq", body, 0)
    assert (flags, count) == (0x1 | 0x2, 3)  # per-record timestamps and keys
    ms = [int(t.timestamp() * 1000) for t in stamps]
    assert (base_ts, max_ts) == (ms[0], max(ms))
    assert list(struct.unpack_from(">3q", body, 32)) == ms
    assert struct.unpack_from(">3i", body, 56) == (1, -1, 0)
    assert struct.unpack_from(">3I", body, 68) == (1, 2, 0)
    assert body[80:] == b"x" + b"abb"
    records = stream.read(0)
    assert [(r.key, r.value, r.timestamp) for r in records] == [
        (b"x", b"a", stamps[0]),
        (None, b"bb", stamps[1]),
        (b"", b"", stamps[2]),
    ]


def test_a_torn_write_is_cut_off_when_the_stream_is_reopened(
    open_stream: OpenStream, segments: Segments
) -> None:
    stream = open_stream(partitions=1)
    stream.publish_many([b"a", b"b"])
    segment = segments(0)[-1]
    intact = segment.stat().st_size
    stream.publish(b"c" * 100)
    stream.close()
    with segment.open("r+b") as fh:  # as if the writer died in the middle of that write
        fh.truncate(intact + 40)

    reopened = open_stream(partitions=1)
    assert segment.stat().st_size == intact
    assert values(reopened) == [b"a", b"b"]
    assert reopened.publish(b"d").offset == 2
    assert values(reopened) == [b"a", b"b", b"d"]


def test_a_half_written_record_is_invisible_to_readers_until_repaired(
    open_stream: OpenStream, segments: Segments
) -> None:
    reader = open_stream(partitions=1)
    reader.publish_many([b"a", b"b"])
    segment = segments(0)[-1]
    intact = segment.stat().st_size
    writer = open_stream(partitions=1)
    writer.publish(b"c" * 100)
    writer.close()
    with segment.open("r+b") as fh:
        fh.truncate(intact + 40)

    assert values(reader) == [b"a", b"b"]
    assert reader.offsets("latest") == {0: 2}
    assert reader.publish(b"d").offset == 2  # the next writer cuts the torn bytes first
    assert values(open_stream(partitions=1)) == [b"a", b"b", b"d"]


def test_garbage_after_the_last_record_is_cut_off(
    open_stream: OpenStream, segments: Segments
) -> None:
    stream = open_stream(partitions=1)
    stream.publish_many([b"a", b"b"])
    stream.close()
    segment = segments(0)[-1]
    intact = segment.stat().st_size
    with segment.open("ab") as fh:  # zero-filled blocks, as a power loss can leave
        fh.write(bytes(4096))
    reopened = open_stream(partitions=1)
    assert segment.stat().st_size == intact
    assert values(reopened) == [b"a", b"b"]
    assert reopened.publish(b"c").offset == 2


def _flip_byte(path: Path, needle: bytes) -> None:
    data = bytearray(path.read_bytes())
    at = data.index(needle)
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))


def test_damage_before_valid_records_is_reported_not_skipped(
    open_stream: OpenStream, segments: Segments
) -> None:
    stream = open_stream(partitions=1)
    for i in range(10):
        stream.publish(f"value-{i}".encode())  # one frame each
    stream.close()
    segment = segments(0)[-1]
    _flip_byte(segment, b"value-3")
    with pytest.raises(LakekitError) as caught:
        open_stream(partitions=1)
    assert str(segment) in str(caught.value)
    assert "record offset 3" in str(caught.value)
    assert "value-4" in segment.read_bytes().decode(errors="replace")  # nothing was cut


def test_a_damaged_batch_is_reported_whole_never_in_part(
    open_stream: OpenStream, segments: Segments
) -> None:
    stream = open_stream(partitions=1)
    stream.publish_many([b"before"])
    stream.publish_many([f"batch-{i}".encode() for i in range(5)])  # one frame, offsets 1..5
    stream.publish_many([b"after"])
    stream.close()
    segment = segments(0)[-1]
    _flip_byte(segment, b"batch-3")  # the frame's CRC-32C no longer matches
    with pytest.raises(LakekitError, match=r"record offset 1\).*checksum mismatch"):
        open_stream(partitions=1)
    segment.with_suffix(".idx").write_bytes(b"")
    with pytest.raises(LakekitError, match="record offset 1"):
        open_stream(partitions=1)  # also when scanning without an index


def test_damage_deep_in_a_segment_fails_the_read_that_reaches_it(
    open_stream: OpenStream, segments: Segments
) -> None:
    stream = open_stream(partitions=1)
    for batch in range(10):  # frames of 10 records, each over one index interval
        stream.publish_many([f"value-{batch}{i}".encode() + b"." * 500 for i in range(10)])
    stream.close()
    segment = segments(0)[-1]
    _flip_byte(segment, b"value-55")
    reopened = open_stream(partitions=1)  # the tail is intact: opening works
    assert [r.offset for r in reopened.read(0, 0, 50)] == list(range(50))
    with pytest.raises(LakekitError, match=r"record offset 50\).*checksum"):
        reopened.read(0, 45, 10)
    assert [r.offset for r in reopened.read(0, 60, 3)] == [60, 61, 62]


def test_a_truncated_sealed_segment_is_reported(
    open_stream: OpenStream, segments: Segments
) -> None:
    stream = open_stream(partitions=1, segment_bytes=4096)
    for _ in range(6):
        stream.publish_many([b"x" * 500] * 10)
    stream.close()
    sealed = segments(0)[0]
    with sealed.open("r+b") as fh:
        fh.truncate(sealed.stat().st_size - 300)
    reopened = open_stream(partitions=1, segment_bytes=4096)
    with pytest.raises(LakekitError, match=f"{sealed.name}.*next segment starts at 10"):
        reopened.read(0, 0, 100)


def test_segments_roll_by_size_and_are_named_by_their_first_offset(
    open_stream: OpenStream, segments: Segments
) -> None:
    stream = open_stream(partitions=1, segment_bytes=4096)
    for batch in range(20):
        stream.publish_many([f"{batch}-{i}".encode() + b"." * 200 for i in range(5)])
    files = segments(0)
    assert len(files) >= 5
    bases = [int(f.stem) for f in files]
    assert bases[0] == 0
    for base in bases:
        assert stream.read(0, base, 1)[0].offset == base
    everything = list(stream.replay())
    assert [r.offset for r in everything] == list(range(100))
    assert [r.offset for r in stream.read(0, bases[1] - 2, 4)] == list(
        range(bases[1] - 2, bases[1] + 2)
    )


def test_a_long_lived_reader_follows_rolls_made_by_another_writer(
    open_stream: OpenStream,
) -> None:
    reader = open_stream(partitions=1, segment_bytes=4096)
    assert reader.offsets("latest") == {0: 0}
    writer = open_stream(partitions=1, segment_bytes=4096)
    for batch in range(10):
        writer.publish_many([b"%d" % (batch * 5 + i) + b"." * 300 for i in range(5)])
    assert reader.offsets("latest") == {0: 50}
    assert [int(r.value.rstrip(b".")) for r in reader.replay()] == list(range(50))
    assert reader.publish(b"after").offset == 50


def test_a_roll_announced_by_a_writer_that_died_before_rolling_changes_nothing(
    open_stream: OpenStream, segments: Segments, tmp_path: Path
) -> None:
    reader = open_stream(partitions=1, segment_bytes=4096)
    writer = open_stream(partitions=1, segment_bytes=4096)
    writer.publish_many([b"a", b"b"])
    assert [r.value for r in reader.read(0)] == [b"a", b"b"]
    lock = tmp_path / "events" / "p0" / ".lock"  # its size is the roll generation
    with lock.open("r+b") as fh:
        fh.truncate(lock.stat().st_size + 1)  # announced, then the writer died
    assert reader.publish(b"c").offset == 2  # looked for a new segment once, found none
    writer.publish_many([b"d"])
    assert [r.value for r in reader.read(0)] == [b"a", b"b", b"c", b"d"]
    assert [r.value for r in writer.read(0)] == [b"a", b"b", b"c", b"d"]
    assert len(segments(0)) == 1


def test_time_lookup_across_segments_matches_a_full_scan(open_stream: OpenStream) -> None:
    stream = open_stream(partitions=1, segment_bytes=4096)
    stamps = [(i * 37) % 101 for i in range(300)]  # out of order on purpose
    for start in range(0, 300, 20):
        stream.publish_many(
            [
                Message(b"." * 100, None, {}, T0 + timedelta(seconds=s))
                for s in stamps[start : start + 20]
            ]
        )
    lookup = stream.adapter.offsets_for_time
    for probe in (-1, 0, 1, 50, 99, 100, 101):
        expected = next((i for i, s in enumerate(stamps) if s >= probe), 300)
        assert lookup(T0 + timedelta(seconds=probe)) == {0: expected}


def test_missing_or_damaged_index_files_are_only_a_cache(
    open_stream: OpenStream, tmp_path: Path
) -> None:
    stream = open_stream(partitions=1, segment_bytes=8192)
    stamps = list(range(400))
    for start in range(0, 400, 40):
        stream.publish_many(
            [
                Message(b"%d" % s + b"." * 150, None, {}, T0 + timedelta(seconds=s))
                for s in stamps[start : start + 40]
            ]
        )
    stream.close()
    indexes = sorted((tmp_path / "events" / "p0").glob("*.idx"))
    assert len(indexes) >= 3
    indexes[0].unlink()
    indexes[1].write_bytes(b"garbage!" * 7)
    # A well-formed entry pointing at the wrong record: offset 30 claims position 24.
    wrong = struct.pack(">qqq", int(indexes[2].stem), 0, -(2**63)) + struct.pack(
        ">qqq", int(indexes[2].stem) + 30, 24, 0
    )
    indexes[2].write_bytes(wrong)

    reopened = open_stream(partitions=1, segment_bytes=8192)
    assert [int(r.value.rstrip(b".")) for r in reopened.replay()] == stamps
    damaged_base = int(indexes[2].stem)
    for probe in (0, 17, 123, damaged_base + 5, damaged_base + 31, 399):
        assert reopened.adapter.offsets_for_time(T0 + timedelta(seconds=probe)) == {0: probe}
    for offset in (0, 35, int(indexes[2].stem) + 30, 399):
        assert int(reopened.read(0, offset, 1)[0].value.rstrip(b".")) == offset


def test_threads_sharing_one_stream_get_dense_distinct_offsets(open_stream: OpenStream) -> None:
    stream = open_stream(partitions=2, segment_bytes=8192)
    seen: list[list[int]] = []

    def produce(worker: int) -> None:
        for batch in range(25):
            stream.publish_many([Message(b"%d-%d" % (worker, batch), b"k") for _ in range(4)])

    def consume() -> None:
        offsets: list[int] = []
        deadline = time.monotonic() + 20
        while len(offsets) < 400 and time.monotonic() < deadline:
            partition = stream.publish(b"probe", key=b"k").partition  # also a writer
            offsets += [r.offset for r in stream.read(partition, len(offsets), 50)]
        seen.append(offsets)

    threads = [threading.Thread(target=produce, args=(w,)) for w in range(4)]
    threads.append(threading.Thread(target=consume))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    partition = stream.publish(b"last", key=b"k").partition
    records = list(stream.replay())
    assert [r.offset for r in records] == list(range(len(records)))
    assert {r.partition for r in records} == {partition}
    assert sum(r.value.count(b"-") for r in records) == 400
    assert seen[0] == list(range(len(seen[0])))
    assert len(seen[0]) >= 400


def test_damage_followed_by_valid_records_far_away_is_still_reported(
    open_stream: OpenStream, segments: Segments
) -> None:
    stream = open_stream(partitions=1)
    big = b"B" * (3 * 1024 * 1024)
    stream.publish_many([b"small-0", big, b"small-2"])
    stream.close()
    segment = segments(0)[-1]
    _flip_byte(segment, b"BBBB")  # the big record is damaged; small-2, 3 MiB later, is valid
    reopened = open_stream(partitions=1)  # the index lets opening skip the damage...
    with pytest.raises(LakekitError, match="record offset 1"):
        reopened.read(0, 0, 10)  # ...but reading through it fails
    reopened.close()
    segment.with_suffix(".idx").unlink()  # without the index, opening scans from the start
    with pytest.raises(LakekitError, match="record offset 1"):
        open_stream(partitions=1)
    assert segment.stat().st_size > len(big)  # nothing was cut


def test_a_damaged_last_record_counts_as_a_torn_tail(
    open_stream: OpenStream, segments: Segments
) -> None:
    stream = open_stream(partitions=1)
    stream.publish_many([b"first", b"second"])
    stream.publish_many([b"last-one", b"last-two"])  # one frame
    stream.close()
    _flip_byte(segments(0)[-1], b"last-one")  # indistinguishable from a power-loss tail
    reopened = open_stream(partitions=1)
    assert values(reopened) == [b"first", b"second"]
    assert reopened.publish(b"again").offset == 2
