"""HTTP triggers on the local runtime: a small stdlib HTTP server on 127.0.0.1.

* ``http.server.ThreadingHTTPServer``, one thread per connection, HTTP/1.0 (one request per
  connection), bound to a **loopback address only** (``127.0.0.1`` by default, ``::1`` or
  ``localhost``); ``port=0`` picks a free port, reported by :attr:`HttpServer.url`.
* Routes by exact path (percent-decoded, no query string) and method: an unknown path is
  ``404``, a known path with another method ``405`` (with ``Allow``).
* The request becomes an :class:`~lakekit.events.Http` event (header names lower-cased, the
  last value of a repeated query parameter); the function runs **synchronously, once, without
  retries** (as behind API Gateway or a function URL) with its timeout and concurrency limit.
* The handler's return value becomes the response: an
  :class:`~lakekit.events.HttpResponse` as given; ``None`` -> ``204``; ``bytes`` ->
  ``200 application/octet-stream``; ``str`` -> ``200 text/plain; charset=utf-8``; anything
  else -> ``200`` JSON.
* Errors never leak: a handler that raises ``InvalidInputError`` gives ``400``, a timeout
  ``504``, any other failure ``500``, each with a generic JSON body
  ``{"error": ..., "request_id": ...}``; the log line names the request id and the error type
  (the traceback is logged at DEBUG level). A body larger than ``max_body_bytes`` is ``413``
  (a body at most 1 MiB over the limit is read and dropped first, so that the client sees the
  answer), a chunked body without ``Content-Length`` ``411`` (read and dropped first, up to
  1 MiB).
* Stopping drains: requests being handled finish before :meth:`HttpServer.stop` returns.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import socket
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from lakekit.errors import (
    ConfigurationError,
    FunctionError,
    FunctionTimeoutError,
    InvalidInputError,
)
from lakekit.events import Http, HttpResponse
from lakekit.triggers.model import HttpTrigger, TriggerBinding

__all__ = ["DEFAULT_MAX_BODY_BYTES", "HttpServer", "render_response"]

DEFAULT_MAX_BODY_BYTES = 6 * 1024 * 1024
"""Lambda's synchronous payload limit."""
_LOOPBACK_NAMES = {"localhost": "127.0.0.1"}
_REQUEST_TIMEOUT = 30.0  # seconds a client may take to send its request
_DISCARD_BYTES = 1024 * 1024  # a body this much over the limit is read and dropped before 413
_log = logging.getLogger("lakekit.triggers.http")

Invoke = Callable[[str, Http], Any]
"""``invoke(function, event)``: run the function once and return its result."""


def render_response(result: Any) -> tuple[int, dict[str, str], bytes]:
    """A handler's return value as ``(status, headers, body)`` (see the module docstring).

    Raises:
        InvalidInputError: the value cannot be rendered (not JSON-able, a bad status or a
            header with a line break).
    """
    status = 200
    headers: dict[str, str] = {}
    body: Any = result
    if isinstance(result, HttpResponse):
        status = result.status
        body = result.body
        if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
            raise InvalidInputError(f"HttpResponse.status must be 100-599, got {status!r}")
        for name, value in dict(result.headers).items():
            if not isinstance(name, str) or not isinstance(value, str):
                raise InvalidInputError("HttpResponse headers must be str: str")
            if any(c in name + value for c in "\r\n\x00") or not name or ":" in name:
                raise InvalidInputError(f"invalid HttpResponse header {name!r}")
            headers[name] = value
    elif result is None:
        return 204, {}, b""
    data: bytes
    if isinstance(body, bytes | bytearray | memoryview):
        data = bytes(body)
        content_type = "application/octet-stream"
    elif isinstance(body, str):
        data = body.encode("utf-8")
        content_type = "text/plain; charset=utf-8"
    else:
        try:
            data = json.dumps(body, allow_nan=False, separators=(",", ":")).encode("utf-8")
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(f"the handler's result is not JSON-able: {exc}") from exc
        content_type = "application/json"
    if not any(name.lower() == "content-type" for name in headers) and (data or status != 204):
        headers["Content-Type"] = content_type
    return status, headers, data


