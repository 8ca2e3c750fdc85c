"""Durable stream throughput: the local Stream against raw append-only files, same fsync policy.

The workload the stream issue names: 1,000,000 records of 100 bytes, published in batches of
1,000 with the stream's DEFAULT durability setting (``fsync="batch"``: each publish is written
to the file before it returns, and a background thread fdatasyncs within 50 ms), then consumed.
Each run happens in a fresh subprocess; the two sides alternate (the order flips every
repetition) and each figure is the median of its runs.

Partitions are counted alike on both sides, two ways, both judged:

* **4 partitions vs 4 files** (the stream's default layout): lakekit's default stream (4
  partitions; unkeyed ``publish_values`` calls rotate over them, a whole batch per partition)
  against 4 append-only files written in the same rotation;
* **1 partition vs 1 file** (the issue's literal "an append-only file"): a stream created with
  ``partitions=1`` against one file.

Each side, per layout:

* **lakekit**: ``lakekit.connect("local://<dir>")``, ``lake.stream(...)``,
  ``stream.publish_values(batch)`` per batch (the facade's batch fast path); the lake is closed
  (pending data fdatasync'ed) and reopened, then a consumer group reads everything back with
  ``consumer.poll_batch(max_records=1000)`` (values as one list of ``bytes`` per poll, no
  object per record), reading ``block.values``, and ``consumer.commit()`` after every poll.
  Also measured, not judged: the same consumption through ``poll()`` (one ``Record`` object per
  record), publishing and consuming values of varying lengths (50-150 bytes: the frames then
  hold one length per value, where 100-byte values share one), and publishing with
  ``fsync="always"``.
* **baseline**: append-only files written with one ``os.writev`` per batch of ``u32 count,
  count x u32 lengths`` (packed in C) and the joined values (so, like the stream, they can hold
  any bytes), with the same fsync policy: a background thread fdatasyncs the files written
  within 50 ms (the stream's flusher, reimplemented), or ``os.fdatasync`` after every batch for
  the ``always`` workload. Read back with one ``read()`` per file, split batch by batch with the
  same C-level slicing lakekit uses (one ``struct`` format ``"Ns" * count`` when the lengths
  are equal, else slices), so the ratio measures what lakekit adds, not a different idiom.

Publish times stop when the last publish/write returns, i.e. when every record is acknowledged
under the policy; the final flush (closing) is reported separately as "until durable". The
benchmark also reports each side's CPU seconds (every thread of the process, from
``getrusage``): on a shared machine they are steadier than wall-clock times.

Run a single side by hand with ``python -m benchmarks.bench_stream --child <side> <records>
<output dir>``: it prints one JSON line.
"""

from __future__ import annotations

import contextlib
import functools
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
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._harness import Comparison, Report, label, run_child

NAME = "stream"
DESCRIPTION = (
    "Durable stream, 100-byte records in batches of 1,000: LocalStream publish_values and "
    "consumer-group poll_batch+commit vs raw append-only files with the same fsync policy"
)
PUBLISH_TARGET = 0.7
"""lakekit publish records/s at least this fraction of the raw files'."""
CONSUME_TARGET = 0.7
"""lakekit consume records/s (``poll_batch`` + a commit per poll) at least this fraction of
reading the raw files back and splitting them."""
BATCH = 1_000
VALUE_BYTES = 100
PARTITIONS = 4
"""The stream's default partition count, and the baseline's file count for that layout."""
FSYNC_INTERVAL_S = 0.05
"""The stream's default ``fsync_interval_ms`` (50), which the baseline's flusher copies."""
POOL_BATCHES = 16
"""Distinct batches, cycled (1M distinct values would cost both sides memory for nothing)."""
SIDES = ("lakekit", "baseline")
_CHILD_TIMEOUT_S = 900

# (workload, lakekit key, baseline key, target): each key names "<key>_s" and "<key>_cpu_s".
WORKLOADS: tuple[tuple[str, str, str, float | None], ...] = (
    ("publish", "publish", "write", PUBLISH_TARGET),
    ("publish_1p", "publish_1p", "write_1f", PUBLISH_TARGET),
    ("consume", "consume", "read", CONSUME_TARGET),
    ("consume_1p", "consume_1p", "read_1f", CONSUME_TARGET),
    ("consume_records", "consume_records", "read", None),
    ("publish_varlen", "publish_var", "write_var", None),
    ("consume_varlen", "consume_var", "read_var", None),
    ("publish_fsync_always", "always", "always", None),
)


