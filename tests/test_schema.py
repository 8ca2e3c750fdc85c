"""Table schemas: what check_schema accepts, and how evolve_schema lets a schema change."""

from __future__ import annotations

import decimal
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lakekit.errors import SchemaError
from lakekit.schema import can_widen, check_schema, evolve_schema

# The lossless widenings lakekit promises (docs/interfaces/catalog.md), written out independently
# of the implementation.
WIDENINGS: list[tuple[pa.DataType, pa.DataType]] = [
    (pa.int8(), pa.int16()),
    (pa.int8(), pa.int32()),
    (pa.int8(), pa.int64()),
    (pa.int16(), pa.int32()),
    (pa.int16(), pa.int64()),
    (pa.int32(), pa.int64()),
    (pa.uint8(), pa.uint16()),
    (pa.uint8(), pa.uint32()),
    (pa.uint8(), pa.uint64()),
    (pa.uint16(), pa.uint32()),
    (pa.uint16(), pa.uint64()),
    (pa.uint32(), pa.uint64()),
    (pa.uint8(), pa.int16()),
    (pa.uint8(), pa.int32()),
    (pa.uint8(), pa.int64()),
    (pa.uint16(), pa.int32()),
    (pa.uint16(), pa.int64()),
    (pa.uint32(), pa.int64()),
    (pa.int8(), pa.float32()),
    (pa.int16(), pa.float32()),
    (pa.uint8(), pa.float32()),
    (pa.uint16(), pa.float32()),
    (pa.int8(), pa.float64()),
    (pa.int16(), pa.float64()),
    (pa.int32(), pa.float64()),
    (pa.uint8(), pa.float64()),
    (pa.uint16(), pa.float64()),
    (pa.uint32(), pa.float64()),
    (pa.float16(), pa.float32()),
    (pa.float16(), pa.float64()),
    (pa.float32(), pa.float64()),
    (pa.string(), pa.large_string()),
    (pa.binary(), pa.large_binary()),
    (pa.decimal128(10, 2), pa.decimal128(12, 2)),
    (pa.decimal32(5, 2), pa.decimal128(20, 2)),
    (pa.decimal128(30, 4), pa.decimal256(40, 4)),
    (pa.list_(pa.int32()), pa.list_(pa.int64())),
    (pa.list_(pa.string()), pa.large_list(pa.large_string())),
]

INCOMPATIBLE: list[tuple[pa.DataType, pa.DataType]] = [
    (pa.int64(), pa.float64()),  # not every int64 is a float64
    (pa.int32(), pa.float32()),
    (pa.uint64(), pa.int64()),
    (pa.int8(), pa.uint8()),
    (pa.int32(), pa.string()),
    (pa.string(), pa.binary()),
    (pa.float64(), pa.decimal128(38, 10)),
    (pa.timestamp("ms"), pa.timestamp("us")),
    (pa.timestamp("us"), pa.timestamp("us", tz="UTC")),
    (pa.date32(), pa.timestamp("us")),
    (pa.decimal128(10, 2), pa.decimal128(12, 3)),
    (pa.bool_(), pa.int8()),
    (pa.list_(pa.int32()), pa.int32()),
    (pa.struct([("a", pa.int32())]), pa.string()),
    (pa.list_(pa.int32(), 2), pa.list_(pa.int32(), 3)),
]


def _s(*fields: Any, metadata: dict[str, str] | None = None) -> pa.Schema:
    """A schema from fields or (name, type) pairs."""
    meta: Any = metadata
    return pa.schema(
        [f if isinstance(f, pa.Field) else pa.field(*f) for f in fields], metadata=meta
    )


# -- check_schema ------------------------------------------------------------------------------
def test_check_schema_accepts_nested_types_and_returns_the_schema() -> None:
    schema = _s(
        pa.field("id", pa.int64(), nullable=False),
        ("tags", pa.list_(pa.string())),
        ("address", pa.struct([("street", pa.string()), ("zip", pa.int32())])),
        ("attrs", pa.map_(pa.string(), pa.float64())),
        ("uid", pa.uuid()),
        ("doc", pa.json_()),
        ("d", pa.decimal128(12, 2)),
        ("ts", pa.timestamp("ns", tz="Europe/Paris")),
    )
    assert check_schema(schema) is schema


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ({"id": "int64"}, "a dict"),
        ([("id", pa.int64())], "a list"),
        (None, "a NoneType"),
        (pa.table({"id": [1]}), "a pyarrow.Table"),
    ],
)
def test_check_schema_requires_an_arrow_schema(value: object, shown: str) -> None:
    with pytest.raises(SchemaError, match="must be an Arrow schema") as info:
        check_schema(value)
    assert shown in str(info.value)
    assert isinstance(info.value, TypeError)


