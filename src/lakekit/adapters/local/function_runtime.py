"""The local, in-process function runtime (``functions = "local"``).

Handlers run on threads of this process; ``async def`` handlers run on a fresh event loop per
attempt. What it guarantees:

* **Bounded concurrency**: at most ``FunctionOptions.concurrency`` attempts of one function and at
  most ``max_workers`` attempts in total run at once; the rest wait in arrival order. A sync
  handler that timed out keeps its slot until its thread really returns (Python cannot kill a
  thread), so the bounds hold even then.
* **Timeouts**: past ``FunctionOptions.timeout`` an attempt fails with FunctionTimeoutError at
  once, ``context.cancelled`` turns true, and a coroutine handler is cancelled; a sync handler's
  thread runs on until it returns and its late result is discarded.
* **Retries**: a failed attempt (timeouts included) is retried up to ``retries`` times, after a
  full-jitter exponential backoff (:func:`retry_delay`), for sync and async invocations alike.
  ``event.id`` is the same on every attempt. A handler raising InvalidInputError is not retried.
* **Dead letters** (async invocations only): an event that fails for good is written as one JSON
  object ``<dead_letter_prefix>/<function>/<UTC timestamp>-<invocation id>.json`` to the lake's
  object store *before* its future resolves, so it survives a restart and can be read from any
  process. Without a store (a runtime built directly, without ``store=``/``lake=``) dead letters
  live in memory and die with the process.
* **Trigger deliveries** (used by :mod:`lakekit.triggers`): :meth:`~LocalFunctionRuntime.
  invoke_batch_async` retries only the records a stream handler reports as failed
  (partial batch failure); :meth:`~LocalFunctionRuntime.invoke_request` runs a request/response
  delivery (HTTP) once, without retries; dead-letter listeners see every dead letter as it is
  written.
* **Drain on close**: ``close(wait=True)`` lets every accepted invocation finish, retries
  included; ``close(wait=False)`` runs no further attempts and dead-letters the async events that
  were still waiting, so an accepted event is never silently dropped.
"""

from __future__ import annotations

import asyncio
import heapq
import inspect
import itertools
import json
import logging
import os
import random
import threading
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from concurrent.futures import Future, InvalidStateError
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar, Self

from pydantic import Field, field_validator

from lakekit._keys import validate_prefix
from lakekit.capabilities import Capability
from lakekit.config import AdapterSettings
from lakekit.errors import (
    ConfigurationError,
    FunctionError,
    FunctionTimeoutError,
    InvalidInputError,
    LakekitError,
    NotFoundError,
    TransientError,
)
from lakekit.events import BatchResult, Event, StreamRecords
from lakekit.identifiers import validate_name
from lakekit.interfaces.function_runtime import (
    Context,
    DeadLetter,
    FunctionOptions,
    FunctionRuntimeAdapter,
    Handler,
    PartialBatchError,
    event_to_dict,
    is_retryable,
    narrow_batch,
)

if TYPE_CHECKING:
    from lakekit.interfaces.object_store import ObjectStore, ObjectStoreAdapter
    from lakekit.lake import Lake

__all__ = [
    "DEFAULT_DEAD_LETTER_PREFIX",
    "LocalFunctionRuntime",
    "LocalFunctionRuntimeSettings",
    "retry_delay",
]

DEFAULT_DEAD_LETTER_PREFIX = "_lakekit/functions/dead-letter"
_STORE_WRITE_ATTEMPTS = 3
_CANCEL_POLL_SECONDS = 0.05
_log = logging.getLogger("lakekit.functions")


def _default_max_workers() -> int:
    # The same default as concurrent.futures.ThreadPoolExecutor: handlers are mostly I/O bound.
    return min(32, (os.cpu_count() or 1) + 4)


class LocalFunctionRuntimeSettings(AdapterSettings):
    """Settings of the local function runtime (component ``functions``)."""

    component: ClassVar[str] = "functions"

    url: str = Field(
        default="local",
        description="Selects this adapter: 'local'. Env: LAKEKIT_FUNCTIONS (or _URL).",
    )
    max_workers: int = Field(
        default_factory=_default_max_workers,
        ge=1,
        description=(
            "Most handler attempts running at once across all functions (each on its own "
            "thread); default min(32, CPUs + 4). Env: LAKEKIT_FUNCTIONS_MAX_WORKERS."
        ),
    )
    dead_letter_prefix: str = Field(
        default=DEFAULT_DEAD_LETTER_PREFIX,
        description=(
            "Object-store prefix under which failed async events are written, one JSON object "
            "each. Env: LAKEKIT_FUNCTIONS_DEAD_LETTER_PREFIX."
        ),
    )

    @field_validator("dead_letter_prefix")
    @classmethod
    def _check_prefix(cls, value: str) -> str:
        return _normalize_prefix(value)


