"""Table maintenance: compact, expire_snapshots, vacuum, and register_table (adopt files)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from lakekit.errors import (
    AlreadyExistsError,
    CommitConflictError,
    InvalidInputError,
    NotFoundError,
    SchemaError,
)
from lakekit.lake import Lake
from lakekit.tables import Table, WriteOptions

SCHEMA = pa.schema([("id", pa.int64()), ("region", pa.string()), ("amount", pa.float64())])


def batch(ids: range | list[int], region: str | None = "eu") -> pa.Table:
    ids = list(ids)
    return pa.table(
        {"id": ids, "region": [region] * len(ids), "amount": [i * 1.5 for i in ids]},
        schema=SCHEMA,
    )


def sorted_rows(data: pa.Table) -> list[dict[str, Any]]:
    return sorted(data.to_pylist(), key=lambda r: r["id"])


def table_objects(lake: Lake, table: Table) -> set[str]:
    return set(lake.store.list_keys(table.location + "/"))


def data_objects(lake: Lake, table: Table) -> set[str]:
    return {k for k in table_objects(lake, table) if "/_lakekit/" not in k}


def referenced(lake: Lake, table: Table) -> set[str]:
    """Every key a retained snapshot needs: manifests, their data files, current metadata."""
    from lakekit.tables.metadata import METADATA_PROPERTY

    keys = {table.metadata.properties[METADATA_PROPERTY]}
    for snapshot in table.iter_snapshots():
        keys.add(snapshot.manifest)
        keys.update(f.key for f in table.files(snapshot_id=snapshot.snapshot_id))
    return keys


def sql_rows(lake: Lake, query: str) -> list[dict[str, Any]]:
    return lake.sql(query).to_arrow().to_pylist()


# -- compact ----------------------------------------------------------------------------------


def test_compact_rewrites_small_files_into_one_keeping_rows_and_results(lake: Lake) -> None:
    table = lake.create_table("ops.events", SCHEMA)
    for start in range(0, 50, 10):
        table.append(batch(range(start, start + 10)))
    before = table.to_arrow()
    totals = sql_rows(lake, "select count(*) as n, sum(amount) as s from ops.events")
    assert len(table.files()) == 5

    snapshot = table.compact(target_file_size=1 << 20)

    assert snapshot is not None
    assert snapshot.operation == "compact"
    assert snapshot.summary["removed_files"] == 5
    assert len(table.files()) == 1
    assert sorted_rows(table.to_arrow()) == sorted_rows(before)
    assert sql_rows(lake, "select count(*) as n, sum(amount) as s from ops.events") == totals


def test_compact_works_per_partition_and_leaves_single_files_alone(lake: Lake) -> None:
    table = lake.create_table("ops.parts", SCHEMA, partition_by=["region"])
    for start in (0, 10, 20):
        table.append(batch(range(start, start + 10), "eu"))
        table.append(batch(range(100 + start, 110 + start), "a b/c"))
    table.append(batch(range(500, 505), None))
    table.append(batch(range(600, 605), "solo"))
    solo = {f.key for f in table.files() if f.partition["region"] == "solo"}
    before = table.to_arrow()

    table.compact(target_file_size=1 << 20)

    per_partition: dict[str | None, int] = {}
    for data_file in table.files():
        region = data_file.partition["region"]
        per_partition[region] = per_partition.get(region, 0) + 1
    assert per_partition == {"eu": 1, "a b/c": 1, None: 1, "solo": 1}
    assert solo <= {f.key for f in table.files()}
    assert sorted_rows(table.to_arrow()) == sorted_rows(before)
    assert sorted_rows(table.to_arrow(filter=[("region", "=", "a b/c")])) == sorted_rows(
        before.filter(pc.equal(before["region"], "a b/c"))
    )


def test_compact_is_a_no_op_when_nothing_needs_it(lake: Lake) -> None:
    table = lake.create_table("ops.noop", SCHEMA)
    assert table.compact() is None  # empty table

    table.append(batch(range(10)))
    assert table.compact() is None  # a single file
    table.append(batch(range(10, 20)))
    assert table.compact(target_file_size=1 << 20) is not None
    snapshots = list(table.iter_snapshots())

    assert table.compact(target_file_size=1 << 20) is None
    assert list(table.iter_snapshots()) == snapshots


def test_compact_skips_files_at_or_above_the_target_size(lake: Lake) -> None:
    table = lake.create_table("ops.big", SCHEMA)
    table.append(batch(range(1000)))
    table.append(batch(range(1000, 2000)))
    smallest = min(f.file_size for f in table.files())

    assert table.compact(target_file_size=max(1024, smallest)) is None


def test_compact_upgrades_files_of_older_schemas_without_changing_rows(lake: Lake) -> None:
    table = lake.create_table("ops.evolved", SCHEMA)
    table.append(batch(range(5)))
    table.append(batch(range(5, 10)).append_column("tag", pa.array(["t"] * 5)))
    before = table.to_arrow()

    table.compact(target_file_size=1 << 20)

    (only,) = table.files()
    assert only.schema_id == table.state().current_schema_id
    assert sorted_rows(table.to_arrow()) == sorted_rows(before)


def test_snapshots_before_a_compaction_still_read_their_files(lake: Lake) -> None:
    table = lake.create_table("ops.travel", SCHEMA)
    table.append(batch(range(5)))
    before = table.append(batch(range(5, 10)))

    table.compact(target_file_size=1 << 20)
    table.append(batch(range(10, 12)))

    assert table.to_arrow(snapshot_id=before.snapshot_id).num_rows == 10
    assert len(table.files(snapshot_id=before.snapshot_id)) == 2


def test_a_concurrent_append_during_compaction_is_kept(lake: Lake) -> None:
    from lakekit.tables.maintenance import plan_compaction

    table = lake.create_table("ops.race", SCHEMA)
    table.append(batch(range(5)))
    table.append(batch(range(5, 10)))
    planned = plan_compaction(table, target_file_size=1 << 20)
    assert planned is not None

    lake.table("ops.race").append(batch([99]))
    plan, base, base_files = planned
    table._commit(plan, base_snapshot_id=base.snapshot_id, base_files=base_files)

    assert sorted(table.to_arrow()["id"].to_pylist()) == [*range(10), 99]
    assert len(table.files()) == 2


def test_compaction_conflicts_when_a_file_it_rewrote_was_removed(lake: Lake) -> None:
    from lakekit.tables.maintenance import plan_compaction

    table = lake.create_table("ops.race2", SCHEMA)
    table.append(batch(range(5)))
    table.append(batch(range(5, 10)))
    planned = plan_compaction(table, target_file_size=1 << 20)
    assert planned is not None
    plan, base, base_files = planned

    lake.table("ops.race2").overwrite(batch([42]))

    with pytest.raises(CommitConflictError):
        table._commit(plan, base_snapshot_id=base.snapshot_id, base_files=base_files)
    assert table.to_arrow()["id"].to_pylist() == [42]
    assert not any(lake.store.exists(f.key) for f in plan.added)  # its files were deleted


def test_compact_rejects_min_files_below_two(lake: Lake) -> None:
    table = lake.create_table("ops.bad", SCHEMA)
    with pytest.raises(InvalidInputError, match="min_files"):
        table.compact(min_files=1)


# -- expire_snapshots and vacuum --------------------------------------------------------------


def test_expire_keeps_the_newest_snapshots_and_forgets_the_rest(lake: Lake) -> None:
    table = lake.create_table("ops.expire", SCHEMA)
    s1 = table.append(batch(range(3)))
    s2 = table.append(batch(range(3, 6)))
    s3 = table.append(batch(range(6, 9)))

    expired = table.expire_snapshots(older_than=timedelta(0), keep_last=2)

    assert expired == [s1.snapshot_id]
    assert [s.snapshot_id for s in table.history()] == [s2.snapshot_id, s3.snapshot_id]
    with pytest.raises(NotFoundError):
        table.to_arrow(snapshot_id=s1.snapshot_id)
    with pytest.raises(NotFoundError):
        table.rollback(s1.snapshot_id)
    assert table.to_arrow(snapshot_id=s2.snapshot_id).num_rows == 6
    assert table.count() == 9


def test_expire_never_drops_the_current_snapshot_and_respects_the_cutoff(lake: Lake) -> None:
    table = lake.create_table("ops.cutoff", SCHEMA)
    assert table.expire_snapshots(older_than=timedelta(0)) == []  # no snapshots at all
    table.append(batch(range(3)))
    current = table.append(batch(range(3, 6)))

    assert table.expire_snapshots(older_than=datetime.now(UTC) - timedelta(days=1)) == []
    assert table.expire_snapshots(older_than=timedelta(days=1)) == []
    assert len(table.expire_snapshots(older_than=datetime.now(UTC) + timedelta(days=1))) == 1

    assert [s.snapshot_id for s in table.iter_snapshots()] == [current.snapshot_id]
    assert table.count() == 6
    with pytest.raises(InvalidInputError, match="keep_last"):
        table.expire_snapshots(older_than=timedelta(0), keep_last=0)


def test_vacuum_keeps_every_file_a_retained_snapshot_references(lake: Lake) -> None:
    table = lake.create_table("ops.keep", SCHEMA)
    first = table.append(batch(range(5)))
    table.overwrite(batch(range(100, 103)))
    table.compact(target_file_size=1 << 20)  # nothing to do, a single file

    deleted = table.vacuum(older_than=timedelta(0))

    assert not set(deleted) & referenced(lake, table)
    assert table.to_arrow(snapshot_id=first.snapshot_id).num_rows == 5  # time travel still works
    assert table.count() == 3
    assert all(k.startswith(table.location + "/_lakekit/metadata/") for k in deleted)


def test_expire_then_vacuum_deletes_the_files_only_expired_snapshots_used(lake: Lake) -> None:
    table = lake.create_table("ops.reclaim", SCHEMA, partition_by=["region"])
    first = table.append(batch(range(5), "eu"))
    table.append(batch(range(5, 10), "us"))
    table.overwrite_partitions(batch(range(20, 22), "eu"))
    old_eu = {f.key for f in table.files(snapshot_id=first.snapshot_id)}
    retained_us = {f.key for f in table.files() if f.partition["region"] == "us"}

    table.expire_snapshots(older_than=timedelta(0))
    deleted = set(table.vacuum(older_than=timedelta(0)))

    assert old_eu <= deleted
    assert not retained_us & deleted
    assert table_objects(lake, table) == referenced(lake, table)
    assert sorted(table.to_arrow()["id"].to_pylist()) == [5, 6, 7, 8, 9, 20, 21]
    assert sql_rows(lake, "select count(*) as n from ops.reclaim") == [{"n": 7}]
    assert table.vacuum(older_than=timedelta(0)) == []  # idempotent


def test_vacuum_removes_the_files_of_a_crashed_writer_after_the_grace_period(
    lake: Lake,
) -> None:
    from lakekit.tables.writer import write_data_files

    table = lake.create_table("ops.crash", SCHEMA, partition_by=["region"])
    table.append(batch(range(5)))
    state = table.state()
    # A writer that dies after writing its data files, before committing its snapshot.
    reader = pa.RecordBatchReader.from_batches(SCHEMA, batch(range(9)).to_batches())
    orphans = write_data_files(
        lake.store, state.location, reader, schema=state.schema,
        schema_id=state.current_schema_id, spec=state.partition_spec, options=WriteOptions(),
    )  # fmt: skip
    orphan_keys = {f.key for f in orphans}
    assert orphan_keys <= data_objects(lake, table)
    assert table.count() == 5  # invisible to readers

    assert table.vacuum() == []  # younger than the default one-hour grace period
    assert orphan_keys <= data_objects(lake, table)

    deleted = table.vacuum(older_than=timedelta(0))

    assert orphan_keys <= set(deleted)
    assert data_objects(lake, table) == {f.key for f in table.files()}
    assert table.count() == 5


def test_vacuum_leaves_hidden_files_of_other_tools_alone(lake: Lake, lake_dir: Path) -> None:
    table = lake.create_table("ops.hidden", SCHEMA)
    table.append(batch(range(3)))
    lake.store.put(f"{table.location}/_SUCCESS", b"")
    lake.store.put(f"{table.location}/.part-0.parquet.crc", b"crc")

    table.vacuum(older_than=timedelta(0))

    assert lake.store.exists(f"{table.location}/_SUCCESS")
    assert lake.store.exists(f"{table.location}/.part-0.parquet.crc")


def test_vacuum_rejects_a_negative_grace_period(lake: Lake) -> None:
    table = lake.create_table("ops.neg", SCHEMA)
    with pytest.raises(InvalidInputError):
        table.vacuum(older_than=timedelta(seconds=-1))


# -- register_table ---------------------------------------------------------------------------

EXTERNAL = pa.table(
    {
        "id": pa.array(range(10), pa.int64()),
        "country": ["US", "DE", "a b/c", None, "é%x", "x=y", "US", None, "DE", "100%"],
        "year": pa.array([2024, 2024, 2025, 2025, 2024, 2025, 2025, 2024, 2025, 2024], pa.int64()),
        "price": [1.5, 2.5, None, 4.0, 5.0, 6.5, 7.0, 8.0, 9.5, 10.0],
        "tags": [["a"], [], None, ["b", "c"], ["d"], [], ["e"], None, ["f"], ["g"]],
    }
)


def write_external(root: Path, relative: str) -> Path:
    """What another tool leaves behind: pyarrow's Hive layout plus a _SUCCESS marker."""
    target = root / relative
    ds.write_dataset(
        EXTERNAL,
        target,
        format="parquet",
        partitioning=ds.partitioning(
            pa.schema([("year", pa.int64()), ("country", pa.string())]), flavor="hive"
        ),
    )
    (target / "_SUCCESS").write_bytes(b"")
    (target / "_temporary").mkdir()
    (target / "_temporary" / "part-9.parquet").write_bytes(b"half written")
    return target


