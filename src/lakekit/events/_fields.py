"""Reading fields out of native event payloads, with errors that say exactly what and where.

Every parser walks JSON-like data through :class:`Loc`, so a malformed payload raises
:class:`~lakekit.errors.InvalidInputError` such as ``S3 event Records[0].s3.object.key is
missing`` instead of a bare ``KeyError``/``TypeError``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from lakekit.errors import InvalidInputError

__all__ = [
    "Loc",
    "as_map",
    "decode_base64",
    "epoch_time",
    "iso_time",
    "load_json",
    "optional_str",
    "required",
    "required_list",
    "required_map",
    "required_str",
    "stable_id",
    "str_map",
    "type_name",
]


@dataclass(frozen=True, slots=True)
class Loc:
    """Where a value sits: ``what`` names the payload kind, ``path`` the field inside it."""

    what: str
    path: str = ""

    def key(self, name: str) -> Loc:
        """The location of field ``name`` of this (mapping) value."""
        return Loc(self.what, f"{self.path}.{name}" if self.path else name)

    def index(self, i: int) -> Loc:
        """The location of item ``i`` of this (list) value."""
        return Loc(self.what, f"{self.path}[{i}]")

    def __str__(self) -> str:
        return f"{self.what} {self.path}" if self.path else self.what

    def error(self, problem: str) -> InvalidInputError:
        """An :class:`InvalidInputError` saying ``<what> <path> <problem>``."""
        return InvalidInputError(f"{self} {problem}")


def type_name(value: object) -> str:
    """The JSON-ish name of ``value``'s type, for error messages."""
    names: tuple[tuple[type | tuple[type, ...], str], ...] = (
        (bool, "a boolean"),
        ((int, float), "a number"),
        (str, "a string"),
        (Mapping, "an object"),
        ((list, tuple), "a list"),
    )
    if value is None:
        return "null"
    for types, name in names:
        if isinstance(value, types):
            return name
    return type(value).__name__


def as_map(value: object, at: Loc) -> Mapping[str, Any]:
    """``value`` if it is a mapping, else raise naming ``at``."""
    if not isinstance(value, Mapping):
        raise at.error(f"must be a JSON object, got {type_name(value)}")
    return value


def required(obj: Mapping[str, Any], name: str, at: Loc) -> Any:
    """Field ``name`` of ``obj`` (which sits at ``at``); missing or null raises."""
    value = obj.get(name)
    if value is None:
        raise at.key(name).error("is missing")
    return value


def required_str(obj: Mapping[str, Any], name: str, at: Loc, *, empty_ok: bool = False) -> str:
    """Field ``name`` as a (non-empty unless ``empty_ok``) string."""
    value = required(obj, name, at)
    if not isinstance(value, str):
        raise at.key(name).error(f"must be a string, got {type_name(value)}")
    if not value and not empty_ok:
        raise at.key(name).error("is empty")
    return value


def optional_str(obj: Mapping[str, Any], name: str, at: Loc) -> str | None:
    """Field ``name`` as a string, or None when absent or null."""
    value = obj.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise at.key(name).error(f"must be a string, got {type_name(value)}")
    return value


def required_map(obj: Mapping[str, Any], name: str, at: Loc) -> Mapping[str, Any]:
    """Field ``name`` as a JSON object."""
    return as_map(required(obj, name, at), at.key(name))


def required_list(obj: Mapping[str, Any], name: str, at: Loc) -> Sequence[Any]:
    """Field ``name`` as a JSON list."""
    value = required(obj, name, at)
    if not isinstance(value, list | tuple):
        raise at.key(name).error(f"must be a list, got {type_name(value)}")
    return value


def str_map(value: object, at: Loc) -> dict[str, str]:
    """A ``{str: scalar}`` object as ``{str: str}`` (numbers and booleans become text)."""
    if value is None:
        return {}
    result: dict[str, str] = {}
    for name, item in as_map(value, at).items():
        if isinstance(item, str):
            result[str(name)] = item
        elif isinstance(item, bool):
            result[str(name)] = "true" if item else "false"
        elif isinstance(item, int | float):
            result[str(name)] = str(item)
        elif item is not None:
            raise at.key(str(name)).error(f"must be a string, got {type_name(item)}")
    return result


def iso_time(value: object, at: Loc) -> datetime:
    """An ISO 8601 timestamp as an aware UTC datetime (a naive one is taken as UTC)."""
    if not isinstance(value, str):
        raise at.error(f"must be an ISO 8601 timestamp string, got {type_name(value)}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise at.error(f"is not an ISO 8601 timestamp: {value!r}") from None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def epoch_time(value: object, at: Loc, *, millis: bool = False) -> datetime:
    """Seconds (or milliseconds) since the Unix epoch as an aware UTC datetime."""
    number: float
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise at.error(f"must be a Unix timestamp, got {type_name(value)}")
    try:
        number = float(value)
    except ValueError:
        raise at.error(f"is not a Unix timestamp: {value!r}") from None
    try:
        return datetime.fromtimestamp(number / 1000 if millis else number, UTC)
    except (OverflowError, OSError, ValueError):
        raise at.error(f"is out of range for a timestamp: {value!r}") from None


def decode_base64(value: object, at: Loc) -> bytes:
    """Standard (or URL-safe) base64 text as bytes."""
    if not isinstance(value, str):
        raise at.error(f"must be a base64 string, got {type_name(value)}")
    text = value.strip()
    try:
        if "-" in text or "_" in text:
            return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise at.error("is not valid base64") from None


def load_json(value: object, at: Loc) -> Any:
    """Parse a JSON document held in a string (or bytes) field."""
    if not isinstance(value, str | bytes | bytearray):
        raise at.error(f"must be a JSON string, got {type_name(value)}")
    try:
        return json.loads(value)
    except (ValueError, UnicodeDecodeError) as exc:
        raise at.error(f"is not valid JSON: {exc}") from None


def stable_id(*parts: object) -> str:
    """A deterministic id (hex SHA-256) of the identifying fields of an event.

    The same fields always give the same id, so a redelivered event keeps its id even when
    the provider assigns none.
    """
    text = "\x1f".join("" if part is None else str(part) for part in parts)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]
