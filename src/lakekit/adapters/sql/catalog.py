"""The SQL catalog: lakekit's catalog on SQLite (local lakes) or PostgreSQL (shared lakes).

Any SQLAlchemy URL works (``sqlite:///lake/.lakekit/catalog.db``,
``postgresql+psycopg://user:pw@db/lake``); SQLite and PostgreSQL are the tested backends.

Transactions (see ``docs/interfaces/catalog.md``):

* Every commit is one database transaction with a compare-and-swap on the table's version
  (``UPDATE ... SET version = version + 1 WHERE namespace = ? AND name = ? AND version = ?``)
  plus the ``set_state`` upserts, so the table change and the state change land together or
  not at all, and of two writers on the same version exactly one wins.
* SQLite: WAL journal (readers never block the writer), ``synchronous=FULL`` (a returned
  commit survives power loss), and write transactions start with ``BEGIN IMMEDIATE`` so
  concurrent writers from several processes queue on the write lock (up to ``busy_timeout``)
  instead of failing with "database is locked" half-way through.
* PostgreSQL: READ COMMITTED; the conditional UPDATE re-checks the version after waiting on a
  concurrent writer's row lock, which is all the compare-and-swap needs. Serialization failures
  and deadlocks are retried; connection failures become TransientError.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn, Self, TypeVar

from pydantic import Field, ValidationError

from lakekit._redact import redact_url
from lakekit.adapters.sql._lookup import TABLE_COLUMNS, DecodedTables
from lakekit.capabilities import Capability
from lakekit.config import AdapterSettings
from lakekit.errors import (
    AlreadyExistsError,
    CommitConflictError,
    ConfigurationError,
    InvalidInputError,
    LakekitError,
    MissingDependencyError,
    NotFoundError,
    SchemaError,
    TransientError,
)
from lakekit.identifiers import TableIdent
from lakekit.interfaces.catalog import (
    CatalogAdapter,
    JSONValue,
    StateEntry,
    TableMetadata,
    TableUpdate,
)
from lakekit.partition_spec import PartitionSpec

if TYPE_CHECKING:
    import pyarrow as pa
    from sqlalchemy import Connection, Engine, Row
    from sqlalchemy.engine import URL

    from lakekit.adapters.sql._lookup import LookupLine, TableRowReader
    from lakekit.adapters.sql._tables import CatalogTables
    from lakekit.lake import Lake

__all__ = ["SqlCatalog", "SqlCatalogSettings"]

T = TypeVar("T")

_MAX_ATTEMPTS = 6
"""Attempts for a transaction that lost a PostgreSQL serialization race or deadlock."""


class SqlCatalogSettings(AdapterSettings):
    """Settings of :class:`SqlCatalog` (component ``catalog``)."""

    component: ClassVar[str] = "catalog"

    url: str = Field(
        description=(
            "SQLAlchemy database URL, e.g. 'sqlite:////path/catalog.db' or "
            "'postgresql+psycopg://user:password@host:5432/db'. Env: LAKEKIT_CATALOG (or "
            "LAKEKIT_CATALOG_URL). Default for local lakes: sqlite:///<root>/.lakekit/catalog.db."
        )
    )
    pool_size: int = Field(
        default=5,
        ge=1,
        le=100,
        description="Connections kept open per process. Env: LAKEKIT_CATALOG_POOL_SIZE.",
    )
    echo: bool = Field(
        default=False,
        description="Log every SQL statement (SQLAlchemy echo). Env: LAKEKIT_CATALOG_ECHO.",
    )
    table_prefix: str = Field(
        default="lakekit_",
        pattern=r"^[a-z_][a-z0-9_]{0,31}$",
        description=(
            "Prefix of the catalog's own table names, so several catalogs can share one "
            "database. Env: LAKEKIT_CATALOG_TABLE_PREFIX."
        ),
    )
    busy_timeout: float = Field(
        default=30.0,
        gt=0,
        description=(
            "SQLite only: seconds a writer waits for another process's write lock before "
            "failing with TransientError. Env: LAKEKIT_CATALOG_BUSY_TIMEOUT."
        ),
    )
    connect_timeout: float = Field(
        default=10.0,
        gt=0,
        description=(
            "PostgreSQL only: seconds to wait for a connection before failing with "
            "TransientError. Env: LAKEKIT_CATALOG_CONNECT_TIMEOUT."
        ),
    )


class SqlCatalog(CatalogAdapter):
    """A catalog stored in a SQL database through SQLAlchemy Core.

    Safe to share between threads; every method is one short transaction. Several processes
    (SQLite on one machine) or machines (PostgreSQL) may use the same database at once: commits
    are atomic compare-and-swaps (``MULTI_WRITER``). An in-memory SQLite URL (``sqlite://``) is
    private to one SqlCatalog object.

    Construction is cheap and does not connect; the catalog's tables are created on first use
    (idempotently, safe against concurrent first uses).
    """

    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {Capability.RENAME_TABLE, Capability.SEARCH, Capability.STATE, Capability.MULTI_WRITER}
    )
    settings_model: ClassVar[type[AdapterSettings]] = SqlCatalogSettings

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 5,
        echo: bool = False,
        table_prefix: str = "lakekit_",
        busy_timeout: float = 30.0,
        connect_timeout: float = 10.0,
    ) -> None:
        """Open (lazily) the catalog in the database at ``url``.

        Raises:
            ConfigurationError: a malformed URL or setting, or an uncreatable SQLite directory.
            MissingDependencyError: the URL's database driver is not installed.
        """
        try:
            self.settings = SqlCatalogSettings(
                url=url,
                pool_size=pool_size,
                echo=echo,
                table_prefix=table_prefix,
                busy_timeout=busy_timeout,
                connect_timeout=connect_timeout,
            )
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
            )
            raise ConfigurationError(f"invalid SqlCatalog settings: {problems}") from None
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            self._url: URL = make_url(url)
        except (ArgumentError, ValueError) as exc:
            # Not even parsable: we cannot tell which part is a password, so show none of it.
            raise ConfigurationError(
                "the catalog URL is not a SQLAlchemy database URL (e.g. "
                "'sqlite:////path/catalog.db' or 'postgresql+psycopg://user@host/db')"
            ) from exc
        self._display = redact_url(self._url.render_as_string(hide_password=True))
        self._secret = self._url.password if isinstance(self._url.password, str) else None
        self._engine = self._create_engine()
        from lakekit.adapters.sql._tables import CatalogTables

        self._t: CatalogTables = CatalogTables.build(self.settings.table_prefix)
        self._ready = False
        self._ready_lock = threading.Lock()
        self._decoded = DecodedTables()
        self._reader: TableRowReader | None = None
        self._line: LookupLine | None = None
        self._dbapi_error: Any = Exception  # the driver's Error class, once the reader is built
        self._reader_unset = True

    @classmethod
    def from_settings(cls, settings: AdapterSettings, lake: Lake) -> Self:
        """Build from validated settings (``lake`` is unused: the URL says everything)."""
        if not isinstance(settings, SqlCatalogSettings):
            settings = SqlCatalogSettings.model_validate(settings.model_dump())
        return cls(
            settings.url,
            pool_size=settings.pool_size,
            echo=settings.echo,
            table_prefix=settings.table_prefix,
            busy_timeout=settings.busy_timeout,
            connect_timeout=settings.connect_timeout,
        )

    def __repr__(self) -> str:
        return f"SqlCatalog(url={self._display!r})"

    @property
    def url(self) -> str:
        """The database URL with any password masked."""
        return self._display

    def close(self) -> None:
        """Close pooled connections. The catalog reconnects if it is used again."""
        if self._line is not None:
            self._line.close()
        self._engine.dispose()

    # -- engine -----------------------------------------------------------------------------------
    def _create_engine(self) -> Engine:
        from sqlalchemy import create_engine
        from sqlalchemy.exc import NoSuchModuleError

        url, settings = self._url, self.settings
        backend = url.get_backend_name()
        kwargs: dict[str, Any] = {"echo": settings.echo}
        connect_args: dict[str, Any] = {}
        sqlite_memory = False
        if backend == "sqlite":
            database = url.database or ""
            sqlite_memory = database in ("", ":memory:") or "mode=memory" in database
            connect_args["timeout"] = settings.busy_timeout
            if sqlite_memory:
                from sqlalchemy.pool import StaticPool

                kwargs["poolclass"] = StaticPool
                connect_args["check_same_thread"] = False
            else:
                if not database.startswith("file:"):
                    _make_parent_dir(Path(database), self._display)
                kwargs["pool_size"] = settings.pool_size
        else:
            kwargs["pool_size"] = settings.pool_size
            kwargs["pool_pre_ping"] = True
            if backend == "postgresql":
                kwargs["isolation_level"] = "READ COMMITTED"
                connect_args["connect_timeout"] = max(1, math.ceil(settings.connect_timeout))
        kwargs["connect_args"] = connect_args
        try:
            engine = create_engine(url, **kwargs)
        except (NoSuchModuleError, ImportError) as exc:
            if backend == "postgresql":
                module = getattr(exc, "name", None)
                what = f"the SQL catalog at {self._display!r}"
                raise MissingDependencyError(what, "postgres", module) from exc
            raise ConfigurationError(
                f"the database driver for {self._display!r} is not installed ({exc}); "
                "pip install the DBAPI driver that the URL names"
            ) from exc
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(
                f"cannot create a database engine for {self._display!r}: {exc}"
            ) from exc
        if backend == "sqlite":
            _install_sqlite_hooks(engine, settings.busy_timeout, wal=not sqlite_memory)
        return engine

    def _ensure_ready(self) -> None:
        with self._ready_lock:  # uncontended after the first call: a few hundred nanoseconds
            if self._ready:
                return
            from lakekit.adapters.sql._tables import ensure_tables

            self._transact(
                "setup",
                lambda conn: ensure_tables(conn, self._t, self.settings.table_prefix),
                write=True,
                setup=True,
            )
            self._ready = True

    def _transact(
        self,
        op: str,
        fn: Callable[[Connection], T],
        *,
        write: bool,
        on_integrity: Callable[[Any], LakekitError] | None = None,
        setup: bool = False,
    ) -> T:
        """Run ``fn`` in one transaction (committed if it returns), mapping database errors.

        Transactions that lost a PostgreSQL serialization race or deadlock ran no effect and are
        run again (``fn`` must only touch the database).
        """
        from sqlalchemy import exc as sa_exc

        from lakekit.adapters.sql._errors import is_retryable

        if not setup:
            self._ensure_ready()
        for attempt in range(_MAX_ATTEMPTS):
            try:
                with self._engine.connect() as conn:
                    if write:
                        conn.execution_options(lakekit_write=True)
                    with conn.begin():
                        return fn(conn)
            except sa_exc.IntegrityError as exc:
                if on_integrity is None:
                    raise self._mapped(op, exc) from exc
                raise on_integrity(exc) from exc
            except sa_exc.DBAPIError as exc:
                if is_retryable(exc) and attempt + 1 < _MAX_ATTEMPTS:
                    time.sleep(0.005 * 2**attempt)
                    continue
                raise self._mapped(op, exc) from exc
            except sa_exc.SQLAlchemyError as exc:
                raise self._mapped(op, exc) from exc
        raise AssertionError("unreachable")

    def _mapped(self, op: str, exc: Exception) -> LakekitError:
        """The lakekit error for a SQLAlchemy error raised during ``op``."""
        from sqlalchemy import exc as sa_exc

        from lakekit.adapters.sql._errors import map_db_error

        if isinstance(exc, sa_exc.DBAPIError):
            return map_db_error(exc, op, self._display, self._secret)
        if isinstance(exc, sa_exc.TimeoutError):  # no pooled connection became free in time
            return TransientError(
                f"catalog {op} failed on {self._display}: all {self.settings.pool_size} "
                "pooled connections stayed busy; retry later or raise pool_size"
            )
        return LakekitError(f"catalog {op} failed on {self._display}: {exc}")

    # -- namespaces -------------------------------------------------------------------------------
    def create_namespace(self, namespace: str, properties: Mapping[str, str]) -> None:
        """Raises: AlreadyExistsError."""
        props = _dump_properties(properties, f"namespace {namespace!r}")
        ns = self._t.namespaces

        def run(conn: Connection) -> None:
            conn.execute(ns.insert().values(name=namespace, properties=props, created_at=_now()))

        def integrity(exc: Any) -> LakekitError:
            return AlreadyExistsError(f"namespace {namespace!r} already exists")

        self._transact("create_namespace", run, write=True, on_integrity=integrity)

    def drop_namespace(self, namespace: str) -> None:
        """Raises: NotFoundError; InvalidInputError if the namespace still holds tables."""
        from sqlalchemy import select

        ns, tables = self._t.namespaces, self._t.tables

        def run(conn: Connection) -> None:
            names = (
                conn.execute(select(tables.c.name).where(tables.c.namespace == namespace).limit(6))
                .scalars()
                .all()
            )
            if names:
                raise _not_empty(namespace, sorted(names))
            result = conn.execute(ns.delete().where(ns.c.name == namespace))
            if result.rowcount == 0:
                raise NotFoundError(f"namespace {namespace!r} does not exist")

        def integrity(exc: Any) -> LakekitError:
            return _not_empty(namespace, [])

        self._transact("drop_namespace", run, write=True, on_integrity=integrity)

    def list_namespaces(self) -> list[str]:
        """All namespaces, sorted."""
        from sqlalchemy import select

        ns = self._t.namespaces
        names = self._transact(
            "list_namespaces",
            lambda conn: conn.execute(select(ns.c.name)).scalars().all(),
            write=False,
        )
        return sorted(names)

    def namespace_properties(self, namespace: str) -> dict[str, str]:
        """Raises: NotFoundError."""
        from sqlalchemy import select

        ns = self._t.namespaces
        raw = self._transact(
            "namespace_properties",
            lambda conn: conn.execute(
                select(ns.c.properties).where(ns.c.name == namespace)
            ).scalar_one_or_none(),
            write=False,
        )
        if raw is None:
            raise NotFoundError(f"namespace {namespace!r} does not exist")
        return _load_properties(raw)

    # -- tables -----------------------------------------------------------------------------------
    def create_table(self, metadata: TableMetadata) -> TableMetadata:
        """Create the table at version 1.

        Raises:
            NotFoundError: the namespace does not exist.
            AlreadyExistsError: the table exists.
        """
        ident = metadata.ident
        schema_bytes = _dump_schema(metadata.schema)
        props = _dump_properties(metadata.properties, f"table {ident}")
        _check_format(metadata.format)
        now = _now()
        tables = self._t.tables

        def run(conn: Connection) -> None:
            self._require_namespace(conn, ident.namespace)
            conn.execute(
                tables.insert().values(
                    namespace=ident.namespace,
                    name=ident.name,
                    location=metadata.location,
                    format=metadata.format,
                    schema=schema_bytes,
                    partition_spec=metadata.partition_spec.model_dump_json(),
                    properties=props,
                    version=1,
                    created_at=now,
                    updated_at=now,
                )
            )

        def integrity(exc: Any) -> LakekitError:
            from lakekit.adapters.sql._errors import integrity_kind

            if integrity_kind(exc) == "foreign_key":
                return _namespace_missing(ident.namespace)
            return AlreadyExistsError(f"table {ident} already exists")

        self._transact("create_table", run, write=True, on_integrity=integrity)
        return replace(
            metadata,
            properties=json.loads(props),
            version=1,
            created_at=now,
            updated_at=now,
        )

    def load_table(self, ident: TableIdent) -> TableMetadata:
        """The table's current metadata, read from the database on every call.

        A commit that finished before the call (in any process, or on any machine for a
        networked database) is always seen: there is no time-based caching. The decoded
        metadata is reused while the table's row is unchanged, so a repeated lookup is one
        indexed SELECT (about 0.01-0.02 ms on a local SQLite file; see ``_lookup``). Each call
        returns its own ``properties`` dict.

        Raises:
            NotFoundError: naming the table (and its namespace, if that is missing too).
        """
        self._ensure_ready()
        raw = self._table_row(ident)
        if raw is None:
            return self._load_table_core(ident)  # NotFoundError saying what is missing
        metadata = self._decoded.get(ident, raw)
        if metadata is None:
            reader = self._row_reader
            metadata = _metadata_from_values(ident, raw if reader is None else reader.process(raw))
            self._decoded.put(ident, raw, metadata)
        return _own_copy(metadata)

    def _table_row(self, ident: TableIdent) -> tuple[Any, ...] | None:
        """The table's row (the ``_lookup.TABLE_COLUMNS``), raw from the driver on the fast path
        (SQLite, PostgreSQL) or as SQLAlchemy Core returns it elsewhere; None if absent."""
        reader = self._row_reader
        if reader is None:
            from sqlalchemy import select

            tables = self._t.tables
            columns = [tables.c[name] for name in TABLE_COLUMNS]
            query = select(*columns).where(*self._where(ident))
            found = self._transact(
                "load_table", lambda conn: conn.execute(query).one_or_none(), write=False
            )
            return None if found is None else tuple(found)
        dbapi_error = self._dbapi_error
        params = reader.params(ident)
        line = self._line
        if line is not None and line.acquire():
            try:
                row = line.fetch(reader.sql, params)
            except dbapi_error as exc:
                self._raise_dbapi(exc, reader.sql, params)
            finally:
                line.release()
            return row
        try:
            connection = self._engine.raw_connection()
        except dbapi_error as exc:
            self._raise_dbapi(exc, None, None)
        except Exception as exc:
            from sqlalchemy import exc as sa_exc

            if isinstance(exc, sa_exc.SQLAlchemyError):
                raise self._mapped("load_table", exc) from exc
            raise
        cursor = None
        try:
            cursor = connection.cursor()
            cursor.execute(reader.sql, params)
            row = cursor.fetchone()
            cursor.close()
        except dbapi_error as exc:
            lost = self._engine.dialect.is_disconnect(exc, connection.dbapi_connection, cursor)
            if lost:
                connection.invalidate(exc)
            self._raise_dbapi(exc, reader.sql, params, lost=lost)
        finally:
            connection.close()  # back to the pool (rolled back: a read leaves no transaction)
        return None if row is None else tuple(row)

    def _raise_dbapi(
        self, exc: Exception, sql: str | None, params: Any, *, lost: bool = False
    ) -> NoReturn:
        """Raise the lakekit error for a raw DBAPI error of a lookup, chained to SQLAlchemy's
        wrapper of it (as a Core statement would have raised it)."""
        from sqlalchemy import exc as sa_exc

        dialect = self._engine.dialect
        wrapped = sa_exc.DBAPIError.instance(
            sql, params, exc, dialect.loaded_dbapi.Error, connection_invalidated=lost,
            dialect=dialect,
        )  # fmt: skip
        raise self._mapped("load_table", wrapped) from wrapped

    @property
    def _row_reader(self) -> TableRowReader | None:
        if self._reader_unset:
            from lakekit.adapters.sql._lookup import LookupLine, TableRowReader

            self._reader = TableRowReader.for_engine(self._engine, self._t.tables)
            self._dbapi_error = self._engine.dialect.loaded_dbapi.Error
            if self._reader is not None:
                self._line = LookupLine.for_engine(
                    self._engine, self._url, self.settings.busy_timeout
                )
            self._reader_unset = False
        return self._reader

    def _load_table_core(self, ident: TableIdent) -> TableMetadata:
        from sqlalchemy import select

        tables = self._t.tables

        def run(conn: Connection) -> TableMetadata:
            row = conn.execute(select(tables).where(*self._where(ident))).one_or_none()
            if row is None:
                raise self._table_missing(conn, ident)
            return _to_metadata(row)

        return self._transact("load_table", run, write=False)

    def list_tables(self, namespace: str | None = None) -> list[TableIdent]:
        """Tables of one namespace (or all), sorted. Raises NotFoundError for a missing one."""
        from sqlalchemy import select

        tables = self._t.tables

        def run(conn: Connection) -> list[TableIdent]:
            query = select(tables.c.namespace, tables.c.name)
            if namespace is not None:
                self._require_namespace(conn, namespace)
                query = query.where(tables.c.namespace == namespace)
            return [TableIdent(ns, name) for ns, name in conn.execute(query)]

        return sorted(self._transact("list_tables", run, write=False))

    def drop_table(self, ident: TableIdent) -> None:
        """Remove the table from the catalog (its files are untouched). Raises NotFoundError."""
        tables = self._t.tables

        def run(conn: Connection) -> None:
            if conn.execute(tables.delete().where(*self._where(ident))).rowcount == 0:
                raise self._table_missing(conn, ident)

        self._transact("drop_table", run, write=True)

    def rename_table(self, src: TableIdent, dst: TableIdent) -> None:
        """Move ``src`` to ``dst`` atomically; version, location and files are unchanged.

        Raises:
            NotFoundError: ``src`` or ``dst``'s namespace does not exist.
            AlreadyExistsError: ``dst`` exists (also when it is ``src`` itself).
        """
        from sqlalchemy import select

        tables = self._t.tables

        def run(conn: Connection) -> None:
            if conn.execute(select(tables.c.version).where(*self._where(src))).first() is None:
                raise self._table_missing(conn, src)
            self._require_namespace(conn, dst.namespace)
            if conn.execute(select(tables.c.version).where(*self._where(dst))).first():
                raise AlreadyExistsError(f"cannot rename {src} to {dst}: {dst} already exists")
            conn.execute(
                tables.update()
                .where(*self._where(src))
                .values(namespace=dst.namespace, name=dst.name, updated_at=_now())
            )

        def integrity(exc: Any) -> LakekitError:
            from lakekit.adapters.sql._errors import integrity_kind

            if integrity_kind(exc) == "foreign_key":
                return _namespace_missing(dst.namespace)
            return AlreadyExistsError(f"cannot rename {src} to {dst}: {dst} already exists")

        self._transact("rename_table", run, write=True, on_integrity=integrity)

    def commit(
        self, ident: TableIdent, expected_version: int, update: TableUpdate
    ) -> TableMetadata:
        """Apply ``update`` and its ``set_state`` entries in one transaction, if the table is
        still at ``expected_version``. A ``set_state`` value of None deletes that key.

        Returns the new metadata (version ``expected_version + 1``).

        Raises:
            NotFoundError: the table does not exist.
            CommitConflictError: the table is at another version; nothing changed.
            SchemaError: the resulting partition spec names a column the schema lacks.
            InvalidInputError: a malformed version, property, location or state entry.
        """
        from sqlalchemy import select

        if isinstance(expected_version, bool) or not isinstance(expected_version, int):
            raise InvalidInputError(
                f"expected_version must be an int, got {type(expected_version).__name__}"
            )
        new_schema_bytes = None if update.schema is None else _dump_schema(update.schema)
        set_props = json.loads(_dump_properties(update.set_properties, f"table {ident}"))
        removed = _check_removed(update.remove_properties)
        if update.location is not None:
            _check_location(update.location)
        states = _dump_states(update.set_state)
        tables = self._t.tables

        def run(conn: Connection) -> TableMetadata:
            row = conn.execute(select(tables).where(*self._where(ident))).one_or_none()
            if row is None:
                raise self._table_missing(conn, ident)
            if row.version != expected_version:
                raise _conflict(ident, expected_version, row.version)
            current = _to_metadata(row)
            schema = current.schema if update.schema is None else update.schema
            spec = (
                current.partition_spec if update.partition_spec is None else update.partition_spec
            )
            spec.check_columns(schema)
            props = {k: v for k, v in current.properties.items() if k not in removed}
            props.update(set_props)
            now = _now()
            values: dict[str, Any] = {
                "version": tables.c.version + 1,
                "updated_at": now,
                "properties": json.dumps(props, sort_keys=True),
            }
            if new_schema_bytes is not None:
                values["schema"] = new_schema_bytes
            if update.partition_spec is not None:
                values["partition_spec"] = spec.model_dump_json()
            if update.location is not None:
                values["location"] = update.location.rstrip("/")
            result = conn.execute(
                tables.update()
                .where(*self._where(ident), tables.c.version == expected_version)
                .values(**values)
            )
            if result.rowcount != 1:
                actual = conn.execute(
                    select(tables.c.version).where(*self._where(ident))
                ).scalar_one_or_none()
                if actual is None:
                    raise self._table_missing(conn, ident)
                raise _conflict(ident, expected_version, actual)
            for key, value in states:
                self._write_state(conn, key, value)
            return replace(
                current,
                schema=schema,
                partition_spec=spec,
                location=values.get("location", current.location),
                properties=props,
                version=expected_version + 1,
                updated_at=now,
            )

        return self._transact("commit", run, write=True)

    def search(
        self,
        text: str | None = None,
        *,
        column: str | None = None,
        properties: Mapping[str, str] | None = None,
    ) -> list[TableMetadata]:
        """Tables whose ``namespace.name`` contains ``text`` (case-insensitive), whose schema
        has ``column`` (a top-level name or a dotted path into structs), and whose properties
        include every ``properties`` item exactly. Criteria left at None match everything.
        Sorted by table identifier."""
        from sqlalchemy import select

        if text is not None and not isinstance(text, str):
            raise InvalidInputError(f"search text must be a str, got {type(text).__name__}")
        if column is not None and (not isinstance(column, str) or not column):
            raise InvalidInputError("search column must be a non-empty str")
        wanted = json.loads(_dump_properties(properties or {}, "search"))
        tables = self._t.tables
        query = select(tables)
        if text:
            qualified = tables.c.namespace + "." + tables.c.name
            query = query.where(qualified.contains(text.lower(), autoescape=True))
        rows = self._transact("search", lambda conn: list(conn.execute(query)), write=False)
        found: list[TableMetadata] = []
        for row in rows:
            props = _load_properties(row.properties)
            if any(props.get(k) != v for k, v in wanted.items()):
                continue
            metadata = _to_metadata(row)
            if column is not None and not _has_column(metadata.schema, column):
                continue
            found.append(metadata)
        return sorted(found, key=lambda m: m.ident)

    # -- state ------------------------------------------------------------------------------------
    def get_state(self, key: str) -> StateEntry | None:
        """The state entry, or None if absent."""
        from sqlalchemy import select

        st = self._t.state
        row = self._transact(
            "get_state",
            lambda conn: conn.execute(
                select(st.c.value, st.c.version).where(st.c.key == key)
            ).one_or_none(),
            write=False,
        )
        return None if row is None else StateEntry(key, json.loads(row.value), row.version)

    def put_state(self, key: str, value: JSONValue, expected_version: int | None) -> StateEntry:
        """Write a state value (JSON ``null`` is a value here; ``set_state`` None deletes).

        ``expected_version=None`` writes unconditionally; ``0`` means "must not exist yet";
        ``n`` means "must currently be at version n". Atomic across processes and machines.

        Raises:
            CommitConflictError: the expected version did not match; nothing changed.
            InvalidInputError: ``value`` is not a JSON value or ``expected_version`` is bad.
        """
        from sqlalchemy import select
        from sqlalchemy.exc import IntegrityError

        _check_state_key(key)
        if expected_version is not None and (
            isinstance(expected_version, bool)
            or not isinstance(expected_version, int)
            or expected_version < 0
        ):
            raise InvalidInputError(
                f"expected_version must be None or an int >= 0, got {expected_version!r}"
            )
        raw = _dump_json(value, f"state {key!r}")
        st = self._t.state

        def current_version(conn: Connection) -> int:
            found = conn.execute(select(st.c.version).where(st.c.key == key)).scalar()
            return 0 if found is None else int(found)

        def run(conn: Connection) -> StateEntry:
            if expected_version is None:
                return StateEntry(key, value, self._write_state(conn, key, raw))
            if expected_version == 0:
                try:
                    with conn.begin_nested():
                        conn.execute(
                            st.insert().values(key=key, value=raw, version=1, updated_at=_now())
                        )
                except IntegrityError:
                    raise _state_conflict(key, 0, current_version(conn)) from None
                return StateEntry(key, value, 1)
            result = conn.execute(
                st.update()
                .where(st.c.key == key, st.c.version == expected_version)
                .values(value=raw, version=st.c.version + 1, updated_at=_now())
            )
            if result.rowcount != 1:
                raise _state_conflict(key, expected_version, current_version(conn))
            return StateEntry(key, value, expected_version + 1)

        return self._transact("put_state", run, write=True)

    def delete_state(self, key: str) -> None:
        """Delete a state entry; a missing key is not an error."""
        st = self._t.state
        self._transact(
            "delete_state",
            lambda conn: conn.execute(st.delete().where(st.c.key == key)),
            write=True,
        )

    def list_state(self, prefix: str = "") -> list[StateEntry]:
        """State entries whose key starts with ``prefix``, sorted by key."""
        from sqlalchemy import select

        if not isinstance(prefix, str):
            raise InvalidInputError(f"state prefix must be a str, got {type(prefix).__name__}")
        st = self._t.state
        query = select(st.c.key, st.c.value, st.c.version)
        if prefix:
            query = query.where(st.c.key.startswith(prefix, autoescape=True))
        rows = self._transact("list_state", lambda conn: list(conn.execute(query)), write=False)
        entries = [StateEntry(r.key, json.loads(r.value), r.version) for r in rows]
        # Filter again in Python: LIKE is case-insensitive for ASCII on some backends (SQLite).
        return sorted((e for e in entries if e.key.startswith(prefix)), key=lambda e: e.key)

    # -- helpers ----------------------------------------------------------------------------------
    def _where(self, ident: TableIdent) -> tuple[Any, Any]:
        tables = self._t.tables
        return (tables.c.namespace == ident.namespace, tables.c.name == ident.name)

    def _namespace_exists(self, conn: Connection, namespace: str) -> bool:
        from sqlalchemy import select

        ns = self._t.namespaces
        return conn.execute(select(ns.c.name).where(ns.c.name == namespace)).first() is not None

    def _require_namespace(self, conn: Connection, namespace: str) -> None:
        if not self._namespace_exists(conn, namespace):
            raise _namespace_missing(namespace)

    def _table_missing(self, conn: Connection, ident: TableIdent) -> NotFoundError:
        if not self._namespace_exists(conn, ident.namespace):
            return NotFoundError(
                f"table {ident} does not exist (namespace {ident.namespace!r} does not exist)"
            )
        return NotFoundError(f"table {ident} does not exist")

    def _write_state(self, conn: Connection, key: str, raw: str | None) -> int:
        """Upsert (or with ``raw`` None, delete) one state entry; returns its new version."""
        from sqlalchemy import select
        from sqlalchemy.exc import IntegrityError

        st = self._t.state
        if raw is None:
            conn.execute(st.delete().where(st.c.key == key))
            return 0
        for _ in range(3):
            bump = st.update().where(st.c.key == key)
            values = {"value": raw, "version": st.c.version + 1, "updated_at": _now()}
            if conn.execute(bump.values(**values)).rowcount == 1:
                version = conn.execute(select(st.c.version).where(st.c.key == key)).scalar_one()
                return int(version)
            try:
                with conn.begin_nested():
                    conn.execute(
                        st.insert().values(key=key, value=raw, version=1, updated_at=_now())
                    )
                return 1
            except IntegrityError:
                continue  # a concurrent writer created the key first: update it instead
        raise CommitConflictError(f"state {key!r} kept changing under a concurrent writer")


# -- pure helpers ---------------------------------------------------------------------------------
def _install_sqlite_hooks(engine: Engine, busy_timeout: float, *, wal: bool) -> None:
    """WAL, full fsync, foreign keys on every new connection; ``BEGIN IMMEDIATE`` for writes.

    pysqlite's own transaction handling is turned off (it would emit a deferred ``BEGIN`` only
    before the first write statement); SQLAlchemy's "begin" event emits our ``BEGIN`` instead,
    so a write transaction takes SQLite's write lock up front and queues behind another
    writer for up to ``busy_timeout`` rather than failing with SQLITE_BUSY half-way through.
    """
    from sqlalchemy import event

    busy_ms = int(busy_timeout * 1000)

    @event.listens_for(engine, "connect")
    def _sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {busy_ms}")
            if wal:
                _set_wal(cursor, busy_timeout)
            cursor.execute("PRAGMA synchronous = FULL")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _sqlite_begin(conn: Connection) -> None:
        write = conn.get_execution_options().get("lakekit_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def _set_wal(cursor: Any, busy_timeout: float) -> None:
    """Switch to WAL, retrying while another process holds the lock.

    Changing the journal mode of a fresh database needs an exclusive lock, and SQLite does not
    always run the busy handler for it (several processes opening a new catalog at once then
    fail at once with SQLITE_BUSY); so retry by error code until ``busy_timeout`` runs out.
    """
    import sqlite3
    import time

    deadline = time.monotonic() + busy_timeout
    delay = 0.005
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            busy = getattr(exc, "sqlite_errorcode", None) in (5, 6)  # SQLITE_BUSY, SQLITE_LOCKED
            if not busy or time.monotonic() >= deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.1)


def _now() -> datetime:
    return datetime.now(UTC)


def _as_utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _make_parent_dir(path: Path, display: str) -> None:
    try:
        path.expanduser().parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigurationError(
            f"cannot create the directory of the SQLite catalog {display!r}: {exc.strerror}"
        ) from exc


def _dump_schema(schema: pa.Schema) -> bytes:
    import pyarrow as pa

    if not isinstance(schema, pa.Schema):
        raise SchemaError(f"a table schema must be a pyarrow.Schema, got {type(schema).__name__}")
    return bytes(schema.serialize().to_pybytes())


def _load_schema(data: bytes) -> pa.Schema:
    import pyarrow as pa

    return pa.ipc.read_schema(pa.py_buffer(data))


def _to_metadata(row: Row[Any]) -> TableMetadata:
    ident = TableIdent(row.namespace, row.name)
    return _metadata_from_values(ident, tuple(getattr(row, name) for name in TABLE_COLUMNS))


def _own_copy(m: TableMetadata) -> TableMetadata:
    """``m`` with a properties dict of its own (the rest is immutable). Positional, because
    ``dataclasses.replace`` costs several times more on this hot path."""
    return TableMetadata(
        m.ident, m.location, m.schema, m.format, m.partition_spec, dict(m.properties),
        m.version, m.created_at, m.updated_at,
    )  # fmt: skip


def _metadata_from_values(ident: TableIdent, values: tuple[Any, ...]) -> TableMetadata:
    """Decode the ``TABLE_COLUMNS`` values of a table's row (as SQLAlchemy Core returns them)."""
    location, fmt, schema, spec, properties, version, created_at, updated_at = values
    return TableMetadata(
        ident=ident,
        location=location,
        schema=_load_schema(schema),
        format=fmt,
        partition_spec=PartitionSpec.model_validate_json(spec),
        properties=_load_properties(properties),
        version=int(version),
        created_at=_as_utc(created_at),
        updated_at=_as_utc(updated_at),
    )


