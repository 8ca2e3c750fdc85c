"""Schedules: rate()/cron() parsing, next-fire computation (deterministic, UTC), and the
scheduler driven by an injectable clock: deterministic tick ids, missed-tick catch-up."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import Future
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from trigger_helpers import wait_for

from lakekit.errors import InvalidInputError
from lakekit.events import Schedule
from lakekit.triggers import ManualClock, ScheduleTrigger, TriggerBinding, parse_schedule
from lakekit.triggers.scheduler import Scheduler, schedule_event_id
from lakekit.triggers.state import TriggerState

# Thursday 2026-11-26 10:24:23 UTC
NOW = datetime(2026, 11, 26, 10, 24, 23, tzinfo=UTC)


def at(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("expression", "following", "previous"),
    [
        ("rate(1 minute)", at(2026, 11, 26, 10, 25), at(2026, 11, 26, 10, 24)),
        ("rate(5 minutes)", at(2026, 11, 26, 10, 25), at(2026, 11, 26, 10, 20)),
        ("rate(7 minutes)", at(2026, 11, 26, 10, 30), at(2026, 11, 26, 10, 23)),  # epoch-anchored
        ("rate(2 hours)", at(2026, 11, 26, 12, 0), at(2026, 11, 26, 10, 0)),
        ("rate(1 day)", at(2026, 11, 27), at(2026, 11, 26)),
        ("rate(30 seconds)", at(2026, 11, 26, 10, 24, 30), at(2026, 11, 26, 10, 24, 0)),
        ("cron(0 3 * * ? *)", at(2026, 11, 27, 3, 0), at(2026, 11, 26, 3, 0)),
        ("cron(15 10 * * ? *)", at(2026, 11, 27, 10, 15), at(2026, 11, 26, 10, 15)),
        ("cron(0/15 * * * ? *)", at(2026, 11, 26, 10, 30), at(2026, 11, 26, 10, 15)),
        ("cron(5,35 8-17 ? * MON-FRI *)", at(2026, 11, 26, 10, 35), at(2026, 11, 26, 10, 5)),
        ("cron(0 18 ? * 2-6 *)", at(2026, 11, 26, 18, 0), at(2026, 11, 25, 18, 0)),
        ("cron(0 9 ? * SAT,SUN *)", at(2026, 11, 28, 9, 0), at(2026, 11, 22, 9, 0)),
        ("cron(0 0 1 1 ? *)", at(2027, 1, 1), at(2026, 1, 1)),
        ("cron(0 0 1 JAN-MAR/2 ? *)", at(2027, 1, 1), at(2026, 3, 1)),
        ("cron(0 0 29 2 ? *)", at(2028, 2, 29), at(2024, 2, 29)),
        ("cron(0 0 L * ? *)", at(2026, 11, 30), at(2026, 10, 31)),
        ("cron(0 0 L-2 * ? *)", at(2026, 11, 28), at(2026, 10, 29)),
        ("cron(0 0 1W * ? *)", at(2026, 12, 1), at(2026, 11, 2)),  # Nov 1 2026 is a Sunday
        ("cron(0 0 31W * ? *)", at(2026, 11, 30), at(2026, 10, 30)),  # Oct 31 2026: Saturday
        ("cron(0 9 ? * 2#1 *)", at(2026, 12, 7, 9, 0), at(2026, 11, 2, 9, 0)),  # first Monday
        ("cron(0 9 ? * 6L *)", at(2026, 11, 27, 9, 0), at(2026, 10, 30, 9, 0)),  # last Friday
        ("cron(0 9 ? * L *)", at(2026, 11, 28, 9, 0), at(2026, 11, 21, 9, 0)),  # Saturdays
        ("cron(0 0 1 1 ? 2020)", None, at(2020, 1, 1)),
        ("cron(0 0 1 1 ? 2030-2031)", at(2030, 1, 1), None),
    ],
)
def test_next_and_previous_ticks_are_computed_in_utc(
    expression: str, following: datetime | None, previous: datetime | None
) -> None:
    schedule = parse_schedule(expression)
    assert schedule.next_after(NOW) == following
    assert schedule.latest_at_or_before(NOW) == previous


def test_a_tick_exactly_now_is_the_latest_and_the_next_one_is_strictly_later() -> None:
    schedule = parse_schedule("rate(5 minutes)")
    tick = at(2026, 11, 26, 10, 25)
    assert schedule.latest_at_or_before(tick) == tick
    assert schedule.next_after(tick) == at(2026, 11, 26, 10, 30)
    cron = parse_schedule("cron(25 10 * * ? *)")
    assert cron.latest_at_or_before(tick) == tick
    assert cron.next_after(tick) == tick + timedelta(days=1)


def test_times_in_other_zones_are_converted_and_naive_times_refused() -> None:
    from datetime import timezone

    paris = NOW.astimezone(timezone(timedelta(hours=1)))
    assert parse_schedule("rate(1 hour)").next_after(paris) == at(2026, 11, 26, 11, 0)
    with pytest.raises(InvalidInputError, match="timezone-aware"):
        parse_schedule("rate(1 hour)").next_after(datetime(2026, 1, 1))


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("rate(1 minutes)", r"rate\(1 minute\)"),
        ("rate(5 minute)", r"rate\(5 minutes\)"),
        ("rate(0 hours)", "positive"),
        ("rate(5 weeks)", "unknown unit"),
        ("rate(five minutes)", "malformed rate"),
        ("cron(0 3 * * *)", r"5 fields.*cron\(0 3 \* \* \? \*\)"),
        ("cron(0 3 * * 1)", r"cron\(0 3 \? \* 2 \*\)"),
        ("cron(0 3 * * ? * *)", "7 fields"),
        ("cron(0 3 * * * *)", "exactly one"),
        ("cron(0 3 ? * ? *)", "exactly one"),
        ("cron(60 * * * ? *)", "minutes value 60"),
        ("cron(0 24 * * ? *)", "hours value 24"),
        ("cron(0 0 32 * ? *)", "day-of-month value 32"),
        ("cron(0 0 ? * 0 *)", "day-of-week value 0"),
        ("cron(0 0 ? * 2#6 *)", "n#k"),
        ("cron(0 0 * FOO ? *)", "not a number"),
        ("cron(0 0 * * ? 1969)", "outside 1970-2199"),
        ("cron(30-10 * * * ? *)", "backwards"),
        ("cron(*/0 * * * ? *)", "step"),
        ("at(2026-01-01T00:00)", "must be 'rate"),
    ],
)
def test_malformed_schedules_name_the_fix(expression: str, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        parse_schedule(expression)


def test_manual_clock_moves_only_forward_and_wakes_waiters() -> None:
    clock = ManualClock(NOW)
    stop = threading.Event()
    woke = threading.Event()

    def waiter() -> None:
        clock.wait(stop, 60)
        woke.set()

    thread = threading.Thread(target=waiter)
    thread.start()
    clock.advance(30)
    assert not woke.wait(0.05)
    clock.advance(30)
    assert woke.wait(5)
    thread.join()
    with pytest.raises(InvalidInputError):
        clock.advance(-1)
    with pytest.raises(InvalidInputError):
        clock.set(NOW)


# -- the scheduler ----------------------------------------------------------------------------
class Recorder:
    """Stands in for the runtime: records submitted events, resolves them at once."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Schedule]] = []
        self.lock = threading.Lock()

    def submit(self, function: str, event: Schedule) -> Future[Any]:
        future: Future[Any] = Future()
        with self.lock:
            self.events.append((function, event))
        future.set_result(None)
        return future

    def ticks(self) -> list[datetime]:
        with self.lock:
            return [event.scheduled_time for _, event in self.events]


