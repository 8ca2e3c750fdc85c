"""The state of open windows, and how a decoded batch is folded into it.

Per batch, the rows are assigned to windows with Arrow kernels, grouped by (key, window) with
one Arrow hash aggregation computing every aggregation's partials, and only then does Python
run: once per **group** (not per record), folding the partials into the window's state.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from lakekit.errors import InvalidInputError
from lakekit.streaming._records import KEY, ROW, TIME
from lakekit.streaming.results import ResultColumns, from_us, to_iso

if TYPE_CHECKING:
    import pyarrow as pa

    from lakekit.interfaces.catalog import JSONValue
    from lakekit.streaming.aggregations import Aggregation
    from lakekit.streaming.windows import Session, _FixedWindows

__all__ = ["FixedWindowOperator", "LateRow", "Operator", "SessionOperator"]

_WINDOW = "__window"
_MINI = "__mini"


@dataclass(frozen=True, slots=True)
class LateRow:
    row: int
    """Index of the record in its batch."""
    event_time: int
    reason: str


class _ListItems:
    """Group ``i``'s values of an Arrow ``list`` hash aggregation, as an Array."""

    def __init__(self, array: Any) -> None:
        self._array = array

    def __getitem__(self, index: int) -> Any:
        return self._array[index].values


class Operator(ABC):
    """Open windows of one job and their aggregation states."""

    def __init__(self, aggregations: Sequence[Aggregation], *, keyed: bool, track_updates: bool):
        self.aggregations = list(aggregations)
        self.keyed = keyed
        self.track_updates = track_updates
        specs: list[tuple[str | None, str]] = []
        self._plan: list[tuple[Aggregation, list[int]]] = []
        for aggregation in self.aggregations:
            indexes = []
            for spec in aggregation.partials():
                if spec not in specs:
                    specs.append(spec)
                indexes.append(specs.index(spec))
            self._plan.append((aggregation, indexes))
        self._specs = specs

    # -- vectorised grouping ------------------------------------------------------------------
    def _aggregate(
        self, table: pa.Table, keys: list[str], extra: Sequence[tuple[str, str]] = ()
    ) -> tuple[pa.Table, list[Any]]:
        """Group ``table`` by ``keys`` computing every partial (then ``extra``); return the
        grouped table and per partial its per-group values (a list, or Arrays for ``list``)."""
        import pyarrow as pa

        specs = [*self._specs, *extra]
        arrow_specs: list[Any] = [([], fn) if col is None else (col, fn) for col, fn in specs]
        try:
            grouped = table.group_by(keys, use_threads=False).aggregate(arrow_specs)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
            raise InvalidInputError(f"cannot aggregate this batch's values: {exc}") from exc
        columns: list[Any] = []
        for col, fn in specs:
            name = fn if col is None else f"{col}_{fn}"
            values = grouped.column(name)
            if fn == "list":
                columns.append(_ListItems(values.combine_chunks()))
            else:
                columns.append(values.to_pylist())
        return grouped, columns

    def _fold(self, targets: Sequence[list[Any]], columns: list[Any]) -> None:
        """Fold group ``i``'s partials (``columns[j][i]``) into ``targets[i]`` (its window's
        states, one per aggregation), one :meth:`Aggregation.fold_groups` call per aggregation."""
        for position, (aggregation, indexes) in enumerate(self._plan):
            folded = aggregation.fold_groups(
                [states[position] for states in targets], [columns[j] for j in indexes]
            )
            if len(folded) != len(targets):
                raise InvalidInputError(
                    f"{aggregation!r}.fold_groups returned {len(folded)} states for "
                    f"{len(targets)} groups"
                )
            for states, state in zip(targets, folded, strict=True):
                states[position] = state

    def _columns(
        self,
        keys: list[str | None],
        starts: list[int],
        ends: list[int],
        windows: Sequence[list[Any]],
        *,
        final: bool,
    ) -> ResultColumns:
        """The results of ``windows`` (their states), computed aggregation by aggregation."""
        values = [
            list(map(aggregation.result, [states[position] for states in windows]))
            for position, aggregation in enumerate(self.aggregations)
        ]
        return ResultColumns(keys, starts, ends, values, final)

    def _encode(self, states: list[Any]) -> list[JSONValue]:
        return [a.encode(s) for a, s in zip(self.aggregations, states, strict=True)]

    def _decode(self, data: Any) -> list[Any]:
        if not isinstance(data, list) or len(data) != len(self.aggregations):
            raise InvalidInputError("checkpoint window state does not match the aggregations")
        return [a.decode(d) for a, d in zip(self.aggregations, data, strict=True)]

    # -- the operator's interface ---------------------------------------------------------------
    @abstractmethod
    def process(self, table: pa.Table, watermark: int | None) -> list[LateRow]:
        """Fold the rows of a decoded batch into the open windows; return the late rows (whose
        windows had closed at ``watermark``, the watermark before this batch)."""

    @abstractmethod
    def close(self, watermark: int) -> ResultColumns:
        """Remove and return (final) every window whose end is at or before ``watermark``, in
        a deterministic order (fixed windows by start, then key; sessions by key, then start)."""

    @abstractmethod
    def updates(self) -> ResultColumns:
        """Non-final results of the open windows changed since the last call."""

    @property
    @abstractmethod
    def open_windows(self) -> int:
        """How many (key, window) states are open."""

    @abstractmethod
    def encode(self) -> JSONValue:
        """The open windows as JSON (for the checkpoint)."""

    @abstractmethod
    def restore(self, data: Any) -> None:
        """Replace the open windows by a checkpoint's.

        Raises:
            InvalidInputError: malformed data.
        """


