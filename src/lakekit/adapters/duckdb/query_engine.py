"""The embedded DuckDB query engine: SQL over the lake's catalog tables, results as Arrow streams.

``lake.sql("select ... from events.clicks where dt = ?", [day])`` runs in an in-process DuckDB
database. Before each statement the engine finds the ``namespace.table`` names it reads, looks
each one up in the lake's catalog and (re)creates a DuckDB view ``"namespace"."table"`` over the
table's current files, so DuckDB prunes partitions, pushes filters into Parquet and streams the
result back as Arrow record batches. See ``docs/interfaces/query_engine.md``.

Guarantees:

* **Values are bound, never formatted into SQL.** ``params`` go to DuckDB's prepared-statement
  binder. The only SQL text lakekit writes itself is view DDL, from validated, double-quoted
  identifiers and escaped string literals (see :mod:`._views`).
* **A query sees every commit that finished before it started.** The catalog is consulted on
  every query; a view is rebuilt whenever the table's catalog entry (version, schema, files'
  snapshot, timestamps) or, for a listed table, its file list changed.
* **A lake table reads exactly its committed files** (those of its current snapshot); a
  table the catalog alone knows (no ``lakekit.metadata`` property) reads the Parquet files
  listed under its location at each query.
* **The steady state is cheap.** For a lake table whose entry did not change since the last
  query, a query costs one parse-cache hit, one catalog lookup and no DDL; see
  ``docs/benchmarks.md`` for the measured overhead.
* **Offline.** Extension auto-install and auto-load are off: a query never downloads code.
  Python-variable replacement scans are off: SQL reads only the lake and explicit file paths.
* **Thread-safe.** Any number of threads may call :meth:`DuckDBEngine.execute` at once; each
  query runs on its own cursor of the one database, and results stream independently.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Self
from urllib.parse import unquote, urlsplit

import duckdb
from pydantic import Field

from lakekit._redact import redact_url
from lakekit.adapters.duckdb._schema_files import SchemaFiles
from lakekit.adapters.duckdb._sql_refs import StatementParser
from lakekit.adapters.duckdb._views import (
    GLOB_CHARACTERS,
    TableFiles,
    quote_ident,
    table_files,
    view_ddl,
)
from lakekit.capabilities import Capability
from lakekit.config import AdapterSettings
from lakekit.errors import ConfigurationError, InvalidInputError, NotFoundError, QueryError
from lakekit.identifiers import TableIdent, validate_name
from lakekit.interfaces.catalog import Catalog, CatalogAdapter, TableMetadata
from lakekit.interfaces.object_store import ObjectStore, ObjectStoreAdapter
from lakekit.interfaces.query_engine import Params, QueryEngineAdapter

if TYPE_CHECKING:
    import pyarrow as pa

    from lakekit.lake import Lake

__all__ = ["DuckDBEngine", "DuckDBSettings"]

BATCH_ROWS = 122_880
"""Rows per streamed record batch (DuckDB's row-group size: one batch per scanned group)."""

_IDENT_CACHE_SIZE = 4096

CatalogSource = Catalog | CatalogAdapter | Callable[[], Catalog | CatalogAdapter]
StoreSource = ObjectStore | ObjectStoreAdapter | Callable[[], ObjectStore | ObjectStoreAdapter]


class DuckDBSettings(AdapterSettings):
    """Settings of the DuckDB engine (component ``engine``)."""

    component: ClassVar[str] = "engine"

    url: str = Field(
        "duckdb",
        description=(
            "'duckdb' for an in-memory database, 'duckdb:///path/file.duckdb' for a persistent "
            "one (LAKEKIT_ENGINE or LAKEKIT_ENGINE_URL)."
        ),
    )
    threads: int | None = Field(
        None,
        ge=1,
        description="DuckDB worker threads; default: one per core (LAKEKIT_ENGINE_THREADS).",
    )
    memory_limit: str | None = Field(
        None,
        description=(
            "DuckDB memory limit such as '4GB'; default: 80% of RAM (LAKEKIT_ENGINE_MEMORY_LIMIT)."
        ),
    )
    temp_directory: str | None = Field(
        None,
        description="Where DuckDB spills larger-than-memory work (LAKEKIT_ENGINE_TEMP_DIRECTORY).",
    )


def database_from_url(url: str) -> str:
    """The DuckDB database a component URL names: ``":memory:"`` or a file path.

    ``duckdb``, ``duckdb://`` and ``duckdb://:memory:`` are in-memory; ``duckdb:///abs/x.duckdb``
    is an absolute path and ``duckdb://rel/x.duckdb`` one relative to the working directory.

    Raises:
        ConfigurationError: the URL is not a ``duckdb`` URL.
    """
    if url == "duckdb":
        return ":memory:"
    if not url.startswith("duckdb://"):
        raise ConfigurationError(
            f"{redact_url(url)!r} is not a DuckDB engine URL; use 'duckdb' (in memory) or "
            "'duckdb:///path/file.duckdb'"
        )
    path = url.removeprefix("duckdb://")
    if path in ("", ":memory:", "/:memory:"):
        return ":memory:"
    return str(Path(path).expanduser())


@dataclass(frozen=True, slots=True)
class _ViewState:
    """What a view was built from: it is rebuilt when any of it changes."""

    table: TableMetadata
    """The catalog entry (version, schema, spec, properties, timestamps: a re-created table at
    the same version differs in its timestamps)."""
    files: TableFiles
    schema_file: str | None
    """The uniform form's schema file (rewritten if something deleted it), or None."""

    def current(self, table: TableMetadata, files: TableFiles | None) -> bool:
        """Whether the view still reads what ``table`` says (``files`` None: for a lake table,
        whose files follow from its immutable metadata file, i.e. from ``table`` itself)."""
        if files is None:
            same = self.files.committed and self.table == table
        else:
            same = self.files == files and self.table == table
        return same and (self.schema_file is None or os.path.isfile(self.schema_file))


class DuckDBEngine(QueryEngineAdapter):
    """SQL over the lake in an embedded DuckDB database.

    Catalog tables are addressable as ``namespace.table``; anything else DuckDB knows (its own
    tables, ``read_parquet('...')``, table functions) works as in DuckDB. Parameters use
    DuckDB's markers: positional ``?`` or ``$1`` with a sequence, named ``$name`` with a mapping.

    Args:
        database: ``":memory:"`` (default) or the path of a DuckDB database file.
        catalog: the lake catalog (facade or adapter, or a zero-argument callable returning one,
            called on the first query that names a table). None: only DuckDB's own objects.
        store: the object store holding the tables' files (same forms as ``catalog``).
        threads, memory_limit, temp_directory: DuckDB settings (see :class:`DuckDBSettings`).

    Raises:
        ConfigurationError: the database cannot be opened or a setting is rejected.
    """

    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {
            Capability.BOUND_PARAMETERS,
            Capability.STREAMING_RESULTS,
            Capability.CATALOG_TABLES,
            Capability.CANCEL,
        }
    )
    settings_model: ClassVar[type[AdapterSettings]] = DuckDBSettings

    def __init__(
        self,
        *,
        database: str | os.PathLike[str] = ":memory:",
        catalog: CatalogSource | None = None,
        store: StoreSource | None = None,
        threads: int | None = None,
        memory_limit: str | None = None,
        temp_directory: str | os.PathLike[str] | None = None,
    ) -> None:
        self.database = os.fspath(database)
        config: dict[str, Any] = {
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
            "python_enable_replacements": False,
        }
        if threads is not None:
            config["threads"] = threads
        if memory_limit is not None:
            config["memory_limit"] = memory_limit
        if temp_directory is not None:
            config["temp_directory"] = os.fspath(temp_directory)
        try:
            self._con = duckdb.connect(self.database, config=config)
            # GLOBAL so that every cursor inherits them; extension options (ICU's, parquet's)
            # cannot be passed to connect(). TIMESTAMPTZ values render in UTC whatever the
            # machine's zone, as on every cloud engine. Parquet footers are cached in memory
            # (validated against the file's modification time by DuckDB): a query over 30 files
            # then re-reads no footer, which saves ~1.5 ms on a point lookup.
            self._con.execute("SET GLOBAL TimeZone = 'UTC'")
            self._con.execute("SET GLOBAL parquet_metadata_cache = true")
        except duckdb.Error as exc:
            raise ConfigurationError(
                f"cannot open DuckDB database {self.database!r}: {exc}"
            ) from exc
        self._catalog_source = catalog
        self._store_source = store
        self._catalog: Catalog | None = None
        self._store: ObjectStore | None = None
        self._parser = StatementParser()
        # Schema files of uniform views: private to an in-memory database, beside a persistent
        # one (its stored views name them, and every engine on that file shares them).
        self._schema_files = SchemaFiles(
            None if self.database == ":memory:" else f"{self.database}.lakekit-schemas"
        )
        # _lock guards the connection objects and the set of running cursors; _views_lock
        # serialises view maintenance (catalog lookup + listing + DDL) so a view is never
        # replaced by an older state than the one it has.
        self._lock = threading.Lock()
        self._views_lock = threading.Lock()
        self._ddl = self._con.cursor()
        self._views: dict[tuple[str, str], _ViewState] = {}
        self._idents: dict[tuple[str, str], TableIdent | None] = {}  # validated names
        # Cursors of queries still running or streaming. Weak: a result dropped unread releases
        # its cursor with it (an unstarted generator never runs its ``finally``).
        self._running: weakref.WeakSet[duckdb.DuckDBPyConnection] = weakref.WeakSet()
        self._registered_protocols: set[str] = set()
        self._closed = False

    @classmethod
    def from_settings(cls, settings: AdapterSettings, lake: Lake) -> Self:
        """Build the engine of ``lake``: its catalog and store are opened on first use."""
        if not isinstance(settings, DuckDBSettings):
            raise ConfigurationError(
                f"DuckDBEngine needs DuckDBSettings, got {type(settings).__name__}"
            )
        return cls(
            database=database_from_url(settings.url),
            catalog=lambda: lake.catalog,
            store=lambda: lake.store,
            threads=settings.threads,
            memory_limit=settings.memory_limit,
            temp_directory=settings.temp_directory,
        )

    def __repr__(self) -> str:
        return f"DuckDBEngine(database={self.database!r})"

    # -- QueryEngineAdapter ---------------------------------------------------------------------
    def execute(self, sql: str, params: Params | None = None) -> pa.RecordBatchReader:
        """Run one statement with bound ``params``; stream its rows as Arrow record batches.

        The reader yields batches of about :data:`BATCH_ROWS` rows as DuckDB produces them;
        the query keeps running (and holds its cursor) until the reader is exhausted, closed
        or garbage-collected, or :meth:`cancel` interrupts it.

        Raises:
            NotFoundError: a ``namespace.table`` name is neither a catalog table nor a DuckDB
                table or view.
            InvalidInputError: ``sql`` holds more than one statement.
            QueryError: DuckDB rejected or failed the statement (the DuckDB error is chained),
                a lake table's metadata file is missing, or the engine is closed.
            LakekitError: the catalog or the store failed (e.g. TransientError), unchanged.
        """
        self._check_open()
        try:
            parsed = self._parser.parse(sql)
        except duckdb.Error as exc:
            raise QueryError(str(exc)) from exc
        for schema, name in sorted(parsed.refs):
            self._resolve(schema, name, strict=parsed.strict)
        values = _bind_values(params)
        cursor = self._open_cursor()
        try:
            relation = cursor.sql(sql, params=values)
            if relation is None:
                raise QueryError("DuckDB returned no result for the statement")
            reader = relation.to_arrow_reader(BATCH_ROWS)
        except duckdb.Error as exc:
            self._release_cursor(cursor)
            raise QueryError(str(exc)) from exc
        except BaseException:
            self._release_cursor(cursor)
            raise
        import pyarrow as pa

        return pa.RecordBatchReader.from_batches(reader.schema, self._stream(cursor, reader))

    def cancel(self) -> None:
        """Interrupt every query of this engine that is running or still streaming.

        The interrupted queries raise QueryError in the thread that runs or reads them.
        A no-op when nothing runs.
        """
        with self._lock:
            running = list(self._running)
        for cursor in running:
            cursor.interrupt()

    def close(self) -> None:
        """Interrupt running queries and close the database. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            running = list(self._running)
        for cursor in running:
            cursor.interrupt()
        self._parser.close()
        with self._views_lock:
            self._ddl.close()
        with self._lock:
            self._con.close()
        self._schema_files.close()

    # -- catalog tables -------------------------------------------------------------------------
    def _resolve(self, schema: str, name: str, *, strict: bool) -> None:
        """Make ``schema.name`` readable: a current view over a catalog table, or a DuckDB object.

        ``strict`` names are certainly read by the statement; the others (found in statements
        DuckDB cannot serialize, such as CREATE TABLE AS) may be write targets or
        ``alias.column`` pairs, so only catalog tables among them are acted on.

        Raises:
            NotFoundError: a strict name is neither.
        """
        try:
            ident = self._idents[(schema, name)]
        except KeyError:
            ident = _as_ident(schema, name)
            if len(self._idents) >= _IDENT_CACHE_SIZE:
                self._idents.clear()
            self._idents[(schema, name)] = ident
        with self._views_lock:
            table = self._load_table(ident) if ident is not None else None
            if table is not None:
                self._refresh_view(table)
                return
            if (schema, name) in self._views:
                # The catalog dropped (or renamed) a table this engine had a view for.
                self._ddl_execute(f"DROP VIEW IF EXISTS {quote_ident(schema)}.{quote_ident(name)}")
                del self._views[(schema, name)]
                if not strict:
                    return
            elif not strict or self._duckdb_has(schema, name):
                return
        where = "in the lake catalog" if self._catalog_source is not None else "(no catalog)"
        raise NotFoundError(
            f"table {schema}.{name} does not exist: it is not a table {where} nor a DuckDB "
            "table or view"
        )

    def _load_table(self, ident: TableIdent) -> TableMetadata | None:
        catalog = self._get_catalog()
        if catalog is None:
            return None
        try:
            return catalog.load_table(ident)
        except NotFoundError:
            return None

    def _refresh_view(self, table: TableMetadata) -> None:
        store = self._get_store()
        if store is None:
            raise QueryError(
                f"table {table.ident} is in the catalog but this engine has no object store to "
                "read its files from"
            )
        name = (table.ident.namespace, table.ident.name)
        built = self._views.get(name)
        if built is not None and built.current(table, None):
            return  # the steady state of a lake table: one catalog lookup, no DDL
        files = table_files(table, store)
        if built is not None and built.current(table, files):
            return  # the steady state of a listed table: a catalog lookup, a listing, no DDL
        paths = [self._address(store, key) for key in files.keys]
        schema_file = None
        if files.uniform_schema and paths:
            schema_file = self._schema_files.path(table)
            if GLOB_CHARACTERS.intersection(schema_file):
                schema_file = None  # a temporary directory DuckDB would glob: the mapped form
        ddl = view_ddl(table, paths, self._duckdb_types(table.schema), schema_file=schema_file)
        self._ddl_execute(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(table.ident.namespace)}")
        self._ddl_execute(ddl)
        self._views[name] = _ViewState(table, files, schema_file)

    def _address(self, store: ObjectStore, key: str) -> str:
        """How DuckDB reaches ``key``: a local path, or a URL of a registered fsspec filesystem."""
        uri = store.uri(key)
        if uri.startswith("file://"):
            return unquote(urlsplit(uri).path)
        if "://" not in uri:
            return uri
        protocol = uri.split("://", 1)[0]
        if protocol not in self._registered_protocols:
            # Non-local stores are read through their fsspec filesystem (no DuckDB extension,
            # so nothing is downloaded); its protocol must match the store's URIs.
            fs, _root = store.adapter.fsspec_filesystem()
            protocols = {fs.protocol} if isinstance(fs.protocol, str) else set(fs.protocol)
            if protocol not in protocols:
                raise QueryError(
                    f"the store's URIs use {protocol!r} but its fsspec filesystem serves "
                    f"{sorted(protocols)}: DuckDB cannot read {redact_url(uri)!r}"
                )
            with self._lock:
                if protocol not in self._registered_protocols:
                    self._con.register_filesystem(fs)
                    self._registered_protocols.update(protocols)
        return uri

    def _duckdb_types(self, schema: pa.Schema) -> list[str]:
        """DuckDB's own type names for an Arrow schema (as DuckDB converts Arrow data)."""
        self._check_open()
        try:
            relation = self._ddl.from_arrow(schema.empty_table())
            return [str(dtype) for dtype in relation.types]
        except duckdb.Error as exc:
            raise QueryError(f"DuckDB cannot represent the schema {schema}: {exc}") from exc

    def _duckdb_has(self, schema: str, name: str) -> bool:
        """Whether DuckDB itself resolves ``schema.name`` (schema.table or database.table)."""
        query = (
            "SELECT count(*) FROM ("
            " SELECT database_name, schema_name, table_name FROM duckdb_tables()"
            " UNION ALL SELECT database_name, schema_name, view_name FROM duckdb_views())"
            " WHERE lower(table_name) = $name"
            " AND (lower(schema_name) = $schema OR lower(database_name) = $schema)"
        )
        row = self._ddl_query(query, {"schema": schema, "name": name})
        return bool(row and row[0])

    # -- cursors --------------------------------------------------------------------------------
    def _open_cursor(self) -> duckdb.DuckDBPyConnection:
        with self._lock:
            self._check_open()
            cursor = self._con.cursor()
            self._running.add(cursor)
            return cursor

    def _release_cursor(self, cursor: duckdb.DuckDBPyConnection) -> None:
        with self._lock:
            self._running.discard(cursor)
        cursor.close()

    def _stream(
        self, cursor: duckdb.DuckDBPyConnection, reader: pa.RecordBatchReader
    ) -> Iterator[pa.RecordBatch]:
        import pyarrow as pa

        try:
            yield from reader
        except (duckdb.Error, pa.ArrowException, OSError) as exc:
            # An error DuckDB meets while streaming crosses the Arrow C stream interface, which
            # pyarrow raises as a plain OSError: any error of this read is the query's failure.
            raise QueryError(str(exc)) from exc
        finally:
            reader.close()
            self._release_cursor(cursor)

    # The DDL cursor is only used with _views_lock held (close() takes it too).
    def _ddl_execute(self, statement: str) -> None:
        self._check_open()
        try:
            self._ddl.execute(statement)
        except duckdb.Error as exc:
            raise QueryError(str(exc)) from exc

    def _ddl_query(self, query: str, params: Mapping[str, Any]) -> tuple[Any, ...] | None:
        self._check_open()
        try:
            row: tuple[Any, ...] | None = self._ddl.execute(query, dict(params)).fetchone()
        except duckdb.Error as exc:
            raise QueryError(str(exc)) from exc
        return row

    def _check_open(self) -> None:
        if self._closed:
            raise QueryError("this DuckDBEngine is closed")

    # -- lazily opened collaborators ------------------------------------------------------------
    def _get_catalog(self) -> Catalog | None:
        if self._catalog is None and self._catalog_source is not None:
            source = self._catalog_source
            if not isinstance(source, Catalog | CatalogAdapter):
                source = source()
            self._catalog = source if isinstance(source, Catalog) else Catalog(source)
        return self._catalog

    def _get_store(self) -> ObjectStore | None:
        if self._store is None and self._store_source is not None:
            source = self._store_source
            if not isinstance(source, ObjectStore | ObjectStoreAdapter):
                source = source()
            self._store = source if isinstance(source, ObjectStore) else ObjectStore(source)
        return self._store


def _as_ident(schema: str, name: str) -> TableIdent | None:
    """The catalog identity of a two-part name, or None if it cannot be a lakekit table."""
    try:
        return TableIdent(validate_name(schema), validate_name(name))
    except ValueError:
        return None


def _bind_values(params: Params | None) -> list[Any] | dict[str, Any] | None:
    if params is None:
        return None
    if isinstance(params, Mapping):
        return {str(key): value for key, value in params.items()}
    if isinstance(params, Sequence) and not isinstance(params, str | bytes):
        return list(params)
    raise InvalidInputError(
        f"params must be a sequence (for ? / $1) or a mapping (for $name), "
        f"got {type(params).__name__}"
    )
