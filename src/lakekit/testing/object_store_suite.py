"""The ObjectStore conformance suite: what every object store adapter must do, as pytest tests.

A third-party adapter proves itself by subclassing :class:`ObjectStoreSuite` and overriding one
fixture, ``store_factory``, that returns a *picklable zero-argument factory* of the adapter (the
suite builds adapters in child processes too, with the ``spawn`` start method)::

    import functools
    import pytest
    from lakekit.testing import ObjectStoreSuite
    from my_package.store import MyStore

    class TestMyStore(ObjectStoreSuite):
        @pytest.fixture
        def store_factory(self):
            return functools.partial(MyStore, bucket="lakekit-test")

Every test works under its own ``lakekit-suite/<uuid>/`` prefix and deletes what it wrote.
Tests of optional behaviour read the adapter's declared capabilities: an adapter that declares
``PUT_IF_ABSENT`` must win/lose creates atomically across processes, and one that does not
must make ``create`` raise NotSupportedError (nothing is skipped). Slow backends can tune the
class attributes (``race_rounds``, ``cas_processes``, ``big_object_size``, ...).
"""

from __future__ import annotations

import multiprocessing
import queue
import tempfile
import time
import traceback
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import pytest

from lakekit.capabilities import Capability
from lakekit.errors import (
    AlreadyExistsError,
    ConflictError,
    InvalidInputError,
    NotFoundError,
    NotSupportedError,
    PreconditionFailedError,
)
from lakekit.interfaces.object_store import ObjectMeta, ObjectStore, ObjectStoreAdapter, PutMode

__all__ = ["ObjectStoreSuite", "StoreFactory"]

StoreFactory = Callable[[], ObjectStoreAdapter]
"""A picklable callable returning a fresh adapter, e.g. ``functools.partial(MyStore, ...)``."""

_SPAWN = multiprocessing.get_context("spawn")
_MIB = 1024 * 1024

# Keys that must be refused; "{p}" is replaced by the test's prefix.
_INVALID_KEYS = [
    "",
    "/abs",
    "/{p}x",
    "../x",
    "{p}../x",
    "{p}a/../b",
    "{p}a//b",
    "{p}a/./b",
    "{p}trailing/",
    "{p}.lakekit/x",
    "{p}.lakekit-tmp/x",
    "{p}a/.lakekit",
    "{p}back\\slash",
    "{p}nul\x00byte",
    "{p}line\nbreak",
    "{p}" + "k" * 1100,
]

# Keys whose lexicographic order differs from a naive per-directory sort: '-' and '.' sort
# before '/', '0' after it, upper case before lower, non-ASCII after ASCII.
_ORDER_KEYS = [
    "a-b",
    "a.b",
    "a/b/c",
    "a/b-c",
    "a/b0",
    "a/bc/d",
    "a0",
    "aa",
    "A/x",
    "b",
    "~",
    "é",
    "日本/x",
]

_UNICODE_KEYS = [
    "données/été.txt",
    "日本語/ファイル.bin",
    "emoji/😀 party.bin",
    "chars/spaces and+plus=eq%25&amp;.txt",
    "mixed/Ünïcödé/ñ",
]


