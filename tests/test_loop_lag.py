"""The event-loop lag monitor: a handler that holds the loop shows in /health, and an old
stall leaves the recent figure once it is past."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
import time

import httpx

from controller.runtime.clock import ShiftedClock
from controller.web.loop_lag import LoopLag
from tests.halls import at, small_hall
from tests.server import running_hall


def test_a_stall_is_kept_as_the_worst_and_leaves_the_recent_window():
    lag = LoopLag(recent=5, clock=lambda: 100.0)
    lag.record(0.001, 100.2)
    lag.record(0.250, 101.5)
    lag.record(0.002, 103.0)
    assert lag.max_s == 0.250
    assert lag.recent_max_s(now=105.9) == 0.250
    # six seconds on, only the small lateness since is recent; the worst stays the worst
    lag.record(0.003, 107.0)
    assert lag.recent_max_s(now=107.0) == 0.003
    assert lag.json()["max"] == 250.0


def test_a_blocked_loop_is_measured_by_how_late_the_timer_fires():
    async def hall_day() -> LoopLag:
        lag = LoopLag()
        task = asyncio.create_task(lag.run())
        await asyncio.sleep(0.05)
        time.sleep(0.12)  # a handler doing a query on the loop
        await asyncio.sleep(0.05)
        task.cancel()
        return lag

    # in a thread of its own: the browser tests' session keeps an event loop on this one
    with ThreadPoolExecutor(1) as pool:
        lag = pool.submit(asyncio.run, hall_day()).result()
    assert 0.09 <= lag.max_s < 0.5
    assert lag.samples >= 5


def test_health_reports_the_loop_lag(tmp_path):
    hall = small_hall()
    with running_hall(hall, tmp_path, ShiftedClock(hall.timezone, at("09:00"))) as running:
        time.sleep(0.2)
        body = httpx.get(f"{running.url}/api/v1/health", timeout=5).json()
    lag = body["loop_lag_ms"]
    assert lag["timer"] == 10.0
    assert lag["samples"] >= 5
    assert 0 <= lag["max_last_5s"] <= lag["max"]
