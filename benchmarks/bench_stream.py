"""Durable stream throughput: the local Stream against a raw append-only file, same fsync policy.

The workload the stream issue names: 1,000,000 records of 100 bytes, published in batches of
1,000 with the stream's DEFAULT durability setting (``fsync="batch"``: each publish is written
to the file before it returns, and a background thread fdatasyncs within 50 ms), then read back.
Each run happens in a fresh subprocess; the two sides alternate (the order flips every
repetition) and each figure is the median of its runs.

* **lakekit**: ``lakekit.connect("local://<dir>")``, ``lake.stream("bench")`` with default
  settings (4 partitions, ``fsync="batch"``), ``stream.publish_values(batch)`` per batch (the
  documented batch fast path of the facade); the lake is closed (pending data fdatasync'ed) and
  reopened, then a consumer group reads everything back: ``consumer.poll(max_records=1000)``
  and ``consumer.commit()`` after every poll. Then, on a second stream with ``fsync="always"``,
  the same publishes, each fdatasync'ed before it returns.
* **baseline**: one append-only file per workload, written with ``os.writev`` per batch:

  - *length-prefixed* (the judged baseline: like the stream, it can hold any bytes): each batch
    as ``u32 count, count x u32 lengths`` (one ``struct.pack``) then the joined values; read
    back with one ``read()`` and split by the lengths (``struct.unpack_from`` and slicing);
  - *newline-framed* (reported, not judged: it cannot hold a value containing a newline):
    ``b"\\n".join(batch)`` and a newline; read back with ``data.split(b"\\n")``;

  with the same fsync policy: a background thread fdatasyncs within 50 ms of a write (the
  stream's flusher, reimplemented), and for the ``always`` workload ``os.fdatasync`` after
  every batch.

Publish times stop when the last publish/write returns, i.e. when every record is acknowledged
under the policy; the final flush (closing) is reported separately as "durable". Targets:
lakekit's publish throughput at least 0.7x the length-prefixed file's, and its consume
throughput (records materialised as ``Record`` objects, with a durable commit per poll) at least
:data:`CONSUME_TARGET` x the raw read-and-split.

Run a single side by hand with ``python -m benchmarks.bench_stream --child <side> <records>
<output dir>``: it prints one JSON line.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import random
import resource
import shutil
import statistics
import struct
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._harness import Comparison, Report, label, run_child

NAME = "stream"
DESCRIPTION = (
    "Durable stream, 100-byte records in batches of 1,000: LocalStream publish_values and "
    "consumer-group poll+commit vs a raw append-only file with the same fsync policy"
)
PUBLISH_TARGET = 0.7
"""lakekit publish records/s at least this fraction of the length-prefixed file's."""
CONSUME_TARGET = 0.15
"""lakekit consume records/s at least this fraction of the raw read-and-split. Lower than the
publish target because consuming materialises one frozen ``Record`` dataclass per record (the
baseline produces bare ``bytes``): building the Record objects alone costs several times what
the whole baseline read does (the report's "Record objects alone" line measures it)."""
BATCH = 1_000
VALUE_BYTES = 100
FSYNC_INTERVAL_S = 0.05
"""The stream's default ``fsync_interval_ms`` (50), which the baseline's flusher copies."""
POOL_BATCHES = 16
"""Distinct batches, cycled (1M distinct values would cost both sides memory for nothing)."""
SIDES = ("lakekit", "baseline")
_CHILD_TIMEOUT_S = 900


