"""日汇总: a day's figures per service, staff member, window and for the whole day, from which
the hall report (`hall_reports.hall_figures`) and the evaluation report
(`evaluation_reports.evaluation_report`) add up any span of days.

A closed day (before the hall's current day) is summarised once and kept
(controller.store.day_summaries); the current day is always counted from its tickets. So a
month's or a year's report reads a few rows a day instead of every ticket, and gives the same
numbers: counts add up, and the wait and service minutes are kept one by one, in ticket
order, so that means and percentiles over any span are computed from exactly the values, in
exactly the order, the tickets give.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sqlite3
import sys
from array import array
from dataclasses import dataclass, field
from typing import Any, Iterable
from zoneinfo import ZoneInfo

import sqlite_utils

from controller.core.callbacks import BAD_GRADES
from controller.core.evaluation import cut_short
from controller.core.hall import EVALUATION_GRADES
from controller.store import day_summaries as store
from controller.store import history
from vocabulary import SYSTEM_DEFAULT

log = logging.getLogger(__name__)

# at a day change, how far back the days just closed are looked for (a hall switched off over
# a holiday); older days without a summary are summarised by the first report that reads them
CLOSED_DAYS_BACK = 14

# what a day is summarised by; a month adds up its days
GROUPINGS = ("service", "staff", "window", "day")
SATISFIED = EVALUATION_GRADES[:3]  # 非常满意, 满意, 基本满意
NO_SHOW, CANCELLED, FINISHED = "no_show", "cancelled", "finished"


@dataclass
class Figures:
    """One group's figures: `counts` by name (issued, served, no_show, cancelled, transferred,
    out_of_order_calls; visits, the grades, evaluated, default_graded, ungraded, satisfied,
    bad_reviews_real_name, bad_reviews_anonymous, prompts_cut_short), and the minutes each
    called ticket waited and each served ticket was served, in ticket order."""

    counts: dict[str, int] = field(default_factory=dict)
    waits: list[float] = field(default_factory=list)
    service: list[float] = field(default_factory=list)

    def count(self, name: str, n: int = 1) -> None:
        self.counts[name] = self.counts.get(name, 0) + n

    def add(self, other: Figures) -> None:
        for name, n in other.counts.items():
            self.count(name, n)
        self.waits += other.waits
        self.service += other.service

    def __getitem__(self, name: str) -> int:
        return self.counts.get(name, 0)


Day = dict[str, dict[Any, "Figures"]]  # grouping: key: figures


def at_hall_time(text: str, tz: dt.tzinfo) -> dt.datetime:
    """A stored time: with its own offset, or `tz`'s where it was stored without one."""
    moment = dt.datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=tz)


def minutes(later: dt.datetime, earlier: dt.datetime) -> float:
    return (later - earlier).total_seconds() / 60


def _ticket_counts(t: dict[str, Any], cut: bool) -> list[str]:
    """What a ticket adds to its groups' counts: issued and how it ended, and as a finished
    visit what the evaluation report counts of it."""
    names = ["issued"]
    status = t["status"]
    if status == NO_SHOW:
        names.append("no_show")
    elif status == CANCELLED:
        names.append("cancelled")
    if t["transfers"]:
        names.append("transferred")
    if t["called_at"] and status == FINISHED and t["finished_at"]:
        names.append("served")
    if status == FINISHED:
        names += _visit_counts(t, cut)
    return names


def _visit_counts(t: dict[str, Any], cut: bool) -> list[str]:
    names = ["visits"]
    grade, channel = t["grade"], t["grade_channel"]
    if grade is None:
        names.append("ungraded")
    if channel == SYSTEM_DEFAULT:
        names.append("default_graded")
    if grade is not None and channel != SYSTEM_DEFAULT:  # a real evaluation, the citizen's
        names += ["evaluated", grade]
        if grade in SATISFIED:
            names.append("satisfied")
        if grade in BAD_GRADES:
            names.append("bad_reviews_real_name" if t["id_masked"] is not None
                         else "bad_reviews_anonymous")
    if cut:
        names.append("prompts_cut_short")
    return names


def count_day(db: sqlite_utils.Database, day: str, tz: dt.tzinfo) -> Day:
    """The figures of `day` from its tickets and their events.

    A ticket counts under the service it ended in, the staff member and window that last
    handled it (a final 过号 under the window that marked it, from the event log), and its
    day; a call out of order under the staff member who made it."""
    span = [day, day]
    missed = history.missed_at(db, span)
    cut = {ticket for ticket, reason in history.evaluation_ends(db, span) if cut_short(reason)}
    out: Day = {g: {} for g in GROUPINGS}
    for t in history.tickets_of_day(db, day):
        names = _ticket_counts(t, t["id"] in cut)
        wait = service = None
        if t["called_at"]:
            called = at_hall_time(t["called_at"], tz)
            wait = minutes(called, at_hall_time(t["issued_at"], tz))
            if "served" in names:
                service = minutes(at_hall_time(t["finished_at"], tz), called)
        window = t["window"] if t["window"] is not None else missed.get(t["id"])
        for grouping, key in (("service", t["service"]), ("staff", t["staff_id"]),
                              ("window", window), ("day", day)):
            f = out[grouping].get(key)
            if f is None:
                f = out[grouping][key] = Figures()
            counts = f.counts
            for name in names:
                counts[name] = counts.get(name, 0) + 1
            if wait is not None:
                f.waits.append(wait)
            if service is not None:
                f.service.append(service)
    for data in history.out_of_order_calls_of_days(db, span):
        out["staff"].setdefault(data.get("staff"), Figures()).count("out_of_order_calls")
    return out


