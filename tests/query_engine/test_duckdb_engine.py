"""DuckDBEngine behaviour beyond the generic conformance suite: configuration, how catalog
tables map to views (pruning, escaping, file selection), streaming, offline operation."""

from __future__ import annotations

import datetime as dt
import io
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import duckdb
import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import lakekit
from lakekit.adapters.duckdb.query_engine import DuckDBEngine, database_from_url
from lakekit.adapters.sql.catalog import SqlCatalog
from lakekit.errors import (
    ConfigurationError,
    InvalidInputError,
    NotFoundError,
    NotSupportedError,
    QueryError,
)
from lakekit.interfaces.catalog import Catalog
from lakekit.interfaces.object_store import (
    ListResult,
    ObjectMeta,
    ObjectStore,
    ObjectStoreAdapter,
    PutData,
    PutMode,
    as_chunks,
)
from lakekit.interfaces.query_engine import QueryEngine
from lakekit.lake import Lake
from lakekit.testing.query_engine_suite import append_files, create_table_with_data, events

DAYS = [dt.date(2024, 1, 1), dt.date(2024, 1, 2), dt.date(2024, 1, 3)]


@pytest.fixture
def lake(tmp_path: Path) -> Iterator[Lake]:
    with lakekit.connect(f"local://{tmp_path / 'lake'}", store={"fsync": False}) as opened:
        yield opened


def _daily_data() -> pa.Table:
    return pa.concat_tables([events(range(10 * n, 10 * n + 5), day) for n, day in enumerate(DAYS)])


@pytest.fixture
def daily(lake: Lake) -> lakekit.TableMetadata:
    """``web.daily``: 5 rows on each of three days, partitioned by ``dt`` (a listed table: plain
    catalog entry, files written into its location)."""
    return create_table_with_data(lake, "web.daily", _daily_data(), partition_by=["dt"])


@pytest.fixture
def lake_daily(lake: Lake) -> lakekit.TableMetadata:
    """The same ``web.daily`` as a lake table (snapshots: the engine reads its committed files
    and binds its view on a schema file)."""
    lake.create_table("web.daily", _daily_data().schema, partition_by=["dt"]).append(_daily_data())
    return lake.catalog.load_table("web.daily")


@pytest.fixture(params=["listed", "lake"])
def any_daily(request: pytest.FixtureRequest) -> lakekit.TableMetadata:
    """``web.daily`` as each kind of table: the engine must behave the same on both."""
    table: lakekit.TableMetadata = request.getfixturevalue(
        "daily" if request.param == "listed" else "lake_daily"
    )
    return table


def _files_of_day(lake: Lake, table: lakekit.TableMetadata, day: dt.date) -> list[str]:
    return lake.store.list_keys(f"{table.location}/dt={day.isoformat()}/")


# -- configuration ---------------------------------------------------------------------------------
def test_lake_engine_is_duckdb_configured_from_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAKEKIT_ENGINE_THREADS", "1")
    monkeypatch.setenv("LAKEKIT_ENGINE_MEMORY_LIMIT", "256MB")
    monkeypatch.setenv("LAKEKIT_ENGINE_TEMP_DIRECTORY", str(tmp_path / "spill"))
    with lakekit.connect(f"local://{tmp_path / 'lake'}") as lake:
        assert isinstance(lake.engine.adapter, DuckDBEngine)
        settings = lake.sql(
            "select current_setting('threads'), current_setting('memory_limit'), "
            "current_setting('temp_directory')"
        ).rows()
    threads, memory, temp = settings[0]
    assert threads == 1
    assert memory.startswith(("256.0 MB", "244.1 MiB"))
    assert temp == str(tmp_path / "spill")


def test_unknown_engine_setting_is_a_configuration_error(tmp_path: Path) -> None:
    with (
        lakekit.connect(f"local://{tmp_path / 'lake'}", engine={"thread": 2}) as lake,
        pytest.raises(ConfigurationError, match="thread"),
    ):
        _ = lake.engine


@pytest.mark.parametrize(
    ("url", "database"),
    [
        ("duckdb", ":memory:"),
        ("duckdb://", ":memory:"),
        ("duckdb://:memory:", ":memory:"),
        ("duckdb:///var/data/lake.duckdb", "/var/data/lake.duckdb"),
        ("duckdb://relative/lake.duckdb", "relative/lake.duckdb"),
    ],
)
def test_database_url_forms(url: str, database: str) -> None:
    assert database_from_url(url) == database


