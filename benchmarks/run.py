"""Run lakekit's benchmarks: ``python -m benchmarks.run [names] [--quick] [--check]``.

Each ``benchmarks/bench_<name>.py`` module defines ``NAME``, ``DESCRIPTION`` and
``run(quick: bool) -> Report``. Every benchmark compares lakekit with a baseline measured in the
same run (only ratios are comparable across machines). Results are printed as a table and
written as JSON to ``benchmarks/results/<name>-<UTC timestamp>.json`` with the machine
description. ``--check`` exits with status 1 when a ratio misses its target.
"""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import sys
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

if __package__ in (None, ""):  # run as a script: python benchmarks/run.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._harness import Report, machine

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def available() -> dict[str, str]:
    """Benchmark name -> module name, for every ``bench_*.py`` beside this file."""
    return {
        info.name.removeprefix("bench_"): f"benchmarks.{info.name}"
        for info in pkgutil.iter_modules([str(HERE)])
        if info.name.startswith("bench_")
    }


def main(argv: list[str] | None = None) -> int:
    known = available()
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    parser.add_argument(
        "names", nargs="*", help=f"benchmarks to run (default: all of {sorted(known)})"
    )
    parser.add_argument("--quick", action="store_true", help="small data, few repetitions")
    parser.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    parser.add_argument("--out", type=Path, default=RESULTS, help="directory for JSON results")
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in known]
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; available: {sorted(known)}")
    about = machine()
    print(
        f"machine: {about['cpu']}, {about['cores']} cores, {about['memory_gib']} GiB, "
        f"Python {about['python']}, DuckDB {about['duckdb']}, pyarrow {about['pyarrow']}"
    )
    all_met = True
    for name in args.names or sorted(known):
        module: ModuleType = importlib.import_module(known[name])
        report: Report = module.run(quick=args.quick)
        print()
        print(report.render())
        path = _save(report, about, args.out)
        print(f"   saved: {path}")
        all_met = all_met and report.met
    return 1 if args.check and not all_met else 0


def _save(report: Report, about: dict[str, object], directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = directory / f"{report.name}-{stamp}.json"
    payload = {"recorded_at": stamp, "machine": about, **report.as_dict()}
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    return path


if __name__ == "__main__":
    sys.exit(main())