def test_register_adopts_a_hive_directory_in_place(lake: Lake, lake_dir: Path) -> None:
    write_external(lake_dir, "ext/sales")
    originals = {
        str(p.relative_to(lake_dir)) for p in (lake_dir / "ext/sales").rglob("part-*.parquet")
    }
    originals = {k for k in originals if "_temporary" not in k}

    table = lake.register_table("shop.sales", "ext/sales")

    assert table.location == "ext/sales"
    assert {f.key for f in table.files()} == originals  # the files themselves, no copy
    assert table.history()[0].operation == "register"
    assert table.partition_spec.fields[0].name == "year"
    assert table.schema.field("year").type == pa.int64()
    assert table.schema.field("country").type == pa.string()
    columns = EXTERNAL.column_names
    assert sorted_rows(table.to_arrow().select(columns)) == sorted_rows(EXTERNAL)
    via_sql = lake.sql(f"select {', '.join(columns)} from shop.sales").to_arrow()
    assert sorted_rows(via_sql) == sorted_rows(EXTERNAL)


def test_registered_files_are_pruned_by_partition_and_statistics(
    lake: Lake, lake_dir: Path
) -> None:
    write_external(lake_dir, "ext/pruned")
    table = lake.register_table("shop.pruned", "ext/pruned")

    assert all("country=DE" in k for k in table.plan_files([("country", "=", "DE")]))
    assert len(table.plan_files([("year", "=", 2024), ("country", "=", "US")])) == 1
    assert table.plan_files([("id", ">", 1000)]) == []
    got = table.to_arrow(filter=[("country", "=", "a b/c")])
    assert got["id"].to_pylist() == [2]


