"""Decoding a poll batch: one pyarrow.json call on the fast path, one record at a time on the
slow path, every record that cannot be counted named with its reason, and Records built only
for the rows that need them."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from lakekit.interfaces.stream import Record, RecordBlock, RecordRun
from lakekit.streaming._records import (
    KEY,
    PARTITION,
    ROW,
    TIME,
    RecordLayout,
    decode_batch,
    parse_time,
    records_at,
    unseen,
)

LAYOUT = RecordLayout("device", "ts", "s", {"temp": "number", "status": "scalar", "user": "raw"})
STAMP = datetime(2024, 1, 1, tzinfo=UTC)
S = 1_000_000


def _records(*values: Any) -> list[Record]:
    out = []
    for offset, value in enumerate(values):
        data = value if isinstance(value, bytes) else json.dumps(value).encode()
        out.append(Record("s", offset % 2, offset, STAMP + timedelta(seconds=offset), data))
    return out


def _rows(
    records: list[Record], layout: RecordLayout = LAYOUT
) -> tuple[list[dict[str, Any]], dict[int, str]]:
    decoded = decode_batch(records, layout)
    return decoded.table.to_pylist(), decoded.invalid


def test_a_clean_batch_decodes_in_one_table_with_keys_as_text_and_numbers_as_floats() -> None:
    rows, invalid = _rows(
        _records(
            {"device": "a", "ts": 1_700_000_000, "temp": 20, "status": "ok", "user": 7},
            {"device": 17, "ts": 1_700_000_001.5, "temp": 21.5, "status": "hot", "user": 8},
        )
    )
    assert invalid == {}
    assert [r[KEY] for r in rows] == ["a", "17"]
    assert [r[TIME] for r in rows] == [1_700_000_000 * S, 1_700_000_001_500_000]
    assert [r["temp"] for r in rows] == [20.0, 21.5]
    assert [r["user"] for r in rows] == [7, 8]  # raw fields keep their JSON type
    assert [r[ROW] for r in rows] == [0, 1]


@pytest.mark.parametrize(
    ("value", "micros"),
    [
        ("2024-01-01T00:00:00Z", 1_704_067_200 * S),
        ("2024-01-01T02:00:00+02:00", 1_704_067_200 * S),
        ("2024-01-01T00:00:00.25", 1_704_067_200 * S + 250_000),  # naive means UTC
        ("2024-01-01 00:00:00", 1_704_067_200 * S),
    ],
)
def test_iso_times_with_or_without_zones_are_utc_microseconds(value: str, micros: int) -> None:
    (row,), invalid = _rows(_records({"device": "a", "ts": value}))
    assert invalid == {}
    assert row[TIME] == micros
    assert parse_time(value, "s") == micros


def test_mixed_zone_spellings_in_one_batch_are_each_parsed() -> None:
    values = ["2024-01-01T00:00:00Z", "2024-01-01T00:00:01", "2024-01-01T01:00:02+01:00"]
    rows, invalid = _rows(_records(*({"device": "a", "ts": v} for v in values)))
    assert invalid == {}
    assert [r[TIME] - 1_704_067_200 * S for r in rows] == [0, S, 2 * S]


def test_numeric_times_use_the_time_unit() -> None:
    layout = RecordLayout("device", "ts", "ms", {})
    (row,), _ = _rows(_records({"device": "a", "ts": 1_700_000_000_123}), layout)
    assert row[TIME] == 1_700_000_000_123_000
    assert parse_time(5, "us") == 5


def test_numeric_times_out_of_range_are_invalid_not_fatal() -> None:
    rows, invalid = _rows(
        _records(
            {"device": "a", "ts": 10**20}, {"device": "a", "ts": -1e15}, {"device": "a", "ts": 5}
        )
    )
    assert [r[TIME] for r in rows] == [5 * S]
    assert invalid[0] == (
        "time field 'ts': 100000000000000000000 (s since the epoch) is out of range "
        "(years 2 to 9998)"
    )
    assert "out of range (years 2 to 9998)" in invalid[1]
    with pytest.raises(ValueError, match="out of range"):
        parse_time("9999-06-01T00:00:00Z", "s")


def test_the_fast_path_also_rejects_times_beyond_year_9999() -> None:
    rows, invalid = _rows(_records({"device": "a", "ts": 10**12}, {"device": "b", "ts": 7}))
    assert [r[KEY] for r in rows] == ["b"]
    assert invalid == {0: "time field 'ts' is out of range (years 2 to 9998)"}


def test_without_a_time_field_the_record_timestamp_is_the_event_time() -> None:
    layout = RecordLayout(None, None, "s", {})
    rows, _ = _rows(_records({"x": 1}, {"x": 2}), layout)
    assert [r[TIME] for r in rows] == [1_704_067_200 * S, 1_704_067_201 * S]
    assert KEY not in rows[0]


def test_records_that_cannot_be_counted_are_named_with_their_reason() -> None:
    records = _records(
        {"device": "a", "ts": 1, "temp": 1},  # fine
        {"device": "a"},  # no time
        {"device": "a", "ts": "yesterday"},  # unparseable time
        {"ts": 2},  # no key
        {"device": 1.5, "ts": 2},  # key of the wrong type
        {"device": "a", "ts": 2, "temp": "warm"},  # not a number
        [1, 2],  # not an object
        b"{not json",
        {"device": "a", "ts": True},  # a boolean is not a time
        {"device": "a", "ts": 3, "temp": 2},  # fine
    )
    rows, invalid = _rows(records)
    assert [r[ROW] for r in rows] == [0, 9]
    assert invalid[1] == "missing time field 'ts'"
    assert invalid[2] == "time field 'ts': 'yesterday' is not an ISO-8601 time"
    assert invalid[3] == "missing key field 'device'"
    assert invalid[4] == "key field 'device' must be a string or an integer"
    assert invalid[5] == "field 'temp' must be a number"
    assert invalid[6] == "value is a JSON array, not an object"
    assert invalid[7].startswith("value is not UTF-8 JSON")
    assert invalid[8].startswith("time field 'ts': expected ISO-8601 text or a number")


def test_the_fast_path_reports_whole_column_problems_per_record() -> None:
    # one JSON type per column, so pyarrow parses the batch in one call
    rows, invalid = _rows(
        _records(
            {"device": "a", "ts": "2024-01-01T00:00:00Z", "temp": "warm"},
            {"device": "b", "ts": "not a time", "temp": None},
            {"device": None, "ts": "2024-01-01T00:00:01Z"},
        )
    )
    assert rows == []
    assert invalid == {
        0: "field 'temp' must be a number",
        1: "time field 'ts': 'not a time' is not an ISO-8601 time",
        2: "missing key field 'device'",
    }


def test_values_with_raw_newlines_or_blank_values_do_not_shift_rows() -> None:
    records = _records(
        b'{"device": "a",\n "ts": 1}',  # pretty-printed: a raw newline inside the value
        b"",
        b"   ",
        {"device": "c", "ts": 3},
    )
    rows, invalid = _rows(records)
    assert [(r[ROW], r[KEY]) for r in rows] == [(0, "a"), (3, "c")]
    assert set(invalid) == {1, 2}


def test_a_field_whose_type_changes_within_a_batch_rejects_the_odd_records() -> None:
    rows, invalid = _rows(
        _records(
            {"device": "a", "ts": 1, "status": "ok"},
            {"device": "a", "ts": 2, "status": 5},
            {"device": "a", "ts": 3, "status": {"nested": 1}},
        )
    )
    assert [r["status"] for r in rows] == ["ok"]
    assert invalid[1] == "field 'status' is a number here but a string in other records"
    assert invalid[2] == "field 'status' must be a number, a string or a boolean"


def test_timestamp_looking_text_keeps_its_original_spelling() -> None:
    layout = RecordLayout("day", "ts", "s", {"status": "scalar"})
    rows, invalid = _rows(
        _records({"day": "2024-01-01 00:00:00", "ts": 1, "status": "2024-01-02T00:00:00"}), layout
    )
    assert invalid == {}
    assert rows[0][KEY] == "2024-01-01 00:00:00"
    assert rows[0]["status"] == "2024-01-02T00:00:00"


def test_values_that_only_parse_when_joined_are_each_invalid_not_merged() -> None:
    # neither value is a JSON object on its own, but joined by a newline they read as two
    records = _records(
        b'{"device": "a", "ts":',
        b'1}{"device": "b", "ts": 2}',
        {"device": "c", "ts": 3},
    )
    rows, invalid = _rows(records)
    assert [(r[ROW], r[KEY]) for r in rows] == [(2, "c")]
    assert invalid[0].startswith("value is not UTF-8 JSON")
    assert invalid[1].startswith("value is not UTF-8 JSON")


def test_a_value_holding_two_objects_beside_a_blank_value_does_not_shift_rows() -> None:
    # two rows from one value and none from the blank one would keep pyarrow's row count
    records = _records(
        b'{"device": "a", "ts": 1} {"device": "b", "ts": 2}',
        b"",
        {"device": "c", "ts": 3},
    )
    rows, invalid = _rows(records)
    assert [(r[ROW], r[KEY]) for r in rows] == [(2, "c")]
    assert set(invalid) == {0, 1}


def test_values_with_surrounding_whitespace_are_still_decoded() -> None:
    rows, invalid = _rows(_records(b' {"device": "a", "ts": 1}', b'{"device": "b", "ts": 2}\t'))
    assert invalid == {}
    assert [(r[ROW], r[KEY]) for r in rows] == [(0, "a"), (1, "b")]


def _block() -> RecordBlock:
    """Two runs of partition 1 and one of partition 0, as ``poll_batch`` returns them."""

    def run(partition: int, offsets: range) -> RecordRun:
        values = [json.dumps({"device": f"p{partition}", "ts": o}).encode() for o in offsets]
        return RecordRun(
            partition,
            offsets,
            values,
            [STAMP + timedelta(seconds=o) for o in offsets],
            [f"k{o}".encode() for o in offsets],
        )

    return RecordBlock("s", [run(1, range(5, 8)), run(1, range(8, 10)), run(0, range(0, 2))])


def test_a_record_block_decodes_by_column_with_each_rows_partition() -> None:
    block = _block()
    decoded = decode_batch(block, LAYOUT)
    assert decoded.invalid == {}
    assert decoded.table.column(PARTITION).to_pylist() == [1] * 5 + [0] * 2
    assert decoded.table.column(TIME).to_pylist() == [o * S for o in [5, 6, 7, 8, 9, 0, 1]]
    assert decode_batch(list(block), LAYOUT).table.equals(decoded.table)


def test_records_are_built_only_for_the_rows_asked_for() -> None:
    block = _block()
    found = records_at(block, [6, 3, 3])
    assert sorted(found) == [3, 6]
    assert found[3] == block.records()[3]
    assert (found[3].partition, found[3].offset, found[3].key) == (1, 8, b"k8")
    assert (found[6].partition, found[6].offset) == (0, 1)
    assert records_at(block, []) == {}


def test_unseen_keeps_only_records_at_or_after_each_partitions_position() -> None:
    block = _block()
    kept = unseen(block, {1: 7, 0: 0})
    assert [(r.partition, r.offset) for r in kept] == [(1, 7), (1, 8), (1, 9), (0, 0), (0, 1)]
    assert kept.records()[0] == block.records()[2]
    assert kept.next_offsets == {1: 10, 0: 2}
    assert not unseen(block, {1: 10, 0: 5})
    assert unseen(block, {}).runs == block.runs  # nothing seen yet: the same runs
