"""Merge (upsert) by key columns, copy-on-write.

``table.merge(data, on=["id"])`` replaces every existing row whose key appears in ``data`` by the
row of ``data`` and inserts the rows with new keys; rows whose ``delete_column`` flag is true
delete the matching rows instead (and are not inserted). The whole merge is one snapshot. Keys
compare by value (nulls never match; null keys in the data are refused); when the table already
holds several rows with one key, all of them are replaced.

How (each step streams; nothing holds the table or the incoming data in memory):

1. The incoming rows are streamed into new data files (minus the rows flagged for deletion,
   without the flag column); the key columns of every incoming row are collected on the way.
   Memory: O(distinct incoming keys) for the key set, plus one batch.
2. Duplicate keys in the incoming data make the upsert ambiguous: InvalidInputError naming one
   (the files of step 1 are deleted). Null keys are refused the same way.
3. Candidate files: existing files whose key-column min/max statistics (or identity-partition
   values) can hold an incoming key. Each key column is checked on its own with a sort-based
   range count (O((keys + files) log(keys + files)), no per-file scan of the key set), so a
   file passes only if every key column has an incoming value inside the file's bounds.
4. The key columns of the candidates are streamed through one hash join (Arrow Acero, the key
   set is the build side, built once) to find the rows that match; files with no matching row
   are left untouched.
5. Each file with matches is rewritten without its matching rows (one file at a time, filtered
   by row position), into new files.

Commit: the rewritten files are removed and every written file is added. The merge conflicts
(CommitConflictError) when, since the snapshot it read, another commit removed a file it
rewrote, or added a file whose statistics can hold one of its keys (which could duplicate a
key); unrelated concurrent commits re-base.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

from lakekit.errors import InvalidInputError

if TYPE_CHECKING:
    import pyarrow as pa

    from lakekit.interfaces.catalog import JSONValue
    from lakekit.interfaces.object_store import ObjectStore
    from lakekit.partition_spec import PartitionSpec
    from lakekit.tables.metadata import DataFile, TableState
    from lakekit.tables.table import _Plan
    from lakekit.tables.writer import WriteOptions

__all__ = ["plan_merge"]

_FILE = "__lakekit_file"
_POS = "__lakekit_pos"


def plan_merge(
    store: ObjectStore,
    state: TableState,
    base_files: Sequence[DataFile],
    reader: pa.RecordBatchReader,
    *,
    on: Sequence[str],
    delete_column: str | None,
    schema: pa.Schema,
    schema_id: int,
    options: WriteOptions,
    set_state: Mapping[str, JSONValue],
) -> _Plan:
    """Write the files of a merge of ``reader`` into the snapshot whose files are
    ``base_files``; return the plan to commit.

    Args:
        on: the key columns; they must be columns of the table and of the data.
        delete_column: a boolean column of the data; a true flag deletes the matching rows.
            A null flag counts as false. The column is not written.
        schema: the table schema after evolution by the data (without ``delete_column``).

    If this raises, nothing is committed and every file it wrote is deleted (the writer removes
    the files of a write interrupted mid-stream, e.g. by a null key or a value that does not fit).

    Raises:
        InvalidInputError: a key column is missing from the table or the data, is nested, or
            holds nulls (or NaN); a key appears twice in the data; ``delete_column`` is a key or
            a table column.
    """
    from lakekit.tables.table import _Plan
    from lakekit.tables.writer import write_data_files

    keys = list(on)
    _check_keys(keys, state.schema, reader.schema, delete_column)
    collector = _KeyCollector(keys, schema)
    inserts = collector.stream(reader, schema, delete_column)
    added = write_data_files(
        store, state.location, inserts, schema=schema, schema_id=schema_id,
        spec=state.partition_spec, options=options,
    )  # fmt: skip
    written = list(added)
    try:
        key_table = collector.finish()
        if key_table.num_rows == 0 or not base_files:
            rewritten: set[str] = set()
        else:
            candidates = [
                f
                for f, hit in zip(
                    base_files,
                    may_hold_keys(base_files, key_table, schema, state.partition_spec),
                    strict=True,
                )
                if hit
            ]
            matches = _matching_rows(store, candidates, key_table, schema, state.partition_spec)
            rewritten = {candidates[i].key for i in matches}
            if matches:
                remaining = _without_rows(store, candidates, matches, schema, state.partition_spec)
                written += write_data_files(
                    store, state.location, remaining, schema=schema, schema_id=schema_id,
                    spec=state.partition_spec, options=options,
                )  # fmt: skip
    except BaseException:
        store.delete([f.key for f in written])
        raise

    spec = state.partition_spec

    def removes(files: Sequence[DataFile]) -> set[str]:
        return {f.key for f in files if f.key in rewritten}

    def conflicts(added_since: list[DataFile], removed_since: list[DataFile]) -> bool:
        if any(f.key in rewritten for f in removed_since):
            return True
        if not added_since or key_table.num_rows == 0:
            return False
        return any(may_hold_keys(added_since, key_table, schema, spec))

    return _Plan(
        operation="merge",
        added=tuple(written),
        removes=removes,
        conflicts=conflicts,
        schema=schema,
        set_state=set_state,
    )


# -- input checks and key collection -------------------------------------------------------------


def _check_keys(
    on: list[str], table_schema: pa.Schema, data_schema: pa.Schema, delete_column: str | None
) -> None:
    import pyarrow as pa

    if not on or not all(isinstance(c, str) for c in on):
        raise InvalidInputError("merge needs at least one key column name in `on=[...]`")
    if len(set(on)) != len(on):
        raise InvalidInputError(f"merge key columns repeat a name: {on}")
    if delete_column is not None:
        if delete_column in on:
            raise InvalidInputError(f"delete_column {delete_column!r} cannot be a key column")
        if delete_column in table_schema.names:
            raise InvalidInputError(
                f"delete_column {delete_column!r} is a column of the table; name the flag "
                "column differently (it is not written)"
            )
    for column in on:
        if column not in table_schema.names:
            raise InvalidInputError(
                f"merge key {column!r} is not a column of the table "
                f"(columns: {', '.join(table_schema.names)})"
            )
        if column not in data_schema.names:
            raise InvalidInputError(f"merge key {column!r} is missing from the data")
        column_type = table_schema.field(column).type
        if pa.types.is_nested(column_type):
            raise InvalidInputError(
                f"merge key {column!r} has the nested type {column_type}; keys must be "
                "scalar columns (numbers, strings, dates, timestamps, ...)"
            )


class _KeyCollector:
    """Collects the key columns of the incoming rows while they stream to the writer."""

    def __init__(self, on: list[str], schema: pa.Schema) -> None:
        import pyarrow as pa

        self._on = on
        self._key_schema = pa.schema([schema.field(c).with_nullable(False) for c in on])
        self._chunks: list[pa.RecordBatch] = []

    def stream(
        self, reader: pa.RecordBatchReader, schema: pa.Schema, delete_column: str | None
    ) -> pa.RecordBatchReader:
        """A reader of the rows to insert (conformed to ``schema``); collects keys as it goes."""
        import pyarrow as pa
        import pyarrow.compute as pc

        from lakekit.tables.writer import conform_batch

        def batches() -> Iterator[pa.RecordBatch]:
            for raw in reader:
                if not raw.num_rows:
                    continue
                batch = conform_batch(raw, schema)
                self._collect(batch)
                if delete_column is not None:
                    flag = cast("pa.BooleanArray", raw.column(delete_column))
                    keep = cast(  # a null flag keeps the row
                        "pa.BooleanArray", pc.fill_null(pc.invert(flag), pa.scalar(True))
                    )
                    batch = batch.filter(keep)
                if batch.num_rows:
                    yield batch

        return pa.RecordBatchReader.from_batches(schema, batches())

    def _collect(self, batch: pa.RecordBatch) -> None:
        import pyarrow as pa
        import pyarrow.compute as pc

        arrays = []
        for name in self._on:
            column = batch.column(name)
            if column.null_count:
                raise InvalidInputError(
                    f"merge key {name!r} has {column.null_count} null value(s) in the data; "
                    "every row needs a key"
                )
            if pa.types.is_floating(column.type) and pc.any(pc.is_nan(column)).as_py():
                raise InvalidInputError(f"merge key {name!r} has NaN values in the data")
            arrays.append(column)
        self._chunks.append(pa.RecordBatch.from_arrays(arrays, schema=self._key_schema))

    def finish(self) -> pa.Table:
        """The collected keys.

        Raises:
            InvalidInputError: a key appears more than once.
        """
        import pyarrow as pa
        import pyarrow.compute as pc

        table = pa.Table.from_batches(self._chunks, schema=self._key_schema).combine_chunks()
        self._chunks = []
        if table.num_rows < 2:
            return table
        counts = table.group_by(self._on).aggregate([([], "count_all")])
        repeated = counts.filter(pc.greater(counts["count_all"], pa.scalar(1)))
        if repeated.num_rows:
            row = repeated.slice(0, 1).to_pylist()[0]
            shown = ", ".join(f"{c}={row[c]!r}" for c in self._on)
            raise InvalidInputError(
                f"the data to merge has {repeated.num_rows} duplicate key(s), e.g. ({shown}) "
                f"appears {row['count_all']} times; an upsert needs one row per key "
                "(deduplicate the data first)"
            )
        return table


# -- candidate files by statistics ---------------------------------------------------------------


def may_hold_keys(
    files: Sequence[DataFile], keys: pa.Table, schema: pa.Schema, spec: PartitionSpec
) -> list[bool]:
    """For each file: can it hold a row whose key is in ``keys``, judging by its identity
    partition values and its key columns' min/max statistics? Never False for a file that holds
    such a row; True when the file has no usable statistics."""
    import pyarrow as pa
    import pyarrow.compute as pc

    result = [True] * len(files)
    identity = {f.source: f.name for f in spec.fields if f.transform == "identity"}
    for column in keys.column_names:
        column_type = schema.field(column).type
        values = pc.unique(keys.column(column).combine_chunks())
        bounded: list[int] = []
        lows: list[str] = []
        highs: list[str] = []
        for index, data_file in enumerate(files):
            if not result[index]:
                continue
            if column in identity and identity[column] in data_file.partition:
                raw = data_file.partition[identity[column]]
                if raw is None:  # a null partition holds no non-null key
                    result[index] = False
                    continue
                lo: str | None = raw
                hi: str | None = raw
            else:
                stats = data_file.stats.get(column)
                lo, hi = (None, None) if stats is None else (stats.min, stats.max)
            if lo is not None and hi is not None:
                bounded.append(index)
                lows.append(lo)
                highs.append(hi)
        if not bounded:
            continue
        low_values = _typed_bounds(lows, column_type)
        high_values = _typed_bounds(highs, column_type)
        usable = [i for i in range(len(bounded)) if low_values[i] and high_values[i]]
        if not usable:
            continue
        lo_array = pa.array([low_values[i] for i in usable], pa.string()).cast(column_type)
        hi_array = pa.array([high_values[i] for i in usable], pa.string()).cast(column_type)
        below = _count_before(values, lo_array, inclusive=False)
        upto = _count_before(values, hi_array, inclusive=True)
        for slot, i in enumerate(usable):
            if upto[slot] - below[slot] <= 0:
                result[bounded[i]] = False
    return result


def _typed_bounds(texts: list[str], column_type: pa.DataType) -> list[str | None]:
    """The bounds that cast to ``column_type`` (None for the others: no pruning by them)."""
    import pyarrow as pa

    errors = (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError)
    try:
        pa.array(texts, pa.string()).cast(column_type)
        return list(texts)
    except errors:
        pass
    checked: list[str | None] = []
    for text in texts:
        try:
            pa.array([text], pa.string()).cast(column_type)
            checked.append(text)
        except errors:
            checked.append(None)
    return checked


def _count_before(values: pa.Array[Any], bounds: pa.Array[Any], *, inclusive: bool) -> list[int]:
    """For each bound: how many of ``values`` are < it (<= with ``inclusive``).

    One sort of values and bounds together, ties ordered so that a bound sorts before equal
    values (strict) or after them (inclusive); a bound's count is its position minus the number
    of bounds before it.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    n, m = len(values), len(bounds)
    value_tag, bound_tag = (0, 1) if inclusive else (1, 0)
    tags = pa.concat_arrays(
        [
            pa.nulls(n, pa.int8()).fill_null(value_tag),
            pa.nulls(m, pa.int8()).fill_null(bound_tag),
        ]
    )
    combined = pa.table({"v": pa.concat_arrays([values, bounds]), "t": tags})
    order = pc.sort_indices(combined, sort_keys=[("v", "ascending"), ("t", "ascending")])
    first_bound = pa.scalar(n, order.type)
    positions = pc.indices_nonzero(pc.greater_equal(order, first_bound))
    bound_ids = pc.subtract(pc.take(order, positions), first_bound)
    counts = [0] * m
    for rank, (position, bound) in enumerate(
        zip(
            cast("list[int]", positions.to_pylist()),
            cast("list[int]", bound_ids.to_pylist()),
            strict=True,
        )
    ):
        counts[bound] = position - rank
    return counts


