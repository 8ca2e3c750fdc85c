"""AWS's native event payloads -> lakekit's portable events, and Lambda's response shapes.

Accepted payloads (each as the Lambda ``event`` dict, see ``docs/events.md`` for samples):

- S3 event notifications: direct (``Records[].s3``), wrapped in SNS (``Records[].Sns.Message``),
  wrapped in SQS (``Records[].body``, itself possibly an SNS envelope), S3's ``s3:TestEvent``
  (no events), and S3 events delivered by EventBridge (``source: aws.s3``).
- SQS messages that are not S3 notifications -> :class:`StreamRecords` per queue.
- Kinesis Data Streams -> :class:`StreamRecords` per (stream, shard).
- EventBridge ``Scheduled Event`` (and EventBridge Scheduler) -> :class:`Schedule`.
- API Gateway HTTP API / Lambda function URL (payload 2.0) and REST API (1.0) -> :class:`Http`.

All parsers are pure functions of the payload: parsing the same payload twice gives equal events
with equal ids (the idempotency keys). Malformed payloads raise
:class:`~lakekit.errors.InvalidInputError` naming the missing or wrong field.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, unquote_plus

from lakekit.errors import InvalidInputError
from lakekit.events._fields import (
    Loc,
    as_map,
    decode_base64,
    epoch_time,
    iso_time,
    load_json,
    optional_str,
    required,
    required_list,
    required_map,
    required_str,
    stable_id,
    str_map,
    type_name,
)
from lakekit.events.model import (
    BatchResult,
    Event,
    Http,
    HttpResponse,
    ObjectCreated,
    ObjectDeleted,
    ObjectEvent,
    Schedule,
    StreamRecord,
    StreamRecords,
)

__all__ = [
    "is_s3_notification",
    "parse_http",
    "parse_kinesis",
    "parse_s3",
    "parse_schedule",
    "parse_sqs",
    "to_api_gateway_response",
    "to_batch_item_failures",
]

S3_SOURCE = "aws:s3"
_S3_TEST_EVENT = "s3:TestEvent"


# ---------------------------------------------------------------------------------------------
# S3


def parse_s3(payload: Mapping[str, Any]) -> list[ObjectEvent]:
    """S3 object events from an S3 notification however it was delivered.

    Accepts the direct ``Records[]`` notification, the same wrapped in SNS
    (``Records[].Sns.Message``) or in SQS (``Records[].body``, which may itself be an SNS
    envelope), and S3 events delivered by EventBridge (``detail-type`` ``Object Created`` /
    ``Object Deleted``). ``ObjectCreated:*`` records become :class:`ObjectCreated`,
    ``ObjectRemoved:*`` records :class:`ObjectDeleted`; other S3 event types (restore,
    replication, tagging, ...) and S3's ``s3:TestEvent`` yield nothing. Keys are URL-decoded
    (``unquote_plus``: ``red+flower.jpg`` is ``red flower.jpg``).

    Ids: the EventBridge event id, else a hash of the record's bucket, key, event name,
    version id, sequencer and time, so the same S3 event has the same id whether it arrives
    directly, through SNS or through SQS, and on every redelivery. Events come out in the order
    of the records.

    Raises:
        InvalidInputError: the payload is not an S3 notification, or a field is missing or of
            the wrong type (the message names it, e.g. ``Records[0].s3.object.key``).
    """
    at = Loc("S3 event")
    doc = as_map(payload, at)
    if _is_eventbridge(doc):
        return _s3_from_eventbridge(doc, Loc("S3 EventBridge event"))
    if doc.get("Event") == _S3_TEST_EVENT:
        return []
    events: list[ObjectEvent] = []
    for i, item in enumerate(required_list(doc, "Records", at)):
        rec_at = at.key("Records").index(i)
        record = as_map(item, rec_at)
        if "Sns" in record:
            events.extend(_s3_from_sns_record(record, rec_at))
        elif record.get("eventSource") == "aws:sqs":
            body_at = Loc(f"SQS message Records[{i}].body")
            body = _json_body(record, rec_at)
            if not is_s3_notification(body):
                raise body_at.error("is not an S3 event notification (directly or in SNS)")
            events.extend(_s3_from_document(body, f"S3 event in SQS Records[{i}].body"))
        else:
            events.extend(_s3_record(record, rec_at))
    return events


def is_s3_notification(doc: object) -> bool:
    """Whether ``doc`` (a parsed JSON value) is an S3 notification, bare or in an SNS envelope.

    True for ``{"Records": [{"s3": ...}]}``, S3's ``s3:TestEvent`` and an SNS ``Notification``
    whose ``Message`` is one of those.
    """
    if not isinstance(doc, Mapping):
        return False
    if doc.get("Event") == _S3_TEST_EVENT:
        return True
    if _is_sns_envelope(doc):
        return is_s3_notification(_json_or_none(doc.get("Message")))
    records = doc.get("Records")
    first = records[0] if isinstance(records, list) and records else None
    return isinstance(first, Mapping) and (
        "s3" in first or str(first.get("eventSource", "")).endswith(":s3")
    )


def _json_or_none(text: object) -> object:
    """``text`` parsed as JSON, or None when it is not a JSON string."""
    if not isinstance(text, str | bytes | bytearray):
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def _s3_from_document(doc: object, where: str) -> list[ObjectEvent]:
    """Events of a parsed S3 notification (or SNS envelope of one) found at ``where``."""
    mapping = as_map(doc, Loc(where))
    if _is_sns_envelope(mapping):
        msg_at = Loc(where).key("Message")
        inner = load_json(required(mapping, "Message", Loc(where)), msg_at)
        return _s3_from_document(inner, f"S3 event in {msg_at}")
    if mapping.get("Event") == _S3_TEST_EVENT:
        return []
    at = Loc(where)
    events: list[ObjectEvent] = []
    for i, item in enumerate(required_list(mapping, "Records", at)):
        rec_at = at.key("Records").index(i)
        events.extend(_s3_record(as_map(item, rec_at), rec_at))
    return events


def _s3_from_sns_record(record: Mapping[str, Any], at: Loc) -> list[ObjectEvent]:
    sns = required_map(record, "Sns", at)
    msg_at = at.key("Sns").key("Message")
    message = required(sns, "Message", at.key("Sns"))
    if not is_s3_notification(_json_or_none(message)):
        raise msg_at.error(
            "is not an S3 event notification: lakekit reads SNS messages that carry S3 "
            "notifications"
        )
    return _s3_from_document(load_json(message, msg_at), f"S3 event in {msg_at}")


def _s3_record(record: Mapping[str, Any], at: Loc) -> list[ObjectEvent]:
    """One ``Records[i]`` item of an S3 notification (zero or one event)."""
    source = record.get("eventSource")
    if source is not None and not str(source).endswith("s3"):
        raise at.key("eventSource").error(f"is {source!r}, not an S3 event source ('aws:s3')")
    name = required_str(record, "eventName", at).removeprefix("s3:")
    deleted = name.startswith("ObjectRemoved:")
    if not (deleted or name.startswith("ObjectCreated:")):
        return []
    s3 = required_map(record, "s3", at)
    s3_at = at.key("s3")
    bucket = required_str(required_map(s3, "bucket", s3_at), "name", s3_at.key("bucket"))
    obj_at = s3_at.key("object")
    obj = required_map(s3, "object", s3_at)
    raw_key = required_str(obj, "key", obj_at)
    event_time = required(record, "eventTime", at)
    when = iso_time(event_time, at.key("eventTime"))
    event_id = stable_id(
        S3_SOURCE,
        name,
        bucket,
        raw_key,
        obj.get("versionId"),
        obj.get("sequencer"),
        event_time,
    )
    key = unquote_plus(raw_key)
    return [_s3_object_event(deleted, event_id, when, bucket, key, obj=obj, obj_at=obj_at)]


def _is_eventbridge(doc: Mapping[str, Any]) -> bool:
    return "detail-type" in doc and "source" in doc


def _s3_from_eventbridge(doc: Mapping[str, Any], at: Loc) -> list[ObjectEvent]:
    """An S3 event delivered by EventBridge (keys are delivered as they are, not URL-encoded)."""
    source = required_str(doc, "source", at)
    if source != "aws.s3":
        raise at.key("source").error(f"is {source!r}, not 'aws.s3'")
    kind = required_str(doc, "detail-type", at)
    if kind not in ("Object Created", "Object Deleted"):
        return []
    detail = required_map(doc, "detail", at)
    d_at = at.key("detail")
    bucket = required_str(required_map(detail, "bucket", d_at), "name", d_at.key("bucket"))
    obj = required_map(detail, "object", d_at)
    obj_at = d_at.key("object")
    key = required_str(obj, "key", obj_at)
    event_id = required_str(doc, "id", at)
    when = iso_time(required(doc, "time", at), at.key("time"))
    deleted = kind == "Object Deleted"
    return [
        _s3_object_event(deleted, event_id, when, bucket, key, obj=obj, obj_at=obj_at, etag="etag")
    ]


def _s3_object_event(
    deleted: bool,
    event_id: str,
    when: datetime,
    bucket: str,
    key: str,
    *,
    obj: Mapping[str, Any],
    obj_at: Loc,
    etag: str = "eTag",
) -> ObjectEvent:
    """The portable event of one S3 object notification; ``obj`` is its ``object`` field
    (``size`` and the ``etag`` field, read only for a created object)."""
    if deleted:
        return ObjectDeleted(id=event_id, time=when, bucket=bucket, key=key, source=S3_SOURCE)
    return ObjectCreated(
        id=event_id,
        time=when,
        bucket=bucket,
        key=key,
        source=S3_SOURCE,
        size=_optional_size(obj.get("size"), obj_at.key("size")),
        etag=_unquote_etag(optional_str(obj, etag, obj_at)),
    )


def _is_sns_envelope(doc: Mapping[str, Any]) -> bool:
    return doc.get("Type") == "Notification" and "Message" in doc and "TopicArn" in doc


def _json_body(record: Mapping[str, Any], at: Loc) -> object:
    """An SQS record's body parsed as JSON, or None when it is not JSON."""
    return _json_or_none(required_str(record, "body", at, empty_ok=True))


