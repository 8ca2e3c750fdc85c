"""The on-disk format of the local stream log: batch frames, index entries, file names.

One module holds the whole format so that it has exactly one definition. All integers are
big-endian. A partition is a directory of *segments*; a segment is a ``.log`` file named by the
offset of its first record (``00000000000000000042.log``) plus a sparse ``.idx`` file. A segment
is a sequence of *frames*; each frame starts with the same 8-byte prefix::

    offset  size  field
    0       4     body_len      u32: bytes after this prefix
    4       4     crc           u32: checksum of the body (which one depends on the magic)
    8       2     magic         first two bytes of the body: the frame's format

**Batch frame** (magic ``0xA72B``, written by lakekit >= 0.1 with stream formats 2 and 3): one
frame holds a batch of consecutive records (Kafka's record batches are the model), checksummed
with CRC-32C (Castagnoli) over the whole body, laid out by column so that encoding and decoding
need no Python loop per record::

    0   2  magic         0xA72B
    2   2  flags         bit 0: per-record timestamps, bit 1: per-record keys, bit 2: headers,
                         bit 3: one key shared by every record, bit 4: one value length shared
                         by every record (other bits: invalid frame)
    4   8  base_offset   i64: offset of the first record
    12  4  count         u32: records in the frame (>= 1), offsets base_offset .. +count-1
    16  8  base_ts       i64: timestamp of every record (first record's with per-record ones)
    24  8  max_ts        i64: largest timestamp in the frame
    32     [shared key]  u32 length + the key                               (bit 3)
           [timestamps]  count x i64, ms since the Unix epoch (UTC)         (bit 0)
           [key lengths] count x i32, -1 = no key                           (bit 1)
           [hdr lengths] count x u32, 0 = no headers                        (bit 2)
           value lengths count x u32, or with bit 4 one u32 for every value
           keys, headers (UTF-8 JSON objects of str -> str), values: each concatenated

Without bit 0 every record has ``base_ts``; without bits 1 and 3 no record has a key; without
bit 2 no record has headers. Like the key and the timestamp, the value length is stored once
(bit 4) when it is the same for every record of the frame; stream format 3 added bit 4 (format
2 frames never set it, and a lakekit that reads only format 2 refuses a format-3 stream instead
of reporting its frames as damage). A frame is *valid* when it is complete, its CRC-32C
matches, its flags are known, its base offset is the one expected at its place and its lengths
add up to exactly ``body_len``. A frame is atomic: all of its records are visible, or none.

**Record frame** (magic ``0xA71B``, format 1: lakekit before batch frames; read, never
written): one record per frame, zlib CRC-32 of the body::

    0   2  magic 0xA71B | 2 8 offset i64 | 10 8 timestamp_ms i64 | 18 4 key_len i32 (-1 = none)
    22  4  headers_len u32 | 26 key, headers, value

Both kinds can follow each other in one segment (a format-1 stream opened by a newer lakekit
continues its active segment with batch frames).

Index entry (24 bytes), one for the first frame of a segment and then one for the first frame
at least :data:`INDEX_INTERVAL` bytes after the previous entry::

    offset i64 (first record of the frame) | position i64 (of the frame) | max_ts_before i64

``max_ts_before`` is the largest timestamp of the records before this frame *in the same
segment* (:data:`NO_TIMESTAMP` for the first), so the entries are ordered by it too and
``offsets_for_time`` can binary-search them. Entries are a pure function of the segment's bytes,
so every process derives the same ones; the index is only a cache and is rebuilt when missing.
"""

from __future__ import annotations

import functools
import itertools
import json
import os
import struct
import sys
import zlib
from array import array
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Final, Literal

from google_crc32c import extend as _crc32c_extend
from google_crc32c import value as _crc32c

from lakekit.errors import InvalidInputError, LakekitError

