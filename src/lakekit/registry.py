"""Which adapter serves which URL: a sorted table of dotted paths, imported only when used.

A component URL's *scheme* picks the adapter: ``local://./lake`` -> ``local``,
``postgresql+psycopg://...`` -> ``postgresql``, a bare name such as ``duckdb`` -> ``duckdb``.
Built-in adapters are listed below; third-party packages add theirs through the
``lakekit.adapters`` entry-point group, naming each entry ``<component>.<scheme>``::

    [project.entry-points."lakekit.adapters"]
    "store.memory" = "my_package.store:MemoryStore"

Nothing is imported until an adapter is resolved, so ``import lakekit`` never pulls in a cloud
SDK. A missing extra raises MissingDependencyError with the exact ``pip install`` command.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from typing import Any, Final, Literal

from lakekit.errors import ConfigurationError, MissingDependencyError

__all__ = [
    "COMPONENTS",
    "AdapterEntry",
    "Component",
    "available",
    "register",
    "resolve",
    "scheme_of",
]

Component = Literal["store", "catalog", "engine", "stream", "functions"]
COMPONENTS: Final[tuple[Component, ...]] = ("store", "catalog", "engine", "stream", "functions")
ENTRY_POINT_GROUP: Final = "lakekit.adapters"


@dataclass(frozen=True, slots=True)
class AdapterEntry:
    """Where an adapter lives and what it needs installed."""

    target: str
    """``package.module:ClassName``."""
    extra: str | None = None
    """The lakekit extra that installs its dependencies (for the error message)."""
    requires: tuple[str, ...] = ()
    """Top-level modules that must be importable (checked before importing ``target``)."""


_LOCAL_STORE = AdapterEntry("lakekit.adapters.local.object_store:LocalObjectStore")
_SQL_CATALOG = AdapterEntry("lakekit.adapters.sql.catalog:SqlCatalog")
_POSTGRES_CATALOG = AdapterEntry(
    "lakekit.adapters.sql.catalog:SqlCatalog", extra="postgres", requires=("psycopg",)
)
_S3_STORE = AdapterEntry(
    "lakekit.adapters.aws.object_store:S3ObjectStore", extra="aws", requires=("boto3",)
)

# Sorted by (component, scheme). Cloud adapters join this table as they are built.
_BUILTIN: dict[tuple[str, str], AdapterEntry] = {
    ("catalog", "glue"): AdapterEntry(
        "lakekit.adapters.aws.glue_catalog:GlueCatalog", extra="aws", requires=("boto3",)
    ),
    ("catalog", "postgresql"): _POSTGRES_CATALOG,
    ("catalog", "sqlite"): _SQL_CATALOG,
    ("engine", "athena"): AdapterEntry(
        "lakekit.adapters.aws.athena_engine:AthenaEngine", extra="aws", requires=("boto3",)
    ),
    ("engine", "duckdb"): AdapterEntry("lakekit.adapters.duckdb.query_engine:DuckDBEngine"),
    ("functions", "lambda"): AdapterEntry(
        "lakekit.adapters.aws.lambda_runtime:LambdaFunctionRuntime",
        extra="aws",
        requires=("boto3",),
    ),
    ("functions", "local"): AdapterEntry(
        "lakekit.adapters.local.function_runtime:LocalFunctionRuntime"
    ),
    ("store", "file"): _LOCAL_STORE,
    ("store", "local"): _LOCAL_STORE,
    ("store", "s3"): _S3_STORE,
    ("store", "s3a"): _S3_STORE,
    ("stream", "kinesis"): AdapterEntry(
        "lakekit.adapters.aws.kinesis_stream:KinesisStream", extra="aws", requires=("boto3",)
    ),
    ("stream", "local"): AdapterEntry("lakekit.adapters.local.stream:LocalStream"),
}

# Schemes whose adapters are on the roadmap: a clear message instead of "unknown scheme".
_PLANNED: dict[str, str] = {
    "gs": "gcp",
    "gcs": "gcp",
    "bigquery": "gcp",
    "pubsub": "gcp",
    "abfs": "azure",
    "abfss": "azure",
    "az": "azure",
    "synapse": "azure",
    "eventhubs": "azure",
    "spark": "spark",
}

_registered: dict[tuple[str, str], AdapterEntry | type[Any]] = {}
_entry_points_loaded = False


def scheme_of(url: str) -> str:
    """The registry key of a component URL: the scheme without a ``+driver`` suffix, or the
    whole value when it is a bare name. A plain filesystem path counts as ``local``."""
    if "://" in url:
        return url.split("://", 1)[0].split("+", 1)[0].lower()
    if url.startswith(("/", ".", "~")) or "/" in url or "\\" in url:
        return "local"
    return url.lower()


def register(component: Component, scheme: str, adapter: str | type[Any]) -> None:
    """Register an adapter (a class, or a ``module:Class`` dotted path) for a scheme.

    Programmatic twin of the entry-point group; a later registration replaces an earlier one.
    """
    _check_component(component)
    entry = AdapterEntry(adapter) if isinstance(adapter, str) else adapter
    _registered[(component, scheme.lower())] = entry


def available(component: Component | None = None) -> list[tuple[str, str]]:
    """Every known ``(component, scheme)`` pair, sorted (built-in, entry points, registered)."""
    _load_entry_points()
    keys = set(_BUILTIN) | set(_registered)
    return sorted(k for k in keys if component is None or k[0] == component)


def resolve(component: Component, url: str) -> type[Any]:
    """The adapter class for ``url`` in ``component``, imported now.

    Raises:
        ConfigurationError: no adapter is known for the URL's scheme (lists the known ones).
        MissingDependencyError: the adapter's extra is not installed.
    """
    _check_component(component)
    scheme = scheme_of(url)
    found = _registered.get((component, scheme)) or _BUILTIN.get((component, scheme))
    if found is None:
        _load_entry_points()
        found = _registered.get((component, scheme))
    if found is None:
        known = ", ".join(s for c, s in available(component))
        if scheme in _PLANNED:
            extra = _PLANNED[scheme]
            raise ConfigurationError(
                f"the {scheme!r} {component} adapter is not part of this lakekit release yet "
                f"(it will come with lakekit[{extra}]); available {component} adapters: {known}"
            )
        raise ConfigurationError(
            f"no {component} adapter for scheme {scheme!r}; available: {known}. Third-party "
            f"adapters register under the {ENTRY_POINT_GROUP!r} entry-point group as "
            f"'{component}.<scheme>'"
        )
    if isinstance(found, type):
        return found
    return _import(found, f"the {scheme!r} {component} adapter")


def _import(entry: AdapterEntry, what: str) -> type[Any]:
    for module in entry.requires:
        if importlib.util.find_spec(module) is None:
            raise MissingDependencyError(what, entry.extra or module, module)
    module_name, _, attr = entry.target.partition(":")
    try:
        imported = importlib.import_module(module_name)
    except ImportError as exc:
        missing = getattr(exc, "name", None) or module_name
        if entry.extra and not missing.startswith("lakekit"):
            raise MissingDependencyError(what, entry.extra, missing) from exc
        raise ConfigurationError(f"cannot import {what} from {entry.target!r}: {exc}") from exc
    try:
        adapter = getattr(imported, attr)
    except AttributeError as exc:
        raise ConfigurationError(f"{entry.target!r} names no class for {what}") from exc
    if not isinstance(adapter, type):
        raise ConfigurationError(f"{entry.target!r} is not a class")
    return adapter


def _load_entry_points() -> None:
    global _entry_points_loaded  # noqa: PLW0603 - one-time lazy scan of installed plugins
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        component, _, scheme = ep.name.partition(".")
        if component in COMPONENTS and scheme:
            _registered.setdefault((component, scheme.lower()), AdapterEntry(ep.value))


def _check_component(component: str) -> None:
    if component not in COMPONENTS:
        raise ConfigurationError(
            f"unknown lake component {component!r}; expected one of {', '.join(COMPONENTS)}"
        )
