"""The pipeline commands of the ``lakekit`` command line: ``ingest``, ``transform`` and ``runs``.

    lakekit ingest orders --into raw.orders --files landing/orders/ --pattern "*.csv.gz"
    lakekit ingest users --into raw.users --sql sqlite:///app.db --table users --cursor updated_at
    lakekit ingest issues --into raw.issues --http https://api.example.com/issues --paging cursor
    lakekit ingest clicks --into raw.clicks --stream clicks --follow --commit-every 5
    lakekit ingest orders --into raw.orders --files in/ --contract app.models:Order --policy discard
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
from collections.abc import Callable
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
    _add_source_args(ingest)
    _add_write_args(ingest, ["append", "overwrite", "overwrite_partitions", "merge"], "append")
    ingest.add_argument("--merge-on", nargs="+", metavar="K", help="key columns for merge")
    ingest.add_argument("--land-raw", action="store_true", help="keep raw copies of the input")
    ingest.add_argument("--batch-rows", type=int, metavar="N", help="most rows per commit")
    ingest.add_argument(
        "--contract", metavar="MODULE:NAME", help="a pydantic model or pyarrow schema to enforce"
    )
    ingest.add_argument("--policy", choices=["evolve", "freeze", "discard"], default="evolve")
    ingest.add_argument("--flatten", action="store_true", help="flatten nested structs")
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


def _add_source_args(ingest: argparse.ArgumentParser) -> None:
    """The source kind (one of four) and each kind's own options."""
    kind = ingest.add_mutually_exclusive_group(required=True)
    kind.add_argument("--files", metavar="PREFIX", help="ingest the files under this prefix")
    kind.add_argument("--sql", metavar="URL", help="ingest from this SQLAlchemy database URL")
    kind.add_argument("--http", metavar="URL", help="ingest from this paged JSON API")
    kind.add_argument("--stream", metavar="NAME", help="ingest the records of this lake stream")
    files = ingest.add_argument_group("--files options")
    files.add_argument("--pattern", help="glob the full key must match")
    files.add_argument("--format", choices=["ndjson", "json", "csv", "parquet", "avro"])
    files.add_argument("--on-error", choices=["raise", "quarantine"], default=None)
    files.add_argument("--delimiter", help="CSV field delimiter (one character)")
    files.add_argument("--no-header", action="store_true", help="CSV files have no header line")
    files.add_argument("--null-value", action="append", metavar="TEXT", help="CSV null (repeat)")
    files.add_argument("--skip-rows", type=int, metavar="N", help="CSV lines before the header")
    sql = ingest.add_argument_group("--sql options")
    sql.add_argument("--table", help="table to read")
    sql.add_argument("--query", help="SELECT to read")
    sql.add_argument("--cursor", help="column to read incrementally by")
    sql.add_argument("--lag", type=float, metavar="SECONDS", help="stay this far behind now")
    sql.add_argument("--start", help="smallest cursor value to read (backfill bound)")
    sql.add_argument("--end", help="cursor values at or above it are not read")
    http = ingest.add_argument_group("--http options")
    http.add_argument("--paging", choices=["page", "offset", "cursor", "next_link"])
    http.add_argument("--records-path", help="dotted path of the records in a page")
    http.add_argument("--page-size", type=int, metavar="N", help="records per page")
    http.add_argument("--cursor-path", help="dotted path of the next cursor in a page")
    http.add_argument("--next-link-path", help="dotted path of the next page's URL")
    http.add_argument("--header", action="append", metavar="'NAME: VALUE'", help="(repeat)")
    stream = ingest.add_argument_group("--stream options")
    stream.add_argument("--group", help="consumer group this pipeline owns (default: its name)")
    stream.add_argument("--follow", action="store_true", help="keep consuming until Ctrl-C")
    stream.add_argument(
        "--commit-every", type=float, metavar="SECONDS", help="micro-batch latency bound"
    )


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
    contract = _contract(args)
    options: dict[str, Any] = {}
    if args.batch_rows is not None:
        options["batch_rows"] = args.batch_rows
    if args.commit_every is not None:
        options["commit_every"] = args.commit_every
    started = datetime.now(UTC)
    stop = _stop_on_signals(source)
    try:
        report = pipeline.run(
            source, args.into, mode=args.mode, merge_on=args.merge_on,
            partition_by=args.partition_by, land_raw=args.land_raw, contract=contract,
            flatten=args.flatten, **options,
        )  # fmt: skip
    except Exception as exc:
        from lakekit.pipelines.report import describe_error

        failed = [r for r in pipeline.runs(limit=1) if r.started_at >= started]
        if failed:
            _print_report(failed[0], as_json=args.json)
        print(f"lakekit: ingest failed: {describe_error(exc)}", file=sys.stderr)
        return 1
    finally:
        stop()
        source.close()
    _print_report(report, as_json=args.json)
    return 0


