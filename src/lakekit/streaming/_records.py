"""Turning one poll batch of JSON records into an Arrow table, vectorised, and finding the
records that cannot be counted.

A batch is a :class:`~lakekit.interfaces.stream.RecordBlock` (what ``Consumer.poll_batch``
returns): its columns are used as they are (``values``, each run's partition and offsets, the
timestamps only when they are the event time), and a :class:`Record` object is built only for
a row that needs one (:func:`records_at`: a rejected record, the slow path).

Fast path: the batch's values are joined into NDJSON and parsed by **one**
``pyarrow.json.read_json`` call; the key, event time and value columns are then checked and
converted with Arrow kernels. The fast path is taken only when the joined text proves that row
``i`` of pyarrow's table is value ``i`` (:func:`_aligned`). A batch that pyarrow cannot parse
as one table (a value that is not exactly one JSON object, a field whose JSON type changes
between records, a value holding a raw newline or surrounding whitespace) takes the slow path:
each record is decoded with :func:`json.loads` and checked on its own, so one bad record never
hides the others.
"""

from __future__ import annotations

import io
import json
import math
from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import pyarrow as pa

    from lakekit.interfaces.stream import Record, RecordBlock

__all__ = [
    "Decoded",
    "FieldMode",
    "RecordLayout",
    "as_block",
    "decode_batch",
    "parse_time",
    "records_at",
    "unseen",
]

FieldMode = Literal["number", "scalar", "raw"]
"""How a value field is read: ``number`` (must be a JSON number: float64), ``scalar`` (numbers
as float64, strings, booleans), ``raw`` (as pyarrow infers it; timestamps as text)."""

