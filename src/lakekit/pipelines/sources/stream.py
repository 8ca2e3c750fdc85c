"""``StreamSource``: load the records of a lakekit :class:`~lakekit.interfaces.stream.Stream`
into a table, each record exactly once.

Exactly-once design. The source of truth for progress is the **pipeline state**, not the
stream's consumer-group store: every batch carries ``{"offsets": {"<partition>": next_offset}}``
for *all* partitions, and the pipeline commits that entry in the same atomic step as the table
snapshot holding the batch's rows. A run starts from those offsets, so the rows in the table and
the offsets in the state always describe the same prefix of every partition, whatever moment a
crash (``kill -9`` included) hits.

The consumer group is only told afterwards: at the start of the next ``read`` the group's
committed offsets are moved forward to the state's offsets (best effort), so that monitoring
(consumer lag) and retention see the pipeline's progress. A process that dies between the table
commit and that group commit leaves the group *behind* the table; that is harmless because the
next run seeks to the state's offsets and ignores the group's (it only moves the group forward
again). The group is only consulted for partitions the state does not name yet, i.e. before the
first commit of a pipeline: the first batch then pins every partition's start in the state, so
a re-run after a crash before any commit starts from the same group offsets again (the group is
never advanced beyond the committed state by this source).

The group should belong to this pipeline alone: another active member of it may hold some
partitions (adapters with real membership), which this source then does not read in that run.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from lakekit.capabilities import Capability, require
from lakekit.errors import ConfigurationError, InvalidInputError, LakekitError
from lakekit.pipelines.source import RawItem, Source, SourceBatch, SourceState

if TYPE_CHECKING:
    import pyarrow as pa

    from lakekit.interfaces.catalog import JSONValue
    from lakekit.interfaces.stream import Record, Stream

__all__ = ["METADATA_COLUMNS", "OFFSET_DIGITS", "Decoder", "StreamSource"]

_logger = logging.getLogger(__name__)

Decoder = Callable[["Record"], Mapping[str, Any] | None]
"""Turns one record into one row (column -> value), or None to skip the record."""

METADATA_COLUMNS = ("_stream_partition", "_stream_offset", "_stream_timestamp")
"""Columns added to every row: the record's partition (int32), offset and timestamp
(``timestamp[us, UTC]``). Partition + offset identify a record uniquely within the stream.

