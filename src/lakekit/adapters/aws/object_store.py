"""The S3 object store: lake keys are S3 object keys under ``s3://<bucket>/<prefix>/``.

Works with Amazon S3 and S3-compatible stores (MinIO, Cloudflare R2, Ceph, moto) through
``endpoint_url``. How the guarantees of :mod:`lakekit.interfaces.object_store` are kept:

* **Atomic put**: S3 makes an object visible only when its upload completes (one PutObject, or
  CompleteMultipartUpload for data above ``multipart_threshold``); a failed or interrupted
  upload is aborted and leaves nothing. Data streams in parts, never loaded whole.
* **Conditional writes** use S3's own preconditions, decided atomically by S3:
  ``PutMode.CREATE`` sends ``If-None-Match: *`` and ``PutMode.update(etag)`` sends
  ``If-Match: "<etag>"`` (on PutObject, or on CompleteMultipartUpload for large objects).
  ``412 PreconditionFailed`` becomes AlreadyExistsError (create) or PreconditionFailedError
  (update; NotFoundError if the object is gone). ``409 ConditionalRequestConflict`` (a
  concurrent conditional write on the same key) is retried; if it persists it counts as a lost
  race (AlreadyExistsError / PreconditionFailedError).
* **Read-after-write, fresh listings**: S3 is strongly consistent for GET, HEAD and LIST, and
  this adapter caches nothing, so a listing never misses lakekit's own completed writes.
* **Sorted listings**: ListObjectsV2 returns keys in UTF-8 byte order, page by page (streamed).
* **Etags** are S3's, shown without quotes everywhere (``head``, ``list``, ``put``); quoted or
  unquoted etags are both accepted by ``PutMode.update``. S3's etag is a hash of the content,
  so it changes whenever the content does (rewriting identical bytes keeps it).

Keys never leave the configured prefix: every key is validated again here and joined below the
prefix; lakekit's reserved ``.lakekit*`` segments (the Glue catalog keeps its commit records and
state there) never appear in listings.
"""

from __future__ import annotations

import builtins
import contextlib
import io
import math
import random
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import IO, TYPE_CHECKING, Any, ClassVar, Literal, Self
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from lakekit._keys import RESERVED_PREFIX, validate_key, validate_prefix
from lakekit.adapters._range_reader import RangeReader
from lakekit.adapters.aws._client import AwsClients, AwsSettings, settings_from_arguments
from lakekit.adapters.aws._errors import aws_errors, error_code, http_status
from lakekit.capabilities import Capability
from lakekit.config import AdapterSettings
from lakekit.errors import (
    AlreadyExistsError,
    ConfigurationError,
    InvalidInputError,
    LakekitError,
    NotFoundError,
    NotSupportedError,
    PreconditionFailedError,
)
from lakekit.interfaces.object_store import (
    ListResult,
    ObjectMeta,
    ObjectStoreAdapter,
    PutData,
    PutMode,
    as_chunks,
)

if TYPE_CHECKING:
    import fsspec
    import pyarrow.fs

    from lakekit.lake import Lake

__all__ = ["S3ObjectStore", "S3ObjectStoreSettings", "parse_s3_url"]

_MIB = 1024 * 1024
MIN_PART_SIZE = 5 * _MIB
"""S3's smallest part (all but the last part of a multipart upload)."""
MAX_PARTS = 10_000
MAX_COPY_PART = 5 * 1024 * _MIB
"""S3's largest single CopyObject / UploadPartCopy."""
DELETE_BATCH = 1000
"""Keys per DeleteObjects request (S3's maximum)."""
MAX_PRESIGN_SECONDS = 7 * 24 * 3600
_CONFLICT_RETRIES = 4
_READ_CHUNK = _MIB


