"""Query a catalog table through ``lake.engine.sql`` vs DuckDB directly on the same files.

The lake holds ``bench.events`` (see :mod:`benchmarks._data`), day-partitioned Parquet. Each
workload runs the same SQL with the same bound parameters:

* lakekit: ``lake.engine.sql(sql, params).to_arrow()`` naming the table ``bench.events``: the
  engine looks the table up in the catalog, lists its files and (re)uses its view;
* DuckDB: ``con.sql(sql, params=params).to_arrow_table()`` on an in-memory connection with the
  settings DuckDBEngine applies (no extension auto-loading, Parquet footer cache on), the table
  spelled ``read_parquet('<location>/*/*.parquet', hive_partitioning = true)``. The ratio thus
  measures what lakekit adds, not DuckDB configuration.

Both are warm and interleaved; the figure of each side is its median. Target: lakekit at most
1.1x DuckDB on each workload. ``count_one_day`` reads only Parquet metadata, so its difference
is close to lakekit's fixed per-query cost; the catalog lookup and the listing are also timed
on their own.
"""

from __future__ import annotations

import datetime as dt
import math
import statistics
import time
from typing import Any

import duckdb

import lakekit
from benchmarks._data import TABLE, build_events_lake
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


def run(quick: bool = False) -> Report:
    rows = 200_000 if quick else 2_000_000
    repetitions = 5 if quick else 31
    built = build_events_lake(rows)
    glob = f"{built.table_dir}/*/*.parquet"
    direct_table = f"read_parquet('{glob}', hive_partitioning = true)"
    comparisons: list[Comparison] = []
    extra: dict[str, Any] = {}
    with lakekit.connect(built.url) as lake:
        con = duckdb.connect(
            config={"autoinstall_known_extensions": False, "autoload_known_extensions": False}
        )
        con.execute("SET parquet_metadata_cache = true")
        try:
            for name, template, params, target in WORKLOADS:
                values = params or ([rows // 2 + 17] if name == "point_lookup" else [])
                ours_sql = template.format(events=TABLE)
                theirs_sql = template.format(events=direct_table)
                ours = lake.engine.sql(ours_sql, values).to_arrow()
                theirs = con.sql(theirs_sql, params=values).to_arrow_table()
                if not _same_rows(ours.to_pylist(), theirs.to_pylist()):
                    raise AssertionError(f"{name}: lakekit and DuckDB returned different rows")
                comparisons.append(
                    compare(
                        name,
                        lambda q=ours_sql, v=values: lake.engine.sql(q, v).to_arrow(),
                        lambda q=theirs_sql, v=values: con.sql(q, params=v).to_arrow_table(),
                        repetitions=repetitions,
                        target=target,
                    )
                )
            extra.update(_overhead_parts(lake, repetitions * 5))
        finally:
            con.close()
    extra["data"] = (
        f"{built.rows:,} rows, {built.files} files, {built.bytes / 1e6:.1f} MB "
        f"(built or reused in {built.build_seconds:.1f} s)"
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


def _overhead_parts(lake: lakekit.Lake, repetitions: int) -> dict[str, str]:
    """Median cost of the two steps lakekit adds per referenced table."""
    from lakekit.adapters.duckdb._views import table_files

    table = lake.catalog.load_table(TABLE)
    lookups = []
    listings = []
    for _ in range(repetitions):
        started = time.perf_counter()
        lake.catalog.load_table(TABLE)
        lookups.append(time.perf_counter() - started)
        started = time.perf_counter()
        table_files(table, lake.store)
        listings.append(time.perf_counter() - started)
    return {
        "catalog lookup (median)": f"{statistics.median(lookups) * 1000:.3f} ms",
        "file listing (median)": f"{statistics.median(listings) * 1000:.3f} ms",
    }
