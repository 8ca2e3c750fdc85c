"""The Stream conformance suite: what every stream adapter must do, as pytest tests.

A third-party adapter proves itself by subclassing :class:`StreamSuite` and overriding one
fixture, ``stream_factory``, that returns a *picklable* callable ``factory(name) -> adapter``
(the suite opens streams in child processes too, with the ``spawn`` start method)::

    import functools
    import pytest
    from lakekit.testing import StreamSuite
    from my_package.stream import MyStream

    class TestMyStream(StreamSuite):
        @pytest.fixture
        def stream_factory(self):
            return functools.partial(MyStream, endpoint="http://127.0.0.1:4566")

Optional fixtures (defaults shown):

* ``retention_stream_factory`` -> ``None``: a factory whose streams drop old data quickly (for
  the local adapter: ``segment_bytes=4096, retention_bytes=16384``). The retention test publishes
  about 200 KiB to one partition, calls ``enforce_retention()`` and expects the earliest offset
  to have moved. Without it an adapter declaring ``RETENTION`` has that one test skipped.
* ``stream_cleanup`` -> a no-op: called with each test's stream name after the test, to delete
  streams that cost money.

Each test uses its own stream, named ``t_<uuid>``. Tests of optional behaviour read the adapter's
declared capabilities: where one is absent the suite asserts NotSupportedError instead. The
crash tests SIGKILL real producer and consumer processes in a loop and check that every
acknowledged record survives and consumption is at-least-once (``crash_iterations`` tunes them).
"""

from __future__ import annotations

import itertools
import multiprocessing
import random
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import pytest

from lakekit.capabilities import Capability
from lakekit.errors import InvalidInputError, NotSupportedError
from lakekit.interfaces.stream import Message, Record, RecordBlock, Stream, StreamAdapter
from lakekit.testing import _stream_workers as workers

__all__ = ["StreamFactory", "StreamSuite"]

StreamFactory = Callable[[str], StreamAdapter]
"""A picklable callable building the adapter of a named stream, e.g.
``functools.partial(LocalStream, directory=tmp_path)``."""

_SPAWN = multiprocessing.get_context("spawn")
_T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def _no_cleanup(name: str) -> None:
    del name


def _drain(stream: Stream) -> dict[int, list[Record]]:
    """Every retained record, per partition, by reading from the earliest offset to the end."""
    out: dict[int, list[Record]] = {}
    earliest = stream.offsets("earliest")
    for partition in stream.partitions():
        records: list[Record] = []
        offset = earliest[partition]
        while True:
            batch = stream.read(partition, offset, 500)
            if not batch:
                break
            records.extend(batch)
            offset = batch[-1].offset + 1
        out[partition] = records
    return out


def _all(stream: Stream) -> list[Record]:
    return [r for records in _drain(stream).values() for r in records]


def _poll_until(consumer: Any, count: int, timeout: float = 10.0) -> list[Record]:
    """Poll (committing nothing) until ``count`` records arrived or ``timeout`` passed."""
    deadline = time.monotonic() + timeout
    got: list[Record] = []
    while len(got) < count and time.monotonic() < deadline:
        got.extend(consumer.poll(max_records=count - len(got), timeout=0.2))
    return got


def _positions(records: list[Record]) -> list[tuple[int, int]]:
    return sorted((r.partition, r.offset) for r in records)


def _poll_blocks_until(consumer: Any, count: int, timeout: float = 10.0) -> list[RecordBlock]:
    """``poll_batch`` (committing nothing) until ``count`` records arrived or ``timeout``
    passed; the non-empty blocks, each checked against its own columns."""
    deadline = time.monotonic() + timeout
    blocks: list[RecordBlock] = []
    got = 0
    while got < count and time.monotonic() < deadline:
        block = consumer.poll_batch(max_records=count - got, timeout=0.2)
        assert len(block) <= count - got, "poll_batch returned more than max_records"
        if block:
            _check_block(block)
            blocks.append(block)
            got += len(block)
    return blocks


def _fields(record: Record) -> tuple[Any, ...]:
    return (
        record.stream,
        record.partition,
        record.offset,
        record.timestamp,
        record.value,
        record.key,
        dict(record.headers),
    )


