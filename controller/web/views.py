"""JSON views of the hall for the API: what kiosks, counters and displays read."""

from __future__ import annotations

import datetime as dt
from typing import Any

from controller.core.priority import CALL_REASONS
from controller.core.engine import Engine
from controller.core.events import KINDS, CaseEvent
from controller.core.estimate import wait_range
from controller.core.hall import Hall
from controller.core.hours import closed_message
from controller.core.model import HallState, Ticket, TicketStatus, WindowStatus
from controller.core.outcome import Outcome


def _iso(v: dt.datetime | dt.date | None) -> str | None:
    return v.isoformat() if v else None


def ticket_json(engine: Engine, state: HallState | None, t: Ticket,
                now: dt.datetime) -> dict[str, Any]:
    service = engine.hall.services.get(t.service)
    out: dict[str, Any] = {
        "id": t.id,
        "number": t.label,
        "service": t.service,
        "service_name": service.name if service else None,
        "status": t.status.value,
        "channel": t.channel.value,
        "priority": t.priority.value if t.priority else None,
        "priority_by": t.priority_by,
        "real_name": t.real_name,
        "id_masked": t.id_masked,
        "name_masked": t.name_masked,
        "issued_at": _iso(t.issued_at),
        "appointment_at": _iso(t.appointment_at),
        "window": t.window,
        "called_at": _iso(t.called_at),
        "finished_at": _iso(t.finished_at),
        "recalls": t.recalls,
        "transfers": t.transfers,
        "requeued": t.requeued,
    }
    if state is not None and t.status is TicketStatus.WAITING and t.id in state.tickets:
        ahead = engine.people_ahead(state, t)
        out["people_ahead"] = ahead
        eta = engine.estimate(state, t.service, ahead, now)
        out["eta"], out["wait_minutes"] = eta.to_json(), list(wait_range(eta))
    return out


def issued_ticket(out: Outcome) -> Ticket:
    """The ticket an IssueTicket (or a check-in) answered with."""
    if out.ticket is None:
        raise ValueError("not the outcome of issuing a ticket: it has no ticket")
    return out.ticket


def issued_json(hall: Hall, out: Outcome) -> dict[str, Any]:
    """The answer to taking a ticket: what the ticket slip shows."""
    t = issued_ticket(out)
    if out.estimate is None:
        raise ValueError("not the outcome of issuing a ticket: it has no estimate")
    return {"id": t.id, "number": t.label, "service": t.service,
            "service_name": hall.services[t.service].name, "people_ahead": out.people_ahead,
            "eta": out.estimate.to_json(), "wait_minutes": list(wait_range(out.estimate)),
            "issued_at": t.issued_at.isoformat(),
            "priority": t.priority.value if t.priority else None, "real_name": t.real_name,
            "name_masked": t.name_masked, "warning": out.warning}


RECENT_CALLS = 10  # the hall display lists this many calls, newest first


def recent_calls(engine: Engine, state: HallState, limit: int = RECENT_CALLS) -> list[dict[str, Any]]:
    """The day's latest calls (a recall counts as a new call), newest first."""
    called = sorted(((t.called_at, t) for t in state.tickets.values() if t.called_at and t.window),
                    key=lambda call: call[0], reverse=True)[:limit]
    return [{"number": t.label, "window": t.window, "service": t.service,
             "service_name": engine.hall.services[t.service].name if t.service in engine.hall.services
             else None, "called_at": _iso(t.called_at), "recalls": t.recalls,
             "status": t.status.value} for _, t in called]


