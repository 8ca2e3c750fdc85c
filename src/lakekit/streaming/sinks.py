"""Serving sinks of windowed jobs: a lake table, a stream, and a key-value view.

* :class:`TableSink` (for BI and SQL): **exactly once**: results are appended in the same
  atomic commit as the job's checkpoint (``Table.write(set_state=...)``).
* :class:`StreamSink` (a live dashboard, downstream jobs): **at least once**, as JSON records
  keyed by the result's key; deduplicate by ``id``.
* :class:`KeyValueView` (lookups from Python, JSON over ``view.serve()`` on 127.0.0.1): the
  latest value per key, in memory, restored from the checkpoint on restart; idempotent.

Every result carries a deterministic ``id`` (``key|window_start|window_end``); a rejected
record's id is its stream position (``stream/partition/offset``). A job sends results to the
at-least-once sinks as soon as windows close (or update), and to its table sink when it
commits: after a crash, the records since the last checkpoint are processed again, so a stream
sink may receive some results twice (same id, same values), and the table never does.

As the side output for late and invalid records (``late=``), a :class:`StreamSink` publishes
them as JSON, and a :class:`TableSink` merges them on their stream position, so a record
re-processed after a crash is stored once.

Write your own sink by subclassing :class:`Sink` (it is then at-least-once).
"""

from __future__ import annotations

import json
import threading
from abc import ABC
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Literal, cast

from lakekit.errors import ConfigurationError, NotSupportedError
from lakekit.streaming.results import (
    Rejected,
    ResultColumns,
    ResultLayout,
    WindowResult,
    columns_table,
    rejected_table,
    results_table,
)

if TYPE_CHECKING:
    from http.server import ThreadingHTTPServer

    from lakekit.identifiers import TableIdent
    from lakekit.interfaces.catalog import JSONValue
    from lakekit.lake import Lake
    from lakekit.partition_spec import PartitionSpec
    from lakekit.tables.table import StateUpdate, Table

__all__ = ["KeyValueView", "Sink", "SinkRole", "StreamSink", "TableSink"]

SinkRole = Literal["results", "rejected"]


