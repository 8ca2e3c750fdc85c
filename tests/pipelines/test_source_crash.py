"""kill -9 a pipeline reading each built-in source kind, again and again: every source row lands
exactly once.

For each kind (files, SQLite, PostgreSQL, a paged HTTP API, a stream) the parent prepares
``TOTAL`` source rows with a unique ``id``, then starts child processes that run
``lake.pipeline(...).run(source, ...)`` with a small ``batch_rows`` (one commit every few rows)
and SIGKILLs each one — at a random moment, or just as its n-th catalog commit starts. After every
kill the parent checks that the table holds exactly the rows the committed source state says
were read (no duplicate, no gap); at the end a run to completion leaves every row exactly once.

The sources themselves are real: files in the lake's object store (many small NDJSON and CSV
files and one large file split across several commits, to exercise resuming inside a file), a
SQLite file and a PostgreSQL server read by cursor column, an ``http.server`` on 127.0.0.1 that
the child connects to, and a local stream read through a consumer group.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import random
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import sqlalchemy as sa

import crashing
import lakekit
from lakekit.lake import Lake
from lakekit.pipelines import Source, SourceState
from servers.postgres import PostgresServer

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL"),
]

TOTAL = 1050
CHUNK = 7  # rows per source batch (file batch, SQL chunk, HTTP page, stream poll)
BATCH_ROWS = 10  # rows per pipeline commit: one source batch per commit
ITERATIONS = 10
MIN_KILLS = 6
PIPELINE = "crashy"
TARGET = "crash.rows"
STREAM = {"fsync": "never", "partitions": 3}
_PRELOAD = [
    "lakekit.lake",
    "lakekit.pipelines.pipeline",
    "lakekit.pipelines.sources.files",
    "lakekit.pipelines.sources.http",
    "lakekit.pipelines.sources.sql",
    "lakekit.pipelines.sources.stream",
    "lakekit.tables.table",
    "lakekit.tables.writer",
    "lakekit.adapters.local.object_store",
    "lakekit.adapters.local.stream",
    "lakekit.adapters.sql.catalog",
    "sqlalchemy",
    "sqlalchemy.dialects.sqlite",
    "sqlalchemy.dialects.postgresql",
    "psycopg",
    "pyarrow.csv",
    "pyarrow.dataset",
    "pyarrow.parquet",
    "urllib.request",
    "pytest",
]


def _connect(url: str) -> Lake:
    return lakekit.connect(url, store={"fsync": False}, stream=dict(STREAM))


# -- building each kind's source (in the child and for the final run) ----------------------------
def _source(kind: str, spec: dict[str, Any], lake: Lake) -> Source:
    if kind == "files":
        from lakekit.pipelines.sources.files import FileSource

        return FileSource(lake.store, "landing/", batch_rows=CHUNK)
    if kind in ("sqlite", "postgres"):
        from lakekit.pipelines.sources.sql import SqlSource

        return SqlSource(spec["url"], table=spec["table"], cursor="id", chunk_rows=CHUNK)
    if kind == "http":
        from lakekit.pipelines.sources.http import HttpSource

        return HttpSource(
            spec["url"], paging="page", page_size=CHUNK, size_param="size", max_retries=0
        )
    from lakekit.pipelines.sources.stream import StreamSource

    return StreamSource(lake.stream(spec["stream"]), group="loader", max_records=CHUNK)


def _run(kind: str, spec: dict[str, Any], url: str) -> Any:
    with _connect(url) as lake:
        source = _source(kind, spec, lake)
        try:
            return lake.pipeline(PIPELINE).run(
                source, into=TARGET, batch_rows=BATCH_ROWS, progress=False
            )
        finally:
            source.close()


def _child(kind: str, spec: dict[str, Any], url: str, log_path: str) -> None:
    """Run the pipeline, logging ``commit`` as each catalog commit starts (killed by the parent)."""
    lake = _connect(url)
    with open(log_path, "a", encoding="utf-8") as log:
        crashing.log_commits(lake.catalog, log)
        source = _source(kind, spec, lake)
        crashing.log_line(log, "ready")
        lake.pipeline(PIPELINE).run(source, into=TARGET, batch_rows=BATCH_ROWS, progress=False)
        crashing.log_line(log, "done")
    source.close()
    lake.close()


# -- the source data of each kind, and the ids a committed state stands for ----------------------
@dataclass
class Scenario:
    spec: dict[str, Any]
    committed_ids: Callable[[SourceState], set[int]]
    """The ids the table must hold when the pipeline state is the given one."""
    inside_a_file: Callable[[SourceState], bool] | None = None
    """Files only: whether the state stops in the middle of a file."""
    invariant: Callable[[Lake, SourceState], None] | None = None
    """Checks of the source's own bookkeeping against the committed state."""


