"""Table maintenance: compaction, snapshot expiry, vacuum, and adopting existing Parquet data.

Use them through :class:`~lakekit.tables.table.Table` (``table.compact()``,
``table.expire_snapshots(...)``, ``table.vacuum()``) and ``lake.register_table(...)``.

Space is reclaimed in two steps, as in Iceberg: ``expire_snapshots`` forgets old snapshots
(time travel to them ends; their files stay), then ``vacuum`` deletes every file under the table's
location that no retained snapshot references. ``vacuum`` also removes the files of writers that
crashed before committing.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from lakekit.errors import (
    AlreadyExistsError,
    CommitConflictError,
    InvalidInputError,
    LakekitError,
    NotFoundError,
    SchemaError,
)
from lakekit.tables.metadata import (
    METADATA_DIR,
    METADATA_PROPERTY,
    DataFile,
    Snapshot,
    TableState,
    new_snapshot_id,
    now_ms,
    read_manifest,
    schema_id_of,
    write_manifest,
    write_state,
)

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from lakekit.identifiers import TableIdent
    from lakekit.interfaces.catalog import Catalog
    from lakekit.interfaces.object_store import ObjectMeta, ObjectStore
    from lakekit.partition_spec import PartitionSpec
    from lakekit.tables.table import Table, _Plan

__all__ = ["compact", "expire_snapshots", "plan_compaction", "register_table", "vacuum"]

_MAX_ATTEMPTS = 12


# -- compact ----------------------------------------------------------------------------------


def compact(
    table: Table, *, target_file_size: int | None = None, min_files: int = 2
) -> Snapshot | None:
    """Rewrite small files into files of about ``target_file_size`` bytes, per partition.

    A partition is compacted when it has at least ``min_files`` files smaller than the target
    and rewriting them would produce fewer files; its small files are read (with the table's
    current schema) and written again, and the swap is one atomic snapshot (operation
    ``compact``). Rows and query results are unchanged; older snapshots still read the old
    files until they are expired and vacuumed.

    Concurrency: concurrent appends (and any commit not touching the rewritten files) re-base;
    if another commit removed a file this compaction rewrote, it raises CommitConflictError and
    deletes what it wrote.

    Returns:
        The new snapshot, or None when no partition needed compacting.

    Raises:
        InvalidInputError: ``min_files`` < 2 or a ``target_file_size`` below 1 KiB.
        CommitConflictError: see above.
    """
    planned = plan_compaction(table, target_file_size=target_file_size, min_files=min_files)
    if planned is None:
        return None
    plan, base, base_files = planned
    return table._commit(plan, base_snapshot_id=base.snapshot_id, base_files=base_files)


def plan_compaction(
    table: Table, *, target_file_size: int | None = None, min_files: int = 2
) -> tuple[_Plan, Snapshot, tuple[DataFile, ...]] | None:
    """The first half of :func:`compact`: write the compacted files and return the plan to
    commit, with the snapshot (and its files) it was computed from; None if nothing to do."""
    from lakekit.tables.scan import build_dataset
    from lakekit.tables.table import _Plan
    from lakekit.tables.writer import WriteOptions, write_data_files

    if min_files < 2:
        raise InvalidInputError("min_files must be at least 2 (one file cannot be compacted)")
    options = (
        WriteOptions()
        if target_file_size is None
        else WriteOptions(target_file_size=target_file_size)
    )
    target = options.target_file_size
    _, state = table._load()
    base = state.current_snapshot
    if base is None:
        return None
    store = table._store
    base_files = read_manifest(store, base.manifest)
    groups: dict[tuple[tuple[str, str | None], ...], list[DataFile]] = {}
    for data_file in base_files:
        if data_file.file_size < target:
            groups.setdefault(tuple(sorted(data_file.partition.items())), []).append(data_file)
    selected: list[DataFile] = []
    for files in groups.values():
        size = sum(f.file_size for f in files)
        if len(files) >= min_files and math.ceil(size / target) < len(files):
            selected.extend(files)
    if not selected:
        return None
    dataset = build_dataset(store, selected, state.schema, state.partition_spec)
    added = write_data_files(
        store, state.location, dataset.scanner(fragment_readahead=2).to_reader(),
        schema=state.schema, schema_id=state.current_schema_id, spec=state.partition_spec,
        options=options,
    )  # fmt: skip
    rewritten = {f.key for f in selected}

    def removes(files: Sequence[DataFile]) -> set[str]:
        return {f.key for f in files if f.key in rewritten}

    def conflicts(added_since: list[DataFile], removed_since: list[DataFile]) -> bool:
        return any(f.key in rewritten for f in removed_since)

    plan = _Plan(
        operation="compact",
        added=tuple(added),
        removes=removes,
        conflicts=conflicts,
        schema=state.schema,
        set_state={},
    )
    return plan, base, base_files


# -- expire_snapshots -------------------------------------------------------------------------


def expire_snapshots(
    table: Table, *, older_than: datetime | timedelta, keep_last: int = 1
) -> list[int]:
    """Forget the snapshots committed before ``older_than``, keeping the current one and the
    ``keep_last`` newest snapshots of the current lineage.

    One atomic commit of a new metadata file (catalog compare-and-swap; recomputed and retried
    when a concurrent commit wins). Expired snapshots can no longer be read or rolled back to
    (NotFoundError); their manifests and the data files only they referenced stay on storage
    until :func:`vacuum` deletes them. Idempotent.

    Args:
        older_than: a cutoff time (naive means UTC) or an age (``timedelta(days=7)``).
        keep_last: how many of the newest snapshots of the lineage to keep whatever their age
            (at least 1: the current snapshot is never expired).

    Returns:
        The ids of the expired snapshots, sorted.

    Raises:
        InvalidInputError: ``keep_last`` < 1 or a bad ``older_than``.
        CommitConflictError: lost the commit race too many times.
    """
    from lakekit.interfaces.catalog import TableUpdate

    if isinstance(keep_last, bool) or not isinstance(keep_last, int) or keep_last < 1:
        raise InvalidInputError("keep_last must be an int >= 1 (the current snapshot is kept)")
    cutoff_ms = int(_cutoff(older_than).timestamp() * 1000)
    store = table._store
    for attempt in range(_MAX_ATTEMPTS):
        metadata, state = table._load()
        keep = {s.snapshot_id for s in state._lineage()[:keep_last]}
        if state.current_snapshot_id is not None:
            keep.add(state.current_snapshot_id)
        expired = [
            s for s in state.snapshots if s.snapshot_id not in keep and s.timestamp_ms < cutoff_ms
        ]
        if not expired:
            return []
        gone = {s.snapshot_id for s in expired}
        new_state = replace(
            state, snapshots=tuple(s for s in state.snapshots if s.snapshot_id not in gone)
        )
        key = write_state(store, new_state)
        try:
            table._catalog.commit(
                table.ident, metadata.version, TableUpdate(set_properties={METADATA_PROPERTY: key})
            )
        except CommitConflictError:
            store.delete(key)
            time.sleep(random.uniform(0, 0.005 * 2 ** min(attempt, 8)))  # noqa: S311
            continue
        return sorted(gone)
    raise CommitConflictError(
        f"expire_snapshots on {table.ident} lost the commit race {_MAX_ATTEMPTS} times"
    )


def _cutoff(older_than: datetime | timedelta) -> datetime:
    if isinstance(older_than, timedelta):
        if older_than < timedelta(0):
            raise InvalidInputError("older_than must not be a negative age")
        return datetime.now(UTC) - older_than
    if isinstance(older_than, datetime):
        return older_than if older_than.tzinfo else older_than.replace(tzinfo=UTC)
    raise InvalidInputError(
        f"older_than must be a datetime or a timedelta, got {type(older_than).__name__}"
    )


# -- vacuum -----------------------------------------------------------------------------------


def vacuum(table: Table, *, older_than: timedelta = timedelta(hours=1)) -> list[str]:
    """Delete the files under the table's location that no retained snapshot references.

    Deleted: data files, manifests and metadata files that are unreferenced and were last
    modified more than ``older_than`` ago. Never deleted: the current metadata file, the
    manifest of every retained snapshot and every data file it lists, anything younger than
    ``older_than``, and hidden objects of other tools (a path segment starting with ``_`` or
    ``.``, such as ``_SUCCESS`` or ``.part-0.crc``; lakekit's own ``_lakekit/metadata`` and
    ``_lakekit/manifests`` are the exception).

    The grace period protects work in flight: a writer puts its data files (and its next
    metadata file) on storage *before* its commit references them, and a reader that loaded
    the previous metadata file may still open it. Both look unreferenced to vacuum, so keep
    ``older_than`` longer than your longest write or read (the default is one hour; ``timedelta(0)``
    is only safe when nothing else uses the table). Objects are listed before the references
    are read, so a commit that lands during the vacuum only matters within the grace period.

    Returns:
        The deleted keys, sorted.

    Raises:
        InvalidInputError: a negative ``older_than``.
    """
    if not isinstance(older_than, timedelta) or older_than < timedelta(0):
        raise InvalidInputError("older_than must be a non-negative timedelta")
    store = table._store
    location = table._load()[1].location
    prefix = location + "/"
    listed = list(store.list(prefix))
    metadata, state = table._load()
    referenced = {metadata.properties[METADATA_PROPERTY]}
    for snapshot in state.snapshots:
        referenced.add(snapshot.manifest)
        referenced.update(f.key for f in read_manifest(store, snapshot.manifest))
    cutoff = datetime.now(UTC) - older_than
    doomed = sorted(
        meta.key
        for meta in listed
        if meta.key not in referenced and _older(meta, cutoff) and _collectable(meta.key, prefix)
    )
    if doomed:
        store.delete(doomed)
    return doomed


def _older(meta: ObjectMeta, cutoff: datetime) -> bool:
    modified = meta.last_modified
    if modified.tzinfo is None:
        modified = modified.replace(tzinfo=UTC)
    return modified <= cutoff


def _collectable(key: str, prefix: str) -> bool:
    relative = key[len(prefix) :]
    if relative.startswith((f"{METADATA_DIR}/metadata/", f"{METADATA_DIR}/manifests/")):
        return True
    return not _hidden(relative)


def _hidden(relative: str) -> bool:
    return any(segment.startswith(("_", ".")) for segment in relative.split("/"))


# -- register ---------------------------------------------------------------------------------


def register_table(
    name: str | TableIdent,
    path: str,
    *,
    catalog: Catalog,
    store: ObjectStore,
    format: str = "parquet",
    partitioning: str | None = "hive",
) -> Table:
    """Adopt the Parquet files under ``path`` (a key prefix of the lake) as a new table, in place.

    * Files: every object under ``path`` except hidden ones (a path segment starting with ``_``
      or ``.``, as Hive readers skip: ``_SUCCESS``, ``_temporary/``, ``.crc`` files). Each must
      be Parquet; only its footer is read. Nothing is copied or rewritten.
    * Partitions (``partitioning="hive"``): the ``key=value`` directory levels, which must be
      the same keys in the same order for every file, become identity partition fields. Values
      are URI-decoded; ``__HIVE_DEFAULT_PARTITION__`` is null. A partition column is typed
      ``int64`` when every non-null value is a canonical integer (``7``, ``-3``; not ``007``),
      else ``string`` (no date inference: ``dt=2026-11-26`` stays a string, so values
      round-trip exactly). If the files also hold that column, its file type wins. With
      ``partitioning=None`` directory names carry no data.
    * Schema: the union of the files' schemas (lossless widening only, e.g. int32 and int64 ->
      int64); a column missing from some files is nullable; dictionary columns take their
      value type; schema metadata is dropped.
    * Statistics: row counts and per-column null counts/min/max from each footer, so scans and
      merges prune the adopted files like lakekit-written ones.

    The table's location is ``path``; its first snapshot (operation ``register``) lists the
    files. Later writes add files under ``path``; ``vacuum`` may delete adopted files once no
    retained snapshot references them (after an overwrite, say), like any table file.

    Raises:
        InvalidInputError: ``format`` is not ``"parquet"``, unknown ``partitioning``, a bad
            path, a file that is not Parquet, inconsistent partition directories, or ``path``
            overlapping another table's location.
        NotFoundError: no data files under ``path``.
        AlreadyExistsError: the table exists.
        SchemaError: the files' schemas cannot be unified (names the column and the file).
    """
    from lakekit._keys import validate_prefix
    from lakekit.identifiers import TableIdent
    from lakekit.partition_spec import PartitionSpec
    from lakekit.schema import check_schema
    from lakekit.tables.table import Table

    if format != "parquet":
        raise InvalidInputError(
            f"register_table adopts Parquet files only; format {format!r} is not supported"
        )
    if partitioning not in ("hive", None):
        raise InvalidInputError(f"unknown partitioning {partitioning!r}: use 'hive' or None")
    ident = TableIdent.parse(name)
    if not isinstance(path, str) or not path.strip("/"):
        raise InvalidInputError("register_table needs the key prefix of a directory of files")
    validate_prefix(path)
    location = path.strip("/")
    if catalog.table_exists(ident):
        raise AlreadyExistsError(f"table {ident} already exists")
    check_no_overlap(catalog, location)

    prefix = location + "/"
    objects = [m for m in store.list(prefix) if not _hidden(m.key[len(prefix) :])]
    if not objects:
        raise NotFoundError(f"no data files under {path!r} (hidden _/. files are ignored)")
    names = _partition_names(objects, prefix) if partitioning == "hive" else []
    footers = [_footer(store, meta.key) for meta in objects]
    schema = _unified_schema(objects, footers, names, prefix)
    check_schema(schema)
    spec = PartitionSpec.of(*names)
    schema_id = schema_id_of(schema, {})
    schemas: dict[int, pa.Schema] = {schema_id: schema}
    files = [
        _adopted_file(
            meta, footer=footer, location=location, spec=spec, schema=schema,
            schema_id=_file_schema_id(footer, schema, names, schemas),
        )
        for meta, footer in zip(objects, footers, strict=True)
    ]  # fmt: skip
    state = TableState(
        table_uuid=_uuid(),
        location=location,
        schemas=schemas,
        current_schema_id=schema_id,
        partition_spec=spec,
    )
    written: list[str] = []
    try:
        manifest = write_manifest(store, location, files)
        written.append(manifest)
        snapshot = Snapshot(
            snapshot_id=new_snapshot_id(),
            parent_id=None,
            sequence_number=1,
            timestamp_ms=now_ms(),
            operation="register",
            manifest=manifest,
            schema_id=schema_id,
            summary={
                "added_files": len(files),
                "removed_files": 0,
                "added_rows": sum(f.record_count for f in files),
                "removed_rows": 0,
                "total_files": len(files),
                "total_rows": sum(f.record_count for f in files),
            },
        )
        key = write_state(store, state.with_snapshot(snapshot))
        written.append(key)
        catalog.create_table(
            ident, schema, partition_by=spec, location=location,
            properties={METADATA_PROPERTY: key},
        )  # fmt: skip
    except BaseException:
        store.delete(written)
        raise
    return Table(ident, catalog=catalog, store=store)


def _uuid() -> str:
    import uuid

    return uuid.uuid4().hex


def check_no_overlap(catalog: Catalog, location: str) -> None:
    """Two tables sharing files would each vacuum the other's: refuse nested locations."""
    for other in catalog.list_tables():
        try:
            existing = catalog.load_table(other).location.strip("/")
        except NotFoundError:  # dropped meanwhile
            continue
        if (
            existing == location
            or location.startswith(existing + "/")
            or (existing.startswith(location + "/"))
        ):
            raise InvalidInputError(
                f"{location!r} overlaps the location {existing!r} of table {other}; a table "
                "must own its directory (register a directory no other table uses)"
            )


