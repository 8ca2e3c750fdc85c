"""The pipeline commands of the ``lakekit`` command line: ``ingest``, ``transform`` and ``runs``.

    lakekit ingest orders --into raw.orders --files landing/orders/ --pattern "*.csv.gz"
    lakekit ingest users --into raw.users --sql sqlite:///app.db --table users --cursor updated_at
    lakekit ingest issues --into raw.issues --http https://api.example.com/issues --paging cursor
    lakekit transform "SELECT day, count(*) AS n FROM raw.orders GROUP BY day" --into marts.daily
    lakekit runs orders --limit 5

``ingest`` runs one pipeline (exactly once, resuming from its committed state) and prints its
run report; it exits 1 when the run fails (the rows committed before the failure stay, and the
failed report is stored). A progress line shows on a terminal only.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from lakekit.errors import InvalidInputError

if TYPE_CHECKING:
    from lakekit.lake import Lake
    from lakekit.pipelines.report import RunReport
    from lakekit.pipelines.source import Source

__all__ = ["COMMANDS", "add_parsers", "run_command"]

COMMANDS = ("ingest", "transform", "runs")
_LAKE_HELP = "lake URL (default: $LAKEKIT_URL / lakekit.toml)"


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``ingest``, ``transform`` and ``runs`` to the ``lakekit`` sub-commands."""
    ingest = sub.add_parser("ingest", help="run an ELT pipeline into a lake table")
    ingest.add_argument("pipeline", help="pipeline name (its state is kept under this name)")
    ingest.add_argument("--into", required=True, help="target table ns.table")
    kind = ingest.add_mutually_exclusive_group(required=True)
    kind.add_argument("--files", metavar="PREFIX", help="ingest the files under this prefix")
    kind.add_argument("--sql", metavar="URL", help="ingest from this SQLAlchemy database URL")
    kind.add_argument("--http", metavar="URL", help="ingest from this paged JSON API")
    ingest.add_argument("--pattern", help="--files: glob the full key must match")
    ingest.add_argument(
        "--format", choices=["ndjson", "json", "csv", "parquet", "avro"], help="--files: format"
    )
    ingest.add_argument("--table", help="--sql: table to read")
    ingest.add_argument("--query", help="--sql: SELECT to read")
    ingest.add_argument("--cursor", help="--sql: column to read incrementally by")
    ingest.add_argument("--paging", choices=["page", "offset", "cursor", "next_link"])
    ingest.add_argument("--records-path", help="--http: dotted path of the records in a page")
    _add_write_args(ingest, ["append", "overwrite", "overwrite_partitions", "merge"], "append")
    ingest.add_argument("--merge-on", nargs="+", metavar="K", help="key columns for merge")
    ingest.add_argument("--land-raw", action="store_true", help="keep raw copies of the input")
    ingest.add_argument("--on-error", choices=["raise", "quarantine"], default="raise")
    ingest.add_argument("--json", action="store_true", help="print the report as JSON")

    transform = sub.add_parser("transform", help="materialise a SQL query into a lake table")
    transform.add_argument("sql")
    transform.add_argument("--into", required=True, help="target table ns.table")
    _add_write_args(transform, ["overwrite", "append", "overwrite_partitions"], "overwrite")

    runs = sub.add_parser("runs", help="show the pipeline run history, newest first")
    runs.add_argument("pipeline", nargs="?")
    runs.add_argument("--limit", type=int, default=20)
    runs.add_argument("--json", action="store_true", help="print the reports as JSON")
    runs.add_argument("--lake", help=_LAKE_HELP)


def _add_write_args(parser: argparse.ArgumentParser, modes: list[str], default: str) -> None:
    parser.add_argument("--mode", choices=modes, default=default)
    parser.add_argument("--partition-by", nargs="+", metavar="SPEC", help="e.g. day(ts) or region")
    parser.add_argument("--lake", help=_LAKE_HELP)


def run_command(args: argparse.Namespace, lake: Lake) -> int:
    """Run ``args.command`` (one of :data:`COMMANDS`) on ``lake``; the exit status."""
    if args.command == "ingest":
        return _ingest(args, lake)
    if args.command == "transform":
        snapshot = lake.transform(
            args.sql, args.into, mode=args.mode, partition_by=args.partition_by
        )
        rows = snapshot.summary.get("added_rows", 0)
        total = snapshot.summary.get("total_rows", 0)
        print(
            f"{args.into}: committed snapshot {snapshot.snapshot_id} ({args.mode}: "
            f"{rows:,} rows written, {total:,} in the table)"
        )
        return 0
    reports = lake.runs(args.pipeline, args.limit)
    if args.json:
        print(json.dumps([report.to_json() for report in reports], indent=2))
    else:
        print(_runs_table(reports))
    return 0


