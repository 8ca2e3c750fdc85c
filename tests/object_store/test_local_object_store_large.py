"""Large objects stream through the local store without being held in memory."""

from __future__ import annotations

import hashlib
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

from lakekit.adapters.local.object_store import LocalObjectStore
from lakekit.interfaces.object_store import ObjectStore

MIB = 1024 * 1024
CHUNK = MIB
TOTAL = 64 * MIB
# A 1 MiB chunk followed by 251 more bytes, so that chunk i can start at offset i % 251: every
# chunk differs and a byte's value depends on its offset (catches off-by-one range reads).
_PATTERN = bytes(range(251)) * (CHUNK // 251 + 2)


def _chunk(i: int) -> bytes:
    return _PATTERN[i % 251 : i % 251 + CHUNK]


def _generate() -> Iterator[bytes]:
    for i in range(TOTAL // CHUNK):
        yield _chunk(i)


def _expected(start: int, end: int) -> bytes:
    parts = []
    for i in range(start // CHUNK, (end - 1) // CHUNK + 1):
        lo = max(start, i * CHUNK) - i * CHUNK
        hi = min(end, (i + 1) * CHUNK) - i * CHUNK
        parts.append(_chunk(i)[lo:hi])
    return b"".join(parts)


def test_64_mib_object_streams_in_and_out_with_little_memory(tmp_path: Path) -> None:
    store = ObjectStore(LocalObjectStore(tmp_path / "lake"))
    expected = hashlib.sha256()
    for piece in _generate():
        expected.update(piece)

    tracemalloc.start()
    try:
        meta = store.put("big/object.bin", _generate())
        _, put_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()

        actual = hashlib.sha256()
        with store.open("big/object.bin") as stream:
            while piece := stream.read(CHUNK):
                actual.update(piece)
        _, read_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert meta.size == TOTAL
    assert store.head("big/object.bin").size == TOTAL
    assert actual.hexdigest() == expected.hexdigest()
    assert put_peak < 8 * MIB, f"put held {put_peak / MIB:.1f} MiB"
    assert read_peak < 8 * MIB, f"read held {read_peak / MIB:.1f} MiB"


def test_range_reads_on_a_64_mib_object(tmp_path: Path) -> None:
    store = ObjectStore(LocalObjectStore(tmp_path / "lake", fsync=False))
    store.put("big", _generate())
    ranges = [
        (0, 10),
        (CHUNK - 5, CHUNK + 5),
        (17 * CHUNK + 3, 19 * CHUNK + 7),
        (TOTAL - 100, TOTAL),
        (TOTAL - 100, TOTAL + 1000),
    ]
    for start, end in ranges:
        assert store.get_range("big", start, end) == _expected(start, min(end, TOTAL))
    assert store.get_range("big", TOTAL, TOTAL + 10) == b""

    tracemalloc.start()
    try:
        digest = hashlib.sha256()
        with store.open("big", start=5 * CHUNK + 1, end=45 * CHUNK) as stream:
            stream.seek(CHUNK)
            assert stream.tell() == CHUNK
            while piece := stream.read(CHUNK):
                digest.update(piece)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    reference = hashlib.sha256(_expected(6 * CHUNK + 1, 45 * CHUNK)).hexdigest()
    assert digest.hexdigest() == reference
    assert peak < 8 * MIB
