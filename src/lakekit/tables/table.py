"""Lake tables: partitioned Parquet data with atomic snapshots, committed through the catalog.

Guarantees:

* **Atomic commits.** A write adds new data files, then commits one snapshot by moving the
  catalog's metadata pointer with compare-and-swap. Readers see the old snapshot or the new one,
  never a mix. A writer that dies before the commit changes nothing visible (its files are
  unreferenced until ``vacuum`` deletes them).
* **Concurrent writers.** An append that loses the race re-bases onto the new snapshot and
  retries (appends never conflict with each other). Overwrites, partition overwrites, merges,
  compactions and rollbacks that would change data another writer just changed raise
  CommitConflictError instead of silently losing that writer's rows.
* **Schema evolution on write.** New nullable columns are added and lossless widenings applied
  (:func:`lakekit.schema.evolve_schema`); ``schema_mode="strict"`` refuses any change.
"""

from __future__ import annotations

import dataclasses
import random
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, Union, cast

from lakekit.errors import CommitConflictError, InvalidInputError
from lakekit.identifiers import TableIdent
from lakekit.interfaces.catalog import TableMetadata, TableUpdate
from lakekit.tables.metadata import (
    METADATA_PROPERTY,
    DataFile,
    Snapshot,
    TableState,
    new_snapshot_id,
    now_ms,
    read_manifest,
    read_state,
    schema_id_of,
    write_manifest,
    write_state,
)
from lakekit.tables.writer import WriteOptions, write_data_files

if TYPE_CHECKING:
    import pandas
    import polars
    import pyarrow as pa

    from lakekit.interfaces.catalog import Catalog, JSONValue
    from lakekit.interfaces.object_store import ObjectStore
    from lakekit.partition_spec import PartitionSpec
    from lakekit.tables.inputs import WriteData
    from lakekit.tables.scan import Filter

__all__ = ["SchemaMode", "Table", "WriteMode"]

WriteMode = Literal["append", "overwrite", "overwrite_partitions", "merge"]
StateUpdate = Union["Mapping[str, JSONValue]", "Callable[[], Mapping[str, JSONValue]]"]
"""State entries to commit with a write: a mapping, or a callable evaluated once the data has
been consumed (a streaming source knows its position only at the end)."""
SchemaMode = Literal["evolve", "strict"]
MAX_COMMIT_ATTEMPTS = 12


@dataclass(frozen=True, slots=True)
class _Plan:
    """What one write wants to change, re-applied to whatever snapshot is current at commit."""

    operation: str
    added: tuple[DataFile, ...]
    removes: Callable[[Sequence[DataFile]], set[str]]
    """Keys of the current files this operation replaces."""
    conflicts: Callable[[list[DataFile], list[DataFile]], bool]
    """Given the files added and removed since the base snapshot: would committing lose data?"""
    schema: pa.Schema
    set_state: Mapping[str, JSONValue]
    owns_added: bool = True
    """The added files were written by this operation (and are deleted if it cannot commit)."""


