from __future__ import annotations

import pytest

from lakekit import InvalidInputError, TableIdent
from lakekit.identifiers import validate_name


def test_parse_namespace_and_table() -> None:
    ident = TableIdent.parse("sales.orders")
    assert (ident.namespace, ident.name) == ("sales", "orders")
    assert str(ident) == "sales.orders"
    assert TableIdent.parse(ident) is ident


@pytest.mark.parametrize("value", ["orders", "a.b.c", ".orders", "sales.", ""])
def test_identifier_needs_exactly_one_dot(value: str) -> None:
    with pytest.raises(InvalidInputError):
        TableIdent.parse(value)


@pytest.mark.parametrize(
    "name", ["Orders", "1orders", "or-ders", "ord ers", 'x"; drop table t; --', "a" * 129]
)
def test_names_outside_the_portable_subset_are_rejected(name: str) -> None:
    with pytest.raises(InvalidInputError, match="lowercase"):
        validate_name(name)


def test_rejection_suggests_a_valid_spelling() -> None:
    with pytest.raises(InvalidInputError, match="did you mean 'daily_orders'"):
        validate_name("Daily-Orders", what="table name")


def test_non_string_identifier_is_rejected() -> None:
    with pytest.raises(InvalidInputError):
        TableIdent.parse(42)  # type: ignore[arg-type]
