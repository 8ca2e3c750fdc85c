"""Function triggers: object events, stream batches, schedules and HTTP routes.

Register with the decorators of ``lake.functions`` (``on_object_created``, ``on_object_deleted``,
``on_stream``, ``on_schedule``, ``on_http``); they record triggers as data
(:mod:`lakekit.triggers.model`), listed by ``lake.functions.triggers()``. Run them locally with
``lake.functions.serve()`` / :class:`LocalServer` or ``lakekit serve app.py``. Make handlers
exactly-once with :func:`once` / :func:`idempotent`. See ``docs/triggers.md``.

Names load lazily: importing this package costs nothing until one is used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lakekit._lazy import load_lazy

if TYPE_CHECKING:
    from lakekit.triggers.idempotency import idempotent, once, purge_markers
    from lakekit.triggers.model import (
        HttpTrigger,
        ObjectTrigger,
        ScheduleTrigger,
        StreamTrigger,
        Trigger,
        TriggerBinding,
    )
    from lakekit.triggers.schedule import ManualClock, SystemClock, parse_schedule
    from lakekit.triggers.server import LocalServer

__all__ = [
    "HttpTrigger",
    "LocalServer",
    "ManualClock",
    "ObjectTrigger",
    "ScheduleTrigger",
    "StreamTrigger",
    "SystemClock",
    "Trigger",
    "TriggerBinding",
    "idempotent",
    "once",
    "parse_schedule",
    "purge_markers",
]

_LAZY = {
    "HttpTrigger": "lakekit.triggers.model",
    "ObjectTrigger": "lakekit.triggers.model",
    "ScheduleTrigger": "lakekit.triggers.model",
    "StreamTrigger": "lakekit.triggers.model",
    "Trigger": "lakekit.triggers.model",
    "TriggerBinding": "lakekit.triggers.model",
    "LocalServer": "lakekit.triggers.server",
    "ManualClock": "lakekit.triggers.schedule",
    "SystemClock": "lakekit.triggers.schedule",
    "parse_schedule": "lakekit.triggers.schedule",
    "idempotent": "lakekit.triggers.idempotency",
    "once": "lakekit.triggers.idempotency",
    "purge_markers": "lakekit.triggers.idempotency",
}


def __getattr__(name: str) -> Any:
    return load_lazy(__name__, _LAZY, globals(), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
