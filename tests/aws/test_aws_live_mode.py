"""Whether the live variants of the AWS tests ran, and how to run them (one line per run)."""

from __future__ import annotations

import pytest

from servers.aws import BUCKET_ENV, REGION_ENV, live_mode

LIVE_OFF = (
    "live AWS tests are off: set LAKEKIT_TEST_AWS_LIVE=1, LAKEKIT_TEST_AWS_BUCKET and "
    "LAKEKIT_TEST_AWS_REGION (see docs/clouds.md) to run every tests/aws test against your "
    "own account as well"
)


def test_the_live_account_is_reachable() -> None:
    if not live_mode():
        pytest.skip(LIVE_OFF)
    import os

    import boto3

    bucket = os.environ[BUCKET_ENV]
    s3 = boto3.client("s3", region_name=os.environ[REGION_ENV])
    s3.head_bucket(Bucket=bucket)  # the credentials of the standard chain reach the bucket
