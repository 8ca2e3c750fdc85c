"""Packaging, deployment, invocation and trigger wiring of the Lambda runtime (moto on 127.0.0.1,
or a real account with ``LAKEKIT_TEST_AWS_LIVE=1`` and ``LAKEKIT_TEST_AWS_LAMBDA_ROLE``).

moto without Docker does not run function code: its synchronous invoke echoes the request
payload, which is what these tests read to check what lakekit sends. The shim's behaviour
inside Lambda is tested in-process in test_lambda_shim.py.
"""

from __future__ import annotations

import io
import json
import os
import sys
import textwrap
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import lakekit
from lakekit.adapters.aws.lambda_package import build_package
from lakekit.adapters.aws.lambda_runtime import (
    AsyncInvocation,
    LambdaFunctionRuntime,
    _function_error,
)
from lakekit.errors import (
    ConfigurationError,
    FunctionError,
    FunctionTimeoutError,
    InvalidInputError,
    NotFoundError,
    NotSupportedError,
)
from lakekit.events import Invoke
from lakekit.interfaces.function_runtime import FunctionOptions, FunctionRuntime
from servers.aws import AwsTarget

LAMBDA_ROLE_ENV = "LAKEKIT_TEST_AWS_LAMBDA_ROLE"


@pytest.fixture
def handlers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, unique: str) -> Any:
    """An importable module of handlers (what a user deploys)."""
    name = f"lk_handlers_{unique}"
    (tmp_path / f"{name}.py").write_text(
        textwrap.dedent(
            """
            def enrich(event, context):
                return {"doubled": event.payload["n"] * 2}

            def on_upload(event, context):
                return None
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    __import__(name)
    return sys.modules[name]


@pytest.fixture
def role(aws_target: AwsTarget, unique: str) -> str:
    if aws_target.live:
        arn = os.environ.get(LAMBDA_ROLE_ENV)
        if not arn:
            pytest.fail(f"live Lambda tests need {LAMBDA_ROLE_ENV}=<role ARN Lambda can assume>")
        return arn
    iam = aws_target.client("iam")
    policy = {"Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
                             "Action": "sts:AssumeRole"}]}  # fmt: skip
    return str(
        iam.create_role(RoleName=f"lk-{unique}", AssumeRolePolicyDocument=json.dumps(policy))[
            "Role"
        ]["Arn"]
    )


@pytest.fixture
def lake(aws_target: AwsTarget, role: str, unique: str) -> Iterator[lakekit.Lake]:
    settings = {"url": "lambda", "role_arn": role, "function_prefix": f"lk{unique}-",
                **aws_target.settings}  # fmt: skip
    with lakekit.connect(aws_target.lake_url(unique), functions=settings) as opened:
        yield opened
    lam = aws_target.client("lambda")
    for page in lam.get_paginator("list_functions").paginate():
        for function in page["Functions"]:
            if function["FunctionName"].startswith(f"lk{unique}-"):
                lam.delete_function(FunctionName=function["FunctionName"])


# -- packaging ----------------------------------------------------------------------------------


def test_package_holds_the_handler_lakekit_and_its_dependencies_deterministically(
    handlers: Any,
) -> None:
    reference = f"{handlers.__name__}:enrich"
    package = build_package(reference)
    names = set(zipfile.ZipFile(io.BytesIO(package.data)).namelist())
    assert f"{handlers.__name__}.py" in names
    assert "lakekit/adapters/aws/lambda_shim.py" in names
    assert any(n.startswith("pydantic/") for n in names)
    assert not any(n.startswith(("boto3/", "botocore/", "pyarrow/", "duckdb/")) for n in names)
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)
    infos = zipfile.ZipFile(io.BytesIO(package.data)).infolist()
    assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}
    assert [i.filename for i in infos] == sorted(i.filename for i in infos)
    assert build_package(reference).data == package.data  # same inputs, same bytes
    report = package.report
    assert {"lakekit", "pydantic", handlers.__name__} <= {e.name for e in report.entries}
    assert report.zipped_bytes == len(package.data) and report.fits_direct_upload
    assert {"pyarrow", "duckdb"} <= set(report.excluded)
    text = str(report)
    assert "lakekit" in text and "50.0 MB zipped" in text and "250.0 MB unzipped" in text


@pytest.mark.slow
def test_including_a_heavy_dependency_shows_in_the_report(handlers: Any) -> None:
    package = build_package(f"{handlers.__name__}:enrich", include=["pyarrow"], with_lakekit=False)
    sizes = {e.name: e.unzipped_bytes for e in package.report.entries}
    assert sizes["pyarrow"] > 20 * 1024 * 1024  # the reason it is excluded by default
    assert "pyarrow" not in package.report.excluded


def test_undeployable_handlers_are_refused_with_the_reason() -> None:
    with pytest.raises(InvalidInputError, match="module:function"):
        build_package("no_colon")
    with pytest.raises(InvalidInputError, match="__main__"):
        build_package("__main__:handler")
    with pytest.raises(InvalidInputError, match="cannot find the handler's module"):
        build_package("no_such_module_lk:handler")
    runtime = FunctionRuntime(LambdaFunctionRuntime())
    with pytest.raises(InvalidInputError, match="top level of a module"):
        runtime.register("anon", lambda event, context: None)


# -- deploying and invoking ---------------------------------------------------------------------


def test_register_deploys_then_updates_the_function(
    lake: lakekit.Lake, handlers: Any, aws_target: AwsTarget
) -> None:
    functions = lake.functions
    functions.register("enrich", handlers.enrich, FunctionOptions(timeout=30, retries=1))
    adapter = functions.adapter
    assert isinstance(adapter, LambdaFunctionRuntime)
    lam = aws_target.client("lambda")
    config = lam.get_function_configuration(FunctionName=adapter.function_name("enrich"))
    assert config["Handler"] == "lakekit.adapters.aws.lambda_shim.handler"
    assert config["Timeout"] == 30
    env = config["Environment"]["Variables"]
    assert env["LAKEKIT_HANDLER"] == f"{handlers.__name__}:enrich"
    assert env["LAKEKIT_URL"] == lake.url and env["LAKEKIT_FUNCTION"] == "enrich"
    assert adapter.last_package is not None
    assert config["CodeSha256"] == adapter.last_package.code_sha256
    invoke_config = lam.get_function_event_invoke_config(
        FunctionName=adapter.function_name("enrich")
    )
    assert invoke_config["MaximumRetryAttempts"] == 1
    functions.register("enrich", handlers.enrich, FunctionOptions(timeout=45, retries=0))
    config = lam.get_function_configuration(FunctionName=adapter.function_name("enrich"))
    assert config["Timeout"] == 45
    assert config.get("LastUpdateStatus", "Successful") == "Successful"
    assert functions.functions()["enrich"].timeout == 45
    with pytest.raises(InvalidInputError, match="at most 2 times"):
        functions.register("enrich", handlers.enrich, FunctionOptions(retries=3))


def test_invoke_sends_the_event_and_async_invoke_is_accepted(
    lake: lakekit.Lake, handlers: Any, aws_target: AwsTarget
) -> None:
    functions = lake.functions
    functions.register("enrich", handlers.enrich, FunctionOptions(retries=0))
    result = functions.invoke("enrich", {"n": 21})
    if aws_target.live:
        assert result == {"doubled": 42}
    else:  # moto echoes the payload: it is lakekit's invocation envelope
        from lakekit.adapters.aws._lambda_events import decode_event

        event = decode_event(result)
        assert isinstance(event, Invoke) and event.payload == {"n": 21}
    receipt = functions.invoke_async("enrich", {"n": 1}).result(timeout=30)
    assert isinstance(receipt, AsyncInvocation) and receipt.status_code == 202
    if aws_target.live:  # moto without Docker echoes even for functions that do not exist
        with pytest.raises(NotFoundError):
            functions.invoke("missing", {})


def test_function_errors_become_function_error_with_the_remote_message() -> None:
    error = _function_error("f", {"errorType": "ValueError", "errorMessage": "bad row 7"})
    assert isinstance(error, FunctionError) and "ValueError: bad row 7" in str(error)
    timeout = _function_error(
        "f", {"errorType": "Sandbox.Timedout", "errorMessage": "Task timed out after 3.00 seconds"}
    )
    assert isinstance(timeout, FunctionTimeoutError)


def test_creating_a_function_without_a_role_says_what_to_set(
    aws_target: AwsTarget, handlers: Any, unique: str
) -> None:
    runtime = FunctionRuntime(
        LambdaFunctionRuntime(function_prefix=f"nr{unique}-", **aws_target.settings)
    )
    with pytest.raises(ConfigurationError, match="LAKEKIT_FUNCTIONS_ROLE_ARN"):
        runtime.register("enrich", handlers.enrich, FunctionOptions(retries=0))


def test_dead_letters_are_read_from_the_on_failure_queue(
    aws_target: AwsTarget, unique: str
) -> None:
    sqs = aws_target.client("sqs")
    url = sqs.create_queue(QueueName=f"lk-dlq-{unique}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    record = {  # Lambda's on-failure destination record (AWS Lambda Developer Guide)
        "version": "1.0",
        "timestamp": "2019-11-14T18:16:05.568Z",
        "requestContext": {
            "requestId": "e4b46cbf-b738-xmpl-8880-a18cdf61200e",
            "functionArn": (
                f"arn:aws:lambda:us-east-1:123456789012:function:lk{unique}-enrich:$LATEST"
            ),
            "condition": "RetriesExhausted",
            "approximateInvokeCount": 3,
        },
        "requestPayload": {"lakekit_event": {"$event": "Invoke", "payload": {"n": 1}}},
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST",
                            "functionError": "Unhandled"},
        "responsePayload": {"errorMessage": "bad row", "errorType": "ValueError"},
    }  # fmt: skip
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps(record))
    sqs.send_message(QueueUrl=url, MessageBody="not a destination record")
    runtime = FunctionRuntime(
        LambdaFunctionRuntime(
            function_prefix=f"lk{unique}-", dead_letter_queue=arn, **aws_target.settings
        )
    )
    [letter] = runtime.dead_letters()
    assert (letter.function_name, letter.error_type, letter.error) == (
        "enrich",
        "ValueError",
        "bad row",
    )
    assert letter.attempts == 3 and letter.failed_at.year == 2019
    assert runtime.dead_letters("other") == []
    assert len(runtime.dead_letters()) == 1  # reading did not consume it
    with pytest.raises(ConfigurationError, match="DEAD_LETTER_QUEUE"):
        FunctionRuntime(LambdaFunctionRuntime()).dead_letters()


# -- triggers -----------------------------------------------------------------------------------


def test_trigger_decorators_wire_s3_kinesis_and_eventbridge(
    lake: lakekit.Lake, handlers: Any, aws_target: AwsTarget, unique: str
) -> None:
    functions = lake.functions
    functions.on_object_created(prefix="raw/", suffix=".json", retries=0)(handlers.on_upload)
    functions.on_stream(f"clicks_{unique}", batch_size=50, start="latest", retries=0)(
        handlers.enrich
    )
    functions.on_schedule("rate(5 minutes)", name="tick", retries=0)(handlers.on_upload)
    kinesis = aws_target.client("kinesis")
    kinesis.create_stream(StreamName=f"clicks_{unique}", ShardCount=1)
    kinesis.get_waiter("stream_exists").wait(StreamName=f"clicks_{unique}")
    adapter = functions.adapter
    assert isinstance(adapter, LambdaFunctionRuntime)
    wiring = adapter.deploy_triggers(functions.triggers())
    assert {w.kind for w in wiring} == {"object", "stream", "schedule"}
    assert adapter.deploy_triggers(functions.triggers())  # idempotent: applying again is fine

    bucket = aws_target.bucket
    prefix = lake.url.split(f"{bucket}/", 1)[1]
    notifications = aws_target.client("s3").get_bucket_notification_configuration(Bucket=bucket)
    [config] = notifications["LambdaFunctionConfigurations"]
    assert config["Events"] == ["s3:ObjectCreated:*"]
    assert config["LambdaFunctionArn"].endswith(f":function:lk{unique}-on_upload")
    rules = {r["Name"]: r["Value"] for r in config["Filter"]["Key"]["FilterRules"]}
    assert rules == {"prefix": f"{prefix}/raw/", "suffix": ".json"}

    lam = aws_target.client("lambda")
    stream_arn = kinesis.describe_stream_summary(StreamName=f"clicks_{unique}")[
        "StreamDescriptionSummary"
    ]["StreamARN"]
    [mapping] = lam.list_event_source_mappings(EventSourceArn=stream_arn)["EventSourceMappings"]
    assert mapping["FunctionArn"].endswith(f":function:lk{unique}-enrich")
    assert mapping["BatchSize"] == 50 and mapping["StartingPosition"] == "LATEST"
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["EventSourceArn"].endswith(f":stream/clicks_{unique}")
    policy = json.loads(lam.get_policy(FunctionName=adapter.function_name("on_upload"))["Policy"])
    assert {s["Principal"]["Service"] for s in policy["Statement"]} == {"s3.amazonaws.com"}

    events = aws_target.client("events")
    [rule] = list(events.list_rules(NamePrefix=f"lk{unique}-")["Rules"])
    assert rule["ScheduleExpression"] == "rate(5 minutes)"
    [target] = events.list_targets_by_rule(Rule=rule["Name"])["Targets"]
    assert target["Arn"].endswith(f":function:lk{unique}-tick")
    kinesis.delete_stream(StreamName=f"clicks_{unique}")


def test_triggers_the_cloud_cannot_run_are_refused(lake: lakekit.Lake, handlers: Any) -> None:
    functions = lake.functions
    functions.on_http("/orders", retries=0)(handlers.enrich)
    adapter = functions.adapter
    assert isinstance(adapter, LambdaFunctionRuntime)
    with pytest.raises(NotSupportedError, match="API Gateway"):
        adapter.deploy_triggers(functions.triggers())
    functions.unregister("enrich")
    functions.on_schedule("rate(10 seconds)", name="fast", retries=0)(handlers.on_upload)
    with pytest.raises(InvalidInputError, match="rate\\(1 minute\\)"):
        adapter.deploy_triggers(functions.triggers("fast"))
