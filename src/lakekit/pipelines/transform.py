"""The T of ELT: materialise a SQL query over the lake into a lake table.

``lake.transform("SELECT ... FROM raw.orders WHERE day = $day", into="marts.daily",
mode="overwrite_partitions", params={"day": "2024-01-02"}, partition_by=["day"])`` streams the
query's result (``QueryResult.to_reader``) into the table as **one** atomic snapshot: readers see
the previous data or all of the new data.

Incremental transforms: with ``mode="overwrite_partitions"`` only the partitions present in the
result are replaced, so a query bound to one day (``params``) rebuilds that day and leaves the
others untouched; running it again for the same day is idempotent.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

from lakekit.errors import InvalidInputError
from lakekit.identifiers import TableIdent

if TYPE_CHECKING:
    from lakekit.interfaces.query_engine import Params
    from lakekit.lake import Lake
    from lakekit.partition_spec import PartitionSpec
    from lakekit.tables.metadata import Snapshot
    from lakekit.tables.writer import WriteOptions

__all__ = ["TransformMode", "transform"]

TransformMode = Literal["overwrite", "append", "overwrite_partitions"]
_MODES = ("overwrite", "append", "overwrite_partitions")


def transform(
    lake: Lake,
    sql: str,
    into: str | TableIdent,
    *,
    mode: TransformMode = "overwrite",
    params: Params | None = None,
    partition_by: PartitionSpec | Sequence[str] | None = None,
    options: WriteOptions | None = None,
) -> Snapshot:
    """Write the result of ``sql`` (with bound ``params``) into table ``into``.

    The table is created from the result's schema and ``partition_by`` if it does not exist.
    Returns the committed snapshot.

    Raises:
        InvalidInputError: an unknown mode, or ``partition_by`` differing from an existing
            table's partitioning.
        QueryError: the engine rejected or failed the query.
        SchemaError: the result does not fit the existing table.
        CommitConflictError: a concurrent write changed the data this one replaces.
    """
    from lakekit.interfaces.catalog import _as_partition_spec

    if mode not in _MODES:
        raise InvalidInputError(f"unknown transform mode {mode!r}: use {', '.join(_MODES)}")
    ident = TableIdent.parse(into)
    if partition_by is not None:
        _as_partition_spec(partition_by)  # malformed specs fail before the query runs
    reader = lake.sql(sql, params).to_reader()
    try:
        if lake.catalog.table_exists(ident):
            table = lake.table(ident)
            if partition_by is not None and _as_partition_spec(partition_by) != (
                table.partition_spec
            ):
                raise InvalidInputError(
                    f"{ident} is partitioned by {table.partition_spec}, not "
                    f"{_as_partition_spec(partition_by)}: pass partition_by=None to write into it"
                )
        else:
            table = lake.create_table(
                ident, reader.schema, partition_by=partition_by, exist_ok=True
            )
        return table.write(reader, mode=mode, options=options)
    finally:
        reader.close()
