"""What the SQL catalog adds beyond the conformance suite: configuration, its own tables,
SQLite locking, error mapping and credential hygiene, on SQLite and a real PostgreSQL."""

from __future__ import annotations

import multiprocessing
import socket
import sqlite3
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import sqlalchemy as sa

import lakekit
from lakekit.adapters.sql.catalog import SqlCatalog, SqlCatalogSettings
from lakekit.errors import (
    ConfigurationError,
    InvalidInputError,
    LakekitError,
    MissingDependencyError,
    NotFoundError,
    TransientError,
)
from lakekit.interfaces.catalog import Catalog, TableUpdate

_FIELDS: list[pa.Field[Any]] = [pa.field("id", pa.int64()), pa.field("name", pa.string())]
SCHEMA = pa.schema(_FIELDS)


def _sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/catalog.db"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- configuration ------------------------------------------------------------------------------
def test_a_local_lake_keeps_its_catalog_in_sqlite_under_the_lake(tmp_path: Path) -> None:
    root = tmp_path / "lake"
    with lakekit.connect(f"local://{root}") as lake:
        assert isinstance(lake.catalog.adapter, SqlCatalog)
        lake.catalog.create_table("sales.orders", SCHEMA)
    assert (root / ".lakekit" / "catalog.db").is_file()
    with lakekit.connect(f"local://{root}") as again:  # durable across reopen
        assert again.catalog.load_table("sales.orders").schema.equals(SCHEMA)


def test_settings_come_from_environment_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAKEKIT_CATALOG_POOL_SIZE", "3")
    monkeypatch.setenv("LAKEKIT_CATALOG_TABLE_PREFIX", "env_")
    monkeypatch.setenv("LAKEKIT_CATALOG_BUSY_TIMEOUT", "2.5")
    with lakekit.connect(tmp_path / "lake") as lake:
        adapter = lake.catalog.adapter
        assert isinstance(adapter, SqlCatalog)
        assert adapter.settings.pool_size == 3
        assert adapter.settings.table_prefix == "env_"
        assert adapter.settings.busy_timeout == 2.5
        lake.catalog.create_namespace("ns")
    db = tmp_path / "lake" / ".lakekit" / "catalog.db"
    with sqlite3.connect(db) as conn:
        names = {row[0] for row in conn.execute("select name from sqlite_master")}
    conn.close()
    assert {"env_meta", "env_namespaces", "env_tables", "env_state"} <= names


def test_every_setting_documents_its_environment_variable() -> None:
    for name, field in SqlCatalogSettings.model_fields.items():
        assert field.description, name
        expected = "LAKEKIT_CATALOG" if name == "url" else f"LAKEKIT_CATALOG_{name.upper()}"
        assert expected in field.description, name


def test_an_unknown_setting_is_a_configuration_error(tmp_path: Path) -> None:
    with (
        lakekit.connect(tmp_path / "lake", catalog={"pool": 3}) as lake,
        pytest.raises(ConfigurationError, match="unknown setting 'pool'"),
    ):
        _ = lake.catalog


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"table_prefix": "Bad-Prefix"}, "table_prefix"),
        ({"pool_size": 0}, "pool_size"),
        ({"busy_timeout": -1}, "busy_timeout"),
    ],
)
def test_bad_settings_are_configuration_errors(
    tmp_path: Path, kwargs: dict[str, Any], match: str
) -> None:
    with pytest.raises(ConfigurationError, match=match):
        SqlCatalog(_sqlite_url(tmp_path), **kwargs)


def test_a_malformed_url_is_a_configuration_error_without_the_password() -> None:
    with pytest.raises(ConfigurationError, match="not a SQLAlchemy database URL") as info:
        SqlCatalog("not a url at all :: hunter2")
    assert "hunter2" not in str(info.value)
    with pytest.raises(ConfigurationError, match="not a SQLAlchemy database URL") as info:
        SqlCatalog("postgresql+psycopg://lake:hunter2@db:notaport/lake")
    assert "hunter2" not in str(info.value)


def test_a_missing_driver_says_what_to_install() -> None:
    pytest.importorskip("sqlalchemy")
    with pytest.raises((MissingDependencyError, ConfigurationError), match=r"MySQLdb|mysql"):
        SqlCatalog("mysql://user:hunter2@127.0.0.1/db")


