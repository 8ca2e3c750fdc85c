"""Mergeable aggregations for windowed jobs: built-ins and the protocol for your own.

Every aggregation keeps a *state* per (key, window) that can be built from part of the window's
records and **merged** with another state of the same window. That is what lets a job fold each
poll batch into its windows without keeping records, merge session windows, and checkpoint the
state of open windows.

Built-ins (values come from the record field ``column``; records whose field is missing or null
are ignored by that aggregation, as in SQL):

=========================== ======================= ===================================== ========
aggregation                 state                   result                                type
=========================== ======================= ===================================== ========
``Count()``                 records                 number of records in the window       int64
``Count("f")``              non-null values         number of records with ``f`` set      int64
``Sum("f")``                running sum             sum of ``f`` (null if none)           float64
``Min("f")`` / ``Max("f")`` extreme value           smallest / largest ``f``              *
``Mean("f")``               ``(sum, count)``        average of ``f`` (null if none)       float64
``ApproxDistinct("f")``     HyperLogLog sketch      estimated distinct values of ``f``    int64
=========================== ======================= ===================================== ========

``Sum``, ``Mean``, and ``Min``/``Max`` of numbers read every JSON number as a float64 (JSON has
one number type). ``Min``/``Max`` also take strings (compared as text; values that look like
timestamps are compared as their ISO-8601 text) and booleans.

``ApproxDistinct`` uses the HyperLogLog sketch of Apache DataSketches (the ``streaming`` extra:
``pip install "lakekit[streaming]"``): with the default ``lg_k=12`` (4,096 buckets) the relative
standard error is about 1.6%, i.e. 99.7% of estimates are within ~5% of the truth; sketches of
two windows merge without loss of accuracy (session merges). Up to a few hundred distinct
values the sketch is exact.

Custom aggregations subclass :class:`Aggregation` and implement ``init``, ``add``, ``merge`` and
``result`` (plus ``encode``/``decode`` when the state is not JSON). ``add`` receives the
non-null values of ``column`` of one window and one poll batch as a ``pyarrow.Array`` (not one
record at a time)::

    class Spread(Aggregation):
        result_type = pa.float64()
        def init(self): return None
        def add(self, state, values):
            low, high = pc.min_max(values).values()
            lo, hi = low.as_py(), high.as_py()
            return (lo, hi) if state is None else (min(state[0], lo), max(state[1], hi))
        def merge(self, a, b):
            return b if a is None else a if b is None else (min(a[0], b[0]), max(a[1], b[1]))
        def result(self, state): return None if state is None else state[1] - state[0]
        def encode(self, state): return None if state is None else list(state)
        def decode(self, data): return None if data is None else tuple(data)

    aggregate={"spread": Spread("temp")}
"""

from __future__ import annotations

import base64
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from lakekit.errors import ConfigurationError, InvalidInputError, MissingDependencyError

if TYPE_CHECKING:
    import pyarrow as pa

    from lakekit.interfaces.catalog import JSONValue

__all__ = [
    "Aggregation",
    "ApproxDistinct",
    "Count",
    "Max",
    "Mean",
    "Min",
    "Sum",
    "result_type",
]

Partial = tuple[str | None, str]
"""One Arrow hash aggregation a state is built from: (column or None for all rows, function)."""

_drain: Callable[[Iterator[Any]], None] = deque[Any](maxlen=0).extend
"""Run an iterator to its end in C (``_drain(map(f, xs))`` calls ``f`` on each of ``xs``)."""
_PLAIN_TYPES = frozenset({int, float, str})
"""Python types of values a HyperLogLog sketch takes as they are (bool is a subclass of int
but is hashed as 0/1 by :func:`_hashable`, so it is not listed)."""