def test_check_schema_names_a_pandas_frame() -> None:
    pd = pytest.importorskip("pandas")
    with pytest.raises(SchemaError, match=r"pandas\.DataFrame.*pa\.Schema\.from_pandas"):
        check_schema(pd.DataFrame({"a": [1]}))


def test_check_schema_needs_a_column() -> None:
    with pytest.raises(SchemaError, match="at least one column"):
        check_schema(pa.schema([]))


@pytest.mark.parametrize(
    ("schema", "column"),
    [
        (_s(("a", pa.int64()), ("a", pa.string())), "a"),
        (_s(("id", pa.int64()), ("ID", pa.int64())), "ID"),
        (_s(("s", pa.struct([("x", pa.int8()), ("X", pa.int8())]))), "s.X"),
    ],
)
def test_check_schema_rejects_duplicate_names_also_ignoring_case(
    schema: pa.Schema, column: str
) -> None:
    with pytest.raises(SchemaError, match="unique") as info:
        check_schema(schema)
    assert info.value.column == column


def test_check_schema_rejects_an_empty_name() -> None:
    with pytest.raises(SchemaError, match="empty name"):
        check_schema(_s(("", pa.int64())))
    with pytest.raises(SchemaError, match="inside 's'"):
        check_schema(_s(("s", pa.struct([("", pa.int64())]))))


@pytest.mark.parametrize(
    ("dtype", "column", "message"),
    [
        (pa.null(), "c", "type null"),
        (pa.list_(pa.null()), "c.element", "type null"),
        (pa.struct([("inner", pa.null())]), "c.inner", "type null"),
        (pa.map_(pa.string(), pa.null()), "c.value", "type null"),
        (pa.dictionary(pa.int32(), pa.string()), "c", "dictionary-encoded"),
        (pa.dense_union([pa.field("a", pa.int32())]), "c", "union"),
        (pa.struct([]), "c", "struct without fields"),
        (pa.month_day_nano_interval(), "c", "Parquet cannot store"),
        (pa.run_end_encoded(pa.int32(), pa.string()), "c", "Parquet cannot store"),
    ],
)
def test_check_schema_rejects_types_parquet_cannot_hold(
    dtype: pa.DataType, column: str, message: str
) -> None:
    with pytest.raises(SchemaError, match=message) as info:
        check_schema(_s(("ok", pa.int64()), ("c", dtype)))
    assert info.value.column == column
    assert repr(column) in str(info.value)


# -- evolve_schema: the basics -----------------------------------------------------------------
def test_evolving_to_the_same_schema_returns_it_unchanged() -> None:
    old = _s(("a", pa.int32()), ("b", pa.string()), metadata={"k": "v"})
    assert evolve_schema(old, old) is old
    assert evolve_schema(old, _s(("b", pa.string()))) is old


def test_new_columns_are_appended_and_missing_ones_kept() -> None:
    old = _s(("a", pa.int32()), ("b", pa.string()))
    new = _s(("c", pa.float64()), ("b", pa.string()), ("d", pa.bool_()))
    merged = evolve_schema(old, new)
    assert merged.names == ["a", "b", "c", "d"]
    assert merged.field("c").type == pa.float64()


def test_a_new_column_must_be_nullable() -> None:
    old = _s(("a", pa.int32()))
    with pytest.raises(SchemaError) as info:
        evolve_schema(old, _s(pa.field("x", pa.int64(), nullable=False)))
    assert str(info.value) == "new column 'x' must be nullable: existing rows have no value"
    assert info.value.column == "x"


@pytest.mark.parametrize(("old_type", "new_type"), WIDENINGS, ids=str)
def test_lossless_widenings_are_applied(old_type: pa.DataType, new_type: pa.DataType) -> None:
    merged = evolve_schema(_s(("c", old_type)), _s(("c", new_type)))
    assert merged.field("c").type.equals(new_type)
    assert can_widen(old_type, new_type)


