"""kill -9 a windowed job again and again: every window lands in the table exactly once, with
exact aggregates, and the table always agrees with the committed checkpoint.

The parent publishes ``TOTAL`` readings (8 devices over 3 partitions, one second apart, every
97th reading after the first thousand an hour late) and one far-future reading per device, which
moves the watermark past every real window. Child processes run the job with a commit after
every small batch (a table-sink append carrying the checkpoint, or a compare-and-swap of the
checkpoint alone), late records going to a table, and results also to a stream. The parent
SIGKILLs each child — at a random moment, or just as its n-th catalog commit starts — and then
checks, against the checkpoint committed at that moment:

* the results table holds exactly the windows the committed watermark has closed, each once,
  each with the exact count and sum of its readings;
* the late table holds every late record before the committed offsets, each once, and nothing
  that is not late.

Finally a run to completion leaves every window and every late record exactly once, the stream
sink holds every result at least once (repeats identical), and one checkpoint payload is left.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import signal
import time
import zlib
from pathlib import Path
from typing import Any

import pytest

import lakekit
from lakekit.interfaces.stream import Message
from lakekit.lake import Lake
from lakekit.streaming import (
    Count,
    KeyValueView,
    StreamSink,
    Sum,
    TableSink,
    Tumbling,
    WindowedJob,
    windowed,
)

# Defined here rather than imported from conftest.py: the child processes import this module,
# and there "conftest" may resolve to tests/conftest.py.
T0 = 1_700_000_100  # a multiple of 30 s
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL"),
]

TOTAL = 3000
DEVICES = 8
SIZE = 30
ITERATIONS = 16
MIN_KILLS = 8
_PRELOAD = [
    "lakekit.lake",
    "lakekit.streaming",
    "lakekit.streaming.job",
    "lakekit.streaming._records",
    "lakekit.tables.table",
    "lakekit.tables.writer",
    "lakekit.tables.merge",
    "lakekit.adapters.local.object_store",
    "lakekit.adapters.local.stream",
    "lakekit.adapters.sql.catalog",
    "sqlalchemy",
    "sqlalchemy.dialects.sqlite",
    "pyarrow.json",
    "pyarrow.dataset",
    "pyarrow.parquet",
    "datasketches",
    "pytest",
]


def _publish(lake: Lake, rows: list[dict[str, Any]]) -> None:
    lake.stream("readings").publish_many(
        [Message(json.dumps(r).encode(), key=r["device"].encode()) for r in rows]
    )


def _connect(url: str) -> Lake:
    return lakekit.connect(url, store={"fsync": False}, stream={"fsync": "never", "partitions": 3})


def _job(lake: Lake) -> WindowedJob:
    return windowed(
        lake,
        "readings",
        group="crashy",
        key="device",
        time="ts",
        window=Tumbling(f"{SIZE}s"),
        allowed_lateness="5s",
        aggregate={"n": Count(), "total": Sum("temp")},
        late=TableSink(lake, "crash.late"),
        sinks=[TableSink(lake, "crash.stats"), StreamSink(lake, "feed"), KeyValueView()],
        batch_size=13,
        checkpoint_every=0,
        poll_timeout=0.2,
    )


def _readings() -> tuple[list[dict[str, Any]], set[int]]:
    rows, late = [], set()
    for i in range(TOTAL):
        device = f"d{i % DEVICES}"
        if i >= 1000 and i % 97 == 0:
            rows.append({"device": device, "ts": T0 - 3600 + i, "temp": 1.0, "i": i})
            late.add(i)
        else:
            rows.append({"device": device, "ts": T0 + i, "temp": float(i % 13), "i": i})
    for k in range(DEVICES):  # far in the future: closes every real window
        rows.append({"device": f"d{k}", "ts": T0 + 1_000_000, "temp": 0.0, "i": TOTAL + k})
    return rows, late


def _expected(rows: list[dict[str, Any]], late: set[int]) -> dict[tuple[str, int], tuple]:
    out: dict[tuple[str, int], tuple[int, float]] = {}
    for row in rows:
        if row["i"] in late or row["i"] >= TOTAL:
            continue
        window = (row["device"], row["ts"] - row["ts"] % SIZE)
        n, total = out.get(window, (0, 0.0))
        out[window] = (n + 1, total + row["temp"])
    return out


def _child(url: str, log_path: str) -> None:
    """Run the job once to the end, logging ``commit`` as each catalog commit starts."""
    lake = _connect(url)
    catalog = lake.catalog
    commit, put_state = catalog.commit, catalog.put_state
    with open(log_path, "a", encoding="utf-8") as log:

        def logged(func: Any) -> Any:
            def call(*args: Any, **kwargs: Any) -> Any:
                log.write("commit\n")
                log.flush()
                return func(*args, **kwargs)

            return call

        catalog.commit = logged(commit)  # type: ignore[method-assign]
        catalog.put_state = logged(put_state)  # type: ignore[method-assign]
        job = _job(lake)
        log.write("ready\n")
        log.flush()
        job.run_once()
        log.write("done\n")
        log.flush()
    lake.close()


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").split("\n")[:-1] if path.exists() else []


def _wait_for(path: Path, count: int, line: str, process: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while _lines(path).count(line) < count:
        if not process.is_alive():
            return
        assert time.monotonic() < deadline, f"child never logged {line!r} x{count}"
        time.sleep(0.0005)


def _context() -> Any:
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(_PRELOAD)
        return ctx
    return multiprocessing.get_context("spawn")


def _check(
    url: str, rows: list[dict[str, Any]], late: set[int], expected: dict[tuple[str, int], tuple]
) -> int | None:
    """Assert the tables agree with the committed checkpoint; return its watermark (s)."""
    with _connect(url) as lake:
        job = _job(lake)
        entry = lake.catalog.get_state(job.checkpoints.state_key)
        if entry is None:
            assert not lake.catalog.table_exists("crash.stats")
            return None
        payload = json.loads(lake.store.get(entry["payload"]))
        value = payload["watermark"]["value"]
        watermark = None if value is None else value // 1_000_000
        windows: dict[tuple[str, int], tuple[int, float]] = {}
        if lake.catalog.table_exists("crash.stats"):
            for row in lake.table("crash.stats").to_arrow().to_pylist():
                window = (row["device"], int(row["window_start"].timestamp()))
                assert window not in windows, f"window {window} was committed twice"
                windows[window] = (row["n"], row["total"])
        closed = {
            w: v for w, v in expected.items() if watermark is not None and w[1] + SIZE <= watermark
        }
        assert windows == closed, f"table and checkpoint (watermark {watermark}) disagree"
        by_position = {}
        for i, row in enumerate(rows):
            by_position.setdefault(zlib.crc32(row["device"].encode()) % 3, []).append(i)
        stored: list[int] = []
        if lake.catalog.table_exists("crash.late"):
            stored = [
                json.loads(v)["i"] for v in lake.table("crash.late").to_arrow()["value"].to_pylist()
            ]
        assert len(stored) == len(set(stored)), "a late record was stored twice"
        assert set(stored) <= late, "a record that was not late went to the late table"
        offsets = {int(p): n for p, n in entry["offsets"].items()}
        below = {
            rows[i]["i"] for p, indexes in by_position.items() for i in indexes[: offsets.get(p, 0)]
        }
        assert late & below <= set(stored), "a late record before the checkpoint is missing"
        return watermark


def test_killed_windowed_jobs_emit_every_window_exactly_once(tmp_path: Path) -> None:
    url = f"local://{tmp_path / 'lake'}"
    rows, late = _readings()
    expected = _expected(rows, late)
    with _connect(url) as lake:
        _publish(lake, rows)
        used = {zlib.crc32(f"d{k}".encode()) % 3 for k in range(DEVICES)}
        assert used == {0, 1, 2}, "every partition needs readings (and a far-future one)"
    ctx = _context()
    rng = random.Random(20261203)
    marks: list[int | None] = []
    kills = 0
    began = time.monotonic()
    for iteration in range(ITERATIONS):
        log_path = tmp_path / f"child-{iteration}.log"
        child = ctx.Process(target=_child, args=(url, str(log_path)))
        child.start()
        try:
            _wait_for(log_path, 1, "ready", child)
            if iteration % 2:
                time.sleep(rng.uniform(0.02, 0.25))
            else:  # just as the n-th catalog commit starts
                _wait_for(log_path, rng.randrange(1, 12), "commit", child)
                time.sleep(rng.uniform(0.0, 0.004))
            if child.is_alive():
                assert child.pid is not None
                os.kill(child.pid, signal.SIGKILL)
        finally:
            child.join(30)
            if child.is_alive():  # pragma: no cover - only if the kill failed
                child.kill()
                child.join(5)
        if "done" in _lines(log_path):
            break  # the run completed before the kill: nothing left to interrupt
        assert child.exitcode == -signal.SIGKILL
        kills += 1
        marks.append(_check(url, rows, late, expected))
    assert kills >= MIN_KILLS, "the runs finished too fast to be interrupted"
    progress = [m for m in marks if m is not None]
    assert progress and progress == sorted(progress), "committed watermarks went backwards"

    with _connect(url) as lake:
        stats = _job(lake).run_once()
    assert _check(url, rows, late, expected) == T0 + 1_000_000 - 5
    with _connect(url) as lake:
        stored = lake.table("crash.late").to_arrow()["value"].to_pylist()
        assert {json.loads(v)["i"] for v in stored} == late
        feed: dict[str, dict[str, Any]] = {}
        published = 0
        for record in lake.stream("feed").replay():
            result = record.json()
            published += 1
            assert feed.setdefault(result["id"], result) == result, "a repeat differs"
        assert {(r["device"], r["window_start"]) for r in feed.values()} == {
            (d, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(s))) for d, s in expected
        }
        assert len(lake.store.list_keys("streaming/readings/crashy/")) == 1
    print(
        f"{kills} kills in {time.monotonic() - began:.1f} s at watermarks {marks}; final run "
        f"read {stats.records} records in {stats.commits} commits; the feed holds {len(feed)} "
        f"results in {published} records (at least once)"
    )