class Aggregation(ABC):
    """A mergeable aggregation over the values of one record field.

    Implement :meth:`init`, :meth:`add`, :meth:`merge` and :meth:`result`; override
    :meth:`encode`/:meth:`decode` when the state is not made of JSON values (the state of open
    windows is checkpointed as JSON). ``merge`` must be associative and must not depend on the
    order of records: the job folds each poll batch separately and merges session windows.

    Attributes:
        column: the record field whose values are aggregated.
        result_type: the Arrow type of the result column in a table sink (None: inferred from
            the first results).
    """

    numeric: ClassVar[bool] = False
    """True when the values must be numbers (they are then read as float64)."""
    result_type: Any = None

    def __init__(self, column: str | None) -> None:
        if column is not None and (not isinstance(column, str) or not column):
            raise ConfigurationError(
                f"{type(self).__name__} needs a record field name, got {column!r}"
            )
        self.column = column

    # -- the protocol -----------------------------------------------------------------------
    @abstractmethod
    def init(self) -> Any:
        """The state of a window without values."""

    @abstractmethod
    def add(self, state: Any, values: pa.Array[Any]) -> Any:
        """``state`` with ``values`` (non-null values of one window from one batch) added."""

    @abstractmethod
    def merge(self, left: Any, right: Any) -> Any:
        """One state holding both states' values."""

    @abstractmethod
    def result(self, state: Any) -> Any:
        """The window's result: a JSON-compatible value (None for "no value")."""

    def encode(self, state: Any) -> JSONValue:
        """The state as JSON for the checkpoint (default: the state itself)."""
        return state  # type: ignore[no-any-return]

    def decode(self, data: JSONValue) -> Any:
        """The inverse of :meth:`encode`."""
        return data

    def describe(self) -> str:
        """A stable text identifying this aggregation (part of the checkpoint fingerprint)."""
        return f"{type(self).__module__}.{type(self).__qualname__}({self.column!r})"

    def __repr__(self) -> str:
        name = type(self).__name__
        return f"{name}({self.column!r})" if self.column else f"{name}()"

    # -- how the job feeds it (vectorised) ----------------------------------------------------
    def partials(self) -> tuple[Partial, ...]:
        """The Arrow hash aggregations (per key and window) this state is folded from.

        Default: the list of the column's values, handed to :meth:`add`.
        """
        if self.column is None:
            raise ConfigurationError(
                f"{type(self).__name__}: a custom aggregation needs a column (the record field "
                "whose values add() receives)"
            )
        return ((self.column, "list"),)

    def fold(self, state: Any, parts: Sequence[Any]) -> Any:
        """``state`` (None for a new window) with one group's partial aggregates folded in."""
        values = parts[0].drop_null()
        return self.add(self.init() if state is None else state, values)

    def fold_groups(self, states: Sequence[Any], parts: Sequence[Sequence[Any]]) -> list[Any]:
        """:meth:`fold` for every (key, window) group of one batch at once.

        ``states[i]`` is group ``i``'s state (None for a new window) and ``parts[j][i]`` its
        value of partial ``j`` (in :meth:`partials` order); returns the new states, in order.
        The job calls this once per batch and aggregation, so Python runs once per group
        without a method call per group where an aggregation overrides it (the built-ins do,
        with the same results as :meth:`fold`). Default: :meth:`fold` on each group.
        """
        return [self.fold(state, [part[i] for part in parts]) for i, state in enumerate(states)]


class Count(Aggregation):
    """Records in the window (``Count()``), or records whose ``column`` is set."""

    def __init__(self, column: str | None = None) -> None:
        super().__init__(column)

    def partials(self) -> tuple[Partial, ...]:
        return ((None, "count_all"),) if self.column is None else ((self.column, "count"),)

    def fold(self, state: Any, parts: Sequence[Any]) -> Any:
        return (state or 0) + int(parts[0])

    def fold_groups(self, states: Sequence[Any], parts: Sequence[Sequence[Any]]) -> list[Any]:
        return [(state or 0) + int(count) for state, count in zip(states, parts[0], strict=True)]

    def init(self) -> int:
        return 0

    def add(self, state: Any, values: pa.Array[Any]) -> int:
        counted = len(values) if self.column is None else len(values) - values.null_count
        return int(state or 0) + counted

    def merge(self, left: Any, right: Any) -> int:
        return int(left or 0) + int(right or 0)

    def result(self, state: Any) -> int:
        return int(state or 0)


