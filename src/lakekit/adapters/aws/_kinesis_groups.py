"""Consumer groups of Kinesis streams in DynamoDB: committed offsets, members and shard leases.

One DynamoDB table (``pk`` hash key, ``sk`` range key, on-demand billing, created on first use
unless told otherwise) holds every group of every stream. Per ``(stream, group)``
(``pk = "<kinesis stream>|<group>"``):

* ``sk = "p#<partition>"``: the partition's committed offset (``offset``, a zero-padded decimal
  string, because Kinesis offsets exceed DynamoDB's 38-digit numbers) and its lease
  (``owner`` member id, ``lease_expires`` epoch milliseconds);
* ``sk = "m#<member>"``: a live member (``member_expires`` epoch milliseconds).

Every write is a conditional write, decided atomically by DynamoDB:

* **Commits only move forward**: ``offset`` is set only if absent or smaller, so a member that
  lost its lease (and whose records the new owner re-reads) can never move the group back.
* **A lease has one owner**: taking a partition succeeds only if it has no owner, the owner is
  the taker, or the lease expired; renewing and releasing require being the owner.
* **Fair shares**: each member takes ``partitions // members`` (the first ``partitions %
  members`` members in id order one more) and releases what it holds beyond that, so shares
  converge as members poll; a member that stops renewing (a killed process) loses its leases and
  its membership after ``lease_seconds``.

Leases are renewed by each ``assign`` and by a daemon thread every ``lease_seconds / 3``, so a
consumer that processes a batch slowly keeps its partitions while its process lives.
Expiry compares the writers' clocks: keep machines' clocks in sync (NTP), as for any lease.
"""

from __future__ import annotations

import contextlib
import threading
import time
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from lakekit.adapters._stream_rules import fair_share
from lakekit.adapters.aws._client import AwsClients
from lakekit.adapters.aws._errors import aws_errors, error_code, is_client_error
from lakekit.errors import LakekitError

__all__ = ["GroupSnapshot", "GroupStore"]

_OFFSET_DIGITS = 72
_CONDITION_FAILED = "ConditionalCheckFailedException"


def _encode_offset(offset: int) -> str:
    return str(offset).zfill(_OFFSET_DIGITS)


def _now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class GroupSnapshot:
    """What one consistent Query of a group returned."""

    committed: dict[int, int] = field(default_factory=dict)
    owners: dict[int, tuple[str, int]] = field(default_factory=dict)
    """partition -> (owner, lease expiry in epoch ms)."""
    members: dict[str, int] = field(default_factory=dict)
    """member -> membership expiry in epoch ms."""


