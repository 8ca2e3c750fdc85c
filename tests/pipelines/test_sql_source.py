"""SqlSource against real databases: a SQLite file and a PostgreSQL server on 127.0.0.1."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import sqlalchemy as sa

from lakekit.errors import InvalidInputError, LakekitError, NotFoundError
from lakekit.pipelines.source import SourceBatch, SourceState
from lakekit.pipelines.sources.sql import SqlSource, decode_cursor, encode_cursor
from servers.postgres import PostgresServer


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sa.Engine]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'app.db'}"
    else:
        url = request.getfixturevalue("postgres_server").url
    eng = sa.create_engine(url)
    yield eng
    eng.dispose()


@pytest.fixture
def orders(engine: sa.Engine) -> Iterator[sa.Table]:
    """A fresh ``orders_<uuid>`` table (id, amount, status, updated_at)."""
    table = sa.Table(
        f"orders_{uuid.uuid4().hex[:10]}",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("amount", sa.Numeric(10, 2)),
        sa.Column("status", sa.String(20)),
        sa.Column("updated_at", sa.DateTime),
    )
    table.create(engine)
    yield table
    table.drop(engine)


T0 = datetime(2024, 1, 1, 12, 0, 0)


def insert(engine: sa.Engine, table: sa.Table, ids: range, at: datetime | None = None) -> None:
    rows = [
        {
            "id": i,
            "amount": Decimal(i) / 4,
            "status": f"s{i % 3}",
            "updated_at": at or T0 + timedelta(minutes=i),
        }
        for i in ids
    ]
    with engine.begin() as conn:
        conn.execute(table.insert(), rows)


def run(source: SqlSource, state: dict[str, Any]) -> tuple[list[SourceBatch], dict[str, Any]]:
    """Consume a whole run like a pipeline would: apply each batch's state after its rows."""
    batches = []
    for batch in source.read(SourceState(state)):
        batches.append(batch)
        state = {**state, **json.loads(json.dumps(dict(batch.state)))}  # state is stored as JSON
    return batches, state


def ids(batches: list[SourceBatch]) -> list[int]:
    return [i for b in batches for i in b.data.column("id").to_pylist()]


def test_table_is_read_in_chunks_with_reflected_arrow_types(
    engine: sa.Engine, orders: sa.Table
) -> None:
    insert(engine, orders, range(1, 11))
    source = SqlSource(engine, table=orders.name, cursor="id", chunk_rows=3)

    batches, state = run(source, {})

    assert [b.data.num_rows for b in batches] == [3, 3, 3, 1]
    assert ids(batches) == list(range(1, 11))
    schema = batches[0].data.schema
    assert schema.field("id").type == pa.int64()
    assert schema.field("amount").type == pa.decimal128(10, 2)
    assert schema.field("status").type == pa.string()
    assert schema.field("updated_at").type == pa.timestamp("us")
    assert batches[0].data.column("amount").to_pylist()[0] == Decimal("0.25")
    assert state == {"cursor": 10}


def test_incremental_runs_pick_up_only_new_rows(engine: sa.Engine, orders: sa.Table) -> None:
    source = SqlSource(engine, table=orders.name, cursor="id", chunk_rows=4)
    insert(engine, orders, range(1, 6))
    first, state = run(source, {})
    insert(engine, orders, range(6, 9))
    second, state = run(source, state)
    third, state = run(source, state)

    assert ids(first) == [1, 2, 3, 4, 5]
    assert ids(second) == [6, 7, 8]
    assert third == []
    assert state == {"cursor": 8}


def test_resuming_from_any_committed_batch_is_exactly_once(
    engine: sa.Engine, orders: sa.Table
) -> None:
    insert(engine, orders, range(1, 21))
    source = SqlSource(engine, table=orders.name, cursor="id", chunk_rows=6)
    batches = list(source.read(SourceState({})))

    for crashed_after in range(len(batches)):
        committed = ids(batches[: crashed_after + 1])
        rest, _ = run(source, json.loads(json.dumps(dict(batches[crashed_after].state))))
        assert committed + ids(rest) == list(range(1, 21))


