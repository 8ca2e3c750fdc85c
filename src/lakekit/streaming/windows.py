"""Window specifications and event-time durations.

Three kinds of event-time windows, all half-open intervals ``[start, end)`` in UTC:

* :class:`Tumbling` ``(size)``: fixed, non-overlapping windows; each record is in exactly one.
* :class:`Hopping` ``(size, every)``: fixed windows of ``size`` starting every ``every``; a
  record is in every window that contains it (``ceil(size / every)`` of them when ``every``
  divides ``size``). ``Hopping(size, every=size)`` is ``Tumbling(size)``.
* :class:`Session` ``(gap)``: per key, records less than ``gap`` apart belong to one session,
  ``[first event, last event + gap)``; a record that bridges two sessions merges them.

Fixed windows are aligned to the Unix epoch plus ``offset`` (``Tumbling("1d", offset="5h")``
gives days starting at 05:00 UTC). Boundaries are exact integer arithmetic on microseconds: a
record at exactly ``end`` belongs to the next window.

Durations are :class:`datetime.timedelta`, a number of seconds, or a string of one or more
``<number><unit>`` parts with units ``us``, ``ms``, ``s``, ``m``, ``h``, ``d``: ``"5m"``,
``"1h30m"``, ``"250ms"``, ``"1.5s"``.
"""

from __future__ import annotations

import math
import re
from abc import ABC, abstractmethod
from datetime import timedelta
from typing import Any, ClassVar

from lakekit.errors import ConfigurationError

__all__ = ["Duration", "Hopping", "Session", "Tumbling", "WindowSpec", "parse_duration"]

Duration = str | int | float | timedelta
"""A duration: a ``timedelta``, seconds, or a string such as ``"5m"`` or ``"1h30m"``."""

_UNIT_US = {"us": 1, "ms": 1_000, "s": 1_000_000, "m": 60_000_000, "h": 3_600_000_000}
_UNIT_US["d"] = 24 * _UNIT_US["h"]
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(us|ms|s|m|h|d)")


def parse_duration(value: Duration, *, what: str = "duration", allow_negative: bool = False) -> int:
    """``value`` in whole microseconds (rounded to the nearest).

    Raises:
        ConfigurationError: not a duration, or negative where that is not allowed.
    """
    if isinstance(value, bool):
        raise ConfigurationError(f"{what} must be a duration such as '5m', got {value!r}")
    if isinstance(value, timedelta):
        micros = value // timedelta(microseconds=1)
    elif isinstance(value, int | float):
        if not math.isfinite(value):
            raise ConfigurationError(f"{what} must be finite, got {value!r}")
        micros = round(value * 1_000_000)
    elif isinstance(value, str):
        text = value.strip().lower()
        sign = -1 if text.startswith("-") else 1
        body = text.lstrip("+-")
        parts = _PART.findall(body)
        if not body or "".join(n + u for n, u in parts) != body:
            raise ConfigurationError(
                f"{what} {value!r} is not a duration: use e.g. '30s', '5m', '1h30m', '250ms' "
                "(units us, ms, s, m, h, d), seconds as a number, or a timedelta"
            )
        micros = sign * round(sum(float(n) * _UNIT_US[u] for n, u in parts))
    else:
        raise ConfigurationError(
            f"{what} must be a str such as '5m', seconds, or a timedelta, got "
            f"{type(value).__name__}"
        )
    if micros < 0 and not allow_negative:
        raise ConfigurationError(f"{what} must not be negative, got {value!r}")
    return int(micros)


def _format_us(micros: int) -> str:
    """A compact spelling of a duration (``300000000`` -> ``"5m"``) for reprs."""
    if micros == 0:
        return "0s"
    sign = "-" if micros < 0 else ""
    rest = abs(micros)
    for unit in ("d", "h", "m", "s", "ms", "us"):
        if rest % _UNIT_US[unit] == 0:
            return f"{sign}{rest // _UNIT_US[unit]}{unit}"
    return f"{sign}{rest}us"  # pragma: no cover - every integer is a multiple of 1us


class WindowSpec(ABC):
    """What windows a job computes: :class:`Tumbling`, :class:`Hopping` or :class:`Session`."""

    kind: ClassVar[str]

    @abstractmethod
    def describe(self) -> str:
        """A stable text identifying the windows (part of a checkpoint's fingerprint)."""

    def __repr__(self) -> str:
        return self.describe()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, WindowSpec) and self.describe() == other.describe()

    def __hash__(self) -> int:
        return hash(self.describe())


