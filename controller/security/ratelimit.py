"""Counting what one source did lately: failed logins per staff id and per address, tickets
per kiosk and per address. Time is an argument (the controller's clock), so tests need no
sleeping.

The counts live in memory: a restart forgets them, which costs an attacker a restart they
cannot cause from outside, and never locks the hall out after a power cut.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
from collections import deque

# So a stream of ever new keys (made-up staff ids) cannot grow memory without end.
MAX_KEYS = 10_000


class RateLimit:
    """At most `limit` hits per key within `window`; `limit` 0 means no limit."""

    def __init__(self, limit: int, window: dt.timedelta) -> None:
        self.limit = limit
        self.window = window
        self._hits: dict[str, deque[dt.datetime]] = {}
        self._lock = threading.Lock()

    def blocked_until(self, key: str, now: dt.datetime) -> dt.datetime | None:
        """When `key` may go on, if it has used up its hits; None when it may now."""
        if not self.limit:
            return None
        with self._lock:
            hits = self._recent(key, now)
            if len(hits) < self.limit:
                return None
            return hits[len(hits) - self.limit] + self.window

    def hit(self, key: str, now: dt.datetime) -> None:
        if not self.limit:
            return
        with self._lock:
            hits = self._recent(key, now)
            if not hits and len(self._hits) >= MAX_KEYS:
                self._forget_stale(now)
            hits.append(now)
            self._hits[key] = hits

    def reserve(self, key: str, now: dt.datetime) -> dt.datetime | None:
        """Take one of `key`'s hits now if it has one left (None), else when it may go on.

        Checking and counting are one step under the lock, so requests arriving together
        cannot all pass a check made before any of them was counted."""
        if not self.limit:
            return None
        with self._lock:
            hits = self._recent(key, now)
            if len(hits) >= self.limit:
                return hits[len(hits) - self.limit] + self.window
            if not hits and len(self._hits) >= MAX_KEYS:
                self._forget_stale(now)
            hits.append(now)
            self._hits[key] = hits
            return None

    def release(self, key: str, at: dt.datetime) -> None:
        """Give back a hit taken by `reserve` at `at` (the request was refused before it issued)."""
        if not self.limit:
            return
        with self._lock:
            hits = self._hits.get(key)
            if hits is None:
                return
            with contextlib.suppress(ValueError):
                hits.remove(at)
            if not hits:
                self._hits.pop(key, None)

    def clear(self, key: str) -> None:
        with self._lock:
            self._hits.pop(key, None)

    def _recent(self, key: str, now: dt.datetime) -> deque[dt.datetime]:
        hits = self._hits.get(key, deque())
        while hits and hits[0] <= now - self.window:
            hits.popleft()
        if not hits:
            self._hits.pop(key, None)
        return hits

    def _forget_stale(self, now: dt.datetime) -> None:
        for key in list(self._hits):
            self._recent(key, now)
        while len(self._hits) >= MAX_KEYS:  # all fresh: the oldest key goes
            oldest = min(self._hits, key=lambda k: self._hits[k][-1])
            del self._hits[oldest]


def wait_text(until: dt.datetime, now: dt.datetime) -> str:
    """请于 09:05 后再试: when, in hall time, and roughly how long."""
    seconds = max(1, int((until - now).total_seconds() + 0.999))
    span = f"{seconds} 秒" if seconds < 120 else f"{(seconds + 59) // 60} 分钟"
    return f"请于 {until:%H:%M:%S} 后再试（约 {span}）"
