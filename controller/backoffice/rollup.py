"""月度考核汇总: one row per staff member for a month, scored with the hall's `[assessment]` table.

"日登记、月公布" (002 制度10 第八条). The figures come from the hall's own records, read-only:

- **late / early leave** (迟到 / 早退) per session, from window logins as the attendance report
  (`hall_reports.attendance`) judges them, with the minutes of each; sessions without any
  login are counted apart and not scored (the controller does not know who was on leave);
- **absence from the post** (脱岗), from the window events, so it works whichever way a pause
  ends: a pause ends when the window resumes, closes, calls a ticket, or someone covers it
  (B-post login, any `*cover*` event at the window, or any event there naming other staff).
  A pause is an absence when its minutes in opening hours pass the pause limit (001 4.2.2:
  15 minutes); a window logged out and left closed without cover until its staff member logs
  in again within the same session is an absence of the uncovered minutes. Leaving for the
  rest of a session is early leave instead.
- **overtime** (延时服务) as the overtime register counts it;
- **verified bad reviews and complaints** (经核实: cases judged justified), by the month the
  case was opened; **out-of-order calls** (`ticket_called` with `out_of_order`), by the staff
  member logged in at the calling window; **satisfaction** over the month's real evaluations.

Scoring is `controller.core.assessment.score`. JSON keys are English; the CSV and Excel files
carry the same rows with Chinese headers (controller.backoffice.export_words).
"""

from __future__ import annotations

import calendar
import datetime as dt
import json
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import sqlite_utils

from controller.backoffice import evaluation_reports as er
from controller.backoffice import hall_reports as hr
from controller.backoffice.case_records import case_from_json
from controller.core.assessment import MonthFigures, score
from controller.core.callbacks import CaseKind
from controller.core.hall import Hall, StaffRole
from controller.core.workdays import WorkCalendar
from controller.store import history

# the kinds of window event that end a pause: staff are back, or someone covers the window
_PAUSE_ENDS = ("window_resumed", "window_closed", "window_opened", "ticket_called")


@dataclass(frozen=True)
class Absence:
    """脱岗: a staff member away from the post, in opening hours."""

    staff: str
    window: int
    start: dt.datetime
    minutes: float
    kind: str  # "pause" (past the limit) or "closed" (logged out, no cover)


def month_span(month: str, today: dt.date) -> tuple[dt.date, dt.date]:
    """The days of "YYYY-MM" up to `today`; ValueError for a month that is not one."""
    first = dt.datetime.strptime(month, "%Y-%m").date()
    last = first.replace(day=calendar.monthrange(first.year, first.month)[1])
    if first > today:
        raise ValueError(f"{month} has not begun")
    return first, min(last, today)


def _overlap(a0: dt.datetime, a1: dt.datetime, b0: dt.datetime, b1: dt.datetime) -> float:
    return max(0.0, (min(a1, b1) - max(a0, b0)).total_seconds() / 60)


def _sessions(hall: Hall, day: dt.date, tz: ZoneInfo) -> list[tuple[dt.datetime, dt.datetime]]:
    return [(dt.datetime.combine(day, s.start, tz), dt.datetime.combine(day, s.end, tz))
            for s in hall.hours_on(day).sessions]


def _in_hours(hall: Hall, tz: ZoneInfo, start: dt.datetime, end: dt.datetime) -> float:
    day = start.astimezone(tz).date()
    return sum(_overlap(start, end, s0, s1) for s0, s1 in _sessions(hall, day, tz))


Pause = tuple[str, int, dt.datetime, dt.datetime]  # staff, window, start, end
Logout = tuple[str, int, dt.datetime]  # staff, window, when