class Table:
    """A lake table (``lake.table("ns.events")``). Cheap to create; reads the catalog per call,
    so it always acts on the current snapshot."""

    def __init__(self, ident: TableIdent, *, catalog: Catalog, store: ObjectStore) -> None:
        self.ident = ident
        self._catalog = catalog
        self._store = store

    def __repr__(self) -> str:
        return f"Table({str(self.ident)!r})"

    # -- creation -------------------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        name: str | TableIdent,
        schema: pa.Schema,
        *,
        catalog: Catalog,
        store: ObjectStore,
        partition_by: PartitionSpec | Sequence[str] | None = None,
        location: str | None = None,
        properties: Mapping[str, str] | None = None,
        exist_ok: bool = False,
    ) -> Table:
        """Create an empty table: its first metadata file, then its catalog entry.

        Raises:
            AlreadyExistsError: the table exists and ``exist_ok`` is False.
            SchemaError, InvalidInputError: bad schema, partition columns, name or location.
        """
        from lakekit.errors import AlreadyExistsError
        from lakekit.interfaces.catalog import _as_partition_spec
        from lakekit.schema import check_schema

        ident = TableIdent.parse(name)
        check_schema(schema)
        spec = _as_partition_spec(partition_by)
        spec.check_columns(schema)
        loc = location or f"{catalog.default_location_prefix}/{ident.namespace}/{ident.name}"
        loc = loc.rstrip("/")
        if catalog.table_exists(ident):
            if exist_ok:
                return cls(ident, catalog=catalog, store=store)
            raise AlreadyExistsError(f"table {ident} already exists")
        from lakekit.tables.maintenance import check_no_overlap

        check_no_overlap(catalog, loc)
        schema_id = schema_id_of(schema, {})
        state = TableState(
            table_uuid=uuid.uuid4().hex,
            location=loc,
            schemas={schema_id: schema},
            current_schema_id=schema_id,
            partition_spec=spec,
        )
        key = write_state(store, state)
        try:
            catalog.create_table(
                ident,
                schema,
                partition_by=spec,
                location=loc,
                properties={**(properties or {}), METADATA_PROPERTY: key},
            )
        except AlreadyExistsError:
            store.delete(key)
            if exist_ok:
                return cls(ident, catalog=catalog, store=store)
            raise
        except BaseException:
            store.delete(key)
            raise
        return cls(ident, catalog=catalog, store=store)

    # -- state ----------------------------------------------------------------------------------
    def _load(self) -> tuple[TableMetadata, TableState]:
        metadata = self._catalog.load_table(self.ident)
        key = metadata.properties.get(METADATA_PROPERTY)
        if key is None:
            raise InvalidInputError(
                f"{self.ident} is a catalog entry without lakekit snapshots (made with "
                "catalog.create_table or another tool); adopt its files with "
                "lake.register_table(name, path) to use it as a lake table"
            )
        return metadata, read_state(self._store, key)

    @property
    def metadata(self) -> TableMetadata:
        """The catalog entry (location, schema, spec, properties, version)."""
        return self._catalog.load_table(self.ident)

    @property
    def schema(self) -> pa.Schema:
        return self._load()[1].schema

    @property
    def partition_spec(self) -> PartitionSpec:
        return self._load()[1].partition_spec

    @property
    def location(self) -> str:
        return self._load()[1].location

    def state(self) -> TableState:
        """The current metadata: schemas, partition spec, retained snapshots."""
        return self._load()[1]

    def current_snapshot(self) -> Snapshot | None:
        return self._load()[1].current_snapshot

    def history(self) -> list[Snapshot]:
        """The current snapshot's retained lineage, oldest first."""
        return list(reversed(self._load()[1]._lineage()))

    def snapshot(self, snapshot_id: int) -> Snapshot:
        return self._load()[1].snapshot(snapshot_id)

    def files(self, *, snapshot_id: int | None = None) -> list[DataFile]:
        """The data files of the current (or given) snapshot."""
        _, state = self._load()
        snap = state.snapshot(snapshot_id) if snapshot_id is not None else state.current_snapshot
        return [] if snap is None else list(read_manifest(self._store, snap.manifest))

    # -- writes ---------------------------------------------------------------------------------
    def append(self, data: WriteData, **kwargs: Any) -> Snapshot:
        """Add rows. Never conflicts with concurrent appends (it re-bases and retries)."""
        return self.write(data, mode="append", **kwargs)

    def overwrite(self, data: WriteData, **kwargs: Any) -> Snapshot:
        """Replace every row of the table with ``data``, atomically."""
        return self.write(data, mode="overwrite", **kwargs)

    def overwrite_partitions(self, data: WriteData, **kwargs: Any) -> Snapshot:
        """Replace only the partitions present in ``data``; other partitions are untouched."""
        return self.write(data, mode="overwrite_partitions", **kwargs)

    def merge(
        self, data: WriteData, *, on: Sequence[str], delete_column: str | None = None, **kwargs: Any
    ) -> Snapshot:
        """Upsert by the key columns ``on``: update matching rows, insert the others.

        With ``delete_column`` (a boolean column of ``data``), rows whose flag is true delete the
        matching rows instead (and are not inserted).
        """
        return self.write(data, mode="merge", on=on, delete_column=delete_column, **kwargs)

    def write(
        self,
        data: WriteData,
        mode: WriteMode = "append",
        *,
        on: Sequence[str] | None = None,
        delete_column: str | None = None,
        schema_mode: SchemaMode = "evolve",
        options: WriteOptions | None = None,
        set_state: StateUpdate | None = None,
        precondition: Callable[[], None] | None = None,
    ) -> Snapshot:
        """Write ``data`` with ``mode`` as one atomic snapshot.

        ``set_state`` entries are committed to the catalog's state area in the same atomic step
        (for exactly-once pipelines: the data and the source cursor move together). It may be a
        callable, evaluated after ``data`` has been consumed.

        ``precondition`` is called before every commit attempt (the first, and each retry
        after a concurrent commit moved the table on); if it raises, nothing is committed,
        this write's data files are deleted and the error propagates. Since a concurrent
        commit always forces another attempt, a precondition that checks catalog state holds
        at the moment of the commit (pipelines use it to refuse a second concurrent run).

        Raises:
            InvalidInputError: ``data`` is not Arrow-compatible or arguments are inconsistent.
            SchemaError: the data's schema cannot be merged into the table's (or differs at all,
                with ``schema_mode="strict"``).
            CommitConflictError: a concurrent write changed data this write replaces.
        """
        from lakekit.schema import evolve_schema
        from lakekit.tables.inputs import as_reader

        if mode not in ("append", "overwrite", "overwrite_partitions", "merge"):
            raise InvalidInputError(
                f"unknown write mode {mode!r}: use append, overwrite, overwrite_partitions or merge"
            )
        if schema_mode not in ("evolve", "strict"):
            raise InvalidInputError(f"unknown schema_mode {schema_mode!r}: use evolve or strict")
        if (mode == "merge") != bool(on):
            raise InvalidInputError("merge needs key columns `on=[...]`; other modes take none")
        options = options or WriteOptions()
        _, state = self._load()
        reader = as_reader(data, state.schema)
        incoming = _in_table_layouts(reader.schema, state.schema)
        if delete_column is not None:
            _check_delete_column(incoming, delete_column)
            incoming = incoming.remove(incoming.get_field_index(delete_column))
        schema = evolve_schema(state.schema, incoming, strict=schema_mode == "strict")
        schema_id = schema_id_of(schema, state.schemas)
        base = state.current_snapshot
        base_files = () if base is None else read_manifest(self._store, base.manifest)

        if mode == "merge":
            from lakekit.tables.merge import plan_merge

            assert on is not None
            plan = plan_merge(
                self._store, state, base_files, reader, on=list(on),
                delete_column=delete_column, schema=schema, schema_id=schema_id, options=options,
                set_state={},
            )  # fmt: skip
        else:
            added = tuple(
                write_data_files(
                    self._store, state.location, reader, schema=schema, schema_id=schema_id,
                    spec=state.partition_spec, options=options,
                )
            )  # fmt: skip
            plan = _plan_for(mode, added, schema, {}, state.partition_spec)
        if set_state is not None:
            # Resolved after the data is consumed, so it can say how far the input was read.
            resolved = set_state() if callable(set_state) else set_state
            plan = dataclasses.replace(plan, set_state=dict(resolved))
        return self._commit(plan, base_snapshot_id=None if base is None else base.snapshot_id,
                            base_files=base_files, precondition=precondition)  # fmt: skip

    def _commit(
        self,
        plan: _Plan,
        *,
        base_snapshot_id: int | None,
        base_files: Sequence[DataFile],
        precondition: Callable[[], None] | None = None,
    ) -> Snapshot:
        """Commit ``plan`` onto the current snapshot, re-basing and retrying on lost races."""
        from lakekit.schema import evolve_schema

        base_keys = {f.key for f in base_files}
        for attempt in range(MAX_COMMIT_ATTEMPTS):
            if precondition is not None:
                try:
                    precondition()
                except BaseException:
                    self._abandon(plan)
                    raise
            metadata, state = self._load()
            current = state.current_snapshot
            files = () if current is None else read_manifest(self._store, current.manifest)
            current_id = None if current is None else current.snapshot_id
            if current_id != base_snapshot_id:
                keys = {f.key for f in files}
                added_since = [f for f in files if f.key not in base_keys]
                removed_since = [f for f in base_files if f.key not in keys]
                if plan.conflicts(added_since, removed_since):
                    self._abandon(plan)
                    raise CommitConflictError(
                        f"{plan.operation} on {self.ident} conflicts with a concurrent commit "
                        f"(snapshot {current_id}) that changed the data it replaces; re-read "
                        "the table and retry",
                        expected=metadata.version,
                    )
            removed = plan.removes(files)
            kept = [f for f in files if f.key not in removed]
            new_files = [*kept, *plan.added]
            schema = evolve_schema(state.schema, plan.schema)
            new_state = state.with_schema(schema)
            new_state = _with_schema_entry(new_state, plan.schema, plan.added)
            manifest = write_manifest(self._store, state.location, new_files)
            removed_files = [f for f in files if f.key in removed]
            snapshot = Snapshot(
                snapshot_id=new_snapshot_id(),
                parent_id=current_id,
                sequence_number=state.last_sequence_number + 1,
                timestamp_ms=max(now_ms(), current.timestamp_ms + 1 if current else 0),
                operation=plan.operation,
                manifest=manifest,
                schema_id=new_state.current_schema_id,
                summary={
                    "added_files": len(plan.added),
                    "removed_files": len(removed_files),
                    "added_rows": sum(f.record_count for f in plan.added),
                    "removed_rows": sum(f.record_count for f in removed_files),
                    "total_files": len(new_files),
                    "total_rows": sum(f.record_count for f in new_files),
                },
            )
            new_state = new_state.with_snapshot(snapshot)
            key = write_state(self._store, new_state)
            added_dirs, removed_dirs = _partition_changes(files, new_files, state)
            update = TableUpdate(
                schema=None if schema.equals(metadata.schema) else schema,
                set_properties={METADATA_PROPERTY: key},
                set_state=plan.set_state,
                add_partitions=added_dirs,
                remove_partitions=removed_dirs,
            )
            try:
                self._catalog.commit(self.ident, metadata.version, update)
            except CommitConflictError:
                self._store.delete([manifest, key])
                time.sleep(random.uniform(0, 0.005 * 2 ** min(attempt, 8)))  # noqa: S311
                continue
            return snapshot
        self._abandon(plan)
        raise CommitConflictError(
            f"{plan.operation} on {self.ident} lost the commit race {MAX_COMMIT_ATTEMPTS} times"
        )

    def _abandon(self, plan: _Plan) -> None:
        """Delete the data files of a write that will not be committed (best effort)."""
        if plan.added and plan.owns_added:
            self._store.delete([f.key for f in plan.added])

    # -- reads ----------------------------------------------------------------------------------
    def scan(
        self,
        columns: Sequence[str] | None = None,
        filter: Filter = None,
        *,
        snapshot_id: int | None = None,
        as_of: datetime | None = None,
        batch_size: int = 131_072,
    ) -> pa.RecordBatchReader:
        """Stream the rows of the current snapshot (or of ``snapshot_id`` / the one current
        ``as_of`` a time), pruning partitions and files by the manifest's statistics.

        Raises:
            NotFoundError: no such snapshot.
            InvalidInputError: unknown column or malformed filter.
        """
        import pyarrow as pa

        from lakekit.tables.scan import as_expression, build_dataset

        if snapshot_id is not None and as_of is not None:
            raise InvalidInputError("pass snapshot_id or as_of, not both")
        _, state = self._load()
        if snapshot_id is not None:
            snap: Snapshot | None = state.snapshot(snapshot_id)
        elif as_of is not None:
            snap = state.snapshot_as_of(as_of)
        else:
            snap = state.current_snapshot
        travelling = snapshot_id is not None or as_of is not None
        schema = state.schemas[snap.schema_id] if travelling and snap is not None else state.schema
        files = () if snap is None else read_manifest(self._store, snap.manifest)
        dataset = build_dataset(self._store, files, schema, state.partition_spec)
        expression = as_expression(filter)
        try:
            scanner = dataset.scanner(
                columns=list(columns) if columns is not None else None,
                filter=expression,
                batch_size=batch_size,
                fragment_readahead=2,
            )
            return scanner.to_reader()
        except (pa.ArrowInvalid, KeyError) as exc:
            raise InvalidInputError(
                f"cannot scan {self.ident}: {exc}; columns are {', '.join(schema.names)}"
            ) from exc

    def to_arrow(self, *args: Any, **kwargs: Any) -> pa.Table:
        """``scan(...)`` materialised as a ``pyarrow.Table``."""
        return self.scan(*args, **kwargs).read_all()

    def to_pandas(self, *args: Any, **kwargs: Any) -> pandas.DataFrame:
        return self.to_arrow(*args, **kwargs).to_pandas()

    def to_polars(self, *args: Any, **kwargs: Any) -> polars.DataFrame:
        import polars as pl

        frame = pl.from_arrow(self.to_arrow(*args, **kwargs))
        assert isinstance(frame, pl.DataFrame)
        return frame

    def plan_files(self, filter: Filter = None, *, snapshot_id: int | None = None) -> list[str]:
        """Keys of the data files a scan with ``filter`` would open (after pruning)."""
        from lakekit.tables.scan import as_expression, build_dataset

        _, state = self._load()
        snap = state.snapshot(snapshot_id) if snapshot_id is not None else state.current_snapshot
        files = () if snap is None else read_manifest(self._store, snap.manifest)
        dataset = build_dataset(self._store, files, state.schema, state.partition_spec)
        expression = as_expression(filter)
        fragments = (
            dataset.get_fragments(filter=expression)
            if expression is not None
            else (dataset.get_fragments())
        )
        return sorted(str(fragment.path) for fragment in fragments)

    def count(self, *, snapshot_id: int | None = None) -> int:
        """Rows in the current (or given) snapshot, from the manifest (no data is read)."""
        return sum(f.record_count for f in self.files(snapshot_id=snapshot_id))

    # -- rollback -------------------------------------------------------------------------------
    def rollback(self, snapshot_id: int) -> Snapshot:
        """Make the data of ``snapshot_id`` current again, as a new snapshot (history is kept).

        Raises:
            NotFoundError: no such (retained) snapshot.
            CommitConflictError: the table changed while rolling back.
        """
        _, state = self._load()
        target = state.snapshot(snapshot_id)
        target_files = read_manifest(self._store, target.manifest)
        base = state.current_snapshot
        base_files = () if base is None else read_manifest(self._store, base.manifest)
        target_keys = {f.key for f in target_files}
        plan = _Plan(
            operation="rollback",
            added=tuple(f for f in target_files if f.key not in {b.key for b in base_files}),
            removes=lambda files: {f.key for f in files if f.key not in target_keys},
            conflicts=lambda added, removed: bool(added or removed),
            schema=state.schema,
            set_state={},
            owns_added=False,
        )
        return self._commit(
            plan, base_snapshot_id=None if base is None else base.snapshot_id, base_files=base_files
        )

    def iter_snapshots(self) -> Iterator[Snapshot]:
        """Every retained snapshot (including ones rolled back from), in commit order."""
        yield from sorted(self._load()[1].snapshots, key=lambda s: s.sequence_number)

    # -- maintenance ----------------------------------------------------------------------------
    def compact(
        self, *, target_file_size: int | None = None, min_files: int = 2
    ) -> Snapshot | None:
        """Rewrite each partition's small files into target-size files, as one atomic snapshot
        with the same rows; None when nothing needed compacting. Concurrent appends re-base;
        a concurrent removal of a file it rewrote raises CommitConflictError.
        See :func:`lakekit.tables.maintenance.compact`."""
        from lakekit.tables.maintenance import compact

        return compact(self, target_file_size=target_file_size, min_files=min_files)

    def expire_snapshots(
        self, *, older_than: datetime | timedelta, keep_last: int = 1
    ) -> list[int]:
        """Forget snapshots older than ``older_than`` (never the current one nor the
        ``keep_last`` newest); return their ids. Their files stay until :meth:`vacuum`.
        See :func:`lakekit.tables.maintenance.expire_snapshots`."""
        from lakekit.tables.maintenance import expire_snapshots

        return expire_snapshots(self, older_than=older_than, keep_last=keep_last)

    def vacuum(self, *, older_than: timedelta = timedelta(hours=1)) -> list[str]:
        """Delete unreferenced files under the table's location older than ``older_than`` (the
        grace period protecting in-flight writers); return the deleted keys. Never deletes a
        file a retained snapshot references. See :func:`lakekit.tables.maintenance.vacuum`."""
        from lakekit.tables.maintenance import vacuum

        return vacuum(self, older_than=older_than)