__all__ = [
    "BATCH_HEADER",
    "BATCH_MAGIC",
    "FLAG_FIXED_VALUE_LEN",
    "FLAG_HEADERS",
    "FLAG_KEYS",
    "FLAG_SHARED_KEY",
    "FLAG_TIMESTAMPS",
    "FRAME_BYTES",
    "INDEX_ENTRY",
    "INDEX_INTERVAL",
    "INDEX_SUFFIX",
    "LOG_SUFFIX",
    "MAX_FRAME_BODY",
    "MAX_RECORD_BYTES",
    "NO_TIMESTAMP",
    "PREFIX",
    "V1_HEADER",
    "V1_MAGIC",
    "CorruptLogError",
    "Frame",
    "FrameScanner",
    "FrameSlice",
    "RecordBatch",
    "Run",
    "U32_ARRAY",
    "ValuesBatch",
    "all_equal",
    "crc32c",
    "decode_frame",
    "decode_headers",
    "encode_headers",
    "frame_timestamps",
    "index_name",
    "parse_index",
    "segment_base",
    "segment_name",
    "valid_frame_after",
]

PREFIX: Final = struct.Struct(">II")
BATCH_HEADER: Final = struct.Struct(">HHqIqq")
BATCH_MAGIC: Final = 0xA72B
V1_HEADER: Final = struct.Struct(">HqqiI")
V1_MAGIC: Final = 0xA71B
FLAG_TIMESTAMPS: Final = 0x1
FLAG_KEYS: Final = 0x2
FLAG_HEADERS: Final = 0x4
FLAG_SHARED_KEY: Final = 0x8
FLAG_FIXED_VALUE_LEN: Final = 0x10
_KNOWN_FLAGS: Final = 0x1F
_U32: Final = struct.Struct(">I")
U32_ARRAY: Final = next(code for code in "IL" if array(code).itemsize == 4)
"""The ``array`` type code of unsigned 32-bit integers (value lengths are kept in one)."""
INDEX_ENTRY: Final = struct.Struct(">qqq")
MAX_RECORD_BYTES: Final = 64 * 1024 * 1024
"""Largest key + headers + value of one record."""
FRAME_BYTES: Final = 1024 * 1024
"""A publish's records are cut into frames of about this many bytes (a bigger record gets a
frame of its own): a read never has to check more than ~1 MiB beyond what it returns."""
MAX_FRAME_BODY: Final = 2 * MAX_RECORD_BYTES + 2 * FRAME_BYTES
"""No valid frame is larger (a shared key and a record of the maximum size, plus columns):
a larger ``body_len`` is damage."""
_MIN_BODY: Final = V1_HEADER.size
INDEX_INTERVAL: Final = 4096
NO_TIMESTAMP: Final = -(2**63)
LOG_SUFFIX: Final = ".log"
INDEX_SUFFIX: Final = ".idx"
_READ_CHUNK: Final = 1024 * 1024
_FIRST_CHUNK: Final = 8 * 1024
_EXACT_BODY: Final = 32 * 1024
"""A frame body at least this large that is not in the read buffer yet is read on its own
(one ``pread`` of exactly the body, so it is not copied again out of a larger buffer)."""
_MAGICS: Final = (V1_MAGIC.to_bytes(2, "big"), BATCH_MAGIC.to_bytes(2, "big"))
_BATCH_PACK: Final = BATCH_HEADER.pack
_PREFIX_PACK: Final = PREFIX.pack


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli) of ``data`` (hardware-accelerated by google-crc32c)."""
    return int(_crc32c(data))


class CorruptLogError(LakekitError):
    """A segment holds bytes that are not a valid frame where a frame must be.

    Never raised for a torn tail left by a killed writer (that is repaired); raised for damage
    with valid frames after it, a gap between segments, or a truncated sealed segment.
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