def _partition_names(objects: Sequence[ObjectMeta], prefix: str) -> list[str]:
    names: list[str] | None = None
    first = ""
    for meta in objects:
        relative = meta.key[len(prefix) :]
        found = [seg.split("=", 1)[0] for seg in relative.split("/")[:-1] if "=" in seg]
        if names is None:
            names, first = found, relative
        elif found != names:
            raise InvalidInputError(
                f"inconsistent Hive partition directories under {prefix!r}: {first!r} has "
                f"keys {names} but {relative!r} has {found}; every file needs the same "
                "key=value levels (or pass partitioning=None)"
            )
    return names or []


def _footer(store: ObjectStore, key: str) -> pq.FileMetaData:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        with store.open(key) as stream:
            return pq.read_metadata(stream)
    except (pa.ArrowInvalid, OSError) as exc:
        if isinstance(exc, LakekitError):
            raise
        raise InvalidInputError(
            f"{key} is not a readable Parquet file ({exc}); move it out of the directory or "
            "prefix its name with '_' so that readers skip it"
        ) from exc


def _unified_schema(
    objects: Sequence[ObjectMeta],
    footers: Sequence[pq.FileMetaData],
    partition_names: list[str],
    prefix: str,
) -> pa.Schema:
    import pyarrow as pa

    from lakekit.schema import evolve_schema

    schemas = [_plain(footer.schema.to_arrow_schema()) for footer in footers]
    counts: dict[str, int] = {}
    for schema in schemas:
        for field_name in schema.names:
            counts[field_name] = counts.get(field_name, 0) + 1
    unified: pa.Schema | None = None
    for meta, schema in zip(objects, schemas, strict=True):
        relaxed = pa.schema(
            [f if counts[f.name] == len(schemas) else f.with_nullable(True) for f in schema]
        )
        try:
            unified = relaxed if unified is None else evolve_schema(unified, relaxed)
        except SchemaError as exc:
            raise SchemaError(
                f"cannot unify the schema of {meta.key} with the other files: {exc}",
                column=exc.column,
                old_type=exc.old_type,
                new_type=exc.new_type,
            ) from exc
    assert unified is not None
    for field_name in partition_names:
        if field_name in unified.names:
            continue
        values = [_partition_value(meta.key, prefix, field_name) for meta in objects]
        unified = unified.append(pa.field(field_name, _partition_type(values), nullable=True))
    return unified