def hall_json(engine: Engine, state: HallState, now: dt.datetime) -> dict[str, Any]:
    hall = engine.hall
    limit = dt.timedelta(minutes=hall.rules.pause_limit_minutes)
    windows = []
    for number, cfg in sorted(hall.windows.items()):
        w = state.windows[number]
        staff = hall.staff.get(w.staff_id) if w.staff_id else None
        current = state.tickets.get(w.current) if w.current else None
        pause = None
        if w.status is WindowStatus.PAUSED and w.paused_at:
            pause = {"reason": w.pause_reason, "minutes": w.pause_minutes,
                     "whereabouts": w.pause_whereabouts,
                     "since": _iso(w.paused_at), "over_limit": now - w.paused_at > limit}
        windows.append({
            "number": number, "name": cfg.name, "kind": cfg.kind.value, "tidal": cfg.tidal,
            "services": list(cfg.services), "state": w.status.value,
            "staff": {"id": staff.id, "name": staff.name, "post": w.post} if staff else None,
            "current": ({"id": current.id, "number": current.label, "service": current.service,
                         "called_at": _iso(current.called_at), "recalls": current.recalls}
                        if current else None),
            "pause": pause,
        })
    return {
        "hall": {"name": hall.name, "region_code": hall.region_code, "timezone": hall.timezone},
        "now": now.isoformat(),
        "day": _iso(state.day),
        "windows": windows,
        "queues": services_json(engine, state, now),
        "calls": recent_calls(engine, state),
        "tidal": [{"window": n, "proposal": p} for n, p in sorted(state.tidal.items())],
        "today": opening_json(hall, now.date()),
    }


def opening_json(hall: Hall, day: dt.date) -> dict[str, Any]:
    """Whether the hall opens on `day`, its sessions, and if closed why and when it opens
    next: what the kiosk and the display say on a holiday."""
    opening = hall.opening_on(day)
    following = None if opening.open else hall.next_open_day(day)
    return {
        "date": day.isoformat(),
        "open": opening.open,
        "sessions": [f"{s.start:%H:%M}-{s.end:%H:%M}" for s in opening.hours.sessions],
        "closed_reason": opening.closed_reason,
        "message": None if opening.open else closed_message(hall, day),
        "note": opening.note,
        "next_open": ({"date": following.day.isoformat(),
                       "sessions": [f"{s.start:%H:%M}-{s.end:%H:%M}"
                                    for s in following.hours.sessions]} if following else None),
        # no holiday data for this year: opening by weekday hours, until holidays.toml has it
        "calendar_missing": opening.calendar_missing,
        # and the years, this one or one soon to begin, the hall should add: an alert
        "calendar_missing_years": hall.calendar.missing_years(day),
    }


def window_json(engine: Engine, state: HallState, number: int, now: dt.datetime) -> dict[str, Any]:
    """One window for its counter page: its state, its services' queues and the grade of
    the last visit it finished."""
    full = hall_json(engine, state, now)
    window = next(w for w in full["windows"] if w["number"] == number)
    finished = [(t.finished_at, t) for t in state.tickets.values()
                if t.window == number and t.status is TicketStatus.FINISHED and t.finished_at]
    last = max(finished, key=lambda visit: visit[0], default=(None, None))[1]
    window["last_visit"] = ({"number": last.label, "finished_at": _iso(last.finished_at),
                             "grade": last.grade, "grade_channel": last.grade_channel}
                            if last else None)
    window["evaluating"] = state.windows[number].evaluating
    window["queues"] = [q for q in full["queues"] if q["service"] in window["services"]]
    window["transfer_to"] = [{"service": q["service"], "name": q["name"]} for q in full["queues"]]
    # 叫指定号's reasons as the rules define them, so the page offers no other
    window["call_reasons"] = list(CALL_REASONS)
    # the hall's day: a ticket's id is the day and its number (补打 by number)
    window["day"] = full["day"]
    return window


def services_json(engine: Engine, state: HallState, now: dt.datetime) -> list[dict[str, Any]]:
    """Each service's queue: waiting count, estimate, and how long its longest-waiting ticket
    has waited."""
    out = []
    for prefix, s in engine.hall.services.items():
        waiting = state.queues.waiting(prefix)
        eta = engine.estimate(state, prefix, waiting, now)  # a ticket taken now: as it is issued
        row = {"service": prefix, "name": s.name, "kind": s.kind, "waiting": waiting,
               "eta": eta.to_json(), "wait_minutes": list(wait_range(eta))}
        q = state.queues.services[prefix]
        # heads of the walk-in lanes, keyed by when they joined the queue
        heads = [lane[0][0] for lane in (q.priority, q.regular) if lane]
        row["longest_wait_minutes"] = (round((now - min(heads)).total_seconds() / 60, 1)
                                       if heads else 0.0)
        out.append(row)
    return out


