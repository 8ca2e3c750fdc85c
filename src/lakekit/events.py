"""The portable event model: what a function handler receives, whichever cloud delivered it.

Every event is a frozen dataclass with an ``id`` (stable across redeliveries of the same event, so
it doubles as an idempotency key) and a ``time``. This issue defines :class:`Invoke` (a direct
invocation with a payload); object, stream, schedule and HTTP events join the same tree.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

__all__ = ["Event", "Invoke"]


def _new_id() -> str:
    return uuid.uuid4().hex


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, kw_only=True)
class Event:
    """Base of all portable events."""

    id: str = field(default_factory=_new_id)
    """Unique per event and identical on redelivery: use it as an idempotency key."""
    time: datetime = field(default_factory=_now)


@dataclass(frozen=True, kw_only=True)
class Invoke(Event):
    """A direct invocation (``functions.invoke(name, payload)``)."""

    payload: Any = None
