"""Schedule expressions: ``rate(...)`` and AWS-style ``cron(...)``, and when they fire (UTC).

Accepted expressions (the EventBridge syntax, so a schedule deploys unchanged later):

* ``rate(N unit)``: every N minutes, hours or days; ``unit`` is ``minute``/``hour``/``day`` when
  N is 1 and ``minutes``/``hours``/``days`` otherwise (as EventBridge requires). Ticks are
  anchored to the Unix epoch: ``rate(5 minutes)`` fires at :00, :05, :10 ... UTC and
  ``rate(1 day)`` at midnight UTC, so a restart never shifts the phase and every tick has a
  stable scheduled time. ``rate(N second|seconds)`` is a **local extension** for development
  and tests (EventBridge's minimum is one minute; a cloud deployment refuses it).
* ``cron(minutes hours day-of-month month day-of-week year)``: the six AWS fields, evaluated in
  UTC. Fields take ``*``, numbers, ``a-b`` ranges, ``,`` lists and ``/`` steps (``*/15``,
  ``5/10``, ``10-30/5``); months ``1-12`` or ``JAN-DEC``; days of week ``1-7`` or ``SUN-SAT``
  (**1 is Sunday**, as in AWS); years 1970-2199. Exactly one of day-of-month and day-of-week
  is ``?``. Day-of-month also takes ``L`` (last day of the month), ``L-n`` (n days before it)
  and ``nW`` (the weekday nearest day n, within the month); day-of-week takes ``L`` (Saturday,
  the last day of the week), ``nL`` (the last day n of the month, e.g. ``6L`` = last Friday)
  and ``n#k`` (the k-th day n of the month, e.g. ``2#1`` = first Monday).

Standard 5-field Unix cron (``0 3 * * *``) is refused with a message showing the AWS spelling:
its day-of-week numbering (0 = Sunday) and its day-of-month/day-of-week OR rule differ, and
silently reading one as the other would fire on the wrong days.

A :class:`Clock` supplies "now" and waiting to the scheduler, so tests can drive it with a
:class:`ManualClock`.
"""

from __future__ import annotations

import calendar
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from lakekit.errors import InvalidInputError

