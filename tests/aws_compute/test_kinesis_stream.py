"""Kinesis-specific behaviour beyond the conformance suite: PutRecords limits and partial
failures, framing, resharding and the DynamoDB consumer groups (moto on 127.0.0.1, or live)."""

from __future__ import annotations

import contextlib
import time
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

import lakekit
from lakekit.adapters.aws import _kinesis_format as fmt
from lakekit.adapters.aws.kinesis_stream import KinesisStream, shard_partition
from lakekit.errors import ConfigurationError, InvalidInputError, TransientError
from lakekit.interfaces.stream import Message, Record, Stream
from servers.aws import AwsTarget


@pytest.fixture
def make_stream(aws_target: AwsTarget, unique: str) -> Iterator[Any]:
    """Build KinesisStream adapters on streams named ``lkt-<run>-<unique>...``; delete them."""
    prefix = f"lkt-{aws_target.run_id}-{unique}-"
    made: list[KinesisStream] = []

    def make(name: str = "s", cls: type[KinesisStream] = KinesisStream, **settings: Any) -> Any:
        options = {
            "name_prefix": prefix,
            "shards": 1,
            "lease_seconds": 1.0,
            "checkpoint_table": f"lkt-{aws_target.run_id}-groups",
            "retry_backoff": 0.0,
            **aws_target.settings,
            **settings,
        }
        adapter = cls(name, **options)
        made.append(adapter)
        return adapter

    yield make
    client = aws_target.client("kinesis")
    for adapter in made:
        adapter.close()
    for name in {a.stream_name for a in made}:
        with contextlib.suppress(client.exceptions.ResourceNotFoundException):
            client.delete_stream(StreamName=name, EnforceConsumerDeletion=True)


class _Requests:
    """Records every PutRecords request a client sends (botocore's public event hooks)."""

    def __init__(self, adapter: KinesisStream) -> None:
        self.requests: list[list[dict[str, Any]]] = []
        adapter.client.meta.events.register("provide-client-params.kinesis.PutRecords", self)

    def __call__(self, params: dict[str, Any], **_: Any) -> None:
        self.requests.append(list(params["Records"]))


class _Throttled(KinesisStream):
    """Kinesis answering PutRecords as a throttled shard does: some records of a request fail
    (``ProvisionedThroughputExceededException``), the others are written. Every ``every``-th
    Kinesis record of each request fails, as long as ``failures`` lasts."""

    every = 2
    failures = 3
    attempted = 0
    failed = 0

    def _put(self, request: Any, positions: Any) -> Any:
        self.attempted += len(request)
        failing = [c for i, c in enumerate(request) if i % self.every == 0]
        if self.failures <= 0 or not failing:
            return super()._put(request, positions)
        self.failures -= 1
        self.failed += len(failing)
        passing = [c for c in request if c not in failing]
        failed = super()._put(passing, positions) if passing else {}
        failed.update(dict.fromkeys(failing, "ProvisionedThroughputExceededException"))
        return failed


def _drain(stream: Stream) -> dict[int, list[Record]]:
    out: dict[int, list[Record]] = {}
    for partition in stream.partitions():
        records: list[Record] = []
        offset = 0
        while batch := stream.read(partition, offset, 1000):
            records.extend(batch)
            offset = batch[-1].offset + 1
        out[partition] = records
    return out


# -- publishing ---------------------------------------------------------------------------------


def test_a_batch_is_split_into_requests_within_kinesis_limits(make_stream: Any) -> None:
    adapter = make_stream(shards=2)
    seen = _Requests(adapter)
    stream = Stream(adapter)
    keys = [f"key-{i}" for i in range(700)]
    big = b"x" * 300_000  # 18 keys x 300 KB = 5.4 MB: more than one request by size too
    messages = [
        Message(big if i < 18 else f"v{i}".encode(), k.encode()) for i, k in enumerate(keys)
    ]
    positions = stream.publish_many(messages)
    assert len(seen.requests) >= 2
    for request in seen.requests:
        assert len(request) <= 500
        size = sum(len(r["Data"]) + len(r["PartitionKey"].encode()) for r in request)
        assert size <= 5 * 1024 * 1024
        keys_in_request = [r["PartitionKey"] for r in request]
        assert len(keys_in_request) == len(set(keys_in_request)), "a key twice in one request"
    stored = {(r.partition, r.offset): r for rs in _drain(stream).values() for r in rs}
    assert len(stored) == len(messages)
    for position, message in zip(positions, messages, strict=True):
        record = stored[(position.partition, position.offset)]
        assert (record.key, record.value) == (message.key, message.value)


