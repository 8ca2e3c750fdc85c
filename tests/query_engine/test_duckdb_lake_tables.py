"""DuckDBEngine over lake tables (``lake.create_table``: snapshots committed through the catalog):
the view reads exactly the committed files, binds on a schema file instead of a schema map when
every file has the table's schema, and does no catalog or DDL work beyond one lookup per query
in the steady state."""

from __future__ import annotations

import datetime as dt
import decimal
import io
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import lakekit
from lakekit.adapters.duckdb.query_engine import DuckDBEngine
from lakekit.interfaces.query_engine import QueryEngine
from lakekit.lake import Lake
from lakekit.testing.query_engine_suite import events

DAYS = [dt.date(2024, 1, 1), dt.date(2024, 1, 2), dt.date(2024, 1, 3)]


@pytest.fixture
def lake(tmp_path: Path) -> Iterator[Lake]:
    with lakekit.connect(f"local://{tmp_path / 'lake'}", store={"fsync": False}) as opened:
        yield opened


def _daily(lake: Lake, name: str = "web.daily") -> lakekit.Table:
    data = pa.concat_tables([events(range(10 * n, 10 * n + 5), day) for n, day in enumerate(DAYS)])
    table = lake.create_table(name, data.schema, partition_by=["dt"])
    table.append(data)
    return table


def _view_sql(lake: Lake, schema: str, name: str) -> str:
    rows = lake.sql(
        "select sql from duckdb_views() where schema_name = ? and view_name = ?", [schema, name]
    ).rows()
    assert len(rows) == 1
    text: str = rows[0][0]
    return text


def _has_schema_map(view: str) -> bool:
    """Whether a view's (DuckDB-normalised) SQL passes ``read_parquet`` a ``schema`` map."""
    return re.search(r"\bschema\"?\s*:?=", view) is not None


def _engine(lake: Lake) -> DuckDBEngine:
    adapter = lake.engine.adapter
    assert isinstance(adapter, DuckDBEngine)
    return adapter


def _count_ddl(monkeypatch: pytest.MonkeyPatch, engine: DuckDBEngine) -> list[str]:
    """Record every DDL statement the engine runs from now on."""
    statements: list[str] = []
    original = engine._ddl_execute

    def recording(statement: str) -> None:
        statements.append(statement)
        original(statement)

    monkeypatch.setattr(engine, "_ddl_execute", recording)
    return statements


def test_the_engine_recognises_lake_tables_by_the_table_layers_property() -> None:
    from lakekit.adapters.duckdb import _views
    from lakekit.tables import metadata

    assert _views.METADATA_PROPERTY == metadata.METADATA_PROPERTY


# -- which files -----------------------------------------------------------------------------------
def test_uncommitted_files_in_the_location_are_never_read(lake: Lake) -> None:
    table = _daily(lake)
    # What a crashed or in-progress writer leaves: a valid Parquet file no snapshot lists.
    buffer = io.BytesIO()
    pq.write_table(events(range(100, 150), DAYS[0]).drop_columns(["dt"]), buffer)
    lake.store.put(f"{table.location}/dt=2024-01-01/part-crashed-0.parquet", buffer.getvalue())
    assert lake.sql("select count(*) from web.daily").scalar() == 15
    assert lake.sql("select count(*) from web.daily where dt = ?", [DAYS[0]]).scalar() == 5


def test_each_commit_is_seen_by_the_next_query(lake: Lake) -> None:
    table = _daily(lake)
    assert lake.sql("select count(*) from web.daily").scalar() == 15
    table.append(events([99], DAYS[1]))
    assert lake.sql("select count(*) from web.daily where dt = ?", [DAYS[1]]).scalar() == 6
    table.overwrite(events([7, 8], DAYS[2]))  # the replaced files still exist until vacuum
    assert lake.sql("select id from web.daily order by id").rows() == [(7,), (8,)]


def test_a_commit_from_another_engine_is_seen_by_the_next_query(lake: Lake) -> None:
    table = _daily(lake)
    other = QueryEngine(DuckDBEngine(catalog=lake.catalog, store=lake.store))
    try:
        assert other.sql("select count(*) from web.daily").scalar() == 15
        table.append(events([42], DAYS[0]))
        assert other.sql("select count(*) from web.daily").scalar() == 16
    finally:
        other.close()


