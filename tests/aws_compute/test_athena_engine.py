"""The Athena engine against moto on 127.0.0.1 (request shapes, polling, canned result pages,
cancellation) or a real account (``LAKEKIT_TEST_AWS_LIVE=1``, where SQL really runs).

moto does not execute SQL: it answers GetQueryResults with the results posted to
``/moto-api/static/athena/query-results`` (one page, whatever the query). The tests that need
real execution run only live; docs/clouds.md lists what each mode proves.
"""

from __future__ import annotations

import _thread
import datetime as dt
import itertools
import os
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest

import lakekit
from lakekit.adapters.aws import _athena_results
from lakekit.adapters.aws._athena_sql import literal, translate
from lakekit.adapters.aws.athena_engine import (
    AthenaEngine,
    athena_error,
    athena_statistics,
    estimate_cost,
)
from lakekit.errors import (
    ConfigurationError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
    QueryError,
    TransientError,
)
from lakekit.interfaces.query_engine import QueryEngine
from servers.aws import AwsTarget

ATHENA_OUTPUT_ENV = "LAKEKIT_TEST_AWS_ATHENA_OUTPUT"
"""Live mode: an s3:// prefix where Athena may write query results."""


@pytest.fixture
def output(aws_target: AwsTarget) -> str:
    if aws_target.live:
        location = os.environ.get(ATHENA_OUTPUT_ENV)
        if not location:
            pytest.fail(f"live Athena tests need {ATHENA_OUTPUT_ENV}=s3://bucket/prefix/")
        return location
    return f"s3://{aws_target.bucket}/athena-results/"


@pytest.fixture
def engine(aws_target: AwsTarget, output: str) -> Iterator[QueryEngine]:
    engine = QueryEngine(
        AthenaEngine(output_location=output, poll_initial=0.01, poll_max=0.2, **aws_target.settings)
    )
    yield engine
    engine.close()


@pytest.fixture
def transitions(moto_api: Any) -> Iterator[Any]:
    """Make moto's Athena executions stay QUEUED/RUNNING for ``times`` status checks each."""

    def set_times(times: int) -> None:
        moto_api(
            "/moto-api/state-manager/set-transition",
            {
                "model_name": "athena::execution",
                "transition": {"progression": "manual", "times": times},
            },
        )

    yield set_times
    moto_api("/moto-api/state-manager/unset-transition", {"model_name": "athena::execution"})


def _canned(moto_api: Any, columns: list[dict[str, Any]], rows: list[list[str | None]]) -> None:
    """Queue the result moto returns for the next query (header row first, as Athena does)."""
    header = [{"VarCharValue": c["Name"]} for c in columns]
    data = [[{} if v is None else {"VarCharValue": v} for v in row] for row in rows]
    moto_api(
        "/moto-api/static/athena/query-results",
        {
            "results": [
                {
                    "rows": [{"Data": header}] + [{"Data": d} for d in data],
                    "column_info": [{**c, "Label": c["Name"]} for c in columns],
                }
            ]
        },
    )


# -- requests -----------------------------------------------------------------------------------


def test_parameters_travel_as_execution_parameters_not_in_the_sql(
    engine: QueryEngine, aws_target: AwsTarget, moto_api: Any, output: str
) -> None:
    _canned(moto_api, [{"Name": "n", "Type": "integer"}], [["1"]])
    when = dt.datetime(2026, 3, 1, 12, 30, tzinfo=dt.UTC)
    result = engine.sql(
        "select * from t where name = $name and day = $day and at < $at -- $not_a_param",
        {"name": "x'); drop table t; --", "day": dt.date(2026, 3, 1), "at": when},
    )
    stats = athena_statistics(result)
    assert stats is not None
    execution = aws_target.client("athena").get_query_execution(
        QueryExecutionId=stats.query_execution_id
    )["QueryExecution"]
    assert execution["Query"] == (
        "select * from t where name = ? and day = ? and at < ? -- $not_a_param"
    )
    assert execution["ExecutionParameters"] == [
        "'x''); drop table t; --'",
        "DATE '2026-03-01'",
        "TIMESTAMP '2026-03-01 12:30:00.000000'",
    ]
    assert execution["QueryExecutionContext"] == {
        "Database": "default",
        "Catalog": "AwsDataCatalog",
    }
    assert execution["WorkGroup"] == "primary"
    assert execution["ResultConfiguration"]["OutputLocation"].startswith(output)
    assert result.rows() == [(1,)]