def test_a_registered_table_takes_writes_merges_and_maintenance(lake: Lake, lake_dir: Path) -> None:
    write_external(lake_dir, "ext/live")
    table = lake.register_table("shop.live", "ext/live")

    table.append(
        pa.table({"id": [10], "country": ["FR"], "year": [2026], "price": [1.0], "tags": [["z"]]})
    )
    table.merge(
        pa.table({"id": [1], "country": ["DE"], "year": [2024], "price": [99.0]}),
        on=["year", "country", "id"],
    )
    table.overwrite_partitions(
        pa.table({"id": [11], "country": ["US"], "year": [2024], "price": [0.0]})
    )
    table.expire_snapshots(older_than=timedelta(0))
    table.vacuum(older_than=timedelta(0))

    result = {r["id"]: r for r in table.to_arrow().to_pylist()}
    assert result[1]["price"] == 99.0
    assert 0 not in result  # the (2024, US) partition was replaced
    assert 11 in result
    assert 10 in result
    assert lake.store.exists("ext/live/_SUCCESS")  # other tools' markers are left alone
    assert sql_rows(lake, "select count(*) as n from shop.live") == [{"n": len(result)}]


def test_register_unifies_file_schemas(lake: Lake, lake_dir: Path) -> None:
    folder = lake_dir / "ext/mixed"
    folder.mkdir(parents=True)
    pq.write_table(
        pa.table({"id": pa.array([1, 2], pa.int32()), "a": ["x", "y"]}), folder / "1.parquet"
    )
    pq.write_table(
        pa.table(
            {
                "id": pa.array([3], pa.int64()),
                "b": [0.5],
                "cat": pa.array(["k"]).dictionary_encode(),
            }
        ),
        folder / "2.parquet",
    )

    table = lake.register_table("shop.mixed", "ext/mixed", partitioning=None)

    assert table.schema == pa.schema(
        [("id", pa.int64()), ("a", pa.string()), ("b", pa.float64()), ("cat", pa.string())]
    )
    assert sorted_rows(table.to_arrow()) == [
        {"id": 1, "a": "x", "b": None, "cat": None},
        {"id": 2, "a": "y", "b": None, "cat": None},
        {"id": 3, "a": None, "b": 0.5, "cat": "k"},
    ]
    assert sorted(r["id"] for r in sql_rows(lake, "select id from shop.mixed")) == [1, 2, 3]


