"""Behaviour of the local runtime beyond the shared suite: threads and slots, cancellation,
backoff, nesting, closing, configuration through a Lake, and what goes into logs."""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import threading
import time
from collections.abc import Iterator
from concurrent.futures import CancelledError
from pathlib import Path
from typing import Any

import pytest

import lakekit
from lakekit.adapters.local.function_runtime import (
    DEFAULT_DEAD_LETTER_PREFIX,
    LocalFunctionRuntime,
    retry_delay,
)
from lakekit.errors import (
    ConfigurationError,
    FunctionError,
    FunctionTimeoutError,
    InvalidInputError,
    NotFoundError,
)
from lakekit.events import Invoke
from lakekit.interfaces.function_runtime import Context, FunctionOptions, FunctionRuntime
from lakekit.registry import resolve

WAIT = 30.0  # generous upper bound for anything the tests wait on; never asserted as a speed


@pytest.fixture
def runtime() -> Iterator[FunctionRuntime]:
    rt = FunctionRuntime(LocalFunctionRuntime(max_workers=4))
    yield rt
    rt.close(wait=True)


class Gauge:
    """Counts handlers running right now and the most ever seen at once."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.active = 0
        self.peak = 0

    def enter(self) -> None:
        with self.cond:
            self.active += 1
            self.peak = max(self.peak, self.active)
            self.cond.notify_all()

    def leave(self) -> None:
        with self.cond:
            self.active -= 1
            self.cond.notify_all()

    def wait_for_peers(self, count: int, timeout: float) -> None:
        """Wait until ``count`` handlers run at once (or ever did): shows real parallelism
        without depending on how fast threads start."""
        with self.cond:
            self.cond.wait_for(lambda: self.peak >= count, timeout)


# -- wiring -------------------------------------------------------------------------------------
def test_the_local_scheme_resolves_to_the_local_runtime() -> None:
    assert resolve("functions", "local") is LocalFunctionRuntime


def test_lake_functions_hand_handlers_the_lake_and_dead_letter_into_its_store(
    lake_dir: Path,
) -> None:
    with lakekit.connect(f"local://{lake_dir}") as lake:

        def copy_to_store(event: Invoke, context: Context) -> str:
            assert context.lake is lake
            key = f"out/{event.payload}.txt"
            context.lake.store.put_text(key, f"attempt {context.attempt}")
            return key

        def fails(event: Invoke, context: Context) -> None:
            raise ValueError("no")

        lake.functions.register("copy_to_store", copy_to_store)
        lake.functions.register("fails", fails, FunctionOptions(retries=0))

        key = lake.functions.invoke("copy_to_store", "a")
        error = lake.functions.invoke_async("fails", 1).exception(timeout=WAIT)

        assert lake.store.get_text(key) == "attempt 1"
        assert isinstance(error, FunctionError)
        [stored] = lake.store.list_keys(f"{DEFAULT_DEAD_LETTER_PREFIX}/fails/")
        assert stored.endswith(".json")
        assert lake.functions.dead_letters("fails")[0].error == "no"


def test_settings_come_from_the_environment(
    lake_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAKEKIT_FUNCTIONS_MAX_WORKERS", "3")
    monkeypatch.setenv("LAKEKIT_FUNCTIONS_DEAD_LETTER_PREFIX", "ops/failed/")
    with lakekit.connect(f"local://{lake_dir}") as lake:
        adapter = lake.functions.adapter
        assert isinstance(adapter, LocalFunctionRuntime)
        assert adapter.max_workers == 3

        lake.functions.register("boom", _raise_value_error, FunctionOptions(retries=0))
        lake.functions.invoke_async("boom").exception(timeout=WAIT)

        assert len(lake.store.list_keys("ops/failed/boom/")) == 1


def _raise_value_error(event: Invoke, context: Context) -> None:
    raise ValueError("boom")


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"max_worker": 2}, "unknown setting 'max_worker'"),
        ({"max_workers": 0}, "LAKEKIT_FUNCTIONS_MAX_WORKERS"),
        ({"dead_letter_prefix": "../escape"}, "dead_letter_prefix"),
    ],
)
def test_bad_settings_are_configuration_errors_naming_the_setting(
    lake_dir: Path, settings: dict[str, Any], message: str
) -> None:
    lake = lakekit.connect(f"local://{lake_dir}", functions=settings)
    try:
        with pytest.raises(ConfigurationError, match=message):
            _ = lake.functions
    finally:
        lake.close()


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_max_workers_must_be_a_positive_int(bad: Any) -> None:
    with pytest.raises(InvalidInputError, match="max_workers"):
        LocalFunctionRuntime(max_workers=bad)


def test_repr_shows_where_dead_letters_go_and_no_secrets(tmp_path: Path) -> None:
    from lakekit.adapters.local.object_store import LocalObjectStore

    assert "memory" in repr(LocalFunctionRuntime(max_workers=1))
    stored = LocalFunctionRuntime(max_workers=1, store=LocalObjectStore(tmp_path))
    assert repr(stored) == (
        "LocalFunctionRuntime(max_workers=1, dead_letters='store:_lakekit/functions/dead-letter')"
    )


def test_lake_close_drains_queued_handlers_that_use_the_lake(lake_dir: Path) -> None:
    lake = lakekit.connect(f"local://{lake_dir}")

    def writer(event: Invoke, context: Context) -> int:
        time.sleep(0.05)
        assert context.lake is not None
        context.lake.store.put_text(f"drained/{event.payload}", "ok")
        return int(event.payload)

    lake.functions.register("writer", writer, FunctionOptions(concurrency=1))
    futures = [lake.functions.invoke_async("writer", i) for i in range(4)]

    closer = threading.Thread(target=lake.close)
    closer.start()
    closer.join(WAIT)

    assert not closer.is_alive(), "Lake.close() deadlocked while draining handlers"
    assert [f.result(timeout=0) for f in futures] == [0, 1, 2, 3]
    with lakekit.connect(f"local://{lake_dir}") as reopened:
        assert reopened.store.list_keys("drained/") == [f"drained/{i}" for i in range(4)]


# -- concurrency --------------------------------------------------------------------------------
def test_a_function_runs_up_to_its_concurrency_and_never_more(runtime: FunctionRuntime) -> None:
    gauge = Gauge()

    def handler(event: Invoke, context: Context) -> int:
        gauge.enter()
        try:
            gauge.wait_for_peers(3, timeout=2.0)  # proves parallelism without racing the clock
            return int(event.payload)
        finally:
            gauge.leave()

    runtime.register("wide", handler, FunctionOptions(concurrency=3))
    futures = [runtime.invoke_async("wide", i) for i in range(9)]

    assert [f.result(timeout=WAIT) for f in futures] == list(range(9))
    assert gauge.peak == 3


def test_max_workers_bounds_all_functions_together() -> None:
    runtime = FunctionRuntime(LocalFunctionRuntime(max_workers=2))
    gauge = Gauge()

    def handler(event: Invoke, context: Context) -> None:
        gauge.enter()
        try:
            gauge.wait_for_peers(2, timeout=2.0)
            time.sleep(0.01)
        finally:
            gauge.leave()

    try:
        runtime.register("left", handler, FunctionOptions(concurrency=4))
        runtime.register("right", handler, FunctionOptions(concurrency=4))
        futures = [runtime.invoke_async(n, i) for i in range(5) for n in ("left", "right")]
        for future in futures:
            future.result(timeout=WAIT)
    finally:
        runtime.close()

    assert gauge.peak == 2


def test_timed_out_sync_handler_keeps_its_slot_until_its_thread_returns(
    runtime: FunctionRuntime,
) -> None:
    release = threading.Event()
    started: list[int] = []
    finished: list[int] = []

    def stubborn(event: Invoke, context: Context) -> int:
        started.append(event.payload)
        if event.payload == 1:
            release.wait(WAIT)  # ignores context.cancelled on purpose
        finished.append(event.payload)
        return int(event.payload)

    runtime.register("stubborn", stubborn, FunctionOptions(concurrency=1, timeout=0.3, retries=0))

    with pytest.raises(FunctionTimeoutError):
        runtime.invoke("stubborn", 1)
    second = runtime.invoke_async("stubborn", 2)
    time.sleep(0.3)
    assert started == [1], "a second attempt ran while the timed-out thread still held the slot"
    assert not second.done()

    release.set()

    assert second.result(timeout=WAIT) == 2
    assert finished == [1, 2]


def test_timeout_sets_context_cancelled_for_cooperative_handlers(
    runtime: FunctionRuntime,
) -> None:
    observed: dict[str, bool] = {}
    done = threading.Event()

    def cooperative(event: Invoke, context: Context) -> None:
        observed["before"] = context.cancelled
        observed["woken"] = context.cancel_event.wait(WAIT)
        observed["after"] = context.cancelled
        done.set()

    runtime.register("cooperative", cooperative, FunctionOptions(timeout=0.3, retries=0))

    with pytest.raises(FunctionTimeoutError):
        runtime.invoke("cooperative")

    assert done.wait(WAIT)
    assert observed == {"before": False, "woken": True, "after": True}


def test_async_def_handler_is_really_cancelled_on_timeout(runtime: FunctionRuntime) -> None:
    seen: list[str] = []
    cleaned_up = threading.Event()

    async def sleeper(event: Invoke, context: Context) -> None:
        try:
            await asyncio.sleep(WAIT)
            seen.append("completed")
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise
        finally:
            cleaned_up.set()

    runtime.register("sleeper", sleeper, FunctionOptions(timeout=0.3, retries=0))

    with pytest.raises(FunctionTimeoutError):
        runtime.invoke("sleeper")

    assert cleaned_up.wait(WAIT)
    assert seen == ["cancelled"]


def test_async_handler_blocking_its_loop_still_times_out_on_time(
    runtime: FunctionRuntime,
) -> None:
    release = threading.Event()

    async def blocks(event: Invoke, context: Context) -> str:
        release.wait(WAIT)  # blocks the event loop: asyncio cannot cancel it
        return "late"

    runtime.register("blocks", blocks, FunctionOptions(timeout=0.3, retries=0))
    try:
        with pytest.raises(FunctionTimeoutError):
            runtime.invoke("blocks")
        assert not release.is_set()  # the error came while the handler was still stuck
    finally:
        release.set()


def test_a_sync_handler_returning_an_awaitable_is_awaited(runtime: FunctionRuntime) -> None:
    async def double(value: int) -> int:
        await asyncio.sleep(0)
        return value * 2

    def handler(event: Invoke, context: Context) -> Any:
        return double(event.payload)

    runtime.register("double", handler)
    runtime.register("partial", functools.partial(_async_add, 10))

    assert runtime.invoke("double", 4) == 8
    assert runtime.invoke("partial", 5) == 15


async def _async_add(base: int, event: Invoke, context: Context) -> int:
    return base + int(event.payload)


# -- retries and backoff ------------------------------------------------------------------------
def test_retry_delay_is_exponential_backoff_with_full_jitter() -> None:
    options = FunctionOptions(backoff=0.1, max_backoff=0.5, retries=10)
    rng = random.Random(1234)
    caps = {1: 0.1, 2: 0.2, 3: 0.4, 4: 0.5, 5: 0.5, 10_000: 0.5}

    for attempt, cap in caps.items():
        draws = [retry_delay(options, attempt, rng) for _ in range(400)]
        assert all(0.0 <= d <= cap for d in draws), attempt
        assert max(draws) > 0.9 * cap  # the whole range is used: full jitter
        assert min(draws) < 0.1 * cap

    assert retry_delay(FunctionOptions(backoff=0), 3, rng) == 0.0


def test_retries_wait_at_least_the_drawn_backoff(
    runtime: FunctionRuntime, caplog: pytest.LogCaptureFixture
) -> None:
    marks: list[tuple[str, float]] = []

    def flaky(event: Invoke, context: Context) -> int:
        marks.append(("start", time.monotonic()))
        if context.attempt < 4:
            marks.append(("end", time.monotonic()))
            raise ConnectionError("later")
        return context.attempt

    runtime.register("flaky", flaky, FunctionOptions(retries=3, backoff=0.05, max_backoff=0.2))

    with caplog.at_level(logging.WARNING, logger="lakekit.functions.flaky"):
        assert runtime.invoke("flaky") == 4

    delays = [
        float(r.args[-1])  # type: ignore[index, arg-type]
        for r in caplog.records
        if "retrying in" in r.msg
    ]
    assert len(delays) == 3
    for n, delay in enumerate(delays, start=1):
        assert 0 <= delay <= min(0.2, 0.05 * 2 ** (n - 1))
    ends = [t for kind, t in marks if kind == "end"]
    starts = [t for kind, t in marks if kind == "start"][1:]
    for ended, restarted, delay in zip(ends, starts, delays, strict=True):
        assert restarted - ended >= delay


def test_base_exceptions_fail_the_invocation_without_retry(runtime: FunctionRuntime) -> None:
    calls: list[int] = []

    def exits(event: Invoke, context: Context) -> None:
        calls.append(context.attempt)
        raise SystemExit(3)

    runtime.register("exits", exits, FunctionOptions(retries=2, backoff=0))

    with pytest.raises(FunctionError) as info:
        runtime.invoke("exits")

    assert calls == [1]
    assert isinstance(info.value.__cause__, SystemExit)
    runtime.register("ok", lambda event, context: "fine")  # the runtime is still usable
    assert runtime.invoke("ok") == "fine"


# -- nesting ------------------------------------------------------------------------------------
def test_nested_sync_invoke_from_a_handler_does_not_deadlock_a_full_pool() -> None:
    runtime = FunctionRuntime(LocalFunctionRuntime(max_workers=1))
    try:
        runtime.register("inner", lambda event, context: event.payload + 1)

        def outer(event: Invoke, context: Context) -> int:
            return int(runtime.invoke("inner", event.payload)) * 10

        runtime.register("outer", outer)

        assert runtime.invoke("outer", 1) == 20
        assert runtime.invoke_async("outer", 2).result(timeout=WAIT) == 30
    finally:
        runtime.close()


def test_nested_sync_invoke_gives_up_at_the_callers_deadline(runtime: FunctionRuntime) -> None:
    release = threading.Event()
    inner_calls: list[Any] = []
    outer_saw: list[BaseException] = []

    def inner(event: Invoke, context: Context) -> None:
        inner_calls.append(event.payload)
        release.wait(WAIT)

    outer_done = threading.Event()

    def outer(event: Invoke, context: Context) -> None:
        try:
            runtime.invoke("inner", "nested")
        except FunctionTimeoutError as exc:
            outer_saw.append(exc)
            raise
        finally:
            outer_done.set()

    runtime.register("inner", inner, FunctionOptions(concurrency=1))
    runtime.register("outer", outer, FunctionOptions(timeout=0.4, retries=0))
    blocker = runtime.invoke_async("inner", "blocker")  # holds inner's only slot

    with pytest.raises(FunctionTimeoutError):
        runtime.invoke("outer")
    assert outer_done.wait(WAIT)  # the outer handler has given up on its nested call
    release.set()
    blocker.result(timeout=WAIT)

    assert len(outer_saw) == 1
    assert "waiting for 'inner'" in str(outer_saw[0])
    assert inner_calls == ["blocker"]  # the abandoned nested call never ran


# -- queue, cancel, close -----------------------------------------------------------------------
def test_a_queued_future_can_be_cancelled_and_then_never_runs(runtime: FunctionRuntime) -> None:
    release = threading.Event()
    ran: list[Any] = []

    def handler(event: Invoke, context: Context) -> None:
        ran.append(event.payload)
        release.wait(WAIT)

    runtime.register("one_at_a_time", handler, FunctionOptions(concurrency=1))
    first = runtime.invoke_async("one_at_a_time", "first")
    queued = runtime.invoke_async("one_at_a_time", "queued")

    assert queued.cancel()
    release.set()
    first.result(timeout=WAIT)
    runtime.close(wait=True)

    assert ran == ["first"]
    with pytest.raises(CancelledError):
        queued.result()
    assert runtime.dead_letters() == []


def test_unregister_lets_accepted_invocations_finish(runtime: FunctionRuntime) -> None:
    release = threading.Event()

    def handler(event: Invoke, context: Context) -> Any:
        release.wait(WAIT)
        return event.payload

    runtime.register("retiring", handler, FunctionOptions(concurrency=1))
    futures = [runtime.invoke_async("retiring", i) for i in range(3)]
    runtime.unregister("retiring")
    release.set()

    assert [f.result(timeout=WAIT) for f in futures] == [0, 1, 2]
    with pytest.raises(NotFoundError, match=r"registered: none"):
        runtime.invoke("retiring")


def test_close_without_wait_dead_letters_the_events_still_waiting() -> None:
    runtime = FunctionRuntime(LocalFunctionRuntime(max_workers=2))
    release = threading.Event()

    def handler(event: Invoke, context: Context) -> Any:
        release.wait(WAIT)
        return event.payload

    runtime.register("busy", handler, FunctionOptions(concurrency=1))
    running = runtime.invoke_async("busy", "running")
    waiting = [runtime.invoke_async("busy", f"waiting-{i}") for i in range(3)]

    runtime.close(wait=False)

    for future in waiting:
        error = future.exception(timeout=WAIT)
        assert isinstance(error, FunctionError)
        assert "closed" in str(error)
    letters = runtime.dead_letters("busy")
    assert sorted(d.event["payload"] for d in letters) == ["waiting-0", "waiting-1", "waiting-2"]
    assert all(d.attempts == 0 for d in letters)
    release.set()
    assert running.result(timeout=WAIT) == "running"


def test_close_with_wait_finishes_pending_retries() -> None:
    runtime = FunctionRuntime(LocalFunctionRuntime(max_workers=2))

    def second_time_lucky(event: Invoke, context: Context) -> int:
        if context.attempt == 1:
            raise ConnectionError("try again")
        return context.attempt

    runtime.register("lucky", second_time_lucky, FunctionOptions(retries=1, backoff=0.2))
    future = runtime.invoke_async("lucky")
    runtime.close(wait=True)

    assert future.result(timeout=0) == 2


def test_a_closed_runtime_refuses_new_work_with_a_clear_error(runtime: FunctionRuntime) -> None:
    runtime.register("noop", lambda event, context: None)
    runtime.close()

    for attempt in (
        lambda: runtime.invoke("noop"),
        lambda: runtime.invoke_async("noop"),
        lambda: runtime.register("later", lambda event, context: None),
    ):
        with pytest.raises(ConfigurationError, match="closed"):
            attempt()
    assert "noop" in runtime.functions()


def test_close_wait_from_inside_a_handler_is_refused(runtime: FunctionRuntime) -> None:
    def closes(event: Invoke, context: Context) -> None:
        runtime.close(wait=True)

    runtime.register("closes", closes, FunctionOptions(retries=0))

    with pytest.raises(FunctionError) as info:
        runtime.invoke("closes")
    assert isinstance(info.value.__cause__, InvalidInputError)


# -- logs ---------------------------------------------------------------------------------------
def test_log_lines_carry_ids_and_error_types_but_never_payloads_or_messages(
    runtime: FunctionRuntime, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "hunter2-s3cr3t"

    def leaky(event: Invoke, context: Context) -> None:
        raise PermissionError(f"login failed with password {event.payload['password']}")

    runtime.register("leaky", leaky, FunctionOptions(retries=1, backoff=0.01))

    with caplog.at_level(logging.DEBUG, logger="lakekit"):
        future = runtime.invoke_async("leaky", {"password": secret})
        error = future.exception(timeout=WAIT)
        with pytest.raises(FunctionError):
            runtime.invoke("leaky", {"password": secret})

    assert isinstance(error, FunctionError)
    lines = [record.getMessage() for record in caplog.records]
    assert any("PermissionError" in line for line in lines)
    [letter] = runtime.dead_letters("leaky")
    assert any(letter.invocation_id in line for line in lines)
    assert all(secret not in line for line in lines)
    assert {record.name for record in caplog.records} == {"lakekit.functions.leaky"}
