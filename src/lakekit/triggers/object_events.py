"""Object events for a local lake: ``ObjectCreated`` / ``ObjectDeleted`` from a folder.

Two ways a change is noticed:

* **lakekit's own writes in this process** (``lake.store.put``/``copy``/``delete`` through any
  ``LocalObjectStore`` on the root) arrive through the store's change listener and are
  reported at once: lakekit writes are atomic (temp file + rename), so they are complete.
* **Everything else** (lakekit in other processes, files dropped into the folder by other
  programs, deletions with ``rm``) is found by a **scan** every ``scan_interval`` seconds:
  a walk of the folder compared with the snapshot of versions already reported (kept in
  :class:`~lakekit.triggers.state.TriggerState`).

**Stability rule** (files still being written by other programs are not reported
half-written): a new or changed file is reported once its version (inode, size, nanosecond
mtime) is the same in two consecutive scans *and* it was last modified at least ``settle``
seconds ago. A writer that pauses longer than ``settle`` mid-file can still be reported early
(and then again, as a change, when it finishes): programs that can should write to a temporary
name and rename, or write outside the watched prefix and move the file in.

**Delivery**: each change queues one event per matching trigger in the state file in the same
transaction that records the new version, then the event is submitted; its row is removed when
the invocation finishes (succeeded or dead-lettered). So events are at-least-once across
crashes and restarts: a file written while the server was down is found by the first scan
after it starts, and queued events that had not finished are delivered again with the same
``id``. In the normal case (orderly stop) nothing is delivered twice.

**Not reported**: lakekit's reserved ``.lakekit*`` entries, anything under a ``_lakekit``
directory (lake-table metadata and manifests, dead letters, idempotency markers), the
function runtime's dead-letter prefix, symbolic links, and names no key could have. Lake-table
*data files* are ordinary objects and are reported (a table write makes them before it
commits).

**First start**: with no snapshot for a trigger's prefix yet, the files there now are taken
as already seen (no backfill, as S3 notifications do not backfill); changes from then on are
reported, including while the server is stopped.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

from lakekit._keys import MAX_KEY_BYTES, RESERVED_PREFIX
from lakekit.adapters.local.object_store import (
    add_change_listener,
    etag_of,
    remove_change_listener,
)
from lakekit.events import Event, ObjectCreated, ObjectDeleted
from lakekit.interfaces.object_store import ObjectMeta
from lakekit.triggers.model import ObjectTrigger, TriggerBinding
from lakekit.triggers.state import PendingObjectEvent, TriggerState

__all__ = [
    "NOISE_SEGMENT",
    "ObjectEventSource",
    "ScanStats",
    "object_event_id",
    "scan_folder",
    "trigger_scopes",
]

NOISE_SEGMENT = "_lakekit"
"""Directories with this name hold lakekit's own objects (table metadata, dead letters,
idempotency markers): never reported."""

_FORBIDDEN_IN_NAMES = frozenset("\x00\\\r\n")
_log = logging.getLogger("lakekit.triggers.objects")

Submit = Callable[[str, Event], "Future[Any] | None"]
"""``submit(function, event)``: hand an event to the runtime; None if it was refused."""


class _Version(NamedTuple):
    etag: str
    size: int
    mtime_ns: int


@dataclass(frozen=True, slots=True)
class ScanStats:
    """What one scan saw and cost."""

    files: int
    seconds: float


def object_event_id(kind: str, key: str, etag: str | None) -> str:
    """The id of the event for version ``etag`` of ``key``: the same every time that change
    is reported (after a restart too), so handlers can dedupe on it."""
    text = f"{kind}\x00{key}\x00{etag or ''}"
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def scan_folder(
    root: str, scopes: Iterable[str], exclude: Sequence[str] = ()
) -> dict[str, _Version]:
    """Every reportable file under the key prefixes ``scopes`` of the folder ``root``:
    ``key -> version``. Skips what the module docstring lists as not reported."""
    found: dict[str, _Version] = {}
    for scope in _minimal_scopes(scopes):
        directory, _, partial = scope.rpartition("/")
        top = os.path.join(root, *directory.split("/")) if directory else root
        key_prefix = directory + "/" if directory else ""
        _walk(top, key_prefix, partial, exclude, found)
    return found


def _walk(
    top: str, key_prefix: str, name_filter: str, exclude: Sequence[str], found: dict[str, _Version]
) -> None:
    stack = [(top, key_prefix, name_filter)]
    while stack:
        directory, prefix, wanted = stack.pop()
        try:
            scan = os.scandir(directory)
        except OSError:
            continue  # vanished, not a directory, or unreadable: nothing to report there
        with scan:
            for entry in scan:
                name = entry.name
                if (wanted and not name.startswith(wanted)) or not _reportable_name(name):
                    continue
                key = prefix + name
                try:
                    # d_type from the directory listing: no system call for directories
                    if entry.is_dir(follow_symlinks=False):
                        if name != NOISE_SEGMENT and not (
                            exclude and _excluded(key + "/", exclude)
                        ):
                            stack.append((entry.path, key + "/", ""))
                        continue
                    if not entry.is_file(follow_symlinks=False):
                        continue  # symbolic links, sockets, FIFOs, devices
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                if len(key) > MAX_KEY_BYTES // 4 and len(key.encode("utf-8")) > MAX_KEY_BYTES:
                    continue  # no valid key is that long
                if exclude and _excluded(key, exclude):
                    continue
                found[key] = _Version(etag_of(st), st.st_size, st.st_mtime_ns)


def _reportable_name(name: str) -> bool:
    if name.startswith(RESERVED_PREFIX):
        return False
    if not _FORBIDDEN_IN_NAMES.isdisjoint(name):
        return False
    if name.isascii():
        return True
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # undecodable bytes come back as lone surrogates
        return False
    return True


def _excluded(key: str, exclude: Sequence[str]) -> bool:
    return any(key.startswith(prefix) for prefix in exclude)


def _is_noise(key: str, exclude: Sequence[str]) -> bool:
    segments = key.split("/")
    if any(s == NOISE_SEGMENT or s.startswith(RESERVED_PREFIX) for s in segments):
        return True
    return _excluded(key, exclude)


def _minimal_scopes(scopes: Iterable[str]) -> list[str]:
    """Drop scopes covered by another scope (``raw/`` covers ``raw/2026/``)."""
    result: list[str] = []
    for scope in sorted(set(scopes)):
        if not any(scope.startswith(kept) for kept in result):
            result.append(scope)
    return result


def trigger_scopes(bindings: Iterable[TriggerBinding]) -> list[str]:
    """The directory prefixes to watch for these object triggers (a prefix ``raw/2026-1`` is
    watched from its directory, ``raw/``)."""
    scopes = []
    for binding in bindings:
        assert isinstance(binding.trigger, ObjectTrigger)
        prefix = binding.trigger.prefix
        scopes.append(prefix[: prefix.rfind("/") + 1])
    return _minimal_scopes(scopes)


class ObjectEventSource:
    """Reports object changes under a local lake root to the bound functions (see the module
    docstring for the guarantees).

    Args:
        root: the lake folder (absolute, symlink-free).
        bucket: what events carry as ``bucket`` (the root's path).
        bindings: the object triggers to serve.
        state: the durable snapshot and queue.
        submit: hands an event to the runtime and returns its future.
        exclude: extra key prefixes never reported (the dead-letter prefix).
        scan_interval: seconds between scans.
        settle: a file changed by another program is reported once it is at least this many
            seconds old and unchanged since the previous scan.
    """

    def __init__(
        self,
        *,
        root: str,
        bucket: str,
        bindings: Sequence[TriggerBinding],
        state: TriggerState,
        submit: Submit,
        exclude: Sequence[str] = (),
        scan_interval: float = 1.0,
        settle: float = 1.0,
    ) -> None:
        self._root = root
        self._bucket = bucket
        self._bindings = list(bindings)
        self._state = state
        self._submit = submit
        self._exclude = tuple(exclude)
        self._scan_interval = scan_interval
        self._settle = settle
        self._scopes = trigger_scopes(self._bindings)
        self._cond = threading.Condition()  # guards _hooked only: writers never wait for a scan
        self._work = threading.Lock()  # one scan or batch of hooked changes at a time
        self._hooked: deque[tuple[str, str, ObjectMeta | None]] = deque()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._snapshot: dict[str, str] = {}
        self._unstable: dict[str, _Version] = {}
        self._inflight: set[tuple[str, str]] = set()
        self._inflight_cond = threading.Condition()
        self.last_scan: ScanStats | None = None

    def __repr__(self) -> str:
        return f"ObjectEventSource({self._root!r}, triggers={len(self._bindings)})"

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> None:
        """Load the snapshot (taking a baseline of prefixes never watched before), redeliver
        queued events, listen to this process's writes and start scanning."""
        stored = self._state.scopes()
        fresh = [s for s in self._scopes if not any(s.startswith(old) for old in stored)]
        baselines = {}
        for scope in fresh:
            files = scan_folder(self._root, [scope], self._exclude)
            baselines[scope] = {key: version.etag for key, version in files.items()}
        self._snapshot = self._state.rebase(self._scopes, baselines)
        if fresh:
            _log.info("object triggers: first watch of %s: existing files are not reported", fresh)
        known = {binding.function for binding in self._bindings}
        for pending in self._state.pending():
            if pending.function not in known:
                _log.warning(
                    "dropping a queued %s event for %r: the function has no object trigger now",
                    pending.kind,
                    pending.function,
                )
                self._state.finish(pending.function, pending.event_id)
                continue
            self._deliver(pending)
        add_change_listener(self._root, self._on_change)
        self._thread = threading.Thread(
            target=self._run, name="lakekit-triggers-objects", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float | None = None) -> bool:
        """Stop noticing changes and wait up to ``timeout`` seconds for submitted events to
        finish. Returns whether they all did (those that did not stay queued and are delivered
        again on the next start)."""
        remove_change_listener(self._root, self._on_change)
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        with self._inflight_cond:
            return self._inflight_cond.wait_for(lambda: not self._inflight, timeout)

    def scan_now(self) -> ScanStats:
        """Run one scan on the calling thread (the background thread also scans)."""
        with self._work:
            return self._scan()

    # -- changes from this process --------------------------------------------------------------
    def _on_change(self, kind: str, key: str, meta: ObjectMeta | None) -> None:
        if _is_noise(key, self._exclude) or not any(key.startswith(s) for s in self._scopes):
            return
        with self._cond:
            self._hooked.append((kind, key, meta))
            self._cond.notify_all()

    def _run(self) -> None:
        next_scan = time.monotonic()  # scan once at once: changes made while stopped
        while not self._stop.is_set():
            with self._cond:
                while not self._hooked and not self._stop.is_set():
                    remaining = next_scan - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
                hooked = list(self._hooked)
                self._hooked.clear()
            if self._stop.is_set():
                return
            try:
                with self._work:
                    if hooked:
                        self._process_hooked(hooked)
                    if time.monotonic() >= next_scan:
                        self._scan()
                        next_scan = time.monotonic() + self._scan_interval
            except Exception:  # keep serving: the next round retries
                _log.exception("object trigger scan failed; retrying in %ss", 1.0)
                next_scan = time.monotonic() + max(self._scan_interval, 1.0)

    def _process_hooked(self, hooked: list[tuple[str, str, ObjectMeta | None]]) -> None:
        changes: list[tuple[str, str | None]] = []
        events: list[PendingObjectEvent] = []
        now = datetime.now(UTC)
        for kind, key, meta in hooked:
            if kind == "created" and meta is not None:
                if self._snapshot.get(key) == meta.etag:
                    continue
                self._snapshot[key] = meta.etag
                self._unstable.pop(key, None)
                changes.append((key, meta.etag))
                events.extend(
                    self._events("created", key, meta.etag, meta.size, meta.last_modified)
                )
            elif kind == "deleted":
                old = self._snapshot.pop(key, None)
                self._unstable.pop(key, None)
                if old is None:
                    continue  # never reported (e.g. an unstable foreign file): nothing to say
                changes.append((key, None))
                events.extend(self._events("deleted", key, old, None, now))
        self._commit(changes, events)

    # -- scanning -------------------------------------------------------------------------------
    def _scan(self) -> ScanStats:
        started = time.perf_counter()
        current = scan_folder(self._root, self._scopes, self._exclude)
        wall_ns = time.time_ns()
        settle_ns = int(self._settle * 1e9)
        changes: list[tuple[str, str | None]] = []
        events: list[PendingObjectEvent] = []
        unstable: dict[str, _Version] = {}
        for key, version in current.items():
            if self._snapshot.get(key) == version.etag:
                continue
            previous = self._unstable.get(key)
            if previous != version or wall_ns - version.mtime_ns < settle_ns:
                unstable[key] = version  # new, still changing, or too fresh: look again
                continue
            self._snapshot[key] = version.etag
            changes.append((key, version.etag))
            moment = datetime.fromtimestamp(version.mtime_ns / 1e9, tz=UTC)
            events.extend(self._events("created", key, version.etag, version.size, moment))
        now = datetime.now(UTC)
        for key in [k for k in self._snapshot if k not in current]:
            old = self._snapshot.pop(key)
            changes.append((key, None))
            events.extend(self._events("deleted", key, old, None, now))
        self._unstable = unstable
        self._commit(changes, events)
        stats = ScanStats(files=len(current), seconds=time.perf_counter() - started)
        self.last_scan = stats
        return stats

    # -- delivery -------------------------------------------------------------------------------
    def _events(
        self, kind: str, key: str, etag: str, size: int | None, moment: datetime
    ) -> list[PendingObjectEvent]:
        event_id = object_event_id(kind, key, etag)
        return [
            PendingObjectEvent(binding.function, event_id, kind, key, etag, size, moment)
            for binding in self._bindings
            if isinstance(binding.trigger, ObjectTrigger)
            and kind in binding.trigger.events
            and binding.trigger.matches(key)
        ]

    def _commit(
        self, changes: list[tuple[str, str | None]], events: list[PendingObjectEvent]
    ) -> None:
        if not changes and not events:
            return
        self._state.record(changes, events)
        for pending in events:
            self._deliver(pending)

    def _deliver(self, pending: PendingObjectEvent) -> None:
        event = self._event(pending)
        token = (pending.function, pending.event_id)
        with self._inflight_cond:
            if token in self._inflight:
                return  # already submitted in this run
            self._inflight.add(token)
        try:
            future = self._submit(pending.function, event)
        except Exception:
            future = None
            _log.exception("could not submit a %s event to %r", pending.kind, pending.function)
        if future is None:
            self._settled(token, finished=False)
            return
        future.add_done_callback(lambda _f: self._settled(token, finished=True))

    def _settled(self, token: tuple[str, str], *, finished: bool) -> None:
        try:
            if finished:
                self._state.finish(*token)
        except Exception:
            _log.exception("could not unqueue event %s of %r", token[1], token[0])
        finally:
            with self._inflight_cond:
                self._inflight.discard(token)
                self._inflight_cond.notify_all()

    def _event(self, pending: PendingObjectEvent) -> ObjectCreated | ObjectDeleted:
        if pending.kind == "created":
            return ObjectCreated(
                id=pending.event_id,
                time=pending.time,
                bucket=self._bucket,
                key=pending.key,
                size=pending.size,
                etag=pending.etag,
                source="local",
            )
        return ObjectDeleted(
            id=pending.event_id,
            time=pending.time,
            bucket=self._bucket,
            key=pending.key,
            source="local",
        )
