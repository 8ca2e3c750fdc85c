"""AWS payloads -> portable events: S3 (direct, SNS, SQS, EventBridge), SQS, Kinesis, schedules,
API Gateway / function URLs, on the documented sample events."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from lakekit.errors import InvalidInputError
from lakekit.events import (
    Http,
    ObjectCreated,
    ObjectDeleted,
    Schedule,
    StreamRecords,
    parse_http,
    parse_kinesis,
    parse_s3,
    parse_schedule,
    parse_sqs,
)

Sample = Callable[[str], Any]


# --- S3 ------------------------------------------------------------------------------------


def test_s3_put_notification_gives_object_created(sample: Sample) -> None:
    [event] = parse_s3(sample("aws_s3_put"))
    assert isinstance(event, ObjectCreated)
    assert (event.bucket, event.key, event.size) == ("mybucket", "HappyFace.jpg", 1024)
    assert event.etag == "d41d8cd98f00b204e9800998ecf8427e"
    assert event.source == "aws:s3"
    assert event.time == datetime(1970, 1, 1, tzinfo=UTC)


def test_s3_removed_record_gives_object_deleted_without_size(sample: Sample) -> None:
    payload = sample("aws_s3_put")
    record = payload["Records"][0]
    record["eventName"] = "ObjectRemoved:DeleteMarkerCreated"
    del record["s3"]["object"]["size"], record["s3"]["object"]["eTag"]
    [event] = parse_s3(payload)
    assert isinstance(event, ObjectDeleted)
    assert (event.bucket, event.key) == ("mybucket", "HappyFace.jpg")


@pytest.mark.parametrize(
    ("encoded", "key"),
    [
        ("red+flower.jpg", "red flower.jpg"),
        ("a%2Bb+c.txt", "a+b c.txt"),
        ("raw/dt%3D2018-05-04/_SUCCESS", "raw/dt=2018-05-04/_SUCCESS"),
        ("caf%C3%A9/%E6%97%A5%E6%9C%AC+%F0%9F%93%84.csv", "café/日本 📄.csv"),
        ("test/10%3A47%3A07.log.bz2", "test/10:47:07.log.bz2"),
    ],
)
def test_s3_keys_are_url_decoded(sample: Sample, encoded: str, key: str) -> None:
    payload = sample("aws_s3_put")
    payload["Records"][0]["s3"]["object"]["key"] = encoded
    [event] = parse_s3(payload)
    assert event.key == key


def test_s3_event_types_other_than_create_and_remove_give_nothing(sample: Sample) -> None:
    payload = sample("aws_s3_put")
    payload["Records"][0]["eventName"] = "ObjectRestore:Completed"
    assert parse_s3(payload) == []


def test_s3_test_event_gives_no_events_directly_and_in_sqs(sample: Sample) -> None:
    assert parse_s3(sample("aws_s3_test_event")) == []
    assert parse_s3(sample("aws_sqs_s3_test_event")) == []
    assert parse_sqs(sample("aws_sqs_s3_test_event")) == []


def test_s3_in_sns_gives_the_same_event_with_the_same_id(sample: Sample) -> None:
    [direct] = parse_s3(sample("aws_s3_put"))
    [via_sns] = parse_s3(sample("aws_sns_s3_put"))
    assert via_sns == direct


def test_s3_in_sqs_direct_and_via_sns_envelope(sample: Sample) -> None:
    created, deleted = parse_s3(sample("aws_sqs_s3"))
    [direct] = parse_s3(sample("aws_s3_put"))
    assert created == direct
    assert isinstance(deleted, ObjectDeleted)
    assert deleted.key == "HappyFace.jpg"
    assert deleted.id != created.id
    assert parse_sqs(sample("aws_sqs_s3")) == [created, deleted]


def test_s3_ids_are_stable_and_distinct_per_record(sample: Sample) -> None:
    payload = sample("aws_s3_put")
    second = json.loads(json.dumps(payload["Records"][0]))
    second["s3"]["object"]["key"] = "SadFace.jpg"
    second["s3"]["object"]["sequencer"] = "0055AED6DCD90281E6"
    payload["Records"].append(second)
    first_parse = parse_s3(payload)
    assert [e.key for e in first_parse] == ["HappyFace.jpg", "SadFace.jpg"]
    assert [e.id for e in first_parse] == [e.id for e in parse_s3(payload)]
    assert first_parse[0].id != first_parse[1].id


def test_s3_via_eventbridge(sample: Sample) -> None:
    [created] = parse_s3(sample("aws_eventbridge_s3_object_created"))
    assert isinstance(created, ObjectCreated)
    assert created.id == "17793124-05d4-b198-2fde-7ededc63b103"
    assert (created.bucket, created.key, created.size) == ("DOC-EXAMPLE-BUCKET1", "example-key", 5)
    assert created.time == datetime(2021, 11, 12, tzinfo=UTC)
    [deleted] = parse_s3(sample("aws_eventbridge_s3_object_deleted"))
    assert isinstance(deleted, ObjectDeleted)
    assert deleted.id == "2ee9cc15-d022-99ea-1fb8-1b1bac4850f9"
    assert parse_s3(sample("aws_eventbridge_s3_restore_completed")) == []


def test_s3_via_eventbridge_keeps_the_key_as_delivered(sample: Sample) -> None:
    payload = sample("aws_eventbridge_s3_object_created")
    payload["detail"]["object"]["key"] = "raw/health-check/2023-08-08T14:03:40.532432.zip"
    [event] = parse_s3(payload)
    assert event.key == "raw/health-check/2023-08-08T14:03:40.532432.zip"


@pytest.mark.parametrize(
    ("path", "message"),
    [
        (["Records", 0, "s3", "object", "key"], "S3 event Records[0].s3.object.key is missing"),
        (["Records", 0, "s3", "bucket"], "S3 event Records[0].s3.bucket is missing"),
        (["Records", 0, "eventTime"], "S3 event Records[0].eventTime is missing"),
        (["Records", 0, "eventName"], "S3 event Records[0].eventName is missing"),
    ],
)
def test_malformed_s3_event_names_the_missing_field(
    sample: Sample, path: list[Any], message: str
) -> None:
    payload = sample("aws_s3_put")
    parent = payload
    for step in path[:-1]:
        parent = parent[step]
    del parent[path[-1]]
    with pytest.raises(InvalidInputError) as info:
        parse_s3(payload)
    assert str(info.value) == message


def test_malformed_s3_event_names_wrong_types(sample: Sample) -> None:
    payload = sample("aws_s3_put")
    payload["Records"][0]["s3"]["object"]["size"] = "big"
    with pytest.raises(InvalidInputError, match=r"Records\[0\]\.s3\.object\.size must be a number"):
        parse_s3(payload)
    payload = sample("aws_s3_put")
    payload["Records"] = {"not": "a list"}
    with pytest.raises(InvalidInputError, match="S3 event Records must be a list, got an object"):
        parse_s3(payload)


def test_malformed_s3_inside_sqs_says_where(sample: Sample) -> None:
    payload = sample("aws_sqs_s3")
    inner = json.loads(payload["Records"][0]["body"])
    del inner["Records"][0]["s3"]["object"]["key"]
    payload["Records"][0]["body"] = json.dumps(inner)
    with pytest.raises(InvalidInputError) as info:
        parse_s3(payload)
    assert str(info.value) == (
        "S3 event in SQS Records[0].body Records[0].s3.object.key is missing"
    )


def test_sqs_body_that_is_not_s3_is_refused_by_parse_s3(sample: Sample) -> None:
    with pytest.raises(InvalidInputError, match=r"SQS message Records\[0\]\.body is not an S3"):
        parse_s3(sample("aws_sqs_messages"))


def test_plain_sns_message_is_refused_by_parse_s3(sample: Sample) -> None:
    with pytest.raises(
        InvalidInputError, match=r"S3 event Records\[0\]\.Sns\.Message is not an S3 event"
    ):
        parse_s3(sample("aws_sns_message"))


# --- SQS -----------------------------------------------------------------------------------


def test_sqs_messages_become_one_batch_per_queue_in_order(sample: Sample) -> None:
    [batch] = parse_sqs(sample("aws_sqs_messages"))
    assert isinstance(batch, StreamRecords)
    assert (batch.stream, batch.partition) == ("my-queue", "my-queue")
    assert batch.offsets == (
        "059f36b4-87a3-44ab-83d2-661975830a7d",
        "2e1424d4-f796-459a-8184-9c92662be6da",
    )
    assert [r.text() for r in batch.records] == ["test", "test"]
    assert batch.records[0].timestamp == datetime(2018, 12, 17, 21, 37, 29, 183000, tzinfo=UTC)
    assert batch.time == batch.records[1].timestamp
    assert batch.id == parse_sqs(sample("aws_sqs_messages"))[0].id


def test_sqs_fifo_group_and_string_attributes(sample: Sample) -> None:
    payload = sample("aws_sqs_messages")
    record = payload["Records"][0]
    record["attributes"]["MessageGroupId"] = "orders-42"
    record["messageAttributes"] = {
        "kind": {"stringValue": "order", "dataType": "String"},
        "blob": {"binaryValue": "AAE=", "dataType": "Binary"},
    }
    [batch] = parse_sqs(payload)
    assert batch.records[0].key == b"orders-42"
    assert batch.records[0].headers == {"kind": "order"}
    assert batch.records[1].key is None


def test_sqs_record_without_message_id_is_named(sample: Sample) -> None:
    payload = sample("aws_sqs_messages")
    del payload["Records"][1]["messageId"]
    with pytest.raises(InvalidInputError) as info:
        parse_sqs(payload)
    assert str(info.value) == "SQS event Records[1].messageId is missing"


# --- Kinesis -------------------------------------------------------------------------------


def test_kinesis_sample_gives_one_ordered_batch(sample: Sample) -> None:
    [batch] = parse_kinesis(sample("aws_kinesis"))
    assert (batch.stream, batch.partition) == ("lambda-stream", "shardId-000000000006")
    assert [r.text() for r in batch.records] == ["Hello, this is a test.", "This is only a test."]
    assert batch.offsets == (
        "49590338271490256608559692538361571095921575989136588898",
        "49590338271490256608559692540925702759324208523137515618",
    )
    assert batch.records[0].key == b"1"
    assert batch.records[0].timestamp == datetime.fromtimestamp(1545084650.987, UTC)
    assert batch.time == datetime.fromtimestamp(1545084711.166, UTC)


def _kinesis_record(template: dict[str, Any], stream: str, shard: str, seq: int) -> dict[str, Any]:
    record = json.loads(json.dumps(template))
    record["eventSourceARN"] = f"arn:aws:kinesis:us-east-2:123456789012:stream/{stream}"
    record["eventID"] = f"{shard}:{seq}"
    record["kinesis"]["sequenceNumber"] = str(seq)
    record["kinesis"]["data"] = base64.b64encode(f"{stream}/{shard}/{seq}".encode()).decode()
    return record


def test_kinesis_records_are_grouped_per_stream_and_shard_and_ordered(sample: Sample) -> None:
    template = sample("aws_kinesis")["Records"][0]
    order = [
        ("clicks", "shardId-000000000001", 30),
        ("clicks", "shardId-000000000000", 10),
        ("clicks", "shardId-000000000001", 20),
        ("views", "shardId-000000000001", 5),
        ("clicks", "shardId-000000000000", 11),
    ]
    payload = {"Records": [_kinesis_record(template, *spec) for spec in order]}
    batches = parse_kinesis(payload)
    assert [(b.stream, b.partition, b.offsets) for b in batches] == [
        ("clicks", "shardId-000000000001", ("20", "30")),
        ("clicks", "shardId-000000000000", ("10", "11")),
        ("views", "shardId-000000000001", ("5",)),
    ]
    assert batches[0].records[0].value == b"clicks/shardId-000000000001/20"
    assert len({b.id for b in batches}) == 3
    assert [b.id for b in batches] == [b.id for b in parse_kinesis(payload)]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (
            lambda r: r["kinesis"].pop("data"),
            "Kinesis event Records[1].kinesis.data is missing",
        ),
        (
            lambda r: r["kinesis"].update(data="not base64!"),
            "Kinesis event Records[1].kinesis.data is not valid base64",
        ),
        (
            lambda r: r.update(eventID="49590338271490256608559692540925702759324208523137515618"),
            "Kinesis event Records[1].eventID must look like 'shardId-...:<sequence number>', "
            "got '49590338271490256608559692540925702759324208523137515618'",
        ),
        (
            lambda r: r.update(eventSourceARN="arn:aws:sqs:us-east-2:123456789012:q"),
            "Kinesis event Records[1].eventSourceARN must be a Kinesis stream ARN "
            "(arn:aws:kinesis:...:stream/NAME), got 'arn:aws:sqs:us-east-2:123456789012:q'",
        ),
    ],
)
def test_malformed_kinesis_record_is_named(
    sample: Sample, mutate: Callable[[dict[str, Any]], object], message: str
) -> None:
    payload = sample("aws_kinesis")
    mutate(payload["Records"][1])
    with pytest.raises(InvalidInputError) as info:
        parse_kinesis(payload)
    assert str(info.value) == message


# --- schedules -----------------------------------------------------------------------------


def test_eventbridge_scheduled_event(sample: Sample) -> None:
    event = parse_schedule(sample("aws_eventbridge_scheduled"))
    assert isinstance(event, Schedule)
    assert event.id == "cdc73f9d-aea9-11e3-9d5a-835b769c0d9c"
    assert event.name == "my-schedule"
    assert event.expression == ""
    assert event.scheduled_time == event.time == datetime(2019, 3, 1, 1, 23, 45, tzinfo=UTC)
    given = parse_schedule(sample("aws_eventbridge_scheduled"), expression="rate(5 minutes)")
    assert given.expression == "rate(5 minutes)"


def test_eventbridge_scheduler_schedule_name(sample: Sample) -> None:
    payload = sample("aws_eventbridge_scheduled")
    payload["source"] = "aws.scheduler"
    payload["resources"] = ["arn:aws:scheduler:us-east-1:123456789012:schedule/default/nightly"]
    assert parse_schedule(payload).name == "nightly"


def test_scheduled_event_without_resources_is_named(sample: Sample) -> None:
    payload = sample("aws_eventbridge_scheduled")
    payload["resources"] = []
    with pytest.raises(InvalidInputError) as info:
        parse_schedule(payload)
    assert str(info.value) == (
        "EventBridge scheduled event resources is empty: it must hold the rule or schedule ARN"
    )


# --- HTTP ----------------------------------------------------------------------------------


def test_http_api_v2_request(sample: Sample) -> None:
    request = parse_http(sample("aws_apigw_http_v2"))
    assert isinstance(request, Http)
    assert (request.method, request.path, request.body) == (
        "POST",
        "/my/path",
        b"Hello from Lambda",
    )
    assert request.headers == {
        "header1": "value1",
        "header2": "value1,value2",
        "cookie": "cookie1; cookie2",
    }
    assert request.query == {"parameter1": "value2", "parameter2": "value"}
    assert request.id == "id"
    assert request.time == datetime.fromtimestamp(1583348638.390, UTC)


def test_function_url_request_is_payload_v2(sample: Sample) -> None:
    request = parse_http(sample("aws_lambda_function_url"))
    assert (request.method, request.path, request.text()) == (
        "POST",
        "/my/path",
        "Hello from client!",
    )
    assert request.headers["header2"] == "value1,value2"


def test_http_api_v1_request_uses_multi_value_fields(sample: Sample) -> None:
    request = parse_http(sample("aws_apigw_http_v1"))
    assert (request.method, request.path, request.body) == (
        "GET",
        "/my/path",
        b"Hello from Lambda!",
    )
    assert request.headers == {"header1": "value1", "header2": "value1,value2"}
    assert request.query == {"parameter1": "value2", "parameter2": "value"}
    assert request.id == "id="
    assert request.time == datetime.fromtimestamp(1583349317.135, UTC)


def test_rest_api_proxy_request(sample: Sample) -> None:
    request = parse_http(sample("aws_apigw_rest_proxy"))
    assert (request.method, request.path) == ("POST", "/hello/world")
    assert request.json() == {"a": 1}
    assert request.headers["content-type"] == "application/json"
    assert request.headers["x-forwarded-for"] == "54.240.196.186, 54.182.214.83"
    assert "" not in request.headers
    assert all(name == name.lower() for name in request.headers)
    assert request.query == {"name": "me", "multivalueName": "me"}
    assert request.id == "deef4878-7910-11e6-8f14-25afc3e9ae33"


def test_base64_body_is_decoded(sample: Sample) -> None:
    payload = sample("aws_apigw_http_v2")
    payload["isBase64Encoded"] = True
    payload["body"] = base64.b64encode(b"\x00\xffbinary").decode()
    assert parse_http(payload).body == b"\x00\xffbinary"
    payload["body"] = "%%%"
    with pytest.raises(InvalidInputError) as info:
        parse_http(payload)
    assert str(info.value) == "API Gateway payload 2.0 request body is not valid base64"


def test_http_v2_without_method_is_named(sample: Sample) -> None:
    payload = sample("aws_apigw_http_v2")
    del payload["requestContext"]["http"]["method"]
    with pytest.raises(InvalidInputError) as info:
        parse_http(payload)
    assert (
        str(info.value) == "API Gateway payload 2.0 request requestContext.http.method is missing"
    )
