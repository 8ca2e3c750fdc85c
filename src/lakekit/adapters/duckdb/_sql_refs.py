"""Which two-part names (``namespace.table``) a SQL statement reads, found by DuckDB's parser.

Why not ``duckdb.get_table_names``: in DuckDB 2.0 it *binds* the statement in a special mode,
so it fails on any statement with a parameter marker, expands views (and fails on lakekit's,
whose file lists it replaces by NULL), opens the files of ``read_parquet(...)`` calls and
reports the targets of CREATE/INSERT as if they were read.

So, on a private in-memory connection (never the engine's):

* a SELECT (DESCRIBE and SUMMARIZE parse as one) and ``EXPLAIN [ANALYZE] <select>`` go through
  ``json_serialize_sql``, a pure parse that accepts parameters and opens no file; every
  ``BASE_TABLE`` node with a schema and no catalog part is a name the statement *reads*
  (**strict**: a name that resolves nowhere is an error);
* any other statement (CREATE TABLE AS, INSERT, COPY, PIVOT, ...) is scanned with DuckDB's
  tokenizer for ``a.b`` pairs (**lenient**: such pairs may also be write targets or
  ``alias.column``; those that are catalog tables get a view, the rest are left to DuckDB).

Results are cached by statement text, so a repeated query costs one dictionary lookup.
"""

from __future__ import annotations

import json
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import duckdb

from lakekit.errors import InvalidInputError

__all__ = ["ParsedStatement", "StatementParser"]

_CACHE_SIZE = 512
_EXPLAIN = re.compile(r"\s*explain(?:\s+analyze)?\s+", re.IGNORECASE)
_NAME_TOKENS = frozenset({duckdb.token_type.identifier, duckdb.token_type.keyword})


@dataclass(frozen=True, slots=True)
class ParsedStatement:
    """What lakekit needs to know about one statement before running it."""

    refs: frozenset[tuple[str, str]]
    """Two-part names ``(schema, table)``, lowercased: DuckDB matches names case-insensitively."""
    strict: bool
    """True when ``refs`` are exactly the names the statement reads (from its parse tree)."""


class StatementParser:
    """Thread-safe, caching extractor of the ``namespace.table`` names in a statement."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, ParsedStatement] = OrderedDict()
        # An empty database: nothing to bind against, no file access, no extension downloads.
        self._con = duckdb.connect(
            ":memory:",
            config={
                "enable_external_access": False,
                "autoinstall_known_extensions": False,
                "autoload_known_extensions": False,
                "python_enable_replacements": False,
            },
        )

    def parse(self, sql: str) -> ParsedStatement:
        """The table names ``sql`` names.

        Raises:
            InvalidInputError: ``sql`` holds no statement or more than one.
            duckdb.Error: ``sql`` does not parse (the caller maps it to QueryError).
        """
        with self._lock:
            cached = self._cache.get(sql)
            if cached is not None:
                self._cache.move_to_end(sql)
                return cached
            parsed = self._parse(sql)
            self._cache[sql] = parsed
            if len(self._cache) > _CACHE_SIZE:
                self._cache.popitem(last=False)
            return parsed

    def close(self) -> None:
        with self._lock:
            self._con.close()
            self._cache.clear()

    # -- internals (called with the lock held) ------------------------------------------------
    def _parse(self, sql: str) -> ParsedStatement:
        tree = self._select_tree(sql)
        if tree is not None:
            return ParsedStatement(_base_tables(tree), strict=True)
        count = len(self._con.extract_statements(sql))  # raises a ParserException on bad SQL
        _check_one_statement(count)
        explain = _EXPLAIN.match(sql)
        if explain is not None:
            tree = self._select_tree(sql[explain.end() :])
            if tree is not None:
                return ParsedStatement(_base_tables(tree), strict=True)
        return ParsedStatement(_dotted_pairs(sql), strict=False)

    def _select_tree(self, sql: str) -> dict[str, Any] | None:
        """The parse tree of a SELECT-only text, or None if it is not one."""
        row = self._con.execute("SELECT json_serialize_sql(?)", [sql]).fetchone()
        if row is None:
            return None
        tree: dict[str, Any] = json.loads(row[0])
        if tree.get("error"):
            return None
        _check_one_statement(len(tree.get("statements", ())))
        return tree


def _check_one_statement(count: int) -> None:
    if count != 1:
        raise InvalidInputError(f"a query runs exactly one SQL statement; this text holds {count}")


def _base_tables(tree: dict[str, Any]) -> frozenset[tuple[str, str]]:
    """Every ``schema.table`` reference (no catalog part) in a serialized parse tree."""
    found: set[tuple[str, str]] = set()
    stack: list[Any] = [tree]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if (
                item.get("type") == "BASE_TABLE"
                and item.get("schema_name")
                and not item.get("catalog_name")
            ):
                found.add((item["schema_name"].lower(), item["table_name"].lower()))
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return frozenset(found)


def _dotted_pairs(sql: str) -> frozenset[tuple[str, str]]:
    """Every ``a.b`` name pair in the text that is not part of a longer ``a.b.c`` chain."""
    tokens = duckdb.tokenize(sql)
    texts = [
        sql[start : tokens[i + 1][0] if i + 1 < len(tokens) else len(sql)].strip()
        for i, (start, _kind) in enumerate(tokens)
    ]
    kinds = [kind for _start, kind in tokens]
    found: set[tuple[str, str]] = set()
    for i in range(len(tokens) - 2):
        if not (kinds[i] in _NAME_TOKENS and texts[i + 1] == "." and kinds[i + 2] in _NAME_TOKENS):
            continue
        if (i > 0 and texts[i - 1] == ".") or (i + 3 < len(tokens) and texts[i + 3] == "."):
            continue
        found.add((_unquote(texts[i]), _unquote(texts[i + 2])))
    return frozenset(found)


def _unquote(text: str) -> str:
    if len(text) >= 2 and text.startswith('"') and text.endswith('"'):
        text = text[1:-1].replace('""', '"')
    return text.lower()