class GroupStore:
    """The groups of one Kinesis stream, stored in a DynamoDB table.

    Thread-safe. Raises lakekit errors (TransientError, PermissionDeniedError, ...) mapped from
    DynamoDB's.
    """

    def __init__(
        self,
        clients: AwsClients,
        *,
        table: str,
        stream: str,
        lease_seconds: float,
        create_table: bool,
    ) -> None:
        self._clients = clients
        self.table = table
        self.stream = stream
        self.lease_ms = int(lease_seconds * 1000)
        self._create_table = create_table
        self._table_ready = False
        self._lock = threading.Lock()
        self._held: dict[tuple[str, str], set[int]] = {}
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None

    @property
    def _ddb(self) -> Any:
        return self._clients.client("dynamodb")

    def _pk(self, group: str) -> str:
        return f"{self.stream}|{group}"

    # -- table -----------------------------------------------------------------------------------
    def ensure_table(self) -> None:
        """Create the table (on-demand billing) if it is missing and creation is allowed.

        Raises:
            NotFoundError: the table is missing and ``create_checkpoint_table`` is off.
        """
        if self._table_ready:
            return
        with aws_errors(f"checking the consumer-group table {self.table!r}"):
            try:
                status = self._ddb.describe_table(TableName=self.table)["Table"]["TableStatus"]
            except Exception as exc:
                if not (is_client_error(exc) and error_code(exc) == "ResourceNotFoundException"):
                    raise
                if not self._create_table:
                    from lakekit.errors import NotFoundError

                    raise NotFoundError(
                        f"DynamoDB table {self.table!r} for Kinesis consumer groups does not "
                        "exist: create it (hash key 'pk', range key 'sk', both strings) or set "
                        "LAKEKIT_STREAM_CREATE_CHECKPOINT_TABLE=true"
                    ) from exc
                status = self._create()
            if status != "ACTIVE":
                self._ddb.get_waiter("table_exists").wait(
                    TableName=self.table, WaiterConfig={"Delay": 1, "MaxAttempts": 120}
                )
        self._table_ready = True

    def _create(self) -> str:
        try:
            self._ddb.create_table(
                TableName=self.table,
                AttributeDefinitions=[
                    {"AttributeName": "pk", "AttributeType": "S"},
                    {"AttributeName": "sk", "AttributeType": "S"},
                ],
                KeySchema=[
                    {"AttributeName": "pk", "KeyType": "HASH"},
                    {"AttributeName": "sk", "KeyType": "RANGE"},
                ],
                BillingMode="PAY_PER_REQUEST",
            )
        except Exception as exc:  # another process created it first
            if not (is_client_error(exc) and error_code(exc) == "ResourceInUseException"):
                raise
        return "CREATING"

    # -- offsets ---------------------------------------------------------------------------------
    def snapshot(self, group: str) -> GroupSnapshot:
        """Committed offsets, leases and members of ``group`` (one strongly consistent read)."""
        self.ensure_table()
        snap = GroupSnapshot()
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": self._pk(group)}},
            "ConsistentRead": True,
        }
        with aws_errors(f"reading consumer group {group!r}"):
            while True:
                page = self._ddb.query(**kwargs)
                for item in page.get("Items", []):
                    _read_item(item, snap)
                if "LastEvaluatedKey" not in page:
                    break
                kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return snap

    def committed(self, group: str) -> dict[int, int]:
        return self.snapshot(group).committed

    def commit(self, group: str, offsets: Mapping[int, int]) -> None:
        """Record next-to-read offsets, each only if it moves the partition's offset forward.

        Each partition's write is atomic and durable once this returns; an offset at or below
        the stored one is left out silently (another member already committed further).
        """
        self.ensure_table()
        for partition, offset in sorted(offsets.items()):
            self._conditional(
                f"committing group {group!r} partition {partition}",
                Key=self._key(group, f"p#{partition:012d}"),
                UpdateExpression="SET #o = :o",
                ConditionExpression="attribute_not_exists(#o) OR #o < :o",
                ExpressionAttributeNames={"#o": "offset"},
                ExpressionAttributeValues={":o": {"S": _encode_offset(offset)}},
            )

    def commit_if_absent(self, group: str, partition: int, offset: int) -> bool:
        """Set the partition's offset only if the group never committed it."""
        self.ensure_table()
        return self._conditional(
            f"committing group {group!r} partition {partition}",
            Key=self._key(group, f"p#{partition:012d}"),
            UpdateExpression="SET #o = :o",
            ConditionExpression="attribute_not_exists(#o)",
            ExpressionAttributeNames={"#o": "offset"},
            ExpressionAttributeValues={":o": {"S": _encode_offset(offset)}},
        )

    # -- membership ------------------------------------------------------------------------------
    def assign(self, group: str, member: str, eligible: Iterable[int]) -> list[int]:
        """Take ``member``'s fair share of ``eligible`` partitions; return what it owns now."""
        wanted = sorted(set(eligible))
        snap = self.snapshot(group)
        now = _now_ms()
        self._renew_member(group, member, now)
        live = {m for m, expires in snap.members.items() if expires > now}
        live.add(member)
        share, _ = fair_share(len(wanted), live, member)
        mine = [
            p
            for p in wanted
            if snap.owners.get(p, ("", 0))[0] == member and snap.owners[p][1] > now
        ]
        stale = [p for p, (owner, _) in snap.owners.items() if owner == member and p not in wanted]
        for partition in stale:  # finished or gone: nothing more to read there
            self._release_partition(group, member, partition)
        while len(mine) > share:
            self._release_partition(group, member, mine.pop())
        free = [
            p
            for p in wanted
            if p not in mine
            and not (snap.owners.get(p, ("", 0))[1] > now and snap.owners[p][0] in live - {member})
        ]
        for partition in free:
            if len(mine) >= share:
                break
            if self._take(group, member, partition, now):
                mine.append(partition)
        kept = [p for p in mine if self._renew_lease(group, member, p)]
        with self._lock:
            self._held[(group, member)] = set(kept)
        self._start_heartbeat()
        return sorted(kept)

    def release(self, group: str, member: str) -> None:
        """Give up ``member``'s leases and membership (best effort: they expire anyway)."""
        with self._lock:
            held = self._held.pop((group, member), set())
        try:
            for partition in sorted(held):
                self._release_partition(group, member, partition)
            self._delete(group, f"m#{member}")
        except LakekitError:
            pass  # the leases expire after lease_seconds

    def close(self) -> None:
        self._stop.set()
        with self._lock:
            held = dict(self._held)
        for group, member in held:
            self.release(group, member)

    # -- internals -------------------------------------------------------------------------------
    def _key(self, group: str, sk: str) -> dict[str, Any]:
        return {"pk": {"S": self._pk(group)}, "sk": {"S": sk}}

    def _conditional(self, what: str, **request: Any) -> bool:
        """One conditional UpdateItem; False when its condition did not hold."""
        with aws_errors(what):
            try:
                self._ddb.update_item(TableName=self.table, **request)
            except Exception as exc:
                if is_client_error(exc) and error_code(exc) == _CONDITION_FAILED:
                    return False
                raise
        return True

    def _renew_member(self, group: str, member: str, now: int) -> None:
        self._conditional(
            f"joining consumer group {group!r}",
            Key=self._key(group, f"m#{member}"),
            UpdateExpression="SET member_expires = :e",
            ExpressionAttributeValues={":e": {"N": str(now + self.lease_ms)}},
        )

    def _take(self, group: str, member: str, partition: int, now: int) -> bool:
        return self._conditional(
            f"taking partition {partition} for group {group!r}",
            Key=self._key(group, f"p#{partition:012d}"),
            UpdateExpression="SET #w = :me, lease_expires = :e",
            ConditionExpression="attribute_not_exists(#w) OR #w = :me OR lease_expires < :now",
            ExpressionAttributeNames={"#w": "owner"},
            ExpressionAttributeValues={
                ":me": {"S": member},
                ":e": {"N": str(now + self.lease_ms)},
                ":now": {"N": str(now)},
            },
        )

    def _renew_lease(self, group: str, member: str, partition: int) -> bool:
        return self._conditional(
            f"renewing the lease of partition {partition} for group {group!r}",
            Key=self._key(group, f"p#{partition:012d}"),
            UpdateExpression="SET lease_expires = :e",
            ConditionExpression="#w = :me",
            ExpressionAttributeNames={"#w": "owner"},
            ExpressionAttributeValues={
                ":me": {"S": member},
                ":e": {"N": str(_now_ms() + self.lease_ms)},
            },
        )

    def _release_partition(self, group: str, member: str, partition: int) -> None:
        self._conditional(
            f"releasing partition {partition} of group {group!r}",
            Key=self._key(group, f"p#{partition:012d}"),
            UpdateExpression="REMOVE #w, lease_expires",
            ConditionExpression="#w = :me",
            ExpressionAttributeNames={"#w": "owner"},
            ExpressionAttributeValues={":me": {"S": member}},
        )

    def _delete(self, group: str, sk: str) -> None:
        with aws_errors(f"leaving consumer group {group!r}"):
            self._ddb.delete_item(TableName=self.table, Key=self._key(group, sk))

    def _start_heartbeat(self) -> None:
        with self._lock:
            if self._heartbeat is not None or self._stop.is_set():
                return
            thread = threading.Thread(
                target=_heartbeat,
                args=(weakref.ref(self), self._stop, max(self.lease_ms / 3000, 0.05)),
                name=f"lakekit-kinesis-leases-{self.stream}",
                daemon=True,
            )
            self._heartbeat = thread
        thread.start()

    def _renew_all(self) -> None:
        with self._lock:
            held = {key: set(parts) for key, parts in self._held.items()}
        for (group, member), partitions in held.items():
            self._renew_member(group, member, _now_ms())
            lost = {p for p in partitions if not self._renew_lease(group, member, p)}
            if lost:
                with self._lock:
                    current = self._held.get((group, member))
                    if current is not None:
                        current.difference_update(lost)


def _heartbeat(ref: weakref.ref[GroupStore], stop: threading.Event, interval: float) -> None:
    """Renew the leases of a store's members until it is closed or garbage-collected."""
    while not stop.wait(interval):
        store = ref()
        if store is None:
            return
        with contextlib.suppress(LakekitError):  # a missed renewal is retried next interval
            store._renew_all()
        del store


def _read_item(item: Mapping[str, Any], snap: GroupSnapshot) -> None:
    sk = item["sk"]["S"]
    if sk.startswith("p#"):
        partition = int(sk[2:])
        if "offset" in item:
            snap.committed[partition] = int(item["offset"]["S"])
        if "owner" in item:
            snap.owners[partition] = (
                item["owner"]["S"],
                int(item.get("lease_expires", {}).get("N", "0")),
            )
    elif sk.startswith("m#"):
        snap.members[sk[2:]] = int(item.get("member_expires", {}).get("N", "0"))
