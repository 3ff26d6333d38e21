"""区县报表: the district's reports, per hall, service, staff member, window, day or month, and
the monthly assessment across halls (月度考核通报), computed from the events the centre holds.

The hall counts its reports from its tickets table (controller.backoffice.day_figures); the
centre holds only the halls' event logs, so it first folds each hall's ticket events, in the
log's order, into the same ticket records (`Ledger`), then counts them as the hall does: the
same groups (a ticket under the service it ended in, the window and staff member that last
handled it, a final 过号 under the window that marked it), the same minutes in the same order,
the same percentiles and rates (controller.core.figures). So a hall's report at the centre
equals the hall's own, field by field (tests/test_center_reports.py). What the centre does not
hold is left out rather than guessed: the names of services, windows and staff (the hall's
configuration), and the case desk's figures (bad-review cases, callback and rectification
rates, assessment points), which need the cases.

Per department: the halls' events name services, not departments; the grouping waits for the
service catalogue the centre publishes (issue 16 item 5).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import psycopg

import controller.core.events as ev
from controller.core.evaluation import cut_short
from controller.core.figures import percentile, satisfaction_points
from vocabulary import SYSTEM_DEFAULT
from vocabulary.grades import BAD_LABELS, LABELS

GROUPINGS = ("hall", "service", "staff", "window", "day", "month")
SATISFIED = LABELS[:3]  # 非常满意, 满意, 基本满意
# the events a ticket's record is made of, and the window's login (who calls at it)
KINDS = (ev.DAY_STARTED, ev.TICKET_ISSUED, ev.TICKET_CALLED, ev.TICKET_MISSED, ev.TICKET_FINISHED,
         ev.TICKET_TRANSFERRED, ev.TICKET_CANCELLED, ev.TICKET_REQUEUED, ev.TICKET_EVALUATED,
         ev.EVALUATION_ENDED, ev.WINDOW_OPENED)


@dataclass
class Ticket:
    """A ticket as the hall's tickets table has it, rebuilt from its events."""

    id: str
    day: str
    service: str
    issued_at: str
    real_name: bool
    status: str = "waiting"
    window: int | None = None
    staff: str | None = None
    called_at: str | None = None
    finished_at: str | None = None
    transfers: int = 0
    grade: str | None = None
    grade_channel: str | None = None
    missed_at: int | None = None  # the window that marked its final 过号
    cut_short: bool = False


@dataclass
class Ledger:
    """A hall's tickets and its calls out of order (day, staff), from its events in order."""

    tickets: dict[str, Ticket] = field(default_factory=dict)
    out_of_order: list[tuple[str, str | None]] = field(default_factory=list)
    day: str | None = None
    staff_at: dict[int, str | None] = field(default_factory=dict)

    def fold(self, e: dict[str, Any]) -> None:
        kind, data = e["kind"], e.get("data") or {}
        if kind == ev.DAY_STARTED:
            self.day = data.get("day")
        elif kind == ev.WINDOW_OPENED:
            self.staff_at[e["window"]] = data.get("staff")
        elif kind == ev.TICKET_ISSUED:
            self.tickets[e["ticket"]] = Ticket(e["ticket"], self.day or e["at"][:10], data["service"], e["at"],
                                               bool(data.get("real_name")))
        elif e.get("ticket") in self.tickets:
            self._ticket(self.tickets[e["ticket"]], kind, e, data)

    def _ticket(self, t: Ticket, kind: str, e: dict[str, Any], data: dict[str, Any]) -> None:
        if kind == ev.TICKET_CALLED:
            t.status, t.window, t.called_at, t.finished_at = "called", e["window"], e["at"], None
            t.staff = self.staff_at.get(e["window"])
            if data.get("out_of_order"):
                self.out_of_order.append((t.day, data.get("staff")))
        elif kind == ev.TICKET_MISSED:
            t.window = None
            t.status = "waiting" if data.get("requeued") else "no_show"
            t.missed_at = None if data.get("requeued") else e["window"]
        elif kind == ev.TICKET_FINISHED:
            t.status, t.finished_at = "finished", data.get("finished_at") or e["at"]
            t.staff = data.get("staff")
            if e.get("window") is not None:
                t.window = e["window"]
        elif kind in (ev.TICKET_TRANSFERRED, ev.TICKET_REQUEUED):
            t.status, t.window = "waiting", None
            t.service = data["target"] if kind == ev.TICKET_TRANSFERRED else data["service"]
            t.transfers += kind == ev.TICKET_TRANSFERRED
        elif kind == ev.TICKET_CANCELLED:
            t.status = "cancelled"
        elif kind == ev.TICKET_EVALUATED:
            t.grade, t.grade_channel = data.get("grade"), data.get("channel")
        elif kind == ev.EVALUATION_ENDED:
            t.cut_short = t.cut_short or cut_short(data.get("reason"))


