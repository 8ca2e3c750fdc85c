"""The ranged, seekable read every object store's ``open(key, start, end)`` is built on
(lakekit.adapters._range_reader): one set of seek/tell rules for the local and S3 stores."""

from __future__ import annotations

import io

import pytest

from lakekit.adapters._range_reader import RangeReader

DATA = bytes(range(256)) * 4


class _Bytes(RangeReader):
    """A range of an in-memory object, read at most ``chunk`` bytes per call (like a socket)."""

    def __init__(self, start: int, end: int, chunk: int = 7) -> None:
        super().__init__(start, end)
        self.chunk = chunk
        self.reads: list[int] = []

    def _read_at(self, view: memoryview, position: int) -> int:
        data = DATA[position : position + min(len(view), self.chunk)]
        view[: len(data)] = data
        self.reads.append(position)
        return len(data)


def test_reads_stay_inside_the_range_and_positions_are_relative_to_its_start() -> None:
    with io.BufferedReader(_Bytes(100, 300), buffer_size=16) as stream:
        assert stream.read(5) == DATA[100:105]
        assert stream.tell() == 5
        assert stream.read() == DATA[105:300]
        assert stream.read() == b""


def test_seek_from_start_current_and_end() -> None:
    raw = _Bytes(10, 50)
    assert raw.seek(5) == 5
    assert raw.read(3) == DATA[15:18]
    assert raw.seek(2, io.SEEK_CUR) == 10
    assert raw.read(1) == DATA[20:21]
    assert raw.seek(-4, io.SEEK_END) == 36
    assert raw.readall() == DATA[46:50]
    assert raw.seek(100) == 100  # past the end: reads nothing, like a file
    assert raw.read(10) == b""
    assert raw.reads[-1] == 46  # no read was attempted past the range


def test_bad_seeks_are_refused() -> None:
    raw = _Bytes(10, 50)
    with pytest.raises(ValueError, match="before the start of the range"):
        raw.seek(-1)
    with pytest.raises(ValueError, match="invalid whence"):
        raw.seek(0, 7)
    assert raw.tell() == 0
