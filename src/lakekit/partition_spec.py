"""Partition specs: how a table's rows are laid out into Hive-style directories.

A spec is declared once per table and stored in the catalog. Each field takes a source column
through a transform (``identity``, ``year``, ``month``, ``day``, ``hour``, ``bucket[n]``,
``truncate[w]``) and names the directory level (``dt=2026-11-26/``).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from lakekit.errors import InvalidInputError
from lakekit.identifiers import validate_name

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["PartitionField", "PartitionSpec"]

_TRANSFORM = re.compile(
    r"identity|year|month|day|hour|bucket\[[1-9][0-9]*\]|truncate\[[1-9][0-9]*\]"
)


class PartitionField(BaseModel):
    """One level of partitioning: ``name=transform(source)``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: Annotated[str, Field(description="The column the value is derived from.")]
    transform: str = "identity"
    name: str = ""

    @field_validator("transform")
    @classmethod
    def _check_transform(cls, value: str) -> str:
        if not _TRANSFORM.fullmatch(value):
            raise ValueError(
                f"unknown partition transform {value!r}: use identity, year, month, day, hour, "
                "bucket[N] or truncate[W]"
            )
        return value

    @model_validator(mode="after")
    def _default_name(self) -> PartitionField:
        validate_name(self.source, what="partition source column")
        if not self.name:
            base = self.transform.split("[", 1)[0]
            object.__setattr__(
                self, "name", self.source if base == "identity" else f"{self.source}_{base}"
            )
        validate_name(self.name, what="partition field name")
        return self


class PartitionSpec(BaseModel):
    """An ordered list of partition fields; empty means unpartitioned."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    fields: tuple[PartitionField, ...] = ()

    @model_validator(mode="after")
    def _unique_names(self) -> PartitionSpec:
        names = [f.name for f in self.fields]
        if len(names) != len(set(names)):
            raise ValueError(f"partition field names must be unique, got {names}")
        return self

    @classmethod
    def of(cls, *fields: str | PartitionField) -> PartitionSpec:
        """Build a spec from column names (identity) or ``"day(ts)"``-style strings.

        Raises:
            InvalidInputError: an unknown transform, a bad column name or duplicate fields.
        """
        try:
            parsed: list[PartitionField] = []
            for item in fields:
                if isinstance(item, PartitionField):
                    parsed.append(item)
                    continue
                match = re.fullmatch(r"(\w+(?:\[\d+\])?)\((\w+)\)", item)
                if match:
                    parsed.append(PartitionField(source=match.group(2), transform=match.group(1)))
                else:
                    parsed.append(PartitionField(source=item))
            return cls(fields=tuple(parsed))
        except ValidationError as exc:
            detail = "; ".join(err["msg"] for err in exc.errors())
            raise InvalidInputError(f"invalid partition spec {list(fields)!r}: {detail}") from None

    @property
    def is_partitioned(self) -> bool:
        return bool(self.fields)

    def check_columns(self, schema: pa.Schema) -> None:
        """Check that every field's source column is in ``schema``.

        Raises:
            SchemaError: naming the missing column and the schema's columns.
        """
        from lakekit.errors import SchemaError

        names = set(schema.names)
        for part in self.fields:
            if part.source not in names:
                raise SchemaError(
                    f"partition column {part.source!r} is not in the schema "
                    f"(columns: {', '.join(schema.names)})",
                    column=part.source,
                )
