"""LocalStream consumer groups: members split partitions through flock, the dead hand over."""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lakekit.adapters.local import _stream_groups
from lakekit.adapters.local.stream import LocalStream
from lakekit.errors import ConflictError, InvalidInputError
from lakekit.interfaces.stream import Stream


def _hold_partitions(directory: str, ready: str) -> None:
    """Child process: join group ``g`` as member ``child``, own every partition, then wait."""
    stream = LocalStream("events", directory=directory)
    assert stream.assign("g", "child") == [0, 1, 2, 3]
    Path(ready).touch()
    time.sleep(120)


def _hold_half(directory: str, ready: str) -> None:
    """Child process: join group ``g`` as member ``child``, poll until it owns its fair half of
    the partitions (the parent owns the rest), then wait to be killed."""
    stream = LocalStream("events", directory=directory)
    deadline = time.monotonic() + 60
    while len(stream.assign("g", "child")) != 2:
        assert time.monotonic() < deadline, "never got a fair share"
        time.sleep(0.01)
    Path(ready).touch()
    time.sleep(120)


@pytest.fixture
def adapters(tmp_path: Path) -> Iterator[list[LocalStream]]:
    """Three adapters of one stream: as good as three processes for flock."""
    opened = [LocalStream("events", directory=tmp_path) for _ in range(3)]
    yield opened
    for adapter in opened:
        adapter.close()


def test_members_split_partitions_fairly_and_never_share_one(
    adapters: list[LocalStream],
) -> None:
    a, b, c = adapters
    assert a.assign("g", "a") == [0, 1, 2, 3]  # alone: everything
    assert b.assign("g", "b") == []  # everything is held; "a" gives up its surplus next poll
    assert len(a.assign("g", "a")) == 2
    assert len(b.assign("g", "b")) == 2
    assert set(a.assign("g", "a")) | set(b.assign("g", "b")) == {0, 1, 2, 3}

    c.assign("g", "c")  # a third member: shares become 2 / 1 / 1
    for _ in range(2):
        owned = [m.assign("g", name) for m, name in ((a, "a"), (b, "b"), (c, "c"))]
    assert sorted(len(o) for o in owned) == [1, 1, 2]
    assert sorted(p for o in owned for p in o) == [0, 1, 2, 3]


def test_groups_do_not_share_partition_ownership(adapters: list[LocalStream]) -> None:
    a, b, _ = adapters
    assert a.assign("g", "a") == [0, 1, 2, 3]
    assert b.assign("other", "b") == [0, 1, 2, 3]


def test_a_killed_members_partitions_are_taken_over_on_the_next_poll(
    adapters: list[LocalStream], tmp_path: Path
) -> None:
    ready = tmp_path / "ready"
    child = multiprocessing.get_context("spawn").Process(
        target=_hold_partitions, args=(str(tmp_path), str(ready))
    )
    child.start()
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert child.exitcode is None, "the child failed"
            assert time.monotonic() < deadline
            time.sleep(0.01)
        survivor = adapters[0]
        assert survivor.assign("g", "survivor") == []  # the child owns everything
        assert (tmp_path / "events" / "groups" / "g" / "members" / "child").exists()
    finally:
        child.kill()
        child.join(60)
    assert survivor.assign("g", "survivor") == [0, 1, 2, 3]
    assert not (tmp_path / "events" / "groups" / "g" / "members" / "child").exists()


def test_a_member_id_cannot_be_live_twice(adapters: list[LocalStream]) -> None:
    a, b, _ = adapters
    a.assign("g", "worker-1")
    with pytest.raises(ConflictError, match="worker-1"):
        b.assign("g", "worker-1")
    a.release("g", "worker-1")
    assert b.assign("g", "worker-1") == [0, 1, 2, 3]


def test_member_ids_must_be_safe_file_names(adapters: list[LocalStream]) -> None:
    for bad in ("../x", ".hidden", "a/b", "", "x" * 200):
        with pytest.raises(InvalidInputError, match="member id"):
            adapters[0].assign("g", bad)


def test_closing_a_consumer_hands_its_partitions_to_the_others(tmp_path: Path) -> None:
    first = Stream(LocalStream("events", directory=tmp_path))
    second = Stream(LocalStream("events", directory=tmp_path))
    try:
        for i in range(8):
            first.publish(b"%d" % i, key=b"k%d" % i)
        with second.consumer("g", member="two") as two:
            with first.consumer("g", member="one") as one:
                got = one.poll(max_records=100)
                one.commit()
                assert len(got) == 8
                assert two.poll() == []  # "one" still owns every partition
            # "one" closed: its partitions are free, and their records were committed
            assert two.poll(timeout=0.2) == []
            assert second.adapter.assign("g", "two") == [0, 1, 2, 3]
            first.publish(b"late", key=b"k0")
            assert [r.value for r in two.poll(timeout=2)] == [b"late"]
    finally:
        first.close()
        second.close()


def test_a_member_holding_its_share_notices_a_dead_member_at_its_next_sweep(
    adapters: list[LocalStream], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    survivor = adapters[0]
    assert survivor.assign("g", "survivor") == [0, 1, 2, 3]
    ready = tmp_path / "ready"
    child = multiprocessing.get_context("spawn").Process(
        target=_hold_half, args=(str(tmp_path), str(ready))
    )
    child.start()
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():  # the child's join makes the survivor give up two partitions
            assert child.exitcode is None, "the child failed"
            assert time.monotonic() < deadline
            survivor.assign("g", "survivor")
            time.sleep(0.01)
        assert survivor.assign("g", "survivor") == [0, 1]
    finally:
        child.kill()
        child.join(60)
    # A dead member cannot announce itself: a member holding its share finds out when it next
    # sweeps (every SWEEP_INTERVAL_S), not at every poll.
    monkeypatch.setattr(_stream_groups, "SWEEP_INTERVAL_S", 3600.0)
    assert survivor.assign("g", "survivor") == [0, 1]
    monkeypatch.setattr(_stream_groups, "SWEEP_INTERVAL_S", 0.0)
    assert survivor.assign("g", "survivor") == [0, 1, 2, 3]
    assert not (tmp_path / "events" / "groups" / "g" / "members" / "child").exists()


def test_joins_and_leaves_are_seen_at_the_next_poll_whatever_the_sweep_interval(
    adapters: list[LocalStream], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_stream_groups, "SWEEP_INTERVAL_S", 3600.0)
    a, b, _ = adapters
    assert a.assign("g", "a") == [0, 1, 2, 3]
    assert b.assign("g", "b") == []
    assert a.assign("g", "a") == [0, 1]  # "b" joined: "a" gives up its surplus
    assert b.assign("g", "b") == [2, 3]
    b.release("g", "b")
    assert a.assign("g", "a") == [0, 1, 2, 3]  # "b" left
