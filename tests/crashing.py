"""The kill loop of the crash tests: start a child, follow its log, SIGKILL it, reap it.

A child process appends a line to its log (flushed) at each step it reaches (``ready``, each
catalog ``commit`` as it starts, ``done``); the parent waits for the n-th such line, SIGKILLs
the child, and then checks the invariant its test is about on what the child left behind.
Only the scaffolding lives here; the invariants stay in the tests.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

__all__ = [
    "child_context",
    "log_commits",
    "log_line",
    "log_lines",
    "sigkill",
    "started",
    "wait_for_line",
]


def child_context(preload: Sequence[str]) -> Any:
    """A multiprocessing context whose children start in milliseconds: a fork server that
    imported ``preload`` once (``spawn`` where there is no fork server)."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(list(preload))
        return ctx
    return multiprocessing.get_context("spawn")


def log_line(log: IO[str], line: str) -> None:
    """Append ``line`` to a child's log, flushed: visible to the parent once this returns."""
    log.write(f"{line}\n")
    log.flush()


def log_commits(catalog: Any, log: IO[str], line: Callable[[], str] = lambda: "commit") -> None:
    """From now on, log ``line()`` as each ``catalog.commit`` starts (in the child)."""
    commit = catalog.commit

    def logged_commit(*args: Any, **kwargs: Any) -> Any:
        log_line(log, line())
        return commit(*args, **kwargs)

    catalog.commit = logged_commit


def log_lines(path: Path) -> list[str]:
    """The complete lines of a child's log (a line cut by the kill is ignored)."""
    return path.read_text(encoding="utf-8").split("\n")[:-1] if path.exists() else []


def wait_for_line(
    path: Path,
    line: str,
    process: Any,
    *,
    count: int = 1,
    exit_ok: bool = True,
    timeout: float = 60.0,
) -> None:
    """Wait until the log at ``path`` holds ``line`` ``count`` times.

    If the child exits first, return (``exit_ok``: its run may simply have finished; the test
    then sees ``done`` in the log) or fail the test. Fails after ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while log_lines(path).count(line) < count:
        if not process.is_alive():
            assert exit_ok, f"child exited early with {process.exitcode}"
            return
        assert time.monotonic() < deadline, f"child never logged {line!r} x{count}"
        time.sleep(0.0005)


@contextlib.contextmanager
def started(process: Any) -> Iterator[Any]:
    """Start ``process``; on leaving, reap it (and kill it if it is somehow still running)."""
    process.start()
    try:
        yield process
    finally:
        process.join(30)
        if process.is_alive():  # pragma: no cover - only if the kill failed
            process.kill()
            process.join(5)


def sigkill(process: Any) -> None:
    """SIGKILL the child (``kill -9``: no cleanup runs) unless it already exited."""
    if process.is_alive():
        assert process.pid is not None
        os.kill(process.pid, signal.SIGKILL)
