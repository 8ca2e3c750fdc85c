"""The on-disk format of the local stream log: record frames, index entries, file names.

One module holds the whole format so that it has exactly one definition. All integers are
big-endian. A partition is a directory of *segments*; a segment is a ``.log`` file named by the
offset of its first record (``00000000000000000042.log``) plus a sparse ``.idx`` file.

Record frame (34 bytes of framing + key + headers + value)::

    offset  size  field
    0       4     body_len      u32: bytes after this 8-byte prefix (26 + key + headers + value)
    4       4     crc           u32: zlib.crc32 of the body
    8       2     magic         0xA71B (format 1)
    10      8     offset        i64: the record's offset in its partition
    18      8     timestamp_ms  i64: event time, milliseconds since the Unix epoch (UTC)
    26      4     key_len       i32: -1 = no key
    30      4     headers_len   u32: 0 = no headers, else a UTF-8 JSON object of str -> str
    34      ...   key, headers, value

A frame is *complete* when all ``8 + body_len`` bytes are in the file, and *valid* when it is
complete, its crc matches, its magic is right and its offset is the one expected at its place.

Index entry (24 bytes), one for the first record of a segment and then one for the first record
at least :data:`INDEX_INTERVAL` bytes after the previous entry::

    offset i64 | position i64 (byte position of the frame) | max_ts_before i64

``max_ts_before`` is the largest timestamp of the records before this one *in the same segment*
(:data:`NO_TIMESTAMP` for the first), so the entries are ordered by it too and
``offsets_for_time`` can binary-search them. Entries are a pure function of the segment's bytes,
so every process derives the same ones; the index is only a cache and is rebuilt when missing.
"""

from __future__ import annotations

import json
import os
import struct
import zlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Final, Literal

from lakekit.errors import InvalidInputError, LakekitError

__all__ = [
    "FRAME_OVERHEAD",
    "HEADER",
    "INDEX_ENTRY",
    "INDEX_INTERVAL",
    "INDEX_SUFFIX",
    "LOG_SUFFIX",
    "MAGIC",
    "MAX_RECORD_BYTES",
    "NO_TIMESTAMP",
    "PREFIX",
    "CorruptLogError",
    "DecodedRecord",
    "FrameScanner",
    "Frame",
    "decode_frame",
    "decode_headers",
    "encode_headers",
    "index_name",
    "parse_index",
    "segment_base",
    "segment_name",
    "valid_frame_after",
]

PREFIX: Final = struct.Struct(">II")
HEADER: Final = struct.Struct(">HqqiI")
INDEX_ENTRY: Final = struct.Struct(">qqq")
MAGIC: Final = 0xA71B
FRAME_OVERHEAD: Final = PREFIX.size + HEADER.size
MAX_RECORD_BYTES: Final = 64 * 1024 * 1024
"""Largest key + headers + value of one record."""
INDEX_INTERVAL: Final = 4096
NO_TIMESTAMP: Final = -(2**63)
LOG_SUFFIX: Final = ".log"
INDEX_SUFFIX: Final = ".idx"
_READ_CHUNK: Final = 1024 * 1024
_FIRST_CHUNK: Final = 64 * 1024
_MAGIC_BYTES: Final = MAGIC.to_bytes(2, "big")


class CorruptLogError(LakekitError):
    """A segment holds bytes that are not a valid record where a record must be.

    Never raised for a torn tail left by a killed writer (that is repaired); raised for damage
    with valid records after it, a gap between segments, or a truncated sealed segment.
    """

    def __init__(self, path: Path, position: int, offset: int, detail: str) -> None:
        self.path = path
        self.position = position
        self.offset = offset
        super().__init__(
            f"corrupt stream segment {path} at byte {position} (record offset {offset}): {detail}. "
            "Records after this point are not readable; restore the file from a backup or move "
            "the partition aside"
        )


def segment_name(base: int) -> str:
    return f"{base:020d}{LOG_SUFFIX}"


def index_name(base: int) -> str:
    return f"{base:020d}{INDEX_SUFFIX}"


