"""The local stream: a durable, partitioned, append-only log in plain files.

``LocalStream`` keeps each partition in segment files of CRC-32C-checked batch frames (format
in ``_log_format.py``), appends under a per-partition ``flock`` so producers in several processes
can share a stream, repairs a tail torn by a crash when it opens, and stores consumer-group
offsets in an append-only commit log per group (``_stream_groups.py``). See
``docs/interfaces/stream.md``.

Directory of a stream ``name``::

    <directory>/<name>/stream.json          {"format": 3, "partitions": 4}
    <directory>/<name>/p<N>/<base>.log|.idx segments of partition N
    <directory>/<name>/groups/<group>/...   committed offsets and member locks
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import json
import os
import random
import threading
import time
import uuid
import zlib
from array import array
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from itertools import repeat
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol, Self

from pydantic import Field

from lakekit._redact import redact_url
from lakekit.adapters._stream_rules import message_bytes, validate_member
from lakekit.adapters.local._log_format import (
    MAX_RECORD_BYTES,
    FrameSlice,
    RecordBatch,
    ValuesBatch,
    all_equal,
    decode_headers,
    encode_headers,
)
from lakekit.adapters.local._segment_log import Batch, PartitionLog, fsync_dir
from lakekit.adapters.local._stream_groups import GroupStore
from lakekit.capabilities import Capability
from lakekit.config import AdapterSettings, local_path
from lakekit.errors import (
    ConfigurationError,
    InvalidInputError,
    LakekitError,
    PermissionDeniedError,
)
from lakekit.identifiers import validate_name
from lakekit.interfaces.stream import (
    Message,
    PositionRange,
    Record,
    RecordBlock,
    RecordPosition,
    RecordRun,
    StreamAdapter,
    _arrow_headers,
    _build_records,
)

if TYPE_CHECKING:
    from lakekit.lake import Lake

__all__ = ["FsyncPolicy", "LocalStream", "LocalStreamSettings"]

FsyncPolicy = Literal["always", "batch", "never"]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
_MIB = 1024 * 1024
_FORMAT = 3
"""Stream format: 2 = batch frames, 3 = batch frames that may store one value length for all
records (flag bit 4). Streams of formats 1 (record frames) and 2 are upgraded on open."""
_READABLE_FORMATS = (1, 2, 3)
_FLUSH_BYTES = 8 * _MIB
"""``fsync="batch"``: a partition with this much written since its last fdatasync is synced at
once instead of at the end of the interval. It bounds the data a power loss can take, and what
a segment roll (which must fdatasync the segment it seals) waits for."""


class LocalStreamSettings(AdapterSettings):
    """Settings of the local stream (component ``stream``, env ``LAKEKIT_STREAM_*``)."""

    component: ClassVar[str] = "stream"

    url: str = Field(
        "local",
        description=(
            "LAKEKIT_STREAM: 'local' keeps streams under <lake>/.lakekit/streams/ (local lakes "
            "only); 'local:///abs/dir' (or a path) keeps them under that directory"
        ),
    )
    partitions: int = Field(
        4,
        ge=1,
        le=4096,
        description="LAKEKIT_STREAM_PARTITIONS: partitions of a new stream (fixed at creation)",
    )
    fsync: FsyncPolicy = Field(
        "batch",
        description=(
            "LAKEKIT_STREAM_FSYNC: 'always' = fdatasync before publish returns (survives power "
            "loss); 'batch' = written before publish returns (survives a crash of the process), "
            "fdatasync'ed within fsync_interval_ms (at once when a partition has 8 MiB "
            "waiting); 'never' = the OS flushes when it likes"
        ),
    )
    fsync_interval_ms: int = Field(
        50,
        ge=1,
        le=60_000,
        description="LAKEKIT_STREAM_FSYNC_INTERVAL_MS: longest delay before a 'batch' fdatasync",
    )
    segment_bytes: int = Field(
        64 * _MIB,
        ge=4096,
        description="LAKEKIT_STREAM_SEGMENT_BYTES: roll to a new segment file past this size",
    )
    retention_ms: int | None = Field(
        None,
        ge=1,
        description=(
            "LAKEKIT_STREAM_RETENTION_MS: delete sealed segments last written longer ago than "
            "this (None = keep forever)"
        ),
    )
    retention_bytes: int | None = Field(
        None,
        ge=1,
        description=(
            "LAKEKIT_STREAM_RETENTION_BYTES: per partition, delete the oldest sealed segments "
            "while the partition is larger than this (None = no limit)"
        ),
    )


class LocalStream(StreamAdapter):
    """A stream stored in ``<directory>/<name>/``: segment files per partition.

    Guarantees:

    * **Acknowledged = durable**: ``publish`` returns after the records are written to the
      file (so they survive ``kill -9`` of the producer); with ``fsync="always"`` after an
      fdatasync (so they survive power loss); with ``"batch"`` (default) they are fdatasync'ed
      within ``fsync_interval_ms`` (at once when a partition has 8 MiB waiting) by a
      background flusher, so power loss can take at most the last interval; with ``"never"``
      the OS decides.
    * **Ordered, dense offsets per partition**, assigned under an exclusive ``flock`` from the
      tail of the file: producers in several processes may publish to one stream.
    * **No torn records**: a record is visible only when complete and checksum-valid; a tail
      torn by a crash is cut off, damage elsewhere raises instead of skipping data.
    * **Keyed partitioning** by ``zlib.crc32(key) % partitions`` (stable across processes and
      versions); unkeyed records of one ``publish`` call all go to one partition, the next call
      to the next partition (round robin, "sticky" batches).
    * **Consumer groups**: atomically committed offsets; members split partitions through
      non-blocking ``flock`` on lock files, released by the OS when a consumer dies.

    Args:
        name: the stream name (a portable identifier).
        directory: where streams live; this stream uses ``directory / name``.
        partitions: partition count of a new stream; must match an existing stream's count.
        fsync: ``"always"``, ``"batch"`` or ``"never"`` (see above).
        fsync_interval_ms: longest delay before a ``"batch"`` fdatasync.
        segment_bytes: roll to a new segment file once the active one is this large.
        retention_ms: delete sealed segments last written more than this long ago.
        retention_bytes: per partition, delete the oldest sealed segments beyond this size.

    Raises:
        ConfigurationError: a bad setting, or ``partitions`` differs from the existing stream.
        InvalidInputError: ``name`` is not a portable identifier.
    """

    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {
            Capability.KEYED_PARTITIONS,
            Capability.CONSUMER_GROUPS,
            Capability.REPLAY_FROM_TIME,
            Capability.RETENTION,
        }
    )
    settings_model: ClassVar[type[LocalStreamSettings]] = LocalStreamSettings

    def __init__(
        self,
        name: str,
        *,
        directory: str | os.PathLike[str],
        partitions: int = 4,
        fsync: FsyncPolicy = "batch",
        fsync_interval_ms: int = 50,
        segment_bytes: int = 64 * _MIB,
        retention_ms: int | None = None,
        retention_bytes: int | None = None,
    ) -> None:
        validate_name(name, what="stream name")
        super().__init__(name)
        settings = _validated(
            partitions=partitions,
            fsync=fsync,
            fsync_interval_ms=fsync_interval_ms,
            segment_bytes=segment_bytes,
            retention_ms=retention_ms,
            retention_bytes=retention_bytes,
        )
        self.settings = settings
        self._sync_each = settings.fsync == "always"
        self.path = Path(directory).expanduser().resolve() / name
        self._closed = False
        self._lock = threading.Lock()
        self._round_robin = itertools.count(random.randrange(settings.partitions))  # noqa: S311
        self._logs: list[PartitionLog] = []
        self._groups: GroupStore | None = None
        self._flusher: _Flusher | None = None
        self._valid_groups: set[str] = set()
        self._valid_members: set[tuple[str, str]] = set()
        durable = settings.fsync != "never"
        self._retention_set = (
            settings.retention_ms is not None or settings.retention_bytes is not None
        )
        with _mapped(f"cannot open stream {name!r} at {self.path}"):
            count = _open_metadata(self.path, settings.partitions, durable=durable)
            try:
                for partition in range(count):
                    self._logs.append(
                        PartitionLog(
                            self.path / f"p{partition}",
                            segment_bytes=settings.segment_bytes,
                            durable=durable,
                        )
                    )
                if durable:  # the new directories' entries survive power loss too
                    fsync_dir(self.path)
                    fsync_dir(self.path.parent)
                if self._retention_set:
                    for log in self._logs:
                        self._retain(log)
            except BaseException:
                self._close_logs()
                raise
        self._groups = GroupStore(self.path / "groups", count, sync=settings.fsync)
        if settings.fsync == "batch":
            self._flusher = _Flusher(
                [*self._logs, self._groups], settings.fsync_interval_ms / 1000, name
            )
            self._groups.on_write = self._flusher.mark

    @classmethod
    def from_settings(cls, settings: LocalStreamSettings, lake: Lake, name: str) -> Self:
        """Build the stream ``name`` from validated settings.

        Raises:
            ConfigurationError: ``url="local"`` on a lake that is not local.
        """
        if settings.url in ("local", "local://"):
            try:
                root = local_path(lake.config.url)
            except ConfigurationError as exc:
                raise ConfigurationError(
                    f"the local stream has no directory: the lake {redact_url(lake.config.url)!r}"
                    " is not local; set LAKEKIT_STREAM=local:///abs/dir (or pass "
                    "connect(..., stream='local:///abs/dir'))"
                ) from exc
            directory = root / ".lakekit" / "streams"
        else:
            directory = local_path(settings.url)
        return cls(
            name,
            directory=directory,
            partitions=settings.partitions,
            fsync=settings.fsync,
            fsync_interval_ms=settings.fsync_interval_ms,
            segment_bytes=settings.segment_bytes,
            retention_ms=settings.retention_ms,
            retention_bytes=settings.retention_bytes,
        )

    def __repr__(self) -> str:
        return f"LocalStream({self.name!r}, directory={str(self.path.parent)!r})"

    # -- StreamAdapter ---------------------------------------------------------------------------
    def publish(self, messages: Sequence[Message]) -> list[RecordPosition]:
        """Append ``messages``; return their positions in input order once acknowledged.

        Each partition's share of the batch is one write of batch frames (and, with
        ``fsync="always"``, one fdatasync). A batch spanning partitions is not atomic across
        them: if a write fails, the partitions written before it keep their records (a retry
        may duplicate them).

        Raises:
            InvalidInputError: a message is malformed (types, naive timestamp, too large).
            LakekitError: the disk refused the write (full, read-only, ...).
        """
        self._check_open()
        if not messages:
            return []
        count = len(self._logs)
        now_ms = _now_ms()
        sticky = next(self._round_robin) % count
        columns: dict[int, tuple[list[int], list[bytes | None], list[bytes], list[bytes]]] = {}
        placed: list[tuple[int, int]] = []
        for message in messages:
            ts, key, headers, value = _encode_message(message, now_ms)
            partition = sticky if key is None else zlib.crc32(key) % count
            column = columns.get(partition)
            if column is None:
                column = columns[partition] = ([], [], [], [])
            placed.append((partition, len(column[3])))
            column[0].append(ts)
            column[1].append(key)
            column[2].append(headers)
            column[3].append(value)
        firsts = {p: self._append(p, RecordBatch.of_records(*columns[p])) for p in sorted(columns)}
        return [RecordPosition(p, firsts[p] + i) for p, i in placed]

    def publish_values(
        self,
        values: Sequence[bytes | str],
        *,
        key: bytes | None = None,
        timestamp: datetime | None = None,
    ) -> PositionRange:
        """Append values sharing ``key`` and ``timestamp`` to one partition, as one write.

        The fast path: the values are concatenated and framed as batch frames in C (no Python
        work per record). They go to ``crc32(key) % partitions``, or unkeyed to the next
        partition in the round robin (as an unkeyed :meth:`publish`). Durable as
        :meth:`publish`; the records are atomic per frame of ~1 MiB (a batch up to that size
        is visible entirely or not at all, even after a crash mid-write).

        Raises:
            InvalidInputError: a value is neither bytes-like nor str, the key is not bytes, a
                naive timestamp, or a record over 64 MiB.
            LakekitError: the disk refused the write (full, read-only, ...).
        """
        if self._closed:
            raise InvalidInputError(f"{self!r} is closed")
        try:
            blob = b"".join(values)  # type: ignore[arg-type]  # str values: TypeError
        except TypeError:
            values = _normalised_values(values)
            blob = b"".join(values)
        lens = list(map(len, values))
        count = len(lens)
        if not count:
            return PositionRange(0, 0, 0)
        first = lens[0]
        # The lengths must count bytes (a memoryview of multi-byte items has len() in items).
        # Values of one length add up to a product, others to a sum.
        uniform = all_equal(lens)
        if (first * count if uniform else sum(lens)) != len(blob):
            values = [bytes(v) for v in values]  # type: ignore[arg-type]
            lens = list(map(len, values))
            uniform = all_equal(lens)
        if key is not None:
            if not isinstance(key, bytes | bytearray | memoryview):
                raise InvalidInputError(
                    f"record key must be bytes or None, got {type(key).__name__}"
                )
            key = bytes(key)
        key_size = 0 if key is None else len(key)
        if len(blob) + key_size > MAX_RECORD_BYTES and max(lens) + key_size > MAX_RECORD_BYTES:
            raise InvalidInputError(
                f"a record of {max(lens) + key_size} bytes (key + value) exceeds the local "
                f"stream's limit of {MAX_RECORD_BYTES} bytes"
            )
        ts = _now_ms() if timestamp is None else _to_ms(timestamp, what="timestamp")
        partitions = len(self._logs)
        if key is None:
            partition = next(self._round_robin) % partitions
        else:
            partition = zlib.crc32(key) % partitions
        first_offset = self._append(partition, ValuesBatch(lens, blob, ts, key, uniform=uniform))
        return PositionRange(partition, first_offset, count)

    def partitions(self) -> list[int]:
        return list(range(len(self._logs)))

    def read(self, partition: int, offset: int, max_records: int) -> list[Record]:
        """Up to ``max_records`` records of ``partition`` from ``offset``, in offset order.

        An offset below the earliest retained one reads from the earliest; at or past the end
        returns ``[]``. Only complete, checksum-valid records are ever returned.

        Raises:
            InvalidInputError: unknown partition, negative offset, ``max_records < 1``.
            LakekitError: a segment is damaged (names the file and byte position).
        """
        with _mapped(f"cannot read stream {self.name!r} partition {partition}"):
            slices = self._read_slices(partition, offset, max_records)
            return _records(self.name, partition, slices)

    def read_block(self, partition: int, offset: int, max_records: int) -> RecordBlock:
        """As :meth:`read`, as a :class:`RecordBlock` of one run per frame read.

        No object per record: each run keeps its frame's bytes and decodes a column (values
        sliced in C, timestamps, keys, headers) when it is first asked for; ``to_arrow()``
        wraps the frame's value bytes without copying them.

        Raises:
            InvalidInputError: unknown partition, negative offset, ``max_records < 1``.
            LakekitError: a segment is damaged (names the file and byte position).
        """
        try:  # not `with _mapped(...)`: a consumer reads at every poll
            slices = self._read_slices(partition, offset, max_records)
        except LakekitError:
            raise
        except (OSError, ValueError):
            with _mapped(f"cannot read stream {self.name!r} partition {partition}"):
                raise
        return RecordBlock(self.name, [_FrameRun(partition, piece) for piece in slices])

    def _read_slices(self, partition: int, offset: int, max_records: int) -> list[FrameSlice]:
        log = self._log(partition)
        if not isinstance(offset, int) or offset < 0:
            raise InvalidInputError(f"offset must be an int >= 0, got {offset!r}")
        if not isinstance(max_records, int) or max_records < 1:
            raise InvalidInputError(f"max_records must be an int >= 1, got {max_records!r}")
        return log.read_slices(offset, max_records)

    def offsets(self, which: Literal["earliest", "latest"]) -> dict[int, int]:
        """Per partition the earliest retained offset, or the next offset to be written."""
        if which not in ("earliest", "latest"):
            raise InvalidInputError(f"which must be 'earliest' or 'latest', got {which!r}")
        self._check_open()
        with _mapped(f"cannot read offsets of stream {self.name!r}"):
            if which == "earliest":
                return {p: log.earliest() for p, log in enumerate(self._logs)}
            return {p: log.latest() for p, log in enumerate(self._logs)}

    def committed(self, group: str) -> dict[int, int]:
        """The group's committed offsets, each clamped to the partition's current end.

        (Clamping matters only after a power loss took records a commit had already passed:
        the group then resumes at the new end instead of skipping future records.)
        """
        groups = self._group_store()
        self._check_group(group)
        with _mapped(f"cannot read committed offsets of group {group!r}"):
            stored = groups.committed(group)
            if not stored:
                return {}
            stored = {p: o for p, o in stored.items() if 0 <= p < len(self._logs)}
            return {p: min(o, self._logs[p].latest()) for p, o in stored.items()}

    def commit(self, group: str, offsets: Mapping[int, int]) -> None:
        """Atomically and durably merge ``offsets`` into the group's committed offsets.

        Raises:
            InvalidInputError: unknown partition, or an offset < 0 or past the partition's end.
        """
        groups = self._group_store()
        self._check_group(group)
        checked: dict[int, int] = {}
        for partition, offset in offsets.items():
            log = self._log(partition)
            if not isinstance(offset, int) or offset < 0:
                raise InvalidInputError(f"committed offset must be an int >= 0, got {offset!r}")
            if offset > log.known_end():  # past what this process has seen: ask the file
                with _mapped(f"cannot commit group {group!r}"):
                    end = log.latest()
                if offset > end:
                    raise InvalidInputError(
                        f"cannot commit offset {offset} for partition {partition}: its end is {end}"
                    )
            checked[partition] = offset
        if checked:
            try:  # not `with _mapped(...)`: a consumer commits at every poll
                groups.commit(group, checked)
            except LakekitError:
                raise
            except (OSError, ValueError):
                with _mapped(f"cannot commit group {group!r}"):
                    raise

    def offsets_for_time(self, ts: datetime) -> dict[int, int]:
        """Per partition, the first offset whose timestamp is >= ``ts`` (the end if none).

        Uses each segment's index (binary search) and scans at most one index interval.

        Raises:
            InvalidInputError: ``ts`` is not a timezone-aware datetime.
        """
        target = _to_ms(ts, what="ts")
        self._check_open()
        with _mapped(f"cannot search stream {self.name!r} by time"):
            return {p: log.offset_for_time(target) for p, log in enumerate(self._logs)}

    def assign(self, group: str, member: str) -> list[int]:
        """The partitions ``member`` owns now (its fair share of what the live members split).

        Raises:
            ConflictError: another live consumer (process) uses the same member id.
        """
        groups = self._group_store()
        if (group, member) not in self._valid_members:
            self._check_group(group)
            validate_member(member)
            self._valid_members.add((group, member))
        with _mapped(f"cannot join consumer group {group!r}"):
            return groups.assign(group, member)

    def release(self, group: str, member: str) -> None:
        if self._groups is None or self._closed:
            return
        with _mapped(f"cannot leave consumer group {group!r}"):
            self._groups.release(group, member)

    def enforce_retention(self) -> int:
        """Delete whole sealed segments past ``retention_ms``/``retention_bytes`` now.

        Returns the number of records dropped (0 when no limit is set). The same check also
        runs for a partition whenever a publish rolls it to a new segment, and when the stream
        is opened. The active segment is never deleted, so a partition keeps at least its
        newest records; ``offsets("earliest")`` moves to the first retained record.
        """
        self._check_open()
        with _mapped(f"cannot enforce retention on stream {self.name!r}"):
            return sum(self._retain(log) for log in self._logs)

    def close(self) -> None:
        """Flush pending ``batch`` writes, release consumer locks and close files. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        try:
            if self._flusher is not None:
                self._flusher.stop()
            if self._groups is not None:
                self._groups.close()
        finally:
            with _mapped(f"cannot close stream {self.name!r}"):
                self._close_logs()

    # -- internals -----------------------------------------------------------------------------
    def _append(self, partition: int, batch: Batch) -> int:
        """Append a batch to a partition; its first offset. Runs retention after a roll."""
        try:  # not `with _mapped(...)`: this is the hot path, errors are mapped when they occur
            if self._flusher is not None:
                self._flusher.raise_failure()
            log = self._logs[partition]
            rolls = log.rolls
            first = log.append(batch, sync=self._sync_each)
            if self._flusher is not None:
                self._flusher.mark(urgent=log.unsynced >= _FLUSH_BYTES)
            if log.rolls != rolls and self._retention_set:
                self._retain(log)
        except LakekitError:
            raise
        except (OSError, ValueError):
            with _mapped(f"cannot publish to stream {self.name!r}"):
                raise
        return first

    def _check_open(self) -> None:
        if self._closed:
            raise InvalidInputError(f"{self!r} is closed")

    def _log(self, partition: int) -> PartitionLog:
        self._check_open()
        if not isinstance(partition, int) or not 0 <= partition < len(self._logs):
            raise InvalidInputError(
                f"stream {self.name!r} has partitions 0..{len(self._logs) - 1}, not {partition!r}"
            )
        return self._logs[partition]

    def _check_group(self, group: str) -> None:
        if group not in self._valid_groups:
            validate_name(group, what="consumer group")
            self._valid_groups.add(group)

    def _group_store(self) -> GroupStore:
        self._check_open()
        if self._groups is None:  # pragma: no cover - set in __init__
            raise InvalidInputError(f"{self!r} is closed")
        return self._groups

    def _retain(self, log: PartitionLog) -> int:
        settings = self.settings
        return log.enforce_retention(_now_ms(), settings.retention_ms, settings.retention_bytes)

    def _close_logs(self) -> None:
        errors: list[BaseException] = []
        for log in self._logs:
            try:
                log.close()
            except OSError as exc:
                errors.append(exc)
        if errors:
            raise errors[0]