def test_an_empty_lake_table_has_its_columns_and_no_rows(lake: Lake) -> None:
    lake.create_table("web.empty", events([], DAYS[0]).schema, partition_by=["dt"])
    result = lake.sql("select * from web.empty")
    assert result.rows() == []
    assert result.schema.names == ["id", "name", "amount", "dt"]


# -- how the view binds ----------------------------------------------------------------------------
def test_a_uniform_table_binds_on_a_schema_file_not_a_schema_map(lake: Lake) -> None:
    _daily(lake)
    assert lake.sql("select count(*) from web.daily").scalar() == 15
    view = _view_sql(lake, "web", "daily")
    assert "schema.parquet" in view
    assert not _has_schema_map(view)


def test_a_null_partition_value_reads_as_null_and_the_schema_file_adds_no_row(lake: Lake) -> None:
    data = pa.table({"id": pa.array([1, 2, 3], pa.int64()), "dt": [DAYS[0], None, None]})
    lake.create_table("web.nulls", data.schema, partition_by=["dt"]).append(data)
    assert lake.sql("select count(*) from web.nulls").scalar() == 3
    assert lake.sql("select count(*) from web.nulls where dt is null").scalar() == 2
    assert lake.sql("select id from web.nulls where dt = ?", [DAYS[0]]).rows() == [(1,)]


def test_files_written_with_an_older_schema_use_the_schema_map(lake: Lake) -> None:
    table = _daily(lake)
    newer = events([50], DAYS[0]).append_column("note", pa.array(["new"], pa.string()))
    table.append(newer)
    rows = lake.sql("select id, note from web.daily where id in (0, 50) order by id").rows()
    assert rows == [(0, None), (50, "new")]
    view = _view_sql(lake, "web", "daily")
    assert _has_schema_map(view)
    assert "schema.parquet" not in view


def test_a_transform_partition_keeps_its_source_column_in_the_files(lake: Lake) -> None:
    start = dt.datetime(2024, 1, 1, 12, 0)
    data = pa.table(
        {
            "id": pa.array(range(6), pa.int64()),
            "ts": pa.array(
                [start + dt.timedelta(hours=9 * i) for i in range(6)], pa.timestamp("us")
            ),
        }
    )
    lake.create_table("web.timed", data.schema, partition_by=["day(ts)"]).append(data)
    result = lake.sql(
        "select id, ts from web.timed where ts >= ? order by id", [dt.datetime(2024, 1, 2)]
    )
    assert [r[0] for r in result.rows()] == [2, 3, 4, 5]
    assert result.schema.names == ["id", "ts"]


_RICH_FIELDS: list[pa.Field[Any]] = [
    pa.field("i8", pa.int8()),
    pa.field("u32", pa.uint32()),
    pa.field("f32", pa.float32()),
    pa.field("flag", pa.bool_()),
    pa.field("price", pa.decimal128(12, 3)),
    pa.field("text", pa.large_string()),
    pa.field("blob", pa.binary()),
    pa.field("day", pa.date32()),
    pa.field("at", pa.timestamp("us", tz="UTC")),
    pa.field("at_ns", pa.timestamp("ns")),
    pa.field("tags", pa.list_(pa.string())),
    pa.field("point", pa.struct([("x", pa.float64()), ("y", pa.float64())])),
    pa.field("region", pa.string()),
]
RICH = pa.schema(_RICH_FIELDS)


def test_a_uniform_view_has_the_types_and_values_of_a_mapped_view(lake: Lake) -> None:
    data = pa.table(
        [
            pa.array([1, -2], pa.int8()),
            pa.array([7, 4_000_000_000], pa.uint32()),
            pa.array([1.5, None], pa.float32()),
            pa.array([True, False]),
            pa.array([decimal.Decimal("1.250"), decimal.Decimal("-3.000")], pa.decimal128(12, 3)),
            pa.array(["é", None], pa.large_string()),
            pa.array([b"\x00\x01", b""]),
            pa.array([DAYS[0], DAYS[1]], pa.date32()),
            pa.array([dt.datetime(2024, 1, 1, tzinfo=dt.UTC), None], pa.timestamp("us", tz="UTC")),
            pa.array([1, 2], pa.timestamp("ns")),
            pa.array([["a", "b"], []], pa.list_(pa.string())),
            pa.array([{"x": 1.0, "y": 2.0}, None], RICH.field("point").type),
            pa.array(["eu", "us"]),
        ],
        schema=RICH,
    )
    table = lake.create_table("web.rich", RICH, partition_by=["region"])
    table.append(data)
    # The same files through a plain catalog entry: a listed table, hence the mapped form.
    lake.catalog.create_table(
        "web.rich_mapped", RICH, partition_by=["region"], location=table.location
    )
    uniform = lake.sql("select * from web.rich order by i8")
    mapped = lake.sql("select * from web.rich_mapped order by i8")
    assert "schema.parquet" in _view_sql(lake, "web", "rich")
    assert _has_schema_map(_view_sql(lake, "web", "rich_mapped"))
    assert uniform.schema == mapped.schema
    assert uniform.to_arrow().equals(mapped.to_arrow())
    assert uniform.to_arrow().num_rows == 2