def run(quick: bool = False) -> Report:
    records = 200_000 if quick else 1_000_000
    repetitions = 3 if quick else 7
    results: dict[str, list[dict[str, Any]]] = {side: [] for side in SIDES}
    scratch = Path(tempfile.mkdtemp(prefix="lakekit-bench-stream-"))
    try:
        for rep in range(repetitions):
            for side in SIDES if rep % 2 == 0 else SIDES[::-1]:
                out_dir = scratch / f"{side}-{rep}"
                result = run_child(
                    "benchmarks.bench_stream",
                    [side, str(records), str(out_dir)],
                    out_dir,
                    _CHILD_TIMEOUT_S,
                )
                results[side].append(result)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    n = label(records)
    comparisons = [
        _comparison(f"publish_{n}", results, "publish_s", "prefixed_write_s", PUBLISH_TARGET),
        _comparison(f"consume_{n}", results, "consume_s", "prefixed_read_s", CONSUME_TARGET),
        _comparison(f"publish_{n}_vs_newline", results, "publish_s", "newline_write_s", None),
        _comparison(f"consume_{n}_vs_newline", results, "consume_s", "newline_read_s", None),
        _comparison(
            f"publish_{n}_fsync_always", results, "always_publish_s", "always_write_s", None
        ),
    ]
    ours, theirs = results["lakekit"], results["baseline"]

    def rate(side: list[dict[str, Any]], key: str) -> float:
        return records / statistics.median(r[key] for r in side)

    extra: dict[str, Any] = {}
    for title, our_key, their_key in (
        ("publish rec/s (fsync=batch)", "publish_s", "prefixed_write_s"),
        ("consume rec/s", "consume_s", "prefixed_read_s"),
        ("publish rec/s vs newline file", "publish_s", "newline_write_s"),
        ("consume rec/s vs newline file", "consume_s", "newline_read_s"),
        ("publish rec/s (fsync=always)", "always_publish_s", "always_write_s"),
        ("until durable rec/s (fsync=batch, incl. close)", "durable_s", "prefixed_durable_s"),
    ):
        a, b = rate(ours, our_key), rate(theirs, their_key)
        extra[title] = f"lakekit {a / 1e6:.2f} M, file {b / 1e6:.2f} M, lakekit/file {a / b:.3f}"
    floor = rate(ours, "records_alone_s")
    extra["Record objects alone"] = (
        f"{floor / 1e6:.2f} M/s with the dataclass constructor, "
        f"{floor / rate(theirs, 'prefixed_read_s'):.3f}x the raw read-and-split"
    )
    extra["CPU seconds (publish, consume)"] = (
        f"lakekit {statistics.median(r['publish_cpu_s'] for r in ours):.2f}, "
        f"{statistics.median(r['consume_cpu_s'] for r in ours):.2f}; file "
        f"{statistics.median(r['prefixed_write_cpu_s'] for r in theirs):.2f}, "
        f"{statistics.median(r['prefixed_read_cpu_s'] for r in theirs):.2f}"
    )
    extra["bytes on disk"] = (
        f"lakekit {ours[0]['bytes'] / 1e6:.1f} MB (segments + index), length-prefixed file "
        f"{theirs[0]['prefixed_bytes'] / 1e6:.1f} MB, newline file "
        f"{theirs[0]['newline_bytes'] / 1e6:.1f} MB"
    )
    return _StreamReport(
        name=NAME,
        description=DESCRIPTION,
        baseline=(
            "append-only file, os.writev per batch, fdatasync within 50 ms by a background "
            "thread (fsync=always: after every batch); length-prefixed (judged) and "
            "newline-framed; read back whole and split"
        ),
        comparisons=comparisons,
        parameters={
            "records": records,
            "batch": BATCH,
            "value_bytes": VALUE_BYTES,
            "repetitions": repetitions,
            "quick": quick,
            "fsync": "batch (default), 50 ms; and always",
            "consumer": "poll(max_records=1000) + commit() per poll, one member, 4 partitions",
            "isolation": "one fresh subprocess per run, sides alternating",
        },
        extra=extra,
        runs=results,
    )


@dataclass
class _StreamReport(Report):
    """A :class:`Report` that also saves every child's result."""

    runs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        data = super().as_dict()
        data["extra_targets"] = {"publish": PUBLISH_TARGET, "consume": CONSUME_TARGET}
        data["runs"] = self.runs
        return data


def _comparison(
    name: str,
    results: dict[str, list[dict[str, Any]]],
    our_key: str,
    their_key: str,
    throughput_target: float | None,
) -> Comparison:
    ours = [r[our_key] * 1000 for r in results["lakekit"]]
    theirs = [r[their_key] * 1000 for r in results["baseline"]]
    return Comparison(
        name=name,
        lakekit_ms=statistics.median(ours),
        baseline_ms=statistics.median(theirs),
        target=None if throughput_target is None else 1 / throughput_target,
        lakekit_samples_ms=[round(s, 3) for s in ours],
        baseline_samples_ms=[round(s, 3) for s in theirs],
    )


