from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from lakekit import ConfigurationError, MissingDependencyError, registry


@pytest.fixture
def clean_registry() -> Iterator[None]:
    saved = dict(registry._registered)
    loaded = registry._entry_points_loaded
    yield
    registry._registered.clear()
    registry._registered.update(saved)
    registry._entry_points_loaded = loaded


@pytest.mark.parametrize(
    ("url", "scheme"),
    [
        ("local://./lake", "local"),
        ("./lake", "local"),
        ("/abs/lake", "local"),
        ("postgresql+psycopg://u@h/db", "postgresql"),
        ("sqlite:///x.db", "sqlite"),
        ("duckdb", "duckdb"),
        ("S3://Bucket/x", "s3"),
    ],
)
def test_scheme_of(url: str, scheme: str) -> None:
    assert registry.scheme_of(url) == scheme


def test_builtin_local_adapters_resolve_to_classes() -> None:
    cls = registry.resolve("store", "local:///tmp/x")
    assert cls.__name__ == "LocalObjectStore"
    assert registry.resolve("catalog", "sqlite:///x.db").__name__ == "SqlCatalog"


def test_unknown_scheme_lists_the_available_adapters() -> None:
    with pytest.raises(ConfigurationError, match=r"no store adapter for scheme 'ftp'.*local"):
        registry.resolve("store", "ftp://host/x")


def test_planned_cloud_scheme_says_which_extra_will_bring_it() -> None:
    with pytest.raises(ConfigurationError, match=r"lakekit\[gcp\]"):
        registry.resolve("store", "gs://bucket/lake")


def test_unknown_component_is_an_error() -> None:
    with pytest.raises(ConfigurationError, match="unknown lake component"):
        registry.resolve("warehouse", "x")  # type: ignore[arg-type]


def test_missing_extra_raises_with_the_pip_command(clean_registry: None) -> None:
    registry._registered[("store", "fakecloud")] = registry.AdapterEntry(
        "fakecloud_lakekit.store:Store", extra="aws", requires=("fakecloud_sdk_not_installed",)
    )
    with pytest.raises(MissingDependencyError, match=r'pip install "lakekit\[aws\]"') as info:
        registry.resolve("store", "fakecloud://b/x")
    assert isinstance(info.value, ImportError)


def test_registered_class_is_returned_as_is(clean_registry: None) -> None:
    class MemoryStore:
        pass

    registry.register("store", "memory", MemoryStore)
    assert registry.resolve("store", "memory://x") is MemoryStore
    assert ("store", "memory") in registry.available("store")


def test_third_party_adapters_load_from_the_entry_point_group(
    clean_registry: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A real installed distribution on sys.path, declaring a lakekit.adapters entry point.
    (tmp_path / "acme_lake.py").write_text("class AcmeStore:\n    pass\n")
    dist = tmp_path / "acme_lake-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-lake\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        textwrap.dedent(
            """\
            [lakekit.adapters]
            store.acme = acme_lake:AcmeStore
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    registry._entry_points_loaded = False
    cls = registry.resolve("store", "acme://bucket/lake")
    assert cls.__name__ == "AcmeStore"
    assert "acme_lake" in sys.modules
    sys.modules.pop("acme_lake", None)


def test_importing_a_non_class_target_is_a_configuration_error(clean_registry: None) -> None:
    registry.register("store", "notaclass", "lakekit.errors:__all__")
    with pytest.raises(ConfigurationError, match="not a class"):
        registry.resolve("store", "notaclass://x")