def test_non_duckdb_url_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="not a DuckDB engine URL"):
        database_from_url("postgresql://user:secret@host/db")


def test_persistent_database_keeps_duckdb_tables(tmp_path: Path) -> None:
    path = tmp_path / "engine.duckdb"
    with lakekit.connect(f"local://{tmp_path / 'lake'}", engine=f"duckdb://{path}") as lake:
        lake.sql("create table notes as select 1 as id, 'kept' as text").to_arrow()
    assert path.is_file()
    engine = QueryEngine(DuckDBEngine(database=path))
    try:
        assert engine.sql("select id, text from notes").rows() == [(1, "kept")]
    finally:
        engine.close()


def test_catalog_is_not_opened_until_a_query_names_a_table(tmp_path: Path) -> None:
    with lakekit.connect(f"local://{tmp_path / 'lake'}", catalog="nosuch://catalog") as lake:
        assert lake.sql("select 42").scalar() == 42
        assert lake.sql("select count(*) from range(3)").scalar() == 3
        with pytest.raises(ConfigurationError, match="nosuch"):
            lake.sql("select * from web.daily")


def test_rejected_duckdb_setting_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="memory"):
        DuckDBEngine(memory_limit="plenty")


def test_closed_engine_refuses_queries() -> None:
    engine = QueryEngine(DuckDBEngine())
    engine.close()
    engine.close()  # idempotent
    with pytest.raises(QueryError, match="this DuckDBEngine is closed"):
        engine.sql("select 1")


# -- errors ----------------------------------------------------------------------------------------
def test_duckdb_errors_are_chained_under_query_error() -> None:
    engine = QueryEngine(DuckDBEngine())
    try:
        with pytest.raises(QueryError) as info:
            engine.sql("select no_such_function(1)")
        assert isinstance(info.value.__cause__, duckdb.Error)
        assert "no_such_function" in str(info.value)
    finally:
        engine.close()


def test_more_than_one_statement_is_refused(lake: Lake) -> None:
    with pytest.raises(InvalidInputError, match="exactly one SQL statement"):
        lake.sql("select 1; select 2")
    with pytest.raises(InvalidInputError, match="exactly one SQL statement"):
        lake.sql("create table a (x int); drop table a")


def test_missing_table_without_catalog_names_it() -> None:
    engine = QueryEngine(DuckDBEngine())
    try:
        with pytest.raises(NotFoundError, match=r"sales\.orders"):
            engine.sql("select * from sales.orders")
    finally:
        engine.close()


def test_table_in_an_unsupported_format_is_not_supported(lake: Lake) -> None:
    lake.catalog.create_table("raw.lines", pa.schema([("line", pa.string())]), format="csv")
    with pytest.raises(NotSupportedError, match="csv"):
        lake.sql("select * from raw.lines")


# -- names -----------------------------------------------------------------------------------------
def test_table_names_are_case_insensitive(lake: Lake, daily: lakekit.TableMetadata) -> None:
    assert lake.sql("SELECT COUNT(*) FROM WEB.DAILY").scalar() == 15
    assert lake.sql('select count(*) from "web"."daily"').scalar() == 15


def test_duckdb_objects_with_two_part_names_still_resolve(lake: Lake) -> None:
    lake.sql("create schema scratch").to_arrow()
    lake.sql("create table scratch.numbers as select * from range(4) t(n)").to_arrow()
    assert lake.sql("select sum(n) from scratch.numbers").scalar() == 6
    tables = lake.sql(
        "select table_name from information_schema.tables where table_schema = ?", ["scratch"]
    ).rows()
    assert tables == [("numbers",)]


def test_explain_and_describe_resolve_catalog_tables(
    lake: Lake, daily: lakekit.TableMetadata
) -> None:
    described = lake.sql("describe web.daily").to_pylist()
    assert [(r["column_name"], r["column_type"]) for r in described] == [
        ("id", "BIGINT"),
        ("name", "VARCHAR"),
        ("amount", "DOUBLE"),
        ("dt", "DATE"),
    ]
    plan = lake.sql("explain select * from web.daily where dt = ?", [DAYS[0]]).rows()
    assert "READ_PARQUET" in plan[0][1]


