"""FunctionRuntimeSuite: the behaviour every FunctionRuntime adapter must show.

Subclass it and override one fixture, ``runtime_factory``, returning a picklable zero-argument
factory of your adapter::

    import functools

    import pytest

    from lakekit.testing import FunctionRuntimeSuite


    class TestMyRuntime(FunctionRuntimeSuite):
        @pytest.fixture
        def runtime_factory(self):
            return functools.partial(MyRuntime, max_workers=8)

Every test registers functions under its own unique names (``<label>_<random>``), unregisters
them and closes the runtime afterwards. Handlers are plain Python closures that record what they
saw, so the suite runs the runtime in this process (a cloud adapter runs it against its local
emulation or in a harness that executes handlers in-process).

Tests are gated by the adapter's declared capabilities. Where one is missing the suite asserts
that the facade refuses the request with NotSupportedError instead of skipping:

* ASYNC_INVOKE: ``invoke_async``;  DEAD_LETTER: ``dead_letters``;
* RETRIES: registering with ``retries > 0``;  TIMEOUT: a non-default ``timeout``;
  CONCURRENCY_LIMIT: a non-default ``concurrency``.

Timing: tests use short handler sleeps, generous timeouts and never assert how fast anything
ran, so they pass on a loaded two-core machine. Raise ``time_scale`` for slow backends: every
timeout the suite sets, and every wait for a result, is multiplied by it.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, ClassVar

import pytest

from lakekit.capabilities import Capability
from lakekit.errors import (
    ConfigurationError,
    FunctionError,
    FunctionTimeoutError,
    InvalidInputError,
    NotFoundError,
    NotSupportedError,
)
from lakekit.events import Event, Invoke
from lakekit.interfaces.function_runtime import (
    Context,
    FunctionOptions,
    FunctionRuntime,
    FunctionRuntimeAdapter,
)

__all__ = ["FunctionRuntimeSuite"]

RuntimeFactory = Callable[[], FunctionRuntimeAdapter]


def _noop(event: Event, context: Context) -> None:
    return None


# What a user would try that needs each capability; the facade must refuse it when undeclared.
_REFUSALS: dict[Capability, Callable[[FunctionRuntime, str], Any]] = {
    Capability.ASYNC_INVOKE: lambda runtime, name: runtime.invoke_async(name, 1),
    Capability.DEAD_LETTER: lambda runtime, name: runtime.dead_letters(),
    Capability.RETRIES: lambda runtime, name: runtime.register(
        name, _noop, FunctionOptions(retries=2)
    ),
    Capability.TIMEOUT: lambda runtime, name: runtime.register(
        name, _noop, FunctionOptions(timeout=0.5, retries=0)
    ),
    Capability.CONCURRENCY_LIMIT: lambda runtime, name: runtime.register(
        name, _noop, FunctionOptions(concurrency=2, retries=0)
    ),
}


@dataclass(frozen=True, kw_only=True)
class SuiteEvent(Event):
    """A custom event type: runtimes must deliver any :class:`Event` unchanged."""

    table: str
    rows: int


class _Recorder:
    """Thread-safe record of what handlers saw, plus a gauge of simultaneous executions."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls: list[dict[str, Any]] = []
        self.active = 0
        self.max_active = 0

    def record(self, event: Event, context: Context, **extra: Any) -> None:
        with self.lock:
            self.calls.append(
                {
                    "attempt": context.attempt,
                    "event_id": event.id,
                    "invocation_id": context.invocation_id,
                    "started": time.monotonic(),
                    **extra,
                }
            )

    def enter(self) -> None:
        with self.lock:
            self.active += 1
            self.max_active = max(self.max_active, self.active)

    def leave(self) -> None:
        with self.lock:
            self.active -= 1

    def attempts(self) -> list[int]:
        with self.lock:
            return [call["attempt"] for call in self.calls]


