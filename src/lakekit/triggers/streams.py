"""Stream triggers on the local runtime: a consumer group per trigger, one batch per partition.

For each :class:`~lakekit.triggers.model.StreamTrigger` a thread reads the stream as the
trigger's consumer group (public :class:`~lakekit.interfaces.stream.Consumer` API only) and
hands the function :class:`~lakekit.events.StreamRecords` batches:

* a batch holds up to ``batch_size`` records of **one** partition, in offset order; it is
  sent as soon as it is full, or when its oldest record has waited ``max_wait`` seconds;
* at most **one batch per partition is in flight**: later records of that partition wait
  (buffered up to one batch, the rest re-read later) until the batch has succeeded or been
  dead-lettered, so records of a partition are processed in order, retries included.
  Other partitions go on meanwhile, up to the function's concurrency limit;
* the group's offset for the partition is **committed only after** the batch finished:
  succeeded, or failed for good and dead-lettered. A crash before the commit re-delivers the
  batch (at-least-once); the batch ``id`` is derived from the stream, group, partition and
  offsets, so the redelivery of the same batch carries the same id;
* **partial batch failure**: a handler returning ``BatchResult(failed=[...])`` gets only those
  records retried, after the function's backoff, as a narrowed batch (see
  :meth:`~lakekit.adapters.local.function_runtime.LocalFunctionRuntime.invoke_batch_async`);
  once the retries are exhausted the records still failing are dead-lettered and the
  partition moves on.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from lakekit.events import StreamRecord, StreamRecords
from lakekit.triggers.model import StreamTrigger, TriggerBinding

if TYPE_CHECKING:
    from lakekit.interfaces.stream import Consumer, Record, Stream

__all__ = ["StreamTriggerSource", "batch_event", "batch_id"]

_log = logging.getLogger("lakekit.triggers.streams")

SubmitBatch = Callable[[str, StreamRecords], "Future[Any]"]


def batch_id(stream: str, group: str, partition: int, first: int, last: int) -> str:
    """The id of the batch of offsets ``first..last``: the same on every redelivery."""
    text = f"{stream}\x00{group}\x00{partition}\x00{first}\x00{last}"
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def batch_event(stream: str, group: str, records: list[Record]) -> StreamRecords:
    """The :class:`StreamRecords` event for ``records`` (one partition, in order)."""
    partition = records[0].partition
    return StreamRecords(
        id=batch_id(stream, group, partition, records[0].offset, records[-1].offset),
        time=datetime.now(UTC),
        stream=stream,
        partition=str(partition),
        records=tuple(
            StreamRecord(
                offset=str(record.offset),
                value=record.value,
                key=record.key,
                timestamp=record.timestamp,
                headers=dict(record.headers),
            )
            for record in records
        ),
    )


class StreamTriggerSource:
    """Feeds one stream trigger's batches to its function (see the module docstring).

    Args:
        binding: the function and its :class:`StreamTrigger`.
        stream: the stream to read.
        submit: hands a batch to the runtime (partial-batch aware) and returns its future.
        poll_interval: seconds to wait when the stream has nothing new.
    """

    def __init__(
        self,
        binding: TriggerBinding,
        stream: Stream,
        submit: SubmitBatch,
        *,
        poll_interval: float = 0.2,
    ) -> None:
        assert isinstance(binding.trigger, StreamTrigger)
        self.function = binding.function
        self.trigger: StreamTrigger = binding.trigger
        self._stream = stream
        self._submit = submit
        self._poll_interval = poll_interval
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._drain_deadline: float | None = None
        self._completed: list[int] = []
        self._inflight: dict[int, list[Record]] = {}
        self._buffers: dict[int, list[Record]] = {}
        self._since: dict[int, float] = {}
        self._consumer: Consumer | None = None
        self._thread: threading.Thread | None = None
        self.batches = 0
        """Batches submitted so far (for tests and status lines)."""

    def __repr__(self) -> str:
        return f"StreamTriggerSource({self.function!r}, {self.trigger})"

    def start(self) -> None:
        """Join the consumer group and start delivering.

        With ``start="latest"``, partitions the group never committed are committed at their
        current end right away, so records published while the server is stopped later are
        still delivered (the group starts "now" once, not at every start)."""
        if self.trigger.start == "latest":
            committed = self._stream.committed(self.trigger.group)
            fresh = {
                partition: offset
                for partition, offset in self._stream.offsets("latest").items()
                if partition not in committed
            }
            if fresh:  # through the neutral StreamAdapter interface: commit(group, offsets)
                self._stream.adapter.commit(self.trigger.group, fresh)
        self._consumer = self._stream.consumer(self.trigger.group, start=self.trigger.start)
        self._thread = threading.Thread(
            target=self._run, name=f"lakekit-triggers-stream-{self.function}", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float | None = None) -> bool:
        """Stop reading, wait up to ``timeout`` seconds for batches in flight to finish (and
        commit them), leave the group. Returns whether every batch in flight finished; the
        others are not committed and are delivered again after a restart."""
        with self._cond:
            self._drain_deadline = None if timeout is None else time.monotonic() + timeout
            self._stop.set()
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        with self._cond:
            return not self._inflight

    # -- the loop -------------------------------------------------------------------------------
    def _run(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        try:
            while True:
                try:
                    self._commit_completed(consumer)
                    if self._stop.is_set():
                        if self._drained():
                            return
                        continue
                    self._dispatch_ready()
                    if not self._fill_buffers(consumer):
                        self._wait()
                except Exception:  # keep serving: a later round retries
                    _log.exception("stream trigger of %r failed; retrying", self.function)
                    self._stop.wait(max(self._poll_interval, 1.0))
        finally:
            try:
                consumer.close()
            except Exception:
                _log.exception("could not leave consumer group %r", self.trigger.group)

    def _drained(self) -> bool:
        """While stopping: wait for one completion; True once nothing is in flight (or the
        drain deadline passed)."""
        with self._cond:
            if not self._inflight:
                return True
            if self._completed:
                return False
            deadline = self._drain_deadline
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                _log.warning(
                    "stream trigger of %r: %d batch(es) still running at stop; they are not "
                    "committed and will be delivered again",
                    self.function,
                    len(self._inflight),
                )
                return True
            self._cond.wait(remaining)
            return False

    def _wait(self) -> None:
        with self._cond:
            if self._completed or self._stop.is_set():
                return
            timeout = self._poll_interval
            waiting = [self._since[p] for p in self._buffers if p not in self._inflight]
            if waiting:
                due = min(waiting) + self.trigger.max_wait
                timeout = max(0.0, min(timeout, due - time.monotonic()))
            self._cond.wait(timeout)

    def _commit_completed(self, consumer: Consumer) -> None:
        with self._cond:
            done = list(self._completed)
        for partition in done:
            consumer.commit(self._inflight[partition])  # up to the batch's last offset
            with self._cond:  # only now may the partition's next batch go
                self._completed.remove(partition)
                del self._inflight[partition]

    def _dispatch_ready(self) -> None:
        now = time.monotonic()
        for partition in sorted(self._buffers):
            records = self._buffers[partition]
            with self._cond:
                if partition in self._inflight:
                    continue
            full = len(records) >= self.trigger.batch_size
            if not full and now - self._since[partition] < self.trigger.max_wait:
                continue
            del self._buffers[partition]
            del self._since[partition]
            event = batch_event(self._stream.name, self.trigger.group, records)
            try:
                future = self._submit(self.function, event)
            except Exception:
                _log.exception("could not submit a batch to %r; retrying", self.function)
                self._buffers[partition] = records
                self._since[partition] = now
                self._stop.wait(self._poll_interval)
                continue
            with self._cond:
                self._inflight[partition] = records
            self.batches += 1
            future.add_done_callback(functools.partial(self._completed_batch, partition))

    def _completed_batch(self, partition: int, _future: Future[Any]) -> None:
        with self._cond:
            self._completed.append(partition)
            self._cond.notify_all()

    def _fill_buffers(self, consumer: Consumer) -> bool:
        """Poll once and buffer what fits (one batch per partition); rewind the rest so it is
        read again later. Returns whether any record was taken."""
        records = consumer.poll(max_records=self.trigger.batch_size, timeout=0.0)
        if not records:
            return False
        by_partition: dict[int, list[Record]] = {}
        for record in records:
            by_partition.setdefault(record.partition, []).append(record)
        taken = False
        rewind: dict[int, int] = {}
        now = time.monotonic()
        for partition, batch in by_partition.items():
            buffer = self._buffers.setdefault(partition, [])
            room = self.trigger.batch_size - len(buffer)
            if room > 0:
                buffer.extend(batch[:room])
                self._since.setdefault(partition, now)
                taken = True
            if not buffer:
                del self._buffers[partition]
            if len(batch) > room:
                rewind[partition] = batch[max(room, 0)].offset
        if rewind:
            consumer.seek(rewind)
        return taken
