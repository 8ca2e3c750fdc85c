"""Google Cloud's native event payloads -> lakekit's portable events.

Accepted payloads (see ``docs/events.md`` for samples):

- Cloud Storage CloudEvents (structured mode) ``google.cloud.storage.object.v1.finalized`` /
  ``.deleted`` / ``.archived`` / ``.metadataUpdated``.
- Cloud Storage Pub/Sub notifications (message attributes ``eventType``, ``bucketId``,
  ``objectId``, ...), in a Pub/Sub push envelope or a ``messagePublished`` CloudEvent.
- Pub/Sub push envelopes (``{"message": {...}, "subscription": ...}``) and
  ``google.cloud.pubsub.topic.v1.messagePublished`` CloudEvents -> :class:`StreamRecords`.

Parsers are pure: the same payload always gives equal events with equal ids. Malformed payloads
raise :class:`~lakekit.errors.InvalidInputError` naming the missing or wrong field.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from lakekit.errors import InvalidInputError
from lakekit.events._fields import (
    Loc,
    as_map,
    decode_base64,
    iso_time,
    load_json,
    optional_str,
    required,
    required_map,
    required_str,
    str_map,
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
    "PUBSUB_PUBLISHED",
    "STORAGE_EVENT_PREFIX",
    "is_gcs_notification",
    "parse_gcs",
    "parse_pubsub",
]

GCS_SOURCE = "gcp:storage"
STORAGE_EVENT_PREFIX = "google.cloud.storage.object.v1."
"""The CloudEvents ``type`` prefix of Cloud Storage object events."""
PUBSUB_PUBLISHED = "google.cloud.pubsub.topic.v1.messagePublished"
"""The CloudEvents ``type`` of a Pub/Sub message delivered by Eventarc."""

_CE_CREATED = frozenset({"finalized"})
_CE_DELETED = frozenset({"deleted", "archived"})
_NOTIFY_CREATED = frozenset({"OBJECT_FINALIZE"})
_NOTIFY_DELETED = frozenset({"OBJECT_DELETE", "OBJECT_ARCHIVE"})


# ---------------------------------------------------------------------------------------------
# Cloud Storage


def parse_gcs(payload: Mapping[str, Any]) -> list[ObjectEvent]:
    """Cloud Storage object events from a CloudEvent or a Pub/Sub notification.

    CloudEvents (structured mode, ``type`` ``google.cloud.storage.object.v1.*``): ``finalized``
    gives :class:`ObjectCreated`; ``deleted`` and ``archived`` give :class:`ObjectDeleted`;
    ``metadataUpdated`` gives nothing. ``id`` is the CloudEvent id, ``time`` its time.

    Pub/Sub notifications (a push envelope or ``messagePublished`` CloudEvent whose message
    attributes carry ``eventType``/``bucketId``/``objectId``): ``OBJECT_FINALIZE`` gives
    :class:`ObjectCreated`; ``OBJECT_DELETE``/``OBJECT_ARCHIVE`` give :class:`ObjectDeleted`,
    except when the attributes carry ``overwrittenByGeneration`` (the replaced generation of an
    overwrite: the object still exists), which gives nothing, as does
    ``OBJECT_METADATA_UPDATE``. ``id`` is the Pub/Sub message id. Size and etag come from the
    ``JSON_API_V1`` payload when the notification has one.

    GCS object names arrive as they are (not URL-encoded). ``size`` is parsed from the string
    GCS sends.

    Raises:
        InvalidInputError: not a Cloud Storage event, or a field is missing or malformed.
    """
    doc = as_map(payload, Loc("GCS event"))
    kind = doc.get("type")
    if isinstance(kind, str) and kind.startswith(STORAGE_EVENT_PREFIX):
        return _gcs_cloudevent(doc, Loc("GCS CloudEvent"))
    if is_gcs_notification(doc):
        message, at = _pubsub_message(doc)
        return _gcs_notification(message, at)
    raise InvalidInputError(
        "GCS event is neither a Cloud Storage CloudEvent (type "
        f"'{STORAGE_EVENT_PREFIX}*') nor a Cloud Storage Pub/Sub notification (message "
        "attributes eventType, bucketId, objectId)"
    )


def is_gcs_notification(doc: Mapping[str, Any]) -> bool:
    """Whether ``doc`` is a Pub/Sub push envelope or ``messagePublished`` CloudEvent carrying a
    Cloud Storage notification (message attributes ``eventType`` and ``bucketId``)."""
    container = doc.get("data") if doc.get("type") == PUBSUB_PUBLISHED else doc
    if not isinstance(container, Mapping):
        return False
    message = container.get("message")
    attributes = message.get("attributes") if isinstance(message, Mapping) else None
    return (
        isinstance(attributes, Mapping) and "eventType" in attributes and "bucketId" in attributes
    )


def _gcs_cloudevent(doc: Mapping[str, Any], at: Loc) -> list[ObjectEvent]:
    kind = required_str(doc, "type", at).removeprefix(STORAGE_EVENT_PREFIX)
    if kind not in _CE_CREATED | _CE_DELETED:
        return []
    data_at = at.key("data")
    data = _structured_data(doc, at)
    bucket = required_str(data, "bucket", data_at)
    name = required_str(data, "name", data_at)
    event_id = required_str(doc, "id", at)
    if doc.get("time") is not None:
        when = iso_time(doc["time"], at.key("time"))
    else:
        when = iso_time(required(data, "updated", data_at), data_at.key("updated"))
    deleted = kind in _CE_DELETED
    return [
        _gcs_object_event(deleted, event_id, when, bucket, name, resource=data, resource_at=data_at)
    ]


def _gcs_notification(message: Mapping[str, Any], at: Loc) -> list[ObjectEvent]:
    attrs_at = at.key("attributes")
    attributes = required_map(message, "attributes", at)
    kind = required_str(attributes, "eventType", attrs_at)
    deleted = kind in _NOTIFY_DELETED
    if not (kind in _NOTIFY_CREATED or deleted):
        return []
    if deleted and attributes.get("overwrittenByGeneration") is not None:
        return []
    bucket = required_str(attributes, "bucketId", attrs_at)
    name = required_str(attributes, "objectId", attrs_at)
    when = iso_time(required(attributes, "eventTime", attrs_at), attrs_at.key("eventTime"))
    event_id = _message_id(message, at)
    data_at = at.key("data")
    resource: Mapping[str, Any] = {}
    if not deleted and attributes.get("payloadFormat") == "JSON_API_V1" and message.get("data"):
        resource = as_map(load_json(decode_base64(message["data"], data_at), data_at), data_at)
    return [
        _gcs_object_event(
            deleted, event_id, when, bucket, name, resource=resource, resource_at=data_at
        )
    ]


def _gcs_object_event(
    deleted: bool,
    event_id: str,
    when: datetime,
    bucket: str,
    name: str,
    *,
    resource: Mapping[str, Any],
    resource_at: Loc,
) -> ObjectEvent:
    """The portable event of one Cloud Storage object change; ``resource`` is the object's
    JSON resource (``size`` and ``etag``, read only for a created object)."""
    if deleted:
        return ObjectDeleted(id=event_id, time=when, bucket=bucket, key=name, source=GCS_SOURCE)
    return ObjectCreated(
        id=event_id,
        time=when,
        bucket=bucket,
        key=name,
        source=GCS_SOURCE,
        size=_gcs_size(resource.get("size"), resource_at.key("size")),
        etag=optional_str(resource, "etag", resource_at),
    )


def _gcs_size(value: object, at: Loc) -> int | None:
    """GCS sends sizes as decimal strings (int64 in JSON)."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    raise at.error(f"must be a number of bytes, got {type_name(value)} {value!r}")


