"""HttpSource against a real paged JSON API served on 127.0.0.1 by the test (no mocks)."""

from __future__ import annotations

import json
import socket
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pyarrow as pa
import pytest

from lakekit.errors import InvalidInputError, NotFoundError, PermissionDeniedError, TransientError
from lakekit.pipelines.source import SourceBatch, SourceState
from lakekit.pipelines.sources.http import HttpSource

TOKEN = "Bearer sup3r-secret-token"


@dataclass
class Api:
    """The served API's data, the faults to inject next and the requests seen."""

    records: list[dict[str, Any]] = field(default_factory=list)
    faults: deque[tuple[int, dict[str, str]]] = field(default_factory=deque)
    requests: list[str] = field(default_factory=list)
    base: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)


def make_records(start: int, stop: int) -> list[dict[str, Any]]:
    return [{"id": i, "name": f"n{i}", "meta": {"even": i % 2 == 0}} for i in range(start, stop)]


class _Handler(BaseHTTPRequestHandler):
    api: Api

    def log_message(self, format: str, *args: Any) -> None:  # quiet test output
        pass

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode() if body is not None else b"not json"
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        api = self.api
        parts = urlsplit(self.path)
        q = {k: v[0] for k, v in parse_qs(parts.query).items()}
        with api.lock:
            api.requests.append(self.path)
            fault = api.faults.popleft() if api.faults else None
            records = list(api.records)
        if fault is not None:
            self._send(fault[0], {"error": "injected"}, fault[1])
            return
        limit = int(q.get("limit", "5"))
        route = parts.path
        if route == "/secure" and self.headers.get("Authorization") != TOKEN:
            self._send(401, {"error": "unauthorized"})
        elif route in ("/pages", "/secure"):
            page = int(q["page"])
            self._send(200, {"data": {"items": records[(page - 1) * limit : page * limit]}})
        elif route == "/offsets":
            offset = int(q["offset"])
            self._send(200, {"data": {"items": records[offset : offset + limit]}})
        elif route == "/cursors":
            start = int(q.get("cursor", "c0")[1:])
            following = f"c{start + limit}" if start + limit < len(records) else None
            body = {"items": records[start : start + limit], "meta": {"next_cursor": following}}
            self._send(200, body)
        elif route in ("/links", "/link-header"):
            start = int(q.get("start", "0"))
            more = start + limit < len(records)
            following = f"{route}?start={start + limit}&limit={limit}" if more else None
            items = records[start : start + limit]
            if route == "/links":
                self._send(200, {"items": items, "links": {"next": following}})
            else:
                link = {"Link": f'<{api.base}{following}>; rel="next"'} if following else {}
                self._send(200, items, link)
        elif route == "/not-json":
            self._send(200, None)
        elif route == "/bad-request":
            self._send(400, {"error": "bad"})
        else:
            self._send(404, {"error": "no route"})


@pytest.fixture
def api() -> Iterator[Api]:
    """A real ThreadingHTTPServer on 127.0.0.1 (free port) serving 23 records in every style."""
    state = Api(records=make_records(1, 24))
    handler = type("Handler", (_Handler,), {"api": state})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    state.base = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


