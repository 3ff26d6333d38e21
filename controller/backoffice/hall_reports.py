"""The reports page's figures: tickets and waits per service, day, month, staff member or
window; the overtime register (延时服务); and attendance from window logins (考勤).

Read-only queries over the hall database, like `controller.backoffice.evaluation_reports`, whose
`to_csv` and `to_xlsx` write these rows to files too, in the words of `export_words`.
Times are the hall's: stored times carry their offset and are compared as such; the
opening hours of a day are the hall's for that date (`Hall.hours_on`: its weekday's hours, by
the holiday calendar, with the config's dated changes).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import sqlite_utils

from controller.backoffice import day_figures
from controller.backoffice import evaluation_reports as er
from controller.backoffice.day_figures import at_hall_time as _at, minutes as _minutes
from controller.core.figures import percentile
from controller.core.hall import Hall, TimeSpan
from controller.core.hours import closing_time
from controller.core.workdays import WorkCalendar
from controller.store import history

GROUPINGS = ("service", "day", "month", "staff", "window")


def _spread(name: str, values: list[float]) -> dict[str, float | None]:
    def r(v: float | None) -> float | None:
        return round(v, 1) if v is not None else None
    return {f"{name}_mean": r(sum(values) / len(values)) if values else None,
            f"{name}_p50": r(percentile(values, 0.5)),
            f"{name}_p90": r(percentile(values, 0.9))}


def _name(hall: Hall, by: str, key: Any) -> str | None:
    tables: dict[str, dict[Any, Any]] = {"service": hall.services, "window": hall.windows,
                                         "staff": hall.staff}
    item = tables.get(by, {}).get(key)
    return item.name if item is not None else None


def hall_figures(db: sqlite_utils.Database, hall: Hall, day_from: dt.date, day_to: dt.date,
                 by: str, now: dt.datetime | None = None) -> list[dict[str, Any]]:
    """One row per service, day, month, staff member or window over the tickets of
    `day_from` to `day_to` (inclusive); the row's first key is `by`.

    A ticket belongs to one group: the service it ended in (a transferred ticket counts
    under its target), its day, and the window and staff member that last handled it
    (served it, or marked it 过号). Tickets never called (cancelled, or still waiting) have
    no window or staff: they make the row whose key is None.

    - issued, served (finished), no_show (final 过号), cancelled, transferred (at least once);
    - wait minutes, issue to (last) call, over the tickets called: mean, P50, P90;
    - service minutes, call to finish, over the tickets served: mean, P50, P90;
    - evaluated, evaluation_rate, satisfaction_rate and bad_reviews (real-name and anonymous),
      and by staff the satisfaction_points (and assessment_points where the case desk's
      tables exist), all as `evaluation_reports.evaluation_report` counts them. `now` is the
      hall's clock, which that report needs for overdue cases;
    - by staff, out_of_order_calls: numbers they called out of order (叫指定号), each call
      counted, with its reason in the event log.

    Percentiles as `percentile` computes them; minutes to one decimal.
    """
    if by not in GROUPINGS:
        raise ValueError(f"by must be one of {', '.join(GROUPINGS)}, not {by!r}")
    figures = day_figures.span_figures(db, ZoneInfo(hall.timezone), day_from, day_to, by)
    # a group counts if it has tickets, or by staff a call out of order: a call counts
    # against its caller, who may hold no ticket now
    groups = {k: f for k, f in figures.items() if f["issued"] or f["out_of_order_calls"]}
    graded = {r[by]: r for r in er.evaluation_report(db, day_from, day_to, by, now,
                                                     figures=figures)}

    rows: list[dict[str, Any]] = []
    for k in sorted(groups, key=lambda k: (k is None, k if k is not None else 0)):
        f = groups[k]
        grades = graded.get(k, {})
        row: dict[str, Any] = {by: k}
        if by in ("service", "window", "staff"):
            row["name"] = _name(hall, by, k)
        row.update({
            "issued": f["issued"],
            "served": f["served"],
            "no_show": f["no_show"],
            "cancelled": f["cancelled"],
            "transferred": f["transferred"],
            **_spread("wait_minutes", f.waits),
            **_spread("service_minutes", f.service),
            "evaluated": grades.get("evaluated", 0),
            "evaluation_rate": grades.get("evaluation_rate"),
            "satisfaction_rate": grades.get("satisfaction_rate"),
            "bad_reviews": (grades.get("bad_reviews_real_name", 0)
                            + grades.get("bad_reviews_anonymous", 0)),
        })
        if by == "staff":
            row["out_of_order_calls"] = f["out_of_order_calls"]
            row["satisfaction_points"] = grades.get("satisfaction_points")
            if "assessment_points" in grades:
                row["assessment_points"] = grades["assessment_points"]
        rows.append(row)
    return rows


def overtime_register(db: sqlite_utils.Database, hall: Hall, day_from: dt.date,
                      day_to: dt.date) -> list[dict[str, Any]]:
    """延时服务: who served past closing, and how long (001 5.3.4.4).

    One row per day and staff member with a visit finished after the end of that day's
    last session: the windows, the visits and their ticket numbers, the last finish and
    the minutes it came past closing. A day without configured hours has no closing time
    and so no overtime here.

    A visit still at its window when the day changed (nobody pressed finish) was finished
    by the controller at the end of its day: it is overtime too, and listed in
    `ended_by_day_change`, since its real end was never recorded.
    """
    tz = ZoneInfo(hall.timezone)
    span = [day_from.isoformat(), day_to.isoformat()]
    day_end = history.day_end_finishes(db, span)
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for t in history.finished_tickets(db, span):
        day = dt.date.fromisoformat(t["day"])
        closing = closing_time(hall, day)
        if closing is None:
            continue
        closes = dt.datetime.combine(day, closing, tz)
        finished = _at(t["finished_at"], tz)
        if finished <= closes:
            continue
        row = rows.setdefault((t["day"], t["staff_id"]), {
            "day": t["day"], "staff": t["staff_id"], "name": _name(hall, "staff", t["staff_id"]),
            "windows": [], "closing": f"{closing:%H:%M}", "visits": 0, "tickets": [],
            "last_finished_at": None, "minutes_past_closing": None, "ended_by_day_change": []})
        if t["window"] not in row["windows"]:
            row["windows"].append(t["window"])
        row["visits"] += 1
        row["tickets"].append(t["label"])
        if t["id"] in day_end:
            row["ended_by_day_change"].append(t["label"])
        row["last_finished_at"] = finished.astimezone(tz).isoformat()
        row["minutes_past_closing"] = round(_minutes(finished, closes), 1)
    return list(rows.values())


@dataclass(frozen=True)
class _Login:
    staff: str
    window: int
    start: dt.datetime
    end: dt.datetime  # the logout, or the end of the login's day when none was recorded
    logged_out: bool


def _logins(db: sqlite_utils.Database, tz: ZoneInfo, day_from: dt.date,
            day_to: dt.date) -> list[_Login]:
    """Window logins from window_opened to window_closed. The controller's own close at
    the next day's start (reason day_end) is no logout: such a login, and one still open,
    ends with its day."""
    def day_end(moment: dt.datetime) -> dt.datetime:
        return dt.datetime.combine(moment.astimezone(tz).date() + dt.timedelta(days=1),
                                   dt.time(), tz)

    # a day's margin either side: the offsets in the stored text need not be the hall's
    lo, hi = day_from - dt.timedelta(days=1), day_to + dt.timedelta(days=2)
    opened: dict[int, tuple[str, dt.datetime]] = {}
    out: list[_Login] = []
    for e in history.window_logins(db, lo.isoformat(), hi.isoformat()):
        data = json.loads(e["data"])
        at = _at(e["at"], tz)
        if e["kind"] == "window_opened":
            opened[e["window"]] = (data.get("staff"), at)
            continue
        if e["window"] not in opened:
            continue
        staff, start = opened.pop(e["window"])
        if data.get("reason") == "day_end" or at >= day_end(start):
            out.append(_Login(staff, e["window"], start, day_end(start), False))
        else:
            out.append(_Login(staff, e["window"], start, at, True))
    for window, (staff, start) in opened.items():
        out.append(_Login(staff, window, start, day_end(start), False))
    return out


def _session_name(s: TimeSpan) -> str:
    if s.start < dt.time(12):
        return "morning"
    return "afternoon" if s.start < dt.time(18) else "evening"


def attendance(db: sqlite_utils.Database, hall: Hall, day_from: dt.date, day_to: dt.date,
               tolerance_minutes: int = 5, workdays: WorkCalendar | None = None,
               now: dt.datetime | None = None) -> list[dict[str, Any]]:
    """考勤 from window logins: one row per working day, session and staff member with an
    A post (A岗).

    The hall's hours set the sessions (9:00-12:00 and 13:30-17:30 by default; 000
    考勤管理办法 第三条), and a window login is the attendance record (hall rules). Logins at
    any window count, B-post cover included (000 顶岗补位制: cover has its own attendance).
    In a session, over the logins that overlap it:

    - first_login, and last_logout (None when the last login was never logged out);
    - late (迟到): first login more than `tolerance_minutes` after the session starts;
    - early_leave (早退): last logout more than `tolerance_minutes` before it ends
      (004 考勤规范 4: 5 minutes); not judged (None) while the session is still on at `now`;
    - absent (未登录): no login overlapping the session at all.

    Working days and their sessions follow the hall's calendar (`workdays`, or the hall's
    own): none on a statutory holiday or a date the config closes, a 调休 day's make-up
    weekday hours (000 考勤管理办法 第三条: "除国家法定节假日外"); the config's extra sessions
    (延时服务 by rota) are no attendance sessions. Without any calendar, the days with
    configured hours on which anyone logged in at a window, so a holiday is not a day of
    absences. Sessions not yet begun at `now` are left out.
    """
    calendar = (hall.calendar if workdays is None
                else dataclasses.replace(hall.calendar, workdays=workdays))
    tz = ZoneInfo(hall.timezone)
    tolerance = dt.timedelta(minutes=tolerance_minutes)
    logins = _logins(db, tz, day_from, day_to)
    staff = sorted((s for s in hall.staff.values() if s.a_post), key=lambda s: s.id)
    rows: list[dict[str, Any]] = []
    day = day_from
    while day <= day_to:
        midnight = dt.datetime.combine(day, dt.time(), tz)
        working = calendar.workdays is not None or any(
            x.start < midnight + dt.timedelta(days=1) and x.end > midnight for x in logins)
        for session in calendar.day(hall.hours, day).regular.sessions if working else ():
            start = dt.datetime.combine(day, session.start, tz)
            end = dt.datetime.combine(day, session.end, tz)
            if now is not None and now < start:
                continue
            for s in staff:
                mine = [x for x in logins if x.staff == s.id and x.start < end and x.end > start]
                row: dict[str, Any] = {
                    "day": day.isoformat(), "session": _session_name(session),
                    "session_start": f"{session.start:%H:%M}",
                    "session_end": f"{session.end:%H:%M}",
                    "staff": s.id, "name": s.name, "a_post": list(s.a_post),
                    "windows": sorted({x.window for x in mine}),
                    "first_login": None, "last_logout": None,
                    "late": False, "early_leave": False, "absent": not mine, "status": "absent",
                }
                if mine:
                    first = min(x.start for x in mine)
                    last = max(mine, key=lambda x: x.end)
                    late = first > start + tolerance
                    if now is not None and now < end:
                        early = None
                    else:
                        early = last.end < end - tolerance
                    row.update({
                        "first_login": first.astimezone(tz).isoformat(),
                        "last_logout": last.end.astimezone(tz).isoformat() if last.logged_out
                        else None,
                        "late": late, "early_leave": early,
                        "status": ("late_and_early_leave" if late and early else "late" if late
                                   else "early_leave" if early else "present"),
                    })
                rows.append(row)
        day += dt.timedelta(days=1)
    return rows
