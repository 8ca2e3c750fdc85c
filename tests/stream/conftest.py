"""Fixtures of the LocalStream tests: streams under the test's tmp_path, closed afterwards."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from lakekit.adapters.local.stream import LocalStream
from lakekit.interfaces.stream import Stream

OpenStream = Callable[..., Stream]


@pytest.fixture
def open_stream(tmp_path: Path) -> Iterator[OpenStream]:
    """Open ``LocalStream("events", directory=tmp_path, **settings)``; closed after the test."""
    opened: list[Stream] = []

    def open_one(name: str = "events", **settings: Any) -> Stream:
        opened.append(Stream(LocalStream(name, directory=tmp_path, **settings)))
        return opened[-1]

    yield open_one
    for stream in opened:
        stream.close()


@pytest.fixture
def segments(tmp_path: Path) -> Callable[..., list[Path]]:
    """The segment files of a partition of stream ``events``, oldest first."""

    def listing(partition: int, name: str = "events") -> list[Path]:
        return sorted((tmp_path / name / f"p{partition}").glob("*.log"))

    return listing
