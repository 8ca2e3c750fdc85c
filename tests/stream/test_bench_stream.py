"""The stream benchmark runs end to end and compares like with like: both sides write and read
back every record of the same batches (timings are judged by `nox -s bench`)."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest

from benchmarking import import_benchmark, run_quick_benchmark


@pytest.fixture
def bench() -> ModuleType:
    return import_benchmark("bench_stream")


@pytest.mark.slow
def test_quick_stream_benchmark_reports_every_workload_for_both_sides(tmp_path: Path) -> None:
    stdout, report = run_quick_benchmark("stream", tmp_path)
    assert "publish_200k" in stdout and "consume_200k" in stdout
    repetitions = report["parameters"]["repetitions"]
    assert repetitions >= 3
    names = [c["name"] for c in report["comparisons"]]
    assert names == [
        "publish_200k",
        "consume_200k",
        "publish_200k_vs_newline",
        "consume_200k_vs_newline",
        "publish_200k_fsync_always",
    ]
    targets = {c["name"]: c["target"] for c in report["comparisons"]}
    assert targets["publish_200k"] == pytest.approx(1 / 0.7)
    assert targets["consume_200k"] == pytest.approx(1 / report["extra_targets"]["consume"])
    for comparison in report["comparisons"]:
        assert len(comparison["lakekit_samples_ms"]) == repetitions
        assert len(comparison["baseline_samples_ms"]) == repetitions
        assert min(comparison["lakekit_samples_ms"] + comparison["baseline_samples_ms"]) > 0
    for side in ("lakekit", "baseline"):
        assert len(report["runs"][side]) == repetitions
    for run in report["runs"]["lakekit"]:
        assert run["consumed"] == 200_000
        assert run["bytes"] > 200_000 * 100
    for label in ("publish rec/s (fsync=batch)", "consume rec/s", "publish rec/s (fsync=always)"):
        assert label in report["extra"]


def test_both_sides_store_and_read_back_the_same_records(bench: ModuleType, tmp_path: Path) -> None:
    ours = bench.lakekit_side(5_000, tmp_path / "lakekit")
    theirs = bench.baseline_side(5_000, tmp_path / "baseline")
    assert ours["consumed"] == 5_000
    for key in ("publish_s", "consume_s", "always_publish_s", "durable_s"):
        assert ours[key] > 0
    for key in ("prefixed_write_s", "prefixed_read_s", "newline_write_s", "always_write_s"):
        assert theirs[key] > 0
    expected = [v for batch in bench.batches(5_000) for v in batch]
    assert len(expected) == 5_000 and {len(v) for v in expected} == {100}
    prefixed_file = tmp_path / "baseline" / "prefixed.bin"
    prefixed = [v for batch in bench.read_prefixed(prefixed_file) for v in batch]
    assert prefixed == expected
    assert bench.read_newline(tmp_path / "baseline" / "newline.txt") == expected
    assert (tmp_path / "baseline" / "always.bin").read_bytes() == (
        tmp_path / "baseline" / "prefixed.bin"
    ).read_bytes()

    import lakekit

    with lakekit.connect(f"local://{tmp_path / 'lakekit'}") as lake:
        stream = lake.stream("bench")
        stored = sorted(r.value for r in stream.replay())
        assert stored == sorted(expected)
        assert stream.committed("bench") == stream.offsets("latest")
        assert sorted(r.value for r in lake.stream("bench_always").replay()) == sorted(expected)
