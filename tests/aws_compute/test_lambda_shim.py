"""The Lambda shim run in-process on the documented sample events (tests/events/samples/).

The shim is what Lambda calls inside the function; here it is called directly with each
provider sample and a stand-in for the Lambda runtime's context object (a plain class with the
three attributes the shim reads), which is how far an emulator-free test can go: real Lambda
invocation needs Docker or an account (see docs/clouds.md).
"""

from __future__ import annotations

import base64
import json
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from lakekit.adapters.aws import _kinesis_format as fmt
from lakekit.adapters.aws import lambda_shim
from lakekit.adapters.aws._lambda_events import decode_event, encode_event
from lakekit.errors import ConfigurationError, InvalidInputError
from lakekit.events import (
    BatchResult,
    Http,
    HttpResponse,
    Invoke,
    ObjectCreated,
    ObjectDeleted,
    Schedule,
    StreamRecord,
    StreamRecords,
)

SAMPLES = Path(__file__).parent.parent / "events" / "samples"


class LambdaContext:
    """Stands in for the context object the Lambda Python runtime passes to a handler."""

    def __init__(self, remaining_ms: int = 30_000) -> None:
        self.aws_request_id = "c6af9ac6-7b61-11e6-9a41-93e812345678"
        self.function_name = "lakekit-probe"
        self._remaining = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self._remaining


def sample(name: str) -> Any:
    return json.loads((SAMPLES / f"{name}.json").read_text())


