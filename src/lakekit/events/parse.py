"""One entry point for every native payload: :func:`parse_event` recognises the shape and hands
it to the provider's parser (:mod:`lakekit.events.aws`, ``.gcp``, ``.azure``)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from lakekit.errors import InvalidInputError
from lakekit.events import aws, azure, gcp
from lakekit.events.model import Event

__all__ = ["ACCEPTED_SHAPES", "parse_event"]

ACCEPTED_SHAPES = (
    "S3 event notifications (direct Records[], in SNS, in SQS, or via EventBridge), "
    "SQS batches, Kinesis batches, EventBridge scheduled events, API Gateway / Lambda function "
    "URL requests (payload 1.0 and 2.0), GCS CloudEvents and GCS Pub/Sub notifications, "
    "Pub/Sub push envelopes and messagePublished CloudEvents, Event Grid blob events "
    "(Event Grid or CloudEvents schema) and Azure Functions Event Hubs batches "
    "(azure.functions.EventHubEvent); see docs/events.md"
)
"""What :func:`parse_event` recognises, as said in its error for anything else."""


def parse_event(payload: Mapping[str, Any] | Sequence[Any] | str | bytes | Any) -> list[Event]:
    """Every portable event in a native payload, whichever provider and trigger sent it.

    ``payload`` is what the platform hands the function: a dict (a Lambda event, a CloudEvent,
    a Pub/Sub push body), a list (an Event Grid delivery, a batch of Azure Functions
    ``EventHubEvent``), or the raw JSON text/bytes of one of those. The shape is recognised from
    its fields and parsed by the matching provider function (``parse_s3``, ``parse_sqs``,
    ``parse_kinesis``, ``parse_schedule``, ``parse_http``, ``parse_gcs``, ``parse_pubsub``,
    ``parse_event_grid``, ``parse_event_hubs``), whose docstrings say what each field becomes.

    Returns an empty list for payloads that are recognised but carry no event lakekit models:
    S3's ``s3:TestEvent``, Event Grid's subscription validation event (answer it with
    :func:`~lakekit.events.azure.event_grid_validation_response`), and object events other than
    created/deleted. Parsing is pure and deterministic: the same payload gives equal events with
    equal ids.

    Raises:
        InvalidInputError: the payload is not valid JSON, matches none of the accepted shapes
            (the message lists them), or is malformed (the message names the field and where).
    """
    data = _decoded(payload)
    if isinstance(data, Mapping):
        return _from_mapping(data)
    if azure.is_event_hub_event(data):
        return [azure.parse_event_hubs(data)]
    if isinstance(data, list | tuple) and data:
        if all(azure.is_event_hub_event(item) for item in data):
            return [azure.parse_event_hubs(data)]
        if all(azure.is_event_grid_event(item) for item in data):
            return list(azure.parse_event_grid(data))
    raise _unrecognised(data)


def _decoded(payload: object) -> object:
    if isinstance(payload, str | bytes | bytearray):
        try:
            return json.loads(payload)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidInputError(f"event payload is not valid JSON: {exc}") from None
    return payload


def _from_mapping(data: Mapping[str, Any]) -> list[Event]:
    """A dict payload: the first recogniser that claims it parses it."""
    for claims, parser in _MAPPING_SHAPES:
        if claims(data):
            return parser(data)
    raise _unrecognised(data)


def _is_eventbridge(data: Mapping[str, Any]) -> bool:
    return "detail-type" in data and "source" in data


def _from_eventbridge(data: Mapping[str, Any]) -> list[Event]:
    if data.get("source") == "aws.s3":
        return list(aws.parse_s3(data))
    if data.get("detail-type") == "Scheduled Event":
        return [aws.parse_schedule(data)]
    raise _unrecognised(data)


def _is_pubsub(data: Mapping[str, Any]) -> bool:
    return data.get("type") == gcp.PUBSUB_PUBLISHED or (
        "message" in data and "subscription" in data
    )


def _from_pubsub(data: Mapping[str, Any]) -> list[Event]:
    if gcp.is_gcs_notification(data):
        return list(gcp.parse_gcs(data))
    return [gcp.parse_pubsub(data)]


def _is_gcs_cloudevent(data: Mapping[str, Any]) -> bool:
    kind = data.get("type")
    return isinstance(kind, str) and kind.startswith(gcp.STORAGE_EVENT_PREFIX)


def _is_http(data: Mapping[str, Any]) -> bool:
    return "requestContext" in data and ("httpMethod" in data or data.get("version") == "2.0")


def _from_records(data: Mapping[str, Any]) -> list[Event]:
    """An AWS ``Records[]`` batch, told apart by its first record's ``eventSource``."""
    records = data.get("Records")
    if not isinstance(records, list) or not records:
        return list(aws.parse_s3(data))
    first = records[0]
    if not isinstance(first, Mapping):
        return list(aws.parse_s3(data))  # raises, naming Records[0]
    source = first.get("eventSource") or first.get("EventSource")
    if source == "aws:kinesis":
        return list(aws.parse_kinesis(data))
    if source == "aws:sqs":
        return aws.parse_sqs(data)
    if source in ("aws:s3", "aws:sns") or "s3" in first or "Sns" in first:
        return list(aws.parse_s3(data))
    raise _unrecognised(data)


def _unrecognised(data: object) -> InvalidInputError:
    if isinstance(data, Mapping):
        keys = sorted(str(k) for k in data)
        shown = ", ".join(repr(k) for k in keys[:8]) + (", ..." if len(keys) > 8 else "")
        what = f"a JSON object with keys {shown}" if keys else "an empty JSON object"
    elif isinstance(data, list | tuple):
        what = f"a list of {len(data)} item(s)" if data else "an empty list"
    else:
        what = f"a {type(data).__name__}"
    return InvalidInputError(
        f"unrecognised event payload ({what}): lakekit reads {ACCEPTED_SHAPES}"
    )


_MAPPING_SHAPES: tuple[
    tuple[Callable[[Mapping[str, Any]], bool], Callable[[Mapping[str, Any]], list[Event]]], ...
] = (
    (lambda d: "Records" in d, _from_records),
    (lambda d: d.get("Event") == "s3:TestEvent", lambda d: []),
    (_is_eventbridge, _from_eventbridge),
    (_is_gcs_cloudevent, lambda d: list(gcp.parse_gcs(d))),
    (_is_pubsub, _from_pubsub),
    (azure.is_event_grid_event, lambda d: list(azure.parse_event_grid(d))),
    (_is_http, lambda d: [aws.parse_http(d)]),
)