def _optional_size(value: object, at: Loc) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise at.error(f"must be a number of bytes, got {type_name(value)}")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    raise at.error(f"must be a number of bytes, got {value!r}")


def _unquote_etag(etag: str | None) -> str | None:
    if etag is None:
        return None
    return etag.removeprefix("W/").strip('"') or None


# ---------------------------------------------------------------------------------------------
# SQS


def parse_sqs(payload: Mapping[str, Any]) -> list[Event]:
    """The events of a Lambda SQS batch.

    Messages whose body is an S3 notification (bare or in an SNS envelope, including S3's
    ``s3:TestEvent``) give S3 object events as :func:`parse_s3`; every other message becomes a
    :class:`StreamRecord` (``offset`` = SQS ``messageId``, which is also Lambda's
    ``itemIdentifier``; ``key`` = the FIFO ``MessageGroupId``; ``headers`` = the string message
    attributes), grouped into one :class:`StreamRecords` per queue (``stream`` and ``partition``
    = the queue name) in batch order. Its id is a hash of the queue and the message ids, so a
    redelivered batch keeps it.

    Raises:
        InvalidInputError: a record lacks ``messageId``/``body``/``eventSourceARN``, or an S3
            notification in a body is malformed.
    """
    at = Loc("SQS event")
    doc = as_map(payload, at)
    events: list[Event] = []
    queues: dict[str, list[StreamRecord]] = {}
    for i, item in enumerate(required_list(doc, "Records", at)):
        rec_at = at.key("Records").index(i)
        record = as_map(item, rec_at)
        body = _json_body(record, rec_at)
        if is_s3_notification(body):
            events.extend(_s3_from_document(body, f"S3 event in SQS Records[{i}].body"))
            continue
        arn = required_str(record, "eventSourceARN", rec_at)
        attrs_at = rec_at.key("attributes")
        attributes = required_map(record, "attributes", rec_at)
        sent = required(attributes, "SentTimestamp", attrs_at)
        group = attributes.get("MessageGroupId")
        queues.setdefault(arn, []).append(
            StreamRecord(
                offset=required_str(record, "messageId", rec_at),
                value=required_str(record, "body", rec_at, empty_ok=True).encode("utf-8"),
                key=group.encode("utf-8") if isinstance(group, str) and group else None,
                timestamp=epoch_time(sent, attrs_at.key("SentTimestamp"), millis=True),
                headers=_sqs_attributes(record.get("messageAttributes"), rec_at),
            )
        )
    for arn, records in queues.items():
        name = arn.rsplit(":", 1)[-1]
        events.append(_batch("aws:sqs", arn, name, name, records))
    return events


