"""lakekit: serverless data lakes that run unchanged on AWS, Google Cloud, Azure, or a laptop.

    import lakekit

    with lakekit.connect("local://./lake") as lake:
        lake.store.put("raw/hello.txt", b"hi")
        lake.sql("select 42").scalar()

Importing lakekit is cheap: the interfaces, adapters and heavy libraries (pyarrow, DuckDB,
SQLAlchemy, any cloud SDK) load only when first used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from lakekit._lazy import load_lazy
from lakekit.errors import (
    AlreadyExistsError,
    CommitConflictError,
    ConfigurationError,
    ConflictError,
    FunctionError,
    FunctionTimeoutError,
    InvalidInputError,
    LakekitError,
    MissingDependencyError,
    NotFoundError,
    NotSupportedError,
    PermissionDeniedError,
    PreconditionFailedError,
    QueryError,
    SchemaError,
    TransientError,
)

if TYPE_CHECKING:
    from lakekit.capabilities import Capability
    from lakekit.events import Event, Invoke
    from lakekit.identifiers import TableIdent
    from lakekit.interfaces.catalog import Catalog, TableMetadata, TableUpdate
    from lakekit.interfaces.function_runtime import Context, FunctionOptions, FunctionRuntime
    from lakekit.interfaces.object_store import ObjectMeta, ObjectStore, PutMode
    from lakekit.interfaces.query_engine import QueryEngine, QueryResult
    from lakekit.interfaces.stream import Consumer, Message, Record, Stream
    from lakekit.lake import Lake, connect
    from lakekit.partition_spec import PartitionField, PartitionSpec
    from lakekit.tables import Snapshot, Table, WriteOptions

__version__ = "0.1.0"

_LAZY = {
    "connect": "lakekit.lake",
    "Lake": "lakekit.lake",
    "Capability": "lakekit.capabilities",
    "Event": "lakekit.events",
    "Invoke": "lakekit.events",
    "TableIdent": "lakekit.identifiers",
    "Catalog": "lakekit.interfaces.catalog",
    "TableMetadata": "lakekit.interfaces.catalog",
    "TableUpdate": "lakekit.interfaces.catalog",
    "Context": "lakekit.interfaces.function_runtime",
    "FunctionOptions": "lakekit.interfaces.function_runtime",
    "FunctionRuntime": "lakekit.interfaces.function_runtime",
    "ObjectMeta": "lakekit.interfaces.object_store",
    "ObjectStore": "lakekit.interfaces.object_store",
    "PutMode": "lakekit.interfaces.object_store",
    "QueryEngine": "lakekit.interfaces.query_engine",
    "QueryResult": "lakekit.interfaces.query_engine",
    "Consumer": "lakekit.interfaces.stream",
    "Message": "lakekit.interfaces.stream",
    "Record": "lakekit.interfaces.stream",
    "Stream": "lakekit.interfaces.stream",
    "PartitionField": "lakekit.partition_spec",
    "PartitionSpec": "lakekit.partition_spec",
    "Snapshot": "lakekit.tables",
    "Table": "lakekit.tables",
    "WriteOptions": "lakekit.tables",
}

__all__ = [
    # entry points
    "connect",
    "Lake",
    # interfaces (user-facing facades) and their value types
    "ObjectStore",
    "ObjectMeta",
    "PutMode",
    "Catalog",
    "TableIdent",
    "TableMetadata",
    "TableUpdate",
    "PartitionSpec",
    "PartitionField",
    "Table",
    "Snapshot",
    "WriteOptions",
    "QueryEngine",
    "QueryResult",
    "Stream",
    "Consumer",
    "Message",
    "Record",
    "FunctionRuntime",
    "FunctionOptions",
    "Context",
    "Event",
    "Invoke",
    "Capability",
    # errors
    "LakekitError",
    "ConfigurationError",
    "MissingDependencyError",
    "InvalidInputError",
    "NotFoundError",
    "AlreadyExistsError",
    "ConflictError",
    "PreconditionFailedError",
    "CommitConflictError",
    "SchemaError",
    "NotSupportedError",
    "PermissionDeniedError",
    "QueryError",
    "FunctionError",
    "FunctionTimeoutError",
    "TransientError",
    "__version__",
]


_SUBPACKAGES = frozenset({"streaming"})
"""Subpackages reachable as ``lakekit.<name>`` without importing them first (loaded on use)."""


def __getattr__(name: str) -> Any:
    if name in _SUBPACKAGES:
        return importlib.import_module(f"lakekit.{name}")
    return load_lazy(__name__, _LAZY, globals(), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
