"""The wait estimate printed on a ticket (预计等待时间, DB50/T 1603-2024 5.3.4.2).

A new ticket waits for the tickets ahead of it to be called: `k` calls of its
service, at the rate its service's tickets are being called. While the service
has a backlog, that rate is read from the hall itself: its calls of the last
20-60 minutes (longer for a slow service), or of the whole session if higher (a
service its windows take only when their earlier services run dry is called in
bursts), each with a few calls' worth of the serving windows' capacity as a
prior (`call_rate`). So the estimate knows about windows shared between
services, pauses, citizens who do not come and staff who take a while to call,
without being told. With a short queue the windows call as fast as tickets come,
and their capacity is used. Before the windows open, the time until they do is
added; a free window calls within a minute or so.

The wait for `k` calls is a gamma distribution: Erlang(k) if calls came as a
Poisson stream at a known rate, widened by `RATE_SPREAD` for the rate itself
moving while the citizen waits (a morning rush, a window pausing). Percentiles
use the Wilson–Hilferty approximation of the gamma quantile, which needs no
numeric library. The model and `RATE_SPREAD` were chosen on the hall-day
simulator's figures (`make bench-hallday`, docs/benchmarks.md "Wait estimates"):
on `big-hall-rush` the queue-length estimate this replaces, (n + 1) x mean /
windows, missed by half as much again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

_Z10 = -1.2815516
_Z90 = 1.2815516
# relative uncertainty of the call rate over a wait: P10-P90 holds about 80% of waits
RATE_SPREAD = 0.15
# a free window calls a new ticket within a minute or so (staff finish a note, press the key)
FREE_WINDOW_MINUTES = (0.0, 0.5, 1.5)
# the calls of a service counted for its rate: those of the last minutes, at least this many
# minutes and long enough for a few calls of a slow service; the windows' capacity counts as
# this many calls more
RATE_WINDOW_MINUTES = 20.0
MAX_RATE_WINDOW_MINUTES = 60.0
PRIOR_CALLS = 4.0


@dataclass(frozen=True)
class WaitEstimate:
    p10: float
    p50: float
    p90: float

    def to_json(self) -> dict[str, float]:
        return {"p10": self.p10, "p50": self.p50, "p90": self.p90}


def wait_range(eta: WaitEstimate) -> tuple[int, int]:
    """The wait as a citizen is told it, in whole minutes: P10 rounded down to P90 rounded up.
    The slip, the kiosk's service buttons and its screen all show this one range."""
    low = math.floor(eta.p10)
    return low, max(math.ceil(eta.p90), low)


def _gamma_quantile(k: float, theta: float, z: float) -> float:
    return max(0.0, k * theta * (1 - 1 / (9 * k) + z / (3 * math.sqrt(k))) ** 3)


def rate_window(capacity: float) -> float:
    """Minutes of calls to count for a service whose windows manage `capacity` calls a minute."""
    return min(MAX_RATE_WINDOW_MINUTES, max(RATE_WINDOW_MINUTES, 6 / max(capacity, 1e-6)))


def call_rate(calls: int, minutes: float, capacity: float) -> float:
    """Calls a minute: `calls` seen over `minutes`, and `PRIOR_CALLS` more at the windows'
    `capacity` (calls a minute they should manage), so a quiet start or a slow service's
    long visit is not read as a stalled queue."""
    return (calls + PRIOR_CALLS) / (minutes + PRIOR_CALLS / max(capacity, 1e-6))


def estimate_wait(people_ahead: int, serving_windows: int, idle_windows: int,
                  mean_minutes: float, rate: float | None = None,
                  delay_minutes: float = 0.0, spread: float = RATE_SPREAD) -> WaitEstimate:
    """Minutes until a new ticket is called, as P10/P50/P90.

    `rate` is the service's calls a minute (default: every serving window busy with
    services of `mean_minutes`); `delay_minutes` passes before any window calls.
    """
    departures = people_ahead + 1 - idle_windows
    if departures <= 0:
        d = delay_minutes
        return WaitEstimate(*(round(d + m, 1) for m in FREE_WINDOW_MINUTES))
    if not rate or rate <= 0:
        rate = max(serving_windows, 1) / mean_minutes
    mean = departures / rate
    cv2 = 1 / departures + spread * spread
    shape, theta = 1 / cv2, mean * cv2
    return WaitEstimate(*(round(delay_minutes + _gamma_quantile(shape, theta, z), 1)
                          for z in (_Z10, 0.0, _Z90)))