def _sqs_attributes(value: object, at: Loc) -> dict[str, str]:
    if value is None:
        return {}
    attrs_at = at.key("messageAttributes")
    result: dict[str, str] = {}
    for name, attr in as_map(value, attrs_at).items():
        text = as_map(attr, attrs_at.key(str(name))).get("stringValue")
        if isinstance(text, str):
            result[str(name)] = text
    return result


# ---------------------------------------------------------------------------------------------
# Kinesis


def parse_kinesis(payload: Mapping[str, Any]) -> list[StreamRecords]:
    """Kinesis Data Streams records, one :class:`StreamRecords` per (stream, shard).

    ``stream`` is the stream name from ``eventSourceARN``, ``partition`` the shard id from
    ``eventID`` (``shardId-...:<sequence number>``). Records keep the stream order: grouped in
    the order their shard first appears, and sorted by sequence number within a shard.
    ``offset`` is the sequence number (Lambda's ``itemIdentifier``), ``key`` the partition key,
    ``value`` the base64-decoded data, ``timestamp`` the approximate arrival time. A batch's id
    is a hash of the stream ARN, the shard and the sequence numbers (stable on redelivery); its
    ``time`` is the latest arrival time.

    Raises:
        InvalidInputError: a record lacks a field, ``data`` is not base64, or ``eventID`` /
            ``eventSourceARN`` are not shaped as Kinesis makes them.
    """
    at = Loc("Kinesis event")
    doc = as_map(payload, at)
    shards: dict[tuple[str, str], list[StreamRecord]] = {}
    for i, item in enumerate(required_list(doc, "Records", at)):
        rec_at = at.key("Records").index(i)
        record = as_map(item, rec_at)
        kin_at = rec_at.key("kinesis")
        kinesis = required_map(record, "kinesis", rec_at)
        arn = required_str(record, "eventSourceARN", rec_at)
        _kinesis_stream_name(arn, rec_at.key("eventSourceARN"))
        event_id = required_str(record, "eventID", rec_at)
        shard, sep, _ = event_id.partition(":")
        if not sep or not shard.startswith("shardId-"):
            raise rec_at.key("eventID").error(
                f"must look like 'shardId-...:<sequence number>', got {event_id!r}"
            )
        key = optional_str(kinesis, "partitionKey", kin_at)
        shards.setdefault((arn, shard), []).append(
            StreamRecord(
                offset=required_str(kinesis, "sequenceNumber", kin_at),
                value=decode_base64(required(kinesis, "data", kin_at), kin_at.key("data")),
                key=key.encode("utf-8") if key is not None else None,
                timestamp=epoch_time(
                    required(kinesis, "approximateArrivalTimestamp", kin_at),
                    kin_at.key("approximateArrivalTimestamp"),
                ),
            )
        )
    return [
        _batch(
            "aws:kinesis",
            arn,
            _kinesis_stream_name(arn, at),
            shard,
            sorted(records, key=_sequence_order),
        )
        for (arn, shard), records in shards.items()
    ]