def _dump_properties(properties: Mapping[str, str], what: str) -> str:
    if not isinstance(properties, Mapping):
        raise InvalidInputError(f"properties of {what} must be a mapping of str to str")
    for key, value in properties.items():
        if not isinstance(key, str) or not key or not isinstance(value, str):
            raise InvalidInputError(
                f"properties of {what} must map non-empty str keys to str values; "
                f"got {key!r}: {value!r}"
            )
    return json.dumps(dict(properties), sort_keys=True)


def _load_properties(raw: str) -> dict[str, str]:
    loaded = json.loads(raw)
    return {str(k): str(v) for k, v in loaded.items()}


def _check_removed(keys: Any) -> frozenset[str]:
    if isinstance(keys, str) or not all(isinstance(k, str) for k in keys):
        raise InvalidInputError("remove_properties must be a set of property names (str)")
    return frozenset(keys)


def _check_format(fmt: str) -> None:
    if not isinstance(fmt, str) or not fmt or len(fmt) > 32:
        raise InvalidInputError(f"table format must be a short non-empty str, got {fmt!r}")


def _check_location(location: str) -> None:
    from lakekit._keys import validate_prefix

    if not isinstance(location, str) or not location.strip("/"):
        raise InvalidInputError(f"table location must be a non-empty key prefix, got {location!r}")
    validate_prefix(location)