class S3ObjectStoreSettings(AwsSettings):
    """Settings of :class:`S3ObjectStore` (component ``store``, env ``LAKEKIT_STORE_*``)."""

    component: ClassVar[str] = "store"

    url: str = Field(
        description=(
            "The lake root: 's3://<bucket>/<prefix>' (or s3a://). The bucket must exist. "
            "Env LAKEKIT_STORE (or LAKEKIT_STORE_URL); default: the lake URL."
        )
    )
    multipart_threshold: int = Field(
        default=16 * _MIB,
        ge=MIN_PART_SIZE,
        description=(
            "Objects at least this large are uploaded in parts (streamed, atomic on "
            "completion). Env LAKEKIT_STORE_MULTIPART_THRESHOLD."
        ),
    )
    part_size: int = Field(
        default=16 * _MIB,
        ge=MIN_PART_SIZE,
        le=MAX_COPY_PART,
        description=(
            "Size of each uploaded part (doubled every 1000 parts, so any object size fits in "
            "S3's 10,000 parts). Env LAKEKIT_STORE_PART_SIZE."
        ),
    )
    upload_concurrency: int = Field(
        default=4,
        ge=1,
        le=64,
        description=(
            "Parts uploaded in parallel; memory held is about (this + 1) x part_size. "
            "Env LAKEKIT_STORE_UPLOAD_CONCURRENCY."
        ),
    )
    addressing_style: Literal["auto", "virtual", "path"] = Field(
        default="auto",
        description=(
            "Bucket addressing: 'virtual' (bucket.host), 'path' (host/bucket) or 'auto' (path "
            "when endpoint_url is set, as MinIO and most S3-compatible stores need; virtual on "
            "AWS). Env LAKEKIT_STORE_ADDRESSING_STYLE."
        ),
    )

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        parse_s3_url(value)
        return value

    @property
    def effective_addressing_style(self) -> str:
        if self.addressing_style != "auto":
            return self.addressing_style
        return "path" if self.endpoint_url else "virtual"