def _check_block(block: RecordBlock) -> None:
    """A block's columns, records, runs, next offsets and Arrow table all agree."""
    records = block.records()
    count = len(block)
    assert len(records) == count
    assert bool(block) == (count > 0)
    assert list(block) == records
    assert block == records
    assert [block[i] for i in range(count)] == records
    columns = (
        block.partitions,
        block.offsets,
        block.timestamps,
        block.values,
        block.keys,
        block.headers,
    )
    assert all(len(column) == count for column in columns)
    assert list(block.values) == [r.value for r in records]
    assert list(block.offsets) == [r.offset for r in records]
    assert list(block.partitions) == [r.partition for r in records]
    assert list(block.timestamps) == [r.timestamp for r in records]
    assert list(block.keys) == [r.key for r in records]
    assert [dict(h) for h in block.headers] == [dict(r.headers) for r in records]
    assert all(r.stream == block.stream for r in records)
    assert sum(len(run) for run in block.runs) == count
    for run in block.runs:  # a run: consecutive records of one partition, in offset order
        assert list(run.offsets) == sorted(set(run.offsets))
        assert run.first_offset == run.offsets[0]
        assert run.next_offset == run.offsets[-1] + 1
    expected: dict[int, int] = {}
    for r in records:
        expected[r.partition] = max(expected.get(r.partition, 0), r.offset + 1)
    assert block.next_offsets == expected
    table = block.to_arrow()
    table.validate(full=True)
    assert table.column_names == ["partition", "offset", "timestamp", "key", "value", "headers"]
    rows = table.to_pylist()
    assert [(row["partition"], row["offset"], row["value"], row["key"]) for row in rows] == [
        (r.partition, r.offset, r.value, r.key) for r in records
    ]
    assert [row["timestamp"] for row in rows] == [r.timestamp for r in records]
    assert [dict(row["headers"]) for row in rows] == [dict(r.headers) for r in records]


