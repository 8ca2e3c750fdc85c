"""Every example runs as shipped."""

from __future__ import annotations

import runpy
from pathlib import Path

EXAMPLES = Path(__file__).parents[1] / "examples"


def test_quickstart_example_runs_and_is_rerunnable(tmp_path: Path) -> None:
    module = runpy.run_path(str(EXAMPLES / "quickstart.py"))
    for _ in range(2):
        result = module["main"](str(tmp_path / "lake"))
        assert result["total"] == 32.75
        assert result["enriched"]["page"] == "/checkout"
        assert result["enriched"]["attempt"] == 1
    assert result["consumed"] == 1


def test_conformance_example_from_the_docs_passes() -> None:
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:benchmark",
         str(EXAMPLES / "conformance")],
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:]
    assert " passed" in result.stdout
