"""Partition transforms and the Hive directory layout of lake tables (``dt=2026-11-26/...``).

Each :class:`~lakekit.partition_spec.PartitionField` turns its source column into a partition
value column (vectorised with ``pyarrow.compute``; Python runs only once per *distinct* value,
for string hashing, decimals and the text of ``month``/``hour``). Result types are fixed per
transform (:func:`partition_type`):

============  ==============================  ============  ===============================
transform     source types                    result        directory example
============  ==============================  ============  ===============================
identity      bool, ints, floats, decimals,   source type   ``country=US``
              strings, dates, timestamps
year          dates, timestamps               int32         ``ts_year=2026``
month         dates, timestamps               string        ``ts_month=2026-11``
day           dates, timestamps               date32        ``ts_day=2026-11-26``
hour          timestamps                      string        ``ts_hour=2026-11-26-13``
bucket[n]     ints, decimals, strings,        int32 [0, n)  ``id_bucket=7``
              binary, dates, timestamps
truncate[w]   ints, decimals, strings,        source type;  ``name_truncate=ab``
              binary                          binary: hex
============  ==============================  ============  ===============================

Timestamps with a time zone are taken in UTC; naive timestamps are taken as UTC. Nulls stay
null. ``truncate[w]`` floors integers and decimal unscaled values toward -inf to a multiple of
``w`` (``-1 -> -10`` for ``w=10``), keeps the first ``w`` characters of a string and the first
``w`` bytes of a binary value, rendered as lowercase hex (a directory name must be UTF-8 text).

**bucket[n]** is part of the on-disk format and is *not* Iceberg's murmur3 bucket::

    bucket = splitmix64(key) mod n        (all arithmetic unsigned 64-bit, wrapping)
    splitmix64(z): z = z + 0x9E3779B97F4A7C15
                   z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
                   z = (z ^ (z >> 27)) * 0x94D049BB133111EB
                   return z ^ (z >> 31)      (one step of Vigna's SplitMix64 generator)
    key: integers of any width -> the value as 64-bit two's complement
         dates -> days since 1970-01-01; timestamps -> microseconds since the epoch in UTC
         (floored), whatever the unit or time zone
         strings -> zlib.crc32 of the UTF-8 bytes; binary -> zlib.crc32 of the bytes
         decimals -> zlib.crc32 of the unscaled value as minimal big-endian two's complement

**Directory values** are what pyarrow's Hive partitioning writes (``segment_encoding="uri"``) and
DuckDB's ``COPY ... PARTITION_BY`` writes: the value cast to string by Arrow, then every byte of
its UTF-8 form outside ``A-Z a-z 0-9 - . _ ~`` percent-encoded as ``%XX`` (upper-case hex).
Null is ``__HIVE_DEFAULT_PARTITION__``; the empty string is ``name=`` (pyarrow and DuckDB read
it back as ``''``). pyarrow and DuckDB decode every value exactly. Hive and Spark decode each
``%XX`` as one character, so there ASCII values round-trip but non-ASCII ones read garbled, and
Spark rejects ``name=``. See docs/interfaces/tables.md, "Partition layout".
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping
from datetime import date
from decimal import Decimal, localcontext
from typing import Any, overload
from urllib.parse import quote, unquote

import pyarrow as pa
import pyarrow.compute as pc

from lakekit.errors import InvalidInputError, SchemaError
from lakekit.identifiers import validate_name
from lakekit.partition_spec import PartitionField, PartitionSpec

__all__ = [
    "MAX_SEGMENT_BYTES",
    "NULL_PARTITION",
    "partition_columns",
    "partition_type",
    "transform_literal",
    "transform_is_order_preserving",
    "format_partition_value",
    "parse_partition_value",
    "partition_path",
    "parse_partition_path",
]

NULL_PARTITION = "__HIVE_DEFAULT_PARTITION__"
"""The directory value of a null (Hive/Spark convention, read as NULL by pyarrow and DuckDB)."""

MAX_SEGMENT_BYTES = 255
"""Longest ``name=value`` directory name (local file systems' limit), enforced on every store."""

_APPLIES: dict[str, frozenset[str]] = {
    "identity": frozenset(
        {"bool", "int", "uint", "float", "decimal", "string", "date", "timestamp"}
    ),
    "year": frozenset({"date", "timestamp"}),
    "month": frozenset({"date", "timestamp"}),
    "day": frozenset({"date", "timestamp"}),
    "hour": frozenset({"timestamp"}),
    "bucket": frozenset({"int", "uint", "decimal", "string", "binary", "date", "timestamp"}),
    "truncate": frozenset({"int", "uint", "decimal", "string", "binary"}),
}
_KIND_WORDS = {
    "bool": "booleans", "int": "integers", "uint": "integers", "float": "floats",
    "decimal": "decimals", "string": "strings", "binary": "binary", "date": "dates",
    "timestamp": "timestamps",
}  # fmt: skip
_PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_MAX_PARAM = 2**31 - 1
_U64 = pa.uint64()


def partition_type(field: PartitionField, source_type: pa.DataType) -> pa.DataType:
    """The Arrow type of ``field``'s partition values for a source column of ``source_type``.

    Stable per transform (see the module table); dictionary and view types count as their
    plain value type.

    Raises:
        SchemaError: the transform does not apply to the type (names field, column and type).
    """
    base, _ = _split(field)
    value_type = _plain(source_type)
    kind = _kind(value_type)
    if kind not in _APPLIES[base]:
        allowed = ", ".join(sorted({_KIND_WORDS[k] for k in _APPLIES[base]}))
        raise SchemaError(
            f"partition field {field.name!r}: {field.transform} does not apply to column "
            f"{field.source!r} of type {source_type} (it applies to: {allowed})",
            column=field.source,
            old_type=str(source_type),
        )
    if base in ("year", "bucket"):
        return pa.int32()
    if base == "day":
        return pa.date32()
    if base in ("month", "hour") or (base == "truncate" and kind == "binary"):
        return pa.string()
    return value_type


def partition_columns(
    batch: pa.RecordBatch | pa.Table, spec: PartitionSpec
) -> dict[str, pa.Array[Any]]:
    """Compute every partition value column of ``spec`` over ``batch``, keyed by field name.

    Each array has one value per row, in row order, of type :func:`partition_type`; nulls stay
    null. A Table's chunked columns are combined into one array. Deterministic: the same input
    gives the same values in every process, machine and Python version.

    Raises:
        InvalidInputError: a source column is missing or ambiguous, a field name starts with
            ``_`` (readers would skip its directories), a value overflows, a string value is
            ``__HIVE_DEFAULT_PARTITION__`` (it would read back as null) or too long for a
            directory name.
        SchemaError: a transform does not apply to its column's type.
    """
    names = batch.schema.names
    result: dict[str, pa.Array[Any]] = {}
    for field in spec.fields:
        if names.count(field.source) != 1:
            what = "is missing" if field.source not in names else "appears more than once"
            raise InvalidInputError(
                f"partition field {field.name!r}: source column {field.source!r} {what} "
                f"(columns: {names})"
            )
        column = batch.column(field.source)
        array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
        result[field.name] = _apply(field, array)
    return result


def transform_literal(
    field: PartitionField, value: Any, source_type: pa.DataType | None = None
) -> Any:
    """Apply ``field``'s transform to one literal, exactly as :func:`partition_columns` would.

    Pass the column's ``source_type`` where it matters (decimals: the scale; narrower ints);
    without it the type is inferred from the Python value. ``None`` gives ``None``.

    Raises:
        InvalidInputError: the value does not convert to the type or overflows.
        SchemaError: the transform does not apply to the type.
    """
    if value is None:
        if source_type is not None:
            partition_type(field, source_type)
        return None
    try:
        array = pa.array([value], type=source_type)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError) as exc:
        raise InvalidInputError(f"cannot use {value!r} as a {field.source!r} value: {exc}") from exc
    return _apply(field, array)[0].as_py()


