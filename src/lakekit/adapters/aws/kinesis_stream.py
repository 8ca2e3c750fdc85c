"""The Kinesis stream: a lakekit stream is a Kinesis data stream; partitions are its shards.

``lakekit.connect("s3://bucket/lake", stream="kinesis")`` (or ``LAKEKIT_STREAM=kinesis``)
makes ``lake.stream("clicks")`` the Kinesis stream ``<name_prefix>clicks``, created on first
use unless ``create=False``. How the guarantees of :mod:`lakekit.interfaces.stream` are kept:

* **Acknowledged means durable**: ``publish`` returns once Kinesis acknowledged every record
  (Kinesis stores each record in three availability zones before it acknowledges).
* **Ordered per key, with retries**: PutRecords may fail *some* records of a request
  (``ProvisionedThroughputExceededException``, ``InternalFailure``) and accept the others, so
  retrying a failed record after a later record of the same key succeeded would reorder them.
  lakekit never puts two Kinesis records of one key in the same request: the key's records of
  a batch travel *together* in one Kinesis record (framed, see
  :mod:`lakekit.adapters.aws._kinesis_format`), which succeeds or fails as a whole; only the
  failed ones are retried (exponential backoff with jitter), and a key's next Kinesis record
  (past 1 MiB) is sent only after the previous one succeeded. Records without a key share one
  random partition key per call, so an unkeyed batch is ordered too, in one shard.
* **Batching within Kinesis' limits**: at most 500 Kinesis records and 5 MiB per PutRecords,
  at most 1 MiB per Kinesis record including the partition key. A lakekit record that cannot
  fit (value + key + headers + ~20 bytes of framing) is refused before anything is sent.
* **Partitions are shards**: shard ``shardId-000000000007`` is partition 7. Ids are stable:
  Kinesis numbers new shards after the existing ones, so splits and merges add partitions and
  never renumber. Records with the same key go to the shard owning the key's hash.
* **Offsets are sequence numbers**, ``sequence_number << 16 | index`` (the index of the
  record inside its Kinesis record). They increase in publish order within a shard and are
  unique, but they are **not dense** and not small (``dense_offsets = False``): they neither
  start at 0 nor grow by one. ``last.offset + 1`` is still the next offset to read.
  ``offsets("latest")`` of an open shard is the last record's offset + 1 (0 for an empty
  shard); of a closed shard, an offset past its ending sequence number.
* **Resharding**: partitions include closed (split or merged) shards while they retain data.
  A consumer group reads a child shard only after each of its parents is *finished* for the
  group (closed, and the group committed past its last record), so a key's records are read
  in order across a split or merge. Finished shards leave the group's assignment.
* **Consumer groups**: committed offsets, members and per-shard leases live in DynamoDB,
  every write conditional (see :mod:`lakekit.adapters.aws._kinesis_groups`): commits only move
  forward, a shard has one owner at a time, and a killed consumer's shards move to the others
  after ``lease_seconds``. At-least-once: a group resumes from its committed offsets.
* **Replay from time** uses the event time lakekit stored with each record (``timestamp``),
  by scanning each shard from its oldest record (Kinesis' own AT_TIMESTAMP uses the arrival
  time, which differs for records published with an explicit ``timestamp``).
* **Retention** is Kinesis' (24 hours to 365 days, set on the stream); ``enforce_retention``
  is not supported.

Reads respect Kinesis' limits of 5 GetRecords and 5 GetShardIterator calls per second per
shard: shard iterators are cached and continued, and a shard that was read to its tip is not
read again within ``min_read_interval``.
"""

from __future__ import annotations

import contextlib
import random
import re
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Self

from pydantic import Field, field_validator

from lakekit.adapters._stream_rules import message_bytes, validate_member
from lakekit.adapters.aws import _kinesis_format as fmt
from lakekit.adapters.aws._client import AwsClients, AwsSettings, settings_from_arguments
from lakekit.adapters.aws._errors import aws_errors, error_code, is_client_error
from lakekit.adapters.aws._kinesis_groups import GroupStore
from lakekit.capabilities import Capability
from lakekit.config import AdapterSettings
from lakekit.errors import (
    ConfigurationError,
    InvalidInputError,
    LakekitError,
    NotFoundError,
    TransientError,
)
from lakekit.identifiers import validate_name
from lakekit.interfaces.stream import Message, Record, RecordPosition, StreamAdapter

