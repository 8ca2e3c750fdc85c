"""HTTP triggers: a real stdlib server on 127.0.0.1, called with http.client / urllib:
routing, response rendering, errors that never leak, limits, no retries."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import pytest

from lakekit.errors import ConfigurationError, InvalidInputError
from lakekit.events import Http, HttpResponse
from lakekit.interfaces.function_runtime import Context
from lakekit.lake import Lake
from lakekit.triggers.http_server import render_response
from lakekit.triggers.server import LocalServer


def request(
    server: LocalServer,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    assert server.url is not None
    parts = urlsplit(server.url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def test_a_route_gets_the_request_as_an_http_event_and_returns_json(
    lake: Lake, serve: Callable[..., LocalServer]
) -> None:
    seen: list[Http] = []

    @lake.functions.on_http("/orders/new", methods=["POST"])
    def create(event: Http, context: Context) -> dict[str, Any]:
        seen.append(event)
        assert context.lake is lake
        return {"created": event.json()["id"], "tag": event.query["tag"]}

    server = serve(lake)
    assert server.url is not None
    assert server.url.startswith("http://127.0.0.1:")
    status, headers, body = request(
        server,
        "POST",
        "/orders/new?tag=a&tag=b&empty=",
        body=b'{"id": 7}',
        headers={"Content-Type": "application/json", "X-Trace": "t-1"},
    )
    assert status == 200
    assert headers["Content-Type"] == "application/json"
    assert json.loads(body) == {"created": 7, "tag": "b"}
    (event,) = seen
    assert (event.method, event.path) == ("POST", "/orders/new")
    assert event.query == {"tag": "b", "empty": ""}
    assert event.headers["x-trace"] == "t-1"
    assert event.body == b'{"id": 7}'
    assert headers["X-Request-Id"] == event.id


def test_urllib_reaches_a_get_route(lake: Lake, serve: Callable[..., LocalServer]) -> None:
    lake.functions.on_http("/health", methods=["GET"], name="health")(lambda e, c: "ok")
    server = serve(lake)
    with urllib.request.urlopen(f"{server.url}/health", timeout=30) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
        assert response.read() == b"ok"


@pytest.mark.parametrize(
    ("result", "status", "content_type", "body"),
    [
        (None, 204, None, b""),
        (b"\x00\x01", 200, "application/octet-stream", b"\x00\x01"),
        ("héllo", 200, "text/plain; charset=utf-8", "héllo".encode()),
        ([1, 2], 200, "application/json", b"[1,2]"),
        (HttpResponse(201, {"id": 1}, {"Location": "/x/1"}), 201, "application/json", b'{"id":1}'),
        (HttpResponse(302, b"", {"Location": "/y"}), 302, "application/octet-stream", b""),
        (
            HttpResponse(200, "<p>hi</p>", {"content-type": "text/html"}),
            200,
            "text/html",
            b"<p>hi</p>",
        ),
    ],
)
def test_return_values_become_responses(
    lake: Lake,
    serve: Callable[..., LocalServer],
    result: Any,
    status: int,
    content_type: str | None,
    body: bytes,
) -> None:
    lake.functions.on_http("/r", methods=["GET"], name="r")(lambda e, c: result)
    server = serve(lake)
    got_status, headers, got_body = request(server, "GET", "/r")
    assert got_status == status
    assert got_body == body
    lowered = {k.lower(): v for k, v in headers.items()}
    assert lowered.get("content-type") == content_type
    if isinstance(result, HttpResponse):
        for name, value in result.headers.items():
            assert lowered[name.lower()] == value


def test_unknown_paths_are_404_and_other_methods_405(
    lake: Lake, serve: Callable[..., LocalServer]
) -> None:
    lake.functions.on_http("/only-get", methods=["GET", "HEAD"], name="g")(lambda e, c: "x")
    server = serve(lake)
    status, _, body = request(server, "GET", "/nope")
    assert status == 404
    assert json.loads(body)["error"] == "not found"
    status, headers, _ = request(server, "DELETE", "/only-get")
    assert status == 405
    assert headers["Allow"] == "GET, HEAD"
    status, headers, body = request(server, "HEAD", "/only-get")
    assert (status, body, headers["Content-Length"]) == (200, b"", "1")


def test_a_failing_handler_gives_a_generic_500_and_is_logged_without_leaking(
    lake: Lake, serve: Callable[..., LocalServer], caplog: pytest.LogCaptureFixture
) -> None:
    attempts: list[int] = []

    @lake.functions.on_http("/boom", methods=["GET"], retries=3)
    def boom(event: Http, context: Context) -> None:
        attempts.append(context.attempt)
        raise RuntimeError("password=hunter2 at /srv/secret/path")

    server = serve(lake)
    with caplog.at_level("ERROR", logger="lakekit.triggers.http"):
        status, headers, body = request(server, "GET", "/boom")
    assert status == 500
    payload = json.loads(body)
    assert payload == {"error": "internal error", "request_id": headers["X-Request-Id"]}
    assert b"hunter2" not in body and b"Traceback" not in body
    assert attempts == [1], "HTTP requests are never retried"
    (line,) = [r.getMessage() for r in caplog.records if r.name == "lakekit.triggers.http"]
    assert "RuntimeError" in line and payload["request_id"] in line
    assert "hunter2" not in line


def test_invalid_input_is_400_and_a_timeout_504(
    lake: Lake, serve: Callable[..., LocalServer]
) -> None:
    @lake.functions.on_http("/bad", methods=["POST"])
    def bad(event: Http, context: Context) -> None:
        raise InvalidInputError("field 'x' is missing (secret=abc)")

    @lake.functions.on_http("/slow", methods=["GET"], timeout=0.2)
    def slow(event: Http, context: Context) -> None:
        context.cancel_event.wait(5)

    server = serve(lake)
    status, _, body = request(server, "POST", "/bad", body=b"{}")
    assert status == 400
    assert json.loads(body)["error"] == "bad request"
    assert b"secret" not in body
    started = time.monotonic()
    status, _, body = request(server, "GET", "/slow")
    assert status == 504
    assert json.loads(body)["error"] == "timeout"
    assert time.monotonic() - started < 3


def test_a_result_that_is_not_json_is_a_500(lake: Lake, serve: Callable[..., LocalServer]) -> None:
    lake.functions.on_http("/odd", methods=["GET"], name="odd")(lambda e, c: object())
    server = serve(lake)
    status, _, body = request(server, "GET", "/odd")
    assert status == 500
    assert json.loads(body)["error"] == "internal error"


def test_bodies_over_the_limit_are_413_and_chunked_bodies_411(
    lake: Lake, serve: Callable[..., LocalServer]
) -> None:
    seen: list[int] = []
    lake.functions.on_http("/upload", methods=["POST"], name="upload")(
        lambda e, c: seen.append(len(e.body))
    )
    server = serve(lake, max_body_bytes=1000)
    assert request(server, "POST", "/upload", body=b"x" * 1000)[0] == 204
    status, _, body = request(server, "POST", "/upload", body=b"x" * 1001)
    assert status == 413
    assert json.loads(body)["error"] == "body too large"
    assert server.url is not None
    parts = urlsplit(server.url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    connection.request("POST", "/upload", body=iter([b"abc"]), encode_chunked=True)
    assert connection.getresponse().status == 411
    connection.close()
    assert seen == [1000]


def test_a_chunked_body_sent_after_a_pause_still_gets_its_411(
    lake: Lake, serve: Callable[..., LocalServer]
) -> None:
    # The server reads the chunked body before it answers and closes: answering at once would
    # make the body, arriving later, reset the connection and lose the 411 on the client.
    lake.functions.on_http("/upload", methods=["POST"], name="upload")(lambda e, c: None)
    server = serve(lake)
    assert server.url is not None
    parts = urlsplit(server.url)
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as client:
        client.sendall(b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        time.sleep(0.3)
        client.sendall(b"3\r\nabc\r\n")
        time.sleep(0.3)
        client.sendall(b"0\r\n\r\n")
        response = b""
        while chunk := client.recv(65536):
            response += chunk
    assert response.startswith(b"HTTP/1.0 411")
    assert b"length required" in response


@pytest.mark.parametrize(
    "body_start",
    [b"200000\r\n", b"-1\r\n", b"zz\r\n"],
    ids=["a 2 MiB chunk", "a negative size", "not a size"],
)
def test_a_chunked_body_is_read_at_most_1_mib_before_its_411(
    lake: Lake, serve: Callable[..., LocalServer], body_start: bytes
) -> None:
    # The server must answer without waiting for the rest of the body (which never comes).
    lake.functions.on_http("/upload", methods=["POST"], name="upload")(lambda e, c: None)
    server = serve(lake)
    assert server.url is not None
    parts = urlsplit(server.url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as client:
        client.sendall(
            b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + body_start
        )
        response = b""
        while chunk := client.recv(65536):
            response += chunk
    assert response.startswith(b"HTTP/1.0 411")


def test_requests_in_flight_finish_when_the_server_stops(lake: Lake) -> None:
    entered = threading.Event()

    @lake.functions.on_http("/slow", methods=["GET"])
    def slow(event: Http, context: Context) -> str:
        entered.set()
        time.sleep(0.3)
        return "done"

    server = LocalServer(lake).start()
    results: list[Any] = []
    client = threading.Thread(target=lambda: results.append(request(server, "GET", "/slow")))
    client.start()
    assert entered.wait(10)
    server.stop()
    client.join(10)
    assert results[0][0] == 200
    assert results[0][2] == b"done"
    assert server.url is None


def test_only_loopback_addresses_are_served_and_a_taken_port_is_a_clear_error(
    lake: Lake,
) -> None:
    lake.functions.on_http("/x", methods=["GET"], name="x")(lambda e, c: None)
    with pytest.raises(ConfigurationError, match="loopback"):
        LocalServer(lake, http_host="0.0.0.0").start()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigurationError, match=f"127.0.0.1:{port}"):
            LocalServer(lake, http_port=port).start()


def test_ipv6_loopback_works_where_the_machine_has_it(lake: Lake) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    lake.functions.on_http("/x", methods=["GET"], name="x")(lambda e, c: "six")
    try:
        server = LocalServer(lake, http_host="::1").start()
    except ConfigurationError as exc:
        pytest.skip(f"::1 cannot be bound here: {exc}")
    try:
        assert server.url is not None
        assert server.url.startswith("http://[::1]:")
        with urllib.request.urlopen(f"{server.url}/x", timeout=30) as response:
            assert response.read() == b"six"
    finally:
        server.stop()


@pytest.mark.parametrize(
    "bad",
    [
        HttpResponse(700),
        HttpResponse(200, b"", {"X-Evil": "a\r\nSet-Cookie: x=1"}),
        HttpResponse(200, {"x": float("nan")}),
    ],
)
def test_unrenderable_responses_are_refused(bad: HttpResponse) -> None:
    with pytest.raises(InvalidInputError):
        render_response(bad)


def test_http_errors_reach_urllib_as_http_errors(
    lake: Lake, serve: Callable[..., LocalServer]
) -> None:
    lake.functions.on_http("/x", methods=["GET"], name="x")(lambda e, c: "x")
    server = serve(lake)
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(f"{server.url}/missing", timeout=30)
    assert info.value.code == 404
    info.value.close()