@pytest.fixture
def state(tmp_path: Path) -> Iterator[TriggerState]:
    opened = TriggerState(tmp_path / "state.db")
    yield opened
    opened.close()


def _scheduler(
    state: TriggerState, clock: ManualClock, recorder: Recorder, expression: str, **kw: Any
) -> Scheduler:
    binding = TriggerBinding("job", ScheduleTrigger(expression))
    return Scheduler([binding], recorder.submit, state, clock, **kw)


def test_scheduler_fires_each_tick_with_a_deterministic_id(state: TriggerState) -> None:
    clock = ManualClock(NOW)
    recorder = Recorder()
    scheduler = _scheduler(state, clock, recorder, "rate(1 minute)")
    scheduler.start()
    try:
        assert recorder.ticks() == [], "the first start fires nothing"
        clock.set(at(2026, 11, 26, 10, 25))
        wait_for(lambda: len(recorder.ticks()) == 1)
        clock.advance(60)
        wait_for(lambda: len(recorder.ticks()) == 2)
    finally:
        assert scheduler.stop(timeout=5)
    first, second = (event for _, event in recorder.events)
    assert first.scheduled_time == at(2026, 11, 26, 10, 25)
    assert second.scheduled_time == at(2026, 11, 26, 10, 26)
    assert first.id == schedule_event_id("job", at(2026, 11, 26, 10, 25))
    assert first.name == "job"
    assert first.expression == "rate(1 minute)"
    assert first.id != second.id
    assert state.schedule_done("job", "rate(1 minute)") == at(2026, 11, 26, 10, 26)


