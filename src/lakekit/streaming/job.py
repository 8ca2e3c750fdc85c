"""Windowed aggregation jobs over a lakekit stream: :func:`windowed` and :class:`WindowedJob`.

::

    from lakekit.streaming import (ApproxDistinct, Count, KeyValueView, Mean, StreamSink,
                                   TableSink, Tumbling, windowed)

    view = KeyValueView("latest")
    job = windowed(lake, "readings", group="stats", key="device", time="ts",
                   window=Tumbling("5m"), allowed_lateness="30s",
                   aggregate={"n": Count(), "avg": Mean("temp"), "users": ApproxDistinct("user")},
                   late=StreamSink(lake, "late_readings"),
                   sinks=[TableSink(lake, "iot.device_stats"), view])
    job.run_once()             # everything published so far, then return
    job.start(); ...; job.stop()   # or keep running in a background thread
    view.get("d-17"); view.serve(port=8080)

How a job works, per poll batch (``Consumer.poll_batch``: a block of columns, with a
``Record`` object built only for a record the side output gets; see docs/streaming.md):

1. decode the batch's JSON values with one ``pyarrow.json`` call; records without a usable
   time or key go to the side output (``late=``) with the reason (or raise: ``on_invalid``);
2. assign rows to windows with Arrow kernels; rows whose windows have all closed are late and
   go to the side output; group the rest by (key, window) with one Arrow hash aggregation and
   fold each group's partial aggregates into the window's state;
3. advance the watermark (:mod:`lakekit.streaming.watermark`) and emit the windows it closed;
   optionally emit early (non-final) updates of open windows;
4. every ``checkpoint_every``, commit: the results for the table sink, the open windows, the
   watermark, the views and the stream offsets, in **one** atomic catalog step.

Guarantees:

* **Exactly once into the table sink.** Results and the checkpoint they follow from commit
  together (``Table.write(set_state=...)``), so after a crash (``kill -9`` included) the job
  resumes from the last checkpoint: the records after it are processed again against the
  state of that moment, and each window lands in the table once, with exact aggregates.
* **At least once elsewhere.** Stream sinks and the side output receive results as they are
  produced; after a crash those since the last checkpoint are sent again with the same ids.
  Key-value views are restored from the checkpoint and re-updated (idempotent).
* **Nothing is silently dropped.** Late and invalid records go to the side output with a
  reason; counting a record and rejecting it are exclusive.
* **One instance per job.** A job is identified by (source stream, group). Running two
  instances at once is refused at commit time (compare-and-swap on the checkpoint entry) for
  jobs without a table sink; with a table sink the second instance's commit is detected
  afterwards and raises, but both may have appended rows: do not run two.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from lakekit.capabilities import Capability, require
from lakekit.errors import ConfigurationError, InvalidInputError, LakekitError
from lakekit.streaming._operators import FixedWindowOperator, LateRow, Operator, SessionOperator
from lakekit.streaming._records import (
    PARTITION,
    TIME,
    FieldMode,
    RecordLayout,
    decode_batch,
    records_at,
    unseen,
)
from lakekit.streaming.aggregations import Aggregation, result_type
from lakekit.streaming.checkpoint import Checkpoints
from lakekit.streaming.results import Rejected, ResultColumns, ResultLayout, from_us
from lakekit.streaming.sinks import KeyValueView, Sink, StreamSink, TableSink
from lakekit.streaming.watermark import Watermarks
from lakekit.streaming.windows import Duration, Session, WindowSpec, _FixedWindows, parse_duration

if TYPE_CHECKING:
    from lakekit.interfaces.catalog import JSONValue
    from lakekit.interfaces.stream import Consumer, RecordBlock, Stream
    from lakekit.lake import Lake

__all__ = ["RunStats", "Until", "WindowedJob", "windowed"]

_logger = logging.getLogger(__name__)

Until = float | int | timedelta | datetime | Callable[[], bool] | None
"""When :meth:`WindowedJob.run` stops: after a duration (seconds or timedelta), at an aware
datetime, when a callable returns True (checked after each poll), or never (None: until
:meth:`WindowedJob.stop`)."""

_RESERVED_COLUMNS = ("window_start", "window_end", "final", "id")
_MAX_PENDING_RESULTS = 100_000


@dataclass
class RunStats:
    """What a job did (per :meth:`WindowedJob.run_once` / :meth:`~WindowedJob.run` call, or
    in total: :attr:`WindowedJob.stats`)."""

    records: int = 0
    """Records read from the stream."""
    counted: int = 0
    """Records folded into at least one window."""
    late: int = 0
    invalid: int = 0
    batches: int = 0
    results: int = 0
    """Final window results emitted."""
    updates: int = 0
    """Early (non-final) results emitted."""
    commits: int = 0
    seconds: float = 0.0

    def _since(self, before: RunStats) -> RunStats:
        names = [f.name for f in fields(self)]
        return RunStats(**{n: getattr(self, n) - getattr(before, n) for n in names})

    def _copy(self) -> RunStats:
        return RunStats(**{f.name: getattr(self, f.name) for f in fields(self)})


def windowed(
    lake: Lake,
    source: str | Stream,
    *,
    group: str,
    window: WindowSpec,
    aggregate: Mapping[str, Aggregation],
    key: str | None = None,
    time: str | None = None,
    time_unit: Literal["s", "ms", "us"] = "s",
    allowed_lateness: Duration = 0,
    idle_timeout: Duration = "30s",
    late: Sink | None = None,
    sinks: Sequence[Sink] = (),
    early: Literal["batch"] | Duration | None = None,
    checkpoint_every: Duration = "5s",
    batch_size: int = 10_000,
    poll_timeout: float = 1.0,
    on_invalid: Literal["side_output", "raise"] = "side_output",
    start: Literal["earliest", "latest"] = "earliest",
) -> WindowedJob:
    """A windowed aggregation job over stream ``source`` (see :class:`WindowedJob`)."""
    return WindowedJob(
        lake, source, group=group, window=window, aggregate=aggregate, key=key, time=time,
        time_unit=time_unit, allowed_lateness=allowed_lateness, idle_timeout=idle_timeout,
        late=late, sinks=sinks, early=early, checkpoint_every=checkpoint_every,
        batch_size=batch_size, poll_timeout=poll_timeout, on_invalid=on_invalid, start=start,
    )  # fmt: skip


class WindowedJob:
    """Event-time windowed aggregations of a stream's JSON records, keyed, checkpointed.

    Args:
        lake: the lake (its catalog holds the checkpoint entry, its store the payloads).
        source: the stream (a name or ``lake.stream(name)``); its adapter needs consumer groups.
        group: the consumer group, which with the stream identifies the job and its checkpoint.
        window: :class:`~lakekit.streaming.windows.Tumbling`, ``Hopping`` or ``Session``.
        aggregate: result name -> aggregation (``{"n": Count(), "avg": Mean("temp")}``).
        key: the record field to group by (its value as text; strings and integers), or None
            for one global group.
        time: the record field holding the event time (ISO-8601 text, naive meaning UTC, or a
            number of ``time_unit`` since the Unix epoch); None: the record's stream timestamp.
        time_unit: unit of numeric times: ``s`` (default), ``ms`` or ``us``.
        allowed_lateness: how far behind the newest event time a record may be and still be
            counted: the watermark is the (per-partition minimum of the) newest event time
            minus this.
        idle_timeout: a caught-up partition that received nothing for this long no longer holds
            the watermark back (see :mod:`lakekit.streaming.watermark`).
        late: the side output for late and invalid records; default: a stream named
            ``<source>_<group>_late``.
        sinks: where results go: at most one :class:`TableSink` (exactly once), any number of
            :class:`StreamSink`, :class:`KeyValueView` and custom sinks.
        early: also emit non-final results of open windows that changed: ``"batch"`` after
            every poll batch, or a duration between emissions. None (default): final results only.
        checkpoint_every: how often to commit (processing time); 0 commits after every batch.
            Each ``run_once`` and ``run`` also commits when it returns.
        batch_size: most records per poll.
        poll_timeout: seconds a poll waits for records.
        on_invalid: ``"side_output"`` (default) or ``"raise"``: an InvalidInputError naming the
            record, before anything of its batch is applied.
        start: where a new group starts reading: ``"earliest"`` or ``"latest"``.

    Raises:
        ConfigurationError: a bad argument (the message says which and why).
        NotSupportedError: the stream's adapter has no consumer groups.
    """

    _thread: threading.Thread | None
    _error: BaseException | None
    _consumer: Consumer | None
    _operator: Operator
    _positions: dict[int, int]
    _payload_key: str | None
    _pending_results: list[ResultColumns]
    _pending_rejected: list[Rejected]
    _closed: bool

    def __init__(
        self,
        lake: Lake,
        source: str | Stream,
        *,
        group: str,
        window: WindowSpec,
        aggregate: Mapping[str, Aggregation],
        key: str | None = None,
        time: str | None = None,
        time_unit: Literal["s", "ms", "us"] = "s",
        allowed_lateness: Duration = 0,
        idle_timeout: Duration = "30s",
        late: Sink | None = None,
        sinks: Sequence[Sink] = (),
        early: Literal["batch"] | Duration | None = None,
        checkpoint_every: Duration = "5s",
        batch_size: int = 10_000,
        poll_timeout: float = 1.0,
        on_invalid: Literal["side_output", "raise"] = "side_output",
        start: Literal["earliest", "latest"] = "earliest",
    ) -> None:
        from lakekit.identifiers import validate_name
        from lakekit.interfaces.stream import Stream

        self.lake = lake
        if isinstance(source, str):
            source = lake.stream(source)
        if not isinstance(source, Stream):
            raise ConfigurationError(f"source must be a stream name or a Stream, got {source!r}")
        require(source.adapter, Capability.CONSUMER_GROUPS)
        self.stream = source
        self.group = _config(validate_name, group, what="consumer group")
        if not isinstance(window, WindowSpec):
            raise ConfigurationError(
                f"window must be Tumbling(...), Hopping(...) or Session(...), got {window!r}"
            )
        self.window = window
        self.key = _field_name(key, "key") if key is not None else None
        self.time = _field_name(time, "time") if time is not None else None
        if time_unit not in ("s", "ms", "us"):
            raise ConfigurationError(f"time_unit must be 's', 'ms' or 'us', got {time_unit!r}")
        self.aggregations = _check_aggregations(aggregate, self.key)
        self.allowed_lateness_us = parse_duration(allowed_lateness, what="allowed_lateness")
        self.idle_timeout_s = parse_duration(idle_timeout, what="idle_timeout") / 1e6
        self.checkpoint_every_s = parse_duration(checkpoint_every, what="checkpoint_every") / 1e6
        self.early = _check_options(early, batch_size, poll_timeout, on_invalid, start)
        self.batch_size = batch_size
        self.poll_timeout = float(poll_timeout)
        self.on_invalid = on_invalid
        self.start_at = start

        names = tuple(self.aggregations)
        self.layout = ResultLayout(
            self.key, names, tuple(result_type(a) for a in self.aggregations.values())
        )
        self._record_layout = RecordLayout(self.key, self.time, time_unit, _field_modes(aggregate))
        self.fingerprint = _fingerprint(window, self.key, self.time, time_unit, self.aggregations)
        self.checkpoints = Checkpoints(lake, self.stream.name, self.group)

        self.table_sink: TableSink | None = None
        self._direct: list[Sink] = []
        self.views: dict[str, KeyValueView] = {}
        self.late = self._bind_sinks(sinks, late)

        self.stats = RunStats()
        self._init_runtime()

    def __repr__(self) -> str:
        return f"WindowedJob({self.stream.name!r}, group={self.group!r}, {self.window!r})"

    def __enter__(self) -> WindowedJob:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- what users read ------------------------------------------------------------------------
    @property
    def watermark(self) -> datetime | None:
        """The current watermark (UTC), None before the job has seen enough input."""
        value = self._watermarks.value
        return None if value is None else from_us(value)

    @property
    def open_windows(self) -> int:
        """(key, window) states currently open."""
        return self._operator.open_windows

    @property
    def running(self) -> bool:
        """True while :meth:`start`'s background thread runs."""
        return self._thread is not None and self._thread.is_alive()

    # -- running --------------------------------------------------------------------------------
    def run_once(self) -> RunStats:
        """Process every record published before the call, commit, and return.

        Windows the watermark has passed are emitted; windows still open stay in the
        checkpoint for the next run.

        Returns:
            What this call did.

        Raises:
            ConfigurationError: the job is running in the background, is closed, or its
                checkpoint was made by a job with other windows, key, time or aggregations.
            InvalidInputError: an invalid record with ``on_invalid="raise"``.
            CommitConflictError: another instance of the job committed meanwhile.
            Errors of the sinks, the stream and the catalog. Whatever fails, the last commit
            stays as it was and the next run resumes from it.
        """
        with self._exclusive():
            before, started = self.stats._copy(), _now()
            try:
                self._open()
                self._connect()
                ends = self.stream.offsets("latest")
                while any(self._positions.get(p, 0) < n for p, n in ends.items()):
                    if not self._step(self.poll_timeout):
                        break
                    self._maybe_commit()
                self._advance()
                self._commit()
            except BaseException:
                self._opened = False  # state past the last commit is discarded: reload
                raise
            finally:
                self._disconnect()
                self.stats.seconds += _now() - started
            return self.stats._since(before)

    def run(self, until: Until = None) -> RunStats:
        """Poll and process continuously until ``until`` (see :data:`Until`) or :meth:`stop`;
        commit every ``checkpoint_every`` and when returning.

        Raises:
            The same as :meth:`run_once`.
        """
        stop_when = _deadline(until)
        with self._exclusive():
            before, started = self.stats._copy(), _now()
            try:
                self._open()
                self._connect()
                while not self._stop.is_set() and not stop_when():
                    self._step(self.poll_timeout)
                    self._maybe_commit()
                self._commit()
            except BaseException:
                self._opened = False
                raise
            finally:
                self._disconnect()
                self._stop.clear()  # a stop() ends this run only
                self.stats.seconds += _now() - started
            return self.stats._since(before)

    def start(self) -> WindowedJob:
        """Run in a background (daemon) thread until :meth:`stop`. Returns the job.

        Raises:
            ConfigurationError: already running, or closed.
        """
        if self._closed:
            raise ConfigurationError(f"{self!r} is closed")
        if self.running:
            raise ConfigurationError(f"{self!r} is already running")
        self._stop.clear()
        self._error = None

        def main() -> None:
            try:
                self.run()
            except BaseException as exc:
                self._error = exc
                _logger.exception("%r failed", self)

        self._thread = threading.Thread(
            target=main, name=f"lakekit-windowed-{self.group}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self, timeout: float = 60.0) -> None:
        """Stop the background thread (or a :meth:`run` in another thread) after its current
        batch and final commit. A no-op when nothing runs.

        Raises:
            LakekitError: the thread did not stop within ``timeout`` seconds.
            Whatever made the background run fail.
        """
        if self._run_lock.locked() or self.running:
            self._stop.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive():
                raise LakekitError(f"{self!r} did not stop within {timeout} s")
            self._thread = None
        error, self._error = self._error, None
        if error is not None:
            raise error

    def close(self) -> None:
        """Stop (if running); the job cannot run again. Views keep their content and keep
        serving until ``view.close()``."""
        if self._closed:
            return
        try:
            self.stop()
        finally:
            self._closed = True

    def reset(self) -> None:
        """Forget the job's progress (checkpoint entry and payloads, and the consumer group's
        offsets) and its in-memory state, so the next run reads from ``start`` again; sinks
        are untouched (a table sink then receives the windows again: empty it first if that is
        not wanted).

        Raises:
            ConfigurationError: the job is running.
        """
        with self._exclusive():
            self.checkpoints.reset()
            start = self.stream.offsets(self.start_at)
            if self.stream.committed(self.group):
                self.stream.adapter.commit(self.group, start)
            self._opened = False
            for view in self.views.values():
                view.load({})

    # -- internals: lifecycle -----------------------------------------------------------------
    def _init_runtime(self) -> None:
        self._run_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = None
        self._error = None
        self._opened = False
        self._closed = False
        self._consumer = None
        self._operator = self._new_operator()
        self._watermarks = self._new_watermarks()
        self._positions = {}
        self._seq = 0
        self._version = 0
        self._payload_key = None
        self._pending_results = []
        self._pending_rejected = []
        self._changed = False
        self._last_commit = _now()
        self._last_early = _now()

    def _bind_sinks(self, sinks: Sequence[Sink], late: Sink | None) -> Sink:
        """Take the result sinks; return the side output."""
        for sink in sinks:
            if not isinstance(sink, Sink):
                raise ConfigurationError(f"sinks must be Sink objects, got {sink!r}")
            sink.bind("results", self.layout, self)
            if isinstance(sink, TableSink):
                if self.table_sink is not None:
                    raise ConfigurationError(
                        "a job takes at most one TableSink (it commits with the checkpoint); "
                        "derive other tables from it with lake.transform(...)"
                    )
                self.table_sink = sink
            else:
                self._direct.append(sink)
            if isinstance(sink, KeyValueView):
                if sink.name in self.views:
                    raise ConfigurationError(f"two key-value views are named {sink.name!r}")
                self.views[sink.name] = sink
        if late is None:
            late = StreamSink(self.lake, _default_late_name(self.stream.name, self.group))
        if not isinstance(late, Sink):
            raise ConfigurationError(f"late must be a Sink (StreamSink, TableSink), got {late!r}")
        late.bind("rejected", ResultLayout(None, (), ()), self)
        return late

    def _exclusive(self) -> _Held:
        if self._closed:
            raise ConfigurationError(f"{self!r} is closed")
        if not self._run_lock.acquire(blocking=False):
            raise ConfigurationError(f"{self!r} is already running")
        return _Held(self._run_lock)

    def _new_operator(self) -> Operator:
        aggregations = list(self.aggregations.values())
        track = self.early is not None
        if isinstance(self.window, Session):
            return SessionOperator(
                self.window, aggregations, keyed=self.key is not None, track_updates=track
            )
        assert isinstance(self.window, _FixedWindows)
        return FixedWindowOperator(
            self.window, aggregations, keyed=self.key is not None, track_updates=track
        )

    def _new_watermarks(self) -> Watermarks:
        return Watermarks(lateness_us=self.allowed_lateness_us, idle_timeout_s=self.idle_timeout_s)

    def _open(self) -> None:
        """Load the last checkpoint (once, or again after a failure) and position the consumer."""
        if self._opened:
            return
        operator, watermarks = self._new_operator(), self._new_watermarks()
        checkpoint = self.checkpoints.load()
        views: dict[str, Any] = {}
        offsets: dict[int, int] = {}
        if checkpoint is not None:
            if checkpoint.fingerprint != self.fingerprint:
                raise ConfigurationError(
                    f"the checkpoint of group {self.group!r} on {self.stream.name!r} was made by "
                    "a job with other windows, key, time or aggregations; use another group, or "
                    "job.reset() to start over"
                )
            payload = checkpoint.payload
            operator.restore(payload.get("windows"))
            watermarks.restore(payload.get("watermark"))
            views = dict(payload.get("views") or {})
            offsets = checkpoint.offsets
            self._seq, self._version = checkpoint.seq, checkpoint.version
            self._payload_key = checkpoint.payload_key
        else:
            self._seq, self._version, self._payload_key = 0, 0, None
        self.checkpoints.collect_garbage(self._payload_key)
        for name, view in self.views.items():
            view.load(views.get(name) or {})
        stream = self.stream
        committed = stream.committed(self.group)
        fallback = stream.offsets(self.start_at)
        self._positions = {
            p: offsets.get(p, committed.get(p, fallback.get(p, 0))) for p in stream.partitions()
        }
        self._operator, self._watermarks = operator, watermarks
        self._pending_results, self._pending_rejected = [], []
        self._changed = checkpoint is None  # a first commit pins every partition's start
        self._last_commit = self._last_early = _now()
        self._opened = True

    def _connect(self) -> None:
        """Join the consumer group for one run (a job between runs holds no partitions)."""
        self._consumer = self.stream.consumer(self.group, start=self.start_at)
        self._consumer.seek(self._positions)

    def _disconnect(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            consumer.close()

    # -- internals: one step ------------------------------------------------------------------
    def _step(self, timeout: float) -> bool:
        """Poll once, process, advance the watermark, emit; True if records came."""
        assert self._consumer is not None
        block = self._consumer.poll_batch(self.batch_size, timeout=timeout)
        if block:
            self._process(block)
        self._advance()
        if block and self.early == "batch":
            self._emit(self._operator.updates())
        elif isinstance(self.early, float):
            now = _now()
            if now - self._last_early >= self.early:
                self._last_early = now
                self._emit(self._operator.updates())
        return bool(block)

    def _process(self, block: RecordBlock) -> None:
        """Fold one polled block into the windows; route its late and invalid records.

        Works on the block's columns: no :class:`Record` is built except for rejected rows.
        """
        done = self._positions
        # a block holds each partition's records in offset order: a run's first offset tells
        # whether any of it was already processed (never, with one member; possible when a
        # rebalance hands a partition back at the group's older committed offset)
        if any(run.first_offset < done.get(run.partition, 0) for run in block.runs):
            block = unseen(block, done)
        read = block.next_offsets
        self.stats.records += len(block)
        self.stats.batches += 1
        if not block:
            return
        decoded = decode_batch(block, self._record_layout)
        if decoded.invalid and self.on_invalid == "raise":
            row, reason = min(decoded.invalid.items())
            record = records_at(block, [row])[row]
            assert self._consumer is not None
            self._consumer.seek(self._positions)  # this batch is not applied
            raise InvalidInputError(
                f"record {self.stream.name}/p{record.partition}:{record.offset}: {reason} "
                "(on_invalid='raise'; use on_invalid='side_output' to route such records to "
                "the side output)"
            )
        table = decoded.table
        late_rows = self._operator.process(table, self._watermarks.value)
        now = _now()
        newest: dict[int, int] = {}
        if table.num_rows:
            grouped = table.group_by(PARTITION, use_threads=False).aggregate([(TIME, "max")])
            seen: list[Any] = grouped.column(PARTITION).to_pylist()
            maxima: list[Any] = grouped.column(f"{TIME}_max").to_pylist()
            newest = dict(zip(seen, maxima, strict=True))
        self._watermarks.observe(newest, read, now)
        self._positions = {**done, **read}
        self._changed = True
        rejected = self._rejected(block, decoded.invalid, late_rows)
        self.stats.invalid += len(decoded.invalid)
        self.stats.late += len(late_rows)
        self.stats.counted += table.num_rows - len(late_rows)
        if rejected:
            if isinstance(self.late, TableSink):
                self._pending_rejected.extend(rejected)
            else:
                self.late.write_rejected(rejected)

    def _rejected(
        self, block: RecordBlock, invalid: Mapping[int, str], late_rows: Sequence[LateRow]
    ) -> list[Rejected]:
        """The side-output rows of a block's invalid and late records (by stream position)."""
        if not invalid and not late_rows:
            return []
        records = records_at(block, [*invalid, *(late.row for late in late_rows)])
        found = [
            Rejected(
                "invalid",
                reason,
                self.stream.name,
                records[row].partition,
                records[row].offset,
                records[row].timestamp,
                records[row].value,
                records[row].key,
            )
            for row, reason in invalid.items()
        ]
        for late in late_rows:
            record = records[late.row]
            found.append(
                Rejected(
                    "late",
                    late.reason,
                    self.stream.name,
                    record.partition,
                    record.offset,
                    record.timestamp,
                    record.value,
                    record.key,
                    from_us(late.event_time),
                )
            )
        found.sort(key=lambda r: (r.partition, r.offset))
        return found

    def _advance(self) -> None:
        """Recompute the watermark and emit the windows it closed."""
        ends = self.stream.offsets("latest")
        backlog = [p for p, n in ends.items() if self._positions.get(p, 0) < n]
        watermark = self._watermarks.advance(backlog, _now())
        if watermark is not None:
            closed = self._operator.close(watermark)
            if len(closed):
                self._changed = True
                self._emit(closed)

    def _emit(self, closed: ResultColumns) -> None:
        """Send results to the sinks that take them: the at-least-once sinks now (as
        :class:`WindowResult` objects, built only for them), the table sink at the next
        commit (by column)."""
        count = len(closed)
        if not count:
            return
        final = closed.final
        if final:
            self.stats.results += count
        else:
            self.stats.updates += count
        direct = [sink for sink in self._direct if final or sink.updates]
        if direct:
            results = closed.results(self.layout.aggregates, self.key)
            for sink in direct:
                sink.write_results(results)
        if self.table_sink is not None and (final or self.table_sink.updates):
            self._pending_results.append(closed)

    # -- internals: commit ----------------------------------------------------------------------
    def _maybe_commit(self) -> None:
        due = _now() - self._last_commit >= self.checkpoint_every_s
        pending = sum(map(len, self._pending_results))
        if (due and self._changed) or pending >= _MAX_PENDING_RESULTS:
            self._commit()

    def _commit(self) -> None:
        """Commit results, checkpoint and offsets together (see the module docstring)."""
        if not self._changed and not self._pending_results and not self._pending_rejected:
            return
        seq = self._seq + 1
        payload: dict[str, JSONValue] = {
            "fingerprint": self.fingerprint,
            "window": self.window.describe(),
            "watermark": self._watermarks.encode(),
            "windows": self._operator.encode(),
            "views": {name: view.dump() for name, view in self.views.items()},
        }
        key = self.checkpoints.write_payload(seq, payload)
        entry = self.checkpoints.entry(seq, self._positions, key, self.fingerprint)
        try:
            if self._pending_rejected:
                self.late.write_rejected(self._pending_rejected)  # idempotent (merge)
            if self.table_sink is not None and self._pending_results:
                version = self._version
                self.table_sink.write_columns(
                    self._pending_results,
                    set_state={self.checkpoints.state_key: entry},
                    precondition=lambda: self.checkpoints.unchanged_since(version),
                )
                self._version = self.checkpoints.confirm(seq)
            else:
                self._version = self.checkpoints.commit(entry, self._version)
        except BaseException:
            self.checkpoints.discard(key)
            raise
        if self._payload_key is not None:
            self.checkpoints.discard(self._payload_key)
        self._payload_key, self._seq = key, seq
        self._pending_results, self._pending_rejected = [], []
        self._changed = False
        self._last_commit = _now()
        self.stats.commits += 1
        try:  # monitoring only (consumer lag, retention): the checkpoint is the truth
            self.stream.adapter.commit(self.group, dict(self._positions))
        except LakekitError as exc:
            _logger.warning("%r: could not commit the group's offsets: %s", self, exc)


class _Held:
    """Releases a lock acquired by :meth:`WindowedJob._exclusive` at the end of a with block."""

    def __init__(self, lock: threading.Lock) -> None:
        self._lock = lock

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        self._lock.release()


def _now() -> float:
    return time.monotonic()


def _deadline(until: Until) -> Callable[[], bool]:
    if until is None:
        return lambda: False
    if callable(until):
        return until
    if isinstance(until, datetime):
        if until.tzinfo is None:
            raise ConfigurationError("run(until=datetime) needs a timezone-aware datetime")
        from datetime import UTC

        return lambda: datetime.now(UTC) >= until
    seconds = parse_duration(until, what="run(until=...)") / 1e6
    end = _now() + seconds
    return lambda: _now() >= end


def _check_options(
    early: Literal["batch"] | Duration | None,
    batch_size: int,
    poll_timeout: float,
    on_invalid: str,
    start: str,
) -> Literal["batch"] | float | None:
    """Validate the run options; return ``early`` as ``"batch"``, seconds, or None."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigurationError(f"batch_size must be an int >= 1, got {batch_size!r}")
    if isinstance(poll_timeout, bool) or not isinstance(poll_timeout, int | float):
        raise ConfigurationError(f"poll_timeout must be seconds, got {poll_timeout!r}")
    if poll_timeout < 0:
        raise ConfigurationError(f"poll_timeout must be >= 0, got {poll_timeout!r}")
    if on_invalid not in ("side_output", "raise"):
        raise ConfigurationError(f"on_invalid must be 'side_output' or 'raise', got {on_invalid!r}")
    if start not in ("earliest", "latest"):
        raise ConfigurationError(f"start must be 'earliest' or 'latest', got {start!r}")
    if early is None:
        return None
    if early == "batch":
        return "batch"
    return parse_duration(early, what="early") / 1e6


def _config(check: Callable[..., str], value: Any, *, what: str) -> str:
    try:
        return check(value, what=what)
    except InvalidInputError as exc:
        raise ConfigurationError(str(exc)) from exc


def _field_name(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigurationError(f"{what} must be a record field name (a non-empty str)")
    if value.startswith("__"):
        raise ConfigurationError(f"{what} field {value!r}: names starting with '__' are reserved")
    return value


def _check_aggregations(
    aggregate: Mapping[str, Aggregation], key: str | None
) -> dict[str, Aggregation]:
    if not isinstance(aggregate, Mapping) or not aggregate:
        raise ConfigurationError(
            "aggregate must map result names to aggregations, e.g. {'n': Count()}"
        )
    taken = {c.casefold(): c for c in _RESERVED_COLUMNS}
    if key is not None:
        taken[key.casefold()] = key
    checked: dict[str, Aggregation] = {}
    for name, aggregation in aggregate.items():
        if not isinstance(name, str) or not name:
            raise ConfigurationError(f"aggregate names must be non-empty strings, got {name!r}")
        if name.casefold() in taken:
            raise ConfigurationError(
                f"aggregate name {name!r} collides with the result column "
                f"{taken[name.casefold()]!r}; choose another name"
            )
        if not isinstance(aggregation, Aggregation):
            raise ConfigurationError(
                f"aggregate {name!r} must be an Aggregation (Count(), Mean('f'), ...), got "
                f"{aggregation!r}"
            )
        if aggregation.column is not None:
            _field_name(aggregation.column, f"aggregate {name!r} column")
        aggregation.partials()  # a custom aggregation without a column fails here
        taken[name.casefold()] = name
        checked[name] = aggregation
    return checked


def _field_modes(aggregate: Mapping[str, Aggregation]) -> dict[str, FieldMode]:
    from lakekit.streaming.aggregations import Max, Min

    rank = {"raw": 0, "scalar": 1, "number": 2}
    modes: dict[str, FieldMode] = {}
    for aggregation in aggregate.values():
        column = aggregation.column
        if column is None:
            continue
        mode: FieldMode = "raw"
        if aggregation.numeric:
            mode = "number"
        elif isinstance(aggregation, Min | Max):
            mode = "scalar"
        if column not in modes or rank[mode] > rank[modes[column]]:
            modes[column] = mode
    return modes


def _fingerprint(
    window: WindowSpec,
    key: str | None,
    time_field: str | None,
    time_unit: str,
    aggregations: Mapping[str, Aggregation],
) -> str:
    text = json.dumps(
        [window.describe(), key, time_field, time_unit,
         [[name, a.describe()] for name, a in aggregations.items()]],
        separators=(",", ":"),
    )  # fmt: skip
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]


def _default_late_name(stream: str, group: str) -> str:
    from lakekit.identifiers import validate_name

    name = f"{stream}_{group}_late"
    try:
        return validate_name(name, what="side-output stream name")
    except InvalidInputError as exc:
        raise ConfigurationError(
            f"the default side output {name!r} is not a valid stream name; pass "
            "late=StreamSink(lake, '<name>')"
        ) from exc