# -- writing -------------------------------------------------------------------------------------
class RecordBatch:
    """Records on their way to one partition, by column; :meth:`encode` makes batch frames.

    Build one with :meth:`of_values` (values sharing a key and a timestamp: no Python work per
    record) or :meth:`of_records` (any records; columns that do not vary are stored once).
    """

    __slots__ = (
        "blob",
        "headers",
        "key_lens",
        "keys",
        "shared_key",
        "timestamp",
        "timestamps",
        "value_lens",
        "values",
    )

    def __init__(
        self,
        values: Sequence[bytes],
        *,
        timestamp: int,
        timestamps: Sequence[int] | None = None,
        shared_key: bytes | None = None,
        keys: Sequence[bytes | None] | None = None,
        headers: Sequence[bytes] | None = None,
        value_lens: Sequence[int] | None = None,
        blob: bytes | None = None,
    ) -> None:
        self.values = values
        self.timestamp = timestamp
        self.timestamps = timestamps
        self.shared_key = shared_key
        self.keys = keys
        self.key_lens = None if keys is None else [-1 if k is None else len(k) for k in keys]
        self.headers = headers
        self.value_lens = list(map(len, values)) if value_lens is None else value_lens
        self.blob = blob
        """``b"".join(values)`` when the caller already has it."""

    @classmethod
    def of_values(
        cls,
        values: Sequence[bytes],
        value_lens: Sequence[int],
        blob: bytes,
        *,
        timestamp: int,
        key: bytes | None = None,
    ) -> RecordBatch:
        """Values (with their lengths and concatenation) sharing one key and timestamp."""
        return cls(values, timestamp=timestamp, shared_key=key, value_lens=value_lens, blob=blob)

    @classmethod
    def of_records(
        cls,
        timestamps: list[int],
        keys: list[bytes | None],
        headers: list[bytes],
        values: list[bytes],
    ) -> RecordBatch:
        """Columns that are the same for every record are stored once."""
        first_ts, first_key = timestamps[0], keys[0]
        count = len(values)
        same_ts = timestamps.count(first_ts) == count
        same_key = keys.count(first_key) == count
        return cls(
            values,
            timestamp=first_ts,
            timestamps=None if same_ts else timestamps,
            shared_key=first_key if same_key else None,
            keys=None if same_key else keys,
            headers=headers if any(headers) else None,
        )

    def __len__(self) -> int:
        return len(self.value_lens)

    def encode(self, first_offset: int) -> tuple[list[bytes], list[tuple[int, int, int, int]]]:
        """The buffers to write (in order) and, per frame, ``(position relative to the first
        frame, first offset, record count, largest timestamp)``."""
        values, value_lens = self.values, self.value_lens
        count = len(value_lens)
        width = 4 + (8 if self.timestamps is not None else 0)
        width += 4 if self.keys is not None else 0
        width += 4 if self.headers is not None else 0
        blob = b"".join(values) if self.blob is None else self.blob
        ranges: Sequence[tuple[int, int]] = ((0, count),)
        if count > 1 and len(blob) + count * width > FRAME_BYTES:
            ranges = self._split(value_lens, width)
        buffers: list[bytes] = []
        frames: list[tuple[int, int, int, int]] = []
        position = 0
        ends = list(itertools.accumulate(value_lens, initial=0)) if len(ranges) > 1 else []
        for start, stop in ranges:
            part = blob if len(ranges) == 1 else blob[ends[start] : ends[stop]]
            head, max_ts = self._head(first_offset + start, start, stop, value_lens)
            crc = _crc32c_extend(_crc32c(head), part) if part else _crc32c(head)
            buffers += (PREFIX.pack(len(head) + len(part), crc), head, part)
            frames.append((position, first_offset + start, stop - start, max_ts))
            position += PREFIX.size + len(head) + len(part)
        return buffers, frames

    def _split(self, value_lens: Sequence[int], width: int) -> list[tuple[int, int]]:
        """Cut the records into runs of about FRAME_BYTES (at least one record each)."""
        sizes = [v + width for v in value_lens]
        if self.key_lens is not None:
            sizes = [s + max(k, 0) for s, k in zip(sizes, self.key_lens, strict=True)]
        if self.headers is not None:
            sizes = [s + len(h) for s, h in zip(sizes, self.headers, strict=True)]
        ranges: list[tuple[int, int]] = []
        start, size = 0, 0
        for i, record_size in enumerate(sizes):
            if size and size + record_size > FRAME_BYTES:
                ranges.append((start, i))
                start, size = i, 0
            size += record_size
        ranges.append((start, len(sizes)))
        return ranges

    def _head(
        self, base_offset: int, start: int, stop: int, value_lens: Sequence[int]
    ) -> tuple[bytes, int]:
        """Everything of a frame's body before its values, and the frame's largest timestamp."""
        count = stop - start
        flags = 0
        parts: list[bytes] = []
        base_ts = max_ts = self.timestamp
        if self.shared_key is not None:
            flags |= FLAG_SHARED_KEY
            parts += (_U32.pack(len(self.shared_key)), self.shared_key)
        if self.timestamps is not None:
            flags |= FLAG_TIMESTAMPS
            stamps = self.timestamps[start:stop]
            base_ts, max_ts = stamps[0], max(stamps)
            parts.append(struct.pack(f">{count}q", *stamps))
        if self.keys is not None and self.key_lens is not None:
            flags |= FLAG_KEYS
            parts.append(struct.pack(f">{count}i", *self.key_lens[start:stop]))
        if self.headers is not None:
            flags |= FLAG_HEADERS
            parts.append(struct.pack(f">{count}I", *map(len, self.headers[start:stop])))
        lens = value_lens[start:stop]
        if all_equal(lens):
            flags |= FLAG_FIXED_VALUE_LEN
            parts.append(_U32.pack(lens[0]))
        else:
            parts.append(_u32_column(lens))
        if self.keys is not None:
            parts += (k for k in self.keys[start:stop] if k)
        if self.headers is not None:
            parts += (h for h in self.headers[start:stop] if h)
        header = BATCH_HEADER.pack(BATCH_MAGIC, flags, base_offset, count, base_ts, max_ts)
        return header + b"".join(parts), max_ts


