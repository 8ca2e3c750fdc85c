"""What a windowed job emits: window results, and the records it could not count.

* :class:`WindowResult`: one window of one key: its bounds, the aggregates, and whether it is
  ``final`` (the window closed) or an early update of an open window. Its :attr:`~WindowResult.id`
  (``key|start|end``) is deterministic, so consumers of at-least-once sinks can deduplicate.
* :class:`Rejected`: a record routed to the side output: ``kind`` is ``"late"`` (every window
  it belongs to had closed) or ``"invalid"`` (no usable time or key, not a JSON object, a
  non-number for a numeric aggregation), with a ``reason`` that says which. Its id is the
  record's stream position ``stream/partition/offset``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = [
    "EPOCH",
    "Rejected",
    "ResultColumns",
    "ResultLayout",
    "WindowResult",
    "from_us",
    "rejected_schema",
    "rejected_table",
    "columns_table",
    "results_table",
    "to_iso",
]

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def from_us(micros: int) -> datetime:
    """Microseconds since the Unix epoch as an aware UTC datetime."""
    return EPOCH + timedelta(microseconds=micros)


def to_iso(value: datetime) -> str:
    """ISO-8601 with ``Z`` (``2024-01-01T00:05:00Z``)."""
    return value.isoformat().replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class ResultLayout:
    """The shape of a job's results: the key column's name and the aggregates' names/types."""

    key_field: str | None
    """The key column (the job's ``key``), None for an unkeyed job."""
    aggregates: tuple[str, ...]
    types: tuple[Any, ...]
    """Arrow type per aggregate, None where it is inferred from the values."""

    @property
    def columns(self) -> tuple[str, ...]:
        key = (self.key_field,) if self.key_field else ()
        return (*key, "window_start", "window_end", *self.aggregates, "final")


@dataclass(frozen=True, slots=True)
class WindowResult:
    """The aggregates of one window of one key."""

    key: str | None
    """The key's value as text (None for an unkeyed job)."""
    start: datetime
    end: datetime
    values: dict[str, Any]
    """Aggregate name -> result."""
    final: bool
    """True once the window has closed; False for an early update of an open window."""
    key_field: str | None = field(default=None, compare=False)

    @property
    def id(self) -> str:
        """``key|start|end``: the same for every emission of this window (updates and final)."""
        return f"{self.view_key}|{to_iso(self.start)}|{to_iso(self.end)}"

    @property
    def view_key(self) -> str:
        """The key under which a key-value view stores this result (``*`` when unkeyed)."""
        return self.key if self.key is not None else "*"

    def as_json(self) -> dict[str, Any]:
        """A JSON object: ``id``, the key field, ``window_start``/``window_end`` (ISO-8601),
        the aggregates (non-finite floats as null) and ``final``."""
        data: dict[str, Any] = {"id": self.id}
        if self.key_field is not None:
            data[self.key_field] = self.key
        data["window_start"] = to_iso(self.start)
        data["window_end"] = to_iso(self.end)
        for name, value in self.values.items():
            data[name] = _finite(value)
        data["final"] = self.final
        return data


@dataclass(slots=True)
class ResultColumns:
    """Window results by column (times in µs since the epoch): what a job's window operator
    emits when windows close or update. :class:`WindowResult` objects are built from it only
    for the sinks that take them one by one (:meth:`results`); the table sink appends the
    columns as they are (:func:`columns_table`)."""

    keys: list[str | None]
    starts: list[int]
    ends: list[int]
    values: list[list[Any]]
    """Per aggregate (in the job's order), one result per window."""
    final: bool

    def __len__(self) -> int:
        return len(self.keys)

    def results(self, names: Sequence[str], key_field: str | None) -> list[WindowResult]:
        """The windows as :class:`WindowResult` objects, in order (``names``: the aggregates')."""
        times: dict[int, datetime] = {}  # windows closing together share their bounds

        def at(micros: int) -> datetime:
            found = times.get(micros)
            if found is None:
                found = times[micros] = from_us(micros)
            return found

        rows = zip(*self.values, strict=True) if self.values else ((),) * len(self.keys)
        final = self.final
        return [
            WindowResult(
                key, at(start), at(end), dict(zip(names, row, strict=True)), final, key_field
            )
            for key, start, end, row in zip(self.keys, self.starts, self.ends, rows, strict=True)
        ]


