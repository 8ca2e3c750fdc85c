"""The local object store: a directory tree whose regular files are the lake's objects.

Key ``raw/2026/orders.json`` is the file ``<root>/raw/2026/orders.json``, so DuckDB, pyarrow,
Spark or a shell see the same data lakekit does, and files other programs drop into the folder
are ordinary objects.

How the guarantees of :mod:`lakekit.interfaces.object_store` are kept with plain POSIX calls:

* **Atomic, durable put**: the data streams into a fresh temp file in ``<root>/.lakekit-tmp/``
  (same filesystem), which is fsynced and then moved into place with ``os.replace`` (an atomic
  rename), after which the parent directory is fsynced. Readers see the old file or the new one.
* **Conditional writes across processes**: every mutation of a key (put, delete, copy target)
  holds an exclusive ``fcntl.flock`` on that key's lock file in ``<root>/.lakekit-locks/``.
  ``PutMode.CREATE`` installs the temp file with ``os.link`` (which fails if the target exists);
  ``PutMode.update(etag)`` compares the etag and replaces the file while holding the lock, so no
  other lakekit writer, in any process, can slip between the check and the replace.
* **Cheap etags** from ``stat`` (see :func:`_etag`); no content hashing on ``head``.
* **Ordered, streaming listings**: one directory is read at a time and its entries are sorted by
  ``name`` (files) or ``name + "/"`` (directories), which makes a depth-first walk yield keys in
  exact lexicographic order.
* **No phantom prefixes**: delete removes parent directories that became empty, up to the root.
  A put that loses its freshly made directory to such a cleanup simply makes it again.

Writes use ``os`` primitives rather than fsspec's ``LocalFileSystem`` because fsspec writes in
place (a reader can see a half-written file), offers no create-if-absent or compare-and-swap,
and does not fsync. fsspec and pyarrow filesystems are still handed out for reading.

**Change listeners** (in-process): :func:`add_change_listener` registers a callback that every
``LocalObjectStore`` of this process on the same root calls after each successful put, copy or
delete, so the local trigger server (:mod:`lakekit.triggers`) reports lakekit's own writes at
once instead of waiting for its next scan. Writes of other processes and programs are found by
that scan. With no listener registered a write pays one dictionary lookup.

Limits: POSIX only (``fcntl``). A key and keys below it (``a`` and ``a/b``) cannot coexist, a
path segment is limited by the filesystem (255 bytes on most), and files changed in place by
other programs are not atomic for lakekit readers. Symbolic links are followed only while they
resolve inside the root (checked at call time).
"""

from __future__ import annotations

import builtins
import errno
import fcntl
import hashlib
import io
import logging
import os
import stat
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, ClassVar, NamedTuple, Self

from pydantic import Field

