"""Fixtures of the Athena, Kinesis and Lambda adapter tests.

Every test runs against moto in server mode on 127.0.0.1 (the session ``moto_server``), and
again against a real account when ``LAKEKIT_TEST_AWS_LIVE=1`` (see :mod:`servers.aws` and
docs/clouds.md, "Athena, Kinesis and Lambda"); the live half is skipped otherwise, with the
reason. Names are unique per test run (``lkt-<run id>-...``), and what a test creates it
deletes.
"""

from __future__ import annotations

import json
import os
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from servers.aws import (
    BUCKET_ENV,
    LIVE_ENV,
    REGION_ENV,
    AwsTarget,
    live_mode,
    live_target,
    moto_target,
)


@pytest.fixture(scope="session", params=["moto", "live"])
def aws_target(request: pytest.FixtureRequest) -> Iterator[AwsTarget]:
    """moto on 127.0.0.1 (a fresh bucket), or a real account with ``LAKEKIT_TEST_AWS_LIVE=1``."""
    if request.param == "live":
        if not live_mode():
            pytest.skip(
                f"live AWS tests are off: set {LIVE_ENV}=1, {BUCKET_ENV} and {REGION_ENV} "
                "(see docs/clouds.md) to run them against your own account"
            )
        with live_target() as target:
            yield target
        return
    target = moto_target(request.getfixturevalue("moto_server"))
    _moto_api(target, "/moto-api/config", {"lambda": {"use_docker": False}})
    yield target


def _moto_api(target: AwsTarget, path: str, body: dict[str, Any]) -> None:
    request = urllib.request.Request(
        target.settings["endpoint_url"] + path,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        response.read()


@pytest.fixture
def moto_api(aws_target: AwsTarget) -> Any:
    """POST to moto's own API (canned Athena results, state transitions); moto only."""
    if aws_target.live:
        pytest.skip("needs moto's /moto-api (emulator only)")

    def post(path: str, body: dict[str, Any]) -> None:
        _moto_api(aws_target, path, body)

    return post


@pytest.fixture
def unique() -> str:
    """A short name unique to the test, for streams, functions, tables, ..."""
    return uuid.uuid4().hex[:10]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test in tests/aws_compute carries the ``aws`` marker."""
    for item in items:
        if "/tests/aws_compute/" in str(item.path).replace(os.sep, "/"):
            item.add_marker(pytest.mark.aws)
