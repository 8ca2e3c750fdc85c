"""FunctionRuntime: named event handlers, invoked with retries, timeouts and a dead-letter record.

* :class:`FunctionRuntimeAdapter` is what an adapter author implements.
* :class:`FunctionRuntime` is what users call (``lake.functions``): the ``@handler`` decorator,
  ``invoke`` with plain payloads, and the trigger decorators (``on_object_created``,
  ``on_stream``, ``on_schedule``, ``on_http``) that record triggers as data for
  :mod:`lakekit.triggers` (``lakekit serve``) and, later, cloud deployments.

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
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from datetime import time as dt_time
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypedDict, TypeVar, Unpack, overload

from lakekit.capabilities import Capability, require
from lakekit.errors import InvalidInputError, LakekitError
from lakekit.events import BatchResult, Event, Invoke, StreamRecords

if TYPE_CHECKING:
    from lakekit.lake import Lake
    from lakekit.triggers.model import Trigger, TriggerBinding
    from lakekit.triggers.server import LocalServer

__all__ = [
    "Context",
    "DeadLetter",
    "FunctionOptionArgs",
    "FunctionOptions",
    "FunctionRuntime",
    "FunctionRuntimeAdapter",
    "Handler",
    "PartialBatchError",
    "event_to_dict",
    "is_retryable",
    "narrow_batch",
]

Handler = Callable[[Any, "Context"], Any] | Callable[[Any, "Context"], Awaitable[Any]]
F = TypeVar("F", bound=Callable[..., Any])


class FunctionOptionArgs(TypedDict, total=False):
    """The keyword arguments the trigger decorators take for :class:`FunctionOptions`."""

    timeout: float
    retries: int
    backoff: float
    max_backoff: float
    concurrency: int


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


class PartialBatchError(LakekitError):
    """Some records of a stream batch failed (the handler returned a :class:`BatchResult`
    naming them). Raised inside the runtime to retry just those records; it reaches users only
    as the ``__cause__`` of the :class:`~lakekit.errors.FunctionError` of a batch whose failed
    records exhausted their retries, and names it in the dead letter."""

    def __init__(self, failed: tuple[str, ...], total: int) -> None:
        self.failed = failed
        shown = ", ".join(failed[:10]) + (", ..." if len(failed) > 10 else "")
        super().__init__(f"{len(failed)} of {total} records failed (offsets {shown})")


def narrow_batch(event: StreamRecords, result: BatchResult) -> StreamRecords:
    """The records of ``event`` that ``result`` names as failed, as a new batch to retry.

    The new batch keeps the stream, partition and record order; its ``id`` is derived from the
    original id and the failed offsets (the same on every redelivery of the same narrowing),
    so a handler that dedupes on the *batch* id still runs the retry. Handlers should dedupe
    stream work per record (stream, partition, offset) instead.

    Raises:
        InvalidInputError: ``result`` names an offset that is not in the batch.
    """
    import hashlib

    wanted = set(result.failed)
    known = set(event.offsets)
    unknown = sorted(wanted - known)
    if unknown:
        raise InvalidInputError(
            f"BatchResult names offsets that are not in the batch: {unknown[:10]}; name failed "
            "records by StreamRecord.offset (or pass the StreamRecord objects)"
        )
    records = tuple(record for record in event.records if record.offset in wanted)
    digest = hashlib.sha256(
        "\x00".join((event.id, *(record.offset for record in records))).encode("utf-8")
    ).hexdigest()[:32]
    return dataclasses.replace(event, id=digest, records=records)


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
        self._trigger_lock = threading.RLock()
        self._bindings: dict[str, list[Trigger]] = {}
        # name -> (handler, options given to its decorators, or None if registered directly)
        self._decorated: dict[str, tuple[Handler, dict[str, Any] | None]] = {}

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
        with self._trigger_lock:
            self.adapter.register(name, handler, options)
            previous = self._decorated.get(name)
            if previous is None or previous[0] is not handler:
                self._bindings.pop(name, None)  # a new handler starts without triggers
            self._decorated[name] = (handler, None)

    def unregister(self, name: str) -> None:
        """Remove the function ``name`` and its triggers; invocations already accepted still
        complete.

        Raises:
            NotFoundError: no function called ``name``.
        """
        with self._trigger_lock:
            self.adapter.unregister(name)
            self._bindings.pop(name, None)
            self._decorated.pop(name, None)

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
            self._register_decorated(fn.__name__, fn, given, None)
            return fn
        _fit_options(self.adapter, given)  # refuse unsupported options at decoration time

        def decorate(fn: F) -> F:
            self._register_decorated(name or fn.__name__, fn, given, None)
            return fn

        return decorate

    # -- triggers ---------------------------------------------------------------------------------
    def on_object_created(
        self,
        prefix: str = "",
        suffix: str = "",
        *,
        name: str | None = None,
        **options: Unpack[FunctionOptionArgs],
    ) -> Callable[[F], F]:
        """Decorator: register the function and run it for every object created or
        overwritten under ``prefix`` whose key ends with ``suffix``.

        The handler receives :class:`~lakekit.events.ObjectCreated` with ``key`` relative to
        the lake root. ``options`` are those of :meth:`handler` (``timeout``, ``retries``,
        ``backoff``, ``max_backoff``, ``concurrency``). Delivery is asynchronous and
        at-least-once (see ``docs/triggers.md``).

        Raises:
            InvalidInputError: a bad prefix/suffix/name/option.
            NotSupportedError: an option the adapter cannot honour.
        """
        from lakekit.triggers.model import ObjectTrigger

        trigger = ObjectTrigger(prefix=prefix, suffix=suffix, events=("created",))
        return self._trigger_decorator(lambda _fn: trigger, name, options)

    def on_object_deleted(
        self,
        prefix: str = "",
        suffix: str = "",
        *,
        name: str | None = None,
        **options: Unpack[FunctionOptionArgs],
    ) -> Callable[[F], F]:
        """Decorator: like :meth:`on_object_created`, for deleted objects
        (:class:`~lakekit.events.ObjectDeleted`)."""
        from lakekit.triggers.model import ObjectTrigger

        trigger = ObjectTrigger(prefix=prefix, suffix=suffix, events=("deleted",))
        return self._trigger_decorator(lambda _fn: trigger, name, options)

    def on_stream(
        self,
        stream: str,
        *,
        group: str | None = None,
        batch_size: int = 100,
        max_wait: float = 0.0,
        start: Literal["earliest", "latest"] = "earliest",
        name: str | None = None,
        **options: Unpack[FunctionOptionArgs],
    ) -> Callable[[F], F]:
        """Decorator: register the function and run it with batches of records of ``stream``.

        Each invocation gets a :class:`~lakekit.events.StreamRecords` of up to ``batch_size``
        records of *one* partition, in order, read as consumer ``group`` (default: the
        function's name). Offsets are committed only after the batch succeeded or was
        dead-lettered. Return :class:`~lakekit.events.BatchResult` to fail only some records.

        Raises:
            InvalidInputError: a bad stream/group name, batch size, wait or option; the
                stream and group are already bound to another function.
        """
        from lakekit.triggers.model import StreamTrigger

        def make(fn: Callable[..., Any]) -> Trigger:
            return StreamTrigger(
                stream=stream,
                group=group or name or fn.__name__,
                batch_size=batch_size,
                max_wait=max_wait,
                start=start,
            )

        make(_nothing)  # a bad stream name, batch size, ... fails here, not when applied
        return self._trigger_decorator(make, name, options)

    def on_schedule(
        self, expression: str, *, name: str | None = None, **options: Unpack[FunctionOptionArgs]
    ) -> Callable[[F], F]:
        """Decorator: register the function and run it on a schedule, ``rate(5 minutes)`` or
        ``cron(0 3 * * ? *)`` (UTC). The handler receives :class:`~lakekit.events.Schedule`
        whose ``id`` is derived from the function and the scheduled time.

        Raises:
            InvalidInputError: the expression does not parse, or a bad name/option.
        """
        from lakekit.triggers.model import ScheduleTrigger

        trigger = ScheduleTrigger(expression)
        return self._trigger_decorator(lambda _fn: trigger, name, options)

    def on_http(
        self,
        path: str,
        *,
        methods: Sequence[str] = ("GET", "POST"),
        name: str | None = None,
        **options: Unpack[FunctionOptionArgs],
    ) -> Callable[[F], F]:
        """Decorator: register the function and serve it at ``path`` on the local HTTP server.

        The handler receives :class:`~lakekit.events.Http` and returns an
        :class:`~lakekit.events.HttpResponse` or a JSON-able value. Requests are synchronous
        and never retried (``retries`` applies to the function's other triggers only).

        Raises:
            InvalidInputError: a bad path, method, name or option; the route is already bound
                to another function.
        """
        from lakekit.triggers.model import HttpTrigger

        chosen = (methods,) if isinstance(methods, str) else tuple(methods)
        trigger = HttpTrigger(path=path, methods=chosen)
        return self._trigger_decorator(lambda _fn: trigger, name, options)

    def add_trigger(self, name: str, trigger: Trigger) -> None:
        """Attach ``trigger`` to the registered function ``name`` (what the decorators do).
        Adding a trigger the function already has does nothing.

        Raises:
            NotFoundError: no function called ``name``.
            InvalidInputError: ``trigger`` is not a trigger, or it clashes with another
                function's trigger (the same HTTP route, or the same stream and group).
        """
        from lakekit.errors import NotFoundError
        from lakekit.triggers.model import TRIGGER_TYPES

        if not isinstance(trigger, TRIGGER_TYPES):
            raise InvalidInputError(
                f"not a trigger: {type(trigger).__name__}; use ObjectTrigger, StreamTrigger, "
                "ScheduleTrigger or HttpTrigger from lakekit.triggers"
            )
        with self._trigger_lock:
            if name not in self.adapter.functions():
                raise NotFoundError(
                    f"no function named {name!r} is registered; register it before adding a trigger"
                )
            self._check_clash(name, trigger)
            bound = self._bindings.setdefault(name, [])
            if trigger not in bound:
                bound.append(trigger)

    def triggers(self, name: str | None = None) -> list[TriggerBinding]:
        """The registered functions' triggers (of one function, or all), sorted by function
        name, each function's in the order they were added. The same list drives the local
        server and, later, cloud deployments."""
        from lakekit.triggers.model import TriggerBinding

        with self._trigger_lock:
            return [
                TriggerBinding(function, trigger)
                for function, bound in sorted(self._bindings.items())
                if name is None or function == name
                for trigger in bound
            ]

    def serve(self, **settings: Any) -> LocalServer:
        """Start a :class:`~lakekit.triggers.server.LocalServer` for this runtime's lake and
        return it running (use it as a context manager, or call ``stop()``). ``settings`` are
        the server's keyword arguments (``http_port=0``, ``scan_interval``, ...).

        Raises:
            ConfigurationError: the runtime has no lake (build it through lakekit.connect).
            NotSupportedError: the runtime is not the local one.
        """
        from lakekit.errors import ConfigurationError
        from lakekit.triggers.server import LocalServer

        lake = getattr(self.adapter, "lake", None)
        if lake is None:
            raise ConfigurationError(
                "this function runtime belongs to no lake: open it with lakekit.connect(...) "
                "or start lakekit.triggers.LocalServer(lake) yourself"
            )
        server = LocalServer(lake, **settings)
        server.start()
        return server

    def _trigger_decorator(
        self,
        make: Callable[[Callable[..., Any]], Trigger],
        name: str | None,
        options: FunctionOptionArgs,
    ) -> Callable[[F], F]:
        unknown = sorted(set(options) - _OPTION_NAMES)
        if unknown:
            raise InvalidInputError(
                f"unknown option(s) {unknown}; functions take {sorted(_OPTION_NAMES)}"
            )
        given = {key: value for key, value in options.items() if value is not None}
        _fit_options(self.adapter, given)  # refuse bad or unsupported options at once

        def decorate(fn: F) -> F:
            self._register_decorated(name or fn.__name__, fn, given, make(fn))
            return fn

        return decorate

    def _register_decorated(
        self, name: str, fn: Handler, given: Mapping[str, Any], trigger: Trigger | None
    ) -> None:
        """Register ``fn`` from a decorator. Stacked decorators on the same function (a
        trigger decorator above or below another decorator) merge their options; giving one
        option two different values is an error."""
        with self._trigger_lock:
            previous = self._decorated.get(name)
            stacked = (
                previous is not None
                and previous[0] is fn
                and (trigger is not None or bool(self._bindings.get(name)))
            )
            merged = dict(given)
            if stacked:
                assert previous is not None
                before = previous[1]
                if before is None:  # registered directly: its options count as given
                    before = dataclasses.asdict(self.adapter.functions()[name])
                merged = _merge_options(name, before, given)
            if trigger is not None:
                self._check_clash(name, trigger)
            self.register(name, fn, _fit_options(self.adapter, merged))
            self._decorated[name] = (fn, merged)
            if trigger is not None:
                self.add_trigger(name, trigger)

    def _check_clash(self, name: str, trigger: Trigger) -> None:
        from lakekit.triggers.model import HttpTrigger, StreamTrigger

        for other, bound in self._bindings.items():
            if other == name:
                continue
            for existing in bound:
                if (
                    isinstance(trigger, HttpTrigger)
                    and isinstance(existing, HttpTrigger)
                    and trigger.path == existing.path
                    and set(trigger.methods) & set(existing.methods)
                ):
                    both = sorted(set(trigger.methods) & set(existing.methods))
                    raise InvalidInputError(
                        f"HTTP route {','.join(both)} {trigger.path} is already served by "
                        f"function {other!r}"
                    )
                if (
                    isinstance(trigger, StreamTrigger)
                    and isinstance(existing, StreamTrigger)
                    and (trigger.stream, trigger.group) == (existing.stream, existing.group)
                ):
                    raise InvalidInputError(
                        f"stream {trigger.stream!r} with consumer group {trigger.group!r} "
                        f"already triggers function {other!r}; give each function its own "
                        "group (two functions in one group would split the records)"
                    )

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


_OPTION_NAMES = frozenset(f.name for f in dataclasses.fields(FunctionOptions))


def _nothing(event: Any, context: Context) -> None:
    return None


def _merge_options(
    name: str, before: Mapping[str, Any], given: Mapping[str, Any]
) -> dict[str, Any]:
    merged = dict(before)
    for key, value in given.items():
        if key in merged and merged[key] != value:
            raise InvalidInputError(
                f"function {name!r}: {key}={value!r} conflicts with {key}={merged[key]!r} given "
                "by another of its decorators; give each option once"
            )
        merged[key] = value
    return merged
