"""GlueCatalog beyond the conformance suite: the Hive/Parquet registration other engines read,
partition mirroring, recovery from writers that die mid-commit, foreign Glue tables and
settings. moto on 127.0.0.1, or a real account in live mode."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pytest

import lakekit
from lakekit.adapters.aws._glue_tables import hive_type
from lakekit.adapters.aws.glue_catalog import GlueCatalog, catalog_id_of
from lakekit.adapters.aws.object_store import S3ObjectStore
from lakekit.errors import (
    CommitConflictError,
    ConfigurationError,
    InvalidInputError,
    NotSupportedError,
)
from lakekit.identifiers import TableIdent
from lakekit.interfaces.catalog import Catalog, TableUpdate
from servers.aws import AwsTarget

TIMEOUT = 1.0
"""commit_timeout of the recovery tests (the minimum; S3 ages have 1 s resolution)."""


@pytest.fixture
def warehouse(aws_target: AwsTarget) -> str:
    return aws_target.lake_url()


@pytest.fixture
def glue(aws_target: AwsTarget, warehouse: str) -> Iterator[GlueCatalog]:
    catalog = GlueCatalog(
        "glue://", warehouse=warehouse, commit_timeout=TIMEOUT, **aws_target.settings
    )
    yield catalog
    catalog.close()


@pytest.fixture
def namespace(glue: GlueCatalog) -> Iterator[str]:
    name = f"lkt_{uuid.uuid4().hex[:16]}"
    facade = Catalog(glue)
    facade.create_namespace(name)
    yield name
    for table in glue.glue.get_tables(DatabaseName=name)["TableList"]:
        glue.glue.delete_table(DatabaseName=name, Name=table["Name"])
    facade.drop_namespace(name)


def _schema() -> pa.Schema:
    return pa.schema(
        [
            pa.field("id", pa.int64(), nullable=False, metadata={"comment": "primary key"}),
            pa.field("ts", pa.timestamp("us", tz="UTC")),
            pa.field("country", pa.string()),
            pa.field("amount", pa.decimal128(12, 2)),
            pa.field("tags", pa.list_(pa.string())),
            pa.field("geo", pa.struct([("lat", pa.float64()), ("lon", pa.float32())])),
            pa.field("attrs", pa.map_(pa.string(), pa.int32())),
        ]
    )


def test_arrow_types_map_to_the_hive_types_athena_reads() -> None:
    cases = {
        pa.bool_(): "boolean",
        pa.int8(): "tinyint",
        pa.uint8(): "smallint",
        pa.int32(): "int",
        pa.uint32(): "bigint",
        pa.uint64(): "decimal(20,0)",
        pa.float16(): "float",
        pa.float64(): "double",
        pa.decimal256(40, 3): "decimal(38,3)",
        pa.large_string(): "string",
        pa.binary(16): "binary",
        pa.date32(): "date",
        pa.timestamp("ns"): "timestamp",
        pa.time64("us"): "bigint",
        pa.dictionary(pa.int32(), pa.string()): "string",
        pa.large_list(pa.int16()): "array<smallint>",
        pa.struct(
            [("a", pa.int64()), ("b", pa.list_(pa.string()))]
        ): "struct<a:bigint,b:array<string>>",
        pa.map_(pa.string(), pa.float32()): "map<string,float>",
    }
    for arrow, hive in cases.items():
        assert hive_type(arrow) == hive, arrow


def test_tables_are_standard_hive_parquet_tables(glue: GlueCatalog, namespace: str) -> None:
    facade = Catalog(glue)
    facade.create_table(
        f"{namespace}.events",
        _schema(),
        partition_by=["country", "day(ts)"],
        properties={"owner": "ana"},
    )
    table = glue.glue.get_table(DatabaseName=namespace, Name="events")["Table"]
    assert table["TableType"] == "EXTERNAL_TABLE"
    assert table["Parameters"]["classification"] == "parquet"
    assert table["PartitionKeys"] == [
        {"Name": "country", "Type": "string"},
        {"Name": "ts_day", "Type": "date"},
    ]
    storage = table["StorageDescriptor"]
    assert storage["Location"] == f"{glue.root_uri}/tables/{namespace}/events/"
    assert storage["InputFormat"].endswith("MapredParquetInputFormat")
    assert storage["SerdeInfo"]["SerializationLibrary"].endswith("ParquetHiveSerDe")
    # identity partition columns live in the directory names, not in the files
    assert [(c["Name"], c["Type"]) for c in storage["Columns"]] == [
        ("id", "bigint"),
        ("ts", "timestamp"),
        ("amount", "decimal(12,2)"),
        ("tags", "array<string>"),
        ("geo", "struct<lat:double,lon:float>"),
        ("attrs", "map<string,int>"),
    ]
    assert storage["Columns"][0]["Comment"] == "primary key"
    loaded = facade.load_table(f"{namespace}.events")
    assert loaded.schema.equals(_schema(), check_metadata=True)
    assert dict(loaded.properties) == {"owner": "ana"}


def _partitions(glue: GlueCatalog, namespace: str, name: str) -> dict[tuple[str, ...], Any]:
    pages = glue.glue.get_paginator("get_partitions").paginate(
        DatabaseName=namespace, TableName=name
    )
    return {tuple(p["Values"]): p for page in pages for p in page["Partitions"]}


def test_commits_mirror_partition_changes_into_glue(glue: GlueCatalog, namespace: str) -> None:
    facade = Catalog(glue)
    ident = f"{namespace}.parted"
    facade.create_table(ident, _schema(), partition_by=["country"])
    facade.commit(
        ident,
        1,
        TableUpdate(
            add_partitions={
                "country=DE": {"country": "DE"},
                "country=__HIVE_DEFAULT_PARTITION__": {"country": None},
                "country=": {"country": ""},  # Glue cannot hold an empty value: skipped
                "country=S%C3%A3o": {"country": "São"},
            }
        ),
    )
    found = _partitions(glue, namespace, "parted")
    assert set(found) == {("DE",), ("__HIVE_DEFAULT_PARTITION__",), ("São",)}
    location = found[("São",)]["StorageDescriptor"]["Location"]
    assert location == f"{glue.root_uri}/tables/{namespace}/parted/country=S%C3%A3o/"
    # a schema change gives every partition the new columns (Athena compares them)
    wider = _schema().append(pa.field("note", pa.string()))
    facade.commit(
        ident,
        2,
        TableUpdate(schema=wider, remove_partitions=frozenset({"country=DE", "country=nowhere"})),
    )
    found = _partitions(glue, namespace, "parted")
    assert set(found) == {("__HIVE_DEFAULT_PARTITION__",), ("São",)}
    for partition in found.values():
        assert partition["StorageDescriptor"]["Columns"][-1] == {"Name": "note", "Type": "string"}


def test_a_decided_commit_whose_writer_died_is_rolled_forward(
    glue: GlueCatalog, aws_target: AwsTarget, warehouse: str, namespace: str
) -> None:
    facade = Catalog(glue)
    ident = f"{namespace}.crashed"
    facade.create_table(ident, _schema())
    table = glue.glue.get_table(DatabaseName=namespace, Name="crashed")["Table"]
    table_id = table["Parameters"]["lakekit.table_id"]
    # A writer that died right after its commit point: intent written, record created,
    # nothing applied (what GlueCatalog.commit does before _apply).
    txn = "deadbeef" * 4
    key = f"{namespace}/cursor"
    target = {"table_id": table_id, "database": namespace, "table": "crashed"}
    glue._acquire_intent(key, txn, target, 2, {"offset": 42})
    current = facade.load_table(ident)
    from lakekit.adapters.aws._glue_tables import table_input

    new = current.__class__(
        ident=current.ident,
        location=current.location,
        schema=current.schema,
        properties={"batch": "7"},
        version=2,
    )
    body = {
        "txn": txn,
        "database": namespace,
        "table": "crashed",
        "version": 2,
        "table_input": table_input(new, table_id=table_id, root_uri=glue.root_uri),
        "state": {key: {"offset": 42}},
    }
    assert glue._create_record(table_id, 2, body, txn)

    # The commit is decided: the state already reads the new value, everywhere...
    other = Catalog(GlueCatalog("glue://", warehouse=warehouse, **aws_target.settings))
    assert other.get_state(key) == {"offset": 42}
    assert [e.key for e in other.list_state(f"{namespace}/")] == [key]
    # ...while Glue still shows version 1 until someone rolls the record forward.
    assert facade.load_table(ident).version == 1
    with pytest.raises(CommitConflictError) as info:
        facade.commit(ident, 1, TableUpdate(set_properties={"late": "writer"}))
    assert info.value.actual == 2
    rolled = facade.load_table(ident)
    assert (rolled.version, dict(rolled.properties)) == (2, {"batch": "7"})
    entry = facade.state_entry(key)
    assert entry is not None
    assert (entry.value, entry.version) == ({"offset": 42}, 1)
    assert facade.commit(ident, 2, TableUpdate()).version == 3
    facade.delete_state(key)
    other.close()


def test_an_undecided_commit_whose_writer_died_is_fenced(
    aws_target: AwsTarget, warehouse: str, namespace: str
) -> None:
    timeout = 3.0  # long enough that S3's 1 s age resolution cannot hide the wait
    glue = GlueCatalog(
        "glue://", warehouse=warehouse, commit_timeout=timeout, **aws_target.settings
    )
    facade = Catalog(glue)
    ident = f"{namespace}.fenced"
    facade.create_table(ident, _schema())
    table = glue.glue.get_table(DatabaseName=namespace, Name="fenced")["Table"]
    table_id = table["Parameters"]["lakekit.table_id"]
    key = f"{namespace}/held"
    facade.put_state(key, "before")
    txn = "cafebabe" * 4
    target = {"table_id": table_id, "database": namespace, "table": "fenced"}
    intent_written = time.monotonic()  # the wait is counted from here, however slow the server
    glue._acquire_intent(key, txn, target, 2, "never committed")  # then the writer died
    assert facade.get_state(key) == "before"  # undecided: readers see the committed value

    entry = facade.put_state(key, "after", expected_version=1)  # waits, then fences
    assert time.monotonic() - intent_written >= timeout - 1.0  # S3 clocks tick in seconds
    assert (entry.value, entry.version) == ("after", 2)
    # The fence decided version 2 as an empty commit: the dead writer can no longer win it.
    assert facade.load_table(ident).version == 2
    assert not glue._create_record(table_id, 2, {"txn": txn}, txn)
    facade.delete_state(key)
    glue.close()


def test_foreign_glue_tables_are_listed_but_not_lakekit_tables(
    glue: GlueCatalog, namespace: str
) -> None:
    glue.glue.create_table(
        DatabaseName=namespace,
        TableInput={
            "Name": "crawled",
            "StorageDescriptor": {"Columns": [{"Name": "x", "Type": "int"}], "Location": "s3://x/"},
        },
    )
    glue.glue.create_table(DatabaseName=namespace, TableInput={"Name": "Not-A-Lakekit-Name"})
    facade = Catalog(glue)
    assert facade.list_tables(namespace) == [TableIdent(namespace, "crawled")]
    with pytest.raises(InvalidInputError, match="register_table"):
        facade.load_table(f"{namespace}.crawled")
    with pytest.raises(InvalidInputError, match="register_table"):
        facade.commit(f"{namespace}.crawled", 1, TableUpdate())
    assert [m.ident for m in facade.search(namespace)] == []


def test_rename_is_not_supported(glue: GlueCatalog, namespace: str) -> None:
    with pytest.raises(NotSupportedError, match="rename_table"):
        glue.rename_table(TableIdent(namespace, "a"), TableIdent(namespace, "b"))


def test_state_keys_that_cannot_fit_an_s3_key_are_refused(glue: GlueCatalog) -> None:
    facade = Catalog(glue)
    with pytest.raises(InvalidInputError, match="too long"):
        facade.put_state("é" * 200, 1)  # 400 UTF-8 bytes, 1200 once percent-encoded
    key = "ok/" + "k" * 400
    facade.put_state(key, 1)
    assert facade.get_state(key) == 1
    facade.delete_state(key)


# -- settings ---------------------------------------------------------------------------------
def test_catalog_urls_and_settings_are_validated() -> None:
    assert catalog_id_of("glue://") is None
    assert catalog_id_of("glue://123456789012") == "123456789012"
    for bad in ("glue://12345", "glue://123456789012/db", "hive://x"):
        with pytest.raises(ConfigurationError):
            catalog_id_of(bad)
    with pytest.raises(ConfigurationError, match="LAKEKIT_CATALOG_WAREHOUSE"):
        GlueCatalog("glue://")
    with pytest.raises(ConfigurationError, match="commit_timeout"):
        GlueCatalog("glue://", warehouse="s3://b/x", commit_timeout=0)
    with pytest.raises(ConfigurationError, match="warehouse"):
        GlueCatalog("glue://", warehouse="gs://b/x")


def test_a_lake_catalog_takes_region_and_keys_from_the_s3_store(aws_target: AwsTarget) -> None:
    settings = dict(aws_target.settings)
    endpoint = settings.pop("endpoint_url", None)
    catalog_settings = {"endpoint_url": endpoint} if endpoint else {}
    with lakekit.connect(
        aws_target.lake_url(), store=aws_target.settings, catalog=catalog_settings
    ) as lake:
        adapter = lake.catalog.adapter
        assert isinstance(adapter, GlueCatalog)
        assert isinstance(lake.store.adapter, S3ObjectStore)
        assert adapter.settings.region == settings["region"]
        assert adapter.root_uri == lake.store.uri("")
        if "secret_access_key" in settings:
            assert adapter.settings.secret_access_key is not None
            assert str(adapter.settings.secret_access_key) == "**********"
        assert settings.get("secret_access_key", "<none>") not in repr(adapter)
        lake.catalog.list_namespaces()  # reaches Glue with the inherited settings
