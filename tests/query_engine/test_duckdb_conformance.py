"""DuckDBEngine passes the shipped QueryEngine conformance suite."""

from __future__ import annotations

import functools

import pytest

from lakekit.adapters.duckdb.query_engine import DuckDBEngine, DuckDBSettings
from lakekit.testing import QueryEngineSuite
from lakekit.testing.query_engine_suite import EngineFactory


class TestDuckDBEngineConformance(QueryEngineSuite):
    @pytest.fixture
    def engine_factory(self) -> EngineFactory:
        return functools.partial(DuckDBEngine.from_settings, DuckDBSettings(url="duckdb"))
