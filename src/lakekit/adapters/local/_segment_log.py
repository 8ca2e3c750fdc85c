"""One partition of a local stream: a directory of segment files behind a ``flock``.

Concurrency model (processes and threads):

* Every operation takes a per-partition ``threading.Lock`` (threads of one process) and then
  ``fcntl.flock`` on ``<partition>/.lock``: exclusive to append, roll, repair or delete
  segments; shared to read. Offsets are therefore assigned from the true tail of the file,
  whichever process wrote last, and a reader never sees a write in progress.
* Each process keeps a cache of the tail (active segment, its size, next offset, index). Before
  every operation it re-checks the file size and the partition's *roll generation*: the size
  of ``.lock``, which a process grows by one byte (under the exclusive lock) before it creates
  a new segment. Only when the generation changed does it look for a new segment file (a
  ``stat`` of a name that usually does not exist is the costliest call of an append); it
  catches up by scanning only the new bytes.

Crash safety: an append is one ``pwritev`` of whole batch frames at the tail. A writer killed
mid-write leaves an *incomplete* last frame; readers stop before it and the next writer (or
opener) cuts it off under the exclusive lock, so a half batch is never visible. Complete, valid
frames are never removed (even those of a ``publish`` that did not return). A frame that is
complete but invalid is cut only when no valid frame follows it (power-loss garbage at the
tail); otherwise it is reported as :class:`CorruptLogError`, never skipped.
"""

from __future__ import annotations

import bisect
import contextlib
import fcntl
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TypeVar

from lakekit.adapters.local._log_format import (
    INDEX_ENTRY,
    INDEX_INTERVAL,
    NO_TIMESTAMP,
    CorruptLogError,
    Frame,
    FrameScanner,
    FrameSlice,
    Run,
    frame_timestamps,
    index_name,
    parse_index,
    segment_base,
    segment_name,
    valid_frame_after,
)
from lakekit.errors import LakekitError

__all__ = ["Batch", "PartitionLog", "fsync_dir"]

T = TypeVar("T")
_INDEX_LAG = 1024 * 1024
"""The active segment's .idx file is brought up to date at most this many bytes of log late
(and when the segment is sealed, and on close): it is only a cache, and opening scans the log
from its last entry, so the lag bounds that scan."""
_fdatasync = getattr(os, "fdatasync", os.fsync)
_BIG = 2**63
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


class Batch(Protocol):
    """Records on their way to one partition (``RecordBatch``, ``ValuesBatch``)."""

    def __len__(self) -> int: ...

    def encode(self, first_offset: int) -> tuple[list[bytes], list[tuple[int, int, int, int]]]:
        """The buffers to write and, per frame, (relative position, first offset, record
        count, largest timestamp)."""
        ...