class _Syncable(Protocol):
    def sync_data(self) -> None: ...


class _Flusher:
    """Background fdatasync for ``fsync="batch"``: at most ``interval`` after a write."""

    def __init__(self, logs: Sequence[_Syncable], interval: float, name: str) -> None:
        self._logs = logs
        self._interval = interval
        self._name = name
        self._cond = threading.Condition()
        self._pending = False
        self._urgent = False
        self._stopping = False
        self._failure: OSError | None = None
        self._thread: threading.Thread | None = None

    def mark(self, *, urgent: bool = False) -> None:
        """Note that a write happened; the flusher syncs within the interval, or as soon as it
        can if ``urgent`` (much data is waiting)."""
        if self._pending and (self._urgent or not urgent):  # a due flush will cover it
            return
        with self._cond:
            self._urgent = self._urgent or urgent
            self._schedule()

    def _schedule(self) -> None:
        """Under ``_cond``: make a flush due (starting the thread on first use)."""
        self._pending = True
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name=f"lakekit-stream-flush-{self._name}", daemon=True
            )
            self._thread.start()
        self._cond.notify()

    def raise_failure(self) -> None:
        """Re-raise (once) an fdatasync error the background thread hit."""
        if self._failure is None:
            return
        with self._cond:
            failure, self._failure = self._failure, None
        if failure is not None:
            raise failure

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify()
            thread = self._thread
        if thread is not None:
            thread.join()
        self._flush()

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._pending or self._stopping)
                if self._stopping:
                    return
                # Let writes accumulate for one interval, unless much data is waiting already
                # (then sync now: less to lose, and a roll's own sync has less left to do).
                self._cond.wait_for(lambda: self._stopping or self._urgent, self._interval)
                self._pending = self._urgent = False
            self._flush()

    def _flush(self) -> None:
        for log in self._logs:
            try:
                log.sync_data()
            except OSError as exc:
                with self._cond:
                    self._failure = exc


