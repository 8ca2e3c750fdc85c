"""lakekit's own synthetic data for benchmarks: a deterministic "events" table (numpy + pyarrow).

Columns (one row per user event over ``DAYS`` days from 2024-01-01, sorted by time):

========== ============== ==========================================================
event_id   int64          1..N in time order
ts         timestamp[us]  uniform over the period
user_id    int64          up to ``USERS`` distinct, skewed (a few users are very active)
event_type string         10 values, skewed (views and clicks dominate)
country    string         40 ISO codes, Zipf-like
amount     float64        log-normal, cents
payload    string         a small JSON object (~70 bytes)
dt         date32         the day of ``ts``: the partition column
========== ============== ==========================================================

:func:`build_events_lake` writes it as a day-partitioned Parquet table ``bench.events`` of a
local lakekit lake (catalog entry + one file per day under the table's location) and caches the
lake under ``benchmarks/.data/`` keyed by rows, seed and :data:`VERSION`.
"""

from __future__ import annotations

import io
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

import lakekit

__all__ = [
    "DAYS",
    "START",
    "STREAM_SCHEMA",
    "EventsLake",
    "build_events_lake",
    "events_stream_file",
    "generate_events",
    "iter_event_batches",
]

VERSION = 3
"""Bump when the generated data changes, so cached lakes are rebuilt."""
START = np.datetime64("2024-01-01T00:00:00", "us")
DAYS = 30
USERS = 100_000
TABLE = "bench.events"

_EVENT_TYPES = [
    "view", "click", "search", "add_to_cart", "login", "logout", "checkout", "purchase",
    "share", "error",
]  # fmt: skip
_EVENT_WEIGHTS = np.array([34, 24, 11, 8, 7, 5, 4, 3, 2, 2], dtype=float)
_COUNTRIES = [
    "US", "IN", "BR", "DE", "GB", "FR", "JP", "ID", "MX", "CA", "IT", "ES", "KR", "AU", "TR",
    "NL", "PL", "SE", "BE", "AR", "NO", "AT", "IE", "IL", "TH", "NG", "EG", "ZA", "DK", "SG",
    "MY", "PH", "CO", "CL", "FI", "VN", "PK", "RO", "CZ", "PT",
]  # fmt: skip
_PAGES = ["home", "item", "list", "cart", "help", "account", "blog", "search"]

SCHEMA = pa.schema(
    [
        pa.field("event_id", pa.int64()),
        pa.field("ts", pa.timestamp("us")),
        pa.field("user_id", pa.int64()),
        pa.field("event_type", pa.string()),
        pa.field("country", pa.string()),
        pa.field("amount", pa.float64()),
        pa.field("payload", pa.string()),
        pa.field("dt", pa.date32()),
    ]
)


def generate_events(rows: int, seed: int = 7) -> pa.Table:
    """``rows`` events over :data:`DAYS` days, identical for identical ``(rows, seed)``."""
    rng = np.random.default_rng(seed)
    span = DAYS * 86_400 * 1_000_000
    offsets = np.sort(rng.integers(0, span, size=rows, dtype=np.int64))
    ts = pa.array(START + offsets.astype("timedelta64[us]"), pa.timestamp("us"))
    # Skewed activity over every user: rank = USERS * u**3 puts ~46% of events on the most
    # active 10% of users while most of the USERS ids still occur.
    rank = (USERS * rng.random(size=rows) ** 3).astype(np.int64)
    user_id = 1_000_000 + rank
    event_type = _pick(rng, _EVENT_TYPES, _EVENT_WEIGHTS, rows)
    country_weights = 1.0 / np.arange(1, len(_COUNTRIES) + 1) ** 0.8
    country = _pick(rng, _COUNTRIES, country_weights, rows)
    amount = np.round(rng.lognormal(mean=3.0, sigma=1.0, size=rows), 2)
    session = pc.utf8_slice_codeunits(
        pc.cast(pa.array(rng.integers(0, 2**62, size=rows, dtype=np.int64)), pa.string()), 0, 10
    )
    page = _pick(rng, _PAGES, np.ones(len(_PAGES)), rows)
    millis = pc.cast(pa.array(rng.integers(5, 5_000, size=rows, dtype=np.int64)), pa.string())
    payload = pc.binary_join_element_wise(
        '{"session":"', session, '","page":"/', page, '","ms":', millis, "}", ""
    )
    return pa.table(
        {
            "event_id": pa.array(np.arange(1, rows + 1, dtype=np.int64)),
            "ts": ts,
            "user_id": pa.array(user_id),
            "event_type": event_type,
            "country": country,
            "amount": pa.array(amount),
            "payload": payload,
            "dt": pc.cast(ts, pa.date32()),
        },
        schema=SCHEMA,
    )


