"""The lake-table conformance suite on an AWS lake: S3 store + Glue catalog + DuckDB reading
through the S3 store (moto on 127.0.0.1, or a real account)."""

from __future__ import annotations

from typing import ClassVar

import pytest

from lakekit.testing import TableSuite
from lakekit.testing.table_suite import LakeFactory
from servers.aws import AwsTarget


class TestAwsLakeTables(TableSuite):
    process_preload: ClassVar[tuple[str, ...]] = (
        *TableSuite.process_preload,
        "boto3",
        "lakekit.adapters.aws.object_store",
        "lakekit.adapters.aws.glue_catalog",
    )

    @pytest.fixture
    def lake_factory(self, aws_target: AwsTarget) -> LakeFactory:
        return aws_target.lake_factory()  # type: ignore[no-any-return]