def all_equal(items: Sequence[int]) -> bool:
    """Whether every item equals the first (``items`` not empty).

    ``list.count`` compares in C, and fast when the items are the same objects (small ints),
    but it still costs a comparison per item; two probes first settle most unequal cases.
    """
    first = items[0]
    return (
        items[-1] == first and items[len(items) >> 1] == first and items.count(first) == len(items)
    )


def _u32_column(lens: Sequence[int]) -> bytes:
    """Big-endian u32s (an ``array`` packs a list in C faster than ``struct.pack(*lens)``)."""
    column = array(U32_ARRAY, lens)
    if _LITTLE:
        column.byteswap()
    return column.tobytes()


_LITTLE: Final = sys.byteorder == "little"


class ValuesBatch:
    """Values sharing one key and one timestamp, already measured and concatenated: the
    ``publish_values`` fast path. :meth:`encode` frames them without a Python loop per record
    (one frame when they fit in :data:`FRAME_BYTES`, else :class:`RecordBatch` cuts them).
    """

    __slots__ = ("blob", "key", "lens", "timestamp", "uniform")

    def __init__(
        self, lens: list[int], blob: bytes, timestamp: int, key: bytes | None, *, uniform: bool
    ) -> None:
        self.lens = lens
        """Each value's length in bytes (they add up to ``len(blob)``)."""
        self.blob = blob
        self.timestamp = timestamp
        self.key = key
        self.uniform = uniform
        """Whether every value has the length ``lens[0]``."""

    def __len__(self) -> int:
        return len(self.lens)

    def encode(self, first_offset: int) -> tuple[list[bytes], list[tuple[int, int, int, int]]]:
        """As :meth:`RecordBatch.encode`."""
        lens, blob, ts, key = self.lens, self.blob, self.timestamp, self.key
        count = len(lens)
        if count > 1 and len(blob) + 4 * count > FRAME_BYTES:
            batch = RecordBatch((), timestamp=ts, shared_key=key, value_lens=lens, blob=blob)
            return batch.encode(first_offset)
        if self.uniform:  # one length for all: no column to build
            flags, column = FLAG_FIXED_VALUE_LEN, _U32.pack(lens[0])
        else:
            array_column = array(U32_ARRAY, lens)
            if _LITTLE:
                array_column.byteswap()
            flags, column = 0, array_column.tobytes()
        if key is None:
            head = _BATCH_PACK(BATCH_MAGIC, flags, first_offset, count, ts, ts) + column
        else:
            flags |= FLAG_SHARED_KEY
            head = b"".join(
                (
                    _BATCH_PACK(BATCH_MAGIC, flags, first_offset, count, ts, ts),
                    _U32.pack(len(key)),
                    key,
                    column,
                )
            )
        crc = _crc32c_extend(_crc32c(head), blob)
        frames = [(0, first_offset, count, ts)]
        return [_PREFIX_PACK(len(head) + len(blob), crc), head, blob], frames


