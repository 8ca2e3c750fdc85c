"""The portable event model: what a function handler receives, whichever cloud delivered it.

Every event is a frozen dataclass with an ``id`` and a ``time``. The ``id`` is stable across
redeliveries of the same event (the provider's own event or message id where it has one), so it
doubles as an **idempotency key**: a handler that must act exactly once records the ids it has
finished and skips a redelivered one.

::

    Event                      id, time
    ├── Invoke                 a direct invocation: payload
    ├── ObjectEvent            bucket, key, source
    │   ├── ObjectCreated      + size, etag
    │   └── ObjectDeleted
    ├── StreamRecords          stream, partition, records (StreamRecord ...)
    ├── Schedule               name, expression, scheduled_time
    └── Http                   method, path, headers, query, body

Keys in object events are the provider's keys as delivered (URL-decoded). When a trigger of a
lake delivers the event, ``key`` is relative to the lake's root (what ``lake.store.get`` takes),
so the same handler body works on every provider.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "BatchResult",
    "Event",
    "Http",
    "HttpResponse",
    "Invoke",
    "ObjectCreated",
    "ObjectDeleted",
    "ObjectEvent",
    "Schedule",
    "StreamRecord",
    "StreamRecords",
]


def _new_id() -> str:
    return uuid.uuid4().hex


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, kw_only=True)
class Event:
    """Base of all portable events."""

    id: str = field(default_factory=_new_id)
    """Unique per event and identical on redelivery: use it as an idempotency key."""
    time: datetime = field(default_factory=_now)
    """When the event happened (UTC)."""


@dataclass(frozen=True, kw_only=True)
class Invoke(Event):
    """A direct invocation (``functions.invoke(name, payload)``)."""

    payload: Any = None


@dataclass(frozen=True, kw_only=True)
class ObjectEvent(Event):
    """Something happened to one object of a bucket (S3), bucket (GCS) or container (Azure)."""

    bucket: str
    """The bucket or container; for the local store, the lake root's path."""
    key: str
    """The object's key, URL-decoded. Relative to the lake root when a lake trigger delivers it."""
    source: str = "local"
    """Who emitted it: ``"aws:s3"``, ``"gcp:storage"``, ``"azure:blob"`` or ``"local"``."""


@dataclass(frozen=True, kw_only=True)
class ObjectCreated(ObjectEvent):
    """An object was created or overwritten."""

    size: int | None = None
    """Bytes, when the provider says."""
    etag: str | None = None
    """The provider's entity tag (quotes stripped), when it says."""


@dataclass(frozen=True, kw_only=True)
class ObjectDeleted(ObjectEvent):
    """An object was deleted."""


@dataclass(frozen=True, kw_only=True)
class StreamRecord:
    """One record of a :class:`StreamRecords` batch."""

    offset: str
    """The record's position in its partition, as the provider gives it (the local offset,
    a Kinesis sequence number, a Pub/Sub message id, an Event Hubs sequence number). Opaque:
    compare records by their order in the batch, not by this text. Name a failed record by it
    in :class:`BatchResult`."""
    value: bytes
    key: bytes | None = None
    """The partition key (Kinesis ``PartitionKey``, Pub/Sub ordering key, Event Hubs partition
    key), when there is one."""
    timestamp: datetime = field(default_factory=_now)
    """When the record was appended to the stream (UTC)."""
    headers: Mapping[str, str] = field(default_factory=dict)
    """Pub/Sub attributes, Event Hubs application properties, local headers."""

    def text(self) -> str:
        """The value decoded as UTF-8."""
        return self.value.decode()

    def json(self) -> Any:
        """The value decoded as UTF-8 JSON."""
        return json.loads(self.value)


@dataclass(frozen=True, kw_only=True)
class StreamRecords(Event):
    """A batch of records from one partition of a stream, in stream order."""

    stream: str
    partition: str
    """The partition (local partition number, Kinesis shard id, Event Hubs partition id; the
    subscription for Pub/Sub, which has no partitions)."""
    records: tuple[StreamRecord, ...] = ()

    @property
    def offsets(self) -> tuple[str, ...]:
        """The records' offsets, in order."""
        return tuple(record.offset for record in self.records)


@dataclass(frozen=True, slots=True)
class BatchResult:
    """What a stream handler returns to fail only some records of its batch.

    Only the records named in ``failed`` are retried (and dead-lettered once they exhaust
    their retries); the others count as processed. Returning anything else (or nothing)
    means the whole batch succeeded; raising means the whole batch failed. On Lambda this
    becomes the ``batchItemFailures`` response.
    """

    failed: tuple[str, ...] = ()
    """Offsets (:attr:`StreamRecord.offset`) of the records that failed."""

    def __init__(self, failed: Any = ()) -> None:
        offsets = tuple(
            item.offset if isinstance(item, StreamRecord) else str(item) for item in failed
        )
        object.__setattr__(self, "failed", offsets)


@dataclass(frozen=True, kw_only=True)
class Schedule(Event):
    """A tick of a schedule (``rate(5 minutes)``, ``cron(0 3 * * ? *)``)."""

    name: str
    """The function (or rule) the schedule belongs to."""
    expression: str
    scheduled_time: datetime = field(default_factory=_now)
    """The tick this event stands for (UTC); ``time`` is when it was actually delivered."""


@dataclass(frozen=True, kw_only=True)
class Http(Event):
    """An HTTP request."""

    method: str
    """Upper case: ``GET``, ``POST``, ..."""
    path: str
    """The request path, without the query string."""
    headers: Mapping[str, str] = field(default_factory=dict)
    """Header names in lower case."""
    query: Mapping[str, str] = field(default_factory=dict)
    """Query parameters (the last value of a repeated one)."""
    body: bytes = b""

    def text(self) -> str:
        """The body decoded as UTF-8."""
        return self.body.decode()

    def json(self) -> Any:
        """The body decoded as UTF-8 JSON."""
        return json.loads(self.body)


@dataclass(frozen=True, slots=True)
class HttpResponse:
    """What an HTTP handler may return for full control of the response.

    A handler that returns anything else returns ``200`` with that value as JSON (``None``:
    ``204`` with no body; ``bytes``/``str``: the body as is).
    """

    status: int = 200
    body: bytes | str | Any = b""
    """Bytes and strings are sent as they are; anything else as JSON."""
    headers: Mapping[str, str] = field(default_factory=dict)
