"""Catalog: namespaces, tables and their metadata, atomic commits, and a durable state area.

* :class:`CatalogAdapter` is what an adapter author implements.
* :class:`Catalog` is what users call (``lake.catalog``): string names, defaults, schema
  evolution with automatic retry, and the state helpers.

Guarantees every adapter gives (checked by :class:`lakekit.testing.CatalogSuite`):

* **Atomic commit**: ``commit(ident, expected_version, update)`` applies the whole update and
  bumps the version by one, or raises CommitConflictError and changes nothing. Of two writers
  committing against the same version, exactly one wins (across processes; for a networked
  catalog such as PostgreSQL, across machines).
* **State commits with the table**: ``TableUpdate.set_state`` entries are written in the same
  atomic step as the table change, so a pipeline's cursor advances exactly when its data lands.
* **Schema changes are safe**: only nullable columns are added and only lossless widenings are
  applied (see :mod:`lakekit.schema`); anything else is a SchemaError naming the column.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

from lakekit.capabilities import Capability, require
from lakekit.errors import AlreadyExistsError, CommitConflictError, NotFoundError
from lakekit.identifiers import TableIdent, validate_name
from lakekit.partition_spec import PartitionSpec

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = [
    "Catalog",
    "CatalogAdapter",
    "JSONValue",
    "StateEntry",
    "TableMetadata",
    "TableUpdate",
]

JSONValue = None | bool | int | float | str | list["JSONValue"] | dict[str, "JSONValue"]


@dataclass(frozen=True, slots=True)
class TableMetadata:
    """Everything the catalog knows about one table at one version."""

    ident: TableIdent
    location: str
    """Key prefix of the table's files, relative to the lake root (e.g. ``tables/ns/name``)."""
    schema: pa.Schema
    format: str = "parquet"
    partition_spec: PartitionSpec = field(default_factory=PartitionSpec)
    properties: Mapping[str, str] = field(default_factory=dict)
    version: int = 1
    """Starts at 1 on create; every successful commit adds exactly 1."""
    created_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class TableUpdate:
    """The changes of one commit. Fields left at their default are unchanged."""

    schema: pa.Schema | None = None
    partition_spec: PartitionSpec | None = None
    location: str | None = None
    set_properties: Mapping[str, str] = field(default_factory=dict)
    remove_properties: frozenset[str] = frozenset()
    set_state: Mapping[str, JSONValue] = field(default_factory=dict)
    """State entries written in the same atomic step as the table change."""
    add_partitions: Mapping[str, Mapping[str, str | None]] = field(default_factory=dict)
    """Partition directories (relative to the table's location, e.g. ``dt=2026-11-26``) that
    hold data after this commit and did not before, each with its values by partition field
    name (None for null). Informational: catalogs that mirror partitions for other engines
    (Glue, a Hive metastore) register them; every other adapter ignores it."""
    remove_partitions: frozenset[str] = frozenset()
    """Partition directories this commit left without data (same use as ``add_partitions``)."""


@dataclass(frozen=True, slots=True)
class StateEntry:
    """One durable state value (a pipeline cursor, a checkpoint) and its version."""

    key: str
    value: JSONValue
    version: int
    """1 after the first put; +1 on every put. Use it for compare-and-swap."""


