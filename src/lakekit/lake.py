"""The composition root: one :class:`Lake` holds a store, a catalog, an engine, streams and a
function runtime, each built lazily from configuration by the adapter its URL selects."""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Any, cast

from lakekit._redact import redact_url
from lakekit.config import LakeConfig, load_config
from lakekit.errors import ConfigurationError
from lakekit.registry import Component, resolve

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    import pyarrow as pa

    from lakekit.identifiers import TableIdent
    from lakekit.interfaces.catalog import Catalog
    from lakekit.interfaces.function_runtime import FunctionRuntime
    from lakekit.interfaces.object_store import ObjectStore
    from lakekit.interfaces.query_engine import Params, QueryEngine, QueryResult
    from lakekit.interfaces.stream import Stream
    from lakekit.partition_spec import PartitionSpec
    from lakekit.pipelines.pipeline import Pipeline
    from lakekit.pipelines.report import RunReport
    from lakekit.pipelines.transform import TransformMode
    from lakekit.tables.metadata import Snapshot
    from lakekit.tables.table import Table
    from lakekit.tables.writer import WriteOptions

__all__ = ["Lake", "connect"]


def connect(
    url: str | os.PathLike[str] | None = None,
    *,
    config_file: str | os.PathLike[str] | None = None,
    store: Any = None,
    catalog: Any = None,
    engine: Any = None,
    stream: Any = None,
    functions: Any = None,
) -> Lake:
    """Open a lake.

    Args:
        url: ``local://./lake`` (or a plain path) for the embedded local lake; cloud URLs as
            their adapters arrive. Falls back to ``LAKEKIT_URL`` and ``lakekit.toml``.
        config_file: a ``lakekit.toml`` to read (default ``$LAKEKIT_CONFIG`` or ``./lakekit.toml``).
        store, catalog, engine, stream, functions: per-component overrides: a URL string
            (``catalog="postgresql+psycopg://..."``), a dict of settings, or a ready adapter.

    Nothing is opened until first use, so ``connect`` itself is cheap and never touches the
    network; configuration errors in a component surface when that component is first used.

    Raises:
        ConfigurationError: no URL, unknown component, unreadable config file.
    """
    config = load_config(
        url,
        config_file=config_file,
        store=store,
        catalog=catalog,
        engine=engine,
        stream=stream,
        functions=functions,
    )
    return Lake(config)


