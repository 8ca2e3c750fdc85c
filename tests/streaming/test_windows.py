"""Window specs: durations, window assignment at the boundaries, hopping overlaps, lateness."""

from __future__ import annotations

from datetime import timedelta

import pyarrow as pa
import pytest

from lakekit.errors import ConfigurationError
from lakekit.streaming import Hopping, Session, Tumbling
from lakekit.streaming.windows import parse_duration

S = 1_000_000  # microseconds per second


@pytest.mark.parametrize(
    ("text", "micros"),
    [
        ("5m", 300 * S),
        ("1h30m", 5400 * S),
        ("250ms", 250_000),
        ("1.5s", 1_500_000),
        ("2d", 172_800 * S),
        ("10us", 10),
        (" 30S ", 30 * S),
        (30, 30 * S),
        (0.25, 250_000),
        (timedelta(minutes=2), 120 * S),
    ],
)
def test_durations_parse_to_microseconds(text: object, micros: int) -> None:
    assert parse_duration(text) == micros  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "bad", ["5 minutes", "m", "", "5x", "1h-3m", True, None, [1], float("inf")]
)
def test_malformed_durations_say_how_to_write_one(bad: object) -> None:
    with pytest.raises(ConfigurationError, match=r"duration|finite|must be"):
        parse_duration(bad)  # type: ignore[arg-type]


def test_negative_durations_are_refused_unless_allowed() -> None:
    with pytest.raises(ConfigurationError, match="negative"):
        parse_duration("-5m")
    assert parse_duration("-5m", allow_negative=True) == -300 * S


def test_a_record_at_a_window_end_belongs_to_the_next_window() -> None:
    window = Tumbling("5m")
    assert window.windows_of(0) == [(0, 300 * S)]
    assert window.windows_of(300 * S - 1) == [(0, 300 * S)]
    assert window.windows_of(300 * S) == [(300 * S, 600 * S)]


def test_times_before_the_epoch_floor_to_their_window() -> None:
    window = Tumbling("1m")
    assert window.windows_of(-1) == [(-60 * S, 0)]
    assert window.windows_of(-60 * S) == [(-60 * S, 0)]
    rows, starts, late = window.assign(pa.array([-1, -60 * S, -60 * S - 1], pa.int64()), None)
    assert rows is None and late is None
    assert starts.to_pylist() == [-60 * S, -60 * S, -120 * S]


def test_offsets_shift_the_boundaries() -> None:
    days = Tumbling("1d", offset="5h")
    assert days.windows_of(5 * 3600 * S) == [(5 * 3600 * S, 29 * 3600 * S)]
    assert days.windows_of(5 * 3600 * S - 1)[0][0] == -19 * 3600 * S
    assert Tumbling("10s", offset="25s") == Tumbling("10s", offset="5s")  # modulo the size
    assert repr(Tumbling("10s", offset="5s")) == "Tumbling('10s', offset='5s')"


def test_vectorised_assignment_matches_the_scalar_rule_at_every_boundary() -> None:
    for window in (Tumbling("7s"), Hopping("10s", every="3s"), Hopping("10s", "5s", offset="2s")):
        times = [*range(-25 * S, 25 * S, S // 2), 3 * S - 1, 3 * S, 10 * S, 10 * S - 1]
        rows, starts, late = window.assign(pa.array(times, pa.int64()), None)
        assert late is None
        got = sorted(
            zip(
                range(len(times)) if rows is None else rows.to_pylist(),
                starts.to_pylist(),
                strict=True,
            )
        )
        want = sorted((i, s) for i, t in enumerate(times) for s, _ in window.windows_of(t))
        assert got == want, window


def test_hopping_windows_overlap_so_each_record_is_in_size_over_every_windows() -> None:
    window = Hopping("10m", every="5m")
    assert window.windows_per_record == 2
    assert window.windows_of(7 * 60 * S) == [(5 * 60 * S, 15 * 60 * S), (0, 10 * 60 * S)]
    uneven = Hopping("10s", every="3s")  # 4 candidate windows; 3 or 4 contain a given time
    assert uneven.windows_per_record == 4
    assert len(uneven.windows_of(0)) == 4
    assert len(uneven.windows_of(2 * S)) == 3
    assert Hopping("5m", every="5m").windows_of(1) == Tumbling("5m").windows_of(1)


def test_assignment_drops_closed_windows_and_flags_records_with_none_left() -> None:
    window = Hopping("10s", every="5s")
    times = pa.array([1 * S, 7 * S, 12 * S], pa.int64())
    # watermark 10s: [0,10) is closed, [5,15) and [10,20) are open
    rows, starts, late = window.assign(times, 10 * S)
    assert sorted(zip(rows.to_pylist(), starts.to_pylist(), strict=True)) == [
        (1, 5 * S),
        (2, 5 * S),
        (2, 10 * S),
    ]
    assert late.to_pylist() == [True, False, False]  # 1s: its windows [0,10) and [-5,5) closed


def test_bad_window_specs_are_configuration_errors() -> None:
    with pytest.raises(ConfigurationError, match="positive"):
        Tumbling(0)
    with pytest.raises(ConfigurationError, match="must not exceed its size"):
        Hopping("1m", every="2m")
    with pytest.raises(ConfigurationError, match="positive"):
        Session(gap="0s")
    with pytest.raises(ConfigurationError, match="not a duration"):
        Session(gap="soon")


def test_specs_compare_and_describe_by_value() -> None:
    assert Tumbling("300s") == Tumbling("5m")
    assert Session("30m") == Session(1800)
    assert Tumbling("5m") != Hopping("5m", every="1m")
    assert repr(Hopping("1h", every="15m")) == "Hopping('1h', every='15m')"
    assert repr(Session("90s")) == "Session(gap='90s')"
    assert len({Tumbling("1m"), Tumbling("60s")}) == 1
