"""kill -9 a pipeline run again and again: no row is ever lost or loaded twice.

A child process runs ``pipeline.run`` over a deterministic source of numbered rows in small
pages, with a small ``batch_rows`` (so a run makes many commits), a contract that quarantines
every id ending in 7, and raw landing. The parent SIGKILLs it — at a random moment, or just as
a catalog commit starts (a quarantine commit or a main one) — then reopens the lake and checks
that the committed source state and the table agree exactly: the table holds every good id
below the committed cursor once, and nothing else. At the end a run to completion leaves every
row exactly once, every rejected row exactly once in the quarantine table, and every landed
raw object referenced by the committed state.
"""

from __future__ import annotations

import random
import signal
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

import crashing
import lakekit
from lakekit.pipelines import RawItem, Source, SourceBatch, SourceState

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL"),
]

TOTAL = 1000
PAGE = 5
BATCH_ROWS = 10
ITERATIONS = 15
PIPELINE = "crashy"
TARGET = "crash.orders"
_PRELOAD = [
    "lakekit.lake",
    "lakekit.pipelines.pipeline",
    "lakekit.pipelines.raw",
    "lakekit.tables.table",
    "lakekit.tables.writer",
    "lakekit.adapters.local.object_store",
    "lakekit.adapters.sql.catalog",
    "sqlalchemy",
    "sqlalchemy.dialects.sqlite",
    "pyarrow.dataset",
    "pyarrow.parquet",
    "pytest",
]


class Pages(Source):
    """Ids ``0..TOTAL-1`` in pages of ``PAGE``; state ``next`` is the next id to read."""

    kind = "pages"

    def read(self, state: SourceState) -> Iterator[SourceBatch]:
        for first in range(int(state.get("next", 0)), TOTAL, PAGE):
            ids = range(first, min(first + PAGE, TOTAL))
            data = pa.table({"id": pa.array(ids, pa.int64()),
                             "k": pa.array([i % 4 for i in ids], pa.int32())})  # fmt: skip
            raw = RawItem("".join(f"{i}\n" for i in ids).encode(), ".txt")
            yield SourceBatch(data, state={"next": ids.stop}, raw=raw, origin=f"page {first}")


def _ints(values: list[Any]) -> list[int]:
    return [int(v) for v in values]


class RejectSevens:
    def apply(
        self, batch: pa.Table, row_origins: Sequence[str] | None
    ) -> tuple[pa.Table, pa.Table | None]:
        ids = _ints(batch.column("id").to_pylist())
        bad = [n for n, i in enumerate(ids) if i % 10 == 7]
        if not bad:
            return batch, None
        return batch.take([n for n in range(len(ids)) if n not in bad]), batch.take(bad)


def _run(url: str) -> Any:
    with lakekit.connect(url, store={"fsync": False}) as lake:
        return lake.pipeline(PIPELINE).run(
            Pages(), into=TARGET, partition_by=["k"], contract=RejectSevens(), land_raw=True,
            batch_rows=BATCH_ROWS, progress=False,
        )  # fmt: skip


def _child(url: str, log_path: str) -> None:
    """Run the pipeline, logging ``commit`` as each catalog commit starts (killed by the parent)."""
    lake = lakekit.connect(url, store={"fsync": False})
    with open(log_path, "a", encoding="utf-8") as log:
        crashing.log_commits(lake.catalog, log)
        crashing.log_line(log, "ready")
        lake.pipeline(PIPELINE).run(
            Pages(), into=TARGET, partition_by=["k"], contract=RejectSevens(), land_raw=True,
            batch_rows=BATCH_ROWS, progress=False,
        )  # fmt: skip
        crashing.log_line(log, "done")
    lake.close()


def _check(url: str, *, final: bool = False) -> tuple[int, bool]:
    """Assert the committed state and the tables agree; return the committed cursor and
    whether the quarantine commit of an uncommitted group had landed (a kill between the two
    commits of a group)."""
    with lakekit.connect(url, store={"fsync": False}) as lake:
        cursor = int(lake.pipeline(PIPELINE).state().get("next", 0))
        if not lake.catalog.table_exists(TARGET):
            assert cursor == 0
            return 0, False
        ids = _ints(lake.table(TARGET).to_arrow().column("id").to_pylist())
        assert len(ids) == len(set(ids)), f"duplicate rows at cursor {cursor}"
        assert set(ids) == {i for i in range(cursor) if i % 10 != 7}, (
            f"table and committed cursor {cursor} disagree: "
            f"{len(ids)} rows, max {max(ids, default=None)}"
        )
        quarantined: list[int] = []
        if lake.catalog.table_exists(f"{TARGET}__quarantine"):
            column = lake.table(f"{TARGET}__quarantine").to_arrow().column("id")
            quarantined = _ints(column.to_pylist())
        assert len(quarantined) == len(set(quarantined)), "a rejected row was quarantined twice"
        committed_bad = {i for i in range(cursor) if i % 10 == 7}
        assert committed_bad <= set(quarantined), "a rejected row was lost"
        # at most the group in flight was quarantined ahead of its main commit
        assert set(quarantined) - committed_bad <= set(range(cursor, cursor + BATCH_ROWS))
        if final:
            assert set(quarantined) == committed_bad
        raw = {e.value for e in lake.catalog.list_state(f"pipelines/{PIPELINE}/raw/")}
        stored = set(lake.store.list_keys(f"raw/{PIPELINE}/"))
        assert raw <= stored, "committed state names a raw object that is not stored"
        assert len(raw) == -(-cursor // PAGE), "one raw object per committed page"
        return cursor, bool(set(quarantined) - committed_bad)


def test_killed_pipeline_runs_load_every_row_exactly_once(tmp_path: Path) -> None:
    url = f"local://{tmp_path / 'lake'}"
    ctx = crashing.child_context(_PRELOAD)
    rng = random.Random(20261126)
    cursors = []
    kills = between = 0
    began = time.monotonic()
    for iteration in range(ITERATIONS):
        log_path = tmp_path / f"child-{iteration}.log"
        with crashing.started(ctx.Process(target=_child, args=(url, str(log_path)))) as child:
            crashing.wait_for_line(log_path, "ready", child)
            if iteration % 2:
                time.sleep(rng.uniform(0.02, 0.6))
            else:  # just as the n-th catalog commit (quarantine or main) starts
                crashing.wait_for_line(log_path, "commit", child, count=rng.randrange(1, 12))
                time.sleep(rng.uniform(0.0, 0.003))
            crashing.sigkill(child)
        if "done" in crashing.log_lines(log_path):
            break  # the run completed before the kill: nothing left to interrupt
        assert child.exitcode == -signal.SIGKILL
        kills += 1
        cursor, ahead = _check(url)
        cursors.append(cursor)
        between += ahead
    assert kills >= 10, "the runs finished too fast to be interrupted"
    assert cursors[-1] > 0 and cursors == sorted(cursors), "committed progress went backwards"
    report = _run(url)
    # "nothing to do" when a child committed the last group just before it was killed
    assert report.status in ("succeeded", "nothing to do")
    assert _check(url, final=True) == (TOTAL, False)
    print(
        f"{kills} kills in {time.monotonic() - began:.1f} s at cursors {cursors} ({between} "
        "between a group's quarantine and main commits); final run "
        f"committed {report.rows_out} rows in {report.commits} commits"
    )
