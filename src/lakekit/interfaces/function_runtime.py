"""FunctionRuntime: named event handlers, invoked with retries, timeouts and a dead-letter record.

* :class:`FunctionRuntimeAdapter` is what an adapter author implements.
* :class:`FunctionRuntime` is what users call (``lake.functions``): the ``@handler`` decorator
  and ``invoke`` with plain payloads.

A handler is ``def handler(event: Event, context: Context) -> Any`` (or ``async def``). The same
body runs locally and, through the cloud shims, on Lambda, Cloud Functions or Azure Functions.

Guarantees every adapter gives (checked by :class:`lakekit.testing.FunctionRuntimeSuite`):

* **Synchronous invoke** returns the handler's result, or raises FunctionError (chaining the
  handler's exception) once the retries are exhausted; FunctionTimeoutError past the timeout.
* **Asynchronous invoke** is at-least-once: failures are retried with exponential backoff; an
  event that exhausts its retries is written to the dead-letter record with its error. Handlers
  that must be exactly-once deduplicate on ``event.id``, which is the same on every retry.
* **Bounded concurrency**: at most ``FunctionOptions.concurrency`` invocations of one function
  run at a time; the rest wait their turn.
* **Bad input is not retried**: a handler that raises :class:`~lakekit.errors.InvalidInputError`
  (the event itself is wrong, so another attempt cannot help) fails at once (see
  :func:`is_retryable`).
* **Timeouts cancel cooperatively**: past its deadline an attempt fails with
  FunctionTimeoutError and ``context.cancelled`` becomes true; ``async def`` handlers are
  cancelled outright where the adapter runs them.

Options an adapter cannot honour are refused when they are asked for explicitly: registering a
function with ``retries > 0``, a non-default ``timeout`` or a non-default ``concurrency`` on an
adapter that lacks RETRIES, TIMEOUT or CONCURRENCY_LIMIT raises NotSupportedError. Defaults are
fitted to the adapter instead (no retries where it cannot retry).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import threading
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from datetime import time as dt_time
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar, overload

from lakekit.capabilities import Capability, require
from lakekit.errors import InvalidInputError
from lakekit.events import Event, Invoke

if TYPE_CHECKING:
    from lakekit.lake import Lake

__all__ = [
    "Context",
    "DeadLetter",
    "FunctionOptions",
    "FunctionRuntime",
    "FunctionRuntimeAdapter",
    "Handler",
    "event_to_dict",
    "is_retryable",
]

Handler = Callable[[Any, "Context"], Any] | Callable[[Any, "Context"], Awaitable[Any]]
F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True, slots=True)
class FunctionOptions:
    """How a function is run. Defaults follow the clouds' async-invoke defaults."""

    timeout: float = 60.0
    """Seconds before an attempt fails with FunctionTimeoutError."""
    retries: int = 2
    """Extra attempts after the first failure (so ``retries=2`` means up to 3 attempts)."""
    backoff: float = 0.5
    """Seconds before the first retry; doubled on each further retry (with jitter)."""
    max_backoff: float = 30.0
    concurrency: int = 4
    """Most attempts of this function running at once."""

    def __post_init__(self) -> None:
        if self.timeout <= 0:
            raise InvalidInputError("timeout must be > 0 seconds")
        if self.retries < 0:
            raise InvalidInputError("retries must be >= 0")
        if self.backoff < 0 or self.max_backoff < 0:
            raise InvalidInputError("backoff must be >= 0 seconds")
        if self.concurrency < 1:
            raise InvalidInputError("concurrency must be >= 1")


