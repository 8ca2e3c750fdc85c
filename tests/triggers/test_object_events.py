"""Object events on a local lake: lakekit's writes (prompt), files dropped by other programs
(once stable), deletes, noise filtering, and at-least-once delivery across restarts."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from trigger_helpers import wait_for

import lakekit
from lakekit.events import ObjectCreated, ObjectDeleted
from lakekit.interfaces.function_runtime import Context, FunctionOptions
from lakekit.lake import Lake
from lakekit.triggers.object_events import object_event_id
from lakekit.triggers.server import LocalServer


class Seen:
    """Thread-safe record of the events a handler received."""

    def __init__(self) -> None:
        self.events: list[Any] = []
        self.lock = threading.Lock()

    def __call__(self, event: Any, context: Context) -> None:
        with self.lock:
            self.events.append(event)

    def seen_keys(self) -> list[str]:
        with self.lock:
            return [event.key for event in self.events]

    def of(self, key: str) -> list[Any]:
        with self.lock:
            return [event for event in self.events if event.key == key]


def _root(lake: Lake) -> Path:
    return Path(lake.store.uri())


def test_lakekit_writes_in_this_process_are_delivered_without_waiting_for_a_scan(
    lake: Lake, serve: Callable[..., LocalServer]
) -> None:
    seen = Seen()
    lake.functions.on_object_created(prefix="raw/", suffix=".json", name="load")(seen)
    serve(lake, scan_interval=60.0)  # only the start-up scan: no later scan can help
    time.sleep(0.1)
    started = time.monotonic()
    meta = lake.store.put("raw/2026/orders.json", b'{"id": 1}')
    (event,) = wait_for(lambda: seen.of("raw/2026/orders.json"), timeout=5)
    assert time.monotonic() - started < 2.0
    assert isinstance(event, ObjectCreated)
    assert event.key == "raw/2026/orders.json"
    assert event.size == 9
    assert event.etag == meta.etag == lake.store.head("raw/2026/orders.json").etag
    assert event.bucket == str(_root(lake))
    assert event.source == "local"
    assert event.id == object_event_id("created", "raw/2026/orders.json", meta.etag)
    assert event.time == meta.last_modified


def test_handlers_get_the_lake_and_read_the_object_by_its_key(
    lake: Lake, serve: Callable[..., LocalServer]
) -> None:
    copies: list[bytes] = []

    @lake.functions.on_object_created(prefix="landing/")
    def copy(event: ObjectCreated, context: Context) -> None:
        assert context.lake is not None
        data = context.lake.store.get(event.key)
        context.lake.store.put(event.key.replace("landing/", "bronze/"), data)
        copies.append(data)

    serve(lake)
    lake.store.put("landing/a.csv", b"x,y\n1,2\n")
    wait_for(lambda: lake.store.exists("bronze/a.csv"))
    assert lake.store.get("bronze/a.csv") == b"x,y\n1,2\n"
    time.sleep(0.3)
    assert copies == [b"x,y\n1,2\n"], "the copy under bronze/ is outside the prefix"


def test_files_dropped_by_other_programs_are_delivered_once_stable(
    lake: Lake, serve: Callable[..., LocalServer]
) -> None:
    seen = Seen()
    lake.functions.on_object_created(prefix="drop/", name="load")(seen)
    serve(lake)
    target = _root(lake) / "drop" / "sub" / "file.csv"
    target.parent.mkdir(parents=True)
    with open(target, "wb") as fh:  # a plain write, not through lakekit
        fh.write(b"a,b\n")
    (event,) = wait_for(lambda: seen.of("drop/sub/file.csv"))
    assert event.size == 4
    assert event.etag == lake.store.head("drop/sub/file.csv").etag
    time.sleep(0.4)
    assert len(seen.of("drop/sub/file.csv")) == 1, "an unchanged file is reported once"
    with open(target, "ab") as fh:
        fh.write(b"1,2\n")
    wait_for(lambda: len(seen.of("drop/sub/file.csv")) == 2)
    assert seen.of("drop/sub/file.csv")[1].size == 8, "a rewrite is a new ObjectCreated"


def test_a_slowly_growing_file_is_delivered_only_when_complete(
    lake: Lake, serve: Callable[..., LocalServer]
) -> None:
    seen = Seen()
    lake.functions.on_object_created(prefix="drop/", name="load")(seen)
    # Scans every 20 ms see the same size several times between two chunks: only the
    # minimum age (settle) keeps the file from being reported half-written.
    serve(lake, scan_interval=0.02, settle=0.4)
    target = _root(lake) / "drop" / "big.bin"
    target.parent.mkdir(parents=True)
    with open(target, "wb") as fh:
        for _ in range(8):  # 0.8 s of writing, a chunk every 100 ms
            fh.write(b"x" * 1000)
            fh.flush()
            time.sleep(0.1)
    (event,) = wait_for(lambda: seen.of("drop/big.bin"), timeout=5)
    assert event.size == 8_000
    time.sleep(0.3)
    assert len(seen.of("drop/big.bin")) == 1


def test_deletes_through_lakekit_and_by_other_programs_are_reported(
    lake: Lake, serve: Callable[..., LocalServer]
) -> None:
    deleted = Seen()
    lake.functions.on_object_deleted(prefix="raw/", name="forget")(deleted)
    lake.store.put("raw/a.json", b"1")
    lake.store.put("raw/b.json", b"2")
    serve(lake)
    old_etag = lake.store.head("raw/a.json").etag
    lake.store.delete("raw/a.json")
    (event,) = wait_for(lambda: deleted.of("raw/a.json"))
    assert isinstance(event, ObjectDeleted)
    assert event.id == object_event_id("deleted", "raw/a.json", old_etag)
    os.remove(_root(lake) / "raw" / "b.json")
    wait_for(lambda: deleted.of("raw/b.json"))
    lake.store.delete("raw/never-existed.json")
    time.sleep(0.3)
    assert sorted(deleted.seen_keys()) == ["raw/a.json", "raw/b.json"]


def test_prefix_and_suffix_filter_keys(lake: Lake, serve: Callable[..., LocalServer]) -> None:
    json_only = Seen()
    everything = Seen()
    lake.functions.on_object_created(prefix="raw/2026", suffix=".json", name="json_only")(json_only)
    lake.functions.on_object_created(name="everything")(everything)
    serve(lake)
    for key in ["raw/2026/a.json", "raw/2026-11/b.json", "raw/2026/c.csv", "raw/2025/d.json"]:
        lake.store.put(key, b"{}")
    lake.store.put("zzz/sentinel", b"")
    wait_for(lambda: everything.of("zzz/sentinel"))
    assert sorted(json_only.seen_keys()) == ["raw/2026-11/b.json", "raw/2026/a.json"]
    assert len(everything.seen_keys()) == 5


def test_lakekit_internals_and_reserved_folders_are_never_reported(
    lake: Lake, serve: Callable[..., LocalServer]
) -> None:
    import pyarrow as pa

    everything = Seen()
    lake.functions.on_object_created(name="everything")(everything)
    lake.functions.register("fails", _always_fails, FunctionOptions(retries=0))
    serve(lake)
    root = _root(lake)
    lake.store.put("_lakekit/notes.json", b"{}")
    lake.store.put("tables/t/_lakekit/metadata/1.json", b"{}")
    (root / ".lakekit" / "junk").mkdir(parents=True)
    (root / ".lakekit" / "junk" / "x.json").write_bytes(b"{}")
    (root / ".lakekit-tmp" / "y.tmp").write_bytes(b"{}")
    (root / "a-link").symlink_to(root / "_lakekit" / "notes.json")
    with pytest.raises(lakekit.FunctionError):
        lake.functions.invoke_async("fails", {"n": 1}).result(timeout=10)  # a dead letter
    table = lake.create_table("sales.orders", pa.schema([("id", pa.int64())]))
    table.append(pa.table({"id": [1, 2]}))
    # Table data files are written by pyarrow, not lake.store.put: a scan finds them, and
    # by then it has seen everything written before them.
    wait_for(lambda: [k for k in everything.seen_keys() if k.endswith(".parquet")])
    lake.store.put("zzz/sentinel", b"")
    wait_for(lambda: everything.of("zzz/sentinel"))
    keys = everything.seen_keys()
    assert [k for k in keys if "_lakekit" in k or ".lakekit" in k or "link" in k] == []
    assert [k for k in keys if not k.endswith(".parquet")] == ["zzz/sentinel"]


def _always_fails(event: Any, context: Context) -> None:
    raise RuntimeError("no")


def test_first_start_does_not_report_files_that_already_exist(
    lake: Lake, serve: Callable[..., LocalServer]
) -> None:
    seen = Seen()
    lake.store.put("raw/old.json", b"{}")
    lake.functions.on_object_created(prefix="raw/", name="load")(seen)
    serve(lake)
    lake.store.put("raw/new.json", b"{}")
    wait_for(lambda: seen.of("raw/new.json"))
    time.sleep(0.3)
    assert seen.seen_keys() == ["raw/new.json"]


def test_changes_made_while_the_server_was_down_are_delivered_once_after_restart(
    lake: Lake,
) -> None:
    created, deleted = Seen(), Seen()
    lake.functions.on_object_created(prefix="raw/", name="load")(created)
    lake.functions.on_object_deleted(prefix="raw/", name="forget")(deleted)
    settings = {"scan_interval": 0.05, "settle": 0.1}
    with LocalServer(lake, **settings):
        lake.store.put("raw/a.json", b"1")
        wait_for(lambda: created.of("raw/a.json"))
    # The server is down: a lakekit write, a foreign write and a delete.
    lake.store.put("raw/b.json", b"22")
    (_root(lake) / "raw" / "c.json").write_bytes(b"333")
    lake.store.delete("raw/a.json")
    time.sleep(0.2)
    assert sorted(created.seen_keys()) == ["raw/a.json"]
    with LocalServer(lake, **settings):
        wait_for(lambda: created.of("raw/b.json") and created.of("raw/c.json"))
        wait_for(lambda: deleted.of("raw/a.json"))
        time.sleep(0.3)
    with LocalServer(lake, **settings):
        time.sleep(0.4)
    assert sorted(created.seen_keys()) == ["raw/a.json", "raw/b.json", "raw/c.json"]
    assert deleted.seen_keys() == ["raw/a.json"]


def test_a_write_by_lakekit_in_another_process_is_delivered(
    lake: Lake, serve: Callable[..., LocalServer]
) -> None:
    seen = Seen()
    lake.functions.on_object_created(prefix="raw/", name="load")(seen)
    serve(lake)
    code = (
        "import lakekit, sys\n"
        "with lakekit.connect(sys.argv[1]) as lake:\n"
        "    lake.store.put('raw/from-child.json', b'{}')\n"
    )
    subprocess.run([sys.executable, "-c", code, f"local://{_root(lake)}"], check=True)
    wait_for(lambda: seen.of("raw/from-child.json"))


_CRASHING_SERVER = textwrap.dedent(
    """
    import os, sys, time
    import lakekit
    from lakekit.triggers import LocalServer

    lake = lakekit.connect(sys.argv[1])
    log = sys.argv[2]

    @lake.functions.on_object_created(prefix="raw/")
    def load(event, context):
        with open(log, "a") as fh:
            fh.write(event.id + "\\n")
            fh.flush()
        os._exit(9)  # the process dies while handling the event

    server = LocalServer(lake, scan_interval=0.05, settle=0.1).start()
    print("ready", flush=True)
    time.sleep(60)
    """
)


def test_an_event_whose_handler_died_with_the_process_is_delivered_again_with_its_id(
    lake: Lake, tmp_path: Path
) -> None:
    script = tmp_path / "server.py"
    script.write_text(_CRASHING_SERVER)
    log = tmp_path / "deliveries.txt"
    root = _root(lake)
    with subprocess.Popen(
        [sys.executable, str(script), f"local://{root}", str(log)],
        stdout=subprocess.PIPE,
        text=True,
    ) as child:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        (root / "raw").mkdir()
        (root / "raw" / "x.json").write_bytes(b"{}")
        assert child.wait(timeout=30) == 9
    (crashed_id,) = log.read_text().split()

    seen = Seen()
    lake.functions.on_object_created(prefix="raw/", name="load")(seen)
    with LocalServer(lake, scan_interval=0.05, settle=0.1):
        (event,) = wait_for(lambda: seen.of("raw/x.json"))
        time.sleep(0.3)
    assert event.id == crashed_id
    assert len(seen.seen_keys()) == 1


def test_scan_stats_report_what_a_scan_saw(lake: Lake, serve: Callable[..., LocalServer]) -> None:
    lake.functions.on_object_created(prefix="raw/", name="load")(Seen())
    for i in range(50):
        lake.store.put(f"raw/{i % 5}/{i}.json", b"{}")
    lake.store.put("elsewhere/x", b"")
    server = serve(lake)
    assert server.objects is not None
    stats = server.objects.scan_now()
    assert stats.files == 50, "only the triggers' prefixes are walked"
    assert stats.seconds >= 0
