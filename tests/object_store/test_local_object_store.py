"""The local object store passes the shared ObjectStore conformance suite."""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from lakekit.adapters.local.object_store import LocalObjectStore
from lakekit.testing import ObjectStoreSuite
from lakekit.testing.object_store_suite import StoreFactory


class TestLocalObjectStore(ObjectStoreSuite):
    @pytest.fixture
    def store_factory(self, tmp_path: Path) -> StoreFactory:
        return functools.partial(LocalObjectStore, root=tmp_path / "lake")

    @pytest.fixture(autouse=True)
    def _lake_dir_is_left_clean(self, tmp_path: Path) -> Iterator[None]:
        """After the suite's cleanup, no file or empty directory may remain in the lake."""
        yield
        root = tmp_path / "lake"
        if root.exists():
            left = sorted(name for name in os.listdir(root) if not name.startswith(".lakekit"))
            assert left == [], f"left behind in the lake directory: {left}"
            assert os.listdir(root / ".lakekit-tmp") == [], "temp files left behind"
