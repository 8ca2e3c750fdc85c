"""The SQL catalog's fast ``load_table``: one pre-compiled SELECT run straight on a DBAPI
connection, and decoded metadata reused while the table's row is unchanged.

A query engine looks its tables up before every statement, so this is the catalog's hot path.
Through SQLAlchemy Core a lookup costs ~0.2 ms on SQLite (connection and result objects, the
``begin`` event, decoding the Arrow schema and the JSON columns); here it is one statement
compiled once per dialect, run straight on a DBAPI connection, and the decoding runs only when
the row differs from the one last decoded.

On a SQLite file the statement runs on a dedicated read-only connection (:class:`LookupLine`)
rather than a pooled one: a pool checkout and return is ~5 µs in a tight loop but 50-100 µs
between two DuckDB queries (cold CPU caches), several times the SELECT itself. A thread that
finds the dedicated connection busy uses the pool instead, so lookups never queue behind each
other. PostgreSQL lookups always use the pool (a network round trip dominates there).

**Freshness.** The row is read from the database on every call; nothing is cached by time. The
cache maps a table to the *raw column values* it was decoded from, and a hit requires every
value (location, format, schema bytes, partition spec, properties, version, created_at,
updated_at) to be equal, so the returned metadata is always exactly what decoding the current
row gives, whichever process or machine committed last. (Comparing the version alone would not
do: a table dropped and re-created elsewhere is at version 1 again.)
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import sqlite3

    from sqlalchemy import Engine, Table
    from sqlalchemy.engine import URL

    from lakekit.identifiers import TableIdent
    from lakekit.interfaces.catalog import TableMetadata

__all__ = ["TABLE_COLUMNS", "DecodedTables", "LookupLine", "TableRowReader"]

TABLE_COLUMNS = (
    "location",
    "format",
    "schema",
    "partition_spec",
    "properties",
    "version",
    "created_at",
    "updated_at",
)
"""The columns of a table's row that its metadata is decoded from, in this order."""

RawRow = tuple[Any, ...]
_Processor = Callable[[Any], Any] | None

_FAST_DIALECTS = frozenset({"sqlite", "postgresql"})
"""Dialects whose DBAPI drivers are tested on the raw path (any other runs through Core)."""


@dataclass(frozen=True, slots=True)
class TableRowReader:
    """The lookup statement compiled for one dialect, run on a raw pooled DBAPI connection."""

    sql: str
    positional_names: tuple[str, ...] | None
    """Bind names in marker order for positional paramstyles (qmark, format); None: named."""
    processors: tuple[_Processor, ...]
    """SQLAlchemy's result processor of each column for this dialect (None: value as is)."""

    @classmethod
    def for_engine(cls, engine: Engine, tables: Table) -> TableRowReader | None:
        """The reader for ``engine``'s dialect, or None where the raw path is not used.

        Not used for a dialect outside SQLite and PostgreSQL, nor for a single shared
        connection (in-memory SQLite's StaticPool): returning the connection rolls it back,
        which must never touch another thread's transaction.
        """
        from sqlalchemy import bindparam, select
        from sqlalchemy.pool import StaticPool

        dialect = engine.dialect
        if dialect.name not in _FAST_DIALECTS or isinstance(engine.pool, StaticPool):
            return None
        columns = [tables.c[name] for name in TABLE_COLUMNS]
        statement = select(*columns).where(
            tables.c.namespace == bindparam("namespace"), tables.c.name == bindparam("name")
        )
        compiled = statement.compile(dialect=dialect)
        positional = tuple(compiled.positiontup or ()) if compiled.positional else None
        processors = tuple(
            column.type.dialect_impl(dialect).result_processor(dialect, None) for column in columns
        )
        return cls(compiled.string, positional, processors)

    def params(self, ident: TableIdent) -> tuple[str, ...] | dict[str, str]:
        names = self.positional_names
        if names == ("namespace", "name"):
            return (ident.namespace, ident.name)
        values = {"namespace": ident.namespace, "name": ident.name}
        return values if names is None else tuple(values[name] for name in names)

    def process(self, raw: RawRow) -> RawRow:
        """The raw DBAPI values as SQLAlchemy Core would have returned them."""
        return tuple(
            value if processor is None else processor(value)
            for processor, value in zip(self.processors, raw, strict=True)
        )


