"""How a catalog table becomes a DuckDB view: which files it reads and the DDL over them.

:func:`table_files` is the one place that decides a table's files: for a lake table (one with
the ``lakekit.metadata`` property, written through :mod:`lakekit.tables`) the exact data files of
its current snapshot, from :func:`lakekit.tables.files.committed_files`; for any other catalog
table every Parquet object under its location.

:func:`view_ddl` writes ``CREATE OR REPLACE VIEW "ns"."name" AS SELECT <catalog columns> FROM
read_parquet([<files>], ...)``. DDL cannot take bound parameters: DuckDB stores a view as SQL
text and refuses parameter markers in it ("This type of statement can't be prepared"), so the
values a view needs are embedded as literals, safely: identifiers are lakekit-validated names
that are also double-quoted (``"`` doubled), and file paths, column names and type names are SQL
string literals with every ``'`` doubled (:func:`sql_string`). No other character is special
inside a DuckDB string literal (backslashes are not escapes), so a literal cannot end early.

Binding a view must open no data file (DuckDB binds ``read_parquet`` on the first file of its
list; with ``union_by_name`` on every file, which defeats partition pruning). Two ways:

* **uniform** (a snapshot whose files all hold the table's current schema): the list starts with
  an empty schema file (:mod:`._schema_files`) that DuckDB binds on, cheaply and from a footer it
  caches;
* **mapped** (any other table): the ``schema`` argument of ``read_parquet`` gives DuckDB the
  catalog's column names and types. Columns missing from older files read as NULL and narrower
  physical types are cast to the catalog type. DuckDB binds this map on every query (~0.5 ms),
  which is why the uniform form exists.

In both, identity partition columns come from the ``key=value`` directories typed by
``hive_types`` exactly as the catalog declares them (``dt`` is a DATE or a VARCHAR, never a
guess).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lakekit.adapters.duckdb._schema_files import hive_columns
from lakekit.errors import NotFoundError, NotSupportedError, QueryError

if TYPE_CHECKING:
    import pyarrow as pa

    from lakekit.interfaces.catalog import TableMetadata
    from lakekit.interfaces.object_store import ObjectStore

__all__ = [
    "FORMAT_SUFFIXES",
    "GLOB_CHARACTERS",
    "METADATA_PROPERTY",
    "TableFiles",
    "quote_ident",
    "sql_string",
    "table_files",
    "view_ddl",
]

FORMAT_SUFFIXES = {"parquet": ".parquet"}
"""Table formats the DuckDB engine reads, and the file suffix of each."""

GLOB_CHARACTERS = frozenset("*?[")
"""DuckDB expands a path holding any of these as a glob pattern, even inside a file list."""


METADATA_PROPERTY = "lakekit.metadata"
"""The catalog property of a lake table (the key of its current metadata file): the same as
``lakekit.tables.metadata.METADATA_PROPERTY`` (a test checks), spelled here so that reading a
listed table never imports the table layer."""


@dataclass(frozen=True, slots=True)
class TableFiles:
    """The data files a view over a table reads."""

    keys: tuple[str, ...]
    """Object keys relative to the lake root, sorted."""
    committed: bool
    """True: the exact files of the table's current snapshot; False: a listing of its location."""
    uniform_schema: bool
    """True when every file holds exactly the table's current columns and types (only ever
    known for a committed snapshot)."""


def table_files(table: TableMetadata, store: ObjectStore) -> TableFiles:
    """The data files of a table, sorted.

    A lake table (property ``lakekit.metadata``) reads exactly the files of its current
    snapshot; files being written, left by a crashed writer or replaced by a later snapshot are
    not read. The snapshot's file list is immutable and memoised per metadata file, so this
    costs no store request in the steady state.

    Any other table reads every object under ``table.location + "/"`` whose name ends with the
    format's suffix, ignoring any key with a path segment (below the location) that starts with
    ``_`` or ``.`` (the Hive/Spark convention for temporary and metadata files, e.g.
    ``_temporary/``). Its location is listed on every call.

    Raises:
        NotSupportedError: the table's format is not one DuckDB reads here.
        QueryError: the table's metadata file, which the catalog points at, is missing.
    """
    suffix = _suffix(table)
    if METADATA_PROPERTY in table.properties:
        from lakekit.tables.files import committed_files

        try:
            committed = committed_files(table, store)
        except NotFoundError as exc:
            raise QueryError(
                f"table {table.ident} cannot be read: the metadata file its catalog entry "
                f"points at is missing ({exc})"
            ) from exc
        return TableFiles(tuple(committed.keys), True, committed.uniform_schema)
    prefix = table.location.rstrip("/") + "/"
    keys = []
    for meta in store.list(prefix):
        relative = meta.key[len(prefix) :]
        if not relative.endswith(suffix):
            continue
        if any(segment.startswith(("_", ".")) for segment in relative.split("/")):
            continue
        keys.append(meta.key)
    keys.sort()
    return TableFiles(tuple(keys), False, False)


