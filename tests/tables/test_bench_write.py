"""The write benchmark runs end to end and compares like with like: both sides write every row
of the same deterministic stream, into the same days (timings are judged by `nox -s bench`)."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pytest

from benchmarking import import_benchmark, run_quick_benchmark


@pytest.fixture
def bench() -> tuple[ModuleType, ModuleType]:
    """``benchmarks._data`` and ``benchmarks.bench_write`` (the repo root is not on sys.path)."""
    return import_benchmark("_data"), import_benchmark("bench_write")


@pytest.mark.slow
def test_quick_write_benchmark_reports_both_sides_writing_every_row(tmp_path: Path) -> None:
    stdout, report = run_quick_benchmark("write", tmp_path)
    assert "append_300k_rows" in stdout
    rows = report["parameters"]["rows"]
    repetitions = report["parameters"]["repetitions"]
    assert repetitions >= 3
    assert [c["name"] for c in report["comparisons"]] == ["append_300k_rows", "append_600k_rows"]
    assert report["comparisons"][0]["target"] == pytest.approx(1 / 0.9)
    for comparison in report["comparisons"]:
        assert len(comparison["lakekit_samples_ms"]) == repetitions
        assert len(comparison["baseline_samples_ms"]) == repetitions
        assert min(comparison["lakekit_samples_ms"] + comparison["baseline_samples_ms"]) > 0
    assert set(report["runs"]) == {
        f"{side}@{n}" for side in ("lakekit", "baseline") for n in (rows, 2 * rows)
    }
    for key, runs in report["runs"].items():
        side, n = key.split("@")
        assert len(runs) == repetitions
        for run in runs:
            assert run["rows_written"] == int(n)
            assert run["files"] == 30  # one file per day of the 30-day stream
            assert run["peak_rss_bytes"] >= run["rss_before_bytes"] > 0
            if side == "lakekit":
                assert run["rows_counted"] == int(n)
    assert report["rss_growth"] > 0
    assert report["rss_target"] is None  # judged on full runs only
    for label in ("rows/s at 300k", "peak RSS at 600k", "peak RSS 2N/N"):
        assert label in report["extra"]


def test_both_sides_write_the_same_rows_into_the_same_days(
    bench: tuple[ModuleType, ModuleType], tmp_path: Path
) -> None:
    data, bench_write = bench
    stream = data.events_stream_file(20_000, batch_rows=4_096, cache_dir=tmp_path / "cache")
    (tmp_path / "lakekit").mkdir()
    ours = bench_write._write_lakekit(stream, tmp_path / "lakekit")
    theirs = bench_write._write_baseline(stream, tmp_path / "baseline")
    assert ours["rows_written"] == ours["rows_counted"] == theirs["rows_written"] == 20_000
    assert ours["seconds"] > 0 and theirs["seconds"] > 0

    baseline = ds.dataset(tmp_path / "baseline", format="parquet", partitioning="hive")
    expected = baseline.to_table().sort_by("event_id")
    lakekit_files = sorted((tmp_path / "lakekit").rglob("ts_day=*/*.parquet"))
    written = ds.dataset(lakekit_files, format="parquet").to_table().sort_by("event_id")
    assert written.select(data.STREAM_SCHEMA.names).equals(
        expected.select(data.STREAM_SCHEMA.names)
    )
    baseline_days = sorted(p.name for p in (tmp_path / "baseline").iterdir())
    lakekit_days = sorted({p.parent.name for p in lakekit_files})
    assert [d.replace("dt=", "ts_day=") for d in baseline_days] == lakekit_days
    assert len(lakekit_days) == data.DAYS


def test_event_batches_are_deterministic_bounded_and_in_time_order(
    bench: tuple[ModuleType, ModuleType],
) -> None:
    data, _ = bench
    batches = list(data.iter_event_batches(10_000, seed=3, batch_rows=3_000))
    again = list(data.iter_event_batches(10_000, seed=3, batch_rows=3_000))
    other = list(data.iter_event_batches(10_000, seed=4, batch_rows=3_000))
    assert [b.num_rows for b in batches] == [3_000, 3_000, 3_000, 1_000]
    assert all(b.equals(c) for b, c in zip(batches, again, strict=True))
    assert not batches[0].equals(other[0])
    table = pa.Table.from_batches(batches)
    assert table.schema == data.STREAM_SCHEMA
    assert table.column("event_id").to_pylist() == list(range(1, 10_001))
    ts = table.column("ts").combine_chunks()
    assert pc.all(pc.greater_equal(ts[1:], ts[:-1])).as_py()
    assert pc.count_distinct(pc.cast(ts, pa.date32())).as_py() == data.DAYS


def test_the_stream_file_holds_the_batches_and_is_reused(
    bench: tuple[ModuleType, ModuleType], tmp_path: Path
) -> None:
    data, _ = bench
    path = data.events_stream_file(5_000, batch_rows=2_000, cache_dir=tmp_path)
    with pa.OSFile(str(path), "rb") as source:
        stored = list(pa.ipc.open_stream(source))
    expected = list(data.iter_event_batches(5_000, batch_rows=2_000))
    assert len(stored) == len(expected) == 3
    assert all(a.equals(b) for a, b in zip(stored, expected, strict=True))
    modified = path.stat().st_mtime_ns
    assert data.events_stream_file(5_000, batch_rows=2_000, cache_dir=tmp_path) == path
    assert path.stat().st_mtime_ns == modified
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no partial file left
