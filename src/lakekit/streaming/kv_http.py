"""A small JSON endpoint for a :class:`~lakekit.streaming.sinks.KeyValueView` (stdlib only).

The server binds **127.0.0.1 only**, answers ``GET`` and ``HEAD`` and nothing else (405), and
serves from a daemon thread (one thread per request), reading the view under its lock:

====================== ====================================================================
``GET /keys/<key>``    the latest result for ``<key>`` (URL-encoded), or 404 ``{"error": ...}``
``GET /all``           ``{"<key>": result, ...}`` for every key
``GET /keys``          ``["<key>", ...]`` sorted
``GET /``              ``{"view": name, "keys": count, "endpoints": [...]}``
====================== ====================================================================

Responses are ``application/json; charset=utf-8`` with ``Cache-Control: no-store``.
"""

from __future__ import annotations

import json
import logging
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from lakekit.errors import ConfigurationError

if TYPE_CHECKING:
    from lakekit.streaming.sinks import KeyValueView

__all__ = ["HOST", "start_server"]

HOST = "127.0.0.1"
_logger = logging.getLogger(__name__)


class _ViewServer(ThreadingHTTPServer):
    daemon_threads = True
    view: KeyValueView


class _Handler(BaseHTTPRequestHandler):
    server: _ViewServer
    server_version = "lakekit-kv/1"

    def do_GET(self) -> None:
        self._answer(include_body=True)

    def do_HEAD(self) -> None:
        self._answer(include_body=False)

    def _answer(self, *, include_body: bool) -> None:
        view = self.server.view
        path = urlsplit(self.path).path
        status: HTTPStatus = HTTPStatus.OK
        body: Any
        if path in ("/", ""):
            body = {"view": view.name, "keys": len(view), "endpoints": ["/keys/<key>", "/all"]}
        elif path == "/all":
            body = view.snapshot()
        elif path in ("/keys", "/keys/"):
            body = view.keys()
        elif path.startswith("/keys/"):
            key = unquote(path[len("/keys/") :])
            body = view.get(key)
            if body is None:
                status, body = HTTPStatus.NOT_FOUND, {"error": f"no key {key!r} in this view"}
        else:
            status = HTTPStatus.NOT_FOUND
            body = {"error": f"no such endpoint {path!r}: use /keys/<key>, /keys or /all"}
        self._send(status, body, include_body=include_body)

    def _refuse(self) -> None:
        self._send(
            HTTPStatus.METHOD_NOT_ALLOWED,
            {"error": f"{self.command} is not allowed: this view is read-only (GET)"},
            include_body=True,
            extra={"Allow": "GET, HEAD"},
        )

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _refuse  # noqa: N815 - stdlib names

    def _send(
        self,
        status: HTTPStatus,
        body: Any,
        *,
        include_body: bool,
        extra: dict[str, str] | None = None,
    ) -> None:
        data = json.dumps(body, separators=(",", ":"), allow_nan=False, default=str).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if include_body:
            self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        _logger.debug("%s %s", self.address_string(), format % args)


def start_server(view: KeyValueView, port: int) -> tuple[ThreadingHTTPServer, threading.Thread]:
    """Serve ``view`` on ``127.0.0.1:port`` (0: a free port) from a daemon thread.

    Raises:
        ConfigurationError: an invalid or unavailable port.
    """
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ConfigurationError(f"port must be an int in 0..65535, got {port!r}")
    try:
        server = _ViewServer((HOST, port), _Handler)
    except OSError as exc:
        raise ConfigurationError(
            f"cannot serve view {view.name!r} on {HOST}:{port}: {exc}"
        ) from exc
    server.view = view
    thread = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": 0.1},
        name=f"lakekit-kv-{view.name}",
        daemon=True,
    )
    thread.start()
    return server, thread
