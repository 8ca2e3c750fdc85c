"""Names of namespaces and tables: ``namespace.table``.

Names are lowercase ASCII letters, digits and underscores, starting with a letter or underscore,
at most 128 characters. That is the subset every target engine (DuckDB, Athena/Glue, BigQuery,
Synapse, Spark) accepts unquoted and case-insensitively, so a table keeps its name across clouds.
Names are never silently rewritten: a name outside the subset is an error that says why.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lakekit.errors import InvalidInputError

__all__ = ["TableIdent", "validate_name"]

_NAME = re.compile(r"[a-z_][a-z0-9_]{0,127}")


def validate_name(name: str, *, what: str = "name") -> str:
    """Return ``name`` if it is a valid namespace or table name, else raise.

    Raises:
        InvalidInputError: naming the rule that was broken and, where it helps, a valid spelling.
    """
    if not isinstance(name, str):
        raise InvalidInputError(f"{what} must be a str, got {type(name).__name__}")
    if _NAME.fullmatch(name):
        return name
    hint = ""
    lowered = re.sub(r"[^a-z0-9_]", "_", name.lower())
    if lowered and _NAME.fullmatch(lowered):
        hint = f" (did you mean {lowered!r}?)"
    raise InvalidInputError(
        f"invalid {what} {name!r}: use lowercase letters, digits and '_', starting with a letter "
        f"or '_', at most 128 characters{hint}"
    )


@dataclass(frozen=True, order=True, slots=True)
class TableIdent:
    """A table's identity: its namespace and its name. ``str()`` gives ``namespace.table``."""

    namespace: str
    name: str

    def __post_init__(self) -> None:
        validate_name(self.namespace, what="namespace")
        validate_name(self.name, what="table name")

    @classmethod
    def parse(cls, value: str | TableIdent) -> TableIdent:
        """Parse ``"namespace.table"`` (or pass a ``TableIdent`` through).

        Raises:
            InvalidInputError: not exactly two valid dot-separated names.
        """
        if isinstance(value, TableIdent):
            return value
        if not isinstance(value, str):
            raise InvalidInputError(
                f"table identifier must be 'namespace.table', got {type(value).__name__}"
            )
        parts = value.split(".")
        if len(parts) != 2:
            raise InvalidInputError(
                f"table identifier {value!r} must be 'namespace.table' (exactly one dot)"
            )
        return cls(parts[0], parts[1])

    def __str__(self) -> str:
        return f"{self.namespace}.{self.name}"
