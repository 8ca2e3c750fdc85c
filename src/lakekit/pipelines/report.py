"""Run reports: what one ``pipeline.run`` read, wrote and quarantined, persisted for history.

Each run's report is stored in the catalog's state area under
``runs/<pipeline>/<started>-<run_id>`` (``<started>`` is a sortable UTC timestamp), so
``lake.runs()`` and ``lakekit runs`` show the history from any process that opens the lake.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from lakekit._redact import redact_url
from lakekit.errors import InvalidInputError

if TYPE_CHECKING:
    from lakekit.interfaces.catalog import Catalog, JSONValue

__all__ = ["RunReport", "RunStatus", "describe_error", "list_runs", "run_key", "save_run"]

RunStatus = Literal["succeeded", "failed", "nothing to do"]
RUNS_PREFIX = "runs/"
_URLISH = re.compile(r"\S+://\S+")
_ERROR_LIMIT = 2000


@dataclass(frozen=True, slots=True)
class RunReport:
    """The outcome of one pipeline run. JSON-serialisable with :meth:`to_json`.

    Counts cover the whole run: ``rows_in`` rows the source yielded (including the input it
    could not parse, ``SourceBatch.rejected``), ``rows_out`` rows committed to the target table,
    ``rows_quarantined`` rows a contract rejected or the source could not parse, committed to
    the quarantine table. For a failed run they count what was committed before the failure
    (those commits stay: a re-run resumes after them).
    """

    pipeline: str
    run_id: str
    source: str
    """The source's ``describe()`` (never credentials)."""
    target: str
    mode: str
    started_at: datetime
    finished_at: datetime
    duration_s: float
    rows_in: int = 0
    rows_out: int = 0
    rows_quarantined: int = 0
    batches: int = 0
    commits: int = 0
    """Snapshots committed to the target table (quarantine commits are not counted)."""
    files: int = 0
    """Distinct batch origins (files, pages) read."""
    bytes: int = 0
    """Raw bytes read, when the source supplies them (``SourceBatch.raw``)."""
    snapshot_ids: tuple[int, ...] = ()
    status: RunStatus = "succeeded"
    error: str | None = None
    """``"<ErrorType>: <message>"`` of a failed run, with URLs redacted."""
    raw_landed: int = 0
    """Raw objects newly stored in the raw zone (already-landed content is not counted)."""

    def to_json(self) -> dict[str, JSONValue]:
        """A JSON-compatible dict (timestamps as ISO 8601 strings)."""
        out: dict[str, Any] = asdict(self)
        out["started_at"] = self.started_at.isoformat()
        out["finished_at"] = self.finished_at.isoformat()
        out["snapshot_ids"] = list(self.snapshot_ids)
        return out

    @classmethod
    def from_json(cls, value: JSONValue) -> RunReport:
        """Rebuild a report from :meth:`to_json` output.

        Raises:
            InvalidInputError: ``value`` is not a stored run report.
        """
        if not isinstance(value, dict):
            raise InvalidInputError(f"a run report must be a JSON object, got {type(value)}")
        data: dict[str, Any] = dict(value)
        try:
            data["started_at"] = datetime.fromisoformat(str(data["started_at"]))
            data["finished_at"] = datetime.fromisoformat(str(data["finished_at"]))
            data["snapshot_ids"] = tuple(int(i) for i in data.get("snapshot_ids") or ())
            return cls(**data)
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInputError(f"not a stored run report: {exc}") from exc


def describe_error(exc: BaseException) -> str:
    """``"<ErrorType>: <message>"`` with anything URL-like passed through ``redact_url``."""
    message = _URLISH.sub(lambda m: redact_url(m.group(0)), str(exc))
    text = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    return text[:_ERROR_LIMIT]


def run_key(report: RunReport) -> str:
    """The state key of a report: sortable by start time within a pipeline."""
    started = report.started_at.astimezone(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    return f"{RUNS_PREFIX}{report.pipeline}/{started}-{report.run_id}"


def save_run(catalog: Catalog, report: RunReport) -> None:
    """Persist ``report`` (one state put; durable once it returns)."""
    catalog.put_state(run_key(report), report.to_json())


def list_runs(catalog: Catalog, pipeline: str | None = None, limit: int = 20) -> list[RunReport]:
    """Stored reports, newest first, at most ``limit`` (all pipelines when ``pipeline`` is None).

    Raises:
        InvalidInputError: a bad ``pipeline`` name or ``limit``.
    """
    from lakekit.identifiers import validate_name

    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise InvalidInputError(f"limit must be an int >= 0, got {limit!r}")
    prefix = RUNS_PREFIX
    if pipeline is not None:
        prefix += validate_name(pipeline, what="pipeline name") + "/"
    reports = [RunReport.from_json(entry.value) for entry in catalog.list_state(prefix)]
    reports.sort(key=lambda r: (r.started_at, r.run_id), reverse=True)
    return reports[:limit]