# -- reading -------------------------------------------------------------------------------------
Frame = tuple[int, int, int, int, bytes, "_Layout | None"]
"""What :class:`FrameScanner` yields: (position, first offset, record count, largest timestamp,
body, where a batch frame's columns are (None for a format-1 record frame))."""

Run = tuple[
    int, int | Sequence[int], bytes | Sequence[bytes | None] | None, Sequence[bytes] | None,
    Sequence[bytes],
]  # fmt: skip
"""Consecutive records decoded from one frame, by column: (first offset, timestamps (one int
for all, or one per record), keys (None: no keys, bytes: one key for all, or one per record),
encoded headers (None: no headers, or one per record), values)."""


class _Layout:
    """Where the columns of a batch frame's body are (after checking that they add up)."""

    __slots__ = (
        "base",
        "count",
        "flags",
        "header_lens",
        "headers_at",
        "key_lens",
        "keys_at",
        "shared_key",
        "timestamp",
        "timestamps_at",
        "uniform",
        "value_lens",
        "values_at",
    )

    def __init__(self, body: bytes) -> None:
        _magic, flags, base, count, timestamp, _max = BATCH_HEADER.unpack_from(body, 0)
        if count < 1:
            raise ValueError("a batch frame with no records")
        self.base: int = base
        self.timestamp: int = timestamp
        self.flags: int = flags
        self.count: int = count
        at: int = BATCH_HEADER.size
        self.shared_key: bytes | None = None
        if flags & FLAG_SHARED_KEY:
            (size,) = _U32.unpack_from(body, at)
            self.shared_key = body[at + 4 : at + 4 + size]
            if len(self.shared_key) != size:
                raise ValueError("the shared key runs past the frame")
            at += 4 + size
        self.timestamps_at = at
        if flags & FLAG_TIMESTAMPS:
            at += 8 * count
        self.key_lens: tuple[int, ...] = ()
        if flags & FLAG_KEYS:
            self.key_lens = struct.unpack_from(f">{count}i", body, at)
            at += 4 * count
        self.header_lens: tuple[int, ...] = ()
        if flags & FLAG_HEADERS:
            self.header_lens = struct.unpack_from(f">{count}I", body, at)
            at += 4 * count
        lens: tuple[int, ...]
        if flags & FLAG_FIXED_VALUE_LEN:
            (first,) = _U32.unpack_from(body, at)
            lens = (first,) * count
            at += 4
            self.uniform: int = first
        else:
            lens = struct.unpack_from(f">{count}I", body, at)
            first = lens[0]
            # Values of one length (then the sum is a product): one count() in C.
            self.uniform = first if all_equal(lens) else -1
            at += 4 * count
        """Every value's length if they are all equal, else -1."""
        self.value_lens = lens
        self.keys_at = at
        if self.key_lens:
            if min(self.key_lens) < -1:
                raise ValueError("a key length is below -1")
            at += sum(self.key_lens) + self.key_lens.count(-1)
        self.headers_at = at
        if self.header_lens:
            at += sum(self.header_lens)
        self.values_at = at
        if at + (first * count if self.uniform >= 0 else sum(lens)) != len(body):
            raise ValueError("the record lengths do not add up to the frame length")

    def value_start(self, index: int) -> int:
        """Where the value of record ``index`` starts in the body."""
        if self.uniform >= 0:
            return self.values_at + self.uniform * index
        return self.values_at + sum(self.value_lens[:index])


