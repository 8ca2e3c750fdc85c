"""Reading a snapshot: plan the files a filter can touch, then stream them as Arrow.

Pruning happens twice, both without opening pruned files:

1. each data file becomes a pyarrow dataset fragment whose *guarantee* is what the manifest knows
   about it (its identity-partition values and its columns' min/max/null counts); pyarrow
   simplifies the filter against the guarantee and skips fragments where it is false;
2. within a file, Parquet row-group statistics prune row groups.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from lakekit.errors import InvalidInputError, SchemaError

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    from lakekit.interfaces.object_store import ObjectStore
    from lakekit.partition_spec import PartitionSpec
    from lakekit.tables.metadata import DataFile

__all__ = ["Filter", "as_expression", "build_dataset", "file_guarantee"]

Filter = Any
"""A ``pyarrow.compute.Expression`` (``pc.field("dt") >= "2026-11-01"``) or DNF tuples
(``[("dt", ">=", "2026-11-01"), ("country", "in", ["US", "DE"])]``) as in pyarrow's ``filters``."""


def as_expression(filter: Filter) -> pc.Expression | None:
    """Normalise a filter to an Expression (unknown columns are reported when scanning).

    Raises:
        InvalidInputError: malformed filter.
    """
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    if filter is None:
        return None
    if isinstance(filter, pc.Expression):
        expression = filter
    else:
        try:
            expression = pq.filters_to_expression(filter)
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(f"malformed filter {filter!r}: {exc}") from exc
    return expression


def file_guarantee(data_file: DataFile, schema: pa.Schema, spec: PartitionSpec) -> pc.Expression:
    """What is known to hold for every row of ``data_file``: identity-partition values and
    min/max bounds of its columns."""
    import pyarrow as pa
    import pyarrow.compute as pc

    terms: list[pc.Expression] = []
    for field in spec.fields:
        if field.transform != "identity" or field.source not in schema.names:
            continue
        raw = data_file.partition.get(field.name)
        column_type = schema.field(field.source).type
        if raw is None:
            terms.append(pc.field(field.source).is_null())
        else:
            terms.append(_eq(pc.field(field.source), _typed(raw, column_type)))
    for name, stats in data_file.stats.items():
        if name not in schema.names:
            continue
        column_type = schema.field(name).type
        if stats.min is not None and stats.max is not None:
            try:
                lo, hi = _typed(stats.min, column_type), _typed(stats.max, column_type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                continue
            bounded = (pc.field(name) >= lo) & (pc.field(name) <= hi)
            if stats.null_count:
                bounded = bounded | pc.field(name).is_null()
            terms.append(bounded)
        elif stats.null_count == 0 and data_file.record_count:
            terms.append(~pc.field(name).is_null())
    if not terms:
        return pc.scalar(True)
    return functools.reduce(lambda a, b: a & b, terms)


def _eq(left: pc.Expression, right: Any) -> pc.Expression:
    result: pc.Expression = left == right
    return result


@functools.lru_cache(maxsize=4096)
def _typed_cached(text: str, type_id: str, column_type: pa.DataType) -> pa.Scalar[Any]:
    import pyarrow as pa

    return pa.array([text], pa.string()).cast(column_type)[0]


def _typed(text: str, column_type: pa.DataType) -> pa.Scalar[Any]:
    return _typed_cached(text, str(column_type), column_type)


def build_dataset(
    store: ObjectStore,
    files: Sequence[DataFile],
    schema: pa.Schema,
    spec: PartitionSpec,
) -> ds.Dataset:
    """A dataset over exactly ``files``, each with its manifest guarantee."""
    import pyarrow as pa
    import pyarrow.dataset as ds

    fmt = ds.ParquetFileFormat()
    if not files:
        return ds.dataset(pa.Table.from_batches([], schema=schema))
    try:
        return ds.FileSystemDataset.from_paths(
            [f.key for f in files],
            schema=schema,
            format=fmt,
            filesystem=store.arrow_filesystem,
            partitions=[file_guarantee(f, schema, spec) for f in files],
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise SchemaError(f"cannot read the table's files with its schema: {exc}") from exc
