"""No key reaches outside the lake root, symbolic links included."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lakekit import InvalidInputError, NotFoundError
from lakekit.adapters.local.object_store import LocalObjectStore
from lakekit.interfaces.object_store import ObjectStore


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "lake"


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    directory = tmp_path / "outside"
    directory.mkdir()
    (directory / "secret.txt").write_bytes(b"not part of the lake")
    return directory


@pytest.fixture
def store(root: Path) -> Iterator[ObjectStore]:
    facade = ObjectStore(LocalObjectStore(root))
    yield facade
    facade.close()


def _snapshot(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in directory.rglob("*")}


def test_a_symlinked_directory_leading_outside_is_refused(
    store: ObjectStore, root: Path, outside: Path
) -> None:
    (root / "link").symlink_to(outside, target_is_directory=True)
    before = _snapshot(outside)
    calls: list[Callable[[], object]] = [
        lambda: store.get("link/secret.txt"),
        lambda: store.head("link/secret.txt"),
        lambda: store.open("link/secret.txt"),
        lambda: store.exists("link/secret.txt"),
        lambda: store.put("link/new.txt", b"x"),
        lambda: store.create("link/new.txt", b"x"),
        lambda: store.put("link/sub/new.txt", b"x"),
        lambda: store.delete("link/secret.txt"),
        lambda: store.copy("link/secret.txt", "stolen"),
        lambda: store.url("link/secret.txt"),
        lambda: store.uri("link/secret.txt"),
        lambda: store.list_keys("link/"),
        lambda: store.list_dir("link/"),
    ]
    for call in calls:
        with pytest.raises(InvalidInputError, match="outside the lake root"):
            call()
    assert store.list_keys() == []
    assert store.list_dir("").prefixes == []
    assert _snapshot(outside) == before
    assert not store.exists("stolen")


def test_a_symlinked_file_leading_outside_is_refused_but_can_be_unlinked(
    store: ObjectStore, root: Path, outside: Path
) -> None:
    (root / "leak.txt").symlink_to(outside / "secret.txt")
    with pytest.raises(InvalidInputError):
        store.get("leak.txt")
    with pytest.raises(InvalidInputError):
        store.head("leak.txt")
    assert store.list_keys() == []
    store.delete("leak.txt")  # removes the link itself, never what it points to
    assert not (root / "leak.txt").is_symlink()
    assert (outside / "secret.txt").read_bytes() == b"not part of the lake"


def test_symlinks_inside_the_root_are_followed(store: ObjectStore, root: Path) -> None:
    store.put("real/data.bin", b"payload")
    (root / "alias").symlink_to(root / "real", target_is_directory=True)
    (root / "file-alias").symlink_to(root / "real" / "data.bin")
    assert store.get("alias/data.bin") == b"payload"
    assert store.get("file-alias") == b"payload"
    assert store.list_keys() == ["alias/data.bin", "file-alias", "real/data.bin"]


def test_a_symlink_loop_does_not_trap_listing(store: ObjectStore, root: Path) -> None:
    store.put("a/x", b"1")
    (root / "a" / "loop").symlink_to(root / "a", target_is_directory=True)
    (root / "self").symlink_to(root, target_is_directory=True)
    assert store.list_keys() == ["a/x"]


def test_a_dangling_symlink_is_not_an_object(store: ObjectStore, root: Path) -> None:
    (root / "dangling").symlink_to(root / "nowhere")
    assert store.list_keys() == []
    with pytest.raises(NotFoundError):
        store.get("dangling")


def test_a_lake_root_reached_through_a_symlink_works(tmp_path: Path) -> None:
    real = tmp_path / "real-lake"
    real.mkdir()
    (tmp_path / "lake-link").symlink_to(real, target_is_directory=True)
    store = ObjectStore(LocalObjectStore(tmp_path / "lake-link"))
    store.put("k", b"v")
    assert (real / "k").read_bytes() == b"v"
    assert store.uri("") == os.path.realpath(real)