def _ingest(args: argparse.Namespace, lake: Lake) -> int:
    pipeline = lake.pipeline(args.pipeline)
    source = _source(args, lake)
    started = datetime.now(UTC)
    try:
        report = pipeline.run(
            source, args.into, mode=args.mode, merge_on=args.merge_on,
            partition_by=args.partition_by, land_raw=args.land_raw,
        )  # fmt: skip
    except Exception as exc:
        from lakekit.pipelines.report import describe_error

        failed = [r for r in pipeline.runs(limit=1) if r.started_at >= started]
        if failed:
            _print_report(failed[0], as_json=args.json)
        print(f"lakekit: ingest failed: {describe_error(exc)}", file=sys.stderr)
        return 1
    finally:
        source.close()
    _print_report(report, as_json=args.json)
    return 0


def _source(args: argparse.Namespace, lake: Lake) -> Source:
    """The source the ``ingest`` flags describe; InvalidInputError for flags of another kind."""
    kind = "files" if args.files is not None else "sql" if args.sql is not None else "http"
    own = {"files": {"pattern", "format"}, "sql": {"table", "query", "cursor"}}
    own["http"] = {"paging", "records_path"}
    for other, flags in own.items():
        for flag in sorted(flags):
            if other != kind and getattr(args, flag) is not None:
                option = "--" + flag.replace("_", "-")
                raise InvalidInputError(f"{option} applies to --{other} sources, not --{kind}")
    if args.on_error != "raise" and kind != "files":
        raise InvalidInputError("--on-error quarantine is supported for --files sources only")
    if kind == "files":
        from lakekit.pipelines.sources.files import FileSource

        return FileSource(
            lake.store, args.files, pattern=args.pattern, format=args.format,
            on_error=args.on_error,
        )  # fmt: skip
    if kind == "sql":
        from lakekit.pipelines.sources.sql import SqlSource

        if (args.table is None) == (args.query is None):
            raise InvalidInputError("--sql needs exactly one of --table or --query")
        return SqlSource(args.sql, table=args.table, query=args.query, cursor=args.cursor)
    from lakekit.pipelines.sources.http import HttpSource

    return HttpSource(args.http, paging=args.paging or "page", records_path=args.records_path)


def _print_report(report: RunReport, *, as_json: bool) -> None:
    if as_json:
        print(json.dumps(report.to_json(), indent=2))
        return
    rows: list[tuple[str, Any]] = [
        ("pipeline", report.pipeline),
        ("status", report.status),
        ("source", report.source),
        ("target", f"{report.target} ({report.mode})"),
        ("rows in", f"{report.rows_in:,}"),
        ("rows out", f"{report.rows_out:,}"),
        ("quarantined", f"{report.rows_quarantined:,}"),
        ("batches", report.batches),
        ("commits", report.commits),
        ("files", report.files),
        ("bytes", f"{report.bytes:,}"),
        ("raw landed", report.raw_landed),
        ("duration", f"{report.duration_s:.2f}s"),
        ("run id", report.run_id),
    ]
    if report.error:
        rows.append(("error", report.error))
    print("\n".join(f"{name:<12} {value}" for name, value in rows))


def _runs_table(reports: list[RunReport]) -> str:
    if not reports:
        return "no runs"
    import pyarrow as pa

    from lakekit._format import format_table

    columns: dict[str, list[Any]] = {
        "started (UTC)": [f"{r.started_at.astimezone(UTC):%Y-%m-%d %H:%M:%S}" for r in reports],
        "pipeline": [r.pipeline for r in reports],
        "status": [r.status for r in reports],
        "target": [r.target for r in reports],
        "rows_in": [r.rows_in for r in reports],
        "rows_out": [r.rows_out for r in reports],
        "quarantined": [r.rows_quarantined for r in reports],
        "commits": [r.commits for r in reports],
        "seconds": [r.duration_s for r in reports],
        "error": [_clip(r.error or "", 60) for r in reports],
    }
    return format_table(pa.table(columns), max_rows=len(reports))


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