def test_workgroup_database_and_catalog_come_from_the_url(
    aws_target: AwsTarget, moto_api: Any, unique: str
) -> None:
    athena = aws_target.client("athena")
    athena.create_work_group(Name=f"wg-{unique}")
    url = f"athena://?workgroup=wg-{unique}&database=sales"
    lake_url = aws_target.lake_url()
    with lakekit.connect(lake_url, engine={"url": url, **aws_target.settings}) as lake:
        adapter = lake.engine.adapter
        assert isinstance(adapter, AthenaEngine)
        # results go to the lake's reserved area unless configured
        assert adapter.output_location == f"{lake_url}/.lakekit/athena/"
        _canned(moto_api, [{"Name": "one", "Type": "integer"}], [["1"]])
        result = lake.sql("select 1 as one")
        stats = athena_statistics(result)
        assert stats is not None
    execution = athena.get_query_execution(QueryExecutionId=stats.query_execution_id)
    assert execution["QueryExecution"]["WorkGroup"] == f"wg-{unique}"
    assert execution["QueryExecution"]["QueryExecutionContext"]["Database"] == "sales"
    assert "ExecutionParameters" not in execution["QueryExecution"]  # none given, none sent


def test_bad_settings_and_url_options_are_configuration_errors() -> None:
    with pytest.raises(ConfigurationError, match="unknown Athena URL option"):
        AthenaEngine(url="athena://?workgrop=x")
    with pytest.raises(ConfigurationError, match="output_location"):
        AthenaEngine(output_location="/tmp/results")
    with pytest.raises(ConfigurationError, match="both in the URL and as a setting"):
        AthenaEngine(url="athena://?workgroup=a", workgroup="b")


def test_an_unknown_workgroup_is_a_query_error_naming_athenas_code(
    aws_target: AwsTarget, output: str, moto_api: Any
) -> None:
    engine = QueryEngine(
        AthenaEngine(workgroup="nope", output_location=output, **aws_target.settings)
    )
    with pytest.raises(QueryError, match="InvalidRequestException"):
        engine.sql("select 1")


# -- results ------------------------------------------------------------------------------------


