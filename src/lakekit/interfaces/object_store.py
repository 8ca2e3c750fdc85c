"""ObjectStore: keys to bytes, the ground floor of the lake.

Two faces, as in the Rust ``object_store`` crate:

* :class:`ObjectStoreAdapter` is what an adapter author implements: eight methods.
* :class:`ObjectStore` is what users call (``lake.store``): conveniences built once on top of
  those eight, with key validation so that no key ever escapes the lake root.

Guarantees every adapter gives (the conformance suite checks each):

* **Atomic put**: a reader sees the old object or the whole new one, never a partial object.
* **Read-after-write**: after ``put`` returns, ``get``, ``head`` and ``list`` see the new object.
* **Conditional writes** (where declared): ``PutMode.CREATE`` fails with AlreadyExistsError if
  the key exists, ``PutMode.update(etag)`` fails with PreconditionFailedError unless the current
  etag matches; both are atomic across processes.
* **Etags** change whenever an object's content is replaced.
* **Listing** is in lexicographic (UTF-8 byte) key order.
* **Delete** is idempotent: deleting a missing key is not an error.
"""

from __future__ import annotations

import builtins
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, TYPE_CHECKING, ClassVar

from lakekit._keys import validate_key, validate_prefix
from lakekit.capabilities import Capability, require
from lakekit.errors import NotFoundError

if TYPE_CHECKING:
    import fsspec
    import pyarrow.fs

__all__ = [
    "ListResult",
    "ObjectMeta",
    "ObjectStore",
    "ObjectStoreAdapter",
    "PutData",
    "PutMode",
    "as_chunks",
]

PutData = bytes | bytearray | memoryview | IO[bytes] | Iterable[bytes]
"""What ``put`` accepts: bytes, a binary file object (read in chunks), or an iterable of chunks."""

CHUNK_SIZE = 8 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class PutMode:
    """How a put treats an existing object. Use the constants and ``PutMode.update(etag)``.

    * ``PutMode.OVERWRITE``: replace unconditionally (default).
    * ``PutMode.CREATE``: fail with AlreadyExistsError if the key exists.
    * ``PutMode.update(etag)``: replace only if the current etag equals ``etag``, else
      PreconditionFailedError (NotFoundError if the object is gone).
    """

    kind: str
    etag: str | None = None

    OVERWRITE: ClassVar[PutMode]
    CREATE: ClassVar[PutMode]

    @classmethod
    def update(cls, etag: str) -> PutMode:
        if not etag:
            raise ValueError("PutMode.update needs the etag returned by head() or put()")
        return cls("update", etag)

    @property
    def is_overwrite(self) -> bool:
        return self.kind == "overwrite"

    @property
    def is_create(self) -> bool:
        return self.kind == "create"

    @property
    def is_update(self) -> bool:
        return self.kind == "update"


PutMode.OVERWRITE = PutMode("overwrite")
PutMode.CREATE = PutMode("create")


@dataclass(frozen=True, slots=True)
class ObjectMeta:
    """What ``head`` and ``list`` return about one object."""

    key: str
    size: int
    etag: str
    last_modified: datetime
    """Timezone-aware (UTC)."""
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ListResult:
    """One level of a delimited listing: objects directly under the prefix, and sub-prefixes."""

    objects: list[ObjectMeta]
    prefixes: list[str]
    """Common prefixes, each ending with '/', in lexicographic order."""