def _validated(**values: Any) -> LocalStreamSettings:
    from pydantic import ValidationError

    try:
        return LocalStreamSettings(url="local", **values)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigurationError(f"invalid LocalStream settings: {problems}") from None


def _open_metadata(path: Path, partitions: int, *, durable: bool) -> int:
    """Create ``stream.json`` if absent (atomically: link of a complete temp file), else check
    it; return the stream's partition count."""
    meta = path / "stream.json"
    path.mkdir(parents=True, exist_ok=True)
    if not meta.exists():
        tmp = path / f".stream.{uuid.uuid4().hex}.tmp"
        created = datetime.now(UTC).isoformat()
        body = {"format": _FORMAT, "partitions": partitions, "created": created}
        try:
            _write_json(tmp, body, durable=durable)
            # Atomic create-if-absent: racing creators agree on whichever file got linked.
            with contextlib.suppress(FileExistsError):
                os.link(tmp, meta)
            if durable:
                fsync_dir(path)
        finally:
            tmp.unlink(missing_ok=True)
    try:
        data = json.loads(meta.read_bytes())
        existing = int(data["partitions"])
        fmt = int(data.get("format", 0))
    except (ValueError, KeyError, TypeError) as exc:
        raise LakekitError(f"corrupt stream metadata {meta}: {exc}") from exc
    if fmt not in _READABLE_FORMATS:
        raise ConfigurationError(
            f"stream at {path} uses format {fmt}; this lakekit reads formats "
            f"{', '.join(map(str, _READABLE_FORMATS))}: upgrade lakekit"
        )
    if existing != partitions:
        raise ConfigurationError(
            f"stream {path.name!r} at {path} has {existing} partitions, but partitions="
            f"{partitions} was configured (LAKEKIT_STREAM_PARTITIONS); the partition count is "
            "fixed when a stream is created"
        )
    if fmt != _FORMAT:
        # Before the first new frame is written: a lakekit that reads only an older format
        # (1: record frames; 2: no shared value length) must refuse the stream rather than
        # report the new frames as damage.
        _write_json_atomically(path, meta, {**data, "format": _FORMAT}, durable=durable)
    return existing


