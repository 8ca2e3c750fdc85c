"""ELT pipelines: stream a :class:`~lakekit.pipelines.source.Source` into a lake table,
exactly once.

``lake.pipeline("orders").run(source, into="raw.orders")`` reads the source from its committed
state, lands raw data (optional), applies a contract (optional), and commits the rows in groups
of up to ``batch_rows`` rows. Each group is **one** table snapshot whose commit also advances the
source's state (``pipelines/<name>/state/<key>`` in the catalog) in the same atomic step.

Guarantees:

* **Exactly once.** A crash at any point (``kill -9`` included) loses nothing and duplicates
  nothing: a group's rows and the state after them land together or not at all, and the next
  run resumes from the last committed state (this needs ``Source.read`` to be deterministic
  from a state, as the source interface requires).
* **Ordered.** Groups commit in source order; a reader sees a prefix of the source's batches.
* **Quarantine without loss.** Rows a contract rejects, and input a source could not parse
  (``SourceBatch.rejected``, e.g. a bad JSON line), go to ``<ns>.<table>__quarantine``,
  committed just *before* the group's main commit, together with a marker state entry naming
  the group. A re-run after a crash between the two commits finds the marker and does not
  quarantine that group again; the main commit clears the marker. (Only a re-run with a
  different ``batch_rows`` — grouping batches differently — can quarantine rows twice; good
  rows are never lost or duplicated either way.) Rejected rows are held in memory until their
  group commits.
* **Overwrites are atomic.** With ``mode="overwrite"`` or ``"overwrite_partitions"`` the whole
  run is one commit (readers see the old data or all of the new data, never a half-replaced
  table), so ``batch_rows`` does not split it and every batch must share one schema.
* **Run history.** Every run returns a :class:`~lakekit.pipelines.report.RunReport` and stores
  it (``lake.runs()``); a failed run stores a failed report and re-raises the error.

* **One run at a time.** Two concurrent runs of one pipeline would read the same committed
  state; a commit is only made while no other run of the pipeline committed since this run
  began (see :class:`_RunGuard`), so the later one fails with CommitConflictError instead of
  loading rows twice.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from lakekit.errors import CommitConflictError, InvalidInputError, SchemaError
from lakekit.identifiers import TableIdent, validate_name
from lakekit.pipelines.report import RunReport, RunStatus, describe_error, list_runs, save_run
from lakekit.pipelines.source import Source, SourceBatch, SourceState

if TYPE_CHECKING:
    import pyarrow as pa

    from lakekit.interfaces.catalog import Catalog, JSONValue
    from lakekit.lake import Lake
    from lakekit.partition_spec import PartitionSpec
    from lakekit.pipelines.progress import Progress
    from lakekit.pipelines.raw import RawLander
    from lakekit.tables.table import Table
    from lakekit.tables.writer import WriteOptions

__all__ = ["RowContract", "Pipeline", "PipelineMode"]

PipelineMode = Literal["append", "overwrite", "overwrite_partitions", "merge"]
_MODES = ("append", "overwrite", "overwrite_partitions", "merge")
QUARANTINE_SUFFIX = "__quarantine"


@runtime_checkable
class RowContract(Protocol):
    """What a pipeline needs of a data contract: split a batch into good and rejected rows.

    ``apply`` returns the rows to load (possibly cast or cleaned) and the rejected rows (with
    whatever columns explain why, e.g. the error and ``row_origins``), or None when none were.
    """

    def apply(
        self, batch: pa.Table, row_origins: Sequence[str] | None
    ) -> tuple[pa.Table, pa.Table | None]: ...


@dataclass(slots=True)
class _Item:
    """One source batch, processed: rows to load, rows rejected, state entries to commit."""

    good: pa.Table
    quarantined: pa.Table | None
    state: dict[str, JSONValue]
    """Relative source-state keys."""
    raw_state: dict[str, JSONValue]
    """Absolute state keys of landed raw content."""


@dataclass(slots=True)
class _Group:
    """Consecutive items committed as one snapshot."""

    rows: int = 0
    items: int = 0
    state: dict[str, JSONValue] = field(default_factory=dict)
    raw_state: dict[str, JSONValue] = field(default_factory=dict)
    quarantined: list[pa.Table] = field(default_factory=list)

    def add(self, item: _Item) -> None:
        self.rows += item.good.num_rows
        self.items += 1
        self.state.update(item.state)
        self.raw_state.update(item.raw_state)
        if item.quarantined is not None and item.quarantined.num_rows:
            self.quarantined.append(item.quarantined)


@dataclass(slots=True)
class _Counters:
    rows_in: int = 0
    rows_out: int = 0
    rows_quarantined: int = 0
    batches: int = 0
    commits: int = 0
    bytes: int = 0
    origins: set[str] = field(default_factory=set)
    snapshot_ids: list[int] = field(default_factory=list)


def _blank(item: _Item) -> bool:
    """An item without columns or rows (an empty file, a file of only unparsable lines): it
    carries state and quarantined rows but no schema, so it fits any group."""
    return item.good.num_columns == 0 and item.good.num_rows == 0


class _Peekable:
    def __init__(self, items: Iterator[_Item]) -> None:
        self._items = items
        self._ahead: deque[_Item] = deque()
        self._done = False

    def _fill(self, count: int) -> bool:
        while len(self._ahead) < count and not self._done:
            item = next(self._items, None)
            if item is None:
                self._done = True
            else:
                self._ahead.append(item)
        return len(self._ahead) >= count

    def peek(self) -> _Item | None:
        return self._ahead[0] if self._fill(1) else None

    def schema(self) -> pa.Schema | None:
        """The schema of the next item with columns (reading on past blank items), or None."""
        index = 0
        while self._fill(index + 1):
            if not _blank(self._ahead[index]):
                return self._ahead[index].good.schema
            index += 1
        return None

    def take(self) -> _Item:
        item = self.peek()
        assert item is not None
        return self._ahead.popleft()


class Pipeline:
    """A named, resumable ingestion from a source into a lake table (``lake.pipeline(name)``).

    Its state lives in the catalog under ``pipelines/<name>/``, isolated from other pipelines.
    """

    def __init__(self, lake: Lake, name: str) -> None:
        self.lake = lake
        self.name = validate_name(name, what="pipeline name")

    def __repr__(self) -> str:
        return f"Pipeline({self.name!r})"

    @property
    def state_prefix(self) -> str:
        """Catalog state prefix of the source's state (keys below it are the source's keys)."""
        return f"pipelines/{self.name}/state/"

    @property
    def _raw_prefix(self) -> str:
        return f"pipelines/{self.name}/raw/"

    @property
    def _marker_key(self) -> str:
        return f"pipelines/{self.name}/quarantine_pending"

    def state(self) -> SourceState:
        """The source state as last committed (what the next run resumes from)."""
        prefix = self.state_prefix
        entries = self.lake.catalog.list_state(prefix)
        return SourceState({e.key[len(prefix) :]: e.value for e in entries})

    def runs(self, limit: int = 20) -> list[RunReport]:
        """This pipeline's stored run reports, newest first."""
        return list_runs(self.lake.catalog, self.name, limit)

    def run(
        self,
        source: Source,
        into: str | TableIdent,
        *,
        mode: PipelineMode = "append",
        merge_on: Sequence[str] | None = None,
        partition_by: PartitionSpec | Sequence[str] | None = None,
        contract: RowContract | None = None,
        flatten: bool | str = False,
        land_raw: bool = False,
        raw_prefix: str = "raw",
        batch_rows: int = 1_000_000,
        commit_every: float | None = None,
        options: WriteOptions | None = None,
        progress: bool | None = None,
    ) -> RunReport:
        """Load everything ``source`` has beyond the committed state into table ``into``.

        Args:
            source: what to read; ``read`` is called once with the committed state.
            into: the target table ``"namespace.table"``, created on the first run from the
                first batch's schema (after the contract) and ``partition_by``.
            mode: ``append``; ``merge`` (upsert on ``merge_on``); ``overwrite`` or
                ``overwrite_partitions``, which commit the whole run at once.
            merge_on: key columns for ``mode="merge"``.
            partition_by: partitioning of a table this run creates. For an existing table it
                must match the table's partitioning (or be None).
            contract: splits each batch into rows to load and rows to quarantine.
            flatten: nested structs (e.g. nested JSON objects) are kept as struct columns by
                default; True flattens them into ``parent_child`` columns (a string sets the
                separator). Applied after the contract.
            land_raw: store each batch's original bytes (or its rows as NDJSON) in the raw
                zone under ``<raw_prefix>/<pipeline>/<YYYY/MM/DD>/<sha256><suffix>``, once per
                content (see :mod:`lakekit.pipelines.raw`).
            batch_rows: most rows per commit for append and merge (a larger single batch is
                committed alone).
            commit_every: for append and merge, also commit once this many seconds passed
                since a commit's first batch, however few rows it holds: the latency bound of
                a continuous micro-batch run (``StreamSource(stop_at_end=False)``, which yields
                an empty batch on every idle poll so that the bound holds without traffic).
            options: how data files are written.
            progress: show a progress line on stderr; default: only on a terminal outside CI.

        Returns:
            The run's report (also stored: ``lake.runs()``). ``status`` is ``"nothing to do"``
            when the source had no new batches (nothing is committed then).

        Raises:
            InvalidInputError: bad arguments, or a source yielding something else than
                SourceBatch objects / a contract returning something else than tables.
            SchemaError: the data does not fit the table (or, in an overwrite mode, batches
                of one run have different schemas).
            Anything the source raises. In every case the rows committed before the error
            stay committed, the state matches them, and a failed report is stored.
        """
        from lakekit.pipelines.progress import Progress

        ident = TableIdent.parse(into)
        _check_run_args(source, mode, merge_on, contract, batch_rows, commit_every=commit_every)
        run_id = uuid.uuid4().hex[:12]
        started = datetime.now(UTC)
        t0 = time.monotonic()
        counters = _Counters()
        bar = Progress(f"{self.name} -> {ident}", enabled=progress)

        def report(status: RunStatus, error: str | None = None) -> RunReport:
            return RunReport(
                pipeline=self.name, run_id=run_id, source=_describe(source), target=str(ident),
                mode=mode, started_at=started, finished_at=datetime.now(UTC),
                duration_s=round(time.monotonic() - t0, 6), rows_in=counters.rows_in,
                rows_out=counters.rows_out, rows_quarantined=counters.rows_quarantined,
                batches=counters.batches, commits=counters.commits, files=len(counters.origins),
                bytes=counters.bytes, snapshot_ids=tuple(counters.snapshot_ids), status=status,
                error=error, raw_landed=lander.landed if lander is not None else 0,
            )  # fmt: skip

        lander: RawLander | None = None
        if land_raw:
            from lakekit.pipelines.raw import RawLander

            lander = RawLander(
                self.lake.store, self.lake.catalog, pipeline=self.name, prefix=raw_prefix,
                state_prefix=self._raw_prefix,
            )  # fmt: skip
        try:
            status = self._run(
                source, ident, mode=mode, merge_on=merge_on, partition_by=partition_by,
                contract=contract, lander=lander, batch_rows=batch_rows, options=options,
                counters=counters, bar=bar, flatten=flatten, commit_every=commit_every,
                run_id=run_id,
            )  # fmt: skip
        except BaseException as exc:
            bar.close()
            failed = report("failed", describe_error(exc))
            try:
                save_run(self.lake.catalog, failed)
            except Exception as save_exc:  # keep the run's own error; say the report is missing
                exc.add_note(f"the failed run report could not be stored: {save_exc!r}")
            raise
        bar.close()
        done = report(status)
        save_run(self.lake.catalog, done)
        return done

    # -- internals ------------------------------------------------------------------------------
    def _run(
        self,
        source: Source,
        ident: TableIdent,
        *,
        mode: PipelineMode,
        merge_on: Sequence[str] | None,
        partition_by: PartitionSpec | Sequence[str] | None,
        contract: RowContract | None,
        lander: RawLander | None,
        batch_rows: int,
        options: WriteOptions | None,
        counters: _Counters,
        bar: Progress,
        flatten: bool | str = False,
        commit_every: float | None = None,
        run_id: str = "",
    ) -> RunStatus:
        guard = _RunGuard(self.lake.catalog, f"pipelines/{self.name}/last_commit", run_id)
        committed: dict[str, JSONValue] = dict(self.state().items())  # after the guard's read
        batches = source.read(SourceState(committed))
        try:
            items = _Peekable(
                self._items(batches, contract, lander, counters, bar, flatten=flatten)
            )
            if items.peek() is None:
                return "nothing to do"
            schema = items.schema()
            if schema is None and not self.lake.catalog.table_exists(ident):
                self._commit_blank(ident, items, committed, counters)
                return "succeeded"
            table = self._target(ident, schema, partition_by)
            single = mode in ("overwrite", "overwrite_partitions")
            while items.peek() is not None:
                self._commit_group(
                    table, items, committed, mode=mode, merge_on=merge_on,
                    limit=None if single else batch_rows, options=options, counters=counters,
                    max_seconds=None if single else commit_every, guard=guard,
                )  # fmt: skip
            return "succeeded"
        finally:
            close = getattr(batches, "close", None)
            if callable(close):
                close()

    def _items(
        self,
        batches: Iterator[SourceBatch],
        contract: RowContract | None,
        lander: RawLander | None,
        counters: _Counters,
        bar: Progress,
        *,
        flatten: bool | str = False,
    ) -> Iterator[_Item]:
        import pyarrow as pa

        for batch in batches:
            if not isinstance(batch, SourceBatch):
                raise InvalidInputError(
                    f"Source.read must yield SourceBatch objects, got {type(batch).__name__}"
                )
            data = batch.data
            if isinstance(data, pa.RecordBatch):
                data = pa.Table.from_batches([data])
            if not isinstance(data, pa.Table):
                raise InvalidInputError(
                    f"SourceBatch.data must be a pyarrow Table or RecordBatch, got "
                    f"{type(data).__name__} (from {batch.origin or 'an unnamed origin'})"
                )
            state = _relative_state(batch.state)
            rejected = _source_rejects(batch)
            counters.batches += 1
            counters.rows_in += data.num_rows + (rejected.num_rows if rejected is not None else 0)
            new_origin = bool(batch.origin) and batch.origin not in counters.origins
            if new_origin:
                counters.origins.add(batch.origin)
            raw_bytes = len(batch.raw.data) if batch.raw is not None else 0
            counters.bytes += raw_bytes
            raw_state: dict[str, JSONValue] = {}
            if lander is not None:
                from lakekit.pipelines.raw import rows_as_ndjson

                _, entries = lander.land(batch.raw or rows_as_ndjson(data))
                raw_state.update(entries)
            good, bad = data, None
            if contract is not None:
                good, bad = _apply_contract(contract, data, batch)
            if flatten:
                from lakekit.pipelines.contract import flatten_structs

                good = flatten_structs(good, "_" if flatten is True else str(flatten))
            if rejected is not None:
                bad = (
                    rejected
                    if bad is None
                    else pa.concat_tables([bad, rejected], promote_options="permissive")
                )
            bar.update(rows=data.num_rows, bytes=raw_bytes, files=int(new_origin))
            yield _Item(good, bad, state, raw_state)

    def _target(
        self,
        ident: TableIdent,
        schema: pa.Schema | None,
        partition_by: PartitionSpec | Sequence[str] | None,
    ) -> Table:
        from lakekit.interfaces.catalog import _as_partition_spec

        catalog = self.lake.catalog
        if not catalog.table_exists(ident):
            assert schema is not None  # _run commits blank-only runs without a table
            return self.lake.create_table(ident, schema, partition_by=partition_by, exist_ok=True)
        table = self.lake.table(ident)
        if partition_by is not None:
            wanted = _as_partition_spec(partition_by)
            if wanted != table.partition_spec:
                raise InvalidInputError(
                    f"{ident} is partitioned by {table.partition_spec}, not {wanted}: pass "
                    "partition_by=None (or the table's partitioning) to load into it"
                )
        return table

    def _commit_group(
        self,
        table: Table,
        items: _Peekable,
        committed: dict[str, JSONValue],
        *,
        mode: PipelineMode,
        merge_on: Sequence[str] | None,
        limit: int | None,
        options: WriteOptions | None,
        counters: _Counters,
        max_seconds: float | None = None,
        guard: _RunGuard | None = None,
    ) -> None:
        import pyarrow as pa

        group = _Group()
        deadline = None if max_seconds is None else time.monotonic() + max_seconds
        upcoming = items.schema()
        schema = upcoming if upcoming is not None else table.schema

        def rows() -> Iterator[pa.RecordBatch]:
            while limit is None or group.rows < limit:  # a full group ends without reading on
                if deadline is not None and group.items and time.monotonic() >= deadline:
                    return  # commit what this group holds: the latency bound
                item = items.peek()
                if item is None:
                    return
                if _blank(item):
                    group.add(items.take())
                    continue
                if not item.good.schema.equals(schema):
                    if limit is None:
                        raise SchemaError(
                            f"an {mode} run commits once, so all its batches need one schema; "
                            f"got {item.good.schema} after {schema}"
                        )
                    return  # a schema change starts a new commit
                if group.items and limit is not None and group.rows + item.good.num_rows > limit:
                    return
                group.add(items.take())
                yield from item.good.to_batches()

        def state_update() -> dict[str, JSONValue]:
            entries: dict[str, JSONValue] = {
                f"{self.state_prefix}{key}": value for key, value in group.state.items()
            }
            entries.update(group.raw_state)
            if group.quarantined:
                self._quarantine(table.ident, group, _group_token(committed, entries))
            entries[self._marker_key] = None
            if guard is not None:
                entries[guard.key] = guard.next_value()
            return entries

        reader = pa.RecordBatchReader.from_batches(schema, rows())
        snapshot = table.write(
            reader, mode=mode, on=merge_on, options=options, set_state=state_update,
            precondition=None if guard is None else guard.check,
        )  # fmt: skip
        if guard is not None:
            guard.committed()
        for key, value in group.state.items():
            if value is None:
                committed.pop(key, None)
            else:
                committed[key] = value
        counters.commits += 1
        counters.snapshot_ids.append(snapshot.snapshot_id)
        counters.rows_out += group.rows
        counters.rows_quarantined += sum(t.num_rows for t in group.quarantined)

    def _commit_blank(
        self,
        ident: TableIdent,
        items: _Peekable,
        committed: dict[str, JSONValue],
        counters: _Counters,
    ) -> None:
        """Commit a run whose batches have no columns (only empty or unparsable input) while
        the target table does not exist yet: there is no schema to create it from.

        With quarantined rows, the state commits atomically with them (one quarantine-table
        commit). Without, each state entry is stored on its own: re-reading input that has no
        rows is harmless, so a crash between the puts loses and duplicates nothing.
        """
        group = _Group()
        while items.peek() is not None:
            group.add(items.take())
        entries: dict[str, JSONValue] = {
            f"{self.state_prefix}{key}": value for key, value in group.state.items()
        }
        entries.update(group.raw_state)
        entries[self._marker_key] = None  # a crashed run's marker is settled by this commit
        if group.quarantined:
            self._write_quarantine(ident, group, entries)
        else:
            catalog = self.lake.catalog
            for key, value in entries.items():
                if value is None:
                    catalog.delete_state(key)
                else:
                    catalog.put_state(key, value)
        for key, value in group.state.items():
            if value is None:
                committed.pop(key, None)
            else:
                committed[key] = value
        counters.rows_quarantined += sum(t.num_rows for t in group.quarantined)

    def _quarantine(self, ident: TableIdent, group: _Group, token: str) -> None:
        """Commit the group's rejected rows, unless a crashed run already did (marker)."""
        catalog = self.lake.catalog
        if catalog.get_state(self._marker_key) == token:
            return
        self._write_quarantine(ident, group, {self._marker_key: token})

    def _write_quarantine(
        self, ident: TableIdent, group: _Group, state: Mapping[str, JSONValue]
    ) -> None:
        """Append the group's rejected rows to the quarantine table, committing ``state``
        with them."""
        import pyarrow as pa

        rows = pa.concat_tables(group.quarantined, promote_options="permissive")
        name = TableIdent(ident.namespace, _quarantine_name(ident.name))
        target = self.lake.create_table(name, rows.schema, exist_ok=True)
        target.write(rows, mode="append", set_state=dict(state))


