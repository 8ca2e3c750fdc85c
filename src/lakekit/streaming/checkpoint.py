"""Checkpoints of a windowed job: open windows, watermark, views and stream offsets, together.

A checkpoint is two things:

* a **payload** object in the lake's store,
  ``streaming/<source>/<group>/checkpoint-<seq>-<id>.json``: the open windows' aggregation
  states, the watermark and per-partition event-time progress, the key-value views' contents;
  written under a fresh name each time (never overwritten);
* the **entry** in the catalog's state area, ``streaming/<source>/<group>/checkpoint``:
  ``{"seq", "offsets", "payload", "fingerprint"}``; the stream offsets (next offset to read per
  partition) and the name of the payload they go with.

Moving the entry is the commit: the catalog writes it atomically, either with a table-sink
snapshot (``Table.write(set_state=...)``: results and checkpoint in **one** atomic step, made
only while the entry is still at the version this instance last saw:
``Table.write(precondition=...)``) or on its own with compare-and-swap on the entry's version.
Either way a second instance of the same job that committed in between makes this one fail
with ``CommitConflictError``, having written nothing, instead of duplicating results or
silently overwriting its progress. A payload whose entry never committed (a crash in between)
is never read, and is deleted when the job next starts; the previous payload is deleted after
each commit.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lakekit.errors import CommitConflictError, InvalidInputError, LakekitError, NotFoundError

if TYPE_CHECKING:
    from lakekit.interfaces.catalog import JSONValue
    from lakekit.lake import Lake

__all__ = ["Checkpoint", "Checkpoints"]

_logger = logging.getLogger(__name__)
FORMAT = 1


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A committed checkpoint: its entry and its payload."""

    seq: int
    offsets: dict[int, int]
    payload_key: str
    fingerprint: str
    payload: dict[str, Any]
    version: int
    """The catalog state entry's version (for compare-and-swap)."""


class Checkpoints:
    """The checkpoints of the job reading ``source`` as consumer group ``group``."""

    def __init__(self, lake: Lake, source: str, group: str) -> None:
        self.lake = lake
        self.prefix = f"streaming/{source}/{group}/"
        self.state_key = f"{self.prefix}checkpoint"

    def __repr__(self) -> str:
        return f"Checkpoints({self.state_key!r})"

    def load(self) -> Checkpoint | None:
        """The last committed checkpoint, or None.

        Raises:
            InvalidInputError: a malformed entry, or its payload is missing or malformed (the
                message names the keys; nothing is changed).
        """
        entry = self.lake.catalog.state_entry(self.state_key)
        if entry is None:
            return None
        value: Any = entry.value
        if not isinstance(value, dict) or value.get("format") != FORMAT:
            raise InvalidInputError(
                f"checkpoint {self.state_key!r} is not a format-{FORMAT} checkpoint: {value!r}"
            )
        try:
            seq = int(value["seq"])
            offsets = {int(p): int(n) for p, n in dict(value["offsets"]).items()}
            payload_key = str(value["payload"])
            fingerprint = str(value["fingerprint"])
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInputError(f"malformed checkpoint {self.state_key!r}: {value!r}") from exc
        try:
            payload = json.loads(self.lake.store.get(payload_key))
        except NotFoundError as exc:
            raise InvalidInputError(
                f"checkpoint {self.state_key!r} names payload {payload_key!r}, which is missing "
                "from the store; call job.reset() to start over"
            ) from exc
        except ValueError as exc:
            raise InvalidInputError(f"checkpoint payload {payload_key!r} is not JSON") from exc
        if not isinstance(payload, dict) or payload.get("format") != FORMAT:
            raise InvalidInputError(f"checkpoint payload {payload_key!r} has an unknown format")
        return Checkpoint(seq, offsets, payload_key, fingerprint, payload, entry.version)

    def write_payload(self, seq: int, payload: Mapping[str, JSONValue]) -> str:
        """Store a payload under a fresh key; return the key.

        Raises:
            InvalidInputError: the payload is not JSON-serialisable (e.g. a custom aggregation
                state without ``encode``).
        """
        from lakekit.interfaces.object_store import PutMode

        try:
            data = json.dumps({"format": FORMAT, **payload}, separators=(",", ":"))
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(
                f"cannot checkpoint the job's state as JSON ({exc}): a custom aggregation whose "
                "state is not made of JSON values must implement encode() and decode()"
            ) from exc
        key = f"{self.prefix}checkpoint-{seq:012d}-{uuid.uuid4().hex[:12]}.json"
        self.lake.store.put(key, data.encode("utf-8"), mode=PutMode.CREATE)
        return key

    def entry(
        self, seq: int, offsets: Mapping[int, int], payload_key: str, fingerprint: str
    ) -> dict[str, JSONValue]:
        """The catalog state entry of a checkpoint."""
        return {
            "format": FORMAT,
            "seq": seq,
            "offsets": {str(p): n for p, n in sorted(offsets.items())},
            "payload": payload_key,
            "fingerprint": fingerprint,
        }

    def commit(self, entry: Mapping[str, JSONValue], expected_version: int) -> int:
        """Store ``entry`` if the state is still at ``expected_version`` (0: absent); return
        the new version.

        Raises:
            CommitConflictError: another instance of the job committed in between.
        """
        try:
            stored = self.lake.catalog.put_state(
                self.state_key, dict(entry), expected_version=expected_version
            )
        except CommitConflictError as exc:
            raise CommitConflictError(
                f"checkpoint {self.state_key!r} was committed by someone else (another instance "
                "of this job?): only one instance of a job may run at a time"
            ) from exc
        return stored.version

    def unchanged_since(self, expected_version: int) -> None:
        """Raise unless the entry is still at ``expected_version`` (0: absent): the
        precondition of a table-sink commit, checked at each of its commit attempts.

        Raises:
            CommitConflictError: another instance of the job committed in between.
        """
        stored = self.lake.catalog.state_entry(self.state_key)
        if (0 if stored is None else stored.version) != expected_version:
            raise CommitConflictError(
                f"checkpoint {self.state_key!r} was committed by someone else (another instance "
                "of this job?): only one instance of a job may run at a time; nothing of this "
                "commit was written"
            )

    def confirm(self, seq: int) -> int:
        """After a table-sink commit carried the entry: check it is ours; return its version.

        Raises:
            CommitConflictError: the entry holds another sequence number (a second instance).
        """
        stored = self.lake.catalog.state_entry(self.state_key)
        value = None if stored is None else stored.value
        if stored is None or not isinstance(value, dict) or value.get("seq") != seq:
            raise CommitConflictError(
                f"checkpoint {self.state_key!r} does not hold this job's commit {seq}: only one "
                "instance of a job may run at a time"
            )
        return stored.version

    def discard(self, *keys: str) -> None:
        """Delete payloads (best effort: a leftover is collected at the next start)."""
        try:
            self.lake.store.delete([k for k in keys if k])
        except LakekitError as exc:
            _logger.warning("%r: could not delete old checkpoint payloads: %s", self, exc)

    def collect_garbage(self, keep: str | None) -> int:
        """Delete every payload but ``keep`` (run at start, while this job is the only one);
        return how many were deleted."""
        stale = [
            key
            for key in self.lake.store.list_keys(self.prefix)
            if key != keep and key.rsplit("/", 1)[-1].startswith("checkpoint-")
        ]
        if stale:
            self.discard(*stale)
        return len(stale)

    def reset(self) -> None:
        """Forget the job's progress: delete the entry and every payload."""
        self.lake.catalog.delete_state(self.state_key)
        self.collect_garbage(None)