# -- matching rows and rewriting -----------------------------------------------------------------


def _file_batches(
    store: ObjectStore,
    data_file: DataFile,
    schema: pa.Schema,
    spec: PartitionSpec,
    columns: list[str] | None,
) -> Iterator[pa.RecordBatch]:
    """The rows of one file read with the table schema, in file order (deterministic)."""
    from lakekit.tables.scan import build_dataset

    dataset = build_dataset(store, [data_file], schema, spec)
    yield from dataset.scanner(columns=columns, use_threads=False).to_batches()


def _matching_rows(
    store: ObjectStore,
    candidates: Sequence[DataFile],
    keys: pa.Table,
    schema: pa.Schema,
    spec: PartitionSpec,
) -> dict[int, pa.Array[Any]]:
    """Candidate index -> sorted row positions (within the file) whose key is in ``keys``.

    One streaming hash join: the candidates' key columns (plus file index and row position)
    probe a hash table built once from ``keys``.
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    from pyarrow import acero

    if not candidates:
        return {}
    on = keys.column_names
    join_keys: list[str | pc.Expression] = list(on)
    probe_schema = pa.schema(
        [*(schema.field(c) for c in on), pa.field(_FILE, pa.int32()), pa.field(_POS, pa.int64())]
    )

    def probe() -> Iterator[pa.RecordBatch]:
        for index, data_file in enumerate(candidates):
            offset = 0
            for batch in _file_batches(store, data_file, schema, spec, on):
                n = batch.num_rows
                if not n:
                    continue
                yield pa.RecordBatch.from_arrays(
                    [
                        *batch.columns,
                        pa.nulls(n, pa.int32()).fill_null(index),
                        _positions(offset, n),
                    ],
                    schema=probe_schema,
                )
                offset += n

    join = acero.Declaration(
        "hashjoin",
        acero.HashJoinNodeOptions(
            "left semi", left_keys=join_keys, right_keys=join_keys, left_output=[_FILE, _POS]
        ),
        inputs=[
            acero.Declaration(
                "record_batch_reader_source",
                acero.RecordBatchReaderSourceNodeOptions(  # type: ignore[attr-defined]  # stubs lag
                    pa.RecordBatchReader.from_batches(probe_schema, probe())
                ),
            ),
            acero.Declaration("table_source", acero.TableSourceNodeOptions(keys)),
        ],
    )
    hits = join.to_table(use_threads=False)
    if not hits.num_rows:
        return {}
    hits = hits.sort_by([(_FILE, "ascending"), (_POS, "ascending")])
    result: dict[int, pa.Array[Any]] = {}
    for index in cast("list[int]", pc.unique(hits[_FILE]).to_pylist()):
        rows = hits.filter(pc.equal(hits[_FILE], pa.scalar(index, pa.int32())))[_POS]
        result[index] = rows.combine_chunks()
    return result


def _without_rows(
    store: ObjectStore,
    candidates: Sequence[DataFile],
    matches: Mapping[int, pa.Array[Any]],
    schema: pa.Schema,
    spec: PartitionSpec,
) -> pa.RecordBatchReader:
    """The rows of the matched files, minus the matching rows, streamed file by file."""
    import pyarrow as pa
    import pyarrow.compute as pc

    def batches() -> Iterator[pa.RecordBatch]:
        for index in sorted(matches):
            drop = matches[index]
            offset = 0
            for batch in _file_batches(store, candidates[index], schema, spec, None):
                n = batch.num_rows
                if not n:
                    continue
                keep = pc.invert(pc.is_in(_positions(offset, n), value_set=drop))
                offset += n
                kept = batch.filter(keep)
                if kept.num_rows:
                    yield kept

    return pa.RecordBatchReader.from_batches(schema, batches())


def _positions(offset: int, n: int) -> pa.Array[Any]:
    import pyarrow as pa

    return pa.array(range(offset, offset + n), pa.int64())
