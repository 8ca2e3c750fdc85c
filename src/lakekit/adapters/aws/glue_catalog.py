"""The Glue catalog: namespaces are Glue databases, tables are Glue tables any engine can query.

Each lakekit table is a standard Hive/Parquet Glue table (columns with Hive types, the Parquet
SerDe, ``PartitionKeys`` and one Glue partition per partition directory), so Athena, Redshift
Spectrum, EMR/Spark and Trino query it with no lakekit installed; lakekit's exact metadata rides
in the table's parameters (see :mod:`lakekit.adapters.aws._glue_tables`).

Commits (``MULTI_WRITER``): Glue updates one table per call and offers no transaction across
tables or across Glue and anything else, and emulators such as moto do not enforce UpdateTable's
``VersionId``. So a commit is decided by S3, whose conditional writes are atomic everywhere:

1. read the table (version ``n``);
2. for each state key the commit sets, write an *intent* into the key's state object
   (compare-and-swap on its etag);
3. create the commit record ``commits/<table id>/<n+1>.json`` with ``If-None-Match: *``. This
   is the commit point: of racing writers exactly one creates it; the others raise
   CommitConflictError and change nothing;
4. apply the record: Glue partitions, then the state values (clearing the intents), then
   ``UpdateTable`` with ``VersionId`` (Glue's own optimistic lock, which also stops a late
   roll-forward from regressing the table).

A reader of a state key that carries an intent checks the intent's commit record: if it exists
with the intent's transaction, the commit happened and the intent's value is the current one,
even before step 4 finishes or if the writer died. So table and state move together: a pipeline
that sees its new cursor also has its data committed. A writer that dies after step 3 leaves a
record that any later writer of the table (or of the state key) rolls forward once the record is
older than ``commit_timeout``; a writer that dies in step 2 leaves intents that a later writer
*fences* after ``commit_timeout`` by creating the record itself as an empty commit, which
decides the dead writer's commit as lost.

Glue's own view lags the commit point by the few calls of step 4: ``load_table`` may return
version ``n`` for a moment after a writer decided ``n+1`` (a writer then gets
CommitConflictError and retries on reload). ``rename_table`` is not supported: Glue has no
rename, and a copy under a new name would lose the table's Lake Formation grants and history.
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Self
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from lakekit.adapters.aws._client import AwsClients, AwsSettings, settings_from_arguments
from lakekit.adapters.aws._errors import aws_errors
from lakekit.adapters.aws._glue_log import GlueLog, StateObject
from lakekit.adapters.aws._glue_tables import (
    PARAM_TABLE_ID,
    PARAM_UPDATED,
    PARAM_VERSION,
    is_lakekit_table,
    metadata_from_glue,
    partition_input,
    partition_values,
    table_input,
)
from lakekit.capabilities import Capability
from lakekit.config import AdapterSettings
from lakekit.errors import (
    AlreadyExistsError,
    CommitConflictError,
    ConfigurationError,
    ConflictError,
    InvalidInputError,
    LakekitError,
    NotFoundError,
    NotSupportedError,
)
from lakekit.identifiers import TableIdent
from lakekit.interfaces.catalog import (
    CatalogAdapter,
    JSONValue,
    StateEntry,
    TableMetadata,
    TableUpdate,
)

if TYPE_CHECKING:
    from lakekit.adapters.aws.object_store import S3ObjectStore
    from lakekit.lake import Lake

__all__ = ["GlueCatalog", "GlueCatalogSettings"]

_log = logging.getLogger("lakekit.aws.glue")

_TABLE_INPUT_FIELDS = (
    "Name",
    "Description",
    "Owner",
    "LastAccessTime",
    "LastAnalyzedTime",
    "Retention",
    "StorageDescriptor",
    "PartitionKeys",
    "ViewOriginalText",
    "ViewExpandedText",
    "TableType",
    "Parameters",
    "TargetTable",
)
_CREATE_BATCH = 100
"""Partitions per BatchCreatePartition / BatchUpdatePartition (Glue's maximum)."""
_DELETE_BATCH = 25
"""Partitions per BatchDeletePartition (Glue's maximum)."""
_UPDATE_ATTEMPTS = 8
_KEEP_RECORDS = 20
"""Commit records kept per table; older ones are pruned now and then."""


class GlueCatalogSettings(AwsSettings):
    """Settings of :class:`GlueCatalog` (component ``catalog``, env ``LAKEKIT_CATALOG_*``)."""

    component: ClassVar[str] = "catalog"

    url: str = Field(
        default="glue://",
        description=(
            "'glue://' for the account's Data Catalog, or 'glue://<account id>' for another "
            "account's catalog (CatalogId). Env LAKEKIT_CATALOG (or LAKEKIT_CATALOG_URL); "
            "default for s3:// lakes."
        ),
    )
    warehouse: str | None = Field(
        default=None,
        description=(
            "The lake root 's3://<bucket>/<prefix>': table locations are relative to it and the "
            "catalog's commit records and state live in its reserved '.lakekit/glue/' area. "
            "Default: the lake's S3 store. Env LAKEKIT_CATALOG_WAREHOUSE."
        ),
    )
    commit_timeout: float = Field(
        default=30.0,
        ge=1.0,
        le=3600.0,
        description=(
            "Seconds after which a commit whose writer stopped half-way is rolled forward (if "
            "decided) or fenced (if not) by other writers; live writers finish in well under a "
            "second. Env LAKEKIT_CATALOG_COMMIT_TIMEOUT."
        ),
    )
    search_api: Literal["auto", "search_tables", "get_tables"] = Field(
        default="auto",
        description=(
            "How search() lists tables: Glue's SearchTables (one call per 1000 tables of the "
            "account), or GetDatabases + GetTables. 'auto' uses SearchTables on AWS and "
            "GetTables when endpoint_url is set (emulators such as moto lack SearchTables). "
            "Env LAKEKIT_CATALOG_SEARCH_API."
        ),
    )
    archive_versions: bool = Field(
        default=False,
        description=(
            "Keep Glue's archived table versions on each commit (counts against Glue's quota "
            "of table versions; lakekit keeps its own snapshot history). "
            "Env LAKEKIT_CATALOG_ARCHIVE_VERSIONS."
        ),
    )

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        catalog_id_of(value)
        return value

    @field_validator("warehouse")
    @classmethod
    def _check_warehouse(cls, value: str | None) -> str | None:
        if value is not None:
            from lakekit.adapters.aws.object_store import parse_s3_url

            parse_s3_url(value)
        return value


def catalog_id_of(url: str) -> str | None:
    """The CatalogId in ``glue://<account id>`` (None for ``glue://``).

    Raises:
        ConfigurationError: not a glue:// URL, or a malformed account id.
    """
    parts = urlsplit(url)
    if parts.scheme.lower() != "glue":
        raise ConfigurationError(f"not a Glue catalog URL: {url!r}; expected 'glue://'")
    if parts.path.strip("/") or parts.query or parts.fragment:
        raise ConfigurationError(
            f"Glue catalog URL {url!r} takes only an optional account id: 'glue://<account id>'"
        )
    account = parts.netloc
    if account and not (account.isdigit() and len(account) == 12):
        raise ConfigurationError(f"Glue catalog id {account!r} must be a 12-digit account id")
    return account or None


class GlueCatalog(CatalogAdapter):
    """The AWS Glue Data Catalog, with commit records and state in the lake's S3 bucket.

    Args:
        url: ``glue://`` (or ``glue://<account id>``).
        warehouse: the lake root ``s3://<bucket>/<prefix>``.
        store: the lake's S3 store, whose endpoint and credentials reach the warehouse; default
            a store built from this catalog's own AWS settings.
        **settings: any :class:`GlueCatalogSettings` field (region, endpoint_url, profile,
            keys, commit_timeout, ...).

    Thread-safe; cheap to build (no network until first use); every commit is atomic across
    processes and machines (``MULTI_WRITER``), and state entries commit atomically with it.

    Raises:
        ConfigurationError: a malformed URL or setting, or no warehouse.
    """

    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {Capability.SEARCH, Capability.STATE, Capability.MULTI_WRITER}
    )
    settings_model: ClassVar[type[AdapterSettings]] = GlueCatalogSettings

    def __init__(
        self,
        url: str = "glue://",
        *,
        warehouse: str | None = None,
        store: S3ObjectStore | None = None,
        **settings: Any,
    ) -> None:
        if warehouse is not None:
            settings["warehouse"] = warehouse
        arguments = {"url": url, **settings}
        self._init(settings_from_arguments(GlueCatalogSettings, arguments), store)

    def _init(self, settings: GlueCatalogSettings, store: S3ObjectStore | None) -> None:
        from lakekit.adapters.aws.object_store import (
            S3ObjectStore,
            S3ObjectStoreSettings,
            parse_s3_url,
        )

        warehouse = settings.warehouse or (store.root_uri if store is not None else None)
        if warehouse is None:
            raise ConfigurationError(
                "the Glue catalog needs the lake root in S3: use an s3:// lake, or set "
                "LAKEKIT_CATALOG_WAREHOUSE=s3://<bucket>/<prefix>"
            )
        if store is None or (store.bucket, store.prefix) != parse_s3_url(warehouse):
            common = {name: getattr(settings, name) for name in AwsSettings.model_fields}
            common["url"] = warehouse
            store = S3ObjectStore.from_settings(S3ObjectStoreSettings(**common))
        self.settings = settings
        self.catalog_id = catalog_id_of(settings.url)
        self.root_uri = store.root_uri
        self._store_settings = store.settings
        self._log = GlueLog(store.reserved_area("glue"))
        self._clients = AwsClients(settings)
        self._lock = threading.Lock()
        self._commits = 0

    @classmethod
    def from_settings(cls, settings: AdapterSettings, lake: Lake | None = None) -> Self:
        """Build the catalog of ``lake``; the warehouse defaults to the lake's S3 store."""
        from lakekit.adapters.aws.object_store import S3ObjectStore

        if not isinstance(settings, GlueCatalogSettings):
            raise ConfigurationError(
                f"GlueCatalog needs GlueCatalogSettings, got {type(settings).__name__}"
            )
        store = None
        if lake is not None:
            adapter = lake.store.adapter
            if isinstance(adapter, S3ObjectStore):
                store = adapter
                settings = _inherit(settings, adapter.settings)
        catalog = cls.__new__(cls)
        catalog._init(settings, store)
        return catalog

    def __repr__(self) -> str:
        catalog = f"glue://{self.catalog_id or ''}"
        return f"GlueCatalog(url={catalog!r}, warehouse={self.root_uri!r})"

    @property
    def glue(self) -> Any:
        """The boto3 Glue client."""
        return self._clients.client("glue")

    def _ids(self) -> dict[str, str]:
        return {"CatalogId": self.catalog_id} if self.catalog_id else {}

    # -- namespaces -----------------------------------------------------------------------------
    def create_namespace(self, namespace: str, properties: Mapping[str, str]) -> None:
        """Create the Glue database ``namespace`` with ``properties`` as its parameters.

        Raises:
            AlreadyExistsError: the database exists.
        """
        with aws_errors(f"namespace {namespace!r}", overrides=_exists(f"namespace {namespace!r}")):
            self.glue.create_database(
                DatabaseInput={"Name": namespace, "Parameters": dict(properties)}, **self._ids()
            )

    def drop_namespace(self, namespace: str) -> None:
        """Delete the Glue database if it holds no tables.

        Glue's DeleteDatabase would delete the tables inside too, so emptiness is checked
        first (a table created between the check and the delete would be deleted with it).

        Raises:
            NotFoundError: no such database.
            InvalidInputError: it still holds tables.
        """
        self.namespace_properties(namespace)
        with aws_errors(f"namespace {namespace!r}", overrides=_missing(f"namespace {namespace!r}")):
            tables = self.glue.get_tables(DatabaseName=namespace, MaxResults=1, **self._ids())
        if tables.get("TableList"):
            raise InvalidInputError(f"namespace {namespace!r} is not empty: drop its tables first")
        with aws_errors(f"namespace {namespace!r}", overrides=_missing(f"namespace {namespace!r}")):
            self.glue.delete_database(Name=namespace, **self._ids())

    def list_namespaces(self) -> list[str]:
        """Every Glue database of the catalog, sorted."""
        names: list[str] = []
        with aws_errors("listing Glue databases"):
            for page in self.glue.get_paginator("get_databases").paginate(**self._ids()):
                names.extend(db["Name"] for db in page.get("DatabaseList", []))
        return sorted(names)

    def namespace_properties(self, namespace: str) -> dict[str, str]:
        """The database's parameters. Raises NotFoundError."""
        with aws_errors(f"namespace {namespace!r}", overrides=_missing(f"namespace {namespace!r}")):
            database = self.glue.get_database(Name=namespace, **self._ids())["Database"]
        return dict(database.get("Parameters") or {})

    # -- tables ---------------------------------------------------------------------------------
    def create_table(self, metadata: TableMetadata) -> TableMetadata:
        """Create the Glue table at version 1 (Hive columns, SerDe, PartitionKeys, lakekit
        parameters). Atomic: Glue's CreateTable fails if the name is taken.

        Raises:
            NotFoundError: the namespace (database) does not exist.
            AlreadyExistsError: the table exists.
        """
        ident = metadata.ident
        created = replace(metadata, version=1)
        body = table_input(created, table_id=uuid.uuid4().hex, root_uri=self.root_uri)
        overrides = {
            **_exists(f"table {ident}"),
            **_missing(f"namespace {ident.namespace!r} of table {ident}"),
        }
        with aws_errors(f"table {ident}", overrides=overrides):
            self.glue.create_table(DatabaseName=ident.namespace, TableInput=body, **self._ids())
        return self.load_table(ident)

    def load_table(self, ident: TableIdent) -> TableMetadata:
        """The table as Glue shows it now.

        Raises:
            NotFoundError: no such table (or namespace).
            InvalidInputError: the Glue table was not created by lakekit.
        """
        return metadata_from_glue(ident, self._get_table(ident))

    def _get_table(self, ident: TableIdent) -> dict[str, Any]:
        with aws_errors(f"table {ident}", overrides=_missing(f"table {ident}")):
            table: dict[str, Any] = self.glue.get_table(
                DatabaseName=ident.namespace, Name=ident.name, **self._ids()
            )["Table"]
        return table

    def list_tables(self, namespace: str | None = None) -> list[TableIdent]:
        """Tables of one database (or of all), sorted. Glue tables whose names are not valid
        lakekit identifiers are left out.

        Raises:
            NotFoundError: ``namespace`` does not exist.
        """
        namespaces = [namespace] if namespace is not None else self.list_namespaces()
        found: list[TableIdent] = []
        for ns in namespaces:
            for table in self._tables_of(ns, missing_ok=namespace is None):
                ident = _ident(ns, table["Name"])
                if ident is not None:
                    found.append(ident)
        return sorted(found)

    def _tables_of(self, namespace: str, *, missing_ok: bool = False) -> Iterator[dict[str, Any]]:
        paginator = self.glue.get_paginator("get_tables")
        try:
            with aws_errors(
                f"namespace {namespace!r}", overrides=_missing(f"namespace {namespace!r}")
            ):
                pages = list(paginator.paginate(DatabaseName=namespace, **self._ids()))
        except NotFoundError:
            if missing_ok:
                return
            raise
        for page in pages:
            yield from page.get("TableList", [])

    def drop_table(self, ident: TableIdent) -> None:
        """Delete the Glue table and its partitions (data files are untouched), then its
        commit records.

        Raises:
            NotFoundError: no such table.
        """
        table = self._get_table(ident)
        with aws_errors(f"table {ident}", overrides=_missing(f"table {ident}")):
            self.glue.delete_table(DatabaseName=ident.namespace, Name=ident.name, **self._ids())
        table_id = (table.get("Parameters") or {}).get(PARAM_TABLE_ID)
        if table_id:
            with contextlib.suppress(LakekitError):
                self._log.delete_records(table_id)

    def rename_table(self, src: TableIdent, dst: TableIdent) -> None:
        """Not supported: Glue has no rename (see the module docstring).

        Raises:
            NotSupportedError: always.
        """
        raise NotSupportedError(
            type(self).__name__,
            Capability.RENAME_TABLE.value,
            "Glue cannot rename tables; create the new table and copy or re-register the data",
        )

    # -- commits --------------------------------------------------------------------------------
    def commit(
        self, ident: TableIdent, expected_version: int, update: TableUpdate
    ) -> TableMetadata:
        """Apply ``update`` atomically if the table is at ``expected_version``, with its
        ``set_state`` entries (see the module docstring for the protocol).

        Raises:
            NotFoundError: the table does not exist.
            CommitConflictError: the version moved on (or another writer won the race for
                ``expected_version + 1``); nothing changed.
            InvalidInputError: the Glue table was not created by lakekit.
        """
        table = self._get_table(ident)
        current = metadata_from_glue(ident, table)
        if current.version != expected_version:
            raise _conflict(ident, expected_version, current.version)
        table_id = str(table["Parameters"][PARAM_TABLE_ID])
        version = expected_version + 1
        new = _updated(current, update, version)
        new_input = table_input(new, table_id=table_id, root_uri=self.root_uri)
        txn = uuid.uuid4().hex
        columns_changed = _columns(new_input) != _columns(table)
        body = {
            "txn": txn,
            "database": ident.namespace,
            "table": ident.name,
            "version": version,
            "table_input": new_input,
            "add_partitions": {k: dict(v) for k, v in update.add_partitions.items()},
            "remove_partitions": sorted(update.remove_partitions),
            "columns_changed": columns_changed,
            "state": dict(update.set_state),
        }
        target = {"table_id": table_id, "database": ident.namespace, "table": ident.name}
        for key in sorted(update.set_state):  # one order for all writers: no deadlock
            self._acquire_intent(key, txn, target, version, update.set_state[key])
        if not self._create_record(table_id, version, body, txn):
            for key in sorted(update.set_state):
                self._release_intent(key, txn)
            self._await_applied(ident, table_id, version)
            raise _conflict(ident, expected_version, version)
        self._apply(body, table_id, version)
        self._maybe_prune(table_id, version)
        return replace(new, created_at=current.created_at)

    def _create_record(self, table_id: str, version: int, body: dict[str, Any], txn: str) -> bool:
        """Create the commit record; True if it is ours (also when a retried request found
        the record its own first attempt had created)."""
        try:
            if self._log.create_record(table_id, version, body):
                return True
        except LakekitError:
            record = self._log.read_record(table_id, version)
            if record is not None and record.txn == txn:
                return True
            raise
        record = self._log.read_record(table_id, version)
        return record is not None and record.txn == txn

    def _apply(self, body: dict[str, Any], table_id: str, version: int) -> None:
        """Roll a decided commit forward: partitions, state, then the Glue table. Idempotent:
        any number of processes may apply the same record."""
        ident = TableIdent(str(body["database"]), str(body["table"]))
        if not body.get("fence"):
            try:
                self._apply_partitions(ident, body, table_id)
            except LakekitError as exc:
                # The commit is decided: a partition Glue refuses must not block it (nor every
                # later commit that rolls it forward). Hive engines miss those partitions
                # until a later commit registers them; lakekit's own reads are unaffected.
                _log.warning("table %s: Glue partitions not mirrored: %s", ident, exc)
            for key, value in (body.get("state") or {}).items():
                self._apply_intent(key, str(body["txn"]), value)
        self._apply_table(ident, body, table_id, version)

    def _apply_table(
        self, ident: TableIdent, body: dict[str, Any], table_id: str, version: int
    ) -> None:
        for _ in range(_UPDATE_ATTEMPTS):
            try:
                table = self._get_table(ident)
            except NotFoundError:
                return  # dropped meanwhile: nothing to update
            parameters = table.get("Parameters") or {}
            if parameters.get(PARAM_TABLE_ID) != table_id:
                return  # dropped and re-created: the record belongs to the old table
            current = int(parameters.get(PARAM_VERSION) or 0)
            if current >= version:
                return
            if current < version - 1:
                if not self._roll_forward(ident, table_id, current + 1):
                    return  # cannot happen with lakekit writers: versions have no gaps
                continue
            new_input = body.get("table_input") or _empty_commit(table, version)
            try:
                with aws_errors(f"table {ident}", overrides=_missing(f"table {ident}")):
                    self.glue.update_table(
                        DatabaseName=ident.namespace,
                        TableInput=new_input,
                        VersionId=str(table["VersionId"]),
                        SkipArchive=not self.settings.archive_versions,
                        **self._ids(),
                    )
            except NotFoundError:
                return
            except ConflictError:
                continue  # Glue's VersionId moved (another process applied): look again
            return
        raise CommitConflictError(
            f"table {ident} kept changing while version {version} was applied"
        )

    def _roll_forward(self, ident: TableIdent, table_id: str, version: int) -> bool:
        """Apply the record of ``version`` if it exists; True if there was one."""
        record = self._log.read_record(table_id, version)
        if record is None:
            return False
        self._apply(record.body, table_id, version)
        return True

    def _await_applied(self, ident: TableIdent, table_id: str, version: int) -> None:
        """After losing the race for ``version``: wait until the winner's commit shows in Glue,
        rolling it forward once its record is older than ``commit_timeout``."""
        deadline = time.monotonic() + self.settings.commit_timeout + 5
        delay = 0.02
        while time.monotonic() < deadline:
            try:
                table = self._get_table(ident)
            except NotFoundError:
                return
            parameters = table.get("Parameters") or {}
            if parameters.get(PARAM_TABLE_ID) != table_id:
                return
            if int(parameters.get(PARAM_VERSION) or 0) >= version:
                return
            record = self._log.read_record(table_id, version)
            if record is None or record.age >= self.settings.commit_timeout:
                if record is not None:
                    self._apply(record.body, table_id, version)
                return
            time.sleep(delay)
            delay = min(delay * 2, 0.5)

    def _apply_partitions(self, ident: TableIdent, body: dict[str, Any], table_id: str) -> None:
        """Mirror the commit's partition changes into Glue (idempotent: existing partitions
        are kept, missing ones are not an error)."""
        add: dict[str, Mapping[str, str | None]] = body.get("add_partitions") or {}
        remove: list[str] = body.get("remove_partitions") or []
        changed = bool(body.get("columns_changed"))
        if not (add or remove or changed):
            return
        from lakekit.partition_spec import PartitionSpec

        new_input = body["table_input"]
        spec = PartitionSpec.model_validate_json(new_input["Parameters"]["lakekit.partition_spec"])
        location = new_input["Parameters"]["lakekit.location"]
        if changed:
            self._update_partition_columns(ident, new_input)
        if remove:
            values = [
                {"Values": found}
                for directory in remove
                if (found := _values_of_directory(spec, directory)) is not None
            ]
            self._in_batches(
                ident,
                self.glue.batch_delete_partition,
                "PartitionsToDelete",
                values,
                batch=_DELETE_BATCH,
                ignore=None,
            )
        if add:
            inputs = [
                partition_input(new_input, found, f"{self.root_uri}/{location}/{directory}/")
                for directory, values in sorted(add.items())
                if (found := partition_values(spec, values)) is not None
            ]
            self._in_batches(
                ident,
                self.glue.batch_create_partition,
                "PartitionInputList",
                inputs,
                batch=_CREATE_BATCH,
                ignore="AlreadyExistsException",
            )

    def _update_partition_columns(self, ident: TableIdent, new_input: dict[str, Any]) -> None:
        """Give every existing partition the table's new columns (Athena compares them)."""
        columns = new_input["StorageDescriptor"]["Columns"]
        entries = []
        with aws_errors(f"partitions of {ident}", overrides=_missing(f"table {ident}")):
            for page in self.glue.get_paginator("get_partitions").paginate(
                DatabaseName=ident.namespace, TableName=ident.name, **self._ids()
            ):
                for partition in page.get("Partitions", []):
                    storage = dict(partition.get("StorageDescriptor") or {})
                    storage["Columns"] = columns
                    entries.append(
                        {
                            "PartitionValueList": partition["Values"],
                            "PartitionInput": {
                                "Values": partition["Values"],
                                "StorageDescriptor": storage,
                            },
                        }
                    )
        self._in_batches(
            ident,
            self.glue.batch_update_partition,
            "Entries",
            entries,
            batch=_CREATE_BATCH,
            ignore="EntityNotFoundException",
        )

    def _in_batches(
        self,
        ident: TableIdent,
        call: Callable[..., Any],
        argument: str,
        items: list[Any],
        *,
        batch: int,
        ignore: str | None,
    ) -> None:
        """Send ``items`` to a Glue ``BatchXxxPartition`` ``call`` of the table, ``batch`` at a
        time (Glue's limit per request), in order; not atomic across batches. With ``ignore``,
        per-partition errors other than that code raise LakekitError (``None``: not checked).

        Raises:
            NotFoundError: the table does not exist.
            LakekitError: Glue refused some partitions (see ``ignore``).
        """
        for start in range(0, len(items), batch):
            with aws_errors(f"partitions of {ident}", overrides=_missing(f"table {ident}")):
                response = call(
                    DatabaseName=ident.namespace,
                    TableName=ident.name,
                    **{argument: items[start : start + batch]},
                    **self._ids(),
                )
            if ignore is not None:
                _check_batch(ident, response, ignore=ignore)

    def _maybe_prune(self, table_id: str, version: int) -> None:
        """Every few commits, delete commit records far behind the current version."""
        with self._lock:
            self._commits += 1
            due = self._commits % _KEEP_RECORDS == 0
        if due and version > 2 * _KEEP_RECORDS:
            with contextlib.suppress(LakekitError):
                self._log.prune_records(table_id, version - _KEEP_RECORDS)

    # -- search ---------------------------------------------------------------------------------
    def search(
        self,
        text: str | None = None,
        *,
        column: str | None = None,
        properties: Mapping[str, str] | None = None,
    ) -> list[TableMetadata]:
        """lakekit tables whose ``namespace.name`` contains ``text`` (literally), having a
        column named ``column``, with every property in ``properties``; sorted by name.

        Tables are listed with Glue's SearchTables (or GetDatabases + GetTables, see the
        ``search_api`` setting) and matched exactly here: Glue's own text search is fuzzy
        and tokenised, so it is used to list, never to decide.
        """
        found = []
        for namespace, table in self._all_tables():
            ident = _ident(namespace, table.get("Name", ""))
            if ident is None or not is_lakekit_table(table):
                continue
            if text is not None and text not in str(ident):
                continue
            try:
                metadata = metadata_from_glue(ident, table)
            except InvalidInputError:
                continue
            if column is not None and column not in metadata.schema.names:
                continue
            if properties and any(metadata.properties.get(k) != v for k, v in properties.items()):
                continue
            found.append(metadata)
        return sorted(found, key=lambda m: m.ident)

    def _all_tables(self) -> Iterator[tuple[str, dict[str, Any]]]:
        api = self.settings.search_api
        if api == "auto":
            api = "get_tables" if self.settings.endpoint_url else "search_tables"
        if api == "search_tables":
            with aws_errors("searching Glue tables"):
                for page in self.glue.get_paginator("search_tables").paginate(
                    MaxResults=1000, **self._ids()
                ):
                    for table in page.get("TableList", []):
                        yield str(table.get("DatabaseName", "")), table
            return
        for namespace in self.list_namespaces():
            for table in self._tables_of(namespace, missing_ok=True):
                yield namespace, table

    # -- state ----------------------------------------------------------------------------------
    def get_state(self, key: str) -> StateEntry | None:
        """The committed value of ``key``: a decided commit's value counts even before it
        was applied. Never waits and never writes."""
        obj = self._log.read_state(key)
        value, version, _ = self._resolve(obj)
        return None if version == 0 else StateEntry(key=key, value=value, version=version)

    def put_state(self, key: str, value: JSONValue, expected_version: int | None) -> StateEntry:
        """Write ``key`` (compare-and-swap on its version when ``expected_version`` is given).

        Waits (up to ``commit_timeout``) while a commit in flight holds the key.

        Raises:
            CommitConflictError: the key's version is not ``expected_version``; nothing changed.
            InvalidInputError: the key is too long for an S3 key once encoded.
        """
        while True:
            obj = self._settle(key)
            if expected_version is not None and obj.version != expected_version:
                raise CommitConflictError(
                    f"state {key!r} is at version {obj.version}, not {expected_version}",
                    expected=expected_version,
                    actual=obj.version,
                )
            version = obj.version + 1
            if self._log.write_state(key, value=value, version=version, intent=None, etag=obj.etag):
                return StateEntry(key=key, value=value, version=version)

    def delete_state(self, key: str) -> None:
        """Delete ``key`` (a tombstone object; a missing key is not an error)."""
        while True:
            obj = self._settle(key)
            if obj.version == 0:
                return
            if self._log.write_state(key, value=None, version=0, intent=None, etag=obj.etag):
                return

    def list_state(self, prefix: str = "") -> list[StateEntry]:
        """Committed entries whose key starts with ``prefix``, sorted by key. One LIST plus one
        GET per key (8 in parallel); never waits and never writes."""
        entries = []
        for obj in self._log.list_state(prefix):
            if not obj.key.startswith(prefix):
                continue
            value, version, _ = self._resolve(obj)
            if version > 0:
                entries.append(StateEntry(key=obj.key, value=value, version=version))
        return entries

    def _resolve(self, obj: StateObject) -> tuple[JSONValue, int, str]:
        """(value, version, status) of a state object: status is ``clean``, ``committed``,
        ``aborted`` or ``undecided`` (the intent's commit record does not exist yet)."""
        intent = obj.intent
        if intent is None:
            return obj.value, obj.version, "clean"
        record = self._log.read_record(str(intent["table_id"]), int(intent["version"]))
        if record is None:
            return obj.value, obj.version, "undecided"
        if record.txn != intent.get("txn"):
            return obj.value, obj.version, "aborted"
        if intent.get("delete"):
            return None, 0, "committed"
        return intent.get("value"), obj.version + 1, "committed"

    def _settle(self, key: str) -> StateObject:
        """The key's object with no intent left on it: decided intents are applied or
        cleared, undecided ones are waited for and fenced after ``commit_timeout``."""
        delay = 0.01
        while True:
            obj = self._log.read_state(key)
            if obj.intent is None:
                return obj
            value, version, status = self._resolve(obj)
            if status == "undecided":
                if obj.age >= self.settings.commit_timeout:
                    self._fence(obj.intent)
                else:
                    time.sleep(delay + random.uniform(0, delay))  # noqa: S311
                    delay = min(delay * 2, 0.5)
                continue
            etag = self._log.write_state(
                key, value=value, version=version, intent=None, etag=obj.etag
            )
            if etag is not None:
                return StateObject(
                    key=key, value=value, version=version, intent=None, etag=etag, age=0.0
                )

    def _acquire_intent(
        self,
        key: str,
        txn: str,
        target: dict[str, str],
        version: int,
        value: JSONValue,
    ) -> str:
        """Mark ``key`` as about to change with commit ``txn``; return the object's etag."""
        intent = {**target, "txn": txn, "version": version, "value": value, "delete": value is None}
        while True:
            obj = self._settle(key)
            etag = self._log.write_state(
                key, value=obj.value, version=obj.version, intent=intent, etag=obj.etag
            )
            if etag is not None:
                return etag

    def _release_intent(self, key: str, txn: str) -> None:
        """Clear our intent after losing the commit race (best effort: readers see it as
        aborted anyway, since the record holds another transaction)."""
        with contextlib.suppress(LakekitError):
            obj = self._log.read_state(key)
            if obj.intent is not None and obj.intent.get("txn") == txn:
                self._log.write_state(
                    key, value=obj.value, version=obj.version, intent=None, etag=obj.etag
                )

    def _apply_intent(self, key: str, txn: str, value: JSONValue) -> None:
        """Replace ``key``'s intent of ``txn`` by its value (no-op once applied)."""
        while True:
            obj = self._log.read_state(key)
            if obj.intent is None or obj.intent.get("txn") != txn:
                return
            version = 0 if value is None else obj.version + 1
            if self._log.write_state(key, value=value, version=version, intent=None, etag=obj.etag):
                return

    def _fence(self, intent: dict[str, Any]) -> None:
        """Decide a stalled commit as lost by creating its record as an empty commit."""
        table_id, version = str(intent["table_id"]), int(intent["version"])
        body = {
            "txn": uuid.uuid4().hex,
            "fence": True,
            "database": intent["database"],
            "table": intent["table"],
            "version": version,
        }
        if self._log.create_record(table_id, version, body):
            with contextlib.suppress(LakekitError):
                self._apply(body, table_id, version)

    def close(self) -> None:
        """Close the HTTP connection pools."""
        self._clients.close()
        self._log.store.close()


