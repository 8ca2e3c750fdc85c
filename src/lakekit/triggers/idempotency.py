"""Idempotency keys: let a handler do its work once per key, even though delivery is
at-least-once.

::

    from lakekit.triggers import idempotent, once

    @lake.functions.on_object_created(prefix="raw/")
    def load(event, context):
        with once(context, event.id) as first:
            if first:
                ...  # runs once per event id, across retries, redeliveries and processes

    @lake.functions.on_schedule("rate(1 hour)")
    @idempotent                       # the same, keyed on event.id, for the whole body
    def hourly(event, context): ...

How it works: a **marker object** per key in the lake's object store,
``_lakekit/idempotency/<scope>/<sha256(key)>.json`` (``scope`` defaults to the function's name),
moved through states with the store's atomic conditional writes, so it is correct across
threads, processes and restarts (and on any store with ``PUT_IF_ABSENT`` and ``PUT_IF_MATCH``):

1. ``create`` the marker as ``running`` with a lease (the attempt's deadline). Whoever creates
   it runs the body (``first`` is True).
2. Someone else finds it: ``done`` -> ``first`` is False (the work is done, skip it);
   ``running`` with a live lease -> wait (polling) until it is done or released, at most until
   the waiting attempt's own deadline, then raise :class:`~lakekit.errors.ConflictError` (the
   invocation fails and is retried later); ``released`` or an **expired** lease -> take it over
   with a compare-and-swap on the marker's etag (only one taker wins).
3. The body returns -> the marker becomes ``done`` (compare-and-swap). The body raises -> the
   marker becomes ``released`` and the exception propagates, so a retry runs the body again.

What it cannot do: make side effects outside the body atomic with the marker (a crash after
the work but before ``done`` is written leaves a ``running`` marker whose lease expires, and the
retry runs the body again: keep the body itself idempotent where you can), or stop a sync
handler whose attempt timed out (Python cannot kill a thread): its lease has expired, so a
retry may take over while it still runs; it then logs a warning instead of marking ``done``.

Markers are small and are never deleted automatically: :func:`purge_markers` removes old
finished ones (keep them longer than events can be redelivered).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import inspect
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from lakekit.capabilities import Capability, require
from lakekit.errors import (
    AlreadyExistsError,
    ConfigurationError,
    ConflictError,
    InvalidInputError,
    NotFoundError,
    PreconditionFailedError,
)
from lakekit.identifiers import validate_name

if TYPE_CHECKING:
    from lakekit.events import Event
    from lakekit.interfaces.function_runtime import Context
    from lakekit.interfaces.object_store import ObjectStore

__all__ = ["MARKER_PREFIX", "idempotent", "marker_key", "once", "purge_markers"]

MARKER_PREFIX = "_lakekit/idempotency"
"""Where markers live in the store (``_lakekit`` directories are never object events)."""

_POLL_SECONDS = 0.05
_MAX_POLL_SECONDS = 0.5
_log = logging.getLogger("lakekit.triggers.idempotency")
F = TypeVar("F", bound=Callable[..., Any])


def marker_key(scope: str, key: str) -> str:
    """The object key of the marker for ``key`` in ``scope``."""
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()
    return f"{MARKER_PREFIX}/{scope}/{digest}.json"


@contextlib.contextmanager
def once(
    context: Context,
    key: str,
    *,
    scope: str | None = None,
    store: ObjectStore | None = None,
    lease: float | None = None,
) -> Iterator[bool]:
    """Enter once per ``key``: yields True to the one caller that should do the work, False
    to callers that come after it finished (see the module docstring for the protocol).

    Args:
        context: the handler's context (its lake's store, function name and deadline).
        key: the idempotency key, usually ``event.id`` (or per record for stream batches:
            ``f"{event.stream}/{event.partition}/{record.offset}"``).
        scope: keys are unique within a scope; default the function's name.
        store: where markers live; default ``context.lake.store``.
        lease: seconds the work may take before another caller may take over; default the
            attempt's remaining time (``context.remaining_time()``).

    Raises:
        ConflictError: another caller is still working on ``key`` when this attempt's
            deadline comes (the invocation fails and is retried later).
        ConfigurationError: no store (the context has no lake and none was given).
        NotSupportedError: the store lacks atomic conditional writes.
        InvalidInputError: an empty key or a bad scope.
    """
    if not isinstance(key, str) or not key:
        raise InvalidInputError("an idempotency key must be a non-empty str, e.g. event.id")
    scope = validate_name(scope or context.function_name, what="idempotency scope")
    if store is None:
        if context.lake is None:
            raise ConfigurationError(
                "once() needs a store: the handler's context has no lake; pass store=..."
            )
        store = context.lake.store
    require(store.adapter, Capability.PUT_IF_ABSENT, "idempotency markers need create-if-absent")
    require(store.adapter, Capability.PUT_IF_MATCH, "idempotency markers need compare-and-swap")
    marker = _Marker(store, marker_key(scope, key), key)
    seconds = context.remaining_time() if lease is None else lease
    first = marker.acquire(seconds, context)
    if not first:
        yield False
        return
    try:
        yield True
    except BaseException:
        marker.finish("released")
        raise
    marker.finish("done")


def idempotent(
    fn: F | None = None,
    *,
    key: Callable[[Event], str] | None = None,
    scope: str | None = None,
) -> Any:
    """Decorator: run the handler's body at most once per ``key(event)`` (default
    ``event.id``) with :func:`once`; a repeat returns None without running it. Works on
    ``def`` and ``async def`` handlers; put it *below* the trigger decorator.

    Raises:
        Whatever :func:`once` raises, at invocation time.
    """

    def key_of(event: Event) -> str:
        return key(event) if key is not None else event.id

    def decorate(handler: F) -> F:
        if inspect.iscoroutinefunction(handler):

            @functools.wraps(handler)
            async def run_async(event: Event, context: Context) -> Any:
                with once(context, key_of(event), scope=scope) as first:
                    if not first:
                        return None
                    return await handler(event, context)

            return run_async  # type: ignore[return-value]

        @functools.wraps(handler)
        def run(event: Event, context: Context) -> Any:
            with once(context, key_of(event), scope=scope) as first:
                if not first:
                    return None
                return handler(event, context)

        return run  # type: ignore[return-value]

    return decorate(fn) if fn is not None else decorate


def purge_markers(store: ObjectStore, older_than: timedelta, scope: str | None = None) -> int:
    """Delete ``done`` and ``released`` markers (and ``running`` ones whose lease expired)
    last written more than ``older_than`` ago, of one scope or all. Returns how many.

    A redelivered event whose marker was purged runs again: keep markers longer than events
    can be redelivered (stream retention, dead-letter redrives).
    """
    prefix = f"{MARKER_PREFIX}/{validate_name(scope, what='scope')}/" if scope else MARKER_PREFIX
    cutoff = datetime.now(UTC) - older_than
    doomed = []
    for meta in store.list(prefix):
        if meta.last_modified >= cutoff:
            continue
        try:
            state = json.loads(store.get(meta.key))
        except (NotFoundError, ValueError):
            continue
        if state.get("state") != "running" or float(state.get("expires", 0)) < time.time():
            doomed.append(meta.key)
    store.delete(doomed)
    return len(doomed)


class _Marker:
    def __init__(self, store: ObjectStore, key: str, idempotency_key: str) -> None:
        self.store = store
        self.key = key
        self.label = idempotency_key[:200]
        self.owner = uuid.uuid4().hex
        self.etag: str | None = None

    def _body(self, state: str, expires: float) -> bytes:
        data = {"state": state, "owner": self.owner, "expires": expires, "key": self.label}
        return json.dumps(data, separators=(",", ":")).encode("utf-8")

    def acquire(self, lease: float, context: Context) -> bool:
        """True if this caller now holds the marker, False if the work is done."""
        delay = _POLL_SECONDS
        while True:
            expires = time.time() + max(lease, 0.0)
            try:
                self.etag = self.store.create(self.key, self._body("running", expires)).etag
                return True
            except AlreadyExistsError:
                pass
            try:
                etag = self.store.head(self.key).etag
                state = json.loads(self.store.get(self.key))
            except NotFoundError:
                continue  # deleted (purged) meanwhile: try to create it again
            except ValueError:
                state = {"state": "released"}  # unreadable marker: take it over
            status = state.get("state")
            if status == "done":
                return False
            if status != "running" or float(state.get("expires", 0)) <= time.time():
                try:
                    body = self._body("running", expires)
                    self.etag = self.store.update(self.key, body, etag=etag).etag
                    return True
                except (PreconditionFailedError, NotFoundError):
                    continue  # someone else moved it first: look again
            if context.remaining_time() <= delay:
                raise ConflictError(
                    f"idempotency key {self.label!r} is being worked on by another invocation "
                    f"(marker {self.key}); this attempt gives up and will be retried"
                )
            time.sleep(delay)
            delay = min(delay * 2, _MAX_POLL_SECONDS)

    def finish(self, state: str) -> None:
        assert self.etag is not None
        try:
            self.store.update(self.key, self._body(state, 0.0), etag=self.etag)
        except (PreconditionFailedError, NotFoundError):
            _log.warning(
                "idempotency marker %s was taken over by another invocation while this one "
                "worked (its lease expired): the work may have run twice; give once() a "
                "longer lease",
                self.key,
            )
