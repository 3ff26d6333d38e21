"""Figures the hall reads back from its own records."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlite_utils

from controller.store import history


def estimate_accuracy(db: sqlite_utils.Database, day: dt.date) -> dict[str, Any]:
    """How well the waits printed on tickets matched the waits citizens had.

    Over the tickets of `day` that were called: the mean absolute error of the
    printed P50 against the actual wait (issue to first call), and how often
    the actual wait fell inside the printed P10-P90 range.
    """
    rows = list(history.estimated_waits(db, day.isoformat()))
    by_service: dict[str, list[tuple[float, float, float, float]]] = {}
    for r in rows:
        waited = (dt.datetime.fromisoformat(r["called_at"])
                  - dt.datetime.fromisoformat(r["issued_at"])).total_seconds() / 60
        by_service.setdefault(r["service"], []).append(
            (waited, r["eta_p10"], r["eta_p50"], r["eta_p90"]))

    def figures(samples: list[tuple[float, float, float, float]]) -> dict[str, Any]:
        n = len(samples)
        return {
            "tickets": n,
            "mean_wait_minutes": round(sum(s[0] for s in samples) / n, 2) if n else None,
            "p50_mean_abs_error_minutes": round(sum(abs(s[0] - s[2]) for s in samples) / n, 2)
            if n else None,
            "inside_p10_p90": round(sum(1 for s in samples if s[1] <= s[0] <= s[3]) / n, 3)
            if n else None,
        }

    every = [s for samples in by_service.values() for s in samples]
    return {"day": day.isoformat(), **figures(every),
            "services": {k: figures(v) for k, v in sorted(by_service.items())}}