def _has_column(schema: pa.Schema, path: str) -> bool:
    import pyarrow as pa

    head, _, rest = path.partition(".")
    if head not in schema.names:
        return False
    dtype = schema.field(head).type
    for part in rest.split(".") if rest else []:
        if not pa.types.is_struct(dtype) or dtype.get_field_index(part) < 0:
            return False
        dtype = dtype.field(part).type
    return True


def _check_state_key(key: str) -> None:
    if not isinstance(key, str) or not key or len(key) > 512 or "\x00" in key:
        raise InvalidInputError(f"state key must be a non-empty str of at most 512 chars: {key!r}")


def _dump_json(value: Any, what: str) -> str:
    _check_json(value, what, "value")
    return json.dumps(value, allow_nan=False, separators=(",", ":"), ensure_ascii=False)


def _check_json(value: Any, what: str, path: str) -> None:
    if value is None or isinstance(value, bool | int | str):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidInputError(f"{what}: {path} is {value}, which JSON cannot hold")
        return
    if isinstance(value, list):
        for i, item in enumerate(value):
            _check_json(item, what, f"{path}[{i}]")
        return
    if isinstance(value, dict):
        for k, item in value.items():
            if not isinstance(k, str):
                raise InvalidInputError(
                    f"{what}: {path} has a {type(k).__name__} key {k!r}; JSON keys are str"
                )
            _check_json(item, what, f"{path}[{k!r}]")
        return
    raise InvalidInputError(
        f"{what}: {path} is a {type(value).__name__}; state values are JSON values "
        "(None, bool, int, float, str, list, dict with str keys)"
    )


