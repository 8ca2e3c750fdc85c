"""Event-time watermarks: how far a job's input has progressed in event time.

The watermark ``W`` says "no more records older than ``W`` are expected"; a window closes
(its final result is emitted) once ``W >= window end``, and a record that arrives for a window
that has closed is **late**.

Rule (per job, from per-partition progress):

* ``M[p]`` is the largest event time read so far from partition ``p`` (checkpointed).
* A partition is **active** while it has unread records (the job's position is behind the
  partition's end offset) or a record was read from it within ``idle_timeout`` (processing
  time). Otherwise it is **idle**.
* ``W = min(M[p] for active p) - allowed_lateness``. An active partition that has not produced
  an event time yet (a backlog not read yet) holds ``W`` where it is: its records may be older
  than everything seen.
* When every partition is idle (the job is caught up and quiet), ``W = max(M) - lateness``.
* ``W`` never goes back.

Taking the minimum over partitions is what makes the watermark correct for a multi-partition
stream read in batches: a consumer may read far ahead in one partition while another lags, and
the lagging partition's records must not become late because of that. The idle rule keeps a
partition that receives nothing (few keys, or a quiet producer) from holding every window open
forever; a record that later arrives in a partition that went idle may be late.

The watermark only advances between poll batches: records of one batch are never late because
of each other.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from lakekit.errors import InvalidInputError

if TYPE_CHECKING:
    from lakekit.interfaces.catalog import JSONValue

__all__ = ["Watermarks"]


class Watermarks:
    """Per-partition event-time progress and the job's watermark (microseconds since the epoch).

    Not thread-safe: one job's loop owns it.
    """

    def __init__(self, *, lateness_us: int, idle_timeout_s: float) -> None:
        self.lateness_us = lateness_us
        self.idle_timeout_s = idle_timeout_s
        self.max_by_partition: dict[int, int] = {}
        self.value: int | None = None
        self._last_read: dict[int, float] = {}

    def observe(self, partition_max: Mapping[int, int], read: Iterable[int], now: float) -> None:
        """Record a batch: the largest event time per partition, and every partition read
        (including partitions whose records were all invalid)."""
        for partition, newest in partition_max.items():
            if newest > self.max_by_partition.get(partition, newest - 1):
                self.max_by_partition[partition] = newest
        for partition in read:
            self._last_read[partition] = now

    def advance(self, backlog: Iterable[int], now: float | None = None) -> int | None:
        """Recompute the watermark after a batch; ``backlog``: partitions with unread records.

        Returns the (possibly unchanged) watermark, None while there is none yet.
        """
        now = time.monotonic() if now is None else now
        active = set(backlog)
        active.update(p for p, seen in self._last_read.items() if now - seen < self.idle_timeout_s)
        candidate: int | None
        if active:
            if any(p not in self.max_by_partition for p in active):
                candidate = None
            else:
                candidate = min(self.max_by_partition[p] for p in active) - self.lateness_us
        elif self.max_by_partition:
            candidate = max(self.max_by_partition.values()) - self.lateness_us
        else:
            candidate = None
        if candidate is not None and (self.value is None or candidate > self.value):
            self.value = candidate
        return self.value

    # -- checkpoint ---------------------------------------------------------------------------
    def encode(self) -> dict[str, JSONValue]:
        return {
            "value": self.value,
            "partitions": {str(p): m for p, m in sorted(self.max_by_partition.items())},
        }

    def restore(self, data: Any, now: float | None = None) -> None:
        """Load a checkpoint's progress. Every partition it names counts as read just now, so
        a restart does not treat a partition as idle before it had a chance to be read.

        Raises:
            InvalidInputError: a malformed checkpoint entry.
        """
        if not isinstance(data, dict) or not isinstance(data.get("partitions"), dict):
            raise InvalidInputError(f"malformed watermark in checkpoint: {data!r}")
        value = data.get("value")
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise InvalidInputError(f"malformed watermark value in checkpoint: {value!r}")
        now = time.monotonic() if now is None else now
        self.value = value
        self.max_by_partition = {int(p): int(m) for p, m in data["partitions"].items()}
        self._last_read = dict.fromkeys(self.max_by_partition, now)
