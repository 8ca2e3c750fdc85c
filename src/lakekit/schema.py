"""Table schemas: what the catalog accepts, and how a schema may change over time.

A table's schema is a :class:`pyarrow.Schema`. :func:`check_schema` decides whether a schema can
be a table schema at all; :func:`evolve_schema` merges the schema of new data into a table's
schema, allowing only changes that keep every existing row readable with its exact value.

Rules of :func:`check_schema` (anything else is a :class:`~lakekit.errors.SchemaError`):

* a ``pyarrow.Schema`` with at least one column (not a dict, a DataFrame or a list);
* column names are non-empty and unique, also ignoring case (``id`` and ``ID`` would be one
  column in DuckDB, Athena, BigQuery and Spark), at the top level and inside structs;
* every type can be stored in Parquet. On top of what the Parquet writer itself refuses
  (intervals, unions, run-end-encoded, structs without fields) lakekit refuses the ``null``
  type (a column inferred from all-``None`` data: give it a real type) and dictionary types
  (store the value type; Parquet dictionary-encodes by itself).

Rules of :func:`evolve_schema` (``old`` is the table's schema, ``new`` the incoming one):

* old columns keep their order; columns only in ``new`` are appended and must be nullable;
  columns absent from ``new`` are kept;
* a column's type may only widen losslessly (table below); when ``new`` has a *narrower*
  type that widens into the old one (int32 data for an int64 column), the old type is kept;
* a non-null column may become nullable; a nullable column never becomes non-null;
* structs, lists and maps are merged field by field, with the same rules (new struct fields
  are appended and must be nullable); errors name the nested column by its dotted path
  (``address.zip``, ``tags.element``, ``attrs.value``);
* metadata never changes: existing fields and the schema keep theirs, appended fields bring theirs.

Lossless widenings:

=====================================  ==========================================
from                                   to
=====================================  ==========================================
int8 / int16 / int32                   any wider signed int
uint8 / uint16 / uint32                any wider unsigned int, any strictly wider signed int
int8, int16, uint8, uint16             float32, float64
int32, uint32                          float64
float16                                float32, float64
float32                                float64
string / binary                        large_string / large_binary
list<T>                                large_list<T'> (T widened to T')
decimal(p, s) (any width)              decimal(p2, s) with p2 >= p (any width)
=====================================  ==========================================

Everything else (int64 -> float64, timestamp unit or zone changes, date -> timestamp, string ->
int, ...) is a SchemaError naming the column, the old and the new type.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, cast

from lakekit.errors import SchemaError

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["can_widen", "check_schema", "evolve_schema"]


# -- check_schema ------------------------------------------------------------------------------
def check_schema(schema: object) -> pa.Schema:
    """Return ``schema`` if it can be a table schema, else raise.

    Raises:
        SchemaError: not a ``pyarrow.Schema``, no columns, an empty or duplicate column name
            (also ignoring case), or a type that cannot be stored (see the module docstring).
            The message names the column (dotted path for nested fields) and what to do.
    """
    import pyarrow as pa

    if not isinstance(schema, pa.Schema):
        raise SchemaError(
            f"a table schema must be an Arrow schema (pyarrow.Schema), got {_describe(schema)}; "
            "build one with "
            "pa.schema([('id', pa.int64()), ...]) or take it from data (table.schema, "
            "pa.Schema.from_pandas(df))"
        )
    if len(schema) == 0:
        raise SchemaError("a table schema needs at least one column")
    _check_fields(list(schema), prefix="")
    _probe_parquet(schema)
    return schema


def _describe(value: object) -> str:
    cls = type(value)
    module = cls.__module__.split(".", 1)[0]
    name = cls.__name__ if module == "builtins" else f"{module}.{cls.__name__}"
    return f"a {name}"


def _check_fields(fields: list[pa.Field[Any]], prefix: str) -> None:
    seen: dict[str, str] = {}
    for field in fields:
        path = f"{prefix}{field.name}"
        if not field.name:
            where = f" inside {prefix[:-1]!r}" if prefix else ""
            raise SchemaError(f"a column{where} has an empty name; every column needs a name")
        folded = field.name.casefold()
        if folded in seen:
            other = seen[folded]
            what = "appears twice" if other == field.name else f"clashes with {prefix}{other!r}"
            raise SchemaError(
                f"column {path!r} {what}: column names must be unique, also ignoring case "
                "(query engines treat 'id' and 'ID' as the same column)",
                column=path,
            )
        seen[folded] = field.name
        _check_type(field.type, path)


def _check_type(data_type: pa.DataType, path: str) -> None:
    import pyarrow as pa

    dtype: Any = data_type  # the stubs type nested accessors per subclass

    if pa.types.is_null(dtype):
        raise SchemaError(
            f"column {path!r} has type null (no values to infer a type from); give it a concrete "
            f"type, e.g. pa.field({path.rsplit('.', 1)[-1]!r}, pa.string())",
            column=path,
            new_type=str(dtype),
        )
    if pa.types.is_dictionary(dtype):
        raise SchemaError(
            f"column {path!r} is dictionary-encoded ({dtype}); use its value type "
            f"{dtype.value_type} in the table schema (Parquet dictionary-encodes by itself)",
            column=path,
            new_type=str(dtype),
        )
    if pa.types.is_union(dtype):
        raise SchemaError(
            f"column {path!r} has a union type ({dtype}), which Parquet cannot store; use a "
            "struct with one nullable field per alternative",
            column=path,
            new_type=str(dtype),
        )
    if pa.types.is_struct(dtype):
        if dtype.num_fields == 0:
            raise SchemaError(
                f"column {path!r} is a struct without fields, which Parquet cannot store",
                column=path,
                new_type=str(dtype),
            )
        _check_fields(list(dtype), prefix=f"{path}.")
    elif _is_list_like(dtype) or pa.types.is_list_view(dtype) or pa.types.is_large_list_view(dtype):
        _check_type(dtype.value_type, f"{path}.element")
    elif pa.types.is_map(dtype):
        _check_type(dtype.key_type, f"{path}.key")
        _check_type(dtype.item_type, f"{path}.value")
    elif isinstance(dtype, pa.BaseExtensionType):
        _check_type(dtype.storage_type, path)


def _probe_parquet(schema: pa.Schema) -> None:
    """Ask the Parquet writer itself whether it can store ``schema`` (about 20 µs)."""
    import pyarrow as pa

    error = _parquet_error(schema)
    if error is None:
        return
    for field in schema:
        field_error = _parquet_error(pa.schema([field]))
        if field_error is not None:
            raise SchemaError(
                f"column {field.name!r} has type {field.type}, which Parquet cannot store: "
                f"{field_error}",
                column=field.name,
                new_type=str(field.type),
            )
    raise SchemaError(f"Parquet cannot store this schema: {error}")


def _parquet_error(schema: pa.Schema) -> str | None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        writer = pq.ParquetWriter(io.BytesIO(), schema)
    except (pa.ArrowNotImplementedError, pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        return str(exc)
    writer.close()
    return None


# -- widening ----------------------------------------------------------------------------------
def can_widen(old: pa.DataType, new: pa.DataType) -> bool:
    """Whether every value of type ``old`` is exactly representable in type ``new``.

    True for equal types and for the lossless widenings of the module docstring, applied
    recursively to struct, list and map children (a struct may gain nullable fields). Use it
    to decide whether data of type ``old`` can be cast into a column of type ``new``.
    """
    try:
        merged = _merge_type(old, new, "value")
    except SchemaError:
        return False
    return merged.equals(new)


def _is_list_like(dtype: pa.DataType) -> bool:
    import pyarrow as pa

    return bool(pa.types.is_list(dtype) or pa.types.is_large_list(dtype))


_INT_FITS_FLOAT = {32: 16, 64: 32}
"""Float bit width -> widest integer whose every value that float holds exactly."""


def _primitive_widens(old: pa.DataType, new: pa.DataType) -> bool:
    """``old`` -> ``new`` is one of the lossless primitive widenings (old != new)."""
    import pyarrow as pa

    types = pa.types
    a: Any = old
    b: Any = new
    if types.is_integer(a):
        if types.is_integer(b):
            # signed -> signed, unsigned -> unsigned, unsigned -> signed; always strictly wider
            sign_ok = types.is_signed_integer(b) or not types.is_signed_integer(a)
            return bool(sign_ok and b.bit_width > a.bit_width)
        return bool(types.is_floating(b) and a.bit_width <= _INT_FITS_FLOAT.get(b.bit_width, 0))
    if types.is_floating(a):
        return bool(types.is_floating(b) and b.bit_width > a.bit_width)
    if types.is_decimal(a):
        return bool(types.is_decimal(b) and b.scale == a.scale and b.precision >= a.precision)
    return bool(
        (types.is_string(a) and types.is_large_string(b))
        or (types.is_binary(a) and types.is_large_binary(b))
    )


def _type_error(path: str, old: pa.DataType, new: pa.DataType, why: str = "") -> SchemaError:
    reason = why or (
        "only lossless widenings are allowed (e.g. int32 -> int64, float32 -> float64, "
        "string -> large_string, decimal(p, s) -> decimal(p2 >= p, s)); write the data into a "
        "new column or a new table instead"
    )
    return SchemaError(
        f"column {path!r} cannot change type from {old} to {new}: {reason}",
        column=path,
        old_type=str(old),
        new_type=str(new),
    )


def _merge_type(old: pa.DataType, new: pa.DataType, path: str) -> pa.DataType:
    """The type that holds every value of ``old`` and of ``new`` losslessly, or SchemaError."""
    nested = _merge_nested(old, new, path)
    if nested is not None:
        return nested
    if old.equals(new):
        return old
    if _primitive_widens(old, new):
        return new
    if _primitive_widens(new, old):
        return old  # the new data fits into the existing, wider column
    raise _type_error(path, old, new)


def _merge_nested(old: pa.DataType, new: pa.DataType, path: str) -> pa.DataType | None:
    """Merge two structs, lists or maps child by child; None if they are not both nested."""
    import pyarrow as pa

    types = pa.types
    a: Any = old
    b: Any = new
    merged: Any = None
    if types.is_struct(a) and types.is_struct(b):
        merged = pa.struct(_merge_fields(list(a), list(b), prefix=f"{path}."))
    elif _is_list_like(a) and _is_list_like(b):
        value = _merge_child(a.value_field, b.value_field, f"{path}.element")
        large = types.is_large_list(a) or types.is_large_list(b)
        merged = pa.large_list(value) if large else pa.list_(value)
    elif types.is_fixed_size_list(a) and types.is_fixed_size_list(b):
        if a.list_size != b.list_size:
            raise _type_error(path, old, new, "a fixed-size list cannot change its size")
        merged = pa.list_(
            _merge_child(a.value_field, b.value_field, f"{path}.element"), a.list_size
        )
    elif types.is_map(a) and types.is_map(b):
        if not a.key_type.equals(b.key_type):
            raise _type_error(f"{path}.key", a.key_type, b.key_type, "map keys cannot change type")
        item = _merge_child(a.item_field, b.item_field, f"{path}.value")
        merged = pa.map_(a.key_field, item, a.keys_sorted)
    return cast("pa.DataType | None", merged)


def _merge_child(old: pa.Field[Any], new: pa.Field[Any], path: str) -> pa.Field[Any]:
    """Merge a list element or map value field (keeps the old field's name and metadata)."""
    merged = _merge_type(old.type, new.type, path)
    return old.with_type(merged).with_nullable(old.nullable or new.nullable)


def _merge_fields(
    old: list[pa.Field[Any]], new: list[pa.Field[Any]], prefix: str
) -> list[pa.Field[Any]]:
    by_name = {f.name: f for f in new}
    old_folded = {f.name.casefold(): f.name for f in old}
    merged: list[pa.Field[Any]] = []
    for field in old:
        incoming = by_name.get(field.name)
        if incoming is None:
            merged.append(field)
            continue
        path = f"{prefix}{field.name}"
        dtype = _merge_type(field.type, incoming.type, path)
        merged.append(field.with_type(dtype).with_nullable(field.nullable or incoming.nullable))
    old_names = {f.name for f in old}
    for field in new:
        if field.name in old_names:
            continue
        path = f"{prefix}{field.name}"
        existing = old_folded.get(field.name.casefold())
        if existing is not None:
            raise SchemaError(
                f"new column {path!r} differs only in case from existing column "
                f"{prefix}{existing!r}; use the existing spelling (engines ignore case)",
                column=path,
            )
        if not field.nullable:
            raise SchemaError(
                f"new column {path!r} must be nullable: existing rows have no value",
                column=path,
                new_type=str(field.type),
            )
        merged.append(field)
    return merged


# -- evolve_schema -----------------------------------------------------------------------------
def evolve_schema(old: pa.Schema, new: pa.Schema, *, strict: bool = False) -> pa.Schema:
    """Merge ``new`` into ``old`` following the rules of the module docstring.

    Pure function: returns the merged schema (``old`` itself when nothing changes) and never
    narrows a column, so every row written under ``old`` stays readable with its exact value.

    Args:
        old: the table's current schema.
        new: the schema of incoming data (or a desired schema).
        strict: allow no change at all: ``new`` must have the same columns (in any order) with
            the same types and nullability; metadata is ignored. Returns ``old``.

    Raises:
        SchemaError: an invalid schema (see :func:`check_schema`), an incompatible type change
            (naming the column, old and new type), a non-nullable new column, or, with
            ``strict``, any difference (all of them listed).
    """
    check_schema(old)
    check_schema(new)
    if strict:
        _check_equal(old, new)
        return old
    import pyarrow as pa

    fields = _merge_fields(list(old), list(new), prefix="")
    merged = pa.schema(fields, metadata=cast("dict[bytes | str, bytes | str] | None", old.metadata))
    if merged.equals(old, check_metadata=True):
        return old
    return merged


def _check_equal(old: pa.Schema, new: pa.Schema) -> None:
    problems: list[tuple[str, str]] = []
    new_by_name = {f.name: f for f in new}
    for field in old:
        incoming = new_by_name.get(field.name)
        if incoming is None:
            problems.append((field.name, f"missing column {field.name!r} ({field.type})"))
            continue
        if not incoming.type.equals(field.type):
            problems.append(
                (
                    field.name,
                    f"column {field.name!r} has type {incoming.type}, expected {field.type}",
                )
            )
        if incoming.nullable != field.nullable:
            want = "nullable" if field.nullable else "not null"
            got = "nullable" if incoming.nullable else "not null"
            problems.append((field.name, f"column {field.name!r} is {got}, expected {want}"))
    old_names = set(old.names)
    problems.extend(
        (f.name, f"unexpected column {f.name!r} ({f.type})") for f in new if f.name not in old_names
    )
    if problems:
        column = problems[0][0]
        old_field = old.field(column) if column in old_names else None
        new_field = new_by_name.get(column)
        raise SchemaError(
            "the schema must match the table's schema exactly (strict mode): "
            + "; ".join(_unique(p for _, p in problems)),
            column=column,
            old_type=None if old_field is None else str(old_field.type),
            new_type=None if new_field is None else str(new_field.type),
        )


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))
