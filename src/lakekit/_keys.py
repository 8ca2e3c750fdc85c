"""Validation of object keys and prefixes: nothing a caller passes may escape the lake root.

A key is a ``/``-separated relative path such as ``raw/2026/11/26/orders.json``. The rules are the
intersection of what S3, GCS, Azure Blob and a POSIX directory tree accept, so that a lake moves
between them unchanged.
"""

from __future__ import annotations

from lakekit.errors import InvalidInputError

__all__ = ["MAX_KEY_BYTES", "RESERVED_PREFIX", "validate_key", "validate_prefix"]

MAX_KEY_BYTES = 1024
"""S3 and GCS limit a key to 1024 UTF-8 bytes."""

RESERVED_PREFIX = ".lakekit"
"""Path segments starting with this are lakekit's own scratch space (temp files, locks)."""

_FORBIDDEN_CHARS = frozenset("\x00\\\r\n")


def validate_key(key: str) -> str:
    """Return ``key`` if it is a safe relative object key, else raise.

    Raises:
        InvalidInputError: the key is empty, absolute, has ``.``/``..``/empty segments,
            backslashes or control characters, or is longer than 1024 UTF-8 bytes.
    """
    if not isinstance(key, str):
        raise InvalidInputError(f"object key must be a str, got {type(key).__name__}")
    if not key:
        raise InvalidInputError("object key must not be empty")
    if key.endswith("/"):
        raise InvalidInputError(f"object key {key!r} ends with '/': that is a prefix, not a key")
    _check_path(key, what="object key")
    return key


def validate_prefix(prefix: str) -> str:
    """Return ``prefix`` if it is a safe listing prefix ('' for everything), else raise.

    A prefix is a plain string prefix of keys (``raw/2026`` matches ``raw/2026-11/x``), as in S3.

    Raises:
        InvalidInputError: as for :func:`validate_key`, except that '' and a trailing '/' are fine.
    """
    if not isinstance(prefix, str):
        raise InvalidInputError(f"prefix must be a str, got {type(prefix).__name__}")
    if prefix:
        _check_path(prefix.removesuffix("/"), what="prefix")
    return prefix


def _check_path(path: str, *, what: str) -> None:
    if path.startswith("/"):
        raise InvalidInputError(f"{what} {path!r} is absolute: keys are relative to the lake root")
    bad = _FORBIDDEN_CHARS.intersection(path)
    if bad:
        shown = ", ".join(repr(c) for c in sorted(bad))
        raise InvalidInputError(f"{what} {path!r} contains forbidden characters: {shown}")
    if len(path.encode("utf-8")) > MAX_KEY_BYTES:
        raise InvalidInputError(f"{what} is longer than {MAX_KEY_BYTES} UTF-8 bytes")
    for segment in path.split("/"):
        if segment in ("", ".", ".."):
            raise InvalidInputError(
                f"{what} {path!r} has an empty, '.' or '..' segment: "
                "keys are relative and cannot leave the lake root"
            )
        if segment.startswith(RESERVED_PREFIX):
            raise InvalidInputError(
                f"{what} {path!r} uses the reserved segment prefix {RESERVED_PREFIX!r}"
            )
