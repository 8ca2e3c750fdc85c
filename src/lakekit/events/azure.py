"""Azure's native event payloads -> lakekit's portable events.

Accepted payloads (see ``docs/events.md`` for samples):

- Event Grid blob events ``Microsoft.Storage.BlobCreated`` / ``BlobDeleted``, in the Event Grid
  schema (``eventType``, ``eventTime``) or the CloudEvents 1.0 schema (``type``, ``time``), as a
  list (what Event Grid posts) or a single event; Event Grid's
  ``Microsoft.EventGrid.SubscriptionValidationEvent`` is recognised (no events; see
  :func:`event_grid_validation_code`).
- Event Hubs batches as Azure Functions hands them to a Python function: a list of
  ``azure.functions.EventHubEvent`` (``cardinality="many"``), or one such event.

Parsers are pure: the same payload always gives equal events with equal ids. Malformed payloads
raise :class:`~lakekit.errors.InvalidInputError` naming the missing or wrong field.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote, urlsplit

from lakekit.events._fields import (
    Loc,
    as_map,
    epoch_time,
    iso_time,
    load_json,
    optional_str,
    required,
    required_map,
    required_str,
    stable_id,
    type_name,
)
from lakekit.events.model import (
    ObjectCreated,
    ObjectDeleted,
    ObjectEvent,
    StreamRecord,
    StreamRecords,
)

__all__ = [
    "BLOB_CREATED",
    "BLOB_DELETED",
    "SUBSCRIPTION_VALIDATION",
    "event_grid_validation_code",
    "event_grid_validation_response",
    "is_event_hub_event",
    "is_event_grid_event",
    "parse_event_grid",
    "parse_event_hubs",
]

BLOB_SOURCE = "azure:blob"
BLOB_CREATED = "Microsoft.Storage.BlobCreated"
BLOB_DELETED = "Microsoft.Storage.BlobDeleted"
SUBSCRIPTION_VALIDATION = "Microsoft.EventGrid.SubscriptionValidationEvent"
_SUBJECT_PREFIX = "/blobServices/default/containers/"


# ---------------------------------------------------------------------------------------------
# Event Grid


def is_event_grid_event(doc: object) -> bool:
    """Whether ``doc`` looks like one Event Grid event (either schema) lakekit knows the type of:
    a blob event, another ``Microsoft.Storage.*`` event or the subscription validation event."""
    if not isinstance(doc, Mapping):
        return False
    kind = doc.get("eventType", doc.get("type"))
    return isinstance(kind, str) and (
        kind.startswith("Microsoft.Storage.") or kind == SUBSCRIPTION_VALIDATION
    )


def parse_event_grid(payload: Mapping[str, Any] | Sequence[Any]) -> list[ObjectEvent]:
    """Blob events from an Event Grid delivery (a list of events, or one event).

    Both schemas are read: Event Grid (``eventType``, ``eventTime``) and CloudEvents 1.0
    (``type``, ``time``). ``Microsoft.Storage.BlobCreated`` gives :class:`ObjectCreated` (size
    from ``data.contentLength``, etag from ``data.eTag`` without its quotes),
    ``Microsoft.Storage.BlobDeleted`` :class:`ObjectDeleted`. The container and blob name come
    from ``subject`` (``/blobServices/default/containers/<container>/blobs/<name>``, the name as
    it is), or from ``data.url`` (URL-decoded) when there is no subject. ``id`` is the Event
    Grid event id. Other ``Microsoft.Storage.*`` events (tier changes, renames, directories)
    and the subscription validation event give nothing; events come out in delivery order.

    Raises:
        InvalidInputError: an event has a type other than ``Microsoft.Storage.*`` or the
            validation event, or a field is missing or malformed.
    """
    items = [payload] if isinstance(payload, Mapping) else list(payload)
    batch = isinstance(payload, Sequence)
    events: list[ObjectEvent] = []
    for i, item in enumerate(items):
        at = Loc("Event Grid event", f"[{i}]") if batch else Loc("Event Grid event")
        doc = as_map(item, at)
        kind = doc.get("eventType", doc.get("type"))
        if not isinstance(kind, str):
            raise at.key("eventType").error("is missing (or, in the CloudEvents schema, 'type')")
        if kind in (BLOB_CREATED, BLOB_DELETED):
            events.append(_blob_event(doc, kind, at))
        elif not (kind.startswith("Microsoft.Storage.") or kind == SUBSCRIPTION_VALIDATION):
            raise at.key("eventType").error(
                f"is {kind!r}: lakekit reads {BLOB_CREATED} and {BLOB_DELETED} "
                f"(other Microsoft.Storage.* events and {SUBSCRIPTION_VALIDATION} give no event)"
            )
    return events


def _blob_event(doc: Mapping[str, Any], kind: str, at: Loc) -> ObjectEvent:
    data_at = at.key("data")
    data = required_map(doc, "data", at)
    container, key = _container_and_blob(doc, data, at)
    event_id = required_str(doc, "id", at)
    time_name = "eventTime" if "eventType" in doc else "time"
    when = iso_time(required(doc, time_name, at), at.key(time_name))
    if kind == BLOB_DELETED:
        return ObjectDeleted(id=event_id, time=when, bucket=container, key=key, source=BLOB_SOURCE)
    size = data.get("contentLength")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int)):
        raise data_at.key("contentLength").error(f"must be a number, got {type_name(size)}")
    etag = optional_str(data, "eTag", data_at)
    return ObjectCreated(
        id=event_id,
        time=when,
        bucket=container,
        key=key,
        source=BLOB_SOURCE,
        size=size,
        etag=(etag.strip('"') or None) if etag is not None else None,
    )


def _container_and_blob(
    doc: Mapping[str, Any], data: Mapping[str, Any], at: Loc
) -> tuple[str, str]:
    subject = doc.get("subject")
    if isinstance(subject, str) and subject:
        rest = subject.removeprefix(_SUBJECT_PREFIX)
        container, sep, blob = rest.partition("/blobs/")
        if rest == subject or not sep or not container or not blob:
            raise at.key("subject").error(
                "must look like /blobServices/default/containers/<container>/blobs/<name>, "
                f"got {subject!r}"
            )
        return container, blob
    url = required_str(data, "url", at.key("data"))
    path = unquote(urlsplit(url).path).lstrip("/")
    container, _, blob = path.partition("/")
    if not container or not blob:
        raise (
            at.key("data")
            .key("url")
            .error(f"must be a blob URL https://<account>.../<container>/<name>, got {url!r}")
        )
    return container, blob


def event_grid_validation_code(payload: Mapping[str, Any] | Sequence[Any]) -> str | None:
    """The ``validationCode`` of Event Grid's subscription validation event, if ``payload`` is
    one (Event Grid schema); None otherwise.

    A webhook endpoint proves ownership by answering the validation POST with HTTP 200 and
    ``{"validationResponse": code}`` (see :func:`event_grid_validation_response`). CloudEvents
    subscriptions validate with an HTTP ``OPTIONS`` handshake instead, outside any payload.

    Raises:
        InvalidInputError: a validation event lacks ``data.validationCode``.
    """
    items = [payload] if isinstance(payload, Mapping) else list(payload)
    for i, item in enumerate(items):
        if isinstance(item, Mapping) and item.get("eventType") == SUBSCRIPTION_VALIDATION:
            at = Loc("Event Grid validation event", f"[{i}]")
            return required_str(required_map(item, "data", at), "validationCode", at.key("data"))
    return None


def event_grid_validation_response(
    payload: Mapping[str, Any] | Sequence[Any],
) -> dict[str, str] | None:
    """``{"validationResponse": code}`` for a subscription validation event, else None.

    Raises:
        InvalidInputError: a validation event lacks ``data.validationCode``.
    """
    code = event_grid_validation_code(payload)
    return None if code is None else {"validationResponse": code}


# ---------------------------------------------------------------------------------------------
# Event Hubs (Azure Functions)


def is_event_hub_event(obj: object) -> bool:
    """Whether ``obj`` behaves like ``azure.functions.EventHubEvent`` (``get_body()`` and
    ``sequence_number``)."""
    return callable(getattr(obj, "get_body", None)) and hasattr(obj, "sequence_number")


def parse_event_hubs(
    events: Any, *, event_hub: str | None = None, partition: str | None = None
) -> StreamRecords:
    """An Azure Functions Event Hubs trigger's batch as one :class:`StreamRecords`.

    ``events`` is what the Python worker passes the function: a list of
    ``azure.functions.EventHubEvent`` (``cardinality="many"``) or one of them. Each event's
    body (``get_body()``) is the record's ``value``. Its sequence number (the ``offset``),
    enqueued time (``timestamp``) and partition key (``key``) come from the event's attributes,
    else from the trigger metadata's system properties (``SequenceNumber`` /
    ``x-opt-sequence-number``, ``EnqueuedTimeUtc`` / ``x-opt-enqueued-time``, ``PartitionKey`` /
    ``x-opt-partition-key``); its application properties (``PropertiesArray``) are the
    ``headers``. ``stream`` and ``partition`` are ``PartitionContext.EventHubName`` and
    ``.PartitionId`` of the trigger metadata, unless given. Records are ordered by sequence
    number. The id is a hash of the namespace, event hub, partition and sequence numbers (stable
    on redelivery); ``time`` is the latest enqueued time.

    Raises:
        InvalidInputError: the batch is empty, an item is not an EventHubEvent, a sequence
            number or enqueued time is missing, or the event hub / partition cannot be told
            (pass ``event_hub=`` / ``partition=``).
    """
    at = Loc("Event Hubs batch")
    items: list[Any] = [events] if is_event_hub_event(events) else _as_list(events, at)
    if not items:
        raise at.error("is empty: Azure Functions never invokes a function with no events")
    for i, item in enumerate(items):
        if not is_event_hub_event(item):
            raise at.index(i).error(
                f"is {type_name(item)}, not an azure.functions.EventHubEvent "
                "(no get_body() / sequence_number)"
            )
    meta_value = getattr(items[0], "metadata", None)
    meta_at = Loc("Event Hubs trigger metadata")
    metadata = as_map(meta_value, meta_at) if meta_value is not None else {}
    if "SystemPropertiesArray" in metadata:
        system = _list_of_maps(
            metadata["SystemPropertiesArray"], meta_at.key("SystemPropertiesArray")
        )
        props = _list_of_maps(metadata.get("PropertiesArray"), meta_at.key("PropertiesArray"))
    else:
        single = dict(metadata)
        single.update(
            _map_or_empty(metadata.get("SystemProperties"), meta_at.key("SystemProperties"))
        )
        system = [single]
        props = [_map_or_empty(metadata.get("Properties"), meta_at.key("Properties"))]
    if len(items) > 1 and system and len(system) != len(items):
        raise meta_at.key("SystemPropertiesArray").error(
            f"has {len(system)} entries for {len(items)} events"
        )
    # The worker's list follows the metadata arrays; match by sequence number when the event
    # has one, so a reordered list still pairs each body with its own properties.
    by_sequence: dict[str, int] = {}
    for j, entry in enumerate(system):
        number = _first(entry.get("SequenceNumber"), entry.get("x-opt-sequence-number"))
        if number is not None:
            by_sequence[str(number)] = j
    records = []
    for i, item in enumerate(items):
        own = getattr(item, "sequence_number", None)
        j = by_sequence.get(str(own), i) if own is not None else i
        records.append(
            _event_hub_record(
                item,
                system[j] if j < len(system) else {},
                props[j] if j < len(props) else {},
                at.index(i),
            )
        )
    context = _map_or_empty(metadata.get("PartitionContext"), meta_at.key("PartitionContext"))
    hub = event_hub or _context_value(context, "EventHubName", "event_hub", meta_at)
    part = partition or _context_value(context, "PartitionId", "partition", meta_at)
    records.sort(key=lambda r: int(r.offset) if r.offset.isdigit() else 0)
    return StreamRecords(
        id=stable_id(
            "azure:eventhubs",
            context.get("FullyQualifiedNamespace"),
            hub,
            part,
            *(r.offset for r in records),
        ),
        time=max(r.timestamp for r in records),
        stream=hub,
        partition=part,
        records=tuple(records),
    )


def _event_hub_record(
    event: Any, system: Mapping[str, Any], props: Mapping[str, Any], at: Loc
) -> StreamRecord:
    body = event.get_body()
    if isinstance(body, str):
        body = body.encode("utf-8")
    if not isinstance(body, bytes | bytearray):
        raise at.error(f"get_body() returned {type_name(body)}, not bytes")
    sequence = _first(
        getattr(event, "sequence_number", None),
        system.get("SequenceNumber"),
        system.get("x-opt-sequence-number"),
    )
    if sequence is None:
        raise at.error(
            "has no sequence number (sequence_number, SystemProperties.SequenceNumber or "
            "x-opt-sequence-number)"
        )
    key = _first(
        getattr(event, "partition_key", None),
        system.get("PartitionKey"),
        system.get("x-opt-partition-key"),
    )
    return StreamRecord(
        offset=str(sequence),
        value=bytes(body),
        key=str(key).encode("utf-8") if key else None,
        timestamp=_enqueued_time(event, system, at),
        headers={str(k): _property_text(v) for k, v in props.items() if v is not None},
    )


def _enqueued_time(event: Any, system: Mapping[str, Any], at: Loc) -> datetime:
    value = getattr(event, "enqueued_time", None)
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    for name in ("EnqueuedTimeUtc", "EnqueuedTime"):
        if system.get(name) is not None:
            return iso_time(system[name], at.key(name))
    amqp = system.get("x-opt-enqueued-time")
    if isinstance(amqp, int | float) and not isinstance(amqp, bool):
        return epoch_time(amqp, at.key("x-opt-enqueued-time"), millis=True)
    if amqp is not None:
        return iso_time(amqp, at.key("x-opt-enqueued-time"))
    raise at.error(
        "has no enqueued time (enqueued_time, SystemProperties.EnqueuedTimeUtc or "
        "x-opt-enqueued-time)"
    )


def _first(*values: object) -> object:
    return next((v for v in values if v is not None and v != ""), None)


def _property_text(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", errors="replace")
    return json.dumps(value, default=str)


def _context_value(context: Mapping[str, Any], name: str, argument: str, at: Loc) -> str:
    value = context.get(name)
    if not isinstance(value, str) or not value:
        raise (
            at.key("PartitionContext")
            .key(name)
            .error(f"is missing: pass {argument}= to parse_event_hubs")
        )
    return value


def _as_list(value: object, at: Loc) -> list[Any]:
    if isinstance(value, list | tuple):
        return list(value)
    raise at.error(f"must be a list of azure.functions.EventHubEvent, got {type_name(value)}")


def _list_of_maps(value: object, at: Loc) -> list[Mapping[str, Any]]:
    if value is None:
        return []
    if isinstance(value, str):
        value = load_json(value, at)
    if not isinstance(value, list):
        raise at.error(f"must be a list, got {type_name(value)}")
    return [_map_or_empty(item, at.index(i)) for i, item in enumerate(value)]


def _map_or_empty(value: object, at: Loc) -> Mapping[str, Any]:
    if value is None:
        return {}
    if isinstance(value, str):
        value = load_json(value, at)
    return as_map(value, at)
