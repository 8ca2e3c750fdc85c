"""Conformance suite for catalog adapters: what every :class:`CatalogAdapter` must do.

Subclass :class:`CatalogSuite` in a test module and override one fixture, ``catalog_factory``,
returning a *picklable zero-argument callable* that builds your adapter (the suite builds it
in-process and in child processes for the multi-writer tests)::

    import functools
    import pytest
    from lakekit.testing import CatalogSuite
    from my_package.catalog import MyCatalog

    class TestMyCatalog(CatalogSuite):
        @pytest.fixture
        def catalog_factory(self, tmp_path):
            return functools.partial(MyCatalog, url=f"sqlite:///{tmp_path}/catalog.db")

Every test works in its own namespace (``lkt_<uuid>``) and under its own state-key prefix, and
removes both afterwards, so the suite can run against a shared, long-lived database.

Tests are gated on the adapter's declared capabilities: without ``RENAME_TABLE``, ``SEARCH`` or
``STATE`` the suite asserts that the facade raises NotSupportedError; the cross-process tests
need ``MULTI_WRITER`` (there is no operation to assert without it, so they are skipped).
"""

from __future__ import annotations

import functools
import multiprocessing
import traceback
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import pyarrow as pa
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
from lakekit.identifiers import TableIdent
from lakekit.interfaces.catalog import Catalog, CatalogAdapter, TableUpdate
from lakekit.partition_spec import PartitionField, PartitionSpec
from lakekit.testing._processes import run_reporting_workers

__all__ = ["CatalogFactory", "CatalogSuite"]

CatalogFactory = Callable[[], CatalogAdapter]
"""A picklable zero-argument callable returning a fresh adapter (e.g. a functools.partial)."""


def _field(
    name: str, dtype: pa.DataType, nullable: bool = True, metadata: dict[str, str] | None = None
) -> pa.Field[Any]:
    return pa.field(name, dtype, nullable=nullable, metadata=metadata)


def _schema() -> pa.Schema:
    return pa.schema([_field("id", pa.int64(), nullable=False), _field("name", pa.string())])


def _rich_schema() -> pa.Schema:
    """Nested types, field and schema metadata: everything must round-trip exactly."""
    geo = pa.struct([_field("lat", pa.float64()), _field("lon", pa.float64())])
    return pa.schema(
        [
            _field("id", pa.int64(), nullable=False, metadata={"comment": "primary key"}),
            _field("amount", pa.decimal128(12, 2)),
            _field("ts", pa.timestamp("us", tz="UTC")),
            _field("day", pa.date32()),
            _field("payload", pa.large_binary()),
            _field("digest", pa.binary(16)),
            _field("ratio", pa.float32()),
            _field("tags", pa.list_(_field("item", pa.string(), nullable=False))),
            _field(
                "address",
                pa.struct(
                    [
                        _field("street", pa.string(), metadata={"pii": "true"}),
                        _field("zip", pa.int32(), nullable=False),
                        _field("geo", geo),
                    ]
                ),
            ),
            _field("attrs", pa.map_(pa.string(), pa.large_list(pa.int16()))),
            _field("flags", pa.list_(pa.bool_(), 3)),
        ],
        metadata={"owner": "suite", "purpose": "round trip"},
    )