@pytest.mark.parametrize(("old_type", "new_type"), WIDENINGS, ids=str)
def test_narrower_incoming_data_keeps_the_wider_column(
    old_type: pa.DataType, new_type: pa.DataType
) -> None:
    # The table already has the wide type; data of the narrow type fits into it.
    table = _s(("c", new_type))
    assert evolve_schema(table, _s(("c", old_type))) is table
    assert not can_widen(new_type, old_type)


@pytest.mark.parametrize(("old_type", "new_type"), INCOMPATIBLE, ids=str)
def test_incompatible_changes_are_schema_errors_naming_column_and_types(
    old_type: pa.DataType, new_type: pa.DataType
) -> None:
    old = _s(("keep", pa.int64()), ("col", old_type))
    with pytest.raises(SchemaError) as info:
        evolve_schema(old, _s(("col", new_type)))
    err = info.value
    assert err.column == "col"
    assert (err.old_type, err.new_type) == (str(old_type), str(new_type))
    assert f"'col' cannot change type from {old_type} to {new_type}" in str(err)
    with pytest.raises(SchemaError):  # and the other way round
        evolve_schema(_s(("col", new_type)), _s(("col", old_type)))
    assert not can_widen(old_type, new_type)


def test_nullability_may_relax_but_never_tighten() -> None:
    old = _s(pa.field("a", pa.int64(), nullable=False), pa.field("b", pa.int64()))
    new = _s(pa.field("a", pa.int64()), pa.field("b", pa.int64(), nullable=False))
    merged = evolve_schema(old, new)
    assert merged.field("a").nullable
    assert merged.field("b").nullable


def test_a_new_column_differing_only_in_case_is_refused() -> None:
    with pytest.raises(SchemaError, match="differs only in case") as info:
        evolve_schema(_s(("id", pa.int64())), _s(("ID", pa.int64())))
    assert info.value.column == "ID"


def test_metadata_is_kept_and_never_changed_by_evolution() -> None:
    old = _s(
        pa.field("a", pa.int32(), metadata={"comment": "old"}),
        metadata={"owner": "table"},
    )
    new = _s(
        pa.field("a", pa.int64(), metadata={"comment": "new", "extra": "x"}),
        pa.field("b", pa.string(), metadata={"comment": "b"}),
        metadata={"pandas": "{...}", "owner": "data"},
    )
    merged = evolve_schema(old, new)
    assert merged.metadata == {b"owner": b"table"}
    assert merged.field("a").metadata == {b"comment": b"old"}
    assert merged.field("a").type == pa.int64()
    assert merged.field("b").metadata == {b"comment": b"b"}


def test_evolve_schema_checks_both_schemas() -> None:
    with pytest.raises(SchemaError, match="Arrow schema"):
        evolve_schema(_s(("a", pa.int64())), {"a": "int64"})  # type: ignore[arg-type]
    with pytest.raises(SchemaError, match="type null"):
        evolve_schema(_s(("a", pa.int64())), _s(("b", pa.null())))


# -- evolve_schema: nested types ---------------------------------------------------------------
def test_struct_fields_merge_recursively() -> None:
    old = _s(("address", pa.struct([("street", pa.string()), ("zip", pa.int32())])))
    new = _s(("address", pa.struct([("zip", pa.int64()), ("city", pa.string())])))
    merged = evolve_schema(old, new)
    assert merged.field("address").type == pa.struct(
        [("street", pa.string()), ("zip", pa.int64()), ("city", pa.string())]
    )


def test_nested_errors_name_the_dotted_path() -> None:
    old = _s(
        ("address", pa.struct([("zip", pa.int32()), ("geo", pa.struct([("lat", pa.float64())]))])),
        ("tags", pa.list_(pa.int32())),
        ("attrs", pa.map_(pa.string(), pa.int32())),
    )
    cases = [
        (_s(("address", pa.struct([("zip", pa.string())]))), "address.zip"),
        (
            _s(("address", pa.struct([("geo", pa.struct([("lat", pa.string())]))]))),
            "address.geo.lat",
        ),
        (_s(("tags", pa.list_(pa.string()))), "tags.element"),
        (_s(("attrs", pa.map_(pa.string(), pa.string()))), "attrs.value"),
        (_s(("attrs", pa.map_(pa.int32(), pa.int32()))), "attrs.key"),
    ]
    for new, path in cases:
        with pytest.raises(SchemaError) as info:
            evolve_schema(old, new)
        assert info.value.column == path, new
        assert repr(path) in str(info.value)


