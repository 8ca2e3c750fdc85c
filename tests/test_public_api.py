"""The public surface is exactly what docs/api.md documents, and importing it is cheap."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import lakekit

DOCUMENTED = {
    "connect", "Lake",
    "ObjectStore", "ObjectMeta", "PutMode",
    "Catalog", "TableIdent", "TableMetadata", "TableUpdate", "PartitionSpec", "PartitionField",
    "Table", "Snapshot", "WriteOptions",
    "QueryEngine", "QueryResult",
    "Stream", "Consumer", "Message", "Record",
    "FunctionRuntime", "FunctionOptions", "Context", "Event", "Invoke",
    "Capability",
    "LakekitError", "ConfigurationError", "MissingDependencyError", "InvalidInputError",
    "NotFoundError", "AlreadyExistsError", "ConflictError", "PreconditionFailedError",
    "CommitConflictError", "SchemaError", "NotSupportedError", "PermissionDeniedError",
    "QueryError", "FunctionError", "FunctionTimeoutError", "TransientError",
    "__version__",
}  # fmt: skip

HEAVY_OR_CLOUD = [
    "pyarrow", "duckdb", "sqlalchemy", "fsspec", "pandas", "polars",
    "boto3", "botocore", "s3fs", "gcsfs", "adlfs", "google.cloud", "azure",
]  # fmt: skip


def test_exports_are_exactly_the_documented_ones() -> None:
    assert set(lakekit.__all__) == DOCUMENTED


def test_every_export_resolves() -> None:
    for name in lakekit.__all__:
        assert getattr(lakekit, name) is not None, name


def test_api_doc_mentions_every_export() -> None:
    doc = (Path(__file__).parents[1] / "docs" / "api.md").read_text(encoding="utf-8")
    missing = [name for name in DOCUMENTED if f"`{name}" not in doc]
    assert not missing, f"docs/api.md does not document {missing}"


def test_import_is_fast_and_loads_no_heavy_or_cloud_library() -> None:
    code = (
        "import sys, time, json\n"
        "t = time.perf_counter(); import lakekit; dt = time.perf_counter() - t\n"
        f"mods = [m for m in {HEAVY_OR_CLOUD!r} if m in sys.modules]\n"
        "print(json.dumps({'seconds': dt, 'modules': mods}))\n"
    )
    # Best of three: the first run pays for cold .pyc caches on a fresh clone.
    runs = [
        json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                  check=True).stdout)
        for _ in range(3)
    ]  # fmt: skip
    assert all(run["modules"] == [] for run in runs), runs
    assert min(run["seconds"] for run in runs) < 0.3, runs


def test_connect_alone_opens_nothing(tmp_path: Path) -> None:
    code = (
        "import sys, lakekit\n"
        f"lake = lakekit.connect({str(tmp_path / 'lake')!r})\n"
        f"print([m for m in {HEAVY_OR_CLOUD!r} if m in sys.modules])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    assert not (tmp_path / "lake").exists()