class FixedWindowOperator(Operator):
    """Tumbling and hopping windows: state per window start, then per key."""

    def __init__(
        self,
        spec: _FixedWindows,
        aggregations: Sequence[Aggregation],
        *,
        keyed: bool,
        track_updates: bool,
    ) -> None:
        super().__init__(aggregations, keyed=keyed, track_updates=track_updates)
        self.spec = spec
        self._windows: dict[int, dict[str | None, list[Any]]] = {}
        self._dirty: set[tuple[int, str | None]] = set()

    @property
    def open_windows(self) -> int:
        return sum(len(bucket) for bucket in self._windows.values())

    def process(self, table: pa.Table, watermark: int | None) -> list[LateRow]:
        if table.num_rows == 0:
            return []
        times = table.column(TIME).combine_chunks()
        rows, starts, late_mask = self.spec.assign(times, watermark)
        late: list[LateRow] = []
        if late_mask is not None:
            late = self._late_rows(table.filter(late_mask), watermark)
        assigned = table if rows is None else table.take(rows)
        assigned = assigned.append_column(_WINDOW, starts)
        if assigned.num_rows == 0:
            return late
        group_keys = [KEY, _WINDOW] if self.keyed else [_WINDOW]
        grouped, columns = self._aggregate(assigned, group_keys)
        window_starts: list[int] = _pylist(grouped.column(_WINDOW))
        keys: list[Any] = (
            _pylist(grouped.column(KEY)) if self.keyed else [None] * len(window_starts)
        )
        windows = self._windows
        width = len(self.aggregations)
        targets: list[list[Any]] = []
        for start, key in zip(window_starts, keys, strict=True):
            bucket = windows.get(start)
            if bucket is None:
                bucket = windows[start] = {}
            states = bucket.get(key)
            if states is None:
                states = bucket[key] = [None] * width
            targets.append(states)
        self._fold(targets, columns)
        if self.track_updates:
            self._dirty.update(zip(window_starts, keys, strict=True))
        return late

    def _late_rows(self, rows: pa.Table, watermark: int | None) -> list[LateRow]:
        late = []
        at = to_iso(from_us(watermark or 0))
        for row, t in zip(_pylist(rows.column(ROW)), _pylist(rows.column(TIME)), strict=True):
            start = self.spec.window_start(t)
            end = start + self.spec.size_us
            reason = (
                f"late: window {to_iso(from_us(start))}..{to_iso(from_us(end))} had closed "
                f"(watermark {at})"
            )
            late.append(LateRow(row, t, reason))
        return late

    def close(self, watermark: int) -> ResultColumns:
        size = self.spec.size_us
        keys: list[str | None] = []
        starts: list[int] = []
        windows: list[list[Any]] = []
        for start in sorted(self._windows):
            if start + size > watermark:
                break
            bucket = self._windows.pop(start)
            closing = sorted(bucket, key=_sort_key)
            keys += closing
            starts += [start] * len(closing)
            windows += [bucket[key] for key in closing]
            if self._dirty:
                self._dirty.difference_update((start, key) for key in closing)
        return self._columns(keys, starts, [s + size for s in starts], windows, final=True)

    def updates(self) -> ResultColumns:
        size = self.spec.size_us
        keys: list[str | None] = []
        starts: list[int] = []
        windows: list[list[Any]] = []
        for start, key in sorted(self._dirty, key=lambda item: (item[0], _sort_key(item[1]))):
            states = self._windows.get(start, {}).get(key)
            if states is not None:
                keys.append(key)
                starts.append(start)
                windows.append(states)
        self._dirty.clear()
        return self._columns(keys, starts, [s + size for s in starts], windows, final=False)

    def encode(self) -> JSONValue:
        return [
            [start, key, self._encode(states)]
            for start in sorted(self._windows)
            for key, states in sorted(self._windows[start].items(), key=lambda i: _sort_key(i[0]))
        ]

    def restore(self, data: Any) -> None:
        if not isinstance(data, list):
            raise InvalidInputError("checkpoint windows must be a list")
        windows: dict[int, dict[str | None, list[Any]]] = {}
        for item in data:
            if not isinstance(item, list) or len(item) != 3 or not isinstance(item[0], int):
                raise InvalidInputError(f"malformed checkpoint window {item!r}")
            start, key, states = item
            windows.setdefault(start, {})[key] = self._decode(states)
        self._windows = windows
        self._dirty.clear()