def test_result_pages_become_typed_arrow_columns(engine: QueryEngine, moto_api: Any) -> None:
    columns = [
        {"Name": "b", "Type": "boolean"},
        {"Name": "i8", "Type": "tinyint"},
        {"Name": "i32", "Type": "integer"},
        {"Name": "i64", "Type": "bigint"},
        {"Name": "f", "Type": "double"},
        {"Name": "r", "Type": "real"},
        {"Name": "d", "Type": "decimal", "Precision": 10, "Scale": 2},
        {"Name": "day", "Type": "date"},
        {"Name": "ts", "Type": "timestamp"},
        {"Name": "tz", "Type": "timestamp with time zone"},
        {"Name": "bin", "Type": "varbinary"},
        {"Name": "s", "Type": "varchar"},
        {"Name": "arr", "Type": "array"},
    ]
    _canned(
        moto_api,
        columns,
        [
            ["true", "-8", "32", "9007199254740993", "1.5", "0.25", "12.50", "2026-03-01",
             "2026-03-01 12:30:00.123", "2026-03-01 12:30:00.000 Europe/Paris", "68 69",
             "it's", "[1, 2]"],
            [None] * 13,
            ["false", "0", "0", "0", "NaN", "-Infinity", "-1.00", "1970-01-01",
             "1970-01-01 00:00:00.000", "1970-01-01 00:00:00.000 UTC", "", "", "[]"],
        ],
    )  # fmt: skip
    table = engine.sql("select ...").to_arrow()
    assert table.schema.types == [
        pa.bool_(), pa.int8(), pa.int32(), pa.int64(), pa.float64(), pa.float32(),
        pa.decimal128(10, 2), pa.date32(), pa.timestamp("us"), pa.timestamp("us", tz="UTC"),
        pa.binary(), pa.string(), pa.string(),
    ]  # fmt: skip
    first, nulls, third = table.to_pylist()
    assert first == {
        "b": True, "i8": -8, "i32": 32, "i64": 9007199254740993, "f": 1.5, "r": 0.25,
        "d": Decimal("12.50"), "day": dt.date(2026, 3, 1),
        "ts": dt.datetime(2026, 3, 1, 12, 30, 0, 123000),
        "tz": dt.datetime(2026, 3, 1, 11, 30, tzinfo=dt.UTC), "bin": b"hi", "s": "it's",
        "arr": "[1, 2]",
    }  # fmt: skip
    assert set(nulls.values()) == {None}  # the header row was dropped, NULLs stayed NULL
    assert third["r"] == float("-inf") and third["f"] != third["f"]  # NaN
    assert third["tz"] == dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def test_a_value_that_does_not_parse_is_a_query_error(engine: QueryEngine, moto_api: Any) -> None:
    _canned(moto_api, [{"Name": "n", "Type": "integer"}], [["not a number"]])
    with pytest.raises(QueryError, match="not a valid integer"):
        engine.sql("select n").to_arrow()


def test_pages_are_fetched_lazily_with_the_header_only_on_the_first() -> None:
    columns = [{"Name": "n", "Label": "n", "Type": "bigint"}]
    pages = {
        None: {"ResultSet": {"ResultSetMetadata": {"ColumnInfo": columns},
                             "Rows": [{"Data": [{"VarCharValue": "n"}]},
                                      {"Data": [{"VarCharValue": "1"}]}]}, "NextToken": "p2"},
        "p2": {"ResultSet": {"Rows": [{"Data": [{"VarCharValue": "n"}]},  # a value "n"? no: data
                                      {"Data": [{"VarCharValue": "2"}]}]}, "NextToken": "p3"},
        "p3": {"ResultSet": {"Rows": [{"Data": [{"VarCharValue": "3"}]}]}},
    }  # fmt: skip
    pages["p2"]["ResultSet"]["Rows"][0] = {"Data": [{}]}  # a NULL on a later page stays a row
    fetched: list[str | None] = []

    def fetch(token: str | None) -> Any:
        fetched.append(token)
        return pages[token]

    schema, batches = _athena_results.batches(pages[None], fetch, select=True)
    assert schema == pa.schema([("n", pa.int64())])
    assert fetched == []  # nothing fetched before the batches are consumed
    first = next(batches)
    assert first.column(0).to_pylist() == [1]
    assert fetched == []
    rest = [b.column(0).to_pylist() for b in batches]
    assert rest == [[None, 2], [3]]
    assert fetched == ["p2", "p3"]


def test_statistics_and_cost_are_on_the_result(engine: QueryEngine, moto_api: Any) -> None:
    _canned(moto_api, [{"Name": "n", "Type": "integer"}], [["1"]])
    result = engine.sql("select 1 as n")
    stats = athena_statistics(result)
    assert stats is not None and stats.state == "SUCCEEDED"
    assert stats.data_scanned_bytes == 0 and stats.cost_usd == 0.0  # moto scans nothing
    assert engine.adapter.last_statistics == stats  # type: ignore[attr-defined]
    assert athena_statistics(pa.schema([("n", pa.int32())])) is None
    assert estimate_cost(1, 5.0) == pytest.approx(10 * 1024 * 1024 * 5.0 / 1e12)  # 10 MB minimum
    assert estimate_cost(10**12, 5.0) == pytest.approx(5.0, rel=1e-5)
    assert estimate_cost(0, 5.0) == 0.0


