"""Conformance suite for lake tables: what ``lake.table(...)`` guarantees on any lake.

A lake (its object store, catalog and engine together) proves its tables behave like the local
lake's by subclassing :class:`TableSuite` and overriding one fixture, ``lake_factory``, returning
a *picklable zero-argument callable* that opens the lake (the suite opens it in-process and in
child processes for the multi-writer tests)::

    import functools
    import pytest
    import lakekit
    from lakekit.testing import TableSuite

    class TestMyLakeTables(TableSuite):
        @pytest.fixture
        def lake_factory(self, tmp_path):
            return functools.partial(lakekit.connect, f"local://{tmp_path}/lake")

Every test works in its own namespace (``lkt_<uuid>``) and removes its tables, their files and
the namespace afterwards, so the suite can run against a shared, long-lived lake.

What is checked: creating and loading tables and their errors; append, overwrite and
overwrite_partitions; every accepted input kind; partition transforms and the Hive directory
layout; special characters and nulls in partition values (through ``scan`` and ``lake.sql``);
snapshots, history, time travel and rollback; schema evolution; ``set_state``; pruning; a large
streaming write with bounded memory; and, with real processes, concurrent appends (all land),
concurrent overwrites (exactly one wins, the loser's files are deleted) and readers that always
see exactly one snapshot; merge, ``lake.register_table`` and the maintenance operations
(compact, expire_snapshots, vacuum).

Child processes start from a fork server (``multiprocessing``'s ``forkserver``: a fresh,
single-threaded process that imported lakekit, pyarrow and SQLAlchemy once, then forks one child
per worker) where the platform has one, otherwise they are spawned; set ``start_method =
"spawn"`` to always spawn, and extend ``process_preload`` with your adapter's modules. Either
way a child runs with the parent's current environment variables and working directory, so a
``lake_factory`` may rely on variables that fixtures set.

Tests of optional behaviour are gated on declared capabilities: without the catalog's ``STATE``
the suite asserts that ``set_state`` raises NotSupportedError; the cross-process tests need the
catalog's ``MULTI_WRITER`` (there is nothing to assert without it, so they are skipped).
"""

from __future__ import annotations

import functools
import itertools
import multiprocessing
import os
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from lakekit.capabilities import Capability
from lakekit.errors import (
    AlreadyExistsError,
    CommitConflictError,
    InvalidInputError,
    NotFoundError,
    NotSupportedError,
    SchemaError,
)
from lakekit.partition_spec import PartitionField, PartitionSpec
from lakekit.testing._processes import run_reporting_workers

if TYPE_CHECKING:
    from lakekit.lake import Lake
    from lakekit.tables import Table

__all__ = ["LakeFactory", "TableSuite"]

LakeFactory = Callable[[], "Lake"]
"""A picklable zero-argument callable opening the lake, e.g.
``functools.partial(lakekit.connect, "local:///tmp/lake")``."""

_PRELOAD = (
    "lakekit.testing.table_suite",
    "lakekit.lake",
    "lakekit.tables.table",
    "lakekit.tables.inputs",
    "lakekit.tables.writer",
    "lakekit.tables.scan",
    "lakekit.tables.transforms",
    "lakekit.adapters.local.object_store",
    "lakekit.adapters.sql.catalog",
    "pyarrow.dataset",
    "pyarrow.parquet",
    "sqlalchemy",
    "sqlalchemy.dialects.sqlite",
    "sqlite3",
)
"""Modules the fork server imports once, so that each child process starts in milliseconds."""
_T0 = datetime(2026, 11, 26, 13, 5, 7, 123456, tzinfo=UTC)
_DAY = timedelta(days=1)
_HIDDEN = "/_lakekit/"
"""Table-relative directory of metadata and manifests (never data)."""


def _field(name: str, dtype: pa.DataType, nullable: bool = True) -> pa.Field[Any]:
    return pa.field(name, dtype, nullable=nullable)


def _schema() -> pa.Schema:
    return pa.schema(
        [
            _field("id", pa.int64(), nullable=False),
            _field("ts", pa.timestamp("us", tz="UTC")),
            _field("country", pa.string()),
            _field("amount", pa.float64()),
        ]
    )


def _int_list(values: pa.Array[Any] | pa.ChunkedArray[Any]) -> list[int]:
    """The values of an integer column without nulls, sorted."""
    items = values.to_pylist()
    assert None not in items, "unexpected null"
    return sorted(int(v) for v in items if v is not None)


def _events(
    ids: Sequence[int] | range,
    *,
    country: str | Sequence[str | None] | None = "US",
    day: int = 0,
) -> pa.Table:
    """Rows ``id`` with a timestamp on day ``day`` after _T0, a country, and amount ``id / 2``."""
    ids = list(ids)
    countries = [country] * len(ids) if country is None or isinstance(country, str) else country
    return pa.table(
        {
            "id": pa.array(ids, pa.int64()),
            "ts": pa.array(
                [_T0 + day * _DAY + timedelta(seconds=i) for i in ids], pa.timestamp("us", "UTC")
            ),
            "country": pa.array(list(countries), pa.string()),
            "amount": pa.array([i / 2 for i in ids], pa.float64()),
        },
        schema=_schema(),
    )


def _unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:16]}"


def _ids(table: Table, **scan: Any) -> list[int]:
    """The sorted ids a scan returns."""
    return _int_list(table.to_arrow(**scan).column("id"))


def _rows(data: pa.Table) -> list[dict[str, Any]]:
    return sorted(data.to_pylist(), key=lambda row: row["id"])


def _data_keys(lake: Lake, table: Table) -> set[str]:
    """Every data file stored under the table's location (committed or not)."""
    prefix = table.location + "/"
    return {
        key
        for key in lake.store.list_keys(prefix)
        if key.endswith(".parquet") and _HIDDEN not in f"/{key[len(prefix) :]}"
    }


def _retained_keys(table: Table) -> set[str]:
    """Data files referenced by any retained snapshot."""
    keys: set[str] = set()
    for snapshot in table.state().snapshots:
        keys.update(f.key for f in table.files(snapshot_id=snapshot.snapshot_id))
    return keys


def _relative_dirs(table: Table) -> set[str]:
    """The partition directories (relative to the location) of the current files."""
    prefix = table.location + "/"
    return {f.key[len(prefix) :].rsplit("/", 1)[0] for f in table.files()}


def _bucket(value: int, n: int) -> int:
    """``bucket[n]`` of an integer as the on-disk format defines it: one SplitMix64 step of the
    value as unsigned 64-bit, mod ``n``."""
    mask = (1 << 64) - 1
    z = (value + 0x9E3779B97F4A7C15) & mask
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
    return (z ^ (z >> 31)) % n


def _partition_value(field: PartitionField, row: dict[str, Any]) -> str:  # noqa: PLR0911
    """The directory value of ``row`` under ``field``, computed independently of lakekit."""
    value = row[field.source]
    base, _, rest = field.transform.partition("[")
    param = int(rest[:-1]) if rest else 0
    if base == "day":
        return str(value.date().isoformat())
    if base == "month":
        return f"{value.year:04d}-{value.month:02d}"
    if base == "year":
        return str(value.year)
    if base == "hour":
        return str(value.strftime("%Y-%m-%d-%H"))
    if base == "bucket":
        return str(_bucket(value, param))
    if base == "truncate":
        return str(value[:param] if isinstance(value, str) else value - value % param)
    return str(value)


