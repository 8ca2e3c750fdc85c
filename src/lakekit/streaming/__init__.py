"""Real-time windowed analytics over lakekit streams, with serving sinks.

``windowed(lake, "readings", group="stats", key="device", time="ts", window=Tumbling("5m"),
aggregate={"n": Count(), "avg": Mean("temp")}, sinks=[TableSink(lake, "iot.stats")])`` builds
a :class:`WindowedJob`; ``job.run_once()``, ``job.run(until=...)`` or ``job.start()`` run it.
See docs/streaming.md for the semantics (event time, watermarks, lateness, exactly-once).

Importing this package is cheap: pyarrow and datasketches load when a job first runs.
"""

from __future__ import annotations

from lakekit.streaming.aggregations import (
    Aggregation,
    ApproxDistinct,
    Count,
    Max,
    Mean,
    Min,
    Sum,
)
from lakekit.streaming.job import RunStats, WindowedJob, windowed
from lakekit.streaming.results import Rejected, WindowResult
from lakekit.streaming.sinks import KeyValueView, Sink, StreamSink, TableSink
from lakekit.streaming.windows import Hopping, Session, Tumbling, WindowSpec

__all__ = [
    "windowed",
    "WindowedJob",
    "RunStats",
    # windows
    "WindowSpec",
    "Tumbling",
    "Hopping",
    "Session",
    # aggregations
    "Aggregation",
    "Count",
    "Sum",
    "Min",
    "Max",
    "Mean",
    "ApproxDistinct",
    # sinks and what they receive
    "Sink",
    "TableSink",
    "StreamSink",
    "KeyValueView",
    "WindowResult",
    "Rejected",
]
