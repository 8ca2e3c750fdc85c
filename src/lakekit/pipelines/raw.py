"""The raw zone: source data landed as-is (the E and L of ELT), content-addressed.

A batch's original bytes (``SourceBatch.raw``, e.g. a file's content) — or, for rows without
original bytes (API pages, database rows), their NDJSON — are stored once under
``<raw_prefix>/<pipeline>/<YYYY>/<MM>/<DD>/<sha256><suffix>`` (the UTC day of landing).

Guarantees:

* **Stored once.** Objects are created with a create-if-absent put, so landing the same content
  twice on one day stores it once. Across days, the pipeline commits a state entry
  ``pipelines/<name>/raw/<sha256>`` -> key *with the batch's rows*, and content already recorded
  there is not stored again.
* **Never lost.** An object is stored before the commit of its batch. A crash in between leaves
  the object in place (the re-run finds it); only a re-run on a later UTC day than the crash
  stores a second copy under the new day.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import hashlib
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from lakekit.errors import AlreadyExistsError, InvalidInputError
from lakekit.pipelines.source import RawItem

if TYPE_CHECKING:
    import pyarrow as pa

    from lakekit.interfaces.catalog import Catalog
    from lakekit.interfaces.object_store import ObjectStore

__all__ = ["RawLander", "rows_as_ndjson"]


def rows_as_ndjson(data: pa.Table | pa.RecordBatch) -> RawItem:
    """The rows of ``data`` as NDJSON (one object per line, columns in order).

    Timestamps and dates become ISO 8601 strings, decimals strings, binary values base64.
    The output is deterministic, so the same rows always have the same digest.
    """
    lines = [
        json.dumps(row, separators=(",", ":"), ensure_ascii=False, default=_json_default)
        for row in data.to_pylist()
    ]
    text = "".join(line + "\n" for line in lines)
    return RawItem(text.encode("utf-8"), ".ndjson")


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode("ascii")
    return str(value)


class RawLander:
    """Lands raw items of one pipeline and collects the state entries to commit with them."""

    def __init__(
        self,
        store: ObjectStore,
        catalog: Catalog,
        *,
        pipeline: str,
        prefix: str,
        state_prefix: str,
        clock: Callable[[], dt.datetime] | None = None,
    ) -> None:
        from lakekit._keys import validate_prefix

        self._store = store
        self._catalog = catalog
        self._pipeline = pipeline
        self._prefix = validate_prefix(prefix.strip("/")) if prefix.strip("/") else ""
        if not self._prefix:
            raise InvalidInputError("raw_prefix must be a non-empty key prefix, e.g. 'raw'")
        self._state_prefix = state_prefix
        self._clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self._known: dict[str, str] = {}
        """Digest -> key, for content landed or seen in this run."""
        self.landed = 0
        """Objects newly stored by this lander."""

    def land(self, item: RawItem) -> tuple[str, dict[str, str]]:
        """Store ``item`` unless its content is already in the raw zone.

        Returns its key and the state entries (relative to the catalog root) to commit with the
        batch. Durable once it returns.
        """
        if not isinstance(item, RawItem):
            raise InvalidInputError(f"SourceBatch.raw must be a RawItem, got {type(item)}")
        suffix = item.suffix
        if suffix and (not suffix.startswith(".") or "/" in suffix or len(suffix) > 32):
            raise InvalidInputError(
                f"RawItem.suffix must look like '.csv.gz' (a dot, no '/'), got {suffix!r}"
            )
        digest = hashlib.sha256(item.data).hexdigest()
        state_key = f"{self._state_prefix}{digest}"
        known = self._known.get(digest)
        if known is None:
            stored = self._catalog.get_state(state_key)
            if isinstance(stored, str):
                known = stored
        if known is not None:
            self._known[digest] = known
            return known, {state_key: known}
        day = self._clock().astimezone(dt.UTC).strftime("%Y/%m/%d")
        key = f"{self._prefix}/{self._pipeline}/{day}/{digest}{suffix}"
        try:
            self._store.create(key, item.data)
            self.landed += 1
        except AlreadyExistsError:
            pass  # the same content was landed today already (maybe by a crashed run)
        self._known[digest] = key
        return key, {state_key: key}
