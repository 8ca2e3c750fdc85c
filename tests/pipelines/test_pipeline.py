"""The pipeline runner: exactly-once loads that resume from committed state, raw landing stored
once per content, contracts with a quarantine table, run reports, progress and SQL transforms.

The kill -9 loop lives in ``test_pipeline_crash.py``."""

from __future__ import annotations

import datetime as dt
import decimal
import io
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

import lakekit
from lakekit.errors import InvalidInputError
from lakekit.lake import Lake
from lakekit.pipelines import RawItem, RunReport, Source, SourceBatch, SourceState
from lakekit.pipelines.progress import Progress
from lakekit.pipelines.raw import RawLander, rows_as_ndjson


@pytest.fixture
def lake(tmp_path: Path) -> Iterator[Lake]:
    with lakekit.connect(f"local://{tmp_path / 'lake'}", store={"fsync": False}) as opened:
        yield opened


def _page(ids: range) -> pa.Table:
    return pa.table(
        {
            "id": pa.array(ids, pa.int64()),
            "day": pa.array([f"2024-01-0{1 + i % 3}" for i in ids], pa.string()),
            "payload": pa.array([f"row-{i}" for i in ids], pa.string()),
        }
    )


class Numbered(Source):
    """Rows ``0..total-1`` in pages of ``page`` rows; state ``<cursor>`` = next id to read."""

    kind = "numbered"

    def __init__(
        self,
        total: int,
        page: int,
        *,
        cursor: str = "next",
        raw: bool = False,
        fail_at: int | None = None,
    ) -> None:
        self.total, self.page, self.cursor, self.raw, self.fail_at = (
            total,
            page,
            cursor,
            raw,
            fail_at,
        )
        self.started_from: list[int] = []

    def read(self, state: SourceState) -> Iterator[SourceBatch]:
        start = int(state.get(self.cursor, 0))
        self.started_from.append(start)
        for first in range(start, self.total, self.page):
            if self.fail_at is not None and first >= self.fail_at:
                raise RuntimeError(f"source broke at {first} (see https://u:hunter2@example.com)")
            ids = range(first, min(first + self.page, self.total))
            data = _page(ids)
            raw = None
            if self.raw:
                text = "".join(f"{i},row-{i}\n" for i in ids)
                raw = RawItem(text.encode(), ".csv")
            yield SourceBatch(
                data,
                state={self.cursor: ids.stop},
                raw=raw,
                origin=f"page-{first // self.page}.csv",
                row_origins=tuple(
                    f"page-{first // self.page}.csv:{n + 1}" for n in range(len(ids))
                ),
            )

    def describe(self) -> str:
        return f"numbered rows 0..{self.total - 1}"


def _ints(values: list[Any]) -> list[int]:
    return [int(v) for v in values]


class RejectSevens:
    """A contract: ids ending in 7 are rejected, with the reason and the row's origin."""

    def apply(
        self, batch: pa.Table, row_origins: Sequence[str] | None
    ) -> tuple[pa.Table, pa.Table | None]:
        ids = _ints(batch.column("id").to_pylist())
        bad = [n for n, i in enumerate(ids) if i % 10 == 7]
        good = [n for n, i in enumerate(ids) if i % 10 != 7]
        if not bad:
            return batch, None
        rejected = batch.take(bad)
        origins = [row_origins[n] if row_origins else "" for n in bad]
        rejected = rejected.append_column("_origin", pa.array(origins, pa.string()))
        rejected = rejected.append_column("_error", pa.array(["id ends in 7"] * len(bad)))
        return batch.take(good), rejected


def _ids(lake: Lake, name: str) -> list[int]:
    return sorted(_ints(lake.table(name).to_arrow().column("id").to_pylist()))


