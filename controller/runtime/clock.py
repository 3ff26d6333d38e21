"""Clocks the controller can be given. The core never reads the time itself."""

from __future__ import annotations

import datetime as dt
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable
from zoneinfo import ZoneInfo


class SystemClock:
    """The hall's wall clock in its own time zone."""

    def __init__(self, tz: str) -> None:
        self.tz = ZoneInfo(tz)

    def __call__(self) -> dt.datetime:
        return dt.datetime.now(self.tz)


class ShiftedClock:
    """Real time, shifted so that it starts at `start`: for demos outside opening hours."""

    def __init__(self, tz: str, start: dt.datetime) -> None:
        self.tz = ZoneInfo(tz)
        self.start = start.replace(tzinfo=self.tz) if start.tzinfo is None else start
        self._t0 = time.monotonic()

    def __call__(self) -> dt.datetime:
        return self.start + dt.timedelta(seconds=time.monotonic() - self._t0)


class ManualClock:
    """A clock that moves only when told to (tests, simulations)."""

    def __init__(self, start: dt.datetime) -> None:
        self.now = start

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> dt.datetime:
        self.now += dt.timedelta(**delta)
        return self.now


# A step back larger than this is a clock fault, reported and recorded; a smaller one (an NTP
# correction) is only waited out: the hall's time stands still until the clock catches up.
CLOCK_FAULT_SECONDS = 60


@dataclass(frozen=True)
class ClockChange:
    """A clock fault found, or its end: what the controller records and the supervisor sees."""

    kind: str  # "clock_fault" or "clock_restored"
    hall_time: dt.datetime  # the hall's time when it was found
    wall_clock: dt.datetime  # what the clock said then
    behind_seconds: int  # how far the clock was behind the hall's time


class HallTime:
    """The hall's time: the wall clock, never earlier than what the hall has recorded.

    A clock set back (a dead RTC battery, a wrong NTP server, a hand-set clock) must not take
    the hall to an earlier day: that would cancel today's queue and reuse today's numbers.
    While the wall clock is behind, the hall's time runs on from the last moment it knew, at
    the pace of the machine's monotonic clock; the fault is reported (`fault`, `take_changes`)
    and ends when the wall clock catches up with the hall's time.

    Callable like the clocks above, and thread-safe. A test's `ManualClock` is reached
    through it: reading or setting an attribute this class lacks (`now`, `advance`) goes
    to the wall clock.
    """

    __slots__ = ("wall", "_lock", "_latest", "_anchor", "_fault", "_changes")

    def __init__(self, wall: Callable[[], dt.datetime], floor: dt.datetime | None = None) -> None:
        self.wall = wall
        self._lock = threading.Lock()
        self._latest = floor  # the latest moment the hall has known
        self._anchor: tuple[dt.datetime, float] | None = None  # while behind: hall, monotonic
        self._fault: ClockChange | None = None
        self._changes: list[ClockChange] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.wall, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in HallTime.__slots__:
            object.__setattr__(self, name, value)
        else:
            setattr(self.wall, name, value)

    @property
    def fault(self) -> ClockChange | None:
        """The fault standing now (its `clock_fault` change), or None."""
        return self._fault

    def take_changes(self) -> list[ClockChange]:
        """Faults found and ended since the last call, oldest first, for the record."""
        with self._lock:
            changes, self._changes = self._changes, []
            return changes

    def __call__(self) -> dt.datetime:
        raw = self.wall()
        limit = dt.timedelta(seconds=CLOCK_FAULT_SECONDS)
        with self._lock:
            latest = self._latest
            if self._anchor is not None:
                at, mono = self._anchor
                held = at + dt.timedelta(seconds=max(time.monotonic() - mono, 0.0))
                if latest is not None:  # always, while behind: the anchor was the latest then
                    held = max(held, latest)
                if raw < held - limit:
                    self._latest = held
                    return held
                self._anchor = self._fault = None  # the clock is right again
                self._changes.append(ClockChange("clock_restored", held, raw,
                                                 _seconds(max(held - raw, dt.timedelta()))))
            elif latest is not None and raw < latest - limit:
                self._fault = ClockChange("clock_fault", latest, raw, _seconds(latest - raw))
                self._anchor = (latest, time.monotonic())
                self._changes.append(self._fault)
                return latest
            now = raw if latest is None else max(raw, latest)
            self._latest = now
            return now


def _seconds(delta: dt.timedelta) -> int:
    return int(delta.total_seconds())
