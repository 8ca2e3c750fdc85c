"""The query benchmark runs end to end: both sides return the same rows (on the lake table and on
the listed table) and a JSON report is written (numbers themselves are judged by `nox -s bench`,
not here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarking import import_benchmark, run_quick_benchmark


@pytest.mark.slow
def test_quick_query_benchmark_writes_a_report(tmp_path: Path) -> None:
    stdout, report = run_quick_benchmark("query", tmp_path)
    assert "filtered_group_by" in stdout
    assert report["machine"]["cores"] >= 1
    names = [c["name"] for c in report["comparisons"]]
    assert names == [
        "filtered_group_by",
        "distinct_users",
        "point_lookup",
        "count_one_day",
        "listed_group_by",
    ]
    assert [c["target"] for c in report["comparisons"]] == [1.1, 1.1, 1.1, None, None]
    for comparison in report["comparisons"]:
        assert comparison["lakekit_ms"] > 0
        assert comparison["baseline_ms"] > 0
        assert len(comparison["lakekit_samples_ms"]) == report["parameters"]["repetitions"]


def test_generated_events_are_deterministic() -> None:
    data = import_benchmark("_data")
    days_total, generate_events = data.DAYS, data.generate_events
    first = generate_events(5_000, seed=3)
    assert first.equals(generate_events(5_000, seed=3))
    assert not first.equals(generate_events(5_000, seed=4))
    assert first.column("event_id").to_pylist() == list(range(1, 5_001))
    days = set(first.column("dt").to_pylist())
    assert 1 < len(days) <= days_total
