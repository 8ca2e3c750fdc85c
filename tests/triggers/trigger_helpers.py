"""Helpers shared by the trigger tests (imported by name: pytest puts this folder on the
path)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

FAST = {"scan_interval": 0.05, "settle": 0.1, "stream_poll_interval": 0.02}
"""Server settings that keep tests quick."""


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.01) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout}s: {predicate}")
        time.sleep(interval)
