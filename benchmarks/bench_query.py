"""Query a catalog table through ``lake.engine.sql`` vs DuckDB directly on the same files.

Two lakes hold the same deterministic events (see :mod:`benchmarks._data`), day-partitioned:

* the **lake table** (the measured path, with targets): ``bench.events`` written through
  ``lake.create_table(...).append(...)``, so it has snapshots and the engine reads its committed
  file list (no listing) and binds its view on a schema file (no ``schema`` map);
* the **listed table** (``listed_group_by``, no target): ``bench.events`` registered with the
  plain catalog over hand-written files, which the engine must list on every query.

Each workload runs the same SQL with the same bound parameters:

* lakekit: ``lake.engine.sql(sql, params).to_arrow()`` naming the table ``bench.events``: the
  engine looks the table up in the catalog, gets its files and (re)uses its view;
* DuckDB: ``con.sql(sql, params=params).to_arrow_table()`` on an in-memory connection with the
  settings DuckDBEngine applies (no extension auto-loading, Parquet footer cache on), the table
  spelled ``read_parquet('<location>/*/*.parquet', hive_partitioning = true)`` over the same
  files. The ratio thus measures what lakekit adds, not DuckDB configuration.

Both are warm and interleaved; the figure of each side is its median. Target: lakekit at most
1.1x DuckDB on each workload of the lake table. ``count_one_day`` reads only Parquet metadata,
so its difference is close to lakekit's fixed per-query cost; the catalog lookup, the committed
file list and the listing are also timed on their own.
"""

from __future__ import annotations

import datetime as dt
import math
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

import duckdb

import lakekit
from benchmarks._data import SCHEMA, TABLE, EventsLake, build_events_lake, generate_events
from benchmarks._harness import Comparison, Report, compare

NAME = "query"
DESCRIPTION = "SQL over a day-partitioned catalog table: lakekit engine vs DuckDB on the same files"
TARGET = 1.1

WORKLOADS: list[tuple[str, str, list[Any], float | None]] = [
    (
        "filtered_group_by",
        "select event_type, count(*) as events, sum(amount) as total from {events} "
        "where dt between ? and ? group by event_type order by events desc",
        [dt.date(2024, 1, 10), dt.date(2024, 1, 12)],
        TARGET,
    ),
    (
        "distinct_users",
        "select count(distinct user_id) as users from {events}",
        [],
        TARGET,
    ),
    (
        "point_lookup",
        "select * from {events} where event_id = ?",
        [],  # filled in with a row in the middle of the table
        TARGET,
    ),
    (
        "count_one_day",
        "select count(*) as events from {events} where dt = ?",
        [dt.date(2024, 1, 15)],
        None,
    ),
]


LAKE_TABLE_VERSION = 1
"""Bump when the lake table's layout changes, so cached copies are rebuilt."""


def build_lake_table(rows: int, *, seed: int = 7, cache_dir: Path | None = None) -> EventsLake:
    """The events as a lake table (``lake.create_table(...).append(...)``), built once.

    A cached copy is reused only if it opens and holds ``rows`` rows (the table format may have
    changed since it was written).
    """
    cache_dir = cache_dir or Path(__file__).resolve().parent / ".data"
    root = cache_dir / f"lake-events-v{LAKE_TABLE_VERSION}-{rows}-seed{seed}"
    started = time.perf_counter()
    if not _holds(root, rows):
        shutil.rmtree(root, ignore_errors=True)
        with lakekit.connect(f"local://{root}", store={"fsync": False}) as lake:
            lake.create_table(TABLE, SCHEMA, partition_by=["dt"]).append(
                generate_events(rows, seed)
            )
        (root / "COMPLETE").write_text(f"{rows} rows, seed {seed}\n")
    files = sorted((root / "tables" / "bench" / "events").glob("*/*.parquet"))
    return EventsLake(
        root=root,
        rows=rows,
        files=len(files),
        bytes=sum(f.stat().st_size for f in files),
        build_seconds=time.perf_counter() - started,
    )


def _holds(root: Path, rows: int) -> bool:
    if not (root / "COMPLETE").is_file():
        return False
    try:
        with lakekit.connect(f"local://{root}") as lake:
            return lake.table(TABLE).count() == rows
    except Exception:  # any failure to read a stale cache means: rebuild it
        return False