class Sum(Aggregation):
    """Sum of a numeric field (float64; null when the window has no value)."""

    numeric = True

    def __init__(self, column: str) -> None:
        super().__init__(column)

    def partials(self) -> tuple[Partial, ...]:
        return ((self.column, "sum"),)

    def fold(self, state: Any, parts: Sequence[Any]) -> Any:
        return self.merge(state, parts[0])

    def fold_groups(self, states: Sequence[Any], parts: Sequence[Sequence[Any]]) -> list[Any]:
        # merge() inlined; a sum partial is a float (float64 column) or None
        return [
            (None if total is None else float(total))
            if state is None
            else (float(state) if total is None else float(state) + total)
            for state, total in zip(states, parts[0], strict=True)
        ]

    def init(self) -> None:
        return None

    def add(self, state: Any, values: pa.Array[Any]) -> Any:
        import pyarrow.compute as pc

        return self.merge(state, pc.sum(values).as_py())

    def merge(self, left: Any, right: Any) -> Any:
        if left is None:
            return None if right is None else float(right)
        return float(left) if right is None else float(left) + float(right)

    def result(self, state: Any) -> Any:
        return state


class _Extreme(Aggregation):
    function: ClassVar[str]

    def __init__(self, column: str) -> None:
        super().__init__(column)

    def partials(self) -> tuple[Partial, ...]:
        return ((self.column, self.function),)

    def fold(self, state: Any, parts: Sequence[Any]) -> Any:
        return self.merge(state, parts[0])

    def fold_groups(self, states: Sequence[Any], parts: Sequence[Sequence[Any]]) -> list[Any]:
        # merge() inlined: min(a, b) is a unless b < a, max(a, b) is a unless b > a
        pairs = zip(states, parts[0], strict=True)
        if self.function == "min":
            return [
                value if state is None else state if value is None or not value < state else value
                for state, value in pairs
            ]
        return [
            value if state is None else state if value is None or not value > state else value
            for state, value in pairs
        ]

    def init(self) -> None:
        return None

    def add(self, state: Any, values: pa.Array[Any]) -> Any:
        import pyarrow.compute as pc

        return self.merge(state, pc.min_max(values)[self.function].as_py())

    def merge(self, left: Any, right: Any) -> Any:
        if left is None or right is None:
            return right if left is None else left
        pick = min if self.function == "min" else max
        return pick(left, right)

    def result(self, state: Any) -> Any:
        return state


class Min(_Extreme):
    """Smallest value of a field (numbers as float64, strings as text, booleans)."""

    function = "min"


class Max(_Extreme):
    """Largest value of a field (numbers as float64, strings as text, booleans)."""

    function = "max"


class Mean(Aggregation):
    """Average of a numeric field, kept as ``(sum, count)`` so windows merge exactly.

    The state is a tuple (a list in the checkpoint's JSON): a window's tuple of two numbers is
    not tracked by Python's garbage collector once it survives a collection, so the states of
    many open windows do not make every full collection longer.
    """

    numeric = True

    def __init__(self, column: str) -> None:
        super().__init__(column)

    def partials(self) -> tuple[Partial, ...]:
        return ((self.column, "sum"), (self.column, "count"))

    def fold(self, state: Any, parts: Sequence[Any]) -> Any:
        total, count = parts
        return self.merge(state, (float(total or 0.0), int(count)))

    def fold_groups(self, states: Sequence[Any], parts: Sequence[Sequence[Any]]) -> list[Any]:
        # merge() inlined; totals are floats (float64 column) or None, counts ints
        totals, counts = parts
        return [
            (float(total or 0.0), int(count))
            if state is None
            else (float(state[0]) + (total or 0.0), int(state[1]) + int(count))
            for state, total, count in zip(states, totals, counts, strict=True)
        ]

    def init(self) -> tuple[float, int]:
        return (0.0, 0)

    def add(self, state: Any, values: pa.Array[Any]) -> Any:
        import pyarrow.compute as pc

        total = pc.sum(values).as_py()
        return self.merge(state, (float(total or 0.0), len(values) - values.null_count))

    def merge(self, left: Any, right: Any) -> Any:
        if left is None:
            return right
        if right is None:
            return left
        return (float(left[0]) + float(right[0]), int(left[1]) + int(right[1]))

    def result(self, state: Any) -> float | None:
        if state is None or not state[1]:
            return None
        return float(state[0]) / int(state[1])

    def encode(self, state: Any) -> JSONValue:
        return None if state is None else [float(state[0]), int(state[1])]

    def decode(self, data: JSONValue) -> Any:
        if data is None:
            return None
        if isinstance(data, list) and len(data) == 2:
            total, count = data
            if isinstance(total, int | float) and isinstance(count, int | float):
                return (float(total), int(count))
        raise InvalidInputError(f"a Mean checkpoint state must be [sum, count], got {data!r}")


