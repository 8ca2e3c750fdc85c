"""The Catalog conformance suite against Glue + S3 (moto on 127.0.0.1, or a real account)."""

from __future__ import annotations

import functools

import pytest

from lakekit.adapters.aws.glue_catalog import GlueCatalog
from lakekit.testing import CatalogSuite
from lakekit.testing.catalog_suite import CatalogFactory
from servers.aws import AwsTarget


class TestGlueCatalog(CatalogSuite):
    race_rounds = 8
    cas_increments = 10

    @pytest.fixture
    def catalog_factory(self, aws_target: AwsTarget) -> CatalogFactory:
        return functools.partial(
            GlueCatalog, "glue://", warehouse=aws_target.lake_url(), **aws_target.settings
        )