class Sink(ABC):  # noqa: B024 - both methods are optional: a sink takes one role or both
    """Where a windowed job sends window results, or (as ``late=``) the records it rejected.

    Subclasses override :meth:`write_results` and/or :meth:`write_rejected` and list the roles
    they take in ``roles``. A sink belongs to one job, in one role.

    Attributes:
        updates: whether the sink receives early (non-final) results of open windows when the
            job emits them (``early=``); final results always go to every result sink.
    """

    roles: ClassVar[frozenset[SinkRole]] = frozenset({"results", "rejected"})
    updates: bool = True

    def bind(self, role: SinkRole, layout: ResultLayout, owner: object) -> None:
        """Called once by the job that uses this sink.

        Raises:
            ConfigurationError: the sink cannot take ``role``, or already belongs to a job.
        """
        if role not in self.roles:
            raise ConfigurationError(f"{self!r} cannot receive {role} records")
        bound = getattr(self, "_bound", None)
        if bound is not None and bound[0] is not owner:
            raise ConfigurationError(f"{self!r} already belongs to another job")
        if bound is not None and bound[1] != role:
            raise ConfigurationError(f"{self!r} cannot be both a result sink and the side output")
        self._bound = (owner, role)
        self.layout = layout

    def write_results(self, results: Sequence[WindowResult]) -> None:
        """Deliver window results (in window order)."""
        raise NotSupportedError(type(self).__name__, "window results")

    def write_rejected(self, rows: Sequence[Rejected]) -> None:
        """Deliver late or invalid records."""
        raise NotSupportedError(type(self).__name__, "rejected records")

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release what the sink holds (called when its job closes)."""


class TableSink(Sink):
    """Append results to a lake table (created on first write), exactly once.

    The table has the key column (named as the job's ``key``), ``window_start`` and
    ``window_end`` (``timestamp[us, UTC]``), one column per aggregate, and ``final``. With
    ``updates=False`` (default) it only receives final results, so each window of each key is
    one row: ``select * from iot.device_stats`` needs no deduplication.

    As the side output it gets columns ``kind, reason, stream, partition, offset,
    record_timestamp, event_time, key, value`` and is written with a merge on
    ``(stream, partition, offset)``.

    Args:
        lake: the lake.
        table: ``"namespace.table"``.
        partition_by: partitioning of the table when this sink creates it, e.g.
            ``["day(window_start)"]``.
        updates: also append early (non-final) results, with ``final = false``.

    Raises:
        InvalidInputError: a malformed table name.
    """

    transactional: ClassVar[bool] = True

    def __init__(
        self,
        lake: Lake,
        table: str | TableIdent,
        *,
        partition_by: PartitionSpec | Sequence[str] | None = None,
        updates: bool = False,
    ) -> None:
        from lakekit.identifiers import TableIdent

        self.lake = lake
        self.ident = TableIdent.parse(table)
        self.partition_by = partition_by
        self.updates = updates
        self._table: Table | None = None

    def __repr__(self) -> str:
        return f"TableSink({str(self.ident)!r})"

    def _existing(self) -> Table | None:
        if self._table is None and self.lake.catalog.table_exists(self.ident):
            self._table = self.lake.table(self.ident)
        return self._table

    def _target(self, schema: Any) -> Table:
        table = self._existing()
        if table is None:
            table = self._table = self.lake.create_table(
                self.ident, schema, partition_by=self.partition_by, exist_ok=True
            )
        return table

    def write_results(
        self,
        results: Sequence[WindowResult],
        *,
        set_state: StateUpdate | None = None,
        precondition: Callable[[], None] | None = None,
    ) -> None:
        """Append ``results`` as one snapshot, committing ``set_state`` with it atomically,
        and only while ``precondition`` holds (see ``Table.write``).

        Raises:
            SchemaError: the results do not fit the existing table.
            Whatever ``precondition`` raises (nothing is written then).
        """
        existing = self._existing()
        data = results_table(results, self.layout, None if existing is None else existing.schema)
        self._target(data.schema).append(data, set_state=set_state, precondition=precondition)

    def write_columns(
        self,
        batches: Sequence[ResultColumns],
        *,
        set_state: StateUpdate | None = None,
        precondition: Callable[[], None] | None = None,
    ) -> None:
        """:meth:`write_results` of results held by column (what the job commits): the same
        rows in the same one atomic append, without a :class:`WindowResult` per window.

        Raises:
            SchemaError: the results do not fit the existing table.
            Whatever ``precondition`` raises (nothing is written then).
        """
        existing = self._existing()
        data = columns_table(batches, self.layout, None if existing is None else existing.schema)
        self._target(data.schema).append(data, set_state=set_state, precondition=precondition)

    def write_rejected(self, rows: Sequence[Rejected]) -> None:
        """Merge ``rows`` on their stream position (idempotent)."""
        data = rejected_table(rows)
        self._target(data.schema).merge(data, on=["stream", "partition", "offset"])


class StreamSink(Sink):
    """Publish results (or rejected records) as JSON records to a stream, at least once.

    A result's record value is :meth:`WindowResult.as_json` (with its ``id``), its key the
    result's key (so one key's results stay in order in one partition) and its timestamp the
    window's end. A rejected record is published as :meth:`Rejected.as_json` under the original
    record's key and timestamp.

    Args:
        lake: the lake.
        stream: the stream's name.
        updates: also publish early (non-final) results (default True).

    Raises:
        InvalidInputError: a malformed stream name.
    """

    def __init__(self, lake: Lake, stream: str, *, updates: bool = True) -> None:
        from lakekit.identifiers import validate_name

        self.lake = lake
        self.name = validate_name(stream, what="stream name")
        self.updates = updates

    def __repr__(self) -> str:
        return f"StreamSink({self.name!r})"

    def write_results(self, results: Sequence[WindowResult]) -> None:
        from lakekit.interfaces.stream import Message

        messages = [
            Message(_json_bytes(r.as_json()), key=r.view_key.encode("utf-8"), timestamp=r.end)
            for r in results
        ]
        self.lake.stream(self.name).publish_many(messages)

    def write_rejected(self, rows: Sequence[Rejected]) -> None:
        from lakekit.interfaces.stream import Message

        messages = [
            Message(_json_bytes(r.as_json()), key=r.key, timestamp=r.timestamp) for r in rows
        ]
        self.lake.stream(self.name).publish_many(messages)


class KeyValueView(Sink):
    """The latest result per key, queryable from Python and served as JSON over HTTP.

    Per key it keeps the result of the latest window (by window start; among emissions of one
    window, the last: the final result replaces its updates). Values are JSON objects
    (:meth:`WindowResult.as_json`). The view lives in memory; the job stores it in each
    checkpoint and restores it when it restarts, so after a restart it holds what it held at
    the last checkpoint and catches up as the job re-processes the records after it. Updates
    are idempotent (applying a result twice changes nothing).

    Thread-safe: the job writes while readers (and the HTTP server's threads) read.

    Args:
        name: the view's name within its job (its checkpoint slot).
        updates: also take early (non-final) results (default True).
    """

    roles: ClassVar[frozenset[SinkRole]] = frozenset({"results"})

    def __init__(self, name: str = "latest", *, updates: bool = True) -> None:
        from lakekit.identifiers import validate_name

        self.name = validate_name(name, what="view name")
        self.updates = updates
        self._lock = threading.Lock()
        self._values: dict[str, dict[str, Any]] = {}
        self._starts: dict[str, str] = {}
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"KeyValueView({self.name!r}, {len(self)} keys)"

    def __enter__(self) -> KeyValueView:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reads ----------------------------------------------------------------------------------
    def get(self, key: object, default: Any = None) -> dict[str, Any] | Any:
        """The latest result for ``key`` (compared as text: ``7`` and ``"7"`` are one key)."""
        with self._lock:
            value = self._values.get(str(key))
            return default if value is None else dict(value)

    def __getitem__(self, key: object) -> dict[str, Any]:
        value = self.get(key)
        if value is None:
            raise KeyError(key)
        return cast("dict[str, Any]", value)

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return str(key) in self._values

    def __len__(self) -> int:
        with self._lock:
            return len(self._values)

    def keys(self) -> list[str]:
        with self._lock:
            return sorted(self._values)

    def items(self) -> list[tuple[str, dict[str, Any]]]:
        """``(key, value)`` pairs sorted by key (copies)."""
        with self._lock:
            return [(k, dict(self._values[k])) for k in sorted(self._values)]

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """A consistent copy of the whole view: key -> value."""
        return dict(self.items())

    # -- writes (by the job) --------------------------------------------------------------------
    def write_results(self, results: Sequence[WindowResult]) -> None:
        with self._lock:
            for result in results:
                key = result.view_key
                start = result.start.isoformat()
                if key not in self._values or start >= self._starts[key]:
                    self._values[key] = result.as_json()
                    self._starts[key] = start

    def dump(self) -> dict[str, JSONValue]:
        """The view's content as JSON (the job checkpoints it)."""
        with self._lock:
            return {k: dict(v) for k, v in self._values.items()}

    def load(self, data: Mapping[str, Any]) -> None:
        """Replace the content by a :meth:`dump` (the job restores it from its checkpoint)."""
        values = {str(k): dict(v) for k, v in data.items() if isinstance(v, dict)}
        starts = {
            k: datetime.fromisoformat(
                str(v.get("window_start", "")).replace("Z", "+00:00")
            ).isoformat()
            for k, v in values.items()
        }
        with self._lock:
            self._values = values
            self._starts = starts

    # -- HTTP -----------------------------------------------------------------------------------
    def serve(self, port: int = 0) -> str:
        """Serve the view as JSON on ``http://127.0.0.1:<port>`` (0: a free port) from a
        background thread; return the base URL. Idempotent while serving.

        Endpoints: ``GET /keys/<key>`` (URL-encoded; 404 for an unknown key), ``GET /all``
        (every key), ``GET /keys`` (the key list), ``GET /`` (what the view is).

        Raises:
            ConfigurationError: the port is taken or invalid.
        """
        from lakekit.streaming.kv_http import start_server

        with self._lock:
            if self._server is not None:
                host, bound = self._server.server_address[:2]
                return f"http://{host!s}:{bound}"
        server, thread = start_server(self, port)
        with self._lock:
            self._server, self._thread = server, thread
        host, bound = server.server_address[:2]
        return f"http://{host!s}:{bound}"

    @property
    def url(self) -> str | None:
        """The base URL while serving, else None."""
        with self._lock:
            if self._server is None:
                return None
            host, bound = self._server.server_address[:2]
            return f"http://{host!s}:{bound}"

    def close(self) -> None:
        """Stop serving (the content stays readable from Python)."""
        with self._lock:
            server, thread = self._server, self._thread
            self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(5)


def _json_bytes(obj: Mapping[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":"), allow_nan=False, default=str).encode("utf-8")