# -- kept ------------------------------------------------------------------------------------

def _floats(values: list[float]) -> bytes:
    a = array("d", values)
    if sys.byteorder == "big":  # stored little-endian, whatever the machine
        a.byteswap()
    return a.tobytes()


def _unfloats(blob: bytes) -> list[float]:
    a = array("d")
    a.frombytes(blob)
    if sys.byteorder == "big":
        a.byteswap()
    return a.tolist()


def to_rows(day: str, figures: Day) -> list[store.FigureRow]:
    return [store.FigureRow(day, grouping, json.dumps(key, ensure_ascii=False),
                            json.dumps({k: n for k, n in f.counts.items() if n},
                                       ensure_ascii=False, separators=(",", ":")),
                            _floats(f.waits), _floats(f.service))
            for grouping, groups in figures.items() for key, f in groups.items()]


def from_row(r: store.FigureRow) -> tuple[Any, Figures]:
    return json.loads(r.key), Figures(json.loads(r.counts), _unfloats(r.waits), _unfloats(r.service))


# -- a span ----------------------------------------------------------------------------------

def _grouping_of(by: str) -> str:
    return "day" if by == "month" else by


def _key_of(by: str, key: Any) -> Any:
    return key[:7] if by == "month" else key


def _add(into: dict[Any, Figures], by: str, groups: Iterable[tuple[Any, Figures]]) -> None:
    for key, f in groups:
        into.setdefault(_key_of(by, key), Figures()).add(f)


def span_figures(db: sqlite_utils.Database, tz: ZoneInfo | None, day_from: dt.date, day_to: dt.date,
                 by: str) -> dict[Any, Figures]:
    """The figures of each group of `by` (service, staff, window, day or month) over the days
    from `day_from` to `day_to`, inclusive: the closed days' as kept (summarised now, and kept,
    where not yet), the current day's counted from its tickets. Groups in no particular order;
    within a group the minutes in the order of day and ticket. `tz` is the hall's, for times
    stored without an offset (the hall stores none such; UTC when not given)."""
    zone: dt.tzinfo = tz or dt.timezone.utc
    first, last = day_from.isoformat(), day_to.isoformat()
    grouping = _grouping_of(by)
    if not store.has_tables(db):  # a database of an older schema, read as it is
        return _counted(db, zone, store.ticket_days(db, first, last), by)
    today = store.hall_day(db)
    days = store.ticket_days(db, first, last)
    closed = [d for d in days if today is not None and d < today]
    kept = store.summarised(db, first, last) if closed else set()
    counted = store.changes(db, first, last) if closed else {}
    fresh: dict[str, Day] = {d: count_day(db, d, zone) for d in days if d not in kept}
    if today is not None and any(d < today for d in fresh):
        path = store.writable_path(db)
        if path is not None:
            store.keep(path, today, {d: (counted.get(d, 0), to_rows(d, f))
                                     for d, f in fresh.items() if d < today})
    stored: dict[str, list[tuple[Any, Figures]]] = {}
    if kept:
        for r in store.figures(db, grouping, first, last):
            if r.day in kept:
                stored.setdefault(r.day, []).append(from_row(r))
    out: dict[Any, Figures] = {}
    for d in days:  # in order of day: the minutes stay in ticket order
        _add(out, by, fresh[d][grouping].items() if d in fresh else stored.get(d, []))
    return out


def _counted(db: sqlite_utils.Database, tz: dt.tzinfo, days: list[str], by: str) -> dict[Any, Figures]:
    out: dict[Any, Figures] = {}
    for d in days:
        _add(out, by, count_day(db, d, tz)[_grouping_of(by)].items())
    return out


def keep_closed_days(conn: sqlite3.Connection, day: dt.date, tz: dt.tzinfo) -> int:
    """At the change to `day`, on the hall thread, in the transaction that writes the change
    (after the day's last commands): summarise and keep the days just closed (yesterday, or
    the days since the hall last ran, up to CLOSED_DAYS_BACK), so that no report has to. A
    failure keeps nothing and costs the day change nothing: the reports count those days
    then. How many days were kept."""
    db = sqlite_utils.Database(conn, recursive_triggers=False)
    first = (day - dt.timedelta(days=CLOSED_DAYS_BACK)).isoformat()
    last = (day - dt.timedelta(days=1)).isoformat()
    conn.execute("SAVEPOINT day_summaries")
    try:
        kept = store.summarised(db, first, last)
        counted = store.changes(db, first, last)
        days = [d for d in store.ticket_days(db, first, last) if d not in kept]
        for d in days:
            store.insert(conn, d, counted.get(d, 0), to_rows(d, count_day(db, d, tz)))
        conn.execute("RELEASE day_summaries")
    except Exception:
        log.exception("the closed days' summaries were not kept at the day change")
        conn.execute("ROLLBACK TO day_summaries")
        conn.execute("RELEASE day_summaries")
        return 0
    return len(days)