def _pick(rng: np.random.Generator, values: list[str], weights: np.ndarray, rows: int) -> pa.Array:
    indices = rng.choice(len(values), size=rows, p=weights / weights.sum()).astype(np.int32)
    return pa.DictionaryArray.from_arrays(pa.array(indices), pa.array(values)).cast(pa.string())


@dataclass(frozen=True)
class EventsLake:
    """A built lake: where it is and what the events table holds."""

    root: Path
    rows: int
    files: int
    bytes: int
    build_seconds: float

    @property
    def url(self) -> str:
        return f"local://{self.root}"

    @property
    def table_dir(self) -> Path:
        return self.root / "tables" / "bench" / "events"


def build_events_lake(rows: int, *, seed: int = 7, cache_dir: Path | None = None) -> EventsLake:
    """A local lake holding ``bench.events`` (``rows`` rows, one Parquet file per day).

    Reused from ``cache_dir`` (default ``benchmarks/.data``) when a complete one exists.
    """
    cache_dir = cache_dir or Path(__file__).resolve().parent / ".data"
    root = cache_dir / f"events-v{VERSION}-{rows}-seed{seed}"
    marker = root / "COMPLETE"
    started = time.perf_counter()
    if not marker.is_file():
        shutil.rmtree(root, ignore_errors=True)
        data = generate_events(rows, seed)
        with lakekit.connect(f"local://{root}", store={"fsync": False}) as lake:
            table = lake.catalog.create_table(TABLE, SCHEMA, partition_by=["dt"])
            days = pc.unique(data["dt"]).to_pylist()
            for day in sorted(days):
                part = data.filter(pc.equal(data["dt"], pa.scalar(day, pa.date32())))
                buffer = io.BytesIO()
                pq.write_table(
                    part.drop_columns(["dt"]),
                    buffer,
                    compression="zstd",
                    row_group_size=122_880,
                )
                key = f"{table.location}/dt={day.isoformat()}/part-00000.parquet"
                lake.store.put(key, buffer.getvalue())
        marker.write_text(f"{rows} rows, seed {seed}\n")
    files = sorted((root / "tables" / "bench" / "events").rglob("*.parquet"))
    return EventsLake(
        root=root,
        rows=rows,
        files=len(files),
        bytes=sum(f.stat().st_size for f in files),
        build_seconds=time.perf_counter() - started,
    )


# -- streamed events (for write benchmarks) ----------------------------------------------------

STREAM_SCHEMA = SCHEMA.remove(SCHEMA.get_field_index("dt"))
"""The events as a producer emits them: every column but the derived partition column ``dt``."""
STREAM_VERSION = 1
"""Bump when :func:`iter_event_batches` changes, so cached stream files are rebuilt."""


