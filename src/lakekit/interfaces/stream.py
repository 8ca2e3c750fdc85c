"""Stream: a partitioned, durable, replayable log of records, read by consumer groups.

* :class:`StreamAdapter` is what an adapter author implements (one instance per stream name).
* :class:`Stream` is what users call (``lake.stream("events")``), and :class:`Consumer` reads.

Guarantees every adapter gives (checked by :class:`lakekit.testing.StreamSuite`):

* **Acknowledged means durable**: once ``publish`` returns, the records survive a crash of the
  producer (and, per the adapter's fsync policy, of the machine).
* **Ordered per partition**: offsets in a partition are dense, increasing, and read back in
  publish order; records with the same key land in the same partition.
* **At-least-once consumption**: a consumer group resumes from its last *committed* offsets, so a
  consumer killed mid-batch re-reads the uncommitted records and never skips a committed one.
"""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice, repeat
from typing import Any, ClassVar, Literal, overload

from lakekit.capabilities import Capability, require
from lakekit.errors import InvalidInputError

__all__ = [
    "Consumer",
    "Message",
    "PositionRange",
    "Record",
    "RecordBlock",
    "RecordPosition",
    "RecordRun",
    "Stream",
    "StreamAdapter",
]


@dataclass(frozen=True, slots=True)
class Message:
    """A record to publish."""

    value: bytes
    key: bytes | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    timestamp: datetime | None = None
    """Event time; defaults to the publish time (UTC)."""


@dataclass(frozen=True, slots=True)
class RecordPosition:
    partition: int
    offset: int


class PositionRange(Sequence[RecordPosition]):
    """The positions of ``length`` consecutive offsets of one partition, from ``first_offset``.

    What a batch append returns (:meth:`Stream.publish_values`): a sequence of
    :class:`RecordPosition` built on access, so a large batch does not cost one object per
    record. Compares equal to any sequence of the same positions (a list, a tuple).
    """

    __slots__ = ("first_offset", "length", "partition")

    def __init__(self, partition: int, first_offset: int, length: int) -> None:
        if length < 0:
            raise InvalidInputError(f"length must be >= 0, got {length}")
        self.partition = partition
        self.first_offset = first_offset
        self.length = length

    @property
    def offsets(self) -> range:
        """The offsets, in order."""
        return range(self.first_offset, self.first_offset + self.length)

    def __len__(self) -> int:
        return self.length

    @overload
    def __getitem__(self, index: int) -> RecordPosition: ...

    @overload
    def __getitem__(self, index: slice) -> PositionRange: ...

    def __getitem__(self, index: int | slice) -> RecordPosition | PositionRange:
        if isinstance(index, slice):
            picked = self.offsets[index]
            if picked.step != 1:
                raise InvalidInputError("PositionRange slices take no step")
            return PositionRange(self.partition, picked.start, len(picked))
        return RecordPosition(self.partition, self.offsets[index])

    def __iter__(self) -> Iterator[RecordPosition]:
        partition = self.partition
        return (RecordPosition(partition, offset) for offset in self.offsets)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, PositionRange):
            return (self.partition, self.offsets) == (other.partition, other.offsets) or (
                self.length == other.length == 0
            )
        if isinstance(other, Sequence) and not isinstance(other, str | bytes):
            return len(other) == self.length and all(
                a == b for a, b in zip(self, other, strict=True)
            )
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # compares equal to mutable lists

    def __repr__(self) -> str:
        return (
            f"PositionRange(partition={self.partition}, first_offset={self.first_offset}, "
            f"length={self.length})"
        )