def parse_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/a/b`` -> ``("bucket", "a/b/")``; the prefix is '' or ends with '/'.

    Raises:
        ConfigurationError: not an s3:// URL, no bucket, or a prefix that is not a safe key prefix.
    """
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("s3", "s3a"):
        raise ConfigurationError(f"not an S3 URL: {url!r}; expected 's3://<bucket>/<prefix>'")
    bucket = parts.netloc
    if not bucket or "@" in bucket or ":" in bucket:
        raise ConfigurationError(
            f"S3 URL {url!r} needs a bucket and no credentials: 's3://<bucket>/<prefix>'"
        )
    if parts.query or parts.fragment:
        raise ConfigurationError(
            f"S3 URL {url!r} must not have a query or fragment; pass settings separately"
        )
    prefix = parts.path.strip("/")
    if prefix:
        try:
            validate_prefix(prefix + "/")
        except InvalidInputError as exc:
            raise ConfigurationError(f"S3 URL {url!r}: {exc}") from exc
        prefix += "/"
    return bucket, prefix


class S3ObjectStore(ObjectStoreAdapter):
    """Objects in an S3 bucket under a prefix.

    Args:
        url: ``s3://<bucket>/<prefix>``; the bucket must exist.
        **settings: any :class:`S3ObjectStoreSettings` field (region, endpoint_url, profile,
            access_key_id, secret_access_key, multipart_threshold, ...).

    Thread-safe (boto3 clients are); cheap to build (no network until first use). Picklable
    as ``functools.partial(S3ObjectStore, url, **settings)``.

    Raises:
        ConfigurationError: a malformed URL or setting.
    """

    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {
            Capability.PUT_IF_ABSENT,
            Capability.PUT_IF_MATCH,
            Capability.COPY_IF_ABSENT,
            Capability.SIGNED_URL,
        }
    )
    settings_model: ClassVar[type[AdapterSettings]] = S3ObjectStoreSettings
    list_page_size: ClassVar[int] = 1000
    """Keys per ListObjectsV2 page (S3's maximum)."""
    delete_batch: ClassVar[int] = DELETE_BATCH
    """Keys per DeleteObjects request (S3's maximum)."""

    def __init__(self, url: str, **settings: Any) -> None:
        self._init(settings_from_arguments(S3ObjectStoreSettings, {"url": url, **settings}))

    def _init(self, settings: S3ObjectStoreSettings) -> None:
        self.settings = settings
        self.bucket, self.prefix = parse_s3_url(settings.url)
        self._clients = AwsClients(
            settings,
            s3={
                "s3": {"addressing_style": settings.effective_addressing_style},
                "signature_version": "s3v4",  # presigned URLs with SigV4 (SigV2 is retired)
            },
        )
        self._fsspec: fsspec.AbstractFileSystem | None = None

    @classmethod
    def from_settings(cls, settings: AdapterSettings, lake: Lake | None = None) -> Self:
        """Build the store from validated settings (``lake`` is not needed)."""
        if not isinstance(settings, S3ObjectStoreSettings):
            raise ConfigurationError(
                f"S3ObjectStore needs S3ObjectStoreSettings, got {type(settings).__name__}"
            )
        store = cls.__new__(cls)
        store._init(settings)
        return store

    def __reduce__(self) -> tuple[Callable[..., S3ObjectStore], tuple[Any, ...]]:
        return (_store_from_settings, (self.settings,))

    def __repr__(self) -> str:
        endpoint = (
            f", endpoint_url={self.settings.endpoint_url!r}" if self.settings.endpoint_url else ""
        )
        return f"S3ObjectStore(url='s3://{self.bucket}/{self.prefix}'{endpoint})"

    def reserved_area(self, name: str) -> S3ObjectStore:
        """A store rooted at ``<prefix>.lakekit/<name>/``, lakekit's own area of this lake
        (the Glue catalog keeps its commit records and state there). Keys under it are never
        listed by, nor reachable through, this store's facade."""
        area = S3ObjectStore.from_settings(self.settings)
        area.prefix = f"{self.prefix}{RESERVED_PREFIX}/{name}/"
        return area

    @property
    def client(self) -> Any:
        """The boto3 S3 client (shared by threads)."""
        return self._clients.client("s3")

    @property
    def root_uri(self) -> str:
        """``s3://<bucket>/<prefix>`` without a trailing '/'."""
        return f"s3://{self.bucket}/{self.prefix}".rstrip("/")

    # -- writes ---------------------------------------------------------------------------------
    def put(self, key: str, data: PutData, mode: PutMode) -> ObjectMeta:
        """Write ``data`` to ``key`` atomically (see the module docstring for how).

        Data up to ``multipart_threshold`` is sent in one PutObject; larger data is streamed in
        parts and made visible by CompleteMultipartUpload, with at most
        ``upload_concurrency + 1`` parts in memory. If ``data`` raises midway, the upload is
        aborted, nothing changes and the exception propagates.

        Raises:
            InvalidInputError: bad key.
            AlreadyExistsError: ``mode`` is CREATE and the key exists.
            PreconditionFailedError: ``mode`` is update(etag) and the etag differs.
            NotFoundError: ``mode`` is update(etag) and the object does not exist.
            PermissionDeniedError, TransientError, ConfigurationError (missing bucket).
        """
        full = self._full_key(key)
        chunks = as_chunks(data)
        head = bytearray()
        threshold = self.settings.multipart_threshold
        for chunk in chunks:
            head += chunk
            if len(head) >= threshold:
                return self._put_multipart(key, full, head, chunks, mode)
        return self._put_single(key, full, bytes(head), mode)

    def _put_single(self, key: str, full: str, body: bytes, mode: PutMode) -> ObjectMeta:
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": full, "Body": body}
        kwargs.update(_conditions(mode))
        response = self._conditional(key, mode, lambda: self.client.put_object(**kwargs))
        return ObjectMeta(
            key=key,
            size=len(body),
            etag=_unquote(response["ETag"]),
            last_modified=_response_time(response),
        )

    def _put_multipart(
        self, key: str, full: str, head: bytearray, chunks: Iterator[bytes], mode: PutMode
    ) -> ObjectMeta:
        if mode.is_create and self._exists(full):
            raise AlreadyExistsError(f"object {key!r} already exists")  # early, cheap refusal
        if mode.is_update:
            self._check_etag(key, full, mode.etag)
        return self._multipart(
            key,
            full,
            mode,
            f"starting the upload of {key!r}",
            lambda upload_id: self._upload_parts(full, upload_id, head, chunks),
        )

    def _multipart(
        self,
        key: str,
        full: str,
        mode: PutMode,
        starting: str,
        upload: Callable[[str], tuple[list[dict[str, Any]], int]],
    ) -> ObjectMeta:
        """One multipart upload to ``full``: ``upload(upload_id)`` sends the parts and returns
        them with the object's size; the completion carries ``mode``'s precondition, so S3
        decides create-if-absent / if-match atomically. Any failure aborts the upload, leaving
        nothing behind."""
        with aws_errors(starting):
            upload_id = self.client.create_multipart_upload(Bucket=self.bucket, Key=full)[
                "UploadId"
            ]
        try:
            parts, size = upload(upload_id)
            kwargs: dict[str, Any] = {
                "Bucket": self.bucket,
                "Key": full,
                "UploadId": upload_id,
                "MultipartUpload": {"Parts": parts},
            }
            kwargs.update(_conditions(mode))
            response = self._conditional(
                key, mode, lambda: self.client.complete_multipart_upload(**kwargs), retry=False
            )
        except BaseException:
            self._abort(upload_id, full)
            raise
        return ObjectMeta(
            key=key,
            size=size,
            etag=_unquote(response["ETag"]),
            last_modified=_response_time(response),
        )

    def _upload_parts(
        self, full: str, upload_id: str, head: bytearray, chunks: Iterator[bytes]
    ) -> tuple[list[dict[str, Any]], int]:
        """Upload ``head`` + ``chunks`` as parts, ``upload_concurrency`` at a time."""
        concurrency = self.settings.upload_concurrency
        part_size = self.settings.part_size
        parts: list[dict[str, Any]] = []
        pending: list[tuple[int, Future[str]]] = []
        size = 0

        def finish_oldest() -> None:
            number, future = pending.pop(0)
            parts.append({"PartNumber": number, "ETag": future.result()})

        with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="lakekit-s3") as pool:
            buffer = head
            exhausted = False
            try:
                while not exhausted or buffer:
                    while not exhausted and len(buffer) < part_size:
                        chunk = next(chunks, None)
                        if chunk is None:
                            exhausted = True
                        else:
                            buffer += chunk
                    if not buffer:
                        break
                    number = len(parts) + len(pending) + 1
                    if number > MAX_PARTS:
                        raise InvalidInputError(f"object {full!r} needs more than 10,000 parts")
                    body = bytes(buffer[:part_size])
                    del buffer[:part_size]
                    size += len(body)
                    pending.append(
                        (number, pool.submit(self._upload_part, full, upload_id, number, body))
                    )
                    while len(pending) > concurrency:
                        finish_oldest()
                    if number % 1000 == 0:
                        part_size = min(part_size * 2, MAX_COPY_PART)
                while pending:
                    finish_oldest()
            except BaseException:
                for _, future in pending:
                    future.cancel()
                raise
        return parts, size

    def _upload_part(self, full: str, upload_id: str, number: int, body: bytes) -> str:
        with aws_errors(f"uploading part {number} of {full!r}"):
            response = self.client.upload_part(
                Bucket=self.bucket, Key=full, UploadId=upload_id, PartNumber=number, Body=body
            )
        return str(response["ETag"])

    def _abort(self, upload_id: str, full: str) -> None:
        # Best effort: an upload left behind costs storage until a lifecycle rule
        # (AbortIncompleteMultipartUpload) removes it; it is never visible as an object.
        with contextlib.suppress(Exception):
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=full, UploadId=upload_id)

    def _conditional(
        self, key: str, mode: PutMode, call: Callable[[], Any], *, retry: bool = True
    ) -> Any:
        """Run a (conditional) write, mapping 412/409 by mode; retry 409 while ``retry``."""
        attempts = _CONFLICT_RETRIES if retry else 1
        for attempt in range(attempts):
            try:
                with aws_errors(f"writing object {key!r}"):
                    return call()
            except LakekitError as exc:
                cause = exc.__cause__
                code = error_code(cause) if cause is not None else ""
                status = http_status(cause) if cause is not None else 0
                if code == "PreconditionFailed" or status == 412:
                    raise self._lost(key, mode) from cause
                if code == "ConditionalRequestConflict" or (
                    status == 409 and not mode.is_overwrite
                ):
                    if attempt + 1 < attempts:
                        time.sleep(random.uniform(0.01, 0.05) * 2**attempt)  # noqa: S311
                        continue
                    raise self._lost(key, mode) from cause
                raise
        raise AssertionError("unreachable")

    def _lost(self, key: str, mode: PutMode) -> LakekitError:
        if mode.is_create:
            return AlreadyExistsError(f"object {key!r} already exists")
        if mode.is_update and not self._exists(self._full_key(key)):
            return NotFoundError(f"object {key!r} does not exist (cannot update it by etag)")
        return PreconditionFailedError(
            f"object {key!r} changed: its etag is no longer {mode.etag!r}; re-read it and retry"
        )

    def delete(self, keys: Iterable[str]) -> None:
        """Delete the keys with DeleteObjects, 1000 per request; missing keys are ignored.

        Each deletion is atomic; the batch is not. All keys are validated before any is deleted.

        Raises:
            InvalidInputError: a key is invalid.
            PermissionDeniedError, LakekitError: S3 refused some deletions (named, with codes).
        """
        full_keys = [self._full_key(key) for key in keys]
        for start in range(0, len(full_keys), self.delete_batch):
            batch = full_keys[start : start + self.delete_batch]
            with aws_errors(f"deleting {len(batch)} objects"):
                response = self.client.delete_objects(
                    Bucket=self.bucket,
                    Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True},
                )
            errors = [e for e in response.get("Errors", []) if e.get("Code") != "NoSuchKey"]
            if errors:
                from lakekit.errors import PermissionDeniedError

                shown = ", ".join(
                    f"{self._relative(e.get('Key', ''))!r} ({e.get('Code')})" for e in errors[:5]
                )
                kind = (
                    PermissionDeniedError
                    if all(e.get("Code") == "AccessDenied" for e in errors)
                    else LakekitError
                )
                raise kind(f"S3 did not delete {len(errors)} object(s): {shown}")

    def copy(self, src: str, dst: str, *, overwrite: bool = True) -> ObjectMeta:
        """Copy ``src`` to ``dst`` server-side; the copy appears atomically.

        With ``overwrite=False`` the copy is a multipart copy completed with
        ``If-None-Match: *``, so it is atomic against concurrent creators. Objects over 5 GiB
        are copied in parts, each pinned to the source's etag (a source replaced meanwhile
        restarts the copy).

        Raises:
            NotFoundError: ``src`` does not exist.
            AlreadyExistsError: ``overwrite`` is False and ``dst`` exists.
        """
        src_full, dst_full = self._full_key(src), self._full_key(dst)
        mode = PutMode.OVERWRITE if overwrite else PutMode.CREATE
        for attempt in range(_CONFLICT_RETRIES):
            source = self.head(src)
            if overwrite and source.size <= MAX_COPY_PART:
                return self._copy_object(src, src_full, dst, dst_full)
            if source.size == 0:
                return self.put(dst, b"", mode)
            try:
                return self._multipart_copy(src_full, dst, dst_full, source, mode)
            except _SourceChangedError:
                if attempt + 1 == _CONFLICT_RETRIES:
                    raise PreconditionFailedError(
                        f"{src!r} kept changing while it was copied to {dst!r}; try again"
                    ) from None
        raise AssertionError("unreachable")

    def _copy_object(self, src: str, src_full: str, dst: str, dst_full: str) -> ObjectMeta:
        with aws_errors(f"copying {src!r} to {dst!r}"):
            response = self.client.copy_object(
                Bucket=self.bucket,
                Key=dst_full,
                CopySource={"Bucket": self.bucket, "Key": src_full},
            )
        del response  # CopyObjectResult lacks the size: one HEAD gives the whole metadata
        return self.head(dst)

    def _multipart_copy(
        self, src_full: str, dst: str, dst_full: str, source: ObjectMeta, mode: PutMode
    ) -> ObjectMeta:
        if mode.is_create and self._exists(dst_full):
            raise AlreadyExistsError(f"object {dst!r} already exists")
        return self._multipart(
            dst,
            dst_full,
            mode,
            f"starting the copy to {dst!r}",
            lambda upload_id: (
                self._copy_parts(src_full, dst, dst_full, source, upload_id),
                source.size,
            ),
        )

    def _copy_parts(
        self, src_full: str, dst: str, dst_full: str, source: ObjectMeta, upload_id: str
    ) -> list[dict[str, Any]]:
        """Copy ``source`` (pinned to its etag) into the upload's parts, in order.

        Raises:
            _SourceChangedError: the source was replaced mid-copy.
        """
        whole = source.size <= MAX_COPY_PART
        part = source.size if whole else max(512 * _MIB, math.ceil(source.size / MAX_PARTS))
        parts = []
        for number, start in enumerate(range(0, source.size, part), start=1):
            kwargs: dict[str, Any] = {
                "Bucket": self.bucket,
                "Key": dst_full,
                "UploadId": upload_id,
                "PartNumber": number,
                "CopySource": {"Bucket": self.bucket, "Key": src_full},
                "CopySourceIfMatch": _quote(source.etag),
            }
            if not whole:
                kwargs["CopySourceRange"] = f"bytes={start}-{min(start + part, source.size) - 1}"
            try:
                with aws_errors(f"copying part {number} to {dst!r}"):
                    response = self.client.upload_part_copy(**kwargs)
            except PreconditionFailedError as exc:
                raise _SourceChangedError from exc
            parts.append({"PartNumber": number, "ETag": response["CopyPartResult"]["ETag"]})
        return parts

    # -- reads ----------------------------------------------------------------------------------
    def open(self, key: str, start: int = 0, end: int | None = None) -> IO[bytes]:
        """Stream the object (or bytes ``[start, end)``) with one ranged GET.

        The stream reads one version of the object even if it is replaced meanwhile. A range
        past the end is truncated like a file read.

        Raises:
            NotFoundError: no such object.
            InvalidInputError: negative or reversed range.
        """
        full = self._full_key(key)
        if start < 0 or (end is not None and end < start):
            raise InvalidInputError(f"invalid byte range [{start}, {end}) for {key!r}")
        if end is not None and end == start:
            self.head(key)  # an empty range of a missing object is still NotFoundError
            return io.BytesIO(b"")
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": full}
        if start or end is not None:
            kwargs["Range"] = f"bytes={start}-{'' if end is None else end - 1}"
        try:
            with aws_errors(f"object {key!r}", overrides=_NOT_FOUND_404):
                response = self.client.get_object(**kwargs)
        except InvalidInputError as exc:
            if exc.__cause__ is not None and error_code(exc.__cause__) == "InvalidRange":
                return io.BytesIO(b"")  # the range starts at or past the end of the object
            raise
        reader = _S3Reader(self, key, full, start, end, response)
        return io.BufferedReader(reader, buffer_size=_READ_CHUNK)

    def head(self, key: str) -> ObjectMeta:
        """Size, etag, UTC modification time and user metadata, from one HEAD request.

        Raises:
            NotFoundError: no such object (a prefix is not an object).
        """
        full = self._full_key(key)
        with aws_errors(f"object {key!r}", overrides=_NOT_FOUND_404):
            response = self.client.head_object(Bucket=self.bucket, Key=full)
        return ObjectMeta(
            key=key,
            size=int(response["ContentLength"]),
            etag=_unquote(response["ETag"]),
            last_modified=_as_utc(response["LastModified"]),
            metadata=dict(response.get("Metadata") or {}),
        )

    def list(self, prefix: str) -> Iterator[ObjectMeta]:
        """Stream every object under ``prefix`` in lexicographic (UTF-8 byte) key order, one
        ListObjectsV2 page (up to 1000 keys) at a time. Strongly consistent: objects whose put
        returned before the listing started are included."""
        full_prefix = self._full_prefix(prefix)
        return self._list(full_prefix)

    def _list(self, full_prefix: str) -> Iterator[ObjectMeta]:
        paginator = self.client.get_paginator("list_objects_v2")
        pages = iter(
            paginator.paginate(
                Bucket=self.bucket,
                Prefix=full_prefix,
                PaginationConfig={"PageSize": self.list_page_size},
            )
        )
        while True:
            with aws_errors(f"listing {self._relative(full_prefix)!r}"):
                page = next(pages, None)
            if page is None:
                return
            for item in page.get("Contents", []):
                key = self._relative(item["Key"])
                if _is_object_key(key):
                    yield _listed_meta(key, item)

    def list_with_delimiter(self, prefix: str) -> ListResult:
        """Objects directly under ``prefix`` and its '/'-terminated sub-prefixes (S3's common
        prefixes: a prefix exists exactly while an object below it does)."""
        full_prefix = self._full_prefix(prefix)
        paginator = self.client.get_paginator("list_objects_v2")
        objects: builtins.list[ObjectMeta] = []
        prefixes: builtins.list[str] = []
        with aws_errors(f"listing {prefix!r}"):
            for page in paginator.paginate(
                Bucket=self.bucket,
                Prefix=full_prefix,
                Delimiter="/",
                PaginationConfig={"PageSize": self.list_page_size},
            ):
                for item in page.get("Contents", []):
                    key = self._relative(item["Key"])
                    if _is_object_key(key):
                        objects.append(_listed_meta(key, item))
                for common in page.get("CommonPrefixes", []):
                    sub = self._relative(common["Prefix"])
                    if _visible(sub):
                        prefixes.append(sub)
        return ListResult(objects=objects, prefixes=prefixes)

    # -- addresses ------------------------------------------------------------------------------
    def url(self, key: str, *, expires_in: float | None = None, method: str = "GET") -> str:
        """A presigned URL (SigV4) for GET, HEAD, PUT or DELETE of ``key``, valid for
        ``expires_in`` seconds (at most 7 days). Signing happens locally: no request is made.
        The URL carries the access key id (``X-Amz-Credential``) and a signature, never the
        secret key; anyone holding the URL can do ``method`` on ``key`` until it expires.

        Raises:
            NotSupportedError: ``expires_in`` is None (S3 objects are private: only signed
                URLs are readable by others).
            InvalidInputError: ``expires_in`` outside (0, 604800] or an unknown method.
        """
        full = self._full_key(key)
        if expires_in is None:
            raise NotSupportedError(
                type(self).__name__,
                Capability.OBJECT_URL.value,
                "S3 objects are private; pass expires_in=<seconds> for a presigned URL",
            )
        if not 0 < expires_in <= MAX_PRESIGN_SECONDS:
            raise InvalidInputError(
                f"expires_in must be in (0, {MAX_PRESIGN_SECONDS}] seconds (SigV4 limit), "
                f"got {expires_in}"
            )
        operations = {
            "GET": "get_object",
            "HEAD": "head_object",
            "PUT": "put_object",
            "DELETE": "delete_object",
        }
        operation = operations.get(method.upper())
        if operation is None:
            raise InvalidInputError(f"cannot presign {method!r}: use one of {sorted(operations)}")
        with aws_errors(f"presigning {key!r}"):
            url: str = self.client.generate_presigned_url(
                operation,
                Params={"Bucket": self.bucket, "Key": full},
                ExpiresIn=max(1, math.ceil(expires_in)),
                HttpMethod=method.upper(),
            )
        return url

    def uri(self, key: str) -> str:
        """``s3://<bucket>/<prefix>/<key>`` (the root for ''), for DuckDB, Spark, Athena."""
        if not key:
            return self.root_uri
        validate_prefix(key)
        return f"s3://{self.bucket}/{self.prefix}{key}"

    def fsspec_filesystem(self) -> tuple[fsspec.AbstractFileSystem, str]:
        """An ``s3fs.S3FileSystem`` with the same endpoint, region and credentials, with its
        listing cache off (so it never shows stale listings), and the root ``bucket/prefix``.

        Writes through it bypass lakekit's conditional writes: use it for reading.
        """
        if self._fsspec is None:
            self._fsspec = self._make_s3fs()
        return self._fsspec, f"{self.bucket}/{self.prefix}".rstrip("/")

    def _make_s3fs(self) -> fsspec.AbstractFileSystem:
        try:
            import s3fs
        except ImportError as exc:
            from lakekit.errors import MissingDependencyError

            raise MissingDependencyError("S3ObjectStore.fsspec_filesystem", "aws", "s3fs") from exc
        settings = self.settings
        kwargs: dict[str, Any] = {
            "use_listings_cache": False,
            "skip_instance_cache": True,
            "client_kwargs": {"region_name": self._clients.region},
            "config_kwargs": {
                "s3": {"addressing_style": settings.effective_addressing_style},
                "retries": {
                    "total_max_attempts": settings.max_attempts,
                    "mode": settings.retry_mode,
                },
                "connect_timeout": settings.connect_timeout,
                "read_timeout": settings.read_timeout,
            },
        }
        if settings.endpoint_url:
            kwargs["endpoint_url"] = settings.endpoint_url
        creds = settings.explicit_credentials
        if creds is not None:
            kwargs["key"] = creds["aws_access_key_id"]
            kwargs["secret"] = creds["aws_secret_access_key"]
            if "aws_session_token" in creds:
                kwargs["token"] = creds["aws_session_token"]
        elif settings.profile is not None:
            kwargs["profile"] = settings.profile
        return s3fs.S3FileSystem(**kwargs)

    def arrow_filesystem(self) -> tuple[pyarrow.fs.FileSystem, str]:
        """pyarrow's native ``S3FileSystem`` (C++, no fsspec in the read path) with the same
        endpoint and region, and the current credentials of the chain; root ``bucket/prefix``.

        Built on each call, so temporary credentials are fresh.

        Raises:
            ConfigurationError: no credentials can be found.
        """
        import pyarrow.fs

        creds = self._clients.frozen_credentials()
        if creds is None:
            raise ConfigurationError(
                "no AWS credentials found for pyarrow's S3 filesystem: configure the standard "
                "chain or LAKEKIT_STORE_ACCESS_KEY_ID/LAKEKIT_STORE_SECRET_ACCESS_KEY"
            )
        access_key, secret_key, token = creds
        kwargs: dict[str, Any] = {
            "access_key": access_key,
            "secret_key": secret_key,
            "session_token": token,
            "region": self._clients.region,
            "connect_timeout": self.settings.connect_timeout,
            "request_timeout": self.settings.read_timeout,
            "force_virtual_addressing": self.settings.effective_addressing_style == "virtual",
        }
        if self.settings.endpoint_url:
            parts = urlsplit(self.settings.endpoint_url)
            kwargs["endpoint_override"] = parts.netloc + parts.path
            kwargs["scheme"] = parts.scheme
        fs = pyarrow.fs.S3FileSystem(**kwargs)
        return fs, f"{self.bucket}/{self.prefix}".rstrip("/")

    def close(self) -> None:
        """Close the client's connection pool."""
        self._clients.close()
        self._fsspec = None

    # -- helpers --------------------------------------------------------------------------------
    def _full_key(self, key: str) -> str:
        """The S3 key of a lake key; refuses anything that could leave the prefix."""
        validate_key(key)
        return self.prefix + key

    def _full_prefix(self, prefix: str) -> str:
        validate_prefix(prefix)
        return self.prefix + prefix

    def _relative(self, full: str) -> str:
        return full[len(self.prefix) :] if full.startswith(self.prefix) else full

    def _exists(self, full: str) -> bool:
        try:
            with aws_errors(f"object {self._relative(full)!r}", overrides=_NOT_FOUND_404):
                self.client.head_object(Bucket=self.bucket, Key=full)
        except NotFoundError:
            return False
        return True

    def _check_etag(self, key: str, full: str, etag: str | None) -> None:
        with aws_errors(f"object {key!r}", overrides=_NOT_FOUND_404):
            current = _unquote(self.client.head_object(Bucket=self.bucket, Key=full)["ETag"])
        if current != _unquote(etag or ""):
            raise PreconditionFailedError(
                f"object {key!r} changed: its etag is no longer {etag!r}; re-read it and retry"
            )


