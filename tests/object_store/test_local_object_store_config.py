"""Building the local object store from configuration: URLs, settings, env variables."""

from __future__ import annotations

from pathlib import Path

import pytest

import lakekit
from lakekit import Capability, ConfigurationError
from lakekit.adapters.local.object_store import LocalObjectStore, LocalObjectStoreSettings
from lakekit.registry import resolve


def test_local_and_file_schemes_resolve_to_the_local_store() -> None:
    assert resolve("store", "local:///tmp/lake") is LocalObjectStore
    assert resolve("store", "file:///tmp/lake") is LocalObjectStore


def test_connect_builds_the_store_at_the_lake_directory(tmp_path: Path) -> None:
    root = tmp_path / "nested" / "lake"
    with lakekit.connect(f"local://{root}") as lake:
        adapter = lake.store.adapter
        assert isinstance(adapter, LocalObjectStore)
        assert adapter.root == root
        assert adapter.fsync is True
        lake.store.put("raw/x.txt", b"x")
    assert (root / "raw" / "x.txt").read_bytes() == b"x"


def test_file_url_and_relative_local_url(tmp_path: Path) -> None:
    with lakekit.connect(f"file://{tmp_path / 'a'}") as lake:
        assert lake.store.adapter.root == tmp_path / "a"  # type: ignore[attr-defined]
    with lakekit.connect("local://./rel-lake") as lake:
        assert lake.store.adapter.root == Path.cwd() / "rel-lake"  # type: ignore[attr-defined]
        assert lake.store.uri("") == str(Path.cwd() / "rel-lake")


def test_fsync_comes_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAKEKIT_STORE_FSYNC", "false")
    with lakekit.connect(f"local://{tmp_path}") as lake:
        assert lake.store.adapter.fsync is False  # type: ignore[attr-defined]


def test_explicit_settings_beat_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAKEKIT_STORE_FSYNC", "false")
    with lakekit.connect(f"local://{tmp_path}", store={"fsync": True}) as lake:
        assert lake.store.adapter.fsync is True  # type: ignore[attr-defined]


def test_a_malformed_setting_names_its_env_variable(tmp_path: Path) -> None:
    with (
        lakekit.connect(f"local://{tmp_path}", store={"fsync": "sometimes"}) as lake,
        pytest.raises(ConfigurationError, match="LAKEKIT_STORE_FSYNC"),
    ):
        _ = lake.store


def test_an_unknown_setting_is_an_error(tmp_path: Path) -> None:
    with (
        lakekit.connect(f"local://{tmp_path}", store={"fsnyc": False}) as lake,
        pytest.raises(ConfigurationError, match=r"unknown setting 'fsnyc'.*fsync"),
    ):
        _ = lake.store


def test_every_setting_documents_its_env_variable() -> None:
    fields = LocalObjectStoreSettings.model_fields
    assert "LAKEKIT_STORE" in (fields["url"].description or "")
    assert "LAKEKIT_STORE_FSYNC" in (fields["fsync"].description or "")


def test_the_root_is_created_and_a_file_root_is_refused(tmp_path: Path) -> None:
    LocalObjectStore(tmp_path / "new" / "lake")
    assert (tmp_path / "new" / "lake").is_dir()
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(ConfigurationError, match="not a directory"):
        LocalObjectStore(tmp_path / "file")


def test_declared_capabilities() -> None:
    assert LocalObjectStore.capabilities == {
        Capability.PUT_IF_ABSENT,
        Capability.PUT_IF_MATCH,
        Capability.COPY_IF_ABSENT,
        Capability.OBJECT_URL,
    }
    assert Capability.SIGNED_URL not in LocalObjectStore.capabilities


def test_repr_shows_root_and_fsync(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path, fsync=False)
    assert repr(store) == f"LocalObjectStore(root={str(tmp_path)!r}, fsync=False)"