class CatalogSuite:
    """Base class of the catalog conformance tests; override :meth:`catalog_factory`.

    Tunables (class attributes) for the multi-process tests: ``race_processes`` writers,
    ``race_rounds`` commit rounds, ``cas_increments`` counter increments per process, and
    ``process_timeout`` seconds before a stuck child fails the test.
    """

    race_processes: int = 3
    race_rounds: int = 12
    cas_increments: int = 15
    process_timeout: float = 120.0

    # -- fixtures ---------------------------------------------------------------------------------
    @pytest.fixture
    def catalog_factory(self) -> CatalogFactory:
        """Override: return a picklable zero-argument callable that builds the adapter."""
        pytest.fail(
            "CatalogSuite needs a `catalog_factory` fixture in your subclass returning a "
            "picklable zero-argument callable that builds the adapter, e.g. "
            "functools.partial(MyCatalog, url=...)"
        )

    @pytest.fixture
    def catalog(self, catalog_factory: CatalogFactory) -> Iterator[Catalog]:
        adapter = catalog_factory()
        assert isinstance(adapter, CatalogAdapter), (
            f"catalog_factory built {type(adapter).__name__}, not a CatalogAdapter"
        )
        facade = Catalog(adapter)
        try:
            yield facade
        finally:
            facade.close()

    @pytest.fixture
    def namespace(self, catalog: Catalog) -> Iterator[str]:
        """A fresh namespace; its tables, itself and state keys under ``<ns>/`` are removed."""
        name = _unique("lkt")
        catalog.create_namespace(name)
        try:
            yield name
        finally:
            _cleanup_namespace(catalog, name)

    @pytest.fixture
    def other_namespace(self, catalog: Catalog) -> Iterator[str]:
        name = _unique("lkt")
        catalog.create_namespace(name)
        try:
            yield name
        finally:
            _cleanup_namespace(catalog, name)

    # -- namespaces -------------------------------------------------------------------------------
    def test_created_namespace_is_listed_with_its_properties(self, catalog: Catalog) -> None:
        name = _unique("lkt")
        catalog.create_namespace(name, {"owner": "team-a", "note": "ünïcode"})
        try:
            assert name in catalog.list_namespaces()
            assert catalog.namespace_exists(name)
            assert catalog.namespace_properties(name) == {"owner": "team-a", "note": "ünïcode"}
        finally:
            catalog.drop_namespace(name)
        assert name not in catalog.list_namespaces()
        assert not catalog.namespace_exists(name)

    def test_list_namespaces_is_sorted(self, catalog: Catalog) -> None:
        names = [_unique("lkt") for _ in range(3)]
        for name in names:
            catalog.create_namespace(name)
        try:
            listed = catalog.list_namespaces()
            assert listed == sorted(listed)
            assert set(names) <= set(listed)
        finally:
            for name in names:
                catalog.drop_namespace(name)

    def test_creating_an_existing_namespace_raises_already_exists(
        self, catalog: Catalog, namespace: str
    ) -> None:
        with pytest.raises(AlreadyExistsError, match=namespace):
            catalog.create_namespace(namespace)
        catalog.create_namespace(namespace, exist_ok=True)  # no error
        assert isinstance(AlreadyExistsError("x"), FileExistsError)

    def test_dropping_a_missing_namespace_raises_not_found(self, catalog: Catalog) -> None:
        name = _unique("lkt")
        with pytest.raises(NotFoundError, match=name):
            catalog.drop_namespace(name)
        with pytest.raises(NotFoundError, match=name):
            catalog.namespace_properties(name)

    def test_dropping_a_namespace_with_tables_is_refused_and_keeps_them(
        self, catalog: Catalog, namespace: str
    ) -> None:
        catalog.create_table(f"{namespace}.t1", _schema())
        with pytest.raises(InvalidInputError, match="not empty"):
            catalog.drop_namespace(namespace)
        assert catalog.namespace_exists(namespace)
        assert catalog.load_table(f"{namespace}.t1").version == 1

    @pytest.mark.parametrize(
        "bad", ["", "Upper", "has space", "dot.ted", "1starts_digit", "x" * 129]
    )
    def test_bad_namespace_names_are_invalid_input(self, catalog: Catalog, bad: str) -> None:
        with pytest.raises(InvalidInputError):
            catalog.create_namespace(bad)
        assert bad not in catalog.list_namespaces()

    # -- tables: create / load / list / drop ------------------------------------------------------
    def test_created_table_starts_at_version_one_with_defaults(
        self, catalog: Catalog, namespace: str
    ) -> None:
        ident = f"{namespace}.events"
        created = catalog.create_table(ident, _schema())
        loaded = catalog.load_table(ident)
        for meta in (created, loaded):
            assert meta.ident == TableIdent(namespace, "events")
            assert meta.version == 1
            assert meta.location == f"tables/{namespace}/events"
            assert meta.format == "parquet"
            assert meta.partition_spec == PartitionSpec()
            assert dict(meta.properties) == {}
            assert meta.schema.equals(_schema(), check_metadata=True)
        assert isinstance(loaded.created_at, datetime)
        assert loaded.created_at.tzinfo is not None
        assert loaded.updated_at is not None
        assert loaded.updated_at >= loaded.created_at

    def test_create_table_with_explicit_location_format_and_properties(
        self, catalog: Catalog, namespace: str
    ) -> None:
        ident = f"{namespace}.custom"
        catalog.create_table(
            ident,
            _schema(),
            location=f"custom/{namespace}/place/",
            format="parquet",
            properties={"owner": "ana", "retention.days": "30", "empty": ""},
        )
        loaded = catalog.load_table(ident)
        assert loaded.location == f"custom/{namespace}/place"
        assert dict(loaded.properties) == {"owner": "ana", "retention.days": "30", "empty": ""}

    def test_table_schema_round_trips_exactly(self, catalog: Catalog, namespace: str) -> None:
        schema = _rich_schema()
        catalog.create_table(f"{namespace}.rich", schema)
        loaded = catalog.load_table(f"{namespace}.rich").schema
        assert loaded.equals(schema, check_metadata=True)
        assert loaded.field("id").metadata == {b"comment": b"primary key"}
        assert loaded.field("address").type.field("street").metadata == {b"pii": b"true"}
        assert loaded.field("tags").type.value_field.nullable is False
        assert loaded.metadata == {b"owner": b"suite", b"purpose": b"round trip"}

    def test_partition_spec_round_trips(self, catalog: Catalog, namespace: str) -> None:
        schema = pa.schema(
            [
                _field("ts", pa.timestamp("us")),
                _field("country", pa.string()),
                _field("id", pa.int64()),
            ]
        )
        spec = PartitionSpec(
            fields=(
                PartitionField(source="ts", transform="day", name="dt"),
                PartitionField(source="country"),
                PartitionField(source="id", transform="bucket[16]"),
            )
        )
        catalog.create_table(f"{namespace}.parted", schema, partition_by=spec)
        loaded = catalog.load_table(f"{namespace}.parted")
        assert loaded.partition_spec == spec
        assert [f.name for f in loaded.partition_spec.fields] == ["dt", "country", "id_bucket"]

    def test_partition_by_column_names(self, catalog: Catalog, namespace: str) -> None:
        schema = pa.schema([_field("ts", pa.timestamp("us")), _field("country", pa.string())])
        catalog.create_table(f"{namespace}.p2", schema, partition_by=["country", "month(ts)"])
        spec = catalog.load_table(f"{namespace}.p2").partition_spec
        assert [(f.source, f.transform, f.name) for f in spec.fields] == [
            ("country", "identity", "country"),
            ("ts", "month", "ts_month"),
        ]

    def test_partition_column_missing_from_schema_is_a_schema_error(
        self, catalog: Catalog, namespace: str
    ) -> None:
        with pytest.raises(SchemaError, match="nope"):
            catalog.create_table(f"{namespace}.bad", _schema(), partition_by=["nope"])
        assert not catalog.table_exists(f"{namespace}.bad")

    def test_create_table_creates_its_namespace_unless_told_not_to(self, catalog: Catalog) -> None:
        name = _unique("lkt")
        try:
            with pytest.raises(NotFoundError, match=name):
                catalog.create_table(f"{name}.t", _schema(), create_namespace=False)
            assert not catalog.namespace_exists(name)
            catalog.create_table(f"{name}.t", _schema())
            assert catalog.namespace_exists(name)
        finally:
            _cleanup_namespace(catalog, name)

    def test_creating_an_existing_table_raises_already_exists(
        self, catalog: Catalog, namespace: str
    ) -> None:
        ident = f"{namespace}.dup"
        catalog.create_table(ident, _schema(), properties={"v": "1"})
        with pytest.raises(AlreadyExistsError, match=f"{namespace}.dup"):
            catalog.create_table(ident, _schema(), properties={"v": "2"})
        existing = catalog.create_table(ident, _rich_schema(), exist_ok=True)
        assert existing.schema.equals(_schema())
        assert dict(existing.properties) == {"v": "1"}
        assert catalog.load_table(ident).version == 1

    def test_list_tables_is_sorted_and_scoped(
        self, catalog: Catalog, namespace: str, other_namespace: str
    ) -> None:
        for name in ("b_table", "a_table", "c_table"):
            catalog.create_table(f"{namespace}.{name}", _schema())
        catalog.create_table(f"{other_namespace}.elsewhere", _schema())
        assert catalog.list_tables(namespace) == [
            TableIdent(namespace, "a_table"),
            TableIdent(namespace, "b_table"),
            TableIdent(namespace, "c_table"),
        ]
        everything = catalog.list_tables()
        assert everything == sorted(everything)
        assert TableIdent(other_namespace, "elsewhere") in everything
        assert TableIdent(namespace, "a_table") in everything

    def test_list_tables_of_a_missing_namespace_raises_not_found(self, catalog: Catalog) -> None:
        name = _unique("lkt")
        with pytest.raises(NotFoundError, match=name):
            catalog.list_tables(name)

    def test_dropped_table_is_gone(self, catalog: Catalog, namespace: str) -> None:
        ident = f"{namespace}.gone"
        catalog.create_table(ident, _schema())
        catalog.drop_table(ident)
        assert not catalog.table_exists(ident)
        assert TableIdent(namespace, "gone") not in catalog.list_tables(namespace)
        with pytest.raises(NotFoundError, match=f"{namespace}.gone"):
            catalog.drop_table(ident)
        catalog.drop_table(ident, missing_ok=True)  # no error
        catalog.create_table(ident, _schema())  # the name is free again, back at version 1
        assert catalog.load_table(ident).version == 1

    def test_missing_table_raises_not_found_that_is_file_not_found(
        self, catalog: Catalog, namespace: str
    ) -> None:
        ident = f"{namespace}.nothing_here"
        with pytest.raises(NotFoundError, match=ident) as info:
            catalog.load_table(ident)
        assert isinstance(info.value, FileNotFoundError)
        assert not catalog.table_exists(ident)
        with pytest.raises(FileNotFoundError):
            catalog.load_table(f"{_unique('lkt')}.nothing_here")

    @pytest.mark.parametrize(
        "bad", ["nodot", "a.b.c", "Upper.t", "ns.Upper", "ns.has-dash", "ns.", ".t", "ns.1t"]
    )
    def test_bad_table_identifiers_are_invalid_input(self, catalog: Catalog, bad: str) -> None:
        with pytest.raises(InvalidInputError):
            catalog.create_table(bad, _schema())
        with pytest.raises(InvalidInputError):
            catalog.load_table(bad)
        with pytest.raises(InvalidInputError):
            catalog.commit(bad, 1, TableUpdate())

    @pytest.mark.parametrize("bad", [{"id": "int64"}, None, "id int64", [_field("id", pa.int64())]])
    def test_a_schema_that_is_not_arrow_is_a_schema_error(
        self, catalog: Catalog, namespace: str, bad: Any
    ) -> None:
        with pytest.raises(SchemaError, match=r"pyarrow\.Schema"):
            catalog.create_table(f"{namespace}.bad", bad)
        assert not catalog.table_exists(f"{namespace}.bad")

    # -- rename -----------------------------------------------------------------------------------
    def test_rename_table_moves_everything(
        self, catalog: Catalog, namespace: str, other_namespace: str
    ) -> None:
        src, dst = f"{namespace}.before", f"{other_namespace}.after"
        catalog.create_table(src, _rich_schema(), properties={"k": "v"})
        catalog.commit(src, 1, TableUpdate(set_properties={"k2": "v2"}))
        if Capability.RENAME_TABLE not in catalog.capabilities:
            with pytest.raises(NotSupportedError):
                catalog.rename_table(src, dst)
            return
        catalog.rename_table(src, dst)
        assert not catalog.table_exists(src)
        moved = catalog.load_table(dst)
        assert moved.ident == TableIdent(other_namespace, "after")
        assert moved.version == 2
        assert moved.schema.equals(_rich_schema(), check_metadata=True)
        assert dict(moved.properties) == {"k": "v", "k2": "v2"}
        assert moved.location == f"tables/{namespace}/before"  # files are not moved
        assert catalog.commit(dst, 2, TableUpdate()).version == 3

    def test_rename_errors(self, catalog: Catalog, namespace: str) -> None:
        a, b = f"{namespace}.a", f"{namespace}.b"
        catalog.create_table(a, _schema())
        catalog.create_table(b, _schema())
        if Capability.RENAME_TABLE not in catalog.capabilities:
            with pytest.raises(NotSupportedError):
                catalog.rename_table(a, f"{namespace}.c")
            return
        with pytest.raises(AlreadyExistsError, match=b):
            catalog.rename_table(a, b)
        with pytest.raises(NotFoundError, match=f"{namespace}.missing"):
            catalog.rename_table(f"{namespace}.missing", f"{namespace}.c")
        missing_ns = _unique("lkt")
        with pytest.raises(NotFoundError, match=missing_ns):
            catalog.rename_table(a, f"{missing_ns}.a")
        with pytest.raises(InvalidInputError):
            catalog.rename_table(a, "Bad.Name")
        assert catalog.table_exists(a)
        assert catalog.table_exists(b)

    # -- commit -----------------------------------------------------------------------------------
    def test_each_commit_increments_the_version_by_exactly_one(
        self, catalog: Catalog, namespace: str
    ) -> None:
        ident = f"{namespace}.versions"
        catalog.create_table(ident, _schema())
        for expected in range(1, 6):
            result = catalog.commit(
                ident, expected, TableUpdate(set_properties={"n": str(expected)})
            )
            assert result.version == expected + 1
            assert catalog.load_table(ident).version == expected + 1
        assert catalog.load_table(ident).properties["n"] == "5"

    def test_commit_with_a_stale_version_conflicts_and_changes_nothing(
        self, catalog: Catalog, namespace: str
    ) -> None:
        ident = f"{namespace}.stale"
        catalog.create_table(ident, _schema(), properties={"a": "1"})
        catalog.commit(ident, 1, TableUpdate(set_properties={"a": "2"}))
        before = catalog.load_table(ident)
        for stale in (1, 3, 0):
            with pytest.raises(CommitConflictError) as info:
                catalog.commit(
                    ident,
                    stale,
                    TableUpdate(
                        schema=pa.schema([_field("other", pa.string())]),
                        set_properties={"a": "3"},
                        location=f"elsewhere/{namespace}",
                    ),
                )
            assert info.value.expected == stale
            assert info.value.actual == 2
        after = catalog.load_table(ident)
        assert after.version == before.version == 2
        assert after.schema.equals(before.schema, check_metadata=True)
        assert dict(after.properties) == {"a": "2"}
        assert after.location == before.location

    def test_commit_to_a_missing_table_raises_not_found(
        self, catalog: Catalog, namespace: str
    ) -> None:
        with pytest.raises(NotFoundError, match=f"{namespace}.missing"):
            catalog.commit(f"{namespace}.missing", 1, TableUpdate())

    def test_commit_sets_and_removes_properties(self, catalog: Catalog, namespace: str) -> None:
        ident = f"{namespace}.props"
        catalog.create_table(ident, _schema(), properties={"keep": "1", "drop": "2", "change": "3"})
        update = TableUpdate(
            set_properties={"change": "30", "new": "4"},
            remove_properties=frozenset({"drop", "not_there"}),
        )
        result = catalog.commit(ident, 1, update)
        expected = {"keep": "1", "change": "30", "new": "4"}
        assert dict(result.properties) == expected
        assert dict(catalog.load_table(ident).properties) == expected
        facade = catalog.set_properties(ident, {"via": "facade"}, remove=["keep"])
        assert facade.version == 3
        assert dict(facade.properties) == {"change": "30", "new": "4", "via": "facade"}

    def test_commit_replaces_schema_partition_spec_and_location(
        self, catalog: Catalog, namespace: str
    ) -> None:
        ident = f"{namespace}.replace"
        catalog.create_table(ident, _schema())
        new_schema = _schema().append(_field("country", pa.string()))
        new_spec = PartitionSpec.of("country")
        result = catalog.commit(
            ident,
            1,
            TableUpdate(schema=new_schema, partition_spec=new_spec, location=f"moved/{namespace}"),
        )
        loaded = catalog.load_table(ident)
        for meta in (result, loaded):
            assert meta.version == 2
            assert meta.schema.equals(new_schema, check_metadata=True)
            assert meta.partition_spec == new_spec
            assert meta.location == f"moved/{namespace}"
        assert loaded.created_at is not None
        assert loaded.updated_at is not None
        assert loaded.updated_at >= loaded.created_at

    def test_an_empty_commit_still_moves_the_version(
        self, catalog: Catalog, namespace: str
    ) -> None:
        ident = f"{namespace}.empty"
        catalog.create_table(ident, _schema())
        assert catalog.commit(ident, 1, TableUpdate()).version == 2
        with pytest.raises(CommitConflictError):
            catalog.commit(ident, 1, TableUpdate())

    def test_set_state_is_committed_with_the_table(self, catalog: Catalog, namespace: str) -> None:
        ident = f"{namespace}.with_state"
        catalog.create_table(ident, _schema())
        key = f"{namespace}/cursor"
        update = TableUpdate(set_properties={"batch": "1"}, set_state={key: {"offset": 10}})
        if Capability.STATE not in catalog.capabilities:
            with pytest.raises(NotSupportedError):
                catalog.commit(ident, 1, update)
            assert catalog.load_table(ident).version == 1
            return
        catalog.commit(ident, 1, update)
        assert catalog.get_state(key) == {"offset": 10}
        entry = catalog.state_entry(key)
        assert entry is not None
        assert entry.version == 1
        catalog.commit(ident, 2, TableUpdate(set_state={key: {"offset": 20}}))
        entry = catalog.state_entry(key)
        assert entry is not None
        assert (entry.value, entry.version) == ({"offset": 20}, 2)

    def test_set_state_is_not_applied_when_the_commit_conflicts(
        self, catalog: Catalog, namespace: str
    ) -> None:
        ident = f"{namespace}.conflict_state"
        catalog.create_table(ident, _schema())
        if Capability.STATE not in catalog.capabilities:
            pytest.skip("no STATE: covered by test_set_state_is_committed_with_the_table")
        key, existing = f"{namespace}/cursor", f"{namespace}/existing"
        catalog.put_state(existing, "old")
        catalog.commit(ident, 1, TableUpdate())
        with pytest.raises(CommitConflictError):
            catalog.commit(ident, 1, TableUpdate(set_state={key: 99, existing: "new"}))
        assert catalog.state_entry(key) is None
        assert catalog.get_state(existing) == "old"
        assert catalog.load_table(ident).version == 2

    def test_set_state_none_deletes_the_key(self, catalog: Catalog, namespace: str) -> None:
        if Capability.STATE not in catalog.capabilities:
            pytest.skip("no STATE: covered by test_set_state_is_committed_with_the_table")
        ident = f"{namespace}.delete_state"
        catalog.create_table(ident, _schema())
        key = f"{namespace}/temp"
        catalog.put_state(key, [1, 2, 3])
        catalog.commit(ident, 1, TableUpdate(set_state={key: None}))
        assert catalog.state_entry(key) is None
        assert catalog.get_state(key, "default") == "default"

    # -- state ------------------------------------------------------------------------------------
    def test_state_round_trips_json_values(self, catalog: Catalog, namespace: str) -> None:
        if not self._require_state(catalog, namespace):
            return
        values: list[Any] = [
            0,
            -(2**62),
            1.5,
            True,
            "ünïcode ✓",
            [1, "two", None, [3.25]],
            {"nested": {"list": [1, 2], "null": None, "bool": False}, "": "empty key"},
        ]
        for i, value in enumerate(values):
            key = f"{namespace}/value/{i}"
            entry = catalog.put_state(key, value)
            assert entry.version == 1
            assert catalog.get_state(key) == value
        assert catalog.get_state(f"{namespace}/absent") is None
        assert catalog.get_state(f"{namespace}/absent", default=7) == 7

    def test_state_version_counts_puts(self, catalog: Catalog, namespace: str) -> None:
        if not self._require_state(catalog, namespace):
            return
        key = f"{namespace}/counter"
        for n in range(1, 5):
            entry = catalog.put_state(key, n)
            assert (entry.version, entry.value) == (n, n)
        stored = catalog.state_entry(key)
        assert stored is not None
        assert (stored.key, stored.value, stored.version) == (key, 4, 4)

    def test_state_compare_and_swap(self, catalog: Catalog, namespace: str) -> None:
        if not self._require_state(catalog, namespace):
            return
        key = f"{namespace}/cas"
        with pytest.raises(CommitConflictError):
            catalog.put_state(key, "x", expected_version=1)  # absent, expected version 1
        assert catalog.state_entry(key) is None
        assert catalog.put_state(key, "a", expected_version=0).version == 1
        with pytest.raises(CommitConflictError) as info:
            catalog.put_state(key, "b", expected_version=0)  # must not exist yet
        assert (info.value.expected, info.value.actual) == (0, 1)
        assert catalog.put_state(key, "b", expected_version=1).version == 2
        with pytest.raises(CommitConflictError) as info:
            catalog.put_state(key, "stale", expected_version=1)
        assert (info.value.expected, info.value.actual) == (1, 2)
        entry = catalog.state_entry(key)
        assert entry is not None
        assert (entry.value, entry.version) == ("b", 2)

    def test_delete_state_is_idempotent(self, catalog: Catalog, namespace: str) -> None:
        if not self._require_state(catalog, namespace):
            return
        key = f"{namespace}/to_delete"
        catalog.put_state(key, 1)
        catalog.delete_state(key)
        assert catalog.state_entry(key) is None
        catalog.delete_state(key)  # missing: no error
        assert catalog.put_state(key, 2, expected_version=0).version == 1  # starts over

    def test_list_state_filters_by_literal_prefix_and_sorts(
        self, catalog: Catalog, namespace: str
    ) -> None:
        if not self._require_state(catalog, namespace):
            return
        keys = [f"{namespace}/b", f"{namespace}/a%", f"{namespace}/a_1", f"{namespace}/ab"]
        for key in keys:
            catalog.put_state(key, key)
        catalog.put_state(f"{namespace}x/other", 0)
        try:
            listed = catalog.list_state(f"{namespace}/")
            assert [e.key for e in listed] == sorted(keys)
            assert all(e.value == e.key and e.version == 1 for e in listed)
            # '%' and '_' are literal characters, not wildcards
            assert [e.key for e in catalog.list_state(f"{namespace}/a%")] == [f"{namespace}/a%"]
            assert [e.key for e in catalog.list_state(f"{namespace}/a_")] == [f"{namespace}/a_1"]
        finally:
            catalog.delete_state(f"{namespace}x/other")

    def test_bad_state_keys_are_invalid_input(self, catalog: Catalog) -> None:
        for bad in ("", "x" * 513, "nul\x00byte"):
            with pytest.raises(InvalidInputError):
                catalog.get_state(bad)

    # -- search -----------------------------------------------------------------------------------
    def test_search_by_name_column_and_properties(self, catalog: Catalog, namespace: str) -> None:
        catalog.create_table(
            f"{namespace}.orders_eu", _rich_schema(), properties={"team": "sales", "tier": "gold"}
        )
        catalog.create_table(f"{namespace}.orders_us", _schema(), properties={"team": "sales"})
        catalog.create_table(f"{namespace}.users", _schema(), properties={"team": "growth"})
        if Capability.SEARCH not in catalog.capabilities:
            with pytest.raises(NotSupportedError):
                catalog.search("orders")
            return

        def idents(found: list[Any]) -> list[str]:
            return [str(m.ident) for m in found if m.ident.namespace == namespace]

        assert idents(catalog.search("orders")) == [
            f"{namespace}.orders_eu",
            f"{namespace}.orders_us",
        ]
        assert idents(catalog.search(f"{namespace}.us")) == [f"{namespace}.users"]
        assert idents(catalog.search(column="amount")) == [f"{namespace}.orders_eu"]
        assert idents(catalog.search(properties={"team": "sales"})) == [
            f"{namespace}.orders_eu",
            f"{namespace}.orders_us",
        ]
        assert idents(catalog.search("orders", properties={"tier": "gold"})) == [
            f"{namespace}.orders_eu"
        ]
        assert idents(catalog.search("orders", column="id", properties={"team": "growth"})) == []
        assert idents(catalog.search(namespace)) == [
            f"{namespace}.orders_eu",
            f"{namespace}.orders_us",
            f"{namespace}.users",
        ]
        found = [m for m in catalog.search(column="address") if m.ident.namespace == namespace]
        assert found[0].schema.equals(_rich_schema(), check_metadata=True)

    def test_search_text_is_literal(self, catalog: Catalog, namespace: str) -> None:
        catalog.create_table(f"{namespace}.a_b", _schema())
        catalog.create_table(f"{namespace}.axb", _schema())
        if Capability.SEARCH not in catalog.capabilities:
            with pytest.raises(NotSupportedError):
                catalog.search("a_b")
            return
        found = [str(m.ident) for m in catalog.search(f"{namespace}.a_b")]
        assert found == [f"{namespace}.a_b"]
        assert [
            m for m in catalog.search(f"{namespace}.a%") if m.ident.namespace == namespace
        ] == []

    # -- schema evolution through the facade ------------------------------------------------------
    def test_evolve_schema_appends_a_nullable_column(
        self, catalog: Catalog, namespace: str
    ) -> None:
        ident = f"{namespace}.evolve_add"
        catalog.create_table(ident, _schema())
        result = catalog.evolve_schema(ident, pa.schema([_field("email", pa.string())]))
        assert result.version == 2
        assert result.schema.names == ["id", "name", "email"]
        assert catalog.load_table(ident).schema.equals(result.schema, check_metadata=True)

    def test_evolve_schema_widens_int32_to_int64(self, catalog: Catalog, namespace: str) -> None:
        ident = f"{namespace}.evolve_widen"
        catalog.create_table(ident, pa.schema([_field("n", pa.int32()), _field("x", pa.float32())]))
        catalog.evolve_schema(
            ident, pa.schema([_field("n", pa.int64()), _field("x", pa.float64())])
        )
        loaded = catalog.load_table(ident)
        assert loaded.schema.field("n").type == pa.int64()
        assert loaded.schema.field("x").type == pa.float64()
        assert loaded.version == 2

    def test_evolve_schema_without_changes_does_not_commit(
        self, catalog: Catalog, namespace: str
    ) -> None:
        ident = f"{namespace}.evolve_same"
        catalog.create_table(ident, _schema())
        result = catalog.evolve_schema(ident, pa.schema([_field("name", pa.string())]))
        assert result.version == 1
        assert catalog.load_table(ident).version == 1

    def test_evolve_schema_rejects_an_incompatible_change_naming_the_column(
        self, catalog: Catalog, namespace: str
    ) -> None:
        ident = f"{namespace}.evolve_bad"
        catalog.create_table(ident, _schema())
        with pytest.raises(SchemaError, match="name") as info:
            catalog.evolve_schema(ident, pa.schema([_field("name", pa.int64())]))
        assert info.value.column == "name"
        assert info.value.old_type == "string"
        assert info.value.new_type == "int64"
        with pytest.raises(SchemaError, match="must be nullable"):
            catalog.evolve_schema(ident, pa.schema([_field("req", pa.int8(), nullable=False)]))
        loaded = catalog.load_table(ident)
        assert loaded.version == 1
        assert loaded.schema.equals(_schema(), check_metadata=True)

    # -- multiple writers -------------------------------------------------------------------------
    def test_concurrent_commits_from_processes_have_exactly_one_winner_per_round(
        self, catalog: Catalog, catalog_factory: CatalogFactory, namespace: str
    ) -> None:
        _require_multi_writer(catalog)
        ident = f"{namespace}.contended"
        catalog.create_table(ident, _schema())
        with_state = Capability.STATE in catalog.capabilities
        ctx = multiprocessing.get_context("spawn")
        procs, rounds = self.race_processes, self.race_rounds
        barrier = ctx.Barrier(procs, timeout=self.process_timeout)
        results: Any = ctx.Queue()
        worker = functools.partial(
            _commit_rounds_worker,
            factory=catalog_factory,
            ident=ident,
            rounds=rounds,
            barrier=barrier,
            results=results,
            with_state=with_state,
        )
        outcomes = self._run_processes(ctx, worker, results, expected_messages=procs * rounds)
        for round_no in range(rounds):
            in_round = [o for o in outcomes if o[0] == round_no]
            assert len(in_round) == procs
            assert {o[3] for o in in_round} == {round_no + 1}, "all saw the same version"
            winners = [o[1] for o in in_round if o[2] == "won"]
            assert len(winners) == 1, f"round {round_no}: winners {winners}"
            if with_state:
                assert catalog.get_state(f"{namespace}/round/{round_no}") == winners[0]
        final = catalog.load_table(ident)
        assert final.version == rounds + 1
        assert final.properties["round"] == str(rounds - 1)

    def test_state_counter_with_compare_and_swap_loses_no_updates_across_processes(
        self, catalog: Catalog, catalog_factory: CatalogFactory, namespace: str
    ) -> None:
        _require_multi_writer(catalog)
        if not self._require_state(catalog, namespace):
            return
        key = f"{namespace}/counter"
        ctx = multiprocessing.get_context("spawn")
        procs, increments = self.race_processes, self.cas_increments
        barrier = ctx.Barrier(procs, timeout=self.process_timeout)
        results: Any = ctx.Queue()
        worker = functools.partial(
            _counter_worker,
            factory=catalog_factory,
            key=key,
            increments=increments,
            barrier=barrier,
            results=results,
        )
        outcomes = self._run_processes(ctx, worker, results, expected_messages=procs)
        assert all(o[0] == "done" for o in outcomes)
        entry = catalog.state_entry(key)
        assert entry is not None
        assert entry.value == procs * increments
        assert entry.version == procs * increments

    # -- helpers ----------------------------------------------------------------------------------
    def _run_processes(
        self, ctx: Any, worker: Callable[[int], None], results: Any, expected_messages: int
    ) -> list[tuple[Any, ...]]:
        """Run ``worker(i)`` in ``race_processes`` spawned processes; return their reports."""
        return run_reporting_workers(
            ctx, worker, count=self.race_processes, results=results,
            expected=expected_messages, timeout=self.process_timeout,
        )  # fmt: skip

    def _require_state(self, catalog: Catalog, namespace: str) -> bool:
        """True if the adapter has STATE; otherwise assert put_state is NotSupportedError."""
        if Capability.STATE in catalog.capabilities:
            return True
        with pytest.raises(NotSupportedError):
            catalog.put_state(f"{namespace}/x", 1)
        return False