def test_statements_other_than_select_can_read_catalog_tables(
    lake: Lake, daily: lakekit.TableMetadata, tmp_path: Path
) -> None:
    lake.sql("create schema scratch").to_arrow()
    lake.sql(
        "create table scratch.first_day as select d.id from web.daily d where d.dt = ?", [DAYS[0]]
    ).to_arrow()
    assert lake.sql("select count(*) from scratch.first_day").scalar() == 5
    target = tmp_path / "export.parquet"
    lake.sql(f"copy (select * from web.daily where dt > ?) to '{target}'", [DAYS[0]]).to_arrow()
    assert pq.read_table(target).num_rows == 10


def test_dropped_and_recreated_table_reads_the_new_files(lake: Lake) -> None:
    first = create_table_with_data(lake, "web.cycle", events([1, 2], DAYS[0]))
    assert lake.sql("select count(*) from web.cycle").scalar() == 2
    lake.catalog.drop_table(first.ident)
    lake.store.delete_prefix(first.location + "/")
    with pytest.raises(NotFoundError):
        lake.sql("select count(*) from web.cycle")
    create_table_with_data(lake, "web.cycle", events([7], DAYS[1]))
    assert lake.sql("select id from web.cycle").rows() == [(7,)]


# -- partitions and pruning ------------------------------------------------------------------------
def test_filter_on_partition_column_opens_no_other_partition(
    lake: Lake, any_daily: lakekit.TableMetadata
) -> None:
    # Corrupt the first day's file: the bind step must not read it (the view names its schema,
    # or binds on a schema file), and a filter on dt must prune it before any read.
    assert lake.sql("select count(*) from web.daily").scalar() == 15
    for key in _files_of_day(lake, any_daily, DAYS[0]):
        lake.store.put(key, b"this is not parquet")
    filtered = lake.sql("select count(*), sum(id) from web.daily where dt = ?", [DAYS[2]])
    assert filtered.rows() == [(5, sum(range(20, 25)))]
    later = lake.sql("select count(*) from web.daily where dt > ?", [DAYS[0]]).scalar()
    assert later == 10
    with pytest.raises(QueryError):
        lake.sql("select count(*), sum(id) from web.daily").to_arrow()


def test_explain_analyze_reads_only_the_matching_partition(
    lake: Lake, any_daily: lakekit.TableMetadata
) -> None:
    plan = lake.sql(
        "explain analyze select count(*) from web.daily where dt = ?", [DAYS[1]]
    ).rows()[0][1]
    assert "Total Files Read: 1" in plan
    assert "dt=2024-01-02" in plan
    assert "dt=2024-01-01" not in plan


@pytest.mark.parametrize("kind", ["listed", "lake"])
def test_partition_column_types_come_from_the_catalog(lake: Lake, kind: str) -> None:
    data = pa.table(
        {
            "id": pa.array([1, 2, 3], pa.int64()),
            "code": ["007", "010", "007"],  # a string partition that looks like a number
            "bucket": pa.array([1, 2, 1], pa.int32()),
        }
    )
    if kind == "listed":
        create_table_with_data(lake, "web.codes", data, partition_by=["code", "bucket"])
    else:
        lake.create_table("web.codes", data.schema, partition_by=["code", "bucket"]).append(data)
    result = lake.sql("select code, bucket, id from web.codes order by id")
    assert result.rows() == [("007", 1, 1), ("010", 2, 2), ("007", 1, 3)]
    assert result.schema.field("bucket").type == pa.int32()
    assert lake.sql("select count(*) from web.codes where code = ?", ["007"]).scalar() == 2


# -- which files a table reads ---------------------------------------------------------------------
def test_hidden_temporary_and_foreign_files_are_ignored(
    lake: Lake, daily: lakekit.TableMetadata
) -> None:
    garbage = b"not parquet at all"
    location = daily.location
    for key in (
        f"{location}/_temporary/0/part-x.parquet",
        f"{location}/dt=2024-01-01/_SUCCESS",
        f"{location}/dt=2024-01-01/.part-x.parquet",
        f"{location}/dt=2024-01-01/part-x.parquet.crc",
        f"{location}/notes.txt",
        f"{location}_other/dt=2024-01-01/part-x.parquet",  # a sibling prefix, not this table
    ):
        lake.store.put(key, garbage)
    assert lake.sql("select count(*) from web.daily").scalar() == 15


