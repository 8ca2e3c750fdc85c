"""Schedule triggers on the local runtime: one thread fires every schedule's ticks.

* Each tick becomes a :class:`~lakekit.events.Schedule` event whose ``scheduled_time`` is the
  tick and whose ``id`` is derived from the function and the tick
  (:func:`schedule_event_id`), so a tick delivered twice (a retry, a redelivery after a crash)
  carries the same id and a handler can dedupe on it.
* Ticks are invoked asynchronously (retries, backoff and dead letters as for any async
  invocation); a slow handler does not delay the next tick, the runtime's concurrency limit
  queues it.
* **Missed ticks**: if the server was stopped (or the machine slept) when ticks were due, one
  catch-up tick is fired at start (or on waking) for the **latest** missed tick; earlier
  missed ticks are skipped (coalesced), since running a job N times in a row to catch up is
  rarely what a schedule means. ``catch_up=False`` skips them all. The state file records,
  per function and expression, the latest tick whose invocation finished; a tick whose
  invocation had not finished when the server died counts as missed and is fired again.
  The first start of a schedule records "now" as its starting point (nothing to catch up).
* The clock is injectable (:class:`~lakekit.triggers.schedule.Clock`), so tests drive the
  scheduler with a :class:`~lakekit.triggers.schedule.ManualClock`.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from lakekit.events import Schedule
from lakekit.triggers.model import ScheduleTrigger, TriggerBinding
from lakekit.triggers.schedule import Clock, Cron, Rate, parse_schedule, sleep_until
from lakekit.triggers.state import TriggerState

__all__ = ["Scheduler", "schedule_event_id"]

_log = logging.getLogger("lakekit.triggers.schedules")
_MAX_SLEEP = 1.0  # re-read the clock at least this often (a wall clock can jump)

SubmitTick = Callable[[str, Schedule], "Future[Any] | None"]


def schedule_event_id(function: str, tick: datetime) -> str:
    """The id of ``function``'s event for the tick scheduled at ``tick``."""
    text = f"schedule\x00{function}\x00{tick.isoformat()}"
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


@dataclass(slots=True)
class _Entry:
    function: str
    trigger: ScheduleTrigger
    schedule: Rate | Cron
    next_tick: datetime | None = None


class Scheduler:
    """Fires the schedule triggers' ticks (see the module docstring).

    Args:
        bindings: the schedule triggers to serve.
        submit: hands a tick's event to the runtime and returns its future.
        state: where finished ticks are recorded.
        clock: the time source (wall clock by default).
        catch_up: fire the latest missed tick at start / on waking (default) or skip it.
    """

    def __init__(
        self,
        bindings: Sequence[TriggerBinding],
        submit: SubmitTick,
        state: TriggerState,
        clock: Clock,
        *,
        catch_up: bool = True,
    ) -> None:
        self._entries = []
        for binding in bindings:
            assert isinstance(binding.trigger, ScheduleTrigger)
            parsed = parse_schedule(binding.trigger.expression)
            self._entries.append(_Entry(binding.function, binding.trigger, parsed))
        self._submit = submit
        self._state = state
        self._clock = clock
        self._catch_up = catch_up
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._inflight: set[Future[Any]] = set()
        self._cond = threading.Condition()
        self.fired: deque[tuple[str, datetime]] = deque(maxlen=1000)
        """``(function, tick)`` of the last 1,000 ticks fired, in order (tests, status)."""

    def __repr__(self) -> str:
        return f"Scheduler({len(self._entries)} schedules, clock={self._clock!r})"

    def start(self) -> None:
        """Fire catch-up ticks, then start the timer thread."""
        now = self._clock.now()
        for entry in self._entries:
            expression = entry.trigger.expression
            done = self._state.schedule_done(entry.function, expression)
            latest = entry.schedule.latest_at_or_before(now)
            if done is None:
                # First start: nothing was missed; remember where this schedule began.
                self._state.set_schedule_done(entry.function, expression, latest or now)
            elif self._catch_up and latest is not None and latest > done:
                _log.info(
                    "schedule %s of %r: catching up the tick of %s (missed while stopped)",
                    expression,
                    entry.function,
                    latest.isoformat(),
                )
                self._fire(entry, latest)
            entry.next_tick = entry.schedule.next_after(now)
        self._thread = threading.Thread(
            target=self._run, name="lakekit-triggers-schedules", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float | None = None) -> bool:
        """Fire no more ticks; wait up to ``timeout`` seconds for ticks in flight. Returns
        whether they all finished (unfinished ones are caught up at the next start)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        with self._cond:
            return self._cond.wait_for(lambda: not self._inflight, timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            due = [e.next_tick for e in self._entries if e.next_tick is not None]
            if not due:
                self._stop.wait(_MAX_SLEEP)
                continue
            if sleep_until(self._clock, self._stop, min(due), _MAX_SLEEP):
                return
            now = self._clock.now()
            for entry in self._entries:
                if entry.next_tick is None or entry.next_tick > now:
                    continue
                latest = entry.schedule.latest_at_or_before(now) or entry.next_tick
                if latest > entry.next_tick:
                    _log.warning(
                        "schedule %s of %r: ticks from %s to %s were due at once (the machine "
                        "slept or the clock jumped); %s",
                        entry.trigger.expression,
                        entry.function,
                        entry.next_tick.isoformat(),
                        latest.isoformat(),
                        "firing the latest" if self._catch_up else "skipping them",
                    )
                if latest == entry.next_tick or self._catch_up:
                    try:
                        self._fire(entry, latest)
                    except Exception:
                        _log.exception("could not fire %s of %r", entry.trigger, entry.function)
                entry.next_tick = entry.schedule.next_after(now)

    def _fire(self, entry: _Entry, tick: datetime) -> None:
        event = Schedule(
            id=schedule_event_id(entry.function, tick),
            time=self._clock.now(),
            name=entry.function,
            expression=entry.trigger.expression,
            scheduled_time=tick,
        )
        future = self._submit(entry.function, event)
        self.fired.append((entry.function, tick))
        if future is None:
            return
        with self._cond:
            self._inflight.add(future)
        future.add_done_callback(lambda f: self._finished(f, entry, tick))

    def _finished(self, future: Future[Any], entry: _Entry, tick: datetime) -> None:
        try:
            self._state.set_schedule_done(entry.function, entry.trigger.expression, tick)
        except Exception:
            _log.exception("could not record the tick %s of %r", tick, entry.function)
        finally:
            with self._cond:
                self._inflight.discard(future)
                self._cond.notify_all()