def _pauses_and_logouts(db: sqlite_utils.Database, tz: ZoneInfo, day_from: dt.date,
                        day_to: dt.date, now: dt.datetime) -> tuple[list[Pause], list[Logout]]:
    """Every pause at a window with when it ended (`now` for one still on), and every logout
    that was a member of staff's (not the controller's at the day's end), from the window
    events around those days."""
    lo, hi = day_from - dt.timedelta(days=1), day_to + dt.timedelta(days=2)
    paused: dict[int, tuple[str, dt.datetime]] = {}
    pauses: list[Pause] = []
    logouts: list[Logout] = []
    for e in history.window_events(db, lo.isoformat(), hi.isoformat()):
        at = hr._at(e["at"], tz)
        data = json.loads(e["data"])
        other = data.get("staff") not in (None, paused.get(e["window"], (None,))[0])
        if e["window"] in paused and (e["kind"] in _PAUSE_ENDS or "cover" in e["kind"] or other):
            staff, start = paused.pop(e["window"])
            pauses.append((staff, e["window"], start, at))
        if e["kind"] == "window_paused":
            paused[e["window"]] = (data.get("staff"), at)
        elif e["kind"] == "window_closed" and data.get("reason") != "day_end":
            logouts.append((data.get("staff"), e["window"], at))
    for window, (staff, start) in paused.items():  # still paused: away until now
        pauses.append((staff, window, start, now))
    return pauses, logouts


def absences(db: sqlite_utils.Database, hall: Hall, day_from: dt.date, day_to: dt.date,
             now: dt.datetime) -> list[Absence]:
    """Every absence from the post (see the module's docstring) that began on those days."""
    tz = ZoneInfo(hall.timezone)
    limit = hall.rules.pause_limit_minutes
    logins = hr._logins(db, tz, day_from, day_to)
    pauses, logouts = _pauses_and_logouts(db, tz, day_from, day_to, now)

    out: list[Absence] = []
    for staff, window, start, end in pauses:
        if not day_from <= start.astimezone(tz).date() <= day_to or staff is None:
            continue
        minutes = _in_hours(hall, tz, start, min(end, now))
        if minutes > limit:
            out.append(Absence(staff, window, start, round(minutes, 1), "pause"))
    for staff, window, at in logouts:
        day = at.astimezone(tz).date()
        session = next(((s0, s1) for s0, s1 in _sessions(hall, day, tz) if s0 <= at < s1), None)
        if staff is None or session is None or not day_from <= day <= day_to:
            continue
        back = min((x.start for x in logins if x.staff == staff and x.start > at), default=None)
        if back is None or back >= session[1]:
            continue  # gone for the rest of the session: early leave, not an absence
        end = min(back, now)
        covered = sum(_overlap(at, end, x.start, x.end) for x in logins
                      if x.window == window and x.staff != staff)
        minutes = _overlap(at, end, *session) - covered
        if minutes >= 1:
            out.append(Absence(staff, window, at, round(minutes, 1), "closed"))
    return sorted(out, key=lambda a: (a.start, a.staff))


def _cases(db: sqlite_utils.Database, month: str) -> dict[str, dict[CaseKind, int]]:
    """Verified (justified) bad reviews and complaints per staff member, by opening month."""
    counts: dict[str, dict[CaseKind, int]] = {}
    if not history.has_cases(db):
        return counts
    for body in history.staff_cases_of_month(db, month):
        case = case_from_json(body)
        if case.justified is True and case.staff_id:
            mine = counts.setdefault(case.staff_id, {})
            mine[case.kind] = mine.get(case.kind, 0) + 1
    return counts


def _out_of_order(db: sqlite_utils.Database, hall: Hall, day_from: dt.date,
                  day_to: dt.date) -> dict[str, int]:
    """Out-of-order calls per staff member logged in at the calling window."""
    tz = ZoneInfo(hall.timezone)
    logins = hr._logins(db, tz, day_from, day_to)
    lo, hi = day_from - dt.timedelta(days=1), day_to + dt.timedelta(days=2)
    counts: dict[str, int] = {}
    for e in history.out_of_order_calls(db, lo.isoformat(), hi.isoformat()):
        if not json.loads(e["data"]).get("out_of_order"):
            continue
        at = hr._at(e["at"], tz)
        if not day_from <= at.astimezone(tz).date() <= day_to:
            continue
        who = next((x.staff for x in logins if x.window == e["window"] and x.start <= at < x.end), None)
        if who is not None:
            counts[who] = counts.get(who, 0) + 1
    return counts


