"""How lakekit records travel in Kinesis records: partition keys, framing, offsets.

**Framing.** One Kinesis record (the *data blob*) carries one or more lakekit records of the
same key, in publish order, so that a key's records in one PutRecords request succeed or fail
together (see :mod:`lakekit.adapters.aws.kinesis_stream` for why this keeps per-key order)::

    "LKK1" | entry... | crc32 u32          (big-endian; crc32 over the entries)
    entry  = ts_ms i64 | key_len i32 (-1: no key) | key
             | headers_len u32 | headers JSON | value_len u32 | value

Headers are a JSON object of strings (length 0 when there are none); the key is the lakekit
key's exact bytes (Kinesis' own partition key is derived from it, see :func:`partition_key`).
A blob that does not start with the magic or whose checksum does not match is read as a plain
record written by another producer: its value is the blob, its key the partition key, its time
the arrival time, no headers.

**Offsets.** A lakekit offset is ``sequence_number << 16 | index``: the Kinesis sequence number
of the blob and the record's index inside it. Offsets are unique and increase in publish order
within a shard, but are not consecutive (Kinesis sequence numbers are not), and they are large
(real sequence numbers have up to 56 decimal digits).
"""

from __future__ import annotations

import hashlib
import json
import struct
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from lakekit.errors import InvalidInputError

__all__ = [
    "INDEX_BITS",
    "MAGIC",
    "MAX_BLOB",
    "MAX_PARTITION_KEY_CHARS",
    "MAX_RECORDS_PER_BLOB",
    "Entry",
    "decode_blob",
    "encode_entry",
    "end_offset",
    "frame",
    "offset_of",
    "partition_key",
    "split_offset",
]

MAGIC = b"LKK1"
INDEX_BITS = 16
MAX_RECORDS_PER_BLOB = (1 << INDEX_BITS) - 1
MAX_BLOB = 1024 * 1024
"""Kinesis' limit for one record: data blob plus partition key, in bytes."""
MAX_PARTITION_KEY_CHARS = 256
_HEAD = struct.Struct(">qi")
_LEN = struct.Struct(">I")
_CRC = struct.Struct(">I")
FRAME_OVERHEAD = len(MAGIC) + _CRC.size


@dataclass(frozen=True, slots=True)
class Entry:
    """One decoded lakekit record of a blob."""

    index: int
    value: bytes
    key: bytes | None
    headers: dict[str, str]
    timestamp: datetime | None
    """The event time carried in the frame; None for a plain (unframed) blob."""


def partition_key(key: bytes | None, unkeyed: str) -> str:
    """The Kinesis partition key of a lakekit key.

    A key that is valid UTF-8 of 1 to 256 characters is used as it is (so other Kinesis
    consumers see it); any other key (empty, longer, binary) maps to ``"lk:" + sha256 hex``.
    The same lakekit key always maps to the same partition key, hence the same shard.
    ``unkeyed`` is used for records without a key.
    """
    if key is None:
        return unkeyed
    try:
        text = key.decode("utf-8")
    except UnicodeDecodeError:
        text = ""
    if 1 <= len(text) <= MAX_PARTITION_KEY_CHARS and not text.startswith("lk:"):
        return text
    return "lk:" + hashlib.sha256(key).hexdigest()


def encode_entry(value: bytes, key: bytes | None, headers: Mapping[str, str], ts_ms: int) -> bytes:
    """The framed bytes of one record (without the blob's magic and checksum).

    Raises:
        InvalidInputError: a header name or value is not a str.
    """
    for name, text in headers.items():
        if not isinstance(name, str) or not isinstance(text, str):
            raise InvalidInputError(f"record headers must map str to str, got {name!r}")
    head = (
        json.dumps(dict(headers), ensure_ascii=False, separators=(",", ":")).encode()
        if headers
        else b""
    )
    key_len = -1 if key is None else len(key)
    return b"".join(
        (
            _HEAD.pack(ts_ms, key_len),
            key or b"",
            _LEN.pack(len(head)),
            head,
            _LEN.pack(len(value)),
            value,
        )
    )


def frame(entries: list[bytes]) -> bytes:
    """A blob holding the given encoded entries."""
    body = b"".join(entries)
    return MAGIC + body + _CRC.pack(zlib.crc32(body))


def decode_blob(data: bytes, partition_key_text: str, arrival: datetime) -> list[Entry]:
    """The records of one Kinesis record: framed by lakekit, or a plain blob (one record)."""
    entries = _decode_framed(data)
    if entries is not None:
        return entries
    return [
        Entry(
            index=0,
            value=data,
            key=partition_key_text.encode("utf-8"),
            headers={},
            timestamp=None,
        )
    ]


def _decode_framed(data: bytes) -> list[Entry] | None:
    if len(data) < FRAME_OVERHEAD or not data.startswith(MAGIC):
        return None
    body = memoryview(data)[len(MAGIC) : len(data) - _CRC.size]
    if zlib.crc32(body) != _CRC.unpack_from(data, len(data) - _CRC.size)[0]:
        return None
    entries: list[Entry] = []
    pos = 0
    try:
        while pos < len(body):
            ts_ms, key_len = _HEAD.unpack_from(body, pos)
            pos += _HEAD.size
            key = None
            if key_len >= 0:
                key = bytes(body[pos : pos + key_len])
                pos += key_len
            (head_len,) = _LEN.unpack_from(body, pos)
            pos += _LEN.size
            headers = json.loads(bytes(body[pos : pos + head_len])) if head_len else {}
            pos += head_len
            (value_len,) = _LEN.unpack_from(body, pos)
            pos += _LEN.size
            value = bytes(body[pos : pos + value_len])
            pos += value_len
            if pos > len(body) or not isinstance(headers, dict):
                return None
            entries.append(
                Entry(
                    index=len(entries),
                    value=value,
                    key=key,
                    headers={str(k): str(v) for k, v in headers.items()},
                    timestamp=datetime.fromtimestamp(ts_ms / 1000, tz=UTC),
                )
            )
    except (struct.error, ValueError, OverflowError, OSError):
        return None
    return entries


def offset_of(sequence_number: str | int, index: int = 0) -> int:
    """The lakekit offset of record ``index`` of the Kinesis record ``sequence_number``."""
    return (int(sequence_number) << INDEX_BITS) | index


def split_offset(offset: int) -> tuple[int, int]:
    """``(sequence number, index)`` of a lakekit offset."""
    return offset >> INDEX_BITS, offset & MAX_RECORDS_PER_BLOB


def end_offset(ending_sequence_number: str | int) -> int:
    """An offset past every record of a closed shard whose range ends at this sequence number."""
    return (int(ending_sequence_number) + 1) << INDEX_BITS