def _drop_namespace(lake: Lake, namespace: str) -> None:
    """Drop every table of ``namespace`` with all its files, its state keys and itself."""
    catalog = lake.catalog
    if not catalog.namespace_exists(namespace):
        return
    for ident in catalog.list_tables(namespace):
        location = catalog.load_table(ident).location
        catalog.drop_table(ident, missing_ok=True)
        lake.store.delete_prefix(location.rstrip("/") + "/")
    if Capability.STATE in catalog.capabilities:
        for entry in catalog.list_state(f"{namespace}/"):
            catalog.delete_state(entry.key)
    catalog.drop_namespace(namespace)


def _require_multi_writer(lake: Lake) -> None:
    if Capability.MULTI_WRITER not in lake.catalog.capabilities:
        pytest.skip("the catalog does not declare MULTI_WRITER (commits from one process only)")


class _MemoryWatch:
    """Samples the peak Arrow allocation and process RSS (Linux) while active."""

    def __init__(self) -> None:
        self.base_pool = pa.total_allocated_bytes()
        self.base_rss = _rss()
        self.peak_pool = self.base_pool
        self.peak_rss = self.base_rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> _MemoryWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()

    def sample(self) -> None:
        self.peak_pool = max(self.peak_pool, pa.total_allocated_bytes())
        rss = _rss()
        if rss is not None and self.peak_rss is not None:
            self.peak_rss = max(self.peak_rss, rss)

    def _run(self) -> None:
        while not self._stop.wait(0.002):
            self.sample()

    @property
    def pool_growth(self) -> int:
        return self.peak_pool - self.base_pool

    @property
    def rss_growth(self) -> int | None:
        if self.peak_rss is None or self.base_rss is None:
            return None
        return self.peak_rss - self.base_rss


