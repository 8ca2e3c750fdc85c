"""parse_event recognises every accepted native shape, is deterministic, and refuses anything
else with an error listing the accepted shapes."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from lakekit.errors import InvalidInputError
from lakekit.events import (
    Event,
    Http,
    ObjectCreated,
    ObjectDeleted,
    Schedule,
    StreamRecords,
    parse_event,
    parse_event_grid,
    parse_gcs,
    parse_http,
    parse_kinesis,
    parse_pubsub,
    parse_s3,
    parse_schedule,
    parse_sqs,
)

Sample = Callable[[str], Any]
SAMPLES = Path(__file__).parent / "samples"
WHEN = datetime(2026, 1, 1, tzinfo=UTC)

# sample -> (the event types parse_event gives, the provider function that parses it)
EXPECTED: dict[str, tuple[list[type[Event]], Callable[[Any], Any]]] = {
    "aws_s3_put": ([ObjectCreated], parse_s3),
    "aws_s3_test_event": ([], parse_s3),
    "aws_sns_s3_put": ([ObjectCreated], parse_s3),
    "aws_sqs_s3": ([ObjectCreated, ObjectDeleted], parse_sqs),
    "aws_sqs_s3_test_event": ([], parse_sqs),
    "aws_sqs_messages": ([StreamRecords], parse_sqs),
    "aws_eventbridge_s3_object_created": ([ObjectCreated], parse_s3),
    "aws_eventbridge_s3_object_deleted": ([ObjectDeleted], parse_s3),
    "aws_eventbridge_s3_restore_completed": ([], parse_s3),
    "aws_kinesis": ([StreamRecords], parse_kinesis),
    "aws_eventbridge_scheduled": ([Schedule], parse_schedule),
    "aws_apigw_http_v2": ([Http], parse_http),
    "aws_apigw_http_v1": ([Http], parse_http),
    "aws_apigw_rest_proxy": ([Http], parse_http),
    "aws_lambda_function_url": ([Http], parse_http),
    "gcp_gcs_finalized_cloudevent": ([ObjectCreated], parse_gcs),
    "gcp_gcs_finalized_cloudevent_simple": ([ObjectCreated], parse_gcs),
    "gcp_gcs_deleted_cloudevent": ([ObjectDeleted], parse_gcs),
    "gcp_gcs_pubsub_notification": ([ObjectCreated], parse_gcs),
    "gcp_pubsub_push": ([StreamRecords], parse_pubsub),
    "gcp_pubsub_cloudevent": ([StreamRecords], parse_pubsub),
    "azure_event_grid_blob_created": ([ObjectCreated], parse_event_grid),
    "azure_event_grid_blob_deleted": ([ObjectDeleted], parse_event_grid),
    "azure_cloudevents_blob_created": ([ObjectCreated], parse_event_grid),
    "azure_cloudevents_blob_deleted": ([ObjectDeleted], parse_event_grid),
    "azure_event_grid_blob_tier_changed": ([], parse_event_grid),
    "azure_event_grid_subscription_validation": ([], parse_event_grid),
}
TIMELESS = {"aws_apigw_rest_proxy"}  # the documented sample has no request time: time of parsing
NOT_EVENTS = {
    "aws_sns_message",  # a plain SNS message: only S3 notifications in SNS are read
    "aws_sns_envelope",  # the SNS envelope alone, used inside SQS samples
    "azure_event_hubs_batch",  # JSON for building EventHubEvent objects in the Azure tests
}


def test_every_sample_file_is_covered() -> None:
    names = {path.stem for path in SAMPLES.glob("*.json")}
    assert names == set(EXPECTED) | NOT_EVENTS


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_parse_event_recognises_each_sample(sample: Sample, name: str) -> None:
    types, provider_parser = EXPECTED[name]
    events = parse_event(sample(name))
    assert [type(e) for e in events] == types
    direct = provider_parser(sample(name))
    direct = direct if isinstance(direct, list) else [direct]
    if name in TIMELESS:
        events = [dataclasses.replace(e, time=WHEN) for e in events]
        direct = [dataclasses.replace(e, time=WHEN) for e in direct]
    assert events == direct


def test_a_request_without_time_is_stamped_with_the_parse_time(sample: Sample) -> None:
    before = datetime.now(UTC)
    [event] = parse_event(sample("aws_apigw_rest_proxy"))
    assert before <= event.time <= datetime.now(UTC)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_ids_are_stable_when_the_same_payload_is_parsed_twice(sample: Sample, name: str) -> None:
    first = parse_event(sample(name))
    second = parse_event(sample(name))
    assert [e.id for e in first] == [e.id for e in second]
    if name not in TIMELESS:
        assert first == second
    assert len({e.id for e in first}) == len(first)


@pytest.mark.parametrize(
    "name", ["aws_kinesis", "gcp_pubsub_push", "azure_event_grid_blob_created"]
)
def test_json_text_and_bytes_are_accepted(sample: Sample, name: str) -> None:
    text = (SAMPLES / f"{name}.json").read_text(encoding="utf-8")
    assert parse_event(text) == parse_event(text.encode("utf-8")) == parse_event(sample(name))


def test_invalid_json_text_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="event payload is not valid JSON"):
        parse_event("{not json")


@pytest.mark.parametrize(
    ("payload", "described"),
    [
        ({"hello": "world", "password": "hunter2"}, "a JSON object with keys 'hello', 'password'"),
        ({}, "an empty JSON object"),
        ([], "an empty list"),
        ([1, 2], "a list of 2 item(s)"),
        (42, "a int"),
        (
            {"detail-type": "EC2 Instance State-change Notification", "source": "aws.ec2"},
            "a JSON object with keys 'detail-type', 'source'",
        ),
    ],
)
def test_unrecognised_payloads_list_the_accepted_shapes(payload: Any, described: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        parse_event(payload)
    message = str(info.value)
    assert message.startswith(f"unrecognised event payload ({described}): lakekit reads ")
    for shape in ("S3 event notifications", "Kinesis", "Pub/Sub push", "Event Grid", "Event Hubs"):
        assert shape in message
    assert "hunter2" not in message


def test_plain_sns_message_says_what_lakekit_reads_in_sns(sample: Sample) -> None:
    with pytest.raises(InvalidInputError, match="lakekit reads SNS messages that carry S3"):
        parse_event(sample("aws_sns_message"))


def test_many_keys_are_shortened_in_the_error() -> None:
    payload = {f"k{i}": i for i in range(12)}
    with pytest.raises(InvalidInputError) as info:
        parse_event(payload)
    assert "'k0', 'k1', 'k10', 'k11', 'k2', 'k3', 'k4', 'k5', ...)" in str(info.value)


def test_parse_event_returns_fresh_lists(sample: Sample) -> None:
    events = parse_event(sample("aws_s3_put"))
    events.clear()
    assert len(parse_event(sample("aws_s3_put"))) == 1


def test_sample_files_are_valid_json() -> None:
    for path in SAMPLES.glob("*.json"):
        json.loads(path.read_text(encoding="utf-8"))


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key/index path inside a JSON value."""
    if isinstance(value, dict):
        items: Any = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return []
    found = []
    for key, child in items:
        found.append((*prefix, key))
        found.extend(_paths(child, (*prefix, key)))
    return found


