"""Fixtures of the streaming tests: a local lake with fast (unsynced) storage, and helpers to
publish JSON readings and compute the expected window results by brute force."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest

import lakekit
from lakekit.interfaces.stream import Message, Stream
from lakekit.lake import Lake
from lakekit.streaming import Aggregation

T0 = 1_700_000_100  # 2023-11-14T22:15:00Z: a multiple of 5 minutes

OpenLake = Callable[..., Lake]


@pytest.fixture
def open_lake(tmp_path: Path) -> Iterator[OpenLake]:
    """``open_lake(partitions=1)``: the test's lake (the same directory every call)."""
    opened: list[Lake] = []

    def open_one(partitions: int = 1) -> Lake:
        lake = lakekit.connect(
            f"local://{tmp_path / 'lake'}",
            store={"fsync": False},
            stream={"fsync": "never", "partitions": partitions},
        )
        opened.append(lake)
        return lake

    yield open_one
    for lake in opened:
        lake.close()


@pytest.fixture
def lake(open_lake: OpenLake) -> Lake:
    """A lake whose streams have one partition (so poll order is publish order)."""
    return open_lake(1)


def publish(stream: Stream, rows: Sequence[dict[str, Any]], *, key: str | None = "device") -> None:
    """Publish rows as JSON records in one call (keyed by the ``key`` field's value)."""
    stream.publish_many(
        [
            Message(
                json.dumps(row).encode(),
                key=None if key is None or key not in row else str(row[key]).encode(),
            )
            for row in rows
        ]
    )


def iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")


def at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def expected_windows(
    rows: Sequence[dict[str, Any]], size: int, hop: int | None = None, *, field: str = "temp"
) -> dict[tuple[str, int], tuple[int, float]]:
    """(device, window start s) -> (count, sum of ``field``) by brute force over every window
    that contains each row."""
    hop = hop or size
    out: dict[tuple[str, int], tuple[int, float]] = {}
    for row in rows:
        t = row["ts"]
        first = t - t % hop
        start = first
        while start + size > t:
            count, total = out.get((row["device"], start), (0, 0.0))
            out[row["device"], start] = (count + 1, total + row[field])
            start -= hop
    return out


def table_windows(lake: Lake, table: str) -> dict[tuple[str, int], tuple[int, float]]:
    """The same shape, read back from a results table (fails on a duplicate window)."""
    out: dict[tuple[str, int], tuple[int, float]] = {}
    for row in lake.table(table).to_arrow().to_pylist():
        window = (row["device"], int(row["window_start"].timestamp()))
        assert window not in out, f"window {window} is in the table twice"
        out[window] = (row["n"], row["total"])
    return out


class Spread(Aggregation):
    """max - min of a numeric field; state (low, high) kept as a JSON list in checkpoints."""

    result_type = pa.float64()

    def init(self) -> Any:
        return None

    def add(self, state: Any, values: pa.Array) -> Any:
        if len(values) == 0:
            return state
        bounds = pc.min_max(values)
        low, high = bounds["min"].as_py(), bounds["max"].as_py()
        return (low, high) if state is None else (min(state[0], low), max(state[1], high))

    def merge(self, left: Any, right: Any) -> Any:
        if left is None or right is None:
            return right if left is None else left
        return (min(left[0], right[0]), max(left[1], right[1]))

    def result(self, state: Any) -> Any:
        return None if state is None else state[1] - state[0]

    def encode(self, state: Any) -> Any:
        return None if state is None else list(state)

    def decode(self, data: Any) -> Any:
        return None if data is None else tuple(data)