def _rss() -> int | None:
    """Resident set size in bytes (None where /proc is unavailable)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


class TableSuite:
    """Conformance tests of lake tables; override :meth:`lake_factory`.

    Tunables (class attributes): ``concurrent_appenders`` processes appending
    ``appends_per_process`` times each; ``overwrite_rounds`` of the two-process overwrite race;
    ``reader_overwrites`` committed while a reader process polls; ``large_write_rows`` and
    ``large_write_row_bytes`` of the bounded-memory write (whose peak memory growth must stay
    under ``large_write_memory_fraction`` of the data size); ``process_timeout`` seconds before
    a stuck child fails the test; ``start_method`` (``forkserver`` where available, else
    ``spawn``) and ``process_preload`` (modules the fork server imports once).
    """

    concurrent_appenders: ClassVar[int] = 3
    appends_per_process: ClassVar[int] = 4
    overwrite_rounds: ClassVar[int] = 3
    reader_overwrites: ClassVar[int] = 6
    large_write_rows: ClassVar[int] = 2_000_000
    large_write_row_bytes: ClassVar[int] = 250
    large_write_memory_fraction: ClassVar[float] = 0.5
    process_timeout: ClassVar[float] = 120.0
    start_method: ClassVar[str] = "forkserver"
    process_preload: ClassVar[tuple[str, ...]] = _PRELOAD

    # -- fixtures -------------------------------------------------------------------------------
    @pytest.fixture
    def lake_factory(self) -> LakeFactory:
        """Override: return a picklable zero-argument callable that opens the lake."""
        pytest.fail(
            f"{type(self).__name__} needs a `lake_factory` fixture returning a picklable "
            "zero-argument callable that opens the lake, e.g. "
            "functools.partial(lakekit.connect, 'local:///tmp/lake')"
        )

    @pytest.fixture
    def lake(self, lake_factory: LakeFactory) -> Iterator[Lake]:
        opened = lake_factory()
        try:
            yield opened
        finally:
            opened.close()

    @pytest.fixture
    def namespace(self, lake: Lake) -> Iterator[str]:
        """A fresh namespace; its tables (with their files) and state keys are removed after."""
        name = _unique("lkt")
        try:
            yield name
        finally:
            _drop_namespace(lake, name)

    # -- create / load / errors -----------------------------------------------------------------
    def test_created_table_is_empty_and_loads_by_name(self, lake: Lake, namespace: str) -> None:
        name = f"{namespace}.events"
        created = lake.create_table(name, _schema(), partition_by=["country"])
        loaded = lake.table(name)
        for table in (created, loaded):
            assert table.schema.equals(_schema())
            assert [f.name for f in table.partition_spec.fields] == ["country"]
            assert table.current_snapshot() is None
            assert table.history() == []
            assert table.count() == 0
            assert table.files() == []
            assert table.plan_files() == []
            empty = table.to_arrow()
            assert empty.num_rows == 0
            assert empty.schema.names == _schema().names
        assert loaded.location == lake.catalog.load_table(name).location
        assert name in {str(ident) for ident in lake.catalog.list_tables(namespace)}

    def test_creating_an_existing_table_raises_already_exists(
        self, lake: Lake, namespace: str
    ) -> None:
        name = f"{namespace}.events"
        table = lake.create_table(name, _schema())
        table.append(_events(range(3)))
        other = pa.schema([pa.field("x", pa.string())])
        with pytest.raises(AlreadyExistsError, match=name):
            lake.create_table(name, other)
        again = lake.create_table(name, other, exist_ok=True)
        assert again.schema.equals(_schema()), "exist_ok keeps the existing table as it is"
        assert _ids(again) == [0, 1, 2]

    def test_loading_a_missing_table_raises_not_found(self, lake: Lake, namespace: str) -> None:
        with pytest.raises(NotFoundError, match="missing"):
            lake.table(f"{namespace}.missing")
        with pytest.raises(FileNotFoundError):
            lake.table(f"{namespace}.missing")

    @pytest.mark.parametrize(
        "bad", ["no_namespace", "a.b.c", "ns.Upper", "ns.has space", "ns.1digit", "", ".t", "ns."]
    )
    def test_bad_table_names_are_invalid_input(self, lake: Lake, bad: str) -> None:
        with pytest.raises(InvalidInputError):
            lake.table(bad)
        with pytest.raises(InvalidInputError):
            lake.create_table(bad, _schema())

    def test_partition_column_missing_from_the_schema_is_a_schema_error(
        self, lake: Lake, namespace: str
    ) -> None:
        name = f"{namespace}.bad"
        with pytest.raises(SchemaError, match="nope"):
            lake.create_table(name, _schema(), partition_by=["nope"])
        assert not lake.catalog.table_exists(name)

    @pytest.mark.parametrize(
        "bad",
        [42, "text", b"bytes", [1, 2], {"id": [1]}, [], None, object()],
        ids=["int", "str", "bytes", "list_of_ints", "dict", "empty_list", "none", "object"],
    )
    def test_data_that_is_not_arrow_compatible_is_invalid_input(
        self, lake: Lake, namespace: str, bad: object
    ) -> None:
        table = lake.create_table(f"{namespace}.events", _schema())
        with pytest.raises(InvalidInputError):
            table.append(bad)
        assert table.current_snapshot() is None
        assert _data_keys(lake, table) == set()

    def test_a_batch_stream_that_fails_midway_commits_nothing(
        self, lake: Lake, namespace: str
    ) -> None:
        table = lake.create_table(f"{namespace}.events", _schema())
        table.append(_events(range(5)))
        before = table.current_snapshot()

        def wrong_item() -> Iterator[Any]:
            yield from _events(range(100, 200)).to_batches(max_chunksize=10)
            yield "not a batch"

        def other_schema() -> Iterator[Any]:
            yield from _events(range(100, 200)).to_batches(max_chunksize=10)
            yield pa.record_batch({"id": pa.array([1], pa.int32())})

        for source in (wrong_item, other_schema):
            with pytest.raises(InvalidInputError):
                table.append(source())
            assert table.current_snapshot() == before
            assert _ids(table) == list(range(5))

    def test_unknown_modes_are_invalid_input(self, lake: Lake, namespace: str) -> None:
        table = lake.create_table(f"{namespace}.events", _schema())
        with pytest.raises(InvalidInputError, match="upsert"):
            table.write(_events(range(3)), mode="upsert")  # type: ignore[arg-type]
        with pytest.raises(InvalidInputError, match="loose"):
            table.write(_events(range(3)), schema_mode="loose")  # type: ignore[arg-type]
        assert table.current_snapshot() is None

    # -- write modes ----------------------------------------------------------------------------
    def test_appends_accumulate_rows(self, lake: Lake, namespace: str) -> None:
        table = lake.create_table(f"{namespace}.events", _schema())
        table.append(_events(range(0, 10)))
        table.append(_events(range(10, 25)))
        assert _ids(table) == list(range(25))
        assert table.count() == 25
        assert _rows(table.to_arrow()) == _rows(_events(range(25)))

    def test_overwrite_replaces_every_row(self, lake: Lake, namespace: str) -> None:
        table = lake.create_table(f"{namespace}.events", _schema(), partition_by=["country"])
        table.append(_events(range(0, 10), country="US"))
        table.append(_events(range(10, 20), country="DE"))
        snapshot = table.overwrite(_events(range(100, 103), country="FR"))
        assert snapshot.operation == "overwrite"
        assert _ids(table) == [100, 101, 102]
        assert {f.partition["country"] for f in table.files()} == {"FR"}

    def test_overwrite_with_no_rows_empties_the_table(self, lake: Lake, namespace: str) -> None:
        table = lake.create_table(f"{namespace}.events", _schema())
        table.append(_events(range(10)))
        snapshot = table.overwrite(_events([]))
        assert snapshot.summary["total_rows"] == 0
        assert table.count() == 0
        assert table.to_arrow().num_rows == 0

    def test_overwrite_partitions_replaces_only_the_partitions_present(
        self, lake: Lake, namespace: str
    ) -> None:
        table = lake.create_table(f"{namespace}.events", _schema(), partition_by=["country"])
        table.append(_events(range(0, 10), country="US"))
        table.append(_events(range(10, 20), country="DE"))
        table.append(_events(range(20, 30), country="FR"))
        snapshot = table.overwrite_partitions(
            pa.concat_tables([_events([100, 101], country="DE"), _events([102], country="NL")])
        )
        assert snapshot.operation == "overwrite_partitions"
        assert snapshot.summary["removed_rows"] == 10
        assert snapshot.summary["added_rows"] == 3
        rows = table.to_arrow()
        by_country: dict[str | None, list[int]] = {}
        for row in _rows(rows):
            by_country.setdefault(row["country"], []).append(row["id"])
        assert by_country == {
            "US": list(range(0, 10)),
            "DE": [100, 101],
            "FR": list(range(20, 30)),
            "NL": [102],
        }

    def test_overwrite_partitions_with_a_day_transform_replaces_those_days(
        self, lake: Lake, namespace: str
    ) -> None:
        spec = PartitionSpec(fields=(PartitionField(source="ts", transform="day", name="dt"),))
        table = lake.create_table(f"{namespace}.events", _schema(), partition_by=spec)
        for day in range(3):
            table.append(_events(range(day * 10, day * 10 + 10), day=day))
        table.overwrite_partitions(_events([500, 501], day=1))
        days = {row["id"]: (row["ts"] - _T0).days for row in table.to_arrow().to_pylist()}
        assert sorted(days) == [*range(0, 10), *range(20, 30), 500, 501]
        assert days[500] == days[501] == 1

    def test_overwrite_partitions_of_an_unpartitioned_table_replaces_everything(
        self, lake: Lake, namespace: str
    ) -> None:
        table = lake.create_table(f"{namespace}.events", _schema())
        table.append(_events(range(10)))
        table.overwrite_partitions(_events([42]))
        assert _ids(table) == [42]

    # -- inputs ---------------------------------------------------------------------------------
    @pytest.mark.parametrize(
        "kind",
        [
            "arrow_table",
            "record_batch",
            "record_batch_reader",
            "batch_iterator",
            "table_list",
            "pandas",
            "polars",
            "dicts",
        ],
    )
    def test_every_input_kind_writes_the_same_rows(
        self, lake: Lake, namespace: str, kind: str
    ) -> None:
        table = lake.create_table(f"{namespace}.events", _schema(), partition_by=["country"])
        expected = _events(range(20), country=["US", "DE", None, "FR"] * 5)
        table.append(_as_input(expected, kind))
        assert _rows(table.to_arrow()) == _rows(expected)
        assert table.schema.equals(_schema()), f"{kind} input changed the table's schema"

    def test_the_table_schema_is_kept_for_every_input_kind_in_strict_mode(
        self, lake: Lake, namespace: str
    ) -> None:
        """pandas and polars hold strings as large_string: that is not a schema change."""
        table = lake.create_table(f"{namespace}.events", _schema())
        expected = _events(range(4))
        for kind in ("pandas", "polars", "dicts", "batch_iterator"):
            table.overwrite(_as_input(expected, kind), schema_mode="strict")
            assert _rows(table.to_arrow()) == _rows(expected)
        assert table.schema.equals(_schema())

    # -- partition layout -----------------------------------------------------------------------
    @pytest.mark.parametrize(
        ("field", "example"),
        [
            (PartitionField(source="ts", transform="day", name="dt"), "dt=2026-11-26"),
            (PartitionField(source="ts", transform="month"), "ts_month=2026-12"),
            (PartitionField(source="ts", transform="year"), "ts_year=2026"),
            (PartitionField(source="ts", transform="hour"), "ts_hour=2026-11-26-13"),
            (PartitionField(source="country"), "country=US"),
            (PartitionField(source="country", transform="truncate[1]", name="c1"), "c1=U"),
            (PartitionField(source="id", transform="truncate[10]"), "id_truncate=-10"),
            (PartitionField(source="id", transform="bucket[4]"), f"id_bucket={_bucket(0, 4)}"),
        ],
        ids=["day", "month", "year", "hour", "identity", "truncate_str", "truncate_int", "bucket"],
    )
    def test_partition_transforms_lay_out_hive_directories(
        self, lake: Lake, namespace: str, field: PartitionField, example: str
    ) -> None:
        table = lake.create_table(
            f"{namespace}.events", _schema(), partition_by=PartitionSpec(fields=(field,))
        )
        ids = list(range(-3, 13))
        data = pa.table(
            {
                "id": pa.array(ids, pa.int64()),
                "ts": pa.array(
                    [_T0 + timedelta(hours=11 * i) for i in ids], pa.timestamp("us", "UTC")
                ),
                "country": pa.array(["US" if i % 2 else "DE" for i in ids], pa.string()),
                "amount": pa.array([float(i) for i in ids], pa.float64()),
            },
            schema=_schema(),
        )
        table.append(data)
        expected = {f"{field.name}={_partition_value(field, row)}" for row in data.to_pylist()}
        assert example in expected
        assert _relative_dirs(table) == expected
        for data_file in table.files():
            directory = data_file.key[len(table.location) + 1 :].rsplit("/", 1)[0]
            name, _, value = directory.partition("=")
            assert data_file.partition == {name: value}
            if field.transform == "identity":
                continue  # the column lives in the directory name only
            with lake.store.open(data_file.key) as stream:
                rows = pq.read_table(stream).to_pylist()
            assert rows, data_file.key
            for row in rows:
                assert _partition_value(field, row) == value, f"{row} is in {directory}"
        assert _rows(table.to_arrow()) == _rows(data), "partition values are not data"
        table.append(data)  # the same values land in the same directories again
        assert _relative_dirs(table) == expected

    def test_multi_level_partitions_nest_in_spec_order(self, lake: Lake, namespace: str) -> None:
        spec = PartitionSpec.of("day(ts)", "country")
        table = lake.create_table(f"{namespace}.events", _schema(), partition_by=spec)
        table.append(_events([1, 2], country="US", day=0))
        table.append(_events([3], country="DE", day=1))
        assert _relative_dirs(table) == {
            "ts_day=2026-11-26/country=US",
            "ts_day=2026-11-27/country=DE",
        }

    def test_special_characters_and_nulls_in_partition_values_round_trip(
        self, lake: Lake, namespace: str
    ) -> None:
        name = f"{namespace}.events"
        table = lake.create_table(name, _schema(), partition_by=["country"])
        values: list[str | None] = [
            "US",
            "a/b",
            "x=y",
            "50%",
            "sp ace",
            "naïve",
            "日本",
            "quote'\"",
            "back\\slash",
            "#hash?q&r",
            "..",
            "",
            None,
        ]
        data = _events(range(len(values)), country=values)
        table.append(data)
        expected = {row["id"]: row["country"] for row in data.to_pylist()}
        scanned = {row["id"]: row["country"] for row in table.to_arrow().to_pylist()}
        assert scanned == expected
        assert len(table.files()) == len(values)
        for data_file in table.files():
            relative = data_file.key[len(table.location) + 1 :]
            assert relative.count("/") == 1, f"a partition value escaped its directory: {relative}"
        queried = lake.sql(f"SELECT id, country FROM {name}").to_arrow()
        pairs = zip(queried["id"].to_pylist(), queried["country"].to_pylist(), strict=True)
        assert dict(pairs) == expected
        for value in values:
            wanted = [i for i, v in expected.items() if v == value]
            term = pc.field("country").is_null() if value is None else pc.field("country") == value
            assert _ids(table, filter=term) == wanted, f"filter on {value!r}"
            assert len(table.plan_files(term)) == 1, f"pruning on {value!r}"

    # -- snapshots, history, time travel, rollback ----------------------------------------------
    def test_snapshots_record_lineage_operation_and_counts(
        self, lake: Lake, namespace: str
    ) -> None:
        table = lake.create_table(f"{namespace}.events", _schema(), partition_by=["country"])
        s1 = table.append(_events(range(0, 10), country="US"))
        s2 = table.append(_events(range(10, 15), country="DE"))
        s3 = table.overwrite(_events(range(100, 103), country="FR"))
        assert len({s1.snapshot_id, s2.snapshot_id, s3.snapshot_id}) == 3
        assert (s1.parent_id, s2.parent_id, s3.parent_id) == (None, s1.snapshot_id, s2.snapshot_id)
        assert s1.sequence_number < s2.sequence_number < s3.sequence_number
        assert s1.timestamp_ms < s2.timestamp_ms < s3.timestamp_ms
        assert (s1.operation, s2.operation, s3.operation) == ("append", "append", "overwrite")
        assert s1.summary["added_rows"] == 10
        assert s1.summary["total_rows"] == 10
        assert s1.summary["removed_rows"] == 0
        assert s1.summary["total_files"] == s1.summary["added_files"] >= 1
        assert s2.summary["added_rows"] == 5
        assert s2.summary["total_rows"] == 15
        assert s2.summary["total_files"] == s1.summary["total_files"] + s2.summary["added_files"]
        assert s3.summary["added_rows"] == 3
        assert s3.summary["removed_rows"] == 15
        assert s3.summary["removed_files"] == s2.summary["total_files"]
        assert s3.summary["total_rows"] == 3
        assert table.current_snapshot() == s3
        assert table.snapshot(s1.snapshot_id) == s1
        assert [s.snapshot_id for s in table.history()] == [
            s1.snapshot_id,
            s2.snapshot_id,
            s3.snapshot_id,
        ]
        assert table.count(snapshot_id=s2.snapshot_id) == 15
        with pytest.raises(NotFoundError):
            table.snapshot(123)

    def test_time_travel_by_snapshot_id_and_by_timestamp(self, lake: Lake, namespace: str) -> None:
        table = lake.create_table(f"{namespace}.events", _schema())
        s1 = table.append(_events(range(0, 10)))
        s2 = table.append(_events(range(10, 15)))
        table.overwrite(_events([99]))
        assert _ids(table, snapshot_id=s1.snapshot_id) == list(range(10))
        assert _ids(table, snapshot_id=s2.snapshot_id) == list(range(15))
        assert _ids(table, as_of=s1.timestamp) == list(range(10))
        assert _ids(table, as_of=s2.timestamp) == list(range(15))
        assert _ids(table, as_of=s2.timestamp + timedelta(microseconds=500)) == list(range(15))
        assert _ids(table, as_of=datetime.now(UTC) + timedelta(days=1)) == [99]
        with pytest.raises(NotFoundError):
            table.scan(as_of=s1.timestamp - timedelta(milliseconds=1))
        with pytest.raises(NotFoundError):
            table.scan(snapshot_id=123)
        with pytest.raises(InvalidInputError):
            table.scan(snapshot_id=s1.snapshot_id, as_of=s1.timestamp)

    def test_rollback_restores_an_old_snapshot_as_a_new_one(
        self, lake: Lake, namespace: str
    ) -> None:
        table = lake.create_table(f"{namespace}.events", _schema())
        s1 = table.append(_events(range(0, 5)))
        s2 = table.overwrite(_events(range(50, 60)))
        rolled = table.rollback(s1.snapshot_id)
        assert rolled.operation == "rollback"
        assert rolled.parent_id == s2.snapshot_id
        assert _ids(table) == list(range(5))
        assert [s.operation for s in table.history()] == ["append", "overwrite", "rollback"]
        assert _ids(table, snapshot_id=s2.snapshot_id) == list(range(50, 60)), "history is kept"
        table.append(_events([7]))
        assert _ids(table) == [0, 1, 2, 3, 4, 7]
        with pytest.raises(NotFoundError):
            table.rollback(123)

    # -- schema evolution -----------------------------------------------------------------------
    def test_a_new_nullable_column_is_added_and_old_rows_read_null(
        self, lake: Lake, namespace: str
    ) -> None:
        table = lake.create_table(f"{namespace}.events", _schema())
        s1 = table.append(_events([1, 2]))
        extra = _events([3]).append_column("note", pa.array(["hi"], pa.string()))
        table.append(extra)
        assert table.schema.names == [*_schema().names, "note"]
        assert table.schema.field("note").type == pa.string()
        notes = {row["id"]: row["note"] for row in table.to_arrow().to_pylist()}
        assert notes == {1: None, 2: None, 3: "hi"}
        old = table.to_arrow(snapshot_id=s1.snapshot_id)
        assert old.schema.names == _schema().names, "time travel reads the old schema"
        assert lake.catalog.load_table(table.ident).schema.names == table.schema.names

    def test_columns_missing_from_the_data_are_written_as_null(
        self, lake: Lake, namespace: str
    ) -> None:
        table = lake.create_table(f"{namespace}.events", _schema())
        table.append(_events([1]).select(["id", "country"]))
        assert table.to_arrow().to_pylist() == [
            {"id": 1, "ts": None, "country": "US", "amount": None}
        ]
        with pytest.raises(SchemaError, match="id"):
            table.append(_events([2]).select(["country"]))

    @pytest.mark.parametrize("kind", ["arrow_table", "polars", "dicts"])
    def test_a_null_in_a_not_null_column_is_a_schema_error(
        self, lake: Lake, namespace: str, kind: str
    ) -> None:
        table = lake.create_table(f"{namespace}.events", _schema())
        table.append(_events([1]))
        data = _events([2, 3]).set_column(0, _field("id", pa.int64()), pa.array([2, None]))
        with pytest.raises(SchemaError, match="id"):
            table.append(_as_input(data, kind))
        assert _ids(table) == [1]
        assert not table.schema.field("id").nullable, "writes never drop a NOT NULL"

    def test_integer_columns_widen_losslessly(self, lake: Lake, namespace: str) -> None:
        schema = pa.schema([pa.field("id", pa.int64()), pa.field("n", pa.int32())])
        table = lake.create_table(f"{namespace}.numbers", schema)
        table.append(pa.table({"id": [1], "n": pa.array([2**31 - 1], pa.int32())}))
        table.append(pa.table({"id": [2], "n": pa.array([2**40], pa.int64())}))
        assert table.schema.field("n").type == pa.int64()
        table.append(pa.table({"id": [3], "n": pa.array([-5], pa.int16())}))
        assert table.schema.field("n").type == pa.int64(), "narrower data keeps the wider type"
        values = {row["id"]: row["n"] for row in table.to_arrow().to_pylist()}
        assert values == {1: 2**31 - 1, 2: 2**40, 3: -5}

    def test_an_incompatible_type_change_is_a_schema_error_naming_the_column(
        self, lake: Lake, namespace: str
    ) -> None:
        table = lake.create_table(f"{namespace}.events", _schema())
        table.append(_events([1]))
        before = table.current_snapshot()
        bad = _events([2]).set_column(3, "amount", pa.array(["lots"], pa.string()))
        with pytest.raises(SchemaError, match="amount") as info:
            table.append(bad)
        assert info.value.column == "amount"
        assert info.value.old_type == "double"
        assert info.value.new_type == "string"
        assert table.current_snapshot() == before
        assert table.schema.equals(_schema())
        assert _data_keys(lake, table) == {f.key for f in table.files()}

    def test_strict_schema_mode_refuses_any_change(self, lake: Lake, namespace: str) -> None:
        table = lake.create_table(f"{namespace}.events", _schema())
        extra = _events([3]).append_column("note", pa.array(["hi"], pa.string()))
        with pytest.raises(SchemaError, match="note"):
            table.append(extra, schema_mode="strict")
        wider = pa.schema([_field("id", pa.int64(), nullable=False), _field("n", pa.int8())])
        with pytest.raises(SchemaError):
            table.append(pa.table({"id": [1], "n": pa.array([1], pa.int8())}, schema=wider),
                         schema_mode="strict")  # fmt: skip
        assert table.current_snapshot() is None
        table.append(_events([1]), schema_mode="strict")
        assert table.schema.equals(_schema())
        assert _ids(table) == [1]

    # -- state committed with the data ----------------------------------------------------------
    def test_set_state_is_committed_with_the_data(self, lake: Lake, namespace: str) -> None:
        table = lake.create_table(f"{namespace}.events", _schema())
        key = f"{namespace}/cursor"
        if Capability.STATE not in lake.catalog.capabilities:
            with pytest.raises(NotSupportedError):
                table.append(_events([1]), set_state={key: 1})
            assert table.current_snapshot() is None
            return
        table.append(_events([1, 2]), set_state={key: {"offset": 2}})
        assert lake.catalog.get_state(key) == {"offset": 2}
        bad = _events([3]).set_column(3, "amount", pa.array(["x"], pa.string()))
        with pytest.raises(SchemaError):
            table.append(bad, set_state={key: {"offset": 3}})
        assert lake.catalog.get_state(key) == {"offset": 2}, "a failed write moves no state"
        table.overwrite(_events([9]), set_state={key: {"offset": 9}})
        assert lake.catalog.get_state(key) == {"offset": 9}
        assert _ids(table) == [9]

    # -- scans and pruning ----------------------------------------------------------------------
    def test_scan_selects_columns(self, lake: Lake, namespace: str) -> None:
        table = lake.create_table(f"{namespace}.events", _schema(), partition_by=["country"])
        table.append(_events(range(5)))
        assert table.to_arrow(columns=["id"]).column_names == ["id"]
        picked = table.to_arrow(columns=["country", "id"])
        assert picked.column_names == ["country", "id"]
        assert set(picked["country"].to_pylist()) == {"US"}
        with pytest.raises(InvalidInputError, match="nope"):
            table.to_arrow(columns=["nope"])
        with pytest.raises(InvalidInputError):
            table.to_arrow(filter=pc.field("nope") == 1)

    def test_filters_on_the_partition_column_prune_files(self, lake: Lake, namespace: str) -> None:
        table = lake.create_table(f"{namespace}.events", _schema(), partition_by=["country"])
        for country, start in (("US", 0), ("DE", 10), ("FR", 20)):
            table.append(_events(range(start, start + 10), country=country))
        de_files = sorted(f.key for f in table.files() if f.partition["country"] == "DE")
        assert table.plan_files([("country", "=", "DE")]) == de_files
        assert table.plan_files(pc.field("country") == "DE") == de_files
        assert _ids(table, filter=[("country", "=", "DE")]) == list(range(10, 20))
        assert len(table.plan_files([("country", "in", ["US", "FR"])])) == 2
        assert table.plan_files([("country", "=", "JP")]) == []
        assert len(table.plan_files()) == 3

    def test_filters_outside_a_files_min_max_prune_it(self, lake: Lake, namespace: str) -> None:
        table = lake.create_table(f"{namespace}.events", _schema())
        for start in (0, 100, 200):
            table.append(_events(range(start, start + 100)))
        third = [f.key for f in table.files() if f.stats["id"].min == "200"]
        assert len(third) == 1
        assert table.plan_files(pc.field("id") >= 250) == third
        assert table.plan_files([("id", "<", 0)]) == []
        assert _ids(table, filter=pc.field("id") >= 250) == list(range(250, 300))
        late = _T0 + timedelta(seconds=150)
        assert (
            len(table.plan_files(pc.field("ts") > pa.scalar(late, pa.timestamp("us", "UTC")))) == 2
        )
        assert len(table.plan_files()) == 3

    def test_malformed_filters_are_invalid_input(self, lake: Lake, namespace: str) -> None:
        table = lake.create_table(f"{namespace}.events", _schema())
        table.append(_events([1]))
        with pytest.raises(InvalidInputError):
            table.to_arrow(filter=[("id", "~~", 1)])

    # -- engine ---------------------------------------------------------------------------------
    def test_lake_sql_reads_exactly_the_current_snapshot(self, lake: Lake, namespace: str) -> None:
        name = f"{namespace}.events"
        table = lake.create_table(name, _schema(), partition_by=["country"])
        count = f"SELECT count(*) FROM {name}"
        assert lake.sql(count).scalar() == 0
        s1 = table.append(_events(range(10)))
        assert lake.sql(count).scalar() == 10
        table.overwrite(_events(range(3), country="DE"))
        assert lake.sql(count).scalar() == 3, "replaced files must not be read"
        table.rollback(s1.snapshot_id)
        assert lake.sql(f"SELECT sum(id) FROM {name}").scalar() == sum(range(10))

        def failing() -> Iterator[pa.RecordBatch]:
            yield from _events(range(1000, 2000)).to_batches(max_chunksize=100)
            raise InvalidInputError("source failed")

        with pytest.raises(InvalidInputError):
            table.append(failing(), options=_small_files())
        assert lake.sql(count).scalar() == 10, "files of a failed write must not be read"

    # -- bounded memory -------------------------------------------------------------------------
    def test_a_large_streaming_write_uses_bounded_memory(self, lake: Lake, namespace: str) -> None:
        schema = pa.schema([_field("id", pa.int64()), _field("payload", pa.string())])
        table = lake.create_table(f"{namespace}.big", schema)
        table.append(pa.table({"id": [-1], "payload": ["warm-up"]}, schema=schema))
        rows, per_batch = self.large_write_rows, 10_000
        filler: Any = pa.array(["p" * max(1, self.large_write_row_bytes - 24)] * per_batch)
        produced = [0]

        def batches(watch: _MemoryWatch) -> Iterator[pa.RecordBatch]:
            for start in range(0, rows, per_batch):
                count = min(per_batch, rows - start)
                ids = pa.array(range(start, start + count), pa.int64())
                text: Any = ids.cast(pa.string())
                payload = pc.binary_join_element_wise(filler[:count], text, "")
                batch = pa.record_batch([ids, payload], schema=schema)
                produced[0] += batch.nbytes
                watch.sample()
                yield batch

        with _MemoryWatch() as watch:
            snapshot = table.append(batches(watch))
        data_size = produced[0]
        bound = self.large_write_memory_fraction * data_size
        assert snapshot.summary["added_rows"] == rows
        assert watch.pool_growth < bound, (
            f"Arrow memory grew by {watch.pool_growth / 1e6:.0f} MB writing "
            f"{data_size / 1e6:.0f} MB: the write is not streaming"
        )
        rss_growth = watch.rss_growth
        if rss_growth is not None:
            assert rss_growth < bound, (
                f"RSS grew by {rss_growth / 1e6:.0f} MB writing {data_size / 1e6:.0f} MB"
            )
        assert table.count() == rows + 1
        total = 0
        for batch in table.scan(columns=["id"], filter=pc.field("id") >= 0):
            total += pc.sum(batch.column(0)).as_py() or 0
        assert total == rows * (rows - 1) // 2

    # -- concurrent writers (in-process, deterministic interleaving) ----------------------------
    def test_an_append_that_loses_the_race_is_rebased(self, lake: Lake, namespace: str) -> None:
        name = f"{namespace}.events"
        table = lake.create_table(name, _schema())
        base = table.append(_events(range(5)))
        other = lake.table(name)
        winner: list[int] = []

        def racing() -> Iterator[pa.RecordBatch]:
            # runs after `table` read the base snapshot and before it commits
            winner.append(other.append(_events(range(100, 110))).snapshot_id)
            yield from _events(range(5, 8)).to_batches()

        rebased = table.append(racing())
        assert rebased.parent_id == winner[0]
        assert _ids(table) == [*range(0, 8), *range(100, 110)]
        assert [s.parent_id for s in table.history()] == [None, base.snapshot_id, winner[0]]

    def test_an_overwrite_that_loses_the_race_raises_commit_conflict(
        self, lake: Lake, namespace: str
    ) -> None:
        name = f"{namespace}.events"
        table = lake.create_table(name, _schema())
        table.append(_events(range(5)))
        other = lake.table(name)

        def racing() -> Iterator[pa.RecordBatch]:
            other.append(_events(range(100, 110)))
            yield from _events(range(1000, 1003)).to_batches()

        with pytest.raises(CommitConflictError):
            table.overwrite(racing())
        assert _ids(table) == [*range(0, 5), *range(100, 110)], "the concurrent rows survive"
        assert _data_keys(lake, table) == _retained_keys(table), "the loser's files are deleted"

    def test_partition_overwrites_conflict_only_on_the_same_partitions(
        self, lake: Lake, namespace: str
    ) -> None:
        name = f"{namespace}.events"
        table = lake.create_table(name, _schema(), partition_by=["country"])
        table.append(_events(range(0, 5), country="US"))
        table.append(_events(range(5, 10), country="DE"))
        other = lake.table(name)

        def elsewhere() -> Iterator[pa.RecordBatch]:
            other.append(_events([100], country="FR"))
            yield from _events([200], country="DE").to_batches()

        table.overwrite_partitions(elsewhere())
        assert _ids(table) == [0, 1, 2, 3, 4, 100, 200]

        def same_partition() -> Iterator[pa.RecordBatch]:
            other.append(_events([300], country="US"))
            yield from _events([400], country="US").to_batches()

        with pytest.raises(CommitConflictError):
            table.overwrite_partitions(same_partition())
        assert _ids(table) == [0, 1, 2, 3, 4, 100, 200, 300]
        assert _data_keys(lake, table) == _retained_keys(table)

    # -- concurrent writers (real processes) ----------------------------------------------------
    def test_concurrent_appends_from_processes_all_commit_in_one_lineage(
        self, lake: Lake, lake_factory: LakeFactory, namespace: str
    ) -> None:
        _require_multi_writer(lake)
        name = f"{namespace}.events"
        lake.create_table(name, _schema())
        procs, appends, rows = self.concurrent_appenders, self.appends_per_process, 50
        ctx = self._context()
        barrier = ctx.Barrier(procs, timeout=self.process_timeout)
        results: Any = ctx.Queue()
        worker = functools.partial(
            _append_worker, factory=lake_factory, name=name, appends=appends, rows=rows,
            barrier=barrier, results=results,
        )  # fmt: skip
        reports = self._run_processes(ctx, worker, procs, results, expected=procs)
        table = lake.table(name)
        expected = sorted(
            w * 1_000_000 + j * rows + k
            for w in range(procs)
            for j in range(appends)
            for k in range(rows)
        )
        assert _ids(table) == expected, "every appended row is present exactly once"
        history = table.history()
        assert len(history) == procs * appends, "every append committed its own snapshot"
        assert {s.operation for s in history} == {"append"}
        assert history[0].parent_id is None
        for parent, child in itertools.pairwise(history):
            assert child.parent_id == parent.snapshot_id, "snapshots form one lineage"
        committed = {sid for report in reports for sid in report[2]}
        assert committed == {s.snapshot_id for s in history}
        assert table.count() == len(expected)

    def test_concurrent_overwrites_from_processes_have_exactly_one_winner(
        self, lake: Lake, lake_factory: LakeFactory, namespace: str
    ) -> None:
        _require_multi_writer(lake)
        name = f"{namespace}.events"
        table = lake.create_table(name, _schema())
        table.append(_events(range(10)))
        rounds = self.overwrite_rounds
        ctx = self._context()
        barrier = ctx.Barrier(2, timeout=self.process_timeout)
        results: Any = ctx.Queue()
        worker = functools.partial(
            _overwrite_worker, factory=lake_factory, name=name, rounds=rounds, barrier=barrier,
            results=results,
        )  # fmt: skip
        reports = self._run_processes(ctx, worker, 2, results, expected=2 * rounds)
        winners: dict[int, int] = {}
        for round_no in range(rounds):
            outcomes = sorted(r[2] for r in reports if r[1] == round_no)
            assert outcomes == ["conflict", "won"], f"round {round_no}: {outcomes}"
            winners[round_no] = next(r[0] for r in reports if r[1] == round_no and r[2] == "won")
        last = winners[rounds - 1]
        assert _ids(table) == sorted(_overwrite_ids(last, rounds - 1)), "the winner's rows only"
        assert [s.operation for s in table.history()] == ["append"] + ["overwrite"] * rounds
        assert _data_keys(lake, table) == _retained_keys(table), "the losers' files are deleted"

    def test_readers_see_one_whole_snapshot_while_overwrites_commit(
        self, lake: Lake, lake_factory: LakeFactory, namespace: str
    ) -> None:
        _require_multi_writer(lake)
        name = f"{namespace}.events"
        table = lake.create_table(name, _schema())
        rows, options = 600, _small_files()
        table.overwrite(_tagged(rows, 0), options=options)
        assert len(table.files()) > 1, "each snapshot must span several files"
        ctx = self._context()
        stop, reads = ctx.Event(), ctx.Value("i", 0)
        results: Any = ctx.Queue()
        worker = functools.partial(
            _reader_worker, factory=lake_factory, name=name, rows=rows, stop=stop, reads=reads,
            results=results,
        )  # fmt: skip
        reader = ctx.Process(target=_in_parent_environment(worker), daemon=True)
        reader.start()
        try:
            self._wait_for_reads(reads, 1, reader)
            for tag in range(1, self.reader_overwrites + 1):
                table.overwrite(_tagged(rows, tag), options=options)
                self._wait_for_reads(reads, reads.value + 2, reader)
            stop.set()
            report = results.get(timeout=self.process_timeout)
            reader.join(self.process_timeout)
        finally:
            stop.set()
            if reader.is_alive():
                reader.terminate()
                reader.join(5)
            results.close()
            results.join_thread()
        if report[0] == "error":
            pytest.fail(f"reader process failed:\n{report[1]}")
        _, count, tags_seen, violations = report
        assert violations == [], f"a reader saw a mix of snapshots: {violations[:3]}"
        assert count >= 2 * self.reader_overwrites
        assert self.reader_overwrites in tags_seen, "the reader saw the last snapshot"
        assert len(tags_seen) >= 2

    # -- merge, maintenance, register ------------------------------------------------------------
    def test_merge_updates_matching_rows_and_inserts_the_others(
        self, lake: Lake, namespace: str
    ) -> None:
        table = lake.create_table(f"{namespace}.events", _schema(), partition_by=["country"])
        table.append(_events(range(5), country="US"))
        changes = _events([3, 4, 5], country=["US", "DE", "DE"])
        changes = changes.set_column(3, "amount", pa.array([30.0, 40.0, 50.0]))
        snapshot = table.merge(changes, on=["id"])
        assert snapshot.operation == "merge"
        rows = {row["id"]: (row["country"], row["amount"]) for row in table.to_arrow().to_pylist()}
        assert rows == {
            0: ("US", 0.0),
            1: ("US", 0.5),
            2: ("US", 1.0),
            3: ("US", 30.0),
            4: ("DE", 40.0),
            5: ("DE", 50.0),
        }

    def test_merge_with_a_delete_column_deletes_matching_rows(
        self, lake: Lake, namespace: str
    ) -> None:
        table = lake.create_table(f"{namespace}.events", _schema())
        table.append(_events(range(5)))
        changes = _events([1, 2, 9]).append_column("deleted", pa.array([True, False, False]))
        table.merge(changes, on=["id"], delete_column="deleted")
        assert _ids(table) == [0, 2, 3, 4, 9]
        assert "deleted" not in table.schema.names

    def test_compact_rewrites_small_files_without_changing_rows(
        self, lake: Lake, namespace: str
    ) -> None:
        table = lake.create_table(f"{namespace}.events", _schema(), partition_by=["country"])
        for start in range(0, 40, 10):
            table.append(_events(range(start, start + 10), country="US"))
        table.append(_events([100], country="DE"))
        before = _rows(table.to_arrow())
        compacted = table.compact()
        assert compacted is not None
        assert compacted.operation == "compact"
        assert _rows(table.to_arrow()) == before
        assert len(table.files()) == 2, "one file per partition"
        assert table.current_snapshot() == compacted
        assert table.compact() is None, "nothing left to compact"

    def test_expire_snapshots_and_vacuum_delete_unreachable_files(
        self, lake: Lake, namespace: str
    ) -> None:
        table = lake.create_table(f"{namespace}.events", _schema())
        s1 = table.append(_events(range(5)))
        table.overwrite(_events(range(10, 12)))

        def failing() -> Iterator[pa.RecordBatch]:
            yield from _events(range(1000, 2000)).to_batches(max_chunksize=100)
            raise InvalidInputError("source failed")

        with pytest.raises(InvalidInputError):
            table.append(failing(), options=_small_files())
        expired = table.expire_snapshots(older_than=timedelta(0))
        assert s1.snapshot_id in expired
        with pytest.raises(NotFoundError):
            table.scan(snapshot_id=s1.snapshot_id)
        stored = _data_keys(lake, table)
        assert table.vacuum() == [], "files younger than the grace period may be in-flight writes"
        assert _data_keys(lake, table) == stored
        deleted = table.vacuum(older_than=timedelta(0))
        assert set(deleted) >= stored - {f.key for f in table.files()}
        assert _data_keys(lake, table) == {f.key for f in table.files()}
        assert _ids(table) == [10, 11]

    def test_register_table_adopts_hive_parquet_files_in_place(
        self, lake: Lake, namespace: str
    ) -> None:
        import pyarrow.dataset as ds

        prefix = f"imports/{namespace}/events"
        data = _events(range(12), country=["US", "a/b", None] * 4)
        try:
            ds.write_dataset(
                data, base_dir=prefix, filesystem=lake.store.arrow_filesystem, format="parquet",
                partitioning=ds.partitioning(pa.schema([_field("country", pa.string())]),
                                             flavor="hive"),
                basename_template="part-{i}.parquet",
            )  # fmt: skip
            lake.store.put(f"{prefix}/_SUCCESS", b"")
            written = set(lake.store.list_keys(prefix + "/")) - {f"{prefix}/_SUCCESS"}
            name = f"{namespace}.adopted"
            table = lake.register_table(name, prefix)
            snapshot = table.current_snapshot()
            assert snapshot is not None
            assert snapshot.operation == "register"
            assert {f.key for f in table.files()} == written, "files are adopted, not copied"
            assert [f.name for f in table.partition_spec.fields] == ["country"]
            assert _rows(table.to_arrow()) == _rows(data)
            assert lake.sql(f"SELECT count(*) FROM {name}").scalar() == 12
            table.append(_events([100], country="US"))
            assert _ids(table) == [*range(12), 100]
            with pytest.raises(AlreadyExistsError):
                lake.register_table(name, prefix)
            with pytest.raises(NotFoundError):
                lake.register_table(f"{namespace}.nothing", f"imports/{namespace}/empty")
        finally:
            lake.store.delete_prefix(f"imports/{namespace}/")

    # -- helpers --------------------------------------------------------------------------------
    def _context(self) -> Any:
        """The multiprocessing context child processes start from (see the module doc)."""
        if self.start_method == "forkserver":
            if "forkserver" in multiprocessing.get_all_start_methods():
                ctx = multiprocessing.get_context("forkserver")
                ctx.set_forkserver_preload(list(self.process_preload))
                return ctx
            return multiprocessing.get_context("spawn")
        return multiprocessing.get_context(self.start_method)

    def _run_processes(
        self, ctx: Any, worker: Callable[[int], None], count: int, results: Any, expected: int
    ) -> list[tuple[Any, ...]]:
        """Run ``worker(i)`` in ``count`` child processes; return ``expected`` reports."""
        return run_reporting_workers(
            ctx, _in_parent_environment(worker), count=count, results=results,
            expected=expected, timeout=self.process_timeout,
        )  # fmt: skip

    def _wait_for_reads(self, reads: Any, target: int, reader: Any) -> None:
        deadline = time.monotonic() + self.process_timeout
        while reads.value < target:
            if not reader.is_alive():
                pytest.fail(f"the reader process exited early ({reader.exitcode})")
            if time.monotonic() > deadline:
                pytest.fail(f"the reader made {reads.value}/{target} reads")
            time.sleep(0.002)


# -- inputs -------------------------------------------------------------------------------------
def _as_input(data: pa.Table, kind: str) -> Any:  # noqa: PLR0911
    """``data`` in one of the shapes ``Table.write`` accepts."""
    if kind == "arrow_table":
        return data
    if kind == "record_batch":
        return data.combine_chunks().to_batches()[0]
    if kind == "record_batch_reader":
        return pa.RecordBatchReader.from_batches(data.schema, data.to_batches(max_chunksize=3))
    if kind == "batch_iterator":
        return iter(data.to_batches(max_chunksize=3))
    if kind == "table_list":
        return [data.slice(0, 7), data.slice(7)]
    if kind == "pandas":
        return data.to_pandas()
    if kind == "polars":
        import polars as pl

        return pl.from_arrow(data)
    if kind == "dicts":
        return data.to_pylist()
    raise AssertionError(kind)


def _small_files() -> Any:
    """Write options that split even a few hundred rows over several files."""
    from lakekit.tables import WriteOptions

    return WriteOptions(target_file_size=1024, row_group_size=50)


def _tagged(rows: int, tag: int) -> pa.Table:
    """``rows`` rows with ids ``0..rows-1`` and amount ``tag``: one write, recognisable."""
    data = _events(range(rows))
    return data.set_column(3, "amount", pa.array([float(tag)] * rows, pa.float64()))


def _overwrite_ids(worker: int, round_no: int) -> list[int]:
    return [worker * 1_000_000 + round_no * 1_000 + k for k in range(20)]


# -- child processes (module level, so that they pickle under spawn) ---------------------------
def _in_parent_environment(target: Callable[..., None]) -> Callable[..., None]:
    """``target`` wrapped to run with the caller's current environment and working directory
    (a fork server's children would otherwise inherit the server's, from when it started)."""
    return functools.partial(_run_in_environment, dict(os.environ), os.getcwd(), target)


def _run_in_environment(
    environ: dict[str, str], cwd: str, target: Callable[..., None], *args: Any
) -> None:
    os.environ.clear()
    os.environ.update(environ)
    os.chdir(cwd)
    target(*args)


def _append_worker(
    worker: int,
    *,
    factory: LakeFactory,
    name: str,
    appends: int,
    rows: int,
    barrier: Any,
    results: Any,
) -> None:
    """Append ``appends`` batches of ``rows`` known ids, all processes starting together."""
    try:
        with factory() as lake:
            table = lake.table(name)
            barrier.wait()
            committed = []
            for j in range(appends):
                start = worker * 1_000_000 + j * rows
                committed.append(table.append(_events(range(start, start + rows))).snapshot_id)
        results.put(("done", worker, committed))
    except BaseException:
        barrier.abort()
        results.put(("error", worker, traceback.format_exc()))


def _overwrite_worker(
    worker: int, *, factory: LakeFactory, name: str, rounds: int, barrier: Any, results: Any
) -> None:
    """Each round, overwrite the table from the same base snapshot as the other process.

    The data is a generator that waits at the barrier after its first batch: by then both
    processes have read the table's current snapshot, and neither has committed.
    """
    try:
        with factory() as lake:
            table = lake.table(name)
            for round_no in range(rounds):
                barrier.wait()
                data = _events(_overwrite_ids(worker, round_no))

                def batches(data: pa.Table = data) -> Iterator[pa.RecordBatch]:
                    first, *rest = data.to_batches(max_chunksize=10)
                    yield first
                    barrier.wait()
                    yield from rest

                try:
                    table.overwrite(batches())
                    results.put((worker, round_no, "won"))
                except CommitConflictError:
                    results.put((worker, round_no, "conflict"))
    except BaseException:
        barrier.abort()
        results.put(("error", worker, traceback.format_exc()))


def _reader_worker(
    *, factory: LakeFactory, name: str, rows: int, stop: Any, reads: Any, results: Any
) -> None:
    """Scan the table until ``stop``; every scan must be exactly one write's ``rows`` rows."""
    try:
        violations: list[str] = []
        tags: set[int] = set()
        count = 0
        with factory() as lake:
            table = lake.table(name)
            while not stop.is_set():
                data = table.to_arrow()
                ids = _int_list(data.column("id"))
                seen = {float(v) for v in data.column("amount").to_pylist() if v is not None}
                if ids != list(range(rows)) or len(seen) != 1:
                    violations.append(f"{data.num_rows} rows, tags {sorted(seen)}")
                else:
                    tags.add(int(seen.pop()))
                count += 1
                with reads.get_lock():
                    reads.value += 1
        results.put(("done", count, sorted(tags), violations))
    except BaseException:
        results.put(("error", traceback.format_exc()))
