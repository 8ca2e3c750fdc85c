"""Consumer groups of a local stream: committed offsets and partition ownership via ``flock``.

Layout under ``<stream>/groups/<group>/``::

    offsets.log      committed next-to-read offsets: an append-only log of snapshots
    offsets.json     {"format": 1, "offsets": {"0": 42}}: format-1 streams' offsets (read only)
    commit.lock      flock serialising commits (read-modify-append of offsets.log); its
                     size counts the compactions (a generation: see below)
    members.lock     flock serialising member registration and the liveness sweep; its size
                     counts the joins and leaves (the membership generation)
    members/<id>     one file per live member, exclusively flock'ed by it while it lives
    p<N>.lock        flock'ed (exclusive, non-blocking) by the member that owns partition N

A commit appends one fixed-size entry holding the group's whole state (every partition's
committed offset, -1 = never committed) with a CRC-32C: ``crc u32 | magic u16 | 0 u16 |
partitions x i64``. The current state is the last valid entry; a torn last entry (a committer
killed mid-write) is ignored and cut by the next commit, so a crash leaves the old or the new
offsets, never a mix. Entries are written before ``commit`` returns (a killed process loses
nothing) and made durable per the stream's fsync policy: ``always`` fdatasyncs each commit,
``batch`` within the flush interval, ``never`` leaves it to the OS. Losing the last commits to a
power loss only re-delivers records (at-least-once). Past 1 MiB the log is compacted to one
entry (a complete new file, fsync'ed and renamed over it); the compacting process first grows
``commit.lock`` by a byte, so the others notice from its size (one ``lseek`` of their
descriptor, under the lock, at their next commit) that they must reopen ``offsets.log``.

Ownership needs no heartbeat: the OS drops every ``flock`` of a process that dies (even by
``kill -9``), so a dead member's member file and partitions become lockable by the others. A
member *recounts* (under ``members.lock``) the live members (a member file nobody holds is dead
and is removed), takes its fair share (``partitions // members``, the first
``partitions % members`` members in id order taking one more), releases what it holds beyond
that share, and tries to lock free partitions up to it. It recounts at an ``assign`` (each
poll) when it holds less than its share, when the membership generation changed (every
registration, departure and removal of a dead member's file grows ``members.lock`` by a byte),
or when its last recount is :data:`SWEEP_INTERVAL_S` old (a dead member cannot announce
itself); otherwise ``assign`` costs one ``lseek``. Shares converge as members poll; two members
never own the same partition at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import struct
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from lakekit.adapters._stream_rules import fair_share
from lakekit.adapters.local._log_format import crc32c
from lakekit.adapters.local._segment_log import fsync_dir
from lakekit.errors import ConflictError, LakekitError

__all__ = ["SWEEP_INTERVAL_S", "GroupStore"]

_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_fdatasync = getattr(os, "fdatasync", os.fsync)
_ENTRY_HEAD = struct.Struct(">IHH")
_ENTRY_MAGIC = 0x0FF5
_COMPACT_BYTES = 1024 * 1024
SWEEP_INTERVAL_S = 0.5
"""A member that holds its share recounts the live members at least this often (to notice
a dead member, which cannot announce its death), and at once after any join or leave."""
_NEVER = -1
SyncMode = Literal["always", "batch", "never"]


@dataclass(eq=False)
class _Member:
    fd: int
    partitions: dict[int, int] = field(default_factory=dict)
    """Owned partition -> fd holding its lock."""
    share: int = 0
    """The member's fair share at its last recount."""
    generation: int = -1
    """The membership generation (size of ``members.lock``) at its last recount."""
    swept_at: float = 0.0
    """``time.monotonic()`` of its last recount (which also removes dead members' files)."""