def test_rows_sharing_a_cursor_value_are_never_split_across_batches(
    engine: sa.Engine, orders: sa.Table
) -> None:
    # 3 early rows, 25 rows updated in the same instant, 3 later rows; chunks of 5.
    insert(engine, orders, range(1, 4), at=T0)
    insert(engine, orders, range(4, 29), at=T0 + timedelta(hours=1))
    insert(engine, orders, range(29, 32), at=T0 + timedelta(hours=2))
    source = SqlSource(engine, table=orders.name, cursor="updated_at", chunk_rows=5)

    batches, _ = run(source, {})

    assert sorted(ids(batches)) == list(range(1, 32))
    assert [b.data.num_rows for b in batches] == [28, 3]  # the tied group stays whole
    for crashed_after in range(len(batches)):
        committed = ids(batches[: crashed_after + 1])
        rest, _ = run(source, json.loads(json.dumps(dict(batches[crashed_after].state))))
        assert sorted(committed + ids(rest)) == list(range(1, 32))


def test_numeric_lag_leaves_the_newest_ids_for_the_next_run(
    engine: sa.Engine, orders: sa.Table
) -> None:
    insert(engine, orders, range(1, 11))
    source = SqlSource(engine, table=orders.name, cursor="id", lag=3)

    first, state = run(source, {})
    # id 8 was still being written (a slow transaction) and lands now, with new rows.
    insert(engine, orders, range(11, 14))
    second, state = run(source, state)

    assert ids(first) == list(range(1, 8))
    assert ids(second) == [8, 9, 10]
    assert state == {"cursor": 10}


def test_timedelta_lag_picks_up_late_rows_in_the_next_run(
    engine: sa.Engine, orders: sa.Table
) -> None:
    clock = [T0.replace(tzinfo=UTC) + timedelta(minutes=10)]
    source = SqlSource(
        engine,
        table=orders.name,
        cursor="updated_at",
        lag=timedelta(minutes=5),
        now=lambda: clock[0],
    )
    insert(engine, orders, range(1, 9))  # updated_at T0+1min .. T0+8min

    first, state = run(source, {})
    insert(engine, orders, range(100, 101), at=T0 + timedelta(minutes=4, seconds=30))  # late row
    clock[0] += timedelta(minutes=10)
    second, state = run(source, state)

    assert ids(first) == [1, 2, 3, 4, 5]  # <= now - 5 min
    assert ids(second) == [6, 7, 8]
    # The late row had a cursor value below the committed one: lag is what protects such rows
    # only while they are inside the window; this one arrived after it closed.
    assert 100 not in ids(first) + ids(second)
    assert decode_cursor(state["cursor"]) == T0 + timedelta(minutes=8)


def test_late_row_inside_the_lag_window_is_not_lost(engine: sa.Engine, orders: sa.Table) -> None:
    clock = [T0.replace(tzinfo=UTC) + timedelta(minutes=10)]
    source = SqlSource(
        engine,
        table=orders.name,
        cursor="updated_at",
        lag=timedelta(minutes=5),
        now=lambda: clock[0],
    )
    insert(engine, orders, range(1, 5))  # T0+1..4min: all older than now - lag
    first, state = run(source, {})
    # Committed late, stamped 7 min (inside the 5-minute window at the first run).
    insert(engine, orders, range(7, 8))
    clock[0] += timedelta(minutes=5)
    second, _ = run(source, state)

    assert ids(first) == [1, 2, 3, 4]
    assert ids(second) == [7]


def test_backfill_bounds_start_inclusive_end_exclusive(engine: sa.Engine, orders: sa.Table) -> None:
    insert(engine, orders, range(1, 21))
    source = SqlSource(engine, table=orders.name, cursor="id", start=5, end=15, chunk_rows=4)

    first, state = run(source, {})
    second, _ = run(source, state)

    assert ids(first) == list(range(5, 15))
    assert second == []


def test_query_is_read_as_a_subquery_with_bound_parameters(
    engine: sa.Engine, orders: sa.Table
) -> None:
    insert(engine, orders, range(1, 13))
    source = SqlSource(
        engine,
        query=f"SELECT id, status FROM {orders.name} WHERE status = :status",
        params={"status": "s1"},
        cursor="id",
        chunk_rows=2,
    )

    batches, state = run(source, {})
    insert(engine, orders, range(13, 17))
    more, _ = run(source, state)

    assert ids(batches) == [1, 4, 7, 10]
    assert batches[0].data.column_names == ["id", "status"]
    assert ids(more) == [13, 16]


def test_query_with_hostile_parameter_value_is_bound_not_spliced(
    engine: sa.Engine, orders: sa.Table
) -> None:
    insert(engine, orders, range(1, 4))
    source = SqlSource(
        engine,
        query=f"SELECT id FROM {orders.name} WHERE status = :status",
        params={"status": "x' OR '1'='1"},
    )

    batches, _ = run(source, {})

    assert ids(batches) == []