def _write_json_atomically(
    directory: Path, target: Path, body: dict[str, Any], *, durable: bool
) -> None:
    """Replace ``target`` by a complete new file (temporary file, fsync, rename)."""
    tmp = directory / f".stream.{uuid.uuid4().hex}.tmp"
    try:
        _write_json(tmp, body, durable=durable)
        os.replace(tmp, target)
        if durable:
            fsync_dir(directory)
    finally:
        tmp.unlink(missing_ok=True)


def _write_json(tmp: Path, body: dict[str, Any], *, durable: bool) -> None:
    """Write ``body`` as indented JSON to the fresh file ``tmp`` (fsynced when ``durable``),
    complete before the caller links or renames it into place."""
    with tmp.open("wb") as fh:
        fh.write(json.dumps(body, indent=2).encode("utf-8"))
        fh.flush()
        if durable:
            os.fsync(fh.fileno())


def _encode_message(message: Message, now_ms: int) -> tuple[int, bytes | None, bytes, bytes]:
    """(timestamp_ms, key, encoded headers, value) of a message, checked."""
    value, key = message_bytes(message)
    headers = encode_headers(message.headers)
    size = len(value) + len(headers) + (len(key) if key is not None else 0)
    if size > MAX_RECORD_BYTES:
        raise InvalidInputError(
            f"record of {size} bytes (key + headers + value) exceeds the local stream's limit "
            f"of {MAX_RECORD_BYTES} bytes"
        )
    ts = now_ms if message.timestamp is None else _to_ms(message.timestamp, what="timestamp")
    return ts, key, headers, value