def _plain(schema: pa.Schema) -> pa.Schema:
    """``schema`` without metadata and with dictionary types decoded."""
    import pyarrow as pa

    fields = []
    for field in schema:
        field_type = field.type
        if pa.types.is_dictionary(field_type):
            field_type = field_type.value_type
        fields.append(pa.field(field.name, field_type, nullable=field.nullable))
    return pa.schema(fields)


def _partition_value(key: str, prefix: str, name: str) -> str | None:
    from urllib.parse import unquote

    from lakekit.tables.writer import NULL_PARTITION

    for segment in key[len(prefix) :].split("/")[:-1]:
        field_name, sep, raw = segment.partition("=")
        if sep and field_name == name:
            return None if raw == NULL_PARTITION else unquote(raw)
    return None


def _partition_type(values: Sequence[str | None]) -> pa.DataType:
    import pyarrow as pa

    present = [v for v in values if v is not None]
    if present and all(_canonical_int(v) for v in present):
        return pa.int64()
    return pa.string()


def _canonical_int(text: str) -> bool:
    try:
        number = int(text)
    except ValueError:
        return False
    return str(number) == text and -(2**63) <= number < 2**63


def _file_schema_id(
    footer: pq.FileMetaData, schema: pa.Schema, partition_names: list[str],
    schemas: dict[int, pa.Schema],
) -> int:  # fmt: skip
    """The table's schema id if the file holds exactly its data columns (as lakekit's own files
    do), else the id of the file's own schema, recorded in ``schemas``: engines then know to map
    this file's columns instead of reading all files as one schema."""
    import pyarrow as pa

    data_fields = [f for f in schema if f.name not in partition_names]
    own = footer.schema.to_arrow_schema().remove_metadata()
    if own.equals(pa.schema(data_fields)):
        return schema_id_of(schema, schemas)
    file_schema = pa.schema([*own, *(schema.field(n) for n in partition_names)])
    sid = schema_id_of(file_schema, schemas)
    schemas[sid] = file_schema
    return sid


def _adopted_file(
    meta: ObjectMeta,
    *,
    footer: pq.FileMetaData,
    location: str,
    spec: PartitionSpec,
    schema: pa.Schema,
    schema_id: int,
) -> DataFile:
    from lakekit.tables.writer import _stats, partition_of

    return DataFile(
        key=meta.key,
        partition=partition_of(meta.key, location, spec),
        record_count=footer.num_rows,
        file_size=meta.size,
        schema_id=schema_id,
        stats=_stats(footer, schema),
    )
