"""The composition root: components built lazily from configuration, and bad input everywhere
surfacing as clear lakekit errors."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

import lakekit
from lakekit import (
    ConfigurationError,
    InvalidInputError,
    Lake,
    NotFoundError,
    QueryError,
    SchemaError,
)


def test_connect_is_lazy_and_components_are_built_once(lake_dir: Path) -> None:
    lake = lakekit.connect(f"local://{lake_dir}")
    assert not lake_dir.exists()
    store = lake.store
    assert lake.store is store
    store.put("hello.txt", b"hi")
    assert (lake_dir / "hello.txt").read_bytes() == b"hi"
    assert lake.catalog is lake.catalog
    assert lake.stream("events") is lake.stream("events")
    lake.close()


def test_a_plain_path_is_a_local_lake(lake_dir: Path) -> None:
    with lakekit.connect(lake_dir) as lake:
        lake.store.put("a", b"1")
    assert (lake_dir / "a").exists()


def test_all_five_components_work_together(lake: Lake) -> None:
    lake.store.put("raw/x.txt", b"x")
    lake.catalog.create_namespace("ns")
    assert lake.sql("select $1::int + 1", [41]).scalar() == 42
    position = lake.stream("events").publish(b"e1", key="k")
    assert lake.stream("events").read(position.partition, position.offset)[0].value == b"e1"
    lake.functions.register("double", lambda event, ctx: event.payload * 2)
    assert lake.functions.invoke("double", 21) == 42


def test_components_can_be_given_as_ready_adapters(lake_dir: Path, tmp_path: Path) -> None:
    from lakekit.adapters.local.object_store import LocalObjectStore

    other = LocalObjectStore(root=tmp_path / "elsewhere")
    with lakekit.connect(lake_dir, store=other) as lake:
        lake.store.put("k", b"v")
    assert (tmp_path / "elsewhere" / "k").read_bytes() == b"v"


def test_catalog_can_be_overridden_by_url(lake_dir: Path, tmp_path: Path) -> None:
    db = tmp_path / "shared-catalog.db"
    with lakekit.connect(lake_dir, catalog=f"sqlite:///{db}") as lake:
        lake.catalog.create_namespace("ns")
    assert db.exists()


def test_closed_lake_refuses_use(lake_dir: Path) -> None:
    lake = lakekit.connect(lake_dir)
    lake.close()
    lake.close()  # idempotent
    with pytest.raises(ConfigurationError, match="closed"):
        _ = lake.store


def test_repr_never_shows_credentials(lake_dir: Path) -> None:
    lake = lakekit.connect(lake_dir, catalog="postgresql+psycopg://lake:hunter2@db/lake")
    assert "hunter2" not in repr(lake)
    assert "hunter2" not in repr(lake.config)


# -- bad input everywhere ---------------------------------------------------------------------


def test_unknown_url_scheme_is_a_clear_error() -> None:
    lake = lakekit.connect("ftp://host/lake")
    with pytest.raises(ConfigurationError, match="no store adapter for scheme 'ftp'"):
        _ = lake.store


def test_non_local_lake_without_catalog_names_the_variable_to_set() -> None:
    lake = lakekit.connect("ftp://host/lake")
    with pytest.raises(ConfigurationError, match="LAKEKIT_CATALOG"):
        _ = lake.catalog


@pytest.mark.parametrize("name", ["Sales.Orders", "orders", "a.b.c", "ns.bad-name", ""])
def test_malformed_table_names_are_rejected(lake: Lake, name: str) -> None:
    with pytest.raises(InvalidInputError):
        lake.catalog.load_table(name)


def test_missing_object_is_not_found(lake: Lake) -> None:
    with pytest.raises(NotFoundError, match=r"missing\.json"):
        lake.store.get("raw/missing.json")
    with pytest.raises(FileNotFoundError):
        lake.store.head("raw/missing.json")


def test_table_that_does_not_exist_is_not_found(lake: Lake) -> None:
    with pytest.raises(NotFoundError, match=r"sales\.orders"):
        lake.catalog.load_table("sales.orders")
    with pytest.raises(NotFoundError, match=r"sales\.orders"):
        lake.sql("select * from sales.orders").to_arrow()


@pytest.mark.parametrize("schema", [{"a": "int64"}, ["a", "b"], None])
def test_non_arrow_schema_is_rejected(lake: Lake, schema: object) -> None:
    with pytest.raises((SchemaError, InvalidInputError), match="Arrow schema"):
        lake.catalog.create_table("ns.t", schema)  # type: ignore[arg-type]


def test_partition_column_must_exist(lake: Lake) -> None:
    with pytest.raises(SchemaError, match="'day'"):
        lake.catalog.create_table("ns.t", pa.schema([("a", pa.int64())]), partition_by=["day"])


def test_bad_sql_is_a_query_error(lake: Lake) -> None:
    with pytest.raises(QueryError):
        lake.sql("selec 1").to_arrow()


def test_key_escaping_the_lake_root_is_rejected_and_nothing_is_written(
    lake: Lake, lake_dir: Path
) -> None:
    with pytest.raises(InvalidInputError):
        lake.store.put("../outside.txt", b"x")
    assert not (lake_dir.parent / "outside.txt").exists()


def test_bad_stream_name_is_rejected(lake: Lake) -> None:
    with pytest.raises(InvalidInputError):
        lake.stream("../events")
