"""Figures the reports compute alike in the hall and at the district centre: pure, so the
centre (center.reports) gives the same numbers from the same values."""

from __future__ import annotations


def percentile(values: list[float], q: float) -> float | None:
    """The `q` quantile (0..1), linear between the nearest ranks: what a spreadsheet's
    PERCENTILE (PERCENTILE.INC) gives, so a supervisor can check a figure by hand.
    P50 is the median: of 2, 5, 10 and 20 minutes, 7.5."""
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def satisfaction_points(satisfied: int, evaluated: int) -> int | None:
    """Monthly assessment points for `satisfied` of `evaluated` (002 考核): 100% → 10,
    ≥90% → 9, ≥80% → 7, below → 5. In whole numbers: 9 of 10 is 90%, whatever a float says."""
    if not evaluated:
        return None
    if satisfied >= evaluated:
        return 10
    if satisfied * 10 >= evaluated * 9:
        return 9
    return 7 if satisfied * 10 >= evaluated * 8 else 5
