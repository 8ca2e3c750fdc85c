"""`lakekit ingest`, `lakekit transform` and `lakekit runs` on a real local lake, real files and a
real SQLite database."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import cast

import pytest

import lakekit
from lakekit.cli import main
from servers.postgres import PostgresServer


@pytest.fixture
def lake_url(tmp_path: Path) -> str:
    url = f"local://{tmp_path / 'lake'}"
    with lakekit.connect(url) as lake:
        lake.store.put("landing/a.ndjson", b'{"id": 1, "day": "d1"}\nnot json\n')
        lake.store.put("landing/b.ndjson", b'{"id": 2, "day": "d2"}\n{"id": 3, "day": "d2"}\n')
    return url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    path = tmp_path / "app.db"
    connection = sqlite3.connect(path)
    try:
        connection.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT, ts INTEGER)")
        connection.executemany(
            "INSERT INTO users VALUES (?, ?, ?)", [(i, f"user{i}", i * 10) for i in range(1, 6)]
        )
        connection.commit()
    finally:
        connection.close()
    return f"sqlite:///{path}"


def ids(url: str, table: str) -> list[int]:
    with lakekit.connect(url) as lake:
        values = lake.sql(f"SELECT id FROM {table}").to_arrow().column("id").to_pylist()
    return sorted(cast("list[int]", values))


def test_ingest_files_with_quarantine_prints_the_report_and_loads_good_rows(
    lake_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["ingest", "events", "--into", "raw.events", "--files", "landing/"]
    status = main([*argv, "--on-error", "quarantine", "--lake", lake_url])
    out = capsys.readouterr().out
    assert status == 0
    assert "status       succeeded" in out
    assert "rows out     3" in out and "quarantined  1" in out
    assert ids(lake_url, "raw.events") == [1, 2, 3]
    with lakekit.connect(lake_url) as lake:
        bad = lake.table("raw.events__quarantine").to_arrow().to_pylist()
    assert [(row["_origin"], row["_record"]) for row in bad] == [("landing/a.ndjson:2", "not json")]


def test_ingest_of_a_bad_file_exits_1_with_a_failed_report_and_loads_nothing_of_it(
    lake_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["ingest", "events", "--into", "raw.events", "--files", "landing/", "--json"]
    assert main([*argv, "--lake", lake_url]) == 1
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert report["status"] == "failed" and report["rows_out"] == 0
    assert "landing/a.ndjson:2: invalid JSON" in captured.err
    with lakekit.connect(lake_url) as lake:
        assert not lake.catalog.table_exists("raw.events")


def test_ingest_sql_is_incremental_by_cursor_across_invocations(
    lake_url: str, sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["ingest", "users", "--into", "raw.users", "--sql", sqlite_url, "--table", "users"]
    argv += ["--cursor", "ts", "--json", "--lake", lake_url]
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out)["rows_out"] == 5
    connection = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"))
    try:
        connection.execute("INSERT INTO users VALUES (6, 'user6', 60)")
        connection.commit()
    finally:
        connection.close()
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out)["rows_out"] == 1
    assert ids(lake_url, "raw.users") == [1, 2, 3, 4, 5, 6]


def test_ingest_merge_upserts_on_the_given_keys(
    lake_url: str, sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    query = "SELECT id, name FROM users WHERE id <= 2"
    argv = ["ingest", "u", "--into", "raw.u", "--sql", sqlite_url, "--query", query]
    argv += ["--mode", "merge", "--merge-on", "id", "--lake", lake_url]
    assert main(argv) == 0
    assert main(argv) == 0  # no cursor: reads everything again, the merge keeps one row per id
    capsys.readouterr()
    assert ids(lake_url, "raw.u") == [1, 2]


def test_ingest_refuses_flags_of_another_source_kind_with_status_2(
    lake_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["ingest", "e", "--into", "raw.e", "--files", "landing/", "--table", "t"]
    assert main([*argv, "--lake", lake_url]) == 2
    assert "--table applies to --sql sources" in capsys.readouterr().err
    argv = ["ingest", "e", "--into", "raw.e", "--http", "http://127.0.0.1:9/x"]
    assert main([*argv, "--on-error", "quarantine", "--lake", lake_url]) == 2
    assert "--on-error applies to --files sources, not --http" in capsys.readouterr().err
    argv = ["ingest", "e", "--into", "raw.e", "--files", "landing/", "--follow"]
    assert main([*argv, "--lake", lake_url]) == 2
    assert "--follow applies to --stream sources" in capsys.readouterr().err


def test_transform_materialises_a_query_partitioned(
    lake_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["ingest", "e", "--into", "raw.e", "--files", "landing/b", "--lake", lake_url])
    capsys.readouterr()
    sql = "SELECT day, count(*) AS n FROM raw.e GROUP BY day"
    assert main(["transform", sql, "--into", "marts.daily"]) == 2  # no --lake, no lakekit.toml
    assert "no lake URL" in capsys.readouterr().err
    argv = ["transform", sql, "--into", "marts.daily", "--partition-by", "day", "--lake", lake_url]
    assert main(argv) == 0
    assert "marts.daily: committed snapshot" in capsys.readouterr().out
    with lakekit.connect(lake_url) as lake:
        table = lake.table("marts.daily")
        assert table.to_arrow().to_pylist() == [{"day": "d2", "n": 2}]
        assert [f.source for f in table.partition_spec.fields] == ["day"]


def test_runs_lists_history_newest_first_as_table_and_json(
    lake_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["ingest", "events", "--into", "raw.events", "--files", "landing/", "--lake", lake_url]
    main(base)  # fails: a bad line
    main([*base, "--on-error", "quarantine"])
    capsys.readouterr()
    assert main(["runs", "events", "--lake", lake_url]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "pipeline" in lines[0] and "status" in lines[0]
    assert "succeeded" in lines[2] and "failed" in lines[3] and len(lines) == 4
    assert main(["runs", "--limit", "1", "--json", "--lake", lake_url]) == 0
    reports = json.loads(capsys.readouterr().out)
    assert [(r["pipeline"], r["status"]) for r in reports] == [("events", "succeeded")]


def test_python_dash_m_lakekit_runs_an_ingest(lake_url: str, tmp_path: Path) -> None:
    argv = ["ingest", "e", "--into", "raw.e", "--files", "landing/b", "--json", "--lake", lake_url]
    done = subprocess.run(
        [sys.executable, "-m", "lakekit", *argv],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["rows_out"] == 2
    assert "\r" not in done.stderr  # no progress line when stderr is not a terminal


def test_ingest_csv_dialect_flags(
    tmp_path: Path, lake_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with lakekit.connect(lake_url) as lake:
        lake.store.put("semi/a.csv", b"exported by app\n1;ann\n2;NA\n")
    argv = ["ingest", "s", "--into", "raw.s", "--files", "semi/", "--delimiter", ";"]
    argv += ["--no-header", "--skip-rows", "1", "--null-value", "NA", "--lake", lake_url]
    assert main(argv) == 0
    capsys.readouterr()
    with lakekit.connect(lake_url) as lake:
        rows = lake.table("raw.s").to_arrow().sort_by("f0").to_pylist()
    assert rows == [{"f0": 1, "f1": "ann"}, {"f0": 2, "f1": None}]


def test_ingest_sql_backfill_bounds(
    lake_url: str, sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["ingest", "u", "--into", "raw.u", "--sql", sqlite_url, "--table", "users"]
    argv += ["--cursor", "id", "--start", "2", "--end", "5", "--lake", lake_url]
    assert main(argv) == 0
    capsys.readouterr()
    assert ids(lake_url, "raw.u") == [2, 3, 4]


def test_ingest_a_stream_into_a_table(lake_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    with lakekit.connect(lake_url) as lake:
        for i in range(4):
            lake.stream("clicks").publish_json({"id": i}, key=str(i))
    argv = ["ingest", "clicks", "--into", "raw.clicks", "--stream", "clicks", "--lake", lake_url]
    assert main(argv) == 0
    assert "rows out     4" in capsys.readouterr().out
    assert ids(lake_url, "raw.clicks") == [0, 1, 2, 3]
    assert main(argv) == 0  # exactly once: nothing new
    assert "status       nothing to do" in capsys.readouterr().out
    with lakekit.connect(lake_url) as lake:  # the group (named after the pipeline) followed
        assert sum(lake.stream("clicks").committed("clicks").values()) == 4


def test_ingest_with_a_contract_from_a_module(
    tmp_path: Path,
    lake_url: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (tmp_path / "cli_models.py").write_text(
        "from pydantic import BaseModel\n\n\nclass Event(BaseModel):\n    id: int\n    day: str\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    argv = ["ingest", "e", "--into", "raw.e", "--files", "landing/", "--on-error", "quarantine"]
    argv += ["--contract", "cli_models:Event", "--policy", "freeze", "--lake", lake_url]
    assert main(argv) == 0
    assert "rows out     3" in capsys.readouterr().out
    assert main(["ingest", "x", "--into", "raw.x", "--files", "landing/", "--contract",
                 "cli_models:Nope", "--lake", lake_url]) == 2  # fmt: skip
    assert "cannot import it" in capsys.readouterr().err
    assert main(["ingest", "x", "--into", "raw.x", "--files", "landing/", "--policy",
                 "discard", "--lake", lake_url]) == 2  # fmt: skip
    assert "--policy applies to a --contract" in capsys.readouterr().err


def test_ingest_http_header_flag_must_be_name_colon_value(
    lake_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["ingest", "h", "--into", "raw.h", "--http", "http://127.0.0.1:9/x"]
    assert main([*argv, "--header", "Authorization Bearer abc", "--lake", lake_url]) == 2
    err = capsys.readouterr().err
    assert "--header takes 'Name: value'" in err
    assert "abc" not in err, "header values may be secrets"


@pytest.mark.postgres
def test_ingest_sql_bounds_are_typed_for_the_database(
    lake_url: str, postgres_server: PostgresServer, capsys: pytest.CaptureFixture[str]
) -> None:
    import uuid

    import sqlalchemy as sa

    url = postgres_server.url
    table = f"cli_{uuid.uuid4().hex[:8]}"
    engine = sa.create_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(sa.text(f"CREATE TABLE {table} (id int, at timestamptz)"))
            connection.execute(
                sa.text(f"INSERT INTO {table} VALUES (:id, :at)"),
                [{"id": i, "at": f"2026-01-0{i}T00:00:00+00:00"} for i in range(1, 6)],
            )
        source = ["--sql", url, "--table", table, "--lake", lake_url]
        by_id = ["ingest", "a", "--into", "raw.a", *source, "--cursor", "id"]
        assert main([*by_id, "--start", "2", "--end", "4"]) == 0
        assert ids(lake_url, "raw.a") == [2, 3]
        by_time = ["ingest", "b", "--into", "raw.b", *source, "--cursor", "at"]
        assert main([*by_time, "--start", "2026-01-04T00:00:00+00:00"]) == 0
        capsys.readouterr()
        assert ids(lake_url, "raw.b") == [4, 5]
    finally:
        with engine.begin() as connection:
            connection.execute(sa.text(f"DROP TABLE {table}"))
        engine.dispose()
