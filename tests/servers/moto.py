"""moto in server mode on 127.0.0.1 for tests of the AWS adapters (S3, Glue, Kinesis, ...).

``running_moto()`` starts moto's WSGI server in its own process on a free port (see
``_moto_main.py`` for why requests are served one at a time) and yields a :class:`MotoServer`
with the endpoint and the fake credentials to use. Needs only ``pip install "moto[server]"``
(in the dev extra). Nothing is mocked in-process: boto3, s3fs and pyarrow talk HTTP to it.

State is per server process; tests isolate themselves with unique bucket/prefix/database names
(cheaper than resetting), and :meth:`MotoServer.reset` (``POST /moto-api/reset``) wipes
everything when a test needs a clean account.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["MotoServer", "MotoUnavailableError", "running_moto"]

ACCESS_KEY = "AKIDLAKEKITMOTO00000"
SECRET_KEY = "moto-secret-not-a-real-key"
REGION = "us-east-1"
_MAIN = Path(__file__).with_name("_moto_main.py")


class MotoUnavailableError(RuntimeError):
    """moto's server could not be started (the message says why and how to fix it)."""


@dataclass(frozen=True)
class MotoServer:
    """A running moto server and the settings that reach it."""

    endpoint_url: str
    region: str = REGION
    access_key_id: str = ACCESS_KEY
    secret_access_key: str = SECRET_KEY

    def settings(self) -> dict[str, Any]:
        """Connection settings for any lakekit AWS adapter (AwsSettings fields)."""
        return {
            "endpoint_url": self.endpoint_url,
            "region": self.region,
            "access_key_id": self.access_key_id,
            "secret_access_key": self.secret_access_key,
        }

    def client(self, service: str) -> Any:
        """A plain boto3 client of ``service`` on this server (for test setup and checks)."""
        import boto3

        return boto3.client(
            service,
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
        )

    def reset(self) -> None:
        """Forget every resource in every service (``POST /moto-api/reset``)."""
        request = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=30) as response:
            response.read()


@contextlib.contextmanager
def running_moto(*, startup_timeout: float = 60.0) -> Iterator[MotoServer]:
    """Start moto's server on 127.0.0.1 for the duration of the ``with`` block.

    Raises:
        MotoUnavailableError: moto[server] is not installed, or the server did not start.
    """
    try:
        import moto.moto_server.werkzeug_app  # noqa: F401 - checks the server extra is there
    except ImportError as exc:
        raise MotoUnavailableError(
            f"moto's server is not installed ({exc}); pip install -e '.[dev]' (moto[server])"
        ) from exc
    with tempfile.TemporaryFile(mode="w+") as log:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_CONFIG_FILE"):
            env.pop(name, None)
        process = subprocess.Popen(
            # -P: do not put tests/servers on sys.path (this module would shadow moto)
            [sys.executable, "-P", str(_MAIN)],
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            env=env,
        )
        try:
            port = _read_port(process, log, startup_timeout)
            server = MotoServer(endpoint_url=f"http://127.0.0.1:{port}")
            _wait_ready(server, process, log, startup_timeout)
            yield server
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            if process.stdout is not None:
                process.stdout.close()


def _read_port(process: subprocess.Popen[str], log: Any, timeout: float) -> int:
    import selectors

    assert process.stdout is not None
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if not selector.select(timeout=0.2):
                if process.poll() is not None:
                    break
                continue
            line = process.stdout.readline()
            if line.startswith("PORT "):
                return int(line.split()[1])
            if not line and process.poll() is not None:
                break
    finally:
        selector.close()
    raise MotoUnavailableError(f"moto's server did not start:\n{_tail(log)}")


def _wait_ready(
    server: MotoServer, process: subprocess.Popen[str], log: Any, timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{server.endpoint_url}/moto-api/", timeout=5) as response:
                response.read()
            return
        except OSError as exc:
            if process.poll() is not None or time.monotonic() > deadline:
                raise MotoUnavailableError(
                    f"moto's server is not answering ({exc}):\n{_tail(log)}"
                ) from exc
            time.sleep(0.05)


def _tail(log: Any, lines: int = 30) -> str:
    log.flush()
    log.seek(0)
    return "\n".join(log.read().splitlines()[-lines:])
