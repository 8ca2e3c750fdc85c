"""Ingest NDJSON and CSV files into a day-partitioned table: a lakekit pipeline vs raw pyarrow.

The input is :func:`benchmarks._data.landing_files`: ``rows`` synthetic events in 20 NDJSON then
20 CSV files (``ts`` as ISO-8601 text), cached under ``benchmarks/.data/``, plus one increment
NDJSON file holding 1% more rows. Each run happens in a fresh subprocess, so its peak RSS
(``VmHWM``) is its own:

* **baseline**: hand-written, well-tuned pyarrow as ``/work/shared/PERFORMANCE.md`` describes:
  file by file ``pyarrow.json.read_json`` / ``pyarrow.csv.read_csv`` (8 MiB blocks, explicit
  column types, ``ts`` parsed as ``timestamp[us]`` by the reader), ``dt = cast(ts, date32)``,
  then ONE ``pyarrow.dataset.write_dataset`` over all files (Hive ``dt=`` directories, zstd
  level 1, 122,880-row row groups, dictionary only for ``event_type``/``country``, delta for
  ``event_id``/``ts``). No state, no snapshot: it cannot resume or skip seen files.
* **lakekit**: ``lake.pipeline("events").run(FileSource(lake.store, "landing/", schema=...,
  block_size=8 MiB, row_origins=False), into="bench.events", partition_by=["day(ts)"])`` on a
  fresh local lake whose store holds the files (hard links): listing, parsing with validation
  (a bad line would raise before any row of its file loads), the per-file state, data files
  with statistics, snapshots and the run report. No contract, so no per-row origins. Then, in
  the same process: a no-op run (nothing new), and an incremental run after the increment
  file is added to ``landing/``.

Both sides run interleaved (the order flips every repetition); each figure is the median of its
runs. Targets: lakekit's throughput at least 0.85x the baseline's, and (full runs only) the
incremental run at most 2% of the full run's time (it reads only the new file).

Run a single side by hand with ``python -m benchmarks.bench_ingest --child <side> <landing dir>
<output dir>``: it prints one JSON line.
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

from benchmarks._data import STREAM_SCHEMA, landing_files
from benchmarks._harness import Comparison, Report, label, median_of, run_child, warm_page_cache

NAME = "ingest"
DESCRIPTION = (
    "20 NDJSON + 20 CSV files into a day-partitioned table: lakekit pipeline (FileSource, "
    "state, snapshots) vs pyarrow read_json/read_csv + write_dataset"
)
THROUGHPUT_TARGET = 0.85
"""lakekit rows/s at least this fraction of the baseline's."""
INCREMENTAL_TARGET = 0.02
"""An incremental run over 1% new rows costs at most this fraction of a full run."""
ROW_GROUP = 122_880
BLOCK_SIZE = 8 * 2**20
SIDES = ("lakekit", "baseline")
ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / ".data"
_CHILD_TIMEOUT_S = 1800


@dataclass
class IngestReport(Report):
    """A :class:`Report` whose verdict also includes the incremental-cost target."""

    incremental_cost: float | None = None
    """Median incremental run time / median full run time (lakekit)."""
    incremental_target: float | None = None
    """The highest acceptable ``incremental_cost``; None when not judged (``--quick``)."""
    runs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    """Every child's result by side (saved in the JSON, not printed)."""

    def as_dict(self) -> dict[str, Any]:
        data = super().as_dict()
        data["incremental_cost"] = self.incremental_cost
        data["incremental_target"] = self.incremental_target
        data["runs"] = self.runs
        return data

    @property
    def met(self) -> bool:
        incremental_ok = (
            self.incremental_target is None
            or self.incremental_cost is None
            or self.incremental_cost <= self.incremental_target
        )
        return incremental_ok and all(c.met for c in self.comparisons)


