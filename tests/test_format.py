from __future__ import annotations

import pyarrow as pa

from lakekit._format import format_table


def test_numbers_align_right_text_left_and_nulls_show() -> None:
    table = pa.table({"name": ["a", "longer"], "n": [1, 1234], "x": [None, 2.5]})
    assert format_table(table).splitlines() == [
        "name   | n    | x   ",
        "-------+------+-----",
        "a      |    1 | NULL",
        "longer | 1234 | 2.50",
    ]


def test_long_results_are_cut_with_a_count() -> None:
    table = pa.table({"i": list(range(30))})
    lines = format_table(table, max_rows=5).splitlines()
    assert lines[-1] == "... 25 more rows"
    assert len(lines) == 2 + 5 + 1
