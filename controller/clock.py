"""Clocks the controller can be given. The core never reads the time itself."""

from __future__ import annotations

import datetime as dt
import time
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