class ObjectStoreSuite:
    """Conformance tests for an :class:`~lakekit.interfaces.object_store.ObjectStoreAdapter`.

    Override :meth:`store_factory`. Everything else is provided.
    """

    race_rounds: ClassVar[int] = 60
    """Keys two processes race to ``create``."""
    cas_processes: ClassVar[int] = 3
    cas_increments: ClassVar[int] = 40
    """Successful compare-and-swap increments each process makes."""
    big_object_size: ClassVar[int] = 4 * _MIB
    big_object_versions: ClassVar[int] = 8
    process_timeout: ClassVar[float] = 180.0
    """Seconds a cross-process test may take before it fails."""

    # -- fixtures -------------------------------------------------------------------------------
    @pytest.fixture
    def store_factory(self) -> StoreFactory:
        """Override: return a picklable zero-argument factory of the adapter under test."""
        raise NotImplementedError(
            f"{type(self).__name__} must override the 'store_factory' fixture to return a "
            "picklable zero-argument factory of the adapter, e.g. functools.partial(MyStore, ...)"
        )

    @pytest.fixture
    def store(self, store_factory: StoreFactory) -> Iterator[ObjectStore]:
        """The user-facing facade over a fresh adapter."""
        facade = ObjectStore(store_factory())
        try:
            yield facade
        finally:
            facade.close()

    @pytest.fixture
    def prefix(self, store: ObjectStore) -> Iterator[str]:
        """A unique prefix for one test; everything under it is deleted afterwards."""
        unique = f"lakekit-suite/{uuid.uuid4().hex}/"
        yield unique
        store.delete_prefix(unique)

    # -- put and get ----------------------------------------------------------------------------
    def test_put_bytes_round_trips(self, store: ObjectStore, prefix: str) -> None:
        sources: list[bytes | bytearray | memoryview] = [
            b"hello",
            bytearray(b"array"),
            memoryview(b"view"),
        ]
        for i, data in enumerate(sources):
            key = f"{prefix}obj{i}"
            meta = store.put(key, data)
            assert store.get(key) == bytes(data)
            assert meta.key == key
            assert meta.size == len(data)

    def test_put_streams_file_objects_and_chunk_iterables(
        self, store: ObjectStore, prefix: str
    ) -> None:
        payload = bytes(range(256)) * 1000
        with tempfile.TemporaryFile() as real_file:
            real_file.write(payload)
            real_file.seek(0)
            store.put(f"{prefix}from-file", real_file)
        store.put(f"{prefix}from-generator", (payload[i : i + 999] for i in range(0, 256000, 999)))
        store.put(f"{prefix}from-list", [payload[:10], b"", payload[10:]])
        for name in ("from-file", "from-generator", "from-list"):
            assert store.get(f"{prefix}{name}") == payload, name

    def test_empty_objects_round_trip(self, store: ObjectStore, prefix: str) -> None:
        store.put(f"{prefix}empty-bytes", b"")
        store.put(f"{prefix}empty-iterable", iter([]))
        for name in ("empty-bytes", "empty-iterable"):
            key = f"{prefix}{name}"
            assert store.get(key) == b""
            assert store.head(key).size == 0
            assert store.get_range(key, 0, 10) == b""
        assert store.list_keys(prefix) == [f"{prefix}empty-bytes", f"{prefix}empty-iterable"]

    def test_text_helpers_use_utf8(self, store: ObjectStore, prefix: str) -> None:
        store.put_text(f"{prefix}t.txt", "grüße ✓")
        assert store.get(f"{prefix}t.txt") == "grüße ✓".encode()
        assert store.get_text(f"{prefix}t.txt") == "grüße ✓"

    def test_unicode_keys_round_trip_and_list(self, store: ObjectStore, prefix: str) -> None:
        for key in _UNICODE_KEYS:
            store.put(prefix + key, key.encode("utf-8"))
        for key in _UNICODE_KEYS:
            assert store.get(prefix + key) == key.encode("utf-8")
            assert store.head(prefix + key).size == len(key.encode("utf-8"))
        assert store.list_keys(prefix) == sorted(prefix + key for key in _UNICODE_KEYS)

    def test_deep_keys_round_trip_and_leave_nothing_when_deleted(
        self, store: ObjectStore, prefix: str
    ) -> None:
        key = prefix + "/".join(f"level{i}" for i in range(40)) + "/leaf.bin"
        store.put(key, b"deep")
        assert store.get(key) == b"deep"
        assert store.list_keys(prefix) == [key]
        store.delete(key)
        assert store.list_keys(prefix) == []
        assert store.list_dir(prefix).prefixes == []

    def test_overwrite_replaces_the_whole_object(self, store: ObjectStore, prefix: str) -> None:
        key = f"{prefix}o"
        store.put(key, b"a much longer first version")
        store.put(key, b"short")
        assert store.get(key) == b"short"
        assert store.head(key).size == 5

    def test_failed_put_writes_nothing_and_keeps_the_old_object(
        self, store: ObjectStore, prefix: str
    ) -> None:
        def broken() -> Iterator[bytes]:
            yield b"partial data that must never be visible"
            raise RuntimeError("the source failed")

        with pytest.raises(RuntimeError, match="the source failed"):
            store.put(f"{prefix}new", broken())
        assert not store.exists(f"{prefix}new")

        store.put(f"{prefix}old", b"original")
        with pytest.raises(RuntimeError, match="the source failed"):
            store.put(f"{prefix}old", broken())
        with pytest.raises(TypeError):
            store.put(f"{prefix}old", ["text is not bytes"])  # type: ignore[list-item]
        assert store.get(f"{prefix}old") == b"original"
        assert store.list_keys(prefix) == [f"{prefix}old"]

    def test_put_is_visible_at_once_to_get_head_and_list(
        self, store: ObjectStore, prefix: str
    ) -> None:
        meta = store.put(f"{prefix}now", b"visible")
        assert store.get(f"{prefix}now") == b"visible"
        assert store.head(f"{prefix}now").etag == meta.etag
        assert [m.key for m in store.list(prefix)] == [f"{prefix}now"]

    # -- ranges and streams ---------------------------------------------------------------------
    def test_range_reads(self, store: ObjectStore, prefix: str) -> None:
        data = bytes(range(256)) * 4
        key = f"{prefix}range"
        store.put(key, data)
        assert store.get_range(key, 10, 20) == data[10:20]
        assert store.get_range(key, 0, 1) == data[:1]
        assert store.get_range(key, 5, 5) == b""
        assert store.get_range(key, 1000, 5000) == data[1000:]
        assert store.get_range(key, 1024, 2048) == b""
        assert store.get_range(key, 4096, 8192) == b""
        with store.open(key, start=100) as stream:
            assert stream.read() == data[100:]
        with store.open(key, start=7, end=300) as stream:
            assert stream.read(3) == data[7:10]
            assert stream.read() == data[10:300]
            assert stream.read() == b""
        with pytest.raises(ValueError, match="range"):
            store.get_range(key, 20, 10)

    def test_open_streams_in_pieces(self, store: ObjectStore, prefix: str) -> None:
        data = bytes(range(256)) * 64
        store.put(f"{prefix}s", data)
        pieces = []
        with store.open(f"{prefix}s") as stream:
            while piece := stream.read(1000):
                pieces.append(piece)
        assert all(len(piece) <= 1000 for piece in pieces)
        assert len(pieces) >= 17
        assert b"".join(pieces) == data

    # -- head, etags, exists, errors ------------------------------------------------------------
    def test_head_reports_size_etag_and_utc_time(self, store: ObjectStore, prefix: str) -> None:
        before = datetime.now(UTC)
        put_meta = store.put(f"{prefix}h", b"12345")
        meta = store.head(f"{prefix}h")
        assert meta.key == f"{prefix}h"
        assert meta.size == 5
        assert isinstance(meta.etag, str)
        assert meta.etag
        assert meta.etag == put_meta.etag
        assert meta.last_modified.utcoffset() == timedelta(0)
        skew = timedelta(minutes=5)  # a remote store's clock may differ from ours
        assert before - skew <= meta.last_modified <= datetime.now(UTC) + skew

    def test_etag_changes_whenever_content_is_replaced(
        self, store: ObjectStore, prefix: str
    ) -> None:
        key = f"{prefix}e"
        etags = [store.put(key, f"v{i:03d}".encode()).etag for i in range(25)]
        assert len(set(etags)) == len(etags)
        assert store.head(key).etag == etags[-1]
        store.delete(key)
        assert store.put(key, b"v000").etag != etags[-1]

    def test_etag_is_stable_while_the_object_is_unchanged(
        self, store: ObjectStore, prefix: str
    ) -> None:
        meta = store.put(f"{prefix}s", b"same")
        assert store.head(f"{prefix}s").etag == meta.etag
        assert store.head(f"{prefix}s").etag == meta.etag
        assert next(iter(store.list(prefix))).etag == meta.etag

    def test_missing_objects_raise_not_found(self, store: ObjectStore, prefix: str) -> None:
        key = f"{prefix}missing"
        calls: list[Callable[[], object]] = [
            lambda: store.get(key),
            lambda: store.head(key),
            lambda: store.open(key),
            lambda: store.get_range(key, 0, 1),
            lambda: store.copy(key, f"{prefix}dst"),
        ]
        for call in calls:
            with pytest.raises(NotFoundError) as info:
                call()
            assert isinstance(info.value, FileNotFoundError)
        assert not store.exists(key)
        assert not store.exists(f"{prefix}dst")

    def test_a_prefix_is_not_an_object(self, store: ObjectStore, prefix: str) -> None:
        store.put(f"{prefix}dir/file", b"x")
        with pytest.raises(NotFoundError):
            store.get(f"{prefix}dir")
        with pytest.raises(NotFoundError):
            store.head(f"{prefix}dir")
        assert not store.exists(f"{prefix}dir")
        store.delete(f"{prefix}dir")  # deleting a non-object is a no-op
        assert store.get(f"{prefix}dir/file") == b"x"

    def test_exists(self, store: ObjectStore, prefix: str) -> None:
        assert not store.exists(f"{prefix}x")
        store.put(f"{prefix}x", b"1")
        assert store.exists(f"{prefix}x")
        store.delete(f"{prefix}x")
        assert not store.exists(f"{prefix}x")

    # -- listing --------------------------------------------------------------------------------
    def test_list_is_in_lexicographic_key_order(self, store: ObjectStore, prefix: str) -> None:
        for key in reversed(_ORDER_KEYS):
            store.put(prefix + key, key.encode("utf-8"))
        expected = sorted(prefix + key for key in _ORDER_KEYS)
        assert store.list_keys(prefix) == expected
        assert expected == sorted(expected, key=lambda k: k.encode("utf-8"))

    def test_list_prefix_is_a_plain_string_prefix(self, store: ObjectStore, prefix: str) -> None:
        for key in ("a/bc", "a/b/x", "a/bd/y", "a/c", "ab"):
            store.put(prefix + key, b"1")
        assert store.list_keys(f"{prefix}a/b") == [
            f"{prefix}a/b/x",
            f"{prefix}a/bc",
            f"{prefix}a/bd/y",
        ]
        assert store.list_keys(f"{prefix}a/b/") == [f"{prefix}a/b/x"]
        assert store.list_keys(f"{prefix}a") == [
            f"{prefix}a/b/x",
            f"{prefix}a/bc",
            f"{prefix}a/bd/y",
            f"{prefix}a/c",
            f"{prefix}ab",
        ]
        assert store.list_keys(f"{prefix}zzz") == []
        assert store.list_keys(f"{prefix}a/bc/") == []

    def test_list_reports_the_same_metadata_as_head(self, store: ObjectStore, prefix: str) -> None:
        store.put(f"{prefix}one", b"1")
        store.put(f"{prefix}two/deep", b"22")
        listed = list(store.list(prefix))
        assert [m.key for m in listed] == [f"{prefix}one", f"{prefix}two/deep"]
        for meta in listed:
            head = store.head(meta.key)
            assert (meta.size, meta.etag) == (head.size, head.etag)

    def test_list_with_delimiter_gives_objects_and_common_prefixes(
        self, store: ObjectStore, prefix: str
    ) -> None:
        for key in ("a/bc", "a/b/x", "a/b/y/z", "a/bd/y", "a/c", "ab", "top"):
            store.put(prefix + key, b"1")
        level = store.list_dir(prefix)
        assert [m.key for m in level.objects] == [f"{prefix}ab", f"{prefix}top"]
        assert level.prefixes == [f"{prefix}a/"]
        level = store.list_dir(f"{prefix}a/")
        assert [m.key for m in level.objects] == [f"{prefix}a/bc", f"{prefix}a/c"]
        assert level.prefixes == [f"{prefix}a/b/", f"{prefix}a/bd/"]
        assert all(isinstance(m, ObjectMeta) and m.size == 1 for m in level.objects)
        # A prefix that stops inside a segment matches like a string prefix.
        level = store.list_dir(f"{prefix}a/b")
        assert [m.key for m in level.objects] == [f"{prefix}a/bc"]
        assert level.prefixes == [f"{prefix}a/b/", f"{prefix}a/bd/"]
        level = store.list_dir(f"{prefix}a/b/")
        assert [m.key for m in level.objects] == [f"{prefix}a/b/x"]
        assert level.prefixes == [f"{prefix}a/b/y/"]
        empty = store.list_dir(f"{prefix}nothing/")
        assert (empty.objects, empty.prefixes) == ([], [])

    # -- delete ---------------------------------------------------------------------------------
    def test_delete_is_idempotent(self, store: ObjectStore, prefix: str) -> None:
        store.put(f"{prefix}d", b"1")
        store.delete(f"{prefix}d")
        assert not store.exists(f"{prefix}d")
        store.delete(f"{prefix}d")
        store.delete(f"{prefix}never-existed")
        store.delete([])

    def test_delete_many_keys_at_once(self, store: ObjectStore, prefix: str) -> None:
        keys = [f"{prefix}k{i}" for i in range(5)]
        for key in keys:
            store.put(key, b"x")
        store.delete([keys[0], keys[2], f"{prefix}missing", keys[4]])
        assert store.list_keys(prefix) == [keys[1], keys[3]]

    def test_delete_leaves_no_phantom_prefixes(self, store: ObjectStore, prefix: str) -> None:
        store.put(f"{prefix}d/e/f/g", b"1")
        store.put(f"{prefix}d/x", b"2")
        store.delete(f"{prefix}d/e/f/g")
        level = store.list_dir(f"{prefix}d/")
        assert ([m.key for m in level.objects], level.prefixes) == ([f"{prefix}d/x"], [])
        store.delete(f"{prefix}d/x")
        assert store.list_dir(prefix).prefixes == []
        assert store.list_keys(prefix) == []

    def test_delete_prefix_removes_everything_under_it(
        self, store: ObjectStore, prefix: str
    ) -> None:
        for key in ("p/1", "p/q/2", "pq", "r"):
            store.put(prefix + key, b"x")
        assert store.delete_prefix(f"{prefix}p/") == 2
        assert store.list_keys(prefix) == [f"{prefix}pq", f"{prefix}r"]
        with pytest.raises(ValueError, match="non-empty prefix"):
            store.delete_prefix("")

    # -- copy -----------------------------------------------------------------------------------
    def test_copy_is_independent_of_its_source(self, store: ObjectStore, prefix: str) -> None:
        store.put(f"{prefix}src", b"original")
        meta = store.copy(f"{prefix}src", f"{prefix}dst")
        assert meta.key == f"{prefix}dst"
        assert meta.size == 8
        assert store.get(f"{prefix}dst") == b"original"
        store.put(f"{prefix}src", b"changed")
        assert store.get(f"{prefix}dst") == b"original"
        store.copy(f"{prefix}src", f"{prefix}dst")  # overwrite=True replaces
        assert store.get(f"{prefix}dst") == b"changed"

    def test_copy_if_absent(self, store: ObjectStore, prefix: str) -> None:
        store.put(f"{prefix}src", b"new")
        store.put(f"{prefix}dst", b"old")
        if Capability.COPY_IF_ABSENT not in store.capabilities:
            with pytest.raises(NotSupportedError):
                store.copy(f"{prefix}src", f"{prefix}fresh", overwrite=False)
            assert not store.exists(f"{prefix}fresh")
            return
        with pytest.raises(AlreadyExistsError):
            store.copy(f"{prefix}src", f"{prefix}dst", overwrite=False)
        assert store.get(f"{prefix}dst") == b"old"
        store.copy(f"{prefix}src", f"{prefix}fresh", overwrite=False)
        assert store.get(f"{prefix}fresh") == b"new"

    # -- conditional writes ---------------------------------------------------------------------
    def test_create_writes_only_if_absent(self, store: ObjectStore, prefix: str) -> None:
        key = f"{prefix}c"
        if Capability.PUT_IF_ABSENT not in store.capabilities:
            with pytest.raises(NotSupportedError):
                store.create(key, b"first")
            with pytest.raises(NotSupportedError):
                store.put(key, b"first", mode=PutMode.CREATE)
            assert not store.exists(key)
            return
        meta = store.create(key, b"first")
        assert meta.size == 5
        assert store.head(key).etag == meta.etag
        with pytest.raises(AlreadyExistsError) as info:
            store.create(key, b"second")
        assert isinstance(info.value, FileExistsError)
        with pytest.raises(AlreadyExistsError):
            store.put(key, b"third", mode=PutMode.CREATE)
        assert store.get(key) == b"first"
        store.delete(key)
        store.create(key, b"again")
        assert store.get(key) == b"again"

    def test_update_is_a_compare_and_swap_on_the_etag(
        self, store: ObjectStore, prefix: str
    ) -> None:
        key = f"{prefix}u"
        first = store.put(key, b"v1")
        if Capability.PUT_IF_MATCH not in store.capabilities:
            with pytest.raises(NotSupportedError):
                store.update(key, b"v2", etag=first.etag)
            assert store.get(key) == b"v1"
            return
        second = store.update(key, b"v2", etag=first.etag)
        assert store.get(key) == b"v2"
        assert second.etag != first.etag
        assert store.head(key).etag == second.etag
        with pytest.raises(PreconditionFailedError) as info:
            store.update(key, b"stale", etag=first.etag)
        assert isinstance(info.value, ConflictError)
        assert store.get(key) == b"v2"
        third = store.put(key, b"v3", mode=PutMode.update(second.etag))
        assert store.get(key) == b"v3"
        assert third.etag == store.head(key).etag
        with pytest.raises(NotFoundError):
            store.update(f"{prefix}missing", b"x", etag=first.etag)
        assert not store.exists(f"{prefix}missing")

    # -- key validation -------------------------------------------------------------------------
    @pytest.mark.parametrize("template", _INVALID_KEYS)
    def test_invalid_keys_are_refused_and_nothing_is_written(
        self, store: ObjectStore, prefix: str, template: str
    ) -> None:
        key = template.replace("{p}", prefix)
        store.put(f"{prefix}good", b"1")
        calls: list[Callable[[], object]] = [
            lambda: store.put(key, b"x"),
            lambda: store.put(key, b"x", mode=PutMode.CREATE),
            lambda: store.put(key, b"x", mode=PutMode.update("etag")),
            lambda: store.get(key),
            lambda: store.open(key),
            lambda: store.head(key),
            lambda: store.exists(key),
            lambda: store.delete(key),
            lambda: store.delete([f"{prefix}good", key]),
            lambda: store.copy(f"{prefix}good", key),
            lambda: store.copy(key, f"{prefix}copy"),
            lambda: store.url(key),
        ]
        for call in calls:
            with pytest.raises(InvalidInputError):
                call()
        assert store.list_keys(prefix) == [f"{prefix}good"]

    @pytest.mark.parametrize("bad", ["/abs", "../x", "a//b", "a/../b", ".lakekit/", "a\\b"])
    def test_invalid_prefixes_are_refused(self, store: ObjectStore, bad: str) -> None:
        with pytest.raises(InvalidInputError):
            store.list_keys(bad)
        with pytest.raises(InvalidInputError):
            store.list_dir(bad)
        with pytest.raises(InvalidInputError):
            store.delete_prefix(bad)

    # -- addresses for other programs -----------------------------------------------------------
    def test_object_url_reads_the_object(self, store: ObjectStore, prefix: str) -> None:
        key = f"{prefix}url é.txt"
        store.put(key, b"via url")
        if Capability.OBJECT_URL not in store.capabilities:
            with pytest.raises(NotSupportedError):
                store.url(key)
            return
        url = store.url(key)
        assert isinstance(url, str)
        assert url
        with urllib.request.urlopen(url) as response:
            assert response.read() == b"via url"

    def test_signed_url_reads_the_object(self, store: ObjectStore, prefix: str) -> None:
        key = f"{prefix}signed.txt"
        store.put(key, b"via signed url")
        if Capability.SIGNED_URL not in store.capabilities:
            with pytest.raises(NotSupportedError):
                store.url(key, expires_in=60)
            return
        url = store.url(key, expires_in=60)
        with urllib.request.urlopen(url) as response:
            assert response.read() == b"via signed url"

    def test_uri_addresses_keys_under_the_root(self, store: ObjectStore, prefix: str) -> None:
        key = f"{prefix}dir/file.parquet"
        root = store.uri("")
        assert root
        uri = store.uri(key)
        assert uri.endswith(key)
        assert uri.startswith(root.rstrip("/"))

    def test_fsspec_filesystem_reads_objects_by_key(self, store: ObjectStore, prefix: str) -> None:
        key = f"{prefix}fs/data.bin"
        store.put(key, b"through fsspec")
        fs = store.fsspec
        assert fs.cat_file(key) == b"through fsspec"
        with fs.open(key, "rb") as handle:
            assert handle.read() == b"through fsspec"
        assert fs.info(key)["size"] == len(b"through fsspec")

    def test_arrow_filesystem_reads_objects_by_key(self, store: ObjectStore, prefix: str) -> None:
        key = f"{prefix}arrow/data.bin"
        store.put(key, b"through arrow")
        fs = store.arrow_filesystem
        with fs.open_input_stream(key) as stream:
            assert stream.read() == b"through arrow"
        with fs.open_input_file(key) as handle:
            handle.seek(8)
            assert handle.read(5) == b"arrow"
        assert fs.get_file_info(key).size == len(b"through arrow")

    # -- concurrency across processes -----------------------------------------------------------
    def test_concurrent_creates_have_exactly_one_winner(
        self, store: ObjectStore, store_factory: StoreFactory, prefix: str
    ) -> None:
        if Capability.PUT_IF_ABSENT not in store.capabilities:
            with pytest.raises(NotSupportedError):
                store.create(f"{prefix}race", b"x")
            return
        keys = [f"{prefix}race/{i:03d}" for i in range(self.race_rounds)]
        barrier = _SPAWN.Barrier(2)
        wins = _run_processes(
            [
                (_race_create, (store_factory, keys, worker, barrier, self.process_timeout))
                for worker in (0, 1)
            ],
            self.process_timeout,
        )
        for key in keys:
            winners = [worker for worker in (0, 1) if key in wins[worker]]
            assert len(winners) == 1, f"{key}: winners {winners}"
            assert store.get(key) == f"worker-{winners[0]}".encode()

    def test_concurrent_compare_and_swap_loses_no_update(
        self, store: ObjectStore, store_factory: StoreFactory, prefix: str
    ) -> None:
        key = f"{prefix}counter"
        meta = store.put(key, b"0")
        if Capability.PUT_IF_MATCH not in store.capabilities:
            with pytest.raises(NotSupportedError):
                store.update(key, b"1", etag=meta.etag)
            return
        jobs = [
            (_cas_increment, (store_factory, key, self.cas_increments))
            for _ in range(self.cas_processes)
        ]
        _run_processes(jobs, self.process_timeout)
        assert int(store.get(key)) == self.cas_processes * self.cas_increments

    def test_readers_never_see_a_partial_object(
        self, store: ObjectStore, store_factory: StoreFactory, prefix: str
    ) -> None:
        run = _BigObjectRun(
            key=f"{prefix}big",
            size=self.big_object_size,
            versions=self.big_object_versions,
            timeout=self.process_timeout,
        )
        store.put(run.key, _uniform_chunks(0, run.size))
        ready, done = _SPAWN.Event(), _SPAWN.Event()
        _, (reads, seen, problems) = _run_processes(
            [
                (_overwrite_versions, (store_factory, run, ready, done)),
                (_read_until_done, (store_factory, run, ready, done)),
            ],
            run.timeout,
        )
        assert problems == [], f"a reader saw partial objects: {problems}"
        assert reads >= 2
        assert {0, run.versions} <= set(seen), f"versions seen: {seen}"