def run(quick: bool = False) -> IngestReport:
    rows = 200_000 if quick else 5_000_000
    repetitions = 3 if quick else 5
    landing = landing_files(rows)
    for path in (*landing.files, landing.increment):
        warm_page_cache(path)
    results: dict[str, list[dict[str, Any]]] = {side: [] for side in SIDES}
    # Same file system as the cached files, so the lakekit side can hard-link them.
    DATA.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="ingest-scratch-", dir=DATA))
    try:
        for rep in range(repetitions):
            for side in SIDES if rep % 2 == 0 else SIDES[::-1]:
                result = _run_child(side, landing.directory, scratch / f"{side}-{rep}")
                if result["rows_written"] != landing.rows:
                    raise AssertionError(
                        f"{side} wrote {result['rows_written']:,} rows of {landing.rows:,}"
                    )
                results[side].append(result)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    ours = [r["seconds"] * 1000 for r in results["lakekit"]]
    theirs = [r["seconds"] * 1000 for r in results["baseline"]]
    comparison = Comparison(
        name=f"ingest_{label(rows)}_rows",
        lakekit_ms=statistics.median(ours),
        baseline_ms=statistics.median(theirs),
        target=1 / THROUGHPUT_TARGET,
        lakekit_samples_ms=[round(s, 3) for s in ours],
        baseline_samples_ms=[round(s, 3) for s in theirs],
    )
    full_s = median_of(results["lakekit"], "seconds")
    incremental_s = median_of(results["lakekit"], "incremental_seconds")
    noop_s = median_of(results["lakekit"], "noop_seconds")
    incremental_cost = incremental_s / full_s
    ours_rate = rows / full_s
    theirs_rate = rows / median_of(results["baseline"], "seconds")
    judged = f"target <= {INCREMENTAL_TARGET}" if not quick else "not judged with --quick"
    ours_run, theirs_run = results["lakekit"][0], results["baseline"][0]
    extra: dict[str, Any] = {
        "rows/s": (
            f"lakekit {ours_rate / 1e6:.2f} M, pyarrow {theirs_rate / 1e6:.2f} M, "
            f"lakekit/pyarrow {ours_rate / theirs_rate:.3f} (target >= {THROUGHPUT_TARGET})"
        ),
        "peak RSS": (
            f"lakekit {median_of(results['lakekit'], 'peak_rss_bytes') / 2**20:.0f} MiB, pyarrow "
            f"{median_of(results['baseline'], 'peak_rss_bytes') / 2**20:.0f} MiB"
        ),
        "CPU seconds": (
            f"lakekit {median_of(results['lakekit'], 'cpu_seconds'):.2f}, pyarrow "
            f"{median_of(results['baseline'], 'cpu_seconds'):.2f}"
        ),
        "incremental run": (
            f"{incremental_s * 1000:.1f} ms for {landing.increment_rows:,} new rows in 1 new "
            f"file = {incremental_cost:.4f} of the full run ({judged})"
        ),
        "no-op run": f"{noop_s * 1000:.1f} ms (no new file)",
        "output": (
            f"lakekit {ours_run['files']} files, {ours_run['bytes'] / 1e6:.1f} MB, "
            f"{ours_run['snapshots']} snapshots; pyarrow {theirs_run['files']} files, "
            f"{theirs_run['bytes'] / 1e6:.1f} MB"
        ),
    }
    return IngestReport(
        name=NAME,
        description=DESCRIPTION,
        baseline=(
            "per file pyarrow.json.read_json / pyarrow.csv.read_csv (8 MiB blocks, explicit "
            "types), dt = cast(ts, date32), one write_dataset (Hive dt=, zstd(1), 122,880-row "
            "row groups)"
        ),
        comparisons=[comparison],
        parameters={
            "rows": landing.rows,
            "files": len(landing.files),
            "input_bytes": landing.bytes,
            "increment_rows": landing.increment_rows,
            "repetitions": repetitions,
            "quick": quick,
            "input": "cached landing files (page cache warm)",
            "isolation": "one fresh subprocess per run; peak RSS is its VmHWM (full run)",
        },
        extra=extra,
        incremental_cost=incremental_cost,
        incremental_target=None if quick else INCREMENTAL_TARGET,
        runs=results,
    )


def _run_child(side: str, landing: Path, out_dir: Path) -> dict[str, Any]:
    return run_child(
        "benchmarks.bench_ingest", [side, str(landing), str(out_dir)], out_dir, _CHILD_TIMEOUT_S
    )


# -- the two sides, run in a child process ------------------------------------------------------


def _landing_paths(landing: Path) -> list[Path]:
    return sorted(
        path for path in landing.iterdir() if path.suffix in (".ndjson", ".csv") and path.is_file()
    )


