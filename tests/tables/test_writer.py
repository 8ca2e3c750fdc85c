"""The data-file writer behind every table write: partition routing, row groups, file limits,
bounded buffering, encodings chosen from the data, and cleanup when the input fails."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lakekit.errors import InvalidInputError
from lakekit.lake import Lake
from lakekit.tables import WriteOptions

FIELDS: list[pa.Field[Any]] = [
    pa.field("id", pa.int64()),
    pa.field("ts", pa.timestamp("us")),
    pa.field("country", pa.string()),
    pa.field("note", pa.string()),
]
SCHEMA = pa.schema(FIELDS)
START = datetime(2024, 3, 1)
COUNTRIES = ["DE", "FR", "US", None]


def rows(ids: list[int], *, minutes_apart: int = 7) -> pa.Table:
    """Rows ``ids``: ``ts`` advances with the id, ``country`` cycles, ``note`` is unique."""
    return pa.table(
        {
            "id": ids,
            "ts": [START + timedelta(minutes=i * minutes_apart) for i in ids],
            "country": [COUNTRIES[i % len(COUNTRIES)] for i in ids],
            "note": [f"note-{i:08d}" for i in ids],
        },
        schema=SCHEMA,
    )


def ids_of(data: pa.Table) -> list[int]:
    values: list[Any] = data.column("id").to_pylist()
    return [int(i) for i in values]


def batches(data: pa.Table, size: int) -> Iterator[pa.RecordBatch]:
    yield from data.to_batches(max_chunksize=size)


def read_file(lake_dir: Path, key: str) -> pa.Table:
    return pq.read_table(lake_dir / key, partitioning=None)


def row_groups(lake_dir: Path, key: str) -> list[int]:
    meta = pq.read_metadata(lake_dir / key)
    return [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]


def test_rows_land_in_their_partition_directories_in_input_order(
    lake: Lake, lake_dir: Path
) -> None:
    table = lake.create_table("w.events", SCHEMA, partition_by=["country", "day(ts)"])
    ids = list(range(3_000))
    random.Random(5).shuffle(ids)
    table.append(batches(rows(ids), 256))

    files = table.files()
    assert sum(f.record_count for f in files) == 3_000
    seen: list[int] = []
    for data_file in files:
        stored = read_file(lake_dir, data_file.key)
        assert "country" not in stored.column_names  # identity partitions live in the path
        times: list[Any] = stored.column("ts").to_pylist()
        days = {ts.date().isoformat() for ts in times}
        assert days == {data_file.partition["ts_day"]}
        expected_country = {COUNTRIES[i % len(COUNTRIES)] for i in ids_of(stored)}
        assert expected_country == {data_file.partition["country"]}
        file_ids = ids_of(stored)
        assert file_ids == [i for i in ids if i in set(file_ids)]  # input order kept
        seen.extend(file_ids)
    assert sorted(seen) == list(range(3_000))
    assert any(f.partition["country"] is None for f in files)
    assert sorted(ids_of(table.to_arrow())) == list(range(3_000))


def test_a_time_ordered_stream_writes_full_row_groups_per_day(lake: Lake, lake_dir: Path) -> None:
    table = lake.create_table("w.log", SCHEMA, partition_by=["day(ts)"])
    # 1 row a minute: 1,440 rows a day, 5 days, read in batches of 300
    table.append(batches(rows(list(range(5 * 1_440)), minutes_apart=1), 300),
                 options=WriteOptions(row_group_size=500))  # fmt: skip

    files = sorted(table.files(), key=lambda f: f.partition["ts_day"] or "")
    assert len(files) == 5
    for data_file in files:
        assert row_groups(lake_dir, data_file.key) == [500, 500, 440]
        day = datetime.fromisoformat(str(data_file.partition["ts_day"]))
        assert data_file.stats["ts"].min == day.isoformat()
        assert data_file.stats["ts"].max == (day + timedelta(minutes=1_439)).isoformat()


def test_max_open_files_closes_the_least_recently_written_file(lake: Lake, lake_dir: Path) -> None:
    table = lake.create_table("w.scattered", SCHEMA, partition_by=["country"])
    ids = list(range(2_000))
    table.append(batches(rows(ids), 100), options=WriteOptions(max_open_files=2, row_group_size=50))

    files = table.files()
    assert len({tuple(f.partition.items()) for f in files}) == 4
    assert len(files) > 4  # partitions cycle, so files were closed and reopened
    for data_file in files:
        stored = ids_of(read_file(lake_dir, data_file.key))
        assert {COUNTRIES[i % 4] for i in stored} == {data_file.partition["country"]}
    assert sorted(ids_of(table.to_arrow())) == ids


def test_target_file_size_splits_a_partition_over_several_files(lake: Lake, lake_dir: Path) -> None:
    table = lake.create_table("w.split", SCHEMA, partition_by=["day(ts)"])
    options = WriteOptions(target_file_size=8 * 1024, row_group_size=100)
    table.append(batches(rows(list(range(1_000)), minutes_apart=1), 128), options=options)

    files = table.files()
    assert len({f.partition["ts_day"] for f in files}) == 1
    assert len(files) > 1
    assert sum(f.record_count for f in files) == 1_000
    assert all(max(row_groups(lake_dir, f.key)) <= 100 for f in files)


def test_max_buffered_bytes_writes_scattered_partitions_out_early(
    lake: Lake, lake_dir: Path
) -> None:
    table = lake.create_table("w.buffered", SCHEMA, partition_by=["country"])
    ids = list(range(8_000))
    options = WriteOptions(row_group_size=100_000, max_buffered_bytes=64 * 1024)
    table.append(batches(rows(ids), 500), options=options)

    files = table.files()
    assert sum(f.record_count for f in files) == 8_000
    groups = [n for f in files for n in row_groups(lake_dir, f.key)]
    assert len(groups) > 4  # without the budget: one row group per partition
    assert sorted(ids_of(table.to_arrow())) == ids


def test_a_failing_input_leaves_no_data_files(lake: Lake, lake_dir: Path) -> None:
    table = lake.create_table("w.failing", SCHEMA, partition_by=["country"])

    def failing() -> Iterator[pa.RecordBatch]:
        yield from batches(rows(list(range(2_000))), 100)
        raise InvalidInputError("source failed")

    with pytest.raises(InvalidInputError, match="source failed"):
        table.append(failing(), options=WriteOptions(row_group_size=50, target_file_size=4096))
    assert list(Path(lake_dir, table.location).rglob("*.parquet")) == []
    assert table.current_snapshot() is None


def test_encodings_are_chosen_from_the_data(lake: Lake, lake_dir: Path) -> None:
    table = lake.create_table("w.encodings", SCHEMA)
    table.append(rows(list(range(5_000))))

    (data_file,) = table.files()
    group = pq.read_metadata(lake_dir / data_file.key).row_group(0)
    encodings = {
        group.column(i).path_in_schema: set(group.column(i).encodings)
        for i in range(group.num_columns)
    }
    assert "DELTA_BINARY_PACKED" in encodings["id"]  # sorted ids
    assert "DELTA_BINARY_PACKED" in encodings["ts"]  # event times
    assert "RLE_DICTIONARY" in encodings["country"]  # 3 values and null
    assert "RLE_DICTIONARY" not in encodings["note"]  # unique: a dictionary would not pay
    assert table.to_arrow().sort_by("id").equals(rows(list(range(5_000))))


def test_set_state_may_be_computed_after_the_data_is_consumed(tmp_path: Path) -> None:
    import lakekit

    with lakekit.connect(tmp_path / "lake") as lake:
        table = lake.create_table("ns.t", pa.schema([("id", pa.int64())]))
        seen: list[int] = []

        def batches() -> Iterator[pa.RecordBatch]:
            for start in range(0, 30, 10):
                seen.append(start + 9)
                yield pa.record_batch({"id": list(range(start, start + 10))})

        table.append(batches(), set_state=lambda: {"cursor": seen[-1]})
        assert lake.catalog.get_state("cursor") == 29
        assert table.count() == 30
