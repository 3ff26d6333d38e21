"""What the centre knows of a hall's floor now, folded from its events in the log's order: the
windows open and paused, the tickets waiting per service, the devices not online, and the
hall day's 好差评 so far.

Pure: the store folds each hall's events here once, when its acknowledged mark moves past them
(so in order, whatever order the batches arrived in). A ticket of an earlier day still waiting
when the day started is dropped with it; the hall ends its tickets at the day's end anyway.
"""

from __future__ import annotations

from typing import Any

import controller.core.events as ev
from vocabulary import SYSTEM_DEFAULT, by_label

Floor = dict[str, Any]


def empty() -> Floor:
    return {"day": None, "windows": {}, "waiting": {}, "serving": {}, "evaluated": 0, "satisfied": 0,
            "devices": {}, "calling": {}}


def _window(floor: Floor, e: dict[str, Any], state: str) -> None:
    if e.get("window") is not None:
        floor["windows"][str(e["window"])] = state
        if state == "closed":
            floor["calling"].pop(str(e["window"]), None)


def _day_started(floor: Floor, e: dict[str, Any], data: dict[str, Any]) -> None:
    floor.update(day=data.get("day"), waiting={}, serving={}, evaluated=0, satisfied=0, calling={})


def _issued(floor: Floor, e: dict[str, Any], data: dict[str, Any]) -> None:
    floor["waiting"][e["ticket"]] = data.get("service")


def _called(floor: Floor, e: dict[str, Any], data: dict[str, Any]) -> None:
    service = floor["waiting"].pop(e["ticket"], data.get("service"))
    floor["serving"][e["ticket"]] = service
    if e.get("window") is not None:  # the number the window shows (its label), for the drill-down
        floor["calling"][str(e["window"])] = data.get("label") or e["ticket"]


def _missed(floor: Floor, e: dict[str, Any], data: dict[str, Any]) -> None:
    service = floor["serving"].pop(e["ticket"], None)
    if data.get("requeued") and service is not None:
        floor["waiting"][e["ticket"]] = service


def _transferred(floor: Floor, e: dict[str, Any], data: dict[str, Any]) -> None:
    floor["serving"].pop(e["ticket"], None)
    floor["waiting"][e["ticket"]] = data.get("target")


def _requeued(floor: Floor, e: dict[str, Any], data: dict[str, Any]) -> None:
    floor["serving"].pop(e["ticket"], None)
    floor["waiting"][e["ticket"]] = data.get("service")


def _ended(floor: Floor, e: dict[str, Any], data: dict[str, Any]) -> None:
    floor["waiting"].pop(e["ticket"], None)
    floor["serving"].pop(e["ticket"], None)


def _evaluated(floor: Floor, e: dict[str, Any], data: dict[str, Any]) -> None:
    if data.get("channel") == SYSTEM_DEFAULT:  # a default grade is never a citizen's
        return
    grade = by_label(data.get("grade"))
    if grade is None:
        return
    floor["evaluated"] += 1
    floor["satisfied"] += not grade.is_bad


_TICKETS = {
    ev.DAY_STARTED: _day_started, ev.TICKET_ISSUED: _issued, ev.TICKET_CALLED: _called,
    ev.TICKET_MISSED: _missed, ev.TICKET_TRANSFERRED: _transferred, ev.TICKET_REQUEUED: _requeued,
    ev.TICKET_FINISHED: _ended, ev.TICKET_CANCELLED: _ended, ev.TICKET_EVALUATED: _evaluated,
}
# a ticket leaves the window that called it (the window shows no number until its next call)
_LEAVE_WINDOW = (ev.TICKET_MISSED, ev.TICKET_TRANSFERRED, ev.TICKET_REQUEUED, ev.TICKET_FINISHED,
                 ev.TICKET_CANCELLED)
_WINDOWS = {ev.WINDOW_OPENED: "open", ev.WINDOW_RESUMED: "open", ev.WINDOW_PAUSED: "paused",
            ev.WINDOW_CLOSED: "closed"}


def _device(floor: Floor, data: dict[str, Any]) -> None:
    device = data.get("device")
    if isinstance(device, str):
        floor["devices"][device] = {"state": data.get("state"), "detail": data.get("detail") or "",
                                    "since": data.get("at")}


def fold(floor: Floor, events: list[dict[str, Any]]) -> Floor:
    """`floor` after `events` (the hall's, in its log's order)."""
    floor = {**empty(), **floor}
    for e in events:
        kind = e["kind"]
        if kind == ev.DEVICE_HEALTH:
            _device(floor, {**(e.get("data") or {}), "at": e.get("at")})
        elif kind in _WINDOWS:
            _window(floor, e, _WINDOWS[kind])
        elif kind in _TICKETS and (e.get("ticket") is not None or kind == ev.DAY_STARTED):
            if kind in _LEAVE_WINDOW and e.get("window") is not None:
                floor["calling"].pop(str(e["window"]), None)
            _TICKETS[kind](floor, e, e.get("data") or {})
    return floor


def summary(floor: Floor) -> dict[str, Any]:
    """The floor as `GET /api/v1/halls` gives it."""
    floor = {**empty(), **floor}
    queues: dict[str, int] = {}
    for service in floor["waiting"].values():
        queues[str(service)] = queues.get(str(service), 0) + 1
    windows = floor["windows"]
    evaluated = floor["evaluated"]
    return {
        "day": floor["day"],
        "queues": dict(sorted(queues.items())),
        "waiting": len(floor["waiting"]),
        "windows_open": sorted(int(w) for w, s in windows.items() if s == "open"),
        "windows_paused": sorted(int(w) for w, s in windows.items() if s == "paused"),
        # devices whose last report was not online (offline, or fault: paper out, a SAM failure)
        "device_faults": [{"device": d, **h} for d, h in sorted(floor["devices"].items()) if h["state"] != "online"],
        # the hall day's 好差评 so far: grades citizens gave (system defaults left out)
        "satisfaction": {"evaluated": evaluated, "satisfied": floor["satisfied"],
                         "rate": round(floor["satisfied"] / evaluated, 4) if evaluated else None},
    }


def windows(floor: Floor) -> list[dict[str, Any]]:
    """The hall's windows as the centre last knew them (those that ever opened), with the
    number each is serving: the drill-down's floor."""
    floor = {**empty(), **floor}
    return [{"window": int(w), "state": state, "calling": floor["calling"].get(w)}
            for w, state in sorted(floor["windows"].items(), key=lambda kv: int(kv[0]))]