def ledger(events: list[dict[str, Any]]) -> Ledger:
    out = Ledger()
    for e in events:
        out.fold(e)
    return out


@dataclass
class Figures:
    """One group's counts, and the minutes each called ticket waited and each served one was
    served, in the order of day and ticket (as controller.backoffice.day_figures keeps them)."""

    counts: dict[str, int] = field(default_factory=dict)
    waits: list[float] = field(default_factory=list)
    service: list[float] = field(default_factory=list)

    def __getitem__(self, name: str) -> int:
        return self.counts.get(name, 0)


def _minutes(later: str, earlier: str) -> float:
    return (dt.datetime.fromisoformat(later) - dt.datetime.fromisoformat(earlier)).total_seconds() / 60


def counted(t: Ticket) -> list[str]:
    """What a ticket adds to its groups' counts (day_figures._ticket_counts, from a record)."""
    names = ["issued"]
    names += {"no_show": ["no_show"], "cancelled": ["cancelled"]}.get(t.status, [])
    if t.transfers:
        names.append("transferred")
    if t.status != "finished":
        return names
    if t.called_at and t.finished_at:
        names.append("served")
    names.append("visits")
    if t.grade is None:
        names.append("ungraded")
    if t.grade_channel == SYSTEM_DEFAULT:
        names.append("default_graded")
    elif t.grade is not None:  # a real evaluation, the citizen's
        names += ["evaluated"] + (["satisfied"] if t.grade in SATISFIED else [])
        if t.grade in BAD_LABELS:
            names.append("bad_reviews_real_name" if t.real_name else "bad_reviews_anonymous")
    if t.cut_short:
        names.append("prompts_cut_short")
    return names


def _key(t: Ticket, hall: str, by: str) -> Any:
    return {"hall": hall, "service": t.service, "staff": t.staff, "day": t.day, "month": t.day[:7],
            "window": t.window if t.window is not None else t.missed_at}[by]


def figures(halls: dict[str, Ledger], by: str, day_from: dt.date, day_to: dt.date) -> dict[tuple[str, Any], Figures]:
    """The figures of each (hall, group of `by`) over the tickets of those days."""
    if by not in GROUPINGS:
        raise ValueError(f"by must be one of {', '.join(GROUPINGS)}, not {by!r}")
    first, last = day_from.isoformat(), day_to.isoformat()
    out: dict[tuple[str, Any], Figures] = {}
    for hall, book in sorted(halls.items()):
        for t in sorted((t for t in book.tickets.values() if first <= t.day <= last), key=lambda t: (t.day, t.id)):
            f = out.setdefault((hall, _key(t, hall, by)), Figures())
            for name in counted(t):
                f.counts[name] = f.counts.get(name, 0) + 1
            if t.called_at:
                f.waits.append(_minutes(t.called_at, t.issued_at))
                if t.status == "finished" and t.finished_at:
                    f.service.append(_minutes(t.finished_at, t.called_at))
        if by == "staff":
            for day, staff in book.out_of_order:
                if first <= day <= last:
                    f = out.setdefault((hall, staff), Figures())
                    f.counts["out_of_order_calls"] = f.counts.get("out_of_order_calls", 0) + 1
    return out