def test_removed_files_are_no_longer_read(lake: Lake, daily: lakekit.TableMetadata) -> None:
    assert lake.sql("select count(*) from web.daily").scalar() == 15
    lake.store.delete(_files_of_day(lake, daily, DAYS[0]))
    assert lake.sql("select count(*) from web.daily").scalar() == 10


def test_file_path_with_single_quote_is_read(lake: Lake) -> None:
    table = lake.catalog.create_table(
        "web.quoted", events([], DAYS[0]).schema, location="tables/o'brien's data/quoted"
    )
    append_files(lake, table, events([1, 2, 3], DAYS[0]))
    assert lake.sql("select sum(id) from web.quoted").scalar() == 6


def test_sql_in_a_table_location_is_inert(lake: Lake) -> None:
    bystander = create_table_with_data(lake, "web.bystander", events([1], DAYS[0]))
    assert lake.sql("select count(*) from web.bystander").scalar() == 1
    evil = "tables/x'], hive_partitioning = false); drop view web.bystander; --/t"
    table = lake.catalog.create_table("web.evil", events([], DAYS[0]).schema, location=evil)
    append_files(lake, table, events([5], DAYS[0]))
    assert lake.sql("select id from web.evil").rows() == [(5,)]
    assert lake.sql("select count(*) from web.bystander").scalar() == 1
    assert lake.catalog.table_exists(bystander.ident)


def test_file_name_with_glob_character_is_refused(lake: Lake) -> None:
    table = create_table_with_data(lake, "web.globbed", events([1], DAYS[0]))
    buffer = io.BytesIO()
    pq.write_table(events([2], DAYS[0]), buffer)
    lake.store.put(f"{table.location}/part[1].parquet", buffer.getvalue())
    with pytest.raises(QueryError, match=r"part\[1\]\.parquet"):
        lake.sql("select count(*) from web.globbed")


def test_new_nullable_column_reads_null_from_older_files(lake: Lake) -> None:
    old = pa.table({"id": pa.array([1, 2], pa.int32())})
    table = lake.catalog.create_table("web.evolving", pa.schema([("id", pa.int64())]))
    append_files(lake, table, old)  # int32 data in an int64 column: widened on read
    widened: list[pa.Field[Any]] = [pa.field("id", pa.int64()), pa.field("note", pa.string())]
    table = lake.catalog.evolve_schema(table.ident, pa.schema(widened))
    append_files(lake, table, pa.table({"id": pa.array([3], pa.int64()), "note": ["new"]}))
    result = lake.sql("select id, note from web.evolving order by id")
    assert result.rows() == [(1, None), (2, None), (3, "new")]
    assert result.schema.field("id").type == pa.int64()


# -- results, streaming, cancellation --------------------------------------------------------------
def _drain(batches: Iterator[pa.RecordBatch], seconds: float = 60) -> int:
    deadline = time.monotonic() + seconds
    rows = 0
    for batch in batches:
        rows += batch.num_rows
        assert time.monotonic() < deadline, "the stream was not interrupted"
    return rows


def test_first_batch_arrives_before_the_query_finishes() -> None:
    engine = QueryEngine(DuckDBEngine())
    try:
        # The last row fails: a result that materialised before returning would raise at once.
        result = engine.sql(
            "select case when i = 9999999 then error('failed at the last row') else i end as i "
            "from range(10000000) t(i)"
        )
        batches = result.batches()
        first = next(batches)
        assert 0 < first.num_rows < 10_000_000
        with pytest.raises(QueryError, match="failed at the last row"):
            _drain(batches)
    finally:
        engine.close()


def test_cancel_stops_a_result_that_is_being_streamed() -> None:
    engine = QueryEngine(DuckDBEngine(threads=1))
    try:
        result = engine.sql(
            "select a.i, b.i as j from range(100000) a(i) cross join range(100000) b(i)"
        )
        batches = result.batches()
        next(batches)
        threading.Thread(target=engine.cancel).start()
        with pytest.raises(QueryError):
            _drain(batches)
        assert engine.sql("select 1").scalar() == 1
    finally:
        engine.close()


def test_unread_results_do_not_block_other_queries(
    lake: Lake, daily: lakekit.TableMetadata
) -> None:
    pending = [lake.sql("select * from web.daily") for _ in range(20)]
    assert lake.sql("select count(*) from web.daily").scalar() == 15
    assert all(p.to_arrow().num_rows == 15 for p in pending[:3])
    del pending


