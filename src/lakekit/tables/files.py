"""The exact data files of a table's current snapshot, for engines that read a table directly
(DuckDB views, and later Athena/BigQuery/Synapse table definitions).

Engines must read the committed file list, never a directory glob: a glob would also read files
of writes in progress, of crashed writes, and of snapshots replaced but not yet vacuumed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from lakekit.tables.metadata import METADATA_PROPERTY, read_manifest, read_state

if TYPE_CHECKING:
    from lakekit.interfaces.catalog import TableMetadata
    from lakekit.interfaces.object_store import ObjectStore

__all__ = ["CommittedFiles", "committed_files"]


@dataclass(frozen=True, slots=True)
class CommittedFiles:
    keys: tuple[str, ...]
    """Data file keys of the current snapshot, relative to the lake root, sorted."""
    uniform_schema: bool
    """True when every file was written with the table's current schema (no column mapping
    needed to read them together)."""


def committed_files(metadata: TableMetadata, store: ObjectStore) -> CommittedFiles:
    """The current snapshot's files of a lakekit table (memoised: metadata is immutable).

    Raises:
        KeyError: ``metadata`` has no ``lakekit.metadata`` property (not a lakekit table).
    """
    state = read_state(store, metadata.properties[METADATA_PROPERTY])
    snapshot = state.current_snapshot
    if snapshot is None:
        return CommittedFiles((), True)
    files = read_manifest(store, snapshot.manifest)
    return CommittedFiles(
        keys=tuple(sorted(f.key for f in files)),
        uniform_schema=all(f.schema_id == state.current_schema_id for f in files),
    )
