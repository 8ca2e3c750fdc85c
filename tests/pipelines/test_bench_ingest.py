"""The ingest benchmark runs end to end and compares like with like: both sides load every row of
the same landing files into the same days (timings are judged by `nox -s bench`)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.json as pj
import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def bench() -> Iterator[tuple[ModuleType, ModuleType]]:
    """``benchmarks._data`` and ``benchmarks.bench_ingest`` (the repo root is not on sys.path)."""
    sys.path.insert(0, str(ROOT))
    try:
        import benchmarks._data as data
        import benchmarks.bench_ingest as bench_ingest

        yield data, bench_ingest
    finally:
        sys.path.remove(str(ROOT))


@pytest.mark.slow
def test_quick_ingest_benchmark_reports_both_sides_loading_every_row(tmp_path: Path) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "ingest", "--quick", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert "ingest_200k_rows" in completed.stdout
    (report_path,) = tmp_path.glob("ingest-*.json")
    report = json.loads(report_path.read_text())
    rows = report["parameters"]["rows"]
    repetitions = report["parameters"]["repetitions"]
    assert rows == 200_000 and report["parameters"]["files"] == 40
    assert report["parameters"]["increment_rows"] == 2_000
    (comparison,) = report["comparisons"]
    assert comparison["name"] == "ingest_200k_rows"
    assert comparison["target"] == pytest.approx(1 / 0.85)
    assert len(comparison["lakekit_samples_ms"]) == len(comparison["baseline_samples_ms"])
    assert len(comparison["lakekit_samples_ms"]) == repetitions >= 3
    for side in ("lakekit", "baseline"):
        runs = report["runs"][side]
        assert len(runs) == repetitions
        for run in runs:
            assert run["rows_written"] == rows
            assert run["peak_rss_bytes"] > 0
            assert run["files"] >= 30  # at least one file per day
    for run in report["runs"]["lakekit"]:
        assert run["incremental_rows"] == 2_000
        assert run["noop_seconds"] > 0 and run["incremental_seconds"] > 0
        assert run["snapshots"] >= 2  # the full run and the incremental run
    assert report["incremental_cost"] > 0
    assert report["incremental_target"] is None  # judged on full runs only
    for label in ("rows/s", "peak RSS", "incremental run", "no-op run"):
        assert label in report["extra"]


def test_both_sides_load_the_same_rows_into_the_same_days(
    bench: tuple[ModuleType, ModuleType], tmp_path: Path
) -> None:
    data, bench_ingest = bench
    landing = data.landing_files(8_000, files_per_format=2, cache_dir=tmp_path / "cache")
    ours = bench_ingest._ingest_lakekit(landing.directory, tmp_path / "lakekit")
    theirs = bench_ingest._ingest_baseline(landing.directory, tmp_path / "baseline")
    assert ours["rows_written"] == theirs["rows_written"] == 8_000
    assert ours["incremental_rows"] == landing.increment_rows == 80

    baseline = ds.dataset(tmp_path / "baseline", format="parquet", partitioning="hive")
    expected = baseline.to_table().sort_by("event_id").select(data.STREAM_SCHEMA.names)
    lakekit_files = sorted((tmp_path / "lakekit").rglob("ts_day=*/*.parquet"))
    written = ds.dataset(lakekit_files, format="parquet").to_table().sort_by("event_id")
    assert written.num_rows == 8_080  # the full run and the increment
    assert written.slice(0, 8_000).select(data.STREAM_SCHEMA.names).equals(expected)
    assert sorted({p.parent.name for p in lakekit_files}) == [
        d.name.replace("dt=", "ts_day=") for d in sorted((tmp_path / "baseline").iterdir())
    ]


def test_landing_files_hold_the_events_as_text_and_are_reused(
    bench: tuple[ModuleType, ModuleType], tmp_path: Path
) -> None:
    data, _ = bench
    landing = data.landing_files(4_000, files_per_format=2, cache_dir=tmp_path)
    assert [p.name for p in landing.files] == [
        "part-000.ndjson", "part-001.ndjson", "part-002.csv", "part-003.csv"
    ]  # fmt: skip
    assert landing.increment.name == "part-004.ndjson"
    first = pj.read_json(landing.files[0]).cast(data.LANDING_SCHEMA)
    expected = next(data.iter_event_batches(4_040, batch_rows=1_000))
    assert first.num_rows == 1_000
    assert (
        first.column("ts")
        .cast(pa.timestamp("us"))
        .equals(pa.chunked_array([expected.column("ts")]))
    )
    assert first.column("payload").to_pylist() == expected.column("payload").to_pylist()
    assert landing.files[2].read_text().startswith('"event_id","ts","user_id"')
    modified = landing.files[0].stat().st_mtime_ns
    again = data.landing_files(4_000, files_per_format=2, cache_dir=tmp_path)
    assert again == landing and landing.files[0].stat().st_mtime_ns == modified
    assert [p.name for p in tmp_path.iterdir()] == [landing.directory.name]  # no partial left
