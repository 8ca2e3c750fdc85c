"""Conformance suite for QueryEngine adapters.

Subclass :class:`QueryEngineSuite` and override ``engine_factory`` with a picklable callable
that builds your adapter *for a lake*: ``factory(lake) -> QueryEngineAdapter``. An engine needs
a catalog and a store holding the tables it queries, so the suite creates them (fixture
``lake``, by default a fresh local lake in ``tmp_path``) and hands the lake to your factory::

    import functools
    import pytest
    from lakekit.testing import QueryEngineSuite
    from my_package.engine import MyEngine, MyEngineSettings

    class TestMyEngine(QueryEngineSuite):
        @pytest.fixture
        def engine_factory(self):
            return functools.partial(MyEngine.from_settings, MyEngineSettings(url="my://"))

An engine bound to a cloud catalog and store overrides ``lake`` too (yield an open
``lakekit.Lake`` whose catalog and store the engine reads). Dialect-specific statements are
class attributes (``long_running_sql``, ``large_result_sql``, ...) that a subclass may replace.

Every test creates its tables in its own namespace (``qe_<uuid>``) and drops them and deletes
their files afterwards. Optional behaviours are gated on the adapter's declared capabilities:
where one is absent the suite asserts NotSupportedError (or, for CATALOG_TABLES, that naming a
catalog table fails with a lakekit error) instead of skipping.
"""

from __future__ import annotations

import datetime as dt
import io
import multiprocessing
import pickle
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lakekit.capabilities import Capability
from lakekit.errors import (
    InvalidInputError,
    NotFoundError,
    NotSupportedError,
    QueryError,
)
from lakekit.identifiers import TableIdent
from lakekit.interfaces.catalog import TableMetadata, TableUpdate
from lakekit.interfaces.query_engine import QueryEngine, QueryEngineAdapter, QueryResult

if TYPE_CHECKING:
    from lakekit.lake import Lake

__all__ = ["EngineFactory", "QueryEngineSuite", "append_files", "create_table_with_data"]

EngineFactory = Callable[["Lake"], QueryEngineAdapter]
"""What ``engine_factory`` returns: a picklable callable building the adapter for a lake."""

_INJECTION = "x'); drop table {table}; --"

_EVENT_COLUMNS: list[tuple[str, pa.DataType]] = [
    ("id", pa.int64()),
    ("name", pa.string()),
    ("amount", pa.float64()),
    ("dt", pa.date32()),
]
EVENTS_SCHEMA = pa.schema(_EVENT_COLUMNS)


# -- helpers (module level so they pickle into child processes) ------------------------------------
def create_table_with_data(
    lake: Lake,
    name: str | TableIdent,
    data: pa.Table,
    *,
    partition_by: Sequence[str] = (),
    schema: pa.Schema | None = None,
) -> TableMetadata:
    """Register a table in the lake's catalog and write ``data`` as Parquet into its location.

    Partitioned tables get one file per partition under Hive-style ``col=value/`` directories,
    with the partition columns left out of the file (as Hive, Spark and lakekit writers do).
    """
    table = lake.catalog.create_table(
        name, schema or data.schema, partition_by=list(partition_by) or None
    )
    if data.num_rows:
        append_files(lake, table, data)
    return table


def append_files(lake: Lake, table: TableMetadata, data: pa.Table) -> list[str]:
    """Write ``data`` into ``table``'s location as new Parquet files; return their keys.

    Files are written whole (``put`` is atomic); the catalog is not touched, see
    :func:`commit_files`.
    """
    partition_columns = [f.source for f in table.partition_spec.fields]
    keys = []
    if not partition_columns:
        keys.append(_put_parquet(lake, f"{table.location}/part-{uuid.uuid4().hex}.parquet", data))
        return keys
    groups: dict[tuple[Any, ...], list[int]] = {}
    for index, row in enumerate(data.select(partition_columns).to_pylist()):
        groups.setdefault(tuple(row[c] for c in partition_columns), []).append(index)
    for values, indices in sorted(groups.items()):
        directory = "/".join(
            f"{col}={_partition_text(value)}"
            for col, value in zip(partition_columns, values, strict=True)
        )
        part = data.take(pa.array(indices)).drop_columns(partition_columns)
        key = f"{table.location}/{directory}/part-{uuid.uuid4().hex}.parquet"
        keys.append(_put_parquet(lake, key, part))
    return keys


