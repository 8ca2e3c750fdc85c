"""The ObjectStore conformance suite against S3 (moto on 127.0.0.1, or a real bucket)."""

from __future__ import annotations

import functools
from typing import ClassVar

import pytest

from lakekit.adapters.aws.object_store import S3ObjectStore
from lakekit.testing import ObjectStoreSuite
from lakekit.testing.object_store_suite import StoreFactory
from servers.aws import AwsTarget


class TestS3ObjectStore(ObjectStoreSuite):
    # moto is one Python process: keep the cross-process races meaningful but short.
    race_rounds: ClassVar[int] = 30
    cas_increments: ClassVar[int] = 20

    @pytest.fixture
    def store_factory(self, aws_target: AwsTarget) -> StoreFactory:
        return functools.partial(S3ObjectStore, aws_target.lake_url(), **aws_target.settings)