def test_register_types_partition_values_conservatively(lake: Lake, lake_dir: Path) -> None:
    for relative in ("dt=2026-11-26/code=007/n=7", "dt=2026-11-27/code=8/n=-3"):
        folder = lake_dir / "ext/typed" / relative
        folder.mkdir(parents=True)
        pq.write_table(pa.table({"v": [1]}), folder / "data.parquet")

    table = lake.register_table("shop.typed", "ext/typed")

    assert table.schema.field("dt").type == pa.string()  # no date guessing
    assert table.schema.field("code").type == pa.string()  # "007" is not a canonical integer
    assert table.schema.field("n").type == pa.int64()
    assert sorted(table.to_arrow()["code"].to_pylist()) == ["007", "8"]


def test_register_refuses_bad_input(lake: Lake, lake_dir: Path) -> None:
    write_external(lake_dir, "ext/ok")
    with pytest.raises(InvalidInputError, match="Parquet"):
        lake.register_table("shop.csv", "ext/ok", format="csv")
    with pytest.raises(NotFoundError):
        lake.register_table("shop.none", "ext/nothing-here")
    lake.register_table("shop.ok", "ext/ok")
    with pytest.raises(AlreadyExistsError):
        lake.register_table("shop.ok", "ext/ok")
    with pytest.raises(InvalidInputError, match="overlaps"):
        lake.register_table("shop.again", "ext/ok")
    with pytest.raises(InvalidInputError, match="overlaps"):
        lake.register_table("shop.inner", "ext/ok/year=2024")
    assert not lake.catalog.table_exists("shop.again")