def _record(i: int) -> dict[str, Any]:
    return {"id": i, "name": f"row-{i}"}


def _files(url: str) -> Scenario:
    """Two large files read first (120 NDJSON rows, 80 CSV rows: each committed in many pieces,
    so kills land inside them) and small files of 10 rows (NDJSON and CSV)."""
    from lakekit.pipelines.sources.files import state_key

    contents: dict[str, list[int]] = {}
    ids = iter(range(TOTAL))
    contents["landing/a_large.ndjson"] = [next(ids) for _ in range(120)]
    contents["landing/b_large.csv"] = [next(ids) for _ in range(80)]
    for n in range((TOTAL - 200) // 10):
        contents[f"landing/f{n:03d}.{'csv' if n % 3 == 0 else 'ndjson'}"] = [
            next(ids) for _ in range(10)
        ]
    assert next(ids, None) is None
    with _connect(url) as lake:
        for key, rows in contents.items():
            if key.endswith(".csv"):
                text = "id,name\n" + "".join(f"{i},row-{i}\n" for i in rows)
            else:
                text = "".join(json.dumps(_record(i)) + "\n" for i in rows)
            lake.store.put(key, text.encode())

    def committed_ids(state: SourceState) -> set[int]:
        done: set[int] = set()
        for key, rows in contents.items():
            entry = state.get(state_key(key))
            if entry is not None:
                done.update(rows[: int(entry["rows"])])
        return done

    def inside_a_file(state: SourceState) -> bool:
        entries = (state.get(state_key(key)) for key in contents)
        return any(entry is not None and not entry["done"] for entry in entries)

    return Scenario({}, committed_ids, inside_a_file)


def _sql(url: str, table: str) -> Scenario:
    from lakekit.pipelines.sources.sql import decode_cursor

    engine = sa.create_engine(url)
    try:
        rows = sa.Table(
            table,
            sa.MetaData(),
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
            sa.Column("name", sa.String(40), nullable=False),
        )
        with engine.begin() as conn:
            rows.create(conn)
            conn.execute(rows.insert(), [_record(i) for i in range(TOTAL)])
    finally:
        engine.dispose()

    def committed_ids(state: SourceState) -> set[int]:
        cursor = state.get("cursor")
        return set() if cursor is None else set(range(int(decode_cursor(cursor)) + 1))

    return Scenario({"url": url, "table": table}, committed_ids)


class _PagedApi(http.server.BaseHTTPRequestHandler):
    """``GET /items?page=N&size=S``: the records of page N (from 1) as a JSON list."""

    def do_GET(self) -> None:
        query = parse_qs(urlsplit(self.path).query)
        page, size = int(query["page"][0]), int(query["size"][0])
        first = (page - 1) * size
        body = json.dumps([_record(i) for i in range(first, min(first + size, TOTAL))]).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


class _QuietServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A killed child drops its connection mid-request: expected here."""


@contextlib.contextmanager
def _http() -> Iterator[Scenario]:
    server = _QuietServer(("127.0.0.1", 0), _PagedApi)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]

        def committed_ids(state: SourceState) -> set[int]:
            return set(range(min(int(state.get("page", 0)) * CHUNK, TOTAL)))

        yield Scenario({"url": f"http://127.0.0.1:{port}/items"}, committed_ids)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def _stream(url: str) -> Scenario:
    with _connect(url) as lake:
        stream = lake.stream("events")
        where: dict[tuple[int, int], int] = {}
        for first in range(0, TOTAL, 50):  # several publishes: spread over the partitions
            ids = range(first, min(first + 50, TOTAL))
            positions = stream.publish_many([json.dumps(_record(i)) for i in ids])
            where.update({(p.partition, p.offset): i for p, i in zip(positions, ids, strict=True)})

    def committed_ids(state: SourceState) -> set[int]:
        offsets = {int(p): n for p, n in (state.get("offsets") or {}).items()}
        return {i for (p, offset), i in where.items() if offset < offsets.get(p, 0)}

    def group_never_leads_the_state(lake: Lake, state: SourceState) -> None:
        offsets = {int(p): n for p, n in (state.get("offsets") or {}).items()}
        group = lake.stream("events").committed("loader")
        assert all(n <= offsets.get(p, 0) for p, n in group.items()), (group, offsets)

    return Scenario({"stream": "events"}, committed_ids, invariant=group_never_leads_the_state)


@pytest.fixture
def lake_url(tmp_path: Path) -> str:
    return f"local://{tmp_path / 'lake'}"


@pytest.fixture
def scenario(request: pytest.FixtureRequest, tmp_path: Path, lake_url: str) -> Iterator[Scenario]:
    kind = request.param
    if kind == "files":
        yield _files(lake_url)
    elif kind == "sqlite":
        yield _sql(f"sqlite:///{tmp_path / 'source.db'}", "orders")
    elif kind == "postgres":
        server: PostgresServer = request.getfixturevalue("postgres_server")
        table = f"crash_{uuid.uuid4().hex[:10]}"
        yield _sql(server.url, table)
        engine = sa.create_engine(server.url)
        try:
            with engine.begin() as conn:
                conn.execute(sa.text(f'DROP TABLE IF EXISTS "{table}"'))
        finally:
            engine.dispose()
    elif kind == "http":
        with _http() as api:
            yield api
    else:
        yield _stream(lake_url)


# -- the kill loop ---------------------------------------------------------------------------------
def _ids(lake: Lake) -> list[int]:
    values: list[Any] = lake.table(TARGET).to_arrow().column("id").to_pylist()
    return [int(i) for i in values]


def _check(url: str, scenario: Scenario) -> tuple[int, bool]:
    """Assert the table holds exactly the rows of the committed state; return how many, and
    whether the state stops inside a file."""
    with _connect(url) as lake:
        state = lake.pipeline(PIPELINE).state()
        inside = scenario.inside_a_file is not None and scenario.inside_a_file(state)
        if scenario.invariant is not None:
            scenario.invariant(lake, state)
        expected = scenario.committed_ids(state)
        if not lake.catalog.table_exists(TARGET):
            assert not expected, "state committed without its rows"
            return 0, inside
        ids = _ids(lake)
    assert len(ids) == len(set(ids)), f"duplicate rows: {len(ids) - len(set(ids))}"
    missing, extra = expected - set(ids), set(ids) - expected
    assert not missing and not extra, (
        f"table and committed state disagree: {len(missing)} missing, {len(extra)} extra"
    )
    return len(ids), inside


@pytest.mark.parametrize(
    "scenario",
    ["files", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres), "http", "stream"],
    indirect=True,
)
def test_killed_runs_load_every_source_row_exactly_once(
    request: pytest.FixtureRequest, scenario: Scenario, lake_url: str, tmp_path: Path
) -> None:
    kind = request.node.callspec.params["scenario"]
    ctx = crashing.child_context(_PRELOAD)
    rng = random.Random(f"{kind}-20261126")
    loaded: list[int] = []
    kills = inside = 0
    began = time.monotonic()
    for iteration in range(ITERATIONS):
        log_path = tmp_path / f"child-{iteration}.log"
        child = ctx.Process(target=_child, args=(kind, scenario.spec, lake_url, str(log_path)))
        with crashing.started(child):
            crashing.wait_for_line(log_path, "ready", child)
            if iteration % 2:
                time.sleep(rng.uniform(0.01, 0.15))
            else:  # just as the n-th catalog commit starts
                crashing.wait_for_line(log_path, "commit", child, count=rng.randrange(1, 10))
                time.sleep(rng.uniform(0.0, 0.003))
            crashing.sigkill(child)
        if "done" in crashing.log_lines(log_path):
            break  # the run completed before the kill: nothing left to interrupt
        assert child.exitcode == -signal.SIGKILL, f"child failed: exit code {child.exitcode}"
        kills += 1
        rows, stopped_inside = _check(lake_url, scenario)
        loaded.append(rows)
        inside += stopped_inside
    assert kills >= MIN_KILLS, "the runs finished too fast to be interrupted"
    assert loaded[-1] > 0 and loaded == sorted(loaded), f"progress went backwards: {loaded}"
    if scenario.inside_a_file is not None:
        assert inside, "no kill landed inside a file: resuming within a file was not exercised"
    report = _run(kind, scenario.spec, lake_url)
    assert report.status in ("succeeded", "nothing to do")
    assert _check(lake_url, scenario) == (TOTAL, False)
    with _connect(lake_url) as lake:
        ids = sorted(_ids(lake))
    assert ids == list(range(TOTAL)), "every source row exactly once"
    print(
        f"{kind}: {kills} kills in {time.monotonic() - began:.1f} s"
        f"{f' ({inside} inside a file)' if scenario.inside_a_file else ''}, "
        f"rows after each: {loaded}; "
        f"final run loaded {report.rows_out} rows in {report.commits} commits"
    )