The offset is an int64 for streams with dense offsets (the local stream). Streams whose offsets
are the backend's sequence numbers (``StreamAdapter.dense_offsets = False``: Kinesis, whose
offsets run to ~200 bits) get it as decimal text zero-padded to :data:`OFFSET_DIGITS` digits,
so that sorting the column as text orders records as their offsets do."""

OFFSET_DIGITS = 78
"""Digits of a text ``_stream_offset``: enough for any 256-bit offset."""

_STATE_KEY = "offsets"


class StreamSource(Source):
    """The records of a stream, read for a consumer group, in batches of up to ``max_records``.

    Guarantees:
        * **Exactly once** with the pipeline's atomic commit (see the module docstring): the
          state ``offsets`` entry is the next offset to read per partition, committed with the
          rows; a resumed run seeks there. The consumer group's offsets are advanced to the
          committed state at the start of the next read, best effort (a failure is logged, the
          run goes on), so they lag the table by at most one run and never lead it.
        * **Ordered per partition**: a partition's records appear in offset order and batches
          follow each other in offset order; partitions are interleaved.
        * **Bounded runs** (``stop_at_end=True``): a run reads up to the end of each partition
          as of its start (records published meanwhile may be included) and then stops; it
          also stops when ``poll_timeout`` passes without a record (e.g. a partition held by
          another member of the group). With ``stop_at_end=False`` it polls forever, yielding
          each non-empty poll (and an empty batch, holding the state unchanged, after each
          idle poll); the pipeline then commits every ``batch_rows`` rows or, with
          ``Pipeline.run(commit_every=seconds)``, at least every ``commit_every`` seconds:
          micro-batches whose latency is bounded even without traffic. Stop the process (or
          close the run's generator) to end the run.
        * Records whose offset is below the earliest retained offset are gone (retention): the
          run goes on from the earliest retained record.

    Decoding (``decode``):
        * ``"json"``: each value is a UTF-8 JSON object; its keys become columns
          (``pa.Table.from_pylist``, nested objects become structs; with ``schema``, its
          columns, keys it does not name being dropped). A
          value that is not a JSON object raises :class:`InvalidInputError` naming the
          partition and offset, before the batch is yielded (nothing of it is committed). The
          raw item of a batch is its values as NDJSON.
        * ``"raw"``: columns ``key`` and ``value`` (binary).
        * a callable ``decode(record) -> mapping | None``: one row per record, None skips the
          record (its offset still advances with the next non-empty batch).

        Every row also gets :data:`METADATA_COLUMNS`.

    Args:
        stream: the stream (``lake.stream(name)``); its adapter needs ``CONSUMER_GROUPS``.
        group: the consumer group (a portable identifier) this pipeline owns.
        decode: ``"json"``, ``"raw"`` or a callable (above).
        max_records: most records per batch (one poll).
        poll_timeout: seconds a poll waits for records when the source is not caught up (or,
            with ``stop_at_end=False``, at all).
        stop_at_end: stop once caught up (see above); False polls forever.
        schema: Arrow schema of the decoded columns (without the metadata columns), instead of
            inferring it per batch.

    Raises:
        ConfigurationError: a bad argument.
        InvalidInputError: ``group`` is not a portable identifier.
        NotSupportedError: the stream's adapter has no consumer groups.
    """

    kind: ClassVar[str] = "stream"

    def __init__(
        self,
        stream: Stream,
        *,
        group: str,
        decode: Literal["json", "raw"] | Decoder = "json",
        max_records: int = 10_000,
        poll_timeout: float = 1.0,
        stop_at_end: bool = True,
        schema: pa.Schema | None = None,
    ) -> None:
        from lakekit.identifiers import validate_name
        from lakekit.interfaces.stream import Stream

        if not isinstance(stream, Stream):
            raise ConfigurationError(
                f"StreamSource needs a lakekit Stream (lake.stream(name)), got {type(stream)}"
            )
        if not (decode in ("json", "raw") or callable(decode)):
            raise ConfigurationError(f"decode must be 'json', 'raw' or a callable, got {decode!r}")
        if isinstance(max_records, bool) or not isinstance(max_records, int) or max_records < 1:
            raise ConfigurationError(f"max_records must be an int >= 1, got {max_records!r}")
        if not isinstance(poll_timeout, int | float) or poll_timeout < 0:
            raise ConfigurationError(f"poll_timeout must be >= 0 seconds, got {poll_timeout!r}")
        if schema is not None and decode == "raw":
            raise ConfigurationError("schema= applies to decode='json' or a callable, not 'raw'")
        require(stream.adapter, Capability.CONSUMER_GROUPS)
        self.stream = stream
        self.group = validate_name(group, what="consumer group")
        self.decode = decode
        self.max_records = max_records
        self.poll_timeout = float(poll_timeout)
        self.stop_at_end = stop_at_end
        self.schema = schema
        self._stopping = threading.Event()

    def stop(self) -> None:
        """End a running :meth:`read` after its current poll (thread-safe): a continuous
        pipeline run then commits what it holds and returns. The next ``read`` runs again."""
        self._stopping.set()

    def describe(self) -> str:
        return f"stream {self.stream.name!r} (group {self.group!r})"

    def read(self, state: SourceState) -> Iterator[SourceBatch]:
        """Yield batches of records after the committed ``state`` (see the class docstring).

        Raises:
            InvalidInputError: a malformed state entry, or a record ``decode`` rejects.
            Whatever the stream adapter raises (lakekit errors).
        """
        stream = self.stream
        saved = _saved_offsets(state.get(_STATE_KEY))
        self._advance_group(saved)
        committed = stream.committed(self.group)
        earliest = stream.offsets("earliest")
        end = stream.offsets("latest")
        positions = {
            p: saved.get(p, committed.get(p, earliest.get(p, 0))) for p in stream.partitions()
        }
        consumer = stream.consumer(self.group, start="earliest")
        self._stopping.clear()
        try:
            while not self._stopping.is_set():
                if self.stop_at_end and all(positions.get(p, 0) >= n for p, n in end.items()):
                    return
                consumer.seek(positions)  # our positions, whatever the consumer held before
                records = consumer.poll(self.max_records, timeout=self.poll_timeout)
                if not records:
                    if self.stop_at_end:
                        return
                    yield self._idle(positions)  # lets the pipeline's commit_every bound hold
                    continue
                fresh = []
                for record in records:
                    if record.offset >= positions.get(record.partition, 0):
                        fresh.append(record)
                        positions[record.partition] = record.offset + 1
                batch = self._batch(fresh, positions)
                if batch is not None:
                    yield batch
        finally:
            consumer.close()

    # -- internals ------------------------------------------------------------------------------
    def _advance_group(self, saved: Mapping[int, int]) -> None:
        """Move the group's committed offsets forward to the pipeline's state (best effort)."""
        try:
            committed = self.stream.committed(self.group)
            ahead = {p: n for p, n in saved.items() if n > committed.get(p, -1)}
            if ahead:
                self.stream.adapter.commit(self.group, ahead)
        except LakekitError as exc:  # monitoring only: the pipeline state is the truth
            _logger.warning(
                "%s: could not advance the group's committed offsets: %s", self.describe(), exc
            )

    def _batch(self, records: list[Record], positions: Mapping[int, int]) -> SourceBatch | None:
        import pyarrow as pa

        rows: list[Mapping[str, Any]] = []
        kept: list[Record] = []
        for record in records:
            row = self._decode(record)
            if row is not None:
                rows.append(row)
                kept.append(record)
        if not kept:
            return None  # all skipped: their offsets advance with the next non-empty batch
        origins = tuple(f"{self.stream.name}/p{r.partition}:{r.offset}" for r in kept)
        try:
            if self.decode == "raw":
                data = pa.table(
                    {
                        "key": pa.array([r["key"] for r in rows], pa.binary()),
                        "value": pa.array([r["value"] for r in rows], pa.binary()),
                    }
                )
            else:
                data = pa.Table.from_pylist(list(rows), schema=self.schema)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise InvalidInputError(
                f"{self.describe()}: records {origins[0]}..{origins[-1]} do not fit "
                f"{'the given schema' if self.schema is not None else 'one Arrow schema'}: {exc}"
            ) from exc
        for name in METADATA_COLUMNS:
            if name in data.column_names:
                raise InvalidInputError(
                    f"{self.describe()}: record {origins[0]} has a column {name!r}, which is "
                    "reserved for stream metadata"
                )
        data = data.append_column(
            "_stream_partition", pa.array([r.partition for r in kept], pa.int32())
        )
        offsets: pa.Array[Any] = (
            pa.array([r.offset for r in kept], pa.int64())
            if self.stream.adapter.dense_offsets
            else pa.array([f"{r.offset:0{OFFSET_DIGITS}d}" for r in kept], pa.string())
        )
        data = data.append_column("_stream_offset", offsets)
        data = data.append_column(
            "_stream_timestamp",
            pa.array([r.timestamp for r in kept], pa.timestamp("us", tz="UTC")),
        )
        state = _state(positions)
        raw = None
        if self.decode == "json":
            raw = RawItem(b"".join(r.value + b"\n" for r in kept), ".ndjson")
        origin = f"{self.stream.name} " + " ".join(_spans(kept))
        return SourceBatch(data, state=state, raw=raw, origin=origin, row_origins=origins)

    def _idle(self, positions: Mapping[int, int]) -> SourceBatch:
        """A batch without rows or columns, for an idle poll: it holds the state unchanged."""
        import pyarrow as pa

        return SourceBatch(pa.table({}), state=_state(positions), origin=self.describe())

    def _decode(self, record: Record) -> Mapping[str, Any] | None:
        where = f"{self.describe()}: record {self.stream.name}/p{record.partition}:{record.offset}"
        if self.decode == "raw":
            return {"key": record.key, "value": record.value}
        if self.decode == "json":
            try:
                value = record.json()
            except ValueError as exc:
                raise InvalidInputError(
                    f"{where} is not UTF-8 JSON ({exc}); use decode='raw' or a callable"
                ) from exc
            if not isinstance(value, dict):
                raise InvalidInputError(
                    f"{where} is a JSON {type(value).__name__}, not an object; use decode='raw' "
                    "or a callable"
                )
            return value
        assert callable(self.decode)
        row = self.decode(record)
        if row is not None and not isinstance(row, Mapping):
            raise InvalidInputError(
                f"{where}: decode returned {type(row).__name__}, not a mapping or None"
            )
        return row


def _state(positions: Mapping[int, int]) -> dict[str, JSONValue]:
    return {_STATE_KEY: {str(p): n for p, n in sorted(positions.items())}}


def _saved_offsets(value: Any) -> dict[int, int]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInputError(
            f"pipeline state 'offsets' must map partitions to offsets, got {value!r}"
        )
    offsets: dict[int, int] = {}
    for key, offset in value.items():
        try:
            partition = int(key)
        except (TypeError, ValueError):
            partition = -1
        if partition < 0 or isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            raise InvalidInputError(
                f"pipeline state 'offsets' has a bad entry {key!r}: {offset!r} (expected "
                "'<partition>': <next offset>)"
            )
        offsets[partition] = offset
    return offsets


def _spans(records: list[Record]) -> list[str]:
    """``p0:10-19`` per partition of a batch."""
    spans: dict[int, tuple[int, int]] = {}
    for r in records:
        low, high = spans.get(r.partition, (r.offset, r.offset))
        spans[r.partition] = (min(low, r.offset), max(high, r.offset))
    return [f"p{p}:{low}-{high}" for p, (low, high) in sorted(spans.items())]