def iter_event_batches(
    rows: int, *, seed: int = 7, batch_rows: int = 65_536
) -> Iterator[pa.RecordBatch]:
    """``rows`` events as record batches of ``batch_rows`` (the last may be shorter), in time order.

    Same columns and distributions as :func:`generate_events` without ``dt``
    (:data:`STREAM_SCHEMA`), but generated one batch at a time: memory is bounded by one batch
    whatever ``rows`` is. Batch ``b`` covers its share ``[b, b + 1) * batch_rows / rows`` of the
    :data:`DAYS`-day period, so timestamps increase across batches (as an event log's do) and a
    batch touches one or two days. Deterministic: identical ``(rows, seed, batch_rows)`` give
    identical batches (each batch has its own random stream, derived from ``seed`` and ``b``).
    """
    if rows < 0 or batch_rows < 1:
        raise ValueError("rows must be >= 0 and batch_rows >= 1")
    span = DAYS * 86_400 * 1_000_000
    country_weights = 1.0 / np.arange(1, len(_COUNTRIES) + 1) ** 0.8
    for index, first in enumerate(range(0, rows, batch_rows)):
        size = min(batch_rows, rows - first)
        rng = np.random.default_rng([seed, index])
        lo, hi = span * first // rows, span * (first + size) // rows
        offsets = np.sort(rng.integers(lo, max(hi, lo + 1), size=size, dtype=np.int64))
        ts = pa.array(START + offsets.astype("timedelta64[us]"), pa.timestamp("us"))
        rank = (USERS * rng.random(size=size) ** 3).astype(np.int64)
        session = pc.utf8_slice_codeunits(
            pc.cast(pa.array(rng.integers(0, 2**62, size=size, dtype=np.int64)), pa.string()),
            0,
            10,
        )
        page = _pick(rng, _PAGES, np.ones(len(_PAGES)), size)
        millis = pc.cast(pa.array(rng.integers(5, 5_000, size=size, dtype=np.int64)), pa.string())
        parts: list[Any] = ['{"session":"', session, '","page":"/', page, '","ms":', millis, "}"]
        payload = pc.binary_join_element_wise(*parts, "")
        yield pa.record_batch(
            [
                pa.array(np.arange(first + 1, first + size + 1, dtype=np.int64)),
                ts,
                pa.array(1_000_000 + rank),
                _pick(rng, _EVENT_TYPES, _EVENT_WEIGHTS, size),
                _pick(rng, _COUNTRIES, country_weights, size),
                pa.array(np.round(rng.lognormal(mean=3.0, sigma=1.0, size=size), 2)),
                payload,
            ],
            schema=STREAM_SCHEMA,
        )


def events_stream_file(
    rows: int, *, seed: int = 7, batch_rows: int = 65_536, cache_dir: Path | None = None
) -> Path:
    """An Arrow IPC stream file of :func:`iter_event_batches`, written once and cached.

    Write benchmarks read it back batch by batch (``pa.ipc.open_stream``), which costs almost
    nothing next to writing Parquet, whereas generating the events costs about as much as writing
    them: timing the generator would hide most of the difference between two writers. The file
    is written under a temporary name and renamed, so an interrupted build is never reused.
    """
    cache_dir = cache_dir or Path(__file__).resolve().parent / ".data"
    cache_dir.mkdir(parents=True, exist_ok=True)
    path = cache_dir / f"events-stream-v{STREAM_VERSION}-{rows}-seed{seed}-b{batch_rows}.arrows"
    if path.is_file():
        return path
    partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
    try:
        with pa.OSFile(str(partial), "wb") as sink, pa.ipc.new_stream(sink, STREAM_SCHEMA) as out:
            for batch in iter_event_batches(rows, seed=seed, batch_rows=batch_rows):
                out.write_batch(batch)
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)
    return path


# -- landing files (for ingest benchmarks) ------------------------------------------------------

LANDING_VERSION = 1
"""Bump when :func:`landing_files` changes, so cached landing directories are rebuilt."""
LANDING_SCHEMA = pa.schema(
    [(f.name, pa.string() if f.name == "ts" else f.type) for f in STREAM_SCHEMA]
)
"""The events as the landing files hold them: ``ts`` is an ISO-8601 string (``...T...``)."""


@dataclass(frozen=True)
class LandingFiles:
    """Cached NDJSON and CSV files of events, plus one increment file kept aside."""

    directory: Path
    """Holds the ``files`` (``part-NNN.ndjson`` / ``part-NNN.csv``, in event order)."""
    files: tuple[Path, ...]
    increment: Path
    """One more NDJSON file (the events right after the last file's), not among ``files``."""
    rows: int
    increment_rows: int

    @property
    def bytes(self) -> int:
        return sum(path.stat().st_size for path in self.files)


