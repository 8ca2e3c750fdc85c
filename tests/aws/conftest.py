"""Fixtures of the AWS adapter tests: moto on 127.0.0.1 by default, a real account in live
mode (``LAKEKIT_TEST_AWS_LIVE=1``, see :mod:`servers.aws` and docs/clouds.md)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from servers.aws import AwsTarget, live_mode, live_target, moto_target

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
        with live_target() as target:
            yield target
        return
    yield moto_target(request.getfixturevalue("moto_server"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test in tests/aws carries the ``aws`` marker; the suites' cross-process race
    tests also ``slow`` (they still run on CI)."""
    for item in items:
        if "/tests/aws/" in str(item.path).replace(os.sep, "/"):
            item.add_marker(pytest.mark.aws)
            if any(part in item.name for part in _SLOW):
                item.add_marker(pytest.mark.slow)