def _check_body(body: bytes, crc: int, expected_offset: int | None) -> str:  # noqa: PLR0911
    """Why a frame body is invalid ("" if it is valid). ``None``: any offset."""
    magic = int.from_bytes(body[:2], "big")
    if magic == BATCH_MAGIC:
        if len(body) < BATCH_HEADER.size + 4:
            return "batch frame shorter than its header"
        if _crc32c(body) != crc:
            return "checksum mismatch"
        _m, flags, base, count, _ts, _max = BATCH_HEADER.unpack_from(body, 0)
        if flags & ~_KNOWN_FLAGS:
            return f"unknown batch flags 0x{flags:04x} (written by a newer lakekit?)"
        if expected_offset is not None and base != expected_offset:
            return f"frame says offset {base}, expected {expected_offset}"
        if count < 1:
            return "batch frame with no records"
        return _check_layout(body)[0]
    if magic == V1_MAGIC:
        if zlib.crc32(body) != crc:
            return "checksum mismatch"
        _magic, offset, _ts, key_len, headers_len = V1_HEADER.unpack_from(body, 0)
        if expected_offset is not None and offset != expected_offset:
            return f"record says offset {offset}, expected {expected_offset}"
        if key_len < -1 or max(key_len, 0) + headers_len > len(body) - V1_HEADER.size:
            return "key/headers lengths exceed the record"
        return ""
    return f"bad magic 0x{magic:04x}"


def _frame_facts(body: bytes) -> tuple[int, int, int]:
    """(first offset, record count, largest timestamp) of a valid frame body."""
    if body[:2] == _MAGICS[1]:
        _m, _f, base, count, _ts, max_ts = BATCH_HEADER.unpack_from(body, 0)
        return base, count, max_ts
    _magic, offset, ts, _kl, _hl = V1_HEADER.unpack_from(body, 0)
    return offset, 1, ts


_FIXED_CHUNK: Final = 1024


@functools.lru_cache(maxsize=64)
def _fixed_unpack(size: int, count: int) -> Callable[[bytes, int], tuple[bytes, ...]]:
    return struct.Struct(f"{size}s" * count).unpack_from


def _blobs(body: bytes, at: int, lens: Sequence[int], uniform: int = -1) -> Sequence[bytes]:
    """Consecutive byte strings of the given lengths from ``body[at:]``, sliced in C.

    ``uniform``: the length of every one of them, if known to be equal (else -1).
    """
    count = len(lens)
    if not count:
        return ()
    if uniform < 0 and all_equal(lens):
        uniform = lens[0]
    if uniform >= 0:  # one struct format "Ns" * count, compiled once per (N, count)
        if count <= _FIXED_CHUNK:
            return _fixed_unpack(uniform, count)(body, at)
        out: list[bytes] = []
        unpack = _fixed_unpack(uniform, _FIXED_CHUNK)
        step = uniform * _FIXED_CHUNK
        whole = count - count % _FIXED_CHUNK
        for chunk_at in range(at, at + uniform * whole, step):
            out += unpack(body, chunk_at)
        rest = count - whole
        if rest:
            out += _fixed_unpack(uniform, rest)(body, at + uniform * whole)
        return out
    ends = list(itertools.accumulate(lens, initial=at))
    return [body[a:b] for a, b in itertools.pairwise(ends)]