def test_records_of_one_key_share_kinesis_records_and_keep_their_order(make_stream: Any) -> None:
    adapter = make_stream()
    seen = _Requests(adapter)
    stream = Stream(adapter)
    positions = stream.publish_values([f"v{i}" for i in range(1000)], key="one")
    assert [len(r) for r in seen.requests] == [1]  # 1000 small records: one Kinesis record
    assert [p.offset for p in positions] == sorted({p.offset for p in positions})
    values = [r.value for r in _drain(stream)[positions[0].partition]]
    assert values == [f"v{i}".encode() for i in range(1000)]


def test_a_key_past_one_mib_goes_out_in_order_over_several_requests(make_stream: Any) -> None:
    adapter = make_stream()
    seen = _Requests(adapter)
    stream = Stream(adapter)
    values = [bytes([i]) * 300_000 for i in range(7)]  # 2.1 MB for one key
    stream.publish_many([Message(v, b"k") for v in values])
    assert len(seen.requests) == 3  # one Kinesis record (<= 1 MiB) of the key per request
    assert all(len(request) == 1 for request in seen.requests)
    assert [r.value for records in _drain(stream).values() for r in records] == values


def test_only_failed_records_are_retried_and_each_key_keeps_its_order(make_stream: Any) -> None:
    adapter = make_stream(name="t", cls=_Throttled, shards=2)
    stream = Stream(adapter)
    rounds = 4
    for n in range(rounds):
        stream.publish_many([Message(f"{k}:{n}".encode(), f"k{k}".encode()) for k in range(10)])
    assert adapter.failures == 0, "the throttled responses were not all used"
    by_key: dict[bytes | None, list[bytes]] = defaultdict(list)
    for records in _drain(stream).values():
        for record in records:
            by_key[record.key].append(record.value)
    assert len(by_key) == 10
    for k in range(10):  # every record exactly once, in publish order
        assert by_key[f"k{k}".encode()] == [f"{k}:{n}".encode() for n in range(rounds)]
    assert adapter.failed > 0
    assert adapter.attempted == 10 * rounds + adapter.failed  # only failed ones were resent


def test_records_still_throttled_after_the_attempts_raise_transient_error(
    make_stream: Any,
) -> None:
    adapter = make_stream(name="t", cls=_Throttled, max_put_attempts=2)
    adapter.failures = 100
    adapter.every = 1  # everything fails
    with pytest.raises(TransientError, match=r"after 2 attempts.*ProvisionedThroughputExceeded"):
        Stream(adapter).publish(b"never", key="k")


def test_a_record_too_large_for_kinesis_is_refused_before_anything_is_sent(
    make_stream: Any,
) -> None:
    adapter = make_stream()
    seen = _Requests(adapter)
    stream = Stream(adapter)
    with pytest.raises(InvalidInputError, match="1 MiB including the partition key"):
        stream.publish_many([Message(b"small", b"a"), Message(b"x" * (1024 * 1024), b"b")])
    assert seen.requests == []
    assert all(records == [] for records in _drain(stream).values())


def test_binary_and_long_keys_map_to_one_shard_each(make_stream: Any) -> None:
    stream = Stream(make_stream(shards=4))
    keys = [b"\xff\xfe binary", b"k" * 1000, b"", "ünïcode".encode()]
    for round_ in range(3):
        stream.publish_many([Message(f"{round_}".encode(), key) for key in keys])
    by_key: dict[bytes | None, set[int]] = defaultdict(set)
    for partition, records in _drain(stream).items():
        for record in records:
            by_key[record.key].add(partition)
    assert set(by_key) == set(keys)
    assert all(len(partitions) == 1 for partitions in by_key.values())
    assert fmt.partition_key(b"k" * 1000, "-") == fmt.partition_key(b"k" * 1000, "-")
    assert fmt.partition_key("ünïcode".encode(), "-") == "ünïcode"  # readable where it can be