def commit_files(lake: Lake, table: TableMetadata, keys: Sequence[str]) -> TableMetadata:
    """Record new files in the catalog: one commit (version + 1) noting them in a property."""
    current = lake.catalog.load_table(table.ident)
    note = {"lakekit.test.last_files": ",".join(k.rsplit("/", 1)[-1] for k in keys)}
    return lake.catalog.commit(table.ident, current.version, TableUpdate(set_properties=note))


def _put_parquet(lake: Lake, key: str, data: pa.Table) -> str:
    buffer = io.BytesIO()
    pq.write_table(data, buffer)
    lake.store.put(key, buffer.getvalue())
    return key


def _partition_text(value: Any) -> str:
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    return str(value)


def events(ids: Sequence[int], day: dt.date) -> pa.Table:
    """Rows of the suite's small ``events`` shape, all on ``day``."""
    return pa.table(
        {
            "id": pa.array(ids, pa.int64()),
            "name": [f"event-{i}" for i in ids],
            "amount": [i * 1.5 for i in ids],
            "dt": pa.array([day] * len(ids), pa.date32()),
        },
        schema=EVENTS_SCHEMA,
    )


def _query_in_child(factory: EngineFactory, lake_url: str, sql: str) -> list[tuple[Any, ...]]:
    import lakekit

    with lakekit.connect(lake_url) as lake:
        engine = QueryEngine(factory(lake))
        try:
            return engine.sql(sql).rows()
        finally:
            engine.close()