def _dump_states(entries: Mapping[str, JSONValue]) -> list[tuple[str, str | None]]:
    """Validated ``set_state`` entries in key order (a fixed lock order avoids deadlocks)."""
    if not isinstance(entries, Mapping):
        raise InvalidInputError("set_state must be a mapping of state key to JSON value")
    out: list[tuple[str, str | None]] = []
    for key in sorted(entries):
        _check_state_key(key)
        value = entries[key]
        out.append((key, None if value is None else _dump_json(value, f"state {key!r}")))
    return out


def _conflict(ident: TableIdent, expected: int, actual: int) -> CommitConflictError:
    return CommitConflictError(
        f"commit to {ident} expected version {expected}, but the table is at version {actual}: "
        "another writer committed first; reload the table and retry",
        expected=expected,
        actual=int(actual),
    )


def _state_conflict(key: str, expected: int, actual: int) -> CommitConflictError:
    shown = "absent" if actual == 0 else f"at version {actual}"
    want = "absent (0)" if expected == 0 else f"version {expected}"
    return CommitConflictError(
        f"state {key!r} is {shown}, expected {want}; re-read it and retry",
        expected=expected,
        actual=actual,
    )


def _namespace_missing(namespace: str) -> NotFoundError:
    return NotFoundError(f"namespace {namespace!r} does not exist; create it first")


def _not_empty(namespace: str, names: list[str]) -> InvalidInputError:
    shown = ""
    if names:
        listed = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
        shown = f" (it holds tables: {listed})"
    return InvalidInputError(f"namespace {namespace!r} is not empty{shown}; drop its tables first")
