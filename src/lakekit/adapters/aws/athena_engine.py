"""The Athena query engine: SQL over the lake's Glue tables, results as Arrow.

``lakekit.connect("s3://bucket/lake", engine="athena://?workgroup=analytics")`` (or
``LAKEKIT_ENGINE=athena``) runs ``lake.sql(...)`` on Athena. Tables created through the Glue
catalog (``lakekit.adapters.aws.glue_catalog``) are Glue tables, so ``namespace.table`` in SQL
is the Glue database and table. How a query runs:

1. **Submit**: StartQueryExecution with the statement, ``QueryExecutionContext`` (the Glue
   ``database`` for unqualified names and the data ``catalog``), the ``workgroup`` and the
   ``ResultConfiguration.OutputLocation`` (default: the lake's reserved
   ``s3://<bucket>/<prefix>/.lakekit/athena/``). Bound parameters travel as Athena
   ``ExecutionParameters`` (see :mod:`lakekit.adapters.aws._athena_sql`): never formatted into
   the statement.
2. **Poll** GetQueryExecution with exponential backoff and jitter (``poll_initial`` doubling to
   ``poll_max``) until the query succeeds, fails or is cancelled. ``FAILED`` becomes QueryError
   with Athena's reason (NotFoundError for a missing table, PermissionDeniedError, or
   TransientError for throttling, by Athena's error type, not its message), ``CANCELLED``
   QueryError. Ctrl-C (KeyboardInterrupt) while polling stops the query (StopQueryExecution)
   before it propagates; so does ``cancel()`` from another thread and ``query_timeout``.
3. **Page** GetQueryResults (``page_size`` rows per call) into Arrow record batches, typed from
   the result metadata (see :mod:`lakekit.adapters.aws._athena_results`), fetched as the
   batches are consumed.

Each query's statistics (``DataScannedInBytes``, the execution times and the estimated cost at
``cost_per_tb`` dollars per TB scanned, with Athena's 10 MB minimum) are on the result: read
them with :func:`athena_statistics` (they travel in the result schema's metadata) or from
``engine.adapter.last_statistics``.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Self
from urllib.parse import parse_qsl, urlsplit

from pydantic import Field, field_validator, model_validator

from lakekit.adapters.aws import _athena_results, _athena_sql
from lakekit.adapters.aws._client import AwsClients, AwsSettings, settings_from_arguments
from lakekit.adapters.aws._errors import aws_errors, scrub
from lakekit.capabilities import Capability
from lakekit.config import AdapterSettings
from lakekit.errors import (
    ConfigurationError,
    LakekitError,
    NotFoundError,
    PermissionDeniedError,
    QueryError,
    TransientError,
)
from lakekit.interfaces.query_engine import Params, QueryEngineAdapter

if TYPE_CHECKING:
    import pyarrow as pa

    from lakekit.interfaces.query_engine import QueryResult
    from lakekit.lake import Lake

__all__ = [
    "AthenaEngine",
    "AthenaEngineSettings",
    "AthenaQueryStatistics",
    "athena_error",
    "athena_statistics",
]

_BYTES_PER_TB = 10**12
_MIN_BILLED = 10 * 1024 * 1024
_MB = 1024 * 1024
_URL_OPTIONS = ("workgroup", "output_location", "database", "catalog")
_NOT_FOUND_TYPES = frozenset({1110, 1300, 1301, 1303, 1306})
"""Athena error types: table or view does not exist, entity / function / bucket not found."""
_DENIED_TYPES = frozenset({1500, 1501, 234})
_THROTTLED_TYPES = frozenset({1400, 1401, 1403, 1404, 1405, 1406})
_META = "lakekit.athena."


class AthenaEngineSettings(AwsSettings):
    """Settings of :class:`AthenaEngine` (component ``engine``, env ``LAKEKIT_ENGINE_*``).

    ``workgroup``, ``output_location``, ``database`` and ``catalog`` may also be given in the
    URL's query: ``athena://?workgroup=analytics&database=sales``.
    """

    component: ClassVar[str] = "engine"

    url: str = Field(
        default="athena://",
        description="'athena' or 'athena://?workgroup=...'. Env LAKEKIT_ENGINE (or _URL).",
    )
    workgroup: str = Field(
        default="primary",
        pattern=r"^[a-zA-Z0-9._-]{1,128}$",
        description="Athena workgroup queries run in. Env LAKEKIT_ENGINE_WORKGROUP.",
    )
    output_location: str | None = Field(
        default=None,
        description=(
            "s3:// prefix for query results. Default: the lake's '.lakekit/athena/' area in "
            "S3 (ignored if the workgroup enforces its own). Env LAKEKIT_ENGINE_OUTPUT_LOCATION."
        ),
    )
    database: str = Field(
        default="default",
        pattern=r"^[a-z0-9_]{1,255}$",
        description="Glue database for unqualified table names. Env LAKEKIT_ENGINE_DATABASE.",
    )
    catalog: str = Field(
        default="AwsDataCatalog",
        min_length=1,
        description="Athena data catalog (the Glue catalog). Env LAKEKIT_ENGINE_CATALOG.",
    )
    cost_per_tb: float = Field(
        default=5.0,
        ge=0.0,
        description=(
            "Dollars per TB scanned, for the cost estimate (Athena's list price in most "
            "regions). Env LAKEKIT_ENGINE_COST_PER_TB."
        ),
    )
    poll_initial: float = Field(
        default=0.2,
        gt=0.0,
        le=60.0,
        description="First wait between status checks, seconds. Env LAKEKIT_ENGINE_POLL_INITIAL.",
    )
    poll_max: float = Field(
        default=5.0,
        gt=0.0,
        le=300.0,
        description="Longest wait between status checks, seconds. Env LAKEKIT_ENGINE_POLL_MAX.",
    )
    query_timeout: float | None = Field(
        default=None,
        gt=0.0,
        description=(
            "Stop a query still running after this many seconds (QueryError). Default: wait "
            "for the workgroup's own limit. Env LAKEKIT_ENGINE_QUERY_TIMEOUT."
        ),
    )
    page_size: int = Field(
        default=1000,
        ge=1,
        le=1000,
        description="Rows per GetQueryResults call (Athena's maximum is 1000). "
        "Env LAKEKIT_ENGINE_PAGE_SIZE.",
    )

    @model_validator(mode="before")
    @classmethod
    def _url_query(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not isinstance(data.get("url"), str):
            return data
        parts = urlsplit(data["url"])
        options = dict(parse_qsl(parts.query, keep_blank_values=True))
        unknown = sorted(set(options) - set(_URL_OPTIONS))
        if unknown:
            raise ValueError(
                f"unknown Athena URL option(s) {unknown}; the URL takes {', '.join(_URL_OPTIONS)}"
            )
        merged = dict(data)
        for name, value in options.items():
            if name in merged and merged[name] != value:
                raise ValueError(f"{name} is given both in the URL and as a setting")
            merged[name] = value
        return merged

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        parts = urlsplit(value)
        scheme = parts.scheme or value
        if scheme.lower() != "athena" or parts.netloc or parts.path.strip("/") or parts.fragment:
            raise ValueError("must be 'athena' or 'athena://?workgroup=...&database=...'")
        return value

    @field_validator("output_location")
    @classmethod
    def _check_output(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("s3://"):
            raise ValueError("must be an s3:// prefix")
        return value


@dataclass(frozen=True, slots=True)
class AthenaQueryStatistics:
    """What Athena reports about one finished query."""

    query_execution_id: str
    state: str
    data_scanned_bytes: int
    engine_execution_ms: int
    total_execution_ms: int
    cost_usd: float
    """Estimate: bytes scanned rounded up to the MB with a 10 MB minimum (0 when nothing was
    scanned, as for DDL), times ``cost_per_tb`` per 10^12 bytes."""
    output_location: str | None = None

    def to_metadata(self) -> dict[bytes, bytes]:
        return {
            f"{_META}{name}".encode(): str(getattr(self, name)).encode()
            for name in self.__slots__
            if getattr(self, name) is not None
        }


def athena_statistics(result: QueryResult | pa.Schema) -> AthenaQueryStatistics | None:
    """The Athena statistics of a query result (None if Athena did not run it)."""
    schema = getattr(result, "schema", result)
    metadata = getattr(schema, "metadata", None) or {}
    values = {
        key.decode()[len(_META) :]: value.decode()
        for key, value in metadata.items()
        if key.startswith(_META.encode())
    }
    if "query_execution_id" not in values:
        return None
    return AthenaQueryStatistics(
        query_execution_id=values["query_execution_id"],
        state=values.get("state", ""),
        data_scanned_bytes=int(values.get("data_scanned_bytes", 0)),
        engine_execution_ms=int(values.get("engine_execution_ms", 0)),
        total_execution_ms=int(values.get("total_execution_ms", 0)),
        cost_usd=float(values.get("cost_usd", 0.0)),
        output_location=values.get("output_location"),
    )


def estimate_cost(scanned: int, cost_per_tb: float) -> float:
    """Athena's charge for ``scanned`` bytes: rounded up to the MB, 10 MB minimum."""
    if scanned <= 0:
        return 0.0
    billed = max(_MIN_BILLED, math.ceil(scanned / _MB) * _MB)
    return billed * cost_per_tb / _BYTES_PER_TB


