"""Local-only behaviour: the directory tree, reserved scratch space, locking, durability."""

from __future__ import annotations

import errno
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fsspec.implementations.local import LocalFileSystem

from lakekit import (
    AlreadyExistsError,
    InvalidInputError,
    NotFoundError,
    NotSupportedError,
    PermissionDeniedError,
)
from lakekit.adapters.local.object_store import LOCK_DIR, TMP_DIR, LocalObjectStore
from lakekit.interfaces.object_store import ObjectStore, PutMode


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "lake"


@pytest.fixture
def store(root: Path) -> Iterator[ObjectStore]:
    facade = ObjectStore(LocalObjectStore(root))
    yield facade
    facade.close()


def _user_entries(root: Path) -> list[str]:
    return sorted(name for name in os.listdir(root) if name not in (TMP_DIR, LOCK_DIR))


# -- the directory tree ---------------------------------------------------------------------------
def test_objects_are_plain_files_at_their_key_path(store: ObjectStore, root: Path) -> None:
    store.put("raw/2026/orders.json", b"{}")
    assert (root / "raw" / "2026" / "orders.json").read_bytes() == b"{}"
    assert store.uri("raw/2026/orders.json") == str(root / "raw" / "2026" / "orders.json")


def test_files_dropped_in_by_other_programs_are_objects(store: ObjectStore, root: Path) -> None:
    (root / "ext" / "deep").mkdir(parents=True)
    (root / "ext" / "deep" / "data.csv").write_bytes(b"a,b\n1,2\n")
    (root / "ext" / "top.txt").write_bytes(b"top")
    assert store.list_keys() == ["ext/deep/data.csv", "ext/top.txt"]
    meta = store.head("ext/deep/data.csv")
    assert meta.size == 8
    assert store.head("ext/deep/data.csv").etag == meta.etag
    assert store.get("ext/top.txt") == b"top"
    assert store.update("ext/top.txt", b"new", etag=store.head("ext/top.txt").etag).size == 3
    store.delete(["ext/deep/data.csv", "ext/top.txt"])
    assert _user_entries(root) == []


def test_reserved_and_unaddressable_entries_are_hidden(store: ObjectStore, root: Path) -> None:
    store.put("visible", b"1")
    (root / ".lakekit-other").mkdir()
    (root / ".lakekit-other" / "x").write_bytes(b"internal")
    (root / "dir").mkdir()
    (root / "dir" / "back\\slash").write_bytes(b"no key can name this")
    (root / "dir" / "line\nbreak").write_bytes(b"nor this")
    assert store.list_keys() == ["visible"]
    listing = store.list_dir("")
    assert ([m.key for m in listing.objects], listing.prefixes) == (["visible"], [])


def test_empty_directories_are_not_prefixes(store: ObjectStore, root: Path) -> None:
    (root / "empty" / "nested").mkdir(parents=True)
    store.put("full/x", b"1")
    assert store.list_dir("").prefixes == ["full/"]
    assert store.list_keys() == ["full/x"]


def test_delete_removes_empty_parent_directories_but_never_the_root(
    store: ObjectStore, root: Path
) -> None:
    store.put("a/b/c/d", b"1")
    store.put("a/keep", b"2")
    store.delete("a/b/c/d")
    assert sorted(os.listdir(root / "a")) == ["keep"]
    store.delete("a/keep")
    assert _user_entries(root) == []
    assert root.is_dir()


def test_temp_files_never_outlive_a_put(store: ObjectStore, root: Path) -> None:
    def broken() -> Iterator[bytes]:
        yield b"half"
        raise OSError(errno.EIO, "the caller's source failed")

    store.put("ok", b"1")
    with pytest.raises(OSError, match="source failed") as info:
        store.put("bad", broken())
    assert not isinstance(info.value, NotFoundError)  # the caller's error, not remapped
    with pytest.raises(AlreadyExistsError):
        store.create("ok", b"2")
    with pytest.raises(InvalidInputError):
        store.put("s" * 300, b"segment too long for the filesystem")
    assert os.listdir(root / TMP_DIR) == []
    assert _user_entries(root) == ["ok"]