def _normalize_prefix(prefix: str) -> str:
    validate_prefix(prefix)
    prefix = prefix.strip("/")
    if not prefix:
        raise InvalidInputError("dead_letter_prefix must not be empty, e.g. '_lakekit/dead-letter'")
    validate_prefix(prefix)
    return prefix


def retry_delay(options: FunctionOptions, failed_attempt: int, rng: random.Random) -> float:
    """Seconds to wait before retrying after attempt number ``failed_attempt`` (1-based) failed.

    Exponential backoff with full jitter: a uniform draw from ``[0, cap]`` where
    ``cap = min(max_backoff, backoff * 2 ** (failed_attempt - 1))``. Full jitter spreads the
    retries of many failing events so they do not hit a recovering backend in lockstep.
    """
    exponent = min(max(failed_attempt - 1, 0), 64)  # 2**64 * backoff already exceeds any cap
    cap = min(options.max_backoff, options.backoff * float(2**exponent))
    return rng.uniform(0.0, cap) if cap > 0 else 0.0


# -- timers -------------------------------------------------------------------------------------
def _nothing() -> None:
    return None


class _TimerHandle:
    __slots__ = ("callback", "done", "when")

    def __init__(self, when: float, callback: Callable[[], None]) -> None:
        self.when = when
        self.callback = callback
        self.done = False  # fired or cancelled


