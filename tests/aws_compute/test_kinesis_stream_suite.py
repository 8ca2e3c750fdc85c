"""The Stream conformance suite against Kinesis (moto on 127.0.0.1, or a real account)."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

import pytest

from lakekit.adapters.aws.kinesis_stream import KinesisStream
from lakekit.interfaces.stream import Stream
from lakekit.testing import StreamSuite
from lakekit.testing.stream_suite import StreamFactory
from servers.aws import AwsTarget


def kinesis_factory(target: AwsTarget, **settings: object) -> StreamFactory:
    """Streams of 2 shards under a per-run prefix, with short leases so the crash tests' killed
    consumers hand their shards over quickly."""
    return functools.partial(
        KinesisStream,
        name_prefix=f"lkt-{target.run_id}-",
        shards=2,
        lease_seconds=1.0,
        checkpoint_table=f"lkt-{target.run_id}-groups",
        retry_backoff=0.01,
        open_eagerly=True,
        **target.settings,
        **settings,
    )


class TestKinesisStream(StreamSuite):
    # Each crash iteration starts a process that imports boto3 (~1 s): keep them few.
    crash_iterations: ClassVar[int] = 3

    @pytest.fixture
    def stream_factory(self, aws_target: AwsTarget) -> StreamFactory:
        return kinesis_factory(aws_target)

    @pytest.fixture
    def stream_cleanup(self, aws_target: AwsTarget) -> Callable[[str], None]:
        def delete(name: str) -> None:
            client = aws_target.client("kinesis")
            with contextlib.suppress(client.exceptions.ResourceNotFoundException):
                client.delete_stream(
                    StreamName=f"lkt-{aws_target.run_id}-{name}", EnforceConsumerDeletion=True
                )

        return delete

    # The cross-process tests start a Python process per producer/consumer (a few seconds).
    @pytest.mark.slow
    def test_producers_in_several_processes_get_distinct_dense_offsets(
        self, stream: Stream, stream_factory: StreamFactory, tmp_path: Path
    ) -> None:
        super().test_producers_in_several_processes_get_distinct_dense_offsets(
            stream, stream_factory, tmp_path
        )

    @pytest.mark.slow
    def test_acknowledged_records_survive_producers_killed_mid_publish(
        self, stream: Stream, stream_factory: StreamFactory, tmp_path: Path
    ) -> None:
        super().test_acknowledged_records_survive_producers_killed_mid_publish(
            stream, stream_factory, tmp_path
        )

    @pytest.mark.slow
    def test_consumers_killed_at_random_points_consume_at_least_once(
        self, stream: Stream, stream_factory: StreamFactory, tmp_path: Path
    ) -> None:
        super().test_consumers_killed_at_random_points_consume_at_least_once(
            stream, stream_factory, tmp_path
        )