def test_records_of_other_producers_read_back_as_plain_records(
    make_stream: Any, aws_target: AwsTarget
) -> None:
    adapter = make_stream()
    stream = Stream(adapter)
    stream.partitions()  # creates the stream
    client = aws_target.client("kinesis")
    before = datetime.now(UTC).replace(microsecond=0)
    client.put_record(StreamName=adapter.stream_name, Data=b"LKK1 not framed", PartitionKey="pk")
    [record] = [r for records in _drain(stream).values() for r in records]
    assert (record.value, record.key, dict(record.headers)) == (b"LKK1 not framed", b"pk", {})
    assert record.timestamp >= before.replace(second=0)
    assert record.timestamp.utcoffset() is not None


# -- partitions and resharding ------------------------------------------------------------------


def test_shard_ids_are_partition_ids() -> None:
    assert shard_partition("shardId-000000000007") == 7
    with pytest.raises(Exception, match="unexpected Kinesis shard id"):
        shard_partition("shard-7")


def _consume(stream: Stream, group: str, *, commit: bool = True) -> list[Record]:
    got: list[Record] = []
    with stream.consumer(group) as consumer:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            batch = consumer.poll(max_records=100, timeout=0.3)
            if not batch and got:
                break
            got.extend(batch)
            if commit:
                consumer.commit()
    return got


def _first_occurrences(records: list[Record]) -> dict[bytes | None, list[bytes]]:
    by_key: dict[bytes | None, list[bytes]] = defaultdict(list)
    for record in records:
        if record.value not in by_key[record.key]:
            by_key[record.key].append(record.value)
    return by_key


def _split_in_half(aws_target: AwsTarget, adapter: Any, shard: int) -> None:
    """Split ``shard`` at the middle of the hash key range (resharding, as AWS does it) and
    wait until the stream is active again."""
    client = aws_target.client("kinesis")
    client.split_shard(
        StreamName=adapter.stream_name,
        ShardToSplit=f"shardId-{shard:012d}",
        NewStartingHashKey=str(2**127),
    )
    client.get_waiter("stream_exists").wait(StreamName=adapter.stream_name)


def test_a_group_reads_a_split_shard_before_its_children(
    make_stream: Any, aws_target: AwsTarget
) -> None:
    adapter = make_stream(shard_refresh_seconds=0.0)
    stream = Stream(adapter)
    keys = [f"k{i}" for i in range(8)]
    stream.publish_many([Message(f"{k}:0".encode(), k.encode()) for k in keys])
    [parent] = stream.partitions()
    _split_in_half(aws_target, adapter, parent)
    children = [p for p in stream.partitions() if p != parent]
    assert len(children) == 2 and min(children) > parent  # ids are stable, new ones after
    stream.publish_many([Message(f"{k}:1".encode(), k.encode()) for k in keys])

    assert adapter.assign("readers", "m1") == [parent]  # children wait for the parent
    adapter.release("readers", "m1")
    got = _consume(stream, "readers")
    assert sorted(adapter.assign("readers", "m1")) == children  # the parent is finished
    by_key = _first_occurrences(got)
    assert set(by_key) == {k.encode() for k in keys}
    for k in keys:  # every record, in publish order across the split
        assert by_key[k.encode()] == [f"{k}:0".encode(), f"{k}:1".encode()]


def test_a_group_reads_merged_shards_before_the_merged_child(
    make_stream: Any, aws_target: AwsTarget
) -> None:
    adapter = make_stream(shards=2, shard_refresh_seconds=0.0)
    stream = Stream(adapter)
    keys = [f"k{i}" for i in range(8)]
    stream.publish_many([Message(f"{k}:0".encode(), k.encode()) for k in keys])
    first, second = stream.partitions()
    client = aws_target.client("kinesis")
    client.merge_shards(
        StreamName=adapter.stream_name,
        ShardToMerge=f"shardId-{first:012d}",
        AdjacentShardToMerge=f"shardId-{second:012d}",
    )
    client.get_waiter("stream_exists").wait(StreamName=adapter.stream_name)
    [child] = [p for p in stream.partitions() if p not in (first, second)]
    stream.publish_many([Message(f"{k}:1".encode(), k.encode()) for k in keys])
    assert sorted(adapter.assign("merged", "m1")) == [first, second]
    adapter.release("merged", "m1")
    got = _consume(stream, "merged")
    assert adapter.assign("merged", "m1") == [child]
    by_key = _first_occurrences(got)
    for k in keys:
        assert by_key[k.encode()] == [f"{k}:0".encode(), f"{k}:1".encode()]
    committed = stream.committed("merged")
    assert {first, second} <= set(committed)


