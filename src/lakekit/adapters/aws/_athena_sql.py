"""lakekit's bound parameters as Athena execution parameters.

Athena binds values to ``?`` placeholders in order (``ExecutionParameters``); each value is the
text of a SQL literal, which Athena parses as a literal, never as part of the statement. lakekit
accepts ``?`` and ``$1`` with a sequence, and ``$name`` with a mapping (as every engine does), so
the statement is rewritten to ``?`` placeholders and the values are listed in the order they
appear. Placeholders inside string literals, quoted identifiers and comments are left alone.

Python values become these literals:

=========================  =========================================================
``None``                   ``NULL``
``bool``                   ``true`` / ``false``
``int``                    ``42``
``float``                  ``1.5``, ``1e-05``; NaN and infinities as ``nan()``,
                           ``infinity()``, ``-infinity()``
``decimal.Decimal``        ``DECIMAL '12.50'``
``str``                    ``'it''s'`` (single quotes doubled)
``bytes``                  ``X'00ff'`` (varbinary)
``datetime.datetime``      ``TIMESTAMP '2026-03-01 12:00:00.123456'``; an aware datetime is
                           converted to UTC first
``datetime.date``          ``DATE '2026-03-01'``
``datetime.time``          ``TIME '12:00:00.500000'``
``list`` / ``tuple``       ``ARRAY[...]`` of the above
=========================  =========================================================
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from lakekit.errors import InvalidInputError

__all__ = ["literal", "translate"]

_TOKEN = re.compile(
    r"""
      (?P<string>'(?:[^']|'')*')
    | (?P<quoted>"(?:[^"]|"")*")
    | (?P<backtick>`[^`]*`)
    | (?P<line_comment>--[^\n]*)
    | (?P<block_comment>/\*.*?\*/)
    | (?P<numbered>\$[0-9]+)
    | (?P<named>\$[A-Za-z_][A-Za-z0-9_]*)
    | (?P<question>\?)
    """,
    re.VERBOSE | re.DOTALL,
)


def translate(  # noqa: PLR0912 - one branch per placeholder kind and mismatch
    sql: str, params: Sequence[Any] | Mapping[str, Any] | None
) -> tuple[str, list[str]]:
    """``sql`` with every placeholder turned into ``?``, and the literal of each, in order.

    Raises:
        InvalidInputError: placeholders and parameters do not match (a missing or unused
            parameter, ``?`` mixed with ``$1``, named placeholders with a sequence, ...), or a
            value has no SQL literal.
    """
    if params is None:
        return sql, []
    mapping: Mapping[str, Any] | None = params if isinstance(params, Mapping) else None
    sequence: Sequence[Any] = () if isinstance(params, Mapping) else params
    named = mapping is not None
    out: list[str] = []
    values: list[str] = []
    used: set[Any] = set()
    kinds: set[str] = set()
    position = 0
    last = 0
    for match in _TOKEN.finditer(sql):
        kind = match.lastgroup
        if kind not in ("numbered", "named", "question"):
            continue
        token = match.group(0)
        kinds.add(kind)
        if named:
            if kind != "named":
                raise InvalidInputError(
                    f"placeholder {token!r} needs a sequence of parameters; with a mapping use "
                    "$name placeholders"
                )
            name = token[1:]
            assert mapping is not None
            if name not in mapping:
                raise InvalidInputError(f"no value for parameter ${name}")
            value = mapping[name]
            used.add(name)
        else:
            if kind == "named":
                raise InvalidInputError(
                    f"placeholder {token!r} needs a mapping of parameters ({{'name': value}})"
                )
            if kind == "question":
                index = position
                position += 1
            else:
                index = int(token[1:]) - 1
            if not 0 <= index < len(sequence):
                raise InvalidInputError(
                    f"placeholder {token!r} has no value: {len(sequence)} parameter(s) given"
                )
            value = sequence[index]
            used.add(index)
        out.append(sql[last : match.start()])
        out.append("?")
        values.append(literal(value))
        last = match.end()
    out.append(sql[last:])
    if {"numbered", "question"} <= kinds:
        raise InvalidInputError("use either ? or $1-style placeholders in one statement, not both")
    unused = (set(mapping) if mapping is not None else set(range(len(sequence)))) - used
    if unused:
        shown = sorted(f"${u}" if isinstance(u, str) else f"#{u + 1}" for u in unused)
        raise InvalidInputError(f"parameter(s) {', '.join(shown)} are not used by the statement")
    return "".join(out), values


def literal(value: Any) -> str:  # noqa: PLR0911, PLR0912 - one branch per type
    """The Athena (Trino) SQL literal of a Python value.

    Raises:
        InvalidInputError: the value's type has no literal (the message lists the ones that do).
    """
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan()"
        if math.isinf(value):
            return "infinity()" if value > 0 else "-infinity()"
        return repr(value)
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise InvalidInputError(f"decimal parameter must be finite, got {value}")
        return f"DECIMAL '{value}'"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, bytes | bytearray | memoryview):
        return f"X'{bytes(value).hex()}'"
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return f"TIMESTAMP '{value.isoformat(sep=' ', timespec='microseconds')}'"
    if isinstance(value, dt.date):
        return f"DATE '{value.isoformat()}'"
    if isinstance(value, dt.time):
        if value.tzinfo is not None:
            raise InvalidInputError("time parameters must be naive (Athena has no zoned TIME)")
        return f"TIME '{value.isoformat(timespec='microseconds')}'"
    if isinstance(value, list | tuple):
        return "ARRAY[" + ", ".join(literal(item) for item in value) + "]"
    raise InvalidInputError(
        f"cannot bind a {type(value).__name__} parameter for Athena: use None, bool, int, float, "
        "Decimal, str, bytes, datetime, date, time, or a list of those"
    )