class _SourceChangedError(Exception):
    """The source of a multipart copy was replaced mid-copy (restart it)."""


class _S3Reader(RangeReader):
    """A seekable stream over bytes ``[start, end)`` of one version of an S3 object.

    Reads continue the open GET; a seek elsewhere re-opens it with a ranged GET pinned to the
    version's etag (``If-Match``), so a replaced object is never mixed in.
    """

    def __init__(  # noqa: PLR0917 - private, one caller
        self,
        store: S3ObjectStore,
        key: str,
        full: str,
        start: int,
        end: int | None,
        response: dict[str, Any],
    ) -> None:
        total = _total_size(response, start)
        first = min(start, total)
        super().__init__(first, total if end is None else min(end, total))
        self._store = store
        self._key = key
        self._full = full
        self._etag = str(response["ETag"])
        self._body: Any = response["Body"]
        self._body_pos = first

    def _read_at(self, view: memoryview, position: int) -> int:
        if self._body is None or self._body_pos != position:
            self._reopen(position)
        with aws_errors(f"reading object {self._key!r}"):
            data = self._body.read(len(view))
        view[: len(data)] = data
        self._body_pos = position + len(data)
        return len(data)

    def _reopen(self, position: int) -> None:
        self._close_body()
        store = self._store
        with aws_errors(f"reading object {self._key!r}", overrides=_NOT_FOUND_404):
            try:
                response = store.client.get_object(
                    Bucket=store.bucket,
                    Key=self._full,
                    Range=f"bytes={position}-{self._end - 1}",
                    IfMatch=self._etag,
                )
            except Exception as exc:
                if error_code(exc) == "PreconditionFailed" or http_status(exc) == 412:
                    raise PreconditionFailedError(
                        f"object {self._key!r} was replaced while it was being read; open it again"
                    ) from exc
                raise
        self._body = response["Body"]
        self._body_pos = position

    def _close_body(self) -> None:
        if self._body is not None:
            with contextlib.suppress(Exception):
                self._body.close()
            self._body = None

    def close(self) -> None:
        if not self.closed:
            try:
                self._close_body()
            finally:
                super().close()


