"""Map SQLAlchemy / DBAPI errors to lakekit's error tree, by SQLSTATE or SQLite error code.

Never by message text: PostgreSQL drivers expose the SQLSTATE (``sqlstate`` in psycopg 3,
``pgcode`` in psycopg 2), Python's sqlite3 exposes ``sqlite_errorcode``. Connection failures
carry neither and are classified by exception class.
"""

from __future__ import annotations

from typing import Literal

from sqlalchemy import exc as sa_exc

from lakekit.errors import LakekitError, PermissionDeniedError, TransientError

__all__ = ["integrity_kind", "is_retryable", "map_db_error"]

# SQLite result codes (https://www.sqlite.org/rescode.html); the primary code is the low byte.
_SQLITE_PERM = 3
_SQLITE_BUSY = 5
_SQLITE_LOCKED = 6
_SQLITE_READONLY = 8
_SQLITE_IOERR = 10
_SQLITE_FULL = 13
_SQLITE_CANTOPEN = 14
_SQLITE_PROTOCOL = 15
_SQLITE_AUTH = 23
_SQLITE_CONSTRAINT_FOREIGNKEY = 787
_SQLITE_CONSTRAINT_PRIMARYKEY = 1555
_SQLITE_CONSTRAINT_UNIQUE = 2067

_PG_UNIQUE_VIOLATION = "23505"
_PG_FOREIGN_KEY_VIOLATION = "23503"
_PG_RETRYABLE = frozenset({"40001", "40P01"})  # serialization_failure, deadlock_detected
_PG_TRANSIENT_CLASSES = ("08", "53", "57", "58")  # connection, resources, operator, system


def _sqlstate(exc: sa_exc.DBAPIError) -> str | None:
    orig = exc.orig
    state = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    return state if isinstance(state, str) else None


def _sqlite_code(exc: sa_exc.DBAPIError) -> int | None:
    code = getattr(exc.orig, "sqlite_errorcode", None)
    return code if isinstance(code, int) else None


def integrity_kind(exc: sa_exc.IntegrityError) -> Literal["unique", "foreign_key"] | None:
    """Which constraint an IntegrityError broke, or None when the driver does not say."""
    state = _sqlstate(exc)
    code = _sqlite_code(exc)
    if state == _PG_UNIQUE_VIOLATION or code in (
        _SQLITE_CONSTRAINT_PRIMARYKEY,
        _SQLITE_CONSTRAINT_UNIQUE,
    ):
        return "unique"
    if state == _PG_FOREIGN_KEY_VIOLATION or code == _SQLITE_CONSTRAINT_FOREIGNKEY:
        return "foreign_key"
    return None


def is_retryable(exc: sa_exc.DBAPIError) -> bool:
    """A transaction lost a serialization race or a deadlock and can simply be run again."""
    return _sqlstate(exc) in _PG_RETRYABLE


def map_db_error(exc: sa_exc.DBAPIError, op: str, where: str, secret: str | None) -> LakekitError:
    """The lakekit error for a database failure during ``op`` against ``where`` (a redacted
    URL). ``secret`` (the URL's password) is masked if a driver message ever contains it."""
    detail = " ".join(str(exc.orig).split()) or type(exc.orig).__name__
    if secret:
        detail = detail.replace(secret, "***")
    state = _sqlstate(exc)
    code = _sqlite_code(exc)
    primary = None if code is None else code & 0xFF
    prefix = f"catalog {op} failed on {where}"
    if (state is not None and state.startswith("28")) or state == "42501":
        return PermissionDeniedError(f"{prefix}: permission denied: {detail}")
    if primary in (_SQLITE_PERM, _SQLITE_READONLY, _SQLITE_AUTH):
        return PermissionDeniedError(f"{prefix}: permission denied: {detail}")
    transient = (
        exc.connection_invalidated
        or state in _PG_RETRYABLE
        or (state is not None and state.startswith(_PG_TRANSIENT_CLASSES))
        or primary in (_SQLITE_BUSY, _SQLITE_LOCKED, _SQLITE_IOERR, _SQLITE_FULL, _SQLITE_PROTOCOL)
        or (
            state is None
            and primary is None
            and isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError)
        )
    )
    if transient:
        return TransientError(f"{prefix}: database unavailable or busy, retry later: {detail}")
    if primary == _SQLITE_CANTOPEN:
        return TransientError(f"{prefix}: cannot open the database file: {detail}")
    return LakekitError(f"{prefix}: {detail}")