def _kinesis_stream_name(arn: str, at: Loc) -> str:
    _, sep, rest = arn.partition(":stream/")
    name = rest.split("/", 1)[0]
    if not sep or not name:
        raise at.error(
            f"must be a Kinesis stream ARN (arn:aws:kinesis:...:stream/NAME), got {arn!r}"
        )
    return name


def _sequence_order(record: StreamRecord) -> int:
    return int(record.offset) if record.offset.isdigit() else 0


def _batch(
    source: str, origin: str, stream: str, partition: str, records: Sequence[StreamRecord]
) -> StreamRecords:
    return StreamRecords(
        id=stable_id(source, origin, partition, *(r.offset for r in records)),
        time=max(r.timestamp for r in records),
        stream=stream,
        partition=partition,
        records=tuple(records),
    )


# ---------------------------------------------------------------------------------------------
# EventBridge schedules


def parse_schedule(payload: Mapping[str, Any], *, expression: str = "") -> Schedule:
    """An EventBridge ``Scheduled Event`` (a rule's schedule, or EventBridge Scheduler).

    ``name`` is the rule (or schedule) name, the last ``/`` segment of ``resources[0]``;
    ``id`` is the EventBridge event id; ``time`` and ``scheduled_time`` are the event's
    ``time`` (the tick). EventBridge does not deliver the schedule expression: ``expression``
    is the one passed (a trigger knows its rule's), else ``""``.

    Raises:
        InvalidInputError: not a ``Scheduled Event``, or ``id``/``time``/``resources`` are
            missing or malformed.
    """
    at = Loc("EventBridge scheduled event")
    doc = as_map(payload, at)
    kind = required_str(doc, "detail-type", at)
    if kind != "Scheduled Event":
        raise at.key("detail-type").error(f"is {kind!r}, not 'Scheduled Event'")
    resources = required_list(doc, "resources", at)
    if not resources:
        raise at.key("resources").error("is empty: it must hold the rule or schedule ARN")
    arn = resources[0]
    if not isinstance(arn, str) or "/" not in arn:
        raise at.key("resources").index(0).error(f"must be a rule or schedule ARN, got {arn!r}")
    when = iso_time(required(doc, "time", at), at.key("time"))
    return Schedule(
        id=required_str(doc, "id", at),
        time=when,
        name=arn.rsplit("/", 1)[1],
        expression=expression,
        scheduled_time=when,
    )