def test_source_from_url_owns_and_disposes_its_engine(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'own.db'}"
    with sa.create_engine(url).begin() as conn:
        conn.execute(sa.text("CREATE TABLE t (id INTEGER, name TEXT)"))
        conn.execute(sa.text("INSERT INTO t VALUES (1, 'a'), (2, 'b')"))
    source = SqlSource(url, table="t")
    try:
        batches, state = run(source, {})
    finally:
        source.close()

    assert ids(batches) == [1, 2]
    assert state == {}  # no cursor: a full read every run, nothing to resume from


def test_missing_table_and_bad_names_are_clear_errors(engine: sa.Engine, orders: sa.Table) -> None:
    with pytest.raises(NotFoundError, match="no_such_table"):
        list(SqlSource(engine, table="no_such_table").read(SourceState({})))
    with pytest.raises(InvalidInputError, match="invalid table name"):
        SqlSource(engine, table="orders; DROP TABLE orders")
    with pytest.raises(InvalidInputError, match="not among the columns"):
        list(SqlSource(engine, table=orders.name, cursor="nope").read(SourceState({})))
    with pytest.raises(InvalidInputError, match="exactly one of"):
        SqlSource(engine, table=orders.name, query="SELECT 1")
    with pytest.raises(InvalidInputError, match="need a cursor"):
        SqlSource(engine, table=orders.name, lag=3)


def test_lag_of_the_wrong_kind_for_the_cursor_is_rejected(
    engine: sa.Engine, orders: sa.Table
) -> None:
    insert(engine, orders, range(1, 3))
    with pytest.raises(InvalidInputError, match="timedelta lag needs a date or timestamp"):
        list(
            SqlSource(engine, table=orders.name, cursor="id", lag=timedelta(1)).read(
                SourceState({})
            )
        )
    with pytest.raises(InvalidInputError, match="numeric lag needs a numeric cursor"):
        list(SqlSource(engine, table=orders.name, cursor="updated_at", lag=1).read(SourceState({})))


def test_cursor_values_round_trip_through_json() -> None:
    values = [
        7,
        "abc",
        Decimal("12.50"),
        datetime(2024, 5, 1, 3, 4, 5, 6),
        datetime(2024, 5, 1, tzinfo=UTC),
        uuid.UUID(int=5),
    ]
    for value in values:
        assert decode_cursor(json.loads(json.dumps(encode_cursor(value)))) == value
    with pytest.raises(InvalidInputError, match="malformed"):
        decode_cursor({"$type": "datetime", "value": "yesterday"})


@pytest.mark.postgres
def test_credentials_never_appear_in_describe_or_errors(
    postgres_server: PostgresServer,
) -> None:
    wrong = "wrong-s3cret-pw"
    url = sa.make_url(postgres_server.url).set(password=wrong)
    source = SqlSource(url.render_as_string(hide_password=False), table="anything")
    try:
        assert wrong not in source.describe()
        assert wrong not in repr(source)
        # psycopg reports a failed login without a SQLSTATE, so it cannot be told apart from an
        # unreachable server without reading message text: it surfaces as a TransientError.
        with pytest.raises(LakekitError) as info:
            list(source.read(SourceState({})))
    finally:
        source.close()
    assert wrong not in str(info.value)
    assert "***" in str(info.value)


def test_pipeline_loads_a_database_table_incrementally_exactly_once(
    engine: sa.Engine, orders: sa.Table, tmp_path: Path
) -> None:
    import lakekit

    insert(engine, orders, range(1, 8))
    source = SqlSource(engine, table=orders.name, cursor="updated_at", chunk_rows=3)
    with lakekit.connect(f"local://{tmp_path / 'lake'}", store={"fsync": False}) as lake:
        pipeline = lake.pipeline("orders_from_db")
        first = pipeline.run(source, into="raw.orders", land_raw=True)
        insert(engine, orders, range(8, 12))
        second = pipeline.run(source, into="raw.orders")
        third = pipeline.run(source, into="raw.orders")
        loaded = lake.table("raw.orders").to_arrow()

    assert sorted(loaded.column("id").to_pylist()) == list(range(1, 12))
    assert (first.rows_in, second.rows_in, third.rows_in) == (7, 4, 0)
    assert third.status == "nothing to do"