def test_stale_temp_files_of_crashed_writers_are_swept(root: Path) -> None:
    LocalObjectStore(root)
    stale, fresh = root / TMP_DIR / "old.tmp", root / TMP_DIR / "inflight.tmp"
    stale.write_bytes(b"left by a crash")
    fresh.write_bytes(b"being written right now")
    two_days_ago = time.time() - 2 * 86400
    os.utime(stale, (two_days_ago, two_days_ago))
    LocalObjectStore(root)
    assert not stale.exists()
    assert fresh.exists()


# -- keys the filesystem cannot hold ---------------------------------------------------------------
def test_a_key_cannot_also_be_a_prefix(store: ObjectStore) -> None:
    store.put("a", b"object")
    store.put("x/y", b"object below x")
    calls: list[Callable[[], object]] = [
        lambda: store.put("a/b", b"1"),
        lambda: store.put("x", b"1"),
        lambda: store.create("x", b"1"),
        lambda: store.copy("a", "x"),
        lambda: store.copy("a", "a/b", overwrite=False),
    ]
    for call in calls:
        with pytest.raises(InvalidInputError, match="cannot also be a prefix"):
            call()
    assert store.list_keys() == ["a", "x/y"]
    assert store.get("a") == b"object"


def test_a_segment_longer_than_the_filesystem_allows_is_invalid(store: ObjectStore) -> None:
    key = "ok/" + "s" * 300
    with pytest.raises(InvalidInputError, match="too long"):
        store.put(key, b"1")
    with pytest.raises(InvalidInputError, match="too long"):
        store.get(key)


def test_the_adapter_itself_refuses_unsafe_keys(root: Path) -> None:
    adapter = LocalObjectStore(root)
    with pytest.raises(InvalidInputError):
        adapter.put("../escape", b"x", PutMode.OVERWRITE)
    with pytest.raises(InvalidInputError):
        adapter.head(f"{TMP_DIR}/anything")
    with pytest.raises(InvalidInputError):
        adapter.open("k", -1)
    with pytest.raises(InvalidInputError):
        adapter.uri("../up")
    assert not (root.parent / "escape").exists()


# -- errors ---------------------------------------------------------------------------------------
def test_a_fifo_is_not_an_object_and_never_blocks(store: ObjectStore, root: Path) -> None:
    os.mkfifo(root / "pipe")
    with pytest.raises(NotFoundError):
        store.get("pipe")
    with pytest.raises(NotFoundError):
        store.head("pipe")
    assert store.list_keys() == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
def test_unreadable_object_raises_permission_denied(store: ObjectStore, root: Path) -> None:
    store.put("secret", b"x")
    (root / "secret").chmod(0)
    with pytest.raises(PermissionDeniedError) as info:
        store.get("secret")
    assert isinstance(info.value, PermissionError)


def test_unwritable_object_raises_permission_denied(store: ObjectStore, root: Path) -> None:
    store.put("dir/frozen", b"x")
    frozen_dir = root / "dir"
    if os.geteuid() == 0:
        # root ignores modes; an immutable directory refuses even root.
        import subprocess

        done = subprocess.run(["chattr", "+i", str(frozen_dir)], capture_output=True, check=False)
        if done.returncode != 0:
            pytest.skip("cannot make a directory immutable here")
    else:
        frozen_dir.chmod(0o555)
    try:
        with pytest.raises(PermissionDeniedError):
            store.put("dir/frozen", b"y")
        with pytest.raises(PermissionDeniedError):
            store.delete("dir/frozen")
    finally:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", str(frozen_dir)], check=True)
        else:
            frozen_dir.chmod(0o755)
    assert store.get("dir/frozen") == b"x"
    assert os.listdir(root / TMP_DIR) == []


# -- addresses ------------------------------------------------------------------------------------
def test_url_is_a_file_url_and_never_signed(store: ObjectStore, root: Path) -> None:
    assert store.url("dir/ä b.txt") == (root / "dir" / "ä b.txt").as_uri()
    with pytest.raises(NotSupportedError, match="signed_url"):
        store.url("x", expires_in=60)
    with pytest.raises(NotSupportedError, match="signed_url"):
        store.adapter.url("x", expires_in=60)
    with pytest.raises(NotSupportedError, match="object_url"):
        store.adapter.url("x", method="PUT")


def test_uri_of_the_root_and_of_prefixes(store: ObjectStore, root: Path) -> None:
    assert store.uri() == str(root)
    assert store.uri("raw/") == f"{root}/raw/"
    assert store.uri("raw/x.parquet") == f"{root}/raw/x.parquet"