def _spread(name: str, values: list[float]) -> dict[str, float | None]:
    def r(v: float | None) -> float | None:
        return round(v, 1) if v is not None else None
    return {f"{name}_mean": r(sum(values) / len(values)) if values else None,
            f"{name}_p50": r(percentile(values, 0.5)), f"{name}_p90": r(percentile(values, 0.9))}


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _row(f: Figures) -> dict[str, Any]:
    return {
        "issued": f["issued"], "served": f["served"], "no_show": f["no_show"], "cancelled": f["cancelled"],
        "transferred": f["transferred"], **_spread("wait_minutes", f.waits), **_spread("service_minutes", f.service),
        "evaluated": f["evaluated"],
        "evaluation_rate": _ratio(f["evaluated"], f["visits"]) if f["visits"] else None,
        "satisfaction_rate": _ratio(f["satisfied"], f["evaluated"]) if f["visits"] else None,
        "bad_reviews": f["bad_reviews_real_name"] + f["bad_reviews_anonymous"],
    }


def _order(key: tuple[str, Any]) -> tuple[str, bool, Any]:
    hall, k = key
    return (hall, k is None, k if k is not None else 0)


def report(halls: dict[str, Ledger], by: str, day_from: dt.date, day_to: dt.date) -> list[dict[str, Any]]:
    """One row per hall and group of `by`, as the hall report (hall_reports.hall_figures) gives
    its rows, with the hall first: issued, served, no_show, cancelled, transferred, the wait and
    service minutes' mean, P50 and P90, evaluated, the evaluation and satisfaction rates and
    bad reviews; by staff also the calls out of order and the satisfaction points."""
    groups = {k: f for k, f in figures(halls, by, day_from, day_to).items() if f["issued"] or f["out_of_order_calls"]}
    rows = []
    for hall, key in sorted(groups, key=_order):
        f = groups[(hall, key)]
        row: dict[str, Any] = {"hall": hall} if by == "hall" else {"hall": hall, by: key}
        row.update(_row(f))
        if by == "staff":
            row["out_of_order_calls"] = f["out_of_order_calls"]
            row["satisfaction_points"] = satisfaction_points(f["satisfied"], f["evaluated"]) if f["visits"] else None
        rows.append(row)
    return rows


def assessment(halls: dict[str, Ledger], month: str) -> list[dict[str, Any]]:
    """月度考核通报: the month's figures of every hall, ranked by satisfaction, then evaluation
    rate, then the median wait (shorter first); a hall with no evaluation ranks last."""
    first = dt.date.fromisoformat(f"{month}-01")
    last = (first + dt.timedelta(days=32)).replace(day=1) - dt.timedelta(days=1)
    groups = figures(halls, "hall", first, last)
    rows = []
    for (hall, _), f in sorted(groups.items()):
        rows.append({"hall": hall, "month": month, "visits": f["visits"], **_row(f),
                     "satisfaction_points": satisfaction_points(f["satisfied"], f["evaluated"])})
    rows.sort(key=lambda r: (r["satisfaction_rate"] is None, -(r["satisfaction_rate"] or 0),
                             -(r["evaluation_rate"] or 0), r["wait_minutes_p50"] or 0, r["hall"]))
    return [{"rank": i, **r} for i, r in enumerate(rows, 1)]


# -- the events, from PostgreSQL ----------------------------------------------------------

def hall_ledgers(conn: psycopg.Connection, day_from: dt.date, day_to: dt.date,
                 hall: str | None = None) -> dict[str, Ledger]:
    """Each hall's (or `hall`'s) ledger over the events up to its mark (every one held) whose
    time falls within a day either side of the span (a ticket's day is its hall's day, and
    times are stored with the hall's offset)."""
    lo, hi = (day_from - dt.timedelta(days=1)).isoformat(), (day_to + dt.timedelta(days=2)).isoformat()
    out: dict[str, Ledger] = {}
    with conn.transaction(), conn.cursor(name="report_events") as cur:  # server-side: a month is many rows
        cur.itersize = 5000
        cur.execute(
            "SELECT e.hall_id, e.kind, e.at, e.window_no, e.ticket, e.data FROM hall_events e "
            "JOIN halls h USING (hall_id) WHERE e.event_id <= h.acked AND e.at >= %s AND e.at < %s "
            "AND e.kind = ANY(%s) AND (%s::text IS NULL OR e.hall_id = %s) ORDER BY e.hall_id, e.event_id",
            (lo, hi, list(KINDS), hall, hall))
        for hall_id, kind, at, window, ticket, data in cur:
            book = out.get(hall_id)
            if book is None:
                book = out[hall_id] = Ledger()
            book.fold({"kind": kind, "at": at, "window": window, "ticket": ticket, "data": data})
    return out