# What staff without a manager's role see (a counter page follows the stream); a screen or
# a citizen without a login sees less still (anonymous_event). Neither carries the
# masked identity, who acted, or a visit's grade: an evaluation names the staff member
# graded, figures that are for supervisors, admins and callback officers (reports_api).
PRIVATE_TICKET_FIELDS = ("id_masked", "name_masked", "priority_by")
PRIVATE_EVENT_DATA = {"ticket_evaluated": ("grade", "channel", "tags", "bad"),
                      # who granted a priority, who called out of order and why: supervisors'
                      "ticket_issued": ("priority_by",),
                      "ticket_called": ("staff", "reason", "note"),
                      # a patrol's findings are personnel matters (000 巡查制度 第七条)
                      "patrol_recorded": ("findings", "no_problems", "signer", "signer_name",
                                          "windows")}


# a case's steps (回访, 核实, 整改 …) are the callback desk's: other staff see that a case
# moved, not against whom, with what grade or what was said
CASE_EVENT_KINDS = frozenset(kind for kind, cls in KINDS.items() if issubclass(cls, CaseEvent))


def public_event(event: dict[str, Any]) -> dict[str, Any]:
    """`event` (a stored or streamed event) without what only managers may read."""
    if event.get("kind") in CASE_EVENT_KINDS:
        return {**{k: v for k, v in event.items() if k in ("id", "kind", "at")}, "data": {}}
    hidden = PRIVATE_EVENT_DATA.get(event.get("kind", ""))
    out = {k: v for k, v in event.items() if k != "actor"}
    if hidden and isinstance(out.get("data"), dict):
        out["data"] = {k: v for k, v in out["data"].items() if k not in hidden}
    return out


# What a screen without a login, or anyone on the hall's LAN, may read of an event: what
# the hall display shows, and nothing more. Logins and their times, who served and for
# how long, where staff went during a pause, grades, device faults and the supervisor's
# alerts are personnel and management matters; an event kind not listed is not sent.
ANONYMOUS_EVENT_DATA: dict[str, tuple[str, ...]] = {
    "ticket_issued": ("label", "service"),
    "ticket_called": ("label", "service"),
    "ticket_recalled": ("label", "recalls"),
    "ticket_missed": ("label",),
    "ticket_finished": ("label", "service"),
    "ticket_transferred": ("label", "target"),
    "ticket_cancelled": ("label", "reason"),  # not_printed, day_end: what the QR page tells
    "ticket_requeued": ("label", "service"),
    "window_opened": ("post",),  # a B post covering is on the display (顶岗)
    "window_closed": (),
    "window_paused": ("reason", "minutes", "until"),  # the display's "back about 10:40"
    "window_resumed": (),
    "day_started": ("day",),
}


def anonymous_event(event: dict[str, Any]) -> dict[str, Any] | None:
    """`event` as a screen without a login sees it; None when it sees nothing of it."""
    kind = event.get("kind", "")
    keep = ANONYMOUS_EVENT_DATA.get(kind)
    if keep is None:
        return None
    data = event.get("data")
    if not isinstance(data, dict):
        data = {}
    return {"id": event.get("id"), "kind": kind, "at": event.get("at"),
            "window": event.get("window"), "ticket": event.get("ticket"),
            "data": {k: data[k] for k in keep if k in data}}


def anonymous_ticket(ticket: dict[str, Any]) -> dict[str, Any]:
    """A ticket as anyone may read it: its status and history, nobody named."""
    out = {k: v for k, v in ticket.items() if k not in PRIVATE_TICKET_FIELDS}
    if "history" in out:
        out["history"] = [e for e in map(anonymous_event, out["history"]) if e is not None]
    return out


def anonymous_hall(body: dict[str, Any]) -> dict[str, Any]:
    """hall_json for a screen without a login: a covering B post's name (the display shows
    it) but no 工号, nor where staff went during a pause."""
    windows = []
    for w in body["windows"]:
        w = dict(w)
        if w.get("staff"):
            w["staff"] = {"name": w["staff"]["name"], "post": w["staff"]["post"]}
        if w.get("pause"):
            w["pause"] = {k: v for k, v in w["pause"].items() if k != "whereabouts"}
        windows.append(w)
    return {**body, "windows": windows}
