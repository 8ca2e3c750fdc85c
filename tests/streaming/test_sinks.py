"""Serving sinks: the results table for SQL, the JSON stream for dashboards, and the key-value
view queried from Python and over its local HTTP endpoint."""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.request
from typing import Any

import pyarrow as pa
import pytest

from conftest import T0, at, iso, publish
from lakekit.errors import ConfigurationError
from lakekit.lake import Lake
from lakekit.streaming import (
    ApproxDistinct,
    Count,
    KeyValueView,
    Max,
    Mean,
    StreamSink,
    TableSink,
    Tumbling,
    WindowResult,
    windowed,
)
from lakekit.streaming.results import ResultColumns, ResultLayout, columns_table, results_table


def _run(lake: Lake, rows: list[dict[str, Any]], **options: Any) -> None:
    publish(lake.stream("readings"), rows)
    windowed(
        lake, "readings", group="serve", key="device", time="ts", window=Tumbling("1m"),
        aggregate={"n": Count(), "avg": Mean("temp"), "peak": Max("temp"),
                   "users": ApproxDistinct("user")},
        **options,
    ).run_once()  # fmt: skip


def _rows() -> list[dict[str, Any]]:
    rows = [
        {"device": d, "ts": T0 + s, "temp": t, "user": u}
        for d, s, t, u in [
            ("a", 0, 10.0, 1), ("a", 30, 20.0, 2), ("b", 10, 5.0, 1), ("a", 70, 1.0, 1),
            ("b a/c", 15, 7.0, 3),
        ]
    ]  # fmt: skip
    rows.append({"device": "z", "ts": T0 + 600, "temp": 0.0, "user": 9})  # closes the others
    return rows


def test_the_table_sink_holds_one_typed_row_per_window(lake: Lake) -> None:
    _run(lake, _rows(), sinks=[TableSink(lake, "iot.stats", partition_by=["day(window_start)"])])
    table = lake.table("iot.stats")
    ts = pa.timestamp("us", tz="UTC")
    assert table.schema.names == [
        "device", "window_start", "window_end", "n", "avg", "peak", "users", "final",
    ]  # fmt: skip
    assert [table.schema.field(c).type for c in ("window_start", "n", "avg", "users")] == [
        ts, pa.int64(), pa.float64(), pa.int64(),
    ]  # fmt: skip
    assert [(f.source, f.transform) for f in table.partition_spec.fields] == [
        ("window_start", "day")
    ]
    rows = lake.sql(
        "select device, n, avg, peak, users from iot.stats order by window_start, device"
    ).to_pylist()
    assert rows == [
        {"device": "a", "n": 2, "avg": 15.0, "peak": 20.0, "users": 2},
        {"device": "b", "n": 1, "avg": 5.0, "peak": 5.0, "users": 1},
        {"device": "b a/c", "n": 1, "avg": 7.0, "peak": 7.0, "users": 1},
        {"device": "a", "n": 1, "avg": 1.0, "peak": 1.0, "users": 1},
    ]


def test_the_stream_sink_publishes_json_results_keyed_by_the_result_key(lake: Lake) -> None:
    _run(lake, _rows(), sinks=[StreamSink(lake, "dashboard")])
    records = sorted(lake.stream("dashboard").replay(), key=lambda r: r.json()["window_start"])
    first = records[0]
    assert first.json() == {
        "id": f"a|{iso(T0)}|{iso(T0 + 60)}",
        "device": "a",
        "window_start": iso(T0),
        "window_end": iso(T0 + 60),
        "n": 2,
        "avg": 15.0,
        "peak": 20.0,
        "users": 2,
        "final": True,
    }
    assert first.key == b"a"
    assert first.timestamp == at(T0 + 60)
    assert len(records) == 4


def test_the_view_keeps_the_latest_window_per_key(lake: Lake) -> None:
    view = KeyValueView("devices")
    _run(lake, _rows(), sinks=[view])
    assert view.keys() == ["a", "b", "b a/c"]
    assert view.get("a")["window_start"] == iso(T0 + 60)  # the later of a's two windows
    assert view["a"]["n"] == 1
    assert view.get("missing") is None and view.get("missing", {}) == {}
    assert "b" in view and "z" not in view  # z's window is still open
    with pytest.raises(KeyError):
        view["missing"]
    snapshot = view.snapshot()
    snapshot["a"]["n"] = 999  # copies: the view is not changed through them
    assert view.get("a")["n"] == 1
    assert dict(view.items()) == view.snapshot()
    assert repr(view) == "KeyValueView('devices', 3 keys)"