if TYPE_CHECKING:
    from lakekit.lake import Lake

__all__ = ["KinesisStream", "KinesisStreamSettings", "shard_partition"]

MAX_RECORDS_PER_REQUEST = 500
MAX_REQUEST_BYTES = 5 * 1024 * 1024
_SHARD_ID = re.compile(r"shardId-(\d{1,20})")
_STREAM_NAME = re.compile(r"[a-zA-Z0-9_.-]{1,128}")
_GET_RECORDS_LIMIT = 10_000
_EMPTY_READS = 8
"""GetRecords calls that may return nothing while still behind the tip, before a read gives up
(Kinesis returns empty pages while it skips over gaps in a shard)."""
_CURSORS = 64
_PROBES = (5.0, 300.0, 6 * 3600.0)
"""Seconds back from now where ``offsets("latest")`` looks for a shard's last record before
reading the whole shard (AT_TIMESTAMP uses arrival times)."""


class KinesisStreamSettings(AwsSettings):
    """Settings of :class:`KinesisStream` (component ``stream``, env ``LAKEKIT_STREAM_*``)."""

    component: ClassVar[str] = "stream"

    url: str = Field(
        default="kinesis://",
        description="'kinesis' or 'kinesis://'. Env LAKEKIT_STREAM (or LAKEKIT_STREAM_URL).",
    )
    name_prefix: str = Field(
        default="",
        pattern=r"^[a-zA-Z0-9_.-]{0,64}$",
        description=(
            "Prepended to lakekit stream names to form Kinesis stream names, e.g. 'prod-'. "
            "Env LAKEKIT_STREAM_NAME_PREFIX."
        ),
    )
    create: bool = Field(
        default=True,
        description=(
            "Create a missing Kinesis stream on first use (with 'shards' shards, or on-demand). "
            "Env LAKEKIT_STREAM_CREATE."
        ),
    )
    shards: int = Field(
        default=1,
        ge=1,
        le=500,
        description=(
            "Shards of a stream lakekit creates (provisioned mode). Env LAKEKIT_STREAM_SHARDS."
        ),
    )
    on_demand: bool = Field(
        default=False,
        description=(
            "Create streams in on-demand capacity mode instead of 'shards' provisioned shards. "
            "Env LAKEKIT_STREAM_ON_DEMAND."
        ),
    )
    checkpoint_table: str = Field(
        default="lakekit_stream_groups",
        pattern=r"^[a-zA-Z0-9_.-]{3,255}$",
        description=(
            "DynamoDB table holding consumer groups' offsets and leases. "
            "Env LAKEKIT_STREAM_CHECKPOINT_TABLE."
        ),
    )
    create_checkpoint_table: bool = Field(
        default=True,
        description=(
            "Create the checkpoint table (on-demand billing) if it is missing. "
            "Env LAKEKIT_STREAM_CREATE_CHECKPOINT_TABLE."
        ),
    )
    lease_seconds: float = Field(
        default=20.0,
        ge=0.2,
        le=3600.0,
        description=(
            "How long a consumer's shard leases last without renewal; a killed consumer's "
            "shards move to the group's other members after this. "
            "Env LAKEKIT_STREAM_LEASE_SECONDS."
        ),
    )
    max_put_attempts: int = Field(
        default=10,
        ge=1,
        le=100,
        description=(
            "Attempts for records PutRecords failed (throttled or internal failure) before "
            "publish raises TransientError. Env LAKEKIT_STREAM_MAX_PUT_ATTEMPTS."
        ),
    )
    retry_backoff: float = Field(
        default=0.1,
        ge=0.0,
        le=60.0,
        description=(
            "Seconds before the first retry of failed records, doubled per attempt (with "
            "jitter, at most 5 s). Env LAKEKIT_STREAM_RETRY_BACKOFF."
        ),
    )
    min_read_interval: float | None = Field(
        default=None,
        ge=0.0,
        le=60.0,
        description=(
            "Seconds before a shard read to its tip is read again (Kinesis allows 5 reads per "
            "second per shard). Default 0.2 on AWS, 0 with endpoint_url (emulators). "
            "Env LAKEKIT_STREAM_MIN_READ_INTERVAL."
        ),
    )
    shard_refresh_seconds: float = Field(
        default=30.0,
        ge=0.0,
        le=3600.0,
        description=(
            "How long the shard list is cached (splits and merges show up after this). "
            "Env LAKEKIT_STREAM_SHARD_REFRESH_SECONDS."
        ),
    )

    open_eagerly: bool = Field(
        default=False,
        description=(
            "Connect when the stream object is built (checking or creating the stream) rather "
            "than on first use, so a bad setting fails at once and the first publish is fast. "
            "Env LAKEKIT_STREAM_OPEN_EAGERLY."
        ),
    )

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        if value.rstrip("/") not in ("kinesis", "kinesis:"):
            raise ValueError("must be 'kinesis' or 'kinesis://' (settings go in other fields)")
        return value

    @property
    def read_interval(self) -> float:
        if self.min_read_interval is not None:
            return self.min_read_interval
        return 0.0 if self.endpoint_url else 0.2


