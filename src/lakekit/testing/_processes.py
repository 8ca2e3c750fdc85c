"""Running conformance-suite workers in child processes and collecting their reports."""

from __future__ import annotations

import queue
import time
from collections.abc import Callable
from typing import Any

import pytest

__all__ = ["run_reporting_workers"]


def run_reporting_workers(
    ctx: Any,
    worker: Callable[[int], None],
    *,
    count: int,
    results: Any,
    expected: int,
    timeout: float,
) -> list[tuple[Any, ...]]:
    """Run ``worker(i)`` for ``i in range(count)`` in child processes of ``ctx``; return the
    first ``expected`` messages they put on ``results``.

    A worker reports failure as ``("error", worker_id, traceback_text)``; that fails the test
    with the child's traceback, as do children exiting early, a non-zero exit code, or overrunning
    ``timeout`` seconds. Children still alive at the end are terminated.
    """
    procs = [ctx.Process(target=worker, args=(i,), daemon=True) for i in range(count)]
    for proc in procs:
        proc.start()
    reports: list[tuple[Any, ...]] = []
    deadline = time.monotonic() + timeout
    try:
        while len(reports) < expected:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                pytest.fail(f"child processes sent {len(reports)}/{expected} reports in time")
            try:
                message = results.get(timeout=min(remaining, 1.0))
            except queue.Empty:
                if not any(p.is_alive() for p in procs):
                    pytest.fail(f"child processes exited early ({[p.exitcode for p in procs]})")
                continue
            if message[0] == "error":
                pytest.fail(f"child process {message[1]} failed:\n{message[2]}")
            reports.append(message)
        for proc in procs:
            proc.join(timeout=max(1.0, deadline - time.monotonic()))
            assert proc.exitcode == 0, f"child exited with {proc.exitcode}"
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.terminate()
                proc.join(5)
        results.close()
        results.join_thread()
    return reports
