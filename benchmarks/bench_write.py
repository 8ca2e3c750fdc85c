"""Stream events into a day-partitioned table: lakekit ``append`` vs pyarrow ``write_dataset``.

The input is the synthetic events stream of :func:`benchmarks._data.iter_event_batches`
(65,536-row batches in time order, without the ``dt`` column), written once to a cached Arrow
IPC stream file and read back batch by batch by both sides (generating events costs about as
much as writing them, so timing the generator would hide most of the difference). Each run
happens in a fresh subprocess, so its peak RSS (``VmHWM``) is its own:

* **baseline**: hand-written, well-tuned pyarrow as ``/work/shared/PERFORMANCE.md`` describes:
  ``dt = pc.cast(ts, pa.date32())`` appended to every batch, ``pyarrow.dataset.write_dataset``
  with Hive ``dt=`` directories, zstd level 1, 122,880-row row groups (``min_rows_per_group``
  and ``max_rows_per_group``), dictionary encoding only for the low-cardinality columns
  (``event_type``, ``country``) and ``DELTA_BINARY_PACKED`` for the monotonic ``event_id`` and
  ``ts``;
* **lakekit**: ``lake.create_table("bench.events", schema, partition_by=["day(ts)"])`` on a
  fresh local lake, then ``table.append(reader)``: data files, their statistics, the manifest,
  the metadata file and the catalog commit. Only the append is timed, as only
  ``write_dataset`` is on the other side (creating the table and importing modules are not).

Both sides run interleaved (the order flips every repetition) at ``rows`` and at ``2 * rows``;
each figure is the median of its runs. Targets: lakekit's throughput at least 0.9x the
baseline's at ``rows`` (a time ratio of at most 1/0.9), and lakekit's peak RSS at ``2 * rows`` at
most 1.1x its peak RSS at ``rows`` (memory bounded by the writer, not by the input); the RSS
target is judged only on full runs: ``--quick`` data (10,000 rows a day) is too small to fill
the writers' row-group buffers, which legitimately grow until they do.

Run a single side by hand with ``python -m benchmarks.bench_write --child <side> <stream file>
<output dir>``: it prints one JSON line (seconds, rows, files, bytes, peak RSS).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._data import STREAM_SCHEMA, events_stream_file
from benchmarks._harness import Comparison, Report, label, median_of, run_child, warm_page_cache

NAME = "write"
DESCRIPTION = (
    "Stream events into a day-partitioned table: lakekit append (data files, stats, snapshot "
    "commit) vs pyarrow write_dataset"
)
THROUGHPUT_TARGET = 0.9
"""lakekit rows/s at least this fraction of the baseline's."""
RSS_GROWTH_TARGET = 1.1
"""lakekit peak RSS at 2N rows at most this multiple of its peak RSS at N rows."""
ROW_GROUP = 122_880
BATCH_ROWS = 65_536
SIDES = ("lakekit", "baseline")
ROOT = Path(__file__).resolve().parent.parent
_CHILD_TIMEOUT_S = 1800


@dataclass
class WriteReport(Report):
    """A :class:`Report` whose verdict also includes the peak-RSS growth target."""

    rss_growth: float | None = None
    """lakekit's peak RSS at 2N rows / at N rows (None when not measured)."""
    rss_target: float | None = None
    """The highest acceptable ``rss_growth``; None when not judged (``--quick``)."""
    runs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    """Every child's result by ``side@rows`` (saved in the JSON, not printed)."""

    def as_dict(self) -> dict[str, Any]:
        data = super().as_dict()
        data["rss_growth"] = self.rss_growth
        data["rss_target"] = self.rss_target
        data["runs"] = self.runs
        return data

    @property
    def met(self) -> bool:
        rss_ok = (
            self.rss_target is None or self.rss_growth is None or self.rss_growth <= self.rss_target
        )
        return rss_ok and all(c.met for c in self.comparisons)