def _unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:16]}"


def _cleanup_namespace(catalog: Catalog, namespace: str) -> None:
    if not catalog.namespace_exists(namespace):
        return
    for ident in catalog.list_tables(namespace):
        catalog.drop_table(ident, missing_ok=True)
    if Capability.STATE in catalog.capabilities:
        for entry in catalog.list_state(f"{namespace}/"):
            catalog.delete_state(entry.key)
    catalog.drop_namespace(namespace)


def _require_multi_writer(catalog: Catalog) -> None:
    if Capability.MULTI_WRITER not in catalog.capabilities:
        pytest.skip("the adapter does not declare MULTI_WRITER (commits from one process only)")


def _commit_rounds_worker(
    worker: int,
    *,
    factory: CatalogFactory,
    ident: str,
    rounds: int,
    barrier: Any,
    results: Any,
    with_state: bool,
) -> None:
    """Each round: everyone loads the same version, then everyone commits against it."""
    namespace = ident.split(".", 1)[0]
    try:
        catalog = Catalog(factory())
        try:
            for round_no in range(rounds):
                barrier.wait()
                version = catalog.load_table(ident).version
                barrier.wait()
                update = TableUpdate(
                    set_properties={"round": str(round_no), "winner": str(worker)},
                    set_state={f"{namespace}/round/{round_no}": worker} if with_state else {},
                )
                try:
                    catalog.commit(ident, version, update)
                    results.put((round_no, worker, "won", version))
                except CommitConflictError:
                    results.put((round_no, worker, "conflict", version))
        finally:
            catalog.close()
    except BaseException:
        barrier.abort()
        results.put(("error", worker, traceback.format_exc()))


def _counter_worker(
    worker: int, *, factory: CatalogFactory, key: str, increments: int, barrier: Any, results: Any
) -> None:
    """Increment a state counter ``increments`` times with a compare-and-swap retry loop."""
    try:
        catalog = Catalog(factory())
        conflicts = 0
        try:
            barrier.wait()
            for _ in range(increments):
                while True:
                    entry = catalog.state_entry(key)
                    value, version = (0, 0) if entry is None else (entry.value, entry.version)
                    assert isinstance(value, int), f"counter holds {value!r}"
                    try:
                        catalog.put_state(key, value + 1, expected_version=version)
                        break
                    except CommitConflictError:
                        conflicts += 1
        finally:
            catalog.close()
        results.put(("done", worker, conflicts))
    except BaseException:
        barrier.abort()
        results.put(("error", worker, traceback.format_exc()))
