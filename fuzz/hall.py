"""The controller the API fuzzing runs against: the API tests' own (sim.served), on a loopback port."""

from __future__ import annotations

import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import httpx

from controller.runtime.clock import ManualClock
from sim.halls import access_hall, at
from sim.served import RunningHall, running_hall


@contextmanager
def fuzzed_hall() -> Iterator[tuple[str, dict[str, Callable[[], dict[str, str]]]]]:
    """(base URL, identities): the access hall at 09:00 on a Monday, three tickets taken, one called."""
    hall = access_hall()
    clock = ManualClock(at("09:00"))
    with tempfile.TemporaryDirectory(prefix="fuzz-api-") as tmp, running_hall(hall, Path(tmp), clock) as running:
        with running.client() as c:
            for service in ("A", "B", "A"):
                c.post("/api/v1/tickets", json={"service": service}).raise_for_status()
            c.post("/api/v1/windows/1/call", headers=running.login("s1", 1)).raise_for_status()

        def login(staff_id: str, window: int | None) -> Callable[[], dict[str, str]]:
            return lambda: _login(running, clock, hall.rules.login_failure_minutes, staff_id, window)

        yield running.url, {
            "no token": dict,
            "staff s1": login("s1", 1),
            "supervisor": login("boss", None),
            "admin": login("admin", None),
        }


def _login(running: RunningHall, clock: ManualClock, lockout_minutes: int, staff_id: str,
           window: int | None) -> dict[str, str]:
    """Log in; when the fuzzed logins (wrong PINs from 127.0.0.1) have locked the address out,
    let the lockout pass on the hall's clock first: the rate limit stays on and is fuzzed too."""
    try:
        return running.login(staff_id, window)
    except httpx.HTTPStatusError as e:
        if e.response.status_code != 429:
            raise
    clock.advance(minutes=lockout_minutes + 1)
    return running.login(staff_id, window)