def fsync_dir(path: Path) -> None:
    """Make a directory's entries (created, renamed, deleted files) durable."""
    fd = os.open(path, os.O_RDONLY | _O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(eq=False)
class _Active:
    """The tail segment as this process last saw it."""

    base: int
    path: Path
    fd: int
    size: int
    """Bytes of complete, valid frames (a frame boundary)."""
    next_offset: int
    entries: list[tuple[int, int, int]]
    seg_max: int
    """Largest timestamp in the segment so far (NO_TIMESTAMP when empty)."""
    idx_fd: int = -1
    idx_checked: bool = False
    """Whether the .idx file was compared with ``entries`` since this process loaded it."""
    idx_at: int = 0
    """The segment size when this process last brought the .idx file up to date."""
    rebuilt: bool = False
    """Whether ``entries`` were rebuilt from the log (after an index entry did not match)."""


@dataclass(eq=False)
class _Sealed:
    """Cached facts about a sealed (no longer written) segment."""

    entries: list[tuple[int, int, int]]
    max_ts: int | None = None
    verified: bool = False
    """Whether ``entries`` were rebuilt from the log (after an index entry did not match)."""


@dataclass(eq=False)
class _View:
    """What a read needs about one segment, whether active or sealed."""

    base: int
    path: Path
    fd: int
    size: int
    entries: list[tuple[int, int, int]]
    owned: bool = field(default=False)


class PartitionLog:
    """The segments of one partition directory. Thread-safe and multi-process-safe.

    Args:
        directory: the partition directory (created if missing).
        segment_bytes: roll to a new segment once the active one holds at least this much.
        durable: fsync on roll, repair and directory changes (False for ``fsync="never"``).
    """

    def __init__(self, directory: Path, *, segment_bytes: int, durable: bool) -> None:
        self.directory = directory
        self._dir = os.fspath(directory)
        self.segment_bytes = segment_bytes
        self.durable = durable
        self.dirty = False
        """Written since the last fdatasync (read by the batch flusher)."""
        self.unsynced = 0
        """Bytes written since the last fdatasync started (read by the batch flusher)."""
        self.rolls = 0
        self._appended = False
        """Segments this object rolled (the stream checks retention after a roll)."""
        self._mutex = threading.Lock()
        self._closed = False
        self._bases: list[int] = []
        self._sealed: dict[int, _Sealed] = {}
        self._active: _Active | None = None
        directory.mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(directory / ".lock", os.O_RDWR | os.O_CREAT | _O_CLOEXEC, 0o644)
        self._generation = -1
        """The roll generation (the lock file's size) when this process last looked."""
        try:
            with self._locked(exclusive=True):
                self._open_latest(repair=True)
        except BaseException:
            self.close()
            raise

    # -- public operations ---------------------------------------------------------------------
    def append(self, batch: Batch, *, sync: bool) -> int:
        """Append a batch as one write of batch frames at the tail; return its first offset.

        Offsets are assigned under the exclusive lock from the current tail, so concurrent
        producers (threads or processes) get distinct, dense offsets. With ``sync`` the data is
        fdatasync'ed before returning.
        """
        with self._mutex:  # as _locked(exclusive=True), inlined: this is the hot path
            if self._closed:
                raise LakekitError(f"the stream partition {self.directory} is closed")
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
            try:
                first, sync_fd = self._append_locked(batch, sync=sync)
            finally:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
        if sync_fd >= 0:
            try:
                _fdatasync(sync_fd)
            finally:
                os.close(sync_fd)
        return first

    def _append_locked(self, batch: Batch, *, sync: bool) -> tuple[int, int]:
        """Write the batch at the tail: (its first offset, a dup of the segment's fd to
        fdatasync, or -1)."""
        self._sync(repair=True)
        active = self._active
        assert active is not None  # set by _sync (it raises when closed)
        if active.size >= self.segment_bytes and active.next_offset != active.base:
            self._maybe_roll()
            active = self._tail()
        first = active.next_offset
        buffers, frames = batch.encode(first)
        position = active.size
        if len(buffers) <= _IOV_BATCH:  # the usual case: one pwritev
            written = sum(map(len, buffers))
            try:
                done = _pwritev(active.fd, buffers, position)
            except OSError:
                with contextlib.suppress(OSError):  # the original error is the one to report
                    os.ftruncate(active.fd, position)
                raise
            if done != written:  # a short write (rare): write it all again
                _pwrite_all(active.fd, buffers, position, active.path)
        else:
            written = _pwrite_all(active.fd, buffers, position, active.path)
        entries = active.entries
        last_pos = entries[-1][1] if entries else -_BIG
        seg_max = active.seg_max
        for rel, offset, _count, max_ts in frames:
            frame_pos = position + rel
            if frame_pos - last_pos >= INDEX_INTERVAL or not entries:
                entries.append((offset, frame_pos, seg_max))
                last_pos = frame_pos
            seg_max = max(seg_max, max_ts)
        active.size = position + written
        active.next_offset = first + len(batch)
        active.seg_max = seg_max
        self.dirty = not sync  # with sync, this call's fdatasync covers it
        self.unsynced = 0 if sync else self.unsynced + written
        self._appended = True
        if active.size - active.idx_at >= _INDEX_LAG or not active.idx_checked:
            self._persist_index(active)
        return first, (os.dup(active.fd) if sync else -1)

    def known_end(self) -> int:
        """The next offset to be written as this process last saw it, without a lock or a
        system call: a lower bound of :meth:`latest` (a partition's end never moves back)."""
        active = self._active
        return -1 if active is None else active.next_offset

    def read(self, offset: int, max_records: int) -> list[Run]:
        """Up to ``max_records`` records from ``offset`` (clamped to the earliest retained), as
        runs of consecutive records by column (one per frame read)."""
        return [piece.run() for piece in self.read_slices(offset, max_records)]

    def read_slices(self, offset: int, max_records: int) -> list[FrameSlice]:
        """As :meth:`read`, but each frame's records undecoded (:class:`FrameSlice` decodes a
        column when asked, without the lock: a frame read is immutable)."""
        with self._mutex:  # as _locked(exclusive=False), inlined: a poll calls this
            if self._closed:
                raise LakekitError(f"the stream partition {self.directory} is closed")
            fcntl.flock(self._lock_fd, fcntl.LOCK_SH)
            try:
                self._sync(repair=False)
                if offset >= self._tail().next_offset:
                    return []
                return self._retrying(lambda: self._read_locked(offset, max_records))
            finally:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def earliest(self) -> int:
        with self._locked(exclusive=False):
            self._sync(repair=False)
            if not (self.directory / segment_name(self._bases[0])).exists():
                self._relist()
            return self._bases[0]

    def latest(self) -> int:
        """The next offset to be written."""
        with self._locked(exclusive=False):
            self._sync(repair=False)
            return self._tail().next_offset

    def offset_for_time(self, timestamp_ms: int) -> int:
        """The first retained offset whose timestamp is >= ``timestamp_ms`` (or the end)."""
        with self._locked(exclusive=False):
            self._sync(repair=False)
            return self._retrying(lambda: self._offset_for_time_locked(timestamp_ms))

    def enforce_retention(
        self, now_ms: int, retention_ms: int | None, retention_bytes: int | None
    ) -> int:
        """Delete the oldest sealed segments past the limits; return how many records went.

        Only whole sealed segments are deleted, oldest first, never the active one: a segment
        goes when its last write (file mtime) is older than ``retention_ms``, or while the
        partition holds more than ``retention_bytes``.
        """
        if retention_ms is None and retention_bytes is None:
            return 0
        with self._locked(exclusive=True):
            self._sync(repair=True)
            self._relist()
            bases = self._bases
            stats = [os.stat(self.directory / segment_name(b)) for b in bases]
            total = sum(st.st_size for st in stats)
            drop = 0
            for st in stats[:-1]:
                too_old = retention_ms is not None and now_ms - st.st_mtime_ns // 10**6 > (
                    retention_ms
                )
                too_big = retention_bytes is not None and total > retention_bytes
                if not (too_old or too_big):
                    break
                drop += 1
                total -= st.st_size
            if not drop:
                return 0
            for base in bases[:drop]:
                (self.directory / segment_name(base)).unlink(missing_ok=True)
                (self.directory / index_name(base)).unlink(missing_ok=True)
                self._sealed.pop(base, None)
            if self.durable:
                fsync_dir(self.directory)
            dropped = bases[drop] - bases[0]
            self._bases = bases[drop:]
            return dropped

    def sync_data(self) -> None:
        """fdatasync the active segment if it was written since the last sync."""
        with self._mutex:
            if self._closed or not self.dirty or self._active is None:
                return
            fd = os.dup(self._active.fd)
            self.dirty = False
            self.unsynced = 0
        try:
            _fdatasync(fd)
        finally:
            os.close(fd)

    def close(self) -> None:
        """Flush (when durable and dirty), complete the index, close every file. Idempotent."""
        with contextlib.suppress(OSError, LakekitError), self._locked(exclusive=True):
            active = self._active
            if self._appended and active is not None and active.idx_at != active.size:
                self._sync(repair=False)
                self._persist_index(self._tail())
        with self._mutex:
            if self._closed:
                return
            self._closed = True
            active, self._active = self._active, None
            try:
                if active is not None:
                    if self.dirty and self.durable:
                        _fdatasync(active.fd)
                    _close_active(active)
            finally:
                os.close(self._lock_fd)

    # -- locking and tail tracking -------------------------------------------------------------
    @contextmanager
    def _locked(self, *, exclusive: bool) -> Iterator[None]:
        with self._mutex:
            if self._closed:
                raise LakekitError(f"the stream partition {self.directory} is closed")
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            try:
                yield
            finally:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def _tail(self) -> _Active:
        if self._active is None:  # pragma: no cover - set in __init__, cleared only by close
            raise LakekitError(f"the stream partition {self.directory} is closed")
        return self._active

    def _list_bases(self) -> list[int]:
        found = (segment_base(name) for name in os.listdir(self.directory))
        return sorted(b for b in found if b is not None)

    def _relist(self) -> None:
        """Re-read the directory (another process deleted or added segments)."""
        bases = self._list_bases()
        active = self._tail()
        if active.base not in bases:
            raise CorruptLogError(
                active.path, active.size, active.next_offset, "the active segment disappeared"
            )
        if bases[-1] != active.base:
            self._load_active(bases[-1], repair=False)
        self._bases = bases
        for stale in set(self._sealed) - set(bases):
            del self._sealed[stale]

    def _open_latest(self, *, repair: bool) -> None:
        bases = self._list_bases()
        if not bases:
            fd = os.open(
                self.directory / segment_name(0),
                os.O_RDWR | os.O_CREAT | os.O_EXCL | _O_CLOEXEC,
                0o644,
            )
            os.close(fd)
            if self.durable:
                fsync_dir(self.directory)
            bases = [0]
        self._bases = bases
        self._load_active(bases[-1], repair=repair)

    def _load_active(self, base: int, *, repair: bool) -> None:
        """Make segment ``base`` the active one: trust its index as far as it checks out, then
        scan the rest (repairing a torn tail when ``repair``)."""
        path = self.directory / segment_name(base)
        fd = os.open(path, os.O_RDWR | _O_CLOEXEC)
        try:
            size = os.fstat(fd).st_size
            entries = parse_index(_read_file(self.directory / index_name(base)), base, size)
            while entries:  # the last entries must point at real frames
                offset, pos, _ = entries[-1]
                probe = FrameScanner(fd, pos, size, offset, last_offset=offset)
                if len(list(probe)) == 1 and probe.stop == "limit":
                    break
                entries.pop()
            start_offset, start_pos, seg_max = entries.pop() if entries else (base, 0, NO_TIMESTAMP)
            active = _Active(base, path, fd, start_pos, start_offset, entries, seg_max)
        except BaseException:
            os.close(fd)
            raise
        if self._active is not None:
            self._seal_active()
        self._active = active
        if base not in self._bases:
            bisect.insort(self._bases, base)
        self._scan_tail(active, size, repair=repair)
        if repair:
            self._persist_index(active)

    def _seal_active(self) -> None:
        active = self._tail()
        if self.dirty and self.durable:
            _fdatasync(active.fd)
        self.dirty = False
        self.unsynced = 0
        self._sealed[active.base] = _Sealed(list(active.entries), active.seg_max)
        self._active = None
        _close_active(active)

    def _sync(self, *, repair: bool) -> None:
        """Catch up with other processes: new bytes at the tail, a roll, a deleted segment.

        Cheap when nothing happened: the lock file's size is the partition's roll generation
        (see :meth:`_maybe_roll`; read with ``lseek``, which allocates nothing), and only when
        it changed is the directory asked whether the next segment exists. An append (with
        ``repair``) then ``fstat``s the active segment (its size, and whether it was deleted
        under us); a read only asks its size (``lseek``).
        """
        generation = os.lseek(self._lock_fd, 0, os.SEEK_END)
        rolled = generation != self._generation
        if not (rolled or repair):
            active = self._tail()
            if os.lseek(active.fd, 0, os.SEEK_END) == active.size:
                return  # no roll, no new bytes: nothing to catch up with
        self._generation = generation
        while True:
            active = self._tail()
            st = os.fstat(active.fd)
            if st.st_size != active.size:
                if st.st_size < active.size:
                    raise CorruptLogError(
                        active.path,
                        st.st_size,
                        active.next_offset,
                        f"the file shrank to {st.st_size} bytes below records already read "
                        f"(up to byte {active.size})",
                    )
                self._scan_tail(active, st.st_size, repair=repair)
            if (
                rolled
                and active.next_offset > active.base
                and os.path.exists(os.path.join(self._dir, segment_name(active.next_offset)))
            ):  # another process rolled the segment
                self._load_active(active.next_offset, repair=repair)
                continue
            if not st.st_nlink:  # deleted or replaced (retention after a roll we did not see)
                bases = self._list_bases()
                if not bases or bases[-1] == active.base:
                    raise CorruptLogError(
                        active.path,
                        active.size,
                        active.next_offset,
                        "the active segment was removed or replaced by something else",
                    )
                self._load_active(bases[-1], repair=repair)
                self._bases = bases
                continue
            return

    def _scan_tail(self, active: _Active, file_size: int, *, repair: bool) -> None:
        scanner = FrameScanner(active.fd, active.size, file_size, active.next_offset)
        entries = active.entries
        seg_max = active.seg_max
        last_pos = entries[-1][1] if entries else -_BIG
        for pos, offset, _count, max_ts, _body, _layout in scanner:
            if pos - last_pos >= INDEX_INTERVAL or not entries:
                entries.append((offset, pos, seg_max))
                last_pos = pos
            seg_max = max(seg_max, max_ts)
        active.seg_max = seg_max
        active.size = scanner.position
        active.next_offset = scanner.offset
        if scanner.stop == "incomplete":
            if repair:
                self._truncate_tail(active)
        elif scanner.stop == "bad":
            damaged_tail_only = (
                valid_frame_after(active.fd, active.size, file_size, active.next_offset) is None
            )
            if not (repair and damaged_tail_only):
                raise CorruptLogError(active.path, active.size, active.next_offset, scanner.problem)
            self._truncate_tail(active)

    def _truncate_tail(self, active: _Active) -> None:
        """Cut a torn or garbage tail (never a complete valid frame) off the active segment."""
        os.ftruncate(active.fd, active.size)
        if self.durable:
            _fdatasync(active.fd)
        active.idx_checked = False

    def _maybe_roll(self) -> None:
        active = self._tail()
        if active.size < self.segment_bytes or active.next_offset == active.base:
            return
        base = active.next_offset
        # Announce the roll before the new segment exists: processes that see the lock file's
        # size (the roll generation) unchanged skip looking for a new segment. A crash right
        # after this only makes them look once and find none.
        self._generation = os.lseek(self._lock_fd, 0, os.SEEK_END) + 1
        os.ftruncate(self._lock_fd, self._generation)
        fd = os.open(
            self.directory / segment_name(base),
            os.O_RDWR | os.O_CREAT | os.O_EXCL | _O_CLOEXEC,
            0o644,
        )
        try:
            idx_fd = os.open(
                self.directory / index_name(base),
                os.O_RDWR | os.O_CREAT | os.O_TRUNC | _O_CLOEXEC,
                0o644,
            )
        except BaseException:
            os.close(fd)
            raise
        self._persist_index(active)  # complete before the segment is sealed
        self._seal_active()
        if self.durable:
            fsync_dir(self.directory)
        self._active = _Active(
            base, self.directory / segment_name(base), fd, 0, base, [], NO_TIMESTAMP, idx_fd, True
        )
        self._bases.append(base)
        self.rolls += 1

    def _persist_index(self, active: _Active) -> None:
        """Bring the .idx file in line with ``active.entries`` (append what it lacks)."""
        if active.idx_fd < 0:
            active.idx_fd = os.open(
                self.directory / index_name(active.base),
                os.O_RDWR | os.O_CREAT | _O_CLOEXEC,
                0o644,
            )
        size = INDEX_ENTRY.size
        on_disk = os.fstat(active.idx_fd).st_size // size
        if not active.idx_checked or on_disk > len(active.entries):
            data = os.pread(active.idx_fd, on_disk * size, 0)
            same = 0
            for entry in active.entries[:on_disk]:
                if INDEX_ENTRY.unpack_from(data, same * size) != entry:
                    break
                same += 1
            if same < on_disk or len(data) != os.fstat(active.idx_fd).st_size:
                os.ftruncate(active.idx_fd, same * size)
            on_disk = same
            active.idx_checked = True
        if on_disk < len(active.entries):
            missing = b"".join(INDEX_ENTRY.pack(*e) for e in active.entries[on_disk:])
            _pwrite_all(active.idx_fd, [missing], on_disk * size, self.directory / "index")
        active.idx_at = active.size

    # -- reading -------------------------------------------------------------------------------
    def _retrying(self, operation: Callable[[], T]) -> T:
        """Run a read; retry it if another process deleted a segment meanwhile (after
        re-listing) or if a stale index entry had to be rebuilt from the log."""
        for _ in range(3):
            try:
                return operation()
            except FileNotFoundError:
                self._relist()
            except _IndexRebuilt:
                pass
        return operation()

    def _view(self, base: int) -> _View:
        active = self._tail()
        if base == active.base:
            return _View(base, active.path, active.fd, active.size, active.entries)
        path = self.directory / segment_name(base)
        fd = os.open(path, os.O_RDONLY | _O_CLOEXEC)
        size = os.fstat(fd).st_size
        sealed = self._sealed.get(base)
        if sealed is None:
            entries = parse_index(_read_file(self.directory / index_name(base)), base, size)
            sealed = self._sealed[base] = _Sealed(entries)
        return _View(base, path, fd, size, sealed.entries, owned=True)

    def _segment_end(self, index: int) -> int:
        bases = self._bases
        return bases[index + 1] if index + 1 < len(bases) else self._tail().next_offset

    def _read_locked(self, offset: int, max_records: int) -> list[FrameSlice]:
        bases = self._bases
        offset = max(offset, bases[0])
        out: list[FrameSlice] = []
        wanted = max_records
        i = bisect.bisect_right(bases, offset) - 1
        while wanted > 0 and i < len(bases):
            end = self._segment_end(i)
            if offset < end:
                last = min(end, offset + wanted) - 1
                view = self._view(bases[i])
                try:
                    for frame in self._frames(view, offset, last, end):
                        base, count = frame[1], frame[2]
                        start = max(offset - base, 0)
                        stop = min(count, last - base + 1)
                        out.append(FrameSlice(frame, start, stop))
                        wanted -= stop - start
                finally:
                    if view.owned:
                        os.close(view.fd)
                offset = end
            i += 1
        return out

    def _frames(self, view: _View, first: int, last: int, end: int) -> Iterator[Frame]:
        """Yield the frames holding offsets ``first..last`` of a segment whose records end
        before ``end``."""
        j = bisect.bisect_right(view.entries, (first, _BIG, _BIG)) - 1
        start_offset, start_pos = view.entries[j][:2] if j >= 0 else (view.base, 0)
        scanner = FrameScanner(view.fd, start_pos, view.size, start_offset, last_offset=last)
        for frame in scanner:
            if frame[1] + frame[2] > first:
                yield frame
        if scanner.stop == "limit":
            return
        # An index entry that does not match the log (the index is only a cache): rebuild the
        # index from the log once and retry.
        index_mismatch = scanner.stop == "bad" and scanner.position == start_pos > 0
        if index_mismatch and self._reindex(view):
            raise _IndexRebuilt

        detail = (
            scanner.problem
            if scanner.stop == "bad"
            else f"the segment ends at offset {scanner.offset} but the next segment starts at {end}"
        )
        raise CorruptLogError(view.path, scanner.position, scanner.offset, detail)

    def _reindex(self, view: _View) -> bool:
        """Rebuild a segment's index entries by scanning it; False if already rebuilt."""
        sealed = self._sealed.get(view.base)
        active = self._tail()
        if sealed.verified if sealed is not None else active.rebuilt:
            return False
        entries: list[tuple[int, int, int]] = []
        seg_max, last_pos = NO_TIMESTAMP, -_BIG
        scanner = FrameScanner(view.fd, 0, view.size, view.base)
        for pos, offset, _count, max_ts, _body, _layout in scanner:
            if pos - last_pos >= INDEX_INTERVAL or not entries:
                entries.append((offset, pos, seg_max))
                last_pos = pos
            seg_max = max(seg_max, max_ts)
        view.entries = entries
        if sealed is not None:
            sealed.entries = entries
            sealed.verified = True
        elif view.base == active.base:
            active.entries[:] = entries
            active.rebuilt = True
            active.idx_checked = False  # rewrite the .idx file at the next append
        return True

    def _segment_max(self, view: _View, end: int) -> int:
        active = self._tail()
        if view.base == active.base:
            return active.seg_max
        sealed = self._sealed[view.base]
        if sealed.max_ts is None:
            from_offset = view.entries[-1][0] if view.entries else view.base
            seg_max = view.entries[-1][2] if view.entries else NO_TIMESTAMP
            for frame in self._frames(view, from_offset, end - 1, end):
                seg_max = max(seg_max, frame[3])
            sealed.max_ts = seg_max
        return sealed.max_ts

    def _offset_for_time_locked(self, timestamp_ms: int) -> int:
        for i, base in enumerate(self._bases):
            end = self._segment_end(i)
            if end == base:
                continue
            view = self._view(base)
            try:
                if self._segment_max(view, end) < timestamp_ms:
                    continue
                # Entries are ordered by max_ts_before: start at the last one still below.
                maxes = [e[2] for e in view.entries]
                j = bisect.bisect_left(maxes, timestamp_ms) - 1
                first = view.entries[j][0] if j >= 0 else base
                for frame in self._frames(view, first, end - 1, end):
                    if frame[3] < timestamp_ms:
                        continue
                    for k, ts in enumerate(frame_timestamps(frame)):
                        if ts >= timestamp_ms and frame[1] + k >= first:
                            return frame[1] + k
            finally:
                if view.owned:
                    os.close(view.fd)
        return self._tail().next_offset