# -- polling and cancelling ---------------------------------------------------------------------


def test_polls_with_backoff_until_the_query_succeeds(
    engine: QueryEngine, moto_api: Any, transitions: Any
) -> None:
    transitions(3)
    checks: list[float] = []
    client = engine.adapter.client  # type: ignore[attr-defined]
    client.meta.events.register(
        "before-call.athena.GetQueryExecution", lambda **_: checks.append(time.monotonic())
    )
    _canned(moto_api, [{"Name": "n", "Type": "integer"}], [["7"]])
    assert engine.sql("select 7").scalar() == 7
    assert len(checks) >= 4  # QUEUED and RUNNING for 3 checks each before SUCCEEDED
    gaps = [b - a for a, b in itertools.pairwise(checks)]
    assert max(gaps) > min(gaps)  # the wait grows (exponential backoff, with jitter)


def test_cancel_from_another_thread_stops_the_query(
    engine: QueryEngine, aws_target: AwsTarget, transitions: Any
) -> None:
    transitions(1_000_000)  # never finishes by itself
    outcome: dict[str, BaseException] = {}

    def run() -> None:
        try:
            engine.sql("select slow").to_arrow()
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 10
    while not engine.adapter._running and time.monotonic() < deadline:  # type: ignore[attr-defined]
        time.sleep(0.01)
    [query_id] = engine.adapter._running  # type: ignore[attr-defined]
    engine.cancel()
    thread.join(10)
    assert isinstance(outcome.get("error"), QueryError)
    assert "cancelled" in str(outcome["error"])
    state = aws_target.client("athena").get_query_execution(QueryExecutionId=query_id)
    assert state["QueryExecution"]["Status"]["State"] == "CANCELLED"
    engine.cancel()  # nothing running: a no-op


def test_ctrl_c_while_waiting_stops_the_query_on_athena(
    engine: QueryEngine, aws_target: AwsTarget, transitions: Any
) -> None:
    transitions(1_000_000)
    athena = aws_target.client("athena")
    before = set(athena.list_query_executions()["QueryExecutionIds"])
    timer = threading.Timer(0.3, _thread.interrupt_main)
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        engine.sql("select slow").to_arrow()
    timer.join()
    [query_id] = set(athena.list_query_executions()["QueryExecutionIds"]) - before
    state = athena.get_query_execution(QueryExecutionId=query_id)["QueryExecution"]["Status"]
    assert state["State"] == "CANCELLED"


def test_query_timeout_stops_the_query(
    aws_target: AwsTarget, output: str, transitions: Any
) -> None:
    transitions(1_000_000)
    engine = QueryEngine(
        AthenaEngine(
            output_location=output, poll_initial=0.01, query_timeout=0.3, **aws_target.settings
        )
    )
    with pytest.raises(QueryError, match="query_timeout"):
        engine.sql("select slow")
    assert not engine.adapter._running  # type: ignore[attr-defined]


# -- errors -------------------------------------------------------------------------------------


def _failed(error_type: int | None, reason: str, category: int = 2) -> dict[str, Any]:
    status: dict[str, Any] = {"State": "FAILED", "StateChangeReason": reason}
    if error_type is not None:
        status["AthenaError"] = {"ErrorCategory": category, "ErrorType": error_type}
    return {"QueryExecutionId": "q-1", "Status": status}


@pytest.mark.parametrize(
    ("error_type", "expected"),
    [
        (1110, NotFoundError),
        (1301, NotFoundError),
        (1006, QueryError),
        (1501, PermissionDeniedError),
        (1404, TransientError),
        (None, QueryError),
    ],
)
def test_failed_queries_map_by_athena_error_type(error_type: int | None, expected: type) -> None:
    error = athena_error(_failed(error_type, "line 1:15: Table 'x.y' does not exist"), "select 1")
    assert type(error) is expected
    assert "Table 'x.y' does not exist" in str(error) and "q-1" in str(error)