def test_a_new_struct_field_must_be_nullable() -> None:
    old = _s(("s", pa.struct([("a", pa.int32())])))
    new = _s(("s", pa.struct([pa.field("b", pa.int32(), nullable=False)])))
    with pytest.raises(SchemaError, match=r"new column 's\.b' must be nullable") as info:
        evolve_schema(old, new)
    assert info.value.column == "s.b"


def test_list_and_map_children_widen() -> None:
    old = _s(
        ("tags", pa.list_(pa.int32())),
        ("attrs", pa.map_(pa.string(), pa.float32())),
        ("fixed", pa.list_(pa.int8(), 2)),
        ("rows", pa.list_(pa.struct([("a", pa.int32())]))),
    )
    new = _s(
        ("tags", pa.large_list(pa.int64())),
        ("attrs", pa.map_(pa.string(), pa.float64())),
        ("fixed", pa.list_(pa.int16(), 2)),
        ("rows", pa.list_(pa.struct([("a", pa.int32()), ("b", pa.string())]))),
    )
    merged = evolve_schema(old, new)
    assert merged.field("tags").type == pa.large_list(pa.int64())
    assert merged.field("attrs").type == pa.map_(pa.string(), pa.float64())
    assert merged.field("fixed").type == pa.list_(pa.int16(), 2)
    assert merged.field("rows").type == pa.list_(pa.struct([("a", pa.int32()), ("b", pa.string())]))


# -- strict mode -------------------------------------------------------------------------------
def test_strict_accepts_the_same_columns_in_any_order_ignoring_metadata() -> None:
    old = _s(("a", pa.int32()), ("b", pa.string()), metadata={"k": "v"})
    new = _s(pa.field("b", pa.string(), metadata={"x": "y"}), ("a", pa.int32()))
    assert evolve_schema(old, new, strict=True) is old


def test_strict_lists_every_difference() -> None:
    old = _s(("a", pa.int32()), pa.field("b", pa.string(), nullable=False), ("c", pa.int8()))
    new = _s(("a", pa.int64()), ("b", pa.string()), ("d", pa.int8()))
    with pytest.raises(SchemaError, match="strict") as info:
        evolve_schema(old, new, strict=True)
    message = str(info.value)
    assert "column 'a' has type int64, expected int32" in message
    assert "column 'b' is nullable, expected not null" in message
    assert "missing column 'c' (int8)" in message
    assert "unexpected column 'd' (int8)" in message
    assert info.value.column == "a"


def test_strict_refuses_even_a_lossless_widening() -> None:
    with pytest.raises(SchemaError):
        evolve_schema(_s(("a", pa.int32())), _s(("a", pa.int64())), strict=True)


# -- properties --------------------------------------------------------------------------------
_PRIMITIVES: st.SearchStrategy[pa.DataType] = st.sampled_from(
    [
        pa.int8(), pa.int16(), pa.int32(), pa.int64(), pa.uint8(), pa.uint16(), pa.uint32(),
        pa.uint64(), pa.float16(), pa.float32(), pa.float64(), pa.string(), pa.large_string(),
        pa.binary(), pa.large_binary(), pa.bool_(), pa.date32(), pa.timestamp("us"),
        pa.timestamp("ms", tz="UTC"), pa.decimal128(10, 2), pa.decimal128(20, 2),
    ]
)  # fmt: skip
_NAMES = st.text(alphabet="abcdefghij", min_size=1, max_size=4)


def _types(depth: int = 2) -> st.SearchStrategy[pa.DataType]:
    if depth == 0:
        return _PRIMITIVES
    child = _types(depth - 1)
    return st.one_of(
        _PRIMITIVES,
        child.map(pa.list_),
        st.lists(st.tuples(_NAMES, child), min_size=1, max_size=3, unique_by=lambda f: f[0]).map(
            pa.struct
        ),
    )


