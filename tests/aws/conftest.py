"""Fixtures of the AWS adapter tests: moto on 127.0.0.1 by default, a real account in live
mode (``LAKEKIT_TEST_AWS_LIVE=1``, see :mod:`servers.aws` and docs/clouds.md)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from servers.aws import BUCKET_ENV, LIVE_ENV, REGION_ENV, AwsTarget, empty_prefix, live_mode

_SLOW = ("concurrent", "from_processes", "across_processes", "while_overwrites", "never_see")
"""Name parts of the suites' cross-process race tests (several seconds each on moto)."""


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every test taking ``aws_target`` runs against moto (``[moto]``) and, in live mode,
    against your account too (``[live]``)."""
    if "aws_target" in metafunc.fixturenames:
        targets = ["moto", "live"] if live_mode() else ["moto"]
        metafunc.parametrize("aws_target", targets, indirect=True, scope="session")


@pytest.fixture(scope="session")
def aws_target(request: pytest.FixtureRequest) -> Iterator[AwsTarget]:
    """moto's S3 + Glue on 127.0.0.1 with a fresh bucket, or (``[live]``) a real account."""
    if request.param == "live":
        bucket = os.environ.get(BUCKET_ENV)
        region = os.environ.get(REGION_ENV) or os.environ.get("AWS_REGION")
        if not bucket or not region:
            pytest.fail(f"{LIVE_ENV}=1 needs {BUCKET_ENV} and {REGION_ENV} (an existing bucket)")
        target = AwsTarget(bucket=bucket, settings={"region": region}, live=True)
        yield target
        empty_prefix(target, f"lakekit-test/{target.run_id}/")
        return
    server = request.getfixturevalue("moto_server")
    target = AwsTarget(
        bucket=f"lakekit-{uuid.uuid4().hex[:12]}", settings=server.settings(), live=False
    )
    target.client("s3").create_bucket(Bucket=target.bucket)
    yield target


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test in tests/aws carries the ``aws`` marker; the suites' cross-process race
    tests also ``slow`` (they still run on CI)."""
    for item in items:
        if "/tests/aws/" in str(item.path).replace(os.sep, "/"):
            item.add_marker(pytest.mark.aws)
            if any(part in item.name for part in _SLOW):
                item.add_marker(pytest.mark.slow)
