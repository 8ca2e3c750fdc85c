"""Idempotency keys: a handler's body runs once per key across redeliveries, retries, racing
invocations, threads and processes, backed by conditional writes in the lake's store."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from lakekit.errors import ConfigurationError, ConflictError, FunctionError, InvalidInputError
from lakekit.events import Invoke
from lakekit.interfaces.function_runtime import Context, FunctionOptions
from lakekit.lake import Lake
from lakekit.triggers import idempotent, once, purge_markers
from lakekit.triggers.idempotency import marker_key


def _context(lake: Lake | None, name: str = "job", budget: float = 30.0) -> Context:
    return Context(
        function_name=name,
        invocation_id="inv",
        attempt=1,
        deadline=time.monotonic() + budget,
        logger=logging.getLogger("test"),
        lake=lake,
    )


def test_a_redelivered_event_runs_the_body_once(lake: Lake) -> None:
    runs: list[str] = []

    @lake.functions.handler(retries=0)
    def charge(event: Invoke, context: Context) -> str:
        with once(context, event.id) as first:
            if first:
                runs.append(event.id)
        return "ok"

    event = Invoke(payload={"order": 1})
    assert lake.functions.invoke("charge", event) == "ok"
    assert lake.functions.invoke("charge", event) == "ok"  # the same event, redelivered
    assert lake.functions.invoke_async("charge", event).result(timeout=10) == "ok"
    assert runs == [event.id]
    lake.functions.invoke("charge", Invoke(payload={"order": 2}))
    assert len(runs) == 2


def test_a_failed_body_releases_the_key_so_the_retry_runs_it(lake: Lake) -> None:
    runs: list[int] = []

    @lake.functions.handler(retries=2, backoff=0.01)
    def flaky(event: Invoke, context: Context) -> None:
        with once(context, event.id) as first:
            if first:
                runs.append(context.attempt)
                if context.attempt == 1:
                    raise RuntimeError("transient")

    lake.functions.invoke("flaky", Invoke(payload=None))
    assert runs == [1, 2]


def test_two_racing_invocations_run_the_body_once(lake: Lake) -> None:
    runs: list[int] = []
    inside = threading.Event()
    results: list[bool] = []

    def body(n: int) -> None:
        with once(_context(lake), "key-1") as first:
            results.append(first)
            if first:
                runs.append(n)
                inside.set()
                time.sleep(0.2)  # the other caller arrives while this one works

    threads = [threading.Thread(target=body, args=(n,)) for n in range(2)]
    threads[0].start()
    assert inside.wait(10)
    threads[1].start()
    for thread in threads:
        thread.join(10)
    assert len(runs) == 1
    assert sorted(results) == [False, True], "the second waited, then saw the work done"


def test_scopes_separate_functions_and_keys(lake: Lake) -> None:
    with once(_context(lake, "a"), "k") as first:
        assert first
    with once(_context(lake, "b"), "k") as first:
        assert first, "another function's marker does not count"
    with once(_context(lake, "b"), "k", scope="a") as first:
        assert not first
    assert lake.store.exists(marker_key("a", "k"))


def test_a_waiter_gives_up_at_its_deadline_with_a_conflict(lake: Lake) -> None:
    holder = once(_context(lake), "busy")
    assert holder.__enter__() is True
    try:
        started = time.monotonic()
        with (
            pytest.raises(ConflictError, match="being worked on"),
            once(_context(lake, budget=0.3), "busy"),
        ):
            pass
        assert time.monotonic() - started < 3
    finally:
        holder.__exit__(None, None, None)


def test_an_expired_lease_is_taken_over(lake: Lake, caplog: pytest.LogCaptureFixture) -> None:
    stale = once(_context(lake), "k", lease=0.05)
    assert stale.__enter__() is True  # a holder that "died" without finishing
    time.sleep(0.1)
    with once(_context(lake), "k") as first:
        assert first, "the lease expired: the work is done again"
    with caplog.at_level("WARNING"):
        stale.__exit__(None, None, None)  # the old holder finishes late
    assert "taken over" in caplog.text
    with once(_context(lake), "k") as first:
        assert not first


def test_the_idempotent_decorator_wraps_sync_and_async_handlers(lake: Lake) -> None:
    calls: list[str] = []

    @lake.functions.handler(retries=0)
    @idempotent
    def sync(event: Invoke, context: Context) -> str:
        calls.append("sync")
        return "done"

    @lake.functions.handler(retries=0)
    @idempotent(key=lambda event: str(event.payload["order"]))
    async def by_order(event: Invoke, context: Context) -> str:
        calls.append("async")
        return "done"

    event = Invoke(payload={"order": 5})
    assert lake.functions.invoke("sync", event) == "done"
    assert lake.functions.invoke("sync", event) is None, "a repeat returns None"
    assert lake.functions.invoke("by_order", Invoke(payload={"order": 5})) == "done"
    assert lake.functions.invoke("by_order", Invoke(payload={"order": 5})) is None
    assert calls == ["sync", "async"]


def test_bad_keys_and_missing_stores_are_refused(lake: Lake) -> None:
    with pytest.raises(InvalidInputError), once(_context(lake), ""):
        pass
    with pytest.raises(ConfigurationError, match="no lake"), once(_context(None), "k"):
        pass
    with pytest.raises(InvalidInputError), once(_context(lake), "k", scope="Bad Scope"):
        pass


def test_purge_markers_removes_old_finished_markers_only(lake: Lake) -> None:
    with once(_context(lake), "done-key") as first:
        assert first
    holder = once(_context(lake), "running-key")
    holder.__enter__()
    try:
        assert purge_markers(lake.store, timedelta(hours=1)) == 0, "too recent"
        assert purge_markers(lake.store, timedelta(0)) == 1
        assert not lake.store.exists(marker_key("job", "done-key"))
        assert lake.store.exists(marker_key("job", "running-key"))
    finally:
        holder.__exit__(None, None, None)


def test_the_marker_is_plain_json_in_the_lake(lake: Lake) -> None:
    with once(_context(lake), "visible"):
        pass
    marker = json.loads(lake.store.get(marker_key("job", "visible")))
    assert marker["state"] == "done"
    assert marker["key"] == "visible"


_RACER = textwrap.dedent(
    """
    import logging, sys, time
    import lakekit
    from lakekit.interfaces.function_runtime import Context
    from lakekit.triggers import once

    root, key, log, start_at = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
    with lakekit.connect(root) as lake:
        context = Context("job", "inv", 1, time.monotonic() + 30, logging.getLogger("x"), lake)
        while time.time() < start_at:
            time.sleep(0.001)
        with once(context, key) as first:
            if first:
                with open(log, "a") as fh:
                    fh.write("ran\\n")
                time.sleep(0.2)
        print("first" if first else "skipped")
    """
)


def test_two_processes_racing_on_one_key_run_the_body_once(lake: Lake, tmp_path: Path) -> None:
    script = tmp_path / "racer.py"
    script.write_text(_RACER)
    log = tmp_path / "runs.txt"
    root = f"local://{lake.store.uri()}"
    start_at = str(time.time() + 1.5)  # both processes are past their imports by then
    children = [
        subprocess.Popen(
            [sys.executable, str(script), root, "order-42", str(log), start_at],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = sorted(child.communicate(timeout=60)[0].strip() for child in children)
    assert [child.returncode for child in children] == [0, 0]
    assert outputs == ["first", "skipped"]
    assert log.read_text() == "ran\n"
    # ... and a redelivery in this process, later, is skipped too.
    with once(_context(lake), "order-42") as first:
        assert not first


def test_an_invocation_failing_on_a_conflict_is_retried_and_then_skips(lake: Lake) -> None:
    holder = once(_context(lake, "job"), "evt")
    holder.__enter__()
    attempts: list[int] = []
    runs: list[int] = []

    def job(event: Any, context: Context) -> None:
        attempts.append(context.attempt)
        with once(context, "evt") as first:
            if first:
                runs.append(context.attempt)

    lake.functions.register("job", job, FunctionOptions(timeout=0.3, retries=5, backoff=0.1))
    future = lake.functions.invoke_async("job", Invoke(payload=None))
    time.sleep(0.5)  # longer than the first attempt's timeout: it gives up with a conflict
    holder.__exit__(None, None, None)  # the other invocation finishes its work
    try:
        future.result(timeout=10)
    except FunctionError:
        pytest.fail("the retry should have seen the finished marker")
    assert attempts[0] == 1 and len(attempts) >= 2, "the conflict failed the first attempt"
    assert runs == [], "the work was done by the holder, never again"
