"""The public surface of lakekit.streaming is what docs/streaming.md documents, and importing
it loads no heavy library."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import lakekit.streaming

DOC = Path(__file__).parents[2] / "docs" / "streaming.md"


def test_every_export_resolves_and_is_documented() -> None:
    text = DOC.read_text(encoding="utf-8")
    for name in lakekit.streaming.__all__:
        assert getattr(lakekit.streaming, name) is not None, name
        assert f"{name}" in text, f"docs/streaming.md does not mention {name}"


def test_importing_the_package_loads_neither_pyarrow_nor_datasketches() -> None:
    code = (
        "import sys, json, lakekit.streaming\n"
        "print(json.dumps([m for m in ('pyarrow', 'datasketches', 'duckdb', 'sqlalchemy')"
        " if m in sys.modules]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


def test_the_package_is_reachable_from_lakekit_without_an_import() -> None:
    code = (
        "import sys, lakekit\n"
        "assert 'lakekit.streaming' not in sys.modules\n"
        "print(lakekit.streaming.windowed.__name__)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "windowed"