class Lake:
    """A data lake: ``lake.store``, ``lake.catalog``, ``lake.engine``, ``lake.stream(name)``,
    ``lake.functions``. Use as a context manager (or call :meth:`close`) to release resources.

    Components are created on first access, once, in a thread-safe way.
    """

    def __init__(self, config: LakeConfig) -> None:
        self.config = config
        self._lock = threading.RLock()
        self._components: dict[str, Any] = {}
        self._streams: dict[str, Stream] = {}
        self._closed = False

    def __repr__(self) -> str:
        return f"Lake({redact_url(self.config.url)!r})"

    def __enter__(self) -> Lake:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def url(self) -> str:
        return self.config.url

    # -- components -----------------------------------------------------------------------------
    @property
    def store(self) -> ObjectStore:
        from lakekit.interfaces.object_store import ObjectStore

        return cast("ObjectStore", self._component("store", ObjectStore))

    @property
    def catalog(self) -> Catalog:
        from lakekit.interfaces.catalog import Catalog

        return cast("Catalog", self._component("catalog", Catalog))

    @property
    def engine(self) -> QueryEngine:
        from lakekit.interfaces.query_engine import QueryEngine

        return cast("QueryEngine", self._component("engine", QueryEngine))

    @property
    def functions(self) -> FunctionRuntime:
        from lakekit.interfaces.function_runtime import FunctionRuntime

        return cast("FunctionRuntime", self._component("functions", FunctionRuntime))

    def stream(self, name: str) -> Stream:
        """The stream called ``name`` (created on first publish where the adapter allows)."""
        from lakekit.identifiers import validate_name
        from lakekit.interfaces.stream import Stream, StreamAdapter

        validate_name(name, what="stream name")
        with self._lock:
            self._check_open()
            if name not in self._streams:
                comp = self.config.component("stream")
                if comp.instance is not None:
                    factory = comp.instance
                    adapter = factory(name) if callable(factory) else factory
                else:
                    adapter_cls = self._adapter_class("stream")
                    settings = self.config.settings("stream", adapter_cls.settings_model)
                    adapter = adapter_cls.from_settings(settings, self, name)
                if not isinstance(adapter, StreamAdapter):
                    raise ConfigurationError(f"stream adapter {adapter!r} is not a StreamAdapter")
                self._streams[name] = Stream(adapter)
            return self._streams[name]

    # -- tables ---------------------------------------------------------------------------------
    def table(self, name: str | TableIdent) -> Table:
        """The lake table ``name`` (``"namespace.table"``).

        Raises:
            NotFoundError: no such table. InvalidInputError: a malformed name.
        """
        from lakekit.identifiers import TableIdent
        from lakekit.tables.table import Table

        ident = TableIdent.parse(name)
        self.catalog.load_table(ident)
        return Table(ident, catalog=self.catalog, store=self.store)

    def create_table(
        self,
        name: str | TableIdent,
        schema: pa.Schema,
        *,
        partition_by: PartitionSpec | Sequence[str] | None = None,
        location: str | None = None,
        properties: Mapping[str, str] | None = None,
        exist_ok: bool = False,
    ) -> Table:
        """Create an empty lake table. ``partition_by`` takes column names and transforms such as
        ``["day(ts)", "country", "bucket[16](user_id)"]``.

        Raises:
            AlreadyExistsError: the table exists (unless ``exist_ok``).
            SchemaError: a bad schema or a partition column not in it.
        """
        from lakekit.tables.table import Table

        return Table.create(
            name, schema, catalog=self.catalog, store=self.store, partition_by=partition_by,
            location=location, properties=properties, exist_ok=exist_ok,
        )  # fmt: skip

    def register_table(
        self,
        name: str | TableIdent,
        path: str,
        *,
        format: str = "parquet",
        partitioning: str | None = "hive",
    ) -> Table:
        """Adopt a directory of Parquet files written by another tool as a lake table, without
        copying: the files under ``path`` (a prefix in the lake) become its first snapshot.

        Raises:
            NotFoundError: no data files under ``path``.
            AlreadyExistsError: the table exists.
        """
        from lakekit.tables.maintenance import register_table

        table: Table = register_table(
            name, path, catalog=self.catalog, store=self.store, format=format,
            partitioning=partitioning,
        )  # fmt: skip
        return table

    def sql(self, query: str, params: Params | None = None) -> QueryResult:
        """Shortcut for ``lake.engine.sql(query, params)``."""
        return self.engine.sql(query, params)

    # -- pipelines ------------------------------------------------------------------------------
    def pipeline(self, name: str) -> Pipeline:
        """The ELT pipeline called ``name``: ``lake.pipeline("orders").run(source, into=...)``.

        Its state lives in the catalog under ``pipelines/<name>/``; see
        :mod:`lakekit.pipelines.pipeline` for the exactly-once guarantee.

        Raises:
            InvalidInputError: a malformed name.
        """
        from lakekit.pipelines.pipeline import Pipeline

        return Pipeline(self, name)

    def runs(self, pipeline: str | None = None, limit: int = 20) -> list[RunReport]:
        """Stored pipeline run reports, newest first (of one pipeline, or of all)."""
        from lakekit.pipelines.report import list_runs

        return list_runs(self.catalog, pipeline, limit)

    def transform(
        self,
        sql: str,
        into: str | TableIdent,
        *,
        mode: TransformMode = "overwrite",
        params: Params | None = None,
        partition_by: PartitionSpec | Sequence[str] | None = None,
        options: WriteOptions | None = None,
    ) -> Snapshot:
        """Materialise ``lake.sql(sql, params)`` into table ``into`` as one atomic snapshot
        (created if missing). ``mode="overwrite_partitions"`` replaces only the partitions in
        the result. See :func:`lakekit.pipelines.transform.transform`."""
        from lakekit.pipelines.transform import transform

        return transform(
            self, sql, into, mode=mode, params=params, partition_by=partition_by, options=options
        )

    def close(self) -> None:
        """Close every component that was opened (streams, engine, functions, catalog, store).

        Queued function invocations are drained first, while the rest of the lake is still
        open and unlocked: their handlers may use ``context.lake``.
        """
        with self._lock:
            functions = None if self._closed else self._components.get("functions")
        if functions is not None:
            functions.close()
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for stream in self._streams.values():
                stream.close()
            for name in ("functions", "engine", "catalog", "store"):
                component = self._components.pop(name, None)
                if component is not None:
                    component.close()

    # -- internals ------------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise ConfigurationError("this lake is closed; call lakekit.connect() again")

    def _adapter_class(self, component: Component) -> type[Any]:
        url = self.config.component(component).url
        if not url:
            from lakekit.config import env_var

            raise ConfigurationError(
                f"no {component} configured for {redact_url(self.config.url)!r}: pass "
                f"connect(..., {component}='<url>') or set {env_var(component)}"
            )
        adapter_cls = resolve(component, url)
        if not hasattr(adapter_cls, "from_settings") or not hasattr(adapter_cls, "settings_model"):
            raise ConfigurationError(
                f"{adapter_cls.__name__} is not a lakekit adapter: it needs a settings_model and "
                "a from_settings() classmethod"
            )
        return adapter_cls

    def _component(self, name: Component, facade: type[Any]) -> Any:
        with self._lock:
            self._check_open()
            if name not in self._components:
                comp = self.config.component(name)
                if comp.instance is not None:
                    obj = comp.instance
                    adapter = obj.adapter if isinstance(obj, facade) else obj
                else:
                    adapter_cls = self._adapter_class(name)
                    settings = self.config.settings(name, adapter_cls.settings_model)
                    adapter = adapter_cls.from_settings(settings, self)
                self._components[name] = facade(adapter)
            return self._components[name]