ROW = "__row"
TIME = "__time"
PARTITION = "__partition"
KEY = "__key"
_UNIT_US = {"s": 1_000_000, "ms": 1_000, "us": 1}
_MICROSECOND = timedelta(microseconds=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MIN_US = (datetime(2, 1, 1, tzinfo=UTC) - _EPOCH) // _MICROSECOND
_MAX_US = (datetime(9999, 1, 1, tzinfo=UTC) - _EPOCH) // _MICROSECOND - 1
"""Event times are kept within years 2..9998, so that every window around them (up to a year
long) has bounds a ``datetime`` can hold."""


@dataclass(frozen=True, slots=True)
class RecordLayout:
    """Which record fields a job reads, and how."""

    key_field: str | None
    time_field: str | None
    """None: the record's stream timestamp is the event time."""
    time_unit: Literal["s", "ms", "us"]
    fields: Mapping[str, FieldMode]
    """Value fields the aggregations read."""


@dataclass(slots=True)
class Decoded:
    """A batch as Arrow: ``__row`` (index into the batch), ``__time`` (µs), ``__partition``,
    ``__key`` (text, when keyed) and the value fields; plus the rows that are invalid."""

    table: pa.Table
    invalid: dict[int, str]
    """Row index -> reason, for records that are not in ``table``."""


def decode_batch(batch: RecordBlock | Sequence[Record], layout: RecordLayout) -> Decoded:
    """Decode a batch (see the module docstring): a :class:`RecordBlock`, or a list of
    records (made into one). Row ``i`` of the result is the batch's ``i``-th record. Never
    raises for bad record content."""
    import pyarrow as pa
    import pyarrow.json as pj

    block = as_block(batch)
    values = block.values
    count = len(values)
    data = b"\n".join(values)
    parsed: pa.Table | None = None
    if count and _aligned(data, count):
        try:
            parsed = pj.read_json(
                io.BytesIO(data),
                read_options=pj.ReadOptions(block_size=max(len(data) + 1, 1 << 16)),
            )
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            parsed = None
        if parsed is not None and parsed.num_rows != count:  # two objects in one value
            parsed = None
    if parsed is not None:
        decoded = _fast(block, parsed, layout)
        if decoded is not None:
            return decoded
    return _slow(block.records(), layout)


def _aligned(data: bytes, count: int) -> bool:
    """Whether NDJSON ``data`` (``count`` values joined by newlines) can only parse to one row
    per value, in order, when pyarrow parses it to ``count`` rows.

    True when every value starts with ``{``, ends with ``}`` and holds no raw newline: every
    newline of ``data`` is a separator, between ``}`` and ``{``. Then no value is blank (which
    pyarrow would skip), and no parsed object can span two values: raw newlines are invalid
    inside JSON strings, and after a ``}`` that closes a nested object JSON allows only ``,``,
    ``}`` or ``]``, never the ``{`` that follows each separator, so such text fails to parse.
    A value holding two objects yields one row too many, which the caller's row count
    catches. (Values that are valid JSON but do not pass, such as ones with surrounding
    whitespace, are decoded by the slow path.)
    """
    separators = count - 1
    return (
        data[:1] == b"{"
        and data[-1:] == b"}"
        and data.count(b"\n") == separators
        and data.count(b"}\n{") == separators
    )


def as_block(batch: RecordBlock | Sequence[Record]) -> RecordBlock:
    """``batch`` as a :class:`RecordBlock` (a list of records becomes one, run by partition)."""
    from lakekit.interfaces.stream import RecordBlock

    if isinstance(batch, RecordBlock):
        return batch
    records = list(batch)
    return RecordBlock.from_records(records[0].stream if records else "", records)


def unseen(block: RecordBlock, positions: Mapping[int, int]) -> RecordBlock:
    """The records of ``block`` at or after ``positions[partition]`` (0 where absent).

    Each run holds increasing offsets of one partition, so what is kept of a run is a suffix;
    runs that are kept whole are reused as they are.
    """
    from lakekit.interfaces.stream import RecordBlock, RecordRun

    runs: list[RecordRun] = []
    for run in block.runs:
        start = positions.get(run.partition, 0)
        if run.first_offset >= start:
            runs.append(run)
        elif run.next_offset > start:
            cut = bisect_left(run.offsets, start)
            runs.append(
                RecordRun(
                    run.partition,
                    run.offsets[cut:],
                    run.values[cut:],
                    run.timestamps[cut:],
                    run.keys[cut:],
                    run.headers[cut:],
                )
            )
    return RecordBlock(block.stream, runs)


def records_at(block: RecordBlock, rows: Iterable[int]) -> dict[int, Record]:
    """Row index -> :class:`Record`, for the given rows of ``block`` only.

    The columns of a run are fetched once for all its requested rows; runs without one are not
    touched, so a few rejected records of a large batch cost a few objects.
    """
    from lakekit.interfaces.stream import Record

    wanted = sorted(set(rows))
    found: dict[int, Record] = {}
    if not wanted:
        return found
    stream = block.stream
    first = 0
    at = 0
    for run in block.runs:
        end = first + len(run)
        if at < len(wanted) and wanted[at] < end:
            offsets, values = run.offsets, run.values
            stamps, keys, headers = run.timestamps, run.keys, run.headers
            while at < len(wanted) and wanted[at] < end:
                row = wanted[at]
                i = row - first
                found[row] = Record(
                    stream, run.partition, offsets[i], stamps[i], values[i], keys[i], headers[i]
                )
                at += 1
        first = end
    return found


def _row_numbers(count: int) -> Any:
    """``0 .. count - 1`` as an int64 Array (built in C: ``pa.array(range(n))`` converts each
    Python int)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    ones = pa.repeat(pa.scalar(1, pa.int64()), count)
    return pc.subtract(pc.cumulative_sum(ones), pa.scalar(1, pa.int64()))


_FEW_RUNS = 64
"""Up to this many runs, the partition column is built as one repeated value per run (no
Python int per row); beyond (a producer that publishes one record per call makes one run
per record), from the block's ``partitions`` list."""


def _partition_column(block: RecordBlock) -> Any:
    """Each row's partition (int32)."""
    import pyarrow as pa

    runs = block.runs
    if not runs or len(runs) > _FEW_RUNS:
        return pa.array(block.partitions, pa.int32())
    return pa.concat_arrays([pa.repeat(pa.scalar(r.partition, pa.int32()), len(r)) for r in runs])


# -- fast path ------------------------------------------------------------------------------------
class _Checks:
    """Invalid-row masks, combined lazily: rows are rarely invalid."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.masks: list[tuple[Any, str]] = []
        self.explicit: dict[int, str] = {}

    def add(self, mask: Any, reason: str) -> None:
        import pyarrow.compute as pc

        if pc.any(mask).as_py():
            self.masks.append((mask, reason))

    def reasons(self) -> dict[int, str]:
        found: dict[int, str] = dict(self.explicit)
        for mask, reason in self.masks:
            for index, bad in enumerate(mask.to_pylist()):
                if bad and index not in found:
                    found[index] = reason
        return found


def _fast(block: RecordBlock, parsed: pa.Table, layout: RecordLayout) -> Decoded | None:
    """The checked table, or None when the batch needs the slow path."""
    import pyarrow as pa
    import pyarrow.compute as pc

    count = len(block)
    checks = _Checks(count)
    columns: dict[str, Any] = {ROW: _row_numbers(count), PARTITION: _partition_column(block)}

    def column(name: str) -> Any:
        if name in parsed.column_names:
            return parsed.column(name).combine_chunks()
        return pa.nulls(count)

    if layout.time_field is None:
        stamps = pa.array(block.timestamps, pa.timestamp("us", tz="UTC"))
        columns[TIME] = stamps.cast(pa.int64())
    else:
        times = _fast_times(column(layout.time_field), layout, checks)
        if times is None:
            return None
        columns[TIME] = times

    if layout.key_field is not None:
        raw_key = column(layout.key_field)
        kind = raw_key.type
        if pa.types.is_timestamp(kind):
            return None  # pyarrow parsed a key that looks like a time: keep its original text
        if raw_key.null_count:
            checks.add(pc.is_null(raw_key), f"missing key field {layout.key_field!r}")
        if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_integer(kind):
            columns[KEY] = raw_key.cast(pa.string())
        elif pa.types.is_null(kind):
            columns[KEY] = pa.nulls(count, pa.string())
        else:
            checks.add(pc.is_valid(raw_key), _key_type_reason(layout.key_field))
            columns[KEY] = pa.nulls(count, pa.string())

    for name, mode in layout.fields.items():
        converted = _fast_field(name, mode, column(name), checks)
        if converted is None:
            return None
        columns[name] = converted

    table = pa.table(columns)
    invalid = checks.reasons()
    if invalid:
        keep = pa.array([i not in invalid for i in range(count)], pa.bool_())
        table = table.filter(keep)
    return Decoded(table, invalid)


def _fast_times(raw: Any, layout: RecordLayout, checks: _Checks) -> Any:
    """Event times in µs (int64; 0 where invalid), or None for the slow path."""
    import pyarrow as pa
    import pyarrow.compute as pc

    name = layout.time_field
    assert name is not None
    kind = raw.type
    if raw.null_count:
        checks.add(pc.is_null(raw), f"missing time field {name!r}")
    try:
        if pa.types.is_integer(kind):
            micros = pc.multiply_checked(raw.cast(pa.int64()), _UNIT_US[layout.time_unit])
        elif pa.types.is_floating(kind):
            scaled = pc.round(pc.multiply(raw.cast(pa.float64()), _UNIT_US[layout.time_unit]))
            micros = scaled.cast(pa.int64())
        elif pa.types.is_timestamp(kind):
            micros = raw.cast(pa.timestamp("us", tz=kind.tz)).cast(pa.int64())
        elif pa.types.is_string(kind) or pa.types.is_large_string(kind):
            micros = _parse_time_strings(raw.cast(pa.string()), name, checks)
        elif pa.types.is_null(kind):
            micros = pa.nulls(len(raw), pa.int64())
        else:
            checks.add(pc.is_valid(raw), _time_type_reason(name))
            micros = pa.nulls(len(raw), pa.int64())
    except (pa.ArrowInvalid, OverflowError):
        return None  # out-of-range numbers: judged one by one
    bounds = pc.min_max(micros)  # one pass; the mask only when a time is out of range
    low, high = bounds["min"].as_py(), bounds["max"].as_py()
    if low is not None and (low < _MIN_US or high > _MAX_US):
        outside = pc.or_(
            pc.less(micros, pa.scalar(_MIN_US, pa.int64())),
            pc.greater(micros, pa.scalar(_MAX_US, pa.int64())),
        )
        checks.add(
            pc.fill_null(outside, False), f"time field {name!r} is out of range (years 2 to 9998)"
        )
    return pc.fill_null(micros, 0) if micros.null_count else micros


def _parse_time_strings(raw: Any, name: str, checks: _Checks) -> Any:
    import pyarrow as pa

    for target in (pa.timestamp("us", tz="UTC"), pa.timestamp("us")):
        try:
            return raw.cast(target).cast(pa.int64())
        except pa.ArrowInvalid:
            continue
    values: list[int | None] = []
    for index, text in enumerate(raw.to_pylist()):
        if text is None:
            values.append(None)
            continue
        try:
            values.append(parse_time(text, "s"))
        except ValueError as exc:
            checks.explicit.setdefault(index, f"time field {name!r}: {exc}")
            values.append(None)
    return pa.array(values, pa.int64())


def _fast_field(name: str, mode: FieldMode, raw: Any, checks: _Checks) -> Any:
    import pyarrow as pa
    import pyarrow.compute as pc

    kind, types = raw.type, pa.types
    if types.is_timestamp(kind) and mode != "number":
        return None  # pyarrow parsed text that looks like a time: keep its original text
    if mode == "raw":
        return raw
    if types.is_integer(kind) or types.is_floating(kind) or types.is_null(kind):
        return raw.cast(pa.float64())
    text = types.is_string(kind) or types.is_large_string(kind)
    if mode == "scalar" and (text or types.is_boolean(kind)):
        return raw.cast(pa.string()) if text else raw
    allowed = "a number" if mode == "number" else "a number, a string or a boolean"
    checks.add(pc.is_valid(raw), f"field {name!r} must be {allowed}")
    return pa.nulls(len(raw), pa.float64())


# -- slow path ------------------------------------------------------------------------------------
def _slow(records: Sequence[Record], layout: RecordLayout) -> Decoded:
    import pyarrow as pa

    invalid: dict[int, str] = {}
    rows: list[int] = []
    times: list[int] = []
    keys: list[str | None] = []
    values: dict[str, list[Any]] = {name: [] for name in layout.fields}
    kinds: dict[str, str] = {}
    for index, record in enumerate(records):
        reason, parsed = _check_record(record, layout, kinds)
        if reason is not None:
            invalid[index] = reason
            continue
        row_time, row_key, row_values = parsed
        rows.append(index)
        times.append(row_time)
        keys.append(row_key)
        for name in layout.fields:
            values[name].append(row_values[name])
    columns: dict[str, Any] = {
        ROW: pa.array(rows, pa.int64()),
        TIME: pa.array(times, pa.int64()),
        PARTITION: pa.array([records[i].partition for i in rows], pa.int32()),
    }
    if layout.key_field is not None:
        columns[KEY] = pa.array(keys, pa.string())
    for name, mode in layout.fields.items():
        if mode == "number" or (mode == "scalar" and kinds.get(name) in (None, "number")):
            columns[name] = pa.array(values[name], pa.float64())
        else:
            columns[name] = pa.array(values[name])
    return Decoded(pa.table(columns), invalid)


class _InvalidRecordError(Exception):
    """A record that cannot be counted; the message is the reason."""


def _check_record(
    record: Record, layout: RecordLayout, kinds: dict[str, str]
) -> tuple[str | None, Any]:
    """(reason, None) for an invalid record, else (None, (time µs, key text, field values)).

    ``kinds`` holds the JSON kind each field had first in this batch: a record whose value
    has another kind is invalid (one Arrow column holds one type).
    """
    try:
        try:
            obj = json.loads(record.value)
        except (ValueError, UnicodeDecodeError) as exc:
            raise _InvalidRecordError(f"value is not UTF-8 JSON: {exc}") from None
        if not isinstance(obj, dict):
            raise _InvalidRecordError(f"value is a JSON {_kind_name(obj)}, not an object")
        micros = _record_time(record, obj, layout)
        key = _record_key(obj, layout.key_field)
        values = {
            name: _record_value(obj, name, mode, kinds) for name, mode in layout.fields.items()
        }
    except _InvalidRecordError as invalid:
        return str(invalid), None
    return None, (micros, key, values)


def _record_time(record: Record, obj: dict[str, Any], layout: RecordLayout) -> int:
    if layout.time_field is None:
        return _datetime_us(record.timestamp)
    raw_time = obj.get(layout.time_field)
    if raw_time is None:
        raise _InvalidRecordError(f"missing time field {layout.time_field!r}")
    try:
        return parse_time(raw_time, layout.time_unit)
    except ValueError as exc:
        raise _InvalidRecordError(f"time field {layout.time_field!r}: {exc}") from None


def _record_key(obj: dict[str, Any], field: str | None) -> str | None:
    if field is None:
        return None
    raw_key = obj.get(field)
    if raw_key is None:
        raise _InvalidRecordError(f"missing key field {field!r}")
    if isinstance(raw_key, bool) or not isinstance(raw_key, str | int):
        raise _InvalidRecordError(_key_type_reason(field))
    return str(raw_key)


def _record_value(obj: dict[str, Any], name: str, mode: FieldMode, kinds: dict[str, str]) -> Any:
    value = obj.get(name)
    if value is None:
        return None
    kind = _kind_name(value)
    if mode == "number" and kind != "number":
        raise _InvalidRecordError(f"field {name!r} must be a number")
    if mode == "scalar" and kind not in ("number", "string", "boolean"):
        raise _InvalidRecordError(f"field {name!r} must be a number, a string or a boolean")
    first = kinds.setdefault(name, kind)
    if first != kind:
        raise _InvalidRecordError(f"field {name!r} is a {kind} here but a {first} in other records")
    return float(value) if kind == "number" and mode != "raw" else value


def parse_time(value: Any, unit: str) -> int:
    """An event time in µs since the epoch from ISO-8601 text (naive means UTC) or a number
    of ``unit`` (``s``, ``ms``, ``us``) since the epoch.

    Raises:
        ValueError: anything else, or a time outside years 2..9998 (the message quotes the
            value).
    """
    if isinstance(value, bool):
        raise ValueError(f"expected ISO-8601 text or a number, got {value!r}")
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"expected a finite number, got {value!r}")
        micros = round(value * _UNIT_US[unit])
        shown = f"{value!r} ({unit} since the epoch)"
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(f"{_clip(value)!r} is not an ISO-8601 time") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        micros, shown = _datetime_us(parsed), repr(_clip(value))
    else:
        raise ValueError(f"expected ISO-8601 text or a number, got a JSON {_kind_name(value)}")
    if not _MIN_US <= micros <= _MAX_US:
        raise ValueError(f"{shown} is out of range (years 2 to 9998)")
    return micros


def _datetime_us(value: datetime) -> int:
    from lakekit.streaming.results import EPOCH

    return (value - EPOCH) // _MICROSECOND


def _kind_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _key_type_reason(field: str) -> str:
    return f"key field {field!r} must be a string or an integer"


def _time_type_reason(field: str) -> str:
    return f"time field {field!r} must be ISO-8601 text or a number"


def _clip(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[:limit] + "..."