def landing_files(
    rows: int,
    *,
    files_per_format: int = 20,
    increment_fraction: float = 0.01,
    seed: int = 7,
    cache_dir: Path | None = None,
) -> LandingFiles:
    """``rows`` events in ``files_per_format`` NDJSON then as many CSV files, cached.

    The events are :func:`iter_event_batches` of ``rows + increment_rows`` rows, one batch per
    file: files ``0 .. files_per_format - 1`` are NDJSON, the next ``files_per_format`` CSV (a
    header line, RFC 4180 quoting), and the last batch (``increment_fraction`` of ``rows``) is
    the increment, an NDJSON file. ``ts`` is written as ISO-8601 text with microseconds, the
    other columns as their natural JSON/CSV values; ``payload`` (itself JSON text) is a string.
    Deterministic for identical arguments. Built under a temporary name and renamed, so an
    interrupted build is never reused.
    """
    import pyarrow.csv as pacsv

    count = 2 * files_per_format
    per_file = rows // count
    if per_file < 1:
        raise ValueError(f"rows must be at least {count}")
    rows = per_file * count
    increment_rows = max(1, round(rows * increment_fraction))
    cache_dir = cache_dir or Path(__file__).resolve().parent / ".data"
    directory = cache_dir / f"landing-v{LANDING_VERSION}-{rows}-{count}-seed{seed}"
    names = [
        f"part-{index:03d}.{'ndjson' if index < files_per_format else 'csv'}"
        for index in range(count)
    ]
    increment_name = f"increment/part-{count:03d}.ndjson"
    if not (directory / "COMPLETE").is_file():
        partial = directory.with_name(f"{directory.name}.{os.getpid()}.partial")
        shutil.rmtree(partial, ignore_errors=True)
        (partial / "increment").mkdir(parents=True)
        try:
            batches = iter_event_batches(rows + increment_rows, seed=seed, batch_rows=per_file)
            for name, batch in zip([*names, increment_name], batches, strict=False):
                text = _as_landing(batch)
                if name.endswith(".csv"):
                    pacsv.write_csv(text, str(partial / name))
                else:
                    (partial / name).write_bytes(_ndjson(text))
            (partial / "COMPLETE").write_text(f"{rows} + {increment_rows} rows, seed {seed}\n")
            shutil.rmtree(directory, ignore_errors=True)
            partial.replace(directory)
        finally:
            shutil.rmtree(partial, ignore_errors=True)
    return LandingFiles(
        directory=directory,
        files=tuple(directory / name for name in names),
        increment=directory / increment_name,
        rows=rows,
        increment_rows=increment_rows,
    )


def _as_landing(batch: pa.RecordBatch) -> pa.Table:
    """The batch with ``ts`` as ISO-8601 text (``2024-01-01T00:00:01.123456``)."""
    ts = pc.utf8_replace_slice(pc.cast(batch.column("ts"), pa.string()), 10, 11, "T")
    columns = [ts if name == "ts" else batch.column(name) for name in batch.schema.names]
    return pa.Table.from_arrays(columns, schema=LANDING_SCHEMA)


def _ndjson(table: pa.Table) -> bytes:
    """One JSON object per line, built with Arrow string kernels (no Python loop per row)."""

    def text(name: str) -> Any:
        return pc.cast(table.column(name), pa.string())

    def quoted(name: str) -> Any:
        escaped = pc.replace_substring(pc.replace_substring(text(name), "\\", "\\\\"), '"', '\\"')
        join: Any = pc.binary_join_element_wise
        return join('"', escaped, '"', "")

    parts: list[Any] = []
    for index, field in enumerate(table.schema):
        parts.append(("{" if index == 0 else ",") + f'"{field.name}":')
        parts.append(quoted(field.name) if pa.types.is_string(field.type) else text(field.name))
    parts.append("}\n")
    return "".join(pc.binary_join_element_wise(*parts, "").to_pylist()).encode()
