"""Table metadata: data files, snapshots, and the immutable metadata file of each table version.

Layout under a table's location (``_``-prefixed directories are skipped by Hive-style readers
such as Spark, Athena and pyarrow.dataset)::

    <location>/<k>=<v>/.../part-<uuid>-<n>.parquet      data files (Hive partition directories)
    <location>/_lakekit/manifests/<uuid>.arrow          one per snapshot: every live data file
    <location>/_lakekit/metadata/<seq>-<uuid>.json      one per commit: schemas, spec, snapshots

The catalog's table entry holds the key of the current metadata file in the property
``lakekit.metadata``; moving that pointer is the commit (the catalog's compare-and-swap). Every
metadata and manifest file is written once under a fresh name and never modified, so readers can
cache them forever and a reader always sees one consistent snapshot.

Manifests are Arrow IPC files (zstd) and metadata files JSON, never ``.parquet``: DuckDB's
``read_parquet('<location>/**/*.parquet')`` does not skip ``_``-prefixed directories, and would
otherwise read them as data.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from lakekit.errors import LakekitError, NotFoundError
from lakekit.partition_spec import PartitionSpec

if TYPE_CHECKING:
    import pyarrow as pa

    from lakekit.interfaces.object_store import ObjectStore

__all__ = [
    "METADATA_PROPERTY",
    "ColumnStats",
    "DataFile",
    "Snapshot",
    "TableState",
    "read_manifest",
    "read_state",
    "write_manifest",
    "write_state",
]

METADATA_PROPERTY = "lakekit.metadata"
"""Catalog table property holding the key of the current metadata file."""
FORMAT_VERSION = 1
METADATA_DIR = "_lakekit"


@dataclass(frozen=True, slots=True)
class ColumnStats:
    """Per-file column statistics. ``min``/``max`` are rendered as strings (castable back to the
    column's Arrow type) and absent when unknown, e.g. for nested or very long values."""

    null_count: int | None = None
    min: str | None = None
    max: str | None = None


@dataclass(frozen=True, slots=True)
class DataFile:
    """One Parquet file of a table."""

    key: str
    """Relative to the lake root."""
    partition: Mapping[str, str | None]
    """Hive directory values by partition field name (None for a null partition value)."""
    record_count: int
    file_size: int
    schema_id: int
    """The table schema the file was written with."""
    stats: Mapping[str, ColumnStats] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One committed state of a table's data. Immutable."""

    snapshot_id: int
    parent_id: int | None
    sequence_number: int
    timestamp_ms: int
    operation: str
    """append, overwrite, overwrite_partitions, merge, compact, rollback or register."""
    manifest: str
    """Key of the manifest listing every live data file of this snapshot."""
    schema_id: int
    summary: Mapping[str, int] = field(default_factory=dict)
    """added_files, removed_files, added_rows, removed_rows, total_files, total_rows."""

    @property
    def timestamp(self) -> datetime:
        return datetime.fromtimestamp(self.timestamp_ms / 1000, tz=UTC)


@dataclass(frozen=True, slots=True)
class TableState:
    """The content of one metadata file: everything needed to read any retained snapshot."""

    table_uuid: str
    location: str
    schemas: Mapping[int, pa.Schema]
    current_schema_id: int
    partition_spec: PartitionSpec
    snapshots: tuple[Snapshot, ...] = ()
    current_snapshot_id: int | None = None
    last_sequence_number: int = 0

    @property
    def schema(self) -> pa.Schema:
        return self.schemas[self.current_schema_id]

    @property
    def current_snapshot(self) -> Snapshot | None:
        if self.current_snapshot_id is None:
            return None
        return self.snapshot(self.current_snapshot_id)

    def snapshot(self, snapshot_id: int) -> Snapshot:
        """Raises: NotFoundError (expired or never existed)."""
        for snap in self.snapshots:
            if snap.snapshot_id == snapshot_id:
                return snap
        raise NotFoundError(f"snapshot {snapshot_id} does not exist (or has been expired)")

    def snapshot_as_of(self, when: datetime) -> Snapshot:
        """The snapshot current at ``when``. Raises NotFoundError if the table was empty then."""
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        cutoff = int(when.timestamp() * 1000)
        best: Snapshot | None = None
        for snap in self._lineage():
            if snap.timestamp_ms <= cutoff:
                best = snap
                break
        if best is None:
            raise NotFoundError(f"the table had no snapshot at {when.isoformat()}")
        return best

    def _lineage(self) -> list[Snapshot]:
        """Current snapshot and its ancestors that are still retained, newest first."""
        by_id = {s.snapshot_id: s for s in self.snapshots}
        chain: list[Snapshot] = []
        cursor = self.current_snapshot_id
        while cursor is not None and cursor in by_id:
            snap = by_id[cursor]
            chain.append(snap)
            cursor = snap.parent_id
        return chain

    def with_schema(self, schema: pa.Schema) -> TableState:
        """This state with ``schema`` as current (unchanged if it already is)."""
        if schema.equals(self.schema, check_metadata=True):
            return self
        new_id = schema_id_of(schema, self.schemas)
        return replace(self, schemas={**self.schemas, new_id: schema}, current_schema_id=new_id)

    def with_snapshot(self, snapshot: Snapshot) -> TableState:
        return replace(
            self,
            snapshots=(*self.snapshots, snapshot),
            current_snapshot_id=snapshot.snapshot_id,
            last_sequence_number=snapshot.sequence_number,
        )


def schema_id_of(schema: pa.Schema, existing: Mapping[int, pa.Schema]) -> int:
    """A content-derived schema id, so concurrent writers agree on the id of equal schemas."""
    import zlib

    sid = zlib.crc32(schema.serialize().to_pybytes()) & 0x7FFFFFFF
    while sid in existing and not existing[sid].equals(schema, check_metadata=True):
        sid = (sid + 1) & 0x7FFFFFFF
    return sid


def new_snapshot_id() -> int:
    """A random positive 63-bit id (as Iceberg): unique without coordination."""
    return uuid.uuid4().int >> 65


def now_ms() -> int:
    return int(time.time() * 1000)


def metadata_dir(location: str) -> str:
    return f"{location}/{METADATA_DIR}"


# -- metadata files ---------------------------------------------------------------------------


def write_state(store: ObjectStore, state: TableState) -> str:
    """Write ``state`` as a new metadata file (create-if-absent); return its key."""
    name = f"{state.last_sequence_number:010d}-{uuid.uuid4().hex}.json"
    key = f"{metadata_dir(state.location)}/metadata/{name}"
    store.create(key, json.dumps(_state_to_json(state), separators=(",", ":")).encode("utf-8"))
    _STATE_CACHE.put((_store_id(store), key), state)
    return key


def read_state(store: ObjectStore, key: str) -> TableState:
    """Read (and cache: metadata files are immutable) the metadata file at ``key``.

    Raises:
        NotFoundError: the file is missing (the catalog points at a deleted file).
        LakekitError: the file is not a lakekit metadata file of a known version.
    """
    cache_key = (_store_id(store), key)
    cached: TableState | None = _STATE_CACHE.get(cache_key)
    if cached is not None:
        return cached
    try:
        raw = json.loads(store.get(key))
        state = _state_from_json(raw)
    except NotFoundError:
        raise
    except (ValueError, KeyError, TypeError) as exc:
        raise LakekitError(f"table metadata file {key} is corrupt: {exc}") from exc
    _STATE_CACHE.put(cache_key, state)
    return state


def _state_to_json(state: TableState) -> dict[str, Any]:
    return {
        "format-version": FORMAT_VERSION,
        "table-uuid": state.table_uuid,
        "location": state.location,
        "current-schema-id": state.current_schema_id,
        "schemas": {
            str(sid): base64.b64encode(schema.serialize().to_pybytes()).decode("ascii")
            for sid, schema in state.schemas.items()
        },
        "partition-spec": state.partition_spec.model_dump(mode="json"),
        "current-snapshot-id": state.current_snapshot_id,
        "last-sequence-number": state.last_sequence_number,
        "snapshots": [
            {
                "snapshot-id": s.snapshot_id,
                "parent-id": s.parent_id,
                "sequence-number": s.sequence_number,
                "timestamp-ms": s.timestamp_ms,
                "operation": s.operation,
                "manifest": s.manifest,
                "schema-id": s.schema_id,
                "summary": dict(s.summary),
            }
            for s in state.snapshots
        ],
    }


def _state_from_json(raw: dict[str, Any]) -> TableState:
    import pyarrow as pa

    if raw.get("format-version") != FORMAT_VERSION:
        raise ValueError(f"unsupported format-version {raw.get('format-version')!r}")
    schemas = {
        int(sid): pa.ipc.read_schema(pa.py_buffer(base64.b64decode(text)))
        for sid, text in raw["schemas"].items()
    }
    snapshots = tuple(
        Snapshot(
            snapshot_id=int(s["snapshot-id"]),
            parent_id=None if s["parent-id"] is None else int(s["parent-id"]),
            sequence_number=int(s["sequence-number"]),
            timestamp_ms=int(s["timestamp-ms"]),
            operation=str(s["operation"]),
            manifest=str(s["manifest"]),
            schema_id=int(s["schema-id"]),
            summary={str(k): int(v) for k, v in s["summary"].items()},
        )
        for s in raw["snapshots"]
    )
    return TableState(
        table_uuid=str(raw["table-uuid"]),
        location=str(raw["location"]),
        schemas=schemas,
        current_schema_id=int(raw["current-schema-id"]),
        partition_spec=PartitionSpec.model_validate(raw["partition-spec"]),
        snapshots=snapshots,
        current_snapshot_id=raw["current-snapshot-id"],
        last_sequence_number=int(raw["last-sequence-number"]),
    )


# -- manifests --------------------------------------------------------------------------------


def write_manifest(store: ObjectStore, location: str, files: Sequence[DataFile]) -> str:
    """Write the list of a snapshot's live data files; return the manifest's key."""
    import pyarrow as pa

    table = pa.table(
        {
            "key": pa.array([f.key for f in files], pa.string()),
            "partition": pa.array([json.dumps(dict(f.partition)) for f in files], pa.string()),
            "record_count": pa.array([f.record_count for f in files], pa.int64()),
            "file_size": pa.array([f.file_size for f in files], pa.int64()),
            "schema_id": pa.array([f.schema_id for f in files], pa.int32()),
            "stats": pa.array([_stats_to_json(f.stats) for f in files], pa.string()),
        }
    )
    sink = pa.BufferOutputStream()
    options = pa.ipc.IpcWriteOptions(compression="zstd")
    with pa.ipc.new_file(sink, table.schema, options=options) as writer:
        writer.write_table(table)
    key = f"{metadata_dir(location)}/manifests/{uuid.uuid4().hex}.arrow"
    store.create(key, sink.getvalue().to_pybytes())
    _MANIFEST_CACHE.put((_store_id(store), key), tuple(files))
    return key


def read_manifest(store: ObjectStore, key: str) -> tuple[DataFile, ...]:
    """Read (and cache: manifests are immutable) the data files listed in a manifest."""
    cache_key = (_store_id(store), key)
    cached_files: tuple[DataFile, ...] | None = _MANIFEST_CACHE.get(cache_key)
    if cached_files is not None:
        return cached_files
    import pyarrow as pa

    try:
        table = pa.ipc.open_file(pa.py_buffer(store.get(key))).read_all()
        files = tuple(
            DataFile(
                key=row["key"],
                partition=json.loads(row["partition"]),
                record_count=row["record_count"],
                file_size=row["file_size"],
                schema_id=row["schema_id"],
                stats=_stats_from_json(row["stats"]),
            )
            for row in table.to_pylist()
        )
    except (pa.ArrowInvalid, ValueError, KeyError, TypeError) as exc:
        raise LakekitError(
            f"table manifest {key} is corrupt or of an unknown format: {exc}"
        ) from exc
    _MANIFEST_CACHE.put(cache_key, files)
    return files


def _stats_to_json(stats: Mapping[str, ColumnStats]) -> str:
    return json.dumps(
        {name: [s.null_count, s.min, s.max] for name, s in stats.items()}, separators=(",", ":")
    )


def _stats_from_json(text: str) -> dict[str, ColumnStats]:
    return {name: ColumnStats(n, lo, hi) for name, (n, lo, hi) in json.loads(text).items()}


# -- caches -----------------------------------------------------------------------------------


class _LRU:
    """A small thread-safe LRU for immutable files (keyed by store identity and key)."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._data: OrderedDict[tuple[str, str], Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str]) -> Any:
        with self._lock:
            value = self._data.get(key)
            if value is not None:
                self._data.move_to_end(key)
            return value

    def put(self, key: tuple[str, str], value: Any) -> None:
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self._size:
                self._data.popitem(last=False)


_STATE_CACHE = _LRU(256)
_MANIFEST_CACHE = _LRU(64)


def _store_id(store: ObjectStore) -> str:
    return store.uri()
