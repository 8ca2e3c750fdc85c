"""The windows benchmark runs end to end and compares like with like: both sides aggregate the
same readings into the same windows (timings are judged by `nox -s bench`)."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest

import lakekit
from benchmarking import import_benchmark, run_quick_benchmark


@pytest.fixture
def bench() -> ModuleType:
    return import_benchmark("bench_windows")


@pytest.mark.slow
def test_quick_windows_benchmark_reports_both_workloads_and_the_stream_floor(
    tmp_path: Path,
) -> None:
    stdout, report = run_quick_benchmark("windows", tmp_path)
    assert "count_mean_max_100k" in stdout
    assert [c["name"] for c in report["comparisons"]] == [
        "count_mean_max_100k",
        "with_distinct_100k",
    ]
    repetitions = report["parameters"]["repetitions"]
    for comparison in report["comparisons"]:
        assert len(comparison["lakekit_samples_ms"]) == repetitions
        assert len(comparison["baseline_samples_ms"]) == repetitions
        assert comparison["ratio"] > 0 and comparison["target"] is None
    for label in ("records/s count_mean_max", "records/s with_distinct", "windows emitted"):
        assert label in report["extra"]
    assert "records/s consume only (poll + commit)" in report["extra"]
    assert "records/s consume only (poll_batch + commit)" in report["extra"]
    for workload in ("count_mean_max", "with_distinct"):
        assert report["extra"][f"CPU s per run {workload}"].startswith("lakekit ")
    assert report["extra"]["windows emitted"] == "count_mean_max 3,000, with_distinct 3,000"


@pytest.mark.slow
def test_both_sides_compute_the_same_windows(bench: ModuleType, tmp_path: Path) -> None:
    values = bench.readings(32_000, seed=3)
    assert values == bench.readings(32_000, seed=3)  # deterministic
    with lakekit.connect(
        f"local://{tmp_path / 'lake'}", stream={"partitions": 4, "fsync": "never"}
    ) as lake:
        bench.build_stream(lake, values)
        assert sum(lake.stream("readings").offsets().values()) == 32_000
        result = bench.run_lakekit(lake, "agree", distinct=True)
        expected = bench.run_baseline(b"\n".join(values), distinct=True)
        assert result["stats"].records == 32_000
        assert bench.check_same_results(lake, result, expected) == 1_000  # one closed window
        exact = {
            (d, w // 1_000_000): u
            for d, w, u in zip(
                expected["device"].to_pylist(),
                expected["window"].to_pylist(),
                expected["user_count_distinct"].to_pylist(),
                strict=True,
            )
        }
        for row in lake.table(result["table"]).to_arrow().to_pylist():
            window = (row["device"], int(row["window_start"].timestamp()))
            assert row["users"] == exact[window]  # a few values per window: the sketch is exact
        assert bench.consume_only(lake, "floor") == 32_000
        assert bench.consume_only(lake, "floor_blocks", batch=True) == 32_000