def test_filesystems_are_the_native_local_ones(store: ObjectStore, root: Path) -> None:
    import pyarrow.fs

    fs, fs_root = store.adapter.fsspec_filesystem()
    assert isinstance(fs, LocalFileSystem)
    assert fs_root == str(root)
    arrow, arrow_root = store.adapter.arrow_filesystem()
    assert isinstance(arrow, pyarrow.fs.LocalFileSystem)
    assert arrow_root == str(root)


# -- etags and durability -------------------------------------------------------------------------
def test_etags_of_quick_same_size_versions_never_repeat(root: Path) -> None:
    # Freed inodes are reused at once and kernel timestamps can be coarse; the etag must
    # still tell every version apart, including after delete-and-recreate.
    store = ObjectStore(LocalObjectStore(root, fsync=False))
    etags = []
    for i in range(150):
        etags.append(store.put("k", b"%04d" % i).etag)
        etags.append(store.put("k", b"%04d" % (i + 1)).etag)
        store.delete("k")
    assert len(set(etags)) == len(etags)


def test_a_new_version_is_always_newer_than_the_one_it_replaces(
    store: ObjectStore, root: Path
) -> None:
    # A file from another program (or a clock that stepped back) may carry a future mtime; the
    # replacing version must still get a later one, which keeps etags moving forward.
    store.put("k", b"v1")
    future = 4_102_444_800 * 10**9  # 2100-01-01
    os.utime(root / "k", ns=(future, future))
    before = store.head("k")
    after = store.put("k", b"v2")
    assert (root / "k").stat().st_mtime_ns > future
    assert after.last_modified >= before.last_modified
    assert after.etag != before.etag
    assert store.head("k") == after


def test_fsync_setting_controls_file_and_directory_syncs(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[int] = []
    real_fsync = os.fsync

    def counting_fsync(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", counting_fsync)
    ObjectStore(LocalObjectStore(root, fsync=False)).put("new/dir/a", b"1")
    assert synced == []
    ObjectStore(LocalObjectStore(root, fsync=True)).put("other/dir/b", b"1")
    # the file, its directory, and the entries of the two directories it created
    assert len(synced) >= 4


def test_create_works_where_hard_links_are_not_supported(
    store: ObjectStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_links(src: str, dst: str) -> None:
        raise OSError(errno.EPERM, "hard links not supported")

    monkeypatch.setattr(os, "link", no_links)
    store.create("c", b"first")
    with pytest.raises(AlreadyExistsError):
        store.create("c", b"second")
    assert store.get("c") == b"first"


# -- concurrency ----------------------------------------------------------------------------------
def _mutate(root: str, op: str, started: multiprocessing.synchronize.Event) -> None:
    store = ObjectStore(LocalObjectStore(root))
    started.set()
    if op == "put":
        store.put("k", b"new")
    elif op == "update":
        store.update("k", b"new", etag=store.head("k").etag)
    elif op == "copy":
        store.copy("src", "k")
    else:
        store.delete("k")


@pytest.mark.parametrize("op", ["put", "update", "copy", "delete"])
def test_every_mutation_of_a_key_waits_for_its_lock(root: Path, op: str) -> None:
    adapter = LocalObjectStore(root)
    store = ObjectStore(adapter)
    store.put("k", b"old")
    store.put("src", b"new")
    ctx = multiprocessing.get_context("spawn")
    started = ctx.Event()
    with adapter._locked("k"):
        child = ctx.Process(target=_mutate, args=(str(root), op, started))
        child.start()
        assert started.wait(60)
        time.sleep(0.5)
        assert child.is_alive(), "the mutation did not wait for the key's lock"
        assert store.get("k") == b"old"
    child.join(60)
    assert child.exitcode == 0
    child.close()
    if op == "delete":
        assert not store.exists("k")
    else:
        assert store.get("k") == b"new"


def test_puts_racing_deletes_in_the_same_directory_lose_nothing(root: Path) -> None:
    store = ObjectStore(LocalObjectStore(root, fsync=False))
    errors: list[BaseException] = []

    def churn(worker: int) -> None:
        try:
            for i in range(300):
                key = f"d/e/{worker}"
                store.put(key, b"%d" % i)
                assert store.get(key) == b"%d" % i
                store.delete(key)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=churn, args=(w,)) for w in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert _user_entries(root) == []
