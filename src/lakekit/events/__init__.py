"""Portable events: one model for everything that can trigger a function (see
:mod:`lakekit.events.model`), and parsers from the providers' native payloads into it.

``parse_event(payload)`` recognises any accepted native shape; the provider functions
(``parse_s3``, ``parse_kinesis``, ``parse_gcs``, ...) parse one known shape. Importing this
package loads only the standard library. See ``docs/events.md``.
"""

from __future__ import annotations

from lakekit.events.aws import (
    parse_http,
    parse_kinesis,
    parse_s3,
    parse_schedule,
    parse_sqs,
    to_api_gateway_response,
    to_batch_item_failures,
)
from lakekit.events.azure import (
    event_grid_validation_code,
    event_grid_validation_response,
    parse_event_grid,
    parse_event_hubs,
)
from lakekit.events.gcp import parse_gcs, parse_pubsub
from lakekit.events.model import (
    BatchResult,
    Event,
    Http,
    HttpResponse,
    Invoke,
    ObjectCreated,
    ObjectDeleted,
    ObjectEvent,
    Schedule,
    StreamRecord,
    StreamRecords,
)
from lakekit.events.parse import parse_event
from lakekit.events.relative import relative_to_root

__all__ = [
    "BatchResult",
    "Event",
    "Http",
    "HttpResponse",
    "Invoke",
    "ObjectCreated",
    "ObjectDeleted",
    "ObjectEvent",
    "Schedule",
    "StreamRecord",
    "StreamRecords",
    # parsers: native payload -> portable events
    "parse_event",
    "parse_s3",
    "parse_sqs",
    "parse_kinesis",
    "parse_schedule",
    "parse_http",
    "parse_gcs",
    "parse_pubsub",
    "parse_event_grid",
    "parse_event_hubs",
    "event_grid_validation_code",
    "event_grid_validation_response",
    "relative_to_root",
    # responses: portable results -> native response shapes
    "to_batch_item_failures",
    "to_api_gateway_response",
]
