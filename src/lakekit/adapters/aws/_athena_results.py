"""Athena's GetQueryResults pages as Arrow record batches.

Athena returns every value as text (``VarCharValue``; absent for NULL) with the column types in
``ResultSetMetadata.ColumnInfo``. Each page becomes one record batch, converted column by column
with Arrow's vectorised casts:

==========================================  ==============================================
Athena type                                 Arrow type
==========================================  ==============================================
boolean                                     bool
tinyint / smallint / integer / bigint       int8 / int16 / int32 / int64
real (float) / double                       float32 / float64 (NaN, Infinity as Athena writes them)
decimal(p, s)                               decimal128(p, s)
date                                        date32
timestamp                                   timestamp[us]
timestamp with time zone                    timestamp[us, UTC]
varbinary                                   binary (Athena prints it as spaced hex)
varchar, char, json, time, interval,        string (the text Athena returns)
array, map, row, uuid, ipaddress, others
==========================================  ==============================================

For SELECT statements the first row of the first page repeats the column labels; it is dropped
when it does (as drivers such as PyAthena do).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from lakekit.errors import QueryError

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["arrow_schema", "batches", "page_batch"]

Fetch = Callable[[str | None], Mapping[str, Any]]
"""GetQueryResults for a NextToken (None for the first page)."""

_INTS = {"tinyint": "int8", "smallint": "int16", "integer": "int32", "int": "int32",
         "bigint": "int64"}  # fmt: skip
_ZONED = re.compile(r"^(\S+ \S+) (\S+)$")


def arrow_type(column: Mapping[str, Any]) -> pa.DataType:  # noqa: PLR0911 - one per type
    """The Arrow type of one ``ColumnInfo`` entry."""
    import pyarrow as pa

    kind = str(column.get("Type", "varchar")).lower().strip()
    if kind == "boolean":
        return pa.bool_()
    if kind in _INTS:
        factory: Callable[[], pa.DataType] = getattr(pa, _INTS[kind])
        return factory()
    if kind in ("double",):
        return pa.float64()
    if kind in ("real", "float"):
        return pa.float32()
    if kind.startswith("decimal"):
        precision = int(column.get("Precision") or 38)
        scale = int(column.get("Scale") or 0)
        return pa.decimal128(max(1, min(precision, 38)), scale)
    if kind == "date":
        return pa.date32()
    if kind.startswith("timestamp") and "with time zone" in kind:
        return pa.timestamp("us", tz="UTC")
    if kind.startswith("timestamp"):
        return pa.timestamp("us")
    if kind == "varbinary":
        return pa.binary()
    return pa.string()


def arrow_schema(columns: Sequence[Mapping[str, Any]]) -> pa.Schema:
    import pyarrow as pa

    return pa.schema(
        [
            pa.field(str(c.get("Label") or c.get("Name") or f"_col{i}"), arrow_type(c))
            for i, c in enumerate(columns)
        ]
    )


def page_batch(
    rows: Sequence[Mapping[str, Any]], columns: Sequence[Mapping[str, Any]], schema: pa.Schema
) -> pa.RecordBatch:
    """One page's rows as a record batch of ``schema``.

    Raises:
        QueryError: a value does not parse as its declared type.
    """
    import pyarrow as pa

    texts: list[list[str | None]] = [[] for _ in columns]
    for row in rows:
        data = row.get("Data", [])
        for i in range(len(columns)):
            cell = data[i] if i < len(data) else {}
            value = cell.get("VarCharValue")
            texts[i].append(value if isinstance(value, str) else None)
    arrays = [
        _convert(values, field.type, str(columns[i].get("Type", "")))
        for i, (values, field) in enumerate(zip(texts, schema, strict=True))
    ]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def _convert(values: list[str | None], target: pa.DataType, athena_type: str) -> pa.Array[Any]:
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        if pa.types.is_string(target):
            return pa.array(values, pa.string())
        if pa.types.is_binary(target):
            return pa.array(
                [None if v is None else bytes.fromhex(v.replace(" ", "")) for v in values],
                pa.binary(),
            )
        if pa.types.is_timestamp(target) and target.tz is not None:
            zoned: pa.Array[Any] = pa.array([_zoned(v) for v in values], target)
            return zoned
        return cast_array(pc, pa.array(values, pa.string()), target)
    except (pa.ArrowInvalid, ValueError) as exc:
        raise QueryError(
            f"Athena returned a value that is not a valid {athena_type}: {exc}"
        ) from exc


def cast_array(pc: Any, array: pa.Array[Any], target: pa.DataType) -> pa.Array[Any]:
    """``array`` cast to ``target`` (Arrow's vectorised string parsing)."""
    result: pa.Array[Any] = pc.cast(array, target)
    return result


def _zoned(text: str | None) -> dt.datetime | None:
    """``2026-03-01 12:00:00.000 UTC`` (or a zone name / offset) as an aware UTC datetime."""
    if text is None:
        return None
    from zoneinfo import ZoneInfo

    match = _ZONED.match(text)
    if match is None:
        return dt.datetime.fromisoformat(text).astimezone(dt.UTC)
    moment, zone = match.groups()
    parsed = dt.datetime.fromisoformat(moment)
    if zone.upper() in ("UTC", "Z"):
        return parsed.replace(tzinfo=dt.UTC)
    if zone[0] in "+-":
        return dt.datetime.fromisoformat(moment + zone).astimezone(dt.UTC)
    return parsed.replace(tzinfo=ZoneInfo(zone)).astimezone(dt.UTC)


def _is_header(row: Mapping[str, Any], columns: Sequence[Mapping[str, Any]]) -> bool:
    data = row.get("Data", [])
    if len(data) != len(columns):
        return False
    return all(
        cell.get("VarCharValue") == (column.get("Label") or column.get("Name"))
        for cell, column in zip(data, columns, strict=True)
    )


def batches(
    first: Mapping[str, Any], fetch: Fetch, *, select: bool
) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
    """The schema and the batches of a result whose first page is ``first``.

    ``fetch(token)`` returns the page after ``first`` (GetQueryResults with NextToken); pages
    are fetched only as the batches are consumed.
    """
    result_set = first.get("ResultSet", {})
    columns = list(result_set.get("ResultSetMetadata", {}).get("ColumnInfo", []))
    schema = arrow_schema(columns)

    def generate() -> Iterator[pa.RecordBatch]:
        page: Mapping[str, Any] | None = first
        is_first = True
        while page is not None:
            rows = list(page.get("ResultSet", {}).get("Rows", []))
            if is_first and select and rows and _is_header(rows[0], columns):
                rows = rows[1:]
            is_first = False
            if rows:
                yield page_batch(rows, columns, schema)
            token = page.get("NextToken")
            page = fetch(token) if token else None

    return schema, generate()