def _normalised_values(values: Sequence[object]) -> list[bytes]:
    """Values as bytes (str UTF-8 encoded).

    Raises:
        InvalidInputError: naming the first value that is neither bytes-like nor str.
    """
    out: list[bytes] = []
    for i, value in enumerate(values):
        if isinstance(value, str):
            out.append(value.encode("utf-8"))
        elif isinstance(value, bytes | bytearray | memoryview):
            out.append(bytes(value))
        else:
            raise InvalidInputError(
                f"record values must be bytes or str, got {type(value).__name__} at index {i}"
            )
    return out


# -- records and record blocks from frames ------------------------------------------------------
class _FrameRun(RecordRun):
    """The records of one frame read (a :class:`FrameSlice`), decoding each column on first
    use. Timestamps equal within a read share one ``datetime``."""

    __slots__ = ("_decoded", "_piece", "_stamps")

    def __init__(
        self, partition: int, piece: FrameSlice, stamps: dict[int, datetime] | None = None
    ) -> None:
        # RecordRun.__init__ is not called: every column accessor below is overridden.
        self.partition = partition
        self.offsets = range(piece.offset, piece.offset + piece.count)
        self._piece = piece
        self._stamps = {} if stamps is None else stamps
        self._decoded: Sequence[bytes] | None = None

    @property
    def values(self) -> Sequence[bytes]:
        if self._decoded is None:
            self._decoded = self._piece.values()
        return self._decoded

    @property
    def timestamps(self) -> Sequence[datetime]:
        stamps = self._piece.timestamps()
        if isinstance(stamps, int):
            return [_datetime(stamps, self._stamps)] * self._piece.count
        return [_datetime(ts, self._stamps) for ts in stamps]

    @property
    def keys(self) -> Sequence[bytes | None]:
        keys = self._piece.keys()
        if keys is None or isinstance(keys, bytes):
            return [keys] * self._piece.count
        return keys

    @property
    def headers(self) -> Sequence[Mapping[str, str]]:
        raw = self._piece.headers()
        if raw is None:
            return [{} for _ in range(self._piece.count)]
        with _mapped("cannot decode record headers"):
            return [_headers(h) for h in raw]

    def records(self, stream: str) -> list[Record]:
        piece = self._piece
        stamps = piece.timestamps()
        when: Iterator[datetime] | list[datetime]
        if isinstance(stamps, int):
            when = repeat(_datetime(stamps, self._stamps))
        else:
            when = [_datetime(ts, self._stamps) for ts in stamps]
        keys = piece.keys()
        raw = piece.headers()
        headers: Iterator[dict[str, str]] | list[dict[str, str]] = iter(dict, None)
        if raw is not None:
            with _mapped("cannot decode record headers"):
                headers = [_headers(h) for h in raw]
        return _build_records(
            stream,
            self.partition,
            piece.count,
            self.offsets,
            when,
            self.values,
            repeat(keys) if keys is None or isinstance(keys, bytes) else keys,
            headers,
        )

    def arrow_arrays(self) -> list[Any]:
        """The run's columns; values wrap the frame's bytes (no copy), with int32 offsets."""
        import pyarrow as pa

        piece = self._piece
        count = piece.count
        body, at, lens, uniform = piece.value_buffer()
        if uniform > 0:
            ends = array("i", range(at, at + uniform * count + 1, uniform))
        elif uniform == 0:
            ends = array("i", [at]) * (count + 1)
        else:
            ends = array("i", itertools.accumulate(lens, initial=at))
        values = pa.Array.from_buffers(
            pa.binary(), count, [None, pa.py_buffer(ends), pa.py_buffer(body)]
        )
        micros = pa.timestamp("us", tz="UTC")
        stamps = piece.timestamps()
        when: Any
        if isinstance(stamps, int):
            when = pa.repeat(pa.scalar(stamps * 1000, micros), count)
        else:
            when = pa.array(stamps, pa.timestamp("ms", tz="UTC")).cast(micros)
        keys = piece.keys()
        if keys is None:
            key_array = pa.nulls(count, pa.binary())
        elif isinstance(keys, bytes):
            key_array = pa.repeat(pa.scalar(keys, pa.binary()), count)
        else:
            key_array = pa.array(keys, pa.binary())
        raw = piece.headers()
        headers = None if raw is None else self.headers
        return [
            pa.repeat(pa.scalar(self.partition, pa.int32()), count),
            pa.array(self.offsets, pa.int64()),
            when,
            key_array,
            values,
            _arrow_headers(headers, count),
        ]


