"""Shared helpers for the trigger tests: a lake per test, servers that are always stopped, and
a check that no trigger thread outlives its test."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from trigger_helpers import FAST

import lakekit
from lakekit.lake import Lake
from lakekit.triggers.server import LocalServer


def _trigger_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("lakekit-triggers")]


@pytest.fixture(autouse=True)
def _no_leftover_trigger_threads() -> Iterator[None]:
    yield
    deadline = time.monotonic() + 10.0
    while _trigger_threads() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not _trigger_threads(), f"trigger threads left running: {_trigger_threads()}"


@pytest.fixture
def lake(tmp_path: Path) -> Iterator[Lake]:
    with lakekit.connect(f"local://{tmp_path / 'lake'}", store={"fsync": False}) as opened:
        yield opened


@pytest.fixture
def serve() -> Iterator[Callable[..., LocalServer]]:
    """``serve(lake, **settings)``: a started LocalServer with fast settings, stopped after
    the test even if it fails."""
    started: list[LocalServer] = []

    def start(lake: Lake, **settings: Any) -> LocalServer:
        server = LocalServer(lake, **{**FAST, **settings})
        server.start()
        started.append(server)
        return server

    yield start
    for server in reversed(started):
        server.stop(timeout=10.0)