# -- helpers run in child processes (module level, so that they pickle) -------------------------
def _child_main(results: Any, index: int, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
    try:
        value = fn(*args)
    except BaseException:
        results.put((index, False, traceback.format_exc()))
    else:
        results.put((index, True, value))


def _run_processes(
    jobs: Iterable[tuple[Callable[..., Any], tuple[Any, ...]]], timeout: float
) -> list[Any]:
    """Run each ``fn(*args)`` in its own spawned process; return their results in order.

    Fails the test with the child's traceback if one raises, or if they overrun ``timeout``.
    """
    results = _SPAWN.Queue()
    processes = [
        _SPAWN.Process(target=_child_main, args=(results, i, fn, args), daemon=True)
        for i, (fn, args) in enumerate(jobs)
    ]
    outcome: dict[int, tuple[bool, Any]] = {}
    deadline = time.monotonic() + timeout
    try:
        for process in processes:
            process.start()
        while len(outcome) < len(processes) and time.monotonic() < deadline:
            try:
                index, ok, value = results.get(timeout=0.5)
            except queue.Empty:
                if any(p.exitcode not in (None, 0) for p in processes):
                    break  # a child died without reporting (killed, or crashed in C)
                continue
            outcome[index] = (ok, value)
    finally:
        for process in processes:
            process.join(timeout=5 if len(outcome) == len(processes) else 0)
            if process.is_alive():
                process.kill()
                process.join()
        exit_codes = [p.exitcode for p in processes]
        for process in processes:
            process.close()
        results.close()
        results.join_thread()
    failures = [str(value) for ok, value in outcome.values() if not ok]
    if failures:
        pytest.fail("a child process failed:\n" + "\n".join(failures))
    if len(outcome) < len(processes):
        pytest.fail(
            "child processes did not all report a result: they crashed or overran "
            f"{timeout:.0f}s (exit codes {exit_codes}; -9 means killed at the deadline)"
        )
    return [outcome[i][1] for i in range(len(processes))]


def _race_create(
    factory: StoreFactory, keys: list[str], worker: int, barrier: Any, timeout: float
) -> list[str]:
    store = ObjectStore(factory())
    won = []
    try:
        for key in keys:
            barrier.wait(timeout)
            try:
                store.create(key, f"worker-{worker}".encode())
            except AlreadyExistsError:
                continue
            won.append(key)
    finally:
        store.close()
    return won


def _cas_increment(factory: StoreFactory, key: str, increments: int) -> int:
    """Add ``increments`` to the counter at ``key`` by compare-and-swap; return the retries."""
    store = ObjectStore(factory())
    retries = done = 0
    try:
        while done < increments:
            # head, then get: if the update below succeeds, nothing replaced the object since
            # head, so the value read is the one that etag names.
            etag = store.head(key).etag
            value = int(store.get(key))
            try:
                store.update(key, str(value + 1).encode(), etag=etag)
            except PreconditionFailedError:
                retries += 1
                continue
            done += 1
    finally:
        store.close()
    return retries


def _uniform_chunks(version: int, size: int) -> Iterator[bytes]:
    """Version ``version`` of a big object: ``size`` copies of one byte, streamed in MiBs."""
    chunk = bytes([version % 256]) * min(size, _MIB)
    remaining = size
    while remaining > 0:
        yield chunk[:remaining]
        remaining -= len(chunk)


@dataclass(frozen=True)
class _BigObjectRun:
    key: str
    size: int
    versions: int
    timeout: float


def _overwrite_versions(factory: StoreFactory, run: _BigObjectRun, ready: Any, done: Any) -> int:
    """Overwrite ``run.key`` with versions 1..n once the reader has started."""
    store = ObjectStore(factory())
    try:
        if not ready.wait(run.timeout):
            raise TimeoutError("the reader process never started reading")
        for version in range(1, run.versions + 1):
            store.put(run.key, _uniform_chunks(version, run.size))
    finally:
        done.set()
        store.close()
    return run.versions


def _read_until_done(
    factory: StoreFactory, run: _BigObjectRun, ready: Any, done: Any
) -> tuple[int, list[int], list[str]]:
    """Read ``run.key`` until the writer is done (and once more); report partial reads."""
    store = ObjectStore(factory())
    reads = 0
    seen: set[int] = set()
    problems: list[str] = []
    try:
        while True:
            finished = done.is_set()
            data = store.get(run.key)
            reads += 1
            if len(data) != run.size or data.count(data[:1]) != run.size:
                problems.append(f"read {reads}: {len(data)} bytes, first {data[:1]!r}")
            else:
                seen.add(data[0])
            ready.set()
            if finished:
                break
    finally:
        ready.set()
        store.close()
    return reads, sorted(seen), problems[:5]
