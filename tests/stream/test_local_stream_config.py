"""LocalStream settings, lake wiring, partitioning rules, input checks and fsync policies."""

from __future__ import annotations

import itertools
import threading
import time
import zlib
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest

import lakekit
from lakekit.adapters.local import _segment_log, _stream_groups
from lakekit.adapters.local.stream import LocalStream, LocalStreamSettings
from lakekit.errors import ConfigurationError, InvalidInputError
from lakekit.interfaces.stream import Message, Stream

OpenStream = Callable[..., Stream]


def test_lake_streams_live_under_the_lake_folder(lake_dir: Path) -> None:
    with lakekit.connect(f"local://{lake_dir}", stream={"partitions": 2}) as lake:
        position = lake.stream("orders").publish(b"o1", key="k")
        assert lake.stream("orders").partitions() == [0, 1]
    stream_dir = lake_dir / ".lakekit" / "streams" / "orders"
    assert (stream_dir / "stream.json").is_file()
    assert (stream_dir / f"p{position.partition}" / "00000000000000000000.log").stat().st_size > 0


def test_stream_directory_can_be_set_by_url(
    lake_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "elsewhere"
    monkeypatch.setenv("LAKEKIT_STREAM", f"local://{elsewhere}")
    monkeypatch.setenv("LAKEKIT_STREAM_FSYNC", "always")
    with lakekit.connect(lake_dir) as lake:
        stream = lake.stream("clicks")
        stream.publish(b"c")
        assert isinstance(stream.adapter, LocalStream)
        assert stream.adapter.settings.fsync == "always"
    assert (elsewhere / "clicks" / "stream.json").is_file()
    assert not (lake_dir / ".lakekit" / "streams").exists()


def test_a_non_local_lake_needs_a_stream_directory() -> None:
    with (
        lakekit.connect("s3://bucket/lake", stream="local") as lake,
        pytest.raises(ConfigurationError, match="LAKEKIT_STREAM=local:///"),
    ):
        lake.stream("events")


def test_unknown_or_bad_settings_name_their_variable(lake_dir: Path) -> None:
    with (
        lakekit.connect(lake_dir, stream={"fsynk": "always"}) as lake,
        pytest.raises(ConfigurationError, match="fsynk"),
    ):
        lake.stream("events")
    with (
        lakekit.connect(lake_dir, stream={"fsync": "sometimes"}) as lake,
        pytest.raises(ConfigurationError, match="LAKEKIT_STREAM_FSYNC"),
    ):
        lake.stream("events")
    with pytest.raises(ConfigurationError, match="segment_bytes"):
        LocalStream("events", directory=lake_dir, segment_bytes=10)


def test_every_setting_documents_its_environment_variable() -> None:
    for name, field in LocalStreamSettings.model_fields.items():
        expected = "LAKEKIT_STREAM" if name == "url" else f"LAKEKIT_STREAM_{name.upper()}"
        assert field.description is not None
        assert field.description.startswith(expected + ":"), name


def test_the_partition_count_is_fixed_when_the_stream_is_created(
    open_stream: OpenStream,
) -> None:
    open_stream(partitions=3).publish(b"x")
    assert open_stream(partitions=3).partitions() == [0, 1, 2]
    with pytest.raises(ConfigurationError, match=r"has 3 partitions.*LAKEKIT_STREAM_PARTITIONS"):
        open_stream(partitions=4)


def test_streams_opened_concurrently_agree_on_one_metadata_file(tmp_path: Path) -> None:
    opened: list[LocalStream] = []
    errors: list[BaseException] = []

    def open_it() -> None:
        try:
            opened.append(LocalStream("racy", directory=tmp_path, partitions=2))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_it) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert errors == []
        assert {tuple(s.partitions()) for s in opened} == {(0, 1)}
        assert list((tmp_path / "racy").glob(".stream.*")) == []
    finally:
        for stream in opened:
            stream.close()


def test_stream_names_are_portable_identifiers(tmp_path: Path) -> None:
    for bad in ("../escape", "Upper", "a/b", ""):
        with pytest.raises(InvalidInputError):
            LocalStream(bad, directory=tmp_path)