def _structured_data(doc: Mapping[str, Any], at: Loc) -> Mapping[str, Any]:
    """A structured-mode CloudEvent's ``data`` as an object (it may be embedded JSON text)."""
    data = required(doc, "data", at)
    if isinstance(data, str):
        data = load_json(data, at.key("data"))
    return as_map(data, at.key("data"))


# ---------------------------------------------------------------------------------------------
# Pub/Sub


def parse_pubsub(payload: Mapping[str, Any], *, stream: str | None = None) -> StreamRecords:
    """A Pub/Sub message (push envelope or ``messagePublished`` CloudEvent) as a one-record
    :class:`StreamRecords`.

    ``partition`` is the subscription (Pub/Sub has no partitions); ``stream`` is the topic when
    the payload names it (the CloudEvent ``source``), else the subscription; pass ``stream=``
    to name it yourself. The record's ``offset`` is the message id, ``value`` the decoded
    ``data``, ``key`` the ordering key (None when empty), ``headers`` the attributes,
    ``timestamp`` the publish time. ``id`` is the message id, the same on every redelivery.
    Both spellings Pub/Sub uses are read (``messageId``/``message_id``,
    ``publishTime``/``publish_time``).

    Raises:
        InvalidInputError: the message, its id or publish time is missing, or ``data`` is not
            base64.
    """
    doc = as_map(payload, Loc("Pub/Sub payload"))
    message, msg_at = _pubsub_message(doc)
    if doc.get("type") == PUBSUB_PUBLISHED:
        ce_at = Loc("Pub/Sub CloudEvent")
        subscription = optional_str(required_map(doc, "data", ce_at), "subscription", ce_at)
        topic = _topic_from_source(doc.get("source"))
        where = ce_at
    else:
        where = Loc("Pub/Sub push envelope")
        subscription = optional_str(doc, "subscription", where)
        topic = None
    partition = subscription or topic
    if partition is None:
        raise where.error("names neither its subscription nor its topic")
    message_id = _message_id(message, msg_at)
    data = message.get("data")
    ordering_key = optional_str(message, "orderingKey", msg_at)
    record = StreamRecord(
        offset=message_id,
        value=decode_base64(data, msg_at.key("data")) if data else b"",
        key=ordering_key.encode("utf-8") if ordering_key else None,
        timestamp=_publish_time(message, msg_at),
        headers=str_map(message.get("attributes"), msg_at.key("attributes")),
    )
    return StreamRecords(
        id=message_id,
        time=record.timestamp,
        stream=stream or topic or partition,
        partition=partition,
        records=(record,),
    )


