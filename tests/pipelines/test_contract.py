"""Data contracts: which rows load, which are quarantined (and why), when a batch is refused."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Literal

import pyarrow as pa
import pytest
from pydantic import BaseModel, Field, field_validator

from lakekit.errors import InvalidInputError, SchemaError
from lakekit.pipelines.contract import Contract, flatten_structs, quarantine_schema


class Address(BaseModel):
    city: str
    zip: str | None = None


class Order(BaseModel):
    id: int
    amount: float
    placed_at: datetime
    note: str | None = None


class CheckedOrder(BaseModel):
    id: int
    amount: float = Field(gt=0)
    status: Literal["new", "paid"] = "new"

    @field_validator("id")
    @classmethod
    def _positive_id(cls, value: int) -> int:
        if value % 2:
            raise ValueError("ids are even")
        return value


class Customer(BaseModel):
    id: int
    address: Address | None = None
    tags: list[str] = []


def _rows(*rows: dict[str, Any]) -> pa.Table:
    return pa.Table.from_pylist(list(rows))


def _reasons(quarantined: pa.Table | None) -> list[str]:
    assert quarantined is not None
    return [str(reason) for reason in quarantined.column("_reason").to_pylist()]


# -- type mapping ---------------------------------------------------------------------------------
def test_from_model_maps_python_types_to_arrow() -> None:
    class Everything(BaseModel):
        i: int
        f: float
        s: str
        b: bool
        raw: bytes
        at: datetime
        day: date
        price: Decimal = Field(max_digits=10, decimal_places=2)
        many: list[int]
        maybe: int | None
        address: Address

    schema = Contract.from_model(Everything).schema
    assert schema.field("i").type == pa.int64()
    assert schema.field("f").type == pa.float64()
    assert schema.field("s").type == pa.string()
    assert schema.field("b").type == pa.bool_()
    assert schema.field("raw").type == pa.binary()
    assert schema.field("at").type == pa.timestamp("us", tz="UTC")
    assert schema.field("day").type == pa.date32()
    assert schema.field("price").type == pa.decimal128(10, 2)
    assert schema.field("many").type == pa.list_(pa.field("item", pa.int64(), nullable=False))
    assert schema.field("address").type == pa.struct(
        [pa.field("city", pa.string(), nullable=False), pa.field("zip", pa.string())]
    )
    assert not schema.field("i").nullable
    assert schema.field("maybe").nullable


def test_from_model_refuses_a_type_without_arrow_mapping_naming_the_field() -> None:
    class Odd(BaseModel):
        payload: dict[str, int]

    with pytest.raises(SchemaError, match=r"'payload'.*Contract\.from_schema"):
        Contract.from_model(Odd)


def test_unknown_policy_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="unknown contract policy"):
        Contract.from_schema(pa.schema([("a", pa.int64())]), policy="lenient")  # type: ignore[arg-type]


# -- conforming valid data ------------------------------------------------------------------------
def test_valid_rows_are_cast_to_the_contract_types_and_order() -> None:
    data = _rows(
        {"note": "x", "amount": 3, "id": "7", "placed_at": "2024-05-01T10:00:00+02:00"},
        {"note": None, "amount": 1.5, "id": "8", "placed_at": "2024-05-01 08:00:00"},
    )
    good, quarantined = Contract.from_model(Order).apply(data)

    assert quarantined is None
    assert good.column_names == ["id", "amount", "placed_at", "note"]
    assert good.schema.field("id").type == pa.int64()
    assert good.column("id").to_pylist() == [7, 8]
    # An offset is converted to UTC; a timestamp without a zone is taken as UTC.
    assert good.column("placed_at").to_pylist() == [
        datetime(2024, 5, 1, 8, tzinfo=UTC),
        datetime(2024, 5, 1, 8, tzinfo=UTC),
    ]


def test_defaults_fill_nulls_of_required_fields_and_missing_columns() -> None:
    good, quarantined = Contract.from_model(Customer).apply(
        _rows({"id": 1, "tags": None}, {"id": 2, "tags": ["vip"]})
    )
    assert quarantined is None
    assert good.column("tags").to_pylist() == [[], ["vip"]]
    assert good.column("address").to_pylist() == [None, None]


# -- evolve ---------------------------------------------------------------------------------------
def test_evolve_keeps_extra_columns_and_quarantines_type_violations_with_origin() -> None:
    data = _rows(
        {"id": "1", "amount": 2.0, "placed_at": "2024-01-01T00:00:00Z", "channel": "web"},
        {"id": "x1", "amount": 2.0, "placed_at": "2024-01-01T00:00:00Z", "channel": "app"},
        {"id": "3", "amount": 2.0, "placed_at": "yesterday", "channel": "web"},
    )
    good, quarantined = Contract.from_model(Order, policy="evolve").apply(
        data, ["orders.ndjson:1", "orders.ndjson:2", "orders.ndjson:3"]
    )

    assert good.column_names == ["id", "amount", "placed_at", "note", "channel"]
    assert good.column("id").to_pylist() == [1]
    assert quarantined is not None
    assert quarantined.schema == quarantine_schema()
    assert quarantined.column("_origin").to_pylist() == ["orders.ndjson:2", "orders.ndjson:3"]
    assert _reasons(quarantined) == [
        "field 'id': expected int64, got 'x1'",
        "field 'placed_at': expected timestamp[us, tz=UTC], got 'yesterday'",
    ]
    record = json.loads(quarantined.column("_record")[0].as_py())
    assert record == {
        "id": "x1",
        "amount": 2.0,
        "placed_at": "2024-01-01T00:00:00Z",
        "channel": "app",
    }
    at = quarantined.column("_quarantined_at")[0].as_py()
    assert abs((datetime.now(UTC) - at).total_seconds()) < 60


def test_rows_without_origins_are_named_by_position() -> None:
    data = _rows({"id": 1}, {"id": None}, {"id": 3})
    _, quarantined = Contract.from_schema(
        pa.schema([pa.field("id", pa.int64(), nullable=False)])
    ).apply(data)
    assert quarantined is not None
    assert quarantined.column("_origin").to_pylist() == ["row 1"]


def test_required_field_nulls_and_missing_required_columns_are_quarantined() -> None:
    data = _rows(
        {"id": 1, "amount": None, "placed_at": "2024-01-01T00:00:00Z"},
        {"id": 2, "amount": 1.0, "placed_at": "2024-01-01T00:00:00Z"},
    )
    good, quarantined = Contract.from_model(Order).apply(data)
    assert good.column("id").to_pylist() == [2]
    assert _reasons(quarantined) == ["field 'amount' is required, got null"]

    good, quarantined = Contract.from_model(Order).apply(_rows({"id": 1, "amount": 1.0}))
    assert good.num_rows == 0
    assert _reasons(quarantined) == ["field 'placed_at' is required but missing from the data"]


def test_every_violation_of_a_row_is_named_in_its_reason() -> None:
    data = _rows({"id": "a", "amount": "b", "placed_at": None})
    _, quarantined = Contract.from_model(Order).apply(data)
    assert _reasons(quarantined) == [
        "field 'id': expected int64, got 'a'; field 'amount': expected double, got 'b'; "
        "field 'placed_at' is required, got null"
    ]


def test_a_value_of_an_incompatible_type_is_a_violation_not_a_conversion() -> None:
    # Arrow would happily cast 42 to "42" or a struct nowhere: a contract does not.
    fields: list[pa.Field[Any]] = [pa.field("name", pa.string()), pa.field("n", pa.int64())]
    schema = pa.schema(fields)
    data = _rows({"name": 42, "n": 1}, {"name": None, "n": 2})
    good, quarantined = Contract.from_schema(schema).apply(data)
    assert good.column("n").to_pylist() == [2]
    assert _reasons(quarantined) == ["field 'name': expected string, got int64 42"]


# -- discard --------------------------------------------------------------------------------------
def test_discard_drops_extra_columns_and_quarantines_bad_rows() -> None:
    data = _rows(
        {"id": 1, "amount": "1.0", "placed_at": "2024-01-01T00:00:00Z", "junk": True},
        {"id": 2, "amount": "lots", "placed_at": "2024-01-01T00:00:00Z", "junk": False},
    )
    good, quarantined = Contract.from_model(Order, policy="discard").apply(data)
    assert good.column_names == ["id", "amount", "placed_at", "note"]
    assert good.column("id").to_pylist() == [1]
    assert _reasons(quarantined) == ["field 'amount': expected double, got 'lots'"]
    # The quarantine keeps the row as it came, extra columns included.
    assert json.loads(quarantined.column("_record")[0].as_py())["junk"] is False  # type: ignore[union-attr]


# -- freeze ---------------------------------------------------------------------------------------
def test_freeze_refuses_extra_columns_naming_them_and_returns_nothing() -> None:
    data = _rows(
        {"id": 1, "address": {"city": "Oslo", "floor": 3}, "tags": [], "vip": True},
    )
    contract = Contract.from_model(Customer, policy="freeze")
    with pytest.raises(SchemaError, match=r"'address\.floor', 'vip'") as raised:
        contract.apply(data)
    assert raised.value.column == "address.floor"


def test_freeze_refuses_the_whole_batch_on_a_type_violation() -> None:
    data = _rows(
        {"id": 1, "amount": "1.0", "placed_at": "2024-01-01T00:00:00Z"},
        {"id": 2, "amount": "n/a", "placed_at": "2024-01-01T00:00:00Z"},
    )
    with pytest.raises(SchemaError, match=r"1 row\(s\).*f\.ndjson:2: field 'amount'"):
        Contract.from_model(Order, policy="freeze").apply(data, ["f.ndjson:1", "f.ndjson:2"])


def test_freeze_loads_a_conforming_batch() -> None:
    data = _rows({"id": 1, "amount": 1.0, "placed_at": "2024-01-01T00:00:00Z", "note": None})
    good, quarantined = Contract.from_model(Order, policy="freeze").apply(data)
    assert quarantined is None
    assert good.num_rows == 1


# -- pydantic constraints and validators ----------------------------------------------------------
def test_models_without_constraints_are_not_validated_row_by_row() -> None:
    assert not Contract.from_model(Order).validates_rows
    assert Contract.from_model(CheckedOrder).validates_rows


def test_field_constraints_literals_and_validators_quarantine_rows() -> None:
    data = _rows(
        {"id": 2, "amount": 5.0, "status": "paid"},
        {"id": 4, "amount": 0.0, "status": "paid"},
        {"id": 3, "amount": 1.0, "status": "new"},
        {"id": 6, "amount": 1.0, "status": "lost"},
        {"id": 8, "amount": 1.0, "status": None},
    )
    good, quarantined = Contract.from_model(CheckedOrder).apply(data)

    assert good.column("id").to_pylist() == [2, 8]
    assert good.column("status").to_pylist() == ["paid", "new"]
    assert quarantined is not None
    assert quarantined.column("_origin").to_pylist() == ["row 1", "row 2", "row 3"]
    reasons = _reasons(quarantined)
    assert reasons[0] == "field 'amount': Input should be greater than 0 (got 0.0)"
    assert reasons[1].startswith("field 'id': Value error, ids are even")
    assert reasons[2].startswith("field 'status': Input should be 'new' or 'paid'")


def test_constraints_of_nested_models_are_checked() -> None:
    class Line(BaseModel):
        qty: int = Field(ge=1)

    class Basket(BaseModel):
        lines: list[Line]

    data = _rows({"lines": [{"qty": 1}, {"qty": 0}]}, {"lines": [{"qty": 2}]})
    good, quarantined = Contract.from_model(Basket).apply(data)
    assert good.num_rows == 1
    assert _reasons(quarantined) == [
        "field 'lines[1].qty': Input should be greater than or equal to 1 (got 0)"
    ]


# -- nested data ----------------------------------------------------------------------------------
def test_nested_structs_are_kept_and_their_violations_named_by_path() -> None:
    data = _rows(
        {"id": 1, "address": {"city": "Oslo", "zip": "0150"}, "tags": ["a", "b"]},
        {"id": 2, "address": {"city": None, "zip": "1"}, "tags": []},
        {"id": 3, "address": None, "tags": ["c", None]},
    )
    good, quarantined = Contract.from_model(Customer).apply(data)

    assert good.schema.field("address").type == pa.struct(
        [pa.field("city", pa.string(), nullable=False), pa.field("zip", pa.string())]
    )
    assert good.column("address").to_pylist() == [{"city": "Oslo", "zip": "0150"}]
    assert _reasons(quarantined) == [
        "field 'address.city' is required, got null",
        "field 'tags[1]' is required, got null",
    ]


def test_a_null_struct_does_not_make_its_required_fields_violations() -> None:
    good, quarantined = Contract.from_model(Customer).apply(_rows({"id": 1, "address": None}))
    assert quarantined is None
    assert good.column("address").to_pylist() == [None]


def test_flatten_turns_structs_into_parent_child_columns() -> None:
    data = _rows(
        {"id": 1, "address": {"city": "Oslo", "zip": "0150"}},
        {"id": 2, "address": None},
    )
    good, _ = Contract.from_model(Customer, flatten=True).apply(data)
    assert good.column_names == ["id", "address_city", "address_zip", "tags"]
    assert good.column("address_city").to_pylist() == ["Oslo", None]
    # A leaf of a nullable struct is nullable, even when required inside the struct.
    assert good.schema.field("address_city").nullable

    good, _ = Contract.from_model(Customer, flatten="__").apply(data)
    assert "address__city" in good.column_names
    assert Contract.from_model(Customer, flatten="__").output_schema().names == [
        "id",
        "address__city",
        "address__zip",
        "tags",
    ]


def test_flatten_refuses_names_that_clash() -> None:
    table = pa.table({"a": pa.array([{"b": 1}]), "a_b": pa.array([2])})
    with pytest.raises(SchemaError, match="'a_b'"):
        flatten_structs(table)


def test_evolve_keeps_extra_struct_fields() -> None:
    data = _rows({"id": 1, "address": {"city": "Oslo", "zip": None, "floor": 3}})
    good, quarantined = Contract.from_model(Customer).apply(data)
    assert quarantined is None
    assert good.column("address").to_pylist() == [{"city": "Oslo", "zip": None, "floor": 3}]

    good, _ = Contract.from_model(Customer, policy="discard").apply(data)
    assert good.column("address").to_pylist() == [{"city": "Oslo", "zip": None}]


# -- inputs ---------------------------------------------------------------------------------------
def test_row_origins_must_match_the_batch() -> None:
    with pytest.raises(InvalidInputError, match="row_origins has 1 entries"):
        Contract.from_model(Order).apply(_rows({"id": 1}, {"id": 2}), ["a:1"])


def test_duplicate_column_names_are_refused() -> None:
    data = pa.Table.from_arrays([pa.array([1]), pa.array([2])], names=["id", "id"])
    with pytest.raises(SchemaError, match="appear twice: 'id'"):
        Contract.from_model(Order).apply(data)


def test_an_empty_batch_conforms_to_the_contract_schema() -> None:
    good, quarantined = Contract.from_model(Order).apply(pa.table({"id": pa.array([], pa.int8())}))
    assert quarantined is None
    assert good.num_rows == 0
    assert good.schema == Contract.from_model(Order).output_schema()


def test_record_batches_are_accepted() -> None:
    batch = pa.RecordBatch.from_pylist([{"id": 1, "amount": 1, "placed_at": "2024-01-01"}])
    good, _ = Contract.from_model(Order).apply(batch)
    assert good.column("amount").to_pylist() == [1.0]


# -- volume ---------------------------------------------------------------------------------------
def test_a_large_valid_batch_conforms_without_row_by_row_work() -> None:
    """100k valid rows go through the vectorised path (a few ms here; no timing assert)."""
    count = 100_000
    data = pa.table(
        {
            "id": pa.array(range(count), pa.int32()),
            "amount": pa.array([1.5] * count),
            "placed_at": pa.array([datetime(2024, 1, 1)] * count, pa.timestamp("s")),
            "note": pa.array(["n"] * count),
        }
    )
    good, quarantined = Contract.from_model(Order).apply(data)
    assert quarantined is None
    assert good.num_rows == count


def test_timestamps_with_and_without_offsets_mix_in_one_column() -> None:
    data = pa.table({"at": ["2024-05-01T10:00:00+02:00", "2024-05-01 08:00:00", "soon"] * 2})
    contract = Contract.from_schema(pa.schema([("at", pa.timestamp("us", tz="UTC"))]))
    good, quarantined = contract.apply(data)
    assert good.column("at").to_pylist() == [datetime(2024, 5, 1, 8, tzinfo=UTC)] * 4
    assert quarantined is not None
    assert quarantined.column("_origin").to_pylist() == ["row 2", "row 5"]


def test_a_repeated_bad_value_is_quarantined_in_every_row() -> None:
    data = pa.table({"n": ["1", "n/a", "2", "n/a", "n/a"]})
    good, quarantined = Contract.from_schema(pa.schema([("n", pa.int32())])).apply(data)
    assert good.column("n").to_pylist() == [1, 2]
    assert _reasons(quarantined) == ["field 'n': expected int32, got 'n/a'"] * 3


def test_a_few_bad_values_in_a_large_batch_are_found_exactly() -> None:
    count = 100_000
    ids = [str(n) for n in range(count)]
    for bad in (0, 4_321, 99_999):
        ids[bad] = f"bad{bad}"
    data = pa.table({"id": ids})
    good, quarantined = Contract.from_schema(
        pa.schema([pa.field("id", pa.int64(), nullable=False)])
    ).apply(data)
    assert good.num_rows == count - 3
    assert quarantined is not None
    assert quarantined.column("_origin").to_pylist() == ["row 0", "row 4321", "row 99999"]
