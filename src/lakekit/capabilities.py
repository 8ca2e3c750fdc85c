"""Capabilities: what an adapter can do, declared once as data.

Each adapter class sets ``capabilities: ClassVar[frozenset[Capability]]``. The facades check it
before calling an optional operation (raising :class:`~lakekit.errors.NotSupportedError`), the
conformance suite gates its tests on it, and ``docs/adapters.md`` is generated from it.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from lakekit.errors import NotSupportedError

__all__ = ["Capability", "require"]


class Capability(StrEnum):
    """One optional ability of an adapter. Values are stable strings used in docs and errors."""

    # ObjectStore
    PUT_IF_ABSENT = "put_if_absent"
    PUT_IF_MATCH = "put_if_match"
    COPY_IF_ABSENT = "copy_if_absent"
    OBJECT_URL = "object_url"
    SIGNED_URL = "signed_url"
    # Catalog
    RENAME_TABLE = "rename_table"
    SEARCH = "search"
    STATE = "state"
    MULTI_WRITER = "multi_writer"
    # QueryEngine
    BOUND_PARAMETERS = "bound_parameters"
    STREAMING_RESULTS = "streaming_results"
    CATALOG_TABLES = "catalog_tables"
    CANCEL = "cancel"
    # Stream
    KEYED_PARTITIONS = "keyed_partitions"
    CONSUMER_GROUPS = "consumer_groups"
    REPLAY_FROM_TIME = "replay_from_time"
    RETENTION = "retention"
    # FunctionRuntime
    ASYNC_INVOKE = "async_invoke"
    RETRIES = "retries"
    DEAD_LETTER = "dead_letter"
    TIMEOUT = "timeout"
    CONCURRENCY_LIMIT = "concurrency_limit"

    @property
    def description(self) -> str:
        """One sentence saying what an adapter declaring this capability guarantees."""
        return _DESCRIPTIONS[self]


_DESCRIPTIONS: dict[Capability, str] = {
    Capability.PUT_IF_ABSENT: "`PutMode.CREATE` is atomic: of racing creators exactly one wins.",
    Capability.PUT_IF_MATCH: "`PutMode.update(etag)` is an atomic compare-and-swap on the etag.",
    Capability.COPY_IF_ABSENT: "`copy(..., overwrite=False)` is atomic.",
    Capability.OBJECT_URL: "`url(key)` returns a URL another program on this machine can read.",
    Capability.SIGNED_URL: "`url(key, expires_in=...)` returns a time-limited signed URL.",
    Capability.RENAME_TABLE: "Tables can be renamed (within or across namespaces).",
    Capability.SEARCH: "Tables can be searched by name, column and property.",
    Capability.STATE: "A durable key/value state area, committed atomically with table commits.",
    Capability.MULTI_WRITER: "Commits are safe across processes (and machines, when networked).",
    Capability.BOUND_PARAMETERS: "Query values travel as bound parameters, never as SQL text.",
    Capability.STREAMING_RESULTS: "Results stream as Arrow batches without materialising.",
    Capability.CATALOG_TABLES: "Catalog tables are addressable in SQL as `namespace.table`.",
    Capability.CANCEL: "A running query can be cancelled from another thread.",
    Capability.KEYED_PARTITIONS: "Records with the same key go to one partition, in order.",
    Capability.CONSUMER_GROUPS: "Consumer groups with durable committed offsets (at-least-once).",
    Capability.REPLAY_FROM_TIME: "Consumers can replay from a timestamp.",
    Capability.RETENTION: "Old records are dropped by age or size limits.",
    Capability.ASYNC_INVOKE: "Asynchronous invocation returning a future.",
    Capability.RETRIES: "Failed invocations are retried with exponential backoff.",
    Capability.DEAD_LETTER: "Events that exhaust their retries are recorded with the error.",
    Capability.TIMEOUT: "An attempt running past its timeout fails with FunctionTimeoutError.",
    Capability.CONCURRENCY_LIMIT: "At most N invocations of one function run at once.",
}


def require(adapter: Any, capability: Capability, detail: str = "") -> None:
    """Raise :class:`NotSupportedError` unless ``adapter`` declares ``capability``.

    Raises:
        NotSupportedError: naming the adapter class and the capability.
    """
    if capability not in getattr(adapter, "capabilities", frozenset()):
        name = adapter.__name__ if isinstance(adapter, type) else type(adapter).__name__
        raise NotSupportedError(name, capability.value, detail)
