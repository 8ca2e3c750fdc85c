"""Turn what users pass to a write (Arrow, pandas, polars, dicts, batch iterators) into a
``pyarrow.RecordBatchReader`` that streams, so memory is bounded by the batch size, not the input.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from lakekit.errors import InvalidInputError

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["WriteData", "as_reader"]

WriteData = Any
"""A pyarrow Table / RecordBatch / RecordBatchReader, an iterable of batches or tables, a pandas
or polars DataFrame, or a list of dicts."""

_HELP = (
    "pass a pyarrow Table, RecordBatch or RecordBatchReader, an iterable of record batches, "
    "a pandas or polars DataFrame, or a list of dicts"
)


def as_reader(  # noqa: PLR0911 - one return per accepted input kind
    data: WriteData, schema_hint: pa.Schema | None = None
) -> pa.RecordBatchReader:
    """A streaming reader over ``data``.

    ``schema_hint`` (the table's schema) guides the conversion of a list of dicts, so that
    ``{"ts": datetime}`` rows land in the table's timestamp unit; keys not in it are inferred.

    Raises:
        InvalidInputError: ``data`` is not Arrow-compatible (the message says what is accepted
            and, for conversion failures, which value failed).
    """
    import pyarrow as pa

    try:
        if isinstance(data, pa.RecordBatchReader):
            return data
        if isinstance(data, pa.Table):
            return pa.RecordBatchReader.from_batches(data.schema, data.to_batches())
        if isinstance(data, pa.RecordBatch):
            return pa.RecordBatchReader.from_batches(data.schema, [data])
        module = type(data).__module__.split(".", 1)[0]
        if module == "pandas":
            table = pa.Table.from_pandas(data, preserve_index=False)
            return pa.RecordBatchReader.from_batches(table.schema, table.to_batches())
        if module == "polars":
            table = data.to_arrow()
            return pa.RecordBatchReader.from_batches(table.schema, table.to_batches())
        if isinstance(data, list) and all(isinstance(row, dict) for row in data):
            return _from_dicts(data, schema_hint)
        if isinstance(data, Iterable) and not isinstance(data, str | bytes | dict):
            return _from_batches(iter(data))
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
        raise InvalidInputError(f"data could not be converted to Arrow: {exc}") from exc
    raise InvalidInputError(f"cannot write {type(data).__name__}: {_HELP}")


def _from_dicts(rows: list[dict[str, Any]], hint: pa.Schema | None) -> pa.RecordBatchReader:
    import pyarrow as pa

    if not rows:
        raise InvalidInputError("cannot write an empty list of rows: the schema is unknown")
    if hint is not None:
        names = list(dict.fromkeys(k for row in rows for k in row))
        known = [hint.field(n) for n in names if n in hint.names]
        inferred = pa.Table.from_pylist(
            [{k: row.get(k) for k in names if k not in hint.names} for row in rows]
        )
        fields = known + list(inferred.schema)
        order = {name: i for i, name in enumerate(names)}
        schema = pa.schema(sorted(fields, key=lambda f: order[f.name]))
        table = pa.Table.from_pylist(rows, schema=schema)
    else:
        table = pa.Table.from_pylist(rows)
    return pa.RecordBatchReader.from_batches(table.schema, table.to_batches())


def _from_batches(items: Iterator[Any]) -> pa.RecordBatchReader:
    import pyarrow as pa

    first = next(items, None)
    if first is None:
        raise InvalidInputError("cannot write an empty iterable: the schema is unknown")
    if not isinstance(first, pa.RecordBatch | pa.Table):
        raise InvalidInputError(
            f"an iterable to write must yield record batches or tables, got "
            f"{type(first).__name__}: {_HELP}"
        )
    schema = first.schema

    def batches() -> Iterator[pa.RecordBatch]:
        for item in (first, *()):
            yield from _batches_of(item, schema)
        for item in items:
            if not isinstance(item, pa.RecordBatch | pa.Table):
                raise InvalidInputError(
                    f"an iterable to write must yield record batches or tables, got "
                    f"{type(item).__name__}"
                )
            yield from _batches_of(item, schema)

    return pa.RecordBatchReader.from_batches(schema, batches())


def _batches_of(item: pa.RecordBatch | pa.Table, schema: pa.Schema) -> Iterator[pa.RecordBatch]:
    import pyarrow as pa

    if not item.schema.equals(schema):
        raise InvalidInputError(
            f"all batches of one write must share a schema; expected {schema}, got {item.schema}"
        )
    if isinstance(item, pa.Table):
        yield from item.to_batches()
    else:
        yield item
