"""The five provider-neutral interfaces. Each module holds the implementer ABC
(``...Adapter``) and the user-facing facade built on it."""

from lakekit.interfaces.catalog import (
    Catalog,
    CatalogAdapter,
    StateEntry,
    TableMetadata,
    TableUpdate,
)
from lakekit.interfaces.function_runtime import (
    Context,
    DeadLetter,
    FunctionOptions,
    FunctionRuntime,
    FunctionRuntimeAdapter,
)
from lakekit.interfaces.object_store import (
    ListResult,
    ObjectMeta,
    ObjectStore,
    ObjectStoreAdapter,
    PutMode,
)
from lakekit.interfaces.query_engine import QueryEngine, QueryEngineAdapter, QueryResult
from lakekit.interfaces.stream import (
    Consumer,
    Message,
    PositionRange,
    Record,
    RecordBlock,
    RecordPosition,
    RecordRun,
    Stream,
    StreamAdapter,
)

__all__ = [
    "Catalog",
    "CatalogAdapter",
    "Consumer",
    "Context",
    "DeadLetter",
    "FunctionOptions",
    "FunctionRuntime",
    "FunctionRuntimeAdapter",
    "ListResult",
    "Message",
    "ObjectMeta",
    "ObjectStore",
    "ObjectStoreAdapter",
    "PositionRange",
    "PutMode",
    "QueryEngine",
    "QueryEngineAdapter",
    "QueryResult",
    "Record",
    "RecordBlock",
    "RecordPosition",
    "RecordRun",
    "StateEntry",
    "Stream",
    "StreamAdapter",
    "TableMetadata",
    "TableUpdate",
]