def run(quick: bool = False) -> WriteReport:
    rows = 300_000 if quick else 5_000_000
    repetitions = 3 if quick else 7
    sizes = (rows, 2 * rows)
    streams = {n: events_stream_file(n, batch_rows=BATCH_ROWS) for n in sizes}
    for path in streams.values():
        warm_page_cache(path)
    results: dict[tuple[str, int], list[dict[str, Any]]] = {
        (side, n): [] for side in SIDES for n in sizes
    }
    scratch = Path(tempfile.mkdtemp(prefix="lakekit-bench-write-"))
    try:
        for rep in range(repetitions):
            for n in sizes:
                order = SIDES if (rep + sizes.index(n)) % 2 == 0 else SIDES[::-1]
                for side in order:
                    result = _run_child(side, streams[n], scratch / f"{side}-{n}-{rep}")
                    if result["rows_written"] != n:
                        raise AssertionError(
                            f"{side} wrote {result['rows_written']:,} rows of {n:,}"
                        )
                    results[side, n].append(result)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    comparisons = [
        _comparison(f"append_{label(n)}_rows", results, n, target=n == rows) for n in sizes
    ]
    rss = {key: median_of(runs, "peak_rss_bytes") for key, runs in results.items()}
    rss_growth = rss["lakekit", 2 * rows] / rss["lakekit", rows]
    extra: dict[str, Any] = {}
    for n in sizes:
        ours = n / median_of(results["lakekit", n], "seconds")
        theirs = n / median_of(results["baseline", n], "seconds")
        extra[f"rows/s at {label(n)}"] = (
            f"lakekit {ours / 1e6:.2f} M, pyarrow {theirs / 1e6:.2f} M, "
            f"lakekit/pyarrow {ours / theirs:.3f} (target >= {THROUGHPUT_TARGET})"
        )
    for n in sizes:
        ours_cpu = median_of(results["lakekit", n], "cpu_seconds")
        theirs_cpu = median_of(results["baseline", n], "cpu_seconds")
        extra[f"CPU seconds at {label(n)}"] = (
            f"lakekit {ours_cpu:.2f}, pyarrow {theirs_cpu:.2f}, ratio {ours_cpu / theirs_cpu:.3f}"
        )
    for n in sizes:
        extra[f"peak RSS at {label(n)}"] = (
            f"lakekit {rss['lakekit', n] / 2**20:.0f} MiB, pyarrow {rss['baseline', n] / 2**20:.0f}"
            f" MiB (before writing: lakekit "
            f"{median_of(results['lakekit', n], 'rss_before_bytes') / 2**20:.0f} MiB, pyarrow "
            f"{median_of(results['baseline', n], 'rss_before_bytes') / 2**20:.0f} MiB)"
        )
    judged = (
        f"target <= {RSS_GROWTH_TARGET}"
        if not quick
        else "not judged: below ~2 row groups per day, write buffers are still filling"
    )
    extra["peak RSS 2N/N"] = (
        f"lakekit {rss_growth:.3f} ({judged}), pyarrow "
        f"{rss['baseline', 2 * rows] / rss['baseline', rows]:.3f}"
    )
    for n in sizes:
        ours_run, theirs_run = results["lakekit", n][0], results["baseline", n][0]
        extra[f"output at {label(n)}"] = (
            f"lakekit {ours_run['files']} files, {ours_run['bytes'] / 1e6:.1f} MB, "
            f"{ours_run['row_groups']} row groups; pyarrow {theirs_run['files']} files, "
            f"{theirs_run['bytes'] / 1e6:.1f} MB, {theirs_run['row_groups']} row groups"
        )
    return WriteReport(
        name=NAME,
        description=DESCRIPTION,
        baseline=(
            "pyarrow.dataset.write_dataset, dt = cast(ts, date32), zstd(1), 122,880-row row "
            "groups, dictionary only on low-cardinality columns, delta on monotonic ints"
        ),
        comparisons=comparisons,
        parameters={
            "rows": rows,
            "rows_2n": 2 * rows,
            "batch_rows": BATCH_ROWS,
            "row_group_rows": ROW_GROUP,
            "repetitions": repetitions,
            "quick": quick,
            "input": "Arrow IPC stream file, read batch by batch (page cache warm)",
            "isolation": "one fresh subprocess per run; peak RSS is its VmHWM",
        },
        extra=extra,
        rss_growth=rss_growth,
        rss_target=None if quick else RSS_GROWTH_TARGET,
        runs={f"{side}@{n}": runs for (side, n), runs in results.items()},
    )


def _comparison(
    name: str, results: dict[tuple[str, int], list[dict[str, Any]]], n: int, *, target: bool
) -> Comparison:
    ours = [r["seconds"] * 1000 for r in results["lakekit", n]]
    theirs = [r["seconds"] * 1000 for r in results["baseline", n]]
    return Comparison(
        name=name,
        lakekit_ms=statistics.median(ours),
        baseline_ms=statistics.median(theirs),
        target=1 / THROUGHPUT_TARGET if target else None,
        lakekit_samples_ms=[round(s, 3) for s in ours],
        baseline_samples_ms=[round(s, 3) for s in theirs],
    )


def _run_child(side: str, stream: Path, out_dir: Path) -> dict[str, Any]:
    return run_child(
        "benchmarks.bench_write", [side, str(stream), str(out_dir)], out_dir, _CHILD_TIMEOUT_S
    )


# -- the two sides, run in a child process ------------------------------------------------------


