"""Running a benchmark from a test: the quick variant, end to end, in a subprocess.

The tests check that a benchmark runs and reports what it should; the numbers themselves are
judged by ``nox -s bench``, never by a timed unit test.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def run_quick_benchmark(name: str, out: Path) -> tuple[str, dict[str, Any]]:
    """Run ``python -m benchmarks.run <name> --quick``; return its stdout and JSON report."""
    completed = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", name, "--quick", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    (report_path,) = out.glob(f"{name}-*.json")
    report: dict[str, Any] = json.loads(report_path.read_text())
    return completed.stdout, report


def import_benchmark(module: str) -> Any:
    """Import ``benchmarks.<module>`` (the repo root is not on sys.path under pytest)."""
    import importlib

    sys.path.insert(0, str(ROOT))
    try:
        return importlib.import_module(f"benchmarks.{module}")
    finally:
        sys.path.remove(str(ROOT))