# ---------------------------------------------------------------------------------------------
# API Gateway / function URLs


def parse_http(payload: Mapping[str, Any]) -> Http:
    """An HTTP request from API Gateway (HTTP API payload 2.0, REST API / payload 1.0) or a
    Lambda function URL (payload 2.0).

    Header names are lower-cased (repeated headers joined with ``,`` as payload 2.0 does);
    payload 2.0 ``cookies`` become a ``cookie`` header; ``query`` holds the last value of a
    repeated parameter; a base64 body (``isBase64Encoded``) is decoded, a text body UTF-8
    encoded. ``id`` is ``requestContext.requestId`` (a hash of the request when absent) and
    ``time`` the request time (``timeEpoch``/``requestTimeEpoch``, else the text form, else the
    time of parsing when the payload carries none).

    Raises:
        InvalidInputError: the method, path or request time is missing, or the body is not
            valid base64.
    """
    doc = as_map(payload, Loc("API Gateway request"))
    if doc.get("version") == "2.0":
        return _http_v2(doc, Loc("API Gateway payload 2.0 request"))
    return _http_v1(doc, Loc("API Gateway payload 1.0 request"))


def _http_v2(doc: Mapping[str, Any], at: Loc) -> Http:
    ctx = required_map(doc, "requestContext", at)
    ctx_at = at.key("requestContext")
    http = required_map(ctx, "http", ctx_at)
    method = required_str(http, "method", ctx_at.key("http")).upper()
    path = optional_str(doc, "rawPath", at) or required_str(http, "path", ctx_at.key("http"))
    headers = _lower_headers(str_map(doc.get("headers"), at.key("headers")))
    cookies = doc.get("cookies")
    if isinstance(cookies, list) and cookies and "cookie" not in headers:
        headers["cookie"] = "; ".join(str(c) for c in cookies)
    raw_query = optional_str(doc, "rawQueryString", at)
    query = (
        dict(parse_qsl(raw_query.lstrip("?"), keep_blank_values=True))
        if raw_query
        else str_map(doc.get("queryStringParameters"), at.key("queryStringParameters"))
    )
    body = _http_body(doc, at)
    when = _request_time(ctx, ctx_at, epoch_name="timeEpoch", text_name="time")
    request_id = optional_str(ctx, "requestId", ctx_at) or stable_id(
        "aws:http", method, path, raw_query, when.isoformat(), body
    )
    return Http(
        id=request_id,
        time=when,
        method=method,
        path=path,
        headers=headers,
        query=query,
        body=body,
    )


