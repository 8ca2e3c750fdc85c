"""The watermark: per-partition minimum of the newest event times minus the lateness, held by
partitions with a backlog, not held by idle ones, never going back."""

from __future__ import annotations

import pytest

from lakekit.errors import InvalidInputError
from lakekit.streaming.watermark import Watermarks


def _marks(lateness: int = 10, idle: float = 5.0) -> Watermarks:
    return Watermarks(lateness_us=lateness, idle_timeout_s=idle)


def test_the_watermark_is_the_slowest_active_partition_minus_the_lateness() -> None:
    marks = _marks()
    marks.observe({0: 1_000, 1: 400}, read=[0, 1], now=0.0)
    assert marks.advance(backlog=[], now=1.0) == 390


def test_a_partition_with_a_backlog_not_read_yet_holds_the_watermark() -> None:
    marks = _marks()
    marks.observe({0: 1_000}, read=[0], now=0.0)
    assert marks.advance(backlog=[1], now=0.1) is None  # partition 1 may hold older records
    marks.observe({1: 500}, read=[1], now=0.2)
    assert marks.advance(backlog=[], now=0.3) == 490


def test_idle_partitions_stop_holding_the_watermark() -> None:
    marks = _marks(idle=5.0)
    marks.observe({0: 1_000, 1: 100}, read=[0, 1], now=0.0)
    assert marks.advance(backlog=[], now=1.0) == 90
    marks.observe({0: 2_000}, read=[0], now=4.0)
    assert marks.advance(backlog=[], now=5.5) == 1_990  # partition 1 quiet for 5.5 s: idle
    # a partition that is behind but still has unread records is never idle
    assert _idle_with_backlog() == 90


def _idle_with_backlog() -> int | None:
    marks = _marks(idle=5.0)
    marks.observe({0: 1_000, 1: 100}, read=[0, 1], now=0.0)
    marks.observe({0: 2_000}, read=[0], now=4.0)
    return marks.advance(backlog=[1], now=60.0)


def test_when_every_partition_is_idle_the_newest_time_counts() -> None:
    marks = _marks(idle=1.0)
    marks.observe({0: 1_000, 1: 300}, read=[0, 1], now=0.0)
    assert marks.advance(backlog=[], now=10.0) == 990


def test_the_watermark_never_goes_back() -> None:
    marks = _marks(idle=1.0)
    marks.observe({0: 1_000}, read=[0], now=0.0)
    assert marks.advance(backlog=[], now=10.0) == 990
    marks.observe({1: 50}, read=[1], now=11.0)  # a partition wakes up far behind
    assert marks.advance(backlog=[], now=11.5) == 990
    marks.observe({0: 900}, read=[0], now=12.0)  # an older time does not lower the maximum
    assert marks.max_by_partition[0] == 1_000


def test_a_partition_read_but_without_valid_times_holds_until_idle() -> None:
    marks = _marks(idle=2.0)
    marks.observe({0: 1_000}, read=[0, 1], now=0.0)  # partition 1's records were all invalid
    assert marks.advance(backlog=[], now=1.0) is None
    assert marks.advance(backlog=[], now=3.0) == 990


def test_progress_round_trips_and_restored_partitions_count_as_just_read() -> None:
    marks = _marks(idle=5.0)
    marks.observe({0: 1_000, 1: 400}, read=[0, 1], now=0.0)
    marks.advance(backlog=[], now=0.0)
    restored = _marks(idle=5.0)
    restored.restore(marks.encode(), now=100.0)
    assert restored.value == 390
    assert restored.max_by_partition == {0: 1_000, 1: 400}
    assert restored.advance(backlog=[], now=101.0) == 390  # partition 1 is not idle yet
    with pytest.raises(InvalidInputError, match="malformed watermark"):
        restored.restore({"value": "x", "partitions": {}})
    with pytest.raises(InvalidInputError, match="malformed watermark"):
        restored.restore([])