class CatalogAdapter(ABC):
    """The implementer's interface. Names arrive validated; schemas arrive already evolved."""

    capabilities: ClassVar[frozenset[Capability]] = frozenset()

    # -- namespaces -----------------------------------------------------------------------------
    @abstractmethod
    def create_namespace(self, namespace: str, properties: Mapping[str, str]) -> None:
        """Raises: AlreadyExistsError."""

    @abstractmethod
    def drop_namespace(self, namespace: str) -> None:
        """Raises: NotFoundError; InvalidInputError if it still holds tables."""

    @abstractmethod
    def list_namespaces(self) -> list[str]:
        """All namespaces, sorted."""

    @abstractmethod
    def namespace_properties(self, namespace: str) -> dict[str, str]:
        """Raises: NotFoundError."""

    # -- tables ---------------------------------------------------------------------------------
    @abstractmethod
    def create_table(self, metadata: TableMetadata) -> TableMetadata:
        """Create the table at version 1.

        Raises:
            NotFoundError: the namespace does not exist.
            AlreadyExistsError: the table exists.
        """

    @abstractmethod
    def load_table(self, ident: TableIdent) -> TableMetadata:
        """Raises: NotFoundError."""

    @abstractmethod
    def list_tables(self, namespace: str | None = None) -> list[TableIdent]:
        """Tables of one namespace (or all), sorted. Raises NotFoundError for a missing one."""

    @abstractmethod
    def drop_table(self, ident: TableIdent) -> None:
        """Remove the table from the catalog (its files are untouched). Raises NotFoundError."""

    @abstractmethod
    def rename_table(self, src: TableIdent, dst: TableIdent) -> None:
        """Raises: NotFoundError (src or dst namespace), AlreadyExistsError (dst)."""

    @abstractmethod
    def commit(
        self, ident: TableIdent, expected_version: int, update: TableUpdate
    ) -> TableMetadata:
        """Apply ``update`` atomically if the table is still at ``expected_version``.

        Returns the new metadata (version ``expected_version + 1``).

        Raises:
            NotFoundError: the table does not exist.
            CommitConflictError: the table's version is not ``expected_version``; nothing changed.
        """

    def search(
        self,
        text: str | None = None,
        *,
        column: str | None = None,
        properties: Mapping[str, str] | None = None,
    ) -> list[TableMetadata]:
        """Tables whose name contains ``text``, having ``column``, and matching ``properties``.

        Optional: declare Capability.SEARCH. The default raises NotSupportedError.
        """
        require(self, Capability.SEARCH)
        raise AssertionError("unreachable: an adapter declaring SEARCH must override search()")

    # -- state ----------------------------------------------------------------------------------
    @abstractmethod
    def get_state(self, key: str) -> StateEntry | None:
        """The state entry, or None if absent."""

    @abstractmethod
    def put_state(self, key: str, value: JSONValue, expected_version: int | None) -> StateEntry:
        """Write a state value.

        ``expected_version=None`` writes unconditionally; ``0`` means "must not exist yet";
        ``n`` means "must currently be at version n".

        Raises:
            CommitConflictError: the expected version did not match; nothing changed.
        """

    @abstractmethod
    def delete_state(self, key: str) -> None:
        """Delete a state entry; a missing key is not an error."""

    @abstractmethod
    def list_state(self, prefix: str = "") -> list[StateEntry]:
        """State entries whose key starts with ``prefix``, sorted by key."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections. Optional."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Catalog:
    """The user-facing catalog (``lake.catalog``). Accepts ``"ns.table"`` strings everywhere."""

    default_location_prefix: ClassVar[str] = "tables"

    def __init__(self, adapter: CatalogAdapter) -> None:
        self.adapter = adapter

    def __repr__(self) -> str:
        return f"Catalog({self.adapter!r})"

    @property
    def capabilities(self) -> frozenset[Capability]:
        return self.adapter.capabilities

    # -- namespaces -----------------------------------------------------------------------------
    def create_namespace(
        self,
        namespace: str,
        properties: Mapping[str, str] | None = None,
        *,
        exist_ok: bool = False,
    ) -> None:
        validate_name(namespace, what="namespace")
        try:
            self.adapter.create_namespace(namespace, dict(properties or {}))
        except AlreadyExistsError:
            if not exist_ok:
                raise

    def drop_namespace(self, namespace: str) -> None:
        self.adapter.drop_namespace(validate_name(namespace, what="namespace"))

    def list_namespaces(self) -> list[str]:
        return self.adapter.list_namespaces()

    def namespace_exists(self, namespace: str) -> bool:
        try:
            self.adapter.namespace_properties(validate_name(namespace, what="namespace"))
        except NotFoundError:
            return False
        return True

    def namespace_properties(self, namespace: str) -> dict[str, str]:
        return self.adapter.namespace_properties(validate_name(namespace, what="namespace"))

    # -- tables ---------------------------------------------------------------------------------
    def create_table(
        self,
        name: str | TableIdent,
        schema: pa.Schema,
        *,
        partition_by: PartitionSpec | Sequence[str] | None = None,
        location: str | None = None,
        format: str = "parquet",
        properties: Mapping[str, str] | None = None,
        create_namespace: bool = True,
        exist_ok: bool = False,
    ) -> TableMetadata:
        """Register a table. Its files live under ``location`` (default ``tables/<ns>/<name>``).

        Raises:
            InvalidInputError: bad name or location.
            SchemaError: ``schema`` is not an Arrow schema or has types lakekit cannot store.
            AlreadyExistsError: the table exists and ``exist_ok`` is False.
        """
        from lakekit._keys import validate_prefix
        from lakekit.schema import check_schema

        ident = TableIdent.parse(name)
        check_schema(schema)
        spec = _as_partition_spec(partition_by)
        spec.check_columns(schema)
        loc = location or f"{self.default_location_prefix}/{ident.namespace}/{ident.name}"
        validate_prefix(loc)
        if create_namespace:
            self.create_namespace(ident.namespace, exist_ok=True)
        metadata = TableMetadata(
            ident=ident,
            location=loc.rstrip("/"),
            schema=schema,
            format=format,
            partition_spec=spec,
            properties=dict(properties or {}),
        )
        try:
            return self.adapter.create_table(metadata)
        except AlreadyExistsError:
            if exist_ok:
                return self.adapter.load_table(ident)
            raise

    def load_table(self, name: str | TableIdent) -> TableMetadata:
        """Raises: NotFoundError naming the table (and InvalidInputError for a bad name)."""
        return self.adapter.load_table(TableIdent.parse(name))

    def table_exists(self, name: str | TableIdent) -> bool:
        try:
            self.adapter.load_table(TableIdent.parse(name))
        except NotFoundError:
            return False
        return True

    def list_tables(self, namespace: str | None = None) -> list[TableIdent]:
        if namespace is not None:
            validate_name(namespace, what="namespace")
        return self.adapter.list_tables(namespace)

    def drop_table(self, name: str | TableIdent, *, missing_ok: bool = False) -> None:
        try:
            self.adapter.drop_table(TableIdent.parse(name))
        except NotFoundError:
            if not missing_ok:
                raise

    def rename_table(self, src: str | TableIdent, dst: str | TableIdent) -> None:
        require(self.adapter, Capability.RENAME_TABLE)
        self.adapter.rename_table(TableIdent.parse(src), TableIdent.parse(dst))

    def commit(
        self, name: str | TableIdent, expected_version: int, update: TableUpdate
    ) -> TableMetadata:
        """Commit ``update`` if the table is at ``expected_version`` (see CatalogAdapter.commit).

        A schema in ``update`` is checked against the current one first (SchemaError).
        """
        from lakekit.schema import check_schema

        if update.schema is not None:
            check_schema(update.schema)
        if update.set_state:
            require(self.adapter, Capability.STATE, "TableUpdate.set_state needs a state area")
        return self.adapter.commit(TableIdent.parse(name), expected_version, update)

    def evolve_schema(
        self, name: str | TableIdent, new_schema: pa.Schema, *, retries: int = 5
    ) -> TableMetadata:
        """Merge ``new_schema`` into the table's schema and commit it.

        New columns are added as nullable, lossless widenings (int32 -> int64, float32 ->
        float64, string -> large_string, ...) are applied, columns absent from ``new_schema``
        are kept. Retries on CommitConflictError by re-reading the table.

        Raises:
            SchemaError: a column changes type incompatibly, or a new column is non-nullable.
            CommitConflictError: still conflicting after ``retries`` attempts.
        """
        from lakekit.schema import evolve_schema

        ident = TableIdent.parse(name)
        for attempt in range(retries + 1):
            current = self.adapter.load_table(ident)
            merged = evolve_schema(current.schema, new_schema)
            if merged.equals(current.schema, check_metadata=True):
                return current
            try:
                return self.adapter.commit(ident, current.version, TableUpdate(schema=merged))
            except CommitConflictError:
                if attempt == retries:
                    raise
                time.sleep(0.01 * 2**attempt)
        raise AssertionError("unreachable")

    def set_properties(
        self,
        name: str | TableIdent,
        properties: Mapping[str, str],
        *,
        remove: Sequence[str] = (),
    ) -> TableMetadata:
        """Set and remove table properties in one commit (retried on conflict)."""
        ident = TableIdent.parse(name)
        update = TableUpdate(set_properties=dict(properties), remove_properties=frozenset(remove))
        for attempt in range(6):
            current = self.adapter.load_table(ident)
            try:
                return self.adapter.commit(ident, current.version, update)
            except CommitConflictError:
                if attempt == 5:
                    raise
        raise AssertionError("unreachable")

    def search(
        self,
        text: str | None = None,
        *,
        column: str | None = None,
        properties: Mapping[str, str] | None = None,
    ) -> list[TableMetadata]:
        """Find tables by name substring, column name and/or exact property values."""
        require(self.adapter, Capability.SEARCH)
        return self.adapter.search(text, column=column, properties=properties)

    # -- state ----------------------------------------------------------------------------------
    def get_state(self, key: str, default: Any = None) -> Any:
        """The value stored under ``key``, or ``default``."""
        entry = self.adapter.get_state(_check_state_key(key))
        return default if entry is None else entry.value

    def state_entry(self, key: str) -> StateEntry | None:
        return self.adapter.get_state(_check_state_key(key))

    def put_state(
        self, key: str, value: JSONValue, *, expected_version: int | None = None
    ) -> StateEntry:
        """Store a JSON value durably; with ``expected_version``, as a compare-and-swap."""
        require(self.adapter, Capability.STATE)
        return self.adapter.put_state(_check_state_key(key), value, expected_version)

    def delete_state(self, key: str) -> None:
        self.adapter.delete_state(_check_state_key(key))

    def list_state(self, prefix: str = "") -> list[StateEntry]:
        return self.adapter.list_state(prefix)

    def close(self) -> None:
        self.adapter.close()


def _check_state_key(key: str) -> str:
    from lakekit.errors import InvalidInputError

    if not isinstance(key, str) or not key or len(key) > 512 or "\x00" in key:
        raise InvalidInputError(f"state key must be a non-empty str of at most 512 chars: {key!r}")
    return key


def _as_partition_spec(value: PartitionSpec | Sequence[str] | None) -> PartitionSpec:
    if value is None:
        return PartitionSpec()
    if isinstance(value, PartitionSpec):
        return value
    if isinstance(value, str):
        return PartitionSpec.of(value)
    return PartitionSpec.of(*value)
