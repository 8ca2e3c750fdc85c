"""Object keys relative to a lake's root: what a lake trigger delivers to its handlers.

Provider parsers give the bucket's full key (``lake/prod/raw/a.json``); a lake rooted at
``s3://bucket/lake/prod`` addresses that object as ``raw/a.json``. :func:`relative_to_root` makes
that step, and drops events a lake's handlers must never see.
"""

from __future__ import annotations

import dataclasses
from typing import TypeVar

from lakekit._keys import validate_key, validate_prefix
from lakekit.errors import InvalidInputError
from lakekit.events.model import ObjectEvent

__all__ = ["relative_to_root"]

E = TypeVar("E", bound=ObjectEvent)


def relative_to_root(event: E, *, bucket: str, root: str = "") -> E | None:
    """``event`` with its key made relative to the lake root ``bucket``/``root``, or None.

    None means the event is not the lake's to deliver: another bucket, a key outside ``root``,
    or a key that is not a valid lake key (lakekit's own ``.lakekit`` scratch files, ``..``
    segments, ...), which ``lake.store`` could not address anyway. The result is a copy; every
    other field (id, time, size, etag) is unchanged, so the idempotency key survives.

    Raises:
        InvalidInputError: ``event`` is not an :class:`ObjectEvent`, or ``root`` is not a valid
            prefix.
    """
    if not isinstance(event, ObjectEvent):
        raise InvalidInputError(
            f"relative_to_root takes an ObjectEvent, got {type(event).__name__}"
        )
    prefix = validate_prefix(root.strip("/"))
    if event.bucket != bucket:
        return None
    key = event.key
    if prefix:
        if not key.startswith(prefix + "/"):
            return None
        key = key[len(prefix) + 1 :]
    try:
        validate_key(key)
    except InvalidInputError:
        return None
    return dataclasses.replace(event, key=key)
