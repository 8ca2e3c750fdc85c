"""The ``lakekit`` command line.

    lakekit demo [--lake DIR]                      run the end-to-end demo on a local lake
    lakekit query "SQL" [--lake URL] [--format F]  run SQL, print a table (or csv/json/parquet)
    lakekit tables [--lake URL]                    list catalog tables
    lakekit info [--lake URL]                      show the lake's adapters and capabilities
    lakekit ingest PIPELINE --into NS.TABLE (--files PREFIX | --sql URL | --http URL) ...
                                                   run an ELT pipeline, print its run report
    lakekit transform "SQL" --into NS.TABLE        materialise a query into a table
    lakekit runs [PIPELINE] [--limit N] [--json]   show the pipeline run history
    lakekit serve APP [--port N] [--lake URL]      run an app's function triggers locally

The pipeline commands live in :mod:`lakekit._cli_ingest`, ``serve`` in
:mod:`lakekit.triggers.serve_command`.

``--lake`` defaults to ``$LAKEKIT_URL`` or ``lakekit.toml``. Errors print one line to stderr
(never a credential) and exit with status 2 for usage/config errors, 1 for everything else.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from lakekit._cli_ingest import COMMANDS as PIPELINE_COMMANDS
from lakekit._cli_ingest import add_parsers as add_pipeline_parsers
from lakekit._cli_ingest import run_command as run_pipeline_command
from lakekit.errors import ConfigurationError, InvalidInputError, LakekitError
from lakekit.triggers.serve_command import add_parser as add_serve_parser

if TYPE_CHECKING:
    from lakekit.lake import Lake

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lakekit", description="Serverless data lakes on AWS, Google Cloud, Azure or a laptop."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="run the end-to-end demo on a local lake")
    demo.add_argument("--lake", default="demo-lake", help="directory of the demo lake")

    query = sub.add_parser("query", help="run a SQL query and print the result")
    query.add_argument("sql")
    query.add_argument("--lake", help="lake URL (default: $LAKEKIT_URL / lakekit.toml)")
    query.add_argument("--format", choices=["table", "csv", "json", "parquet"], default="table")
    query.add_argument("--output", "-o", help="write to this file instead of stdout")
    query.add_argument("--max-rows", type=int, default=50, help="rows shown in table format")

    tables = sub.add_parser("tables", help="list catalog tables")
    tables.add_argument("--lake")
    tables.add_argument("namespace", nargs="?")

    info = sub.add_parser("info", help="show the lake's adapters and capabilities")
    info.add_argument("--lake")
    add_pipeline_parsers(sub)
    add_serve_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``lakekit`` command; returns the process exit status."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "demo":
            from lakekit.demo import run_demo

            run_demo(args.lake)
        elif args.command == "query":
            _query(args)
        elif args.command == "tables":
            with _connect(args.lake) as lake:
                for ident in lake.catalog.list_tables(args.namespace):
                    print(ident)
        elif args.command == "info":
            _info(args.lake)
        elif args.command in PIPELINE_COMMANDS:
            with _connect(args.lake) as lake:
                return run_pipeline_command(args, lake)
        elif args.command == "serve":
            from lakekit.triggers.serve_command import run as run_serve

            return run_serve(args)
    except (ConfigurationError, InvalidInputError) as exc:
        print(f"lakekit: error: {exc}", file=sys.stderr)
        return 2
    except LakekitError as exc:
        print(f"lakekit: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


def _connect(url: str | None) -> Lake:
    import lakekit

    return lakekit.connect(url)


def _query(args: argparse.Namespace) -> None:
    with _connect(args.lake) as lake:
        result = lake.sql(args.sql)
        if args.format == "table":
            from lakekit._format import format_table

            _emit(format_table(result.to_arrow(), max_rows=args.max_rows) + "\n", args.output)
            return
        table = result.to_arrow()
        if args.format == "parquet":
            import pyarrow.parquet as pq

            if not args.output:
                raise InvalidInputError("--format parquet needs --output FILE")
            pq.write_table(table, args.output)
        elif args.format == "csv":
            import io

            import pyarrow.csv as pacsv

            buffer = io.BytesIO()
            pacsv.write_csv(table, buffer)
            _emit(buffer.getvalue().decode("utf-8"), args.output)
        else:
            import json

            lines = (json.dumps(row, default=str) for row in table.to_pylist())
            _emit("".join(line + "\n" for line in lines), args.output)


def _emit(text: str, output: str | None) -> None:
    if output:
        with open(output, "w", encoding="utf-8") as fh:
            fh.write(text)
    else:
        sys.stdout.write(text)


def _info(url: str | None) -> None:
    from lakekit._redact import redact_url

    with _connect(url) as lake:
        print(f"lake: {redact_url(lake.url)}")
        for name in ("store", "catalog", "engine", "functions"):
            component = getattr(lake, name)
            caps = ", ".join(sorted(c.value for c in component.capabilities)) or "-"
            print(f"{name:10} {type(component.adapter).__name__:22} {caps}")
        comp_url = lake.config.component("stream").url or "-"
        print(f"{'stream':10} {redact_url(comp_url):22} (per stream: lake.stream(name))")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
