"""Empty Parquet files that give DuckDB a view's columns without opening a data file.

``read_parquet([f1, f2, ...])`` binds on the first file of its list: it reads that file's
footer to learn the columns. A lakekit view must not do that with a data file (a filter on a
partition column would still open the first partition, and fail if that file is unreadable),
and the ``schema = map {...}`` option that avoids it costs ~0.5 ms of binding on every query.

For a table whose committed files all hold the table's current schema, the engine puts one of
these files first instead: zero rows, exactly the columns the table's data files hold (the
table's columns minus the identity partition columns, which live in the directory names), under
one ``<field>=__HIVE_DEFAULT_PARTITION__`` directory per partition field so its Hive layout
matches the data files'. Its partition values are NULL, so any filter on a partition column
prunes it, and it adds no row to any result.

Files are content-addressed (a digest of their schema and layout), written once under a
temporary name then renamed, and never modified, so DuckDB's footer cache stays valid and
concurrent writers of the same file are harmless.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import weakref
from typing import TYPE_CHECKING

from lakekit.errors import QueryError

if TYPE_CHECKING:
    import pyarrow as pa

    from lakekit.interfaces.catalog import TableMetadata

__all__ = ["NULL_PARTITION", "SchemaFiles", "file_columns", "hive_columns"]

NULL_PARTITION = "__HIVE_DEFAULT_PARTITION__"
"""The Hive directory value that DuckDB, pyarrow and Spark read as NULL."""

_FILE_NAME = "schema.parquet"


def hive_columns(table: TableMetadata) -> list[str]:
    """The table columns that are read from ``name=value`` directory names, not from files.

    Identity partition fields named after their column: lakekit's writer (as Hive and Spark do)
    leaves such a column out of the data files. Any other partition field (``day(ts)``, or an
    identity field renamed) is a directory level whose source column stays in the files.
    """
    return [
        f.source
        for f in table.partition_spec.fields
        if f.transform == "identity" and f.name == f.source
    ]


def file_columns(table: TableMetadata) -> pa.Schema:
    """The schema of the table's data files: its columns minus :func:`hive_columns`."""
    schema: pa.Schema = table.schema
    for name in hive_columns(table):
        schema = schema.remove(schema.get_field_index(name))
    return schema


class SchemaFiles:
    """Where an engine keeps its schema files, and their creation.

    Args:
        directory: a directory to keep them in (created if missing, kept on close: a
            persistent DuckDB database's views name these files); None for a private
            temporary directory, created on first use and removed by :meth:`close`.
    """

    def __init__(self, directory: str | None = None) -> None:
        self._fixed = directory
        self._private: str | None = None
        self._cleanup: weakref.finalize[[str], SchemaFiles] | None = None

    def path(self, table: TableMetadata) -> str:
        """The schema file for ``table``'s current data-file schema and partition layout.

        Writes it if it does not exist (also if something deleted it since).

        Raises:
            QueryError: the file cannot be written.
        """
        import pyarrow as pa

        schema = file_columns(table)
        levels = [f"{f.name}={NULL_PARTITION}" for f in table.partition_spec.fields]
        digest = hashlib.sha256(schema.serialize().to_pybytes())
        digest.update("/".join(levels).encode())
        base = os.path.join(self._root(), digest.hexdigest()[:32])
        path = os.path.join(base, *levels, _FILE_NAME)
        if os.path.isfile(path):
            return path
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            fd, partial = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".partial")
            try:
                with os.fdopen(fd, "wb") as sink:
                    import pyarrow.parquet as pq

                    pq.write_table(pa.Table.from_batches([], schema=schema), sink)
                os.replace(partial, path)
            except BaseException:
                os.unlink(partial)
                raise
        except (OSError, pa.ArrowException) as exc:
            raise QueryError(
                f"cannot write the schema file DuckDB binds table {table.ident} on ({path}): {exc}"
            ) from exc
        return path

    def close(self) -> None:
        """Remove the private directory (and its files). Idempotent."""
        if self._cleanup is not None:
            self._cleanup()

    def _root(self) -> str:
        if self._fixed is not None:
            return self._fixed
        if self._private is None:
            self._private = tempfile.mkdtemp(prefix="lakekit-duckdb-")
            self._cleanup = weakref.finalize(self, _remove_tree, self._private)
        return self._private


def _remove_tree(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)
