"""Where the AWS tests run: moto in server mode on 127.0.0.1 (default), or a real account.

Used by tests/aws/conftest.py and tests/aws_compute/conftest.py (their ``aws_target``
fixtures open :func:`live_target` or :func:`moto_target`).

Live mode runs the very same tests against your own AWS account (see docs/clouds.md, "How to
run the conformance suite against your own account")::

    LAKEKIT_TEST_AWS_LIVE=1 LAKEKIT_TEST_AWS_BUCKET=my-test-bucket \\
    LAKEKIT_TEST_AWS_REGION=eu-west-1 python -m pytest tests/aws -m aws

Credentials come from the standard AWS chain (AWS_PROFILE, AWS_ACCESS_KEY_ID, SSO, ...).
Every test works under ``s3://<bucket>/lakekit-test/<run id>/`` and in Glue databases named
``lkt_<id>``, and removes what it created.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from servers.moto import MotoServer

__all__ = [
    "BUCKET_ENV",
    "LIVE_ENV",
    "REGION_ENV",
    "AwsTarget",
    "empty_prefix",
    "live_mode",
    "live_target",
    "moto_target",
]

LIVE_ENV = "LAKEKIT_TEST_AWS_LIVE"
BUCKET_ENV = "LAKEKIT_TEST_AWS_BUCKET"
REGION_ENV = "LAKEKIT_TEST_AWS_REGION"


def live_mode() -> bool:
    return os.environ.get(LIVE_ENV, "").lower() in ("1", "true", "yes")


@dataclass(frozen=True)
class AwsTarget:
    """An S3 bucket and Glue catalog to test against, with the settings that reach them."""

    bucket: str
    settings: dict[str, Any]
    """AwsSettings fields (endpoint, region, keys) for every adapter."""
    live: bool
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])

    def lake_url(self, name: str | None = None) -> str:
        """A fresh lake root ``s3://<bucket>/lakekit-test/<run>/<name>``."""
        return f"s3://{self.bucket}/lakekit-test/{self.run_id}/{name or uuid.uuid4().hex[:12]}"

    def lake_factory(self, name: str | None = None, **overrides: Any) -> Any:
        """A picklable opener of a fresh ``s3://`` lake (S3 store, Glue catalog, DuckDB
        reading through the store) whose components reach this target."""
        import functools

        import lakekit

        return functools.partial(
            lakekit.connect,
            self.lake_url(name),
            store=dict(self.settings),
            catalog=dict(self.settings),
            **overrides,
        )

    def client(self, service: str) -> Any:
        import boto3

        kwargs: dict[str, Any] = {"region_name": self.settings.get("region")}
        if "endpoint_url" in self.settings:
            kwargs["endpoint_url"] = self.settings["endpoint_url"]
        if "access_key_id" in self.settings:
            kwargs["aws_access_key_id"] = self.settings["access_key_id"]
            kwargs["aws_secret_access_key"] = self.settings["secret_access_key"]
        return boto3.client(service, **kwargs)


def empty_prefix(target: AwsTarget, prefix: str) -> None:
    s3 = target.client("s3")
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=target.bucket, Prefix=prefix):
        keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
        if keys:
            s3.delete_objects(Bucket=target.bucket, Delete={"Objects": keys, "Quiet": True})


@contextlib.contextmanager
def live_target() -> Iterator[AwsTarget]:
    """Your account's bucket (``LAKEKIT_TEST_AWS_BUCKET`` in ``LAKEKIT_TEST_AWS_REGION``);
    afterwards, what the run wrote under ``lakekit-test/<run id>/`` is deleted. Fails the
    test run when live mode lacks either variable."""
    bucket = os.environ.get(BUCKET_ENV)
    region = os.environ.get(REGION_ENV) or os.environ.get("AWS_REGION")
    if not bucket or not region:
        pytest.fail(f"{LIVE_ENV}=1 needs {BUCKET_ENV} and {REGION_ENV} (an existing bucket)")
    target = AwsTarget(bucket=bucket, settings={"region": region}, live=True)
    yield target
    empty_prefix(target, f"lakekit-test/{target.run_id}/")


def moto_target(server: MotoServer) -> AwsTarget:
    """A fresh bucket on the moto server (moto's state is per server: nothing to clean up)."""
    target = AwsTarget(
        bucket=f"lakekit-{uuid.uuid4().hex[:12]}", settings=server.settings(), live=False
    )
    target.client("s3").create_bucket(Bucket=target.bucket)
    return target