def test_register_refuses_files_that_are_not_parquet(lake: Lake, lake_dir: Path) -> None:
    folder = lake_dir / "ext/junk"
    folder.mkdir(parents=True)
    pq.write_table(pa.table({"v": [1]}), folder / "a.parquet")
    (folder / "README.txt").write_text("not data")

    with pytest.raises(InvalidInputError, match=r"README.txt is not a readable Parquet"):
        lake.register_table("shop.junk", "ext/junk")
    assert not lake.catalog.table_exists("shop.junk")
    assert not lake.store.list_keys("ext/junk/_lakekit/")


def test_register_refuses_inconsistent_partition_directories(lake: Lake, lake_dir: Path) -> None:
    for relative in ("a=1/b=2", "b=2/a=1"):
        folder = lake_dir / "ext/odd" / relative
        folder.mkdir(parents=True)
        pq.write_table(pa.table({"v": [1]}), folder / "data.parquet")

    with pytest.raises(InvalidInputError, match="inconsistent Hive partition"):
        lake.register_table("shop.odd", "ext/odd")


def test_register_refuses_files_whose_schemas_conflict(lake: Lake, lake_dir: Path) -> None:
    folder = lake_dir / "ext/clash"
    folder.mkdir(parents=True)
    pq.write_table(pa.table({"v": [1]}), folder / "a.parquet")
    pq.write_table(pa.table({"v": ["one"]}), folder / "b.parquet")

    with pytest.raises(SchemaError, match=r"b\.parquet") as caught:
        lake.register_table("shop.clash", "ext/clash")
    assert caught.value.column == "v"


def test_create_table_refuses_a_location_inside_another_tables(tmp_path: Path) -> None:
    import pyarrow as pa

    import lakekit
    from lakekit import InvalidInputError

    with lakekit.connect(tmp_path / "lake") as lake:
        schema = pa.schema([("id", pa.int64())])
        lake.create_table("ns.outer", schema, location="tables/shared")
        with pytest.raises(InvalidInputError, match="overlaps"):
            lake.create_table("ns.inner", schema, location="tables/shared/inner")
        assert not lake.catalog.table_exists("ns.inner")
