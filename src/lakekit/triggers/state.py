"""The local server's durable bookkeeping: one SQLite file per lake.

``<lake>/.lakekit/triggers/state.db`` (inside the reserved ``.lakekit`` folder, so the store
never lists it) holds:

* ``objects``: the version (etag) of every object the object-event source has already
  reported, per key. A scan compares the folder with it: a key that is new or has another
  etag was created or changed, a key that vanished was deleted. Updated in the *same
  transaction* as the events it produces are queued, so a crash can only make the next scan
  report a change again, never lose one.
* ``scopes``: the key prefixes the snapshot covers (the object triggers' prefixes).
* ``pending``: object events queued for a function and not yet finished (succeeded or
  dead-lettered). Rows are deleted when the invocation finishes; whatever is left after a
  crash or an interrupted drain is delivered again when the server starts (same event id).
* ``schedules``: per function and expression, the latest tick whose invocation finished, so
  missed ticks can be caught up after a restart.

SQLite (stdlib) is used for its transactions: the snapshot and the queue change together or
not at all. WAL mode with ``synchronous=NORMAL``: a committed transaction survives a crash of
the process; a power loss may lose the last ones, which at worst redelivers events.

A second guard, :class:`ServerLock`, is an exclusive ``flock`` on
``.lakekit/triggers/server.lock``: one server per lake at a time, across processes, so object
events and schedule ticks are not delivered twice by two servers.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from lakekit.errors import ConfigurationError, LakekitError

__all__ = ["PendingObjectEvent", "ServerLock", "TriggerState"]

_SCHEMA = """
create table if not exists objects (key text primary key, etag text not null);
create table if not exists scopes (scope text primary key);
create table if not exists pending (
    function text not null,
    event_id text not null,
    kind text not null,
    key text not null,
    etag text,
    size integer,
    time text not null,
    seq integer not null,
    primary key (function, event_id)
);
create table if not exists schedules (
    function text not null,
    expression text not null,
    last_done text not null,
    primary key (function, expression)
);
"""


@dataclass(frozen=True, slots=True)
class PendingObjectEvent:
    """An object event queued for one function (enough to rebuild the event exactly)."""

    function: str
    event_id: str
    kind: str
    """``created`` or ``deleted``."""
    key: str
    etag: str | None
    size: int | None
    time: datetime


class TriggerState:
    """The SQLite bookkeeping file (see the module docstring). Thread-safe.

    Raises:
        ConfigurationError: the file cannot be created or opened.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._seq = 0
        self._closed = False
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(
                self.path, check_same_thread=False, isolation_level=None, timeout=30.0
            )
            self._db.execute("pragma journal_mode=wal")
            self._db.execute("pragma synchronous=normal")
            self._db.executescript(_SCHEMA)
            row = self._db.execute("select coalesce(max(seq), 0) from pending").fetchone()
            self._seq = int(row[0])
        except (OSError, sqlite3.Error) as exc:
            raise ConfigurationError(
                f"cannot open the trigger state file {self.path}: {exc}"
            ) from exc

    def __repr__(self) -> str:
        return f"TriggerState({str(self.path)!r})"

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if self._closed:
                raise LakekitError(f"trigger state {self.path} is closed")
            try:
                self._db.execute("begin immediate")
                try:
                    yield self._db
                except BaseException:
                    self._db.execute("rollback")
                    raise
                self._db.execute("commit")
            except sqlite3.Error as exc:
                raise LakekitError(f"trigger state {self.path}: {exc}") from exc

    # -- objects --------------------------------------------------------------------------------
    def scopes(self) -> set[str]:
        """The key prefixes the stored snapshot covers."""
        with self._lock:
            return {row[0] for row in self._db.execute("select scope from scopes")}

    def snapshot(self) -> dict[str, str]:
        """Every reported object version: key -> etag."""
        with self._lock:
            return dict(self._db.execute("select key, etag from objects"))

    def rebase(
        self, scopes: Iterable[str], baselines: Mapping[str, Mapping[str, str]]
    ) -> dict[str, str]:
        """Make the snapshot cover exactly ``scopes``: for each scope in ``baselines`` replace
        its rows with the given ``key -> etag`` (files that exist now, reported as already
        seen), drop rows under no scope, and return the resulting snapshot."""
        scope_list = sorted(set(scopes))
        with self._transaction() as db:
            for scope, objects in baselines.items():
                db.execute("delete from objects where substr(key, 1, ?) = ?", (len(scope), scope))
                db.executemany(
                    "insert or replace into objects (key, etag) values (?, ?)", objects.items()
                )
            keys = [row[0] for row in db.execute("select key from objects")]
            stale = [(k,) for k in keys if not any(k.startswith(s) for s in scope_list)]
            db.executemany("delete from objects where key = ?", stale)
            db.execute("delete from scopes")
            db.executemany("insert into scopes (scope) values (?)", [(s,) for s in scope_list])
            return dict(db.execute("select key, etag from objects"))

    def record(
        self, changes: Iterable[tuple[str, str | None]], events: Iterable[PendingObjectEvent]
    ) -> None:
        """In one transaction: set each changed key's etag (None: the key is gone) and queue
        ``events``. Queuing an event already queued for the same function does nothing."""
        with self._transaction() as db:
            for key, etag in changes:
                if etag is None:
                    db.execute("delete from objects where key = ?", (key,))
                else:
                    db.execute(
                        "insert or replace into objects (key, etag) values (?, ?)", (key, etag)
                    )
            for event in events:
                self._seq += 1
                db.execute(
                    "insert or ignore into pending "
                    "(function, event_id, kind, key, etag, size, time, seq) "
                    "values (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        event.function,
                        event.event_id,
                        event.kind,
                        event.key,
                        event.etag,
                        event.size,
                        event.time.isoformat(),
                        self._seq,
                    ),
                )

    def pending(self) -> list[PendingObjectEvent]:
        """Queued object events, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "select function, event_id, kind, key, etag, size, time from pending order by seq"
            ).fetchall()
        return [
            PendingObjectEvent(
                function=row[0],
                event_id=row[1],
                kind=row[2],
                key=row[3],
                etag=row[4],
                size=row[5],
                time=_utc(datetime.fromisoformat(row[6])),
            )
            for row in rows
        ]

    def finish(self, function: str, event_id: str) -> None:
        """The event's invocation finished (succeeded or was dead-lettered): unqueue it.
        After :meth:`close` (an invocation that outlived the server's drain) this does
        nothing: the event stays queued and is delivered again at the next start."""
        if self._closed:
            return
        with self._transaction() as db:
            db.execute(
                "delete from pending where function = ? and event_id = ?", (function, event_id)
            )

    # -- schedules ------------------------------------------------------------------------------
    def schedule_done(self, function: str, expression: str) -> datetime | None:
        """The latest tick of ``function``'s ``expression`` whose invocation finished."""
        with self._lock:
            row = self._db.execute(
                "select last_done from schedules where function = ? and expression = ?",
                (function, expression),
            ).fetchone()
        return None if row is None else _utc(datetime.fromisoformat(row[0]))

    def set_schedule_done(self, function: str, expression: str, tick: datetime) -> None:
        """Record that ``tick`` finished (kept only if it is later than the stored one).
        Does nothing after :meth:`close` (the tick is caught up at the next start)."""
        if self._closed:
            return
        stamp = tick.astimezone(UTC).isoformat()
        with self._transaction() as db:
            row = db.execute(
                "select last_done from schedules where function = ? and expression = ?",
                (function, expression),
            ).fetchone()
            if row is None or _utc(datetime.fromisoformat(row[0])) < tick:
                db.execute(
                    "insert or replace into schedules (function, expression, last_done) "
                    "values (?, ?, ?)",
                    (function, expression, stamp),
                )

    def close(self) -> None:
        """Close the file. Idempotent."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._db.close()


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


class ServerLock:
    """An exclusive, non-blocking ``flock`` on ``path``: one local server per lake.

    The OS releases it when the process dies, so a crashed server never blocks the next one.

    Raises:
        ConfigurationError: another process (or server in this one) holds it.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            os.close(fd)
            raise ConfigurationError(
                f"another lakekit server is already serving this lake (it holds {self.path}); "
                "stop it first: two servers would deliver every object event and tick twice"
            ) from exc
        except OSError:
            os.close(fd)
            raise
        self._fd: int | None = fd
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())

    def release(self) -> None:
        """Give the lock up. Idempotent."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