def _inherit(settings: GlueCatalogSettings, store: AwsSettings) -> GlueCatalogSettings:
    """Glue in the bucket's region, with the store's credentials, unless the catalog sets its
    own (its endpoint is never inherited: Glue and S3 endpoints differ)."""
    update: dict[str, Any] = {}
    if settings.region is None and store.region is not None:
        update["region"] = store.region
    own_credentials = settings.profile is not None or settings.access_key_id is not None
    if not own_credentials:
        for name in ("profile", "access_key_id", "secret_access_key", "session_token"):
            if getattr(store, name) is not None:
                update[name] = getattr(store, name)
    return settings.model_copy(update=update) if update else settings


def _updated(current: TableMetadata, update: TableUpdate, version: int) -> TableMetadata:
    properties = {k: v for k, v in current.properties.items() if k not in update.remove_properties}
    properties.update(update.set_properties)
    return replace(
        current,
        schema=update.schema if update.schema is not None else current.schema,
        partition_spec=(
            update.partition_spec if update.partition_spec is not None else current.partition_spec
        ),
        location=update.location.rstrip("/") if update.location is not None else current.location,
        properties=properties,
        version=version,
        updated_at=datetime.now(UTC),
    )


def _empty_commit(table: Mapping[str, Any], version: int) -> dict[str, Any]:
    """The table's TableInput with only the version (and update time) moved on."""
    new_input = {name: table[name] for name in _TABLE_INPUT_FIELDS if name in table}
    parameters = dict(new_input.get("Parameters") or {})
    parameters[PARAM_VERSION] = str(version)
    parameters[PARAM_UPDATED] = str(int(time.time() * 1000))
    new_input["Parameters"] = parameters
    return new_input