@pytest.fixture
def probe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, Any]]:
    """A user handler module on sys.path, selected through LAKEKIT_HANDLER; it records each
    call and answers from ``RESULTS`` (a list the test fills, one entry per call)."""
    module = f"shim_probe_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{module}.py").write_text(
        textwrap.dedent(
            """
            CALLS = []
            RESULTS = []

            def handle(event, context):
                CALLS.append((event, context))
                result = RESULTS.pop(0) if RESULTS else None
                if isinstance(result, BaseException):
                    raise result
                return result

            async def handle_async(event, context):
                CALLS.append((event, context))
                return {"async": True}
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("LAKEKIT_HANDLER", f"{module}:handle")
    monkeypatch.setenv("LAKEKIT_FUNCTION", "probe")
    monkeypatch.setenv("LAKEKIT_URL", "s3://examplebucket/lake")
    monkeypatch.delenv("LAKEKIT_STREAM_NAME_PREFIX", raising=False)
    __import__(module)
    mod = sys.modules[module]
    calls: list[tuple[Any, Any]] = mod.CALLS
    calls_module[0] = mod
    return calls


calls_module: list[Any] = [None]


def results(*values: Any) -> None:
    calls_module[0].RESULTS.extend(values)


def test_a_direct_invocation_by_lakekit_reaches_the_handler_as_the_same_event(
    probe: list[tuple[Any, Any]],
) -> None:
    event = Invoke(payload={"order": 42, "tags": ["a"]})
    results({"ok": 1})
    assert lambda_shim.handler(json.loads(json.dumps(encode_event(event))), LambdaContext()) == {
        "ok": 1
    }
    [(got, context)] = probe
    assert got == event
    assert context.function_name == "probe"
    assert context.invocation_id == "c6af9ac6-7b61-11e6-9a41-93e812345678"
    assert 29 < context.remaining_time() <= 30
    assert context.lake is not None and context.lake.url == "s3://examplebucket/lake"


def test_any_other_payload_is_an_invoke_with_that_payload(probe: list[tuple[Any, Any]]) -> None:
    results(7)
    assert lambda_shim.handler({"hello": "world"}, LambdaContext()) == 7
    [(got, _)] = probe
    assert isinstance(got, Invoke) and got.payload == {"hello": "world"}


def test_s3_put_sample_gives_object_created_relative_to_the_lake_root(
    probe: list[tuple[Any, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAKEKIT_URL", "s3://mybucket")  # the sample's bucket
    assert lambda_shim.handler(sample("aws_s3_put"), LambdaContext()) is None
    [(got, _)] = probe
    assert isinstance(got, ObjectCreated)
    assert (got.bucket, got.key, got.size) == ("mybucket", "HappyFace.jpg", 1024)


def test_object_events_outside_the_lake_are_skipped(probe: list[tuple[Any, Any]]) -> None:
    lambda_shim.handler(sample("aws_s3_put"), LambdaContext())  # LAKEKIT_URL is another bucket
    assert probe == []


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("aws_sns_s3_put", ObjectCreated),
        ("aws_eventbridge_s3_object_created", ObjectCreated),
        ("aws_eventbridge_s3_object_deleted", ObjectDeleted),
    ],
)
def test_s3_events_via_sns_and_eventbridge_reach_the_handler(
    probe: list[tuple[Any, Any]], monkeypatch: pytest.MonkeyPatch, name: str, expected: type
) -> None:
    monkeypatch.delenv("LAKEKIT_URL")  # no lake: keys as delivered
    lambda_shim.handler(sample(name), LambdaContext())
    assert [type(e) for e, _ in probe] == [expected]


def test_s3_test_event_calls_nothing(probe: list[tuple[Any, Any]]) -> None:
    assert lambda_shim.handler(sample("aws_s3_test_event"), LambdaContext()) is None
    assert probe == []


def test_kinesis_sample_becomes_one_batch_with_lakekit_offsets(
    probe: list[tuple[Any, Any]],
) -> None:
    payload = sample("aws_kinesis")
    assert lambda_shim.handler(payload, LambdaContext()) == {"batchItemFailures": []}
    [(batch, _)] = probe
    assert isinstance(batch, StreamRecords)
    assert (batch.stream, batch.partition) == ("lambda-stream", "6")
    sequences = [r["kinesis"]["sequenceNumber"] for r in payload["Records"]]
    assert batch.offsets == tuple(str(int(s) << 16) for s in sequences)
    assert [r.text() for r in batch.records] == ["Hello, this is a test.", "This is only a test."]
    assert batch.records[0].key == b"1"


def test_batch_result_becomes_batch_item_failures_with_kinesis_sequence_numbers(
    probe: list[tuple[Any, Any]],
) -> None:
    payload = sample("aws_kinesis")
    second = payload["Records"][1]["kinesis"]["sequenceNumber"]
    results(BatchResult([str(int(second) << 16)]))
    assert lambda_shim.handler(payload, LambdaContext()) == {
        "batchItemFailures": [{"itemIdentifier": second}]
    }


def test_records_framed_by_kinesis_stream_are_unpacked(
    probe: list[tuple[Any, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAKEKIT_STREAM_NAME_PREFIX", "lambda-")  # lakekit stream "stream"
    payload = sample("aws_kinesis")
    framed = fmt.frame(
        [
            fmt.encode_entry(b"first", b"user-1", {"trace": "t1"}, 1_700_000_000_000),
            fmt.encode_entry(b"second", b"user-1", {}, 1_700_000_000_001),
        ]
    )
    payload["Records"][0]["kinesis"]["data"] = base64.b64encode(framed).decode()
    sequence = int(payload["Records"][0]["kinesis"]["sequenceNumber"])
    results(BatchResult([str(sequence << 16 | 1)]))  # the second record of the first blob
    response = lambda_shim.handler(payload, LambdaContext())
    assert response == {"batchItemFailures": [{"itemIdentifier": str(sequence)}]}
    [(batch, _)] = probe
    assert batch.stream == "stream"
    assert [r.value for r in batch.records] == [b"first", b"second", b"This is only a test."]
    first = batch.records[0]
    assert (first.key, dict(first.headers)) == (b"user-1", {"trace": "t1"})
    assert first.timestamp.timestamp() == 1_700_000_000.0
    assert batch.offsets[:2] == (str(sequence << 16), str(sequence << 16 | 1))


def test_sqs_messages_and_their_failures_use_message_ids(probe: list[tuple[Any, Any]]) -> None:
    payload = sample("aws_sqs_messages")
    first_id = payload["Records"][0]["messageId"]
    results(BatchResult([first_id]))
    assert lambda_shim.handler(payload, LambdaContext()) == {
        "batchItemFailures": [{"itemIdentifier": first_id}]
    }
    [(batch, _)] = probe
    assert isinstance(batch, StreamRecords) and batch.stream == "my-queue"


def test_s3_events_in_sqs_reach_the_handler_as_object_events(
    probe: list[tuple[Any, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LAKEKIT_URL")
    assert lambda_shim.handler(sample("aws_sqs_s3"), LambdaContext()) == {"batchItemFailures": []}
    assert [type(e) for e, _ in probe] == [ObjectCreated, ObjectDeleted]


def test_plain_sns_messages_become_a_batch_per_topic(probe: list[tuple[Any, Any]]) -> None:
    lambda_shim.handler(sample("aws_sns_message"), LambdaContext())
    [(batch, _)] = probe
    assert isinstance(batch, StreamRecords)
    assert (batch.stream, batch.offsets) == (
        "sns-lambda",
        ("95df01b4-ee98-5cb9-9903-4c221d41eb5e",),
    )
    [record] = batch.records
    assert record.text() == "Hello from SNS!"
    assert dict(record.headers) == {"Test": "TestString"}  # binary attributes are left out


def test_eventbridge_schedule_reaches_the_handler(probe: list[tuple[Any, Any]]) -> None:
    lambda_shim.handler(sample("aws_eventbridge_scheduled"), LambdaContext())
    [(got, _)] = probe
    assert isinstance(got, Schedule)


@pytest.mark.parametrize(
    "name",
    ["aws_apigw_http_v2", "aws_apigw_http_v1", "aws_apigw_rest_proxy", "aws_lambda_function_url"],
)
def test_http_requests_get_api_gateway_responses(probe: list[tuple[Any, Any]], name: str) -> None:
    results(HttpResponse(status=201, body={"created": True}))
    response = lambda_shim.handler(sample(name), LambdaContext())
    assert response["statusCode"] == 201
    assert json.loads(response["body"]) == {"created": True}
    assert response["headers"]["content-type"] == "application/json"
    assert isinstance(probe[0][0], Http)


def test_a_handler_exception_propagates_for_lambda_to_report(probe: list[tuple[Any, Any]]) -> None:
    results(ValueError("boom"))
    with pytest.raises(ValueError, match="boom"):
        lambda_shim.handler({"x": 1}, LambdaContext())


def test_async_handlers_are_awaited(
    probe: list[tuple[Any, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    module = calls_module[0].__name__
    monkeypatch.setenv("LAKEKIT_HANDLER", f"{module}:handle_async")
    assert lambda_shim.handler({"x": 1}, LambdaContext()) == {"async": True}


def test_a_malformed_native_event_is_invalid_input(probe: list[tuple[Any, Any]]) -> None:
    broken = sample("aws_kinesis")
    del broken["Records"][0]["kinesis"]["data"]
    with pytest.raises(InvalidInputError, match="data"):
        lambda_shim.handler(broken, LambdaContext())
    assert probe == []


def test_a_missing_or_wrong_handler_setting_says_what_to_fix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("LAKEKIT_HANDLER", raising=False)
    with pytest.raises(ConfigurationError, match="LAKEKIT_HANDLER must be 'module:function'"):
        lambda_shim.handler({}, LambdaContext())
    monkeypatch.setenv("LAKEKIT_HANDLER", "no_such_module_xyz:handle")
    with pytest.raises(ConfigurationError, match="deployment package"):
        lambda_shim.handler({}, LambdaContext())


def test_every_event_type_survives_the_invocation_envelope() -> None:
    batch = StreamRecords(
        stream="s",
        partition="0",
        records=(StreamRecord(offset="1", value=b"\x00\xff", key=None, headers={"h": "v"}),),
    )
    for event in (batch, Invoke(payload={"a": [1, 2.5, None]}), Http(method="GET", path="/x")):
        assert decode_event(json.loads(json.dumps(encode_event(event)))) == event
    with pytest.raises(InvalidInputError):
        encode_event(Invoke(payload={1, 2}))
