"""The end-to-end example of docs/pipelines.md on an AWS lake: files landed in S3 are ingested
exactly once into a partitioned lake table registered in Glue, transformed, and queried with
DuckDB reading through the S3 store (moto on 127.0.0.1, or a real account)."""

from __future__ import annotations

import gzip

import pytest

from lakekit.pipelines.sources.files import FileSource
from servers.aws import AwsTarget

CSV_DAY_1 = (
    "order_id,ordered_at,customer,amount\n"
    "1,2026-11-25T10:00:00,ana,10.50\n"
    "2,2026-11-25T11:30:00,bo,20.00\n"
    "3,2026-11-26T09:15:00,ana,5.25\n"
)
CSV_DAY_2 = "order_id,ordered_at,customer,amount\n4,2026-11-26T18:45:00,cy,100.00\n"


def test_ingest_table_query_on_an_aws_lake(aws_target: AwsTarget) -> None:
    with aws_target.lake_factory()() as lake:
        namespace = f"e2e_{aws_target.run_id}"
        lake.store.put("landing/orders/2026-11-25.csv.gz", gzip.compress(CSV_DAY_1.encode()))

        def run() -> object:
            return lake.pipeline("orders").run(
                FileSource(lake.store, "landing/orders/", pattern="*.csv.gz"),
                into=f"{namespace}.orders",
                partition_by=["day(ordered_at)"],
                land_raw=True,
            )

        first = run()
        assert first.rows_out == 3  # type: ignore[attr-defined]
        assert run().status == "nothing to do"  # type: ignore[attr-defined]  # exactly once
        lake.store.put("landing/orders/2026-11-26.csv.gz", gzip.compress(CSV_DAY_2.encode()))
        assert run().rows_out == 1  # type: ignore[attr-defined]

        rows = lake.sql(
            f"select count(*) as n, sum(amount) as total from {namespace}.orders "
            "where customer <> $skip",
            {"skip": "nobody"},
        ).to_arrow()
        assert rows.to_pylist() == [{"n": 4, "total": 135.75}]

        lake.transform(
            "select cast(ordered_at as date) as day, sum(amount) as revenue "
            f"from {namespace}.orders group by 1",
            into=f"{namespace}.daily_revenue",
        )
        daily = lake.sql(f"select * from {namespace}.daily_revenue order by day").to_arrow()
        assert [r["revenue"] for r in daily.to_pylist()] == [30.5, 105.25]

        # The table is a standard Hive/Parquet Glue table with one partition per day, so
        # Athena, Spark or Trino read it without lakekit.
        glue = aws_target.client("glue")
        table = glue.get_table(DatabaseName=namespace, Name="orders")["Table"]
        assert table["PartitionKeys"] == [{"Name": "ordered_at_day", "Type": "date"}]
        storage = table["StorageDescriptor"]
        assert storage["SerdeInfo"]["SerializationLibrary"].endswith("ParquetHiveSerDe")
        assert storage["Location"] == f"{lake.store.uri('')}/tables/{namespace}/orders/"
        columns = {c["Name"]: c["Type"] for c in storage["Columns"]}
        assert columns == {
            "order_id": "bigint",
            "ordered_at": "timestamp",
            "customer": "string",
            "amount": "double",
        }
        partitions = glue.get_partitions(DatabaseName=namespace, TableName="orders")["Partitions"]
        assert sorted(p["Values"][0] for p in partitions) == ["2026-11-25", "2026-11-26"]
        for partition in partitions:
            location = partition["StorageDescriptor"]["Location"]
            directory = location.removeprefix(lake.store.uri("") + "/").rstrip("/")
            assert any(k.startswith(directory + "/") for k in lake.store.list_keys(directory))

        for name in ("daily_revenue", "orders"):
            lake.catalog.drop_table(f"{namespace}.{name}")
        for entry in lake.catalog.list_state("pipelines/orders/"):
            lake.catalog.delete_state(entry.key)
        lake.catalog.drop_namespace(namespace)


@pytest.mark.parametrize("mode", ["overwrite"])
def test_an_overwrite_deregisters_emptied_partitions(aws_target: AwsTarget, mode: str) -> None:
    import pyarrow as pa

    with aws_target.lake_factory()() as lake:
        namespace = f"ow_{aws_target.run_id}"
        schema = pa.schema([("id", pa.int64()), ("country", pa.string())])
        table = lake.create_table(f"{namespace}.t", schema, partition_by=["country"])
        table.append(pa.table({"id": [1, 2], "country": ["DE", "FR"]}, schema=schema))
        glue = aws_target.client("glue")

        def values() -> list[str]:
            parts = glue.get_partitions(DatabaseName=namespace, TableName="t")["Partitions"]
            return sorted(p["Values"][0] for p in parts)

        assert values() == ["DE", "FR"]
        table.write(pa.table({"id": [3], "country": ["US"]}, schema=schema), mode=mode)
        assert values() == ["US"]
        assert lake.sql(f"select id from {namespace}.t").to_arrow().to_pylist() == [{"id": 3}]
        lake.catalog.drop_table(f"{namespace}.t")
        lake.catalog.drop_namespace(namespace)