def monthly_rollup(db: sqlite_utils.Database, hall: Hall, month: str, now: dt.datetime,
                   workdays: WorkCalendar | None = None) -> list[dict[str, Any]]:
    """One row per staff member (window staff, and anyone else the month's records name)."""
    table = hall.assessment
    tz = ZoneInfo(hall.timezone)
    day_from, day_to = month_span(month, now.astimezone(tz).date())
    late: dict[str, list[float]] = {}
    early: dict[str, list[float]] = {}
    unattended: dict[str, int] = {}
    for row in hr.attendance(db, hall, day_from, day_to, table.tolerance_minutes, workdays, now):
        s = row["staff"]
        start = dt.datetime.combine(dt.date.fromisoformat(row["day"]),
                                    dt.time.fromisoformat(row["session_start"]), tz)
        end = dt.datetime.combine(start.date(), dt.time.fromisoformat(row["session_end"]), tz)
        if row["absent"]:
            unattended[s] = unattended.get(s, 0) + 1
        if row["late"]:
            late.setdefault(s, []).append(
                round((dt.datetime.fromisoformat(row["first_login"]) - start).total_seconds() / 60, 1))
        if row["early_leave"] and row["last_logout"]:
            early.setdefault(s, []).append(
                round((end - dt.datetime.fromisoformat(row["last_logout"])).total_seconds() / 60, 1))
    away: dict[str, list[float]] = {}
    for a in absences(db, hall, day_from, day_to, now):
        away.setdefault(a.staff, []).append(a.minutes)
    overtime: dict[str, list[float]] = {}
    for r in hr.overtime_register(db, hall, day_from, day_to):
        overtime.setdefault(r["staff"], []).append(r["minutes_past_closing"])
    cases = _cases(db, month)
    calls = _out_of_order(db, hall, day_from, day_to)
    graded = {r["staff"]: r for r in er.evaluation_report(db, day_from, day_to, "staff", now)}

    named = {s.id for s in hall.staff.values() if s.role is StaffRole.STAFF}
    named |= {*late, *early, *away, *overtime, *cases, *calls}
    named |= {k for k, r in graded.items() if r["evaluated"]}
    rows: list[dict[str, Any]] = []
    for sid in sorted(k for k in named if k):
        g = graded.get(sid, {})
        evaluated = g.get("evaluated", 0)
        satisfied = sum(g.get(grade, 0) for grade in er.SATISFIED)
        mine = cases.get(sid, {})
        figures = MonthFigures(
            late_minutes=tuple(late.get(sid, ())), early_minutes=tuple(early.get(sid, ())),
            absences=tuple(away.get(sid, ())), bad_reviews=mine.get(CaseKind.BAD_REVIEW, 0),
            complaints=mine.get(CaseKind.COMPLAINT, 0), out_of_order_calls=calls.get(sid, 0),
            satisfied=satisfied, evaluated=evaluated)
        staff = hall.staff.get(sid)
        rows.append({
            "month": month, "staff": sid, "name": staff.name if staff else None,
            "late": len(figures.late_minutes), "late_minutes": round(sum(figures.late_minutes), 1),
            "early_leave": len(figures.early_minutes),
            "early_minutes": round(sum(figures.early_minutes), 1),
            "sessions_without_login": unattended.get(sid, 0),
            "absences": len(figures.absences), "absence_minutes": round(sum(figures.absences), 1),
            "overtime_days": len(overtime.get(sid, ())),
            "overtime_minutes": round(sum(overtime.get(sid, ())), 1),
            "bad_reviews": figures.bad_reviews, "complaints": figures.complaints,
            "out_of_order_calls": figures.out_of_order_calls,
            "evaluated": evaluated,
            "satisfaction_rate": round(satisfied / evaluated, 4) if evaluated else None,
            **score(figures, table),
        })
    return rows