def athena_error(execution: Mapping[str, Any], sql: str) -> LakekitError:
    """The lakekit error for a FAILED or CANCELLED query execution, by Athena's error type."""
    status = execution.get("Status", {})
    state = status.get("State", "")
    reason = scrub(str(status.get("StateChangeReason") or "no reason given"))
    query_id = execution.get("QueryExecutionId", "?")
    if state == "CANCELLED":
        return QueryError(f"Athena query {query_id} was cancelled: {reason}")
    error = status.get("AthenaError") or {}
    kind = error.get("ErrorType")
    categories = {1: "system", 2: "user", 3: "other"}
    category = categories.get(int(error.get("ErrorCategory") or 0), "unknown")
    message = (
        f"Athena query {query_id} failed ({category} error"
        + (f", type {kind}" if kind is not None else "")
        + f"): {reason}; statement: {_short(sql)}"
    )
    if kind in _NOT_FOUND_TYPES:
        return NotFoundError(message)
    if kind in _DENIED_TYPES:
        return PermissionDeniedError(message)
    if kind in _THROTTLED_TYPES:
        return TransientError(message)
    return QueryError(message)


def _short(sql: str) -> str:
    text = " ".join(sql.split())
    return text if len(text) <= 200 else text[:197] + "..."


class AthenaEngine(QueryEngineAdapter):
    """Amazon Athena over the lake's Glue catalog.

    Args:
        output_location: where Athena writes results (see the settings); ``None`` leaves it to
            the workgroup.
        **settings: any :class:`AthenaEngineSettings` field (workgroup, database, region,
            endpoint_url, keys, cost_per_tb, ...).

    Thread-safe: queries from several threads run concurrently, each with its own execution.
    Picklable as ``functools.partial(AthenaEngine.from_settings, settings)``.

    Raises:
        ConfigurationError: a malformed setting.
    """

    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {
            Capability.BOUND_PARAMETERS,
            Capability.STREAMING_RESULTS,
            Capability.CATALOG_TABLES,
            Capability.CANCEL,
        }
    )
    settings_model: ClassVar[type[AdapterSettings]] = AthenaEngineSettings

    def __init__(self, **settings: Any) -> None:
        self._init(settings_from_arguments(AthenaEngineSettings, {"url": "athena://", **settings}))

    def _init(self, settings: AthenaEngineSettings) -> None:
        self.settings = settings
        self.output_location = settings.output_location
        self._clients = AwsClients(settings)
        self._lock = threading.Lock()
        self._running: set[str] = set()
        self.last_statistics: AthenaQueryStatistics | None = None
        """Statistics of the last query this engine finished (any thread)."""

    @classmethod
    def from_settings(cls, settings: AdapterSettings, lake: Lake | None = None) -> Self:
        """Build the engine; results default to the lake's reserved area in S3.

        Raises:
            ConfigurationError: ``settings`` are not AthenaEngineSettings.
        """
        if not isinstance(settings, AthenaEngineSettings):
            raise ConfigurationError(
                f"AthenaEngine needs AthenaEngineSettings, got {type(settings).__name__}"
            )
        engine = cls.__new__(cls)
        engine._init(settings)
        if settings.output_location is None and lake is not None:
            root = _lake_root(lake)
            if root is not None:
                engine.output_location = f"{root.rstrip('/')}/.lakekit/athena/"
        return engine

    def __repr__(self) -> str:
        return (
            f"AthenaEngine(workgroup={self.settings.workgroup!r}, "
            f"database={self.settings.database!r})"
        )

    @property
    def client(self) -> Any:
        """The boto3 Athena client."""
        return self._clients.client("athena")

    # -- QueryEngineAdapter ----------------------------------------------------------------------
    def execute(self, sql: str, params: Params | None = None) -> pa.RecordBatchReader:
        """Run one statement on Athena; its rows as a stream of record batches.

        Waits for the query to finish (polling with backoff), then streams the result pages.

        Raises:
            InvalidInputError: parameters do not match the placeholders, or a value has no
                Athena literal.
            QueryError: Athena rejected, failed or cancelled the query (with its reason).
            NotFoundError: a table or view does not exist.
            KeyboardInterrupt: after stopping the query on Athena.
        """
        import pyarrow as pa

        statement, values = _athena_sql.translate(sql, params)
        query_id = self._start(statement, values)
        with self._lock:
            self._running.add(query_id)
        try:
            execution = self._wait(query_id, sql)
        finally:
            with self._lock:
                self._running.discard(query_id)
        stats = self._statistics(execution)
        self.last_statistics = stats
        first = self._page(query_id, None)
        select = execution.get("StatementType") == "DML"
        schema, batches = _athena_results.batches(
            first, lambda token: self._page(query_id, token), select=select
        )
        schema = schema.with_metadata(stats.to_metadata())
        return pa.RecordBatchReader.from_batches(schema, _with_schema(batches, schema))

    def cancel(self) -> None:
        """Stop every query this engine is waiting for (StopQueryExecution); a no-op if none
        is running. The waiting ``execute`` calls raise QueryError."""
        with self._lock:
            running = sorted(self._running)
        for query_id in running:
            self._stop(query_id)

    def close(self) -> None:
        self.cancel()
        self._clients.close()

    # -- internals -------------------------------------------------------------------------------
    def _start(self, statement: str, values: list[str]) -> str:
        request: dict[str, Any] = {
            "QueryString": statement,
            "QueryExecutionContext": {
                "Database": self.settings.database,
                "Catalog": self.settings.catalog,
            },
            "WorkGroup": self.settings.workgroup,
        }
        if self.output_location is not None:
            request["ResultConfiguration"] = {"OutputLocation": self.output_location}
        if values:
            request["ExecutionParameters"] = values
        with aws_errors("starting an Athena query", overrides=_START_ERRORS):
            return str(self.client.start_query_execution(**request)["QueryExecutionId"])

    def _wait(self, query_id: str, sql: str) -> Mapping[str, Any]:
        delay = self.settings.poll_initial
        started = time.monotonic()
        timeout = self.settings.query_timeout
        try:
            while True:
                with aws_errors(f"checking Athena query {query_id}"):
                    execution = self.client.get_query_execution(QueryExecutionId=query_id)[
                        "QueryExecution"
                    ]
                state = execution.get("Status", {}).get("State")
                if state == "SUCCEEDED":
                    return dict(execution)
                if state in ("FAILED", "CANCELLED"):
                    raise athena_error(execution, sql)
                if timeout is not None and time.monotonic() - started > timeout:
                    self._stop(query_id)
                    raise QueryError(
                        f"Athena query {query_id} ran past query_timeout={timeout:g}s and was "
                        f"stopped; statement: {_short(sql)}"
                    )
                time.sleep(delay * random.uniform(0.5, 1.0))  # noqa: S311 - jitter
                delay = min(delay * 2, self.settings.poll_max)
        except KeyboardInterrupt:
            self._stop(query_id)  # Ctrl-C stops the query on Athena too, not only the wait
            raise

    def _stop(self, query_id: str) -> None:
        try:
            with aws_errors(f"stopping Athena query {query_id}"):
                self.client.stop_query_execution(QueryExecutionId=query_id)
        except LakekitError:
            pass  # it may have finished meanwhile; the waiter reports the final state

    def _page(self, query_id: str, token: str | None) -> Mapping[str, Any]:
        request: dict[str, Any] = {
            "QueryExecutionId": query_id,
            "MaxResults": self.settings.page_size,
        }
        if token is not None:
            request["NextToken"] = token
        with aws_errors(f"reading the results of Athena query {query_id}"):
            page: Mapping[str, Any] = self.client.get_query_results(**request)
        return page

    def _statistics(self, execution: Mapping[str, Any]) -> AthenaQueryStatistics:
        stats = execution.get("Statistics", {})
        scanned = int(stats.get("DataScannedInBytes") or 0)
        return AthenaQueryStatistics(
            query_execution_id=str(execution.get("QueryExecutionId")),
            state=str(execution.get("Status", {}).get("State", "")),
            data_scanned_bytes=scanned,
            engine_execution_ms=int(stats.get("EngineExecutionTimeInMillis") or 0),
            total_execution_ms=int(stats.get("TotalExecutionTimeInMillis") or 0),
            cost_usd=estimate_cost(scanned, self.settings.cost_per_tb),
            output_location=execution.get("ResultConfiguration", {}).get("OutputLocation"),
        )


_START_ERRORS: dict[str, Callable[[str], LakekitError]] = {
    "InvalidRequestException": QueryError,
}
"""Athena answers a statement it cannot even start (a syntax error, a missing output location)
with InvalidRequestException: a query error, not bad lakekit input."""


def _with_schema(batches: Iterator[pa.RecordBatch], schema: pa.Schema) -> Iterator[pa.RecordBatch]:
    for batch in batches:
        yield batch.replace_schema_metadata(schema.metadata)


def _lake_root(lake: Lake) -> str | None:
    """The lake's ``s3://bucket/prefix`` when its store is S3."""
    from lakekit.registry import scheme_of

    url = lake.config.component("store").url or lake.config.url
    if scheme_of(url) not in ("s3", "s3a"):
        return None
    return "s3://" + url.split("://", 1)[1]
