"""The wait estimate printed on a ticket (预计等待时间, DB50/T 1603-2024 5.3.4.2).

Baseline model: with `s` windows serving and every one busy, windows free up
at rate s/μ (μ the mean service time), so the wait for the k-th departure is
Erlang(k, s/μ). Percentiles use the Wilson–Hilferty approximation of the
gamma quantile, which needs no numeric library.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

_Z10 = -1.2815516
_Z90 = 1.2815516


@dataclass(frozen=True)
class WaitEstimate:
    p10: float
    p50: float
    p90: float

    def to_json(self) -> dict[str, float]:
        return {"p10": self.p10, "p50": self.p50, "p90": self.p90}


def _gamma_quantile(k: int, theta: float, z: float) -> float:
    return max(0.0, k * theta * (1 - 1 / (9 * k) + z / (3 * math.sqrt(k))) ** 3)


def estimate_wait(people_ahead: int, serving_windows: int, idle_windows: int,
                  mean_minutes: float) -> WaitEstimate:
    """Minutes until a new ticket is called, as P10/P50/P90."""
    departures = people_ahead + 1 - idle_windows
    if departures <= 0:
        return WaitEstimate(0.0, 0.0, 0.0)
    theta = mean_minutes / max(serving_windows, 1)
    return WaitEstimate(*(round(_gamma_quantile(departures, theta, z), 1)
                          for z in (_Z10, 0.0, _Z90)))
