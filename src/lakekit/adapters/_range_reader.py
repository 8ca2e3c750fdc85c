"""The seekable byte-range stream that object stores hand out from ``open(key, start, end)``.

Every store's ranged read keeps the same position arithmetic: bytes ``[start, end)`` of one
object version, ``tell()`` relative to ``start``, ``seek`` from the range's start, the current
position or its end, never before ``start``; a seek past ``end`` reads nothing. Only how bytes
are fetched at a position differs (a positional file read, a ranged GET, ...).
"""

from __future__ import annotations

import io
from abc import abstractmethod
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

__all__ = ["RangeReader"]


class RangeReader(io.RawIOBase):
    """A read-only, seekable raw stream over bytes ``[start, end)`` of one object version.

    Subclasses implement :meth:`_read_at`; wrap instances in ``io.BufferedReader``.
    """

    def __init__(self, start: int, end: int) -> None:
        super().__init__()
        self._start = start
        self._end = end
        self._pos = start

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer).cast("B")
        wanted = min(len(view), self._end - self._pos)
        if wanted <= 0:
            return 0
        got = self._read_at(view[:wanted], self._pos)
        self._pos += got
        return got

    @abstractmethod
    def _read_at(self, view: memoryview, position: int) -> int:
        """Fill the start of ``view`` (``len(view)`` bytes at most, never past the range) with
        the object's bytes from absolute ``position``; return how many (0 only at its end)."""

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: self._start, io.SEEK_CUR: self._pos, io.SEEK_END: self._end}
        if whence not in base:
            raise ValueError(f"invalid whence {whence}")
        position = base[whence] + offset
        if position < self._start:
            raise ValueError("cannot seek before the start of the range")
        self._pos = position
        return position - self._start

    def tell(self) -> int:
        return self._pos - self._start
