"""ELT pipelines: sources, the exactly-once pipeline runner, run reports and SQL transforms.

``lake.pipeline("orders").run(source, into="raw.orders")`` extracts and loads;
``lake.transform(sql, into=...)`` transforms inside the lake; ``lake.runs()`` lists run history.
"""

from __future__ import annotations

from lakekit.pipelines.contract import Contract, Policy
from lakekit.pipelines.pipeline import Pipeline, RowContract
from lakekit.pipelines.report import RunReport
from lakekit.pipelines.source import RawItem, Source, SourceBatch, SourceState

__all__ = [
    "Contract",
    "Pipeline",
    "Policy",
    "RowContract",
    "RawItem",
    "RunReport",
    "Source",
    "SourceBatch",
    "SourceState",
]
