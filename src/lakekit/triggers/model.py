"""Triggers as data: what makes a registered function run.

A trigger is a small frozen value recorded next to a function by the decorators of
:class:`~lakekit.interfaces.function_runtime.FunctionRuntime` (``@lake.functions.on_stream(...)``
and friends) and listed by ``lake.functions.triggers()``. Nothing here runs anything: the local
server (:mod:`lakekit.triggers.server`) reads the bindings and wires them to local sources, and
a cloud deployment reads the *same* bindings to create S3 notifications, event source mappings,
schedules and HTTP routes. Every trigger validates itself when it is built, so a bad prefix,
stream name, schedule or path fails at decoration time, not when the server starts.

::

    ObjectTrigger(prefix, suffix, events)          objects created/deleted in the lake's store
    StreamTrigger(stream, group, batch_size, ...)   batches of records of one stream partition
    ScheduleTrigger(expression)                     rate(...) / cron(...) ticks, UTC
    HttpTrigger(path, methods)                      requests to a path of the local HTTP server
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from lakekit._keys import MAX_KEY_BYTES, validate_prefix
from lakekit.errors import InvalidInputError
from lakekit.identifiers import validate_name

__all__ = [
    "HTTP_METHODS",
    "MAX_BATCH_SIZE",
    "MAX_BATCH_WAIT",
    "TRIGGER_TYPES",
    "HttpTrigger",
    "ObjectEventKind",
    "ObjectTrigger",
    "ScheduleTrigger",
    "StartPosition",
    "StreamTrigger",
    "Trigger",
    "TriggerBinding",
]

ObjectEventKind = Literal["created", "deleted"]
StartPosition = Literal["earliest", "latest"]

HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
"""The methods an :class:`HttpTrigger` may route."""

MAX_BATCH_SIZE = 10_000
"""The largest stream batch (Kinesis and Event Hubs event source mappings allow 10,000)."""
MAX_BATCH_WAIT = 300.0
"""The longest batching window in seconds (Lambda's MaximumBatchingWindowInSeconds)."""

_FORBIDDEN_IN_SUFFIX = frozenset("\x00\\\r\n/")
_PATH_SEGMENT = re.compile(r"[A-Za-z0-9._~!$&'()*+,;=:@-]+")


@dataclass(frozen=True, slots=True)
class ObjectTrigger:
    """Run the function for objects created (or deleted) under ``prefix`` ending in ``suffix``.

    Keys are matched as plain strings, as S3 notification filters do: ``prefix="raw/"`` and
    ``suffix=".json"`` match ``raw/2026/orders.json``. Events carry keys relative to the lake
    root (what ``lake.store.get`` takes).

    Raises:
        InvalidInputError: a prefix that is not a valid key prefix (absolute, ``..``, reserved
            ``.lakekit`` segment), a suffix with ``/`` or control characters, or unknown
            ``events``.
    """

    prefix: str = ""
    suffix: str = ""
    events: tuple[ObjectEventKind, ...] = ("created",)

    kind = "object"

    def __post_init__(self) -> None:
        validate_prefix(self.prefix)
        if not isinstance(self.suffix, str):
            raise InvalidInputError(f"suffix must be a str, got {type(self.suffix).__name__}")
        bad = _FORBIDDEN_IN_SUFFIX.intersection(self.suffix)
        if bad:
            shown = ", ".join(repr(c) for c in sorted(bad))
            raise InvalidInputError(
                f"object trigger suffix {self.suffix!r} contains {shown}: a suffix matches the end "
                "of a key's last segment, e.g. '.json'"
            )
        if len(self.suffix.encode("utf-8")) > MAX_KEY_BYTES:
            raise InvalidInputError(f"suffix is longer than {MAX_KEY_BYTES} UTF-8 bytes")
        raw: object = self.events  # a single string is accepted for one kind
        events: tuple[object, ...] = (raw,) if isinstance(raw, str) else tuple(self.events)
        unknown = [e for e in events if e not in ("created", "deleted")]
        if unknown or not events:
            raise InvalidInputError(
                f"object trigger events must be 'created' and/or 'deleted', got {self.events!r}"
            )
        object.__setattr__(self, "events", tuple(sorted({str(e) for e in events})))

    def matches(self, key: str) -> bool:
        """Whether ``key`` falls under this trigger's prefix and suffix."""
        return key.startswith(self.prefix) and key.endswith(self.suffix)

    def __str__(self) -> str:
        pattern = f"{self.prefix}*{self.suffix}"
        return f"object {'/'.join(self.events)} {pattern}"


@dataclass(frozen=True, slots=True)
class StreamTrigger:
    """Run the function with batches of records from one partition of ``stream``.

    Args:
        stream: the stream's name.
        group: the consumer group the trigger reads as (one group per trigger; the decorator
            defaults it to the function's name). Its committed offsets are where the trigger
            resumes after a restart.
        batch_size: most records per invocation (1..10,000).
        max_wait: seconds to wait for a batch to fill before invoking with fewer records
            (a batching window; 0 invokes as soon as records are there).
        start: where a group that never committed starts: ``"earliest"`` (every retained
            record) or ``"latest"`` (only records published from the trigger's first start
            on; that position is committed at once, so a restart does not skip records).

    Raises:
        InvalidInputError: a bad name, batch size, wait or start position.
    """

    stream: str
    group: str
    batch_size: int = 100
    max_wait: float = 0.0
    start: StartPosition = "earliest"

    kind = "stream"

    def __post_init__(self) -> None:
        validate_name(self.stream, what="stream name")
        validate_name(self.group, what="consumer group")
        size = self.batch_size
        if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= MAX_BATCH_SIZE:
            raise InvalidInputError(
                f"batch_size must be an int from 1 to {MAX_BATCH_SIZE}, got {self.batch_size!r}"
            )
        wait = self.max_wait
        if isinstance(wait, bool) or not isinstance(wait, int | float):
            raise InvalidInputError(f"max_wait must be a number of seconds, got {wait!r}")
        if not 0 <= wait <= MAX_BATCH_WAIT:
            raise InvalidInputError(
                f"max_wait must be from 0 to {MAX_BATCH_WAIT:g} seconds, got {wait!r}"
            )
        object.__setattr__(self, "max_wait", float(wait))
        if self.start not in ("earliest", "latest"):
            raise InvalidInputError(f"start must be 'earliest' or 'latest', got {self.start!r}")

    def __str__(self) -> str:
        return f"stream {self.stream} (group {self.group}, batches of <= {self.batch_size})"


@dataclass(frozen=True, slots=True)
class ScheduleTrigger:
    """Run the function on a schedule: ``rate(5 minutes)`` or ``cron(0 3 * * ? *)`` (UTC).

    See :mod:`lakekit.triggers.schedule` for the accepted expressions.

    Raises:
        InvalidInputError: the expression does not parse (the message says what to fix).
    """

    expression: str

    kind = "schedule"

    def __post_init__(self) -> None:
        from lakekit.triggers.schedule import parse_schedule

        if not isinstance(self.expression, str):
            raise InvalidInputError(
                f"schedule expression must be a str, got {type(self.expression).__name__}"
            )
        object.__setattr__(self, "expression", " ".join(self.expression.split()))
        parse_schedule(self.expression)

    def __str__(self) -> str:
        return f"schedule {self.expression}"


@dataclass(frozen=True, slots=True)
class HttpTrigger:
    """Run the function for HTTP requests to ``path`` with one of ``methods``.

    ``path`` is matched exactly (after percent-decoding the request path; a trailing ``/``
    matters). Requests are synchronous and not retried: the response is the handler's result.

    Raises:
        InvalidInputError: a path that does not start with ``/``, has a query string, a
            fragment, ``.``/``..`` or empty segments, or characters a URL path cannot hold;
            unknown methods.
    """

    path: str
    methods: tuple[str, ...] = ("GET", "POST")

    kind = "http"

    def __post_init__(self) -> None:
        _check_http_path(self.path)
        raw: object = self.methods  # a single string is accepted for one method
        methods: tuple[object, ...] = (raw,) if isinstance(raw, str) else tuple(self.methods)
        upper = []
        for method in methods:
            if not isinstance(method, str) or method.upper() not in HTTP_METHODS:
                raise InvalidInputError(
                    f"unknown HTTP method {method!r}; use {', '.join(sorted(HTTP_METHODS))}"
                )
            upper.append(method.upper())
        if not upper:
            raise InvalidInputError("an HTTP trigger needs at least one method")
        object.__setattr__(self, "methods", tuple(sorted(set(upper))))

    def __str__(self) -> str:
        return f"http {','.join(self.methods)} {self.path}"


Trigger = ObjectTrigger | StreamTrigger | ScheduleTrigger | HttpTrigger
"""Any trigger."""

TRIGGER_TYPES = (ObjectTrigger, StreamTrigger, ScheduleTrigger, HttpTrigger)


@dataclass(frozen=True, slots=True)
class TriggerBinding:
    """One trigger of one registered function (what ``lake.functions.triggers()`` lists)."""

    function: str
    trigger: Trigger

    def to_dict(self) -> dict[str, Any]:
        """The binding as JSON-ready data: ``{"function": ..., "kind": ..., <trigger fields>}``."""
        fields = {name: getattr(self.trigger, name) for name in self.trigger.__slots__}
        data: dict[str, Any] = {"function": self.function, "kind": self.trigger.kind}
        data.update({k: list(v) if isinstance(v, tuple) else v for k, v in fields.items()})
        return data

    def __str__(self) -> str:
        return f"{self.function} <- {self.trigger}"


def _check_http_path(path: object) -> None:
    if not isinstance(path, str):
        raise InvalidInputError(f"HTTP path must be a str, got {type(path).__name__}")
    if not path.startswith("/"):
        raise InvalidInputError(f"HTTP path {path!r} must start with '/', e.g. '/orders'")
    if "?" in path or "#" in path:
        raise InvalidInputError(
            f"HTTP path {path!r} must not contain '?' or '#': routes match the path only"
        )
    if path == "/":
        return
    segments = path[1:].removesuffix("/").split("/")
    for segment in segments:
        if segment in ("", ".", ".."):
            raise InvalidInputError(f"HTTP path {path!r} has an empty, '.' or '..' segment")
        if not _PATH_SEGMENT.fullmatch(segment):
            raise InvalidInputError(
                f"HTTP path {path!r}: segment {segment!r} may hold only letters, digits and "
                "-._~!$&'()*+,;=:@ (routes match the percent-decoded request path)"
            )
    if len(path.encode("utf-8")) > 2048:
        raise InvalidInputError("HTTP path is longer than 2048 bytes")