class ObjectStoreAdapter(ABC):
    """The implementer's interface. Keys arrive already validated by the :class:`ObjectStore`.

    Adapters map backend errors to lakekit's tree at this boundary: a missing key is
    NotFoundError, a lost create is AlreadyExistsError, a lost update is
    PreconditionFailedError, throttling/5xx is TransientError.
    """

    capabilities: ClassVar[frozenset[Capability]] = frozenset()
    name: ClassVar[str] = "object_store"

    @abstractmethod
    def put(self, key: str, data: PutData, mode: PutMode) -> ObjectMeta:
        """Write an object atomically; stream ``data`` without loading it whole.

        Raises:
            AlreadyExistsError: ``mode`` is CREATE and the key exists.
            PreconditionFailedError: ``mode`` is update(etag) and the etag differs.
            NotFoundError: ``mode`` is update(etag) and the object does not exist.
            NotSupportedError: the mode needs a capability the adapter lacks.
        """

    @abstractmethod
    def open(self, key: str, start: int = 0, end: int | None = None) -> IO[bytes]:
        """Open the object (or the byte range ``[start, end)``) for streaming reads.

        Raises:
            NotFoundError: no such key.
        """

    @abstractmethod
    def head(self, key: str) -> ObjectMeta:
        """Return the object's metadata.

        Raises:
            NotFoundError: no such key.
        """

    @abstractmethod
    def list(self, prefix: str) -> Iterator[ObjectMeta]:
        """Yield every object whose key starts with ``prefix``, in lexicographic key order."""

    @abstractmethod
    def list_with_delimiter(self, prefix: str) -> ListResult:
        """List one level under ``prefix`` using '/' as the delimiter."""

    @abstractmethod
    def delete(self, keys: Iterable[str]) -> None:
        """Delete the keys; missing keys are ignored. Each deletion is atomic on its own."""

    @abstractmethod
    def copy(self, src: str, dst: str, *, overwrite: bool = True) -> ObjectMeta:
        """Copy an object server-side where possible; the copy appears atomically.

        Raises:
            NotFoundError: ``src`` does not exist.
            AlreadyExistsError: ``overwrite`` is False and ``dst`` exists.
        """

    @abstractmethod
    def url(self, key: str, *, expires_in: float | None = None, method: str = "GET") -> str:
        """A URL for the object (signed and expiring where the adapter declares SIGNED_URL).

        Raises:
            NotSupportedError: the adapter cannot produce URLs.
        """

    @abstractmethod
    def uri(self, key: str) -> str:
        """The object's address for other engines: a local path, or ``s3://``/``gs://``/... URL."""

    @abstractmethod
    def fsspec_filesystem(self) -> tuple[fsspec.AbstractFileSystem, str]:
        """An fsspec filesystem and the root path in it that keys are relative to."""

    def arrow_filesystem(self) -> tuple[pyarrow.fs.FileSystem, str]:
        """A pyarrow filesystem and root path; defaults to wrapping :meth:`fsspec_filesystem`."""
        import pyarrow.fs

        fs, root = self.fsspec_filesystem()
        handler = pyarrow.fs.FSSpecHandler(fs)  # type: ignore[abstract]  # stubs lag pyarrow
        return pyarrow.fs.PyFileSystem(handler), root

    def close(self) -> None:  # noqa: B027 - optional hook, most adapters hold nothing to close
        """Release connections. Optional."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class ObjectStore:
    """The user-facing object store (``lake.store``): validated keys, conveniences, streaming.

    Every method validates its keys first, so ``../`` or absolute paths never reach an adapter.
    """

    def __init__(self, adapter: ObjectStoreAdapter) -> None:
        self.adapter = adapter

    @property
    def capabilities(self) -> frozenset[Capability]:
        return self.adapter.capabilities

    def __repr__(self) -> str:
        return f"ObjectStore({self.adapter!r})"

    # -- writes ---------------------------------------------------------------------------------
    def put(self, key: str, data: PutData, *, mode: PutMode = PutMode.OVERWRITE) -> ObjectMeta:
        """Write an object atomically. See :class:`PutMode` for conditional writes.

        Raises:
            InvalidInputError: the key is not a safe relative key.
            AlreadyExistsError, PreconditionFailedError, NotFoundError: as for the mode.
            NotSupportedError: the mode is conditional and the adapter cannot do it atomically.
        """
        validate_key(key)
        if mode.is_create:
            require(self.adapter, Capability.PUT_IF_ABSENT)
        elif mode.is_update:
            require(self.adapter, Capability.PUT_IF_MATCH)
        return self.adapter.put(key, data, mode)

    def create(self, key: str, data: PutData) -> ObjectMeta:
        """Write only if ``key`` does not exist (atomic). Raises AlreadyExistsError otherwise."""
        return self.put(key, data, mode=PutMode.CREATE)

    def update(self, key: str, data: PutData, *, etag: str) -> ObjectMeta:
        """Replace only if the current etag is ``etag`` (compare-and-swap).

        Raises:
            PreconditionFailedError: the object changed since ``etag`` was read.
            NotFoundError: the object no longer exists.
        """
        return self.put(key, data, mode=PutMode.update(etag))

    def put_text(self, key: str, text: str, *, mode: PutMode = PutMode.OVERWRITE) -> ObjectMeta:
        return self.put(key, text.encode("utf-8"), mode=mode)

    def delete(self, key: str | Iterable[str]) -> None:
        """Delete one key or many; missing keys are ignored (idempotent)."""
        keys = [key] if isinstance(key, str) else list(key)
        for k in keys:
            validate_key(k)
        if keys:
            self.adapter.delete(keys)

    def delete_prefix(self, prefix: str) -> int:
        """Delete every object under ``prefix`` (which must not be empty); return the count."""
        validate_prefix(prefix)
        if not prefix:
            raise ValueError("delete_prefix needs a non-empty prefix; refusing to empty the lake")
        keys = [meta.key for meta in self.adapter.list(prefix)]
        if keys:
            self.adapter.delete(keys)
        return len(keys)

    def copy(self, src: str, dst: str, *, overwrite: bool = True) -> ObjectMeta:
        validate_key(src)
        validate_key(dst)
        if not overwrite:
            require(self.adapter, Capability.COPY_IF_ABSENT)
        return self.adapter.copy(src, dst, overwrite=overwrite)

    # -- reads ----------------------------------------------------------------------------------
    def get(self, key: str) -> bytes:
        """Read a whole object into memory. Use :meth:`open` for large objects."""
        with self.open(key) as stream:
            return stream.read()

    def get_text(self, key: str) -> str:
        return self.get(key).decode("utf-8")

    def get_range(self, key: str, start: int, end: int) -> bytes:
        """Read bytes ``[start, end)``; a range past the end is truncated like a file read."""
        if start < 0 or end < start:
            raise ValueError(f"invalid byte range [{start}, {end})")
        with self.open(key, start=start, end=end) as stream:
            return stream.read()

    def open(self, key: str, *, start: int = 0, end: int | None = None) -> IO[bytes]:
        """A binary stream over the object (or a byte range), read lazily in chunks."""
        validate_key(key)
        return self.adapter.open(key, start, end)

    def head(self, key: str) -> ObjectMeta:
        validate_key(key)
        return self.adapter.head(key)

    def exists(self, key: str) -> bool:
        validate_key(key)
        try:
            self.adapter.head(key)
        except NotFoundError:
            return False
        return True

    def list(self, prefix: str = "") -> Iterator[ObjectMeta]:
        """Every object under ``prefix`` (recursively), in lexicographic key order."""
        validate_prefix(prefix)
        return self.adapter.list(prefix)

    def list_keys(self, prefix: str = "") -> builtins.list[str]:
        return [meta.key for meta in self.list(prefix)]

    def list_dir(self, prefix: str = "") -> ListResult:
        """One level under ``prefix`` with '/' as delimiter (objects and sub-prefixes)."""
        validate_prefix(prefix)
        return self.adapter.list_with_delimiter(prefix)

    # -- addresses for other programs -----------------------------------------------------------
    def url(self, key: str, *, expires_in: float | None = None, method: str = "GET") -> str:
        """A URL another program can use; signed and expiring if the adapter supports it."""
        validate_key(key)
        if expires_in is not None:
            require(self.adapter, Capability.SIGNED_URL)
        else:
            require(self.adapter, Capability.OBJECT_URL)
        return self.adapter.url(key, expires_in=expires_in, method=method)

    def uri(self, key: str = "") -> str:
        """The address of a key (or of the lake root) for engines such as DuckDB or Spark."""
        if key:
            validate_prefix(key)
        return self.adapter.uri(key)

    @property
    def fsspec(self) -> fsspec.AbstractFileSystem:
        """An fsspec filesystem whose paths are keys (rooted at the lake root)."""
        from fsspec.implementations.dirfs import DirFileSystem

        fs, root = self.adapter.fsspec_filesystem()
        return DirFileSystem(path=root, fs=fs)

    @property
    def arrow_filesystem(self) -> pyarrow.fs.FileSystem:
        """A pyarrow filesystem whose paths are keys (rooted at the lake root)."""
        import pyarrow.fs

        fs, root = self.adapter.arrow_filesystem()
        return pyarrow.fs.SubTreeFileSystem(root, fs)

    def close(self) -> None:
        self.adapter.close()


def as_chunks(data: PutData, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
    """Yield ``data`` as byte chunks, whatever shape :data:`PutData` it came in."""
    if isinstance(data, bytes | bytearray | memoryview):
        yield bytes(data)
        return
    read = getattr(data, "read", None)
    if callable(read):
        while True:
            chunk = read(chunk_size)
            if not chunk:
                return
            yield bytes(chunk)
    for chunk in data:
        if not isinstance(chunk, bytes | bytearray | memoryview):
            raise TypeError(f"put data chunks must be bytes, got {type(chunk).__name__}")
        yield bytes(chunk)
