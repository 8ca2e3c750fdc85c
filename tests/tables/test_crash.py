"""kill -9 a table writer again and again: the table always reads one consistent snapshot.

A child process appends batches of known rows in a loop and acknowledges each append (a line in
a file, flushed) only after ``append`` returned. It also notes each catalog commit it starts. The
parent SIGKILLs it, alternately at a random moment and just as a commit starts, then reopens
the lake and checks that the table holds exactly the rows of committed appends: every
acknowledged append, plus at most the one append whose commit was in flight, whole or not at
all. At the end, vacuum removes the crashed writers' files, after which DuckDB and
pyarrow.dataset reading the table directory directly (no lakekit) return exactly those rows.
"""

from __future__ import annotations

import random
import signal
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds
import pytest

import crashing
import lakekit
from lakekit.tables import Table

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL"),
]

ITERATIONS = 20
ROWS = 16
"""Rows per append: one per partition value of ``k`` (four) times four."""
ID_SPAN = 1_000_000
"""Each iteration's writer uses ids ``[iteration * ID_SPAN, (iteration + 1) * ID_SPAN)``."""
TIME_BUDGET = 25.0
"""Seconds the kill loop may take (it stops early, after at least 8 iterations, when over)."""
_PRELOAD = [
    "lakekit.lake",
    "lakekit.tables.table",
    "lakekit.tables.inputs",
    "lakekit.tables.writer",
    "lakekit.tables.scan",
    "lakekit.tables.transforms",
    "lakekit.adapters.local.object_store",
    "lakekit.adapters.sql.catalog",
    "sqlalchemy",
    "sqlalchemy.dialects.sqlite",
    "sqlite3",
    "pyarrow.dataset",
    "pyarrow.parquet",
    "pytest",
]
"""What the fork server imports once, so that each writer starts in milliseconds."""


def _schema() -> pa.Schema:
    fields: list[pa.Field[Any]] = [
        pa.field("id", pa.int64(), nullable=False),
        pa.field("k", pa.int32()),
        pa.field("payload", pa.string()),
    ]
    return pa.schema(fields)


def _batch(ids: range) -> pa.Table:
    return pa.table(
        {
            "id": pa.array(ids, pa.int64()),
            "k": pa.array([i % 4 for i in ids], pa.int32()),
            "payload": pa.array([f"row-{i}" for i in ids], pa.string()),
        },
        schema=_schema(),
    )


def _writer(url: str, name: str, log_path: str, first_id: int) -> None:
    """Append ``ROWS`` new ids at a time forever, logging ``commit <n>`` as each catalog commit
    starts and ``ack <n>`` once append ``n`` has returned (killed by the parent)."""
    lake = lakekit.connect(url)
    table = lake.table(name)
    with open(log_path, "a", encoding="utf-8") as log:
        current = [0]
        crashing.log_commits(lake.catalog, log, lambda: f"commit {current[0]}")
        crashing.log_line(log, "ready")
        while True:
            start = first_id + current[0] * ROWS
            table.append(_batch(range(start, start + ROWS)))
            crashing.log_line(log, f"ack {current[0]}")
            current[0] += 1


def _stored_data_files(lake: lakekit.Lake, table: Table) -> set[str]:
    prefix = table.location + "/"
    return {
        key
        for key in lake.store.list_keys(prefix)
        if key.endswith(".parquet") and not key[len(prefix) :].startswith("_lakekit/")
    }


def _referenced(table: Table) -> set[str]:
    keys: set[str] = set()
    for snapshot in table.state().snapshots:
        keys.update(f.key for f in table.files(snapshot_id=snapshot.snapshot_id))
    return keys


def _check_rows(data: pa.Table, expected_ids: set[int], what: str) -> None:
    ids = [int(i) for i in data.column("id").to_pylist() if i is not None]
    assert len(ids) == data.num_rows, f"{what}: null ids"
    assert len(ids) == len(set(ids)), f"{what}: duplicate rows"
    assert set(ids) == expected_ids, (
        f"{what}: missing {sorted(expected_ids - set(ids))[:5]}, "
        f"unexpected {sorted(set(ids) - expected_ids)[:5]}"
    )
    for row in data.select(["id", "k", "payload"]).to_pylist():
        assert row["k"] == row["id"] % 4 and row["payload"] == f"row-{row['id']}", row