def _http_v1(doc: Mapping[str, Any], at: Loc) -> Http:
    method = required_str(doc, "httpMethod", at).upper()
    path = required_str(doc, "path", at)
    multi = doc.get("multiValueHeaders")
    if multi is not None:
        headers = _lower_headers(_join_multi(multi, at.key("multiValueHeaders")))
    else:
        headers = _lower_headers(str_map(doc.get("headers"), at.key("headers")))
    multi_query = doc.get("multiValueQueryStringParameters")
    if multi_query is not None:
        query = _last_multi(multi_query, at.key("multiValueQueryStringParameters"))
    else:
        query = str_map(doc.get("queryStringParameters"), at.key("queryStringParameters"))
    body = _http_body(doc, at)
    ctx_value = doc.get("requestContext")
    ctx = as_map(ctx_value, at.key("requestContext")) if ctx_value is not None else {}
    ctx_at = at.key("requestContext")
    when = _request_time(ctx, ctx_at, epoch_name="requestTimeEpoch", text_name="requestTime")
    request_id = optional_str(ctx, "requestId", ctx_at) or stable_id(
        "aws:http", method, path, sorted(query.items()), when.isoformat(), body
    )
    return Http(
        id=request_id,
        time=when,
        method=method,
        path=path,
        headers=headers,
        query=query,
        body=body,
    )


def _http_body(doc: Mapping[str, Any], at: Loc) -> bytes:
    body = doc.get("body")
    if body is None:
        return b""
    if not isinstance(body, str):
        raise at.key("body").error(f"must be a string, got {type_name(body)}")
    if doc.get("isBase64Encoded") is True:
        return decode_base64(body, at.key("body"))
    return body.encode("utf-8")


def _lower_headers(headers: Mapping[str, str]) -> dict[str, str]:
    result: dict[str, str] = {}
    for name, value in headers.items():
        if name:
            lower = name.lower()
            result[lower] = f"{result[lower]},{value}" if lower in result else value
    return result


def _join_multi(value: object, at: Loc) -> dict[str, str]:
    return {
        str(name): ",".join(_text_items(items, at.key(str(name))))
        for name, items in as_map(value, at).items()
        if items is not None
    }


def _last_multi(value: object, at: Loc) -> dict[str, str]:
    result: dict[str, str] = {}
    for name, items in as_map(value, at).items():
        texts = _text_items(items, at.key(str(name))) if items is not None else []
        if texts:
            result[str(name)] = texts[-1]
    return result


def _text_items(items: object, at: Loc) -> list[str]:
    if not isinstance(items, list):
        raise at.error(f"must be a list of strings, got {type_name(items)}")
    return [str(item) for item in items if item is not None]


