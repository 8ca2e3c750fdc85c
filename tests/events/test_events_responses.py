"""Portable results -> Lambda's response shapes: partial batch failures and API Gateway / function
URL responses."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import pytest

from lakekit.errors import InvalidInputError
from lakekit.events import (
    BatchResult,
    HttpResponse,
    parse_kinesis,
    parse_sqs,
    to_api_gateway_response,
    to_batch_item_failures,
)

Sample = Callable[[str], Any]


def test_batch_item_failures_name_failed_kinesis_records_by_sequence_number(
    sample: Sample,
) -> None:
    [batch] = parse_kinesis(sample("aws_kinesis"))
    response = to_batch_item_failures(BatchResult([batch.records[1]]))
    assert response == {
        "batchItemFailures": [
            {"itemIdentifier": "49590338271490256608559692540925702759324208523137515618"}
        ]
    }


def test_batch_item_failures_name_failed_sqs_messages_by_message_id(sample: Sample) -> None:
    [batch] = parse_sqs(sample("aws_sqs_messages"))
    assert isinstance(batch.records, tuple)
    response = to_batch_item_failures(BatchResult(reversed(batch.offsets)))
    assert [item["itemIdentifier"] for item in response["batchItemFailures"]] == [
        "2e1424d4-f796-459a-8184-9c92662be6da",
        "059f36b4-87a3-44ab-83d2-661975830a7d",
    ]


def test_no_failures_is_an_empty_list() -> None:
    assert to_batch_item_failures(None) == {"batchItemFailures": []}
    assert to_batch_item_failures(BatchResult()) == {"batchItemFailures": []}


def test_http_response_object() -> None:
    response = to_api_gateway_response(
        HttpResponse(status=201, body=b'{"ok":true}', headers={"Content-Type": "application/json"})
    )
    assert response == {
        "statusCode": 201,
        "headers": {"Content-Type": "application/json"},
        "body": '{"ok":true}',
        "isBase64Encoded": False,
    }


def test_plain_values() -> None:
    assert to_api_gateway_response(None) == {
        "statusCode": 204,
        "headers": {},
        "body": "",
        "isBase64Encoded": False,
    }
    text = to_api_gateway_response("héllo")
    assert (text["statusCode"], text["body"]) == (200, "héllo")
    assert text["headers"] == {"content-type": "text/plain; charset=utf-8"}
    data = to_api_gateway_response({"rows": [1, 2], "name": "ü"})
    assert json.loads(data["body"]) == {"rows": [1, 2], "name": "ü"}
    assert data["headers"] == {"content-type": "application/json"}
    assert to_api_gateway_response([])["body"] == "[]"


def test_binary_bodies_are_base64_encoded() -> None:
    raw = b"\x89PNG\r\n\x1a\n\x00\xff"
    response = to_api_gateway_response(
        HttpResponse(body=raw, headers={"content-type": "image/png"})
    )
    assert response["isBase64Encoded"] is True
    assert base64.b64decode(response["body"]) == raw
    assert response["headers"] == {"content-type": "image/png"}
    text_bytes = to_api_gateway_response(b"plain")
    assert (text_bytes["body"], text_bytes["isBase64Encoded"]) == ("plain", False)
    assert text_bytes["headers"] == {"content-type": "application/octet-stream"}


def test_http_response_with_json_body_gets_json_content_type() -> None:
    response = to_api_gateway_response(HttpResponse(status=404, body={"error": "not found"}))
    assert response["statusCode"] == 404
    assert json.loads(response["body"]) == {"error": "not found"}
    assert response["headers"] == {"content-type": "application/json"}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (HttpResponse(status=99), "HTTP response status must be an int from 100 to 599, got 99"),
        (
            HttpResponse(status=True),
            "HTTP response status must be an int from 100 to 599, got True",
        ),
        (HttpResponse(headers={"x-n": 1}), "HTTP response header 'x-n' must map a str to a str"),
        ({"when": object()}, "HTTP handler returned a dict that is not JSON-serialisable"),
        (float("nan"), "HTTP handler returned a float that is not JSON-serialisable"),
    ],
)
def test_bad_responses_are_refused(value: Any, message: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        to_api_gateway_response(value)
    assert str(info.value).startswith(message)
