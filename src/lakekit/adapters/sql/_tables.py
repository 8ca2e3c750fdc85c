"""The SQL catalog's own tables (SQLAlchemy Core) and their race-safe, versioned creation.

Four tables, each named ``<prefix><name>`` (prefix ``lakekit_`` by default)::

    meta        key PK, value                     -- 'schema_version' -> '1'
    namespaces  name PK, properties JSON, created_at
    tables      (namespace FK, name) PK, location, format, schema (Arrow IPC bytes),
                partition_spec JSON, properties JSON, version, created_at, updated_at
    state       key PK, value JSON, version, updated_at

JSON is stored as text (portable across SQLite, PostgreSQL and any other SQLAlchemy backend);
the schema is ``pa.Schema.serialize()`` bytes, which round-trip exactly (nested types, field
and schema metadata).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    DateTime,
    ForeignKey,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    select,
    text,
)
from sqlalchemy.schema import CreateTable

from lakekit.errors import ConfigurationError

__all__ = ["SCHEMA_VERSION", "CatalogTables", "ensure_tables"]

SCHEMA_VERSION = 1
"""Version of the layout above. A newer lakekit migrates older layouts in :func:`ensure_tables`;
an older lakekit refuses a newer layout instead of misreading it."""

_SCHEMA_VERSION_KEY = "schema_version"


@dataclass(frozen=True)
class CatalogTables:
    """The SQLAlchemy ``Table`` objects of one catalog (one table prefix)."""

    metadata: MetaData
    meta: Table
    namespaces: Table
    tables: Table
    state: Table

    @classmethod
    def build(cls, prefix: str) -> CatalogTables:
        md = MetaData()
        meta = Table(
            f"{prefix}meta",
            md,
            Column("key", String(64), primary_key=True),
            Column("value", String(256), nullable=False),
        )
        namespaces = Table(
            f"{prefix}namespaces",
            md,
            Column("name", String(128), primary_key=True),
            Column("properties", Text, nullable=False),
            Column("created_at", DateTime(timezone=True), nullable=False),
        )
        tables = Table(
            f"{prefix}tables",
            md,
            Column(
                "namespace",
                String(128),
                ForeignKey(namespaces.c.name, name=f"{prefix}tables_namespace_fk"),
                primary_key=True,
            ),
            Column("name", String(128), primary_key=True),
            Column("location", Text, nullable=False),
            Column("format", String(32), nullable=False),
            Column("schema", LargeBinary, nullable=False),
            Column("partition_spec", Text, nullable=False),
            Column("properties", Text, nullable=False),
            Column("version", BigInteger, nullable=False),
            Column("created_at", DateTime(timezone=True), nullable=False),
            Column("updated_at", DateTime(timezone=True), nullable=False),
        )
        state = Table(
            f"{prefix}state",
            md,
            Column("key", String(512), primary_key=True),
            Column("value", Text, nullable=False),
            Column("version", BigInteger, nullable=False),
            Column("updated_at", DateTime(timezone=True), nullable=False),
        )
        return cls(md, meta, namespaces, tables, state)


def ensure_tables(conn: Connection, tables: CatalogTables, prefix: str) -> None:
    """Create the catalog's tables if missing and check the layout version.

    Runs inside the caller's write transaction. Concurrent first uses are serialized: on
    SQLite by the ``BEGIN IMMEDIATE`` write lock the caller holds, on PostgreSQL by a
    transaction-scoped advisory lock (``CREATE TABLE IF NOT EXISTS`` alone can still collide
    in the system catalogs there). DDL is transactional on both, so a failure leaves nothing.

    Raises:
        ConfigurationError: the database holds a newer layout than this lakekit understands.
    """
    if conn.dialect.name == "postgresql":
        key = zlib.crc32(f"lakekit-catalog:{prefix}".encode())
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
    for table in (tables.meta, tables.namespaces, tables.tables, tables.state):
        conn.execute(CreateTable(table, if_not_exists=True))
    meta = tables.meta
    found = conn.execute(
        select(meta.c.value).where(meta.c.key == _SCHEMA_VERSION_KEY)
    ).scalar_one_or_none()
    if found is None:
        conn.execute(meta.insert().values(key=_SCHEMA_VERSION_KEY, value=str(SCHEMA_VERSION)))
        return
    try:
        version = int(found)
    except ValueError:
        version = -1
    if version > SCHEMA_VERSION:
        raise ConfigurationError(
            f"the catalog database uses layout version {found}, newer than this lakekit "
            f"understands ({SCHEMA_VERSION}); upgrade lakekit"
        )
    if version < 1:
        raise ConfigurationError(
            f"the catalog database holds an invalid layout version {found!r} in table "
            f"{meta.name!r}; is table prefix {prefix!r} used by something else?"
        )