def _write_baseline(stream: Path, out_dir: Path) -> dict[str, Any]:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    fmt = ds.ParquetFileFormat()
    parquet_options: dict[str, Any] = {  # the stubs list only some of the accepted options
        "compression": "zstd",
        "compression_level": 1,
        "use_dictionary": ["event_type", "country"],
        "column_encoding": {"event_id": "DELTA_BINARY_PACKED", "ts": "DELTA_BINARY_PACKED"},
    }
    file_options = fmt.make_write_options(**parquet_options)
    written: list[tuple[int, int, int]] = []

    def visit(file: Any) -> None:
        written.append((file.metadata.num_rows, int(file.size), file.metadata.num_row_groups))

    rss_before = _rss("VmRSS")
    cpu_started = _cpu_seconds()
    started = time.perf_counter()
    with pa.OSFile(str(stream), "rb") as source:
        reader = pa.ipc.open_stream(source)
        schema = reader.schema.append(pa.field("dt", pa.date32()))

        def with_day() -> Any:
            for batch in reader:
                yield batch.append_column("dt", pc.cast(batch.column("ts"), pa.date32()))

        ds.write_dataset(
            pa.RecordBatchReader.from_batches(schema, with_day()),
            base_dir=str(out_dir),
            format=fmt,
            file_options=file_options,
            partitioning=ds.partitioning(pa.schema([("dt", pa.date32())]), flavor="hive"),
            basename_template="part-{i}.parquet",
            existing_data_behavior="overwrite_or_ignore",
            max_rows_per_file=8 * 2**20,
            min_rows_per_group=ROW_GROUP,
            max_rows_per_group=ROW_GROUP,
            file_visitor=visit,
        )
    seconds = time.perf_counter() - started
    cpu_seconds = _cpu_seconds() - cpu_started
    return {
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "rows_written": sum(rows for rows, _, _ in written),
        "files": len(written),
        "bytes": sum(size for _, size, _ in written),
        "row_groups": sum(groups for _, _, groups in written),
        "rss_before_bytes": rss_before,
    }


def _write_lakekit(stream: Path, out_dir: Path) -> dict[str, Any]:
    import pyarrow as pa
    import pyarrow.parquet

    import lakekit
    import lakekit.tables.transforms
    import lakekit.tables.writer  # imported before timing, as the baseline's are

    # pyarrow imports pandas (when installed) the first time pa.array() converts a Python
    # list, which the commit does (the manifest): ~0.4-1 s once per process. The baseline's
    # `import pyarrow.dataset` imports pandas before its timer starts, so do the same here.
    with contextlib.suppress(ImportError):
        import pandas  # noqa: F401

    with lakekit.connect(f"local://{out_dir}") as lake:
        table = lake.create_table("bench.events", STREAM_SCHEMA, partition_by=["day(ts)"])
        rss_before = _rss("VmRSS")
        cpu_started = _cpu_seconds()
        started = time.perf_counter()
        with pa.OSFile(str(stream), "rb") as source:
            snapshot = table.append(pa.ipc.open_stream(source))
        seconds = time.perf_counter() - started
        cpu_seconds = _cpu_seconds() - cpu_started
        files = table.files()
        row_groups = sum(
            pyarrow.parquet.read_metadata(out_dir / f.key).num_row_groups for f in files
        )
        if any(not f.stats for f in files):
            raise AssertionError("a data file was committed without column statistics")
        return {
            "seconds": seconds,
            "cpu_seconds": cpu_seconds,
            "rows_written": int(snapshot.summary["added_rows"]),
            "rows_counted": table.count(),
            "files": len(files),
            "bytes": sum(f.file_size for f in files),
            "row_groups": row_groups,
            "rss_before_bytes": rss_before,
        }


def _cpu_seconds() -> float:
    """User + system CPU time of this process (all threads) so far."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _rss(field: str) -> int:
    """``VmRSS`` or ``VmHWM`` (peak) of this process in bytes; ``ru_maxrss`` off Linux."""
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) * 1024
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def _child(side: str, stream: Path, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)  # the local lake's root must exist
    result = (_write_lakekit if side == "lakekit" else _write_baseline)(stream, out_dir)
    result["side"] = side
    result["peak_rss_bytes"] = _rss("VmHWM")
    result["pid"] = os.getpid()
    print(json.dumps(result), flush=True)
    # Everything is written and closed. Skip interpreter teardown: pyarrow 26 sometimes aborts
    # there ("terminate called without an active exception", ~1 run in 15 after
    # write_dataset), which would fail a run whose result is already complete.
    os._exit(0)


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--child" and sys.argv[2] in SIDES:
        _child(sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4]))
    else:
        sys.exit(f"usage: python -m benchmarks.bench_write --child {{{','.join(SIDES)}}} "
                 "<stream file> <output dir>")  # fmt: skip