def test_timestamps_with_time_zone_come_back_in_utc() -> None:
    engine = QueryEngine(DuckDBEngine())
    try:
        value = engine.sql("select timestamptz '2024-01-01 12:00:00+02'").scalar()
        assert value == dt.datetime(2024, 1, 1, 10, 0, tzinfo=dt.UTC)
        assert value.utcoffset() == dt.timedelta(0)
    finally:
        engine.close()


# -- offline and isolated --------------------------------------------------------------------------
def test_extensions_are_never_installed_or_loaded_on_demand() -> None:
    engine = QueryEngine(DuckDBEngine())
    try:
        settings = engine.sql(
            "select current_setting('autoinstall_known_extensions'), "
            "current_setting('autoload_known_extensions')"
        ).rows()
        assert settings == [(False, False)]
        started = time.monotonic()
        with pytest.raises(QueryError, match="httpfs"):
            engine.sql("select * from read_csv('https://127.0.0.1:9/data.csv')")
        assert time.monotonic() - started < 5
    finally:
        engine.close()


def test_python_variables_are_not_readable_from_sql() -> None:
    engine = QueryEngine(DuckDBEngine())
    secret_frame = pa.table({"password": ["hunter2"]})
    try:
        with pytest.raises(QueryError):
            engine.sql("select * from secret_frame")
    finally:
        engine.close()
    assert secret_frame.num_rows == 1


# -- a non-local store: files read through its fsspec filesystem -----------------------------------
class MemoryStore(ObjectStoreAdapter):
    """A minimal object store on fsspec's in-memory filesystem, addressed as ``memory://``."""

    def __init__(self) -> None:
        self.fs = fsspec.filesystem("memory")
        self.root = f"/lake-{uuid.uuid4().hex}"

    def _path(self, key: str) -> str:
        return f"{self.root}/{key}"

    def put(self, key: str, data: PutData, mode: PutMode) -> ObjectMeta:
        self.fs.pipe_file(self._path(key), b"".join(as_chunks(data)))
        return self.head(key)

    def open(self, key: str, start: int = 0, end: int | None = None) -> IO[bytes]:
        data = self.fs.cat_file(self._path(key), start=start, end=end)
        return io.BytesIO(data)

    def head(self, key: str) -> ObjectMeta:
        info = self.fs.info(self._path(key))
        return ObjectMeta(key, info["size"], str(info["size"]), dt.datetime.now(dt.UTC))

    def list(self, prefix: str) -> Iterator[ObjectMeta]:
        paths = sorted(self.fs.find(self.root))
        for path in paths:
            key = path.removeprefix(self.root + "/")
            if key.startswith(prefix):
                yield self.head(key)

    def list_with_delimiter(self, prefix: str) -> ListResult:
        raise NotImplementedError

    def delete(self, keys: Any) -> None:
        for key in keys:
            self.fs.rm_file(self._path(key))

    def copy(self, src: str, dst: str, *, overwrite: bool = True) -> ObjectMeta:
        raise NotImplementedError

    def url(self, key: str, *, expires_in: float | None = None, method: str = "GET") -> str:
        raise NotImplementedError

    def uri(self, key: str) -> str:
        return f"memory://{self._path(key).lstrip('/')}"

    def fsspec_filesystem(self) -> tuple[fsspec.AbstractFileSystem, str]:
        return self.fs, self.root

    def close(self) -> None:
        self.fs.rm(self.root, recursive=True)


def test_tables_on_a_non_local_store_are_read_through_fsspec(tmp_path: Path) -> None:
    store = ObjectStore(MemoryStore())
    catalog = Catalog(SqlCatalog(f"sqlite:///{tmp_path / 'catalog.db'}"))
    engine = QueryEngine(DuckDBEngine(catalog=catalog, store=store))
    try:
        schema = events([], DAYS[0]).schema
        table = catalog.create_table("remote.daily", schema, partition_by=["dt"])
        for n, day in enumerate(DAYS):
            buffer = io.BytesIO()
            pq.write_table(events([n, n + 10], day).drop_columns(["dt"]), buffer)
            store.put(f"{table.location}/dt={day.isoformat()}/part-0.parquet", buffer.getvalue())
        assert engine.sql("select count(*) from remote.daily").scalar() == 6
        assert (
            engine.sql("select sum(id) from remote.daily where dt = ?", [DAYS[2]]).scalar()
            == 2 + 12
        )
    finally:
        engine.close()
        catalog.close()
        store.close()