@dataclass(frozen=True, slots=True)
class Rejected:
    """A record the job did not count, and why."""

    kind: Literal["late", "invalid"]
    reason: str
    stream: str
    partition: int
    offset: int
    timestamp: datetime
    """The record's stream timestamp."""
    value: bytes
    key: bytes | None = None
    event_time: datetime | None = None
    """The event time read from the record, when it had one."""

    @property
    def id(self) -> str:
        return f"{self.stream}/{self.partition}/{self.offset}"

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "reason": self.reason,
            "stream": self.stream,
            "partition": self.partition,
            "offset": self.offset,
            "record_timestamp": to_iso(self.timestamp),
            "event_time": None if self.event_time is None else to_iso(self.event_time),
            "key": None if self.key is None else self.key.decode("utf-8", "replace"),
            "value": self.value.decode("utf-8", "replace"),
        }


def rejected_schema() -> pa.Schema:
    """The table-sink schema of side-output rows."""
    import pyarrow as pa

    ts = pa.timestamp("us", tz="UTC")
    fields: list[pa.Field[Any]] = [
        pa.field("kind", pa.string(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("stream", pa.string(), nullable=False),
        pa.field("partition", pa.int32(), nullable=False),
        pa.field("offset", pa.int64(), nullable=False),
        pa.field("record_timestamp", ts, nullable=False),
        pa.field("event_time", ts),
        pa.field("key", pa.string()),
        pa.field("value", pa.string(), nullable=False),
    ]
    return pa.schema(fields)


def rejected_table(rows: Sequence[Rejected]) -> pa.Table:
    import pyarrow as pa

    data = [r.as_json() for r in rows]
    for row, rejected in zip(data, rows, strict=True):
        row["record_timestamp"] = rejected.timestamp
        row["event_time"] = rejected.event_time
        del row["id"]
    return pa.Table.from_pylist(data, schema=rejected_schema())


def results_table(
    rows: Sequence[WindowResult], layout: ResultLayout, known: pa.Schema | None
) -> pa.Table:
    """Results as an Arrow table; inferred aggregate types follow ``known`` (the sink table's
    schema) where it has the column."""
    return _table(
        [r.key for r in rows],
        [_us(r.start) for r in rows],
        [_us(r.end) for r in rows],
        [[r.values.get(name) for r in rows] for name in layout.aggregates],
        [r.final for r in rows],
        layout,
        known,
    )


def columns_table(
    batches: Sequence[ResultColumns], layout: ResultLayout, known: pa.Schema | None
) -> pa.Table:
    """:func:`results_table` of the results held in ``batches``, in order, without a Python
    object per result."""
    count = len(layout.aggregates)
    values: list[list[Any]] = [[] for _ in range(count)]
    keys: list[str | None] = []
    starts: list[int] = []
    ends: list[int] = []
    finals: list[bool] = []
    for batch in batches:
        keys += batch.keys
        starts += batch.starts
        ends += batch.ends
        finals += [batch.final] * len(batch)
        for column, part in zip(values, batch.values, strict=True):
            column.extend(part)
    return _table(keys, starts, ends, values, finals, layout, known)


def _table(  # noqa: PLR0917 - one positional argument per column
    keys: list[str | None],
    starts: list[int],
    ends: list[int],
    values: list[list[Any]],
    finals: list[bool],
    layout: ResultLayout,
    known: pa.Schema | None,
) -> pa.Table:
    import pyarrow as pa

    ts = pa.timestamp("us", tz="UTC")
    columns: dict[str, pa.Array[Any]] = {}
    if layout.key_field is not None:
        columns[layout.key_field] = pa.array(keys, pa.string())
    columns["window_start"] = pa.array(starts, pa.int64()).cast(ts)
    columns["window_end"] = pa.array(ends, pa.int64()).cast(ts)
    for name, declared, column in zip(layout.aggregates, layout.types, values, strict=True):
        kind = declared
        if kind is None and known is not None and name in known.names:
            kind = known.field(name).type
        columns[name] = _finite_array(column, kind)
    columns["final"] = pa.array(finals, pa.bool_())
    return pa.table(columns)


def _finite_array(values: list[Any], kind: pa.DataType | None) -> pa.Array[Any]:
    """``values`` as an Arrow array of ``kind`` (inferred when None; float64 when every value
    is null), non-finite floats made null."""
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        if kind is None and values.count(None) == len(values):
            kind = pa.float64()  # nothing to infer from: the common case of numeric extremes
        array = pa.array(values) if kind is None else pa.array(values, kind)
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # a non-finite float among other kinds
        values = [_finite(v) for v in values]
        if kind is None and values.count(None) == len(values):
            kind = pa.float64()
        return pa.array(values) if kind is None else pa.array(values, kind)
    if pa.types.is_floating(array.type):
        finite = pc.is_finite(array)
        if not pc.all(finite).as_py():
            array = pc.if_else(finite, array, pa.scalar(None, array.type))
    return array


def _us(value: datetime) -> int:
    return (value - EPOCH) // timedelta(microseconds=1)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