# -- the workload ------------------------------------------------------------------------------


def batches(records: int) -> list[list[bytes]]:
    """``records // BATCH`` batches of ``BATCH`` 100-byte ASCII values (no newline), cycling
    through :data:`POOL_BATCHES` distinct batches."""
    rng = random.Random(42)
    pool = [
        [
            (f"{b:04d}-{i:05d}-".encode() + rng.randbytes(VALUE_BYTES).hex().encode())[:VALUE_BYTES]
            for i in range(BATCH)
        ]
        for b in range(POOL_BATCHES)
    ]
    return list(itertools.islice(itertools.cycle(pool), records // BATCH))


class _Timer:
    def __enter__(self) -> _Timer:
        self.cpu = _cpu_seconds()
        self.started = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.started
        self.cpu = _cpu_seconds() - self.cpu


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# -- lakekit side --------------------------------------------------------------------------------


def lakekit_side(records: int, out_dir: Path) -> dict[str, Any]:
    import lakekit

    work = batches(records)
    result: dict[str, Any] = {}
    lake = lakekit.connect(f"local://{out_dir}")
    stream = lake.stream("bench")
    with _Timer() as publish:
        for batch in work:
            stream.publish_values(batch)
    with _Timer() as closing:
        lake.close()  # fdatasyncs what the flusher has not yet
    result |= {
        "publish_s": publish.seconds,
        "publish_cpu_s": publish.cpu,
        "durable_s": publish.seconds + closing.seconds,
    }

    with lakekit.connect(f"local://{out_dir}") as lake:
        stream = lake.stream("bench")
        count = 0
        with stream.consumer("bench") as consumer, _Timer() as consume:
            while polled := consumer.poll(max_records=BATCH):
                count += len(polled)
                consumer.commit()
        last = _last_batch(stream)
        committed = stream.committed("bench")
        latest = stream.offsets("latest")
    if count != records or committed != latest or sum(latest.values()) != records:
        raise AssertionError(f"consumed {count:,} of {records:,} records ({committed=})")
    if last not in [set(batch) for batch in work[:POOL_BATCHES]]:
        raise AssertionError("the last published values did not read back")
    result |= {"consume_s": consume.seconds, "consume_cpu_s": consume.cpu, "consumed": count}
    result["bytes"] = sum(p.stat().st_size for p in out_dir.rglob("*.log")) + sum(
        p.stat().st_size for p in out_dir.rglob("*.idx")
    )

    with lakekit.connect(f"local://{out_dir}", stream={"fsync": "always"}) as lake:
        stream = lake.stream("bench_always")
        with _Timer() as always:
            for batch in work:
                stream.publish_values(batch)
    result["always_publish_s"] = always.seconds
    result["records_alone_s"] = _records_alone(records)
    return result


def _records_alone(records: int) -> float:
    """Seconds to build ``records`` Record objects with the dataclass constructor, from fields
    at hand: what any consumer API returning Records pays at least once per record."""
    from datetime import UTC, datetime

    from lakekit.interfaces.stream import Record

    now = datetime.now(UTC)
    values = batches(BATCH)[0]
    with _Timer() as timer:
        for start in range(0, records, BATCH):
            [Record("bench", 0, start + i, now, v, None, {}) for i, v in enumerate(values)]
    return timer.seconds


def _last_batch(stream: Any) -> set[bytes]:
    """The values of the last ``BATCH`` records of the fullest partition (one whole batch:
    a batch goes to one partition)."""
    latest = stream.offsets("latest")
    partition = max(latest, key=lambda p: latest[p])
    return {r.value for r in stream.read(partition, latest[partition] - BATCH, BATCH)}


# -- baseline side -------------------------------------------------------------------------------


class _IntervalSync:
    """fdatasync ``fd`` at most ``interval`` after a write, on a thread (the stream's
    ``fsync="batch"`` flusher, reimplemented for the plain file)."""

    def __init__(self, fd: int, interval: float) -> None:
        self._fd = fd
        self._interval = interval
        self._cond = threading.Condition()
        self._pending = False
        self._stopping = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def mark(self) -> None:
        with self._cond:
            if not self._pending:
                self._pending = True
                self._cond.notify()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify()
        self._thread.join()
        os.fdatasync(self._fd)

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._pending or self._stopping)
                if self._stopping:
                    return
                self._cond.wait_for(lambda: self._stopping, timeout=self._interval)
                self._pending = False
            os.fdatasync(self._fd)


def _prefixed(batch: list[bytes]) -> list[bytes]:
    return [struct.pack(f"<I{len(batch)}I", len(batch), *map(len, batch)), b"".join(batch)]


def _newline(batch: list[bytes]) -> list[bytes]:
    return [b"\n".join(batch), b"\n"]


def _write_file(
    path: Path, work: list[list[bytes]], frame: Callable[[list[bytes]], list[bytes]], *, each: bool
) -> tuple[float, float, float]:
    """Append every batch; (seconds until the last write returned, CPU seconds, seconds until
    durable)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        syncer = None if each else _IntervalSync(fd, FSYNC_INTERVAL_S)
        with _Timer() as timer:
            for batch in work:
                os.writev(fd, frame(batch))
                if syncer is None:
                    os.fdatasync(fd)
                else:
                    syncer.mark()
        with _Timer() as closing:
            if syncer is not None:
                syncer.stop()
    finally:
        os.close(fd)
    return timer.seconds, timer.cpu, timer.seconds + closing.seconds


def read_prefixed(path: Path) -> Iterator[list[bytes]]:
    """The batches of a length-prefixed file, each as its list of values."""
    with path.open("rb") as fh:
        data = fh.read()
    position = 0
    while position < len(data):
        (count,) = struct.unpack_from("<I", data, position)
        lens = struct.unpack_from(f"<{count}I", data, position + 4)
        position += 4 + 4 * count
        ends = list(itertools.accumulate(lens, initial=position))
        yield [data[a:b] for a, b in itertools.pairwise(ends)]
        position = ends[-1]


def read_newline(path: Path) -> list[bytes]:
    with path.open("rb") as fh:
        values = fh.read().split(b"\n")
    values.pop()  # after the last newline
    return values


def baseline_side(records: int, out_dir: Path) -> dict[str, Any]:
    work = batches(records)
    out_dir.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {}
    prefixed, newline = out_dir / "prefixed.bin", out_dir / "newline.txt"

    seconds, cpu, durable = _write_file(prefixed, work, _prefixed, each=False)
    result |= {"prefixed_write_s": seconds, "prefixed_write_cpu_s": cpu}
    result["prefixed_durable_s"] = durable
    count = 0
    with _Timer() as reading:
        for values in read_prefixed(prefixed):
            count += len(values)
            last = values
    _check(count, records, last, work)
    result |= {"prefixed_read_s": reading.seconds, "prefixed_read_cpu_s": reading.cpu}

    seconds, _cpu, _durable = _write_file(newline, work, _newline, each=False)
    result["newline_write_s"] = seconds
    with _Timer() as reading:
        values = read_newline(newline)
    _check(len(values), records, values[-BATCH:], work)
    result["newline_read_s"] = reading.seconds

    seconds, _cpu, _durable = _write_file(out_dir / "always.bin", work, _prefixed, each=True)
    result["always_write_s"] = seconds
    result["prefixed_bytes"] = prefixed.stat().st_size
    result["newline_bytes"] = newline.stat().st_size
    return result


def _check(count: int, records: int, last: list[bytes], work: list[list[bytes]]) -> None:
    if count != records or last != work[-1]:
        raise AssertionError(f"read {count:,} of {records:,} records back")


def _child(side: str, records: int, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    result = (lakekit_side if side == "lakekit" else baseline_side)(records, out_dir)
    result["side"] = side
    result["records"] = records
    result["pid"] = os.getpid()
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--child" and sys.argv[2] in SIDES:
        with contextlib.suppress(BrokenPipeError):
            _child(sys.argv[2], int(sys.argv[3]), Path(sys.argv[4]))
    else:
        sys.exit(f"usage: python -m benchmarks.bench_stream --child {{{','.join(SIDES)}}} "
                 "<records> <output dir>")  # fmt: skip