def test_missed_ticks_while_stopped_fire_once_for_the_latest_at_start(
    state: TriggerState,
) -> None:
    clock = ManualClock(NOW)
    recorder = Recorder()
    first_run = _scheduler(state, clock, recorder, "rate(1 minute)")
    first_run.start()
    assert first_run.stop(timeout=5)
    clock.advance(timedelta(minutes=10))  # ten ticks due while "the server was down"
    second_run = _scheduler(state, clock, recorder, "rate(1 minute)")
    second_run.start()
    assert second_run.stop(timeout=5)
    assert recorder.ticks() == [at(2026, 11, 26, 10, 34)], "one catch-up, for the latest tick"
    third = _scheduler(state, clock, recorder, "rate(1 minute)")
    third.start()
    assert third.stop(timeout=5)
    assert len(recorder.ticks()) == 1, "a tick that finished is not caught up again"


def test_catch_up_can_be_turned_off(state: TriggerState) -> None:
    clock = ManualClock(NOW)
    recorder = Recorder()
    first = _scheduler(state, clock, recorder, "rate(1 minute)")
    first.start()  # records the start point
    assert first.stop(timeout=5)
    clock.advance(timedelta(minutes=10))
    late = _scheduler(state, clock, recorder, "rate(1 minute)", catch_up=False)
    late.start()
    assert late.stop(timeout=5)
    assert recorder.ticks() == []


def test_a_tick_whose_invocation_had_not_finished_is_fired_again_with_the_same_id(
    state: TriggerState,
) -> None:
    clock = ManualClock(at(2026, 11, 26, 10, 24, 59))
    submitted: list[Schedule] = []
    pending: Future[Any] = Future()

    def never_finishes(function: str, event: Schedule) -> Future[Any]:
        submitted.append(event)
        return pending

    binding = TriggerBinding("job", ScheduleTrigger("rate(1 minute)"))
    crashed = Scheduler([binding], never_finishes, state, clock)
    crashed.start()
    clock.advance(1)
    wait_for(lambda: submitted)
    assert not crashed.stop(timeout=0.05), "the tick was still in flight at stop"
    recorder = Recorder()
    restarted = Scheduler([binding], recorder.submit, state, clock)
    restarted.start()
    assert restarted.stop(timeout=5)
    assert [event.id for _, event in recorder.events] == [submitted[0].id]
    pending.set_result(None)


def test_cron_schedules_fire_on_their_calendar(state: TriggerState) -> None:
    clock = ManualClock(at(2026, 11, 27, 23, 59, 30))  # a Friday night
    recorder = Recorder()
    scheduler = _scheduler(state, clock, recorder, "cron(0 9 ? * MON-FRI *)")
    scheduler.start()
    try:
        clock.set(at(2026, 11, 30, 8, 59))  # the weekend passes: no tick
        clock.advance(60)  # Monday 09:00
        wait_for(recorder.ticks)
    finally:
        scheduler.stop(timeout=5)
    assert recorder.ticks() == [at(2026, 11, 30, 9, 0)]