class DecodedTables:
    """A bounded map of table -> (raw row, metadata decoded from that row).

    Safe to share between threads without a lock: each operation is one dict operation (atomic
    under the GIL), and an entry is only ever replaced as a whole. When full it is emptied
    (tables are re-decoded on their next lookup), which keeps the hot path free of LRU work.
    """

    def __init__(self, size: int = 1024) -> None:
        self._size = size
        self._entries: dict[tuple[str, str], tuple[RawRow, TableMetadata]] = {}

    def get(self, ident: TableIdent, raw: RawRow) -> TableMetadata | None:
        """The metadata decoded from exactly ``raw``, if it is the one held for ``ident``."""
        entry = self._entries.get((ident.namespace, ident.name))
        if entry is None or entry[0] != raw:
            return None
        return entry[1]

    def put(self, ident: TableIdent, raw: RawRow, metadata: TableMetadata) -> None:
        if len(self._entries) >= self._size:
            self._entries.clear()
        self._entries[(ident.namespace, ident.name)] = (raw, metadata)


class LookupLine:
    """A dedicated, read-only (``PRAGMA query_only``) SQLite connection for table lookups.

    Opened on first use with the connect arguments SQLAlchemy would use for the URL (plus
    ``busy_timeout``), in autocommit mode: each lookup is one SELECT that sees every committed
    transaction. One thread at a time uses it (:meth:`acquire` never waits). It is not used in
    a process other than the one that opened it (a SQLite connection must not cross a fork).
    Closed by :meth:`close` or when the line is garbage-collected.
    """

    def __init__(self, engine: Engine, url: URL, busy_timeout: float) -> None:
        self._engine = engine
        self._url = url
        self._busy_timeout = busy_timeout
        self._lock = threading.Lock()
        self._connection: sqlite3.Connection | None = None
        self._finalizer: weakref.finalize[[sqlite3.Connection], LookupLine] | None = None
        self.forked = False
        """Set in a child process after ``fork``: the line is then never used there."""
        _LINES.add(self)

    @classmethod
    def for_engine(cls, engine: Engine, url: URL, busy_timeout: float) -> LookupLine | None:
        """A line for a SQLite file database (None for any other database)."""
        from sqlalchemy.pool import StaticPool

        if engine.dialect.name != "sqlite" or isinstance(engine.pool, StaticPool):
            return None
        return cls(engine, url, busy_timeout)

    def acquire(self) -> bool:
        """Take the line for this thread, if it is free and usable here."""
        return not self.forked and self._lock.acquire(blocking=False)

    def release(self) -> None:
        self._lock.release()

    def fetch(self, sql: str, params: tuple[str, ...] | dict[str, str]) -> RawRow | None:
        """Run the lookup (the caller holds the line). On any error the connection is closed,
        so the next lookup opens a fresh one; the error propagates."""
        connection = self._connection
        if connection is None:
            connection = self._open()
        try:
            # fetchall: the statement runs to its end, which ends SQLite's read transaction
            # (a half-read statement would keep this connection on an old snapshot).
            rows: list[RawRow] = connection.execute(sql, params).fetchall()
        except BaseException:
            self._discard()
            raise
        return rows[0] if rows else None

    def close(self) -> None:
        with self._lock:
            self._discard()

    def _open(self) -> sqlite3.Connection:
        dialect = self._engine.dialect
        args, kwargs = dialect.create_connect_args(self._url)
        kwargs.update(timeout=self._busy_timeout, isolation_level=None, check_same_thread=False)
        connection: sqlite3.Connection = dialect.loaded_dbapi.connect(*args, **kwargs)
        try:
            connection.execute("PRAGMA query_only = ON")
        except BaseException:
            connection.close()
            raise
        self._connection = connection
        self._finalizer = weakref.finalize(self, _close_connection, connection)
        return connection

    def _discard(self) -> None:
        if self._finalizer is not None:
            self._finalizer()
        self._connection = None
        self._finalizer = None


def _close_connection(connection: sqlite3.Connection) -> None:
    connection.close()


_LINES: weakref.WeakSet[LookupLine] = weakref.WeakSet()
_INHERITED: list[sqlite3.Connection] = []


def _after_fork_in_child() -> None:
    """Retire every line inherited through ``fork``: never used, nor closed, in the child (a
    SQLite connection must not be touched on both sides of a fork)."""
    for line in list(_LINES):
        line.forked = True
        if line._finalizer is not None:
            line._finalizer.detach()
            line._finalizer = None
        if line._connection is not None:
            _INHERITED.append(line._connection)  # kept referenced: never closed in the child
            line._connection = None


os.register_at_fork(after_in_child=_after_fork_in_child)