_KIND_FLAGS = {
    "files": {"pattern", "format", "on_error", "delimiter", "null_value", "skip_rows"},
    "sql": {"table", "query", "cursor", "lag", "start", "end"},
    "http": {"paging", "records_path", "page_size", "cursor_path", "next_link_path", "header"},
    "stream": {"group", "commit_every"},
}
_KIND_SWITCHES = {"files": {"no_header"}, "stream": {"follow"}}


def _source(args: argparse.Namespace, lake: Lake) -> Source:
    """The source the ``ingest`` flags describe; InvalidInputError for flags of another kind."""
    kind = next(k for k in ("files", "sql", "http", "stream") if getattr(args, k) is not None)
    for other, flags in _KIND_FLAGS.items():
        given = [f for f in sorted(flags) if getattr(args, f) is not None]
        given += [f for f in sorted(_KIND_SWITCHES.get(other, ())) if getattr(args, f)]
        for flag in given:
            if other != kind:
                option = "--" + flag.replace("_", "-")
                raise InvalidInputError(f"{option} applies to --{other} sources, not --{kind}")
    if kind == "files":
        return _file_source(args, lake)
    if kind == "sql":
        from datetime import timedelta

        from lakekit.pipelines.sources.sql import SqlSource

        if (args.table is None) == (args.query is None):
            raise InvalidInputError("--sql needs exactly one of --table or --query")
        lag = None if args.lag is None else timedelta(seconds=args.lag)
        return SqlSource(
            args.sql, table=args.table, query=args.query, cursor=args.cursor, lag=lag,
            start=_cursor_value(args.start), end=_cursor_value(args.end),
        )  # fmt: skip
    if kind == "http":
        from lakekit.pipelines.sources.http import HttpSource

        return HttpSource(
            args.http, paging=args.paging or "page", records_path=args.records_path,
            page_size=args.page_size, cursor_path=args.cursor_path,
            next_link_path=args.next_link_path, headers=_headers(args.header or []),
        )  # fmt: skip
    from lakekit.pipelines.sources.stream import StreamSource

    return StreamSource(
        lake.stream(args.stream), group=args.group or args.pipeline, stop_at_end=not args.follow
    )


def _file_source(args: argparse.Namespace, lake: Lake) -> Source:
    from lakekit.pipelines.sources.files import CsvOptions, FileSource

    dialect: dict[str, Any] = {}
    if args.delimiter is not None:
        dialect["delimiter"] = args.delimiter
    if args.no_header:
        dialect["header"] = False
    if args.null_value is not None:
        dialect["null_values"] = tuple(args.null_value)
    if args.skip_rows is not None:
        dialect["skip_rows"] = args.skip_rows
    return FileSource(
        lake.store, args.files, pattern=args.pattern, format=args.format,
        on_error=args.on_error or "raise", csv=CsvOptions(**dialect),
    )  # fmt: skip


def _cursor_value(text: str | None) -> Any:
    """``--start``/``--end`` as the cursor's type: an int, an ISO date or timestamp, or text."""
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return text


def _headers(values: list[str]) -> dict[str, str]:
    """``--header 'Name: value'`` flags as a dict (values are never printed: they may be keys)."""
    headers: dict[str, str] = {}
    for value in values:
        name, sep, text = value.partition(":")
        if not sep or not name.strip():
            raise InvalidInputError("--header takes 'Name: value'")
        headers[name.strip()] = text.strip()
    return headers


def _contract(args: argparse.Namespace) -> Any:
    """The ``--contract module:NAME`` object as a Contract (a pydantic model or Arrow schema)."""
    if args.contract is None:
        if args.policy != "evolve":
            raise InvalidInputError("--policy applies to a --contract")
        return None
    import importlib

    import pyarrow as pa
    from pydantic import BaseModel

    from lakekit.pipelines.contract import Contract

    module_name, sep, attr = args.contract.partition(":")
    if not sep or not module_name or not attr:
        raise InvalidInputError("--contract takes MODULE:NAME, e.g. myapp.models:Order")
    if "" not in sys.path:
        sys.path.insert(0, "")  # the working directory, as `python -m` would
    try:
        target = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise InvalidInputError(f"--contract {args.contract}: cannot import it: {exc}") from exc
    if isinstance(target, type) and issubclass(target, BaseModel):
        return Contract.from_model(target, policy=args.policy, flatten=args.flatten)
    if isinstance(target, pa.Schema):
        return Contract.from_schema(target, policy=args.policy, flatten=args.flatten)
    raise InvalidInputError(
        f"--contract {args.contract} is a {type(target).__name__}; name a pydantic model class "
        "or a pyarrow.Schema"
    )


def _stop_on_signals(source: Source) -> Callable[[], None]:
    """With ``--follow``, SIGINT/SIGTERM end the run after its current micro-batch is committed
    (``StreamSource.stop``); returns the function that restores the previous handlers."""
    import signal
    import threading

    stop = getattr(source, "stop", None)
    if not callable(stop) or threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def handle(signum: int, frame: object) -> None:
        print("lakekit: stopping after the current micro-batch ...", file=sys.stderr)
        stop()

    for sig in previous:
        signal.signal(sig, handle)

    def restore() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    return restore


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