def test_the_sqlite_directory_is_created(tmp_path: Path) -> None:
    catalog = Catalog(SqlCatalog(f"sqlite:///{tmp_path}/a/b/c/catalog.db"))
    catalog.create_namespace("ns")
    catalog.close()
    assert (tmp_path / "a" / "b" / "c" / "catalog.db").is_file()


def test_an_uncreatable_sqlite_directory_is_a_configuration_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(ConfigurationError, match="cannot create the directory"):
        SqlCatalog(f"sqlite:///{blocker}/sub/catalog.db")


def test_construction_does_not_touch_the_database(tmp_path: Path) -> None:
    SqlCatalog(_sqlite_url(tmp_path)).close()
    assert not (tmp_path / "catalog.db").exists()


def test_in_memory_sqlite_works_within_one_catalog_object() -> None:
    catalog = Catalog(SqlCatalog("sqlite://"))
    catalog.create_table("ns.t", SCHEMA)
    catalog.commit("ns.t", 1, TableUpdate(set_state={"k": 1}))
    assert catalog.load_table("ns.t").version == 2
    assert catalog.get_state("k") == 1
    catalog.close()


# -- the catalog's own tables --------------------------------------------------------------------
def test_sqlite_runs_in_wal_mode_with_full_sync(tmp_path: Path) -> None:
    adapter = SqlCatalog(_sqlite_url(tmp_path))
    Catalog(adapter).create_namespace("ns")
    with adapter._engine.connect() as conn:  # the catalog's own connections
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    adapter.close()


def test_the_layout_version_is_recorded(tmp_path: Path) -> None:
    url = _sqlite_url(tmp_path)
    Catalog(SqlCatalog(url)).list_namespaces()
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        rows = conn.exec_driver_sql("select key, value from lakekit_meta").all()
    engine.dispose()
    assert [tuple(r) for r in rows] == [("schema_version", "1")]


def test_a_newer_layout_version_is_refused(tmp_path: Path) -> None:
    url = _sqlite_url(tmp_path)
    Catalog(SqlCatalog(url)).list_namespaces()
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("update lakekit_meta set value = '99' where key = 'schema_version'")
    engine.dispose()
    catalog = Catalog(SqlCatalog(url))
    with pytest.raises(ConfigurationError, match="upgrade lakekit"):
        catalog.list_namespaces()
    catalog.close()


def test_table_prefixes_keep_catalogs_apart(tmp_path: Path) -> None:
    url = _sqlite_url(tmp_path)
    first = Catalog(SqlCatalog(url, table_prefix="one_"))
    second = Catalog(SqlCatalog(url, table_prefix="two_"))
    first.create_namespace("only_in_first")
    assert second.list_namespaces() == []
    first.close()
    second.close()