__all__ = [
    "Clock",
    "Cron",
    "ManualClock",
    "Rate",
    "Schedule",
    "SystemClock",
    "parse_schedule",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MINUTE = timedelta(minutes=1)
_MAX_YEAR = 2199
_UNITS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
_RATE = re.compile(r"rate\(\s*(\d+)\s+([a-z]+)\s*\)", re.IGNORECASE)
_CRON = re.compile(r"cron\((.*)\)", re.IGNORECASE | re.DOTALL)
_MONTHS = {
    name: i
    for i, name in enumerate(
        ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"), 1
    )
}
_DAYS = {"SUN": 1, "MON": 2, "TUE": 3, "WED": 4, "THU": 5, "FRI": 6, "SAT": 7}


class Schedule(Protocol):
    """A parsed schedule expression."""

    expression: str

    def next_after(self, moment: datetime) -> datetime | None:
        """The first tick strictly after ``moment`` (UTC), or None if there is none."""
        ...

    def latest_at_or_before(self, moment: datetime) -> datetime | None:
        """The last tick at or before ``moment`` (UTC), or None if there is none."""
        ...


def parse_schedule(expression: str) -> Rate | Cron:
    """Parse a ``rate(...)`` or ``cron(...)`` expression.

    Raises:
        InvalidInputError: the expression is malformed; the message says what to fix.
    """
    if not isinstance(expression, str):
        raise InvalidInputError(f"schedule expression must be a str, got {type(expression)}")
    text = " ".join(expression.split())
    if text.lower().startswith("rate("):
        return Rate.parse(text)
    if text.lower().startswith("cron("):
        return Cron.parse(text)
    raise InvalidInputError(
        f"schedule {expression!r} must be 'rate(N unit)' (e.g. 'rate(5 minutes)') or "
        "'cron(min hour day-of-month month day-of-week year)' (e.g. 'cron(0 3 * * ? *)')"
    )


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise InvalidInputError("schedule times must be timezone-aware (UTC)")
    return moment.astimezone(UTC)


# -- rate -----------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Rate:
    """``rate(N unit)``: a tick every ``seconds`` seconds, anchored to the Unix epoch."""

    expression: str
    seconds: int

    @classmethod
    def parse(cls, text: str) -> Rate:
        """Raises: InvalidInputError for a malformed rate."""
        match = _RATE.fullmatch(text)
        if match is None:
            raise InvalidInputError(
                f"malformed rate {text!r}: use 'rate(N unit)' with unit minute(s), hour(s) or "
                "day(s), e.g. 'rate(1 hour)' or 'rate(15 minutes)'"
            )
        value, unit = int(match.group(1)), match.group(2).lower()
        singular = unit.removesuffix("s")
        if singular not in _UNITS:
            raise InvalidInputError(
                f"rate {text!r}: unknown unit {unit!r}; use minute(s), hour(s) or day(s)"
            )
        if value < 1:
            raise InvalidInputError(f"rate {text!r}: the value must be a positive whole number")
        if (value == 1) != (unit == singular):
            right = singular if value == 1 else singular + "s"
            raise InvalidInputError(
                f"rate {text!r}: write 'rate({value} {right})' (singular unit for 1, plural "
                "otherwise, as EventBridge requires)"
            )
        return cls(expression=f"rate({value} {unit})", seconds=value * _UNITS[singular])

    @property
    def period(self) -> timedelta:
        return timedelta(seconds=self.seconds)

    def next_after(self, moment: datetime) -> datetime:
        """The first tick strictly after ``moment``."""
        micros = _micros(_utc(moment))
        step = self.seconds * 1_000_000
        return _EPOCH + timedelta(microseconds=(micros // step + 1) * step)

    def latest_at_or_before(self, moment: datetime) -> datetime:
        """The last tick at or before ``moment``."""
        micros = _micros(_utc(moment))
        step = self.seconds * 1_000_000
        return _EPOCH + timedelta(microseconds=(micros // step) * step)


def _micros(moment: datetime) -> int:
    delta = moment - _EPOCH
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


# -- cron -----------------------------------------------------------------------------------------
DayRule = Callable[[int, int, int], bool]
"""``(year, month, day) -> bool``."""


@dataclass(frozen=True, slots=True)
class Cron:
    """``cron(minutes hours day-of-month month day-of-week year)``, evaluated in UTC."""

    expression: str
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    months: tuple[int, ...]
    years: tuple[int, ...]
    day_rule: DayRule

    @classmethod
    def parse(cls, text: str) -> Cron:
        """Raises: InvalidInputError for a malformed expression (naming the field)."""
        match = _CRON.fullmatch(text)
        if match is None:
            raise InvalidInputError(f"malformed cron {text!r}: use 'cron(0 3 * * ? *)'")
        fields = match.group(1).split()
        if len(fields) == 5:
            minute, hour, dom, month, dow = fields
            dow_aws = _unix_dow_hint(dow)
            dom_aws, dow_aws = (dom, "?") if dow == "*" else ("?", dow_aws)
            raise InvalidInputError(
                f"cron {text!r} has 5 fields: lakekit takes the 6 AWS fields "
                "(minutes hours day-of-month month day-of-week year, 1 = Sunday) with '?' in "
                f"day-of-month or day-of-week, e.g. 'cron({minute} {hour} {dom_aws} {month} "
                f"{dow_aws} *)'"
            )
        if len(fields) != 6:
            raise InvalidInputError(
                f"cron {text!r} has {len(fields)} fields; it needs 6: minutes hours "
                "day-of-month month day-of-week year, e.g. 'cron(0 3 * * ? *)'"
            )
        minute, hour, dom, month, dow, year = fields
        if (dom == "?") == (dow == "?"):
            raise InvalidInputError(
                f"cron {text!r}: exactly one of day-of-month and day-of-week must be '?' "
                "(e.g. 'cron(0 3 * * ? *)' daily, 'cron(0 3 ? * MON-FRI *)' on weekdays)"
            )
        day_rule = _dom_rule(dom, text) if dow == "?" else _dow_rule(dow, text)
        return cls(
            expression=f"cron({' '.join(fields)})",
            minutes=_values(minute, 0, 59, "minutes", text),
            hours=_values(hour, 0, 23, "hours", text),
            months=_values(month, 1, 12, "month", text, names=_MONTHS),
            years=_values(year, 1970, _MAX_YEAR, "year", text),
            day_rule=day_rule,
        )

    def next_after(self, moment: datetime) -> datetime | None:
        """The first tick strictly after ``moment``, or None (a year list that has passed)."""
        start = _utc(moment).replace(second=0, microsecond=0) + _MINUTE
        return next(self._search(start, forward=True), None)

    def latest_at_or_before(self, moment: datetime) -> datetime | None:
        """The last tick at or before ``moment``, or None (none before 1970)."""
        start = _utc(moment).replace(second=0, microsecond=0)
        return next(self._search(start, forward=False), None)

    def _search(self, start: datetime, *, forward: bool) -> Iterator[datetime]:
        """Ticks from ``start`` (inclusive) on, forwards or backwards, field by field."""

        def order(values: Iterable[int], bound: int, at_bound: bool) -> list[int]:
            if forward:
                return [v for v in values if not at_bound or v >= bound]
            return [v for v in reversed(tuple(values)) if not at_bound or v <= bound]

        for year in order(self.years, start.year, True):
            at_year = year == start.year
            for month in order(self.months, start.month, at_year):
                at_month = at_year and month == start.month
                days = range(1, calendar.monthrange(year, month)[1] + 1)
                for day in order(days, start.day, at_month):
                    if not self.day_rule(year, month, day):
                        continue
                    at_day = at_month and day == start.day
                    for hour in order(self.hours, start.hour, at_day):
                        at_hour = at_day and hour == start.hour
                        for minute in order(self.minutes, start.minute, at_hour):
                            yield datetime(year, month, day, hour, minute, tzinfo=UTC)


def _unix_dow_hint(dow: str) -> str:
    """A 5-field day-of-week rewritten with AWS numbers where that is simple (for the hint)."""
    if re.fullmatch(r"[0-7](-[0-7])?(,[0-7](-[0-7])?)*", dow):
        return re.sub(r"[0-7]", lambda m: str(int(m.group()) % 7 + 1), dow)
    return dow


def _values(
    spec: str, low: int, high: int, field: str, text: str, *, names: dict[str, int] | None = None
) -> tuple[int, ...]:
    """The values a plain field (``*``, lists, ranges, steps, names) selects, sorted."""
    chosen: set[int] = set()
    for part in spec.split(","):
        chosen.update(_part_values(part, low, high, field, text, names=names))
    return tuple(sorted(chosen))


def _part_values(
    part: str, low: int, high: int, field: str, text: str, *, names: dict[str, int] | None
) -> range:
    def number(token: str) -> int:
        upper = token.upper()
        if names is not None and upper in names:
            return names[upper]
        if not token.isdigit():
            raise InvalidInputError(f"cron {text!r}: {field} value {token!r} is not a number")
        value = int(token)
        if not low <= value <= high:
            raise InvalidInputError(f"cron {text!r}: {field} value {value} is outside {low}-{high}")
        return value

    base, slash, step_text = part.partition("/")
    step = 1
    if slash:
        if not step_text.isdigit() or int(step_text) < 1:
            raise InvalidInputError(f"cron {text!r}: {field} step {step_text!r} must be >= 1")
        step = int(step_text)
    if base == "*":
        first, last = low, high
    elif "-" in base:
        left, _, right = base.partition("-")
        first, last = number(left), number(right)
        if first > last:
            raise InvalidInputError(
                f"cron {text!r}: {field} range {base!r} runs backwards; write it as two ranges"
            )
    elif base:
        first = number(base)
        last = high if slash else first
    else:
        raise InvalidInputError(f"cron {text!r}: empty {field} value")
    return range(first, last + 1, step)


def _dom_rule(spec: str, text: str) -> DayRule:
    """Day-of-month: plain values, ``L``, ``L-n`` or ``nW`` (the latter two alone)."""
    upper = spec.upper()
    if upper == "L":
        return lambda y, m, d: d == calendar.monthrange(y, m)[1]
    if upper.startswith("L-"):
        offset = upper[2:]
        if not offset.isdigit() or int(offset) > 30:
            raise InvalidInputError(f"cron {text!r}: day-of-month {spec!r} must be L-0 to L-30")
        back = int(offset)
        return lambda y, m, d: d == calendar.monthrange(y, m)[1] - back
    if upper.endswith("W"):
        day = upper[:-1]
        if not day.isdigit() or not 1 <= int(day) <= 31:
            raise InvalidInputError(
                f"cron {text!r}: day-of-month {spec!r} must be nW with n from 1 to 31"
            )
        target = int(day)
        return lambda y, m, d: d == _nearest_weekday(y, m, target)
    if spec == "*":
        return lambda y, m, d: True
    days = frozenset(_values(spec, 1, 31, "day-of-month", text))
    return lambda y, m, d: d in days


def _nearest_weekday(year: int, month: int, day: int) -> int:
    """The weekday (Mon-Fri) nearest ``day`` without leaving the month (Quartz's ``W``)."""
    last = calendar.monthrange(year, month)[1]
    day = min(day, last)
    weekday = calendar.weekday(year, month, day)  # Monday = 0
    if weekday == 5:  # Saturday -> Friday, or Monday if Friday is in the previous month
        return day - 1 if day > 1 else day + 2
    if weekday == 6:  # Sunday -> Monday, or Friday if Monday is in the next month
        return day + 1 if day < last else day - 2
    return day


def _aws_weekday(year: int, month: int, day: int) -> int:
    """1 = Sunday ... 7 = Saturday."""
    return (calendar.weekday(year, month, day) + 1) % 7 + 1


def _dow_rule(spec: str, text: str) -> DayRule:
    """Day-of-week: plain values (1 = SUN), ``L``, ``nL`` or ``n#k`` (the latter alone)."""
    upper = spec.upper()

    def weekday(token: str) -> int:
        return _values(token, 1, 7, "day-of-week", text, names=_DAYS)[0]

    if upper == "L":
        return lambda y, m, d: _aws_weekday(y, m, d) == 7
    if "#" in upper:
        day_text, _, nth_text = upper.partition("#")
        if not nth_text.isdigit() or not 1 <= int(nth_text) <= 5 or "," in upper:
            raise InvalidInputError(
                f"cron {text!r}: day-of-week {spec!r} must be one 'n#k' with k from 1 to 5, "
                "e.g. '2#1' for the first Monday"
            )
        target, nth = weekday(day_text), int(nth_text)
        return lambda y, m, d: _aws_weekday(y, m, d) == target and (d - 1) // 7 + 1 == nth
    if upper.endswith("L"):
        target = weekday(upper[:-1])
        return lambda y, m, d: (
            _aws_weekday(y, m, d) == target and d + 7 > calendar.monthrange(y, m)[1]
        )
    days = frozenset(_values(spec, 1, 7, "day-of-week", text, names=_DAYS))
    return lambda y, m, d: _aws_weekday(y, m, d) in days


# -- clocks ---------------------------------------------------------------------------------------
class Clock(Protocol):
    """Where the scheduler gets the time and how it waits (swap it in tests)."""

    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...

    def wait(self, stop: threading.Event, seconds: float) -> bool:
        """Wait until ``seconds`` of this clock's time have passed or ``stop`` is set; return
        whether ``stop`` is set."""
        ...


class SystemClock:
    """The wall clock (UTC); waits are real waits, cut short by ``stop``."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def wait(self, stop: threading.Event, seconds: float) -> bool:
        return stop.wait(max(0.0, seconds))

    def __repr__(self) -> str:
        return "SystemClock()"


class ManualClock:
    """A clock that moves only when told to (:meth:`advance`, :meth:`set`): for tests.

    Waiters wake as soon as the clock reaches their target or their ``stop`` is set (checked
    every few milliseconds of real time).
    """

    def __init__(self, start: datetime) -> None:
        self._now = _utc(start)
        self._cond = threading.Condition()

    def now(self) -> datetime:
        with self._cond:
            return self._now

    def advance(self, seconds: float | timedelta) -> datetime:
        """Move the clock forward; returns the new time."""
        delta = seconds if isinstance(seconds, timedelta) else timedelta(seconds=seconds)
        if delta < timedelta(0):
            raise InvalidInputError("a ManualClock only moves forward")
        with self._cond:
            self._now += delta
            self._cond.notify_all()
            return self._now

    def set(self, moment: datetime) -> None:
        """Jump to ``moment`` (forward only)."""
        with self._cond:
            target = _utc(moment)
            if target < self._now:
                raise InvalidInputError("a ManualClock only moves forward")
            self._now = target
            self._cond.notify_all()

    def wait(self, stop: threading.Event, seconds: float) -> bool:
        with self._cond:
            target = self._now + timedelta(seconds=max(0.0, seconds))
            while self._now < target and not stop.is_set():
                self._cond.wait(0.005)
        return stop.is_set()

    def __repr__(self) -> str:
        return f"ManualClock({self.now().isoformat()})"


def sleep_until(clock: Clock, stop: threading.Event, moment: datetime, cap: float) -> bool:
    """Wait until ``moment`` by ``clock`` (at most ``cap`` seconds at a time, so a wall clock
    that jumps is noticed); returns whether ``stop`` is set."""
    remaining = (moment - clock.now()).total_seconds()
    return clock.wait(stop, min(max(0.0, remaining), cap))