# -- loading ----------------------------------------------------------------------------------
def test_first_run_creates_the_table_with_partition_by_and_loads_every_row(lake: Lake) -> None:
    report = lake.pipeline("orders").run(Numbered(25, 4), into="raw.orders", partition_by=["day"])
    table = lake.table("raw.orders")
    assert [f.source for f in table.partition_spec.fields] == ["day"]
    assert _ids(lake, "raw.orders") == list(range(25))
    assert {f.partition["day"] for f in table.files()} == {"2024-01-01", "2024-01-02", "2024-01-03"}
    assert report.status == "succeeded"
    assert (report.rows_in, report.rows_out, report.batches, report.files) == (25, 25, 7, 7)
    assert report.commits == 1 and report.snapshot_ids == (table.current_snapshot().snapshot_id,)  # type: ignore[union-attr]
    assert report.source == "numbered rows 0..24" and report.target == "raw.orders"


def test_a_rerun_resumes_right_after_the_committed_state(lake: Lake) -> None:
    pipeline = lake.pipeline("orders")
    pipeline.run(Numbered(10, 3), into="raw.orders")
    assert pipeline.state().get("next") == 10
    more = Numbered(23, 3)
    report = pipeline.run(more, into="raw.orders")
    assert more.started_from == [10]
    assert report.rows_in == 13
    assert _ids(lake, "raw.orders") == list(range(23))


def test_batch_rows_groups_consecutive_batches_into_one_commit_each(lake: Lake) -> None:
    report = lake.pipeline("orders").run(Numbered(20, 3), into="raw.orders", batch_rows=7)
    # pages of 3 rows: two pages fit in 7 rows, a third would not -> 4 commits for 7 pages
    assert report.commits == 4
    history = lake.table("raw.orders").history()
    assert [s.snapshot_id for s in history] == list(report.snapshot_ids)
    assert [s.summary["added_rows"] for s in history] == [6, 6, 6, 2]
    assert _ids(lake, "raw.orders") == list(range(20))


def test_a_batch_larger_than_batch_rows_is_committed_alone(lake: Lake) -> None:
    report = lake.pipeline("orders").run(Numbered(10, 10), into="raw.orders", batch_rows=3)
    assert report.commits == 1 and report.rows_out == 10


def test_nothing_to_do_commits_nothing_and_says_so(lake: Lake) -> None:
    pipeline = lake.pipeline("orders")
    pipeline.run(Numbered(5, 5), into="raw.orders")
    before = lake.table("raw.orders").current_snapshot()
    report = pipeline.run(Numbered(5, 5), into="raw.orders")
    assert report.status == "nothing to do"
    assert (report.rows_in, report.commits, report.snapshot_ids) == (0, 0, ())
    assert lake.table("raw.orders").current_snapshot() == before


def test_state_keys_are_isolated_per_pipeline(lake: Lake) -> None:
    lake.pipeline("first").run(Numbered(8, 4), into="raw.first")
    lake.pipeline("second").run(Numbered(3, 4), into="raw.second")
    assert lake.pipeline("first").state().get("next") == 8
    assert lake.pipeline("second").state().get("next") == 3
    keys = [e.key for e in lake.catalog.list_state("pipelines/")]
    assert keys == [
        "pipelines/first/last_commit",  # the run guard (one run of a pipeline at a time)
        "pipelines/first/state/next",
        "pipelines/second/last_commit",
        "pipelines/second/state/next",
    ]
    assert _ids(lake, "raw.second") == [0, 1, 2]


def test_state_entries_set_to_none_are_deleted(lake: Lake) -> None:
    class Forgetful(Source):
        def read(self, state: SourceState) -> Iterator[SourceBatch]:
            if "scratch" not in state:
                yield SourceBatch(_page(range(2)), state={"scratch": "x", "keep": 1})
            else:
                yield SourceBatch(_page(range(2, 3)), state={"scratch": None, "keep": 2})

    pipeline = lake.pipeline("forget")
    pipeline.run(Forgetful(), into="raw.forget")
    pipeline.run(Forgetful(), into="raw.forget")
    state = pipeline.state()
    assert "scratch" not in state and state.get("keep") == 2
    assert _ids(lake, "raw.forget") == [0, 1, 2]


