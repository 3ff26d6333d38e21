"""Supervising callback cases: overdue cases, the callback rate the hall must prove (100% of
real-name bad reviews closed), and the monthly assessment points (003 考核制度 (5))."""

from __future__ import annotations

import datetime as dt
from typing import Iterable

from controller.core.callbacks import (
    STATE_ORDER, BAD_REVIEW_POINTS, COMPLAINT_POINTS, MONTHLY_POINTS_CAP, Case, CaseKind, CaseState,
)

_S = CaseState


def _progress(case: Case) -> int:
    state = case.appeal_from if case.state is _S.APPEALED and case.appeal_from else case.state
    return STATE_ORDER.index(state)


def overdue(cases: Iterable[Case], now: dt.datetime) -> list[tuple[Case, str]]:
    """Cases past a deadline, with the deadline's field name.

    For a complaint the first reached call is the 答复 that 第九条(二) asks for within
    the feedback deadline; the formal feedback step follows the resolution.
    A case verified as not justified has nothing to rectify or resolve.
    """
    out: list[tuple[Case, str]] = []
    called_back = STATE_ORDER.index(_S.CALLED_BACK)
    rectified = STATE_ORDER.index(_S.RECTIFIED)
    verified = STATE_ORDER.index(_S.VERIFIED)
    for case in cases:
        p = _progress(case)
        first, second = (("callback_due", "rectify_due") if case.kind is CaseKind.BAD_REVIEW
                         else ("feedback_due", "resolve_due"))
        due = getattr(case, first)
        if due is not None and now > due and p < called_back:
            out.append((case, first))
        due = getattr(case, second)
        done = p >= rectified or (case.justified is False and p >= verified)
        if due is not None and now > due and not done:
            out.append((case, second))
    return out


def callback_rate(cases: Iterable[Case]) -> tuple[int, int, float | None]:
    """(closed, total, rate) over real-name bad reviews; rate None when there are none."""
    real_name = [c for c in cases if c.kind is CaseKind.BAD_REVIEW and c.identity_sealed is not None]
    closed = sum(1 for c in real_name if c.state is _S.CLOSED)
    total = len(real_name)
    return closed, total, (closed / total if total else None)


def assessment_points(cases: Iterable[Case], staff_id: str, month: str) -> int:
    """Points a staff member loses in a month ("YYYY-MM", by the date the case was opened).

    A case under appeal still counts; an upheld appeal marks it not justified.
    """
    points = 0
    for case in cases:
        if case.staff_id != staff_id or case.justified is not True:
            continue
        if case.opened_at.strftime("%Y-%m") != month:
            continue
        points += BAD_REVIEW_POINTS if case.kind is CaseKind.BAD_REVIEW else COMPLAINT_POINTS
    return min(points, MONTHLY_POINTS_CAP)
