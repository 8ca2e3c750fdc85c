"""The local trigger server: runs a lake's triggers against the local runtime.

::

    with lakekit.connect("local://./lake") as lake:
        @lake.functions.on_object_created(prefix="raw/", suffix=".json")
        def load(event, context): ...

        with lake.functions.serve(http_port=0) as server:   # or LocalServer(lake).start()
            print(server.url)                                # the HTTP server, if any route
            ...                                              # triggers fire until stop()

The server reads ``lake.functions.triggers()`` when it starts (triggers added later need a
restart) and wires each kind to its local source:

=========  ===================================================  ===============================
trigger    source                                               invocation
=========  ===================================================  ===============================
object     :mod:`~lakekit.triggers.object_events` (listener +   async, at-least-once, retries,
           scans of the lake folder)                            dead letters
stream     :mod:`~lakekit.triggers.streams` (a consumer group   async per batch, partial batch
           per trigger)                                         failure, commit after finish
schedule   :mod:`~lakekit.triggers.scheduler`                   async, at-least-once
http       :mod:`~lakekit.triggers.http_server` (127.0.0.1)     sync, once, no retries
=========  ===================================================  ===============================

Handlers run on the lake's :class:`~lakekit.adapters.local.function_runtime.
LocalFunctionRuntime` with the options they were registered with (timeout, retries, backoff,
concurrency) and ``context.lake`` set. Every dead letter the runtime writes while the server
runs is also published, as the JSON of :meth:`DeadLetter.to_dict`, to the **dead-letter
stream** (``dead_letters`` by default, keyed by function name), where it can be replayed,
consumed by another trigger or counted; ``lake.functions.dead_letters()`` lists the same
letters from the store. Letters of functions triggered *by* the dead-letter stream are not
published again (that would loop).

``stop()`` drains: no new events are taken, HTTP requests in progress are answered,
invocations in flight finish (up to ``drain_timeout``), stream offsets are committed. What has
not finished by then is not lost: object events stay queued in the state file, stream batches
uncommitted and schedule ticks unrecorded, so the next start delivers them again.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from concurrent.futures import Future
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from lakekit.capabilities import Capability
from lakekit.errors import ConfigurationError, InvalidInputError, NotSupportedError
from lakekit.events import Event, Http, StreamRecords
from lakekit.interfaces.function_runtime import DeadLetter
from lakekit.triggers.http_server import DEFAULT_MAX_BODY_BYTES, HttpServer
from lakekit.triggers.model import (
    HttpTrigger,
    ObjectTrigger,
    ScheduleTrigger,
    StreamTrigger,
    TriggerBinding,
)
from lakekit.triggers.object_events import ObjectEventSource
from lakekit.triggers.schedule import Clock, SystemClock
from lakekit.triggers.scheduler import Scheduler
from lakekit.triggers.state import ServerLock, TriggerState
from lakekit.triggers.streams import StreamTriggerSource

if TYPE_CHECKING:
    from lakekit.adapters.local.function_runtime import LocalFunctionRuntime
    from lakekit.lake import Lake

__all__ = ["DEFAULT_DEAD_LETTER_STREAM", "LocalServer", "STATE_DIR"]

DEFAULT_DEAD_LETTER_STREAM = "dead_letters"
STATE_DIR = ".lakekit/triggers"
"""The server's state folder, relative to the lake root (reserved: never an object)."""

_log = logging.getLogger("lakekit.triggers")