class _RunGuard:
    """Refuses a commit when another run of the same pipeline committed since this run began.

    Two concurrent runs of one pipeline read the same committed state, so both would load the
    same rows. Each commit writes ``key`` = ``{"run", "commits"}`` with its state, and is only
    made (``Table.write(precondition=check)``) while ``key`` still holds what this run last saw;
    a concurrent commit forces the table write to try again, and so to check again. The run
    that finds the key changed raises :class:`CommitConflictError`, having committed nothing of
    the batch at hand: the rows stay exactly once.
    """

    def __init__(self, catalog: Catalog, key: str, run_id: str) -> None:
        self.catalog = catalog
        self.key = key
        self.run_id = run_id
        self.commits = 0
        self.expected = catalog.get_state(key)

    def check(self) -> None:
        current = self.catalog.get_state(self.key)
        if current != self.expected:
            other = current.get("run") if isinstance(current, dict) else current
            raise CommitConflictError(
                f"another run of this pipeline (run {other}) committed while this run "
                f"({self.run_id}) was loading; this run's uncommitted rows were not loaded. "
                "Run one pipeline run at a time; run again to continue from the new state"
            )

    def next_value(self) -> dict[str, JSONValue]:
        return {"run": self.run_id, "commits": self.commits + 1}

    def committed(self) -> None:
        self.expected = self.next_value()
        self.commits += 1


