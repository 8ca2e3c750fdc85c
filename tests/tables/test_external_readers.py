"""Other programs read a lake table's directory directly, without lakekit.

Once old snapshots are expired and ``vacuum`` has run, a table's directory holds exactly the
current snapshot's files in Hive layout, so DuckDB's ``read_parquet('<dir>/**/*.parquet',
hive_partitioning = true)`` and ``pyarrow.dataset.dataset(dir, partitioning="hive")`` return
exactly the rows lakekit returns, partition values (special characters, nulls, transforms)
included.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds
import pytest

import lakekit
from lakekit.errors import InvalidInputError
from lakekit.partition_spec import PartitionField, PartitionSpec
from lakekit.tables import Table, WriteOptions

T0 = datetime(2026, 11, 26, 22, 30, tzinfo=UTC)
COUNTRIES: list[str | None] = [
    "US",
    "a/b",
    "x=y",
    "50%",
    "sp ace",
    "naïve",
    "日本",
    "quote'\"",
    "back\\slash",
    "#hash?q&r",
    "",
    None,
]


def _schema() -> pa.Schema:
    fields: list[pa.Field[Any]] = [
        pa.field("id", pa.int64(), nullable=False),
        pa.field("ts", pa.timestamp("us", tz="UTC")),
        pa.field("country", pa.string()),
        pa.field("name", pa.string()),
    ]
    return pa.schema(fields)


def _ids(data: pa.Table) -> list[int]:
    return sorted(int(i) for i in data.column("id").to_pylist() if i is not None)


def _timestamp(i: int, hours: int = 7) -> datetime:
    """Row ``i``'s time: T0 (22:30) plus ``i % hours`` hours, so rows span two days."""
    return T0 + timedelta(hours=i % hours)


def _rows(ids: range, *, hours: int = 7) -> pa.Table:
    return pa.table(
        {
            "id": pa.array(ids, pa.int64()),
            "ts": pa.array([_timestamp(i, hours) for i in ids], pa.timestamp("us", "UTC")),
            "country": pa.array([COUNTRIES[i % len(COUNTRIES)] for i in ids], pa.string()),
            "name": pa.array([f"name-{i:04d}" for i in ids], pa.string()),
        },
        schema=_schema(),
    )


def _mix64_bucket(value: int, n: int) -> int:
    """``bucket[n]`` as the on-disk format defines it (one SplitMix64 step, mod n)."""
    mask = (1 << 64) - 1
    z = (value + 0x9E3779B97F4A7C15) & mask
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
    return (z ^ (z >> 31)) % n


@pytest.fixture
def lake(lake_dir: Any) -> Iterator[lakekit.Lake]:
    with lakekit.connect(f"local://{lake_dir}") as opened:
        yield opened


def _with_history(table: Table) -> None:
    """Two appends, a partition overwrite of T0's day (all countries) and a failed write: the
    directory then holds replaced and orphaned files besides the current ones."""
    table.append(_rows(range(0, 60)))
    table.append(_rows(range(60, 90)))
    table.overwrite_partitions(_rows(range(1000, 1012), hours=1))

    def failing() -> Iterator[pa.RecordBatch]:
        yield from _rows(range(5000, 5600)).to_batches(max_chunksize=50)
        raise InvalidInputError("source failed")

    with pytest.raises(InvalidInputError):
        table.append(failing(), options=WriteOptions(target_file_size=1024, row_group_size=50))


def _clean(table: Table) -> None:
    table.expire_snapshots(older_than=timedelta(0))
    table.vacuum(older_than=timedelta(0))


def _duckdb(directory: str, columns: str) -> pa.Table:
    with duckdb.connect() as con:
        result = con.sql(
            f"SELECT {columns} FROM read_parquet('{directory}/**/*.parquet', "
            "hive_partitioning = true, hive_types_autocast = false)"
        ).arrow()
    return pa.table(result)


def _pyarrow(directory: str) -> pa.Table:
    return ds.dataset(directory, format="parquet", partitioning="hive").to_table()


def _sorted(data: pa.Table, columns: list[str]) -> list[dict[str, Any]]:
    return sorted(data.select(columns).to_pylist(), key=lambda row: row["id"])


def test_a_vacuumed_table_directory_reads_as_the_current_snapshot(lake: lakekit.Lake) -> None:
    spec = PartitionSpec(
        fields=(
            PartitionField(source="ts", transform="day", name="dt"),
            PartitionField(source="country"),
        )
    )
    table = lake.create_table("ext.events", _schema(), partition_by=spec)
    _with_history(table)
    assert len(table.history()) == 3
    _clean(table)
    expected = table.to_arrow()
    survivors = [i for i in range(90) if _timestamp(i).date() != T0.date()]
    assert _ids(expected) == [*survivors, *range(1000, 1012)]
    directory = lake.store.uri(table.location)
    columns = ["id", "ts", "country", "name"]

    direct = _duckdb(directory, "id, ts, country, name, dt")
    assert _sorted(direct, columns) == _sorted(expected, columns)
    for row in direct.to_pylist():
        assert row["dt"] == row["ts"].date().isoformat(), "dt= holds each row's UTC day"

    dataset = _pyarrow(directory)
    assert _sorted(dataset, columns) == _sorted(expected, columns)


def test_transform_partition_directories_hold_the_transformed_values(lake: lakekit.Lake) -> None:
    spec = PartitionSpec(
        fields=(
            PartitionField(source="ts", transform="hour"),
            PartitionField(source="id", transform="bucket[8]"),
            PartitionField(source="name", transform="truncate[6]"),
        )
    )
    table = lake.create_table("ext.transformed", _schema(), partition_by=spec)
    table.append(_rows(range(0, 40)))
    table.overwrite(_rows(range(100, 130)))
    _clean(table)
    directory = lake.store.uri(table.location)
    columns = ["id", "ts", "country", "name"]
    expected = _sorted(table.to_arrow(), columns)
    assert [row["id"] for row in expected] == list(range(100, 130))

    for data in (_duckdb(directory, "*"), _pyarrow(directory)):
        assert _sorted(data, columns) == expected
        for row in data.to_pylist():
            assert str(row["id_bucket"]) == str(_mix64_bucket(row["id"], 8))
            assert row["name_truncate"] == row["name"][:6]
            assert row["ts_hour"] == row["ts"].strftime("%Y-%m-%d-%H")


def test_append_only_tables_need_only_vacuum(lake: lakekit.Lake) -> None:
    table = lake.create_table("ext.appends", _schema(), partition_by=["country"])
    for start in range(0, 48, 12):
        table.append(_rows(range(start, start + 12)))

    def failing() -> Iterator[pa.RecordBatch]:
        yield from _rows(range(900, 1500)).to_batches(max_chunksize=50)
        raise InvalidInputError("source failed")

    with pytest.raises(InvalidInputError):
        table.append(failing(), options=WriteOptions(target_file_size=1024, row_group_size=50))
    table.vacuum(older_than=timedelta(0))
    directory = lake.store.uri(table.location)
    expected = list(range(48))
    assert _ids(_duckdb(directory, "id")) == expected
    assert _ids(_pyarrow(directory)) == expected
