"""JSON views of the hall for the API: what kiosks, counters and displays read."""

from __future__ import annotations

import datetime as dt
from typing import Any

from controller.core.engine import Engine, Outcome
from controller.core.hall import Hall
from controller.core.model import HallState, Ticket, TicketStatus, WindowStatus


def _iso(v: dt.datetime | dt.date | None) -> str | None:
    return v.isoformat() if v else None


def ticket_json(engine: Engine, state: HallState | None, t: Ticket) -> dict[str, Any]:
    service = engine.hall.services.get(t.service)
    out: dict[str, Any] = {
        "id": t.id,
        "number": t.label,
        "service": t.service,
        "service_name": service.name if service else None,
        "status": t.status.value,
        "channel": t.channel.value,
        "priority": t.priority.value if t.priority else None,
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
        out["eta"] = engine.estimate(state, t.service, ahead).to_json()
    return out


def issued_json(hall: Hall, out: Outcome) -> dict[str, Any]:
    """The answer to taking a ticket: what the ticket slip shows."""
    t = out.ticket
    return {"id": t.id, "number": t.label, "service": t.service,
            "service_name": hall.services[t.service].name, "people_ahead": out.people_ahead,
            "eta": out.estimate.to_json(), "issued_at": t.issued_at.isoformat(),
            "priority": t.priority.value if t.priority else None, "real_name": t.real_name,
            "name_masked": t.name_masked, "warning": out.warning}


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
        "hall": {"name": hall.name, "region_code": hall.region_code},
        "now": now.isoformat(),
        "day": _iso(state.day),
        "windows": windows,
        "queues": services_json(engine, state),
    }


def services_json(engine: Engine, state: HallState) -> list[dict[str, Any]]:
    out = []
    for prefix, s in engine.hall.services.items():
        waiting = state.queues.waiting(prefix)
        out.append({"service": prefix, "name": s.name, "kind": s.kind, "waiting": waiting,
                    "eta": engine.estimate(state, prefix, waiting).to_json()})
    return out
