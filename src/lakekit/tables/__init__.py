"""Lake tables: Hive-partitioned Parquet files with atomic snapshots committed through the
catalog; writes in four modes, schema evolution, time travel and maintenance.

Use them through the lake: ``lake.create_table(...)``, ``lake.table("ns.events")``,
``lake.register_table(...)``.
"""

from __future__ import annotations

from lakekit.tables.metadata import ColumnStats, DataFile, Snapshot, TableState
from lakekit.tables.table import SchemaMode, Table, WriteMode
from lakekit.tables.writer import WriteOptions

__all__ = [
    "ColumnStats",
    "DataFile",
    "SchemaMode",
    "Snapshot",
    "Table",
    "TableState",
    "WriteMode",
    "WriteOptions",
]
