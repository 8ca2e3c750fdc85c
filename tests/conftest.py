"""Shared fixtures: every test runs in its own working directory with no LAKEKIT_* settings
leaking in from the developer's environment or a lakekit.toml in the repo."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _isolated_lakekit_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    for name in list(os.environ):
        if name.startswith("LAKEKIT_") and not name.startswith("LAKEKIT_TEST_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))


@pytest.fixture
def lake_dir(tmp_path: Path) -> Path:
    return tmp_path / "lake"


@pytest.fixture
def lake(lake_dir: Path) -> Iterator[object]:
    import lakekit

    with lakekit.connect(f"local://{lake_dir}") as opened:
        yield opened