class ApproxDistinct(Aggregation):
    """Estimated number of distinct values of a field (HyperLogLog, Apache DataSketches).

    Args:
        column: the field.
        lg_k: log2 of the number of buckets, 4..21; the relative standard error is about
            ``1.04 / sqrt(2 ** lg_k)`` (12: ~1.6%; 14: ~0.8%) and the state of a window at most
            ``2 ** lg_k`` bytes (plus a small header).

    Raises:
        MissingDependencyError: the ``streaming`` extra (datasketches) is not installed.
        ConfigurationError: ``lg_k`` out of range.
    """

    def __init__(self, column: str, *, lg_k: int = 12) -> None:
        super().__init__(column)
        if isinstance(lg_k, bool) or not isinstance(lg_k, int) or not 4 <= lg_k <= 21:
            raise ConfigurationError(f"ApproxDistinct lg_k must be an int in 4..21, got {lg_k!r}")
        self.lg_k = lg_k
        self._lib = _datasketches()

    def describe(self) -> str:
        return f"ApproxDistinct({self.column!r}, lg_k={self.lg_k})"

    def partials(self) -> tuple[Partial, ...]:
        return ((self.column, "distinct"),)

    def fold(self, state: Any, parts: Sequence[Any]) -> Any:
        sketch = self.init() if state is None else state
        values = parts[0]
        if not values:
            return sketch
        if set(map(type, values)) <= _PLAIN_TYPES:  # the usual case: no None, bool or JSON
            _drain(map(sketch.update, values))  # the same updates, without a loop in Python
            return sketch
        update = sketch.update
        for value in values:
            if value is not None:
                update(_hashable(value))
        return sketch

    def init(self) -> Any:
        lib = self._lib
        return lib.hll_sketch(self.lg_k, lib.tgt_hll_type.HLL_8)

    def add(self, state: Any, values: pa.Array[Any]) -> Any:
        return self.fold(state, [values.to_pylist()])

    def merge(self, left: Any, right: Any) -> Any:
        if left is None or right is None:
            return right if left is None else left
        union = self._lib.hll_union(self.lg_k)
        union.update(left)
        union.update(right)
        return union.get_result(self._lib.tgt_hll_type.HLL_8)

    def result(self, state: Any) -> int:
        return 0 if state is None else round(state.get_estimate())

    def encode(self, state: Any) -> JSONValue:
        if state is None:
            return None
        return base64.b64encode(state.serialize_compact()).decode("ascii")

    def decode(self, data: JSONValue) -> Any:
        if data is None:
            return None
        if not isinstance(data, str):
            raise ConfigurationError("an ApproxDistinct checkpoint state must be base64 text")
        return self._lib.hll_sketch.deserialize(base64.b64decode(data))


def result_type(aggregation: Aggregation) -> pa.DataType | None:
    """The Arrow type of an aggregation's result column, or None to infer it."""
    import pyarrow as pa

    if isinstance(aggregation, Count | ApproxDistinct):
        return pa.int64()
    if isinstance(aggregation, Sum | Mean):
        return pa.float64()
    declared = aggregation.result_type
    if declared is not None and not isinstance(declared, pa.DataType):
        raise ConfigurationError(
            f"{aggregation!r}.result_type must be a pyarrow DataType or None, got {declared!r}"
        )
    return declared


def _hashable(value: Any) -> int | float | str:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float | str):
        return value
    import json

    return json.dumps(value, sort_keys=True, default=str)


def _datasketches() -> Any:
    try:
        import datasketches
    except ImportError as exc:
        raise MissingDependencyError("ApproxDistinct", "streaming", "datasketches") from exc
    return datasketches
