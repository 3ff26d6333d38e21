"""月度考核: the monthly assessment of one staff member, scored with the hall's table.

Pure: the figures come in (minutes late, minutes away, counts), the points go out. The table
is the hall config's `[assessment]`; its defaults are the clauses it cites.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class AssessmentTable:
    """The scoring table of the monthly roll-up (`[assessment]` in the hall config)."""

    # 004 考勤规范 六(二)4: more than 5 minutes after the start is late, before the end early
    tolerance_minutes: int = 5
    # 003 考核 (二)(1): late or early, 1 point; more than 30 minutes, 2 points
    late_early_points: float = 1
    late_early_long_minutes: int = 30
    late_early_long_points: float = 2
    # 004 六(二)4: late or early 4 times or more in a month counts as half a day's absence
    late_early_half_day_count: int = 4
    # 003 考核 (二)(3): away from the post up to 30 minutes, 1 point; up to an hour, 2 points
    absence_short_minutes: int = 30
    absence_short_points: float = 1
    absence_long_points: float = 2
    # 004 六(二)5: late by an hour, or away from the post more than an hour: half a day's
    # absence (旷工半天); 003 (二)(3): a day's absence costs 3 points, so half a day 1.5
    half_day_minutes: int = 60
    half_day_points: float = 1.5
    # 003 考核制度 (5): 1 point per verified bad review, 2 per verified complaint, 10 at most
    bad_review_points: float = 1
    complaint_points: float = 2
    cases_points_cap: float = 10
    # out-of-order calls (插队, 004 行为规范 3) are counted; a hall may charge for them
    out_of_order_points: float = 0
    # 002 考核: satisfaction 100% → 10, ≥90% → 9, ≥80% → 7, below → 5 (percent, points)
    satisfaction_bands: tuple[tuple[int, float], ...] = field(
        default=((100, 10), (90, 9), (80, 7), (0, 5)))


@dataclass(frozen=True)
class MonthFigures:
    """What one staff member's month looked like, before scoring."""

    late_minutes: tuple[float, ...] = ()  # one entry per late session (迟到)
    early_minutes: tuple[float, ...] = ()  # one entry per early leave (早退)
    absences: tuple[float, ...] = ()  # minutes of each absence from the post (脱岗)
    bad_reviews: int = 0  # verified (经核实)
    complaints: int = 0  # verified
    out_of_order_calls: int = 0
    satisfied: int = 0
    evaluated: int = 0


def satisfaction_points(satisfied: int, evaluated: int, table: AssessmentTable) -> float | None:
    """The band the month's satisfaction falls in; None without an evaluation. In whole
    numbers, so 9 of 10 is 90% whatever a float says."""
    if not evaluated:
        return None
    for percent, points in table.satisfaction_bands:
        if satisfied * 100 >= evaluated * percent:
            return points
    return table.satisfaction_bands[-1][1]


def score(f: MonthFigures, table: AssessmentTable) -> dict[str, Any]:
    """The points a month costs, item by item, and its satisfaction points.

    A late arrival or early leave past `half_day_minutes`, and an absence from the post past
    it, is half a day's absence instead of its points; so is the month's
    `late_early_half_day_count`-th late or early, on top of their points.
    """
    half_days = 0
    late_early = 0.0
    for minutes in (*f.late_minutes, *f.early_minutes):
        if minutes > table.half_day_minutes:
            half_days += 1
        elif minutes > table.late_early_long_minutes:
            late_early += table.late_early_long_points
        else:
            late_early += table.late_early_points
    if len(f.late_minutes) + len(f.early_minutes) >= table.late_early_half_day_count:
        half_days += 1
    away = 0.0
    for minutes in f.absences:
        if minutes > table.half_day_minutes:
            half_days += 1
        elif minutes > table.absence_short_minutes:
            away += table.absence_long_points
        else:
            away += table.absence_short_points
    cases = min(f.bad_reviews * table.bad_review_points + f.complaints * table.complaint_points,
                table.cases_points_cap)
    out_of_order = f.out_of_order_calls * table.out_of_order_points
    half_day = half_days * table.half_day_points
    return {
        "late_early_points": _n(late_early),
        "absence_points": _n(away),
        "half_day_absences": half_days,
        "half_day_points": _n(half_day),
        "case_points": _n(cases),
        "out_of_order_points": _n(out_of_order),
        "points_deducted": _n(late_early + away + half_day + cases + out_of_order),
        "satisfaction_points": satisfaction_points(f.satisfied, f.evaluated, table),
    }


def _n(x: float) -> float | int:
    """Whole points as integers, so a table of whole points reads as one."""
    return int(x) if float(x).is_integer() else round(x, 2)