def _pubsub_message(doc: Mapping[str, Any]) -> tuple[Mapping[str, Any], Loc]:
    """The ``message`` of a push envelope or a ``messagePublished`` CloudEvent, and its place."""
    if doc.get("type") == PUBSUB_PUBLISHED:
        at = Loc("Pub/Sub CloudEvent")
        data = required_map(doc, "data", at)
        return required_map(data, "message", at.key("data")), at.key("data").key("message")
    at = Loc("Pub/Sub push envelope")
    return required_map(doc, "message", at), at.key("message")


def _message_id(message: Mapping[str, Any], at: Loc) -> str:
    value = optional_str(message, "messageId", at) or optional_str(message, "message_id", at)
    if not value:
        raise at.key("messageId").error("is missing")
    return value


def _publish_time(message: Mapping[str, Any], at: Loc) -> datetime:
    for name in ("publishTime", "publish_time"):
        if message.get(name) is not None:
            return iso_time(message[name], at.key(name))
    raise at.key("publishTime").error("is missing")


def _topic_from_source(source: object) -> str | None:
    """``projects/p/topics/t`` from a CloudEvent source ``//pubsub.googleapis.com/projects/...``."""
    if not isinstance(source, str):
        return None
    _, sep, path = source.partition("//pubsub.googleapis.com/")
    return path if sep and "/topics/" in path else None