class Sleeps:
    """Records the delays the source asked for, without waiting (the server stays real)."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def run(source: HttpSource, state: dict[str, Any]) -> tuple[list[SourceBatch], dict[str, Any]]:
    """Consume a run like the pipeline: state entries are JSON, ``None`` deletes one."""
    batches = []
    for batch in source.read(SourceState(state)):
        batches.append(batch)
        state = {**state, **json.loads(json.dumps(dict(batch.state)))}
        state = {k: v for k, v in state.items() if v is not None}
    return batches, state


def ids(batches: list[SourceBatch]) -> list[int]:
    return [i for b in batches for i in b.data.column("id").to_pylist()]


def pages(api: Api, **kwargs: Any) -> HttpSource:
    defaults: dict[str, Any] = {
        "paging": "page",
        "records_path": "data.items",
        "size_param": "limit",
        "page_size": 5,
    }
    return HttpSource(f"{api.base}/pages", **{**defaults, **kwargs})


def test_page_paging_reads_every_record_once_despite_429_and_5xx(api: Api) -> None:
    api.faults.extend([(429, {"Retry-After": "0"}), (500, {}), (503, {})])
    sleeps = Sleeps()
    source = pages(api, sleep=sleeps)

    batches, state = run(source, {})

    assert ids(batches) == list(range(1, 24))
    assert [b.data.num_rows for b in batches] == [5, 5, 5, 5, 3]
    assert source.retries == 3
    assert len(sleeps.calls) == 3
    assert sleeps.calls[0] == 0.0  # Retry-After: 0 honoured exactly, no backoff added
    assert state == {"page": 5}


def test_retry_after_seconds_is_honoured_and_capped_by_max_backoff(api: Api) -> None:
    api.faults.extend([(429, {"Retry-After": "1"}), (429, {"Retry-After": "120"})])
    sleeps = Sleeps()

    batches, _ = run(pages(api, sleep=sleeps, max_backoff=5), {})

    assert ids(batches) == list(range(1, 24))
    assert sleeps.calls == [1.0, 5.0]


def test_retry_after_http_date_is_honoured(api: Api) -> None:
    when = datetime.now(UTC) + timedelta(seconds=3)
    api.faults.append((503, {"Retry-After": format_datetime(when, usegmt=True)}))
    sleeps = Sleeps()

    run(pages(api, sleep=sleeps), {})

    assert len(sleeps.calls) == 1
    assert 1.0 <= sleeps.calls[0] <= 3.0


def test_backoff_doubles_with_jitter_and_caps(api: Api) -> None:
    api.faults.extend([(500, {}), (502, {}), (504, {}), (500, {})])
    sleeps = Sleeps()

    run(pages(api, sleep=sleeps, backoff=0.1, max_backoff=0.3), {})

    low_high = [(0.05, 0.1), (0.1, 0.2), (0.15, 0.3), (0.15, 0.3)]
    assert len(sleeps.calls) == 4
    for delay, (low, high) in zip(sleeps.calls, low_high, strict=True):
        assert low <= delay <= high


def test_retries_exhausted_raise_transient_error_and_commit_nothing(api: Api) -> None:
    api.faults.extend([(500, {})] * 3)
    source = pages(api, sleep=Sleeps(), max_retries=2)

    with pytest.raises(TransientError, match="HTTP 500") as info:
        run(source, {})

    assert "after 3 attempts" in str(info.value)
    assert len(api.requests) == 3


def test_unreachable_server_is_retried_then_transient(api: Api) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sleeps = Sleeps()
    source = HttpSource(f"http://127.0.0.1:{port}/x", max_retries=1, sleep=sleeps, timeout=2)

    with pytest.raises(TransientError, match="connection failed"):
        run(source, {})

    assert len(sleeps.calls) == 1


def test_page_paging_resumes_after_the_last_committed_page(api: Api) -> None:
    source = pages(api)
    batches = list(source.read(SourceState({})))

    for crashed_after in range(len(batches)):
        committed = ids(batches[: crashed_after + 1])
        rest, _ = run(source, dict(batches[crashed_after].state))
        assert committed + ids(rest) == list(range(1, 24))


def test_offset_paging_picks_up_records_appended_since_the_last_run(api: Api) -> None:
    source = HttpSource(
        f"{api.base}/offsets",
        paging="offset",
        records_path="data.items",
        size_param="limit",
        page_size=5,
    )
    first, state = run(source, {})
    api.records.extend(make_records(24, 27))
    second, state = run(source, state)

    assert ids(first) == list(range(1, 24))
    assert ids(second) == [24, 25, 26]
    assert state == {"offset": 26}


def test_cursor_paging_reads_all_then_marks_done(api: Api) -> None:
    source = HttpSource(
        f"{api.base}/cursors",
        paging="cursor",
        records_path="items",
        cursor_path="meta.next_cursor",
    )
    batches, state = run(source, {})
    resumed, _ = run(source, dict(batches[1].state))
    again, _ = run(source, state)

    assert ids(batches) == list(range(1, 24))
    assert ids(batches[:2]) + ids(resumed) == list(range(1, 24))
    assert state["done"] is True
    assert again == []


@pytest.mark.parametrize(
    ("route", "records_path", "next_link_path"),
    [("/links", "items", "links.next"), ("/link-header", None, None)],
)
def test_next_link_paging_follows_links_and_resumes(
    api: Api, route: str, records_path: str | None, next_link_path: str | None
) -> None:
    source = HttpSource(
        f"{api.base}{route}",
        paging="next_link",
        records_path=records_path,
        next_link_path=next_link_path,
        params={"limit": 4},
    )
    batches, state = run(source, {})
    resumed, _ = run(source, dict(batches[0].state))
    again, _ = run(source, state)

    assert ids(batches) == list(range(1, 24))
    assert ids(batches[:1]) + ids(resumed) == list(range(1, 24))
    assert state["done"] is True
    assert again == []


def test_nested_objects_become_structs_and_raw_is_the_page_json(api: Api) -> None:
    batches, _ = run(pages(api), {})

    first = batches[0]
    assert first.data.schema.field("meta").type == pa.struct([("even", pa.bool_())])
    assert first.raw is not None
    assert first.raw.suffix == ".json"
    assert json.loads(first.raw.data)["data"]["items"][0] == {
        "id": 1,
        "name": "n1",
        "meta": {"even": False},
    }
    assert first.origin == "page 1"


def test_secret_headers_authenticate_and_never_leak(api: Api) -> None:
    common: dict[str, Any] = {"records_path": "data.items", "size_param": "limit", "page_size": 5}
    allowed = HttpSource(f"{api.base}/secure", headers={"Authorization": TOKEN}, **common)
    refused = HttpSource(f"{api.base}/secure", headers={"Authorization": "Bearer nope"}, **common)

    batches, _ = run(allowed, {})
    with pytest.raises(PermissionDeniedError, match="HTTP 401") as info:
        run(refused, {})

    assert ids(batches) == list(range(1, 24))
    for text in (str(info.value), repr(allowed), allowed.describe()):
        assert "sup3r-secret-token" not in text
        assert "nope" not in text


def test_secret_query_values_are_redacted_in_errors(api: Api) -> None:
    source = HttpSource(f"{api.base}/nowhere?token=hunter2", sleep=Sleeps())

    with pytest.raises(NotFoundError, match="HTTP 404") as info:
        run(source, {})

    assert "hunter2" not in str(info.value)
    assert "hunter2" not in source.describe()


def test_client_errors_are_not_retried(api: Api) -> None:
    sleeps = Sleeps()

    with pytest.raises(InvalidInputError, match="HTTP 400"):
        run(HttpSource(f"{api.base}/bad-request", sleep=sleeps), {})

    assert sleeps.calls == []
    assert len(api.requests) == 1


def test_bodies_that_are_not_the_expected_json_are_clear_errors(api: Api) -> None:
    with pytest.raises(InvalidInputError, match="not JSON"):
        run(HttpSource(f"{api.base}/not-json"), {})
    with pytest.raises(InvalidInputError, match=r"no 'data\.rows'"):
        run(pages(api, records_path="data.rows"), {})
    with pytest.raises(InvalidInputError, match="list of JSON objects"):
        run(pages(api, records_path="data"), {})


def test_bad_configuration_is_rejected_up_front() -> None:
    with pytest.raises(InvalidInputError, match="http"):
        HttpSource("ftp://example.com/x")
    with pytest.raises(InvalidInputError, match="paging must be one of"):
        HttpSource("http://127.0.0.1/x", paging="scroll")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="cursor_path"):
        HttpSource("http://127.0.0.1/x", paging="cursor")


def test_pipeline_ingests_a_flaky_api_exactly_once_and_lands_raw_pages(
    api: Api, tmp_path: Path
) -> None:
    import lakekit

    api.faults.extend([(429, {"Retry-After": "0"}), (502, {})])
    source = HttpSource(
        f"{api.base}/offsets",
        paging="offset",
        records_path="data.items",
        size_param="limit",
        page_size=5,
        sleep=Sleeps(),
    )
    with lakekit.connect(f"local://{tmp_path / 'lake'}", store={"fsync": False}) as lake:
        pipeline = lake.pipeline("api_items")
        first = pipeline.run(source, into="raw.items", land_raw=True)
        api.records.extend(make_records(24, 26))
        second = pipeline.run(source, into="raw.items", land_raw=True)
        loaded = lake.table("raw.items").to_arrow()

    assert sorted(loaded.column("id").to_pylist()) == list(range(1, 26))
    assert (first.rows_in, second.rows_in) == (23, 2)
    assert source.retries == 2