@dataclass(frozen=True, slots=True)
class Record:
    """A record read from a stream."""

    stream: str
    partition: int
    offset: int
    timestamp: datetime
    """Timezone-aware (UTC)."""
    value: bytes
    key: bytes | None = None
    headers: Mapping[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        """The value decoded as UTF-8 JSON."""
        return json.loads(self.value)


# -- building many Records -----------------------------------------------------------------------
_RECORD_FIELDS = ("stream", "partition", "offset", "timestamp", "value", "key", "headers")
_FAST_RECORDS = tuple(f.name for f in dataclasses.fields(Record)) == _RECORD_FIELDS and all(
    type(getattr(Record, name)).__name__ == "member_descriptor" for name in _RECORD_FIELDS
)
"""Whether Record is the slotted dataclass of these fields that :func:`_build_records` fills
column by column (checked once, so a change to Record falls back to calling its constructor)."""
_SETTERS: tuple[Callable[[Record, Any], None], ...] = (
    tuple(getattr(Record, name).__set__ for name in _RECORD_FIELDS) if _FAST_RECORDS else ()
)
_new_record = object.__new__
_drain: Callable[[Iterator[None]], None] = deque[None](maxlen=0).extend


def _build_records(  # noqa: PLR0917 - one positional argument per Record field
    stream: str,
    partition: int,
    count: int,
    offsets: Iterable[int],
    timestamps: Iterable[datetime],
    values: Iterable[bytes],
    keys: Iterable[bytes | None],
    headers: Iterable[Mapping[str, str]],
) -> list[Record]:
    """``count`` Records of one partition from columns (iterables of at least ``count``).

    Filling each slot of every record column by column (C-level ``map`` over the slot
    descriptors, as the frozen dataclass's own ``__init__`` sets them through
    ``object.__setattr__``) costs about half of calling ``Record(...)`` per record. Records
    are immutable either way.
    """
    columns: tuple[Iterable[Any], ...] = (
        repeat(stream),
        repeat(partition),
        offsets,
        timestamps,
        values,
        keys,
        headers,
    )
    if not _FAST_RECORDS:  # pragma: no cover - only if Record changes shape
        return list(islice(map(Record, *columns), count))
    records = list(map(_new_record, repeat(Record, count)))
    for setter, column in zip(_SETTERS, columns, strict=True):
        _drain(map(setter, records, column))
    return records


class RecordRun:
    """Consecutive records of one partition, by column: one piece of a :class:`RecordBlock`.

    Adapters that override :meth:`StreamAdapter.read_block` build runs from their columns (or
    subclass this to decode a column only when it is asked for); users read them through
    :attr:`RecordBlock.runs`. Columns are sequences aligned with ``offsets``.

    Raises:
        InvalidInputError: columns of different lengths.
    """

    __slots__ = ("_headers", "_keys", "_timestamps", "_values", "offsets", "partition")

    def __init__(  # noqa: PLR0917 - one positional argument per column
        self,
        partition: int,
        offsets: range | Sequence[int],
        values: Sequence[bytes],
        timestamps: Sequence[datetime],
        keys: Sequence[bytes | None] | None = None,
        headers: Sequence[Mapping[str, str]] | None = None,
    ) -> None:
        count = len(offsets)
        for name, column in (
            (("values", values), ("timestamps", timestamps))
            + ((("keys", keys),) if keys is not None else ())
            + ((("headers", headers),) if headers is not None else ())
        ):
            if len(column) != count:
                raise InvalidInputError(
                    f"a RecordRun's {name} has {len(column)} entries for {count} offsets"
                )
        self.partition = partition
        self.offsets = offsets
        """The records' offsets, increasing (a ``range`` where offsets are dense)."""
        self._values = values
        self._timestamps = timestamps
        self._keys = keys
        self._headers = headers

    def __len__(self) -> int:
        return len(self.offsets)

    @property
    def first_offset(self) -> int:
        return self.offsets[0]

    @property
    def next_offset(self) -> int:
        """The offset after the run's last record: what committing the run stores."""
        return self.offsets[-1] + 1

    @property
    def values(self) -> Sequence[bytes]:
        return self._values

    @property
    def timestamps(self) -> Sequence[datetime]:
        """Timezone-aware (UTC)."""
        return self._timestamps

    @property
    def keys(self) -> Sequence[bytes | None]:
        return [None] * len(self) if self._keys is None else self._keys

    @property
    def headers(self) -> Sequence[Mapping[str, str]]:
        return [{} for _ in range(len(self))] if self._headers is None else self._headers

    def records(self, stream: str) -> list[Record]:
        """The run as :class:`Record` objects (built column by column)."""
        return _build_records(
            stream,
            self.partition,
            len(self),
            self.offsets,
            self.timestamps,
            self.values,
            repeat(None) if self._keys is None else self._keys,
            iter(dict, None) if self._headers is None else self._headers,
        )

    def arrow_arrays(self) -> list[Any]:
        """The run's columns as pyarrow arrays, in :meth:`RecordBlock.to_arrow`'s order.

        Adapters that keep values in one buffer override this to wrap it without copying.
        """
        import pyarrow as pa

        count = len(self)
        return [
            pa.repeat(pa.scalar(self.partition, pa.int32()), count),
            pa.array(self.offsets, pa.int64()),
            pa.array(self.timestamps, pa.timestamp("us", tz="UTC")),
            pa.array(self.keys, pa.binary()),
            pa.array(self.values, pa.binary()),
            _arrow_headers(self._headers, count),
        ]

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(partition={self.partition}, "
            f"offsets={self.offsets[0] if self.offsets else None}.."
            f"{self.offsets[-1] if self.offsets else None}, count={len(self)})"
        )


class RecordBlock(Sequence[Record]):
    """Records of one poll (or read) by column, without a Python object per record.

    What :meth:`Consumer.poll_batch` and :meth:`Stream.read_block` return: ``runs`` of
    consecutive records of one partition, in delivery order (each partition's records in
    offset order). Columns (``values``, ``offsets``, ``partitions``, ``timestamps``,
    ``keys``, ``headers``) are aligned and built on first access; ``next_offsets`` is what
    :meth:`Consumer.commit` stores for the block. It is also a ``Sequence[Record]``: indexing
    and iterating build :class:`Record` objects on demand, so code written for ``poll()``
    works on it, and it compares equal to the list of the same records. ``to_arrow()``
    returns a ``pyarrow.Table`` (values wrapped without copying where the adapter keeps them
    in one buffer). Treat it and its columns as read-only: columns may be shared with its runs.
    """

    __slots__ = ("_cache", "_length", "_runs", "stream")

    def __init__(self, stream: str, runs: Sequence[RecordRun] = ()) -> None:
        self.stream = stream
        self._runs = tuple(run for run in runs if len(run))
        self._length = sum(map(len, self._runs))
        self._cache: dict[str, Any] = {}

    @classmethod
    def from_records(cls, stream: str, records: Sequence[Record]) -> RecordBlock:
        """A block of ``records`` (consecutive records of one partition become one run)."""
        runs: list[RecordRun] = []
        start = 0
        for i in range(1, len(records) + 1):
            if i == len(records) or records[i].partition != records[start].partition:
                part = records[start:i]
                runs.append(
                    RecordRun(
                        part[0].partition,
                        [r.offset for r in part],
                        [r.value for r in part],
                        [r.timestamp for r in part],
                        [r.key for r in part],
                        [r.headers for r in part],
                    )
                )
                start = i
        return cls(stream, runs)

    @property
    def runs(self) -> tuple[RecordRun, ...]:
        return self._runs

    def __len__(self) -> int:
        return self._length

    def __bool__(self) -> bool:
        return self._length > 0

    def _column(self, name: str, build: Callable[[RecordRun], Sequence[Any]]) -> Sequence[Any]:
        found = self._cache.get(name)
        if found is None:
            if len(self._runs) == 1:
                found = build(self._runs[0])
            else:
                found = []
                for run in self._runs:
                    found += build(run)
            self._cache[name] = found
        return found

    @property
    def values(self) -> Sequence[bytes]:
        """Every record's value, in block order: one sequence (sliced in C by the local
        adapter)."""
        return self._column("values", lambda run: run.values)

    @property
    def offsets(self) -> Sequence[int]:
        return self._column("offsets", lambda run: run.offsets)

    @property
    def partitions(self) -> Sequence[int]:
        return self._column("partitions", lambda run: [run.partition] * len(run))

    @property
    def timestamps(self) -> Sequence[datetime]:
        return self._column("timestamps", lambda run: run.timestamps)

    @property
    def keys(self) -> Sequence[bytes | None]:
        return self._column("keys", lambda run: run.keys)

    @property
    def headers(self) -> Sequence[Mapping[str, str]]:
        return self._column("headers", lambda run: run.headers)

    @property
    def next_offsets(self) -> dict[int, int]:
        """Per partition in the block: its last record's offset + 1 (what committing the
        block acknowledges)."""
        out: dict[int, int] = {}
        for run in self._runs:
            out[run.partition] = max(out.get(run.partition, 0), run.next_offset)
        return out

    def records(self) -> list[Record]:
        """Every record as a :class:`Record` (built column by column, run by run)."""
        found = self._cache.get("records")
        if found is None:
            found = self._cache["records"] = [
                record for run in self._runs for record in run.records(self.stream)
            ]
        return found

    @overload
    def __getitem__(self, index: int) -> Record: ...

    @overload
    def __getitem__(self, index: slice) -> list[Record]: ...

    def __getitem__(self, index: int | slice) -> Record | list[Record]:
        return self.records()[index]

    def __iter__(self) -> Iterator[Record]:
        built = self._cache.get("records")
        if built is not None:
            yield from built
            return
        for run in self._runs:  # run by run: a partly consumed iteration builds less
            yield from run.records(self.stream)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, RecordBlock):
            return self.stream == other.stream and self.records() == other.records()
        if isinstance(other, Sequence) and not isinstance(other, str | bytes):
            return len(other) == self._length and self.records() == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # compares equal to mutable lists

    def to_arrow(self) -> Any:
        """The block as a ``pyarrow.Table``, one record batch per run, with the columns
        ``partition`` (int32), ``offset`` (int64), ``timestamp`` (timestamp[us, UTC]), ``key``
        (binary, null when absent), ``value`` (binary) and ``headers`` (map<string, string>)."""
        import pyarrow as pa

        schema = _arrow_schema()
        return pa.Table.from_batches(
            [pa.RecordBatch.from_arrays(run.arrow_arrays(), schema=schema) for run in self._runs],
            schema=schema,
        )

    def __repr__(self) -> str:
        spans = ", ".join(
            f"p{run.partition}:{run.first_offset}..{run.offsets[-1]}" for run in self._runs
        )
        return f"RecordBlock(stream={self.stream!r}, records={self._length}, runs=[{spans}])"


