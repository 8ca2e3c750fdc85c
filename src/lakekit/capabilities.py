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
    """``PutMode.CREATE`` is atomic: of N concurrent creators exactly one wins."""
    PUT_IF_MATCH = "put_if_match"
    """``PutMode.update(etag)`` is an atomic compare-and-swap on the object's etag."""
    COPY_IF_ABSENT = "copy_if_absent"
    """``copy(..., overwrite=False)`` is atomic."""
    OBJECT_URL = "object_url"
    """``url(key)`` returns a URL another program can read the object from."""
    SIGNED_URL = "signed_url"
    """``url(key, expires_in=...)`` returns a time-limited signed URL needing no credentials."""

    # Catalog
    RENAME_TABLE = "rename_table"
    SEARCH = "search"
    STATE = "state"
    """A durable key/value state area, committed atomically with table commits."""
    MULTI_WRITER = "multi_writer"
    """Commits are safe across processes (and machines, for a networked catalog)."""

    # QueryEngine
    BOUND_PARAMETERS = "bound_parameters"
    STREAMING_RESULTS = "streaming_results"
    CATALOG_TABLES = "catalog_tables"
    """Catalog tables are addressable in SQL as ``namespace.table``."""
    CANCEL = "cancel"

    # Stream
    KEYED_PARTITIONS = "keyed_partitions"
    """Records with the same key go to the same partition, in order."""
    CONSUMER_GROUPS = "consumer_groups"
    REPLAY_FROM_TIME = "replay_from_time"
    RETENTION = "retention"

    # FunctionRuntime
    ASYNC_INVOKE = "async_invoke"
    RETRIES = "retries"
    DEAD_LETTER = "dead_letter"
    TIMEOUT = "timeout"
    CONCURRENCY_LIMIT = "concurrency_limit"



def require(adapter: Any, capability: Capability, detail: str = "") -> None:
    """Raise :class:`NotSupportedError` unless ``adapter`` declares ``capability``.

    Raises:
        NotSupportedError: naming the adapter class and the capability.
    """
    if capability not in getattr(adapter, "capabilities", frozenset()):
        name = adapter.__name__ if isinstance(adapter, type) else type(adapter).__name__
        raise NotSupportedError(name, capability.value, detail)