def test_adopted_files_with_different_columns_read_as_one_table(lake: Lake) -> None:
    for name, data in [
        ("old", pa.table({"id": pa.array([1], pa.int32())})),
        ("new", pa.table({"id": pa.array([2], pa.int64()), "note": ["x"]})),
    ]:
        buffer = io.BytesIO()
        pq.write_table(data, buffer)
        lake.store.put(f"raw/{name}.parquet", buffer.getvalue())
    lake.register_table("web.adopted", "raw")
    assert lake.sql("select id, note from web.adopted order by id").rows() == [(1, None), (2, "x")]


# -- steady state ----------------------------------------------------------------------------------
def test_repeated_queries_run_no_ddl_until_a_commit(
    lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = _daily(lake)
    assert lake.sql("select count(*) from web.daily").scalar() == 15
    ddl = _count_ddl(monkeypatch, _engine(lake))
    for day in DAYS:
        assert lake.sql("select count(*) from web.daily where dt = ?", [day]).scalar() == 5
    assert ddl == []
    table.append(events([77], DAYS[0]))
    assert lake.sql("select count(*) from web.daily").scalar() == 16
    assert len(ddl) == 2  # CREATE SCHEMA IF NOT EXISTS, CREATE OR REPLACE VIEW
    assert lake.sql("select count(*) from web.daily").scalar() == 16
    assert len(ddl) == 2


def test_a_re_created_table_at_the_same_version_gets_a_new_view(lake: Lake) -> None:
    _daily(lake)
    assert lake.sql("select count(*) from web.daily").scalar() == 15
    before = lake.catalog.load_table("web.daily").version
    lake.catalog.drop_table("web.daily")
    other = lake.create_table("web.daily", pa.schema([("word", pa.string())]))
    other.append(pa.table({"word": ["again"]}))
    assert lake.catalog.load_table("web.daily").version == before
    assert lake.sql("select * from web.daily").rows() == [("again",)]


# -- schema files ----------------------------------------------------------------------------------
def _schema_file(lake: Lake) -> str:
    state = _engine(lake)._views[("web", "daily")]
    assert state.schema_file is not None
    return state.schema_file


def test_a_deleted_schema_file_is_written_again(lake: Lake) -> None:
    _daily(lake)
    assert lake.sql("select count(*) from web.daily").scalar() == 15
    path = _schema_file(lake)
    os.remove(path)  # e.g. a temporary-directory cleaner
    assert lake.sql("select count(*) from web.daily where dt = ?", [DAYS[1]]).scalar() == 5
    assert os.path.isfile(path)


def test_closing_an_in_memory_engine_removes_its_schema_files(lake: Lake) -> None:
    _daily(lake)
    assert lake.sql("select count(*) from web.daily").scalar() == 15
    path = Path(_schema_file(lake))
    lake.engine.close()
    assert not path.exists()
    assert not any(
        parent.name.startswith("lakekit-duckdb-") and parent.exists() for parent in path.parents
    )


def test_a_persistent_database_keeps_its_schema_files_beside_it(tmp_path: Path) -> None:
    database = tmp_path / "engine.duckdb"
    url = f"local://{tmp_path / 'lake'}"
    with lakekit.connect(url, engine=f"duckdb://{database}") as lake:
        _daily(lake)
        assert lake.sql("select count(*) from web.daily").scalar() == 15
        path = Path(_schema_file(lake))
    assert path.is_file()
    assert path.is_relative_to(tmp_path / "engine.duckdb.lakekit-schemas")
    with lakekit.connect(url, engine=f"duckdb://{database}") as lake:
        assert lake.sql("select count(*) from web.daily where dt = ?", [DAYS[2]]).scalar() == 5