def _partition_changes(
    before: Sequence[DataFile], after: Sequence[DataFile], state: TableState
) -> tuple[dict[str, Mapping[str, str | None]], frozenset[str]]:
    """Partition directories gaining their first file and losing their last one, for catalogs
    that mirror partitions for other engines (``TableUpdate.add_partitions``)."""
    if not state.partition_spec.fields:
        return {}, frozenset()

    def directories(files: Sequence[DataFile]) -> dict[str, Mapping[str, str | None]]:
        found: dict[str, Mapping[str, str | None]] = {}
        for data_file in files:
            directory = data_file.key.rpartition("/")[0]
            if directory.startswith(state.location + "/"):
                found.setdefault(directory[len(state.location) + 1 :], data_file.partition)
        return found

    old, new = directories(before), directories(after)
    added = {directory: values for directory, values in new.items() if directory not in old}
    return added, frozenset(old.keys() - new.keys())


def _plan_for(
    mode: str,
    added: tuple[DataFile, ...],
    schema: pa.Schema,
    set_state: Mapping[str, JSONValue],
    spec: PartitionSpec,
) -> _Plan:
    if mode == "append":
        return _Plan("append", added, lambda files: set(), lambda a, r: False, schema, set_state)
    if mode == "overwrite" or not spec.fields:
        return _Plan(
            "overwrite" if mode == "overwrite" else "overwrite_partitions",
            added,
            lambda files: {f.key for f in files},
            lambda a, r: bool(a or r),
            schema,
            set_state,
        )
    touched = {_partition_key(f) for f in added}

    def removes(files: Sequence[DataFile]) -> set[str]:
        return {f.key for f in files if _partition_key(f) in touched}

    def conflicts(added_since: list[DataFile], removed_since: list[DataFile]) -> bool:
        return any(_partition_key(f) in touched for f in [*added_since, *removed_since])

    return _Plan("overwrite_partitions", added, removes, conflicts, schema, set_state)