def test_failure_reasons_are_scrubbed_of_credentials() -> None:
    reason = "Access denied for AKIAABCDEFGHIJKLMNOP at https://u:secret@host/x?X-Amz-Signature=abc"
    text = str(athena_error(_failed(1500, reason), "select 1"))
    assert "AKIAABCDEFGHIJKLMNOP" not in text and "secret" not in text and "abc" not in text


def test_a_cancelled_query_is_a_query_error() -> None:
    execution = {"QueryExecutionId": "q", "Status": {"State": "CANCELLED"}}
    assert type(athena_error(execution, "select 1")) is QueryError


# -- parameter translation ----------------------------------------------------------------------


def test_placeholders_become_question_marks_in_order() -> None:
    assert translate("select ?, ?", [1, "a"]) == ("select ?, ?", ["1", "'a'"])
    assert translate("select $2, $1, $2", ["a", "b"]) == ("select ?, ?, ?", ["'b'", "'a'", "'b'"])
    assert translate("select $a + $b", {"a": 1, "b": 2.5}) == ("select ? + ?", ["1", "2.5"])
    sql = "select '?', \"$x\", `$1` /* $y ? */ , ? -- ?"
    assert translate(sql, [None]) == (sql.replace(", ? --", ", ? --"), ["NULL"])
    assert translate("select 1", None) == ("select 1", [])


@pytest.mark.parametrize(
    ("sql", "params", "message"),
    [
        ("select ?, ?", [1], "has no value"),
        ("select ?", [1, 2], "not used"),
        ("select ?, $1", [1], r"either \? or \$1"),
        ("select $a", [1], "needs a mapping"),
        ("select ?", {"a": 1}, "needs a sequence"),
        ("select $a", {"b": 1}, "no value for parameter"),
        ("select $a", {"a": 1, "b": 2}, "not used"),
        ("select ?", [object()], "cannot bind a object"),
    ],
)
def test_mismatched_parameters_are_invalid_input(sql: str, params: Any, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        translate(sql, params)


def test_every_supported_value_has_a_literal() -> None:
    assert literal(True) == "true"
    assert literal(float("nan")) == "nan()" and literal(float("-inf")) == "-infinity()"
    assert literal(Decimal("12.50")) == "DECIMAL '12.50'"
    assert literal(b"\x00\xff") == "X'00ff'"
    aware = dt.datetime(2026, 3, 1, 13, 0, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    assert literal(aware) == "TIMESTAMP '2026-03-01 12:00:00.000000'"
    assert literal(dt.time(12, 0, 0, 500000)) == "TIME '12:00:00.500000'"
    assert literal([1, "a", None]) == "ARRAY[1, 'a', NULL]"
    with pytest.raises(InvalidInputError):
        literal(Decimal("NaN"))


# -- live only ----------------------------------------------------------------------------------


def test_live_athena_binds_parameters_and_types_results(
    aws_target: AwsTarget, engine: QueryEngine
) -> None:
    if not aws_target.live:
        pytest.skip("moto does not execute SQL: real Athena only (LAKEKIT_TEST_AWS_LIVE=1)")
    result = engine.sql(
        "select ? as s, ? as n, ? as d, ? as day, ? as nothing",
        ["x'); drop table t; --", 42, Decimal("1.50"), dt.date(2026, 3, 1), None],
    )
    assert result.rows() == [
        ("x'); drop table t; --", 42, Decimal("1.50"), dt.date(2026, 3, 1), None)
    ]
    stats = athena_statistics(result)
    assert stats is not None and stats.state == "SUCCEEDED"
    with pytest.raises(NotFoundError):
        engine.sql("select * from lakekit_missing_db.missing_table")
    with pytest.raises(QueryError):
        engine.sql("selec 1")