def run(quick: bool = False) -> Report:
    records = 200_000 if quick else 1_000_000
    repetitions = 3 if quick else 11
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
        _comparison(f"{name}_{n}", results, f"{ours}_s", f"{theirs}_s", target)
        for name, ours, theirs, target in WORKLOADS
    ]
    ours, theirs = results["lakekit"], results["baseline"]

    def median(side: list[dict[str, Any]], key: str) -> float:
        return float(statistics.median(r[key] for r in side))

    extra: dict[str, Any] = {}
    for name, our_key, their_key, _target in WORKLOADS:
        a, b = records / median(ours, f"{our_key}_s"), records / median(theirs, f"{their_key}_s")
        cpu_a, cpu_b = median(ours, f"{our_key}_cpu_s"), median(theirs, f"{their_key}_cpu_s")
        extra[f"{name} rec/s"] = (
            f"lakekit {a / 1e6:.2f} M, file {b / 1e6:.2f} M, wall ratio {a / b:.3f}; "
            f"CPU s lakekit {cpu_a:.3f}, file {cpu_b:.3f}, CPU ratio {cpu_b / cpu_a:.3f}"
        )
    durable = records / median(ours, "durable_s"), records / median(theirs, "write_durable_s")
    extra["until durable rec/s (publish incl. the final fdatasync)"] = (
        f"lakekit {durable[0] / 1e6:.2f} M, file {durable[1] / 1e6:.2f} M, "
        f"ratio {durable[0] / durable[1]:.3f}"
    )
    extra["load average (1 min) at the runs"] = ", ".join(
        f"{r['load']:.1f}" for r in sorted(ours + theirs, key=lambda r: r["started"])
    )
    extra["bytes on disk"] = (
        f"lakekit {ours[0]['bytes'] / 1e6:.1f} MB (segments + index), files "
        f"{theirs[0]['bytes'] / 1e6:.1f} MB"
    )
    return _StreamReport(
        name=NAME,
        description=DESCRIPTION,
        baseline=(
            "append-only files (4 in rotation, or 1), os.writev per batch of u32 lengths + "
            "values, fdatasync within 50 ms by a background thread (fsync=always: after every "
            "batch); read back whole and split with the same C-level slicing"
        ),
        comparisons=comparisons,
        parameters={
            "records": records,
            "batch": BATCH,
            "value_bytes": VALUE_BYTES,
            "repetitions": repetitions,
            "quick": quick,
            "fsync": "batch (default), 50 ms; and always",
            "layouts": f"{PARTITIONS} partitions vs {PARTITIONS} files; 1 partition vs 1 file",
            "consumer": "poll_batch(max_records=1000) + commit() per poll, one member",
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


def batches(records: int, *, varying: bool = False) -> list[list[bytes]]:
    """``records // BATCH`` batches of ``BATCH`` 100-byte ASCII values (no newline), cycling
    through :data:`POOL_BATCHES` distinct batches. ``varying``: values of 50 to 150 bytes
    instead (100 on average), so that no batch has one length for all its values."""
    rng = random.Random(42)
    pool = [
        [
            (f"{b:04d}-{i:05d}-".encode() + rng.randbytes(VALUE_BYTES).hex().encode())[
                : rng.randrange(50, 151) if varying else VALUE_BYTES
            ]
            for i in range(BATCH)
        ]
        for b in range(POOL_BATCHES)
    ]
    return list(itertools.islice(itertools.cycle(pool), records // BATCH))


class _Timer:
    """Wall-clock seconds and CPU seconds of the whole process (every thread)."""

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


def _timed(result: dict[str, Any], key: str, timer: _Timer) -> None:
    result[f"{key}_s"] = timer.seconds
    result[f"{key}_cpu_s"] = timer.cpu


# -- lakekit side --------------------------------------------------------------------------------


def lakekit_side(records: int, out_dir: Path) -> dict[str, Any]:
    import lakekit

    work = batches(records)
    result: dict[str, Any] = {}
    for suffix, partitions in (("", PARTITIONS), ("_1p", 1)):
        settings = {"partitions": partitions}
        lake = lakekit.connect(f"local://{out_dir}", stream=settings)
        stream = lake.stream(f"bench{suffix}")
        with _Timer() as publish:
            for batch in work:
                stream.publish_values(batch)
        with _Timer() as closing:
            lake.close()  # fdatasyncs what the flusher has not yet
        _timed(result, f"publish{suffix}", publish)
        if not suffix:
            result["durable_s"] = publish.seconds + closing.seconds

        with lakekit.connect(f"local://{out_dir}", stream=settings) as lake:
            stream = lake.stream(f"bench{suffix}")
            with _Timer() as consume:
                count, last = _consume_blocks(stream)
            _check_consumed(stream, "blocks", count, records, last, work)
            _timed(result, f"consume{suffix}", consume)
            if not suffix:
                with _Timer() as consume:
                    count, last = _consume_records(stream)
                _check_consumed(stream, "records", count, records, last, work)
                _timed(result, "consume_records", consume)
    result["bytes"] = sum(p.stat().st_size for p in out_dir.rglob("bench/p*/*.*"))

    varying = batches(records, varying=True)
    lake = lakekit.connect(f"local://{out_dir}")
    stream = lake.stream("bench_var")
    with _Timer() as publish:
        for batch in varying:
            stream.publish_values(batch)
    lake.close()
    _timed(result, "publish_var", publish)
    with lakekit.connect(f"local://{out_dir}") as lake:
        stream = lake.stream("bench_var")
        with _Timer() as consume:
            count, last = _consume_blocks(stream)
        _check_consumed(stream, "blocks", count, records, last, varying)
        _timed(result, "consume_var", consume)

    with lakekit.connect(f"local://{out_dir}", stream={"fsync": "always"}) as lake:
        stream = lake.stream("bench_always")
        with _Timer() as always:
            for batch in work:
                stream.publish_values(batch)
    _timed(result, "always", always)
    return result


def _consume_blocks(stream: Any) -> tuple[int, Sequence[bytes]]:
    """Read everything as group ``blocks``: poll_batch + commit per poll; (count, the values of
    the last poll)."""
    count = 0
    last: Sequence[bytes] = ()
    with stream.consumer("blocks") as consumer:
        while block := consumer.poll_batch(max_records=BATCH):
            last = block.values
            count += len(last)
            consumer.commit()
    return count, last


def _consume_records(stream: Any) -> tuple[int, Sequence[bytes]]:
    """The same as group ``records`` through poll (one Record object per record)."""
    count = 0
    last: Sequence[bytes] = ()
    with stream.consumer("records") as consumer:
        while polled := consumer.poll(max_records=BATCH):
            count += len(polled)
            last = [r.value for r in polled]
            consumer.commit()
    return count, last


def _check_consumed(
    stream: Any,
    group: str,
    count: int,
    records: int,
    last: Sequence[bytes],
    work: list[list[bytes]],
) -> None:
    committed, latest = stream.committed(group), stream.offsets("latest")
    if count != records or committed != latest or sum(latest.values()) != records:
        raise AssertionError(f"{group}: consumed {count:,} of {records:,} ({committed=})")
    if list(last) not in work[:POOL_BATCHES]:  # a batch lands whole in one partition
        raise AssertionError(f"{group}: the last values polled are not a published batch")


# -- baseline side -------------------------------------------------------------------------------


class _IntervalSync:
    """fdatasync the files written at most ``interval`` after a write, on a thread (the
    stream's ``fsync="batch"`` flusher, reimplemented for plain files)."""

    def __init__(self, interval: float) -> None:
        self._interval = interval
        self._cond = threading.Condition()
        self._dirty: set[int] = set()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def mark(self, fd: int) -> None:
        if fd in self._dirty:  # a flush is due and will cover this write
            return
        with self._cond:
            self._dirty.add(fd)
            self._cond.notify()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify()
        self._thread.join()
        self._flush()

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._dirty or self._stopping)
                if self._stopping:
                    return
                self._cond.wait_for(lambda: self._stopping, timeout=self._interval)
            self._flush()

    def _flush(self) -> None:
        with self._cond:
            dirty, self._dirty = self._dirty, set()
        for fd in dirty:
            os.fdatasync(fd)


def _framed(batch: list[bytes]) -> list[bytes]:
    """``u32 count, count x u32 lengths`` (packed in C) and the joined values."""
    return [struct.pack(f"<I{len(batch)}I", len(batch), *map(len, batch)), b"".join(batch)]


def _write_files(paths: list[Path], work: list[list[bytes]], *, each: bool) -> tuple[_Timer, float]:
    """Append batch ``i`` to ``paths[i % len(paths)]``; (the timer until the last write
    returned, seconds until durable)."""
    fds = [os.open(p, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644) for p in paths]
    try:
        syncer = None if each else _IntervalSync(FSYNC_INTERVAL_S)
        with _Timer() as timer:
            for fd, batch in zip(itertools.cycle(fds), work, strict=False):
                os.writev(fd, _framed(batch))
                if syncer is None:
                    os.fdatasync(fd)
                else:
                    syncer.mark(fd)
        with _Timer() as closing:
            if syncer is not None:
                syncer.stop()
    finally:
        for fd in fds:
            os.close(fd)
    return timer, timer.seconds + closing.seconds


@functools.lru_cache(maxsize=64)
def _fixed(size: int, count: int) -> Callable[[bytes, int], tuple[bytes, ...]]:
    return struct.Struct(f"{size}s" * count).unpack_from


def split(data: bytes, position: int, lens: Sequence[int]) -> tuple[Sequence[bytes], int]:
    """The values of lengths ``lens`` stored back to back from ``data[position:]``, sliced in
    C as lakekit does (one struct format when the lengths are equal, else slices), and the
    position after them."""
    first, count = lens[0], len(lens)
    if lens[-1] == first and lens[count >> 1] == first and lens.count(first) == count:
        return _fixed(first, count)(data, position), position + first * count
    ends = list(itertools.accumulate(lens, initial=position))
    return [data[a:b] for a, b in itertools.pairwise(ends)], ends[-1]


def read_file(path: Path) -> Iterator[Sequence[bytes]]:
    """The batches of a file written by :func:`_write_files`, each as its values."""
    with path.open("rb") as fh:
        data = fh.read()
    position = 0
    while position < len(data):
        (count,) = struct.unpack_from("<I", data, position)
        lens = struct.unpack_from(f"<{count}I", data, position + 4)
        values, position = split(data, position + 4 + 4 * count, lens)
        yield values


def _read_files(paths: list[Path]) -> tuple[int, Sequence[bytes]]:
    count = 0
    last: Sequence[bytes] = ()
    for path in paths:
        for values in read_file(path):
            count += len(values)
            last = values
    return count, last


def baseline_side(records: int, out_dir: Path) -> dict[str, Any]:
    work = batches(records)
    out_dir.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {}
    for suffix, files in (("", PARTITIONS), ("_1f", 1)):
        paths = [out_dir / f"file{suffix}-{i}.bin" for i in range(files)]
        timer, durable = _write_files(paths, work, each=False)
        _timed(result, f"write{suffix}", timer)
        if not suffix:
            result["write_durable_s"] = durable
            result["bytes"] = sum(p.stat().st_size for p in paths)
        with _Timer() as reading:
            count, last = _read_files(paths)
        if count != records or list(last) not in work[:POOL_BATCHES]:
            raise AssertionError(f"read {count:,} of {records:,} records back")
        _timed(result, f"read{suffix}", reading)
    varying = batches(records, varying=True)
    paths = [out_dir / f"var-{i}.bin" for i in range(PARTITIONS)]
    timer, _durable = _write_files(paths, varying, each=False)
    _timed(result, "write_var", timer)
    with _Timer() as reading:
        count, last = _read_files(paths)
    if count != records or list(last) not in varying[:POOL_BATCHES]:
        raise AssertionError(f"read {count:,} of {records:,} varying records back")
    _timed(result, "read_var", reading)

    paths = [out_dir / f"always-{i}.bin" for i in range(PARTITIONS)]
    timer, _durable = _write_files(paths, work, each=True)
    _timed(result, "always", timer)
    return result


def _child(side: str, records: int, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    started, load = time.time(), os.getloadavg()[0]
    result = (lakekit_side if side == "lakekit" else baseline_side)(records, out_dir)
    result |= {"side": side, "records": records, "pid": os.getpid()}
    result |= {"started": started, "load": load}
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--child" and sys.argv[2] in SIDES:
        with contextlib.suppress(BrokenPipeError):
            _child(sys.argv[2], int(sys.argv[3]), Path(sys.argv[4]))
    else:
        sys.exit(f"usage: python -m benchmarks.bench_stream --child {{{','.join(SIDES)}}} "
                 "<records> <output dir>")  # fmt: skip