def test_killed_writers_leave_exactly_the_committed_rows(tmp_path: Path) -> None:
    url = f"local://{tmp_path / 'lake'}"
    name = "crash.events"
    with lakekit.connect(url) as lake:
        lake.create_table(name, _schema(), partition_by=["k"])
    ctx = crashing.child_context(_PRELOAD)
    rng = random.Random(20261126)
    committed: set[int] = set()
    in_flight_landed = 0
    timings = {"start": 0.0, "run": 0.0, "check": 0.0}
    began = time.monotonic()
    iterations = 0
    for iteration in range(ITERATIONS):
        if iteration >= 8 and time.monotonic() - began > TIME_BUDGET:
            break
        iterations += 1
        first_id = iteration * ID_SPAN
        log_path = tmp_path / f"writer-{iteration}.log"
        writer = ctx.Process(target=_writer, args=(url, name, str(log_path), first_id))
        t0 = time.monotonic()
        with crashing.started(writer):
            crashing.wait_for_line(log_path, "ready", writer, exit_ok=False)
            t1 = time.monotonic()
            if iteration % 2:
                time.sleep(rng.uniform(0.0, 0.4))  # anywhere: writing files, manifest, commit
            else:
                # just as the n-th commit starts: data, manifest and metadata are written
                commit = f"commit {rng.randrange(0, 4)}"
                crashing.wait_for_line(log_path, commit, writer, exit_ok=False)
                time.sleep(rng.uniform(0.0, 0.003))
            crashing.sigkill(writer)
        assert writer.exitcode == -signal.SIGKILL
        t2 = time.monotonic()

        acked = sorted(
            int(line.split()[1]) for line in crashing.log_lines(log_path) if line.startswith("ack")
        )
        assert acked == list(range(len(acked))), "appends are acknowledged in order"
        acked_ids = set(range(first_id, first_id + len(acked) * ROWS))
        next_start = first_id + len(acked) * ROWS
        in_flight = set(range(next_start, next_start + ROWS))

        with lakekit.connect(url) as lake:  # a fresh process view: reopen the lake
            table = lake.table(name)
            data = table.to_arrow()
            ids = [int(i) for i in data.column("id").to_pylist() if i is not None]
            mine = {i for i in ids if first_id <= i < first_id + ID_SPAN}
            assert acked_ids <= mine, "an acknowledged append was lost"
            assert mine in (acked_ids, acked_ids | in_flight), (
                f"iteration {iteration}: rows beyond the acknowledged appends are not exactly "
                "the one in-flight append"
            )
            in_flight_landed += mine != acked_ids
            committed |= mine
            _check_rows(data, committed, f"after kill {iteration}")
            assert table.count() == len(committed)
        timings["start"] += t1 - t0
        timings["run"] += t2 - t1
        timings["check"] += time.monotonic() - t2

    assert iterations >= 8
    with lakekit.connect(url) as lake:
        table = lake.table(name)
        orphaned = len(_stored_data_files(lake, table) - _referenced(table))
        assert orphaned > 0, "no kill interrupted a write: the loop did not test crashes"
        deleted = table.vacuum(older_than=timedelta(0))
        assert len(deleted) >= orphaned
        directory = lake.store.uri(table.location)
        assert _stored_data_files(lake, table) == {f.key for f in table.files()}
        _check_rows(table.to_arrow(), committed, "lakekit after vacuum")

    with duckdb.connect() as con:
        direct = con.sql(
            f"SELECT id, k, payload FROM read_parquet('{directory}/**/*.parquet', "
            "hive_partitioning = true)"
        ).arrow()
    _check_rows(pa.table(direct), committed, "DuckDB read_parquet")
    dataset = ds.dataset(directory, format="parquet", partitioning="hive")
    _check_rows(dataset.to_table(), committed, "pyarrow.dataset")
    print(
        f"{iterations} kills in {time.monotonic() - began:.1f} s; {len(committed)} rows "
        f"committed; {in_flight_landed} unacknowledged appends landed whole; vacuum deleted "
        f"{len(deleted)} files; {timings}"
    )
