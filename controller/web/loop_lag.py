"""Event-loop lag: how late a 10 ms timer fires on the web server's loop.

Every request, event stream and heartbeat waits while anything holds the loop (a
query, a commit, a lock taken in an `async def`). /health reports the worst lateness
since the start and over the last few seconds, so a benchmark or a hall's monitoring
sees a stalled loop without a profiler.
"""

from __future__ import annotations

import asyncio
import collections
import time
from typing import Callable

INTERVAL_SECONDS = 0.010
RECENT_SECONDS = 5


class LoopLag:
    """The lateness of a timer set every `interval` seconds: the worst since the start and
    the worst over the last `recent` whole seconds (kept as one maximum per second)."""

    def __init__(self, interval: float = INTERVAL_SECONDS, recent: int = RECENT_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self.recent = recent
        self.clock = clock
        self.max_s = 0.0
        self.samples = 0
        self._seconds: collections.deque[list[float]] = collections.deque()  # [second, max]

    def record(self, late_s: float, now: float) -> None:
        self.samples += 1
        self.max_s = max(self.max_s, late_s)
        second = float(int(now))
        if self._seconds and self._seconds[-1][0] == second:
            self._seconds[-1][1] = max(self._seconds[-1][1], late_s)
        else:
            self._seconds.append([second, late_s])
        while self._seconds and self._seconds[0][0] <= second - self.recent:
            self._seconds.popleft()

    def recent_max_s(self, now: float | None = None) -> float:
        second = int(self.clock() if now is None else now)
        return max((m for s, m in self._seconds if s > second - self.recent), default=0.0)

    def json(self) -> dict[str, float | int]:
        return {"max": round(self.max_s * 1000, 2),
                f"max_last_{self.recent}s": round(self.recent_max_s() * 1000, 2),
                "timer": round(self.interval * 1000, 2), "samples": self.samples}

    async def run(self) -> None:
        """Runs for the app's life (cancelled at shutdown)."""
        while True:
            due = self.clock() + self.interval
            await asyncio.sleep(self.interval)
            now = self.clock()
            self.record(max(0.0, now - due), now)