def view_ddl(
    table: TableMetadata,
    paths: Sequence[str],
    column_types: Sequence[str],
    *,
    schema_file: str | None = None,
) -> str:
    """The ``CREATE OR REPLACE VIEW`` statement exposing ``table`` over exactly ``paths``.

    Args:
        table: the catalog entry (its ident is already validated).
        paths: the files to read, as DuckDB addresses them (local paths or registered URLs).
        column_types: the DuckDB type of each column of ``table.schema``, in order.
        schema_file: the uniform form: every file in ``paths`` holds the columns of this
            (empty) file, which DuckDB binds on. None: the mapped form (``schema = map``).

    Raises:
        QueryError: a path holds a glob character, which DuckDB would expand.
    """
    schema: pa.Schema = table.schema
    name = f"{quote_ident(table.ident.namespace)}.{quote_ident(table.ident.name)}"
    columns = ", ".join(quote_ident(field.name) for field in schema)
    if not paths:
        # No files yet: zero rows with the catalog's columns and types.
        nulls = ", ".join(
            f"CAST(NULL AS {dtype}) AS {quote_ident(field.name)}"
            for field, dtype in zip(schema, column_types, strict=True)
        )
        return f"CREATE OR REPLACE VIEW {name} AS SELECT {nulls} WHERE false"
    for path in paths:
        if GLOB_CHARACTERS.intersection(path):
            raise QueryError(
                f"table {table.ident} has a file DuckDB would read as a glob pattern "
                f"(it contains one of * ? [): {path!r}; rename the file"
            )
    types = dict(zip(schema.names, column_types, strict=True))
    partition_columns = hive_columns(table)
    data_columns = [n for n in schema.names if n not in partition_columns]
    files = paths if schema_file is None else [schema_file, *paths]
    file_list = ", ".join(sql_string(path) for path in files)
    options = [f"hive_partitioning = {'true' if table.partition_spec.is_partitioned else 'false'}"]
    if partition_columns:
        hive_types = ", ".join(
            f"{sql_string(c)}: {sql_string(types[c])}" for c in partition_columns
        )
        options.append(f"hive_types = {{{hive_types}}}")
        options.append("hive_types_autocast = false")
    if data_columns and schema_file is None:
        entries = ", ".join(
            f"{sql_string(c)}: {{name: {sql_string(c)}, type: {sql_string(types[c])}, "
            "default_value: NULL}"
            for c in data_columns
        )
        options.append(f"schema = map {{{entries}}}")
    # Every identifier above is quote_ident()-ed and every value sql_string()-ed.
    return (
        f"CREATE OR REPLACE VIEW {name} AS SELECT {columns} "  # noqa: S608
        f"FROM read_parquet([{file_list}], {', '.join(options)})"
    )


def quote_ident(name: str) -> str:
    """A double-quoted SQL identifier (embedded ``"`` doubled)."""
    return '"' + name.replace('"', '""') + '"'


def sql_string(value: str) -> str:
    """A single-quoted SQL string literal (embedded ``'`` doubled).

    Raises:
        QueryError: the value holds a NUL character, which no SQL literal can carry.
    """
    if "\x00" in value:
        raise QueryError(f"cannot embed a NUL character in SQL text: {value!r}")
    return "'" + value.replace("'", "''") + "'"


def _suffix(table: TableMetadata) -> str:
    try:
        return FORMAT_SUFFIXES[table.format]
    except KeyError:
        raise NotSupportedError(
            "DuckDBEngine",
            f"table format {table.format!r}",
            f"table {table.ident} cannot be queried; supported: {', '.join(FORMAT_SUFFIXES)}",
        ) from None
