"""The table conformance suite on the local lake (files + SQLite catalog + DuckDB)."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

import lakekit
from lakekit.testing import TableSuite
from lakekit.testing.table_suite import LakeFactory


class TestLocalLakeTables(TableSuite):
    @pytest.fixture
    def lake_factory(self, tmp_path: Path) -> LakeFactory:
        return functools.partial(lakekit.connect, f"local://{tmp_path / 'lake'}")
