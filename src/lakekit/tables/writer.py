"""Write a stream of record batches as Hive-partitioned Parquet data files.

Data files get fresh, unique names and are written straight to their final keys: they are
invisible to lakekit readers (and to engines reading through the catalog) until a snapshot that
lists them is committed; a crashed write leaves only unreferenced files, which ``vacuum`` removes.

The heavy lifting is pyarrow's ``write_dataset`` (C++, multi-threaded, bounded memory): rows are
partitioned and buffered per open file, so memory stays bounded by ``max_open_files`` row groups
whatever the input size.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from lakekit.errors import InvalidInputError, SchemaError
from lakekit.tables.metadata import ColumnStats, DataFile

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from lakekit.interfaces.object_store import ObjectStore
    from lakekit.partition_spec import PartitionField, PartitionSpec

__all__ = ["NULL_PARTITION", "WriteOptions", "conform_batch", "write_data_files"]

NULL_PARTITION = "__HIVE_DEFAULT_PARTITION__"
_MAX_STAT_CHARS = 64


@dataclass(frozen=True, slots=True)
class WriteOptions:
    """How data files are written. The defaults suit analytics on object stores."""

    target_file_size: int = 256 * 1024 * 1024
    """Approximate bytes per data file (estimated from the input's in-memory size)."""
    row_group_size: int = 122_880
    """Rows per Parquet row group (DuckDB's vector-friendly default)."""
    compression: str = "zstd"
    compression_level: int | None = 1
    """zstd level 3 measured no smaller than level 1 on event data here, and slower."""
    max_open_files: int = 256
    """Partitions written at once; bounds memory for scattered inputs."""

    def __post_init__(self) -> None:
        if self.target_file_size < 1024:
            raise InvalidInputError("target_file_size must be at least 1 KiB")
        if self.row_group_size < 1:
            raise InvalidInputError("row_group_size must be >= 1")
        if self.max_open_files < 1:
            raise InvalidInputError("max_open_files must be >= 1")


def conform_batch(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """``batch`` with exactly ``schema``'s columns: missing ones null, types cast losslessly.

    Raises:
        SchemaError: a NOT NULL column has nulls (or is missing), or a value does not fit.
    """
    import pyarrow as pa

    arrays = []
    for target in schema:
        index = batch.schema.get_field_index(target.name)
        if index == -1:
            if not target.nullable and batch.num_rows:
                raise SchemaError(
                    f"column {target.name!r} is NOT NULL in the table but missing from the data",
                    column=target.name,
                )
            arrays.append(pa.nulls(batch.num_rows, target.type))
            continue
        column = batch.column(index)
        if not target.nullable and column.null_count:
            raise SchemaError(
                f"column {target.name!r} is NOT NULL in the table but the data has "
                f"{column.null_count} null(s)",
                column=target.name,
            )
        if column.type != target.type:
            try:
                column = column.cast(target.type, safe=True)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise SchemaError(
                    f"column {target.name!r}: cannot store {column.type} values as "
                    f"{target.type}: {exc}",
                    column=target.name,
                    old_type=str(target.type),
                    new_type=str(column.type),
                ) from exc
        arrays.append(column)
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def write_data_files(
    store: ObjectStore,
    location: str,
    reader: pa.RecordBatchReader,
    *,
    schema: pa.Schema,
    schema_id: int,
    spec: PartitionSpec,
    options: WriteOptions,
) -> list[DataFile]:
    """Stream ``reader`` into new Parquet files under ``location``; return what was written.

    Every batch is conformed to ``schema`` (the table's schema after evolution). Partition
    directories are computed from ``spec``; transform partitions (``day(ts)``...) appear only in
    the directory names, identity partitions are stored in the path (Hive style) and not in the
    file.
    """
    import pyarrow as pa
    import pyarrow.dataset as ds

    derived = [f for f in spec.fields if not (f.transform == "identity" and f.name == f.source)]
    first = _first_batch(reader)
    if first is None:
        return []
    bytes_per_row = max(1.0, first.nbytes / max(1, first.num_rows) * 0.3)
    rows_per_file = max(options.row_group_size, int(options.target_file_size / bytes_per_row))

    out_schema = schema
    if spec.fields:
        from lakekit.tables.transforms import partition_columns

        sample = partition_columns(conform_batch(first, schema), spec)
        for field in derived:
            out_schema = out_schema.append(pa.field(field.name, sample[field.name].type))
        part_schema = pa.schema([out_schema.field(f.name) for f in spec.fields])
        partitioning: ds.Partitioning | None = ds.HivePartitioning(
            part_schema, null_fallback=NULL_PARTITION
        )
    else:
        partitioning = None

    def batches() -> Iterator[pa.RecordBatch]:
        for raw in _chain(first, reader):
            if raw.num_rows:
                yield _with_partition_columns(conform_batch(raw, schema), spec, derived)

    written: list[DataFile] = []

    def visit(file: Any) -> None:
        written.append(_data_file(file, location, spec, schema, schema_id))

    fs = store.arrow_filesystem
    fmt = ds.ParquetFileFormat()
    string_columns = [
        f.name for f in out_schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)
    ]
    file_options = fmt.make_write_options(
        compression=options.compression,
        compression_level=options.compression_level,
        use_dictionary=string_columns,
    )
    prefix = uuid.uuid4().hex
    ds.write_dataset(
        pa.RecordBatchReader.from_batches(out_schema, batches()),
        base_dir=location,
        filesystem=fs,
        format=fmt,
        file_options=file_options,
        partitioning=partitioning,
        basename_template=f"part-{prefix}-{{i}}.parquet",
        existing_data_behavior="overwrite_or_ignore",
        max_rows_per_file=rows_per_file,
        min_rows_per_group=min(options.row_group_size, rows_per_file),
        max_rows_per_group=options.row_group_size,
        max_open_files=options.max_open_files,
        file_visitor=visit,
        create_dir=True,
    )
    written.sort(key=lambda f: f.key)
    return written


def _with_partition_columns(
    batch: pa.RecordBatch, spec: PartitionSpec, derived: list[PartitionField]
) -> pa.RecordBatch:
    if not derived:
        return batch
    from lakekit.tables.transforms import partition_columns

    values = partition_columns(batch, spec)
    for field in derived:
        batch = batch.append_column(field.name, values[field.name])
    return batch


def _first_batch(reader: pa.RecordBatchReader) -> pa.RecordBatch | None:
    for batch in reader:
        if batch.num_rows:
            return batch
    return None


def _chain(first: pa.RecordBatch, reader: pa.RecordBatchReader) -> Iterator[pa.RecordBatch]:
    yield first
    yield from reader


def _data_file(
    file: Any, location: str, spec: PartitionSpec, schema: pa.Schema, schema_id: int
) -> DataFile:
    key = str(file.path).lstrip("/")
    metadata: pq.FileMetaData = file.metadata
    return DataFile(
        key=key,
        partition=partition_of(key, location, spec),
        record_count=metadata.num_rows,
        file_size=int(file.size),
        schema_id=schema_id,
        stats=_stats(metadata, schema),
    )


def partition_of(key: str, location: str, spec: PartitionSpec) -> dict[str, str | None]:
    """The Hive partition values encoded in a data file's key (URI-decoded; null as None)."""
    names = {f.name for f in spec.fields}
    relative = key[len(location) + 1 :] if key.startswith(location + "/") else key
    values: dict[str, str | None] = {}
    for segment in relative.split("/")[:-1]:
        name, sep, raw = segment.partition("=")
        if sep and name in names:
            values[name] = None if raw == NULL_PARTITION else unquote(raw)
    return values


def _stats(metadata: pq.FileMetaData, schema: pa.Schema) -> dict[str, ColumnStats]:
    """Merge the row groups' column statistics into per-file bounds and null counts."""
    import pyarrow as pa

    names = set(schema.names)
    nulls: dict[str, int | None] = {}
    bounds: dict[str, tuple[Any, Any] | None] = {}
    for rg in range(metadata.num_row_groups):
        group = metadata.row_group(rg)
        for col in range(group.num_columns):
            chunk = group.column(col)
            name = chunk.path_in_schema
            if name not in names:
                continue
            stats = chunk.statistics
            count = nulls.get(name, 0)
            nulls[name] = (
                count + stats.null_count
                if count is not None and stats is not None and stats.has_null_count
                else None
            )
            if stats is None or not stats.has_min_max:
                all_null = stats is not None and stats.has_null_count and (
                    stats.null_count == chunk.num_values
                )
                if not all_null:  # a row group with values but no bounds: no file bounds
                    bounds[name] = None
                else:
                    bounds.setdefault(name, (None, None))
                continue
            current = bounds.get(name, (None, None))
            if current is None:
                continue
            lo, hi = current
            bounds[name] = (
                stats.min if lo is None or stats.min < lo else lo,
                stats.max if hi is None or stats.max > hi else hi,
            )
    result: dict[str, ColumnStats] = {}
    for name, count in nulls.items():
        pair = bounds.get(name)
        if pair is None or not _orderable(schema.field(name).type, pa):
            result[name] = ColumnStats(null_count=count)
        else:
            result[name] = ColumnStats(null_count=count, min=_render(pair[0]), max=_render(pair[1]))
    return result


def _orderable(field_type: pa.DataType, pa: Any) -> bool:
    return bool(
        pa.types.is_integer(field_type)
        or pa.types.is_floating(field_type)
        or pa.types.is_decimal(field_type)
        or pa.types.is_date(field_type)
        or pa.types.is_timestamp(field_type)
        or pa.types.is_string(field_type)
        or pa.types.is_large_string(field_type)
        or pa.types.is_boolean(field_type)
    )


def _render(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return None if value != value else repr(value)  # NaN bounds are useless
    if isinstance(value, int | Decimal):
        return str(value)
    if isinstance(value, str):
        return value if len(value) <= _MAX_STAT_CHARS else None
    if isinstance(value, bytes):
        return None
    return value.isoformat() if hasattr(value, "isoformat") else None
