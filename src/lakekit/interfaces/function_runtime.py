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
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

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
    lake: Lake | None = None

    def remaining_time(self) -> float:
        """Seconds left before this attempt times out (never negative)."""
        import time

        return max(0.0, self.deadline - time.monotonic())


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """An event that exhausted its retries, with the last error."""

    function_name: str
    event: Any
    error_type: str
    error: str
    attempts: int
    failed_at: datetime
    invocation_id: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


class FunctionRuntimeAdapter(ABC):
    """The implementer's interface."""

    capabilities: ClassVar[frozenset[Capability]] = frozenset()

    @abstractmethod
    def register(self, name: str, handler: Handler, options: FunctionOptions) -> None:
        """Register (or replace) the handler called ``name``."""

    @abstractmethod
    def unregister(self, name: str) -> None:
        """Raises: NotFoundError."""

    @abstractmethod
    def functions(self) -> dict[str, FunctionOptions]:
        """The registered functions and their options."""

    @abstractmethod
    def invoke(self, name: str, event: Event) -> Any:
        """Run the handler now and return its result.

        Raises:
            NotFoundError: no function called ``name``.
            FunctionTimeoutError: the last attempt ran past the timeout.
            FunctionError: the last attempt failed; the handler's exception is chained.
        """

    @abstractmethod
    def invoke_async(self, name: str, event: Event) -> Future[Any]:
        """Queue the event and return at once. Failures are retried, then dead-lettered.

        Raises:
            NotFoundError: no function called ``name``.
        """

    @abstractmethod
    def dead_letters(self, name: str | None = None) -> list[DeadLetter]:
        """Events that exhausted their retries, oldest first (for one function or all)."""

    def close(self, wait: bool = True) -> None:  # noqa: B027 - optional hook
        """Stop accepting work; with ``wait``, let queued invocations finish."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class FunctionRuntime:
    """The user-facing runtime (``lake.functions``)."""

    def __init__(self, adapter: FunctionRuntimeAdapter) -> None:
        self.adapter = adapter

    def __repr__(self) -> str:
        return f"FunctionRuntime({self.adapter!r})"

    @property
    def capabilities(self) -> frozenset[Capability]:
        return self.adapter.capabilities

    def register(
        self, name: str, handler: Handler, options: FunctionOptions | None = None
    ) -> None:
        from lakekit.identifiers import validate_name

        validate_name(name, what="function name")
        if not callable(handler):
            raise InvalidInputError(f"handler for {name!r} is not callable")
        self.adapter.register(name, handler, options or FunctionOptions())

    def handler(
        self,
        name: str | None = None,
        *,
        timeout: float = 60.0,
        retries: int = 2,
        backoff: float = 0.5,
        concurrency: int = 4,
    ) -> Callable[[F], F]:
        """Decorator: register the function under ``name`` (default: its ``__name__``)."""
        options = FunctionOptions(
            timeout=timeout, retries=retries, backoff=backoff, concurrency=concurrency
        )

        def decorate(fn: F) -> F:
            self.register(name or fn.__name__, fn, options)
            return fn

        return decorate

    def functions(self) -> dict[str, FunctionOptions]:
        return self.adapter.functions()

    def invoke(self, name: str, payload: Any = None) -> Any:
        """Run ``name`` synchronously with ``payload`` (wrapped in :class:`Invoke` unless it is
        already an :class:`Event`) and return its result. See FunctionRuntimeAdapter.invoke."""
        return self.adapter.invoke(name, _as_event(payload))

    def invoke_async(self, name: str, payload: Any = None) -> Future[Any]:
        """Queue ``name`` with ``payload``; the future resolves to the result or the error."""
        require(self.adapter, Capability.ASYNC_INVOKE)
        return self.adapter.invoke_async(name, _as_event(payload))

    def dead_letters(self, name: str | None = None) -> list[DeadLetter]:
        require(self.adapter, Capability.DEAD_LETTER)
        return self.adapter.dead_letters(name)

    def close(self, wait: bool = True) -> None:
        self.adapter.close(wait)


def _as_event(payload: Any) -> Event:
    return payload if isinstance(payload, Event) else Invoke(payload=payload)
