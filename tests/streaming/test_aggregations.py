"""Aggregations: each built-in folds partials, merges and round-trips its checkpoint state;
ApproxDistinct stays within its documented error bound; custom aggregations plug in."""

from __future__ import annotations

import json
import random
from typing import Any

import pyarrow as pa
import pytest

from conftest import Spread
from lakekit.errors import ConfigurationError, InvalidInputError
from lakekit.streaming import Aggregation, ApproxDistinct, Count, Max, Mean, Min, Sum
from lakekit.streaming.aggregations import result_type


def _fold_batches(aggregation: Aggregation, batches: list[list[Any]]) -> Any:
    """Fold each batch through the Arrow partials the job computes, like one window would."""
    state = None
    for values in batches:
        table = pa.table({"g": [0] * len(values), "f": pa.array(values)})
        specs = [([], fn) if col is None else ("f", fn) for col, fn in aggregation.partials()]
        grouped = table.group_by("g").aggregate(specs)
        parts = []
        for col, fn in aggregation.partials():
            column = grouped.column(fn if col is None else f"f_{fn}")
            parts.append(column.combine_chunks()[0].values if fn == "list" else column[0].as_py())
        state = aggregation.fold(state, parts)
    return state


def _roundtrip(aggregation: Aggregation, state: Any) -> Any:
    return aggregation.decode(json.loads(json.dumps(aggregation.encode(state))))


@pytest.mark.parametrize(
    ("aggregation", "expected"),
    [
        (Count(), 6),
        (Count("f"), 5),
        (Sum("f"), 16.5),
        (Min("f"), -2.0),
        (Max("f"), 9.5),
        (Mean("f"), 3.3),
    ],
)
def test_builtins_fold_batches_and_merge_to_the_exact_result(
    aggregation: Aggregation, expected: float
) -> None:
    batches = [[1.0, None, 9.5], [-2.0], [4.0, 4.0]]
    state = _fold_batches(aggregation, batches)
    assert aggregation.result(state) == pytest.approx(expected)
    # two windows' states merge into the state of their union (session merge)
    left = _fold_batches(aggregation, batches[:1])
    right = _fold_batches(aggregation, batches[1:])
    assert aggregation.result(aggregation.merge(left, right)) == pytest.approx(expected)
    assert aggregation.result(aggregation.merge(right, left)) == pytest.approx(expected)
    assert aggregation.result(_roundtrip(aggregation, state)) == pytest.approx(expected)
    # add() (the non-vectorised entry point) agrees; Count() counts rows, others values
    added = aggregation.init()
    for values in batches:
        array = pa.array(values)
        added = aggregation.add(added, array if aggregation.column is None else array.drop_null())
    assert aggregation.result(added) == pytest.approx(expected)


def test_empty_windows_give_null_sums_means_and_extremes_but_zero_counts() -> None:
    for aggregation in (Sum("f"), Mean("f"), Min("f"), Max("f")):
        assert aggregation.result(_fold_batches(aggregation, [[None, None]])) is None
    assert Count("f").result(_fold_batches(Count("f"), [[None]])) == 0
    assert ApproxDistinct("f").result(None) == 0


def test_min_and_max_compare_strings_as_text() -> None:
    assert Max("f").result(_fold_batches(Max("f"), [["b", "a"], ["c"]])) == "c"
    assert Min("f").result(_fold_batches(Min("f"), [["b", "a"], ["c"]])) == "a"


