"""QueryEngine: SQL over the lake's tables, results as Arrow.

* :class:`QueryEngineAdapter` is what an adapter author implements: ``execute`` and ``close``.
* :class:`QueryEngine` is what users call (``lake.engine`` / ``lake.sql``).

Guarantees every adapter gives (checked by :class:`lakekit.testing.QueryEngineSuite`):

* **Values are bound, never formatted into SQL**: ``params`` travel to the engine separately;
  a value such as ``"x'; drop table t; --"`` is only ever a string.
* **Catalog tables are addressable** as ``namespace.table`` (where CATALOG_TABLES is declared),
  reading exactly the table's committed files.
* **Results stream**: ``QueryResult.batches()`` yields Arrow record batches without
  materialising the whole result (where STREAMING_RESULTS is declared).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from lakekit.capabilities import Capability, require
from lakekit.errors import InvalidInputError

if TYPE_CHECKING:
    import pandas
    import polars
    import pyarrow as pa

__all__ = ["Params", "QueryEngine", "QueryEngineAdapter", "QueryResult"]

Params = Sequence[Any] | Mapping[str, Any]
"""Positional (``?`` / ``$1``) or named (``$name``) parameters, bound by the engine."""


class QueryEngineAdapter(ABC):
    """The implementer's interface."""

    capabilities: ClassVar[frozenset[Capability]] = frozenset()

    @abstractmethod
    def execute(self, sql: str, params: Params | None = None) -> pa.RecordBatchReader:
        """Run one SQL statement with bound ``params``; return its rows as a batch stream.

        Raises:
            QueryError: the engine rejected or failed the query.
            NotFoundError: the query names a catalog table that does not exist.
        """

    def cancel(self) -> None:
        """Cancel the running query (declare Capability.CANCEL)."""
        require(self, Capability.CANCEL)

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the engine's resources. Optional."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class QueryResult:
    """The rows of one query. Stream them once with :meth:`batches`, or materialise them.

    Materialising (``to_arrow``, ``to_pandas``, ``rows`` ...) reads the stream once and keeps the
    table, so those can be called repeatedly.
    """

    def __init__(self, reader: pa.RecordBatchReader) -> None:
        self._reader: pa.RecordBatchReader | None = reader
        self._table: pa.Table | None = None
        self.schema: pa.Schema = reader.schema

    def batches(self) -> Iterator[pa.RecordBatch]:
        """Yield the result's record batches (streaming if nothing materialised it yet)."""
        if self._table is not None:
            yield from self._table.to_batches()
            return
        reader = self._take_reader()
        yield from reader

    __iter__ = batches

    def to_reader(self) -> pa.RecordBatchReader:
        """The result as a ``pyarrow.RecordBatchReader`` (consumes the stream)."""
        if self._table is not None:
            import pyarrow as pa

            return pa.RecordBatchReader.from_batches(self.schema, self._table.to_batches())
        return self._take_reader()

    def to_arrow(self) -> pa.Table:
        if self._table is None:
            self._table = self._take_reader().read_all()
        return self._table

    def to_pandas(self) -> pandas.DataFrame:
        return self.to_arrow().to_pandas()

    def to_polars(self) -> polars.DataFrame:
        try:
            import polars as pl
        except ImportError as exc:
            from lakekit.errors import MissingDependencyError

            raise MissingDependencyError("QueryResult.to_polars", "polars", "polars") from exc
        frame = pl.from_arrow(self.to_arrow())
        assert isinstance(frame, pl.DataFrame)
        return frame

    def rows(self) -> list[tuple[Any, ...]]:
        """All rows as tuples of Python values."""
        table = self.to_arrow()
        columns = [col.to_pylist() for col in table.columns]
        return list(zip(*columns, strict=True)) if columns else []

    def to_pylist(self) -> list[dict[str, Any]]:
        """All rows as dicts."""
        return self.to_arrow().to_pylist()

    def scalar(self) -> Any:
        """The single value of a one-row, one-column result.

        Raises:
            InvalidInputError: the result is not exactly one row of one column.
        """
        table = self.to_arrow()
        if table.num_rows != 1 or table.num_columns != 1:
            raise InvalidInputError(
                f"scalar() needs exactly 1 row x 1 column, got {table.num_rows} x "
                f"{table.num_columns}"
            )
        return table.column(0)[0].as_py()

    def _take_reader(self) -> pa.RecordBatchReader:
        if self._reader is None:
            raise InvalidInputError("this query result was already streamed; run the query again")
        reader, self._reader = self._reader, None
        return reader

    def __repr__(self) -> str:
        state = "materialised" if self._table is not None else "streaming"
        return f"QueryResult({state}, columns={self.schema.names})"


class QueryEngine:
    """The user-facing query engine (``lake.engine``)."""

    def __init__(self, adapter: QueryEngineAdapter) -> None:
        self.adapter = adapter

    def __repr__(self) -> str:
        return f"QueryEngine({self.adapter!r})"

    @property
    def capabilities(self) -> frozenset[Capability]:
        return self.adapter.capabilities

    def sql(self, query: str, params: Params | None = None) -> QueryResult:
        """Run ``query`` with bound ``params`` and return its result.

        Raises:
            InvalidInputError: ``query`` is not a non-empty string or ``params`` is malformed.
            QueryError: the engine rejected or failed the query.
            NotFoundError: a referenced catalog table does not exist.
        """
        if not isinstance(query, str) or not query.strip():
            raise InvalidInputError("query must be a non-empty SQL string")
        if params is not None:
            if isinstance(params, str | bytes) or not isinstance(params, Sequence | Mapping):
                raise InvalidInputError(
                    "params must be a sequence (for ? / $1) or a mapping (for $name), "
                    f"got {type(params).__name__}"
                )
            require(self.adapter, Capability.BOUND_PARAMETERS)
        return QueryResult(self.adapter.execute(query, params))

    def cancel(self) -> None:
        self.adapter.cancel()

    def close(self) -> None:
        self.adapter.close()