def test_merge_mode_upserts_on_merge_on(lake: Lake) -> None:
    pipeline = lake.pipeline("orders")
    pipeline.run(Numbered(6, 3), into="raw.orders", mode="merge", merge_on=["id"])

    class Updates(Source):
        def read(self, state: SourceState) -> Iterator[SourceBatch]:
            data = _page(range(4, 8)).set_column(2, "payload", pa.array(["new"] * 4))
            yield SourceBatch(data, state={"updated": True})

    pipeline.run(Updates(), into="raw.orders", mode="merge", merge_on=["id"])
    rows = {r["id"]: r["payload"] for r in lake.table("raw.orders").to_arrow().to_pylist()}
    assert rows == {0: "row-0", 1: "row-1", 2: "row-2", 3: "row-3", 4: "new", 5: "new",
                    6: "new", 7: "new"}  # fmt: skip


def test_overwrite_replaces_the_table_in_one_commit_whatever_batch_rows(lake: Lake) -> None:
    lake.pipeline("old").run(Numbered(50, 10), into="raw.orders")
    report = lake.pipeline("snapshot").run(
        Numbered(9, 2), into="raw.orders", mode="overwrite", batch_rows=2
    )
    assert report.commits == 1
    assert _ids(lake, "raw.orders") == list(range(9))


def test_an_overwrite_run_with_two_schemas_fails_before_committing(lake: Lake) -> None:
    class TwoSchemas(Source):
        def read(self, state: SourceState) -> Iterator[SourceBatch]:
            yield SourceBatch(pa.table({"id": [1]}), state={"n": 1})
            yield SourceBatch(pa.table({"id": [2], "extra": ["x"]}), state={"n": 2})

    lake.pipeline("old").run(Numbered(5, 5), into="raw.orders")
    with pytest.raises(lakekit.errors.SchemaError, match="one schema"):
        lake.pipeline("two").run(TwoSchemas(), into="raw.orders", mode="overwrite")
    assert _ids(lake, "raw.orders") == list(range(5))
    assert "n" not in lake.pipeline("two").state()


def test_appended_batches_with_a_new_column_evolve_the_table(lake: Lake) -> None:
    class Growing(Source):
        def read(self, state: SourceState) -> Iterator[SourceBatch]:
            yield SourceBatch(pa.table({"id": [1]}), state={"n": 1})
            yield SourceBatch(pa.table({"id": [2], "extra": ["x"]}), state={"n": 2})

    report = lake.pipeline("grow").run(Growing(), into="raw.grow")
    assert report.commits == 2
    assert lake.table("raw.grow").to_arrow().sort_by("id").to_pylist() == [
        {"id": 1, "extra": None},
        {"id": 2, "extra": "x"},
    ]


def test_bad_arguments_are_refused_before_anything_is_read(lake: Lake) -> None:
    source = Numbered(5, 5)
    with pytest.raises(InvalidInputError, match="pipeline name"):
        lake.pipeline("Orders!")
    pipeline = lake.pipeline("orders")
    with pytest.raises(InvalidInputError, match="merge_on"):
        pipeline.run(source, into="raw.orders", mode="merge")
    with pytest.raises(InvalidInputError, match="unknown mode"):
        pipeline.run(source, into="raw.orders", mode="upsert")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="batch_rows"):
        pipeline.run(source, into="raw.orders", batch_rows=0)
    with pytest.raises(InvalidInputError, match=r"namespace\.table"):
        pipeline.run(source, into="orders")
    with pytest.raises(InvalidInputError, match="Source"):
        pipeline.run([1, 2], into="raw.orders")  # type: ignore[arg-type]
    assert source.started_from == []
    assert lake.runs() == []


def test_partition_by_must_match_an_existing_table(lake: Lake) -> None:
    lake.pipeline("orders").run(Numbered(5, 5), into="raw.orders", partition_by=["day"])
    with pytest.raises(InvalidInputError, match="partitioned by"):
        lake.pipeline("other").run(Numbered(5, 5), into="raw.orders", partition_by=["id"])


