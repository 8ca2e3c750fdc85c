"""What every benchmark shares: interleaved timing, reports, the machine description."""

from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Comparison", "Report", "compare", "machine", "median_ms"]


@dataclass
class Comparison:
    """One workload timed two ways in the same run: lakekit and its baseline."""

    name: str
    lakekit_ms: float
    baseline_ms: float
    target: float | None = None
    """The highest acceptable lakekit/baseline ratio, if there is one."""
    lakekit_samples_ms: list[float] = field(default_factory=list)
    baseline_samples_ms: list[float] = field(default_factory=list)

    @property
    def ratio(self) -> float:
        return self.lakekit_ms / self.baseline_ms if self.baseline_ms else float("inf")

    @property
    def met(self) -> bool:
        return self.target is None or self.ratio <= self.target

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ratio"] = round(self.ratio, 4)
        data["met"] = self.met
        return data


@dataclass
class Report:
    """What a benchmark module's ``run()`` returns."""

    name: str
    description: str
    baseline: str
    comparisons: list[Comparison]
    parameters: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    """Further measurements (e.g. a breakdown of lakekit's overhead), printed and saved."""

    @property
    def met(self) -> bool:
        return all(c.met for c in self.comparisons)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "baseline": self.baseline,
            "parameters": self.parameters,
            "comparisons": [c.as_dict() for c in self.comparisons],
            "extra": self.extra,
            "met": self.met,
        }

    def render(self) -> str:
        header = (
            f"{'workload':<22} {'lakekit ms':>11} {'baseline ms':>12} {'ratio':>7} {'target':>8}"
        )
        lines = [f"== {self.name}: {self.description}", f"   baseline: {self.baseline}", header]
        lines.append("-" * len(header))
        for c in self.comparisons:
            target = f"<={c.target:.2f}x" if c.target is not None else "-"
            flag = "" if c.met else "  MISSED"
            lines.append(
                f"{c.name:<22} {c.lakekit_ms:>11.2f} {c.baseline_ms:>12.2f} "
                f"{c.ratio:>6.2f}x {target:>8}{flag}"
            )
        for key, value in self.extra.items():
            lines.append(f"   {key}: {value}")
        return "\n".join(lines)


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def compare(
    name: str,
    lakekit: Callable[[], object],
    baseline: Callable[[], object],
    *,
    repetitions: int,
    warmup: int = 2,
    target: float | None = None,
) -> Comparison:
    """Time ``lakekit`` and ``baseline`` alternately (warm), ``repetitions`` times each.

    The order within a pair alternates, so drift (caches, CPU frequency, neighbours on a shared
    machine) affects both sides alike. Each side's figure is its median.
    """
    for _ in range(warmup):
        lakekit()
        baseline()
    ours: list[float] = []
    theirs: list[float] = []
    for rep in range(repetitions):
        pair = [(lakekit, ours), (baseline, theirs)]
        if rep % 2:
            pair.reverse()
        for func, samples in pair:
            started = time.perf_counter()
            func()
            samples.append(time.perf_counter() - started)
    return Comparison(
        name=name,
        lakekit_ms=median_ms(ours),
        baseline_ms=median_ms(theirs),
        target=target,
        lakekit_samples_ms=[round(s * 1000, 3) for s in ours],
        baseline_samples_ms=[round(s * 1000, 3) for s in theirs],
    )


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    import duckdb
    import pyarrow

    import lakekit

    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory_gib = None
    meminfo = Path("/proc/meminfo")
    if meminfo.is_file():
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_gib = round(int(line.split()[1]) / 1024**2, 1)
                break
    return {
        "platform": platform.platform(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": memory_gib,
        "python": platform.python_version(),
        "lakekit": lakekit.__version__,
        "duckdb": duckdb.__version__,
        "pyarrow": pyarrow.__version__,
        "git_commit": _git_commit(),
    }


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).resolve().parent,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


# -- helpers of the benchmarks that run each side in a fresh interpreter -----------------------
ROOT = Path(__file__).resolve().parent.parent


def median_of(runs: list[dict[str, Any]], key: str) -> float:
    return float(statistics.median(r[key] for r in runs))


def label(n: int) -> str:
    """``5M``, ``300k``: a row count for workload names."""
    return f"{n / 1e6:g}M" if n >= 1_000_000 else f"{n / 1e3:g}k"


def warm_page_cache(path: Path) -> None:
    """Read a file once, so the first timed run does not also pay for the disk."""
    with path.open("rb") as f:
        while f.read(16 * 2**20):
            pass


def run_child(module: str, args: list[str], out_dir: Path, timeout: float) -> dict[str, Any]:
    """Run ``python -m <module> --child <args>`` in a fresh interpreter (so peak RSS is its
    own); its last stdout line is the JSON result. ``out_dir`` is removed afterwards."""
    try:
        completed = subprocess.run(
            [sys.executable, "-m", module, "--child", *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)
    if completed.returncode != 0:
        raise RuntimeError(f"{module} {args[0]} run failed:\n{completed.stderr}")
    result: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result