_schemas = st.lists(
    st.tuples(_NAMES, _types(), st.booleans()), min_size=1, max_size=6, unique_by=lambda f: f[0]
).map(lambda fields: pa.schema([pa.field(n, t, nullable=nl) for n, t, nl in fields]))


def _wider(dtype: pa.DataType, draw: Any) -> pa.DataType:
    """A type ``dtype`` widens into (possibly itself), chosen by hypothesis."""
    if pa.types.is_list(dtype):
        return pa.list_(_wider(dtype.value_type, draw))
    if pa.types.is_struct(dtype):
        return pa.struct([pa.field(f.name, _wider(f.type, draw), f.nullable) for f in dtype])
    options = [dtype] + [b for a, b in WIDENINGS if a.equals(dtype)]
    chosen: pa.DataType = draw(st.sampled_from(options))
    return chosen


@st.composite
def _evolutions(draw: Any) -> tuple[pa.Schema, pa.Schema]:
    """An old schema and a new one made only of allowed changes: widen, drop, add, reorder."""
    old = draw(_schemas)
    fields = [
        pa.field(f.name, _wider(f.type, draw), f.nullable or draw(st.booleans()))
        for f in old
        if draw(st.booleans())
    ]
    taken = {f.name for f in old}
    for name, dtype in draw(st.lists(st.tuples(_NAMES, _types()), max_size=3)):
        if f"new_{name}" not in taken:
            taken.add(f"new_{name}")
            fields.append(pa.field(f"new_{name}", dtype))
    if not fields:
        fields = [pa.field(old[0].name, old[0].type, old[0].nullable)]
    return old, pa.schema(draw(st.permutations(fields)))


@settings(max_examples=150, deadline=None)
@given(_schemas)
def test_property_a_schema_evolves_into_itself(schema: pa.Schema) -> None:
    assert evolve_schema(schema, schema) is schema
    assert evolve_schema(schema, schema, strict=True) is schema


@settings(max_examples=200, deadline=None)
@given(_evolutions())
def test_property_allowed_changes_always_evolve_and_never_narrow(
    pair: tuple[pa.Schema, pa.Schema],
) -> None:
    old, new = pair
    merged = evolve_schema(old, new)
    assert merged.names[: len(old)] == old.names  # old columns first, in order
    assert set(merged.names) == set(old.names) | set(new.names)
    for field in old:
        assert can_widen(field.type, merged.field(field.name).type), field.name
    for field in new:
        assert can_widen(field.type, merged.field(field.name).type), field.name
    assert evolve_schema(merged, new) is merged  # idempotent
    assert evolve_schema(merged, old) is merged  # the old data still fits


@pytest.mark.parametrize(("old_type", "new_type"), WIDENINGS, ids=str)
@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_property_widening_round_trips_every_value(
    old_type: pa.DataType, new_type: pa.DataType, data: Any
) -> None:
    values = data.draw(st.lists(_values(old_type), max_size=20))
    array = pa.array(values, type=old_type)
    widened = array.cast(new_type)
    assert widened.cast(old_type).equals(array)
    assert widened.to_pylist() == array.to_pylist()  # type: ignore[misc]


def _values(data_type: pa.DataType) -> st.SearchStrategy[Any]:
    types = pa.types
    dtype: Any = data_type
    if types.is_integer(dtype):
        bits = dtype.bit_width
        if types.is_signed_integer(dtype):
            return st.integers(-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) | st.none()
        return st.integers(0, 2**bits - 1) | st.none()
    if types.is_floating(dtype):
        width: Any = dtype.bit_width
        return st.floats(width=width, allow_nan=False) | st.none()
    if types.is_string(dtype):
        return st.text(max_size=10) | st.none()
    if types.is_binary(dtype):
        return st.binary(max_size=10) | st.none()
    if types.is_decimal(dtype):
        scale, bound = dtype.scale, 10**dtype.precision - 1
        # The str constructor is exact whatever the decimal context's precision.
        unscaled = st.integers(-bound, bound)
        return unscaled.map(lambda i: decimal.Decimal(f"{i}e-{scale}")) | st.none()
    if types.is_list(dtype):
        return st.lists(_values(dtype.value_type), max_size=4) | st.none()
    raise AssertionError(f"no value strategy for {dtype}")