def _request_time(ctx: Mapping[str, Any], at: Loc, *, epoch_name: str, text_name: str) -> datetime:
    """The request time from ``requestContext`` (epoch milliseconds, else the text form), or
    the time of parsing when the payload carries neither."""
    if ctx.get(epoch_name) is not None:
        return epoch_time(ctx[epoch_name], at.key(epoch_name), millis=True)
    if ctx.get(text_name) is not None:
        return _apigw_time(ctx[text_name], at.key(text_name))
    return datetime.now(UTC)


def _apigw_time(value: object, at: Loc) -> datetime:
    """API Gateway's ``12/Mar/2020:19:03:58 +0000`` request time."""
    if not isinstance(value, str):
        raise at.error(f"must be a string, got {type_name(value)}")
    try:
        return datetime.strptime(value, "%d/%b/%Y:%H:%M:%S %z").astimezone(UTC)
    except ValueError:
        raise at.error(
            f"is not a request time like '12/Mar/2020:19:03:58 +0000': {value!r}"
        ) from None


# ---------------------------------------------------------------------------------------------
# Lambda responses


def to_batch_item_failures(result: BatchResult | None) -> dict[str, list[dict[str, str]]]:
    """Lambda's partial batch response for a stream or queue handler's :class:`BatchResult`.

    ``{"batchItemFailures": [{"itemIdentifier": offset}, ...]}`` in the order of
    ``result.failed``; an empty list (everything succeeded) for ``None`` or no failures. For
    Kinesis the offsets are sequence numbers and for SQS message ids, which is what Lambda
    expects as ``itemIdentifier`` (the function's event source mapping must enable
    ``ReportBatchItemFailures``).
    """
    failed: Iterable[str] = result.failed if result is not None else ()
    return {"batchItemFailures": [{"itemIdentifier": offset} for offset in failed]}


def to_api_gateway_response(value: object) -> dict[str, Any]:
    """An HTTP handler's return value as an API Gateway / function URL response dict.

    An :class:`HttpResponse` gives its status, headers and body; ``None`` gives ``204`` with no
    body; ``bytes``/``str`` give ``200`` with the body as it is; anything else ``200`` with the
    value as JSON. Bytes that are not UTF-8 are sent base64-encoded (``isBase64Encoded``). A
    ``content-type`` header is added when absent (``application/json`` for JSON,
    ``text/plain; charset=utf-8`` for text, ``application/octet-stream`` for bytes). The dict
    suits both payload formats (REST APIs ignore nothing they need).

    Raises:
        InvalidInputError: the status is not an HTTP status code, a header is not text, or the
            value cannot be encoded as JSON.
    """
    if isinstance(value, HttpResponse):
        status, body, headers = value.status, value.body, dict(value.headers)
    elif value is None:
        status, body, headers = 204, b"", {}
    else:
        status, body, headers = 200, value, {}
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
        raise InvalidInputError(
            f"HTTP response status must be an int from 100 to 599, got {status!r}"
        )
    for name, header in headers.items():
        if not isinstance(name, str) or not isinstance(header, str):
            raise InvalidInputError(f"HTTP response header {name!r} must map a str to a str")
    has_type = any(name.lower() == "content-type" for name in headers)
    encoded_b64 = False
    if isinstance(body, bytes | bytearray):
        try:
            text = bytes(body).decode("utf-8")
        except UnicodeDecodeError:
            text = base64.b64encode(bytes(body)).decode("ascii")
            encoded_b64 = True
        default_type = "application/octet-stream"
    elif isinstance(body, str):
        text, default_type = body, "text/plain; charset=utf-8"
    else:
        try:
            text = json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(
                f"HTTP handler returned a {type(body).__name__} that is not JSON-serialisable: "
                f"{exc}; return bytes, str, an HttpResponse or JSON-compatible data"
            ) from None
        default_type = "application/json"
    if not has_type and (text or status != 204):
        headers["content-type"] = default_type
    return {
        "statusCode": status,
        "headers": headers,
        "body": text,
        "isBase64Encoded": encoded_b64,
    }
