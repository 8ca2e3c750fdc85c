"""Portable events as the JSON payload of a direct Lambda invocation, and back.

``LambdaFunctionRuntime.invoke`` sends ``{"lakekit_event": <encoded event>}``; the shim decodes
it into the same :class:`~lakekit.events.Event` (same type, id, time and fields), so a handler
invoked on Lambda sees exactly what the local runtime would hand it. Encoding is JSON with tags
for what JSON lacks: ``{"$bytes": base64}``, ``{"$datetime": iso}``, ``{"$date": iso}``,
``{"$event": "StreamRecord", ...fields}`` for nested dataclasses; tuples become lists.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
from collections.abc import Mapping
from typing import Any

from lakekit import events as portable
from lakekit.errors import InvalidInputError

__all__ = ["ENVELOPE", "decode_event", "encode_event"]

ENVELOPE = "lakekit_event"
_TYPES: dict[str, type[Any]] = {
    cls.__name__: cls
    for cls in (
        portable.Invoke,
        portable.ObjectCreated,
        portable.ObjectDeleted,
        portable.StreamRecords,
        portable.StreamRecord,
        portable.Schedule,
        portable.Http,
    )
}


def encode_event(event: portable.Event) -> dict[str, Any]:
    """The JSON-ready payload of a direct invocation with ``event``.

    Raises:
        InvalidInputError: the event's payload holds something JSON cannot carry.
    """
    if type(event).__name__ not in _TYPES:
        raise InvalidInputError(f"cannot send a {type(event).__name__} event to Lambda")
    return {ENVELOPE: _encode(event)}


def _encode(value: Any) -> Any:  # noqa: PLR0911 - one return per type
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        return {"$bytes": base64.b64encode(bytes(value)).decode()}
    if isinstance(value, dt.datetime):
        return {"$datetime": value.isoformat()}
    if isinstance(value, dt.date):
        return {"$date": value.isoformat()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        encoded = {f.name: _encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
        return {"$event": type(value).__name__, **encoded}
    if isinstance(value, Mapping):
        if not all(isinstance(k, str) and not k.startswith("$") for k in value):
            raise InvalidInputError("event payload mappings need str keys not starting with '$'")
        return {k: _encode(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_encode(v) for v in value]
    raise InvalidInputError(
        f"cannot send a {type(value).__name__} in a Lambda event: use JSON data, bytes or dates"
    )


def decode_event(payload: Mapping[str, Any]) -> portable.Event | None:
    """The event of a lakekit invocation payload; None if ``payload`` is not one.

    Raises:
        InvalidInputError: the envelope is malformed.
    """
    if not isinstance(payload, Mapping) or set(payload) != {ENVELOPE}:
        return None
    event = _decode(payload[ENVELOPE])
    if not isinstance(event, portable.Event):
        raise InvalidInputError("the lakekit_event envelope does not hold an event")
    return event


def _decode(value: Any) -> Any:  # noqa: PLR0911 - one return per tag
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if not isinstance(value, Mapping):
        return value
    if "$bytes" in value:
        return base64.b64decode(value["$bytes"])
    if "$datetime" in value:
        return dt.datetime.fromisoformat(value["$datetime"])
    if "$date" in value:
        return dt.date.fromisoformat(value["$date"])
    if "$event" in value:
        cls = _TYPES.get(str(value["$event"]))
        if cls is None:
            raise InvalidInputError(f"unknown event type {value['$event']!r} in lakekit_event")
        fields = {k: _decode(v) for k, v in value.items() if k != "$event"}
        if cls is portable.StreamRecords:
            fields["records"] = tuple(fields.get("records", ()))
        try:
            return cls(**fields)
        except TypeError as exc:
            raise InvalidInputError(f"malformed {cls.__name__} in lakekit_event: {exc}") from exc
    return {k: _decode(v) for k, v in value.items()}