# -- SQLite locking --------------------------------------------------------------------------------
def test_a_sqlite_writer_waits_for_another_writer_instead_of_failing(tmp_path: Path) -> None:
    url = _sqlite_url(tmp_path)
    catalog = Catalog(SqlCatalog(url))
    catalog.create_table("ns.t", SCHEMA)
    other = sqlite3.connect(tmp_path / "catalog.db", isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")  # another connection holds the write lock for 0.5 s
    release = threading.Timer(0.5, other.execute, args=("COMMIT",))
    release.start()
    started = time.monotonic()
    try:
        assert catalog.commit("ns.t", 1, TableUpdate()).version == 2
    finally:
        release.join()
        other.close()
        catalog.close()
    assert time.monotonic() - started >= 0.4


def test_a_sqlite_writer_gives_up_after_busy_timeout_with_a_transient_error(
    tmp_path: Path,
) -> None:
    url = _sqlite_url(tmp_path)
    catalog = Catalog(SqlCatalog(url, busy_timeout=0.2))
    catalog.create_table("ns.t", SCHEMA)
    other = sqlite3.connect(tmp_path / "catalog.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(TransientError, match="retry later") as info:
            catalog.commit("ns.t", 1, TableUpdate(set_properties={"x": "y"}))
        assert isinstance(info.value.__cause__, sa.exc.OperationalError)
        assert catalog.load_table("ns.t").version == 1  # readers are not blocked (WAL)
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert catalog.commit("ns.t", 1, TableUpdate()).version == 2
    catalog.close()


def test_threads_sharing_one_catalog_have_one_winner_per_version(tmp_path: Path) -> None:
    catalog = Catalog(SqlCatalog(_sqlite_url(tmp_path)))
    catalog.create_table("ns.t", SCHEMA)
    outcomes: list[str] = []
    barrier = threading.Barrier(4)

    def commit() -> None:
        barrier.wait()
        try:
            catalog.commit("ns.t", 1, TableUpdate(set_state={"winner": threading.get_ident()}))
            outcomes.append("won")
        except lakekit.CommitConflictError:
            outcomes.append("conflict")

    threads = [threading.Thread(target=commit) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["conflict", "conflict", "conflict", "won"]
    assert catalog.load_table("ns.t").version == 2
    catalog.close()


# -- input validation ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "value", [{1, 2}, (1, 2), float("nan"), {"k": float("inf")}, {1: "int key"}, b"bytes"]
)
def test_state_values_must_be_json(tmp_path: Path, value: Any) -> None:
    catalog = Catalog(SqlCatalog(_sqlite_url(tmp_path)))
    with pytest.raises(InvalidInputError, match="JSON"):
        catalog.put_state("key", value)
    catalog.create_table("ns.t", SCHEMA)
    with pytest.raises(InvalidInputError, match="JSON"):
        catalog.commit("ns.t", 1, TableUpdate(set_state={"key": value}))
    assert catalog.state_entry("key") is None
    assert catalog.load_table("ns.t").version == 1
    catalog.close()


def test_properties_must_map_str_to_str(tmp_path: Path) -> None:
    catalog = Catalog(SqlCatalog(_sqlite_url(tmp_path)))
    with pytest.raises(InvalidInputError, match="str"):
        catalog.create_table("ns.t", SCHEMA, properties={"n": 1})  # type: ignore[dict-item]
    with pytest.raises(InvalidInputError, match="str"):
        catalog.create_namespace("ns2", {"n": None})  # type: ignore[dict-item]
    catalog.close()


def test_a_bad_expected_version_is_invalid_input(tmp_path: Path) -> None:
    catalog = Catalog(SqlCatalog(_sqlite_url(tmp_path)))
    catalog.create_table("ns.t", SCHEMA)
    with pytest.raises(InvalidInputError):
        catalog.commit("ns.t", "1", TableUpdate())  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        catalog.put_state("k", 1, expected_version=-1)
    catalog.close()


def test_a_commit_may_not_orphan_a_partition_column(tmp_path: Path) -> None:
    catalog = Catalog(SqlCatalog(_sqlite_url(tmp_path)))
    catalog.create_table("ns.t", SCHEMA, partition_by=["name"])
    with pytest.raises(lakekit.SchemaError, match="'name'"):
        catalog.commit("ns.t", 1, TableUpdate(schema=pa.schema([("id", pa.int64())])))
    assert catalog.load_table("ns.t").version == 1
    catalog.close()


def test_rename_keeps_the_version_and_frees_the_old_name(tmp_path: Path) -> None:
    catalog = Catalog(SqlCatalog(_sqlite_url(tmp_path)))
    catalog.create_table("ns.a", SCHEMA)
    catalog.commit("ns.a", 1, TableUpdate())
    catalog.rename_table("ns.a", "ns.b")
    assert catalog.load_table("ns.b").version == 2
    with pytest.raises(NotFoundError):
        catalog.commit("ns.a", 2, TableUpdate())
    catalog.create_table("ns.a", SCHEMA)
    assert catalog.load_table("ns.a").version == 1
    catalog.close()


# -- load_table: fast, never stale ---------------------------------------------------------------
def _change_in_another_process(url: str, prefix: str, results: Any) -> None:
    """Commit a property, then drop the table and re-create it (version 1 again, new schema)."""
    try:
        catalog = Catalog(SqlCatalog(url, table_prefix=prefix))
        catalog.set_properties("ns.t", {"owner": "child"})
        results.put(("committed", catalog.load_table("ns.t").version))
        catalog.drop_table("ns.t")
        catalog.create_table("ns.t", pa.schema([("other", pa.string())]), properties={"n": "2"})
        results.put(("recreated", catalog.load_table("ns.t").version))
        catalog.close()
    except BaseException as exc:
        results.put(("error", repr(exc)))


def _run_in_child(target: Any, *args: Any) -> list[tuple[Any, ...]]:
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    proc = ctx.Process(target=target, args=(*args, results))
    proc.start()
    try:
        outcomes: list[tuple[Any, ...]] = []
        while not outcomes or outcomes[-1][0] not in ("recreated", "error"):
            outcomes.append(results.get(timeout=90))
    finally:
        proc.join(30)
        results.close()
        results.join_thread()
    return outcomes


def _assert_load_table_sees_other_processes(url: str, prefix: str) -> None:
    catalog = Catalog(SqlCatalog(url, table_prefix=prefix))
    try:
        catalog.create_table("ns.t", SCHEMA)
        for _ in range(3):  # warm: the decoded metadata is reused from here on
            assert catalog.load_table("ns.t").properties == {}
        outcomes = _run_in_child(_change_in_another_process, url, prefix)
        assert [o[0] for o in outcomes] == ["committed", "recreated"], outcomes
        now = catalog.load_table("ns.t")
        assert now.version == 1
        assert now.schema.names == ["other"]
        assert now.properties == {"n": "2"}
    finally:
        catalog.close()


def test_load_table_sees_another_processs_commits_at_once(tmp_path: Path) -> None:
    url = _sqlite_url(tmp_path)
    catalog = Catalog(SqlCatalog(url))
    try:
        catalog.create_table("ns.t", SCHEMA)
        assert catalog.load_table("ns.t").version == 1
        ctx = multiprocessing.get_context("spawn")
        proc = ctx.Process(target=_commit_property, args=(url, "owner", "child"))
        proc.start()
        proc.join(90)
        assert proc.exitcode == 0
        seen = catalog.load_table("ns.t")
        assert (seen.version, seen.properties) == (2, {"owner": "child"})
    finally:
        catalog.close()


def _commit_property(url: str, key: str, value: str) -> None:
    catalog = Catalog(SqlCatalog(url))
    catalog.set_properties("ns.t", {key: value})
    catalog.close()


def test_load_table_sees_a_table_recreated_by_another_process_at_the_same_version(
    tmp_path: Path,
) -> None:
    _assert_load_table_sees_other_processes(_sqlite_url(tmp_path), "lakekit_")


@pytest.mark.postgres
def test_postgres_load_table_sees_a_table_recreated_by_another_process(
    postgres_url: str,
) -> None:
    _assert_load_table_sees_other_processes(postgres_url, f"fresh{uuid.uuid4().hex[:8]}_")


def test_each_load_table_returns_its_own_properties(tmp_path: Path) -> None:
    catalog = Catalog(SqlCatalog(_sqlite_url(tmp_path)))
    try:
        catalog.create_table("ns.t", SCHEMA, properties={"a": "1"})
        first = catalog.load_table("ns.t")
        first.properties["a"] = "changed by the caller"  # type: ignore[index]
        assert catalog.load_table("ns.t").properties == {"a": "1"}
    finally:
        catalog.close()


def test_load_table_of_a_missing_table_says_what_is_missing(tmp_path: Path) -> None:
    catalog = Catalog(SqlCatalog(_sqlite_url(tmp_path)))
    try:
        catalog.create_table("ns.t", SCHEMA)
        catalog.load_table("ns.t")
        catalog.drop_table("ns.t")
        with pytest.raises(NotFoundError, match=r"table ns\.t does not exist$"):
            catalog.load_table("ns.t")
        with pytest.raises(NotFoundError, match="namespace 'nope' does not exist"):
            catalog.load_table("nope.t")
    finally:
        catalog.close()


def test_concurrent_lookups_never_go_back_in_time(tmp_path: Path) -> None:
    catalog = Catalog(SqlCatalog(_sqlite_url(tmp_path)))
    catalog.create_table("ns.t", SCHEMA)
    stop = threading.Event()
    problems: list[str] = []

    def look() -> None:
        last = 0
        while not stop.is_set():
            version = catalog.load_table("ns.t").version
            if version < last:
                problems.append(f"saw version {version} after {last}")
            last = version

    readers = [threading.Thread(target=look) for _ in range(6)]
    for thread in readers:
        thread.start()
    try:
        for version in range(1, 31):
            catalog.commit("ns.t", version, TableUpdate(set_properties={"v": str(version)}))
            seen = catalog.load_table("ns.t")
            assert (seen.version, seen.properties) == (version + 1, {"v": str(version)})
    finally:
        stop.set()
        for thread in readers:
            thread.join()
        catalog.close()
    assert problems == []


def test_a_database_error_in_load_table_is_mapped_and_chained(tmp_path: Path) -> None:
    catalog = Catalog(SqlCatalog(_sqlite_url(tmp_path)))
    try:
        catalog.create_table("ns.t", SCHEMA)
        catalog.load_table("ns.t")
        vandal = sqlite3.connect(tmp_path / "catalog.db", isolation_level=None)
        vandal.execute("DROP TABLE lakekit_tables")
        vandal.close()
        with pytest.raises(LakekitError, match=r"catalog load_table failed.*no such table") as info:
            catalog.load_table("ns.t")
        assert isinstance(info.value.__cause__, sa.exc.OperationalError)
    finally:
        catalog.close()


# -- first use from several processes at once ------------------------------------------------------
def _first_use(url: str, prefix: str, barrier: Any, results: Any, worker: int) -> None:
    try:
        catalog = Catalog(SqlCatalog(url, table_prefix=prefix))
        barrier.wait()
        catalog.create_namespace(f"ns_{worker}")
        results.put(("ok", worker, catalog.list_namespaces()))
        catalog.close()
    except BaseException as exc:
        results.put(("error", worker, repr(exc)))


def _race_first_use(url: str, prefix: str, processes: int = 3) -> None:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(processes, timeout=60)
    results = ctx.Queue()
    procs = [
        ctx.Process(target=_first_use, args=(url, prefix, barrier, results, i))
        for i in range(processes)
    ]
    for proc in procs:
        proc.start()
    try:
        outcomes = [results.get(timeout=90) for _ in procs]
    finally:
        for proc in procs:
            proc.join(30)
        results.close()
        results.join_thread()
    assert all(o[0] == "ok" for o in outcomes), outcomes
    catalog = Catalog(SqlCatalog(url, table_prefix=prefix))
    assert catalog.list_namespaces() == [f"ns_{i}" for i in range(processes)]
    catalog.close()


def test_concurrent_first_use_of_a_fresh_sqlite_file_is_safe(tmp_path: Path) -> None:
    _race_first_use(_sqlite_url(tmp_path), "lakekit_")


# -- PostgreSQL ------------------------------------------------------------------------------------
@pytest.mark.postgres
def test_concurrent_first_use_of_a_fresh_postgres_database_is_safe(postgres_url: str) -> None:
    _race_first_use(postgres_url, f"race{uuid.uuid4().hex[:8]}_")


@pytest.mark.postgres
def test_postgres_catalog_via_connect_and_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, postgres_url: str
) -> None:
    monkeypatch.setenv("LAKEKIT_CATALOG", postgres_url)
    monkeypatch.setenv("LAKEKIT_CATALOG_TABLE_PREFIX", f"env{uuid.uuid4().hex[:8]}_")
    with lakekit.connect(tmp_path / "lake") as lake:
        lake.catalog.create_table("sales.orders", SCHEMA)
        assert lake.catalog.list_namespaces() == ["sales"]
        password = sa.engine.make_url(postgres_url).password
        assert isinstance(password, str)
        assert password not in repr(lake.catalog)
        assert "***" in repr(lake.catalog)
    assert not (tmp_path / "lake" / ".lakekit" / "catalog.db").exists()


@pytest.mark.postgres
def test_a_wrong_password_fails_without_revealing_it(postgres_url: str) -> None:
    url = sa.engine.make_url(postgres_url).set(password="Wr0ng-Pa55word")
    catalog = Catalog(SqlCatalog(url.render_as_string(hide_password=False), connect_timeout=5))
    assert "Wr0ng-Pa55word" not in repr(catalog)
    with pytest.raises(LakekitError) as info:
        catalog.list_namespaces()
    assert "Wr0ng-Pa55word" not in str(info.value)
    assert "postgres:***@127.0.0.1" in str(info.value)
    catalog.close()


def test_an_unreachable_server_is_a_transient_error_without_the_password() -> None:
    url = f"postgresql+psycopg://lake:hunter2@127.0.0.1:{_closed_port()}/lake"
    catalog = Catalog(SqlCatalog(url, connect_timeout=2))
    assert "hunter2" not in repr(catalog)
    with pytest.raises(TransientError) as info:
        catalog.load_table("ns.t")
    message = str(info.value)
    assert "hunter2" not in message
    assert "lake:***@127.0.0.1" in message
    assert isinstance(info.value.__cause__, sa.exc.OperationalError)
    catalog.close()
