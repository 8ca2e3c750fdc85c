"""Windowed aggregation over a stream: a lakekit windowed job vs one pyarrow group_by.

The input is ``rows`` JSON readings (1,000 devices, one reading per device every 10 s of event
time, so ~2.8 h of data for 1M rows; ``temp`` a float, ``user`` one of 100,000 ids) published
once, keyed by device, into a 4-partition local stream of a fresh lake.

* **lakekit**: ``windowed(lake, "readings", group=<fresh>, key="device", time="ts",
  window=Tumbling("5m"), aggregate=..., sinks=[TableSink(...)]).run_once()``: polling the
  stream in blocks of 10,000 (``Consumer.poll_batch``), decoding each block's JSON with
  pyarrow, window assignment, hash aggregation, folding into the window states, the watermark,
  and committing the closed windows to a lake table with the checkpoint. A fresh consumer group
  per run, so each run reads everything.
* **baseline**: the same aggregation as one pyarrow computation over all the records at once,
  from the same JSON values already in memory (no stream, no state, no table):
  ``pyarrow.json.read_json`` of the NDJSON, the window start by integer arithmetic, and one
  ``group_by(["device", "window"]).aggregate(...)``.

Two workloads: ``count/mean/max`` and the same plus a distinct-users column (lakekit: a
HyperLogLog sketch per window, ``ApproxDistinct``; pyarrow: exact ``count_distinct``). The
ratio is the price of streaming (incremental state, bounded memory, exactly-once commits); no
target is set. ``extra`` reports records/s of each side, the CPU seconds each side used per run
(process CPU time, all threads: pyarrow parses the baseline's JSON on every core), and
records/s of merely consuming the stream (poll + commit, no processing) with ``poll_batch``
(the job's read path: the floor any job over this adapter starts from) and with ``poll``
(``Record`` objects).
"""

from __future__ import annotations

import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._harness import Report, compare, label

NAME = "windows"
DESCRIPTION = (
    "5-minute tumbling keyed aggregation of JSON readings from a local stream: lakekit "
    "windowed job (run_once into a lake table) vs one pyarrow group_by over all records"
)
DEVICES = 1_000
USERS = 100_000
STEP_S = 10.0
"""Seconds of event time between two readings of one device."""
START = 1_704_067_200  # 2024-01-01T00:00:00Z
WINDOW_S = 300
BATCH = 10_000