@pytest.mark.parametrize("n", [10, 1_000, 20_000, 200_000])
def test_approx_distinct_is_within_its_error_bound(n: int) -> None:
    """lg_k=12: relative standard error ~1.04/64 = 1.6%; 5% is beyond 3 standard errors."""
    rng = random.Random(n)
    values = [rng.getrandbits(48) for _ in range(n)]
    repeated = values + values[: n // 2]  # duplicates must not count
    rng.shuffle(repeated)
    aggregation = ApproxDistinct("f")
    batches = [repeated[i : i + 7_000] for i in range(0, len(repeated), 7_000)]
    estimate = aggregation.result(_fold_batches(aggregation, batches))
    if n <= 100:
        assert estimate == n  # small sets are exact
    assert abs(estimate - n) / n < 0.05, (estimate, n)


def test_approx_distinct_sketches_merge_like_the_union_and_round_trip() -> None:
    aggregation = ApproxDistinct("user", lg_k=14)
    a = _fold_batches(aggregation, [[f"u{i}" for i in range(0, 30_000)]])
    b = _fold_batches(aggregation, [[f"u{i}" for i in range(20_000, 50_000)]])
    merged = aggregation.merge(a, b)
    assert abs(aggregation.result(merged) - 50_000) / 50_000 < 0.03  # 0.8% RSE at lg_k=14
    restored = _roundtrip(aggregation, merged)
    assert aggregation.result(restored) == aggregation.result(merged)
    assert isinstance(aggregation.encode(merged), str)  # base64 in the checkpoint JSON


def test_approx_distinct_checks_lg_k() -> None:
    with pytest.raises(ConfigurationError, match="lg_k"):
        ApproxDistinct("user", lg_k=30)


def test_custom_aggregations_receive_each_batch_as_an_arrow_array() -> None:
    spread = Spread("temp")
    state = _fold_batches(spread, [[3.0, None, 8.0], [1.0]])
    assert spread.result(state) == 7.0
    assert spread.result(_roundtrip(spread, state)) == 7.0
    assert result_type(spread) == pa.float64()
    assert repr(spread) == "Spread('temp')"


def test_a_custom_aggregation_needs_a_column() -> None:
    with pytest.raises(ConfigurationError, match="needs a column"):
        Spread(None).partials()
    with pytest.raises(ConfigurationError, match="field name"):
        Sum("")


def test_result_types_of_the_builtins() -> None:
    assert result_type(Count()) == pa.int64()
    assert result_type(ApproxDistinct("u")) == pa.int64()
    assert result_type(Mean("t")) == pa.float64()
    assert result_type(Sum("t")) == pa.float64()
    assert result_type(Max("t")) is None  # numbers, text or booleans: inferred


def _group_partials(aggregation: Aggregation, groups: list[list[Any]]) -> list[Any]:
    """Per partial, every group's value, as the job hands them to ``fold_groups``."""
    table = pa.table(
        {
            "g": [g for g, values in enumerate(groups) for _ in values],
            "f": pa.array([v for values in groups for v in values]),
        }
    )
    specs = [([], fn) if col is None else ("f", fn) for col, fn in aggregation.partials()]
    grouped = table.group_by("g").aggregate(specs).sort_by("g")
    columns = []
    for col, fn in aggregation.partials():
        column = grouped.column(fn if col is None else f"f_{fn}").combine_chunks()
        if fn == "list":
            columns.append([column[i].values for i in range(len(groups))])
        else:
            columns.append(column.to_pylist())
    return columns


@pytest.mark.parametrize(
    ("aggregation", "groups"),
    [
        (Count(), [[1.0], [None, 2.0], [3.0, 3.0, None]]),
        (Count("f"), [[1.0], [None, 2.0], [None]]),
        (Sum("f"), [[1.5], [None, 2.0], [None], [-4.0, 4.0]]),
        (Min("f"), [[1.5], [None, -2.0], [None], [7.0, 7.0]]),
        (Max("f"), [[1.5], [None, -2.0], [None], [7.0, 9.0]]),
        (Min("f"), [["b"], ["a", None], [None]]),
        (Max("f"), [["b"], ["a", "c"], [None]]),
        (Mean("f"), [[1.5], [None, 2.0], [None], [3.0, 5.0]]),
        (ApproxDistinct("f"), [[1, 2, 2], [3, None], [None]]),
        (ApproxDistinct("f"), [[True, False], [True]]),
        (ApproxDistinct("f"), [["x", "y"], ["x"]]),
        (Spread("f"), [[1.0, 5.0], [None, 2.0], [None]]),
    ],
)
def test_folding_a_batchs_groups_at_once_equals_folding_each(
    aggregation: Aggregation, groups: list[list[Any]]
) -> None:
    """``fold_groups`` (one call per batch, what the job uses) gives the states ``fold`` gives
    group by group, for new windows (None) and windows that already hold a state."""
    parts = _group_partials(aggregation, groups)

    def one_by_one(states: list[Any]) -> list[Any]:
        return [
            aggregation.fold(state, [part[i] for part in parts]) for i, state in enumerate(states)
        ]

    def encoded(states: list[Any]) -> list[Any]:
        return [aggregation.encode(state) for state in states]

    fresh = [None] * len(groups)
    first = aggregation.fold_groups(fresh, parts)
    assert encoded(first) == encoded(one_by_one(fresh))
    held = one_by_one(fresh)  # each window already holds the same values once
    again = aggregation.fold_groups(held, parts)
    assert encoded(again) == encoded(one_by_one(one_by_one(fresh)))
    assert [aggregation.result(s) for s in again] == [
        aggregation.result(s) for s in one_by_one(one_by_one(fresh))
    ]


def test_approx_distinct_hashes_booleans_as_numbers_on_every_path() -> None:
    aggregation = ApproxDistinct("f")
    mixed = aggregation.fold(None, [[True, 1, None, 0]])  # bool and None: value by value
    plain = aggregation.fold(None, [[1, 0]])  # ints only: handed to the sketch in one go
    assert aggregation.encode(mixed) == aggregation.encode(plain)
    assert aggregation.result(plain) == 2


def test_a_mean_state_is_sum_and_count_in_the_checkpoint() -> None:
    mean = Mean("f")
    state = _fold_batches(mean, [[1.0, 2.0], [None, 6.0]])
    assert mean.encode(state) == [9.0, 3]
    assert mean.result(mean.decode(json.loads(json.dumps(mean.encode(state))))) == 3.0
    with pytest.raises(InvalidInputError, match=r"\[sum, count\]"):
        mean.decode({"sum": 1})