def _arrow_schema() -> Any:
    """The schema of :meth:`RecordBlock.to_arrow`."""
    import pyarrow as pa

    fields: list[Any] = [
        pa.field("partition", pa.int32(), nullable=False),
        pa.field("offset", pa.int64(), nullable=False),
        pa.field("timestamp", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("key", pa.binary()),
        pa.field("value", pa.binary(), nullable=False),
        pa.field("headers", pa.map_(pa.string(), pa.string()), nullable=False),
    ]
    return pa.schema(fields)


def _arrow_headers(headers: Sequence[Mapping[str, str]] | None, count: int) -> Any:
    """A ``map<string, string>`` array of ``headers`` (``None``: ``count`` empty maps)."""
    import pyarrow as pa

    kind = pa.map_(pa.string(), pa.string())
    if headers is None:
        return pa.repeat(pa.scalar([], kind), count)
    return pa.array([list(h.items()) for h in headers], kind)


class StreamAdapter(ABC):
    """The implementer's interface for one named stream.

    Offsets are per partition, start at 0 and are dense (unless ``dense_offsets`` is False).
    "Committed offset" always means the *next* offset to read (as in Kafka), so committing
    ``last_offset + 1`` acknowledges a record.
    """

    capabilities: ClassVar[frozenset[Capability]] = frozenset()
    dense_offsets: ClassVar[bool] = True
    """False for adapters whose offsets are the backend's sequence numbers (Kinesis): they
    still increase in publish order within a partition, are unique, and ``last_offset + 1`` is
    still the next offset to read, but they neither start at 0 nor grow by exactly one (an
    empty partition's earliest and latest offsets are then both 0)."""

    def __init__(self, name: str) -> None:
        self.name = name

    @abstractmethod
    def publish(self, messages: Sequence[Message]) -> list[RecordPosition]:
        """Append messages durably; return their positions in input order.

        Messages with the same key go to the same partition, in order.
        """

    def publish_values(
        self,
        values: Sequence[bytes | str],
        *,
        key: bytes | None = None,
        timestamp: datetime | None = None,
    ) -> Sequence[RecordPosition]:
        """Append values that share a key (or have none) and a timestamp; positions in input
        order, once durable.

        Optional fast path: adapters that can append such a batch without building a
        :class:`Message` per value override it. The default calls :meth:`publish`. Values may
        be bytes-like or str (UTF-8 encoded).

        Raises:
            InvalidInputError: a value is neither bytes-like nor str, or ``key`` is not bytes.
        """
        if key is not None and not isinstance(key, bytes | bytearray | memoryview):
            raise InvalidInputError(f"record key must be bytes or None, got {type(key).__name__}")
        key = None if key is None else bytes(key)
        return self.publish([_message(value, key, None, timestamp) for value in values])

    @abstractmethod
    def partitions(self) -> list[int]:
        """The stream's partition ids."""

    @abstractmethod
    def read(self, partition: int, offset: int, max_records: int) -> list[Record]:
        """Up to ``max_records`` records of ``partition`` from ``offset`` on ([] at the end).

        An offset below the earliest retained one reads from the earliest retained record.

        Raises:
            InvalidInputError: ``partition`` is not one of :meth:`partitions`, or ``offset < 0``.
        """

    def read_block(self, partition: int, offset: int, max_records: int) -> RecordBlock:
        """As :meth:`read`, by column: a :class:`RecordBlock` of the same records.

        Optional fast path: adapters whose storage is already columnar (the local stream's
        batch frames) override it to skip building a :class:`Record` per record. The default
        builds the block from :meth:`read`.

        Raises:
            InvalidInputError: as :meth:`read`.
        """
        return RecordBlock.from_records(self.name, self.read(partition, offset, max_records))

    @abstractmethod
    def offsets(self, which: Literal["earliest", "latest"]) -> dict[int, int]:
        """Per partition: the earliest retained offset, or the next offset to be written."""

    @abstractmethod
    def committed(self, group: str) -> dict[int, int]:
        """The group's committed (next-to-read) offsets; partitions never committed are absent."""

    @abstractmethod
    def commit(self, group: str, offsets: Mapping[int, int]) -> None:
        """Durably record the group's next-to-read offsets for the given partitions."""

    def offsets_for_time(self, ts: datetime) -> dict[int, int]:
        """Per partition, the first offset whose timestamp is >= ``ts`` (REPLAY_FROM_TIME)."""
        require(self, Capability.REPLAY_FROM_TIME)
        raise AssertionError("unreachable: an adapter declaring REPLAY_FROM_TIME overrides this")

    def assign(self, group: str, member: str) -> list[int]:
        """The partitions ``member`` of ``group`` may read now. Default: all of them.

        Adapters with real group membership (leases, locks) override this and :meth:`release`.
        """
        return self.partitions()

    def release(self, group: str, member: str) -> None:  # noqa: B027 - optional hook
        """Give up the member's partitions (called when a consumer closes)."""

    def enforce_retention(self) -> int:
        """Drop records past the retention limits now; return how many were dropped (RETENTION).

        Adapters may also enforce retention on their own schedule.
        """
        require(self, Capability.RETENTION)
        raise AssertionError("unreachable: an adapter declaring RETENTION overrides this")

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release files and connections. Optional."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


class Stream:
    """The user-facing stream (``lake.stream(name)``)."""

    def __init__(self, adapter: StreamAdapter) -> None:
        self.adapter = adapter

    @property
    def name(self) -> str:
        return self.adapter.name

    @property
    def capabilities(self) -> frozenset[Capability]:
        return self.adapter.capabilities

    def __repr__(self) -> str:
        return f"Stream({self.adapter!r})"

    def publish(
        self,
        value: bytes | str,
        *,
        key: bytes | str | None = None,
        headers: Mapping[str, str] | None = None,
        timestamp: datetime | None = None,
    ) -> RecordPosition:
        """Publish one record; returns once it is durable (per the adapter's fsync policy)."""
        return self.adapter.publish([_message(value, key, headers, timestamp)])[0]

    def publish_json(
        self, obj: Any, *, key: bytes | str | None = None, headers: Mapping[str, str] | None = None
    ) -> RecordPosition:
        return self.publish(_dumps(obj), key=key, headers=headers)

    def publish_many(self, messages: Sequence[Message | bytes | str]) -> list[RecordPosition]:
        """Publish a batch in one durable append per partition; positions in input order.

        A batch of plain ``bytes`` values takes the adapter's :meth:`publish_values` path (the
        same records, partitioned the same way, without a :class:`Message` per value).
        """
        if not messages:
            return []
        if set(map(type, messages)) == {bytes}:
            return list(self.adapter.publish_values(messages))  # type: ignore[arg-type]
        batch = [m if isinstance(m, Message) else _message(m, None, None, None) for m in messages]
        return self.adapter.publish(batch)

    def publish_values(
        self,
        values: Sequence[bytes | str],
        *,
        key: bytes | str | None = None,
        timestamp: datetime | None = None,
    ) -> Sequence[RecordPosition]:
        """Publish many values that share one key (or none) and one timestamp: the fast path.

        Same guarantees as :meth:`publish_many` (returns once durable per the adapter's fsync
        policy; positions in input order). All values land in one partition: the key's, or for
        ``key=None`` the partition an unkeyed :meth:`publish_many` would use. Adapters with a
        batch format (the local stream) append them without any per-record Python work and
        return a :class:`PositionRange`; str values are UTF-8 encoded. ``timestamp`` defaults
        to the publish time.

        Raises:
            InvalidInputError: a value is neither bytes-like nor str, a key of the wrong type,
                or a naive ``timestamp``.
        """
        if isinstance(values, str | bytes | bytearray | memoryview):
            raise InvalidInputError(
                "publish_values takes a sequence of values; for one value use publish()"
            )
        if not isinstance(values, list | tuple):
            values = list(values)
        if not values:
            return []
        if isinstance(key, str):
            key = key.encode("utf-8")
        return self.adapter.publish_values(values, key=key, timestamp=timestamp)

    def partitions(self) -> list[int]:
        return self.adapter.partitions()

    def read(self, partition: int, offset: int = 0, max_records: int = 1000) -> list[Record]:
        if max_records < 1:
            raise InvalidInputError("max_records must be >= 1")
        return self.adapter.read(partition, offset, max_records)

    def read_block(self, partition: int, offset: int = 0, max_records: int = 1000) -> RecordBlock:
        """As :meth:`read`, as one :class:`RecordBlock` (columns, no object per record).

        Raises:
            InvalidInputError: unknown partition, ``offset < 0`` or ``max_records < 1``.
        """
        if max_records < 1:
            raise InvalidInputError("max_records must be >= 1")
        return self.adapter.read_block(partition, offset, max_records)

    def replay(
        self, *, from_offsets: Mapping[int, int] | None = None, from_time: datetime | None = None
    ) -> Iterator[Record]:
        """Yield every retained record from the given offsets or time up to the current end,
        partition by partition (ordered within each partition)."""
        if from_time is not None:
            start = self.adapter.offsets_for_time(from_time)
        else:
            start = dict(from_offsets or self.adapter.offsets("earliest"))
        end = self.adapter.offsets("latest")
        for partition in sorted(end):
            offset = start.get(partition, 0)
            while offset < end[partition]:
                records = self.adapter.read(partition, offset, 1000)
                if not records:
                    break
                for record in records:
                    if record.offset >= end[partition]:
                        break
                    yield record
                offset = records[-1].offset + 1

    def offsets(self, which: Literal["earliest", "latest"] = "latest") -> dict[int, int]:
        return self.adapter.offsets(which)

    def committed(self, group: str) -> dict[int, int]:
        return self.adapter.committed(_check_group(group))

    def consumer(
        self,
        group: str,
        *,
        start: Literal["earliest", "latest"] = "earliest",
        member: str | None = None,
    ) -> Consumer:
        """A consumer in ``group``. It resumes from the group's committed offsets; partitions
        the group never committed start at ``start``."""
        require(self.adapter, Capability.CONSUMER_GROUPS)
        return Consumer(self.adapter, _check_group(group), start=start, member=member)

    def enforce_retention(self) -> int:
        return self.adapter.enforce_retention()

    def close(self) -> None:
        self.adapter.close()


class Consumer:
    """Reads a stream for a consumer group: ``poll`` a batch, process it, ``commit``.

    At-least-once: records are acknowledged only by :meth:`commit`. A consumer that dies before
    committing leaves the group where it was, so the next consumer re-reads those records.
    """

    def __init__(
        self,
        adapter: StreamAdapter,
        group: str,
        *,
        start: Literal["earliest", "latest"] = "earliest",
        member: str | None = None,
    ) -> None:
        self.adapter = adapter
        self.group = group
        self.member = member or uuid.uuid4().hex
        self._start = start
        self._positions: dict[int, int] = {}
        self._uncommitted: dict[int, int] = {}
        self._polls = 0
        self._closed = False

    def __enter__(self) -> Consumer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _position(self, partition: int) -> int:
        if partition not in self._positions:
            committed = self.adapter.committed(self.group)
            if partition in committed:
                self._positions[partition] = committed[partition]
            else:
                self._positions[partition] = self.adapter.offsets(self._start).get(partition, 0)
        return self._positions[partition]

    def poll(self, max_records: int = 500, timeout: float = 0.0) -> list[Record]:
        """Up to ``max_records`` new records across the member's partitions.

        Waits up to ``timeout`` seconds for records to arrive; returns [] if none did.
        Records are acknowledged only by :meth:`commit`.

        Raises:
            InvalidInputError: the consumer is closed, or ``max_records < 1``.
        """
        batch: list[Record] = []
        for records in self._poll(max_records, timeout, self._read_records):
            batch.extend(records)
        return batch

    def poll_batch(self, max_records: int = 500, timeout: float = 0.0) -> RecordBlock:
        """As :meth:`poll`, by column: the same records as one :class:`RecordBlock`.

        Exactly the records :meth:`poll` would return, in the same order, with the same effect
        on the read positions: :meth:`commit` (or ``commit(block)``) acknowledges them. Adapters
        that store records by column (the local stream) fill it without creating an object
        per record; ``block.values`` is then one list of values sliced in C, and
        ``block.to_arrow()`` wraps the stored values without copying. An empty block (falsy)
        if no record arrived within ``timeout``.

        Raises:
            InvalidInputError: the consumer is closed, or ``max_records < 1``.
        """
        runs: list[RecordRun] = []
        for block in self._poll(max_records, timeout, self._read_runs):
            runs.extend(block)
        return RecordBlock(self.adapter.name, runs)

    def _read_records(self, partition: int, offset: int, wanted: int) -> tuple[list[Record], int]:
        records = self.adapter.read(partition, offset, wanted)
        return records, (records[-1].offset + 1 if records else offset)

    def _read_runs(
        self, partition: int, offset: int, wanted: int
    ) -> tuple[tuple[RecordRun, ...], int]:
        block = self.adapter.read_block(partition, offset, wanted)
        runs = block.runs
        return runs, (runs[-1].next_offset if runs else offset)

    def _poll(
        self,
        max_records: int,
        timeout: float,
        read: Callable[[int, int, int], tuple[Sequence[Any], int]],
    ) -> list[Sequence[Any]]:
        """What ``read(partition, offset, wanted) -> (items, next offset)`` returned for each
        partition that had records, once some arrived or ``timeout`` passed; advances the read
        positions past them."""
        if self._closed:
            raise InvalidInputError("this consumer is closed")
        if isinstance(max_records, bool) or not isinstance(max_records, int) or max_records < 1:
            raise InvalidInputError(f"max_records must be an int >= 1, got {max_records!r}")
        deadline = time.monotonic() + timeout
        delay = 0.005
        while True:
            found: list[Sequence[Any]] = []
            count = 0
            for partition in self._assigned():
                if count >= max_records:
                    break
                position = self._positions.get(partition)
                if position is None:
                    position = self._position(partition)
                items, after = read(partition, position, max_records - count)
                if after != position:
                    self._positions[partition] = after
                    self._uncommitted[partition] = after
                    found.append(items)
                    count += _count(items)
            if found or time.monotonic() >= deadline:
                return found
            time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
            delay = min(delay * 2, 0.2)

    def _assigned(self) -> list[int]:
        """The member's partitions, starting one further each poll so none starves.

        Partitions the adapter no longer assigns (a rebalance gave them to another member) lose
        their read position and uncommitted offsets here: if they come back, reading resumes
        from the group's committed offset (records in between may be delivered again, never
        skipped).
        """
        assigned = list(self.adapter.assign(self.group, self.member))
        for partition in set(self._positions) - set(assigned):
            del self._positions[partition]
            self._uncommitted.pop(partition, None)
        if not assigned:
            return assigned
        start = self._polls % len(assigned)
        self._polls += 1
        return assigned[start:] + assigned[:start]

    def commit(self, records: Sequence[Record] | RecordBlock | None = None) -> None:
        """Acknowledge records: all polled so far, or up to each partition's last in ``records``
        (a list of records or a :class:`RecordBlock`)."""
        if records is None:
            offsets = dict(self._uncommitted)
        elif isinstance(records, RecordBlock):
            offsets = records.next_offsets
        else:
            offsets = {}
            for record in records:
                offsets[record.partition] = max(offsets.get(record.partition, 0), record.offset + 1)
        if offsets:
            self.adapter.commit(self.group, offsets)
            for partition, offset in offsets.items():
                if self._uncommitted.get(partition, -1) <= offset:
                    self._uncommitted.pop(partition, None)

    def seek(self, offsets: Mapping[int, int]) -> None:
        """Move the read positions (not the committed offsets) of some partitions."""
        self._positions.update(offsets)

    def seek_to_time(self, ts: datetime) -> None:
        self._positions.update(self.adapter.offsets_for_time(ts))

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.adapter.release(self.group, self.member)


def _count(items: Sequence[Any]) -> int:
    """Records in what one read returned: records, or runs of records."""
    if items and isinstance(items[0], RecordRun):
        return sum(map(len, items))
    return len(items)


def _message(
    value: bytes | str,
    key: bytes | str | None,
    headers: Mapping[str, str] | None,
    timestamp: datetime | None,
) -> Message:
    if isinstance(value, str):
        value = value.encode("utf-8")
    if not isinstance(value, bytes | bytearray | memoryview):
        raise InvalidInputError(f"record value must be bytes or str, got {type(value).__name__}")
    if isinstance(key, str):
        key = key.encode("utf-8")
    return Message(bytes(value), key, dict(headers or {}), timestamp)


def _dumps(obj: Any) -> bytes:
    try:
        return json.dumps(obj, separators=(",", ":"), default=str).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"value is not JSON-serialisable: {exc}") from exc


def _check_group(group: str) -> str:
    from lakekit.identifiers import validate_name

    return validate_name(group, what="consumer group")