def run(quick: bool = False) -> Report:
    rows = 200_000 if quick else 2_000_000
    repetitions = 5 if quick else 31
    table = build_lake_table(rows)
    listed = build_events_lake(rows)
    comparisons: list[Comparison] = []
    extra: dict[str, Any] = {}
    con = duckdb.connect(
        config={"autoinstall_known_extensions": False, "autoload_known_extensions": False}
    )
    con.execute("SET parquet_metadata_cache = true")
    try:
        with lakekit.connect(table.url) as lake:
            direct = _direct(table.table_dir)
            for name, template, params, target in WORKLOADS:
                values = params or ([rows // 2 + 17] if name == "point_lookup" else [])
                comparisons.append(
                    _compare(name, lake, con, template, direct, values, repetitions, target)
                )
            extra.update(
                _overhead_parts(
                    lake,
                    repetitions * 5,
                    table_label="lake table",
                    files_label="committed file list (on a catalog change only)",
                )
            )
        with lakekit.connect(listed.url) as lake:
            _name, template, params, _target = WORKLOADS[0]
            direct = _direct(listed.table_dir)
            comparisons.append(
                _compare("listed_group_by", lake, con, template, direct, params, repetitions, None)
            )
            extra.update(
                _overhead_parts(
                    lake, repetitions * 5, table_label="listed table", files_label="listing"
                )
            )
    finally:
        con.close()
    extra["data"] = (
        f"{table.rows:,} rows; lake table: {table.files} files, {table.bytes / 1e6:.1f} MB "
        f"(built or reused in {table.build_seconds:.1f} s); listed table: {listed.files} files, "
        f"{listed.bytes / 1e6:.1f} MB"
    )
    return Report(
        name=NAME,
        description=DESCRIPTION,
        baseline=(
            "DuckDB con.sql(...).to_arrow_table() over read_parquet(glob, hive_partitioning), "
            "same DuckDB settings"
        ),
        comparisons=comparisons,
        parameters={"rows": rows, "repetitions": repetitions, "quick": quick},
        extra=extra,
    )


def _direct(table_dir: Path) -> str:
    return f"read_parquet('{table_dir}/*/*.parquet', hive_partitioning = true)"


def _compare(
    name: str,
    lake: lakekit.Lake,
    con: duckdb.DuckDBPyConnection,
    template: str,
    direct_table: str,
    values: list[Any],
    repetitions: int,
    target: float | None,
) -> Comparison:
    ours_sql = template.format(events=TABLE)
    theirs_sql = template.format(events=direct_table)
    ours = lake.engine.sql(ours_sql, values).to_arrow()
    theirs = con.sql(theirs_sql, params=values).to_arrow_table()
    if not _same_rows(ours.to_pylist(), theirs.to_pylist()):
        raise AssertionError(f"{name}: lakekit and DuckDB returned different rows")
    return compare(
        name,
        lambda: lake.engine.sql(ours_sql, values).to_arrow(),
        lambda: con.sql(theirs_sql, params=values).to_arrow_table(),
        repetitions=repetitions,
        target=target,
    )


def _same_rows(ours: list[dict[str, Any]], theirs: list[dict[str, Any]]) -> bool:
    """Equal rows, floats to 1e-9 relative (parallel sums differ in the last bits)."""
    if len(ours) != len(theirs):
        return False
    for left, right in zip(ours, theirs, strict=True):
        if left.keys() != right.keys():
            return False
        for key, value in left.items():
            other = right[key]
            if isinstance(value, float) and isinstance(other, float):
                if not math.isclose(value, other, rel_tol=1e-9):
                    return False
            elif value != other:
                return False
    return True


def _overhead_parts(
    lake: lakekit.Lake, repetitions: int, *, table_label: str, files_label: str
) -> dict[str, str]:
    """Median cost of the two steps lakekit adds per referenced table: the catalog lookup and
    getting the table's files (a memoised snapshot file list, or a listing)."""
    from lakekit.adapters.duckdb._views import table_files

    table = lake.catalog.load_table(TABLE)
    lookups = []
    file_lists = []
    for _ in range(repetitions):
        started = time.perf_counter()
        lake.catalog.load_table(TABLE)
        lookups.append(time.perf_counter() - started)
        started = time.perf_counter()
        table_files(table, lake.store)
        file_lists.append(time.perf_counter() - started)
    return {
        f"catalog lookup, {table_label} (median)": f"{statistics.median(lookups) * 1000:.3f} ms",
        f"{files_label}, {table_label} (median)": (
            f"{statistics.median(file_lists) * 1000:.3f} ms"
        ),
    }
