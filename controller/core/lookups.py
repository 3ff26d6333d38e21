"""A command's window, ticket and service, refused (`HallError`) when there is none; and the
queue steps every rule shares. Pure, like the engine."""

from __future__ import annotations

import datetime as dt

from controller.core.errors import HallError
from controller.core.hall import Hall, Service
from controller.core.model import HallState, Ticket, WindowState, WindowStatus


def known_service(hall: Hall, prefix: str) -> Service:
    found = hall.services.get(prefix) if isinstance(prefix, str) else None
    if found is None:
        raise HallError("unknown_service", f"没有这项业务：{prefix}")
    return found


def priority_first(hall: Hall, prefix: str) -> bool:
    return hall.services[prefix].priority_first


def known_window(state: HallState, number: int) -> WindowState:
    w = state.windows.get(number) if isinstance(number, int) else None
    if w is None:
        raise HallError("unknown_window", f"没有 {number} 号窗口")
    return w


def open_window(state: HallState, number: int) -> WindowState:
    w = known_window(state, number)
    if w.status is WindowStatus.CLOSED:
        raise HallError("window_closed")
    if w.status is WindowStatus.PAUSED:
        raise HallError("window_paused")
    return w


def current_ticket(state: HallState, w: WindowState) -> Ticket:
    t = state.current_at(w.number)
    if t is None:
        raise HallError("no_current_ticket")
    return t


def next_seq(state: HallState) -> int:
    state.queue_seq += 1
    return state.queue_seq


def enqueue(hall: Hall, state: HallState, t: Ticket, queued_at: dt.datetime) -> None:
    t.queued_at = queued_at
    t.queue_seq = next_seq(state)
    state.queues.add(t, priority_first(hall, t.service))