def transform_is_order_preserving(field: PartitionField) -> bool:
    """True when ``a <= b`` implies ``t(a) <= t(b)``: a range filter on the source becomes one on
    the partition (``ts >= X`` gives ``ts_day >= day(X)``). All but ``bucket[n]``; ``month`` and
    ``hour`` strings order like time for years 0001-9999."""
    return _split(field)[0] != "bucket"


def format_partition_value(value: Any, type: pa.DataType | None = None) -> str:
    """The directory text of one partition value (what follows ``name=``).

    Rendered as Arrow casts ``type`` (inferred from the value when omitted) to string, then
    percent-encoded as the module docstring says; pass the column's type to get the text
    pyarrow's writer produces (e.g. ``float32``, timestamp units). ``None`` gives
    ``__HIVE_DEFAULT_PARTITION__``; ``""`` gives ``""`` (pyarrow and DuckDB read it back as the
    empty string, not null).

    Raises:
        InvalidInputError: binary or nested values, a string that is not valid Unicode, or the
            string ``__HIVE_DEFAULT_PARTITION__`` itself (readers would decode it as null).
    """
    if value is None:
        return NULL_PARTITION
    if isinstance(value, str) and (type is None or _kind(_plain(type)) == "string"):
        text = value
    else:
        try:
            scalar = pa.scalar(value) if type is None else pa.scalar(value, type=_plain(type))
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError) as exc:
            raise InvalidInputError(f"cannot use {value!r} as a partition value: {exc}") from exc
        if _kind(scalar.type) not in _APPLIES["identity"]:
            raise InvalidInputError(
                f"{scalar.type} values cannot name a directory; partition binary columns with "
                "bucket[n] or truncate[w] (hex)"
            )
        text = scalar.cast(pa.string()).as_py()
    if text == NULL_PARTITION:
        raise InvalidInputError(
            f"the partition value {NULL_PARTITION!r} is reserved: it is how null is written"
        )
    try:
        return quote(text, safe="", errors="strict")
    except UnicodeEncodeError as exc:
        raise InvalidInputError(f"partition value {text!r} is not valid Unicode") from exc