def _mutated(payload: Any, path: tuple[Any, ...], replacement: Any) -> Any:
    copy = json.loads(json.dumps(payload))
    parent = copy
    for step in path[:-1]:
        parent = parent[step]
    if replacement is _DELETE:
        del parent[path[-1]]
    else:
        parent[path[-1]] = replacement
    return copy


_DELETE = object()


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_any_damaged_field_gives_invalid_input_or_a_result_never_another_error(
    sample: Sample, name: str
) -> None:
    payload = sample(name)
    refused = 0
    for path in _paths(payload):
        for replacement in (_DELETE, None, 7, "x", [], {}):
            try:
                parse_event(_mutated(payload, path, replacement))
            except InvalidInputError:
                refused += 1
    assert refused > 0


@pytest.mark.parametrize(
    ("name", "container"),
    [
        ("aws_sqs_s3", ("Records", 0, "body")),
        ("aws_sqs_s3", ("Records", 1, "body")),
        ("aws_sns_s3_put", ("Records", 0, "Sns", "Message")),
    ],
)
def test_damage_inside_embedded_json_gives_invalid_input_too(
    sample: Sample, name: str, container: tuple[Any, ...]
) -> None:
    payload = sample(name)
    holder = payload
    for step in container[:-1]:
        holder = holder[step]
    inner = json.loads(holder[container[-1]])
    refused = 0
    for path in _paths(inner):
        for replacement in (_DELETE, None, 7, "x", [], {}):
            holder[container[-1]] = json.dumps(_mutated(inner, path, replacement))
            try:
                parse_s3(payload)  # strict: every body must be an S3 notification
            except InvalidInputError:
                refused += 1
    assert refused > 0