def test_an_older_window_or_a_repeat_does_not_replace_a_newer_value() -> None:
    view = KeyValueView()
    view.bind("results", ResultLayout("device", ("n",), (None,)), object())
    new = WindowResult("a", at(T0 + 60), at(T0 + 120), {"n": 5}, True, "device")
    old = WindowResult("a", at(T0), at(T0 + 60), {"n": 9}, True, "device")
    view.write_results([new, old, new])
    assert view.get("a")["n"] == 5
    update = WindowResult("a", at(T0 + 60), at(T0 + 120), {"n": 6}, False, "device")
    view.write_results([update])  # the same window, emitted later, wins
    assert view.get("a") == {**new.as_json(), "n": 6, "final": False}


def _get(url: str) -> tuple[int, Any, http.client.HTTPMessage]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, json.loads(response.read()), response.headers
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.loads(error.read()), error.headers


def test_the_view_is_served_as_json_on_localhost(lake: Lake) -> None:
    view = KeyValueView()
    _run(lake, _rows(), sinks=[view])
    with view:
        url = view.serve(port=0)
        assert url.startswith("http://127.0.0.1:") and view.url == url
        assert view.serve() == url  # idempotent
        status, body, headers = _get(f"{url}/keys/a")
        assert status == 200 and body == view.get("a")
        assert headers["Content-Type"] == "application/json; charset=utf-8"
        assert _get(f"{url}/keys/b%20a%2Fc")[1]["device"] == "b a/c"  # URL-encoded key
        status, body, _ = _get(f"{url}/keys/nope")
        assert status == 404 and body == {"error": "no key 'nope' in this view"}
        assert _get(f"{url}/all")[1] == view.snapshot()
        assert _get(f"{url}/keys")[1] == ["a", "b", "b a/c"]
        assert _get(f"{url}/")[1]["keys"] == 3
        assert _get(f"{url}/elsewhere")[0] == 404
        request = urllib.request.Request(f"{url}/keys/a", data=b"{}", method="POST")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert refused.value.code == 405 and refused.value.headers["Allow"] == "GET, HEAD"
        refused.value.close()
    assert view.url is None
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"{url}/all", timeout=2)


def test_the_endpoint_sees_updates_as_they_happen(lake: Lake) -> None:
    view = KeyValueView()
    view.bind("results", ResultLayout("device", ("n",), (None,)), object())
    url = view.serve()
    try:
        assert _get(f"{url}/all")[1] == {}
        view.write_results([WindowResult("d1", at(T0), at(T0 + 60), {"n": 1}, False, "device")])
        assert _get(f"{url}/keys/d1")[1]["n"] == 1
    finally:
        view.close()


def test_serving_on_a_taken_or_bad_port_is_a_configuration_error() -> None:
    first, second = KeyValueView("one"), KeyValueView("two")
    url = first.serve()
    try:
        port = int(url.rsplit(":", 1)[1])
        with pytest.raises(ConfigurationError, match=f"127.0.0.1:{port}"):
            second.serve(port=port)
        with pytest.raises(ConfigurationError, match="port"):
            second.serve(port=70_000)
    finally:
        first.close()


def test_results_by_column_make_the_table_results_by_object_make() -> None:
    """The job hands the table sink its results by column; they must give the rows (types,
    nulls for non-finite numbers, inferred columns) the same results one by one give."""
    layout = ResultLayout(
        "device", ("n", "avg", "peak", "label"), (pa.int64(), pa.float64(), None, None)
    )
    minute = 60_000_000
    batches = [
        ResultColumns(
            ["a", "b"],
            [0, 0],
            [minute, minute],
            [[2, 1], [1.5, float("nan")], [None, None], ["x", None]],
            True,
        ),
        ResultColumns(["a"], [minute], [2 * minute], [[3], [float("inf")], [4.0], ["y"]], False),
    ]
    objects = [r for b in batches for r in b.results(layout.aggregates, "device")]
    assert [(r.key, r.start, r.end, r.final) for r in objects] == [
        ("a", at(0), at(60), True), ("b", at(0), at(60), True), ("a", at(60), at(120), False),
    ]  # fmt: skip
    assert objects[0].values == {"n": 2, "avg": 1.5, "peak": None, "label": "x"}
    by_column = columns_table(batches, layout, None)
    assert by_column.equals(results_table(objects, layout, None))
    assert by_column.column("avg").to_pylist() == [1.5, None, None]  # NaN and inf: null
    assert by_column.schema.field("peak").type == pa.float64()
    assert by_column.column("label").type == pa.string()
    known = pa.schema([("peak", pa.float32())])  # an existing table's type wins
    assert columns_table(batches[:1], layout, known).schema.field("peak").type == pa.float32()
    assert results_table(objects[:2], layout, known).equals(
        columns_table(batches[:1], layout, known)
    )