def shard_partition(shard_id: str) -> int:
    """The lakekit partition of a Kinesis shard id (``shardId-000000000007`` -> 7).

    Raises:
        LakekitError: not a Kinesis shard id.
    """
    match = _SHARD_ID.fullmatch(shard_id)
    if match is None:
        raise LakekitError(f"unexpected Kinesis shard id {shard_id!r}")
    return int(match.group(1))


@dataclass(frozen=True, slots=True)
class _Shard:
    partition: int
    shard_id: str
    parents: tuple[int, ...]
    starting_sequence: int
    ending_sequence: int | None
    """Set once the shard is closed (split or merged)."""

    @property
    def closed(self) -> bool:
        return self.ending_sequence is not None

    @property
    def end(self) -> int:
        """For a closed shard, an offset past all of its records."""
        assert self.ending_sequence is not None
        return fmt.end_offset(self.ending_sequence)


@dataclass
class _Cursor:
    """Where a read of one shard continues: decoded records not yet returned, and the shard
    iterator after them."""

    offset: int
    pending: list[Record] = field(default_factory=list)
    iterator: str | None = None
    caught_up_at: float | None = None
    """Monotonic time of the last read that found the shard's tip (no records, not behind)."""


@dataclass(eq=False)
class _Chunk:
    partition_key: str
    indexes: list[int]
    data: bytes