def _partition_key(data_file: DataFile) -> tuple[tuple[str, str | None], ...]:
    return tuple(sorted(data_file.partition.items()))


def _with_schema_entry(
    state: TableState, schema: pa.Schema, added: Sequence[DataFile]
) -> TableState:
    """Make sure the schema the new files were written with is recorded."""
    from dataclasses import replace

    ids = {f.schema_id for f in added}
    missing = {sid: schema for sid in ids if sid not in state.schemas}
    if not missing:
        return state
    return replace(state, schemas={**state.schemas, **missing})


def _in_table_layouts(incoming: pa.Schema, table: pa.Schema) -> pa.Schema:
    """``incoming`` with what only describes the data's in-memory form taken from the table.

    * a column that differs from the table's only in layout (``large_string``/``string_view``
      vs ``string``, the same for binary and lists: pandas and polars produce these) gets the
      table's type; the batches are cast to it losslessly when written;
    * a NOT NULL table column stays NOT NULL even though DataFrames and dicts declare every
      column nullable; a null in the data is then a SchemaError when written, never a silently
      dropped constraint.
    """
    import pyarrow as pa

    fields = []
    for field in incoming:
        kept = field
        if field.name in table.names:
            declared = table.field(field.name)
            if _same_but_layout(field.type, declared.type):
                kept = kept.with_type(declared.type)
            if not declared.nullable:
                kept = kept.with_nullable(False)
        fields.append(kept)
    metadata = cast("dict[bytes | str, bytes | str] | None", incoming.metadata)
    return pa.schema(fields, metadata=metadata)


def _same_but_layout(data: pa.DataType, table: pa.DataType) -> bool:
    import pyarrow as pa

    t = pa.types
    families = (
        (t.is_string, t.is_large_string, t.is_string_view),
        (t.is_binary, t.is_large_binary, t.is_binary_view),
    )
    for family in families:
        if any(check(data) for check in family) and any(check(table) for check in family):
            return True
    lists = (t.is_list, t.is_large_list, t.is_list_view, t.is_large_list_view)
    if any(check(data) for check in lists) and any(check(table) for check in lists):
        data_item, table_item = data.value_field, table.value_field  # type: ignore[attr-defined]
        return bool(
            (table_item.nullable or not data_item.nullable)
            and (data_item.type.equals(table_item.type)
                 or _same_but_layout(data_item.type, table_item.type))
        )  # fmt: skip
    return False


def _check_delete_column(schema: pa.Schema, name: str) -> None:
    import pyarrow as pa

    if name not in schema.names:
        raise InvalidInputError(f"delete_column {name!r} is not a column of the data")
    if not pa.types.is_boolean(schema.field(name).type):
        raise InvalidInputError(f"delete_column {name!r} must be boolean")