def parse_partition_value(text: str, type: pa.DataType) -> Any:
    """Inverse of :func:`format_partition_value`: directory text to a Python value of ``type``.

    Decodes ``%XX`` (any hex case; invalid escapes stay literal, as readers do) and reads
    ``__HIVE_DEFAULT_PARTITION__`` (escaped or not) as ``None``.

    Raises:
        InvalidInputError: not valid UTF-8 once decoded, not a value of ``type``, or ``type`` is
            binary or nested (never written as a directory value).
    """
    decoded = _unescape(text)
    value_type = _plain(type)
    if _kind(value_type) not in _APPLIES["identity"]:
        raise InvalidInputError(f"{type} values are never directory names; read them as string")
    if decoded is None or _kind(value_type) == "string":
        return decoded
    try:
        return pa.array([decoded], pa.string()).cast(value_type)[0].as_py()
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise InvalidInputError(f"partition value {decoded!r} is not a {type}: {exc}") from exc


def partition_path(
    values: Mapping[str, Any], types: Mapping[str, pa.DataType] | None = None
) -> str:
    """The relative directory of a partition, e.g. ``country=US/dt=2026-11-26`` (no slashes at
    either end; ``""`` when ``values`` is empty), in the order of ``values``.

    ``types`` (by name, optional) renders values exactly as a column of that type.

    Raises:
        InvalidInputError: a bad or ``_``-prefixed name, a value :func:`format_partition_value`
            rejects, or a segment longer than :data:`MAX_SEGMENT_BYTES` (use truncate[w]).
    """
    segments = []
    for name, value in values.items():
        _check_name(name)
        segment = f"{name}={format_partition_value(value, (types or {}).get(name))}"
        if len(segment.encode()) > MAX_SEGMENT_BYTES:
            raise InvalidInputError(
                f"partition directory {segment[:40]}... is longer than {MAX_SEGMENT_BYTES} bytes; "
                f"partition {name!r} with truncate[w] or bucket[n] instead"
            )
        segments.append(segment)
    return "/".join(segments)


@overload
def parse_partition_path(path: str) -> dict[str, str | None]: ...
@overload
def parse_partition_path(path: str, types: Mapping[str, pa.DataType]) -> dict[str, Any]: ...
def parse_partition_path(
    path: str, types: Mapping[str, pa.DataType] | None = None
) -> dict[str, Any]:
    """The partition values in a path relative to the table location, by name, in path order.

    Every ``name=value`` segment counts; others (a file name) are skipped. Values are the
    decoded strings readers see for a string column (``None`` for null), or typed values for
    the names in ``types``.

    Raises:
        InvalidInputError: a name repeats, or a value does not decode (see
            :func:`parse_partition_value`).
    """
    result: dict[str, Any] = {}
    for segment in path.split("/"):
        name, sep, text = segment.partition("=")
        if not sep:
            continue
        if name in result:
            raise InvalidInputError(f"partition {name!r} appears twice in {path!r}")
        result[name] = parse_partition_value(text, (types or {}).get(name, pa.string()))
    return result


# -- transforms ------------------------------------------------------------------------------