class _Timers:
    """Callbacks at ``time.monotonic()`` instants (deadlines, retry delays) on one daemon thread.

    The thread starts on demand and exits whenever nothing is scheduled, so an idle or closed
    runtime holds no thread. Callbacks run without this class's lock held.
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._cond = threading.Condition(threading.Lock())
        self._heap: list[tuple[float, int, _TimerHandle]] = []
        self._seq = itertools.count()
        self._live = 0
        self._thread: threading.Thread | None = None

    def call_at(self, when: float, callback: Callable[[], None]) -> _TimerHandle:
        handle = _TimerHandle(when, callback)
        with self._cond:
            heapq.heappush(self._heap, (when, next(self._seq), handle))
            self._live += 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            self._cond.notify()
        return handle

    def cancel(self, handle: _TimerHandle | None) -> None:
        if handle is None:
            return
        with self._cond:
            if not handle.done:
                handle.done = True
                handle.callback = _nothing  # free the attempt (and its event) right away
                self._live -= 1
                if len(self._heap) > 64 and len(self._heap) > 4 * self._live:
                    self._heap = [entry for entry in self._heap if not entry[2].done]
                    heapq.heapify(self._heap)
                self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    while self._heap and self._heap[0][2].done:
                        heapq.heappop(self._heap)
                    if self._live == 0:
                        self._heap.clear()
                        self._thread = None
                        return
                    when, _, handle = self._heap[0]
                    delay = when - time.monotonic()
                    if delay <= 0:
                        heapq.heappop(self._heap)
                        handle.done = True
                        self._live -= 1
                        break
                    self._cond.wait(delay)
            try:
                handle.callback()
            except Exception:  # a bug in a callback must not stop every other timer
                _log.exception("lakekit function runtime timer callback failed")


# -- bookkeeping --------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Function:
    name: str
    handler: Handler
    options: FunctionOptions


@dataclass(eq=False, slots=True)
class _Invocation:
    function: _Function
    event: Event
    invocation_id: str
    future: Future[Any]
    is_async: bool
    borrowed: bool
    """A sync invoke from inside one of this runtime's handlers: it runs in the caller's share of
    ``max_workers`` (the caller's thread only waits), so nested calls cannot deadlock the pool."""
    seq: int = 0
    attempts: int = 0
    started: bool = False
    abandoned: bool = False
    partial_batches: bool = False
    """A stream batch delivered by a trigger: a BatchResult naming failed records retries
    only those records (the event is narrowed before the next attempt)."""
    max_retries: int | None = None
    """Overrides ``options.retries`` (0 for request/response deliveries such as HTTP)."""


@dataclass(eq=False, slots=True)
class _Attempt:
    invocation: _Invocation
    context: Context
    timer: _TimerHandle | None = None
    settled: bool = False


@dataclass(slots=True)
class _Outcome:
    value: Any = None
    error: BaseException | None = None
    timed_out: bool = False


class _DeadlineExpiredError(Exception):
    """Raised inside the per-attempt event loop when the attempt's deadline cancelled it."""


_current = threading.local()


class LocalFunctionRuntime(FunctionRuntimeAdapter):
    """Runs registered handlers in this process with retries, timeouts, bounded concurrency and
    dead letters. See the module docstring for the guarantees.

    Args:
        max_workers: most attempts running at once over all functions (default
            ``min(32, CPUs + 4)``).
        store: where dead letters are written (an ObjectStore facade or adapter); defaults to
            ``lake.store`` when ``lake`` is given, otherwise dead letters stay in memory.
        dead_letter_prefix: the key prefix of dead letters in ``store``.
        lake: the lake handlers see as ``context.lake``.

    Raises:
        InvalidInputError: ``max_workers`` below 1 or a bad ``dead_letter_prefix``.
    """

    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {
            Capability.ASYNC_INVOKE,
            Capability.RETRIES,
            Capability.DEAD_LETTER,
            Capability.TIMEOUT,
            Capability.CONCURRENCY_LIMIT,
        }
    )
    settings_model: ClassVar[type[AdapterSettings]] = LocalFunctionRuntimeSettings

    def __init__(
        self,
        *,
        max_workers: int | None = None,
        store: ObjectStore | ObjectStoreAdapter | None = None,
        dead_letter_prefix: str = DEFAULT_DEAD_LETTER_PREFIX,
        lake: Lake | None = None,
    ) -> None:
        if max_workers is None:
            max_workers = _default_max_workers()
        if isinstance(max_workers, bool) or not isinstance(max_workers, int) or max_workers < 1:
            raise InvalidInputError(f"max_workers must be an int >= 1, got {max_workers!r}")
        self._max_workers = max_workers
        self._prefix = _normalize_prefix(dead_letter_prefix)
        self._lake = lake
        if store is None and lake is not None:
            store = lake.store
        self._store = _as_store(store) if store is not None else None

        self._cond = threading.Condition(threading.Lock())
        self._functions: dict[str, _Function] = {}
        self._queues: dict[str, deque[_Invocation]] = {}
        self._running: dict[str, int] = {}
        self._running_total = 0
        self._outstanding: set[_Invocation] = set()
        self._retry_timers: dict[_Invocation, _TimerHandle] = {}
        self._memory_letters: list[DeadLetter] = []
        self._closed = False
        self._stop_retrying = False
        self._seq = itertools.count()
        self._rng = random.Random()  # noqa: S311 - jitter, not cryptography
        self._timers = _Timers(f"lakekit-functions-timers-{id(self):x}")
        self._letter_listeners: list[Callable[[DeadLetter], None]] = []

    @classmethod
    def from_settings(cls, settings: AdapterSettings, lake: Lake) -> Self:
        """Build from validated settings; dead letters go to ``lake.store``, handlers get
        ``context.lake``."""
        if not isinstance(settings, LocalFunctionRuntimeSettings):
            raise ConfigurationError(
                f"LocalFunctionRuntime needs LocalFunctionRuntimeSettings, got "
                f"{type(settings).__name__}"
            )
        return cls(
            max_workers=settings.max_workers,
            dead_letter_prefix=settings.dead_letter_prefix,
            store=lake.store,
            lake=lake,
        )

    def __repr__(self) -> str:
        where = f"store:{self._prefix}" if self._store is not None else "memory"
        name = type(self).__name__
        return f"{name}(max_workers={self._max_workers}, dead_letters={where!r})"

    @property
    def max_workers(self) -> int:
        return self._max_workers

    @property
    def lake(self) -> Lake | None:
        """The lake handlers see as ``context.lake`` (None for a runtime built without one)."""
        return self._lake

    @property
    def dead_letter_prefix(self) -> str:
        """The object-store prefix dead letters are written under."""
        return self._prefix

    def bind_lake(self, lake: Lake) -> None:
        """Give a runtime built without a lake one: handlers then see it as ``context.lake``,
        and, if the runtime had no store, dead letters go to ``lake.store``. A runtime that
        already has a lake keeps it. Used by the local trigger server."""
        with self._cond:
            if self._lake is None:
                self._lake = lake
            if self._store is None:
                self._store = lake.store

    def add_dead_letter_listener(self, callback: Callable[[DeadLetter], None]) -> None:
        """Call ``callback(letter)`` for every dead letter, after it is written and before the
        failed invocation's future resolves (so the letter is visible to whoever waits on it).

        Callbacks run on the runtime's threads; one that raises is logged and ignored, never
        losing the letter. The local trigger server uses this to publish dead letters to a
        stream.
        """
        with self._cond:
            self._letter_listeners.append(callback)

    def remove_dead_letter_listener(self, callback: Callable[[DeadLetter], None]) -> None:
        """Stop calling ``callback``; a callback that was not added is ignored."""
        with self._cond:
            if callback in self._letter_listeners:
                self._letter_listeners.remove(callback)

    # -- registry -------------------------------------------------------------------------------
    def register(self, name: str, handler: Handler, options: FunctionOptions) -> None:
        """Register (or replace) ``name``; accepted invocations keep their old handler.

        Raises:
            InvalidInputError: bad name, handler not callable, options not FunctionOptions.
            ConfigurationError: the runtime is closed.
        """
        validate_name(name, what="function name")
        if not callable(handler):
            raise InvalidInputError(f"handler for {name!r} is not callable")
        if not isinstance(options, FunctionOptions):
            raise InvalidInputError(
                f"options for {name!r} must be FunctionOptions, got {type(options).__name__}"
            )
        with self._cond:
            self._check_open()
            self._functions[name] = _Function(name, handler, options)

    def unregister(self, name: str) -> None:
        """Remove ``name``; invocations already accepted still run to completion.

        Raises:
            NotFoundError: no function called ``name``.
        """
        with self._cond:
            if self._functions.pop(name, None) is None:
                raise NotFoundError(self._not_found_message(name))

    def functions(self) -> dict[str, FunctionOptions]:
        with self._cond:
            return {name: fn.options for name, fn in sorted(self._functions.items())}

    # -- invocation -----------------------------------------------------------------------------
    def invoke(self, name: str, event: Event) -> Any:
        """Run ``name`` on a worker thread, wait for it (retries included) and return its result.

        Called from inside one of this runtime's handlers, the nested invocation does not need a
        free worker (the caller is only waiting) and gives up with FunctionTimeoutError when
        the *calling* attempt reaches its deadline.

        Raises:
            NotFoundError: no function called ``name``.
            FunctionTimeoutError: the last attempt timed out.
            FunctionError: the last attempt failed; ``__cause__`` is the handler's exception.
            ConfigurationError: the runtime is closed.
        """
        parent = _calling_context(self)
        inv = self._submit(name, event, is_async=False, borrowed=parent is not None)
        return self._wait_sync(inv, parent, name)

    def _wait_sync(self, inv: _Invocation, parent: Context | None, name: str) -> Any:
        """Wait for a sync invocation; a nested caller gives up at its own deadline."""
        if parent is None:
            return inv.future.result()
        while not inv.future.done():
            remaining = parent.remaining_time()
            if remaining <= 0 or parent.cancelled:
                self._abandon(inv)
                raise FunctionTimeoutError(
                    f"function {parent.function_name!r} reached its deadline while waiting for "
                    f"{name!r} (invocation {inv.invocation_id})"
                )
            # Short slices so the caller's cancellation is noticed promptly too.
            wait_futures([inv.future], timeout=min(remaining, _CANCEL_POLL_SECONDS))
        return inv.future.result()

    def invoke_async(self, name: str, event: Event) -> Future[Any]:
        """Queue ``name`` and return a future at once. See the module docstring.

        ``future.cancel()`` succeeds while the invocation is still queued; it then never runs
        and is not dead-lettered.

        Raises:
            NotFoundError: no function called ``name``.
            ConfigurationError: the runtime is closed.
        """
        return self._submit(name, event, is_async=True, borrowed=False).future

    def invoke_batch_async(self, name: str, event: StreamRecords) -> Future[Any]:
        """Queue a stream batch with **partial batch failure**: like :meth:`invoke_async`, but
        a handler that returns a :class:`~lakekit.events.BatchResult` naming failed records
        gets only those records retried (after the usual backoff, counting as an attempt);
        the records it did not name count as processed. A handler that raises (or times out)
        fails every record of the attempt. Once the retries are exhausted the records still
        failing are dead-lettered as one narrowed batch (``extra`` holds the stream, partition
        and offsets) and the future fails with FunctionError whose ``__cause__`` is the last
        error (a :class:`PartialBatchError` for reported failures).

        The future resolves to the last attempt's result on success. A BatchResult naming an
        offset that is not in the batch fails the whole attempt (as Lambda does).

        Raises:
            InvalidInputError: ``event`` is not a StreamRecords batch.
            NotFoundError: no function called ``name``.
            ConfigurationError: the runtime is closed.
        """
        if not isinstance(event, StreamRecords):
            raise InvalidInputError(
                f"invoke_batch_async takes a StreamRecords batch, got {type(event).__name__}"
            )
        return self._submit(name, event, is_async=True, borrowed=False, partial_batches=True).future

    def invoke_request(self, name: str, event: Event) -> Any:
        """Run ``name`` once, synchronously, **without retries**, and return its result: the
        delivery a request/response trigger (HTTP) gets, whatever ``options.retries`` says,
        as on the clouds where synchronous invocations are never retried. The timeout and the
        concurrency limit apply; nothing is dead-lettered (the caller has the error).

        Raises:
            NotFoundError, FunctionTimeoutError, FunctionError, ConfigurationError: as for
                :meth:`invoke`.
        """
        parent = _calling_context(self)
        inv = self._submit(name, event, is_async=False, borrowed=parent is not None, max_retries=0)
        return self._wait_sync(inv, parent, name)

    def dead_letters(self, name: str | None = None) -> list[DeadLetter]:
        """Async events that failed for good, oldest first, read from the store when there is
        one (so they include those of earlier runtimes on the same lake).

        Objects under the prefix that are not dead letters are skipped with a warning.

        Raises:
            InvalidInputError: ``name`` is not a valid function name.
        """
        if name is not None:
            validate_name(name, what="function name")
        with self._cond:
            letters = [d for d in self._memory_letters if name is None or d.function_name == name]
        if self._store is not None:
            letters.extend(self._read_stored_letters(name))
        letters.sort(key=lambda d: (d.failed_at, d.invocation_id))
        return letters

    def close(self, wait: bool = True) -> None:
        """Stop accepting invocations (invoke then raises ConfigurationError). Idempotent.

        With ``wait``, block until every accepted invocation has finished, retries included.
        Without it, attempts already running finish on their own but are not retried, and
        invocations still waiting (queued or in backoff) fail at once: async ones are
        dead-lettered. Threads of timed-out sync handlers are never waited for.

        Raises:
            InvalidInputError: ``wait=True`` from inside one of this runtime's handlers (it would
                wait for itself).
        """
        if wait and _calling_context(self) is not None:
            raise InvalidInputError(
                "close(wait=True) from inside a handler would wait for that handler itself; "
                "use close(wait=False)"
            )
        dropped: list[_Invocation] = []
        with self._cond:
            self._closed = True
            if not wait and not self._stop_retrying:
                self._stop_retrying = True
                for queue in self._queues.values():
                    dropped.extend(queue)
                self._queues.clear()
                for inv, handle in self._retry_timers.items():
                    self._timers.cancel(handle)
                    dropped.append(inv)
                self._retry_timers.clear()
        for inv in dropped:
            if inv.future.cancelled():
                self._forget(inv)
                continue
            next_attempt = inv.attempts + 1
            message = (
                f"the runtime was closed before attempt {next_attempt} of {inv.function.name!r} "
                f"could run (invocation {inv.invocation_id})"
            )
            self._fail_for_good(inv, FunctionError(message), "FunctionError", message, inv.attempts)
        if wait:
            with self._cond:
                while self._outstanding:
                    self._cond.wait()

    # -- internals: admission -------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise ConfigurationError(
                "this LocalFunctionRuntime is closed: create a new one (or lakekit.connect() "
                "again) to invoke functions"
            )

    def _not_found_message(self, name: str) -> str:
        known = ", ".join(sorted(self._functions)) or "none"
        return (
            f"no function named {name!r} is registered (registered: {known}); register it with "
            "@lake.functions.handler() or lake.functions.register()"
        )

    def _submit(
        self,
        name: str,
        event: Event,
        *,
        is_async: bool,
        borrowed: bool,
        partial_batches: bool = False,
        max_retries: int | None = None,
    ) -> _Invocation:
        if not isinstance(event, Event):
            raise InvalidInputError(
                f"functions receive lakekit.events.Event objects, got {type(event).__name__}"
            )
        with self._cond:
            self._check_open()
            fn = self._functions.get(name)
            if fn is None:
                raise NotFoundError(self._not_found_message(name))
            inv = _Invocation(
                function=fn,
                event=event,
                invocation_id=uuid.uuid4().hex,
                future=Future(),
                is_async=is_async,
                borrowed=borrowed,
                partial_batches=partial_batches,
                max_retries=max_retries,
            )
            self._outstanding.add(inv)
            self._enqueue_locked(inv)
            self._pump_locked()
        return inv

    def _enqueue_locked(self, inv: _Invocation) -> None:
        inv.seq = next(self._seq)
        queue = self._queues.setdefault(inv.function.name, deque())
        if inv.borrowed:
            queue.appendleft(inv)  # its caller is blocked holding a slot: let it finish first
        else:
            queue.append(inv)

    def _pump_locked(self) -> None:
        """Start every waiting attempt that fits the per-function and total limits, oldest
        first (nested sync calls before the rest)."""
        while True:
            best: _Invocation | None = None
            for name, queue in self._queues.items():
                head = queue[0]
                if self._running.get(name, 0) >= head.function.options.concurrency:
                    continue
                if not head.borrowed and self._running_total >= self._max_workers:
                    continue
                if best is None or (not head.borrowed, head.seq) < (not best.borrowed, best.seq):
                    best = head
            if best is None:
                return
            name = best.function.name
            queue = self._queues[name]
            queue.popleft()
            if not queue:
                del self._queues[name]
            if not best.started:
                if not best.future.set_running_or_notify_cancel():
                    self._outstanding.discard(best)  # cancelled by the caller while queued
                    self._cond.notify_all()
                    continue
                best.started = True
            self._start_attempt_locked(best)

    def _start_attempt_locked(self, inv: _Invocation) -> None:
        fn = inv.function
        inv.attempts += 1
        self._running[fn.name] = self._running.get(fn.name, 0) + 1
        if not inv.borrowed:
            self._running_total += 1
        context = Context(
            function_name=fn.name,
            invocation_id=inv.invocation_id,
            attempt=inv.attempts,
            deadline=time.monotonic() + fn.options.timeout,
            logger=logging.getLogger(f"lakekit.functions.{fn.name}"),
            lake=self._lake,
        )
        attempt = _Attempt(inv, context)
        attempt.timer = self._timers.call_at(context.deadline, partial(self._on_timeout, attempt))
        thread = threading.Thread(
            target=self._run_attempt,
            args=(attempt,),
            name=f"lakekit-fn-{fn.name}-{inv.invocation_id[:8]}-{inv.attempts}",
            daemon=True,  # a hung sync handler must not keep the interpreter from exiting
        )
        try:
            thread.start()
        except RuntimeError as exc:  # the OS refused a thread: count it as a failed attempt
            self._release_locked(attempt, pump=False)
            self._timers.cancel(attempt.timer)
            attempt.timer = None
            failure = TransientError(f"could not start a thread for {fn.name!r}: {exc}")
            self._timers.call_at(
                time.monotonic(), partial(self._settle, attempt, _Outcome(error=failure))
            )

    def _release_locked(self, attempt: _Attempt, *, pump: bool = True) -> None:
        inv = attempt.invocation
        name = inv.function.name
        self._running[name] -= 1
        if not self._running[name]:
            del self._running[name]
        if not inv.borrowed:
            self._running_total -= 1
        if pump:
            self._pump_locked()
        self._cond.notify_all()

    # -- internals: running an attempt ----------------------------------------------------------
    def _run_attempt(self, attempt: _Attempt) -> None:
        _current.frame = (self, attempt.context)
        try:
            outcome = _call_handler(attempt)
        finally:
            _current.frame = None
            with self._cond:
                self._release_locked(attempt)  # only now: a timed-out thread kept its slot
        self._settle(attempt, outcome)

    def _on_timeout(self, attempt: _Attempt) -> None:
        """Runs on the timer thread: decide at once, but write dead letters and resolve the
        future (which runs user callbacks) on another thread so no other timer is delayed."""
        with self._cond:
            if attempt.settled:
                return
            attempt.settled = True
        attempt.context.cancel_event.set()
        worker = threading.Thread(
            target=self._after_failure,
            args=(attempt, None),
            name=f"lakekit-fn-{attempt.context.function_name}-timeout",
            daemon=True,
        )
        try:
            worker.start()
        except RuntimeError:  # no thread to spare: do it here rather than never
            self._after_failure(attempt, None)

    def _settle(self, attempt: _Attempt, outcome: _Outcome) -> None:
        with self._cond:
            late = attempt.settled
            attempt.settled = True
            self._timers.cancel(attempt.timer)
        if late:
            attempt.context.logger.debug(
                "function %s: attempt %d of invocation %s returned after its timeout; its "
                "outcome is discarded",
                attempt.context.function_name,
                attempt.context.attempt,
                attempt.invocation.invocation_id,
            )
        elif outcome.timed_out or (
            # Failing past the deadline is a timeout, whichever thread noticed first (e.g. a
            # nested invoke that gave up at this attempt's deadline).
            outcome.error is not None and time.monotonic() >= attempt.context.deadline
        ):
            attempt.context.cancel_event.set()
            self._after_failure(attempt, None)
        elif outcome.error is not None:
            self._after_failure(attempt, outcome.error)
        else:
            partial = self._partial_failure(attempt.invocation, outcome.value)
            if partial is not None:
                self._after_failure(attempt, partial)
            else:
                self._resolve(attempt.invocation, value=outcome.value)

    def _partial_failure(self, inv: _Invocation, value: Any) -> Exception | None:
        """For a trigger-delivered batch whose handler returned a BatchResult naming failed
        records: narrow the invocation's event to those records and return the error to retry
        (or dead-letter) them with. None when the batch succeeded."""
        if not (inv.partial_batches and isinstance(value, BatchResult) and value.failed):
            return None
        assert isinstance(inv.event, StreamRecords)
        try:
            narrowed = narrow_batch(inv.event, value)
        except InvalidInputError as exc:  # unknown offsets: the whole attempt failed
            return TransientError(str(exc))
        total = len(inv.event.records)
        with self._cond:
            inv.event = narrowed
        return PartialBatchError(narrowed.offsets, total)

    def _after_failure(self, attempt: _Attempt, error: BaseException | None) -> None:
        """Retry the invocation after a backoff, or fail it for good. ``error`` None means the
        attempt timed out."""
        inv = attempt.invocation
        options = inv.function.options
        number = attempt.context.attempt
        error_type = "FunctionTimeoutError" if error is None else type(error).__name__
        retryable = error is None or is_retryable(error)
        logger = attempt.context.logger
        retries = options.retries if inv.max_retries is None else inv.max_retries
        with self._cond:
            retry = (
                retryable and number <= retries and not self._stop_retrying and not inv.abandoned
            )
            if retry:
                delay = retry_delay(options, number, self._rng)
                self._schedule_retry_locked(inv, delay)
        # Log lines name the error type only: messages and payloads may hold secrets.
        if retry:
            logger.warning(
                "function %s: attempt %d/%d of invocation %s failed with %s; retrying in %.3fs",
                inv.function.name,
                number,
                retries + 1,
                inv.invocation_id,
                error_type,
                delay,
            )
            return
        logger.error(
            "function %s: invocation %s failed for good on attempt %d/%d with %s",
            inv.function.name,
            inv.invocation_id,
            number,
            retries + 1,
            error_type,
        )
        name = inv.function.name
        final: FunctionError
        if error is None:
            message = (
                f"function {name!r} timed out after {options.timeout:g}s on attempt {number} "
                f"(invocation {inv.invocation_id})"
            )
            final = FunctionTimeoutError(message)
        else:
            message = _describe(error)
            why = "" if retryable else "; InvalidInputError is not retried"
            final = FunctionError(
                f"function {name!r} failed on attempt {number} (invocation "
                f"{inv.invocation_id}): {error_type}: {message}{why}"
            )
            final.__cause__ = error
        self._fail_for_good(inv, final, error_type, message, number)

    def _schedule_retry_locked(self, inv: _Invocation, delay: float) -> None:
        if delay <= 0:
            self._enqueue_locked(inv)
            self._pump_locked()
            return
        handle = self._timers.call_at(time.monotonic() + delay, partial(self._retry_due, inv))
        self._retry_timers[inv] = handle

    def _retry_due(self, inv: _Invocation) -> None:
        with self._cond:
            if self._retry_timers.pop(inv, None) is None:
                return  # close(wait=False) already failed it
            self._enqueue_locked(inv)
            self._pump_locked()

    def _abandon(self, inv: _Invocation) -> None:
        """A nested sync caller gave up: drop the invocation if it is not running, and never
        retry it."""
        with self._cond:
            inv.abandoned = True
            waiting = False
            queue = self._queues.get(inv.function.name)
            if queue is not None and inv in queue:
                queue.remove(inv)
                if not queue:
                    del self._queues[inv.function.name]
                waiting = True
            handle = self._retry_timers.pop(inv, None)
            if handle is not None:
                self._timers.cancel(handle)
                waiting = True
        if waiting:
            self._resolve(inv, error=FunctionTimeoutError("the caller stopped waiting"))

    # -- internals: outcomes --------------------------------------------------------------------
    def _fail_for_good(
        self, inv: _Invocation, final: FunctionError, error_type: str, message: str, attempts: int
    ) -> None:
        if inv.is_async:
            letter = DeadLetter(
                function_name=inv.function.name,
                event=event_to_dict(inv.event),
                event_type=type(inv.event).__name__,
                error_type=error_type,
                error=message,
                attempts=attempts,
                failed_at=datetime.now(UTC),
                invocation_id=inv.invocation_id,
                extra=_letter_extra(inv.event),
            )
            where = self._write_dead_letter(letter)
            final.add_note(f"dead letter: {where}")
            self._notify_letter_listeners(letter)
        self._resolve(inv, error=final)

    def _notify_letter_listeners(self, letter: DeadLetter) -> None:
        with self._cond:
            listeners = list(self._letter_listeners)
        for listener in listeners:
            try:
                listener(letter)
            except Exception as exc:  # a listener must never lose the letter or the result
                _log.error("dead-letter listener %r failed with %s", listener, type(exc).__name__)

    def _resolve(
        self, inv: _Invocation, *, value: Any = None, error: BaseException | None = None
    ) -> None:
        try:
            if error is not None:
                inv.future.set_exception(error)
            else:
                inv.future.set_result(value)
        except InvalidStateError:
            pass  # cancelled by its caller
        finally:
            self._forget(inv)

    def _forget(self, inv: _Invocation) -> None:
        with self._cond:
            self._outstanding.discard(inv)
            self._retry_timers.pop(inv, None)
            self._cond.notify_all()

    # -- internals: dead letters ----------------------------------------------------------------
    def _dead_letter_key(self, letter: DeadLetter) -> str:
        stamp = letter.failed_at.astimezone(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        return f"{self._prefix}/{letter.function_name}/{stamp}-{letter.invocation_id}.json"

    def _write_dead_letter(self, letter: DeadLetter) -> str:
        """Persist ``letter``; returns where it went. Never raises: a store failure keeps the
        letter in memory (and logs an error) rather than losing it."""
        if self._store is None:
            with self._cond:
                self._memory_letters.append(letter)
            return "memory"
        key = self._dead_letter_key(letter)
        data = json.dumps(letter.to_dict(), ensure_ascii=False, allow_nan=False).encode("utf-8")
        for attempt in range(1, _STORE_WRITE_ATTEMPTS + 1):
            try:
                self._store.put(key, data)
            except TransientError:
                if attempt == _STORE_WRITE_ATTEMPTS:
                    break
                time.sleep(0.1 * attempt)
            except Exception as exc:
                _log.error(
                    "could not write dead letter %s (%s); keeping it in memory only",
                    key,
                    type(exc).__name__,
                )
                break
            else:
                return key
        with self._cond:
            self._memory_letters.append(letter)
        return f"memory (writing {key} failed)"

    def _read_stored_letters(self, name: str | None) -> list[DeadLetter]:
        assert self._store is not None
        prefix = f"{self._prefix}/{name}/" if name is not None else f"{self._prefix}/"
        letters: list[DeadLetter] = []
        for meta in self._store.list(prefix):
            if not meta.key.endswith(".json"):
                continue
            try:
                data = json.loads(self._store.get(meta.key))
                if not isinstance(data, dict):
                    raise InvalidInputError("not a JSON object")
                letters.append(DeadLetter.from_dict(data))
            except NotFoundError:
                continue  # deleted while we listed
            except (ValueError, LakekitError) as exc:
                _log.warning("skipping %s: not a readable dead letter (%s)", meta.key, exc)
        return letters


# -- helpers ------------------------------------------------------------------------------------
def _letter_extra(event: Event) -> dict[str, Any]:
    """Where a dead-lettered stream batch's records can be read again."""
    if isinstance(event, StreamRecords):
        return {"stream": event.stream, "partition": event.partition, "offsets": event.offsets}
    return {}


def _as_store(store: ObjectStore | ObjectStoreAdapter) -> ObjectStore:
    from lakekit.interfaces.object_store import ObjectStore, ObjectStoreAdapter

    if isinstance(store, ObjectStore):
        return store
    if isinstance(store, ObjectStoreAdapter):
        return ObjectStore(store)
    raise InvalidInputError(
        f"store must be an ObjectStore or ObjectStoreAdapter, got {type(store).__name__}"
    )


def _calling_context(runtime: LocalFunctionRuntime) -> Context | None:
    """The context of the handler attempt running on this thread, if it belongs to ``runtime``."""
    frame = getattr(_current, "frame", None)
    if frame is not None and frame[0] is runtime:
        context: Context = frame[1]
        return context
    return None


def _call_handler(attempt: _Attempt) -> _Outcome:
    inv = attempt.invocation
    try:
        result = inv.function.handler(inv.event, attempt.context)
        if inspect.isawaitable(result):
            return _run_awaitable(result, attempt.context)
        return _Outcome(value=result)
    except BaseException as exc:  # every handler failure becomes an outcome, never a crash
        return _Outcome(error=exc)


def _run_awaitable(awaitable: Awaitable[Any], context: Context) -> _Outcome:
    """Await a handler's coroutine on a fresh event loop, cancelling it at the deadline."""

    async def main() -> Any:
        scope = asyncio.timeout(context.remaining_time())
        try:
            async with scope:
                return await awaitable
        except TimeoutError:
            if scope.expired():
                raise _DeadlineExpiredError from None
            raise

    try:
        return _Outcome(value=asyncio.run(main()))
    except _DeadlineExpiredError:
        return _Outcome(timed_out=True)
    except BaseException as exc:
        return _Outcome(error=exc)


def _describe(error: BaseException) -> str:
    try:
        return str(error)
    except Exception:  # a broken __str__ must not hide the failure itself
        return f"<{type(error).__name__} with an unprintable message>"
