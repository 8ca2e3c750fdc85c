"""The one error tree of lakekit.

Every adapter maps its backend's errors into this tree at its boundary (by status or error code,
never by message text) and chains the original with ``raise ... from exc``. User code therefore
catches the same exceptions whichever cloud it runs on. Errors with a builtin twin also inherit
it, so ``except FileNotFoundError`` keeps working::

    LakekitError
    ├── ConfigurationError (ValueError)          bad or missing setting, unknown URL scheme
    │   └── MissingDependencyError (ImportError)  an extra is missing: says what to install
    ├── InvalidInputError (ValueError)           bad key, table name, SQL parameter or data
    ├── NotFoundError (FileNotFoundError)         object, table, namespace, stream, function
    ├── AlreadyExistsError (FileExistsError)      create-if-absent lost, name taken
    ├── ConflictError                             an optimistic write lost a race
    │   ├── PreconditionFailedError               object etag did not match
    │   └── CommitConflictError                   catalog version moved on
    ├── SchemaError (TypeError)                   incompatible schema change; names the column
    ├── NotSupportedError (NotImplementedError)   adapter lacks a capability; names both
    ├── PermissionDeniedError (PermissionError)   the backend refused the credentials
    ├── QueryError                                the engine rejected or failed a query
    ├── FunctionError                             a handler failed for good (after retries)
    │   └── FunctionTimeoutError (TimeoutError)   a handler ran past its timeout
    └── TransientError                            retry later: throttling, timeouts, 5xx

Messages never contain credentials: adapters pass URLs through ``lakekit._redact.redact_url`` first.
"""

from __future__ import annotations

__all__ = [
    "AlreadyExistsError",
    "CommitConflictError",
    "ConfigurationError",
    "ConflictError",
    "FunctionError",
    "FunctionTimeoutError",
    "InvalidInputError",
    "LakekitError",
    "MissingDependencyError",
    "NotFoundError",
    "NotSupportedError",
    "PermissionDeniedError",
    "PreconditionFailedError",
    "QueryError",
    "SchemaError",
    "TransientError",
]


class LakekitError(Exception):
    """Root of every error lakekit raises on purpose."""


class ConfigurationError(LakekitError, ValueError):
    """A setting is missing, unknown or malformed, or a URL names no known adapter."""


class MissingDependencyError(ConfigurationError, ImportError):
    """An optional dependency (an *extra*) is needed and not installed.

    The message holds the exact command, e.g. ``pip install "lakekit[aws]"``.
    """

    def __init__(self, what: str, extra: str, module: str | None = None) -> None:
        self.extra = extra
        self.install_hint = f'pip install "lakekit[{extra}]"'
        missing = f" (module {module!r} is missing)" if module else ""
        super().__init__(f"{what} needs the '{extra}' extra{missing}: {self.install_hint}")
        # ImportError keeps its own ``name``; set it for tools that read it.
        self.name = module


class InvalidInputError(LakekitError, ValueError):
    """An argument is malformed: a key escaping the lake root, a bad table name, bad data."""


class NotFoundError(LakekitError, FileNotFoundError):
    """The object, table, namespace, stream, state key or function does not exist."""

    def __init__(self, message: str) -> None:
        # FileNotFoundError(errno, strerror) would reformat the text; keep ours verbatim.
        super().__init__(message)


class AlreadyExistsError(LakekitError, FileExistsError):
    """A create-if-absent found something already there."""

    def __init__(self, message: str) -> None:
        super().__init__(message)


class ConflictError(LakekitError):
    """An optimistic (compare-and-swap) write lost a race; re-read and try again."""


class PreconditionFailedError(ConflictError):
    """A conditional object write's expected etag did not match the current object."""


class CommitConflictError(ConflictError):
    """A catalog commit expected a version that another writer has already replaced."""

    def __init__(self, message: str, *, expected: int | None = None, actual: int | None = None):
        self.expected = expected
        self.actual = actual
        super().__init__(message)


class SchemaError(LakekitError, TypeError):
    """A schema change is not allowed: the message names the column, old and new types."""

    def __init__(
        self,
        message: str,
        *,
        column: str | None = None,
        old_type: str | None = None,
        new_type: str | None = None,
    ) -> None:
        self.column = column
        self.old_type = old_type
        self.new_type = new_type
        super().__init__(message)


class NotSupportedError(LakekitError, NotImplementedError):
    """The adapter does not declare the capability an operation needs."""

    def __init__(self, adapter: str, capability: str, detail: str = "") -> None:
        self.adapter = adapter
        self.capability = capability
        extra = f": {detail}" if detail else ""
        super().__init__(f"{adapter} does not support {capability!s}{extra}")


class PermissionDeniedError(LakekitError, PermissionError):
    """The backend refused the request with the credentials in use."""

    def __init__(self, message: str) -> None:
        super().__init__(message)


class QueryError(LakekitError):
    """The query engine rejected or failed a query (syntax, binding, execution)."""


class FunctionError(LakekitError):
    """A function handler failed for good, after its retries were exhausted."""


class FunctionTimeoutError(FunctionError, TimeoutError):
    """A function handler ran past its timeout."""


class TransientError(LakekitError):
    """A temporary failure (throttling, timeout, 5xx): the same call may succeed later."""
