"""Windowed jobs end to end on a local lake: windows close on the watermark with exact
aggregates, late and invalid records reach the side output with their reason, early updates
are marked non-final, and restarts resume from the checkpoint without double counting."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

import pyarrow as pa
import pytest

from conftest import T0, OpenLake, Spread, at, expected_windows, iso, publish, table_windows
from lakekit.errors import (
    CommitConflictError,
    ConfigurationError,
    InvalidInputError,
    NotSupportedError,
)
from lakekit.lake import Lake
from lakekit.streaming import (
    ApproxDistinct,
    Count,
    Hopping,
    KeyValueView,
    Max,
    Mean,
    Min,
    Rejected,
    Session,
    Sink,
    StreamSink,
    Sum,
    TableSink,
    Tumbling,
    WindowedJob,
    WindowResult,
    windowed,
)


class Collect(Sink):
    """A custom sink that keeps what it receives (results and rejected records)."""

    def __init__(self, *, updates: bool = True, fail_after: int | None = None) -> None:
        self.results: list[WindowResult] = []
        self.rejected: list[Rejected] = []
        self.updates = updates
        self.fail_after = fail_after

    def write_results(self, results: Sequence[WindowResult]) -> None:
        if self.fail_after is not None and len(self.results) + len(results) > self.fail_after:
            raise RuntimeError("sink is down")
        self.results.extend(results)

    def write_rejected(self, rows: Sequence[Rejected]) -> None:
        self.rejected.extend(rows)


def _readings(start: int, count: int, step: int = 7, devices: int = 3) -> list[dict[str, Any]]:
    return [
        {"device": f"d{i % devices}", "ts": start + i * step, "temp": float(i % 11), "user": i % 5}
        for i in range(count)
    ]


def _job(lake: Lake, **overrides: Any) -> WindowedJob:
    options: dict[str, Any] = {
        "group": "stats",
        "key": "device",
        "time": "ts",
        "window": Tumbling("5m"),
        "aggregate": {"n": Count(), "total": Sum("temp")},
        "late": Collect(),
        "sinks": [TableSink(lake, "iot.stats")],
    }
    options.update(overrides)
    return windowed(lake, "readings", **options)


def _closed(rows: list[dict[str, Any]], size: int, watermark: int, hop: int | None = None) -> dict:
    """The expected windows whose end is at or before ``watermark`` (seconds)."""
    return {w: v for w, v in expected_windows(rows, size, hop).items() if w[1] + size <= watermark}


# -- windows, watermark, exact results -------------------------------------------------------------
def test_tumbling_windows_close_when_the_watermark_passes_with_exact_aggregates(
    lake: Lake,
) -> None:
    rows = _readings(T0, 400)
    publish(lake.stream("readings"), rows)
    job = _job(lake, allowed_lateness="1m")
    stats = job.run_once()
    newest = rows[-1]["ts"]
    watermark = newest - 60
    assert job.watermark == at(watermark)
    assert table_windows(lake, "iot.stats") == _closed(rows, 300, watermark)
    open_windows = {w for w in expected_windows(rows, 300) if w[1] + 300 > watermark}
    assert job.open_windows == len(open_windows) > 0
    assert stats.records == stats.counted == 400
    assert stats.results == len(_closed(rows, 300, watermark))
    assert stats.late == stats.invalid == 0
    assert stats.commits == 1
    # the results are plain SQL for BI
    sql = "select sum(n) as n from iot.stats"
    assert lake.sql(sql).scalar() == sum(v[0] for v in _closed(rows, 300, watermark).values())


def test_a_record_exactly_at_a_window_end_is_counted_in_the_next_window(lake: Lake) -> None:
    rows = [
        {"device": "a", "ts": T0, "temp": 1.0},
        {"device": "a", "ts": T0 + 299.999999, "temp": 2.0},
        {"device": "a", "ts": T0 + 300, "temp": 4.0},
        {"device": "a", "ts": T0 + 3600, "temp": 0.0},  # moves the watermark past both
    ]
    publish(lake.stream("readings"), rows)
    _job(lake).run_once()
    assert table_windows(lake, "iot.stats") == {("a", T0): (2, 3.0), ("a", T0 + 300): (1, 4.0)}


def test_every_aggregation_kind_in_one_job(lake: Lake) -> None:
    rows = [
        {"device": "a", "ts": T0 + i, "temp": float(t), "user": u, "status": s}
        for i, (t, u, s) in enumerate([(3, "x", "ok"), (9, "y", "hot"), (6, "x", "ok")])
    ]
    rows.append({"device": "a", "ts": T0 + 900, "temp": 0.0, "user": "z", "status": "ok"})
    publish(lake.stream("readings"), rows)
    aggregate = {
        "n": Count(),
        "with_user": Count("user"),
        "total": Sum("temp"),
        "low": Min("temp"),
        "high": Max("temp"),
        "avg": Mean("temp"),
        "users": ApproxDistinct("user"),
        "worst": Max("status"),
    }
    _job(lake, aggregate=aggregate).run_once()
    (row,) = lake.table("iot.stats").to_arrow().to_pylist()
    assert {k: row[k] for k in aggregate} == {
        "n": 3, "with_user": 3, "total": 18.0, "low": 3.0, "high": 9.0, "avg": 6.0,
        "users": 2, "worst": "ok",
    }  # fmt: skip
    assert row["final"] is True
    assert row["window_start"] == at(T0) and row["window_end"] == at(T0 + 300)


def test_a_custom_aggregation_runs_in_a_job_and_survives_a_restart(lake: Lake) -> None:
    stream = lake.stream("readings")
    aggregate = {"spread": Spread("temp"), "n": Count()}
    publish(stream, [{"device": "a", "ts": T0 + s, "temp": t} for s, t in ((0, 5.0), (9, 1.5))])
    _job(lake, aggregate=aggregate).run_once()  # the window stays open: checkpointed state
    publish(stream, [{"device": "a", "ts": T0 + 20, "temp": 9.0}, {"device": "a", "ts": T0 + 900}])
    _job(lake, aggregate=aggregate, sinks=[TableSink(lake, "iot.spread")]).run_once()
    (row,) = lake.table("iot.spread").to_arrow().to_pylist()
    assert (row["spread"], row["n"]) == (7.5, 3)
    assert lake.table("iot.spread").schema.field("spread").type == pa.float64()


def test_hopping_windows_count_each_record_in_every_window_it_falls_in(lake: Lake) -> None:
    rows = _readings(T0, 300, step=5)
    publish(lake.stream("readings"), rows)
    _job(lake, window=Hopping("10m", every="2m")).run_once()
    newest = rows[-1]["ts"]
    assert table_windows(lake, "iot.stats") == _closed(rows, 600, newest, hop=120)


def test_session_windows_merge_when_a_record_bridges_two_sessions(lake: Lake) -> None:
    stream = lake.stream("readings")
    job = _job(lake, window=Session(gap="50s"), allowed_lateness="10m")
    publish(stream, [{"device": "a", "ts": T0 + t, "temp": 1.0} for t in (0, 10, 20)])
    publish(stream, [{"device": "a", "ts": T0 + t, "temp": 1.0} for t in (100, 120)])
    job.run_once()
    assert job.open_windows == 2  # [0, 70) and [100, 170): 30 s apart
    publish(stream, [{"device": "a", "ts": T0 + 60, "temp": 5.0}])  # within 50 s of both
    job.run_once()
    assert job.open_windows == 1
    publish(stream, [{"device": "a", "ts": T0 + 2000, "temp": 0.0}])  # closes the session
    job.run_once()
    assert table_windows(lake, "iot.stats") == {("a", T0): (6, 10.0)}
    (row,) = lake.table("iot.stats").to_arrow().to_pylist()
    assert row["window_end"] == at(T0 + 120 + 50)


def test_sessions_of_different_keys_and_gaps_stay_apart(lake: Lake) -> None:
    times = {"a": [0, 40, 200], "b": [30, 60]}
    rows = [{"device": d, "ts": T0 + t, "temp": 1.0} for d, ts in times.items() for t in ts]
    rows.append({"device": "c", "ts": T0 + 5000, "temp": 0.0})
    publish(lake.stream("readings"), sorted(rows, key=lambda r: r["ts"]))
    _job(lake, window=Session(gap="45s")).run_once()
    assert table_windows(lake, "iot.stats") == {
        ("a", T0): (2, 2.0),
        ("a", T0 + 200): (1, 1.0),
        ("b", T0 + 30): (2, 2.0),
    }


def test_an_unkeyed_job_aggregates_everything_together(lake: Lake) -> None:
    rows = _readings(T0, 100, step=10)
    publish(lake.stream("readings"), rows)
    view = KeyValueView()
    job = _job(lake, key=None, sinks=[TableSink(lake, "iot.all"), view])
    job.run_once()
    table = lake.table("iot.all").to_arrow()
    assert "device" not in table.column_names
    assert sum(table.column("n").to_pylist()) == sum(
        1 for r in rows if r["ts"] - (r["ts"] - T0) % 300 + 300 <= rows[-1]["ts"]
    )
    assert view.keys() == ["*"]


def test_the_record_timestamp_is_the_event_time_without_a_time_field(lake: Lake) -> None:
    from lakekit.interfaces.stream import Message

    stream = lake.stream("readings")
    stream.publish_many(
        [
            Message(b'{"device": "a", "temp": 1}', key=b"a", timestamp=at(T0 + s))
            for s in (0, 100, 299, 300, 900)
        ]
    )
    _job(lake, time=None).run_once()
    assert table_windows(lake, "iot.stats") == {("a", T0): (3, 3.0), ("a", T0 + 300): (1, 1.0)}


def test_iso_time_strings_are_event_times(lake: Lake) -> None:
    rows = [{"device": "a", "ts": iso(T0 + s), "temp": 1.0} for s in (0, 10, 400, 2000)]
    publish(lake.stream("readings"), rows)
    _job(lake).run_once()
    assert table_windows(lake, "iot.stats") == {("a", T0): (2, 2.0), ("a", T0 + 300): (1, 1.0)}


def test_the_watermark_waits_for_the_slowest_partition(open_lake: OpenLake) -> None:
    lake = open_lake(2)
    stream = lake.stream("readings")
    fast, slow = _keys_in_distinct_partitions(lake)
    publish(stream, [{"device": fast, "ts": T0 + t, "temp": 1.0} for t in range(0, 3600, 60)])
    publish(stream, [{"device": slow, "ts": T0 + t, "temp": 1.0} for t in range(0, 700, 60)])
    job = _job(lake)
    job.run_once()
    # the slow partition is at T0 + 660: only windows ending by then have closed, for both keys
    assert job.watermark == at(T0 + 660)
    closed = table_windows(lake, "iot.stats")
    assert set(closed) == {(k, T0 + s) for k in (fast, slow) for s in (0, 300)}


def _keys_in_distinct_partitions(lake: Lake) -> tuple[str, str]:
    import zlib

    by_partition: dict[int, str] = {}
    for i in range(100):
        by_partition.setdefault(zlib.crc32(f"k{i}".encode()) % 2, f"k{i}")
    return by_partition[0], by_partition[1]


# -- late and invalid records ----------------------------------------------------------------------
def test_late_records_go_to_the_side_output_with_the_reason_and_are_not_counted(
    lake: Lake,
) -> None:
    stream = lake.stream("readings")
    rows = _readings(T0, 200, step=10)
    publish(stream, rows)
    late = Collect()
    job = _job(lake, allowed_lateness="1m", late=late)
    job.run_once()
    watermark = rows[-1]["ts"] - 60
    before = table_windows(lake, "iot.stats")
    # one record for a closed window, one for an open window that is behind the newest time
    publish(
        stream,
        [
            {"device": "d0", "ts": T0 + 5, "temp": 100.0},
            {"device": "d0", "ts": watermark + 30, "temp": 1.0},
        ],
    )
    stats = job.run_once()
    assert stats.late == 1 and stats.counted == 1
    (rejected,) = late.rejected
    assert rejected.kind == "late"
    assert rejected.reason == (
        f"late: window {iso(T0)}..{iso(T0 + 300)} had closed (watermark {iso(watermark)})"
    )
    assert rejected.event_time == at(T0 + 5)
    assert rejected.offset == 200 and rejected.partition == 0
    assert b'"temp": 100.0' in rejected.value
    assert table_windows(lake, "iot.stats") == before  # nothing was double counted


def test_invalid_records_go_to_the_side_output_and_valid_ones_of_the_batch_count(
    lake: Lake,
) -> None:
    stream = lake.stream("readings")
    publish(stream, [{"device": "a", "ts": T0, "temp": 1.0}, {"device": "a", "temp": 2.0}])
    publish(stream, [{"device": "a", "ts": "noon", "temp": 3.0}, {"ts": T0 + 1, "temp": 4.0}])
    publish(stream, [{"device": "a", "ts": T0 + 1000, "temp": 0.0}])
    late = Collect()
    stats = _job(lake, late=late).run_once()
    assert stats.invalid == 3 and stats.counted == 2
    assert [(r.offset, r.kind, r.reason) for r in late.rejected] == [
        (1, "invalid", "missing time field 'ts'"),
        (2, "invalid", "time field 'ts': 'noon' is not an ISO-8601 time"),
        (3, "invalid", "missing key field 'device'"),
    ]
    assert table_windows(lake, "iot.stats") == {("a", T0): (1, 1.0)}


def test_on_invalid_raise_names_the_record_and_applies_nothing_of_its_batch(lake: Lake) -> None:
    stream = lake.stream("readings")
    publish(stream, [{"device": "a", "ts": T0, "temp": 1.0}, {"device": "a", "ts": T0 + 900}])
    job = _job(lake, on_invalid="raise")
    job.run_once()
    publish(stream, [{"device": "a", "ts": T0 + 901, "temp": 1.0}, {"device": "a", "ts": None}])
    with pytest.raises(InvalidInputError, match=r"readings/p0:3: missing time field 'ts'"):
        job.run_once()
    with pytest.raises(InvalidInputError, match="p0:3"):  # same again: nothing was skipped
        job.run_once()
    assert lake.catalog.get_state(job.checkpoints.state_key)["offsets"] == {"0": 2}


def test_the_default_side_output_is_a_stream_named_after_source_and_group(lake: Lake) -> None:
    publish(lake.stream("readings"), [{"device": "a", "ts": "?"}])
    job = _job(lake, late=None)
    job.run_once()
    (record,) = list(lake.stream("readings_stats_late").replay())
    data = record.json()
    assert data["kind"] == "invalid" and data["id"] == "readings/0/0"
    assert data["value"] == '{"device": "a", "ts": "?"}'
    assert record.key == b"a"


def test_late_records_into_a_table_are_stored_once_per_stream_position(lake: Lake) -> None:
    stream = lake.stream("readings")
    publish(stream, [{"device": "a", "ts": T0 + 3600, "temp": 1.0}])
    job = _job(lake, late=TableSink(lake, "iot.late"))
    job.run_once()
    publish(stream, [{"device": "a", "ts": T0, "temp": 1.0}, {"device": "b", "ts": "x"}])
    job.run_once()
    late = lake.table("iot.late").to_arrow().sort_by("offset").to_pylist()
    assert [(r["offset"], r["kind"]) for r in late] == [(1, "late"), (2, "invalid")]
    assert late[0]["event_time"] == at(T0) and late[1]["event_time"] is None
    # delivering the same rows again (a re-run after a crash) changes nothing
    rows = [
        Rejected("late", "late: again", "readings", 0, 1, at(T0), b"{}", b"a", at(T0)),
    ]
    job.late.write_rejected(rows)
    assert lake.table("iot.late").count() == 2


# -- early emission --------------------------------------------------------------------------------
def test_early_updates_are_marked_non_final_and_the_table_keeps_only_finals(lake: Lake) -> None:
    stream = lake.stream("readings")
    feed, view, table = Collect(), KeyValueView(), TableSink(lake, "iot.stats")
    job = _job(lake, early="batch", batch_size=2, sinks=[table, feed, view])
    publish(stream, [{"device": "a", "ts": T0 + s, "temp": 1.0} for s in (0, 10, 20)])
    job.run_once()
    assert [(r.values["n"], r.final) for r in feed.results] == [(2, False), (3, False)]
    assert feed.results[0].id == f"a|{iso(T0)}|{iso(T0 + 300)}" == feed.results[1].id
    assert view.get("a")["n"] == 3 and view.get("a")["final"] is False
    assert not lake.catalog.table_exists("iot.stats")
    publish(stream, [{"device": "a", "ts": T0 + 600, "temp": 1.0}])
    job.run_once()
    assert feed.results[-2].final and feed.results[-2].values["n"] == 3
    assert view.get("a")["window_start"] == iso(T0 + 600)  # the newer window's update
    assert table_windows(lake, "iot.stats") == {("a", T0): (3, 3.0)}


def test_periodic_early_updates_only_include_windows_that_changed(lake: Lake) -> None:
    stream = lake.stream("readings")
    feed = Collect()
    job = _job(lake, early="0s", sinks=[feed])
    publish(stream, [{"device": d, "ts": T0, "temp": 1.0} for d in ("a", "b")])
    job.run_once()
    publish(stream, [{"device": "b", "ts": T0 + 1, "temp": 1.0}])
    job.run_once()
    assert [(r.key, r.values["n"]) for r in feed.results] == [("a", 1), ("b", 1), ("b", 2)]


def test_a_table_sink_can_take_updates_too(lake: Lake) -> None:
    publish(lake.stream("readings"), [{"device": "a", "ts": T0, "temp": 1.0}])
    _job(lake, early="batch", sinks=[TableSink(lake, "iot.live", updates=True)]).run_once()
    (row,) = lake.table("iot.live").to_arrow().to_pylist()
    assert row["final"] is False and row["n"] == 1


# -- checkpoints and restarts ----------------------------------------------------------------------
def test_a_restarted_job_resumes_without_double_counting(lake: Lake) -> None:
    stream = lake.stream("readings")
    rows = _readings(T0, 600, step=3)
    publish(stream, rows[:250])
    view = KeyValueView()
    first = _job(lake, sinks=[TableSink(lake, "iot.stats"), view])
    first.run_once()
    first.close()
    open_before = first.open_windows
    assert open_before > 0
    publish(stream, rows[250:])
    restarted_view = KeyValueView()
    second = _job(lake, sinks=[TableSink(lake, "iot.stats"), restarted_view])
    assert second.open_windows == 0
    stats = second.run_once()
    assert stats.records == 350  # only the records after the checkpoint
    watermark = rows[-1]["ts"]
    assert table_windows(lake, "iot.stats") == _closed(rows, 300, watermark)
    assert restarted_view.snapshot().keys() == view.snapshot().keys()


def test_a_restarted_view_is_rebuilt_from_the_checkpoint(lake: Lake) -> None:
    publish(lake.stream("readings"), _readings(T0, 100, step=10))
    view = KeyValueView("latest")
    _job(lake, sinks=[view]).run_once()
    assert len(view) == 3
    again = KeyValueView("latest")
    job = _job(lake, sinks=[again])
    job.run_once()  # nothing new to read: the view comes from the checkpoint
    assert again.snapshot() == view.snapshot()


def test_records_a_rebalance_delivers_again_are_counted_once(open_lake: OpenLake) -> None:
    lake = open_lake(2)
    stream = lake.stream("readings")
    first, second = _keys_in_distinct_partitions(lake)  # partitions 0 and 1
    publish(
        stream,
        [{"device": k, "ts": T0 + i, "temp": 1.0} for k in (first, second) for i in range(10)],
    )
    job = _job(lake, batch_size=15, poll_timeout=0.05, checkpoint_every="1h")
    other = stream.consumer("stats", member="other")
    polls: list[int] = []

    def script() -> bool:
        """Called before each poll. The first reads partition 0 and half of partition 1; then
        another member joins (the job hands it partition 1), reads from it and leaves, so the
        job takes partition 1 back at the group's committed offset (0: nothing is committed
        before the run ends) and is delivered again the five records it already counted."""
        polls.append(job.stats.records)
        if len(polls) == 2:
            assert other.poll(1) == []  # joins; partition 1 is still the job's
        elif len(polls) == 3:
            assert [r.partition for r in other.poll(1)] == [1]
            other.close()
        return len(polls) == 4

    stats = job.run(until=script)
    assert polls == [0, 15, 15, 20]
    assert stats.records == stats.counted == 20
    publish(stream, [{"device": k, "ts": T0 + 3600, "temp": 0.0} for k in (first, second)])
    job.run_once()  # closes the first window of both keys
    assert table_windows(lake, "iot.stats") == {(first, T0): (10, 10.0), (second, T0): (10, 10.0)}


def test_a_failure_mid_run_loses_and_duplicates_nothing(lake: Lake) -> None:
    stream = lake.stream("readings")
    rows = _readings(T0, 900, step=2)
    publish(stream, rows)
    flaky = Collect(fail_after=5)
    job = _job(lake, batch_size=50, checkpoint_every=0, sinks=[TableSink(lake, "iot.stats"), flaky])
    with pytest.raises(RuntimeError, match="sink is down"):
        job.run_once()
    committed = lake.catalog.get_state(job.checkpoints.state_key)
    assert committed is not None and committed["offsets"]["0"] < 900
    flaky.fail_after = None
    job.run_once()  # the same job object reloads its last checkpoint
    assert table_windows(lake, "iot.stats") == _closed(rows, 300, rows[-1]["ts"])
    # the at-least-once sink may have seen some results twice, always with the same values
    by_id: dict[str, dict[str, Any]] = {}
    for result in flaky.results:
        assert by_id.setdefault(result.id, result.values) == result.values


def test_only_the_current_checkpoint_payload_is_kept(lake: Lake) -> None:
    stream = lake.stream("readings")
    job = _job(lake, checkpoint_every=0, batch_size=10)
    for chunk in range(3):
        publish(stream, _readings(T0 + chunk * 1000, 30, step=30))
        job.run_once()
    payloads = lake.store.list_keys("streaming/readings/stats/")
    assert payloads == [lake.catalog.get_state(job.checkpoints.state_key)["payload"]]
    stray = "streaming/readings/stats/checkpoint-000000000999-deadbeef.json"
    lake.store.put(stray, b"{}")  # a payload whose commit never happened (a crash)
    _job(lake, sinks=[TableSink(lake, "iot.other")]).run_once()
    assert stray not in lake.store.list_keys("streaming/readings/stats/")


def test_a_checkpoint_of_another_job_definition_is_refused_until_reset(lake: Lake) -> None:
    publish(lake.stream("readings"), _readings(T0, 50))
    _job(lake).run_once()
    other = _job(lake, window=Tumbling("1m"), sinks=[TableSink(lake, "iot.minutes")])
    with pytest.raises(ConfigurationError, match="other windows, key, time or aggregations"):
        other.run_once()
    other.reset()
    assert other.run_once().records == 50
    assert lake.catalog.table_exists("iot.minutes")


def test_a_second_instance_of_a_job_is_refused_at_commit(lake: Lake) -> None:
    stream = lake.stream("readings")
    publish(stream, _readings(T0, 10))
    first = _job(lake, sinks=[KeyValueView()])
    first.run_once()
    second = _job(lake, sinks=[KeyValueView()])
    publish(stream, _readings(T0 + 100, 10))
    second.run_once()
    publish(stream, _readings(T0 + 200, 10))
    with pytest.raises(CommitConflictError, match="only one instance"):
        first.run_once()


def test_a_second_instance_with_a_table_sink_writes_no_results_twice(lake: Lake) -> None:
    stream = lake.stream("readings")
    rows = _readings(T0, 900, step=3)
    publish(stream, rows[:100])
    first = _job(lake, sinks=[TableSink(lake, "iot.stats")])
    first.run_once()
    second = _job(lake, sinks=[TableSink(lake, "iot.stats")])  # resumes from first's checkpoint
    publish(stream, rows[100:])
    second.run_once()
    before = lake.table("iot.stats").to_arrow()
    with pytest.raises(CommitConflictError, match="only one instance"):
        first.run_once()  # read the same records again: its results must not land
    after = lake.table("iot.stats").to_arrow()
    assert after.num_rows == before.num_rows
    assert table_windows(lake, "iot.stats") == _closed(rows, 300, rows[-1]["ts"])


# -- running in the background ---------------------------------------------------------------------
def test_start_runs_in_the_background_until_stop(lake: Lake) -> None:
    stream = lake.stream("readings")
    view = KeyValueView()
    job = _job(lake, sinks=[TableSink(lake, "iot.stats"), view], poll_timeout=0.05)
    assert job.start() is job and job.running
    with pytest.raises(ConfigurationError, match="already running"):
        job.run_once()
    rows = _readings(T0, 60, step=10)
    publish(stream, rows)
    deadline = time.monotonic() + 20
    while len(view) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    job.stop()
    assert not job.running
    assert table_windows(lake, "iot.stats") == _closed(rows, 300, rows[-1]["ts"])
    assert job.stats.records == 60 and job.stats.commits >= 1


def test_a_failing_background_run_raises_from_stop(lake: Lake) -> None:
    publish(lake.stream("readings"), _readings(T0, 60, step=10))
    job = _job(lake, sinks=[Collect(fail_after=0)], poll_timeout=0.05)
    job.start()
    deadline = time.monotonic() + 20
    while job.running and time.monotonic() < deadline:
        time.sleep(0.02)
    with pytest.raises(RuntimeError, match="sink is down"):
        job.stop()


def test_run_until_a_duration_or_a_condition(lake: Lake) -> None:
    publish(lake.stream("readings"), _readings(T0, 20))
    job = _job(lake, poll_timeout=0.05)
    started = time.monotonic()
    stats = job.run(until=0.3)
    assert 0.3 <= time.monotonic() - started < 5
    assert stats.records == 20
    calls = []
    job.run(until=lambda: bool(calls.append(1)) or len(calls) >= 3)
    assert len(calls) == 3
    with job:
        pass
    with pytest.raises(ConfigurationError, match="closed"):
        job.run_once()


def test_stop_from_another_thread_ends_run_and_only_that_run(lake: Lake) -> None:
    job = _job(lake, poll_timeout=0.05)
    job.stop()  # nothing runs: no effect on the next run
    publish(lake.stream("readings"), _readings(T0, 5))
    timer = threading.Timer(0.3, job.stop)
    timer.start()
    assert job.run().records == 5  # returns once stop() is called
    timer.join()
    started = time.monotonic()
    job.run(until=0.2)  # the earlier stop() does not end this run at once
    assert time.monotonic() - started >= 0.2


# -- configuration errors --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"window": "5m"}, "window must be"),
        ({"aggregate": {}}, "aggregate must map"),
        ({"aggregate": {"n": "count"}}, "must be an Aggregation"),
        ({"aggregate": {"device": Count()}}, "collides with the result column 'device'"),
        ({"aggregate": {"Window_Start": Count()}}, "collides"),
        ({"key": "__key"}, "reserved"),
        ({"time_unit": "minutes"}, "time_unit"),
        ({"batch_size": 0}, "batch_size"),
        ({"on_invalid": "ignore"}, "on_invalid"),
        ({"start": "middle"}, "start must be"),
        ({"group": "Stats!"}, "invalid consumer group"),
        ({"allowed_lateness": "-1s"}, "negative"),
        ({"early": "sometimes"}, "not a duration"),
        ({"late": KeyValueView()}, "cannot receive rejected"),
        ({"sinks": [TableSink.__new__(TableSink), "table"]}, "Sink objects"),
    ],
)
def test_bad_job_options_are_configuration_errors(
    lake: Lake, overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        _job(lake, **overrides)


def test_sinks_belong_to_one_job_and_one_role(lake: Lake) -> None:
    table = TableSink(lake, "iot.stats")
    _job(lake, sinks=[table])
    with pytest.raises(ConfigurationError, match="another job"):
        _job(lake, sinks=[table])
    with pytest.raises(ConfigurationError, match="at most one TableSink"):
        _job(lake, sinks=[TableSink(lake, "iot.a"), TableSink(lake, "iot.b")])
    with pytest.raises(ConfigurationError, match="two key-value views"):
        _job(lake, sinks=[KeyValueView("v"), KeyValueView("v")])
    feed = StreamSink(lake, "feed")
    with pytest.raises(ConfigurationError, match="both a result sink and the side output"):
        _job(lake, sinks=[feed], late=feed)
    with pytest.raises(NotSupportedError):
        KeyValueView().write_rejected([])