class _FixedWindows(WindowSpec):
    """Windows of ``size`` starting every ``hop`` at ``offset + n * hop``."""

    def __init__(self, size: Duration, hop: Duration, offset: Duration) -> None:
        self.size_us = parse_duration(size, what="window size")
        self.hop_us = parse_duration(hop, what="window hop (every)")
        self.offset_us = parse_duration(offset, what="window offset", allow_negative=True)
        if self.size_us <= 0:
            raise ConfigurationError(f"window size must be positive, got {size!r}")
        if self.hop_us <= 0:
            raise ConfigurationError(f"window hop (every) must be positive, got {hop!r}")
        if self.hop_us > self.size_us:
            raise ConfigurationError(
                f"a hopping window's every ({_format_us(self.hop_us)}) must not exceed its size "
                f"({_format_us(self.size_us)}): records between windows would belong to none"
            )
        self.offset_us %= self.hop_us

    @property
    def windows_per_record(self) -> int:
        """The most windows one record can belong to."""
        return -(-self.size_us // self.hop_us)

    def window_start(self, t: int) -> int:
        """The start of the latest window containing ``t`` (microseconds)."""
        return t - (t - self.offset_us) % self.hop_us

    def windows_of(self, t: int) -> list[tuple[int, int]]:
        """Every window ``(start, end)`` containing ``t``, latest first."""
        first = self.window_start(t)
        starts = (first - k * self.hop_us for k in range(self.windows_per_record))
        return [(s, s + self.size_us) for s in starts if s + self.size_us > t]

    def assign(self, t: Any, watermark: int | None) -> tuple[Any, Any, Any]:
        """Assign each row's event time ``t`` (µs) to its open windows, vectorised.

        Returns ``(rows, starts, late)``: ``starts[i]`` is the start of a window containing
        row ``rows[i]`` whose end is after ``watermark`` (``rows`` is None when it is simply
        every row once, in order); ``late`` marks the rows whose windows have all closed
        (None when no row is late).
        """
        import pyarrow as pa
        import pyarrow.compute as pc

        shifted = pc.subtract(t, self.offset_us)
        quotient = pc.divide(shifted, self.hop_us)  # truncates toward zero
        remainder = pc.subtract(shifted, pc.multiply(quotient, self.hop_us))
        remainder = pc.if_else(
            pc.less(remainder, pa.scalar(0, pa.int64())), pc.add(remainder, self.hop_us), remainder
        )
        first = pc.subtract(t, remainder)
        late = None
        if watermark is not None:
            mask = pc.less_equal(pc.add(first, self.size_us), pa.scalar(watermark, pa.int64()))
            if pc.any(mask).as_py():
                late = mask
        if self.windows_per_record == 1 and late is None:
            return None, first, None
        index = pa.array(range(len(t)), pa.int64())
        rows: list[Any] = []
        starts: list[Any] = []
        for k in range(self.windows_per_record):
            start = pc.subtract(first, k * self.hop_us) if k else first
            end = pc.add(start, self.size_us)
            keep = pc.greater(end, t)
            if watermark is not None:
                keep = pc.and_(keep, pc.greater(end, pa.scalar(watermark, pa.int64())))
            rows.append(pc.filter(index, keep))
            starts.append(pc.filter(start, keep))
        return pa.concat_arrays(rows), pa.concat_arrays(starts), late


class Tumbling(_FixedWindows):
    """Fixed-size, non-overlapping windows: ``Tumbling("5m")``.

    Args:
        size: the window length.
        offset: shift of the window boundaries from the Unix epoch (e.g. ``"2m"``: windows
            start at :02, :07, ...). Taken modulo ``size``.

    Raises:
        ConfigurationError: a malformed or non-positive size.
    """

    kind = "tumbling"

    def __init__(self, size: Duration, *, offset: Duration = 0) -> None:
        super().__init__(size, size, offset)

    def describe(self) -> str:
        offset = f", offset={_format_us(self.offset_us)!r}" if self.offset_us else ""
        return f"Tumbling({_format_us(self.size_us)!r}{offset})"


class Hopping(_FixedWindows):
    """Fixed-size windows that overlap: ``Hopping("10m", every="1m")`` (sliding windows).

    A record belongs to every window that contains it, so each record is counted in up to
    ``ceil(size / every)`` windows.

    Args:
        size: the window length.
        every: how often a window starts (the hop); at most ``size``.
        offset: shift of the window starts from the Unix epoch, modulo ``every``.

    Raises:
        ConfigurationError: malformed durations, or ``every`` larger than ``size``.
    """

    kind = "hopping"

    def __init__(self, size: Duration, every: Duration, *, offset: Duration = 0) -> None:
        super().__init__(size, every, offset)

    def describe(self) -> str:
        offset = f", offset={_format_us(self.offset_us)!r}" if self.offset_us else ""
        return f"Hopping({_format_us(self.size_us)!r}, every={_format_us(self.hop_us)!r}{offset})"


class Session(WindowSpec):
    """Per-key activity sessions: ``Session(gap="30m")``.

    A session is ``[first event, last event + gap)``: a record less than ``gap`` after the
    session's last event (or less than ``gap`` before its first) extends it, and a record that
    comes within ``gap`` of two sessions merges them into one. A session closes when the
    watermark passes its end.

    Raises:
        ConfigurationError: a malformed or non-positive gap.
    """

    kind = "session"

    def __init__(self, gap: Duration) -> None:
        self.gap_us = parse_duration(gap, what="session gap")
        if self.gap_us <= 0:
            raise ConfigurationError(f"session gap must be positive, got {gap!r}")

    def describe(self) -> str:
        return f"Session(gap={_format_us(self.gap_us)!r})"
