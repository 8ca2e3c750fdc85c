"""botocore errors mapped to lakekit's error tree, in one place.

Mapping is by the service's error *code* (``NoSuchKey``, ``EntityNotFoundException``, ...) and,
when the code is unknown, by HTTP status; never by message text. The lakekit error is always
raised ``from`` the botocore one. Messages say what failed and the code AWS gave, and pass through
:func:`scrub` so that no credential, signature or presigned URL reaches a log line.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from lakekit._redact import redact_url
from lakekit.errors import (
    AlreadyExistsError,
    ConfigurationError,
    ConflictError,
    InvalidInputError,
    LakekitError,
    NotFoundError,
    PermissionDeniedError,
    PreconditionFailedError,
    TransientError,
)

__all__ = [
    "aws_errors",
    "error_code",
    "http_status",
    "is_client_error",
    "map_error",
    "scrub",
]

_NOT_FOUND = frozenset(
    {
        "NoSuchKey",
        "NoSuchUpload",
        "NotFound",
        "404",
        "EntityNotFoundException",
        "ResourceNotFoundException",
        "NoSuchEntity",
    }
)
_BUCKET_MISSING = frozenset({"NoSuchBucket"})
_EXISTS = frozenset(
    {
        "AlreadyExistsException",
        "ResourceInUseException",
        "BucketAlreadyOwnedByYou",
        "BucketAlreadyExists",
        "ResourceConflictException",
    }
)
_PRECONDITION = frozenset({"PreconditionFailed", "412"})
_CONFLICT = frozenset({"ConditionalRequestConflict", "ConcurrentModificationException", "409"})
_DENIED = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "AllAccessDisabled",
        "InvalidAccessKeyId",
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "ExpiredTokenException",
        "TokenRefreshRequired",
        "UnrecognizedClientException",
        "InvalidToken",
        "AccountProblem",
        "403",
    }
)
_TRANSIENT = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "ProvisionedThroughputExceededException",
        "SlowDown",
        "RequestTimeout",
        "RequestTimeoutException",
        "InternalError",
        "InternalFailure",
        "InternalServiceException",
        "InternalServerException",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "OperationTimeoutException",
        "ResourceNumberLimitExceededException",
        "503",
        "500",
    }
)
_INVALID = frozenset(
    {
        "InvalidInputException",
        "ValidationException",
        "InvalidRequest",
        "InvalidArgument",
        "InvalidParameterValueException",
        "InvalidRange",
        "KeyTooLongError",
        "EntityTooLarge",
        "EntityTooSmall",
        "InvalidPart",
        "InvalidPartOrder",
        "MalformedXML",
        "InvalidBucketName",
        "400",
    }
)

_SIGNED_QUERY = re.compile(
    r"(?i)(X-Amz-(?:Signature|Credential|Security-Token)=|Signature=|AWSAccessKeyId=)[^&\s\"'<]+"
)
_ACCESS_KEY = re.compile(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b")
_URL = re.compile(r"https?://[^\s\"'<>]+")


def is_client_error(exc: BaseException) -> bool:
    """Whether ``exc`` is a ``botocore.exceptions.ClientError`` (without importing botocore)."""
    return any(cls.__name__ == "ClientError" for cls in type(exc).__mro__) and hasattr(
        exc, "response"
    )


def error_code(exc: BaseException) -> str:
    """The AWS error code of a ClientError ('' for anything else)."""
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return ""
    error = response.get("Error") or {}
    code = error.get("Code") if isinstance(error, dict) else None
    return str(code) if code else ""


def http_status(exc: BaseException) -> int:
    """The HTTP status of a ClientError (0 if unknown)."""
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return 0
    meta = response.get("ResponseMetadata") or {}
    status = meta.get("HTTPStatusCode") if isinstance(meta, dict) else None
    return int(status) if isinstance(status, int) else 0


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with configured secret values, access key ids, request signatures and URL
    credentials masked."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    text = _URL.sub(lambda m: redact_url(m.group(0)), text)
    text = _SIGNED_QUERY.sub(r"\g<1>***", text)
    return _ACCESS_KEY.sub("***", text)


def _aws_message(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    error = response.get("Error") if isinstance(response, dict) else None
    message = error.get("Message") if isinstance(error, dict) else None
    return str(message) if message else ""


def map_error(
    exc: BaseException,
    what: str,
    *,
    secrets: Iterable[str] = (),
    overrides: dict[str, Callable[[str], LakekitError]] | None = None,
) -> LakekitError:
    """The lakekit error for a botocore exception raised while doing ``what``.

    ``overrides`` maps an error code (or an HTTP status as a string) to a factory taking the
    message, for codes whose meaning depends on the call (``PreconditionFailed`` is an
    AlreadyExistsError for a create and a PreconditionFailedError for an update).
    Exceptions that are not botocore's are returned as a generic LakekitError.
    """
    name = type(exc).__name__
    if not is_client_error(exc):
        return _map_botocore(exc, name, what, secrets)
    code = error_code(exc)
    status = http_status(exc)
    detail = scrub(_aws_message(exc), secrets)
    message = f"{what}: {code or status}" + (f" ({detail})" if detail else "")
    for key in (code, str(status)):
        if overrides and key in overrides:
            return overrides[key](message)
    for key in (code, str(status)):
        kind = _kind_of(key)
        if kind is not None:
            return kind(message)
    if 500 <= status < 600:
        return TransientError(message)
    return LakekitError(message)


def _kind_of(key: str) -> Callable[[str], LakekitError] | None:
    table: tuple[tuple[frozenset[str], Callable[[str], LakekitError]], ...] = (
        (_NOT_FOUND, NotFoundError),
        (_BUCKET_MISSING, _bucket_missing),
        (_EXISTS, AlreadyExistsError),
        (_PRECONDITION, PreconditionFailedError),
        (_CONFLICT, ConflictError),
        (_DENIED, PermissionDeniedError),
        (_TRANSIENT, TransientError),
        (_INVALID, InvalidInputError),
    )
    for codes, kind in table:
        if key in codes:
            return kind
    return None


def _bucket_missing(message: str) -> LakekitError:
    return ConfigurationError(f"{message}: the bucket does not exist; create it or fix the URL")


_BOTOCORE_TRANSIENT = frozenset(
    {
        "EndpointConnectionError",
        "ConnectTimeoutError",
        "ReadTimeoutError",
        "ConnectionClosedError",
        "ConnectionError",
        "HTTPClientError",
        "ProxyConnectionError",
        "ResponseStreamingError",
        "IncompleteReadError",
    }
)
_BOTOCORE_CREDENTIALS = frozenset(
    {
        "NoCredentialsError",
        "PartialCredentialsError",
        "CredentialRetrievalError",
        "ProfileNotFound",
        "NoRegionError",
        "InvalidRegionError",
        "SSOTokenLoadError",
        "UnauthorizedSSOTokenError",
        "TokenRetrievalError",
    }
)


def _map_botocore(exc: BaseException, name: str, what: str, secrets: Iterable[str]) -> LakekitError:
    names = {cls.__name__ for cls in type(exc).__mro__}
    detail = scrub(str(exc), secrets)
    if names & _BOTOCORE_TRANSIENT:
        return TransientError(f"{what}: cannot reach AWS ({name}: {detail}); try again")
    if names & _BOTOCORE_CREDENTIALS:
        return ConfigurationError(
            f"{what}: {name}: {detail}. Configure AWS credentials and region: the standard "
            "chain (AWS_PROFILE, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, ~/.aws/config, an "
            "instance role) or the component's settings (LAKEKIT_<COMPONENT>_PROFILE, "
            "LAKEKIT_<COMPONENT>_ACCESS_KEY_ID, LAKEKIT_<COMPONENT>_REGION)"
        )
    if "ParamValidationError" in names:
        return InvalidInputError(f"{what}: {detail}")
    return LakekitError(f"{what}: {name}: {detail}")


def _is_botocore(exc: BaseException) -> bool:
    return any(
        cls.__module__.startswith(("botocore", "urllib3", "aiobotocore"))
        for cls in type(exc).__mro__
    )


@contextmanager
def aws_errors(
    what: str,
    *,
    secrets: Iterable[str] = (),
    overrides: dict[str, Callable[[str], LakekitError]] | None = None,
) -> Iterator[None]:
    """Translate botocore exceptions raised in the block (``raise ... from exc``).

    lakekit errors and other exceptions (the caller's own) pass through unchanged.
    """
    try:
        yield
    except LakekitError:
        raise
    except Exception as exc:
        if not _is_botocore(exc):
            raise
        raise map_error(exc, what, secrets=secrets, overrides=overrides) from exc


def describe(exc: Any) -> str:
    """A short, scrubbed ``Code: message`` of a ClientError, for composing messages."""
    return scrub(f"{error_code(exc)}: {_aws_message(exc)}")