def _ingest_baseline(landing: Path, out_dir: Path) -> dict[str, Any]:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv
    import pyarrow.dataset as ds
    import pyarrow.json as pj

    schema = STREAM_SCHEMA
    fmt = ds.ParquetFileFormat()
    parquet_options: dict[str, Any] = {  # the stubs list only some of the accepted options
        "compression": "zstd",
        "compression_level": 1,
        "use_dictionary": ["event_type", "country"],
        "column_encoding": {"event_id": "DELTA_BINARY_PACKED", "ts": "DELTA_BINARY_PACKED"},
    }
    file_options = fmt.make_write_options(**parquet_options)
    written: list[tuple[int, int]] = []

    def visit(file: Any) -> None:
        written.append((file.metadata.num_rows, int(file.size)))

    paths = _landing_paths(landing)
    cpu_started = _cpu_seconds()
    started = time.perf_counter()

    def tables() -> Any:
        for path in paths:
            if path.suffix == ".ndjson":
                table = pj.read_json(
                    str(path),
                    read_options=pj.ReadOptions(block_size=BLOCK_SIZE),
                    parse_options=pj.ParseOptions(explicit_schema=schema),
                )
            else:
                table = pacsv.read_csv(
                    str(path),
                    read_options=pacsv.ReadOptions(block_size=BLOCK_SIZE),
                    convert_options=pacsv.ConvertOptions(
                        column_types={f.name: f.type for f in schema},
                        include_columns=schema.names,
                    ),
                )
            table = table.select(schema.names).cast(schema)
            yield from table.append_column("dt", pc.cast(table["ts"], pa.date32())).to_batches()

    ds.write_dataset(
        pa.RecordBatchReader.from_batches(schema.append(pa.field("dt", pa.date32())), tables()),
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
    return {
        "seconds": seconds,
        "cpu_seconds": _cpu_seconds() - cpu_started,
        "rows_written": sum(rows for rows, _ in written),
        "files": len(written),
        "bytes": sum(size for _, size in written),
        "peak_rss_bytes": _rss("VmHWM"),
    }


def _ingest_lakekit(landing: Path, out_dir: Path) -> dict[str, Any]:
    import pyarrow.parquet  # noqa: F401 - imported before timing, as the baseline's are

    import lakekit
    import lakekit.adapters.sql.catalog  # SQLAlchemy: 0.2 s, or 0.8 s without cached bytecode
    import lakekit.pipelines.pipeline
    import lakekit.tables.transforms
    import lakekit.tables.writer
    from lakekit.pipelines.sources.files import FileSource

    # pyarrow imports pandas the first time pa.array() converts a Python list (the commit
    # does); the baseline's `import pyarrow.dataset` imports it before its timer starts.
    with contextlib.suppress(ImportError):
        import pandas  # noqa: F401

    inbox = out_dir / "landing"
    inbox.mkdir(parents=True)
    for path in _landing_paths(landing):
        _link(path, inbox / path.name)
    with lakekit.connect(f"local://{out_dir}") as lake:
        pipeline = lake.pipeline("events")

        def ingest() -> tuple[float, int]:
            source = FileSource(
                lake.store, "landing/", schema=STREAM_SCHEMA, block_size=BLOCK_SIZE,
                row_origins=False,
            )  # fmt: skip
            started = time.perf_counter()
            report = pipeline.run(source, into="bench.events", partition_by=["day(ts)"])
            return time.perf_counter() - started, report.rows_out

        cpu_started = _cpu_seconds()
        seconds, rows = ingest()
        cpu_seconds = _cpu_seconds() - cpu_started
        peak_rss = _rss("VmHWM")
        noop_seconds, noop_rows = ingest()
        for path in sorted((landing / "increment").iterdir()):
            _link(path, inbox / path.name)
        incremental_seconds, incremental_rows = ingest()
        table = lake.table("bench.events")
        files = table.files()
        if noop_rows != 0 or table.count() != rows + incremental_rows:
            raise AssertionError(
                f"the no-op run loaded {noop_rows} rows; the table holds {table.count()} rows, "
                f"not {rows} + {incremental_rows}"
            )
        return {
            "seconds": seconds,
            "cpu_seconds": cpu_seconds,
            "rows_written": rows,
            "files": len(files),
            "bytes": sum(f.file_size for f in files),
            "snapshots": len(table.history()),
            "peak_rss_bytes": peak_rss,
            "noop_seconds": noop_seconds,
            "incremental_seconds": incremental_seconds,
            "incremental_rows": incremental_rows,
        }


def _link(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:  # another file system: copy
        shutil.copyfile(source, target)


def _cpu_seconds() -> float:
    """User + system CPU time of this process (all threads) so far."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _rss(field: str) -> int:
    """``VmHWM`` (peak) of this process in bytes; ``ru_maxrss`` off Linux."""
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) * 1024
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def _child(side: str, landing: Path, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    result = (_ingest_lakekit if side == "lakekit" else _ingest_baseline)(landing, out_dir)
    result["side"] = side
    result["pid"] = os.getpid()
    print(json.dumps(result), flush=True)
    # Everything is written and closed. Skip interpreter teardown: pyarrow 26 sometimes aborts
    # there after write_dataset (see bench_write), which would fail a complete run.
    os._exit(0)


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--child" and sys.argv[2] in SIDES:
        _child(sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4]))
    else:
        sys.exit(f"usage: python -m benchmarks.bench_ingest --child {{{','.join(SIDES)}}} "
                 "<landing dir> <output dir>")  # fmt: skip