def test_keyed_records_go_to_crc32_of_the_key_modulo_partitions(open_stream: OpenStream) -> None:
    stream = open_stream(partitions=5)
    for key in (b"a", b"user-42", b"\x00\xff", "ünï".encode()):
        assert stream.publish(b"v", key=key).partition == zlib.crc32(key) % 5


def test_unkeyed_records_of_one_publish_share_a_partition_and_calls_rotate(
    open_stream: OpenStream,
) -> None:
    stream = open_stream(partitions=3)
    used = []
    for _ in range(6):
        positions = stream.publish_many([b"a", b"b", b"c"])
        assert len({p.partition for p in positions}) == 1
        assert [p.offset for p in positions] == [positions[0].offset + i for i in range(3)]
        used.append(positions[0].partition)
    assert sorted(used) == [0, 0, 1, 1, 2, 2]


def test_malformed_messages_are_rejected_before_anything_is_written(
    open_stream: OpenStream,
) -> None:
    stream = open_stream(partitions=1)
    naive = datetime(2026, 1, 1)  # naive: the point of the test
    with pytest.raises(InvalidInputError, match="timezone-aware"):
        stream.publish_many([Message(b"ok"), Message(b"v", None, {}, naive)])
    with pytest.raises(InvalidInputError, match="headers"):
        stream.publish(b"v", headers={"n": 1})  # type: ignore[dict-item]
    with pytest.raises(InvalidInputError, match="key"):
        stream.publish_many([Message(b"v", "str key")])  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="exceeds"):
        stream.publish(bytes(64 * 1024 * 1024 + 1))
    with pytest.raises(InvalidInputError, match="timezone-aware"):
        stream.adapter.offsets_for_time(naive)
    assert stream.offsets("latest") == {0: 0}


def test_commits_are_checked_against_the_stream(open_stream: OpenStream) -> None:
    stream = open_stream(partitions=2)
    stream.publish(b"v", key=b"k")
    with pytest.raises(InvalidInputError, match=r"partitions 0\.\.1"):
        stream.adapter.commit("g", {7: 0})
    with pytest.raises(InvalidInputError, match=">= 0"):
        stream.adapter.commit("g", {0: -1})
    with pytest.raises(InvalidInputError, match="its end is"):
        stream.adapter.commit("g", {0: 5})
    with pytest.raises(InvalidInputError, match="consumer group"):
        stream.adapter.commit("../g", {0: 0})
    assert stream.committed("g") == {}


def test_a_commit_torn_by_a_crash_leaves_the_previous_offsets(
    open_stream: OpenStream, tmp_path: Path
) -> None:
    stream = open_stream(partitions=2)
    stream.publish_many([Message(b"v", b"a"), Message(b"v", b"b"), Message(b"v", b"c")])
    latest = stream.offsets("latest")
    stream.adapter.commit("g", {0: latest[0]})
    log = tmp_path / "events" / "groups" / "g" / "offsets.log"
    entry = log.stat().st_size
    assert entry == 8 + 8 * 2  # crc, magic, partitions x i64
    with log.open("ab") as fh:  # a committer killed in the middle of its entry
        fh.write(log.read_bytes()[:11])
    other = open_stream(partitions=2)  # as another process
    assert other.committed("g") == {0: latest[0]}
    other.adapter.commit("g", {1: latest[1]})  # cuts the torn entry, then appends
    assert log.stat().st_size == 2 * entry
    assert stream.committed("g") == other.committed("g") == latest
    with log.open("r+b") as fh:  # damage in the last entry: the one before holds
        fh.seek(entry + 10)
        fh.write(b"\xff")
    assert open_stream(partitions=2).committed("g") == {0: latest[0]}


def test_the_commit_log_is_compacted_and_other_processes_follow(
    open_stream: OpenStream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_stream_groups, "_COMPACT_BYTES", 200)
    stream = open_stream(partitions=1)
    stream.publish_many([b"v"] * 50)
    other = open_stream(partitions=1)  # as another process
    log = tmp_path / "events" / "groups" / "g" / "offsets.log"
    sizes = []
    for offset in range(1, 51):
        (stream if offset % 2 else other).adapter.commit("g", {0: offset})
        sizes.append(log.stat().st_size)
        assert stream.committed("g") == other.committed("g") == {0: offset}
    assert max(sizes) <= 200
    compactions = sum(after < before for before, after in itertools.pairwise(sizes))
    assert compactions >= 3  # each replaced the log by a one-entry file
    assert [p.name for p in log.parent.iterdir() if p.name.startswith(".")] == []


