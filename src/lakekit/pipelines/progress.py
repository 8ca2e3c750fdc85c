"""A one-line progress display for pipeline runs: rows, bytes, files and rows/s on stderr.

It shows only on an interactive terminal and never when the ``CI`` environment variable is set,
so logs and CI output stay clean. No dependency: it rewrites one line with ``\\r``.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import TextIO

__all__ = ["Progress", "progress_enabled"]


def progress_enabled(stream: TextIO) -> bool:
    """True when ``stream`` is a terminal and ``CI`` is not set."""
    if os.environ.get("CI"):
        return False
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty()) if callable(isatty) else False
    except (OSError, ValueError):  # a closed or detached stream
        return False


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


class Progress:
    """Counts a run's progress and, when enabled, redraws one status line at most every
    ``interval`` seconds. ``close()`` prints the final line and a newline."""

    def __init__(
        self,
        label: str,
        *,
        stream: TextIO | None = None,
        enabled: bool | None = None,
        interval: float = 0.2,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label = label
        self._stream = stream if stream is not None else sys.stderr
        self.enabled = progress_enabled(self._stream) if enabled is None else enabled
        self._interval = interval
        self._clock = clock
        self._started = clock()
        self._last_draw: float | None = None
        self._width = 0
        self.rows = 0
        self.bytes = 0
        self.files = 0

    def update(self, *, rows: int = 0, bytes: int = 0, files: int = 0) -> None:
        """Add to the counters; redraw if enabled and the interval has passed."""
        self.rows += rows
        self.bytes += bytes
        self.files += files
        if not self.enabled:
            return
        now = self._clock()
        if self._last_draw is None or now - self._last_draw >= self._interval:
            self._draw(now)

    def line(self, now: float | None = None) -> str:
        """The status line for the current counters."""
        elapsed = (self._clock() if now is None else now) - self._started
        rate = self.rows / elapsed if elapsed >= 0.001 else 0.0
        return (
            f"{self.label}: {self.rows:,} rows, {_size(self.bytes)}, {self.files:,} files, "
            f"{rate:,.0f} rows/s"
        )

    def _draw(self, now: float) -> None:
        text = self.line(now)
        pad = " " * max(self._width - len(text), 0)
        self._width = len(text)
        self._stream.write(f"\r{text}{pad}")
        self._stream.flush()
        self._last_draw = now

    def close(self) -> None:
        """Draw the final counters and end the line (only if enabled)."""
        if self.enabled:
            self._draw(self._clock())
            self._stream.write("\n")
            self._stream.flush()
            self.enabled = False
