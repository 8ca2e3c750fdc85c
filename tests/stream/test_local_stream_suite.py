"""LocalStream passes the shipped Stream conformance suite."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

from lakekit.adapters.local.stream import LocalStream
from lakekit.testing import StreamSuite
from lakekit.testing.stream_suite import StreamFactory


class TestLocalStream(StreamSuite):
    @pytest.fixture
    def stream_factory(self, tmp_path: Path) -> StreamFactory:
        return functools.partial(LocalStream, directory=tmp_path / "streams")

    @pytest.fixture
    def retention_stream_factory(self, tmp_path: Path) -> StreamFactory:
        return functools.partial(
            LocalStream,
            directory=tmp_path / "retained",
            segment_bytes=4096,
            retention_bytes=16384,
        )
