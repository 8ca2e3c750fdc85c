"""The local server: retries, dead letters (store + dead-letter stream), concurrency limits and
timeouts through triggers, the handler context, real and manual-clock schedules, lifecycle."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from trigger_helpers import wait_for

import lakekit
from lakekit.adapters.local.function_runtime import LocalFunctionRuntime
from lakekit.errors import ConfigurationError, NotSupportedError
from lakekit.events import ObjectCreated, Schedule, StreamRecords
from lakekit.interfaces.function_runtime import (
    Context,
    DeadLetter,
    FunctionRuntime,
    FunctionRuntimeAdapter,
)
from lakekit.lake import Lake
from lakekit.triggers import ManualClock
from lakekit.triggers.scheduler import schedule_event_id
from lakekit.triggers.server import LocalServer


def test_a_failing_object_handler_is_retried_then_dead_lettered_in_the_store_and_stream(
    lake: Lake, serve: Callable[..., LocalServer]
) -> None:
    attempts: list[tuple[str, int]] = []

    @lake.functions.on_object_created(prefix="raw/", retries=2, backoff=0.01)
    def load(event: ObjectCreated, context: Context) -> None:
        attempts.append((event.id, context.attempt))
        raise KeyError("customer_id")

    serve(lake)
    lake.store.put("raw/bad.json", b"{}")
    (letter,) = wait_for(lambda: lake.functions.dead_letters("load"))
    assert [attempt for _, attempt in attempts] == [1, 2, 3]
    assert len({event_id for event_id, _ in attempts}) == 1, "the same event id on each retry"
    assert letter.event_type == "ObjectCreated"
    assert letter.event["key"] == "raw/bad.json"
    assert (letter.error_type, letter.attempts) == ("KeyError", 3)
    (record,) = wait_for(lambda: list(lake.stream("dead_letters").replay()))
    assert record.key == b"load"
    assert record.headers == {"function": "load", "error_type": "KeyError"}
    assert DeadLetter.from_dict(record.json()) == letter


def test_a_dead_lettered_object_event_is_not_delivered_again_after_a_restart(
    lake: Lake,
) -> None:
    calls: list[str] = []

    @lake.functions.on_object_created(prefix="raw/", retries=0)
    def load(event: ObjectCreated, context: Context) -> None:
        calls.append(event.key)
        raise RuntimeError("always")

    with LocalServer(lake, scan_interval=0.05, settle=0.1):
        lake.store.put("raw/x.json", b"{}")
        wait_for(lambda: lake.functions.dead_letters("load"))
    with LocalServer(lake, scan_interval=0.05, settle=0.1):
        time.sleep(0.3)
    assert calls == ["raw/x.json"]


def test_the_dead_letter_stream_can_be_renamed_or_turned_off(
    lake: Lake, serve: Callable[..., LocalServer]
) -> None:
    lake.functions.on_object_created(prefix="raw/", retries=0, name="load")(_fail)
    serve(lake, dead_letter_stream="failures")
    lake.store.put("raw/a.json", b"{}")
    wait_for(lambda: list(lake.stream("failures").replay()))


def test_without_a_dead_letter_stream_letters_stay_in_the_store_only(
    lake: Lake, serve: Callable[..., LocalServer]
) -> None:
    lake.functions.on_object_created(prefix="raw/", retries=0, name="load")(_fail)
    serve(lake, dead_letter_stream=None)
    lake.store.put("raw/a.json", b"{}")
    wait_for(lambda: lake.functions.dead_letters("load"))
    assert list(lake.stream("dead_letters").replay()) == []


def _fail(event: Any, context: Context) -> None:
    raise RuntimeError("no")


def test_a_failing_consumer_of_the_dead_letter_stream_does_not_loop(
    lake: Lake, serve: Callable[..., LocalServer]
) -> None:
    lake.functions.on_object_created(prefix="raw/", retries=0, name="load")(_fail)
    seen: list[int] = []

    @lake.functions.on_stream("dead_letters", retries=0)
    def alert(event: StreamRecords, context: Context) -> None:
        seen.append(len(event.records))
        raise RuntimeError("the pager is down too")

    serve(lake)
    lake.store.put("raw/a.json", b"{}")
    wait_for(lambda: lake.functions.dead_letters("alert"))
    time.sleep(0.3)
    assert len(list(lake.stream("dead_letters").replay())) == 1, (
        "alert's letter is not re-published"
    )
    assert seen == [1]


def test_the_concurrency_limit_holds_for_trigger_deliveries(
    lake: Lake, serve: Callable[..., LocalServer]
) -> None:
    running = 0
    peak = 0
    done: list[str] = []
    lock = threading.Lock()

    @lake.functions.on_object_created(prefix="raw/", concurrency=2)
    def load(event: ObjectCreated, context: Context) -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.1)
        with lock:
            running -= 1
            done.append(event.key)

    serve(lake)
    for i in range(6):
        lake.store.put(f"raw/{i}.json", b"{}")
    wait_for(lambda: len(done) == 6)
    assert peak == 2


def test_a_handler_past_its_timeout_is_retried_and_dead_lettered_as_a_timeout(
    lake: Lake, serve: Callable[..., LocalServer]
) -> None:
    attempts: list[int] = []

    @lake.functions.on_object_created(prefix="raw/", timeout=0.1, retries=1, backoff=0.01)
    def hang(event: ObjectCreated, context: Context) -> None:
        attempts.append(context.attempt)
        assert 0 < context.remaining_time() <= 0.1
        context.cancel_event.wait(5)

    serve(lake)
    lake.store.put("raw/slow.json", b"{}")
    (letter,) = wait_for(lambda: lake.functions.dead_letters("hang"))
    assert letter.error_type == "FunctionTimeoutError"
    assert attempts == [1, 2]


def test_handlers_get_the_lake_even_from_a_runtime_built_without_one(tmp_path: Path) -> None:
    runtime = LocalFunctionRuntime(max_workers=4)
    url = f"local://{tmp_path / 'lake'}"
    with lakekit.connect(url, functions=runtime) as lake:
        got: list[Any] = []

        @lake.functions.on_object_created(prefix="raw/", retries=0)
        def load(event: ObjectCreated, context: Context) -> None:
            got.append(context.lake)
            raise RuntimeError("dead-letter me")

        with LocalServer(lake, scan_interval=0.05):
            lake.store.put("raw/a.json", b"{}")
            wait_for(lambda: got)
            wait_for(lambda: lake.store.list_keys("_lakekit/functions/dead-letter/load/"))
        assert got == [lake]


def test_schedules_fire_in_real_time_with_short_rates(
    lake: Lake, serve: Callable[..., LocalServer]
) -> None:
    ticks: list[Schedule] = []
    lake.functions.on_schedule("rate(1 second)", name="tick")(lambda e, c: ticks.append(e))
    serve(lake)
    wait_for(lambda: ticks, timeout=5)
    (first, *_) = ticks
    assert first.scheduled_time.microsecond == 0
    assert first.id == schedule_event_id("tick", first.scheduled_time)
    assert first.time >= first.scheduled_time


def test_schedules_follow_an_injected_clock(lake: Lake, serve: Callable[..., LocalServer]) -> None:
    clock = ManualClock(datetime(2026, 11, 26, 2, 59, tzinfo=UTC))
    ticks: list[Schedule] = []

    @lake.functions.on_schedule("cron(0 3 * * ? *)")
    def nightly(event: Schedule, context: Context) -> None:
        assert context.lake is lake
        ticks.append(event)

    serve(lake, clock=clock)
    clock.advance(timedelta(minutes=1))
    wait_for(lambda: ticks)
    assert ticks[0].scheduled_time == datetime(2026, 11, 26, 3, 0, tzinfo=UTC)
    assert ticks[0].expression == "cron(0 3 * * ? *)"


def test_stop_drains_invocations_in_flight(lake: Lake) -> None:
    finished: list[str] = []
    started = threading.Event()

    @lake.functions.on_object_created(prefix="raw/")
    def slow(event: ObjectCreated, context: Context) -> None:
        started.set()
        time.sleep(0.3)
        finished.append(event.key)

    server = LocalServer(lake, scan_interval=0.05).start()
    lake.store.put("raw/a.json", b"{}")
    assert started.wait(10)
    assert server.stop() is True
    assert finished == ["raw/a.json"]
    assert server.stop() is True, "stop is idempotent"
    with pytest.raises(ConfigurationError, match="already started"):
        server.start()


def test_one_server_per_lake(lake: Lake, serve: Callable[..., LocalServer]) -> None:
    lake.functions.on_object_created(prefix="raw/", name="load")(lambda e, c: None)
    serve(lake)
    with pytest.raises(ConfigurationError, match="another lakekit server"):
        LocalServer(lake).start()


def test_serve_returns_a_running_server_usable_as_a_context_manager(lake: Lake) -> None:
    lake.functions.on_http("/ping", methods=["GET"], name="ping")(lambda e, c: "pong")
    with lake.functions.serve(http_port=0) as server:
        assert server.running
        assert server.url is not None
        assert [str(b) for b in server.bindings] == ["ping <- http GET /ping"]
    assert not server.running


class _NotLocal(FunctionRuntimeAdapter):
    """A runtime that is not the local one (as a cloud adapter will be)."""

    def register(self, name: str, handler: Any, options: Any) -> None: ...
    def unregister(self, name: str) -> None: ...
    def functions(self) -> dict[str, Any]:
        return {}

    def invoke(self, name: str, event: Any) -> Any: ...
    def invoke_async(self, name: str, event: Any) -> Any: ...
    def dead_letters(self, name: str | None = None) -> list[Any]:
        return []


def test_serve_needs_a_lake_and_the_local_runtime(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="belongs to no lake"):
        FunctionRuntime(LocalFunctionRuntime()).serve()
    url = f"local://{tmp_path / 'other'}"
    with (
        lakekit.connect(url, functions=_NotLocal()) as other,
        pytest.raises(NotSupportedError, match="local function runtime"),
    ):
        LocalServer(other).start()


def test_bad_server_settings_are_refused(lake: Lake) -> None:
    from lakekit.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match="scan_interval"):
        LocalServer(lake, scan_interval=0)
    with pytest.raises(InvalidInputError, match="dead-letter stream"):
        LocalServer(lake, dead_letter_stream="Dead Letters")