def _quarantine_name(table: str) -> str:
    return validate_name(f"{table}{QUARANTINE_SUFFIX}", what="quarantine table name")


def _group_token(committed: Mapping[str, JSONValue], entries: Mapping[str, JSONValue]) -> str:
    """Identifies a group: the state it starts from and the entries it commits."""
    text = json.dumps([sorted(committed.items()), sorted(entries.items())], default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _relative_state(state: Mapping[str, JSONValue]) -> dict[str, JSONValue]:
    if not isinstance(state, Mapping):
        raise InvalidInputError(f"SourceBatch.state must be a mapping, got {type(state)}")
    for key in state:
        if not isinstance(key, str) or not key or key.startswith("/"):
            raise InvalidInputError(
                f"source state keys must be non-empty relative strings, got {key!r}"
            )
    return dict(state)


def _source_rejects(batch: SourceBatch) -> pa.Table | None:
    """``batch.rejected`` in the quarantine table's schema (``_quarantined_at``: now), or None
    when it is absent or empty.

    Raises:
        InvalidInputError: ``rejected`` is not a table of non-null ``_origin``, ``_reason`` and
            ``_record`` strings.
    """
    import pyarrow as pa

    from lakekit.pipelines.contract import quarantine_schema

    rejected = batch.rejected
    if rejected is None:
        return None
    where = batch.origin or "an unnamed origin"
    columns = ("_origin", "_reason", "_record")
    if not isinstance(rejected, pa.Table) or not set(columns) <= set(rejected.column_names):
        raise InvalidInputError(
            f"SourceBatch.rejected must be a pyarrow Table with columns {', '.join(columns)} "
            f"(from {where})"
        )
    if rejected.num_rows == 0:
        return None
    schema = quarantine_schema()
    arrays: list[pa.Array[Any] | pa.ChunkedArray[Any]] = []
    for name in columns:
        try:
            column = rejected.column(name).cast(pa.string())
        except (pa.ArrowException, TypeError, ValueError) as exc:
            raise InvalidInputError(
                f"SourceBatch.rejected column {name!r} must hold strings (from {where}): {exc}"
            ) from exc
        if column.null_count:
            raise InvalidInputError(
                f"SourceBatch.rejected column {name!r} has nulls (from {where})"
            )
        arrays.append(column)
    now = datetime.now(UTC)
    arrays.append(pa.array([now] * rejected.num_rows, pa.timestamp("us", tz="UTC")))
    return pa.Table.from_arrays(arrays, schema=schema)


def _apply_contract(
    contract: RowContract, data: pa.Table, batch: SourceBatch
) -> tuple[pa.Table, pa.Table | None]:
    import pyarrow as pa

    result = contract.apply(data, batch.row_origins)
    ok = isinstance(result, tuple) and len(result) == 2
    good, bad = result if ok else (None, None)
    if not isinstance(good, pa.Table) or not (bad is None or isinstance(bad, pa.Table)):
        raise InvalidInputError(
            f"{type(contract).__name__}.apply must return (pyarrow.Table, pyarrow.Table | None)"
        )
    return good, bad


def _check_run_args(
    source: Source,
    mode: str,
    merge_on: Sequence[str] | None,
    contract: RowContract | None,
    batch_rows: int,
    *,
    commit_every: float | None = None,
) -> None:
    if not isinstance(source, Source):
        raise InvalidInputError(
            f"source must be a lakekit.pipelines.Source, got {type(source).__name__}"
        )
    if mode not in _MODES:
        raise InvalidInputError(f"unknown mode {mode!r}: use {', '.join(_MODES)}")
    if (mode == "merge") != bool(merge_on):
        raise InvalidInputError("mode='merge' needs merge_on=[key columns]; other modes take none")
    if contract is not None and not isinstance(contract, RowContract):
        raise InvalidInputError(
            f"contract must have an apply(batch, row_origins) method, got {type(contract)}"
        )
    if isinstance(batch_rows, bool) or not isinstance(batch_rows, int) or batch_rows < 1:
        raise InvalidInputError(f"batch_rows must be an int >= 1, got {batch_rows!r}")
    if commit_every is not None and (
        isinstance(commit_every, bool)
        or not isinstance(commit_every, int | float)
        or not commit_every > 0
    ):
        raise InvalidInputError(f"commit_every must be > 0 seconds, got {commit_every!r}")


def _describe(source: Source) -> str:
    try:
        return str(source.describe())[:500]
    except Exception as exc:  # a report must still be written
        return f"{source.kind} (describe() failed: {type(exc).__name__})"