def _total_size(response: dict[str, Any], start: int) -> int:
    """The object's size from a GET response (``Content-Range: bytes a-b/total`` if ranged)."""
    content_range = response.get("ContentRange")
    if isinstance(content_range, str) and "/" in content_range:
        total = content_range.rsplit("/", 1)[1]
        if total.isdigit():
            return int(total)
    return start + int(response.get("ContentLength") or 0)


def _store_from_settings(settings: S3ObjectStoreSettings) -> S3ObjectStore:
    return S3ObjectStore.from_settings(settings)


def _not_found(message: str) -> LakekitError:
    return NotFoundError(message.replace(": 404", " does not exist"))


_NOT_FOUND_404: dict[str, Callable[[str], LakekitError]] = {"404": _not_found}


def _conditions(mode: PutMode) -> dict[str, str]:
    if mode.is_create:
        return {"IfNoneMatch": "*"}
    if mode.is_update:
        return {"IfMatch": _quote(mode.etag or "")}
    return {}


def _quote(etag: str) -> str:
    return f'"{_unquote(etag)}"'


def _unquote(etag: str) -> str:
    etag = etag.strip()
    if etag.startswith("W/"):
        etag = etag[2:]
    return etag.strip('"')


def _visible(key: str) -> bool:
    """Whether a listed key (or prefix) can be a lake object or prefix: not in lakekit's
    reserved area, and no key other tools use as a "directory marker" (``dir/``, empty
    segments) that no lake key can name."""
    return not any(
        segment.startswith(RESERVED_PREFIX) or not segment
        for segment in key.removesuffix("/").split("/")
    )


def _is_object_key(key: str) -> bool:
    """A listed object is a lake object unless it is a directory marker (``dir/``)."""
    return bool(key) and not key.endswith("/") and _visible(key)


def _as_utc(value: datetime) -> datetime:
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


def _response_time(response: dict[str, Any]) -> datetime:
    """The server's Date header of a write (S3's LastModified has the same 1 s resolution)."""
    headers = response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
    date = headers.get("date")
    if date:
        try:
            return _as_utc(parsedate_to_datetime(date))
        except (TypeError, ValueError):
            pass
    return datetime.now(UTC)


def _listed_meta(key: str, item: dict[str, Any]) -> ObjectMeta:
    return ObjectMeta(
        key=key,
        size=int(item["Size"]),
        etag=_unquote(item["ETag"]),
        last_modified=_as_utc(item["LastModified"]),
    )
