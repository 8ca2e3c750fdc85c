"""Run moto's server on 127.0.0.1 with one request at a time; print ``PORT <n>`` when ready.

Started by :mod:`servers.moto` as ``python _moto_main.py`` (its own process, so the server does
not compete with the tests for the GIL). It is moto's own WSGI application
(``DomainDispatcherApplication(create_backend_app)``, what ``moto_server`` and
``ThreadedMotoServer`` serve) with one change: a lock around each request.

Why: moto 5.2 evaluates S3's ``If-None-Match``/``If-Match`` and Glue's create-if-absent as a
check followed by a separate write, with no lock between them, so two concurrent requests can
both pass the check. Real S3 and Glue decide those conditions atomically. Serialising requests
makes moto keep the same promise, so the conformance suite's race tests exercise lakekit's
protocol rather than a race inside the emulator. Connections are still served by threads.

One response is corrected: moto 5.2 names the root element of CompleteMultipartUpload's
response ``CompleteMultipartUploadResponse`` where S3 sends ``CompleteMultipartUploadResult``;
boto3 does not care, but pyarrow's S3 filesystem (which the table writer uses) rejects the
upload as failed. The element is renamed, nothing else changes.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable, Iterable
from typing import Any

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import make_server

_MPU_WRONG = b"CompleteMultipartUploadResponse"
_MPU_RIGHT = b"CompleteMultipartUploadResult"


class _OneAtATime:
    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self._app = app
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        captured: list[Any] = []

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            captured[:] = [status, headers, exc_info]
            return lambda data: None

        with self._lock:
            body = b"".join(self._app(environ, capture))
        status, headers, exc_info = captured
        if _MPU_WRONG in body[:200] and environ.get("REQUEST_METHOD") == "POST":
            body = body.replace(_MPU_WRONG, _MPU_RIGHT)
            headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
            headers.append(("Content-Length", str(len(body))))
        start_response(status, headers, exc_info)
        return [body]


def main() -> None:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
    host = "127.0.0.1"
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    app = _OneAtATime(DomainDispatcherApplication(create_backend_app))
    server = make_server(host, port, app, threaded=True)
    print(f"PORT {server.server_port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