class GroupStore:
    """Committed offsets and partition ownership of every group of one stream.

    Args:
        root: ``<stream>/groups``.
        partitions: the stream's partition count.
        sync: the stream's fsync policy, applied to commits.
        on_write: called after a ``"batch"`` commit (the stream's flusher then calls
            :meth:`sync_data` within its interval).
    """

    def __init__(
        self,
        root: Path,
        partitions: int,
        *,
        sync: SyncMode,
        on_write: Callable[[], None] | None = None,
    ) -> None:
        self.root = root
        self.partitions = partitions
        self.sync = sync
        self.on_write = on_write
        self._mutex = threading.Lock()
        self._members: dict[tuple[str, str], _Member] = {}
        self._logs: dict[str, _OffsetsLog] = {}
        self._logs_mutex = threading.Lock()
        self._group_locks: dict[str, tuple[Path, int]] = {}
        """Per group: its directory and this store's descriptor of its ``members.lock``."""

    # -- committed offsets ---------------------------------------------------------------------
    def committed(self, group: str) -> dict[int, int]:
        log = self._log(group, create=False)
        if log is None:
            return _legacy_offsets(self.root / group / "offsets.json")
        return log.read()

    def commit(self, group: str, offsets: Mapping[int, int]) -> None:
        """Merge ``offsets`` into the group's committed offsets, atomically; durable per the
        fsync policy (see the module docstring)."""
        log = self._log(group, create=True)
        assert log is not None  # create=True always returns a log
        log.commit(offsets)
        if self.sync == "batch" and self.on_write is not None:
            self.on_write()

    def sync_data(self) -> None:
        """fdatasync the offsets logs written since the last call (the ``batch`` flusher)."""
        with self._logs_mutex:
            logs = list(self._logs.values())
        for log in logs:
            log.sync_data()

    def _log(self, group: str, *, create: bool) -> _OffsetsLog | None:
        with self._logs_mutex:
            log = self._logs.get(group)
            if log is not None:
                return log
            directory = self.root / group
            if not create and not (directory / "offsets.log").exists():
                return None
            if create:
                (directory / "members").mkdir(parents=True, exist_ok=True)
            log = self._logs[group] = _OffsetsLog(directory, self.partitions, self.sync)
            return log

    # -- membership ----------------------------------------------------------------------------
    def assign(self, group: str, member: str) -> list[int]:
        """Register ``member`` if needed, rebalance to its fair share, return what it owns.

        Called at every poll, so it costs one ``lseek`` when nothing can have changed: the
        member holds its share, the membership generation (the size of ``members.lock``,
        bumped by every join and leave) is the one it last saw, and its last sweep for dead
        members is less than :data:`SWEEP_INTERVAL_S` old. Otherwise it recounts the live
        members under ``members.lock`` and rebalances.
        """
        with self._mutex:
            directory, lock_fd = self._group_lock(group)
            state = self._members.get((group, member))
            if (
                state is not None
                and len(state.partitions) >= state.share
                and time.monotonic() - state.swept_at < SWEEP_INTERVAL_S
                and os.lseek(lock_fd, 0, os.SEEK_END) == state.generation
            ):
                return sorted(state.partitions)
            members_dir = directory / "members"
            fcntl.flock(lock_fd, fcntl.LOCK_EX)
            try:
                if state is None:
                    state = self._register(lock_fd, members_dir, group, member)
                live = self._live_members(lock_fd, group, members_dir)
                state.generation = os.lseek(lock_fd, 0, os.SEEK_END)
                state.swept_at = time.monotonic()
            finally:
                fcntl.flock(lock_fd, fcntl.LOCK_UN)
            share, start = fair_share(self.partitions, live, member)
            state.share = share
            surplus = len(state.partitions) - share
            for partition in sorted(state.partitions, reverse=True)[: max(0, surplus)]:
                _unlock(state.partitions.pop(partition))
            for i in range(self.partitions):
                if len(state.partitions) >= share:
                    break
                partition = (start + i) % self.partitions
                if partition in state.partitions:
                    continue
                fd = _try_lock(directory / f"p{partition}.lock")
                if fd is not None:
                    state.partitions[partition] = fd
            return sorted(state.partitions)

    def release(self, group: str, member: str) -> None:
        """Give up the member's partitions and membership (idempotent)."""
        with self._mutex:
            state = self._members.pop((group, member), None)
            if state is None:
                return
            self._release(group, member, state)

    def close(self) -> None:
        with self._mutex:
            members, self._members = self._members, {}
            try:
                for (group, member), state in members.items():
                    self._release(group, member, state)
            finally:
                locks, self._group_locks = self._group_locks, {}
                for _directory, fd in locks.values():
                    os.close(fd)
        with self._logs_mutex:
            logs, self._logs = self._logs, {}
        for log in logs.values():
            log.close()

    # -- internals -----------------------------------------------------------------------------
    def _group_lock(self, group: str) -> tuple[Path, int]:
        """The group's directory (created once per process) and this store's descriptor of its
        ``members.lock``, kept open. Call under ``_mutex``."""
        found = self._group_locks.get(group)
        if found is None:
            directory = self.root / group
            (directory / "members").mkdir(parents=True, exist_ok=True)
            fd = os.open(directory / "members.lock", os.O_RDWR | os.O_CREAT | _O_CLOEXEC, 0o644)
            found = self._group_locks[group] = (directory, fd)
        return found

    def _register(self, lock_fd: int, members_dir: Path, group: str, member: str) -> _Member:
        """Create and hold the member's file. Call under members.lock (``lock_fd``)."""
        fd = _try_lock(members_dir / member)
        if fd is None:
            raise ConflictError(
                f"consumer member {member!r} of group {group!r} is already active in another "
                "consumer (process); give each live consumer its own member id"
            )
        state = self._members[(group, member)] = _Member(fd)
        _bump(lock_fd)
        return state

    def _live_members(self, lock_fd: int, group: str, members_dir: Path) -> list[str]:
        """Ids of live members; removes the files of dead ones. Call under members.lock.

        A member file is live while some open file description holds its flock. The members
        this store registered hold theirs, so only the others' files are probed.
        """
        live = []
        for name in os.listdir(members_dir):
            if (group, name) in self._members:
                live.append(name)
                continue
            fd = _try_lock(members_dir / name)
            if fd is None:
                live.append(name)
                continue
            try:  # nobody holds it: its owner died; remove it while we hold its lock
                (members_dir / name).unlink(missing_ok=True)
                _bump(lock_fd)
            finally:
                _unlock(fd)
        return sorted(live)

    def _release(self, group: str, member: str, state: _Member) -> None:
        for fd in state.partitions.values():
            _unlock(fd)
        state.partitions.clear()
        try:
            directory, lock_fd = self._group_lock(group)
            fcntl.flock(lock_fd, fcntl.LOCK_EX)
            try:
                (directory / "members" / member).unlink(missing_ok=True)
                _bump(lock_fd)
            finally:
                fcntl.flock(lock_fd, fcntl.LOCK_UN)
        finally:
            _unlock(state.fd)


