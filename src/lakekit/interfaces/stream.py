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

import json
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Literal, overload

from lakekit.capabilities import Capability, require
from lakekit.errors import InvalidInputError

__all__ = [
    "Consumer",
    "Message",
    "PositionRange",
    "Record",
    "RecordPosition",
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
        """
        if self._closed:
            raise InvalidInputError("this consumer is closed")
        deadline = time.monotonic() + timeout
        delay = 0.005
        while True:
            batch: list[Record] = []
            for partition in self._assigned():
                if len(batch) >= max_records:
                    break
                records = self.adapter.read(
                    partition, self._position(partition), max_records - len(batch)
                )
                if records:
                    self._positions[partition] = records[-1].offset + 1
                    self._uncommitted[partition] = records[-1].offset + 1
                    batch.extend(records)
            if batch or time.monotonic() >= deadline:
                return batch
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

    def commit(self, records: Sequence[Record] | None = None) -> None:
        """Acknowledge records: all polled so far, or up to each partition's last in ``records``."""
        if records is None:
            offsets = dict(self._uncommitted)
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