class LocalServer:
    """Runs a lake's triggers locally (see the module docstring).

    Args:
        lake: the lake whose ``lake.functions`` triggers to serve.
        http_host: a loopback address for the HTTP server.
        http_port: its port; 0 (default) picks a free one (see :attr:`url`).
        max_body_bytes: larger HTTP request bodies get 413.
        scan_interval: seconds between scans of the lake folder for object events.
        settle: a file written by another program is reported once it is this many seconds
            old and unchanged between two scans.
        stream_poll_interval: seconds a stream trigger waits when its stream has nothing new.
        dead_letter_stream: the stream dead letters are published to; None to not publish.
        catch_up_schedules: fire the latest missed tick of each schedule at start (default)
            or skip missed ticks.
        clock: the scheduler's clock (tests pass a ManualClock).
        drain_timeout: seconds :meth:`stop` waits for invocations in flight.

    Raises:
        InvalidInputError: a bad interval or stream name.
    """

    def __init__(
        self,
        lake: Lake,
        *,
        http_host: str = "127.0.0.1",
        http_port: int = 0,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        scan_interval: float = 1.0,
        settle: float = 1.0,
        stream_poll_interval: float = 0.2,
        dead_letter_stream: str | None = DEFAULT_DEAD_LETTER_STREAM,
        catch_up_schedules: bool = True,
        clock: Clock | None = None,
        drain_timeout: float = 30.0,
    ) -> None:
        from lakekit.identifiers import validate_name

        for what, value in (
            ("scan_interval", scan_interval),
            ("stream_poll_interval", stream_poll_interval),
        ):
            if not value > 0:
                raise InvalidInputError(f"{what} must be > 0 seconds, got {value!r}")
        if settle < 0 or drain_timeout < 0:
            raise InvalidInputError("settle and drain_timeout must be >= 0 seconds")
        if dead_letter_stream is not None:
            validate_name(dead_letter_stream, what="dead-letter stream name")
        self.lake = lake
        self._http_host = http_host
        self._http_port = http_port
        self._max_body = max_body_bytes
        self._scan_interval = scan_interval
        self._settle = settle
        self._stream_poll = stream_poll_interval
        self.dead_letter_stream = dead_letter_stream
        self._catch_up = catch_up_schedules
        self._clock: Clock = clock or SystemClock()
        self._drain_timeout = drain_timeout
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._running = False
        self._runtime: LocalFunctionRuntime | None = None
        self._server_lock: ServerLock | None = None
        self._state: TriggerState | None = None
        self.bindings: list[TriggerBinding] = []
        self.objects: ObjectEventSource | None = None
        self.streams: list[StreamTriggerSource] = []
        self.scheduler: Scheduler | None = None
        self.http: HttpServer | None = None

    def __repr__(self) -> str:
        state = "running" if self._running else "stopped"
        return f"LocalServer({self.lake!r}, {state}, triggers={len(self.bindings)})"

    def __enter__(self) -> LocalServer:
        if not self._running:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str | None:
        """The HTTP server's base URL (``http://127.0.0.1:PORT``), None without HTTP routes."""
        return self.http.url if self.http is not None else None

    @property
    def running(self) -> bool:
        return self._running

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> LocalServer:
        """Wire every trigger of ``lake.functions`` to its source and start them.

        Raises:
            NotSupportedError: the lake's runtime is not the local one, or object/schedule
                triggers on a lake whose store is not a local folder.
            ConfigurationError: another server already serves this lake, the HTTP port is
                taken, or the server was already started.
        """
        with self._lock:
            if self._running or self._stopped.is_set():
                raise ConfigurationError(
                    "this LocalServer was already started; create a new one to serve again"
                )
            self._runtime = self._local_runtime()
            self.bindings = self.lake.functions.triggers()
            try:
                self._start_sources()
            except BaseException:
                self._shutdown(timeout=0.0)
                raise
            self._running = True
        _log.info("lakekit server: %d trigger(s) running", len(self.bindings))
        return self

    def stop(self, timeout: float | None = None) -> bool:
        """Stop every source and drain (see the module docstring). Idempotent.

        Args:
            timeout: seconds to wait for invocations in flight (default ``drain_timeout``).

        Returns:
            True if everything in flight finished; False if something was left to be
            delivered again at the next start.
        """
        with self._lock:
            if not self._running:
                self._stopped.set()
                return True
            self._running = False
            drained = self._shutdown(self._drain_timeout if timeout is None else timeout)
        self._stopped.set()
        return drained

    def wait(self, timeout: float | None = None) -> bool:
        """Block until :meth:`stop` is called (from a signal handler or another thread) or
        ``timeout`` passes; returns whether the server has stopped."""
        return self._stopped.wait(timeout)

    # -- wiring ---------------------------------------------------------------------------------
    def _local_runtime(self) -> LocalFunctionRuntime:
        from lakekit.adapters.local.function_runtime import LocalFunctionRuntime

        adapter = self.lake.functions.adapter
        if not isinstance(adapter, LocalFunctionRuntime):
            raise NotSupportedError(
                type(adapter).__name__,
                Capability.ASYNC_INVOKE.value,
                "the local trigger server runs handlers on the local function runtime "
                "(functions = 'local')",
            )
        adapter.bind_lake(self.lake)
        return adapter

    def _root(self, what: str) -> Path:
        from lakekit.adapters.local.object_store import LocalObjectStore

        store = self.lake.store.adapter
        if not isinstance(store, LocalObjectStore):
            raise NotSupportedError(
                type(store).__name__,
                "local_folder",
                f"{what} on the local server need a local lake folder (store = local://...)",
            )
        return store.root

    def _start_sources(self) -> None:
        runtime = self._runtime
        assert runtime is not None
        kinds = {type(binding.trigger) for binding in self.bindings}
        if kinds & {ObjectTrigger, ScheduleTrigger}:
            root = self._root("object and schedule triggers")
            self._server_lock = ServerLock(root / STATE_DIR / "server.lock")
            self._state = TriggerState(root / STATE_DIR / "state.db")
        if self.dead_letter_stream is not None:
            runtime.add_dead_letter_listener(self._publish_dead_letter)
        objects = [b for b in self.bindings if isinstance(b.trigger, ObjectTrigger)]
        if objects:
            assert self._state is not None
            root = self._root("object triggers")
            self.objects = ObjectEventSource(
                root=str(root),
                bucket=str(root),
                bindings=objects,
                state=self._state,
                submit=self._submit_async,
                exclude=(runtime.dead_letter_prefix.rstrip("/") + "/",),
                scan_interval=self._scan_interval,
                settle=self._settle,
            )
            self.objects.start()
        for binding in self.bindings:
            if isinstance(binding.trigger, StreamTrigger):
                source = StreamTriggerSource(
                    binding,
                    self.lake.stream(binding.trigger.stream),
                    runtime.invoke_batch_async,
                    poll_interval=self._stream_poll,
                )
                self.streams.append(source)
                source.start()
        schedules = [b for b in self.bindings if isinstance(b.trigger, ScheduleTrigger)]
        if schedules:
            assert self._state is not None
            self.scheduler = Scheduler(
                schedules, self._submit_async, self._state, self._clock, catch_up=self._catch_up
            )
            self.scheduler.start()
        routes = [b for b in self.bindings if isinstance(b.trigger, HttpTrigger)]
        if routes:
            self.http = HttpServer(
                routes,
                self._invoke_request,
                host=self._http_host,
                port=self._http_port,
                max_body_bytes=self._max_body,
            )
            self.http.start()

    def _shutdown(self, timeout: float) -> bool:
        """Stop sources in order (no new work first), draining within ``timeout`` overall."""
        deadline = time.monotonic() + timeout

        def left() -> float:
            return max(0.0, deadline - time.monotonic())

        drained = True
        if self.http is not None:
            self.http.stop()
        if self.scheduler is not None:
            drained &= self.scheduler.stop(left())
        if self.objects is not None:
            drained &= self.objects.stop(left())
        for source in self.streams:
            drained &= source.stop(left())
        if self._runtime is not None:
            self._runtime.remove_dead_letter_listener(self._publish_dead_letter)
        if self._state is not None:
            self._state.close()
        if self._server_lock is not None:
            self._server_lock.release()
        if not drained:
            _log.warning(
                "lakekit server stopped with invocations still running; their events are "
                "delivered again at the next start"
            )
        return drained

    # -- invoking -------------------------------------------------------------------------------
    def _submit_async(self, function: str, event: Event) -> Future[Any]:
        assert self._runtime is not None
        return self._runtime.invoke_async(function, event)

    def _invoke_request(self, function: str, event: Http) -> Any:
        assert self._runtime is not None
        return self._runtime.invoke_request(function, event)

    def _publish_dead_letter(self, letter: DeadLetter) -> None:
        name = self.dead_letter_stream
        if name is None:
            return
        event = letter.event if isinstance(letter.event, dict) else {}
        if letter.event_type == StreamRecords.__name__ and event.get("stream") == name:
            _log.warning(
                "not publishing the dead letter of %r to %r: it came from that stream",
                letter.function_name,
                name,
            )
            return
        data = json.dumps(letter.to_dict(), ensure_ascii=False, allow_nan=False)
        self.lake.stream(name).publish(
            data,
            key=letter.function_name,
            headers={"function": letter.function_name, "error_type": letter.error_type},
        )
