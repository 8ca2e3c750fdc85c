"""Ingest a SQL table or query (any SQLAlchemy URL: SQLite, PostgreSQL, ...) as Arrow batches.

Incremental reads follow a *cursor column* (a monotonic id or an ``updated_at`` timestamp): each
batch's state is the largest cursor value it holds, and the next read asks for
``cursor > last``. To make that safe when many rows share one cursor value, a batch always
holds **whole cursor-value groups**: a chunk is cut only where the cursor value changes, so no
row sharing the last committed value can be left behind (a batch is therefore at least
``chunk_rows`` rows, except the last, and larger when a group straddles the cut).

Rows whose cursor is NULL are never read by an incremental source.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar
from uuid import UUID

from lakekit._redact import redact_url
from lakekit.errors import (
    ConfigurationError,
    InvalidInputError,
    LakekitError,
    MissingDependencyError,
    NotFoundError,
    PermissionDeniedError,
    TransientError,
)
from lakekit.pipelines.source import Source, SourceBatch, SourceState

if TYPE_CHECKING:
    import pyarrow as pa
    from sqlalchemy import ColumnElement, Engine, Select
    from sqlalchemy.engine import Connection, Row
    from sqlalchemy.exc import DBAPIError

    from lakekit.interfaces.catalog import JSONValue

__all__ = ["SqlSource", "decode_cursor", "encode_cursor"]

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_$]{0,127}")
_LAST = "_lakekit_last"
_START = "_lakekit_start"
_END = "_lakekit_end"
_UPPER = "_lakekit_upper"


def _utcnow() -> datetime:
    return datetime.now(UTC)


# -- cursor values <-> JSON ---------------------------------------------------------------------
def encode_cursor(value: Any) -> JSONValue:
    """A cursor value as JSON: plain for int/float/str, tagged for datetime/date/time/Decimal/UUID.

    Raises:
        InvalidInputError: a type that cannot be a cursor (bytes, ...).
    """
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, datetime):
        return {"$type": "datetime", "value": value.isoformat()}
    if isinstance(value, date):
        return {"$type": "date", "value": value.isoformat()}
    if isinstance(value, time):
        return {"$type": "time", "value": value.isoformat()}
    if isinstance(value, Decimal):
        return {"$type": "decimal", "value": str(value)}
    if isinstance(value, UUID):
        return {"$type": "uuid", "value": str(value)}
    raise InvalidInputError(
        f"a cursor column of type {type(value).__name__} is not supported: use an integer, "
        "decimal, string, date or timestamp column"
    )


def decode_cursor(value: JSONValue) -> Any:
    """Inverse of :func:`encode_cursor`.

    Raises:
        InvalidInputError: a malformed stored cursor (the state was edited by hand?).
    """
    if not isinstance(value, dict):
        return value
    kind, text = value.get("$type"), value.get("value")
    decoders: dict[str, Callable[[str], Any]] = {
        "datetime": datetime.fromisoformat,
        "date": date.fromisoformat,
        "time": time.fromisoformat,
        "decimal": Decimal,
        "uuid": UUID,
    }
    if not isinstance(kind, str) or kind not in decoders or not isinstance(text, str):
        raise InvalidInputError(f"malformed SQL source cursor in the pipeline state: {value!r}")
    try:
        return decoders[kind](text)
    except (ValueError, ArithmeticError) as exc:
        raise InvalidInputError(
            f"malformed SQL source cursor in the pipeline state: {value!r}"
        ) from exc


class SqlSource(Source):
    """Rows of a table or a query in a SQL database, read in chunks as Arrow record batches.

    Guarantees:
        * Rows are read in cursor order; each batch carries ``{"cursor": <largest value>}`` so the
          pipeline commits rows and position together (exactly-once across crashes).
        * Ties: a batch holds whole groups of rows sharing a cursor value, so resuming with
          ``cursor > last`` never skips a row.
        * Lag: with ``lag`` the source does not read beyond ``max(cursor) - lag`` (numeric cursor)
          or ``now - lag`` (date/timestamp cursor, ``now`` in UTC; naive timestamps are taken
          as UTC). Rows committed late, with a cursor value inside the lag window, are read by
          the next run.
        * Bounds: ``start`` (inclusive) and ``end`` (exclusive) limit the cursor values ever read,
          e.g. for an initial backfill; later runs continue from the state, never below ``start``
          and never at or above ``end``.
        * Without a cursor, every run reads the whole table/query (no state): at-least-once only,
          pair it with an overwrite write.
        * SQL values are always bound parameters; a table name is validated and reflected, its
          identifiers quoted by SQLAlchemy. Credentials never appear in ``describe()`` or errors.

    Results are streamed (server-side cursor where the driver has one, ``yield_per`` batches).
    """

    kind: ClassVar[str] = "sql"

    def __init__(
        self,
        url_or_engine: str | Engine,
        *,
        table: str | None = None,
        query: str | None = None,
        cursor: str | None = None,
        lag: timedelta | int | None = None,
        start: Any = None,
        end: Any = None,
        chunk_rows: int = 50_000,
        params: Mapping[str, Any] | None = None,
        now: Callable[[], datetime] = _utcnow,
    ) -> None:
        """Describe what to read; nothing is connected until :meth:`read`.

        Args:
            url_or_engine: a SQLAlchemy URL (the source owns and disposes its engine) or an
                ``Engine`` (borrowed, never disposed here).
            table: ``name`` or ``schema.name`` (letters, digits, ``_``, ``$``).
            query: a SELECT, read as a subquery; ``:name`` placeholders bound from ``params``.
            cursor: the column to read incrementally by; None reads everything every run.
            lag: how far behind the newest cursor value (int/Decimal amount) or behind ``now``
                (timedelta) reading stops, so that slow writers' rows are not skipped.
            start: the smallest cursor value to read (inclusive), for a first backfill.
            end: cursor values at or above it are never read (exclusive).
            chunk_rows: rows per batch (a batch grows to hold a whole cursor-value group).
            params: bound values for ``query``'s placeholders.
            now: clock for timedelta lags (UTC-aware), injectable for tests.

        Raises:
            InvalidInputError: not exactly one of ``table``/``query``, a malformed name, bad
                ``chunk_rows``, ``lag``/``start``/``end`` without a ``cursor``.
            ConfigurationError: a malformed URL. MissingDependencyError: no driver installed.
        """
        if (table is None) == (query is None):
            raise InvalidInputError("SqlSource needs exactly one of table= or query=")
        if isinstance(chunk_rows, bool) or not isinstance(chunk_rows, int) or chunk_rows < 1:
            raise InvalidInputError(f"chunk_rows must be a positive int, got {chunk_rows!r}")
        if cursor is None and (lag is not None or start is not None or end is not None):
            raise InvalidInputError("lag=, start= and end= need a cursor= column")
        if cursor is not None and not _IDENT.fullmatch(cursor):
            raise InvalidInputError(
                f"invalid cursor column name {cursor!r}: use letters, digits, '_' or '$'"
            )
        if isinstance(lag, bool) or not (lag is None or isinstance(lag, timedelta | int)):
            raise InvalidInputError(f"lag must be a timedelta or an int, got {lag!r}")
        if (isinstance(lag, int) and lag < 0) or (
            isinstance(lag, timedelta) and lag < timedelta(0)
        ):
            raise InvalidInputError(f"lag must not be negative, got {lag!r}")
        if table is not None and params:
            raise InvalidInputError("params= binds a query's placeholders; it needs query=")
        self._schema: str | None = None
        self._table: str | None = None
        if table is not None:
            parts = table.split(".") if isinstance(table, str) else []
            if not 1 <= len(parts) <= 2 or not all(_IDENT.fullmatch(p) for p in parts):
                raise InvalidInputError(
                    f"invalid table name {table!r}: use 'name' or 'schema.name' with letters, "
                    "digits, '_' or '$'"
                )
            self._schema, self._table = (None, parts[0]) if len(parts) == 1 else parts
        if query is not None and (not isinstance(query, str) or not query.strip()):
            raise InvalidInputError("query= must be a non-empty SQL SELECT")
        self._query = query.strip().rstrip(";") if query is not None else None
        self._cursor = cursor
        self._lag = lag
        self._start = start
        self._end = end
        self._chunk_rows = chunk_rows
        self._params = dict(params or {})
        self._now = now
        self._engine, self._owns_engine = self._make_engine(url_or_engine)
        url = self._engine.url
        self._display = redact_url(url.render_as_string(hide_password=True))
        self._secret = url.password if isinstance(url.password, str) else None

    @staticmethod
    def _make_engine(url_or_engine: str | Engine) -> tuple[Engine, bool]:
        from sqlalchemy import Engine, create_engine
        from sqlalchemy.exc import ArgumentError, NoSuchModuleError

        if isinstance(url_or_engine, Engine):
            return url_or_engine, False
        if not isinstance(url_or_engine, str):
            raise InvalidInputError("url_or_engine must be a SQLAlchemy URL or Engine")
        try:
            return create_engine(url_or_engine), True
        except ImportError as exc:
            if "postgres" in url_or_engine.split(":", 1)[0]:
                raise MissingDependencyError("the SQL source", "postgres", exc.name) from exc
            raise ConfigurationError(
                f"the database driver module {exc.name!r} is not installed: pip install it"
            ) from exc
        except (ArgumentError, NoSuchModuleError, ValueError) as exc:
            raise ConfigurationError(
                "the SQL source URL is not a usable SQLAlchemy database URL (e.g. "
                "'sqlite:////path/app.db' or 'postgresql+psycopg://user@host/db')"
            ) from exc

    def __repr__(self) -> str:
        return f"SqlSource({self.describe()!r})"

    def describe(self) -> str:
        """``sql <redacted url> table <name> [cursor <column>]`` (never a password)."""
        what = (
            f"table {self._schema + '.' if self._schema else ''}{self._table}"
            if self._table is not None
            else "query"
        )
        by = f" cursor {self._cursor}" if self._cursor else ""
        return f"sql {self._display} {what}{by}"

    def close(self) -> None:
        """Dispose the engine if this source created it (a borrowed engine is left open)."""
        if self._owns_engine:
            self._engine.dispose()

    # -- reading ----------------------------------------------------------------------------------
    def read(self, state: SourceState) -> Iterator[SourceBatch]:
        """Yield batches of rows after ``state["cursor"]`` (or from ``start``), in cursor order.

        Raises:
            NotFoundError: the table does not exist.
            InvalidInputError: the cursor column is missing, a bad query or stored cursor,
                a lag that does not fit the cursor's type, values Arrow cannot hold.
            PermissionDeniedError: the database refused the credentials or the read.
            TransientError: the database was unreachable or busy; retry later.
        """
        from sqlalchemy.exc import DBAPIError, NoSuchTableError

        last = decode_cursor(state.get("cursor")) if self._cursor else None
        try:
            with self._engine.connect() as conn:
                stmt, arrow_types = self._statement(conn, last)
                if stmt is None:
                    return
                streaming = conn.execution_options(stream_results=True, yield_per=self._chunk_rows)
                result = streaming.execute(stmt, self._bind_values(last))
                names = list(result.keys())
                converter = _ArrowConverter(names, arrow_types)
                yield from self._chunks(result.partitions(), names, converter)
        except NoSuchTableError as exc:
            raise NotFoundError(f"{self.describe()}: no such table in the database") from exc
        except DBAPIError as exc:
            raise self._map_error(exc) from exc

    def _bind_values(self, last: Any) -> dict[str, Any]:
        values = dict(self._params)
        values[_LAST] = last
        values[_START] = self._start
        values[_END] = self._end
        return values

    def _statement(
        self, conn: Connection, last: Any
    ) -> tuple[Select[Any] | None, dict[str, pa.DataType]]:
        """The SELECT to run (None: nothing to read) and Arrow types known from reflection."""
        import sqlalchemy as sa

        if self._table is not None:
            table = sa.Table(self._table, sa.MetaData(), schema=self._schema, autoload_with=conn)
            source: sa.FromClause = table
            arrow_types = _reflected_arrow_types(table.columns)
            columns = [c.name for c in table.columns]
        else:
            assert self._query is not None
            probe: Select[Any] = sa.select(sa.literal_column("*")).select_from(
                sa.text(self._query).columns().subquery("lakekit_probe")
            )
            probed = conn.execute(probe.where(sa.false()), self._params)
            columns = list(probed.keys())
            probed.close()
            source = (
                sa.text(self._query)
                .columns(*[sa.column(name) for name in columns])
                .subquery("lakekit_q")
            )
            arrow_types = {}
        stmt = sa.select(source)
        if self._cursor is None:
            return stmt, arrow_types
        if self._cursor not in columns:
            raise InvalidInputError(
                f"{self.describe()}: cursor column {self._cursor!r} is not among the columns "
                f"{columns}"
            )
        cur: ColumnElement[Any] = source.c[self._cursor]
        conds: list[ColumnElement[bool]] = [cur.is_not(None)]
        if last is not None:
            conds.append(cur > sa.bindparam(_LAST))
        if self._start is not None:
            conds.append(cur >= sa.bindparam(_START))
        if self._end is not None:
            conds.append(cur < sa.bindparam(_END))
        if self._lag is not None:
            upper = self._upper_bound(conn, source, cur, conds, last)
            if upper is None:
                return None, arrow_types
            conds.append(cur <= sa.bindparam(_UPPER, upper))
        return stmt.where(*conds).order_by(cur), arrow_types

    def _upper_bound(
        self,
        conn: Connection,
        source: Any,
        cur: ColumnElement[Any],
        conds: Sequence[ColumnElement[bool]],
        last: Any,
    ) -> Any:
        """The largest cursor value to read under ``lag`` (None: nothing is old enough)."""
        import sqlalchemy as sa

        newest = conn.execute(
            sa.select(sa.func.max(cur)).select_from(source).where(*conds), self._bind_values(last)
        ).scalar()
        if newest is None:
            return None
        lag = self._lag
        if isinstance(lag, timedelta):
            if isinstance(newest, datetime):
                now = self._now()
                if newest.tzinfo is None:
                    now = now.astimezone(UTC).replace(tzinfo=None)
                return now - lag
            if isinstance(newest, date):
                return (self._now() - lag).date()
            raise InvalidInputError(
                f"{self.describe()}: a timedelta lag needs a date or timestamp cursor, but "
                f"{self._cursor!r} holds {type(newest).__name__} values; give lag as a number"
            )
        if isinstance(newest, bool) or not isinstance(newest, int | float | Decimal):
            raise InvalidInputError(
                f"{self.describe()}: a numeric lag needs a numeric cursor, but {self._cursor!r} "
                f"holds {type(newest).__name__} values; give lag as a timedelta"
            )
        assert lag is not None
        return newest - lag

    def _chunks(
        self,
        partitions: Iterator[Sequence[Row[Any]]],
        names: list[str],
        converter: _ArrowConverter,
    ) -> Iterator[SourceBatch]:
        cursor_at = names.index(self._cursor) if self._cursor else -1
        pending: list[Row[Any]] = []
        scanned = 0  # pending[:scanned] is known to hold no cut point after chunk_rows
        for part in partitions:
            pending.extend(part)
            while len(pending) >= self._chunk_rows:
                cut = self._cut(pending, cursor_at, max(scanned, self._chunk_rows))
                if cut is None:  # the last group may continue in the next partition
                    scanned = len(pending)
                    break
                yield self._batch(pending[:cut], names, cursor_at, converter)
                del pending[:cut]
                scanned = 0
        if pending:
            yield self._batch(pending, names, cursor_at, converter)

    def _cut(self, rows: list[Row[Any]], cursor_at: int, begin: int) -> int | None:
        """Index of the first row after the cursor-value group that row ``chunk_rows`` is in."""
        if cursor_at < 0:
            return self._chunk_rows
        group = rows[self._chunk_rows - 1][cursor_at]
        for i in range(begin, len(rows)):
            if rows[i][cursor_at] != group:
                return i
        return None

    def _batch(
        self, rows: list[Row[Any]], names: list[str], cursor_at: int, converter: _ArrowConverter
    ) -> SourceBatch:
        data = converter.convert(rows, self.describe())
        if cursor_at < 0:
            return SourceBatch(data, origin=f"{self.describe()} ({len(rows)} rows)")
        first, last = rows[0][cursor_at], rows[-1][cursor_at]
        return SourceBatch(
            data,
            state={"cursor": encode_cursor(last)},
            origin=f"{self.describe()} {self._cursor} {first}..{last}",
        )

    def _map_error(self, exc: DBAPIError) -> LakekitError:
        """By SQLSTATE (PostgreSQL) or exception class, never by message text."""
        from sqlalchemy import exc as sa_exc

        detail = " ".join(str(exc.orig).split()) or type(exc.orig).__name__
        if self._secret:
            detail = detail.replace(self._secret, "***")
        state = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
        state = state if isinstance(state, str) else ""
        prefix = f"{self.describe()}: read failed"
        if state.startswith("28") or state == "42501":
            return PermissionDeniedError(f"{prefix}: permission denied: {detail}")
        if state == "42P01":
            return NotFoundError(f"{prefix}: no such table: {detail}")
        if exc.connection_invalidated or state.startswith(("08", "40", "53", "57", "58")):
            return TransientError(f"{prefix}: database unavailable or busy, retry later: {detail}")
        if state.startswith(("42", "22")) or isinstance(exc, sa_exc.ProgrammingError):
            return InvalidInputError(f"{prefix}: the database rejected the query: {detail}")
        if isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError):
            return TransientError(f"{prefix}: database unavailable or busy, retry later: {detail}")
        return LakekitError(f"{prefix}: {detail}")


class _ArrowConverter:
    """Rows -> ``pa.Table`` with reflected types, else the types inferred from the first
    non-null values (then kept for later chunks, so every batch has the same schema)."""

    def __init__(self, names: list[str], types: Mapping[str, pa.DataType]) -> None:
        self.names = names
        self.types: dict[str, pa.DataType] = dict(types)

    def convert(self, rows: Sequence[Row[Any]], where: str) -> pa.Table:
        import pyarrow as pa

        arrays = []
        for i, name in enumerate(self.names):
            values = [_plain(row[i]) for row in rows]
            known = self.types.get(name)
            try:
                array = pa.array(values, type=known) if known is not None else pa.array(values)
            except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as exc:
                raise InvalidInputError(
                    f"{where}: column {name!r} holds values Arrow cannot convert"
                    f"{f' to {known}' if known is not None else ''}: {exc}"
                ) from exc
            if known is None and not pa.types.is_null(array.type):
                self.types[name] = array.type
            arrays.append(array)
        return pa.Table.from_arrays(arrays, names=self.names)


def _plain(value: Any) -> Any:
    return str(value) if isinstance(value, UUID) else value


def _reflected_arrow_types(columns: Any) -> dict[str, pa.DataType]:
    """Arrow types for the reflected columns whose SQL type maps unambiguously."""
    import pyarrow as pa
    import sqlalchemy as sa

    # Checked in order: subclasses first (SmallInteger < Integer, Float < Numeric).
    simple: list[tuple[type[Any], pa.DataType]] = [
        (sa.Boolean, pa.bool_()),
        (sa.SmallInteger, pa.int16()),
        (sa.Integer, pa.int64()),
        (sa.Float, pa.float64()),
        (sa.Date, pa.date32()),
        (sa.Time, pa.time64("us")),
        (sa.Uuid, pa.string()),
        (sa.String, pa.string()),
        (sa.LargeBinary, pa.binary()),
        (sa.Interval, pa.duration("us")),
    ]
    out: dict[str, pa.DataType] = {}
    for col in columns:
        t = col.type
        if isinstance(t, sa.DateTime):
            out[col.name] = pa.timestamp("us", tz="UTC" if t.timezone else None)
            continue
        mapped = next((arrow for kind, arrow in simple if isinstance(t, kind)), None)
        exact = isinstance(t, sa.Numeric) and t.asdecimal and t.scale is not None
        if mapped is None and exact and t.precision and t.precision <= 38:
            mapped = pa.decimal128(t.precision, t.scale)
        if mapped is not None:
            out[col.name] = mapped
    return out
