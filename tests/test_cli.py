"""The `lakekit` command and the README's demo job."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lakekit.cli import main
from lakekit.demo import run_demo


@pytest.fixture(scope="module")
def demo_lake(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    path = tmp_path_factory.mktemp("demo") / "lake"
    lines: list[str] = []
    report = run_demo(path, out=lines.append)
    return path, (report, "\n".join(lines))


def test_demo_loads_the_whole_dataset_and_uses_every_interface(
    demo_lake: tuple[Path, object],
) -> None:
    _, (report, output) = demo_lake  # type: ignore[misc]
    assert report.rows_loaded == 336_776  # every flight out of NYC in 2013
    assert report.partitions == 12
    assert report.tables == ["nyc.airlines", "nyc.flights"]
    assert len(report.top_delays) == 5
    delays = [row["avg_dep_delay_min"] for row in report.top_delays]
    assert delays == sorted(delays, reverse=True)
    assert report.events_consumed == 20
    assert "late" in report.function_result
    for step in ("Extract + Load raw", "Catalog", "Query", "Stream", "Functions", "s3://"):
        assert step in output


def test_demo_is_rerunnable_on_the_same_lake(demo_lake: tuple[Path, object]) -> None:
    path, (first, _) = demo_lake  # type: ignore[misc]
    again = run_demo(path, out=lambda _: None)
    assert again.rows_loaded == first.rows_loaded
    assert again.top_delays == first.top_delays


def test_query_command_prints_a_table(
    demo_lake: tuple[Path, object], capsys: pytest.CaptureFixture[str]
) -> None:
    path, _ = demo_lake
    sql = "select origin, count(*) as n from nyc.flights group by origin order by origin"
    assert main(["query", sql, "--lake", str(path)]) == 0
    out = capsys.readouterr().out
    assert "origin" in out and "EWR" in out and "JFK" in out and "LGA" in out


def test_query_command_writes_json_and_csv(demo_lake: tuple[Path, object], tmp_path: Path) -> None:
    path, _ = demo_lake
    sql = "select carrier, name from nyc.airlines order by carrier limit 2"
    target = tmp_path / "out.json"
    assert main(["query", sql, "--lake", str(path), "--format", "json", "-o", str(target)]) == 0
    rows = [json.loads(line) for line in target.read_text().splitlines()]
    assert rows == [
        {"carrier": "9E", "name": "Endeavor Air Inc."},
        {"carrier": "AA", "name": "American Airlines Inc."},
    ]
    csv = tmp_path / "out.csv"
    assert main(["query", sql, "--lake", str(path), "--format", "csv", "-o", str(csv)]) == 0
    assert csv.read_text().splitlines()[0] == '"carrier","name"'


def test_tables_and_info_commands(
    demo_lake: tuple[Path, object], capsys: pytest.CaptureFixture[str]
) -> None:
    path, _ = demo_lake
    assert main(["tables", "--lake", str(path)]) == 0
    assert capsys.readouterr().out.split() == ["nyc.airlines", "nyc.flights"]
    assert main(["info", "--lake", str(path)]) == 0
    out = capsys.readouterr().out
    assert "LocalObjectStore" in out and "SqlCatalog" in out and "DuckDBEngine" in out


def test_errors_are_one_line_with_exit_codes(
    demo_lake: tuple[Path, object], capsys: pytest.CaptureFixture[str]
) -> None:
    path, _ = demo_lake
    assert main(["query", "selec nonsense", "--lake", str(path)]) == 1
    assert "QueryError" in capsys.readouterr().err
    assert main(["query", "select 1"]) == 2  # no lake URL anywhere
    assert "LAKEKIT_URL" in capsys.readouterr().err


def test_python_dash_m_lakekit_runs_the_cli(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "lakekit", "query", "select 42 as answer", "--lake", str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "42" in out.stdout