# -- the suite -------------------------------------------------------------------------------------
class QueryEngineSuite:
    """Behaviour every QueryEngine adapter must show. Override ``engine_factory``."""

    long_running_sql: ClassVar[str] = (
        "select sum(a.i * b.i) from range(1000000) a(i) cross join range(1000000) b(i)"
    )
    """A statement that runs for well over ten seconds (cancelled by the CANCEL test)."""
    large_result_sql: ClassVar[str] = "select i, i * 2 as j from range(3000000) t(i)"
    large_result_rows: ClassVar[int] = 3_000_000
    runtime_error_sql: ClassVar[str] = "select cast('not a number' as integer)"
    """A statement that parses and binds but fails while running."""

    # -- fixtures ---------------------------------------------------------------------------------
    @pytest.fixture
    def engine_factory(self) -> EngineFactory:
        raise NotImplementedError(
            "override the engine_factory fixture: return a picklable callable "
            "factory(lake) -> QueryEngineAdapter, e.g. functools.partial(MyEngine.from_settings, "
            "MyEngineSettings(...))"
        )

    @pytest.fixture
    def lake(self, tmp_path: Path) -> Iterator[Lake]:
        """The lake whose catalog and store the engine reads: a local lake by default."""
        import lakekit

        with lakekit.connect(f"local://{tmp_path / 'lake'}", store={"fsync": False}) as opened:
            yield opened

    @pytest.fixture
    def engine(self, engine_factory: EngineFactory, lake: Lake) -> Iterator[QueryEngine]:
        engine = QueryEngine(engine_factory(lake))
        yield engine
        engine.close()

    @pytest.fixture
    def namespace(self, lake: Lake) -> Iterator[str]:
        """A fresh namespace; its tables and their files are removed afterwards."""
        name = f"qe_{uuid.uuid4().hex[:12]}"
        yield name
        if not lake.catalog.namespace_exists(name):
            return
        for ident in lake.catalog.list_tables(name):
            location = lake.catalog.load_table(ident).location
            lake.catalog.drop_table(ident, missing_ok=True)
            lake.store.delete_prefix(location + "/")
        lake.catalog.drop_namespace(name)

    # -- capability helpers -----------------------------------------------------------------------
    @staticmethod
    def _has(engine: QueryEngine, capability: Capability) -> bool:
        return capability in engine.capabilities

    def _catalog_query(self, engine: QueryEngine, sql: str, params: Any = None) -> QueryResult:
        """Run ``sql`` over catalog tables, or show that it fails where CATALOG_TABLES is absent."""
        if not self._has(engine, Capability.CATALOG_TABLES):
            with pytest.raises((NotFoundError, QueryError, NotSupportedError)):
                engine.sql(sql, params)
            pytest.skip("the adapter does not declare CATALOG_TABLES (checked that it fails)")
        return engine.sql(sql, params)

    # -- basics -----------------------------------------------------------------------------------
    def test_engine_factory_pickles(self, engine_factory: EngineFactory) -> None:
        restored = pickle.loads(pickle.dumps(engine_factory))
        assert callable(restored)

    def test_select_literals_returns_rows_and_column_names(self, engine: QueryEngine) -> None:
        result = engine.sql("select 1 as one, 'two' as two, cast(null as integer) as nothing")
        assert result.schema.names == ["one", "two", "nothing"]
        assert result.rows() == [(1, "two", None)]

    def test_empty_or_non_string_query_is_invalid_input(self, engine: QueryEngine) -> None:
        with pytest.raises(InvalidInputError):
            engine.sql("   ")
        with pytest.raises(InvalidInputError):
            engine.sql(b"select 1")  # type: ignore[arg-type]

    # -- parameters -------------------------------------------------------------------------------
    def test_positional_parameters_are_bound(self, engine: QueryEngine) -> None:
        if not self._has(engine, Capability.BOUND_PARAMETERS):
            with pytest.raises(NotSupportedError):
                engine.sql("select ? as a", [1])
            return
        assert engine.sql("select ? as a, ? as b", [1, "x"]).rows() == [(1, "x")]
        assert engine.sql("select $2 as a, $1 as b", ("first", "second")).rows() == [
            ("second", "first")
        ]

    def test_named_parameters_are_bound(self, engine: QueryEngine) -> None:
        if not self._has(engine, Capability.BOUND_PARAMETERS):
            with pytest.raises(NotSupportedError):
                engine.sql("select $a as a", {"a": 1})
            return
        result = engine.sql("select $name as n, $count + 1 as c", {"name": "ann", "count": 41})
        assert result.to_pylist() == [{"n": "ann", "c": 42}]

    @pytest.mark.parametrize(
        "value",
        [
            None,
            True,
            -(2**62),
            0.25,
            "héllo wörld ✓ 日本語 🚀",
            "",
            'it\'s "quoted" \\ back\\slash',
            dt.date(2024, 2, 29),
            dt.datetime(2024, 1, 2, 3, 4, 5, 678901),
            dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
            Decimal("12345.6789"),
        ],
        ids=lambda v: type(v).__name__,
    )
    def test_parameter_values_round_trip(self, engine: QueryEngine, value: Any) -> None:
        if not self._has(engine, Capability.BOUND_PARAMETERS):
            with pytest.raises(NotSupportedError):
                engine.sql("select ? as v", [value])
            return
        returned = engine.sql("select ? as v", [value]).scalar()
        assert returned == value
        assert type(returned) is type(value)

    def test_null_parameter_is_sql_null(self, engine: QueryEngine) -> None:
        if not self._has(engine, Capability.BOUND_PARAMETERS):
            pytest.skip("BOUND_PARAMETERS absent (checked by test_positional_parameters_are_bound)")
        assert engine.sql("select ? is null as isnull", [None]).scalar() is True
        assert (
            engine.sql("select count(*) as n from (select 1 as x) t where x = ?", [None]).scalar()
            == 0
        )

    def test_injection_attempt_in_a_parameter_is_inert(
        self, engine: QueryEngine, lake: Lake, namespace: str
    ) -> None:
        if not self._has(engine, Capability.BOUND_PARAMETERS):
            pytest.skip("BOUND_PARAMETERS absent (checked by test_positional_parameters_are_bound)")
        table = create_table_with_data(
            lake, f"{namespace}.victim", events([1, 2], dt.date(2024, 1, 1))
        )
        evil = _INJECTION.format(table=table.ident)
        assert engine.sql("select ? as v", [evil]).scalar() == evil
        if self._has(engine, Capability.CATALOG_TABLES):
            found = engine.sql(f"select count(*) as n from {table.ident} where name = ?", [evil])
            assert found.scalar() == 0
            assert engine.sql(f"select count(*) as n from {table.ident}").scalar() == 2
        assert lake.catalog.table_exists(table.ident)

    # -- errors -----------------------------------------------------------------------------------
    def test_syntax_error_raises_query_error(self, engine: QueryEngine) -> None:
        with pytest.raises(QueryError):
            engine.sql("selec 1 frm nowhere")

    def test_runtime_failure_raises_query_error(self, engine: QueryEngine) -> None:
        with pytest.raises(QueryError):
            engine.sql(self.runtime_error_sql).to_arrow()

    def test_missing_table_raises_not_found_naming_it(
        self, engine: QueryEngine, namespace: str
    ) -> None:
        with pytest.raises(NotFoundError) as info:
            engine.sql(f"select * from {namespace}.does_not_exist").to_arrow()
        assert f"{namespace}.does_not_exist" in str(info.value)

    def test_dropped_table_raises_not_found(
        self, engine: QueryEngine, lake: Lake, namespace: str
    ) -> None:
        table = create_table_with_data(lake, f"{namespace}.gone", events([1], dt.date(2024, 1, 1)))
        assert self._catalog_query(engine, f"select count(*) from {table.ident}").scalar() == 1
        lake.catalog.drop_table(table.ident)
        with pytest.raises(NotFoundError):
            engine.sql(f"select count(*) from {table.ident}").to_arrow()

    # -- catalog tables ---------------------------------------------------------------------------
    def test_catalog_table_round_trip(
        self, engine: QueryEngine, lake: Lake, namespace: str
    ) -> None:
        data = pa.table(
            {
                "id": pa.array([1, 2, 3], pa.int64()),
                "name": ["ann", None, "ünï"],
                "price": pa.array([Decimal("1.10"), Decimal("2.25"), None], pa.decimal128(9, 2)),
                "seen": pa.array(
                    [dt.datetime(2024, 1, 1, 12), None, dt.datetime(2024, 3, 1, 0, 0, 1)],
                    pa.timestamp("us"),
                ),
                "ok": [True, False, None],
            }
        )
        table = create_table_with_data(lake, f"{namespace}.items", data)
        result = self._catalog_query(engine, f"select * from {table.ident} order by id")
        assert result.schema.names == data.schema.names
        assert result.to_pylist() == data.to_pylist()

    def test_empty_catalog_table_has_its_columns_and_no_rows(
        self, engine: QueryEngine, lake: Lake, namespace: str
    ) -> None:
        table = lake.catalog.create_table(f"{namespace}.empty", EVENTS_SCHEMA, partition_by=["dt"])
        result = self._catalog_query(engine, f"select * from {table.ident}")
        assert result.schema.names == EVENTS_SCHEMA.names
        assert result.to_arrow().num_rows == 0

    def test_partitioned_table_filters_on_partition_column(
        self, engine: QueryEngine, lake: Lake, namespace: str
    ) -> None:
        days = [dt.date(2024, 1, d) for d in (1, 2, 3)]
        data = pa.concat_tables(
            [events(range(10 * n, 10 * n + 5), day) for n, day in enumerate(days)]
        )
        table = create_table_with_data(lake, f"{namespace}.events", data, partition_by=["dt"])
        everything = self._catalog_query(engine, f"select id, dt from {table.ident} order by id")
        assert everything.rows() == [(r["id"], r["dt"]) for r in data.to_pylist()]
        if not self._has(engine, Capability.BOUND_PARAMETERS):
            return
        one_day = engine.sql(
            f"select id from {table.ident} where dt = ? order by id", [days[1]]
        ).rows()
        assert one_day == [(i,) for i in range(10, 15)]
        two_days = engine.sql(
            f"select dt, count(*) as n from {table.ident} where dt between ? and ? "
            "group by dt order by dt",
            [days[1], days[2]],
        ).rows()
        assert two_days == [(days[1], 5), (days[2], 5)]

    def test_string_partition_column_keeps_its_declared_type(
        self, engine: QueryEngine, lake: Lake, namespace: str
    ) -> None:
        data = pa.table({"id": pa.array([1, 2, 3], pa.int64()), "region": ["eu", "us", "eu"]})
        table = create_table_with_data(lake, f"{namespace}.regions", data, partition_by=["region"])
        result = self._catalog_query(
            engine,
            f"select region, count(*) as n from {table.ident} group by region order by region",
        )
        assert result.rows() == [("eu", 2), ("us", 1)]
        region_type = result.schema.field("region").type
        assert (
            pa.types.is_string(region_type)
            or pa.types.is_large_string(region_type)
            or (pa.types.is_string_view(region_type))
        )

    def test_commit_that_adds_files_is_visible_to_the_next_query(
        self, engine: QueryEngine, lake: Lake, namespace: str
    ) -> None:
        day, next_day = dt.date(2024, 5, 1), dt.date(2024, 5, 2)
        table = create_table_with_data(
            lake, f"{namespace}.growing", events([1, 2], day), partition_by=["dt"]
        )
        query = f"select count(*) as n, sum(id) as s from {table.ident}"
        assert self._catalog_query(engine, query).rows() == [(2, 3)]
        keys = append_files(
            lake, table, pa.concat_tables([events([10], day), events([20], next_day)])
        )
        commit_files(lake, table, keys)
        assert engine.sql(query).rows() == [(4, 33)]

    def test_lake_table_reads_exactly_the_committed_snapshot(
        self, engine: QueryEngine, lake: Lake, namespace: str
    ) -> None:
        day, next_day = dt.date(2024, 5, 1), dt.date(2024, 5, 2)
        table = lake.create_table(f"{namespace}.snap", events([1], day).schema, partition_by=["dt"])
        table.append(events([1, 2], day))
        query = f"select count(*) as n, sum(id) as s from {table.ident}"
        assert self._catalog_query(engine, query).rows() == [(2, 3)]
        table.overwrite_partitions(events([10], day))
        table.append(events([20], next_day))
        assert engine.sql(query).rows() == [(2, 30)]
        first = table.history()[0].snapshot_id
        table.rollback(first)
        assert engine.sql(query).rows() == [(2, 3)]

    def test_lake_table_ignores_files_no_snapshot_references(
        self, engine: QueryEngine, lake: Lake, namespace: str
    ) -> None:
        day = dt.date(2024, 5, 1)
        table = lake.create_table(f"{namespace}.orphans", events([1], day).schema)
        table.append(events([1, 2], day))
        # A file a crashed writer left behind, under the table's location, never committed.
        buffer = io.BytesIO()
        pq.write_table(events([99], day), buffer)
        lake.store.put(f"{table.location}/part-crashed-writer.parquet", buffer.getvalue())
        query = f"select sum(id) from {table.ident}"
        assert self._catalog_query(engine, query).scalar() == 3

    def test_table_created_after_first_query_is_queryable(
        self, engine: QueryEngine, lake: Lake, namespace: str
    ) -> None:
        assert engine.sql("select 1").scalar() == 1
        table = create_table_with_data(lake, f"{namespace}.late", events([7], dt.date(2024, 1, 1)))
        assert self._catalog_query(engine, f"select id from {table.ident}").rows() == [(7,)]

    def test_join_of_two_catalog_tables(
        self, engine: QueryEngine, lake: Lake, namespace: str
    ) -> None:
        left = create_table_with_data(
            lake, f"{namespace}.left_side", events([1, 2, 3], dt.date(2024, 1, 1))
        )
        right = create_table_with_data(
            lake,
            f"{namespace}.right_side",
            pa.table({"id": pa.array([2, 3, 4], pa.int64()), "tag": ["b", "c", "d"]}),
        )
        result = self._catalog_query(
            engine,
            f"select l.id, r.tag from {left.ident} l join {right.ident} r on l.id = r.id "
            "order by l.id",
        )
        assert result.rows() == [(2, "b"), (3, "c")]

    # -- results ----------------------------------------------------------------------------------
    def test_large_result_streams_in_batches(self, engine: QueryEngine) -> None:
        result = engine.sql(self.large_result_sql)
        total = 0
        batches = 0
        largest = 0
        for batch in result.batches():
            batches += 1
            total += batch.num_rows
            largest = max(largest, batch.num_rows)
        assert total == self.large_result_rows
        if self._has(engine, Capability.STREAMING_RESULTS):
            assert batches > 1
            assert largest < self.large_result_rows
        with pytest.raises(InvalidInputError):
            list(result.batches())  # a stream is read once

    def test_result_conversions(self, engine: QueryEngine) -> None:
        result = engine.sql("select 1 as a, 'x' as b union all select 2, 'y' order by a")
        assert result.rows() == [(1, "x"), (2, "y")]
        assert result.to_pylist() == [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}]
        frame = result.to_pandas()
        assert list(frame.columns) == ["a", "b"]
        assert frame["a"].tolist() == [1, 2]
        assert frame["b"].tolist() == ["x", "y"]
        polars_frame = result.to_polars()
        assert polars_frame.columns == ["a", "b"]
        assert polars_frame.rows() == [(1, "x"), (2, "y")]
        assert engine.sql("select 42 as answer").scalar() == 42
        with pytest.raises(InvalidInputError):
            result.scalar()

    # -- concurrency and cancellation -------------------------------------------------------------
    def test_concurrent_queries_from_threads(
        self, engine: QueryEngine, lake: Lake, namespace: str
    ) -> None:
        table = create_table_with_data(
            lake,
            f"{namespace}.shared",
            events(range(100), dt.date(2024, 1, 1)),
            partition_by=["dt"],
        )
        catalog_tables = self._has(engine, Capability.CATALOG_TABLES)
        errors: list[BaseException] = []
        results: list[Any] = []

        query = f"select count(*) from {table.ident}" if catalog_tables else "select 100"

        def worker() -> None:
            try:
                for _ in range(5):
                    results.append(engine.sql(query).scalar())
            except BaseException as exc:  # collected and asserted on in the main thread
                errors.append(exc)

        threads = [threading.Thread(target=worker) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert not errors, errors
        assert results == [100] * 30

    def test_cancel_interrupts_a_running_query(self, engine: QueryEngine) -> None:
        if not self._has(engine, Capability.CANCEL):
            with pytest.raises(NotSupportedError):
                engine.cancel()
            return
        outcome: dict[str, Any] = {}

        def run() -> None:
            try:
                outcome["rows"] = engine.sql(self.long_running_sql).rows()
            except BaseException as exc:
                outcome["error"] = exc

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        time.sleep(0.5)
        # cancel() stops what runs when it is called: repeat it in case the query had not
        # started yet on a busy machine.
        deadline = time.monotonic() + 30
        while thread.is_alive() and time.monotonic() < deadline:
            engine.cancel()
            thread.join(timeout=0.5)
        assert not thread.is_alive(), "cancel() did not stop the query within 30 s"
        assert isinstance(outcome.get("error"), QueryError), outcome
        assert engine.sql("select 1 as still_works").scalar() == 1

    def test_cancel_with_nothing_running_is_a_no_op(self, engine: QueryEngine) -> None:
        if not self._has(engine, Capability.CANCEL):
            with pytest.raises(NotSupportedError):
                engine.cancel()
            return
        engine.cancel()
        assert engine.sql("select 1").scalar() == 1

    def test_engine_in_another_process_reads_the_same_tables(
        self, engine_factory: EngineFactory, engine: QueryEngine, lake: Lake, namespace: str
    ) -> None:
        table = create_table_with_data(
            lake, f"{namespace}.shared", events([1, 2, 3], dt.date(2024, 1, 1))
        )
        query = f"select sum(id) from {table.ident}"
        context = multiprocessing.get_context("spawn")
        with context.Pool(1) as pool:
            if not self._has(engine, Capability.CATALOG_TABLES):
                with pytest.raises((NotFoundError, QueryError, NotSupportedError)):
                    pool.apply(_query_in_child, (engine_factory, lake.url, query))
                return
            rows = pool.apply(_query_in_child, (engine_factory, lake.url, query))
        assert rows == [(6,)]