class KinesisStream(StreamAdapter):
    """One Kinesis data stream.

    Args:
        name: the lakekit stream name (a portable identifier); the Kinesis stream is
            ``name_prefix + name``.
        **settings: any :class:`KinesisStreamSettings` field (region, endpoint_url, profile,
            keys, shards, checkpoint_table, lease_seconds, ...).

    Thread-safe; cheap to build (no network until first use); picklable as
    ``functools.partial(KinesisStream, **settings)``.

    Raises:
        ConfigurationError: a malformed setting.
        InvalidInputError: ``name`` is not a portable identifier.
    """

    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {
            Capability.KEYED_PARTITIONS,
            Capability.CONSUMER_GROUPS,
            Capability.REPLAY_FROM_TIME,
        }
    )
    dense_offsets: ClassVar[bool] = False
    settings_model: ClassVar[type[AdapterSettings]] = KinesisStreamSettings

    def __init__(self, name: str, **settings: Any) -> None:
        arguments = {"url": "kinesis://", **settings}
        self._init(name, settings_from_arguments(KinesisStreamSettings, arguments))

    def _init(self, name: str, settings: KinesisStreamSettings) -> None:
        validate_name(name, what="stream name")
        super().__init__(name)
        self.settings = settings
        self.stream_name = settings.name_prefix + name
        if not _STREAM_NAME.fullmatch(self.stream_name):
            raise ConfigurationError(f"Kinesis stream name {self.stream_name!r} is too long")
        self._clients = AwsClients(settings)
        self._lock = threading.Lock()
        self._ready = False
        self._shard_cache: tuple[float, dict[int, _Shard]] | None = None
        self._cursors: OrderedDict[tuple[int, int], _Cursor] = OrderedDict()
        self._finished: set[tuple[str, int]] = set()
        self._read_past_end: set[int] = set()
        self._assigned: dict[tuple[str, str], tuple[float, list[int]]] = {}
        self._groups = GroupStore(
            self._clients,
            table=settings.checkpoint_table,
            stream=self.stream_name,
            lease_seconds=settings.lease_seconds,
            create_table=settings.create_checkpoint_table,
        )
        self._closed = False
        if settings.open_eagerly:
            self._shards()

    @classmethod
    def from_settings(cls, settings: AdapterSettings, lake: Lake | None, name: str) -> Self:
        """Build the stream ``name`` from validated settings (``lake`` is not needed)."""
        if not isinstance(settings, KinesisStreamSettings):
            raise ConfigurationError(
                f"KinesisStream needs KinesisStreamSettings, got {type(settings).__name__}"
            )
        stream = cls.__new__(cls)
        stream._init(name, settings)
        return stream

    def __reduce__(self) -> tuple[Callable[..., KinesisStream], tuple[Any, ...]]:
        return (_stream_from_settings, (self.settings, self.name))

    def __repr__(self) -> str:
        return f"KinesisStream({self.name!r}, kinesis_stream={self.stream_name!r})"

    @property
    def client(self) -> Any:
        """The boto3 Kinesis client (shared by threads)."""
        return self._clients.client("kinesis")

    # -- StreamAdapter: publish ------------------------------------------------------------------
    def publish(self, messages: Sequence[Message]) -> list[RecordPosition]:
        """Append ``messages``; return their positions in input order once Kinesis acknowledged
        every one of them.

        Records with the same key keep their order (see the module docstring). A batch is not
        atomic across keys: if a key's records still fail after ``max_put_attempts``, the keys
        already acknowledged keep their records and TransientError is raised (a retry of the
        whole batch may duplicate those).

        Raises:
            InvalidInputError: a message is malformed or too large for a Kinesis record.
            TransientError: records were still throttled after ``max_put_attempts``.
            NotFoundError: the stream does not exist and ``create`` is off.
            PermissionDeniedError: the credentials may not write to the stream.
        """
        self._check_open()
        if not messages:
            return []
        chunks = self._chunks(messages)
        self._ensure_stream()
        positions: list[RecordPosition | None] = [None] * len(messages)
        pending: OrderedDict[str, list[_Chunk]] = OrderedDict()
        for chunk in chunks:
            pending.setdefault(chunk.partition_key, []).append(chunk)
        attempt = 0
        while pending:
            request = _next_request(pending)
            failed = self._put(request, positions)
            for chunk in request:
                if chunk not in failed:
                    queue = pending[chunk.partition_key]
                    queue.pop(0)
                    if not queue:
                        del pending[chunk.partition_key]
            if failed:
                attempt += 1
                if attempt >= self.settings.max_put_attempts:
                    codes = sorted(set(failed.values()))
                    raise TransientError(
                        f"Kinesis stream {self.stream_name!r} still refused "
                        f"{sum(len(c.indexes) for c in failed)} record(s) after {attempt} "
                        f"attempts ({', '.join(codes)}); records of other keys were written"
                    )
                self._backoff(attempt)
            else:
                attempt = 0
        return [p for p in positions if p is not None]

    def _chunks(self, messages: Sequence[Message]) -> list[_Chunk]:
        """Each key's records, in order, packed into as few Kinesis records as fit."""
        now_ms = int(time.time() * 1000)
        unkeyed = uuid.uuid4().hex
        open_chunks: dict[str, tuple[_Chunk, list[bytes], int]] = {}
        chunks: list[_Chunk] = []
        for index, message in enumerate(messages):
            value, key = message_bytes(message)
            entry = fmt.encode_entry(
                value, key, message.headers, _timestamp_ms(message.timestamp, now_ms)
            )
            pk = fmt.partition_key(key, unkeyed)
            room = fmt.MAX_BLOB - len(pk.encode("utf-8")) - fmt.FRAME_OVERHEAD
            if len(entry) > room:
                raise InvalidInputError(
                    f"record {index} is {len(entry)} bytes framed; a Kinesis record holds at "
                    f"most {room} bytes of lakekit records with this key (1 MiB including the "
                    "partition key): store large payloads in the lake and publish their keys"
                )
            current = open_chunks.get(pk)
            if current is not None:
                chunk, entries, size = current
                if size + len(entry) <= room and len(entries) < fmt.MAX_RECORDS_PER_BLOB:
                    entries.append(entry)
                    chunk.indexes.append(index)
                    open_chunks[pk] = (chunk, entries, size + len(entry))
                    continue
                chunk.data = fmt.frame(entries)
            chunk = _Chunk(pk, [index], b"")
            chunks.append(chunk)
            open_chunks[pk] = (chunk, [entry], len(entry))
        for chunk, entries, _ in open_chunks.values():
            chunk.data = fmt.frame(entries)
        return chunks

    def _put(
        self, request: list[_Chunk], positions: list[RecordPosition | None]
    ) -> dict[_Chunk, str]:
        """One PutRecords; fills ``positions`` of what succeeded; returns failed -> error code."""
        with aws_errors(f"publishing to Kinesis stream {self.stream_name!r}"):
            response = self.client.put_records(
                StreamName=self.stream_name,
                Records=[{"Data": c.data, "PartitionKey": c.partition_key} for c in request],
            )
        failed: dict[_Chunk, str] = {}
        for chunk, result in zip(request, response["Records"], strict=True):
            if "ErrorCode" in result:
                failed[chunk] = str(result["ErrorCode"])
                continue
            partition = shard_partition(result["ShardId"])
            sequence = result["SequenceNumber"]
            for sub, index in enumerate(chunk.indexes):
                positions[index] = RecordPosition(partition, fmt.offset_of(sequence, sub))
        return failed

    def _backoff(self, attempt: int) -> None:
        delay = min(5.0, self.settings.retry_backoff * 2 ** (attempt - 1))
        time.sleep(delay * random.uniform(0.5, 1.0))  # noqa: S311 - jitter, not crypto

    # -- StreamAdapter: read ---------------------------------------------------------------------
    def partitions(self) -> list[int]:
        """The stream's shards as partition ids, closed ones included while they exist."""
        return sorted(self._shards())

    def read(self, partition: int, offset: int, max_records: int) -> list[Record]:
        """Up to ``max_records`` records of shard ``partition`` with offsets >= ``offset``.

        An offset below the shard's oldest retained record reads from that record.

        Raises:
            InvalidInputError: unknown partition, negative offset, ``max_records < 1``.
        """
        shard = self._shard(partition)
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            raise InvalidInputError(f"offset must be an int >= 0, got {offset!r}")
        if isinstance(max_records, bool) or not isinstance(max_records, int) or max_records < 1:
            raise InvalidInputError(f"max_records must be an int >= 1, got {max_records!r}")
        if shard.closed and offset >= shard.end:
            self._read_past_end.add(partition)
            return []
        cursor = self._take_cursor(partition, offset)
        out: list[Record] = []
        try:
            self._fill(shard, cursor, max_records, out)
        finally:
            cursor.offset = out[-1].offset + 1 if out else offset
            self._put_cursor(partition, cursor)
        return out

    def _fill(self, shard: _Shard, cursor: _Cursor, wanted: int, out: list[Record]) -> None:
        empty = 0
        expired = False
        while len(out) < wanted:
            if cursor.pending:
                take = wanted - len(out)
                out.extend(cursor.pending[:take])
                del cursor.pending[:take]
                continue
            if cursor.iterator is None:
                return
            interval = self.settings.read_interval
            if cursor.caught_up_at is not None and (
                time.monotonic() - cursor.caught_up_at < interval
            ):
                return
            position = out[-1].offset + 1 if out else cursor.offset
            try:
                records, cursor.iterator, behind = self._get_records(
                    shard, cursor.iterator, wanted - len(out)
                )
            except _ExpiredIteratorError:
                if expired:
                    raise
                expired = True  # iterators last 5 minutes: start a new one where we are
                cursor.iterator = self._iterator(shard, position)
                continue
            cursor.pending = [r for r in records if r.offset >= position]
            if cursor.pending:
                cursor.caught_up_at = None
                empty = 0
                continue
            if behind == 0 or cursor.iterator is None:
                cursor.caught_up_at = time.monotonic()
                return
            empty += 1
            if empty >= _EMPTY_READS:
                return

    def _get_records(
        self, shard: _Shard, iterator: str, limit: int
    ) -> tuple[list[Record], str | None, int]:
        with aws_errors(f"reading Kinesis stream {self.stream_name!r} shard {shard.shard_id}"):
            try:
                response = self.client.get_records(
                    ShardIterator=iterator, Limit=min(max(limit, 1), _GET_RECORDS_LIMIT)
                )
            except Exception as exc:
                if is_client_error(exc) and error_code(exc) == "ExpiredIteratorException":
                    raise _ExpiredIteratorError from exc
                raise
        records: list[Record] = []
        for item in response.get("Records", []):
            records.extend(self._decode(shard.partition, item))
        return (
            records,
            response.get("NextShardIterator"),
            int(response.get("MillisBehindLatest", 0)),
        )

    def _decode(self, partition: int, item: Mapping[str, Any]) -> list[Record]:
        arrival = item.get("ApproximateArrivalTimestamp")
        arrived = arrival.astimezone(UTC) if isinstance(arrival, datetime) else datetime.now(UTC)
        sequence = item["SequenceNumber"]
        return [
            Record(
                stream=self.name,
                partition=partition,
                offset=fmt.offset_of(sequence, entry.index),
                timestamp=entry.timestamp or arrived,
                value=entry.value,
                key=entry.key,
                headers=entry.headers,
            )
            for entry in fmt.decode_blob(bytes(item["Data"]), item["PartitionKey"], arrived)
        ]

    def _take_cursor(self, partition: int, offset: int) -> _Cursor:
        with self._lock:
            cursor = self._cursors.pop((partition, offset), None)
        if cursor is not None:
            return cursor
        cursor = _Cursor(offset=offset)
        cursor.iterator = self._iterator(self._shard(partition), offset)
        return cursor

    def _put_cursor(self, partition: int, cursor: _Cursor) -> None:
        with self._lock:
            self._cursors[(partition, cursor.offset)] = cursor
            while len(self._cursors) > _CURSORS:
                self._cursors.popitem(last=False)

    def _iterator(self, shard: _Shard, offset: int) -> str | None:
        """A shard iterator at the first record with an offset >= ``offset``."""
        sequence, _ = fmt.split_offset(offset)
        if offset == 0 or sequence < shard.starting_sequence:
            return self._shard_iterator(shard, "TRIM_HORIZON")
        try:
            return self._shard_iterator(shard, "AT_SEQUENCE_NUMBER", str(sequence))
        except InvalidInputError:
            # Not a sequence number Kinesis knows for this shard (expired, or never a record):
            # read from the oldest record; _fill skips records below ``offset``.
            return self._shard_iterator(shard, "TRIM_HORIZON")

    def _shard_iterator(
        self,
        shard: _Shard,
        kind: str,
        sequence: str | None = None,
        at: datetime | None = None,
    ) -> str | None:
        kwargs: dict[str, Any] = {
            "StreamName": self.stream_name,
            "ShardId": shard.shard_id,
            "ShardIteratorType": kind,
        }
        if sequence is not None:
            kwargs["StartingSequenceNumber"] = sequence
        if at is not None:
            kwargs["Timestamp"] = at
        with aws_errors(f"reading Kinesis stream {self.stream_name!r} shard {shard.shard_id}"):
            iterator = self.client.get_shard_iterator(**kwargs).get("ShardIterator")
        return iterator if isinstance(iterator, str) else None

    def _scan(self, shard: _Shard, iterator: str | None) -> Iterator[Record]:
        """Every record from ``iterator`` to the shard's tip."""
        empty = 0
        while iterator is not None:
            records, iterator, behind = self._get_records(shard, iterator, _GET_RECORDS_LIMIT)
            yield from records
            if records:
                empty = 0
            elif behind == 0:
                return
            else:
                empty += 1
                if empty >= _EMPTY_READS * 4:
                    return

    def offsets(self, which: Literal["earliest", "latest"]) -> dict[int, int]:
        """Per shard: the oldest retained record's offset, or the offset after the newest one
        (0 for an empty open shard; for a closed shard, an offset past all its records).

        ``latest`` of an open shard looks for its newest record near the current time first
        (AT_TIMESTAMP), reading further back only for shards idle for a long time.

        Raises:
            InvalidInputError: ``which`` is neither 'earliest' nor 'latest'.
        """
        if which not in ("earliest", "latest"):
            raise InvalidInputError(f"which must be 'earliest' or 'latest', got {which!r}")
        shards = self._shards(refresh=True)
        latest = {p: self._latest(shard) for p, shard in shards.items()}
        if which == "latest":
            return latest
        earliest: dict[int, int] = {}
        for p, shard in shards.items():
            first = next(self._scan(shard, self._shard_iterator(shard, "TRIM_HORIZON")), None)
            earliest[p] = first.offset if first is not None else latest[p]
        return earliest

    def _latest(self, shard: _Shard) -> int:
        if shard.closed:
            return shard.end
        now = datetime.now(UTC)
        for back in (*_PROBES, None):
            if back is None:
                iterator = self._shard_iterator(shard, "TRIM_HORIZON")
            else:
                at = now - timedelta(seconds=back)
                iterator = self._shard_iterator(shard, "AT_TIMESTAMP", at=at)
            last = None
            for last in self._scan(shard, iterator):  # noqa: B007 - keep the last one
                pass
            if last is not None:
                return last.offset + 1
        return 0

    def offsets_for_time(self, ts: datetime) -> dict[int, int]:
        """Per shard, the first offset whose (event) timestamp is >= ``ts``; the shard's
        ``latest`` offset if there is none. Scans each shard from its oldest record.

        Raises:
            InvalidInputError: ``ts`` is not a timezone-aware datetime.
        """
        if not isinstance(ts, datetime) or ts.tzinfo is None:
            raise InvalidInputError(f"ts must be a timezone-aware datetime, got {ts!r}")
        result: dict[int, int] = {}
        for p, shard in self._shards(refresh=True).items():
            found = None
            for record in self._scan(shard, self._shard_iterator(shard, "TRIM_HORIZON")):
                if record.timestamp >= ts:
                    found = record.offset
                    break
            result[p] = found if found is not None else self._latest(shard)
        return result

    # -- StreamAdapter: groups -------------------------------------------------------------------
    def committed(self, group: str) -> dict[int, int]:
        validate_name(group, what="consumer group")
        self._check_open()
        return self._groups.committed(group)

    def commit(self, group: str, offsets: Mapping[int, int]) -> None:
        """Durably record the group's next-to-read offsets, each partition's write atomic.

        Committed offsets only move forward: an offset at or below the one stored is ignored
        (a member that lost its shard to another cannot move the group back).

        Raises:
            InvalidInputError: unknown partition or a negative offset.
        """
        validate_name(group, what="consumer group")
        checked: dict[int, int] = {}
        for partition, offset in offsets.items():
            self._shard(partition)
            if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
                raise InvalidInputError(f"committed offset must be an int >= 0, got {offset!r}")
            checked[partition] = offset
        if checked:
            self._groups.commit(group, checked)

    def assign(self, group: str, member: str) -> list[int]:
        """The shards ``member`` owns now: its fair share of the shards the group may read.

        A shard may be read once each of its parents is finished for the group (closed, and
        read past its last record); finished shards are no longer assigned. Assignments are
        recomputed at most every ``lease_seconds / 4`` per member.
        """
        validate_name(group, what="consumer group")
        validate_member(member)
        self._check_open()
        now = time.monotonic()
        cached = self._assigned.get((group, member))
        if cached is not None and now - cached[0] < min(self.settings.lease_seconds / 4, 2.0):
            return list(cached[1])
        shards = self._shards()
        committed = self._groups.committed(group)
        eligible = [
            p
            for p, shard in shards.items()
            if not self._is_finished(group, shard, committed)
            and all(
                parent not in shards or self._is_finished(group, shards[parent], committed)
                for parent in shard.parents
            )
        ]
        owned = self._groups.assign(group, member, eligible)
        self._assigned[(group, member)] = (time.monotonic(), owned)
        return list(owned)

    def _is_finished(self, group: str, shard: _Shard, committed: Mapping[int, int]) -> bool:
        """Whether ``group`` has read closed ``shard`` past its last record."""
        if not shard.closed:
            return False
        key = (group, shard.partition)
        if key in self._finished:
            return True
        position = committed.get(shard.partition)
        if position is None:
            # A consumer that started at "latest" sits past the end and never commits here.
            if shard.partition not in self._read_past_end:
                return False
            self._groups.commit_if_absent(group, shard.partition, shard.end)
            position = shard.end
        if position < shard.end and self._has_records_from(shard, position):
            return False
        self._finished.add(key)
        return True

    def _has_records_from(self, shard: _Shard, offset: int) -> bool:
        iterator = self._iterator(shard, offset)
        return any(r.offset >= offset for r in self._scan(shard, iterator))

    def release(self, group: str, member: str) -> None:
        self._assigned.pop((group, member), None)
        if not self._closed:
            self._groups.release(group, member)

    def close(self) -> None:
        """Release this instance's consumer leases and HTTP connections. Idempotent."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(LakekitError):
            self._groups.close()
        self._clients.close()

    # -- stream and shards -----------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise InvalidInputError(f"{self!r} is closed")

    def _ensure_stream(self) -> None:
        if self._ready:
            return
        what = f"opening Kinesis stream {self.stream_name!r}"
        with aws_errors(what):
            try:
                status = self.client.describe_stream_summary(StreamName=self.stream_name)[
                    "StreamDescriptionSummary"
                ]["StreamStatus"]
            except Exception as exc:
                if not (is_client_error(exc) and error_code(exc) == "ResourceNotFoundException"):
                    raise
                if not self.settings.create:
                    raise NotFoundError(
                        f"Kinesis stream {self.stream_name!r} does not exist; create it or set "
                        "LAKEKIT_STREAM_CREATE=true"
                    ) from exc
                status = self._create_stream()
            if status != "ACTIVE":
                self.client.get_waiter("stream_exists").wait(
                    StreamName=self.stream_name, WaiterConfig={"Delay": 1, "MaxAttempts": 300}
                )
        self._ready = True

    def _create_stream(self) -> str:
        kwargs: dict[str, Any] = {"StreamName": self.stream_name}
        if self.settings.on_demand:
            kwargs["StreamModeDetails"] = {"StreamMode": "ON_DEMAND"}
        else:
            kwargs["ShardCount"] = self.settings.shards
        try:
            self.client.create_stream(**kwargs)
        except Exception as exc:  # another process created it first
            if not (is_client_error(exc) and error_code(exc) == "ResourceInUseException"):
                raise
        return "CREATING"

    def _shards(self, *, refresh: bool = False) -> dict[int, _Shard]:
        self._check_open()
        cached = self._shard_cache
        now = time.monotonic()
        if (
            cached is not None
            and not refresh
            and now - cached[0] < self.settings.shard_refresh_seconds
        ):
            return cached[1]
        self._ensure_stream()
        shards: dict[int, _Shard] = {}
        kwargs: dict[str, Any] = {"StreamName": self.stream_name}
        with aws_errors(f"listing the shards of Kinesis stream {self.stream_name!r}"):
            while True:
                page = self.client.list_shards(**kwargs)
                for item in page.get("Shards", []):
                    shard = _shard_of(item)
                    shards[shard.partition] = shard
                token = page.get("NextToken")
                if not token:
                    break
                kwargs = {"NextToken": token}
        self._shard_cache = (now, shards)
        return shards

    def _shard(self, partition: int) -> _Shard:
        if isinstance(partition, bool) or not isinstance(partition, int):
            raise InvalidInputError(f"partition must be an int, got {partition!r}")
        shards = self._shards()
        if partition not in shards:
            shards = self._shards(refresh=True)
        if partition not in shards:
            known = ", ".join(str(p) for p in sorted(shards))
            raise InvalidInputError(
                f"stream {self.name!r} has partitions (shards) {known}, not {partition}"
            )
        return shards[partition]


class _ExpiredIteratorError(LakekitError):
    """A cached shard iterator expired (they last 5 minutes)."""


def _shard_of(item: Mapping[str, Any]) -> _Shard:
    numbers = item.get("SequenceNumberRange", {})
    ending = numbers.get("EndingSequenceNumber")
    parents = tuple(
        shard_partition(item[name])
        for name in ("ParentShardId", "AdjacentParentShardId")
        if item.get(name)
    )
    return _Shard(
        partition=shard_partition(item["ShardId"]),
        shard_id=item["ShardId"],
        parents=parents,
        starting_sequence=int(numbers.get("StartingSequenceNumber") or 0),
        ending_sequence=int(ending) if ending is not None else None,
    )


def _next_request(pending: Mapping[str, list[_Chunk]]) -> list[_Chunk]:
    """The next PutRecords request: each waiting key's next chunk, within Kinesis' limits."""
    request: list[_Chunk] = []
    size = 0
    for pk, queue in pending.items():
        chunk = queue[0]
        cost = len(chunk.data) + len(pk.encode("utf-8"))
        if len(request) >= MAX_RECORDS_PER_REQUEST or (request and size + cost > MAX_REQUEST_BYTES):
            break
        request.append(chunk)
        size += cost
    return request


def _timestamp_ms(ts: datetime | None, now_ms: int) -> int:
    if ts is None:
        return now_ms
    if not isinstance(ts, datetime) or ts.tzinfo is None:
        raise InvalidInputError(f"record timestamp must be timezone-aware, got {ts!r}")
    delta = ts - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def _stream_from_settings(settings: KinesisStreamSettings, name: str) -> KinesisStream:
    return KinesisStream.from_settings(settings, None, name)