class FrameSlice:
    """Records ``start..stop-1`` (indexes within the frame) of a valid frame, decoded column by
    column when asked (the body is immutable, so this needs no lock)."""

    __slots__ = ("body", "count", "layout", "offset", "start", "stop")

    def __init__(self, frame: Frame, start: int = 0, stop: int | None = None) -> None:
        _pos, offset, count, _max, body, layout = frame
        stop = count if stop is None else stop
        if layout is None and body[:2] == _MAGICS[1]:
            layout = _Layout(body)
        self.body = body
        self.layout = layout
        """None for a format-1 record frame (one record)."""
        self.start = start
        self.stop = stop
        self.offset = offset + start
        """The offset of the first record of the slice."""
        self.count = stop - start

    def values(self) -> Sequence[bytes]:
        layout = self.layout
        if layout is None:
            _ts, _key, _headers, at = _v1_fields(self.body)
            return [self.body[at:]]
        start, stop = self.start, self.stop
        lens = layout.value_lens if start == 0 and stop == layout.count else None
        if lens is None:
            lens = layout.value_lens[start:stop]
        return _blobs(self.body, layout.value_start(start), lens, layout.uniform)

    def value_buffer(self) -> tuple[bytes, int, Sequence[int], int]:
        """(the buffer, where the first value starts in it, each value's length, their common
        length or -1): the values without slicing them (for zero-copy Arrow arrays)."""
        layout = self.layout
        if layout is None:
            _ts, _key, _headers, at = _v1_fields(self.body)
            return self.body, at, (len(self.body) - at,), len(self.body) - at
        start, stop = self.start, self.stop
        lens = layout.value_lens[start:stop] if (start, stop) != (0, layout.count) else None
        return (
            self.body,
            layout.value_start(start),
            layout.value_lens if lens is None else lens,
            layout.uniform,
        )

    def timestamps(self) -> int | Sequence[int]:
        """One timestamp (ms) for every record, or one per record."""
        layout = self.layout
        if layout is None:
            return _v1_fields(self.body)[0]
        if not layout.flags & FLAG_TIMESTAMPS:
            return layout.timestamp
        at = layout.timestamps_at + 8 * self.start
        stamps: tuple[int, ...] = struct.unpack_from(f">{self.count}q", self.body, at)
        return stamps

    def keys(self) -> bytes | Sequence[bytes | None] | None:
        """None (no record has a key), one key for every record, or one per record."""
        layout = self.layout
        if layout is None:
            return [_v1_fields(self.body)[1]]
        if not layout.key_lens:
            return layout.shared_key
        start, stop = self.start, self.stop
        key_lens = layout.key_lens
        present = [max(k, 0) for k in key_lens]
        blobs = _blobs(self.body, layout.keys_at + sum(present[:start]), present[start:stop])
        return [None if k < 0 else b for k, b in zip(key_lens[start:stop], blobs, strict=True)]

    def headers(self) -> Sequence[bytes] | None:
        """None (no record has headers), or each record's encoded headers (b"" for none)."""
        layout = self.layout
        if layout is None:
            raw = _v1_fields(self.body)[2]
            return [raw] if raw else None
        if not layout.header_lens:
            return None
        hl = layout.header_lens
        start, stop = self.start, self.stop
        return _blobs(self.body, layout.headers_at + sum(hl[:start]), hl[start:stop])

    def run(self) -> Run:
        return (self.offset, self.timestamps(), self.keys(), self.headers(), self.values())


def _v1_fields(body: bytes) -> tuple[int, bytes | None, bytes, int]:
    """(timestamp, key, headers, where the value starts) of a format-1 record frame."""
    _magic, _offset, ts, key_len, headers_len = V1_HEADER.unpack_from(body, 0)
    at = V1_HEADER.size
    key: bytes | None = None
    if key_len >= 0:
        key, at = body[at : at + key_len], at + key_len
    return ts, key, body[at : at + headers_len], at + headers_len


def decode_frame(frame: Frame, start: int = 0, stop: int | None = None) -> Run:
    """Records ``start..stop-1`` (indexes within the frame) of a valid frame, by column."""
    return FrameSlice(frame, start, stop).run()


def frame_timestamps(frame: Frame) -> Sequence[int]:
    """The timestamp of each record of a valid frame."""
    stamps = FrameSlice(frame).timestamps()
    return (stamps,) * frame[2] if isinstance(stamps, int) else stamps


StopKind = Literal["end", "incomplete", "bad", "limit"]