@dataclass
class Context:
    """What a handler gets besides its event."""

    function_name: str
    invocation_id: str
    attempt: int
    """1 on the first attempt, 2 on the first retry, ..."""
    deadline: float
    """``time.monotonic()`` value at which this attempt times out."""
    logger: logging.Logger
    """Named ``lakekit.functions.<function_name>``. Never log secrets through it."""
    lake: Lake | None = None
    cancel_event: threading.Event = field(default_factory=threading.Event, repr=False)
    """Set by the runtime when this attempt is abandoned (its timeout passed). Long-running
    handlers should check :attr:`cancelled`, or wait on this event instead of sleeping."""

    @property
    def cancelled(self) -> bool:
        """True once the runtime has given up on this attempt: stop work and return soon."""
        return self.cancel_event.is_set()

    def remaining_time(self) -> float:
        """Seconds left before this attempt times out (never negative)."""
        import time

        return max(0.0, self.deadline - time.monotonic())


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """An event that exhausted its retries (or was not retryable), with the last error.

    ``event`` is the event as JSON-ready data (see :func:`event_to_dict`), so a dead letter
    reads back the same from memory, from an object store or from another cloud.
    """

    function_name: str
    event: Any
    """The event's fields as JSON-ready data (``{"id": ..., "time": ..., "payload": ...}``)."""
    error_type: str
    """The class name of the last error, e.g. ``ValueError`` or ``FunctionTimeoutError``."""
    error: str
    """The last error's message."""
    attempts: int
    failed_at: datetime
    """When the last attempt failed (UTC)."""
    invocation_id: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    event_type: str = ""
    """The event's class name (``Invoke``, ...)."""

    FORMAT_VERSION: ClassVar[int] = 1

    @property
    def event_id(self) -> str | None:
        """The failed event's ``id`` (its idempotency key), if the event had one."""
        if isinstance(self.event, Mapping):
            value = self.event.get("id")
            return value if isinstance(value, str) else None
        return None

    def to_dict(self) -> dict[str, Any]:
        """This dead letter as a JSON-ready dict (the portable on-disk layout, version 1)."""
        return {
            "format": self.FORMAT_VERSION,
            "function_name": self.function_name,
            "invocation_id": self.invocation_id,
            "event_type": self.event_type,
            "event": _jsonable(self.event),
            "error_type": self.error_type,
            "error": self.error,
            "attempts": self.attempts,
            "failed_at": self.failed_at.isoformat(),
            "extra": _jsonable(self.extra),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DeadLetter:
        """Read back what :meth:`to_dict` wrote.

        Raises:
            InvalidInputError: ``data`` is not a dead letter of a known format version.
        """
        try:
            version = data.get("format", cls.FORMAT_VERSION)
            if version != cls.FORMAT_VERSION:
                raise InvalidInputError(f"unknown dead-letter format version {version!r}")
            return cls(
                function_name=str(data["function_name"]),
                event=data.get("event"),
                error_type=str(data["error_type"]),
                error=str(data["error"]),
                attempts=int(data["attempts"]),
                failed_at=_utc(datetime.fromisoformat(str(data["failed_at"]))),
                invocation_id=str(data.get("invocation_id", "")),
                extra=dict(data.get("extra") or {}),
                event_type=str(data.get("event_type", "")),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            if isinstance(exc, InvalidInputError):
                raise
            raise InvalidInputError(f"not a lakekit dead letter: {exc!r}") from exc


def _utc(moment: datetime) -> datetime:
    """A timestamp without a zone is taken as UTC, so dead letters always sort together."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def event_to_dict(event: Event) -> dict[str, Any]:
    """An event's fields as JSON-ready data, as :func:`dataclasses.asdict` would give them.

    Nested dataclasses become dicts, datetimes/dates/times ISO 8601 strings, tuples and sets
    lists; anything else JSON cannot hold (bytes, arbitrary objects, NaN) becomes its ``repr``.
    Never raises for an odd payload: a dead letter must always be writable.
    """
    return {f.name: _jsonable(getattr(event, f.name)) for f in dataclasses.fields(event)}


def _jsonable(value: Any, _depth: int = 0) -> Any:  # noqa: PLR0911 - one return per type
    if _depth > 100:
        return _safe_repr(value)
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else _safe_repr(value)
    if isinstance(value, datetime | date | dt_time):
        return value.isoformat()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: _jsonable(getattr(value, f.name), _depth + 1) for f in dataclasses.fields(value)
        }
    if isinstance(value, Mapping):
        if all(isinstance(k, str) for k in value):
            return {k: _jsonable(v, _depth + 1) for k, v in value.items()}
        return _safe_repr(value)
    if isinstance(value, list | tuple):
        return [_jsonable(v, _depth + 1) for v in value]
    if isinstance(value, set | frozenset):
        items = [_jsonable(v, _depth + 1) for v in value]
        try:
            return sorted(items, key=lambda v: json.dumps(v, sort_keys=True))
        except (TypeError, ValueError):
            return items
    return _safe_repr(value)


def _safe_repr(value: Any) -> str:
    try:
        return repr(value)
    except Exception as exc:  # a broken __repr__ must not lose the dead letter
        return f"<unrepresentable {type(value).__name__}: {type(exc).__name__}>"


def is_retryable(exc: BaseException) -> bool:
    """Whether a handler failure is worth another attempt.

    Every exception is retryable except :class:`~lakekit.errors.InvalidInputError` (the event
    itself is bad, so the next attempt would fail the same way) and ``BaseException``s that are
    not ``Exception``s (``SystemExit``, ``KeyboardInterrupt``, a stray ``CancelledError``).
    A handler opts an event out of retries by raising InvalidInputError (or a subclass).
    """
    return isinstance(exc, Exception) and not isinstance(exc, InvalidInputError)


class FunctionRuntimeAdapter(ABC):
    """The implementer's interface: register, look up and invoke named handlers.

    Names arrive validated and handlers callable (the :class:`FunctionRuntime` checks both), and
    events are always :class:`~lakekit.events.Event` instances. Adapters dispatch on nothing but
    the handler name, so every event type reaches handlers unchanged.
    """

    capabilities: ClassVar[frozenset[Capability]] = frozenset()

    @abstractmethod
    def register(self, name: str, handler: Handler, options: FunctionOptions) -> None:
        """Register (or replace) the handler called ``name``.

        Invocations already accepted keep the handler and options they were accepted with.
        """

    @abstractmethod
    def unregister(self, name: str) -> None:
        """Remove the function; accepted invocations still complete.

        Raises:
            NotFoundError: no function called ``name``.
        """

    @abstractmethod
    def functions(self) -> dict[str, FunctionOptions]:
        """The registered functions and their options."""

    @abstractmethod
    def invoke(self, name: str, event: Event) -> Any:
        """Run the handler now, with retries, and return its result.

        A failed synchronous invocation is raised to the caller, not dead-lettered.

        Raises:
            NotFoundError: no function called ``name`` (the message lists the registered ones).
            FunctionTimeoutError: the last attempt ran past the timeout.
            FunctionError: the last attempt failed; the handler's exception is chained
                (``__cause__``).
            ConfigurationError: the runtime is closed.
        """

    @abstractmethod
    def invoke_async(self, name: str, event: Event) -> Future[Any]:
        """Queue the event and return at once (at-least-once delivery).

        The future resolves to the handler's result, or to FunctionError/FunctionTimeoutError
        once the retries are exhausted, after the event has been written as a dead letter.

        Raises:
            NotFoundError: no function called ``name``.
            ConfigurationError: the runtime is closed.
        """

    @abstractmethod
    def dead_letters(self, name: str | None = None) -> list[DeadLetter]:
        """Events that exhausted their retries, oldest first (for one function or all)."""

    def close(self, wait: bool = True) -> None:  # noqa: B027 - optional hook
        """Stop accepting work; with ``wait``, let queued invocations finish. Idempotent."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


_DEFAULT_OPTIONS = FunctionOptions()


def _fit_options(adapter: FunctionRuntimeAdapter, given: Mapping[str, Any]) -> FunctionOptions:
    """Options from the explicitly ``given`` fields; unspecified ones get defaults the adapter
    can honour, explicit ones it cannot honour raise NotSupportedError."""
    caps = adapter.capabilities
    values = dict(given)
    if "retries" not in values and Capability.RETRIES not in caps:
        values["retries"] = 0
    options = FunctionOptions(**values)
    _check_options(adapter, options)
    return options


def _check_options(adapter: FunctionRuntimeAdapter, options: FunctionOptions) -> None:
    if options.retries > 0:
        require(adapter, Capability.RETRIES, f"retries={options.retries} (use retries=0)")
    if options.timeout != _DEFAULT_OPTIONS.timeout:
        require(adapter, Capability.TIMEOUT, f"timeout={options.timeout}")
    if options.concurrency != _DEFAULT_OPTIONS.concurrency:
        require(adapter, Capability.CONCURRENCY_LIMIT, f"concurrency={options.concurrency}")


class FunctionRuntime:
    """The user-facing runtime (``lake.functions``).

    Example::

        @lake.functions.handler(retries=3, timeout=30)
        def enrich(event: Invoke, context: Context) -> dict:
            return {"order": event.payload["order"], "attempt": context.attempt}

        lake.functions.invoke("enrich", {"order": 42})  # the result, or FunctionError
        future = lake.functions.invoke_async("enrich", {"order": 43})
    """

    def __init__(self, adapter: FunctionRuntimeAdapter) -> None:
        self.adapter = adapter

    def __repr__(self) -> str:
        return f"FunctionRuntime({self.adapter!r})"

    @property
    def capabilities(self) -> frozenset[Capability]:
        return self.adapter.capabilities

    def register(self, name: str, handler: Handler, options: FunctionOptions | None = None) -> None:
        """Register (or replace) ``handler`` under ``name``.

        Args:
            name: lowercase letters, digits and ``_`` (see :mod:`lakekit.identifiers`).
            handler: ``def f(event, context)`` or ``async def f(event, context)``.
            options: how to run it; ``None`` picks defaults the adapter supports.

        Raises:
            InvalidInputError: bad name, or ``handler`` is not callable.
            NotSupportedError: ``options`` ask for retries, a timeout or a concurrency limit
                the adapter cannot honour.
        """
        from lakekit.identifiers import validate_name

        validate_name(name, what="function name")
        if not callable(handler):
            raise InvalidInputError(f"handler for {name!r} is not callable")
        if options is None:
            options = _fit_options(self.adapter, {})
        elif not isinstance(options, FunctionOptions):
            raise InvalidInputError(
                f"options for {name!r} must be FunctionOptions, got {type(options).__name__}"
            )
        else:
            _check_options(self.adapter, options)
        self.adapter.register(name, handler, options)

    def unregister(self, name: str) -> None:
        """Remove the function ``name``; invocations already accepted still complete.

        Raises:
            NotFoundError: no function called ``name``.
        """
        self.adapter.unregister(name)

    @overload
    def handler(self, name: F, /) -> F: ...

    @overload
    def handler(
        self,
        name: str | None = None,
        *,
        timeout: float | None = None,
        retries: int | None = None,
        backoff: float | None = None,
        max_backoff: float | None = None,
        concurrency: int | None = None,
    ) -> Callable[[F], F]: ...

    def handler(
        self,
        name: str | F | None = None,
        *,
        timeout: float | None = None,
        retries: int | None = None,
        backoff: float | None = None,
        max_backoff: float | None = None,
        concurrency: int | None = None,
    ) -> F | Callable[[F], F]:
        """Decorator: register the function under ``name`` (default: its ``__name__``).

        Use it bare (``@functions.handler``) or with options
        (``@functions.handler("load", retries=5, timeout=30)``); options left out take the
        :class:`FunctionOptions` defaults. The decorated function is returned unchanged.

        Raises:
            InvalidInputError, NotSupportedError: as for :meth:`register`.
        """
        given = {
            key: value
            for key, value in {
                "timeout": timeout,
                "retries": retries,
                "backoff": backoff,
                "max_backoff": max_backoff,
                "concurrency": concurrency,
            }.items()
            if value is not None
        }
        if callable(name):
            fn: F = name
            self.register(fn.__name__, fn, _fit_options(self.adapter, given))
            return fn
        options = _fit_options(self.adapter, given)

        def decorate(fn: F) -> F:
            self.register(name or fn.__name__, fn, options)
            return fn

        return decorate

    def functions(self) -> dict[str, FunctionOptions]:
        """The registered functions and their options."""
        return self.adapter.functions()

    def invoke(self, name: str, payload: Any = None) -> Any:
        """Run ``name`` synchronously with ``payload`` (wrapped in :class:`Invoke` unless it is
        already an :class:`Event`) and return its result. See FunctionRuntimeAdapter.invoke."""
        return self.adapter.invoke(name, _as_event(payload))

    def invoke_async(self, name: str, payload: Any = None) -> Future[Any]:
        """Queue ``name`` with ``payload``; the future resolves to the result or the error.

        Raises:
            NotSupportedError: the adapter lacks ASYNC_INVOKE.
            NotFoundError: no function called ``name``.
        """
        require(self.adapter, Capability.ASYNC_INVOKE)
        return self.adapter.invoke_async(name, _as_event(payload))

    def dead_letters(self, name: str | None = None) -> list[DeadLetter]:
        """Async events that failed for good, oldest first.

        Raises:
            NotSupportedError: the adapter lacks DEAD_LETTER.
        """
        require(self.adapter, Capability.DEAD_LETTER)
        return self.adapter.dead_letters(name)

    def close(self, wait: bool = True) -> None:
        """Stop accepting work; with ``wait``, let queued invocations finish. Idempotent."""
        self.adapter.close(wait)


def _as_event(payload: Any) -> Event:
    return payload if isinstance(payload, Event) else Invoke(payload=payload)
