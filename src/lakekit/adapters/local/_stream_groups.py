"""Consumer groups of a local stream: committed offsets and partition ownership via ``flock``.

Layout under ``<stream>/groups/<group>/``::

    offsets.json     {"format": 1, "offsets": {"0": 42, ...}}   committed next-to-read offsets
    commit.lock      flock serialising read-modify-write of offsets.json
    members.lock     flock serialising member registration and the liveness sweep
    members/<id>     one file per live member, exclusively flock'ed by it while it lives
    p<N>.lock        flock'ed (exclusive, non-blocking) by the member that owns partition N

Commits are atomic: the new file is written beside the old, fsync'ed, renamed over it and the
directory fsync'ed, so a crash leaves the old or the new offsets, never a mix.

Ownership needs no heartbeat: the OS drops every ``flock`` of a process that dies (even by
``kill -9``), so a dead member's member file and partitions become lockable by the others. At
each ``assign`` a member counts the live members (a member file nobody holds is dead and is
removed), takes its fair share (``partitions // members``, the first ``partitions % members``
members in id order taking one more), releases what it holds beyond that share, and tries to
lock free partitions up to it. Shares converge as members poll; two members never own the same
partition at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import threading
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from lakekit.adapters.local._segment_log import fsync_dir
from lakekit.errors import ConflictError, InvalidInputError, LakekitError

__all__ = ["GroupStore", "validate_member"]

_MEMBER = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def validate_member(member: str) -> str:
    """Member ids become file names: letters, digits, ``_.-``, at most 128 characters.

    Raises:
        InvalidInputError: naming the rule.
    """
    if not isinstance(member, str) or not _MEMBER.fullmatch(member):
        raise InvalidInputError(
            f"invalid consumer member id {member!r}: use letters, digits, '_', '.' or '-', "
            "starting with a letter or digit, at most 128 characters"
        )
    return member


@dataclass(eq=False)
class _Member:
    fd: int
    partitions: dict[int, int] = field(default_factory=dict)
    """Owned partition -> fd holding its lock."""


class GroupStore:
    """Committed offsets and partition ownership of every group of one stream.

    Args:
        root: ``<stream>/groups``.
        partitions: the stream's partition count.
        durable: fsync commits (False for ``fsync="never"``: still atomic, not power-safe).
    """

    def __init__(self, root: Path, partitions: int, *, durable: bool) -> None:
        self.root = root
        self.partitions = partitions
        self.durable = durable
        self._mutex = threading.Lock()
        self._members: dict[tuple[str, str], _Member] = {}

    # -- committed offsets ---------------------------------------------------------------------
    def committed(self, group: str) -> dict[int, int]:
        path = self.root / group / "offsets.json"
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return {}
        try:
            data = json.loads(raw)
            offsets = {int(p): int(o) for p, o in data["offsets"].items()}
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise LakekitError(f"corrupt committed offsets file {path}: {exc}") from exc
        return offsets

    def commit(self, group: str, offsets: Mapping[int, int]) -> None:
        """Merge ``offsets`` into the group's committed offsets, atomically and durably."""
        directory = self._group_dir(group)
        with _flocked(directory / "commit.lock", fcntl.LOCK_EX):
            for stale in directory.glob(".offsets.*.tmp"):  # left by a crashed committer
                stale.unlink(missing_ok=True)
            first_commit = not (directory / "offsets.json").exists()
            merged = self.committed(group)
            merged.update(offsets)
            body = {"format": 1, "offsets": {str(p): merged[p] for p in sorted(merged)}}
            tmp = directory / f".offsets.{uuid.uuid4().hex}.tmp"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_CLOEXEC, 0o644)
            try:
                with os.fdopen(fd, "wb", closefd=False) as fh:
                    fh.write(json.dumps(body, separators=(",", ":")).encode("utf-8"))
                if self.durable:
                    os.fsync(fd)
            finally:
                os.close(fd)
            try:
                os.replace(tmp, directory / "offsets.json")
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
            if self.durable:
                fsync_dir(directory)
                if first_commit:  # the group directory itself is new
                    fsync_dir(self.root)
                    fsync_dir(self.root.parent)

    # -- membership ----------------------------------------------------------------------------
    def assign(self, group: str, member: str) -> list[int]:
        """Register ``member`` if needed, rebalance to its fair share, return what it owns."""
        directory = self._group_dir(group)
        members_dir = directory / "members"
        with self._mutex:
            with _flocked(directory / "members.lock", fcntl.LOCK_EX):
                state = self._members.get((group, member))
                if state is None:
                    state = self._register(members_dir, group, member)
                live = self._live_members(members_dir)
            share, start = _fair_share(self.partitions, live, member)
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
            for (group, member), state in members.items():
                self._release(group, member, state)

    # -- internals -----------------------------------------------------------------------------
    def _group_dir(self, group: str) -> Path:
        directory = self.root / group
        (directory / "members").mkdir(parents=True, exist_ok=True)
        return directory

    def _register(self, members_dir: Path, group: str, member: str) -> _Member:
        fd = _try_lock(members_dir / member)
        if fd is None:
            raise ConflictError(
                f"consumer member {member!r} of group {group!r} is already active in another "
                "consumer (process); give each live consumer its own member id"
            )
        state = self._members[(group, member)] = _Member(fd)
        return state

    def _live_members(self, members_dir: Path) -> list[str]:
        """Ids of live members; removes the files of dead ones. Call under members.lock.

        A member file is live while some open file description holds its flock, including
        this process's own members (a second descriptor conflicts with the first).
        """
        live = []
        for name in os.listdir(members_dir):
            fd = _try_lock(members_dir / name)
            if fd is None:
                live.append(name)
                continue
            try:  # nobody holds it: its owner died; remove it while we hold its lock
                (members_dir / name).unlink(missing_ok=True)
            finally:
                _unlock(fd)
        return sorted(live)

    def _release(self, group: str, member: str, state: _Member) -> None:
        for fd in state.partitions.values():
            _unlock(fd)
        state.partitions.clear()
        directory = self.root / group
        try:
            with _flocked(directory / "members.lock", fcntl.LOCK_EX):
                (directory / "members" / member).unlink(missing_ok=True)
        finally:
            _unlock(state.fd)


def _fair_share(partitions: int, live: list[str], member: str) -> tuple[int, int]:
    """(how many partitions ``member`` should own, the partition to start looking from)."""
    if member not in live:  # pragma: no cover - a registered member is always live
        live = sorted([*live, member])
    count = len(live)
    index = live.index(member)
    share = partitions // count + (1 if index < partitions % count else 0)
    return share, index * partitions // count


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


def _unlock(fd: int) -> None:
    with contextlib.suppress(OSError):
        fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)


@contextmanager
def _flocked(path: Path, operation: int) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | _O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, operation)
        yield
    finally:
        os.close(fd)  # closing drops the lock