def test_fsync_policies_apply_to_commits(
    open_stream: OpenStream, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    real = _stream_groups._fdatasync

    def counting(fd: int) -> None:
        calls.append(fd)
        real(fd)

    monkeypatch.setattr(_stream_groups, "_fdatasync", counting)
    always = open_stream("always", partitions=1, fsync="always")
    always.publish(b"v")
    for _ in range(3):
        always.adapter.commit("g", {0: 1})
    assert len(calls) == 3  # each commit is on disk before it returns

    calls.clear()
    batch = open_stream("batch", partitions=1, fsync="batch", fsync_interval_ms=20)
    batch.publish(b"v")
    for _ in range(5):
        batch.adapter.commit("g", {0: 1})
    deadline = time.monotonic() + 5
    while not calls and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(calls) == 1  # five commits in one interval share one fdatasync

    calls.clear()
    never = open_stream("never", partitions=1, fsync="never")
    never.publish(b"v")
    never.adapter.commit("g", {0: 1})
    never.close()
    assert calls == []
    assert open_stream("never", partitions=1).committed("g") == {0: 1}


def test_a_closed_stream_refuses_work(open_stream: OpenStream) -> None:
    stream = open_stream()
    stream.close()
    stream.close()
    with pytest.raises(InvalidInputError, match="closed"):
        stream.publish(b"v")
    with pytest.raises(InvalidInputError, match="closed"):
        stream.read(0)


@pytest.fixture
def fdatasync_calls(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Times at which the log called fdatasync (the real call still happens)."""
    calls: list[float] = []
    real = _segment_log._fdatasync

    def counting(fd: int) -> None:
        calls.append(time.monotonic())
        real(fd)

    monkeypatch.setattr(_segment_log, "_fdatasync", counting)
    return calls


def test_fsync_always_syncs_before_every_publish_returns(
    open_stream: OpenStream, fdatasync_calls: list[float]
) -> None:
    stream = open_stream(partitions=1, fsync="always")
    for i in range(5):
        stream.publish(b"v%d" % i)
        assert len(fdatasync_calls) == i + 1


def test_fsync_batch_syncs_within_the_interval_without_further_writes(
    open_stream: OpenStream, fdatasync_calls: list[float]
) -> None:
    stream = open_stream(partitions=1, fsync="batch", fsync_interval_ms=100)
    published = time.monotonic()
    for i in range(20):
        stream.publish(b"v%d" % i)
    assert fdatasync_calls == []  # publish did not wait for the disk
    deadline = time.monotonic() + 5
    while not fdatasync_calls and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(fdatasync_calls) == 1, "twenty publishes in one interval share one fdatasync"
    assert fdatasync_calls[0] - published < 2.0


def test_fsync_batch_syncs_at_once_when_a_partition_has_8_mib_waiting(
    open_stream: OpenStream, fdatasync_calls: list[float]
) -> None:
    stream = open_stream(partitions=1, fsync="batch", fsync_interval_ms=60_000)
    batch = [b"x" * 1024] * 1024  # 1 MiB
    stream.publish_values(batch)
    time.sleep(0.2)
    assert fdatasync_calls == []  # 1 MiB waits for the (long) interval
    for _ in range(8):
        stream.publish_values(batch)
    deadline = time.monotonic() + 10
    while not fdatasync_calls and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(fdatasync_calls) == 1, "8 MiB waiting is synced without waiting 60 s"


def test_fsync_never_leaves_flushing_to_the_os(
    open_stream: OpenStream, fdatasync_calls: list[float]
) -> None:
    stream = open_stream(partitions=1, fsync="never")
    stream.publish_many([b"a", b"b"])
    stream.close()
    assert fdatasync_calls == []
    assert [r.value for r in open_stream(partitions=1).read(0)] == [b"a", b"b"]


def test_closing_a_batch_stream_syncs_pending_writes(
    open_stream: OpenStream, fdatasync_calls: list[float]
) -> None:
    stream = open_stream(partitions=1, fsync="batch", fsync_interval_ms=60_000)
    stream.publish(b"v")
    assert fdatasync_calls == []
    stream.close()
    assert len(fdatasync_calls) == 1