def _values_of_directory(spec: Any, directory: str) -> list[str] | None:
    from lakekit.tables.writer import partition_of

    return partition_values(spec, partition_of(f"{directory}/x", "", spec))


def _check_batch(ident: TableIdent, response: Mapping[str, Any], *, ignore: str) -> None:
    errors = [
        e for e in response.get("Errors", []) if e.get("ErrorDetail", {}).get("ErrorCode") != ignore
    ]
    if errors:
        shown = "; ".join(
            f"{e.get('PartitionValues') or e.get('PartitionValueList')}: "
            f"{e.get('ErrorDetail', {}).get('ErrorCode')}"
            for e in errors[:5]
        )
        raise LakekitError(f"Glue refused {len(errors)} partition change(s) of {ident}: {shown}")


def _conflict(ident: TableIdent, expected: int, actual: int) -> CommitConflictError:
    return CommitConflictError(
        f"table {ident} is at version {actual}, not {expected}: another writer committed "
        "first; reload the table and retry",
        expected=expected,
        actual=actual,
    )


def _ident(namespace: str, name: str) -> TableIdent | None:
    try:
        return TableIdent(namespace, name)
    except (InvalidInputError, ValueError):
        return None


def _missing(what: str) -> dict[str, Any]:
    def make(message: str) -> LakekitError:
        return NotFoundError(f"{what} does not exist ({message})")

    return {"EntityNotFoundException": make}


def _exists(what: str) -> dict[str, Any]:
    def make(message: str) -> LakekitError:
        return AlreadyExistsError(f"{what} already exists")

    return {"AlreadyExistsException": make}


def _columns(table: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """The Hive columns of a TableInput or Glue table, ignoring fields Glue may add."""
    columns = (table.get("StorageDescriptor") or {}).get("Columns") or []
    return [(c.get("Name", ""), c.get("Type", ""), c.get("Comment", "")) for c in columns]
