"""The Lambda entry point that runs lakekit handlers: ``lakekit.adapters.aws.lambda_shim.handler``.

A function deployed by :class:`~lakekit.adapters.aws.lambda_runtime.LambdaFunctionRuntime`
has this as its Lambda handler and these environment variables:

* ``LAKEKIT_HANDLER`` = ``module:function``: the user's handler, imported once per container;
* ``LAKEKIT_URL`` (and any ``LAKEKIT_<COMPONENT>...``): the lake handed to the handler as
  ``context.lake`` (connected lazily, once per container);
* ``LAKEKIT_FUNCTION``: the lakekit function name (``context.function_name``).

For each invocation the shim turns the native event into portable events
(:func:`lakekit.events.parse_event`), calls the handler once per event with a
:class:`~lakekit.interfaces.function_runtime.Context` whose deadline is Lambda's remaining time,
and maps the result back:

==================================  ===========================================================
trigger                             handler gets / Lambda gets back
==================================  ===========================================================
direct invoke by lakekit            the event sent (``Invoke`` with its payload, ...); the
                                    handler's result as JSON
direct invoke, any other payload    ``Invoke(payload=<the payload>)``; the result as JSON
S3 (direct, via SNS, SQS or         ``ObjectCreated`` / ``ObjectDeleted`` with keys relative to
EventBridge)                        the lake root; events for other buckets or outside the root
                                    are skipped
Kinesis                             one ``StreamRecords`` per shard; records lakekit framed are
                                    unpacked, offsets and partitions are lakekit's (as
                                    ``KinesisStream`` reads them); ``BatchResult`` becomes
                                    ``batchItemFailures`` (the Kinesis sequence numbers)
SQS (not S3 notifications)          one ``StreamRecords`` per queue; ``BatchResult`` becomes
                                    ``batchItemFailures`` (message ids)
SNS (not S3 notifications)          one ``StreamRecords`` per topic (offset = message id)
EventBridge schedule                ``Schedule``
API Gateway / function URL          ``Http``; the result (``HttpResponse``, bytes, str, JSON
                                    data) as the API Gateway response
==================================  ===========================================================

A handler exception propagates, so Lambda reports it (``FunctionError``) and retries per its
own rules (asynchronous invocations, event source mappings); for batches prefer returning
``BatchResult`` so that only the failed records are retried.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import logging
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from lakekit.errors import ConfigurationError, InvalidInputError
from lakekit.events import (
    BatchResult,
    Event,
    Http,
    Invoke,
    ObjectEvent,
    StreamRecord,
    StreamRecords,
    parse_event,
    relative_to_root,
    to_api_gateway_response,
    to_batch_item_failures,
)
from lakekit.interfaces.function_runtime import Context

if TYPE_CHECKING:
    from lakekit.lake import Lake

__all__ = ["HANDLER_ENV", "handler", "load_handler", "native_events"]

HANDLER_ENV = "LAKEKIT_HANDLER"
FUNCTION_ENV = "LAKEKIT_FUNCTION"
_lock = threading.Lock()
_loaded: dict[str, Any] = {}
_lakes: dict[str, Lake] = {}


def handler(event: Any, context: Any) -> Any:
    """Lambda's entry point: run ``LAKEKIT_HANDLER`` for every portable event in ``event``.

    Raises:
        ConfigurationError: ``LAKEKIT_HANDLER`` is unset or names nothing importable.
        InvalidInputError: the event is malformed.
        Exception: whatever the user's handler raised (Lambda reports and retries it).
    """
    user = load_handler(os.environ.get(HANDLER_ENV, ""))
    lake = _lake()
    portable, kind = native_events(event, lake)
    name = os.environ.get(FUNCTION_ENV) or str(getattr(context, "function_name", "handler"))
    if kind == "http":
        [request] = portable
        return to_api_gateway_response(_call(user, request, context, name, lake))
    if kind in ("kinesis", "sqs"):
        failed: list[str] = []
        for batch in portable:
            result = _call(user, batch, context, name, lake)
            if isinstance(result, BatchResult):
                failed.extend(_item_identifiers(result, kind))
        return to_batch_item_failures(BatchResult(failed))
    results = [_call(user, item, context, name, lake) for item in portable]
    if kind == "invoke":
        return results[0] if results else None
    return None


def load_handler(reference: str) -> Any:
    """The callable ``module:function`` names (cached per container).

    Raises:
        ConfigurationError: malformed, unset, or not importable (the message says which).
    """
    with _lock:
        if reference in _loaded:
            return _loaded[reference]
        module_name, _, attr = reference.partition(":")
        if not module_name or not attr:
            raise ConfigurationError(
                f"{HANDLER_ENV} must be 'module:function' (set by the deployment), got "
                f"{reference!r}"
            )
        try:
            target: Any = importlib.import_module(module_name)
            for part in attr.split("."):
                target = getattr(target, part)
        except (ImportError, AttributeError) as exc:
            raise ConfigurationError(
                f"cannot load the handler {reference!r}: {exc}; is the module in the "
                "deployment package?"
            ) from exc
        if not callable(target):
            raise ConfigurationError(f"{reference!r} is not callable")
        _loaded[reference] = target
        return target


def native_events(event: Any, lake: Lake | None = None) -> tuple[list[Event], str]:
    """The portable events in a Lambda event, and its kind: ``invoke``, ``http``, ``kinesis``,
    ``sqs`` or ``events`` (S3, SNS, schedules, ...).

    S3 object events are made relative to ``lake``'s root (when it is an S3 lake) and dropped
    when they fall outside it.

    Raises:
        InvalidInputError: a recognised payload is malformed.
    """
    from lakekit.adapters.aws._lambda_events import decode_event

    direct = decode_event(event) if isinstance(event, Mapping) else None
    if direct is not None:
        return [direct], "invoke"
    source = _record_source(event)
    if source == "aws:sns":
        sns = _sns_messages(event)
        if sns is not None:
            return sns, "events"
    try:
        parsed = parse_event(event)
    except InvalidInputError:
        if source is not None or _looks_native(event):
            raise
        return [Invoke(payload=event)], "invoke"
    if any(isinstance(e, Http) for e in parsed):
        return parsed, "http"
    if source == "aws:kinesis":
        return [_unframe(batch, lake) for batch in parsed if isinstance(batch, StreamRecords)], (
            "kinesis"
        )
    kind = "sqs" if source == "aws:sqs" else "events"
    return [e for e in (_in_lake(e, lake) for e in parsed) if e is not None], kind


def _record_source(event: Any) -> str | None:
    if not isinstance(event, Mapping):
        return None
    records = event.get("Records")
    if not isinstance(records, list) or not records or not isinstance(records[0], Mapping):
        return None
    source = records[0].get("eventSource") or records[0].get("EventSource")
    return str(source) if source else None


def _looks_native(event: Any) -> bool:
    return isinstance(event, Mapping) and (
        "Records" in event or "detail-type" in event or "requestContext" in event
    )


def _sns_messages(event: Mapping[str, Any]) -> list[Event] | None:
    """Plain SNS messages as one StreamRecords per topic; None if any carries an S3 event."""
    from lakekit.events.aws import is_s3_notification

    topics: dict[str, list[StreamRecord]] = {}
    for record in event["Records"]:
        sns = record.get("Sns") if isinstance(record, Mapping) else None
        if not isinstance(sns, Mapping):
            raise InvalidInputError("SNS event record without 'Sns'")
        message = sns.get("Message")
        try:
            import json

            if is_s3_notification(json.loads(message) if isinstance(message, str) else None):
                return None
        except ValueError:
            pass
        from datetime import UTC, datetime

        stamp = str(sns.get("Timestamp") or "")
        try:
            when = datetime.fromisoformat(stamp.replace("Z", "+00:00")).astimezone(UTC)
        except ValueError:
            when = datetime.now(UTC)
        attributes = sns.get("MessageAttributes") or {}
        topics.setdefault(str(sns.get("TopicArn", "")), []).append(
            StreamRecord(
                offset=str(sns.get("MessageId", "")),
                value=str(message or "").encode("utf-8"),
                timestamp=when,
                headers={
                    str(k): str(v.get("Value"))
                    for k, v in attributes.items()
                    if isinstance(v, Mapping) and v.get("Type") == "String"
                },
            )
        )
    batches: list[Event] = []
    for arn, records in topics.items():
        name = arn.rsplit(":", 1)[-1]
        ident = "sns:" + ",".join(r.offset for r in records)
        batches.append(
            StreamRecords(
                id=ident,
                time=records[-1].timestamp,
                stream=name,
                partition=name,
                records=tuple(records),
            )
        )
    return batches


def _unframe(batch: StreamRecords, lake: Lake | None) -> StreamRecords:
    """A Kinesis batch with lakekit's framed records unpacked and lakekit's names and offsets:
    ``partition`` = the shard number, ``offset`` = ``sequence number << 16 | index``."""
    from lakekit.adapters.aws import _kinesis_format as fmt
    from lakekit.adapters.aws.kinesis_stream import shard_partition

    records: list[StreamRecord] = []
    for record in batch.records:
        key_text = record.key.decode("utf-8", "replace") if record.key is not None else ""
        for entry in fmt.decode_blob(record.value, key_text, record.timestamp):
            records.append(
                StreamRecord(
                    offset=str(fmt.offset_of(record.offset, entry.index)),
                    value=entry.value,
                    key=entry.key,
                    timestamp=entry.timestamp or record.timestamp,
                    headers=entry.headers,
                )
            )
    prefix = os.environ.get("LAKEKIT_STREAM_NAME_PREFIX", "")
    stream = batch.stream.removeprefix(prefix) if prefix else batch.stream
    return replace(
        batch,
        stream=stream,
        partition=str(shard_partition(batch.partition)),
        records=tuple(records),
    )


def _item_identifiers(result: BatchResult, kind: str) -> list[str]:
    """Lambda's itemIdentifier of each failed record: the sequence number of the Kinesis
    record that carried it, or the SQS message id."""
    if kind != "kinesis":
        return list(result.failed)
    from lakekit.adapters.aws import _kinesis_format as fmt

    out: list[str] = []
    for offset in result.failed:
        try:
            sequence = str(fmt.split_offset(int(offset))[0])
        except ValueError as exc:
            raise InvalidInputError(
                f"BatchResult names {offset!r}, not an offset of this batch"
            ) from exc
        if sequence not in out:
            out.append(sequence)
    return out


def _in_lake(event: Event, lake: Lake | None) -> Event | None:
    if not isinstance(event, ObjectEvent) or lake is None:
        return event
    root = _s3_root(lake)
    if root is None:
        return event
    bucket, prefix = root
    return relative_to_root(event, bucket=bucket, root=prefix)


def _s3_root(lake: Lake) -> tuple[str, str] | None:
    from lakekit.registry import scheme_of

    url = lake.config.component("store").url or lake.config.url
    if scheme_of(url) not in ("s3", "s3a"):
        return None
    bucket, _, prefix = url.split("://", 1)[1].partition("/")
    return bucket, prefix.strip("/")


def _lake() -> Lake | None:
    """The lake of ``LAKEKIT_URL``, connected once per container (lazily: connect does no I/O)."""
    url = os.environ.get("LAKEKIT_URL")
    if not url:
        return None
    with _lock:
        if url not in _lakes:
            import lakekit

            _lakes[url] = lakekit.connect(url)
        return _lakes[url]


def _call(user: Any, event: Event, context: Any, name: str, lake: Lake | None) -> Any:
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    seconds = remaining() / 1000 if callable(remaining) else 900.0
    ctx = Context(
        function_name=name,
        invocation_id=str(getattr(context, "aws_request_id", "")) or event.id,
        attempt=1,
        deadline=time.monotonic() + seconds,
        logger=logging.getLogger(f"lakekit.functions.{name}"),
        lake=lake,
    )
    result = user(event, ctx)
    if inspect.isawaitable(result):
        result = asyncio.run(_awaited(result))
    return result


async def _awaited(awaitable: Any) -> Any:
    return await awaitable