def _records(name: str, partition: int, slices: list[FrameSlice]) -> list[Record]:
    """The Records of frames read (built column by column: see ``_build_records``)."""
    out: list[Record] = []
    stamps: dict[int, datetime] = {}
    for piece in slices:
        out += _FrameRun(partition, piece, stamps).records(name)
    return out


def _datetime(ts: int, cache: dict[int, datetime]) -> datetime:
    found = cache.get(ts)
    if found is None:
        found = cache[ts] = _EPOCH + ts * _MS
    return found


def _headers(raw: bytes) -> dict[str, str]:
    return decode_headers(raw) if raw else {}


def _to_ms(ts: datetime, *, what: str) -> int:
    if not isinstance(ts, datetime) or ts.tzinfo is None or ts.utcoffset() is None:
        raise InvalidInputError(
            f"{what} must be a timezone-aware datetime (e.g. datetime.now(UTC)), got {ts!r}"
        )
    return (ts - _EPOCH) // _MS


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


@contextmanager
def _mapped(what: str) -> Iterator[None]:
    """Map OS errors to lakekit's tree at the adapter boundary."""
    try:
        yield
    except LakekitError:
        raise
    except PermissionError as exc:
        raise PermissionDeniedError(f"{what}: {exc}") from exc
    except OSError as exc:
        code = errno.errorcode.get(exc.errno, "") if exc.errno else ""
        detail = f"{exc.strerror or exc} ({code})" if code else str(exc.strerror or exc)
        raise LakekitError(f"{what}: {detail}") from exc
    except (ValueError, UnicodeDecodeError) as exc:  # undecodable headers in a valid frame
        raise LakekitError(f"{what}: {exc}") from exc