class _OffsetsLog:
    """One group's ``offsets.log`` (format in the module docstring), with this process's fds.

    Thread-safe; several processes coordinate through ``commit.lock``. A process notices
    another's compaction (a new file renamed into place) by ``commit.lock``'s size changing
    (then the path's inode), or, when only reading, by the path's inode changing.
    """

    def __init__(self, directory: Path, partitions: int, sync: SyncMode) -> None:
        self.directory = directory
        self.path = directory / "offsets.log"
        self.partitions = partitions
        self.sync = sync
        self.entry = struct.Struct(f">IHH{partitions}q")
        self._mutex = threading.Lock()
        self._fd = -1
        self._ino = -1
        self._lock_fd = -1
        self._generation = -1
        """The size of ``commit.lock`` when this process last checked which file is current."""
        self._cached: tuple[int, int, dict[int, int]] | None = None
        """(inode, size, state) of the last read."""
        self._dirty = False
        self._swept = False

    def read(self) -> dict[int, int]:
        with self._mutex:
            if not self._current(create=False):
                return _legacy_offsets(self.directory / "offsets.json")
            state, _end, _size = self._last_valid()
            return dict(state)

    def commit(self, offsets: Mapping[int, int]) -> None:
        with self._mutex:
            if self._lock_fd < 0:
                self._lock_fd = os.open(
                    self.directory / "commit.lock", os.O_RDWR | os.O_CREAT | _O_CLOEXEC, 0o644
                )
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
            try:
                self._commit_locked(offsets)
            finally:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def _commit_locked(self, offsets: Mapping[int, int]) -> None:
        generation = os.lseek(self._lock_fd, 0, os.SEEK_END)  # grows before every compaction
        created = False
        if self._fd < 0 or generation != self._generation:  # else: ``_fd`` is the current file
            created = not self._current(create=False)
            if created:
                self._current(create=True)
            self._generation = generation
        state, end, size = self._last_valid()
        if end < size:  # a torn entry of a committer that died: cut it
            os.ftruncate(self._fd, end)
        merged = dict(state)
        merged.update(offsets)
        entry = self._encode(merged)
        if os.pwrite(self._fd, entry, end) != len(entry):  # a short write (rare)
            _pwrite_all(self._fd, entry, end)
        self._cached = (self._ino, end + len(entry), merged)
        if self.sync == "always":
            _fdatasync(self._fd)
        else:
            self._dirty = self.sync == "batch"
        if created and self.sync != "never":  # the file, and the group directory if it is new
            for directory in (self.directory, self.directory.parent, self.directory.parent.parent):
                fsync_dir(directory)
        if end + len(entry) >= _COMPACT_BYTES:
            self._compact(entry, merged)

    def sync_data(self) -> None:
        with self._mutex:
            if not self._dirty or self._fd < 0:
                return
            self._dirty = False
            fd = os.dup(self._fd)
        try:
            _fdatasync(fd)
        finally:
            os.close(fd)

    def close(self) -> None:
        with self._mutex:
            if self._dirty and self._fd >= 0:
                _fdatasync(self._fd)
            self._dirty = False
            for fd in (self._fd, self._lock_fd):
                if fd >= 0:
                    os.close(fd)
            self._fd = self._lock_fd = -1

    # -- internals -----------------------------------------------------------------------------
    def _current(self, *, create: bool) -> bool:
        """Make ``_fd`` the file now at ``path`` (re-opening after a compaction elsewhere);
        False if there is none."""
        try:
            ino = os.stat(self.path).st_ino
        except FileNotFoundError:
            if not create:
                return False
            ino = -2
        if ino == self._ino and self._fd >= 0:
            return True
        flags = os.O_RDWR | _O_CLOEXEC | (os.O_CREAT if create else 0)
        try:
            fd = os.open(self.path, flags, 0o644)
        except FileNotFoundError:
            return False
        if self._fd >= 0:
            os.close(self._fd)
        self._fd, self._ino, self._cached = fd, os.fstat(fd).st_ino, None
        return True

    def _last_valid(self) -> tuple[dict[int, int], int, int]:
        """(state of the last valid entry, the byte where it ends, the file size)."""
        size = os.lseek(self._fd, 0, os.SEEK_END)
        cached = self._cached
        if cached is not None and cached[0] == self._ino and cached[1] == size:
            return cached[2], size, size
        step = self.entry.size
        end = size - size % step
        while end >= step:
            raw = os.pread(self._fd, step, end - step)
            state = self._decode(raw)
            if state is not None:
                self._cached = (self._ino, end, state) if end == size else None
                return state, end, size
            end -= step  # a torn or damaged entry: the one before holds the state
        return _legacy_offsets(self.directory / "offsets.json"), 0, size

    def _encode(self, offsets: Mapping[int, int]) -> bytes:
        values = [_NEVER] * self.partitions
        for partition, offset in offsets.items():
            values[partition] = offset
        body = self.entry.pack(0, _ENTRY_MAGIC, 0, *values)[4:]
        return crc32c(body).to_bytes(4, "big") + body

    def _decode(self, raw: bytes) -> dict[int, int] | None:
        if len(raw) != self.entry.size:
            return None
        crc, magic, _reserved, *values = self.entry.unpack(raw)
        if magic != _ENTRY_MAGIC or crc32c(raw[4:]) != crc:
            return None
        return {p: o for p, o in enumerate(values) if o != _NEVER}

    def _compact(self, entry: bytes, state: dict[int, int]) -> None:
        """Replace the log by a file holding only its last entry (atomically). Call under
        ``commit.lock``."""
        if not self._swept:  # temporary files of compactions that crashed
            for stale in self.directory.glob(".offsets.*.tmp"):
                stale.unlink(missing_ok=True)
            self._swept = True
        # Tell the other processes before the file changes (a crash right after this only
        # makes them check the path once more).
        self._generation = os.lseek(self._lock_fd, 0, os.SEEK_END) + 1
        os.ftruncate(self._lock_fd, self._generation)
        tmp = self.directory / f".offsets.{uuid.uuid4().hex}.tmp"
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | _O_CLOEXEC, 0o644)
        try:
            _pwrite_all(fd, entry, 0)
            if self.sync != "never":
                os.fsync(fd)
            os.replace(tmp, self.path)
        except BaseException:
            os.close(fd)
            tmp.unlink(missing_ok=True)
            raise
        if self.sync != "never":
            fsync_dir(self.directory)
        os.close(self._fd)
        self._fd, self._ino = fd, os.fstat(fd).st_ino
        self._cached = (self._ino, len(entry), state)
        self._dirty = False


def _legacy_offsets(path: Path) -> dict[int, int]:
    """Offsets committed by a format-1 stream (``offsets.json``); {} if there are none."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {}
    try:
        data = json.loads(raw)
        return {int(p): int(o) for p, o in data["offsets"].items()}
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise LakekitError(f"corrupt committed offsets file {path}: {exc}") from exc


def _pwrite_all(fd: int, data: bytes, position: int) -> None:
    view = memoryview(data)
    done = 0
    while done < len(data):
        done += os.pwrite(fd, view[done:], position + done)


def _try_lock(path: Path) -> int | None:
    """Open ``path`` (creating it) and take a non-blocking exclusive flock; None if held."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | _O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    return fd


def _bump(lock_fd: int) -> None:
    """Announce a membership change: grow ``members.lock`` by a byte (call under its lock)."""
    os.ftruncate(lock_fd, os.lseek(lock_fd, 0, os.SEEK_END) + 1)


def _unlock(fd: int) -> None:
    with contextlib.suppress(OSError):
        fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)
