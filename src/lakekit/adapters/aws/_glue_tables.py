"""How a lakekit table is written into Glue: a standard Hive/Parquet table plus lakekit's metadata.

Other engines (Athena, Redshift Spectrum, EMR/Spark, Trino) read the *Hive* part: columns with
Hive types mapped from Arrow, the Parquet SerDe, ``PartitionKeys`` and one Glue partition per
partition directory. lakekit reads its own parameters, which hold the exact Arrow schema (IPC,
base64), the partition spec, the relative location, the user's properties and the version:

==========================  ======================================================
``lakekit.version``         commit counter (1 on create, +1 per commit)
``lakekit.table_id``        random id; names this table's commit records in S3
``lakekit.schema``          the Arrow schema, IPC-serialised, base64
``lakekit.partition_spec``  the PartitionSpec as JSON
``lakekit.location``        the table's location relative to the lake root
``lakekit.format``          ``parquet``
``lakekit.properties``      the user's table properties as JSON
``lakekit.updated_at``      milliseconds since the epoch of the last commit
==========================  ======================================================
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from lakekit.errors import InvalidInputError
from lakekit.identifiers import TableIdent
from lakekit.interfaces.catalog import TableMetadata
from lakekit.partition_spec import PartitionSpec

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = [
    "NULL_PARTITION",
    "PARAM_TABLE_ID",
    "PARAM_VERSION",
    "hive_columns",
    "hive_type",
    "is_lakekit_table",
    "metadata_from_glue",
    "partition_input",
    "partition_keys",
    "table_input",
]

PARAM_VERSION = "lakekit.version"
PARAM_TABLE_ID = "lakekit.table_id"
PARAM_SCHEMA = "lakekit.schema"
PARAM_SPEC = "lakekit.partition_spec"
PARAM_LOCATION = "lakekit.location"
PARAM_FORMAT = "lakekit.format"
PARAM_PROPERTIES = "lakekit.properties"
PARAM_UPDATED = "lakekit.updated_at"
NULL_PARTITION = "__HIVE_DEFAULT_PARTITION__"

PARQUET_INPUT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"
PARQUET_OUTPUT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat"
PARQUET_SERDE = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
_MAX_COMMENT = 255


def hive_type(data_type: pa.DataType) -> str:
    """The Hive (Glue/Athena) type of an Arrow type, as Athena reads it from Parquet.

    Unsigned integers widen to the next signed type (uint64 -> decimal(20,0)); time-of-day has
    no Hive type and is declared ``bigint`` (its Parquet storage); every timestamp is
    ``timestamp``; dictionaries and views count as their value type.
    """
    import pyarrow.types as t

    if t.is_dictionary(data_type):
        return hive_type(data_type.value_type)
    simple: list[tuple[Any, str]] = [
        (t.is_boolean, "boolean"),
        (t.is_int8, "tinyint"),
        (t.is_int16, "smallint"),
        (t.is_int32, "int"),
        (t.is_int64, "bigint"),
        (t.is_uint8, "smallint"),
        (t.is_uint16, "int"),
        (t.is_uint32, "bigint"),
        (t.is_uint64, "decimal(20,0)"),
        (t.is_float16, "float"),
        (t.is_float32, "float"),
        (t.is_float64, "double"),
        (t.is_date, "date"),
        (t.is_timestamp, "timestamp"),
        (t.is_time, "bigint"),
        (t.is_duration, "bigint"),
        (t.is_null, "string"),
    ]
    for check, name in simple:
        if check(data_type):
            return name
    return _composite_hive_type(data_type)


def _composite_hive_type(data_type: pa.DataType) -> str:
    import pyarrow as pa
    import pyarrow.types as t

    if t.is_decimal(data_type):
        name = f"decimal({min(data_type.precision, 38)},{data_type.scale})"
    elif t.is_string(data_type) or t.is_large_string(data_type) or t.is_string_view(data_type):
        name = "string"
    elif (
        t.is_binary(data_type)
        or t.is_large_binary(data_type)
        or t.is_fixed_size_binary(data_type)
        or t.is_binary_view(data_type)
    ):
        name = "binary"
    elif isinstance(data_type, pa.ListType | pa.LargeListType | pa.FixedSizeListType):
        name = f"array<{hive_type(data_type.value_type)}>"
    elif isinstance(data_type, pa.MapType):
        name = f"map<{hive_type(data_type.key_type)},{hive_type(data_type.item_type)}>"
    elif isinstance(data_type, pa.StructType):
        members = ",".join(
            f"{data_type.field(i).name}:{hive_type(data_type.field(i).type)}"
            for i in range(data_type.num_fields)
        )
        name = f"struct<{members}>"
    else:
        name = "string"
    return name


def hive_columns(schema: pa.Schema, spec: PartitionSpec) -> list[dict[str, str]]:
    """The Glue ``Columns`` of a table: every field except identity partition columns (Hive
    keeps those in the directory names, as lakekit's writer does)."""
    in_path = {f.source for f in spec.fields if f.transform == "identity"}
    columns = []
    for schema_field in schema:
        if schema_field.name in in_path:
            continue
        column = {"Name": schema_field.name.lower(), "Type": hive_type(schema_field.type)}
        comment = (schema_field.metadata or {}).get(b"comment")
        if comment:
            column["Comment"] = comment.decode("utf-8", "replace")[:_MAX_COMMENT]
        columns.append(column)
    return columns


def partition_keys(schema: pa.Schema, spec: PartitionSpec) -> list[dict[str, str]]:
    """The Glue ``PartitionKeys``: one per spec field, typed like its directory values."""
    from lakekit.tables.transforms import partition_type

    keys = []
    for spec_field in spec.fields:
        if spec_field.source in schema.names:
            value_type = partition_type(spec_field, schema.field(spec_field.source).type)
            hive = hive_type(value_type)
        else:
            hive = "string"
        keys.append({"Name": spec_field.name, "Type": hive})
    return keys


def table_input(
    metadata: TableMetadata,
    *,
    table_id: str,
    root_uri: str,
    updated_ms: int | None = None,
) -> dict[str, Any]:
    """The Glue ``TableInput`` for ``metadata`` (Hive part + lakekit parameters)."""
    schema, spec = metadata.schema, metadata.partition_spec
    properties = json.dumps(dict(metadata.properties), sort_keys=True, ensure_ascii=False)
    parameters = {
        "classification": "parquet",
        "EXTERNAL": "TRUE",
        PARAM_VERSION: str(metadata.version),
        PARAM_TABLE_ID: table_id,
        PARAM_SCHEMA: base64.b64encode(schema.serialize().to_pybytes()).decode("ascii"),
        PARAM_SPEC: spec.model_dump_json(),
        PARAM_LOCATION: metadata.location,
        PARAM_FORMAT: metadata.format,
        PARAM_PROPERTIES: properties,
        PARAM_UPDATED: str(updated_ms if updated_ms is not None else int(time.time() * 1000)),
    }
    return {
        "Name": metadata.ident.name,
        "TableType": "EXTERNAL_TABLE",
        "Parameters": parameters,
        "PartitionKeys": partition_keys(schema, spec),
        "StorageDescriptor": _storage(
            hive_columns(schema, spec), _uri(root_uri, metadata.location)
        ),
    }


def partition_input(
    table: Mapping[str, Any], values: list[str], directory_uri: str
) -> dict[str, Any]:
    """A Glue ``PartitionInput`` for one partition directory of ``table`` (a TableInput)."""
    columns = table["StorageDescriptor"]["Columns"]
    return {"Values": values, "StorageDescriptor": _storage(columns, directory_uri)}


def partition_values(spec: PartitionSpec, values: Mapping[str, str | None]) -> list[str] | None:
    """The Glue partition ``Values`` (in spec order) of a directory's decoded values; None when
    Glue cannot hold them (it requires 1 to 1024 characters: an empty-string partition value,
    directory ``name=``, has no Glue partition, so Hive engines do not see its rows)."""
    out = []
    for spec_field in spec.fields:
        value = values.get(spec_field.name)
        text = NULL_PARTITION if value is None else value
        if not 0 < len(text) <= 1024:
            return None
        out.append(text)
    return out


def _storage(columns: list[dict[str, str]], location: str) -> dict[str, Any]:
    return {
        "Columns": columns,
        "Location": location,
        "InputFormat": PARQUET_INPUT,
        "OutputFormat": PARQUET_OUTPUT,
        "Compressed": False,
        "NumberOfBuckets": -1,
        "StoredAsSubDirectories": False,
        "SerdeInfo": {
            "SerializationLibrary": PARQUET_SERDE,
            "Parameters": {"serialization.format": "1"},
        },
    }


def _uri(root_uri: str, location: str) -> str:
    return f"{root_uri.rstrip('/')}/{location}/" if location else f"{root_uri.rstrip('/')}/"


def is_lakekit_table(table: Mapping[str, Any]) -> bool:
    """Whether a Glue table (GetTable's ``Table``) was created by lakekit."""
    parameters = table.get("Parameters") or {}
    return PARAM_VERSION in parameters and PARAM_SCHEMA in parameters


def metadata_from_glue(ident: TableIdent, table: Mapping[str, Any]) -> TableMetadata:
    """lakekit's view of a Glue table created by lakekit.

    Raises:
        InvalidInputError: the table was not created by lakekit (names the table and the fix).
    """
    import pyarrow as pa

    parameters: Mapping[str, str] = table.get("Parameters") or {}
    if not is_lakekit_table(table):
        raise InvalidInputError(
            f"Glue table {ident} was not created by lakekit (no lakekit.* parameters); create "
            "it through lakekit, or adopt its files with lake.register_table()"
        )
    try:
        schema = pa.ipc.read_schema(pa.py_buffer(base64.b64decode(parameters[PARAM_SCHEMA])))
        spec = PartitionSpec.model_validate_json(parameters.get(PARAM_SPEC) or "{}")
        properties = json.loads(parameters.get(PARAM_PROPERTIES) or "{}")
        version = int(parameters[PARAM_VERSION])
        updated_ms = int(parameters.get(PARAM_UPDATED) or 0)
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidInputError(
            f"Glue table {ident} has damaged lakekit parameters: {exc}"
        ) from exc
    created = table.get("CreateTime")
    created_at = _utc(created) if isinstance(created, datetime) else None
    updated_at = datetime.fromtimestamp(updated_ms / 1000, tz=UTC) if updated_ms else created_at
    if created_at is not None and updated_at is not None and updated_at < created_at:
        updated_at = created_at  # Glue's CreateTime and our clock may differ by a little
    return TableMetadata(
        ident=ident,
        location=parameters.get(PARAM_LOCATION, ""),
        schema=schema,
        format=parameters.get(PARAM_FORMAT, "parquet"),
        partition_spec=spec,
        properties={str(k): str(v) for k, v in properties.items()},
        version=version,
        created_at=created_at,
        updated_at=updated_at,
    )


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