def _apply(field: PartitionField, column: pa.Array[Any]) -> pa.Array[Any]:
    target = partition_type(field, column.type)
    _check_name(field.name)
    base, param = _split(field)
    array = _decoded(column)
    kind = _kind(array.type)
    try:
        if base == "identity":
            result = array
        elif base == "year":
            result = pc.year(_days(array))
        elif base == "month":
            days = _days(array)
            months = pc.add(pc.multiply(pc.year(days), 12), pc.subtract(pc.month(days), 1))
            result = _per_distinct(months, _month_text, pa.string())
        elif base == "day":
            result = _days(array)
        elif base == "hour":
            per_hour = _PER_SECOND[array.type.unit] * 3600
            result = _per_distinct(_floor_div(_epoch(array), per_hour), _hour_text, pa.string())
        elif base == "bucket":
            result = _bucket(array, kind, param)
        else:
            result = _truncate(array, kind, param)
        result = result.cast(target)
    except (pa.ArrowInvalid, OverflowError, ValueError) as exc:
        raise InvalidInputError(
            f"partition field {field.name!r}: {field.transform}({field.source}) failed: {exc}"
        ) from exc
    if _kind(target) == "string":
        _check_directory_strings(field, result)
    return result


def _bucket(array: pa.Array[Any], kind: str, n: int) -> pa.Array[Any]:
    if kind == "int":
        keys = array.cast(pa.int64()).cast(_U64, safe=False)
    elif kind == "uint":
        keys = array.cast(_U64)
    elif kind == "date":
        keys = _days(array).cast(pa.int32()).cast(pa.int64()).cast(_U64, safe=False)
    elif kind == "timestamp":
        epoch, unit = _epoch(array), array.type.unit
        micros = (
            _floor_div(epoch, 1000)
            if unit == "ns"
            else pc.multiply_checked(epoch, 1_000_000 // _PER_SECOND[unit])
        )
        keys = micros.cast(_U64, safe=False)
    elif kind == "decimal":
        scale = array.type.scale
        keys = _per_distinct(array, lambda d: zlib.crc32(_twos(_unscaled(d, scale))), _U64)
    else:
        keys = _per_distinct(array, lambda v: zlib.crc32(_utf8(v)), _U64)
    z = pc.add(keys, pa.scalar(0x9E3779B97F4A7C15, _U64))  # wraps: unchecked uint64
    for shift, multiplier in ((30, 0xBF58476D1CE4E5B9), (27, 0x94D049BB133111EB)):
        z = pc.multiply(_xorshift(z, shift), pa.scalar(multiplier, _U64))
    z = _xorshift(z, 31)
    modulus = pa.scalar(n, _U64)
    return pc.subtract(z, pc.multiply(pc.divide(z, modulus), modulus))


def _truncate(array: pa.Array[Any], kind: str, width: int) -> pa.Array[Any]:
    if kind == "int":
        return pc.multiply_checked(_floor_div(array.cast(pa.int64()), width), width)
    if kind == "uint":
        w = pa.scalar(width, _U64)
        return pc.multiply(pc.divide(array.cast(_U64), w), w)
    if kind == "string":
        return pc.utf8_slice_codeunits(array, 0, width)
    if kind == "binary":
        return _per_distinct(pc.binary_slice(array, 0, width), lambda v: v.hex(), pa.string())
    scale = array.type.scale

    def floor_decimal(value: Decimal) -> Decimal:
        unscaled = _unscaled(value, scale)
        return Decimal(unscaled - unscaled % width).scaleb(-scale)

    return _per_distinct(array, floor_decimal, array.type)


def _per_distinct(
    values: pa.Array[Any], fn: Callable[[Any], Any], out_type: pa.DataType
) -> pa.Array[Any]:
    """``fn`` applied once per distinct non-null value, mapped back to every row."""
    encoded: Any = pc.dictionary_encode(values)
    mapped = pa.array([fn(v) for v in encoded.dictionary.to_pylist()], out_type)
    return pc.take(mapped, encoded.indices)


def _xorshift(z: pa.Array[Any], shift: int) -> pa.Array[Any]:
    return pc.bit_wise_xor(z, pc.shift_right(z, pa.scalar(shift, _U64)))


def _floor_div(values: pa.Array[Any], divisor: int) -> pa.Array[Any]:
    """Integer division rounding toward -inf (``pc.divide`` truncates toward zero)."""
    quotient = pc.divide(values, divisor)
    overshoot = pc.greater(pc.multiply(quotient, divisor), values).cast(pa.int64())
    return pc.subtract(quotient, overshoot)


def _epoch(array: pa.Array[Any]) -> pa.Array[Any]:
    """A timestamp's count of units since the epoch in UTC (the stored value; tz ignored)."""
    return array.cast(pa.timestamp(array.type.unit)).cast(pa.int64())


def _days(array: pa.Array[Any]) -> Any:  # a Date32Array
    if pa.types.is_timestamp(array.type):
        # cast to naive first: casting a zoned timestamp to date32 uses its local time
        return array.cast(pa.timestamp(array.type.unit)).cast(pa.date32())
    return array.cast(pa.date32())


def _month_text(months: int) -> str:
    year, month = divmod(months, 12)
    return f"{year:04d}-{month + 1:02d}"


def _hour_text(hours: int) -> str:
    days, hour = divmod(hours, 24)
    return f"{date.fromordinal(_EPOCH_ORDINAL + days).isoformat()}-{hour:02d}"


def _unscaled(value: Decimal, scale: int) -> int:
    with localcontext() as context:
        context.prec = 100
        return int(value.scaleb(scale))


def _twos(value: int) -> bytes:
    """Minimal big-endian two's complement (Iceberg's decimal byte form)."""
    return value.to_bytes((value + (value < 0)).bit_length() // 8 + 1, "big", signed=True)


def _utf8(value: str | bytes) -> bytes:
    return value.encode() if isinstance(value, str) else value


# -- types, names, text ----------------------------------------------------------------------


def _split(field: PartitionField) -> tuple[str, int]:
    base, _, rest = field.transform.partition("[")
    param = int(rest[:-1]) if rest else 0
    if param > _MAX_PARAM:
        raise InvalidInputError(
            f"partition field {field.name!r}: {field.transform} is too large (at most {_MAX_PARAM})"
        )
    return base, param


def _plain(data_type: pa.DataType) -> pa.DataType:
    if pa.types.is_dictionary(data_type):
        return _plain(data_type.value_type)
    if pa.types.is_string_view(data_type):
        return pa.string()
    if pa.types.is_binary_view(data_type):
        return pa.binary()
    return data_type


def _decoded(array: pa.Array[Any]) -> pa.Array[Any]:
    if isinstance(array, pa.DictionaryArray):
        array = array.dictionary_decode()
    plain = _plain(array.type)
    return array if plain == array.type else array.cast(plain)


def _kind(t: pa.DataType) -> str:
    checks = (
        ("bool", pa.types.is_boolean),
        ("int", pa.types.is_signed_integer),
        ("uint", pa.types.is_unsigned_integer),
        ("float", lambda t: t in (pa.float32(), pa.float64())),
        ("decimal", pa.types.is_decimal),
        ("string", lambda t: pa.types.is_string(t) or pa.types.is_large_string(t)),
        (
            "binary",
            lambda t: (
                pa.types.is_binary(t)
                or pa.types.is_large_binary(t)
                or pa.types.is_fixed_size_binary(t)
            ),
        ),
        ("date", pa.types.is_date),
        ("timestamp", pa.types.is_timestamp),
    )
    return next((kind for kind, check in checks if check(t)), "other")


def _check_name(name: str) -> None:
    validate_name(name, what="partition field name")
    if name.startswith("_"):
        raise InvalidInputError(
            f"partition field name {name!r} starts with '_': pyarrow and Hive skip such "
            "directories as hidden; give the field a name= that starts with a letter"
        )


def _check_directory_strings(field: PartitionField, values: Any) -> None:
    if pc.any(pc.equal(values, pa.scalar(NULL_PARTITION))).as_py():
        raise InvalidInputError(
            f"partition field {field.name!r}: the value {NULL_PARTITION!r} is reserved for null"
        )
    budget = MAX_SEGMENT_BYTES - len(field.name) - 1
    lengths = pc.binary_length(values)
    if (pc.max(lengths).as_py() or 0) * 3 <= budget:  # every byte escaped still fits
        return
    for value in pc.unique(values.filter(pc.greater(lengths, pa.scalar(budget // 3)))).to_pylist():
        if len(quote(value, safe="")) > budget:
            raise InvalidInputError(
                f"partition field {field.name!r}: value {value[:40]!r}... makes a directory name "
                f"longer than {MAX_SEGMENT_BYTES} bytes; use truncate[w] or bucket[n]"
            )


def _unescape(text: str) -> str | None:
    try:
        decoded = unquote(text, errors="strict")
    except UnicodeDecodeError as exc:
        raise InvalidInputError(f"partition value {text!r} is not UTF-8 once decoded") from exc
    return None if NULL_PARTITION in (text, decoded) else decoded