def test_a_group_starting_at_latest_moves_past_closed_parents(
    make_stream: Any, aws_target: AwsTarget
) -> None:
    adapter = make_stream(shard_refresh_seconds=0.0)
    stream = Stream(adapter)
    stream.publish_many([Message(b"old", b"k")])
    [parent] = stream.partitions()
    _split_in_half(aws_target, adapter, parent)
    with stream.consumer("tail", start="latest") as consumer:
        assert consumer.poll(timeout=0.2) == []  # sits past the parent's end
        time.sleep(0.3)  # the next assignment is computed after lease_seconds / 4
        assert consumer.poll(timeout=0.2) == []
        assigned = adapter.assign("tail", consumer.member)
    assert parent not in assigned
    assert sorted(assigned) == sorted(p for p in stream.partitions() if p != parent)
    assert stream.committed("tail")[parent] > max(r.offset for r in _drain(stream)[parent])


# -- consumer groups ----------------------------------------------------------------------------


def test_committed_offsets_are_durable_and_only_move_forward(make_stream: Any) -> None:
    stream = Stream(make_stream())
    [position] = stream.publish_many([b"a"])
    stream.adapter.commit("g", {position.partition: position.offset + 1})
    stream.adapter.commit("g", {position.partition: 5})  # behind: ignored
    other = Stream(make_stream())  # another process's view
    assert other.committed("g") == {position.partition: position.offset + 1}
    with pytest.raises(InvalidInputError):
        other.adapter.commit("g", {position.partition: -1})
    with pytest.raises(InvalidInputError):
        other.adapter.commit("g", {999: 1})


def test_a_dead_members_shards_move_to_the_others_after_the_lease(make_stream: Any) -> None:
    first = make_stream(shards=2)
    second = make_stream(shards=2)
    partitions = Stream(first).partitions()
    assert sorted(first.assign("team", "a")) == partitions  # alone: everything
    assert second.assign("team", "b") == []  # a holds both until it sheds or dies
    first._groups._stop.set()  # "a" stops renewing, as a killed process would
    time.sleep(1.3)
    assert sorted(second.assign("team", "b")) == partitions


def test_members_split_the_shards_fairly(make_stream: Any) -> None:
    one, two = make_stream(shards=4), make_stream(shards=4)
    one.assign("fair", "a")
    two.assign("fair", "b")
    time.sleep(0.3)
    mine = one.assign("fair", "a")
    time.sleep(0.3)
    theirs = two.assign("fair", "b")
    assert len(mine) == len(theirs) == 2
    assert not set(mine) & set(theirs)


def test_bad_member_ids_are_refused(make_stream: Any) -> None:
    with pytest.raises(InvalidInputError, match="consumer member id"):
        make_stream().assign("g", "bad id!")


# -- configuration ------------------------------------------------------------------------------


def test_connect_picks_kinesis_by_url_with_settings_from_the_environment(
    aws_target: AwsTarget, unique: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    prefix = f"lkt-{aws_target.run_id}-{unique}-"
    monkeypatch.setenv("LAKEKIT_STREAM_NAME_PREFIX", prefix)
    monkeypatch.setenv("LAKEKIT_STREAM_SHARDS", "2")
    settings = dict(aws_target.settings.items())
    with lakekit.connect(
        f"s3://{aws_target.bucket}/lake", stream={"url": "kinesis", **settings}
    ) as lake:
        stream = lake.stream("events")
        assert isinstance(stream.adapter, KinesisStream)
        assert stream.adapter.stream_name == f"{prefix}events"
        assert len(stream.partitions()) == 2
        stream.publish_json({"a": 1}, key="k")
    aws_target.client("kinesis").delete_stream(StreamName=f"{prefix}events")


def test_bad_settings_name_the_setting() -> None:
    with pytest.raises(ConfigurationError, match="shards"):
        KinesisStream("s", shards=0)
    with pytest.raises(ConfigurationError, match="unknown setting 'shard'"):
        KinesisStream("s", shard=2)
    with pytest.raises(InvalidInputError):
        KinesisStream("Not-A-Name")
