"""The catalog conformance suite, run against the SQL catalog on SQLite and on PostgreSQL."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

from lakekit.adapters.sql.catalog import SqlCatalog
from lakekit.testing import CatalogSuite
from lakekit.testing.catalog_suite import CatalogFactory


class TestSqliteCatalog(CatalogSuite):
    @pytest.fixture
    def catalog_factory(self, tmp_path: Path) -> CatalogFactory:
        return functools.partial(SqlCatalog, f"sqlite:///{tmp_path}/lake/.lakekit/catalog.db")


@pytest.mark.postgres
class TestPostgresCatalog(CatalogSuite):
    @pytest.fixture
    def catalog_factory(self, postgres_url: str) -> CatalogFactory:
        return functools.partial(SqlCatalog, postgres_url)