def segment_base(filename: str) -> int | None:
    """The base offset of a ``.log`` file name, or None for any other file."""
    stem, dot, suffix = filename.partition(".")
    if dot and "." + suffix == LOG_SUFFIX and len(stem) == 20 and stem.isdigit():
        return int(stem)
    return None


def encode_headers(headers: Mapping[str, str]) -> bytes:
    """Headers as compact UTF-8 JSON (b"" when empty).

    Raises:
        InvalidInputError: a header name or value is not a str.
    """
    if not headers:
        return b""
    for name, value in headers.items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise InvalidInputError(
                f"record headers must map str to str, got {type(name).__name__} -> "
                f"{type(value).__name__} for header {name!r}"
            )
    return json.dumps(dict(headers), separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def decode_headers(raw: bytes) -> dict[str, str]:
    if not raw:
        return {}
    value = json.loads(raw)
    if not isinstance(value, dict):
        raise ValueError("headers are not a JSON object")
    return value


DecodedRecord = tuple[int, int, bytes | None, bytes, bytes]
"""(offset, timestamp_ms, key, encoded headers, value)."""

Frame = tuple[int, int, int, int, int, bytes]
"""What :class:`FrameScanner` yields: (position, offset, timestamp_ms, key_len, headers_len,
body)."""


def decode_frame(frame: Frame) -> DecodedRecord:
    """Split a valid frame into its fields (the scanner has checked the lengths)."""
    _pos, offset, ts, key_len, headers_len, body = frame
    start = HEADER.size
    if key_len >= 0:
        key: bytes | None = body[start : start + key_len]
        start += key_len
    else:
        key = None
    return (offset, ts, key, body[start : start + headers_len], body[start + headers_len :])


StopKind = Literal["end", "incomplete", "bad", "limit"]


class FrameScanner:
    """Iterate the valid frames of a segment from a byte position, in chunks.

    Yields :data:`Frame` tuples. Iteration ends at the end of the data (``stop == "end"``), at a
    frame that runs past the end (``"incomplete"``: a write in progress or torn by a crash), at
    a frame that is complete but invalid (``"bad"``, with ``problem`` saying why), or after the
    frame with offset ``last_offset`` (``"limit"``). ``position``/``offset`` then hold where it
    stopped: the first byte and offset not consumed.
    """

    def __init__(
        self,
        fd: int,
        start: int,
        end: int,
        first_offset: int,
        *,
        last_offset: int | None = None,
    ) -> None:
        self.fd = fd
        self.position = start
        self.end = end
        self.offset = first_offset
        self.last_offset = last_offset
        self._chunk = _FIRST_CHUNK
        self.stop: StopKind = "end"
        self.problem = ""

    def __iter__(self) -> Iterator[Frame]:
        buf = b""
        buf_start = self.position
        unpack_header, crc32 = HEADER.unpack_from, zlib.crc32
        while True:
            if self.last_offset is not None and self.offset > self.last_offset:
                self.stop = "limit"
                return
            if self.end - self.position < PREFIX.size:
                self.stop = "end" if self.position >= self.end else "incomplete"
                return
            rel = self.position - buf_start
            if len(buf) - rel < PREFIX.size:
                buf, buf_start, rel = self._read(PREFIX.size), self.position, 0
                if len(buf) < PREFIX.size:
                    continue  # the file is shorter than it was: re-check against the new end
            body_len, crc = PREFIX.unpack_from(buf, rel)
            if body_len < HEADER.size or body_len > MAX_RECORD_BYTES + HEADER.size:
                self._bad(f"impossible frame length {body_len}")
                return
            frame_len = PREFIX.size + body_len
            if self.end - self.position < frame_len:
                self.stop = "incomplete"
                return
            if len(buf) - rel < frame_len:
                buf, buf_start, rel = self._read(frame_len), self.position, 0
                if len(buf) < frame_len:
                    self.stop = "incomplete"
                    return
            body = buf[rel + PREFIX.size : rel + frame_len]
            magic, offset, ts, key_len, headers_len = unpack_header(body, 0)
            if (
                crc32(body) != crc
                or magic != MAGIC
                or offset != self.offset
                or key_len < -1
                or max(key_len, 0) + headers_len > body_len - HEADER.size
            ):
                self._bad(_check_body(body, crc, self.offset))
                return
            yield self.position, offset, ts, key_len, headers_len, body
            self.position += frame_len
            self.offset += 1

    def _read(self, need: int) -> bytes:
        # Small first reads (a poll often wants a few records), growing for long scans.
        size = min(max(need, self._chunk), self.end - self.position)
        self._chunk = min(self._chunk * 2, _READ_CHUNK)
        data = os.pread(self.fd, size, self.position)
        if len(data) < size:
            self.end = self.position + len(data)  # truncated meanwhile (should not happen)
        return data

    def _bad(self, problem: str) -> None:
        self.stop = "bad"
        self.problem = problem


def _check_body(body: bytes, crc: int, expected_offset: int) -> str:
    """Why a frame body is invalid ("" if it is valid)."""
    if zlib.crc32(body) != crc:
        return "checksum mismatch"
    magic, offset, _ts, key_len, headers_len = HEADER.unpack_from(body, 0)
    if magic != MAGIC:
        return f"bad magic 0x{magic:04x}"
    if offset != expected_offset:
        return f"record says offset {offset}, expected {expected_offset}"
    if key_len < -1 or max(key_len, 0) + headers_len > len(body) - HEADER.size:
        return "key/headers lengths exceed the record"
    return ""


def valid_frame_after(fd: int, start: int, end: int, min_offset: int) -> int | None:
    """The position of a valid frame (offset >= ``min_offset``) after ``start``, if any.

    Used to tell a torn tail (nothing valid follows: safe to cut) from damage in the middle of
    acknowledged data (valid records follow: never cut silently).
    """
    position = start + 1
    while position + FRAME_OVERHEAD <= end:
        chunk = os.pread(fd, min(_READ_CHUNK, end - position), position)
        if not chunk:
            break
        search_from = 0
        while True:
            hit = chunk.find(_MAGIC_BYTES, search_from)
            if hit < 0:
                break
            search_from = hit + 1
            frame_pos = position + hit - PREFIX.size
            if frame_pos <= start or frame_pos + FRAME_OVERHEAD > end:
                continue
            head = os.pread(fd, FRAME_OVERHEAD, frame_pos)
            body_len, crc = PREFIX.unpack_from(head, 0)
            _magic, offset, _ts, _kl, _hl = HEADER.unpack_from(head, PREFIX.size)
            if offset < min_offset or body_len < HEADER.size:
                continue
            if frame_pos + PREFIX.size + body_len > end or body_len > MAX_RECORD_BYTES:
                continue
            body = os.pread(fd, body_len, frame_pos + PREFIX.size)
            if not _check_body(body, crc, offset):
                return frame_pos
        # Overlap by one byte so a magic split across chunks is still found.
        position += max(len(chunk) - 1, 1)
    return None


def parse_index(data: bytes, base: int, log_size: int) -> list[tuple[int, int, int]]:
    """The longest prefix of well-formed entries of an ``.idx`` file.

    Drops a partial trailing entry (a write torn by a crash), and stops at the first entry that
    is out of order or points past the end of the log; the caller scans from the last entry.
    """
    entries: list[tuple[int, int, int]] = []
    count = len(data) // INDEX_ENTRY.size
    prev_offset, prev_pos, prev_ts = base - 1, -1, NO_TIMESTAMP
    for i in range(count):
        offset, pos, max_ts = INDEX_ENTRY.unpack_from(data, i * INDEX_ENTRY.size)
        first_ok = i > 0 or (offset == base and pos == 0)
        if (
            not first_ok
            or offset <= prev_offset
            or pos <= prev_pos
            or pos >= log_size
            or max_ts < prev_ts
        ):
            break
        entries.append((offset, pos, max_ts))
        prev_offset, prev_pos, prev_ts = offset, pos, max_ts
    return entries
