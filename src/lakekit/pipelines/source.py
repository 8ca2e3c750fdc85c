"""The source interface of ELT pipelines: what a user implements to ingest from anywhere.

A source reads its data in *batches*; each batch carries the source's state after it
(``SourceBatch.state``). The pipeline commits a batch's rows to the table and that state to the
catalog in **one atomic step**, so after a crash at any point the next run resumes exactly after
the last committed batch: no row is lost or duplicated (exactly-once), provided ``read`` is
deterministic from a given state.

A source in ~20 lines::

    class Countdown(Source):
        kind = "countdown"

        def __init__(self, start: int) -> None:
            self.start = start

        def read(self, state: SourceState) -> Iterator[SourceBatch]:
            done = state.get("next", self.start)
            for n in range(done, 0, -1):
                rows = pa.table({"n": [n]})
                yield SourceBatch(rows, state={"next": n - 1}, origin=f"n={n}")
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    import pyarrow as pa

    from lakekit.interfaces.catalog import JSONValue

__all__ = ["RawItem", "Source", "SourceBatch", "SourceState"]


@dataclass(frozen=True, slots=True)
class RawItem:
    """Original bytes of a batch for the raw zone (ELT's "land as-is"), e.g. a source file's
    content or the NDJSON of API/database rows."""

    data: bytes
    suffix: str
    """File name suffix in the raw zone, e.g. ``.csv.gz`` or ``.ndjson``."""


@dataclass(frozen=True, slots=True)
class SourceBatch:
    """Rows read from a source, and the source's state once they are committed."""

    data: pa.RecordBatch | pa.Table
    state: Mapping[str, JSONValue] = field(default_factory=dict)
    """State entries (relative keys) to commit with these rows; ``None`` deletes an entry."""
    raw: RawItem | None = None
    origin: str = ""
    """Where the rows came from (``raw/orders.ndjson``, ``page 3``), for reports and errors."""
    row_origins: tuple[str, ...] | None = None
    """Optional per-row origins (``file.ndjson:17``) so quarantined rows name their line."""
    rejected: pa.Table | None = None
    """Input the source could not parse (a bad JSON line, a wrong column count), as rows of
    ``_origin`` (``file:line``), ``_reason`` and ``_record`` (the raw text), for the pipeline to
    put in the quarantine table in the same run. None when everything parsed."""


class SourceState:
    """A read-only view of a source's committed state (keys relative to the pipeline)."""

    def __init__(self, entries: Mapping[str, Any]) -> None:
        self._entries = dict(entries)

    def get(self, key: str, default: Any = None) -> Any:
        return self._entries.get(key, default)

    def items(self, prefix: str = "") -> Iterator[tuple[str, Any]]:
        """Entries whose key starts with ``prefix``, sorted by key."""
        for key in sorted(self._entries):
            if key.startswith(prefix):
                yield key, self._entries[key]

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)


class Source(ABC):
    """Something a pipeline ingests from. Implement :meth:`read`."""

    kind: ClassVar[str] = "source"
    """A short name for reports (``files``, ``sql``, ``http``, ``stream``)."""

    @abstractmethod
    def read(self, state: SourceState) -> Iterator[SourceBatch]:
        """Yield batches of rows not yet committed, resuming after ``state``.

        Must be deterministic from ``state``: after a crash the pipeline calls it again with the
        last committed state and expects the same batches from there.
        """

    def describe(self) -> str:
        """One line for reports and logs (never credentials)."""
        return self.kind

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections. Optional."""