# -- contracts and quarantine -----------------------------------------------------------------
def test_contract_rejected_rows_go_to_the_quarantine_table(lake: Lake) -> None:
    report = lake.pipeline("orders").run(
        Numbered(30, 4), into="raw.orders", contract=RejectSevens(), batch_rows=8
    )
    rejected = [7, 17, 27]
    assert _ids(lake, "raw.orders") == [i for i in range(30) if i not in rejected]
    quarantine = lake.table("raw.orders__quarantine").to_arrow().sort_by("id")
    assert quarantine.column("id").to_pylist() == rejected
    assert quarantine.column("_origin").to_pylist() == ["page-1.csv:4", "page-4.csv:2",
                                                        "page-6.csv:4"]  # fmt: skip
    assert (report.rows_in, report.rows_out, report.rows_quarantined) == (30, 27, 3)
    assert "pipelines/orders/quarantine_pending" not in {
        e.key for e in lake.catalog.list_state("pipelines/")
    }


def test_a_crash_between_quarantine_and_main_commit_neither_loses_nor_repeats_rows(
    lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    catalog = lake.catalog
    real_commit = catalog.commit
    crashes: list[Any] = []

    def crashing_commit(ident: Any, *args: Any, **kwargs: Any) -> Any:
        if (
            str(ident) == "raw.orders"
            and len(crashes) == 0
            and catalog.table_exists("raw.orders__quarantine")
        ):
            crashes.append(ident)
            raise OSError("power cut")
        return real_commit(ident, *args, **kwargs)

    monkeypatch.setattr(catalog, "commit", crashing_commit)
    pipeline = lake.pipeline("orders")
    with pytest.raises(OSError, match="power cut"):
        pipeline.run(Numbered(20, 10), into="raw.orders", contract=RejectSevens(), batch_rows=10)
    assert crashes, "the simulated crash did not happen"
    # the quarantine commit of the first group landed, its rows did not
    assert lake.table("raw.orders__quarantine").count() == 1
    report = pipeline.run(
        Numbered(20, 10), into="raw.orders", contract=RejectSevens(), batch_rows=10
    )
    assert _ids(lake, "raw.orders") == [i for i in range(20) if i not in (7, 17)]
    assert _ids(lake, "raw.orders__quarantine") == [7, 17]
    assert report.rows_quarantined == 2  # counted when committed, by the run that committed


def test_a_contract_returning_garbage_is_a_clear_error(lake: Lake) -> None:
    class Broken:
        def apply(self, batch: pa.Table, row_origins: Sequence[str] | None) -> Any:
            return batch

    with pytest.raises(InvalidInputError, match=r"apply must return"):
        lake.pipeline("orders").run(Numbered(3, 3), into="raw.orders", contract=Broken())


# -- raw landing ------------------------------------------------------------------------------
def _raw_keys(lake: Lake) -> list[str]:
    return lake.store.list_keys("raw/")


def test_raw_landing_stores_original_bytes_once_per_content(lake: Lake) -> None:
    report = lake.pipeline("orders").run(
        Numbered(10, 4, raw=True), into="raw.orders", land_raw=True
    )
    keys = _raw_keys(lake)
    today = dt.datetime.now(dt.UTC).strftime("%Y/%m/%d")
    assert len(keys) == 3 and report.raw_landed == 3
    assert all(k.startswith(f"raw/orders/{today}/") and k.endswith(".csv") for k in keys)
    assert sorted(lake.store.get(k) for k in keys) == sorted(
        "".join(f"{i},row-{i}\n" for i in ids).encode()
        for ids in (range(0, 4), range(4, 8), range(8, 10))
    )
    assert report.bytes == sum(lake.store.head(k).size for k in keys)
    # the same input again (another cursor, so the source yields it again): stored once
    again = lake.pipeline("orders").run(
        Numbered(10, 4, raw=True, cursor="replay"), into="raw.orders", land_raw=True
    )
    assert again.rows_out == 10 and again.raw_landed == 0
    assert _raw_keys(lake) == keys


def test_raw_landing_dedupes_across_days_through_committed_state(lake: Lake) -> None:
    days = iter([dt.datetime(2024, 1, 1, tzinfo=dt.UTC), dt.datetime(2024, 1, 2, tzinfo=dt.UTC)])
    item = RawItem(b"a,b\n1,2\n", ".csv")
    first = RawLander(lake.store, lake.catalog, pipeline="p", prefix="landing",
                      state_prefix="pipelines/p/raw/", clock=lambda: next(days))  # fmt: skip
    key, entries = first.land(item)
    assert key.startswith("landing/p/2024/01/01/") and key.endswith(".csv")
    for k, v in entries.items():  # what the pipeline commits with the batch
        lake.catalog.put_state(k, v)
    second = RawLander(lake.store, lake.catalog, pipeline="p", prefix="landing",
                       state_prefix="pipelines/p/raw/", clock=lambda: next(days))  # fmt: skip
    assert second.land(item)[0] == key
    assert lake.store.list_keys("landing/") == [key] and second.landed == 0


def test_rows_without_raw_bytes_land_as_ndjson(lake: Lake) -> None:
    lake.pipeline("api").run(Numbered(3, 3), into="raw.api", land_raw=True)
    (key,) = _raw_keys(lake)
    assert key.startswith("raw/api/") and key.endswith(".ndjson")
    lines = lake.store.get(key).decode().splitlines()
    assert [json.loads(line) for line in lines] == _page(range(3)).to_pylist()
    assert lake.catalog.get_state(f"pipelines/api/raw/{key.rsplit('/', 1)[1][:-7]}") == key


def test_ndjson_of_rows_is_deterministic_and_typed() -> None:
    data = pa.table(
        {
            "ts": [dt.datetime(2024, 1, 2, 3, 4, 5)],
            "blob": [b"\x00\x01"],
            "amount": pa.array([decimal.Decimal("1.50")], pa.decimal128(5, 2)),
        }
    )
    item = rows_as_ndjson(data)
    assert item.suffix == ".ndjson"
    assert item.data == b'{"ts":"2024-01-02T03:04:05","blob":"AAE=","amount":"1.50"}\n'
    assert rows_as_ndjson(data).data == item.data


def test_a_bad_raw_prefix_is_refused(lake: Lake) -> None:
    with pytest.raises(InvalidInputError):
        lake.pipeline("orders").run(Numbered(3, 3), into="raw.orders", land_raw=True,
                                    raw_prefix="../outside")  # fmt: skip


# -- reports ----------------------------------------------------------------------------------
def test_run_reports_are_persisted_and_listed_newest_first(lake: Lake) -> None:
    first = lake.pipeline("orders").run(Numbered(5, 5), into="raw.orders")
    second = lake.pipeline("orders").run(Numbered(8, 5), into="raw.orders")
    other = lake.pipeline("users").run(Numbered(2, 5), into="raw.users")
    assert lake.runs("orders") == [second, first]
    assert lake.runs() == [other, second, first]
    assert lake.runs(limit=1) == [other]
    assert lake.pipeline("orders").runs(limit=1) == [second]
    assert first.started_at.tzinfo is not None and first.finished_at >= first.started_at
    assert json.loads(json.dumps(first.to_json())) == first.to_json()
    assert RunReport.from_json(first.to_json()) == first
    with lakekit.connect(lake.url, store={"fsync": False}) as reopened:
        assert reopened.runs("orders")[0].rows_out == 3


def test_a_failed_run_stores_a_failed_report_and_reraises(lake: Lake) -> None:
    pipeline = lake.pipeline("orders")
    with pytest.raises(RuntimeError, match="source broke at 6"):
        pipeline.run(Numbered(10, 3, fail_at=6), into="raw.orders", batch_rows=3)
    (failed,) = lake.runs("orders")
    assert failed.status == "failed"
    assert failed.error is not None and failed.error.startswith("RuntimeError: source broke at 6")
    assert "hunter2" not in failed.error and "***" in failed.error
    assert (failed.rows_out, failed.commits) == (6, 2)
    assert _ids(lake, "raw.orders") == list(range(6))
    resumed = pipeline.run(Numbered(10, 3), into="raw.orders", batch_rows=3)
    assert resumed.status == "succeeded" and resumed.rows_in == 4
    assert _ids(lake, "raw.orders") == list(range(10))


def test_a_source_yielding_something_else_fails_clearly(lake: Lake) -> None:
    class Wrong(Source):
        def read(self, state: SourceState) -> Iterator[SourceBatch]:
            yield pa.table({"id": [1]})  # type: ignore[misc]

    with pytest.raises(InvalidInputError, match="SourceBatch"):
        lake.pipeline("wrong").run(Wrong(), into="raw.wrong")
    assert lake.runs("wrong")[0].status == "failed"


# -- progress ---------------------------------------------------------------------------------
class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_draws_rows_bytes_files_and_rate_on_a_terminal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CI", raising=False)
    ticks = iter([0.0, 1.0, 1.05, 2.0, 2.0])
    stream = FakeTTY()
    bar = Progress("orders", stream=stream, clock=lambda: next(ticks))
    assert bar.enabled
    bar.update(rows=1000, bytes=2048, files=1)  # draws (first update)
    bar.update(rows=1000)  # 0.05 s later: throttled
    bar.update(rows=2000, files=1)
    bar.close()
    out = stream.getvalue()
    assert out.startswith("\rorders: 1,000 rows, 2.0 KiB, 1 files, 1,000 rows/s")
    assert out.endswith("\rorders: 4,000 rows, 2.0 KiB, 2 files, 2,000 rows/s\n")
    assert out.count("\r") == 3


def test_progress_is_quiet_in_ci_and_when_not_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    plain = io.StringIO()
    bar = Progress("orders", stream=plain)
    bar.update(rows=10)
    bar.close()
    assert plain.getvalue() == "" and not bar.enabled
    monkeypatch.setenv("CI", "true")
    tty = FakeTTY()
    bar = Progress("orders", stream=tty)
    bar.update(rows=10)
    bar.close()
    assert tty.getvalue() == ""


def test_a_run_shows_progress_on_a_terminal(lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    tty = FakeTTY()
    monkeypatch.setattr("sys.stderr", tty)
    lake.pipeline("orders").run(Numbered(7, 3), into="raw.orders")
    assert "orders -> raw.orders: 7 rows" in tty.getvalue()


# -- transforms -------------------------------------------------------------------------------
def test_transform_materialises_a_query_into_a_new_table(lake: Lake) -> None:
    lake.pipeline("orders").run(Numbered(30, 10), into="raw.orders", partition_by=["day"])
    snapshot = lake.transform(
        "SELECT day, count(*) AS n FROM raw.orders GROUP BY day",
        into="marts.daily",
        partition_by=["day"],
    )
    table = lake.table("marts.daily")
    assert table.current_snapshot() == snapshot
    assert sorted(table.to_arrow().to_pylist(), key=lambda r: r["day"]) == [
        {"day": "2024-01-01", "n": 10},
        {"day": "2024-01-02", "n": 10},
        {"day": "2024-01-03", "n": 10},
    ]
    # overwrite (the default) replaces everything
    lake.transform("SELECT 'x' AS day, 1::BIGINT AS n", into="marts.daily")
    assert table.to_arrow().to_pylist() == [{"day": "x", "n": 1}]


def test_transform_overwrite_partitions_rebuilds_only_the_bound_day(lake: Lake) -> None:
    lake.pipeline("orders").run(Numbered(30, 10), into="raw.orders")
    sql = "SELECT day, count(*) AS n, max(id) AS last FROM raw.orders WHERE day = $day GROUP BY day"
    for day in ("2024-01-01", "2024-01-02"):
        lake.transform(sql, into="marts.daily", mode="overwrite_partitions",
                       params={"day": day}, partition_by=["day"])  # fmt: skip
    lake.pipeline("orders").run(Numbered(40, 10), into="raw.orders")  # more data arrives
    lake.transform(sql, into="marts.daily", mode="overwrite_partitions",
                   params={"day": "2024-01-02"})  # fmt: skip
    rows = sorted(lake.table("marts.daily").to_arrow().to_pylist(), key=lambda r: r["day"])
    assert rows == [
        {"day": "2024-01-01", "n": 10, "last": 27},  # untouched
        {"day": "2024-01-02", "n": 13, "last": 37},  # rebuilt with the new rows
    ]


def test_transform_append_adds_rows_and_checks_its_arguments(lake: Lake) -> None:
    lake.transform("SELECT 1::BIGINT AS id", into="marts.ids", mode="append")
    lake.transform("SELECT 2::BIGINT AS id", into="marts.ids", mode="append")
    assert _ids(lake, "marts.ids") == [1, 2]
    with pytest.raises(InvalidInputError, match="unknown transform mode"):
        lake.transform("SELECT 1", into="marts.ids", mode="merge")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="partitioned by"):
        lake.transform("SELECT 3::BIGINT AS id", into="marts.ids", partition_by=["id"])
    assert _ids(lake, "marts.ids") == [1, 2]


def test_nested_json_is_kept_as_structs_or_flattened_by_option(tmp_path: Path) -> None:
    import lakekit
    from lakekit.pipelines import Source, SourceBatch

    class Nested(Source):
        def read(self, state: SourceState) -> Iterator[SourceBatch]:
            if not state.get("done"):
                rows = [{"id": 1, "user": {"name": "ada", "geo": {"cc": "GB"}}}]
                yield SourceBatch(pa.Table.from_pylist(rows), state={"done": True})

    with lakekit.connect(tmp_path / "lake") as lake:
        lake.pipeline("kept").run(Nested(), into="raw.kept")
        kept = lake.table("raw.kept").schema
        assert pa.types.is_struct(kept.field("user").type)
        lake.pipeline("flat").run(Nested(), into="raw.flat", flatten=True)
        flat = lake.table("raw.flat").to_arrow().to_pylist()
        assert flat == [{"id": 1, "user_name": "ada", "user_geo_cc": "GB"}]


class Gated(Source):
    """Rows ``next..rows-1`` from the state; with a gate, waits for it before its batch."""

    kind = "gated"

    def __init__(self, rows: int, gate: Any = None, entered: Any = None) -> None:
        self.rows, self.gate, self.entered = rows, gate, entered

    def read(self, state: SourceState) -> Iterator[SourceBatch]:
        start = int(state.get("next", 0))
        if self.entered is not None:
            self.entered.set()
        if self.gate is not None:
            assert self.gate.wait(30)
        if start < self.rows:
            yield SourceBatch(pa.table({"n": list(range(start, self.rows))}), {"next": self.rows})


def test_a_second_concurrent_run_of_a_pipeline_commits_nothing_twice(lake: Lake) -> None:
    import threading

    from lakekit.errors import CommitConflictError

    lake.pipeline("p").run(Gated(3), into="raw.n", progress=False)  # the table exists
    gate, entered = threading.Event(), threading.Event()
    failures: list[BaseException] = []

    def slow_run() -> None:
        try:
            lake.pipeline("p").run(Gated(10, gate, entered), into="raw.n", progress=False)
        except BaseException as exc:
            failures.append(exc)

    slow = threading.Thread(target=slow_run)
    slow.start()
    assert entered.wait(30), "the slow run read the committed state (next=3)"
    fast = lake.pipeline("p").run(Gated(10), into="raw.n", progress=False)  # same state
    gate.set()
    slow.join(30)

    assert fast.rows_out == 7
    assert len(failures) == 1 and isinstance(failures[0], CommitConflictError)
    assert "another run of this pipeline" in str(failures[0])
    table = lake.table("raw.n")
    assert sorted(table.to_arrow().column("n").to_pylist()) == list(range(10)), "no duplicate"
    assert len(table.history()) == 2, "the losing run committed nothing"
    referenced = {f.key for f in table.files()}
    stored = {m.key for m in lake.store.list(table.location) if m.key.endswith(".parquet")}
    assert stored == referenced, "the losing run's data files were deleted"
    assert sorted(r.status for r in lake.runs()) == ["failed", "succeeded", "succeeded"]
    again = lake.pipeline("p").run(Gated(10), into="raw.n", progress=False)
    assert again.status == "nothing to do"