class _Server(ThreadingHTTPServer):
    daemon_threads = False  # stop() joins the request threads: in-flight requests finish
    block_on_close = True


class HttpServer:
    """Serves HTTP triggers (see the module docstring).

    Args:
        bindings: the HTTP triggers to route.
        invoke: runs a function once and returns its result.
        host: a loopback address (``127.0.0.1``, ``::1`` or ``localhost``).
        port: the port; 0 picks a free one.
        max_body_bytes: larger request bodies are refused with 413.

    Raises:
        ConfigurationError: ``host`` is not a loopback address, or the port is taken.
    """

    def __init__(
        self,
        bindings: Sequence[TriggerBinding],
        invoke: Invoke,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        self._routes: dict[str, dict[str, str]] = {}
        for binding in bindings:
            assert isinstance(binding.trigger, HttpTrigger)
            methods = self._routes.setdefault(binding.trigger.path, {})
            for method in binding.trigger.methods:
                methods[method] = binding.function
        self._invoke = invoke
        self._host = _loopback(host)
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ConfigurationError(f"HTTP port must be 0-65535, got {port!r}")
        self._port = port
        if max_body_bytes < 0:
            raise ConfigurationError("max_body_bytes must be >= 0")
        self._max_body = max_body_bytes
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"HttpServer({self.url or 'stopped'}, routes={sorted(self._routes)})"

    @property
    def url(self) -> str | None:
        """``http://127.0.0.1:PORT`` while running, else None."""
        if self._server is None:
            return None
        port = self._server.server_address[1]
        shown = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{shown}:{port}"

    def start(self) -> None:
        """Bind and serve on a background thread.

        Raises:
            ConfigurationError: the address is taken or cannot be bound.
        """
        handler = _handler_class(self._routes, self._invoke, self._max_body)
        server_class: type[_Server] = _Server
        if ":" in self._host:
            server_class = type("_Server6", (_Server,), {"address_family": socket.AF_INET6})
        try:
            self._server = server_class((self._host, self._port), handler)
        except OSError as exc:
            raise ConfigurationError(
                f"cannot serve HTTP on {self._host}:{self._port}: {exc.strerror or exc}; pick "
                "another port (0 = any free port)"
            ) from exc
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="lakekit-triggers-http",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting requests and wait for those being handled. Idempotent."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()  # joins the request threads
        if self._thread is not None:
            self._thread.join()
        self._server = None
        self._thread = None


def _loopback(host: str) -> str:
    host = _LOOPBACK_NAMES.get(host, host)
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ConfigurationError(
            f"the local HTTP server binds loopback addresses only (127.0.0.1, ::1), not "
            f"{host!r}: it runs your handlers with your credentials and no authentication"
        )
    return host


def _handler_class(
    routes: Mapping[str, Mapping[str, str]], invoke: Invoke, max_body: int
) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "lakekit"
        sys_version = ""
        timeout = _REQUEST_TIMEOUT

        def do_GET(self) -> None:
            self._handle()

        def do_HEAD(self) -> None:
            self._handle()

        def do_POST(self) -> None:
            self._handle()

        def do_PUT(self) -> None:
            self._handle()

        def do_PATCH(self) -> None:
            self._handle()

        def do_DELETE(self) -> None:
            self._handle()

        def do_OPTIONS(self) -> None:
            self._handle()

        def log_message(self, format: str, *args: Any) -> None:
            _log.debug("%s - " + format, self.address_string(), *args)

        def _handle(self) -> None:
            request_id = uuid.uuid4().hex
            split = urlsplit(self.path)
            path = unquote(split.path)
            methods = routes.get(path)
            if methods is None:
                self._send_error(HTTPStatus.NOT_FOUND, "not found", request_id)
                return
            function = methods.get(self.command)
            if function is None:
                allow = ", ".join(sorted(methods))
                self._send_error(
                    HTTPStatus.METHOD_NOT_ALLOWED, "method not allowed", request_id, allow=allow
                )
                return
            body = self._read_body(request_id)
            if body is None:
                return
            event = Http(
                id=request_id,
                method=self.command,
                path=path,
                headers={name.lower(): value for name, value in self.headers.items()},
                query=dict(parse_qsl(split.query, keep_blank_values=True)),
                body=body,
            )
            try:
                result = invoke(function, event)
                status, headers, data = render_response(result)
            except FunctionTimeoutError:
                self._fail(HTTPStatus.GATEWAY_TIMEOUT, "timeout", request_id, function, None)
                return
            except FunctionError as exc:
                cause = exc.__cause__
                if isinstance(cause, InvalidInputError):
                    self._fail(HTTPStatus.BAD_REQUEST, "bad request", request_id, function, cause)
                else:
                    self._fail(
                        HTTPStatus.INTERNAL_SERVER_ERROR, "internal error", request_id, function,
                        cause or exc,
                    )  # fmt: skip
                return
            except Exception as exc:  # a bad return value, the runtime closed, ...
                self._fail(
                    HTTPStatus.INTERNAL_SERVER_ERROR, "internal error", request_id, function, exc
                )
                return
            self._send(status, headers, data, request_id)

        def _read_body(self, request_id: str) -> bytes | None:
            if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                self.close_connection = True
                # Read and drop a moderate chunked body before answering, for the same reason
                # as an oversized one below: a client still sending its last chunk to a
                # closed socket gets a reset instead of the 411.
                self._discard_chunked(_DISCARD_BYTES)
                self._send_error(HTTPStatus.LENGTH_REQUIRED, "length required", request_id)
                return None
            raw = self.headers.get("Content-Length")
            if raw is None:
                return b""
            try:
                length = int(raw)
                if length < 0:
                    raise ValueError(raw)
            except ValueError:
                self._send_error(HTTPStatus.BAD_REQUEST, "bad content-length", request_id)
                return None
            if length > max_body:
                self.close_connection = True  # the unread body must not be parsed as a request
                if length - max_body <= _DISCARD_BYTES:
                    # Read and drop a moderate excess: closing a socket with unread data makes
                    # the kernel reset the connection, and the client would never see the 413.
                    remaining = length
                    while remaining > 0:
                        chunk = self.rfile.read(min(remaining, 64 * 1024))
                        if not chunk:
                            break
                        remaining -= len(chunk)
                self._send_error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "body too large", request_id)
                return None
            return self.rfile.read(length)

        def _discard_chunked(self, limit: int) -> None:
            """Read a chunked body up to its last chunk and trailers, or stop at ``limit`` bytes
            or at anything that is not chunked encoding (the connection closes either way)."""
            budget = limit
            in_trailers = False
            while budget > 0:
                line = self.rfile.readline(1024)
                budget -= len(line)
                if in_trailers:
                    if line.strip() == b"":  # the blank line after the trailers, or EOF
                        return
                    continue
                size_text = line.split(b";", 1)[0].strip()
                if not size_text.isalnum():
                    return  # empty, signed or otherwise not a chunk size
                try:
                    size = int(size_text, 16)
                except ValueError:
                    return
                if size == 0:
                    in_trailers = True
                elif size + 2 > budget or len(self.rfile.read(size + 2)) < size + 2:
                    return
                else:
                    budget -= size + 2

        def _fail(
            self,
            status: HTTPStatus,
            message: str,
            request_id: str,
            function: str,
            error: BaseException | None,
        ) -> None:
            kind = "FunctionTimeoutError" if error is None else type(error).__name__
            _log.error(
                "HTTP %s %s -> %d: function %s failed with %s (request %s)",
                self.command,
                urlsplit(self.path).path,
                status.value,
                function,
                kind,
                request_id,
            )
            if error is not None:
                _log.debug("request %s failed", request_id, exc_info=error)
            self._send_error(status, message, request_id)

        def _send_error(
            self, status: HTTPStatus, message: str, request_id: str, *, allow: str | None = None
        ) -> None:
            body = json.dumps({"error": message, "request_id": request_id}).encode("utf-8")
            headers = {"Content-Type": "application/json"}
            if allow is not None:
                headers["Allow"] = allow
            self._send(status.value, headers, body, request_id)

        def _send(self, status: int, headers: Mapping[str, str], body: bytes, rid: str) -> None:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("X-Request-Id", rid)
            if status < 200 or status in (204, 304):  # these never carry a body
                self.end_headers()
                return
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD" and body:
                self.wfile.write(body)

    return Handler
