"""Every test must leave no runtime thread behind: workers, timer threads and timed-out
handlers all end once a test has closed its runtime and released its handlers."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest


def _runtime_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("lakekit-f")]


@pytest.fixture(autouse=True)
def _no_leftover_runtime_threads() -> Iterator[None]:
    yield
    deadline = time.monotonic() + 10.0
    while _runtime_threads() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not _runtime_threads(), f"threads left running: {_runtime_threads()}"