class FrameScanner:
    """Iterate the valid frames of a segment from a byte position, in chunks.

    Yields :data:`Frame` tuples. Iteration ends at the end of the data (``stop == "end"``), at a
    frame that runs past the end (``"incomplete"``: a write in progress or torn by a crash), at
    a frame that is complete but invalid (``"bad"``, with ``problem`` saying why), or after the
    frame holding offset ``last_offset`` (``"limit"``). ``position``/``offset`` then hold where
    it stopped: the first byte and offset not consumed.
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

    def __iter__(self) -> Iterator[Frame]:  # noqa: PLR0911, PLR0912 - one loop, read in chunks
        buf = b""
        buf_start = self.position
        unpack_prefix, batch_magic = PREFIX.unpack_from, _MAGICS[1]
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
            body_len, crc = unpack_prefix(buf, rel)
            if body_len < _MIN_BODY or body_len > MAX_FRAME_BODY:
                self._bad(f"impossible frame length {body_len}")
                return
            frame_len = PREFIX.size + body_len
            if self.end - self.position < frame_len:
                self.stop = "incomplete"
                return
            if len(buf) - rel >= frame_len:
                body = buf[rel + PREFIX.size : rel + frame_len]
            elif body_len >= _EXACT_BODY:
                body = os.pread(self.fd, body_len, self.position + PREFIX.size)
                buf, buf_start = b"", self.position + frame_len
                if len(body) < body_len:
                    self.stop = "incomplete"
                    return
            else:
                buf, buf_start, rel = self._read(frame_len), self.position, 0
                if len(buf) < frame_len:
                    self.stop = "incomplete"
                    return
                body = buf[PREFIX.size : frame_len]
            if body[:2] == batch_magic and _crc32c(body) == crc:
                # The common case, checked inline: a batch frame whose checksum matches.
                _m, flags, base, count, _ts, max_ts = BATCH_HEADER.unpack_from(body, 0)
                if flags & ~_KNOWN_FLAGS or base != self.offset or count < 1:
                    problem, layout = _check_body(body, crc, self.offset), None
                else:
                    problem, layout = _check_layout(body)
            else:
                problem, layout = _check_body(body, crc, self.offset), None
                if not problem:
                    base, count, max_ts = _frame_facts(body)
            if problem:
                self._bad(problem)
                return
            yield self.position, base, count, max_ts, body, layout
            self.position += frame_len
            self.offset += count

    def _read(self, need: int) -> bytes:
        # Small first reads (a poll often wants one frame), growing for long scans.
        size = min(max(need, self._chunk), self.end - self.position)
        self._chunk = min(self._chunk * 2, _READ_CHUNK)
        data = os.pread(self.fd, size, self.position)
        if len(data) < size:
            self.end = self.position + len(data)  # truncated meanwhile (should not happen)
        return data

    def _bad(self, problem: str) -> None:
        self.stop = "bad"
        self.problem = problem


def _check_layout(body: bytes) -> tuple[str, _Layout | None]:
    """(why a batch frame body's columns do not add up, or "", and their layout)."""
    try:
        return "", _Layout(body)
    except (ValueError, struct.error) as exc:
        return f"malformed batch frame: {exc}", None


def valid_frame_after(fd: int, start: int, end: int, min_offset: int) -> int | None:
    """The position of a valid frame (first offset >= ``min_offset``) after ``start``, if any.

    Used to tell a torn tail (nothing valid follows: safe to cut) from damage in the middle of
    acknowledged data (valid frames follow: never cut silently).
    """
    position = start + 1
    while position + PREFIX.size + _MIN_BODY <= end:
        chunk = os.pread(fd, min(_READ_CHUNK, end - position), position)
        if not chunk:
            break
        for hit in _magic_hits(chunk):
            frame_pos = position + hit - PREFIX.size
            if frame_pos <= start:
                continue
            head = os.pread(fd, PREFIX.size, frame_pos)
            body_len, crc = PREFIX.unpack_from(head, 0)
            if body_len < _MIN_BODY or body_len > MAX_FRAME_BODY:
                continue
            if frame_pos + PREFIX.size + body_len > end:
                continue
            body = os.pread(fd, body_len, frame_pos + PREFIX.size)
            if _check_body(body, crc, None):
                continue
            if _frame_facts(body)[0] >= min_offset:
                return frame_pos
        # Overlap by one byte so a magic split across chunks is still found.
        position += max(len(chunk) - 1, 1)
    return None


def _magic_hits(chunk: bytes) -> Iterator[int]:
    """Positions in ``chunk`` where a frame magic starts, in order."""
    found = {m: chunk.find(m) for m in _MAGICS}
    while True:
        live = [at for at in found.values() if at >= 0]
        if not live:
            return
        hit = min(live)
        yield hit
        for magic, at in found.items():
            if at == hit:
                found[magic] = chunk.find(magic, hit + 1)


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
