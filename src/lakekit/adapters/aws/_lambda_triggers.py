"""Trigger bindings (``lake.functions.triggers()``) as AWS wiring for deployed functions.

* :class:`~lakekit.triggers.model.ObjectTrigger` -> an S3 event notification on the lake's
  bucket (``LambdaFunctionConfigurations``, id ``lakekit-<function>-<n>``, the lake's prefix +
  the trigger's prefix and suffix as key filters, ``s3:ObjectCreated:*`` /
  ``s3:ObjectRemoved:*``) plus the permission for S3 to invoke the function. The bucket's
  other notifications are kept: lakekit replaces only the configurations whose id it owns.
* :class:`~lakekit.triggers.model.StreamTrigger` -> a Kinesis event source mapping (batch size,
  batching window, starting position, ``ReportBatchItemFailures`` so that a ``BatchResult``
  retries only the failed records), created or updated in place. Lambda's mapping is its own
  reader: it keeps its own position per shard, not the lakekit group's committed offsets.
* :class:`~lakekit.triggers.model.ScheduleTrigger` -> an EventBridge rule with the same
  ``rate(...)``/``cron(...)`` expression targeting the function, plus the permission.
  ``rate(N seconds)`` is a local extension EventBridge refuses: it is refused here too.
* :class:`~lakekit.triggers.model.HttpTrigger` is not wired (put API Gateway or a function URL
  in front of the function): NotSupportedError.

Every call is idempotent: applying the same bindings again changes nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from lakekit.adapters.aws._errors import aws_errors, error_code, is_client_error
from lakekit.errors import InvalidInputError, NotSupportedError
from lakekit.triggers.model import (
    HttpTrigger,
    ObjectTrigger,
    ScheduleTrigger,
    StreamTrigger,
    TriggerBinding,
)

__all__ = ["TriggerWiring", "wire_triggers"]

_EVENTS = {"created": "s3:ObjectCreated:*", "deleted": "s3:ObjectRemoved:*"}


@dataclass(frozen=True, slots=True)
class TriggerWiring:
    """What one binding became on AWS."""

    function: str
    kind: str
    resource: str
    """The bucket, stream ARN or rule ARN wired to the function."""
    detail: str = ""


def wire_triggers(
    bindings: Sequence[TriggerBinding],
    *,
    client: Callable[[str], Any],
    function_arn: Callable[[str], str],
    bucket: str | None,
    prefix: str,
    stream_arn: Callable[[str], str],
    rule_prefix: str,
) -> list[TriggerWiring]:
    """Create or update the AWS resources of ``bindings`` (see the module docstring).

    Raises:
        NotSupportedError: an HTTP trigger, or an object trigger on a lake that is not in S3.
        InvalidInputError: a schedule EventBridge cannot run (``rate(N seconds)``).
    """
    done: list[TriggerWiring] = []
    objects: dict[str, list[ObjectTrigger]] = {}
    for binding in bindings:
        trigger = binding.trigger
        if isinstance(trigger, ObjectTrigger):
            objects.setdefault(binding.function, []).append(trigger)
        elif isinstance(trigger, StreamTrigger):
            done.append(_wire_stream(binding.function, trigger, client, function_arn, stream_arn))
        elif isinstance(trigger, ScheduleTrigger):
            done.append(
                _wire_schedule(binding.function, trigger, client, function_arn, rule_prefix)
            )
        elif isinstance(trigger, HttpTrigger):
            raise NotSupportedError(
                "LambdaFunctionRuntime",
                "http trigger",
                f"{binding.function} <- {trigger}: put API Gateway or a function URL in front "
                "of the function",
            )
    if objects:
        if bucket is None:
            raise NotSupportedError(
                "LambdaFunctionRuntime", "object trigger", "the lake's store is not in S3"
            )
        done += _wire_objects(objects, client, function_arn, bucket, prefix)
    return done


def _wire_objects(
    objects: dict[str, list[ObjectTrigger]],
    client: Callable[[str], Any],
    function_arn: Callable[[str], str],
    bucket: str,
    prefix: str,
) -> list[TriggerWiring]:
    s3 = client("s3")
    done: list[TriggerWiring] = []
    ours: list[dict[str, Any]] = []
    for function, triggers in sorted(objects.items()):
        arn = function_arn(function)
        _allow(client, arn, "s3.amazonaws.com", f"arn:aws:s3:::{bucket}", "s3")
        for n, trigger in enumerate(triggers):
            rules = (
                [{"Name": "prefix", "Value": prefix + trigger.prefix}]
                if (prefix + trigger.prefix)
                else []
            )
            if trigger.suffix:
                rules.append({"Name": "suffix", "Value": trigger.suffix})
            config: dict[str, Any] = {
                "Id": f"lakekit-{function}-{n}",
                "LambdaFunctionArn": arn,
                "Events": [_EVENTS[e] for e in trigger.events],
            }
            if rules:
                config["Filter"] = {"Key": {"FilterRules": rules}}
            ours.append(config)
            events = ",".join(config["Events"])
            pattern = f"{prefix}{trigger.prefix}*{trigger.suffix}"
            done.append(TriggerWiring(function, "object", bucket, f"{pattern} {events}"))
    mine = {f"lakekit-{function}-" for function in objects}
    with aws_errors(f"configuring the notifications of bucket {bucket!r}"):
        current = s3.get_bucket_notification_configuration(Bucket=bucket)
        current.pop("ResponseMetadata", None)
        kept = [
            c
            for c in current.get("LambdaFunctionConfigurations", [])
            if not any(str(c.get("Id", "")).startswith(m) for m in mine)
        ]
        current["LambdaFunctionConfigurations"] = kept + ours
        s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration=current)
    return done


def _wire_stream(
    function: str,
    trigger: StreamTrigger,
    client: Callable[[str], Any],
    function_arn: Callable[[str], str],
    stream_arn: Callable[[str], str],
) -> TriggerWiring:
    lam = client("lambda")
    source = stream_arn(trigger.stream)
    settings: dict[str, Any] = {
        "BatchSize": trigger.batch_size,
        "MaximumBatchingWindowInSeconds": round(trigger.max_wait),
        "FunctionResponseTypes": ["ReportBatchItemFailures"],
    }
    with aws_errors(f"mapping stream {trigger.stream!r} to function {function!r}"):
        existing = lam.list_event_source_mappings(
            EventSourceArn=source, FunctionName=function_arn(function)
        ).get("EventSourceMappings", [])
        if existing:
            uuid = existing[0]["UUID"]
            lam.update_event_source_mapping(
                UUID=uuid, FunctionName=function_arn(function), **settings
            )
        else:
            uuid = lam.create_event_source_mapping(
                EventSourceArn=source,
                FunctionName=function_arn(function),
                StartingPosition="TRIM_HORIZON" if trigger.start == "earliest" else "LATEST",
                **settings,
            )["UUID"]
    return TriggerWiring(function, "stream", source, f"mapping {uuid}")


def _wire_schedule(
    function: str,
    trigger: ScheduleTrigger,
    client: Callable[[str], Any],
    function_arn: Callable[[str], str],
    rule_prefix: str,
) -> TriggerWiring:
    expression = trigger.expression
    if expression.lower().startswith("rate(") and "second" in expression.lower():
        raise InvalidInputError(
            f"EventBridge cannot run {expression!r}: rate(N seconds) is a local extension; "
            "the shortest cloud schedule is rate(1 minute)"
        )
    digest = hashlib.sha256(expression.encode()).hexdigest()[:8]
    name = f"{rule_prefix}{function}-{digest}"[:64]
    events = client("events")
    with aws_errors(f"scheduling function {function!r}"):
        rule_arn = events.put_rule(Name=name, ScheduleExpression=expression, State="ENABLED")[
            "RuleArn"
        ]
        events.put_targets(Rule=name, Targets=[{"Id": "lakekit", "Arn": function_arn(function)}])
    _allow(client, function_arn(function), "events.amazonaws.com", rule_arn, f"events-{digest}")
    return TriggerWiring(function, "schedule", rule_arn, expression)


def _allow(
    client: Callable[[str], Any], function_arn: str, principal: str, source_arn: str, sid: str
) -> None:
    """Let ``principal`` invoke the function from ``source_arn`` (idempotent)."""
    statement = f"lakekit-{sid}-" + hashlib.sha256(source_arn.encode()).hexdigest()[:12]
    with aws_errors(f"allowing {principal} to invoke {function_arn}"):
        try:
            client("lambda").add_permission(
                FunctionName=function_arn,
                StatementId=statement,
                Action="lambda:InvokeFunction",
                Principal=principal,
                SourceArn=source_arn,
            )
        except Exception as exc:  # the same statement exists: already allowed
            if not (is_client_error(exc) and error_code(exc) == "ResourceConflictException"):
                raise