def readings(rows: int, seed: int = 7) -> list[bytes]:
    """``rows`` JSON readings in event-time order (deterministic)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    temps = np.round(rng.normal(21.0, 4.0, rows), 2)
    users = rng.integers(0, USERS, rows)
    step = STEP_S / DEVICES
    return [
        (
            f'{{"device":"d{i % DEVICES}","ts":{START + i * step:.3f},'
            f'"temp":{temps[i]},"user":{users[i]}}}'
        ).encode()
        for i in range(rows)
    ]


def build_stream(lake: Any, values: list[bytes]) -> None:
    """Publish the readings keyed by device, 10,000 per call."""
    from lakekit.interfaces.stream import Message

    stream = lake.stream("readings")
    for first in range(0, len(values), BATCH):
        chunk = values[first : first + BATCH]
        stream.publish_many(
            [Message(v, key=v[11 : v.index(b'"', 12)]) for v in chunk]  # the device id
        )


def aggregations(distinct: bool) -> dict[str, Any]:
    from lakekit.streaming import ApproxDistinct, Count, Max, Mean

    chosen: dict[str, Any] = {"n": Count(), "avg": Mean("temp"), "peak": Max("temp")}
    if distinct:
        chosen["users"] = ApproxDistinct("user")
    return chosen


def run_lakekit(lake: Any, group: str, *, distinct: bool) -> dict[str, Any]:
    """One windowed run over the whole stream; returns its stats and table name."""
    from lakekit.streaming import StreamSink, TableSink, Tumbling, windowed

    table = f"bench.{group}"
    job = windowed(
        lake,
        "readings",
        group=group,
        key="device",
        time="ts",
        window=Tumbling(f"{WINDOW_S}s"),
        allowed_lateness="10s",
        aggregate=aggregations(distinct),
        sinks=[TableSink(lake, table)],
        late=StreamSink(lake, "late"),
        batch_size=BATCH,
        poll_timeout=0.5,
    )
    stats = job.run_once()
    job.close()
    return {"stats": stats, "table": table, "watermark": job.watermark}


def run_baseline(ndjson: bytes, *, distinct: bool) -> Any:
    """The same aggregation with pyarrow over every record at once."""
    import io

    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.json as pj

    table = pj.read_json(io.BytesIO(ndjson), read_options=pj.ReadOptions(block_size=1 << 24))
    micros = pc.cast(pc.round(pc.multiply(table["ts"], 1_000_000)), pa.int64())
    size = WINDOW_S * 1_000_000
    window = pc.subtract(micros, pc.subtract(micros, pc.multiply(pc.divide(micros, size), size)))
    table = table.append_column("window", window)
    specs: list[Any] = [([], "count_all"), ("temp", "mean"), ("temp", "max")]
    if distinct:
        specs.append(("user", "count_distinct"))
    return table.group_by(["device", "window"]).aggregate(specs)


def consume_only(lake: Any, group: str, *, batch: bool = False) -> int:
    """Poll every record with a consumer group and commit: no decoding, no state.
    ``batch``: with ``poll_batch`` (a block of columns), else with ``poll`` (``Record``s)."""
    stream = lake.stream("readings")
    end = stream.offsets("latest")
    read = 0
    with stream.consumer(group) as consumer:
        poll = consumer.poll_batch if batch else consumer.poll
        while True:
            batch_read = poll(BATCH, timeout=0.5)
            if not batch_read:
                break
            read += len(batch_read)
            consumer.commit()
            if all(consumer._positions.get(p, 0) >= n for p, n in end.items()):
                break
    return read


def check_same_results(lake: Any, result: dict[str, Any], expected: Any) -> int:
    """Every window lakekit emitted has the baseline's count; return how many it emitted."""
    rows = lake.table(result["table"]).to_arrow().to_pylist()
    base = {
        (d, w // 1_000_000): n
        for d, w, n in zip(
            expected["device"].to_pylist(),
            expected["window"].to_pylist(),
            expected["count_all"].to_pylist(),
            strict=True,
        )
    }
    for row in rows:
        window = (row["device"], int(row["window_start"].timestamp()))
        if base.get(window) != row["n"]:
            raise AssertionError(f"window {window}: lakekit {row['n']}, pyarrow {base.get(window)}")
    closed = sum(1 for d, w in base if w + WINDOW_S <= result["watermark"].timestamp())
    if closed != len(rows):
        raise AssertionError(f"lakekit emitted {len(rows)} windows, {closed} had closed")
    return len(rows)


def run(quick: bool = False) -> Report:
    import lakekit

    rows = 100_000 if quick else 1_000_000
    repetitions = 3 if quick else 5
    values = readings(rows)
    ndjson = b"\n".join(values)
    scratch = Path(tempfile.mkdtemp(prefix="lakekit-bench-windows-"))
    comparisons = []
    extra: dict[str, Any] = {}
    try:
        with lakekit.connect(
            f"local://{scratch / 'lake'}", stream={"partitions": 4, "fsync": "batch"}
        ) as lake:
            build_stream(lake, values)
            groups = iter(range(10_000))
            emitted: dict[str, int] = {}
            for distinct in (False, True):
                workload = "count_mean_max" if not distinct else "with_distinct"
                name = f"{workload}_{label(rows)}"
                last: dict[str, Any] = {}
                cpu: dict[str, list[float]] = {"lakekit": [], "pyarrow": []}

                def ours(
                    distinct: bool = distinct,
                    last: dict[str, Any] = last,
                    cpu: dict[str, list[float]] = cpu,
                ) -> None:
                    started = time.process_time()
                    last["result"] = run_lakekit(lake, f"w{next(groups)}", distinct=distinct)
                    cpu["lakekit"].append(time.process_time() - started)

                def theirs(
                    distinct: bool = distinct,
                    last: dict[str, Any] = last,
                    cpu: dict[str, list[float]] = cpu,
                ) -> None:
                    started = time.process_time()
                    last["expected"] = run_baseline(ndjson, distinct=distinct)
                    cpu["pyarrow"].append(time.process_time() - started)

                comparison = compare(name, ours, theirs, repetitions=repetitions, warmup=1)
                comparisons.append(comparison)
                emitted[workload] = check_same_results(lake, last["result"], last["expected"])
                extra[f"records/s {workload}"] = (
                    f"lakekit {rows / comparison.lakekit_ms * 1000 / 1e6:.3f} M, "
                    f"pyarrow {rows / comparison.baseline_ms * 1000 / 1e6:.3f} M"
                )
                ours_cpu = statistics.median(cpu["lakekit"][-repetitions:])
                theirs_cpu = statistics.median(cpu["pyarrow"][-repetitions:])
                extra[f"CPU s per run {workload}"] = (
                    f"lakekit {ours_cpu:.3f}, pyarrow {theirs_cpu:.3f} "
                    f"(CPU ratio {ours_cpu / theirs_cpu:.2f}x)"
                )
            consume_s = _timed(lambda: consume_only(lake, "consume_batch", batch=True))
            extra["records/s consume only (poll_batch + commit)"] = (
                f"{rows / consume_s / 1e6:.3f} M"
            )
            consume_s = _timed(lambda: consume_only(lake, "consume"))
            extra["records/s consume only (poll + commit)"] = f"{rows / consume_s / 1e6:.3f} M"
            extra["windows emitted"] = ", ".join(f"{k} {v:,}" for k, v in emitted.items())
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return Report(
        name=NAME,
        description=DESCRIPTION,
        baseline=(
            "pyarrow.json.read_json of all values at once + integer window start + one "
            "group_by (count_distinct exact for the distinct workload)"
        ),
        comparisons=comparisons,
        parameters={
            "rows": rows,
            "devices": DEVICES,
            "window_s": WINDOW_S,
            "batch_size": BATCH,
            "partitions": 4,
            "repetitions": repetitions,
            "quick": quick,
        },
        extra=extra,
    )


def _timed(func: Callable[[], object]) -> float:
    started = time.perf_counter()
    func()
    return time.perf_counter() - started