from lakekit._keys import MAX_KEY_BYTES, RESERVED_PREFIX, validate_key, validate_prefix
from lakekit.adapters._range_reader import RangeReader
from lakekit.capabilities import Capability
from lakekit.config import AdapterSettings, local_path
from lakekit.errors import (
    AlreadyExistsError,
    ConfigurationError,
    InvalidInputError,
    LakekitError,
    NotFoundError,
    NotSupportedError,
    PermissionDeniedError,
    PreconditionFailedError,
    TransientError,
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

__all__ = [
    "ChangeListener",
    "LocalObjectStore",
    "LocalObjectStoreSettings",
    "add_change_listener",
    "etag_of",
    "remove_change_listener",
]

TMP_DIR = f"{RESERVED_PREFIX}-tmp"
"""Scratch directory for in-flight writes, inside the root so that renames stay atomic."""
LOCK_DIR = f"{RESERVED_PREFIX}-locks"
"""Lock files (one per stripe of keys) that serialise mutations of a key across processes."""

_LOCK_STRIPES = 256
_STALE_TMP_SECONDS = 24 * 3600
_INSTALL_ATTEMPTS = 100
_READ_CHUNK = 1024 * 1024
_FORBIDDEN_IN_NAMES = frozenset("\x00\\\r\n")
_NO_HARDLINKS = frozenset(
    {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS, errno.EXDEV, errno.EMLINK}
)


class LocalObjectStoreSettings(AdapterSettings):
    """Settings of the local object store (component ``store``)."""

    component: ClassVar[str] = "store"

    url: str = Field(
        description=(
            "The lake directory: 'local:///abs/path', 'local://./relative', 'file:///abs/path' "
            "or a plain path; created if missing. Env LAKEKIT_STORE (or LAKEKIT_STORE_URL)."
        )
    )
    fsync: bool = Field(
        default=True,
        description=(
            "fsync each written file and its directory before put() returns, so that an "
            "acknowledged put survives a power loss. Turn off only for throwaway lakes (tests). "
            "Env LAKEKIT_STORE_FSYNC."
        ),
    )


ChangeListener = Callable[[str, str, "ObjectMeta | None"], None]
"""``callback(kind, key, meta)``: ``kind`` is ``"created"`` (``meta`` the new version's
metadata) or ``"deleted"`` (``meta`` None)."""

_listeners: dict[str, builtins.list[ChangeListener]] = {}
_listeners_lock = threading.Lock()


def add_change_listener(root: str | os.PathLike[str], callback: ChangeListener) -> None:
    """Call ``callback(kind, key, meta)`` after every successful put, copy and delete that a
    ``LocalObjectStore`` of *this process* makes under ``root`` (any instance on that root).

    The callback runs on the writer's thread after the change is durable, outside every lock;
    it must be quick (hand the change to another thread) and must not raise (an exception is
    logged and ignored: it never fails the write).
    """
    key = os.path.realpath(os.fspath(root))
    with _listeners_lock:
        _listeners.setdefault(key, []).append(callback)


def remove_change_listener(root: str | os.PathLike[str], callback: ChangeListener) -> None:
    """Stop calling ``callback`` for ``root``; a callback that was not added is ignored."""
    key = os.path.realpath(os.fspath(root))
    with _listeners_lock:
        callbacks = _listeners.get(key)
        if callbacks is not None and callback in callbacks:
            callbacks.remove(callback)
            if not callbacks:
                del _listeners[key]


def _notify(root: str, kind: str, key: str, meta: ObjectMeta | None) -> None:
    if not _listeners:  # the common case: nobody listens
        return
    with _listeners_lock:
        callbacks = tuple(_listeners.get(root, ()))
    for callback in callbacks:
        try:
            callback(kind, key, meta)
        except Exception:
            logging.getLogger("lakekit.store").exception("object change listener failed")


class _Entry(NamedTuple):
    sort_key: str
    name: str
    is_dir: bool


class LocalObjectStore(ObjectStoreAdapter):
    """Objects as files under a root directory, written atomically and durably.

    Args:
        root: the lake directory (a path, or a ``local://``/``file://`` URL); created if missing.
        fsync: fsync file and directory on every put (durable against power loss).

    Every put is atomic (temp file + rename) and, with ``fsync``, durable once it returns.
    ``PutMode.CREATE``, ``PutMode.update(etag)`` and ``copy(overwrite=False)`` are atomic across
    threads and processes sharing the directory. Listings are streamed in lexicographic key
    order and never show lakekit's reserved ``.lakekit*`` entries.
    """

    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {
            Capability.PUT_IF_ABSENT,
            Capability.PUT_IF_MATCH,
            Capability.COPY_IF_ABSENT,
            Capability.OBJECT_URL,
        }
    )
    settings_model: ClassVar[type[AdapterSettings]] = LocalObjectStoreSettings

    def __init__(self, root: str | os.PathLike[str], *, fsync: bool = True) -> None:
        path = local_path(os.fspath(root))
        try:
            path.mkdir(parents=True, exist_ok=True)
            for sub in (TMP_DIR, LOCK_DIR):
                (path / sub).mkdir(exist_ok=True)
        except (FileExistsError, NotADirectoryError) as exc:
            raise ConfigurationError(
                f"the local lake root {path} exists but is not a directory"
            ) from exc
        except PermissionError as exc:
            raise PermissionDeniedError(f"cannot create the local lake root {path}: {exc}") from exc
        except OSError as exc:
            raise ConfigurationError(f"cannot create the local lake root {path}: {exc}") from exc
        self._root = os.path.realpath(path)
        self._root_sep = self._root.rstrip(os.sep) + os.sep
        self._fsync = fsync
        self._sweep_stale_temp_files()

    @classmethod
    def from_settings(cls, settings: AdapterSettings, lake: Lake | None = None) -> Self:
        """Build the store from validated settings (``lake`` is not needed)."""
        if not isinstance(settings, LocalObjectStoreSettings):
            raise ConfigurationError(
                f"LocalObjectStore needs LocalObjectStoreSettings, got {type(settings).__name__}"
            )
        return cls(local_path(settings.url), fsync=settings.fsync)

    @property
    def root(self) -> Path:
        """The absolute, symlink-free lake directory."""
        return Path(self._root)

    @property
    def fsync(self) -> bool:
        """Whether puts are fsynced (durable against power loss) before they return."""
        return self._fsync

    def __repr__(self) -> str:
        return f"LocalObjectStore(root={self._root!r}, fsync={self._fsync})"

    # -- writes ---------------------------------------------------------------------------------
    def put(self, key: str, data: PutData, mode: PutMode) -> ObjectMeta:
        """Write ``data`` to ``key`` atomically, durably if ``fsync`` is on.

        The data streams to a temp file (never held whole in memory); the object appears only
        when complete. If ``data`` raises midway, nothing changes and the exception propagates.

        Raises:
            InvalidInputError: bad key, or ``key`` clashes with a prefix (``a`` vs ``a/b``).
            AlreadyExistsError: ``mode`` is CREATE and the key exists.
            PreconditionFailedError: ``mode`` is update(etag) and the etag differs.
            NotFoundError: ``mode`` is update(etag) and the object does not exist.
            PermissionDeniedError: the filesystem refused the write.
        """
        target = self._path(key, follow=False)
        # Cheap early refusals; the authoritative checks run again under the key's lock.
        if mode.is_create and os.path.lexists(target):
            raise self._exists_error(key)
        if mode.is_update:
            self._check_etag(key, target, mode.etag)
        tmp, st = self._write_temp(key, as_chunks(data))
        try:
            with self._locked(key):
                if mode.is_create:
                    self._install_new(key, target, tmp)
                else:
                    current = self._check_etag(key, target, mode.etag) if mode.is_update else None
                    st = self._keep_mtime_increasing(key, target, tmp, st, current)
                    self._install(key, target, lambda: os.replace(tmp, target))
        finally:
            _unlink_quietly(tmp)
        meta = _meta(key, st)
        _notify(self._root, "created", key, meta)
        return meta

    def delete(self, keys: Iterable[str]) -> None:
        """Delete each key (missing keys and prefixes are ignored), then remove directories
        left empty, up to the root. Each deletion is atomic; the batch is not.

        Raises:
            InvalidInputError: a key is invalid (checked for all keys before deleting any).
            PermissionDeniedError: the filesystem refused the deletion.
        """
        targets = [(key, self._path(key, follow=False)) for key in keys]
        for key, target in targets:
            parent = os.path.dirname(target)
            with self._locked(key):
                try:
                    os.unlink(target)
                except (FileNotFoundError, NotADirectoryError):
                    continue
                except OSError as exc:
                    if exc.errno in (errno.EISDIR, errno.EPERM) and os.path.isdir(target):
                        continue  # a prefix, not an object: nothing to delete
                    raise _os_error(exc, f"object {key!r}") from exc
                if self._fsync:
                    _fsync_dir(parent)
            self._prune(parent)
            _notify(self._root, "deleted", key, None)

    def copy(self, src: str, dst: str, *, overwrite: bool = True) -> ObjectMeta:
        """Copy ``src`` to ``dst``; the copy appears atomically (and, with ``overwrite=False``,
        only if ``dst`` does not exist, atomically across processes).

        Raises:
            NotFoundError: ``src`` does not exist.
            AlreadyExistsError: ``overwrite`` is False and ``dst`` exists.
        """
        fd = self._open_regular(self._path(src, follow=True), src)
        with os.fdopen(fd, "rb") as source:
            mode = PutMode.OVERWRITE if overwrite else PutMode.CREATE
            return self.put(dst, source, mode)

    # -- reads ----------------------------------------------------------------------------------
    def open(self, key: str, start: int = 0, end: int | None = None) -> IO[bytes]:
        """Open the object, or its bytes ``[start, end)``, as a seekable binary stream.

        The stream reads the version that was current when it was opened, even if the object
        is replaced meanwhile. A range past the end is truncated like a file read.

        Raises:
            NotFoundError: no such object (or ``key`` is a prefix).
            InvalidInputError: negative or reversed range; a path leaving the root.
        """
        if start < 0 or (end is not None and end < start):
            raise InvalidInputError(f"invalid byte range [{start}, {end}) for {key!r}")
        fd = self._open_regular(self._path(key, follow=True), key)
        if start == 0 and end is None:
            return os.fdopen(fd, "rb")
        try:
            size = os.fstat(fd).st_size
        except OSError as exc:
            os.close(fd)
            raise _os_error(exc, f"object {key!r}") from exc
        first = min(start, size)
        last = size if end is None else min(end, size)
        return io.BufferedReader(_RangeFile(fd, first, last), buffer_size=_READ_CHUNK)

    def head(self, key: str) -> ObjectMeta:
        """Size, etag and UTC modification time of the object, from one ``stat`` call.

        Raises:
            NotFoundError: no such object (or ``key`` is a prefix).
        """
        path = self._path(key, follow=True)
        try:
            st = os.stat(path)
        except OSError as exc:
            raise _os_error(exc, f"object {key!r}") from exc
        if not stat.S_ISREG(st.st_mode):
            raise NotFoundError(f"no object {key!r}: it is a prefix (a directory), not an object")
        return _meta(key, st)

    def list(self, prefix: str) -> Iterator[ObjectMeta]:
        """Stream every object whose key starts with ``prefix``, in lexicographic key order.

        One directory is read at a time. Objects written or deleted during the listing may or
        may not appear; each yielded entry existed when it was reached.
        """
        top, key_prefix, name_filter = self._listing_start(prefix)
        return self._walk(top, key_prefix, name_filter)

    def list_with_delimiter(self, prefix: str) -> ListResult:
        """Objects directly under ``prefix`` and the '/'-terminated sub-prefixes that hold at
        least one object (empty directories are not prefixes)."""
        top, key_prefix, name_filter = self._listing_start(prefix)
        objects: builtins.list[ObjectMeta] = []
        prefixes: builtins.list[str] = []
        for entry in self._scan(top, name_filter):
            path = os.path.join(top, entry.name)
            key = key_prefix + entry.name
            if entry.is_dir:
                sub = key + "/"
                if next(self._walk(path, sub, ""), None) is not None:
                    prefixes.append(sub)
            elif len(key.encode("utf-8")) <= MAX_KEY_BYTES:
                meta = _stat_meta(path, key)
                if meta is not None:
                    objects.append(meta)
        return ListResult(objects=objects, prefixes=prefixes)

    # -- addresses ------------------------------------------------------------------------------
    def url(self, key: str, *, expires_in: float | None = None, method: str = "GET") -> str:
        """A ``file://`` URL of the object (it need not exist yet).

        Raises:
            NotSupportedError: ``expires_in`` was given (no signed URLs), or ``method`` is not
                GET/HEAD (a file URL is an address for reading).
        """
        adapter = type(self).__name__
        if expires_in is not None:
            raise NotSupportedError(
                adapter, Capability.SIGNED_URL.value, "a local store has no signed URLs"
            )
        if method.upper() not in ("GET", "HEAD"):
            raise NotSupportedError(
                adapter, Capability.OBJECT_URL.value, f"file:// URLs are for reading, not {method}"
            )
        return Path(self._path(key, follow=True)).as_uri()

    def uri(self, key: str) -> str:
        """The absolute local path of ``key`` (a prefix keeps its trailing '/'); the root for ''.

        Raises:
            InvalidInputError: bad key, or a path leaving the root.
        """
        if not key:
            return self._root
        validate_prefix(key)
        path = os.path.join(self._root, *key.removesuffix("/").split("/"))
        self._check_inside(path, key)
        return path + "/" if key.endswith("/") else path

    def fsspec_filesystem(self) -> tuple[fsspec.AbstractFileSystem, str]:
        """fsspec's ``LocalFileSystem`` and the root. Writes through it bypass lakekit's
        atomicity and locking: use it for reading."""
        from fsspec.implementations.local import LocalFileSystem

        return LocalFileSystem(), self._root

    def arrow_filesystem(self) -> tuple[pyarrow.fs.FileSystem, str]:
        """pyarrow's native ``LocalFileSystem`` (no fsspec wrapping) and the root."""
        import pyarrow.fs

        return pyarrow.fs.LocalFileSystem(), self._root

    # -- paths and safety -----------------------------------------------------------------------
    def _path(self, key: str, *, follow: bool) -> str:
        """The file path of ``key``, refusing any path that resolves outside the root.

        ``follow`` says whether the last component is followed (reads) or acted on itself
        (rename, link, unlink), in which case only its directory must resolve inside.
        """
        validate_key(key)
        path = os.path.join(self._root, *key.split("/"))
        self._check_inside(path if follow else os.path.dirname(path), key)
        return path

    def _check_inside(self, path: str, key: str) -> None:
        if not self._inside(os.path.realpath(path)):
            raise InvalidInputError(
                f"object key {key!r} resolves outside the lake root {self._root} through a "
                "symbolic link; lakekit refuses to follow it"
            )

    def _inside(self, real: str) -> bool:
        return real == self._root or real.startswith(self._root_sep)

    # -- writing helpers ------------------------------------------------------------------------
    def _write_temp(self, key: str, chunks: Iterator[bytes]) -> tuple[str, os.stat_result]:
        """Stream ``chunks`` into a new temp file, stamp and fsync it; return its path and stat.

        Exceptions from ``chunks`` (the caller's data) propagate unchanged; nothing is left.
        """
        tmp = os.path.join(self._root, TMP_DIR, f"{uuid.uuid4().hex}.tmp")
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
        try:
            fd = _retry_missing_dir(lambda: os.open(tmp, flags, 0o666), os.path.dirname(tmp))
        except OSError as exc:
            raise _os_error(exc, f"a temp file for {key!r}") from exc
        try:
            try:
                for chunk in chunks:  # errors raised by the caller's data pass through as-is
                    try:
                        _write_all(fd, chunk)
                    except OSError as exc:
                        raise _os_error(exc, f"object {key!r}") from exc
                try:
                    # An exact, fine-grained mtime: the coarse kernel clock could give two quick
                    # versions the same one, and the etag relies on it (see _etag).
                    now = time.time_ns()
                    os.utime(fd, ns=(now, now))
                    if self._fsync:
                        os.fsync(fd)
                    st = os.fstat(fd)
                except OSError as exc:
                    raise _os_error(exc, f"object {key!r}") from exc
            finally:
                os.close(fd)
        except BaseException:
            _unlink_quietly(tmp)
            raise
        return tmp, st

    def _keep_mtime_increasing(
        self,
        key: str,
        target: str,
        tmp: str,
        st: os.stat_result,
        current: os.stat_result | None,
    ) -> os.stat_result:
        """Make the new version's mtime later than the one it replaces (called under the lock).

        Only matters if the clock stepped back or a file carries a future mtime; it keeps
        successive versions of a key from sharing an etag.
        """
        if current is None:
            try:
                current = os.stat(target)
            except OSError:
                return st
        if current.st_mtime_ns < st.st_mtime_ns:
            return st
        later = current.st_mtime_ns + 1
        try:
            os.utime(tmp, ns=(later, later))
            if self._fsync:
                fd = os.open(tmp, os.O_RDONLY | os.O_CLOEXEC)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            return os.stat(tmp)
        except OSError as exc:
            raise _os_error(exc, f"object {key!r}") from exc

    def _install_new(self, key: str, target: str, tmp: str) -> None:
        """Make ``tmp`` appear at ``target`` only if nothing is there (under the key's lock)."""

        def link() -> None:
            try:
                os.link(tmp, target)
            except FileExistsError:
                raise self._exists_error(key) from None
            except OSError as exc:
                if exc.errno not in _NO_HARDLINKS:
                    raise
                # No hard links on this filesystem (exFAT, some network mounts): every lakekit
                # writer of this key holds the lock we hold, so check-then-rename is atomic
                # for them.
                if os.path.lexists(target):
                    raise self._exists_error(key) from None
                os.replace(tmp, target)

        self._install(key, target, link)

    def _install(self, key: str, target: str, op: Callable[[], None]) -> None:
        """Run ``op`` (a rename or link onto ``target``) once the parent directories exist,
        then fsync the directories it changed.

        A concurrent delete may remove a directory we just made (it was empty); the rename
        then fails with ENOENT and we make the directory again.
        """
        parent = os.path.dirname(target)
        created: builtins.list[str] = []
        for attempt in range(_INSTALL_ATTEMPTS):
            try:
                created = self._make_parents(key, parent)
                op()
                break
            except LakekitError:
                raise
            except FileNotFoundError as exc:
                if attempt == _INSTALL_ATTEMPTS - 1:
                    raise _os_error(exc, f"object {key!r}") from exc
            except (IsADirectoryError, NotADirectoryError) as exc:
                raise self._shape_error(key) from exc
            except OSError as exc:
                raise _os_error(exc, f"object {key!r}") from exc
        if self._fsync:
            for path in (*created, target):
                _fsync_dir(os.path.dirname(path))

    def _make_parents(self, key: str, parent: str) -> builtins.list[str]:
        """Create the missing directories up to ``parent``; return those created, top-down."""
        missing: builtins.list[str] = []
        path = parent
        while path != self._root:
            try:
                st = os.stat(path)
            except FileNotFoundError:
                missing.append(path)
                path = os.path.dirname(path)
                continue
            except NotADirectoryError as exc:
                raise self._shape_error(key) from exc
            if not stat.S_ISDIR(st.st_mode):
                raise self._shape_error(key)
            break
        created: builtins.list[str] = []
        for path in reversed(missing):
            try:
                os.mkdir(path)
            except FileExistsError:
                # Made by a concurrent put, or an object is there. If it vanished meanwhile
                # (pruned by a delete), stat raises FileNotFoundError and the caller retries.
                if not stat.S_ISDIR(os.stat(path).st_mode):
                    raise self._shape_error(key) from None
                continue
            created.append(path)
        return created

    def _check_etag(self, key: str, target: str, etag: str | None) -> os.stat_result:
        try:
            st = os.stat(target)
        except OSError as exc:
            raise _os_error(exc, f"object {key!r}") from exc
        if not stat.S_ISREG(st.st_mode):
            raise NotFoundError(f"no object {key!r}: it is a prefix (a directory), not an object")
        current = _etag(st)
        if current != etag:
            raise PreconditionFailedError(
                f"object {key!r} changed: expected etag {etag!r}, current etag is {current!r}; "
                "re-read it and try again"
            )
        return st

    def _prune(self, directory: str) -> None:
        """Remove ``directory`` and its ancestors while they are empty, stopping at the root.

        ``rmdir`` only ever removes an empty directory, so a concurrent put cannot lose data:
        at worst its rename fails with ENOENT and :meth:`_install` recreates the directory.
        """
        while directory != self._root and directory.startswith(self._root_sep):
            try:
                os.rmdir(directory)
            except OSError:
                return  # not empty, already gone, or not ours to remove
            directory = os.path.dirname(directory)

    @contextmanager
    def _locked(self, key: str) -> Iterator[None]:
        """Hold the exclusive lock of ``key``'s stripe (a flock, so it works across processes
        and, being per open file, across threads)."""
        digest = hashlib.blake2b(key.encode("utf-8"), digest_size=4).digest()
        stripe = int.from_bytes(digest, "big") % _LOCK_STRIPES
        path = os.path.join(self._root, LOCK_DIR, f"{stripe:03d}.lock")
        flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC
        try:
            fd = _retry_missing_dir(lambda: os.open(path, flags, 0o666), os.path.dirname(path))
        except OSError as exc:
            raise _os_error(exc, f"the lock file for {key!r}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def _sweep_stale_temp_files(self) -> None:
        """Remove temp files a crashed writer left behind more than a day ago."""
        cutoff = time.time() - _STALE_TMP_SECONDS
        try:
            with os.scandir(os.path.join(self._root, TMP_DIR)) as entries:
                for entry in entries:
                    try:
                        if entry.name.endswith(".tmp") and entry.stat().st_mtime < cutoff:
                            os.unlink(entry.path)
                    except OSError:
                        continue
        except OSError:
            return

    def _exists_error(self, key: str) -> LakekitError:
        target = os.path.join(self._root, *key.split("/"))
        if os.path.isdir(target) and not os.path.islink(target):
            return self._shape_error(key)
        return AlreadyExistsError(f"object {key!r} already exists")

    def _shape_error(self, key: str) -> InvalidInputError:
        return InvalidInputError(
            f"cannot store object {key!r}: on a local filesystem a key cannot also be a prefix "
            "of other keys (e.g. 'a' and 'a/b'); choose another key"
        )

    # -- reading helpers ------------------------------------------------------------------------
    def _open_regular(self, path: str, key: str) -> int:
        """Open ``path`` read-only and make sure it is a regular file (never block on a FIFO)."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
        except OSError as exc:
            raise _os_error(exc, f"object {key!r}") from exc
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise NotFoundError(f"no object {key!r}: it is a prefix (a directory), not a file")
            os.set_blocking(fd, True)
        except LakekitError:
            os.close(fd)
            raise
        except OSError as exc:
            os.close(fd)
            raise _os_error(exc, f"object {key!r}") from exc
        return fd

    def _listing_start(self, prefix: str) -> tuple[str, str, str]:
        """Split ``prefix`` into the deepest directory it fully names, that directory's key
        prefix, and the partial name its entries must start with."""
        validate_prefix(prefix)
        base, _, partial = prefix.rpartition("/")
        if not base:
            return self._root, "", partial
        top = os.path.join(self._root, *base.split("/"))
        self._check_inside(top, prefix)
        return top, base + "/", partial

    def _scan(self, directory: str, name_filter: str) -> builtins.list[_Entry]:
        """The entries of one directory that can be objects or prefixes, in key order.

        Skips reserved names, names no key could have, symlinks resolving outside the root
        and anything that is neither a regular file nor a directory.
        """
        entries: builtins.list[_Entry] = []
        try:
            with os.scandir(directory) as scan:
                for item in scan:
                    name = item.name
                    if not name.startswith(name_filter) or not _is_key_segment(name):
                        continue
                    try:
                        if item.is_symlink():
                            if not self._inside(os.path.realpath(item.path)):
                                continue
                            is_dir, is_file = item.is_dir(), item.is_file()
                        else:
                            is_dir = item.is_dir(follow_symlinks=False)
                            is_file = item.is_file(follow_symlinks=False)
                    except OSError:
                        continue
                    if is_dir:
                        entries.append(_Entry(name + "/", name, True))
                    elif is_file:
                        entries.append(_Entry(name, name, False))
        except (FileNotFoundError, NotADirectoryError):
            return []
        except OSError as exc:
            raise _os_error(exc, f"the directory {directory}") from exc
        entries.sort(key=lambda entry: entry.sort_key)
        return entries

    def _walk(self, top: str, key_prefix: str, name_filter: str) -> Iterator[ObjectMeta]:
        """Depth-first walk yielding objects in key order, one directory in memory per level.

        Directories already on the current path (a symlink loop) are not entered again.
        """
        try:
            top_id = _dir_id(top)
        except OSError:
            return
        stack = [(top, key_prefix, iter(self._scan(top, name_filter)), frozenset({top_id}))]
        while stack:
            directory, prefix, entries, ancestors = stack[-1]
            entry = next(entries, None)
            if entry is None:
                stack.pop()
                continue
            path = os.path.join(directory, entry.name)
            key = prefix + entry.name
            if entry.is_dir:
                try:
                    dir_id = _dir_id(path)
                except OSError:
                    continue
                if dir_id not in ancestors:
                    children = iter(self._scan(path, ""))
                    stack.append((path, key + "/", children, ancestors | {dir_id}))
            elif len(key.encode("utf-8")) <= MAX_KEY_BYTES:
                meta = _stat_meta(path, key)
                if meta is not None:
                    yield meta


class _RangeFile(RangeReader):
    """A read-only, seekable view of bytes ``[start, end)`` of an open file (positional reads,
    so the underlying offset is never shared)."""

    def __init__(self, fd: int, start: int, end: int) -> None:
        super().__init__(start, max(start, end))
        self._fd = fd

    def _read_at(self, view: memoryview, position: int) -> int:
        return os.preadv(self._fd, [view], position)

    def readall(self) -> bytes:
        parts: builtins.list[bytes] = []
        while self._pos < self._end:
            chunk = os.pread(self._fd, min(_READ_CHUNK, self._end - self._pos), self._pos)
            if not chunk:
                break
            parts.append(chunk)
            self._pos += len(chunk)
        return b"".join(parts)

    def close(self) -> None:
        if not self.closed:
            try:
                os.close(self._fd)
            finally:
                super().close()


# -- module helpers -----------------------------------------------------------------------------
def etag_of(st: os.stat_result) -> str:
    """The etag ``head``/``list`` report for a file with this ``stat`` (see :func:`_etag`)."""
    return _etag(st)


def _etag(st: os.stat_result) -> str:
    """The etag of a file version: inode, nanosecond mtime and size, in hex.

    Why it is unique per version of a key: every put writes a *new* file (new inode) and
    renames it over the old one, so the file at a key changes identity on each replace. An
    inode number can be reused once the old file is freed, so the inode alone could repeat
    (A -> B -> A'); but each version's mtime is stamped from the nanosecond wall clock when
    its data is complete, and under the key's lock it is forced above the mtime of the version
    it replaces. So two versions of a key share an etag only if the filesystem reuses the
    inode, the wall clock repeats the same nanosecond (or steps back past a delete), and the
    sizes match. On filesystems that store coarse timestamps (FAT, HFS+) that guarantee is
    weaker. External programs that rewrite a file in place change mtime and usually size.
    """
    return f"{st.st_ino:x}-{st.st_mtime_ns:x}-{st.st_size:x}"


def _meta(key: str, st: os.stat_result) -> ObjectMeta:
    seconds, nanos = divmod(st.st_mtime_ns, 1_000_000_000)
    modified = datetime.fromtimestamp(seconds, tz=UTC).replace(microsecond=nanos // 1000)
    return ObjectMeta(key=key, size=st.st_size, etag=_etag(st), last_modified=modified)


def _stat_meta(path: str, key: str) -> ObjectMeta | None:
    """The object's metadata, or None if it vanished or is no longer a regular file."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return _meta(key, st) if stat.S_ISREG(st.st_mode) else None


def _dir_id(path: str) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_dev, st.st_ino


def _is_key_segment(name: str) -> bool:
    """Whether a directory entry's name can be a segment of a valid key."""
    if name.startswith(RESERVED_PREFIX) or not _FORBIDDEN_IN_NAMES.isdisjoint(name):
        return False
    try:
        name.encode("utf-8")  # undecodable names come back as lone surrogates
    except UnicodeEncodeError:
        return False
    return True


def _write_all(fd: int, chunk: bytes) -> None:
    view = memoryview(chunk)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _fsync_dir(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        return  # removed meanwhile by a delete that emptied it
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno != errno.EINVAL:  # some filesystems cannot fsync directories
            raise
    finally:
        os.close(fd)


def _retry_missing_dir(op: Callable[[], int], directory: str) -> int:
    """Run ``op``; if ``directory`` (a scratch dir) was removed meanwhile, make it and retry."""
    try:
        return op()
    except FileNotFoundError:
        os.makedirs(directory, exist_ok=True)
        return op()


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        return


_NOT_FOUND = (NotFoundError, "{what} does not exist")
_DENIED = (PermissionDeniedError, "permission denied for {what}: {reason}")
_RETRY = (TransientError, "{what}: {reason}; try again")
_ERRNO_ERRORS: dict[int, tuple[Callable[[str], LakekitError], str]] = {
    errno.ENOENT: _NOT_FOUND,
    errno.ENOTDIR: _NOT_FOUND,
    errno.EISDIR: (NotFoundError, "{what} does not exist: it is a prefix (a directory)"),
    errno.EACCES: _DENIED,
    errno.EPERM: _DENIED,
    errno.EROFS: _DENIED,
    errno.ENAMETOOLONG: (
        InvalidInputError,
        "{what}: a key segment is too long for this filesystem (most allow 255 bytes)",
    ),
    errno.ELOOP: (InvalidInputError, "{what}: too many levels of symbolic links"),
    errno.EAGAIN: _RETRY,
    errno.EBUSY: _RETRY,
    errno.EINTR: _RETRY,
    errno.ETIMEDOUT: _RETRY,
}


def _os_error(exc: OSError, what: str) -> LakekitError:
    """Map an OSError to lakekit's tree by errno (never by message text)."""
    code = exc.errno or 0
    kind, template = _ERRNO_ERRORS.get(code, (LakekitError, "{what}: {reason} ({name})"))
    reason = exc.strerror or str(exc)
    return kind(template.format(what=what, reason=reason, name=errno.errorcode.get(code, "?")))