class SessionOperator(Operator):
    """Session windows: per key, a list of ``[first, last, states]`` sorted by first event."""

    def __init__(
        self,
        spec: Session,
        aggregations: Sequence[Aggregation],
        *,
        keyed: bool,
        track_updates: bool,
    ) -> None:
        super().__init__(aggregations, keyed=keyed, track_updates=track_updates)
        self.gap = spec.gap_us
        self._sessions: dict[str | None, list[list[Any]]] = {}
        self._dirty: set[str | None] = set()
        self._min_end: int | None = None
        """Lower bound of every open session's end (None: unknown, recompute)."""

    @property
    def open_windows(self) -> int:
        return sum(len(sessions) for sessions in self._sessions.values())

    def process(self, table: pa.Table, watermark: int | None) -> list[LateRow]:
        import pyarrow as pa
        import pyarrow.compute as pc

        if table.num_rows == 0:
            return []
        order: list[Any] = [(TIME, "ascending")]
        if self.keyed:
            order.insert(0, (KEY, "ascending"))
        table = table.take(pc.sort_indices(table, sort_keys=order))
        times: Any = table.column(TIME).combine_chunks()
        gaps_ok = pc.less(pc.subtract(times[1:], times[:-1]), pa.scalar(self.gap, pa.int64()))
        if self.keyed:
            keys: Any = table.column(KEY).combine_chunks()
            gaps_ok = pc.and_(gaps_ok, pc.equal(keys[1:], keys[:-1]))
        starts_new: Any = pa.concat_arrays([pa.array([True]), pc.invert(gaps_ok)])
        mini = pc.subtract(pc.cumulative_sum(starts_new.cast(pa.int64())), 1)
        table = table.append_column(_MINI, mini)
        group_keys = [_MINI, KEY] if self.keyed else [_MINI]
        grouped, columns = self._aggregate(table, group_keys, [(TIME, "min"), (TIME, "max")])
        grouped_order: list[int] = _pylist(grouped.column(_MINI))
        keys_list: list[Any] = (
            _pylist(grouped.column(KEY)) if self.keyed else [None] * len(grouped_order)
        )
        firsts, lasts = columns[-2], columns[-1]
        folded: list[list[Any]] = [[None] * len(self.aggregations) for _ in grouped_order]
        self._fold(folded, columns)
        late_minis: dict[int, int] = {}
        for index in sorted(range(len(grouped_order)), key=lambda i: grouped_order[i]):
            key = keys_list[index]
            first, last = firsts[index], lasts[index]
            sessions = self._sessions.setdefault(key, [])
            overlapping = [
                s for s in sessions if s[0] < last + self.gap and first < s[1] + self.gap
            ]
            if not overlapping and watermark is not None and last + self.gap <= watermark:
                late_minis[grouped_order[index]] = last + self.gap
                if not sessions:
                    del self._sessions[key]
                continue
            states = folded[index]
            for session in overlapping:
                states = [
                    a.merge(old, new)
                    for a, old, new in zip(self.aggregations, session[2], states, strict=True)
                ]
                first, last = min(first, session[0]), max(last, session[1])
                sessions.remove(session)
            sessions.append([first, last, states])
            sessions.sort(key=lambda s: s[0])
            if self._min_end is not None:
                self._min_end = min(self._min_end, last + self.gap)
            if self.track_updates:
                self._dirty.add(key)
        if not late_minis:
            return []
        at = to_iso(from_us(watermark or 0))
        late_table = table.filter(pc.is_in(table.column(_MINI), pa.array(list(late_minis))))
        return [
            LateRow(
                row,
                t,
                f"late: its session would end at {to_iso(from_us(late_minis[m]))}, not after the "
                f"watermark {at}",
            )
            for row, t, m in zip(
                _pylist(late_table.column(ROW)),
                _pylist(late_table.column(TIME)),
                _pylist(late_table.column(_MINI)),
                strict=True,
            )
        ]

    def close(self, watermark: int) -> ResultColumns:
        keys: list[str | None] = []
        starts: list[int] = []
        ends: list[int] = []
        windows: list[list[Any]] = []
        if self._min_end is not None and watermark < self._min_end:
            return self._columns(keys, starts, ends, windows, final=True)
        min_end: int | None = None
        for key in sorted(self._sessions, key=_sort_key):
            sessions = self._sessions[key]
            kept = []
            for first, last, states in sessions:
                end = last + self.gap
                if end <= watermark:
                    keys.append(key)
                    starts.append(first)
                    ends.append(end)
                    windows.append(states)
                else:
                    kept.append([first, last, states])
                    min_end = end if min_end is None else min(min_end, end)
            if kept:
                self._sessions[key] = kept
            else:
                del self._sessions[key]
        self._min_end = min_end
        return self._columns(keys, starts, ends, windows, final=True)

    def updates(self) -> ResultColumns:
        keys: list[str | None] = []
        starts: list[int] = []
        ends: list[int] = []
        windows: list[list[Any]] = []
        for key in sorted(self._dirty, key=_sort_key):
            for first, last, states in self._sessions.get(key, []):
                keys.append(key)
                starts.append(first)
                ends.append(last + self.gap)
                windows.append(states)
        self._dirty.clear()
        return self._columns(keys, starts, ends, windows, final=False)

    def encode(self) -> JSONValue:
        return [
            [key, first, last, self._encode(states)]
            for key in sorted(self._sessions, key=_sort_key)
            for first, last, states in self._sessions[key]
        ]

    def restore(self, data: Any) -> None:
        if not isinstance(data, list):
            raise InvalidInputError("checkpoint sessions must be a list")
        sessions: dict[str | None, list[list[Any]]] = {}
        for item in data:
            if (
                not isinstance(item, list)
                or len(item) != 4
                or not isinstance(item[1], int)
                or not isinstance(item[2], int)
            ):
                raise InvalidInputError(f"malformed checkpoint session {item!r}")
            key, first, last, states = item
            sessions.setdefault(key, []).append([first, last, self._decode(states)])
        self._sessions = sessions
        self._min_end = None
        self._dirty.clear()


def _pylist(column: Any) -> list[Any]:
    """A column's values as a Python list (typed loosely: the stubs say ``Any | None``)."""
    return cast("list[Any]", column.to_pylist())


def _sort_key(key: str | None) -> str:
    return "" if key is None else key
