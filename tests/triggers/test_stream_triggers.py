"""Stream triggers: batches of one partition in order, offsets committed after the batch
finished, partial batch failure (only failed records retried), dead letters, restarts."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from trigger_helpers import wait_for

import lakekit
from lakekit.events import BatchResult, StreamRecords
from lakekit.interfaces.function_runtime import Context, DeadLetter
from lakekit.lake import Lake
from lakekit.triggers.server import LocalServer
from lakekit.triggers.streams import batch_id


class Batches:
    """Records every batch a handler received, with the attempt number."""

    def __init__(self, result: Callable[[StreamRecords, Context], Any] | None = None) -> None:
        self.calls: list[tuple[StreamRecords, int]] = []
        self.lock = threading.Lock()
        self.result = result

    def __call__(self, event: StreamRecords, context: Context) -> Any:
        with self.lock:
            self.calls.append((event, context.attempt))
        return self.result(event, context) if self.result is not None else None

    def values(self) -> list[str]:
        with self.lock:
            return [r.text() for event, _ in self.calls for r in event.records]


@pytest.fixture
def one_partition(tmp_path: Path) -> Iterator[Lake]:
    """A lake whose streams have a single partition (to observe ordering)."""
    url = f"local://{tmp_path / 'lake1'}"
    with lakekit.connect(url, store={"fsync": False}, stream={"partitions": 1}) as lake:
        yield lake


def test_batches_hold_records_of_one_partition_in_order(
    lake: Lake, serve: Callable[..., LocalServer]
) -> None:
    batches = Batches()
    lake.functions.on_stream("events", batch_size=4, name="enrich")(batches)
    stream = lake.stream("events")
    for i in range(30):
        stream.publish(f"{i:02d}", key=f"user-{i % 6}")
    serve(lake)
    wait_for(lambda: len(batches.values()) == 30)
    per_partition: dict[str, list[int]] = {}
    for event, attempt in batches.calls:
        assert attempt == 1
        assert event.stream == "events"
        assert 1 <= len(event.records) <= 4
        offsets = [int(o) for o in event.offsets]
        assert offsets == list(range(offsets[0], offsets[0] + len(offsets)))
        partition = int(event.partition)
        assert event.id == batch_id("events", "enrich", partition, offsets[0], offsets[-1])
        per_partition.setdefault(event.partition, []).extend(offsets)
    for offsets in per_partition.values():
        assert offsets == list(range(len(offsets))), "each partition in order, exactly once"
    assert sorted(batches.values()) == [f"{i:02d}" for i in range(30)]
    wait_for(lambda: sum(stream.committed("enrich").values()) == 30)


def test_the_batch_id_is_derived_from_stream_group_partition_and_offsets(
    one_partition: Lake, serve: Callable[..., LocalServer]
) -> None:
    batches = Batches()
    one_partition.functions.on_stream("events", group="g1", batch_size=3, name="enrich")(batches)
    one_partition.stream("events").publish_many([b"a", b"b", b"c"])
    serve(one_partition)
    wait_for(lambda: batches.calls)
    event, _ = batches.calls[0]
    assert event.id == batch_id("events", "g1", 0, 0, 2)
    record = event.records[0]
    assert (record.offset, record.value, record.key) == ("0", b"a", None)


def test_offsets_are_committed_only_after_the_batch_finished(
    one_partition: Lake, serve: Callable[..., LocalServer]
) -> None:
    release = threading.Event()
    started = threading.Event()

    @one_partition.functions.on_stream("events", batch_size=10)
    def slow(event: StreamRecords, context: Context) -> None:
        started.set()
        release.wait(10)

    stream = one_partition.stream("events")
    stream.publish_many([b"1", b"2", b"3"])
    serve(one_partition)
    assert started.wait(10)
    time.sleep(0.1)
    assert stream.committed("slow") == {}, "nothing is acknowledged while the batch runs"
    release.set()
    wait_for(lambda: stream.committed("slow") == {0: 3})


def test_a_restarted_server_resumes_after_the_committed_offsets(one_partition: Lake) -> None:
    batches = Batches()
    one_partition.functions.on_stream("events", name="enrich")(batches)
    stream = one_partition.stream("events")
    stream.publish_many([b"a", b"b"])
    with LocalServer(one_partition, stream_poll_interval=0.02):
        wait_for(lambda: batches.values() == ["a", "b"])
        wait_for(lambda: stream.committed("enrich") == {0: 2})
    stream.publish_many([b"c", b"d"])
    with LocalServer(one_partition, stream_poll_interval=0.02):
        wait_for(lambda: len(batches.values()) == 4)
        time.sleep(0.2)
    assert batches.values() == ["a", "b", "c", "d"]


def test_start_latest_reads_only_records_published_after_the_group_began(
    one_partition: Lake, serve: Callable[..., LocalServer]
) -> None:
    batches = Batches()
    one_partition.functions.on_stream("events", start="latest", name="tail")(batches)
    stream = one_partition.stream("events")
    stream.publish(b"old")
    serve(one_partition)
    time.sleep(0.2)
    stream.publish(b"new")
    wait_for(lambda: batches.values() == ["new"])


def test_start_latest_still_delivers_records_published_while_the_server_was_down(
    one_partition: Lake,
) -> None:
    batches = Batches()
    one_partition.functions.on_stream("events", start="latest", name="tail")(batches)
    stream = one_partition.stream("events")
    stream.publish(b"before the first start")
    with LocalServer(one_partition, stream_poll_interval=0.02):
        time.sleep(0.1)
    stream.publish(b"while down")
    with LocalServer(one_partition, stream_poll_interval=0.02):
        wait_for(lambda: batches.values() == ["while down"])


def test_partial_batch_failure_retries_only_the_failed_records(
    one_partition: Lake, serve: Callable[..., LocalServer]
) -> None:
    def fail_odd_once(event: StreamRecords, context: Context) -> BatchResult | None:
        if context.attempt == 1:
            return BatchResult([r for r in event.records if int(r.text()) % 2])
        return None

    batches = Batches(fail_odd_once)
    one_partition.functions.on_stream(
        "events", batch_size=6, name="enrich", retries=2, backoff=0.01
    )(batches)
    stream = one_partition.stream("events")
    stream.publish_many([str(i).encode() for i in range(6)])
    serve(one_partition)
    wait_for(lambda: len(batches.calls) == 2)
    (first, attempt1), (retry, attempt2) = batches.calls
    assert (attempt1, attempt2) == (1, 2)
    assert [r.text() for r in first.records] == ["0", "1", "2", "3", "4", "5"]
    assert [r.text() for r in retry.records] == ["1", "3", "5"]
    assert retry.offsets == ("1", "3", "5")
    assert retry.id != first.id, "a narrowed batch has its own id"
    wait_for(lambda: stream.committed("enrich") == {0: 6})
    assert one_partition.functions.dead_letters("enrich") == []


def test_records_failing_every_retry_are_dead_lettered_and_the_group_moves_on(
    one_partition: Lake, serve: Callable[..., LocalServer]
) -> None:
    def reject_poison(event: StreamRecords, context: Context) -> BatchResult:
        return BatchResult([r.offset for r in event.records if r.value == b"poison"])

    batches = Batches(reject_poison)
    one_partition.functions.on_stream(
        "events", batch_size=3, name="enrich", retries=1, backoff=0.01
    )(batches)
    stream = one_partition.stream("events")
    stream.publish_many([b"ok-1", b"poison", b"ok-2", b"ok-3", b"ok-4"])
    serve(one_partition)
    wait_for(lambda: stream.committed("enrich") == {0: 5})
    (letter,) = one_partition.functions.dead_letters("enrich")
    assert letter.event_type == "StreamRecords"
    assert [r["offset"] for r in letter.event["records"]] == ["1"]
    assert letter.extra == {"stream": "events", "partition": "0", "offsets": ["1"]}
    assert letter.error_type == "PartialBatchError"
    assert letter.attempts == 2
    published = list(one_partition.stream("dead_letters").replay())
    assert len(published) == 1
    assert published[0].key == b"enrich"
    assert DeadLetter.from_dict(published[0].json()) == letter
    assert "ok-4" in batches.values(), "records after the poison were processed"


def test_a_batch_whose_handler_raises_is_retried_whole_then_dead_lettered(
    one_partition: Lake, serve: Callable[..., LocalServer]
) -> None:
    def explode(event: StreamRecords, context: Context) -> None:
        raise ValueError("downstream is down")

    batches = Batches(explode)
    one_partition.functions.on_stream(
        "events", batch_size=10, name="enrich", retries=2, backoff=0.01
    )(batches)
    stream = one_partition.stream("events")
    stream.publish_many([b"a", b"b"])
    serve(one_partition)
    wait_for(lambda: stream.committed("enrich") == {0: 2})
    assert [attempt for _, attempt in batches.calls] == [1, 2, 3]
    assert all(len(event.records) == 2 for event, _ in batches.calls)
    (letter,) = one_partition.functions.dead_letters("enrich")
    assert (letter.error_type, letter.error) == ("ValueError", "downstream is down")


def test_later_records_of_a_partition_wait_while_a_batch_is_retried(
    one_partition: Lake, serve: Callable[..., LocalServer]
) -> None:
    order: list[str] = []
    first_seen = threading.Event()

    @one_partition.functions.on_stream(
        "events", batch_size=2, retries=1, backoff=0.3, concurrency=4
    )
    def enrich(event: StreamRecords, context: Context) -> BatchResult | None:
        order.append(f"{','.join(r.text() for r in event.records)}@{context.attempt}")
        first_seen.set()
        if event.records[0].text() == "a" and context.attempt == 1:
            return BatchResult([event.records[0]])
        return None

    stream = one_partition.stream("events")
    stream.publish_many([b"a", b"b"])
    serve(one_partition)
    assert first_seen.wait(10)
    stream.publish_many([b"c", b"d"])  # published while "a" waits for its retry
    wait_for(lambda: len(order) == 3)
    assert order == ["a,b@1", "a@2", "c,d@1"]


def test_max_wait_gathers_records_into_one_batch(
    one_partition: Lake, serve: Callable[..., LocalServer]
) -> None:
    batches = Batches()
    one_partition.functions.on_stream("events", batch_size=10, max_wait=0.5, name="enrich")(batches)
    serve(one_partition)
    stream = one_partition.stream("events")
    for value in (b"1", b"2", b"3"):
        stream.publish(value)
        time.sleep(0.05)
    wait_for(lambda: batches.calls)
    time.sleep(0.2)
    assert [len(event.records) for event, _ in batches.calls] == [3]


def test_a_full_batch_does_not_wait_for_max_wait(
    one_partition: Lake, serve: Callable[..., LocalServer]
) -> None:
    batches = Batches()
    one_partition.functions.on_stream("events", batch_size=2, max_wait=60, name="enrich")(batches)
    one_partition.stream("events").publish_many([b"1", b"2", b"3"])
    serve(one_partition)
    wait_for(lambda: batches.calls, timeout=5)
    assert [r.text() for r in batches.calls[0][0].records] == ["1", "2"]