class FunctionRuntimeSuite:
    """Conformance tests for :class:`~lakekit.interfaces.function_runtime.FunctionRuntimeAdapter`.

    Override :meth:`runtime_factory`. Optionally raise :attr:`time_scale`.
    """

    time_scale: ClassVar[float] = 1.0
    """Multiplier for every timeout and result wait the suite picks (slow or remote runtimes)."""

    # -- fixtures -------------------------------------------------------------------------------
    @pytest.fixture
    def runtime_factory(self) -> RuntimeFactory:
        """Override: return a picklable zero-argument callable building a fresh adapter."""
        raise NotImplementedError(
            f"{type(self).__name__} must override the 'runtime_factory' fixture to return a "
            "picklable zero-argument factory of the adapter, e.g. "
            "functools.partial(MyRuntime, max_workers=8)"
        )

    @pytest.fixture
    def runtime(self, runtime_factory: RuntimeFactory) -> Iterator[FunctionRuntime]:
        adapter = runtime_factory()
        assert isinstance(adapter, FunctionRuntimeAdapter), (
            f"runtime_factory built {type(adapter).__name__}, not a FunctionRuntimeAdapter"
        )
        runtime = FunctionRuntime(adapter)
        try:
            yield runtime
        finally:
            runtime.close(wait=True)

    @pytest.fixture
    def new_name(self, runtime: FunctionRuntime) -> Iterator[Callable[[str], str]]:
        """A factory of unique function names; the functions are unregistered afterwards."""
        made: list[str] = []

        def make(label: str = "fn") -> str:
            name = f"{label}_{uuid.uuid4().hex[:10]}"
            made.append(name)
            return name

        yield make
        registered = runtime.functions()
        for name in made:
            if name in registered:
                runtime.unregister(name)

    # -- helpers --------------------------------------------------------------------------------
    def seconds(self, value: float) -> float:
        """``value`` seconds scaled by :attr:`time_scale`."""
        return value * self.time_scale

    def options(self, runtime: FunctionRuntime, **values: Any) -> FunctionOptions:
        """FunctionOptions the adapter accepts: a small backoff where it retries (no retries
        where it cannot), timeouts scaled by :attr:`time_scale` where it enforces them, and
        no timeout or concurrency request where it lacks those capabilities."""
        caps = runtime.capabilities
        if Capability.RETRIES in caps:
            values.setdefault("backoff", self.seconds(0.02))
            values.setdefault("max_backoff", self.seconds(0.1))
        else:
            values["retries"] = 0
        if Capability.TIMEOUT not in caps:
            values.pop("timeout", None)
        elif "timeout" in values:
            values["timeout"] = self.seconds(values["timeout"])
        if Capability.CONCURRENCY_LIMIT not in caps:
            values.pop("concurrency", None)
        return FunctionOptions(**values)

    @staticmethod
    def has(runtime: FunctionRuntime, *capabilities: Capability) -> bool:
        return all(c in runtime.capabilities for c in capabilities)

    def supports(
        self,
        runtime: FunctionRuntime,
        new_name: Callable[[str], str],
        *capabilities: Capability,
    ) -> bool:
        """True if the adapter declares every capability; otherwise assert that the facade
        refuses each missing one with NotSupportedError (the caller then returns)."""
        missing = [c for c in capabilities if c not in runtime.capabilities]
        for capability in missing:
            probe = new_name("probe")
            with pytest.raises(NotSupportedError, match=capability.value):
                _REFUSALS[capability](runtime, probe)
        return not missing

    # -- synchronous invocation -----------------------------------------------------------------
    def test_invoke_returns_the_handler_result(
        self, runtime: FunctionRuntime, new_name: Callable[[str], str]
    ) -> None:
        name = new_name("echo")
        runtime.register(name, lambda event, context: {"got": event.payload, "n": 2})

        assert runtime.invoke(name, {"order": 42, "items": [1, 2]}) == {
            "got": {"order": 42, "items": [1, 2]},
            "n": 2,
        }
        assert runtime.invoke(name) == {"got": None, "n": 2}

    def test_any_event_type_reaches_the_handler_unchanged(
        self, runtime: FunctionRuntime, new_name: Callable[[str], str]
    ) -> None:
        name = new_name("custom")
        seen: list[Event] = []

        def handler(event: Event, context: Context) -> str:
            seen.append(event)
            return type(event).__name__

        runtime.register(name, handler)
        event = SuiteEvent(table="sales.orders", rows=3)
        invoke = Invoke(payload=[1, 2, 3])

        assert runtime.invoke(name, event) == "SuiteEvent"
        assert runtime.invoke(name, invoke) == "Invoke"
        assert seen == [event, invoke]
        assert seen[0].id == event.id

    def test_async_def_handlers_are_awaited(
        self, runtime: FunctionRuntime, new_name: Callable[[str], str]
    ) -> None:
        name = new_name("coro")

        async def handler(event: Invoke, context: Context) -> int:
            await asyncio.sleep(0.01)
            return int(event.payload) * 2

        runtime.register(name, handler)

        assert runtime.invoke(name, 21) == 42

    def test_handler_exception_raises_function_error_chaining_the_cause(
        self, runtime: FunctionRuntime, new_name: Callable[[str], str]
    ) -> None:
        name = new_name("broken")

        def handler(event: Invoke, context: Context) -> None:
            raise KeyError("customer_id")

        runtime.register(name, handler, self.options(runtime, retries=0))

        with pytest.raises(FunctionError, match=name) as info:
            runtime.invoke(name, {"a": 1})
        assert not isinstance(info.value, FunctionTimeoutError)
        assert isinstance(info.value.__cause__, KeyError)
        assert "customer_id" in str(info.value.__cause__)

    # -- retries --------------------------------------------------------------------------------
    def test_failed_attempts_are_retried_with_the_same_event_id(
        self, runtime: FunctionRuntime, new_name: Callable[[str], str]
    ) -> None:
        name = new_name("flaky")
        recorder = _Recorder()

        def handler(event: Invoke, context: Context) -> None:
            recorder.record(event, context)
            time.sleep(0.01)
            with recorder.lock:
                recorder.calls[-1]["ended"] = time.monotonic()
            raise RuntimeError(f"attempt {context.attempt} failed")

        if not self.supports(runtime, new_name, Capability.RETRIES):
            return
        runtime.register(name, handler, self.options(runtime, retries=2))
        event = Invoke(payload="x")

        with pytest.raises(FunctionError) as info:
            runtime.invoke(name, event)

        assert recorder.attempts() == [1, 2, 3]
        assert {call["event_id"] for call in recorder.calls} == {event.id}
        assert len({call["invocation_id"] for call in recorder.calls}) == 1
        assert "attempt 3 failed" in str(info.value.__cause__)
        # Each retry starts after the previous attempt ended (backoff, never overlapping).
        for earlier, later in zip(recorder.calls, recorder.calls[1:], strict=False):
            assert later["started"] >= earlier["ended"]

    def test_success_after_transient_failures_returns_the_result(
        self, runtime: FunctionRuntime, new_name: Callable[[str], str]
    ) -> None:
        if not self.supports(runtime, new_name, Capability.RETRIES):
            return
        name = new_name("transient")
        recorder = _Recorder()

        def handler(event: Invoke, context: Context) -> dict[str, Any]:
            recorder.record(event, context)
            if context.attempt < 3:
                raise ConnectionError("backend unavailable")
            return {"attempt": context.attempt, "id": event.id}

        runtime.register(name, handler, self.options(runtime, retries=3))
        event = Invoke(payload=1)

        assert runtime.invoke(name, event) == {"attempt": 3, "id": event.id}
        assert recorder.attempts() == [1, 2, 3]

    def test_invalid_input_error_is_not_retried(
        self, runtime: FunctionRuntime, new_name: Callable[[str], str]
    ) -> None:
        name = new_name("bad_input")
        recorder = _Recorder()

        def handler(event: Invoke, context: Context) -> None:
            recorder.record(event, context)
            raise InvalidInputError("payload has no 'order' field")

        runtime.register(name, handler, self.options(runtime, retries=3))

        with pytest.raises(FunctionError) as info:
            runtime.invoke(name, {"x": 1})

        assert recorder.attempts() == [1]
        assert isinstance(info.value.__cause__, InvalidInputError)

    # -- timeouts -------------------------------------------------------------------------------
    def test_sync_handler_past_its_timeout_raises_function_timeout_error(
        self, runtime: FunctionRuntime, new_name: Callable[[str], str]
    ) -> None:
        name = new_name("slow")

        def handler(event: Invoke, context: Context) -> str:
            # Cooperative: returns as soon as the runtime gives up on the attempt.
            context.cancel_event.wait(self.seconds(10))
            return "too late"

        if not self.supports(runtime, new_name, Capability.TIMEOUT):
            return
        runtime.register(name, handler, self.options(runtime, timeout=0.5, retries=0))

        with pytest.raises(FunctionTimeoutError, match=name):
            runtime.invoke(name)

    def test_async_def_handler_past_its_timeout_raises_function_timeout_error(
        self, runtime: FunctionRuntime, new_name: Callable[[str], str]
    ) -> None:
        if not self.supports(runtime, new_name, Capability.TIMEOUT):
            return
        name = new_name("slow_coro")

        async def handler(event: Invoke, context: Context) -> str:
            await asyncio.sleep(self.seconds(10))
            return "too late"

        runtime.register(name, handler, self.options(runtime, timeout=0.5, retries=0))

        with pytest.raises(FunctionTimeoutError):
            runtime.invoke(name)

    def test_timed_out_attempts_are_retried(
        self, runtime: FunctionRuntime, new_name: Callable[[str], str]
    ) -> None:
        if not self.supports(runtime, new_name, Capability.TIMEOUT, Capability.RETRIES):
            return
        name = new_name("slow_then_fast")
        recorder = _Recorder()

        def handler(event: Invoke, context: Context) -> int:
            recorder.record(event, context)
            if context.attempt == 1:
                context.cancel_event.wait(self.seconds(10))
                return -1
            return context.attempt

        runtime.register(name, handler, self.options(runtime, timeout=0.5, retries=1))

        assert runtime.invoke(name) == 2
        assert recorder.attempts() == [1, 2]

    # -- asynchronous invocation ----------------------------------------------------------------
    def test_invoke_async_returns_a_future_resolving_to_the_result(
        self, runtime: FunctionRuntime, new_name: Callable[[str], str]
    ) -> None:
        name = new_name("later")
        release = threading.Event()

        def handler(event: Invoke, context: Context) -> int:
            release.wait(self.seconds(10))
            return int(event.payload) + 1

        runtime.register(name, handler)
        if not self.supports(runtime, new_name, Capability.ASYNC_INVOKE):
            return

        futures = [runtime.invoke_async(name, i) for i in range(3)]
        assert all(isinstance(f, Future) for f in futures)
        assert not any(f.done() for f in futures)  # returned before the handler could finish
        release.set()

        assert [f.result(timeout=self.seconds(30)) for f in futures] == [1, 2, 3]

    def test_invoke_async_future_resolves_to_the_function_error(
        self, runtime: FunctionRuntime, new_name: Callable[[str], str]
    ) -> None:
        if not self.supports(runtime, new_name, Capability.ASYNC_INVOKE):
            return
        name = new_name("fails_later")

        def handler(event: Invoke, context: Context) -> None:
            raise ValueError("bad row 7")

        runtime.register(name, handler, self.options(runtime, retries=1))
        future = runtime.invoke_async(name, {"row": 7})

        error = future.exception(timeout=self.seconds(30))
        assert isinstance(error, FunctionError)
        assert isinstance(error.__cause__, ValueError)

    # -- dead letters ---------------------------------------------------------------------------
    def test_exhausted_async_event_is_dead_lettered_with_its_error(
        self, runtime: FunctionRuntime, new_name: Callable[[str], str]
    ) -> None:
        if not self.supports(runtime, new_name, Capability.DEAD_LETTER, Capability.ASYNC_INVOKE):
            return
        name = new_name("doomed")
        recorder = _Recorder()

        def handler(event: Invoke, context: Context) -> None:
            recorder.record(event, context)
            raise ValueError(f"cannot parse order {event.payload['order']}")

        runtime.register(name, handler, self.options(runtime, retries=2))
        event = Invoke(payload={"order": 17, "note": "päckchen"})

        error = runtime.invoke_async(name, event).exception(timeout=self.seconds(30))

        assert isinstance(error, FunctionError)
        attempts = 3 if self.has(runtime, Capability.RETRIES) else 1
        assert recorder.attempts() == list(range(1, attempts + 1))
        letters = runtime.dead_letters(name)
        assert len(letters) == 1
        letter = letters[0]
        assert letter.function_name == name
        assert letter.error_type == "ValueError"
        assert "cannot parse order 17" in letter.error
        assert letter.attempts == attempts
        assert letter.event_id == event.id
        assert letter.event["payload"] == {"order": 17, "note": "päckchen"}
        assert letter.invocation_id == recorder.calls[0]["invocation_id"]
        assert letter.failed_at.tzinfo is not None
        assert letter in runtime.dead_letters()  # also listed among all functions' letters

    def test_timed_out_async_event_is_dead_lettered_as_a_timeout(
        self, runtime: FunctionRuntime, new_name: Callable[[str], str]
    ) -> None:
        needs = (Capability.DEAD_LETTER, Capability.ASYNC_INVOKE, Capability.TIMEOUT)
        if not self.supports(runtime, new_name, *needs):
            return
        name = new_name("hangs")

        async def handler(event: Invoke, context: Context) -> None:
            await asyncio.sleep(self.seconds(10))

        runtime.register(name, handler, self.options(runtime, timeout=0.5, retries=0))

        error = runtime.invoke_async(name, "x").exception(timeout=self.seconds(30))

        assert isinstance(error, FunctionTimeoutError)
        [letter] = runtime.dead_letters(name)
        assert letter.error_type == "FunctionTimeoutError"
        assert letter.attempts == 1

    def test_non_retryable_async_event_is_dead_lettered_after_one_attempt(
        self, runtime: FunctionRuntime, new_name: Callable[[str], str]
    ) -> None:
        if not self.supports(runtime, new_name, Capability.DEAD_LETTER, Capability.ASYNC_INVOKE):
            return
        name = new_name("rejects")

        def handler(event: Invoke, context: Context) -> None:
            raise InvalidInputError("missing field 'ts'")

        runtime.register(name, handler, self.options(runtime, retries=3))

        error = runtime.invoke_async(name, {}).exception(timeout=self.seconds(30))

        assert isinstance(error, FunctionError)
        [letter] = runtime.dead_letters(name)
        assert letter.attempts == 1
        assert letter.error_type == "InvalidInputError"

    def test_sync_failures_are_raised_not_dead_lettered(
        self, runtime: FunctionRuntime, new_name: Callable[[str], str]
    ) -> None:
        if not self.supports(runtime, new_name, Capability.DEAD_LETTER):
            return
        name = new_name("sync_fail")

        def handler(event: Invoke, context: Context) -> None:
            raise ValueError("nope")

        runtime.register(name, handler, self.options(runtime, retries=1))

        with pytest.raises(FunctionError):
            runtime.invoke(name, 1)
        assert runtime.dead_letters(name) == []

    def test_dead_letters_are_listed_oldest_first_per_function(
        self, runtime: FunctionRuntime, new_name: Callable[[str], str]
    ) -> None:
        if not self.supports(runtime, new_name, Capability.DEAD_LETTER, Capability.ASYNC_INVOKE):
            return
        first, second = new_name("dl_a"), new_name("dl_b")

        def handler(event: Invoke, context: Context) -> None:
            raise ValueError(str(event.payload))

        options = self.options(runtime, retries=0)
        runtime.register(first, handler, options)
        runtime.register(second, handler, options)
        for i in range(3):  # one at a time, so the failure order is known
            runtime.invoke_async(first, f"a{i}").exception(timeout=self.seconds(30))
            runtime.invoke_async(second, f"b{i}").exception(timeout=self.seconds(30))

        assert [d.error for d in runtime.dead_letters(first)] == ["a0", "a1", "a2"]
        assert [d.error for d in runtime.dead_letters(second)] == ["b0", "b1", "b2"]
        ours = [d.error for d in runtime.dead_letters() if d.function_name in (first, second)]
        assert ours == ["a0", "b0", "a1", "b1", "a2", "b2"]
        failed_at = [d.failed_at for d in runtime.dead_letters()]
        assert failed_at == sorted(failed_at)

    # -- concurrency ----------------------------------------------------------------------------
    def test_concurrency_limit_is_never_exceeded_under_load(
        self, runtime: FunctionRuntime, new_name: Callable[[str], str]
    ) -> None:
        name = new_name("bounded")
        recorder = _Recorder()
        limit = 2

        def handler(event: Invoke, context: Context) -> int:
            recorder.enter()
            try:
                time.sleep(0.02)
                return int(event.payload)
            finally:
                recorder.leave()

        if not self.supports(runtime, new_name, Capability.CONCURRENCY_LIMIT):
            return
        runtime.register(name, handler, self.options(runtime, concurrency=limit, timeout=30))

        futures: list[Future[Any]] = []
        if self.has(runtime, Capability.ASYNC_INVOKE):
            futures = [runtime.invoke_async(name, i) for i in range(12)]
        sync_results: list[int] = []
        errors: list[BaseException] = []

        def caller(base: int) -> None:
            try:
                for i in range(3):
                    sync_results.append(runtime.invoke(name, base + i))
            except BaseException as exc:  # reported below
                errors.append(exc)

        callers = [threading.Thread(target=caller, args=(100 * k,)) for k in range(1, 4)]
        for thread in callers:
            thread.start()
        for thread in callers:
            thread.join(self.seconds(60))

        assert not errors
        assert sorted(sync_results) == sorted(100 * k + i for k in range(1, 4) for i in range(3))
        assert [f.result(timeout=self.seconds(60)) for f in futures] == list(range(len(futures)))
        assert 1 <= recorder.max_active <= limit

    # -- registry, decorator, context -----------------------------------------------------------
    def test_unknown_function_raises_not_found_naming_it(
        self, runtime: FunctionRuntime, new_name: Callable[[str], str]
    ) -> None:
        known = new_name("known")
        missing = new_name("missing")
        runtime.register(known, lambda event, context: None)

        with pytest.raises(NotFoundError, match=missing) as info:
            runtime.invoke(missing, 1)
        assert known in str(info.value)
        with pytest.raises(FileNotFoundError):  # the builtin twin works too
            runtime.unregister(missing)
        if self.has(runtime, Capability.ASYNC_INVOKE):
            with pytest.raises(NotFoundError, match=missing):
                runtime.invoke_async(missing, 1)

    def test_handler_decorator_registers_the_function(
        self, runtime: FunctionRuntime, new_name: Callable[[str], str]
    ) -> None:
        explicit = new_name("explicit")
        limited = self.has(runtime, Capability.CONCURRENCY_LIMIT)

        @runtime.handler(explicit, concurrency=1 if limited else None)
        def named(event: Invoke, context: Context) -> str:
            return f"named:{event.payload}"

        def bare(event: Invoke, context: Context) -> str:
            return f"bare:{event.payload}"

        bare.__name__ = new_name("bare")  # the bare decorator registers under __name__
        decorated = runtime.handler(bare)

        assert decorated is bare
        assert named(Invoke(payload=0), None) == "named:0"  # type: ignore[arg-type]
        assert runtime.invoke(explicit, 1) == "named:1"
        assert runtime.invoke(bare.__name__, 2) == "bare:2"
        functions = runtime.functions()
        assert {explicit, bare.__name__} <= set(functions)
        if limited:
            assert functions[explicit].concurrency == 1

    def test_register_replaces_and_unregister_removes(
        self, runtime: FunctionRuntime, new_name: Callable[[str], str]
    ) -> None:
        name = new_name("versioned")
        runtime.register(name, lambda event, context: "v1")
        assert runtime.invoke(name) == "v1"
        runtime.register(name, lambda event, context: "v2")
        assert runtime.invoke(name) == "v2"

        runtime.unregister(name)

        assert name not in runtime.functions()
        with pytest.raises(NotFoundError):
            runtime.invoke(name)

    def test_invalid_registrations_are_rejected(
        self, runtime: FunctionRuntime, new_name: Callable[[str], str]
    ) -> None:
        with pytest.raises(InvalidInputError, match="function name"):
            runtime.register("Not-A-Name", lambda event, context: None)
        with pytest.raises(InvalidInputError, match="not callable"):
            runtime.register(new_name("x"), "print")  # type: ignore[arg-type]
        with pytest.raises(InvalidInputError):
            FunctionOptions(timeout=0)
        with pytest.raises(InvalidInputError):
            FunctionOptions(concurrency=0)

    def test_context_describes_the_attempt(
        self, runtime: FunctionRuntime, new_name: Callable[[str], str]
    ) -> None:
        name = new_name("ctx")

        def handler(event: Invoke, context: Context) -> dict[str, Any]:
            first = context.remaining_time()
            time.sleep(0.05)
            second = context.remaining_time()
            context.logger.info("handling event %s", event.id)
            return {
                "function_name": context.function_name,
                "invocation_id": context.invocation_id,
                "attempt": context.attempt,
                "remaining": (first, second),
                "deadline_ahead": context.deadline > time.monotonic(),
                "logger": context.logger.name,
                "cancelled": context.cancelled,
                "has_lake": hasattr(context, "lake"),
            }

        if self.has(runtime, Capability.TIMEOUT):
            options = self.options(runtime, timeout=30.0)
        else:
            options = self.options(runtime)
        runtime.register(name, handler, options)
        limit = options.timeout

        one, two = runtime.invoke(name, 1), runtime.invoke(name, 2)

        assert one["function_name"] == name
        assert one["attempt"] == 1
        assert one["invocation_id"]
        assert one["invocation_id"] != two["invocation_id"]
        first, second = one["remaining"]
        assert limit >= first > second > 0
        assert one["deadline_ahead"]
        assert one["logger"] == f"lakekit.functions.{name}"
        assert one["cancelled"] is False
        assert one["has_lake"]

    # -- lifecycle ------------------------------------------------------------------------------
    def test_close_waits_for_accepted_invocations_then_refuses_new_ones(
        self, runtime_factory: RuntimeFactory
    ) -> None:
        runtime = FunctionRuntime(runtime_factory())
        name = f"drain_{uuid.uuid4().hex[:10]}"

        def handler(event: Invoke, context: Context) -> Any:
            time.sleep(0.02)
            return event.payload

        try:
            runtime.register(name, handler)
            futures: list[Future[Any]] = []
            if self.has(runtime, Capability.ASYNC_INVOKE):
                futures = [runtime.invoke_async(name, i) for i in range(5)]
        finally:
            runtime.close(wait=True)

        assert all(f.done() for f in futures)  # close(wait=True) returned after all of them
        assert [f.result() for f in futures] == list(range(len(futures)))
        with pytest.raises(ConfigurationError, match="closed"):
            runtime.invoke(name, 1)
        runtime.close()  # idempotent
