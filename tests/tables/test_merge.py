"""table.merge: upsert by key columns, copy-on-write, one atomic snapshot."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from lakekit.errors import CommitConflictError, InvalidInputError
from lakekit.lake import Lake
from lakekit.tables import Table, WriteOptions

SCHEMA = pa.schema([("id", pa.int64()), ("name", pa.string()), ("score", pa.float64())])


@pytest.fixture
def table(lake: Lake) -> Table:
    return lake.create_table("app.users", SCHEMA)


def rows(table: Table, *columns: str) -> list[dict[str, Any]]:
    data = table.to_arrow()
    if columns:
        data = data.select(list(columns))
    return sorted(data.to_pylist(), key=lambda r: tuple(str(v) for v in r.values()))


def data_keys(table: Table) -> set[str]:
    return {f.key for f in table.files()}


def stored_parquet(lake: Lake, table: Table) -> set[str]:
    return {
        k
        for k in lake.store.list_keys(table.location + "/")
        if k.endswith(".parquet") and "/_lakekit/" not in k
    }


def test_merge_updates_matching_rows_and_inserts_new_ones(table: Table) -> None:
    table.append(pa.table({"id": [1, 2, 3], "name": ["a", "b", "c"], "score": [1.0, 2.0, 3.0]}))

    snapshot = table.merge(
        pa.table({"id": [2, 4], "name": ["B", "d"], "score": [20.0, 4.0]}), on=["id"]
    )

    assert snapshot.operation == "merge"
    assert rows(table) == [
        {"id": 1, "name": "a", "score": 1.0},
        {"id": 2, "name": "B", "score": 20.0},
        {"id": 3, "name": "c", "score": 3.0},
        {"id": 4, "name": "d", "score": 4.0},
    ]
    assert table.count() == 4


def test_merge_is_one_snapshot_and_the_previous_one_still_reads_the_old_rows(
    table: Table,
) -> None:
    before = table.append(pa.table({"id": [1, 2], "name": ["a", "b"], "score": [1.0, 2.0]}))

    table.merge([{"id": 1, "name": "A", "score": 10.0}], on=["id"])

    assert [s.operation for s in table.history()] == ["append", "merge"]
    old = table.to_arrow(snapshot_id=before.snapshot_id).sort_by("id")
    assert old.column("name").to_pylist() == ["a", "b"]


def test_merge_into_an_empty_table_inserts_everything(table: Table) -> None:
    table.merge(pa.table({"id": [1, 2], "name": ["a", "b"], "score": [1.0, 2.0]}), on=["id"])

    assert rows(table, "id", "name") == [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]


def test_delete_flag_deletes_matching_rows_and_is_not_stored(table: Table) -> None:
    table.append(pa.table({"id": [1, 2, 3], "name": ["a", "b", "c"], "score": [1.0, 2.0, 3.0]}))

    table.merge(
        pa.table(
            {
                "id": [1, 2, 9, 4],
                "name": ["x", "B", "ghost", "d"],
                "score": [0.0, 20.0, 0.0, 4.0],
                "_deleted": [True, False, True, None],
            }
        ),
        on=["id"],
        delete_column="_deleted",
    )

    # 1 deleted; 2 updated; 9 flagged for deletion but absent: nothing inserted; a null flag
    # counts as false, so 4 is inserted.
    assert rows(table, "id", "name") == [
        {"id": 2, "name": "B"},
        {"id": 3, "name": "c"},
        {"id": 4, "name": "d"},
    ]
    assert "_deleted" not in table.schema.names
    assert all("_deleted" not in f.stats for f in table.files())


def test_merge_by_a_multi_column_key(lake: Lake) -> None:
    schema = pa.schema([("tenant", pa.string()), ("id", pa.int32()), ("v", pa.int64())])
    table = lake.create_table("app.multi", schema)
    table.append(
        pa.table(
            {"tenant": ["a", "a", "b", "b"], "id": [1, 2, 1, 2], "v": [1, 2, 3, 4]}, schema=schema
        )
    )

    table.merge(
        pa.table({"tenant": ["a", "b", "c"], "id": [2, 1, 1], "v": [20, 30, 50]}, schema=schema),
        on=["tenant", "id"],
    )

    assert sorted(table.to_arrow().to_pylist(), key=lambda r: (r["tenant"], r["id"])) == [
        {"tenant": "a", "id": 1, "v": 1},
        {"tenant": "a", "id": 2, "v": 20},
        {"tenant": "b", "id": 1, "v": 30},
        {"tenant": "b", "id": 2, "v": 4},
        {"tenant": "c", "id": 1, "v": 50},
    ]


def test_merge_into_a_partitioned_table_keeps_rows_in_their_partitions(lake: Lake) -> None:
    schema = pa.schema([("id", pa.int64()), ("country", pa.string()), ("v", pa.int64())])
    table = lake.create_table("app.parts", schema, partition_by=["country"])
    table.append(
        pa.table({"id": [1, 2, 3, 4], "country": ["US", "a b/c", "US", None], "v": [1, 2, 3, 4]})
    )

    table.merge(
        pa.table({"id": [2, 3, 5], "country": ["a b/c", "US", "é%"], "v": [20, 30, 50]}),
        on=["country", "id"],
    )

    expected = [
        {"id": 1, "country": "US", "v": 1},
        {"id": 2, "country": "a b/c", "v": 20},
        {"id": 3, "country": "US", "v": 30},
        {"id": 4, "country": None, "v": 4},
        {"id": 5, "country": "é%", "v": 50},
    ]
    assert sorted(table.to_arrow().to_pylist(), key=lambda r: r["id"]) == expected
    by_country = {f.partition["country"] for f in table.files()}
    assert by_country == {"US", "a b/c", None, "é%"}
    # the null partition could not hold a key: its file was not rewritten
    null_files = [f for f in table.files() if f.partition["country"] is None]
    assert null_files[0].record_count == 1


def test_merge_evolves_the_schema_with_new_columns(table: Table) -> None:
    table.append(pa.table({"id": [1, 2], "name": ["a", "b"], "score": [1.0, 2.0]}))

    table.merge(pa.table({"id": [2], "name": ["B"], "score": [2.5], "tier": ["gold"]}), on=["id"])

    assert table.schema.names == ["id", "name", "score", "tier"]
    assert rows(table, "id", "tier") == [{"id": 1, "tier": None}, {"id": 2, "tier": "gold"}]


@pytest.mark.parametrize(
    "keys",
    [
        pa.array([1_000_000_000_500, 2_000_000_000_700], pa.int64()).cast(pa.timestamp("ns")),
        pa.array([1_000_000_500, 2_000_000_700], pa.int64()).cast(pa.timestamp("us", tz="UTC")),
        pa.array([100, 200], pa.int32()).cast(pa.date32()),
        pa.array([Decimal("1.25"), Decimal("2.50")], pa.decimal128(10, 2)),
        pa.array(["a", "b"], pa.large_string()),
        pa.array([False, True]),
    ],
    ids=lambda keys: str(keys.type),
)
def test_merge_by_keys_of_every_scalar_type_uses_their_statistics(
    lake: Lake, keys: pa.Array[Any]
) -> None:
    table = lake.create_table("app.typed", pa.schema([("k", keys.type), ("v", pa.int64())]))
    table.append(pa.table({"k": keys.slice(0, 1), "v": [1]}))
    table.append(pa.table({"k": keys.slice(1, 1), "v": [2]}))
    untouched = next(f.key for f in table.files() if f.record_count and f.stats["v"].min == "1")

    snapshot = table.merge(pa.table({"k": keys.slice(1, 1), "v": [20]}), on=["k"])

    assert snapshot.summary["removed_files"] == 1
    assert untouched in data_keys(table)
    assert sorted(table.to_arrow()["v"].to_pylist()) == [1, 20]


# -- which files are rewritten ---------------------------------------------------------------


def test_merge_rewrites_only_files_that_hold_matching_keys(table: Table) -> None:
    for start in (0, 100, 200):
        ids = list(range(start, start + 10))
        table.append(pa.table({"id": ids, "name": [f"n{i}" for i in ids], "score": [0.0] * 10}))
    low, middle, high = sorted(table.files(), key=lambda f: int(f.stats["id"].min or 0))

    snapshot = table.merge(
        pa.table({"id": [105, 300], "name": ["X", "new"], "score": [1.0, 1.0]}), on=["id"]
    )

    keys = data_keys(table)
    assert low.key in keys
    assert high.key in keys
    assert middle.key not in keys
    assert snapshot.summary["removed_files"] == 1
    assert table.count() == 31
    names = {r["id"]: r["name"] for r in table.to_arrow().to_pylist()}
    assert names[105] == "X"
    assert names[300] == "new"
    assert names[104] == "n104"


def test_a_file_whose_range_covers_a_new_key_but_holds_no_match_is_not_rewritten(
    table: Table,
) -> None:
    table.append(pa.table({"id": [1, 3, 5], "name": ["a", "c", "e"], "score": [0.0] * 3}))
    (original,) = table.files()

    snapshot = table.merge(
        pa.table({"id": [2, 4], "name": ["b", "d"], "score": [0.0, 0.0]}), on=["id"]
    )

    assert original.key in data_keys(table)
    assert snapshot.summary["removed_files"] == 0
    assert [r["id"] for r in table.to_arrow().sort_by("id").to_pylist()] == [1, 2, 3, 4, 5]


def test_merge_handles_files_of_many_row_groups(table: Table) -> None:
    n = 50_000
    table.append(
        pa.table({"id": list(range(n)), "name": ["x"] * n, "score": [0.0] * n}),
        options=WriteOptions(row_group_size=4_096),
    )

    table.merge(
        pa.table(
            {"id": [7, 33_333, 49_999, n], "name": ["u", "u", "u", "new"], "score": [1.0] * 4}
        ),
        on=["id"],
        delete_column=None,
    )
    table.merge(
        pa.table({"id": [10, 40_000], "d": [True, True]}).append_column(
            "name", pa.array([None, None], pa.string())
        ),
        on=["id"],
        delete_column="d",
    )

    result = table.to_arrow()
    assert result.num_rows == n + 1 - 2
    updated = result.filter(pc.equal(result["name"], "u"))
    assert sorted(updated["id"].to_pylist()) == [7, 33_333, 49_999]
    assert 10 not in set(result["id"].to_pylist())


# -- bad input -----------------------------------------------------------------------------------


def test_duplicate_keys_in_the_data_are_refused_and_nothing_is_left_behind(
    lake: Lake, table: Table
) -> None:
    table.append(pa.table({"id": [1], "name": ["a"], "score": [1.0]}))
    before_files = stored_parquet(lake, table)
    before = table.current_snapshot()

    with pytest.raises(InvalidInputError, match=r"duplicate key.*id=7"):
        table.merge(
            pa.table({"id": [7, 8, 7], "name": ["x", "y", "z"], "score": [0.0] * 3}), on=["id"]
        )

    assert table.current_snapshot() == before
    assert stored_parquet(lake, table) == before_files


def test_duplicate_multi_column_keys_name_every_key_column(lake: Lake) -> None:
    schema = pa.schema([("a", pa.string()), ("b", pa.int64())])
    table = lake.create_table("app.dups", schema)

    with pytest.raises(InvalidInputError, match=r"a='x', b=1"):
        table.merge(pa.table({"a": ["x", "x", "x"], "b": [1, 2, 1]}), on=["a", "b"])


def test_null_keys_are_refused_and_the_table_is_unchanged(table: Table) -> None:
    table.append(pa.table({"id": [1], "name": ["a"], "score": [1.0]}))
    before = table.current_snapshot()

    with pytest.raises(InvalidInputError, match=r"'id' has 1 null"):
        table.merge(pa.table({"id": [2, None], "name": ["b", "c"], "score": [0.0, 0.0]}), on=["id"])

    assert table.current_snapshot() == before
    assert rows(table, "id") == [{"id": 1}]


@pytest.mark.parametrize(
    ("on", "message"),
    [
        (["nope"], r"'nope' is not a column of the table"),
        (["score", "score"], r"repeat"),
        ([], r"key columns"),
    ],
)
def test_bad_key_columns_are_refused(table: Table, on: list[str], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        table.merge(pa.table({"id": [1], "name": ["a"], "score": [1.0]}), on=on)


def test_a_key_missing_from_the_data_is_refused(table: Table) -> None:
    with pytest.raises(InvalidInputError, match=r"'name' is missing from the data"):
        table.merge(pa.table({"id": [1], "score": [1.0]}), on=["id", "name"])


def test_a_nested_key_column_is_refused(lake: Lake) -> None:
    table = lake.create_table("app.nested", pa.schema([("k", pa.list_(pa.int64()))]))

    with pytest.raises(InvalidInputError, match=r"nested type"):
        table.merge(pa.table({"k": [[1]]}), on=["k"])


def test_delete_column_must_be_boolean_and_not_a_table_column(lake: Lake) -> None:
    table = lake.create_table("app.flags", pa.schema([("id", pa.int64()), ("active", pa.bool_())]))

    with pytest.raises(InvalidInputError, match=r"boolean"):
        table.merge(pa.table({"id": [1], "gone": [1]}), on=["id"], delete_column="gone")
    with pytest.raises(InvalidInputError, match=r"is a column of the table"):
        table.merge(pa.table({"id": [1], "active": [True]}), on=["id"], delete_column="active")
    with pytest.raises(InvalidInputError, match=r"cannot be a key"):
        table.merge(pa.table({"id": [1], "x": [True]}), on=["id", "x"], delete_column="x")


# -- concurrency ---------------------------------------------------------------------------------


def _batches_then(action: Any, batch: pa.RecordBatch) -> Iterator[pa.RecordBatch]:
    """Yield ``batch``, then run ``action`` while the merge is writing (after it read its base
    snapshot): a commit by another writer that lands during the merge."""
    yield batch
    action()


def test_a_concurrent_append_of_the_same_key_makes_the_merge_conflict(
    lake: Lake, table: Table
) -> None:
    table.append(pa.table({"id": [1, 2], "name": ["a", "b"], "score": [1.0, 2.0]}))
    other = lake.table("app.users")
    incoming = pa.record_batch({"id": [2, 3], "name": ["B", "C"], "score": [0.0, 0.0]})

    def concurrent() -> None:
        other.append(pa.table({"id": [3], "name": ["other"], "score": [9.0]}))

    with pytest.raises(CommitConflictError):
        table.merge(_batches_then(concurrent, incoming), on=["id"])

    assert rows(table, "id", "name") == [
        {"id": 1, "name": "a"},
        {"id": 2, "name": "b"},
        {"id": 3, "name": "other"},
    ]
    # the losing merge deleted the files it wrote
    assert stored_parquet(lake, table) == data_keys(table)


def test_a_concurrent_append_of_unrelated_keys_rebases(lake: Lake, table: Table) -> None:
    table.append(pa.table({"id": [1, 2], "name": ["a", "b"], "score": [1.0, 2.0]}))
    other = lake.table("app.users")
    incoming = pa.record_batch({"id": [2], "name": ["B"], "score": [0.0]})

    def concurrent() -> None:
        other.append(pa.table({"id": [1000], "name": ["far"], "score": [9.0]}))

    table.merge(_batches_then(concurrent, incoming), on=["id"])

    assert rows(table, "id", "name") == [
        {"id": 1, "name": "a"},
        {"id": 1000, "name": "far"},
        {"id": 2, "name": "B"},
    ]


def test_a_concurrent_rewrite_of_a_file_the_merge_rewrites_conflicts(
    lake: Lake, table: Table
) -> None:
    table.append(pa.table({"id": [1, 2], "name": ["a", "b"], "score": [1.0, 2.0]}))
    other = lake.table("app.users")
    incoming = pa.record_batch({"id": [2], "name": ["mine"], "score": [0.0]})

    def concurrent() -> None:
        other.merge(pa.table({"id": [1], "name": ["theirs"], "score": [0.0]}), on=["id"])

    with pytest.raises(CommitConflictError):
        table.merge(_batches_then(concurrent, incoming), on=["id"])

    assert rows(table, "id", "name") == [{"id": 1, "name": "theirs"}, {"id": 2, "name": "b"}]


# -- candidate pruning by statistics -------------------------------------------------------------


def _file(key: str, partition: dict[str, str | None], **bounds: tuple[str, str] | None) -> Any:
    from lakekit.tables.metadata import ColumnStats, DataFile

    stats = {
        name: ColumnStats(0, *pair) if pair else ColumnStats(None) for name, pair in bounds.items()
    }
    return DataFile(key, partition, record_count=1, file_size=1, schema_id=0, stats=stats)


def test_candidate_files_are_those_whose_bounds_and_partition_can_hold_a_key() -> None:
    from lakekit.partition_spec import PartitionSpec
    from lakekit.tables.merge import may_hold_keys

    schema = pa.schema([("id", pa.int64()), ("day", pa.date32()), ("region", pa.string())])
    spec = PartitionSpec.of("region")
    keys = pa.table(
        {
            "id": pa.array([5, 50], pa.int64()),
            "day": pa.array([19_000, 19_010], pa.date32()),
            "region": ["eu", "us"],
        }
    )
    files = [
        _file("a", {"region": "eu"}, id=("1", "9"), day=("2022-01-01", "2022-12-31")),  # 5
        _file("b", {"region": "eu"}, id=("6", "49"), day=("2022-01-01", "2022-12-31")),  # gap
        _file("c", {"region": "us"}, id=("50", "50"), day=("2022-01-18", "2022-01-18")),  # 50
        _file("d", {"region": "ap"}, id=("1", "99"), day=("2022-01-01", "2022-12-31")),  # region
        _file("e", {"region": None}, id=("1", "99")),  # null partition holds no key
        _file("f", {"region": "us"}, id=None, day=None),  # no statistics: must be read
        _file("g", {"region": "eu"}, id=("1", "99"), day=("2023-01-01", "2023-12-31")),  # day
        _file("h", {"region": "eu"}, id=("x", "y")),  # unparseable bounds: no pruning by them
    ]

    assert may_hold_keys(files, keys, schema, spec) == [
        True, False, True, False, False, True, False, True,
    ]  # fmt: skip


def test_candidate_pruning_never_drops_a_file_that_holds_a_key() -> None:
    import random

    from lakekit.partition_spec import PartitionSpec
    from lakekit.tables.merge import may_hold_keys

    rng = random.Random(7)
    schema = pa.schema([("k", pa.string()), ("n", pa.int32())])
    for _ in range(50):
        files, held = [], []
        for index in range(20):
            ks = [rng.choice("abcdefghij") * rng.randint(1, 3) for _ in range(3)]
            ns = [rng.randint(-50, 50) for _ in range(3)]
            files.append(
                _file(str(index), {}, k=(min(ks), max(ks)), n=(str(min(ns)), str(max(ns))))
            )
            held.append(set(zip(ks, ns, strict=True)))
        pairs = {(rng.choice("abcdefghij") * rng.randint(1, 3), rng.randint(-50, 50))}
        pairs |= {rng.choice(sorted(held[rng.randrange(20)])) for _ in range(3)}
        keys = pa.table(
            {"k": [p[0] for p in pairs], "n": pa.array([p[1] for p in pairs], pa.int32())}
        )
        verdicts = may_hold_keys(files, keys, schema, PartitionSpec())
        for verdict, contents in zip(verdicts, held, strict=True):
            if contents & pairs:
                assert verdict