class _IndexRebuilt(Exception):  # noqa: N818 - a signal, not an error
    """An index entry did not match its log, and the index was rebuilt: run the read again."""


def _pwrite_all(fd: int, buffers: Sequence[bytes], position: int, path: Path) -> int:
    """Write ``buffers`` back to back at ``position`` (one ``pwritev`` per 512 buffers, unless
    the kernel writes less); on failure cut the file back to ``position``. Returns the bytes
    written."""
    del path  # named by the caller's error mapping
    total = 0
    try:
        for i in range(0, len(buffers), _IOV_BATCH):
            group = buffers[i : i + _IOV_BATCH]
            size = sum(map(len, group))
            done = _pwritev(fd, group, position + total)
            if done < size:  # a short write (rare): write the rest from one buffer
                rest = memoryview(b"".join(group))
                while done < size:
                    done += os.pwrite(fd, rest[done:], position + total + done)
            total += size
    except OSError:
        with contextlib.suppress(OSError):  # the original error is the one to report
            os.ftruncate(fd, position)
        raise
    return total


_IOV_BATCH = 512
"""Buffers per ``pwritev`` call (below IOV_MAX, which is 1024 on Linux and macOS)."""


def _pwritev_fallback(fd: int, buffers: Sequence[bytes], position: int) -> int:
    return os.pwrite(fd, b"".join(buffers), position)


_pwritev: Callable[[int, Sequence[bytes], int], int] = getattr(os, "pwritev", _pwritev_fallback)


def _read_file(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return b""


def _close_active(active: _Active) -> None:
    os.close(active.fd)
    if active.idx_fd >= 0:
        os.close(active.idx_fd)
        active.idx_fd = -1