def _wait_for_file(path: Path, process: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if process.exitcode is not None:
            raise AssertionError(f"child process exited early with code {process.exitcode}")
        if time.monotonic() > deadline:
            raise AssertionError(f"child process not ready after {timeout} s")
        time.sleep(0.005)


def _assert_dense(records: list[Record], dense: bool = True) -> None:
    """Offsets consecutive (``dense``), or else strictly increasing (``dense_offsets=False``)."""
    offsets = [r.offset for r in records]
    if offsets and dense:
        assert offsets == list(range(offsets[0], offsets[0] + len(offsets))), "offset gap"
    assert offsets == sorted(set(offsets)), "offsets not strictly increasing"


def _following(stream: Stream) -> dict[tuple[int, int], int]:
    """(partition, offset) -> the offset of the partition's next record (dense or not)."""
    following: dict[tuple[int, int], int] = {}
    for partition, records in _drain(stream).items():
        for before, after in itertools.pairwise(records):
            following[(partition, before.offset)] = after.offset
    return following


def _lines(path: Path) -> list[str]:
    """Complete lines of a child's log (a line cut by SIGKILL is ignored)."""
    if not path.exists():
        return []
    text = path.read_text()
    return text.split("\n")[:-1]


class StreamSuite:
    """Conformance tests for a :class:`~lakekit.interfaces.stream.StreamAdapter`.

    Override :meth:`stream_factory`. Everything else is provided.
    """

    crash_iterations: ClassVar[int] = 8
    """How many times each crash test SIGKILLs a producer / a consumer (each kill costs a
    process start, about 0.5 s; both tests together stay under ~10 s by default)."""
    process_timeout: ClassVar[float] = 120.0
    """Seconds a child process may take to start or finish."""
    large_value_size: ClassVar[int] = 200_000
    """Bytes of the largest value the round-trip test publishes."""

    # -- fixtures -------------------------------------------------------------------------------
    @pytest.fixture
    def stream_factory(self) -> StreamFactory:
        """Override: return a picklable ``factory(name) -> StreamAdapter``."""
        raise NotImplementedError(
            f"{type(self).__name__} must override the 'stream_factory' fixture to return a "
            "picklable factory(name) -> StreamAdapter, e.g. functools.partial(MyStream, ...)"
        )

    @pytest.fixture
    def retention_stream_factory(self) -> StreamFactory | None:
        """Optional: a factory of streams with tiny retention limits (see the module doc)."""
        return None

    @pytest.fixture
    def stream_cleanup(self) -> Callable[[str], None]:
        """Optional: delete a test's stream afterwards (default: nothing to do)."""
        return _no_cleanup

    @pytest.fixture
    def stream_name(self, stream_cleanup: Callable[[str], None]) -> Iterator[str]:
        name = f"t_{uuid.uuid4().hex[:16]}"
        yield name
        stream_cleanup(name)

    @pytest.fixture
    def open_stream(
        self, stream_factory: StreamFactory, stream_name: str
    ) -> Iterator[Callable[[], Stream]]:
        """Open (another) facade on the test's stream, as a separate process would."""
        opened: list[Stream] = []

        def open_one() -> Stream:
            opened.append(Stream(stream_factory(stream_name)))
            return opened[-1]

        yield open_one
        for stream in opened:
            stream.close()

    @pytest.fixture
    def stream(self, open_stream: Callable[[], Stream]) -> Stream:
        return open_stream()

    # -- publish and read -----------------------------------------------------------------------
    def test_published_record_reads_back_with_key_headers_and_timestamp(
        self, stream: Stream
    ) -> None:
        ts = datetime(2026, 3, 1, 12, 30, 15, 123000, tzinfo=UTC)
        headers = {"trace": "abc-123", "ünïcode": "çödé ✓"}
        pos = stream.publish(b"\x00\xffvalue", key=b"user-1", headers=headers, timestamp=ts)
        [record] = stream.read(pos.partition, pos.offset, 1)
        assert (record.stream, record.partition, record.offset) == (
            stream.name,
            pos.partition,
            pos.offset,
        )
        assert record.value == b"\x00\xffvalue"
        assert record.key == b"user-1"
        assert dict(record.headers) == headers
        assert record.timestamp == ts
        assert record.timestamp.utcoffset() == timedelta(0)

    def test_timestamp_defaults_to_the_publish_time_in_utc(self, stream: Stream) -> None:
        before = datetime.now(UTC) - timedelta(seconds=2)
        pos = stream.publish(b"now")
        after = datetime.now(UTC) + timedelta(seconds=2)
        [record] = stream.read(pos.partition, pos.offset, 1)
        assert before <= record.timestamp <= after
        assert record.timestamp.utcoffset() == timedelta(0)
        assert record.key is None
        assert dict(record.headers) == {}

    def test_values_of_any_bytes_and_size_round_trip(self, stream: Stream) -> None:
        big = random.Random(7).randbytes(self.large_value_size)
        values = [b"", bytes(range(256)), "text é ✓".encode(), big]
        positions = stream.publish_many(values)
        for pos, value in zip(positions, values, strict=True):
            assert stream.read(pos.partition, pos.offset, 1)[0].value == value
        pos = stream.publish_json({"a": [1, 2], "b": "ü"}, key="json")
        assert stream.read(pos.partition, pos.offset, 1)[0].json() == {"a": [1, 2], "b": "ü"}

    def test_new_stream_is_empty(self, stream: Stream) -> None:
        partitions = stream.partitions()
        assert partitions, "a stream has at least one partition"
        assert partitions == sorted(set(partitions))
        assert all(isinstance(p, int) for p in partitions)
        assert stream.offsets("earliest") == stream.offsets("latest")
        assert set(stream.offsets("latest")) == set(partitions)
        earliest = stream.offsets("earliest")
        assert all(stream.read(p, earliest[p]) == [] for p in partitions)
        assert list(stream.replay()) == []

    def test_offsets_start_at_zero_and_are_dense(self, stream: Stream) -> None:
        for batch in range(6):
            stream.publish_many(
                [Message(f"{batch}-{i}".encode(), f"k{i}".encode()) for i in range(10)]
            )
        drained = _drain(stream)
        assert sum(len(r) for r in drained.values()) == 60
        latest = stream.offsets("latest")
        if not stream.adapter.dense_offsets:  # sequence numbers: increasing, not consecutive
            earliest = stream.offsets("earliest")
            for partition, records in drained.items():
                _assert_dense(records, dense=False)
                assert latest[partition] == (records[-1].offset + 1 if records else 0)
                assert earliest[partition] == (records[0].offset if records else 0)
            return
        for partition, records in drained.items():
            assert [r.offset for r in records] == list(range(len(records)))
            assert latest[partition] == len(records)
        assert set(stream.offsets("earliest").values()) == {0}

    def test_batch_positions_are_in_input_order(self, stream: Stream) -> None:
        messages: list[Message | bytes | str] = [
            Message(f"m{i}".encode(), f"k{i % 5}".encode() if i % 3 else None) for i in range(40)
        ]
        positions = stream.publish_many(messages)
        assert len(positions) == 40
        assert len(set(positions)) == 40
        for i, pos in enumerate(positions):
            assert stream.read(pos.partition, pos.offset, 1)[0].value == f"m{i}".encode()
        assert stream.publish_many([]) == []

    def test_same_key_goes_to_one_partition_in_publish_order(
        self, stream: Stream, open_stream: Callable[[], Stream]
    ) -> None:
        if Capability.KEYED_PARTITIONS not in stream.capabilities:
            pytest.skip("adapter does not declare KEYED_PARTITIONS (no operation to check)")
        keys = [f"key-{i}" for i in range(12)]
        for round_ in range(5):
            stream.publish_many([Message(f"{k}:{round_}".encode(), k.encode()) for k in keys])
        other = open_stream()  # a second producer
        for k in keys:
            other.publish(f"{k}:5".encode(), key=k)
        by_key: dict[bytes, list[Record]] = defaultdict(list)
        for record in _all(stream):
            assert record.key is not None
            by_key[record.key].append(record)
        assert len(by_key) == 12
        for key, records in by_key.items():
            assert len({r.partition for r in records}) == 1, f"key {key!r} spans partitions"
            records.sort(key=lambda r: r.offset)
            assert [r.value for r in records] == [f"{key.decode()}:{n}".encode() for n in range(6)]

    def test_read_honours_max_records_and_the_end(self, stream: Stream) -> None:
        positions = stream.publish_many([Message(f"v{i}".encode(), b"one") for i in range(10)])
        partition = positions[0].partition
        assert {p.partition for p in positions} == {partition}
        first = positions[0].offset
        assert [r.offset for r in stream.read(partition, first, 3)] == [first, first + 1, first + 2]
        assert [r.value for r in stream.read(partition, first + 8, 100)] == [b"v8", b"v9"]
        assert stream.read(partition, first + 10, 10) == []
        assert stream.read(partition, first + 1000, 10) == []

    def test_bad_reads_are_rejected(self, stream: Stream) -> None:
        partitions = stream.partitions()
        with pytest.raises(InvalidInputError):
            stream.read(max(partitions) + 1, 0)
        with pytest.raises(InvalidInputError):
            stream.read(partitions[0], -1)
        with pytest.raises(InvalidInputError):
            stream.read(partitions[0], 0, max_records=0)
        with pytest.raises(InvalidInputError):
            stream.publish(12345)  # type: ignore[arg-type]

    def test_records_survive_reopening_the_stream(
        self, stream: Stream, open_stream: Callable[[], Stream]
    ) -> None:
        stream.publish_many([Message(f"r{i}".encode(), f"k{i}".encode()) for i in range(20)])
        expected = {(r.partition, r.offset, r.value) for r in _all(stream)}
        stream.close()
        reopened = open_stream()
        assert {(r.partition, r.offset, r.value) for r in _all(reopened)} == expected
        assert len(expected) == 20

    # -- consumer groups ------------------------------------------------------------------------
    def _require_groups(self, stream: Stream) -> bool:
        if Capability.CONSUMER_GROUPS in stream.capabilities:
            return True
        with pytest.raises(NotSupportedError):
            stream.consumer("suite_group")
        return False

    def test_consumer_group_resumes_from_its_committed_offsets(self, stream: Stream) -> None:
        if not self._require_groups(stream):
            return
        stream.publish_many([Message(f"r{i}".encode(), f"k{i}".encode()) for i in range(30)])
        with stream.consumer("readers") as first:
            head = _poll_until(first, 10)
            assert len(head) == 10
            first.commit()
        with stream.consumer("readers") as second:
            rest = _poll_until(second, 20)
            assert second.poll(timeout=0.2) == []
            second.commit()
        assert not set(_positions(head)) & set(_positions(rest)), "committed records came back"
        assert _positions(head + rest) == _positions(_all(stream))
        latest = stream.offsets("latest")
        assert stream.committed("readers") == {p: o for p, o in latest.items() if o > 0}

    def test_uncommitted_records_are_delivered_again(self, stream: Stream) -> None:
        if not self._require_groups(stream):
            return
        stream.publish_many([Message(f"r{i}".encode(), f"k{i}".encode()) for i in range(12)])
        with stream.consumer("retry") as crashed:
            seen = _poll_until(crashed, 5)
        assert len(seen) == 5
        assert stream.committed("retry") == {}
        with stream.consumer("retry") as again:
            everything = _poll_until(again, 12)
        assert set(_positions(seen)) <= set(_positions(everything))
        assert len(everything) == 12

    def test_commit_of_given_records_acknowledges_up_to_each_partitions_last(
        self, stream: Stream
    ) -> None:
        if not self._require_groups(stream):
            return
        stream.publish_many([Message(f"r{i}".encode(), f"k{i}".encode()) for i in range(20)])
        with stream.consumer("partial") as consumer:
            records = _poll_until(consumer, 20)
            chosen = records[:7]
            consumer.commit(chosen)
        expected: dict[int, int] = {}
        for r in chosen:
            expected[r.partition] = max(expected.get(r.partition, 0), r.offset + 1)
        assert stream.committed("partial") == expected

    # -- record blocks ---------------------------------------------------------------------------
    def test_read_block_holds_exactly_the_records_read_returns(self, stream: Stream) -> None:
        ms = timedelta(milliseconds=1)
        positions = stream.publish_many(
            [Message(f"v{i}".encode(), b"one", {"i": str(i)}, _T0 + i * ms) for i in range(10)]
        )
        partition, first = positions[0].partition, positions[0].offset
        for offset, count in ((first, 10), (first + 3, 4), (first + 9, 5)):
            block = stream.read_block(partition, offset, count)
            _check_block(block)
            assert block.records() == stream.read(partition, offset, count)
        assert [r.headers for r in stream.read_block(partition, first, 2)] == [
            {"i": "0"},
            {"i": "1"},
        ]
        empty = stream.read_block(partition, first + 1000, 5)
        assert len(empty) == 0
        assert not empty
        assert empty == []
        assert empty.values == []
        assert empty.to_arrow().num_rows == 0
        with pytest.raises(InvalidInputError):
            stream.read_block(partition, first, max_records=0)
        with pytest.raises(InvalidInputError):
            stream.read_block(max(stream.partitions()) + 1, 0)

    def test_poll_batch_delivers_the_records_poll_delivers(self, stream: Stream) -> None:
        if not self._require_groups(stream):
            return
        ms = timedelta(milliseconds=1)
        stream.publish_many(
            [
                Message(f"r{i}".encode(), f"k{i % 7}".encode(), {"n": str(i)} if i % 4 else {})
                for i in range(36)
            ]
        )
        stream.publish_many([Message(b"t", None, {}, _T0 + ms), b"", bytes(range(256))])
        stream.publish_values([b"v0", b"v1", b"v2"])
        total = 42
        with stream.consumer("by_record") as by_record, stream.consumer("by_block") as by_block:
            records = _poll_until(by_record, total)
            blocks = _poll_blocks_until(by_block, total)
            assert by_block.poll_batch(timeout=0.2) == []
        delivered = [r for block in blocks for r in block]
        assert len(records) == len(delivered) == total

        def by_partition(items: list[Record]) -> dict[int, list[tuple[Any, ...]]]:
            out: dict[int, list[tuple[Any, ...]]] = defaultdict(list)
            for r in items:
                out[r.partition].append(_fields(r))
            return dict(out)

        # Same records, each partition's in offset order, whichever way they were polled.
        assert by_partition(delivered) == by_partition(records)
        assert by_partition(records) == by_partition(_all(stream))

    def test_poll_batch_commits_acknowledge_blocks_and_nothing_else(self, stream: Stream) -> None:
        if not self._require_groups(stream):
            return
        stream.publish_many([Message(f"r{i}".encode(), f"k{i}".encode()) for i in range(24)])
        with stream.consumer("blocks") as first:
            acknowledged = _poll_blocks_until(first, 8)
            for block in acknowledged:
                first.commit(block)  # a block commits as its records would
            unacknowledged = _poll_blocks_until(first, 5)  # polled, never committed
        done = [r for block in acknowledged for r in block]
        pending = [r for block in unacknowledged for r in block]
        assert len(done) == 8
        assert len(pending) == 5
        expected: dict[int, int] = {}
        for r in done:
            expected[r.partition] = max(expected.get(r.partition, 0), r.offset + 1)
        assert stream.committed("blocks") == expected
        with stream.consumer("blocks") as second:
            rest = [r for block in _poll_blocks_until(second, 16) for r in block]
            assert second.poll_batch(timeout=0.2) == []
            second.commit()  # everything polled
        assert not set(_positions(done)) & set(_positions(rest)), "a committed block came back"
        assert set(_positions(pending)) <= set(_positions(rest)), "uncommitted records were lost"
        assert _positions(done + rest) == _positions(_all(stream))
        latest = stream.offsets("latest")
        assert stream.committed("blocks") == {p: o for p, o in latest.items() if o > 0}

    def test_two_groups_consume_independently(self, stream: Stream) -> None:
        if not self._require_groups(stream):
            return
        stream.publish_many([Message(f"r{i}".encode(), f"k{i}".encode()) for i in range(15)])
        with stream.consumer("group_a") as a:
            got_a = _poll_until(a, 15)
            a.commit()
        assert stream.committed("group_b") == {}
        with stream.consumer("group_b") as b:
            got_b = _poll_until(b, 15)
        assert _positions(got_a) == _positions(got_b) == _positions(_all(stream))

    def test_consumer_starting_at_latest_sees_only_new_records(self, stream: Stream) -> None:
        if not self._require_groups(stream):
            return
        stream.publish_many([b"old-1", b"old-2", b"old-3"])
        with stream.consumer("tail", start="latest") as consumer:
            assert consumer.poll(timeout=0.2) == []
            stream.publish_many([Message(b"new-1", b"a"), Message(b"new-2", b"b")])
            got = _poll_until(consumer, 2)
        assert sorted(r.value for r in got) == [b"new-1", b"new-2"]

    def test_poll_on_an_empty_stream_waits_for_the_timeout(self, stream: Stream) -> None:
        if not self._require_groups(stream):
            return
        with stream.consumer("idle") as consumer:
            started = time.monotonic()
            assert consumer.poll(timeout=0.3) == []
            elapsed = time.monotonic() - started
        assert 0.25 <= elapsed < 5.0

    def test_poll_returns_a_record_published_while_it_waits(self, stream: Stream) -> None:
        if not self._require_groups(stream):
            return
        with stream.consumer("waiting") as consumer:
            assert consumer.poll(timeout=0.0) == []
            timer = threading.Timer(0.2, stream.publish, args=(b"late",))
            timer.start()
            try:
                started = time.monotonic()
                got = consumer.poll(timeout=10.0)
                elapsed = time.monotonic() - started
            finally:
                timer.join()
        assert [r.value for r in got] == [b"late"]
        assert elapsed < 9.0

    def test_seek_replays_from_an_offset(self, stream: Stream) -> None:
        if not self._require_groups(stream):
            return
        stream.publish_many([Message(f"r{i}".encode(), f"k{i % 3}".encode()) for i in range(18)])
        everything = _all(stream)
        with stream.consumer("seeker") as consumer:
            assert len(_poll_until(consumer, 18)) == 18
            consumer.commit()
            assert consumer.poll(timeout=0.1) == []
            consumer.seek(dict.fromkeys(stream.partitions(), 1))
            expected = sorted((r.partition, r.offset) for r in everything if r.offset >= 1)
            again = _poll_until(consumer, len(expected))
            assert consumer.poll(timeout=0.1) == []
        assert _positions(again) == expected
        from_two = list(stream.replay(from_offsets=dict.fromkeys(stream.partitions(), 2)))
        assert _positions(from_two) == sorted(
            (r.partition, r.offset) for r in everything if r.offset >= 2
        )

    def test_members_of_one_group_split_the_records(
        self, stream: Stream, open_stream: Callable[[], Stream]
    ) -> None:
        if not self._require_groups(stream):
            return
        stream.publish_many([Message(f"r{i}".encode(), f"k{i}".encode()) for i in range(60)])
        other = open_stream()  # another process's view of the same stream
        got: list[list[Record]] = [[], []]
        with stream.consumer("team") as a, other.consumer("team") as b:
            deadline = time.monotonic() + 20
            while len(got[0]) + len(got[1]) < 60 and time.monotonic() < deadline:
                for i, consumer in enumerate((a, b)):
                    batch = consumer.poll(max_records=5, timeout=0.05)
                    consumer.commit()
                    got[i].extend(batch)
        delivered = got[0] + got[1]
        assert set(_positions(delivered)) == set(_positions(_all(stream)))
        if type(stream.adapter).assign is not StreamAdapter.assign:
            # Real membership: a committed record is never handed to the other member.
            assert len(delivered) == len(set(_positions(delivered))) == 60

    # -- replay from time -----------------------------------------------------------------------
    def test_replay_from_time_starts_at_the_first_record_at_or_after_it(
        self, stream: Stream
    ) -> None:
        hour, ms = timedelta(hours=1), timedelta(milliseconds=1)
        early = [Message(f"e{i}".encode(), f"k{i}".encode(), {}, _T0 + i * ms) for i in range(8)]
        late = [
            Message(f"l{i}".encode(), f"k{i}".encode(), {}, _T0 + hour + i * ms) for i in range(8)
        ]
        if Capability.REPLAY_FROM_TIME not in stream.capabilities:
            stream.publish_many(early)
            with pytest.raises(NotSupportedError):
                list(stream.replay(from_time=_T0))
            return
        stream.publish_many(early)
        stream.publish_many(late)
        replayed = stream.replay(from_time=_T0 + timedelta(minutes=30))
        assert sorted(r.value for r in replayed) == sorted(m.value for m in late)
        assert len(list(stream.replay(from_time=_T0 - timedelta(days=1)))) == 16
        assert list(stream.replay(from_time=_T0 + timedelta(days=1))) == []
        assert stream.adapter.offsets_for_time(_T0 + timedelta(days=1)) == stream.offsets("latest")
        if Capability.CONSUMER_GROUPS in stream.capabilities:
            with stream.consumer("timed") as consumer:
                consumer.seek_to_time(_T0 + hour + 4 * ms)
                got = _poll_until(consumer, 4)
            assert sorted(r.value for r in got) == [b"l4", b"l5", b"l6", b"l7"]

    def test_time_lookup_with_out_of_order_timestamps_finds_the_first_match(
        self, stream: Stream
    ) -> None:
        if Capability.REPLAY_FROM_TIME not in stream.capabilities:
            with pytest.raises(NotSupportedError):
                stream.adapter.offsets_for_time(_T0)
            return
        at = [_T0 + timedelta(milliseconds=ms) for ms in (0, 30, 10, 50, 20)]
        positions = stream.publish_many([Message(b"v", b"k", {}, ts) for ts in at])
        partition, first = positions[0].partition, positions[0].offset
        lookup = stream.adapter.offsets_for_time
        assert lookup(_T0 + timedelta(milliseconds=25))[partition] == first + 1
        assert lookup(_T0 + timedelta(milliseconds=40))[partition] == first + 3
        assert lookup(_T0 + timedelta(milliseconds=60))[partition] == first + 5

    # -- retention ------------------------------------------------------------------------------
    def test_retention_drops_the_oldest_records_and_moves_earliest(
        self,
        stream: Stream,
        retention_stream_factory: StreamFactory | None,
        stream_name: str,
        stream_cleanup: Callable[[str], None],
    ) -> None:
        if Capability.RETENTION not in stream.capabilities:
            with pytest.raises(NotSupportedError):
                stream.enforce_retention()
            return
        if retention_stream_factory is None:
            pytest.skip("RETENTION declared but no retention_stream_factory fixture given")
        limited = Stream(retention_stream_factory(f"{stream_name}_r"))
        try:
            payload = b"x" * 1000
            positions = []
            for batch in range(20):
                positions += limited.publish_many(
                    [Message(b"%d:%d|" % (batch, i) + payload, b"same") for i in range(10)]
                )
            partition = positions[0].partition
            before = limited.offsets("earliest")[partition]
            dropped = limited.enforce_retention()
            earliest = limited.offsets("earliest")[partition]
            assert earliest > 0, "nothing was dropped from 200 KiB in one partition"
            assert dropped == earliest - before
            assert limited.offsets("latest")[partition] == positions[-1].offset + 1
            kept = _drain(limited)[partition]
            assert [r.offset for r in kept] == list(range(earliest, positions[-1].offset + 1))
            for record in kept:
                index = record.offset - positions[0].offset
                assert record.value.startswith(b"%d:%d|" % divmod(index, 10))
            assert limited.read(partition, 0, 1)[0].offset == earliest
        finally:
            limited.close()
            stream_cleanup(f"{stream_name}_r")

    # -- several processes ----------------------------------------------------------------------
    def test_producers_in_several_processes_get_distinct_dense_offsets(
        self, stream: Stream, stream_factory: StreamFactory, tmp_path: Path
    ) -> None:
        count, producers = 60, 3
        acks = [tmp_path / f"acks-{i}.txt" for i in range(producers)]
        procs = [
            _SPAWN.Process(
                target=workers.produce,
                args=(stream_factory, stream.name, str(acks[i]), i, count),
            )
            for i in range(producers)
        ]
        for proc in procs:
            proc.start()
        for proc in procs:
            proc.join(self.process_timeout)
            assert proc.exitcode == 0, f"producer exited with {proc.exitcode}"
        drained = _drain(stream)
        records = [r for rs in drained.values() for r in rs]
        assert len(records) == count * producers
        for rs in drained.values():
            _assert_dense(rs, stream.adapter.dense_offsets)
        by_position = {(r.partition, r.offset): workers.check_value(r) for r in records}
        assert len(set(by_position.values())) == count * producers
        for path in acks:
            for line in _lines(path):
                partition, offset, rid = line.split()
                assert by_position[(int(partition), int(offset))] == rid
        shared = [r for r in records if r.key == b"shared"]
        assert len({r.partition for r in shared}) == 1
        shared.sort(key=lambda r: r.offset)
        for producer in range(producers):  # each producer's records keep their order
            ids = [workers.check_value(r).split("-") for r in shared]
            mine = [int(seq) for who, seq in ids if who == str(producer)]
            assert mine == sorted(mine)
            assert len(mine) == count // 2

    def test_acknowledged_records_survive_producers_killed_mid_publish(
        self, stream: Stream, stream_factory: StreamFactory, tmp_path: Path
    ) -> None:
        rnd = random.Random(1234)
        ack_files = []
        for i in range(self.crash_iterations):
            ack, ready = tmp_path / f"ack-{i}.txt", tmp_path / f"ready-{i}"
            ack_files.append(ack)
            proc = _SPAWN.Process(
                target=workers.produce_until_killed,
                args=(stream_factory, stream.name, str(ack), str(ready), i),
            )
            proc.start()
            try:
                _wait_for_file(ready, proc, self.process_timeout)
                time.sleep(rnd.uniform(0.0, 0.12))
            finally:
                proc.kill()
                proc.join(self.process_timeout)
        survivor_view = Stream(stream_factory(stream.name))  # opened after all the crashes
        try:
            drained = _drain(survivor_view)
        finally:
            survivor_view.close()
        found: dict[tuple[int, int], str] = {}
        assert _drain(stream) == drained, "a long-lived instance must see what a fresh one sees"
        for partition, records in drained.items():
            _assert_dense(records, stream.adapter.dense_offsets)
            for record in records:
                found[(partition, record.offset)] = workers.check_value(record)  # no garbage
        assert len(set(found.values())) == len(found), "a record was stored twice"
        acknowledged = 0
        for path in ack_files:
            for line in _lines(path):
                at_partition, at_offset, rid = line.split()
                position = (int(at_partition), int(at_offset))
                assert found.get(position) == rid, f"acknowledged record {rid} lost"
                acknowledged += 1
        assert acknowledged > 0

    def test_consumers_killed_at_random_points_consume_at_least_once(
        self, stream: Stream, stream_factory: StreamFactory, tmp_path: Path
    ) -> None:
        if not self._require_groups(stream):
            return
        rnd = random.Random(4321)
        seq = 0

        def publish(n: int) -> None:
            nonlocal seq
            ids = range(seq, seq + n)
            stream.publish_many([Message(f"r{i}".encode(), f"k{i % 16}".encode()) for i in ids])
            seq += n

        publish(300)
        logs = []
        for i in range(self.crash_iterations + 1):
            drain = i == self.crash_iterations
            log, ready = tmp_path / f"consumer-{i}.log", tmp_path / f"ready-{i}"
            logs.append(log)
            proc = _SPAWN.Process(
                target=workers.consume_until_killed,
                args=(stream_factory, stream.name, "crashy", str(log), str(ready)),
                kwargs={"seed": i, "drain": drain},
            )
            proc.start()
            try:
                _wait_for_file(ready, proc, self.process_timeout)
                if drain:
                    proc.join(self.process_timeout)
                    assert proc.exitcode == 0, f"draining consumer exited with {proc.exitcode}"
                else:
                    time.sleep(rnd.uniform(0.02, 0.25))
            finally:
                proc.kill()
                proc.join(self.process_timeout)
            if not drain:
                publish(20)

        acknowledged: dict[int, int] = {}  # committed offsets we know were acknowledged
        deliveries: dict[tuple[int, int], int] = defaultdict(int)
        following = _following(stream)  # (partition, offset) -> the partition's next offset
        for run, log in enumerate(logs):
            last_in_run: dict[int, int] = {}
            for line in _lines(log):
                kind, *fields = line.split()
                if kind == "P":
                    partition, offset = int(fields[0]), int(fields[1])
                    assert offset >= acknowledged.get(partition, 0), (
                        f"run {run} re-delivered {partition}/{offset} although offset "
                        f"{acknowledged[partition]} was committed and acknowledged"
                    )
                    if partition in last_in_run:
                        expected = following.get((partition, last_in_run[partition]))
                        assert offset == expected, "a consumer skipped records"
                    last_in_run[partition] = offset
                    deliveries[(partition, offset)] += 1
                else:
                    for item in fields:
                        partition, offset = map(int, item.split(":"))
                        assert offset >= acknowledged.get(partition, 0), "commit went backwards"
                        acknowledged[partition] = offset
        published = {(r.partition, r.offset) for r in _all(stream)}
        assert len(published) == seq
        missing = published - set(deliveries)
        assert not missing, f"{len(missing)} published records were never consumed"
        latest = stream.offsets("latest")
        assert stream.committed("crashy") == {p: o for p, o in latest.items() if o > 0}
