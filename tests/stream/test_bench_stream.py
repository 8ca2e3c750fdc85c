"""The stream benchmark runs end to end and compares like with like: both sides write and read
back every record of the same batches, in the same layouts (timings are judged by
`nox -s bench`)."""

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
        "publish_1p_200k",
        "consume_200k",
        "consume_1p_200k",
        "consume_records_200k",
        "publish_varlen_200k",
        "consume_varlen_200k",
        "publish_fsync_always_200k",
    ]
    targets = {c["name"]: c["target"] for c in report["comparisons"]}
    for judged in ("publish_200k", "publish_1p_200k", "consume_200k", "consume_1p_200k"):
        assert targets[judged] == pytest.approx(1 / 0.7)
    assert report["extra_targets"] == {"publish": 0.7, "consume": 0.7}
    for comparison in report["comparisons"]:
        assert len(comparison["lakekit_samples_ms"]) == repetitions
        assert len(comparison["baseline_samples_ms"]) == repetitions
        assert min(comparison["lakekit_samples_ms"] + comparison["baseline_samples_ms"]) > 0
    for side in ("lakekit", "baseline"):
        assert len(report["runs"][side]) == repetitions
    for run in report["runs"]["lakekit"]:
        assert run["bytes"] > 200_000 * 100
        assert run["publish_cpu_s"] > 0 and run["consume_cpu_s"] > 0
    for name in ("publish", "consume", "publish_1p", "consume_1p"):
        assert "CPU ratio" in report["extra"][f"{name} rec/s"]


def test_both_sides_store_and_read_back_the_same_records(bench: ModuleType, tmp_path: Path) -> None:
    ours = bench.lakekit_side(5_000, tmp_path / "lakekit")
    theirs = bench.baseline_side(5_000, tmp_path / "baseline")
    for name, our_key, their_key, _target in bench.WORKLOADS:
        for key in (f"{our_key}_s", f"{our_key}_cpu_s"):
            assert ours[key] > 0, (name, key)
        for key in (f"{their_key}_s", f"{their_key}_cpu_s"):
            assert theirs[key] > 0, (name, key)
    expected = [v for batch in bench.batches(5_000) for v in batch]
    assert len(expected) == 5_000
    assert {len(v) for v in expected} == {100}
    varying = [v for batch in bench.batches(5_000, varying=True) for v in batch]
    assert len({len(v) for v in varying}) > 50
    files = [tmp_path / "baseline" / f"var-{i}.bin" for i in range(4)]
    stored = [v for path in files for values in bench.read_file(path) for v in values]
    assert sorted(stored) == sorted(varying)
    base = tmp_path / "baseline"
    rotated = [list(bench.read_file(base / f"file-{i}.bin")) for i in range(4)]
    assert [len(batches) for batches in rotated] == [2, 1, 1, 1]  # batch i -> file i % 4
    assert [v for values in rotated[0] for v in values] == expected[:1000] + expected[4000:]
    one_file = [v for values in bench.read_file(base / "file_1f-0.bin") for v in values]
    assert one_file == expected
    always = [v for i in range(4) for values in bench.read_file(base / f"always-{i}.bin")
              for v in values]  # fmt: skip
    assert sorted(always) == sorted(expected)

    import lakekit

    with lakekit.connect(f"local://{tmp_path / 'lakekit'}") as lake:
        stream = lake.stream("bench")
        assert stream.partitions() == [0, 1, 2, 3]
        assert sorted(r.value for r in stream.replay()) == sorted(expected)
        for group in ("blocks", "records"):
            assert stream.committed(group) == stream.offsets("latest")
        assert sorted(r.value for r in lake.stream("bench_always").replay()) == sorted(expected)
        assert sorted(r.value for r in lake.stream("bench_var").replay()) == sorted(varying)
    with lakekit.connect(f"local://{tmp_path / 'lakekit'}", stream={"partitions": 1}) as lake:
        stream = lake.stream("bench_1p")
        assert [r.value for r in stream.replay()] == expected  # one partition: publish order
        assert stream.committed("blocks") == {0: 5_000}


def test_the_baseline_splits_values_of_any_lengths(bench: ModuleType) -> None:
    values, end = bench.split(b"xxabcde!", 2, (3, 0, 2))
    assert (list(values), end) == ([b"abc", b"", b"de"], 7)
    values, end = bench.split(b"..aabbcc", 2, (2, 2, 2))
    assert (list(values), end) == ([b"aa", b"bb", b"cc"], 8)
