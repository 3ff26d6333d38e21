"""The counter's API: a window calls, recalls, finishes, transfers, pauses; and reads itself.

Only the staff member logged in at the window (or a supervisor) acts on it: whose window
is checked first, on the hall thread, so a refusal is a 403 before anything else.
"""

from __future__ import annotations

import copy
from typing import Any, Callable

from fastapi import APIRouter, Depends

from controller.core import commands as c, identity
from controller.core.errors import HallError
from controller.core.hall import StaffRole
from controller.core.model import Ticket
from controller.runtime.hallcontroller import HallController
from controller.store.sessions import Session
from controller.web import schemas, views
from controller.web.auth import API, SessionDependency

Endpoint = Callable[..., Any]


def acting_for(ctrl: HallController, number: int, s: Session) -> str:
    """On the hall thread: the actor name, if `s` may act on window `number`: its own
    window, or a supervisor."""
    if s.role == StaffRole.SUPERVISOR:
        return f"staff:{s.staff_id}"
    w = ctrl.state.windows.get(number)
    # a B post who took the window over holds it now (顶岗): the A post's page no longer acts
    taken = w is not None and w.staff_id not in (None, s.staff_id)
    if s.window == number and not taken:
        return f"staff:{s.staff_id}"
    err = HallError("not_your_window")
    ctrl.refuse(f"staff:{s.staff_id}", "window_action", {"window": number}, err)
    raise err


def window_routes(ctrl: HallController, session: SessionDependency) -> APIRouter:
    r = APIRouter()
    _window_actions(r, ctrl, session)

    @r.get(f"{API}/windows/{{no}}", tags=["windows"],
           summary="One window for its counter: state, its queues, the last visit's grade")
    async def get_window(no: int, s: Session = Depends(session)) -> dict[str, Any]:
        if no not in ctrl.hall.windows:
            raise HallError("unknown_window")
        body, current = await ctrl.arun(lambda: _counter_view(ctrl, no, s))
        if current is not None:  # for the counter: whose visit, and whether a callback can reach them
            body["current"].update(
                real_name=current.real_name, name_masked=current.name_masked,
                phone_masked=ctrl.sealer.phone_masked(current.phone_sealed) if ctrl.sealer else None)
        return body

    return r


def _window_actions(r: APIRouter, ctrl: HallController, session: SessionDependency) -> None:
    """POST /windows/{no}/<action>: each a command on the hall thread, answered with the
    ticket it moved."""

    def action(path: str, summary: str) -> Callable[[Endpoint], Endpoint]:
        return r.post(f"{API}/windows/{{no}}/{path}", tags=["windows"], summary=summary,
                      name=f"window_{path.replace('-', '_')}")

    async def act(no: int, s: Session, path: str, make: Callable[[], c.Command]) -> dict[str, Any]:
        # whose window, the command and its answer in one step on the hall thread
        return await ctrl.arun(lambda: _act(ctrl, no, s, path, make))

    def without_body(path: str, summary: str, make: Callable[[int], c.Command]) -> None:
        async def endpoint(no: int, s: Session = Depends(session)) -> dict[str, Any]:
            return await act(no, s, path, lambda: make(no))
        action(path, summary)(endpoint)

    without_body("call", "叫号: call the next ticket", c.CallNext)

    @action("call-number", "叫指定号: call one ticket out of order (audited)")
    async def call_number(no: int, body: schemas.CallNumberRequest,
                          s: Session = Depends(session)) -> dict[str, Any]:
        return await act(no, s, "call-number",
                         lambda: c.CallNumber(no, body.number, body.reason, body.note))

    without_body("recall", "重呼: call the current ticket again", c.Recall)
    without_body("no-show", "过号: the current ticket's holder did not come", c.NoShow)
    without_body("finish", "办结: the current service is done", c.Finish)

    @action("transfer", "转办: send the current ticket to another service")
    async def transfer(no: int, body: schemas.TransferRequest,
                       s: Session = Depends(session)) -> dict[str, Any]:
        return await act(no, s, "transfer", lambda: c.Transfer(no, body.service))

    @action("pause", "暂停服务: pause with a reason and expected minutes")
    async def pause(no: int, body: schemas.PauseRequest,
                    s: Session = Depends(session)) -> dict[str, Any]:
        return await act(no, s, "pause",
                         lambda: c.Pause(no, body.reason, body.minutes, body.whereabouts))

    without_body("resume", "恢复服务: resume after a pause", c.Resume)

    @action("phone", "登记电话: add or correct the phone of the current (real-name) visit, "
            "for the callback of a bad review")
    async def phone(no: int, body: schemas.PhoneRequest,
                    s: Session = Depends(session)) -> dict[str, Any]:
        return await act(no, s, "phone", lambda: _set_phone(ctrl, no, body.phone))


def _act(ctrl: HallController, no: int, s: Session, path: str,
         make: Callable[[], c.Command]) -> dict[str, Any]:
    """On the hall thread: whose window first (403 before any check of the body), then the
    command; a refusal while building it (a wrong phone) is audited like the engine's own."""
    actor = acting_for(ctrl, no, s)
    try:
        cmd = make()
    except HallError as e:
        ctrl.refuse(actor, f"window_{path.replace('-', '_')}", {"window": no}, e)
        raise
    return _run(ctrl, cmd, actor)


def _counter_view(ctrl: HallController, no: int, s: Session) -> tuple[dict[str, Any], Ticket | None]:
    """On the hall thread: the window as its counter sees it, and a copy of its current ticket."""
    if s.role not in (StaffRole.SUPERVISOR, StaffRole.ADMIN):
        acting_for(ctrl, no, s)
    body = views.window_json(ctrl.engine, ctrl.state, no, ctrl.clock())
    current = ctrl.state.tickets.get(body["current"]["id"]) if body["current"] else None
    return body, copy.copy(current)


def _set_phone(ctrl: HallController, window: int, phone: str) -> c.SetPhone:
    """The counter's phone for its current visit, checked and sealed before the engine sees it."""
    checked = identity.normalise_phone(phone)
    if checked is None:
        raise HallError("invalid_phone")
    if ctrl.sealer is None:
        raise RuntimeError("this hall has no identity sealer: real-name tickets are off")
    return c.SetPhone(window, ctrl.sealer.seal(checked, None), identity.mask_phone(checked))


def _run(ctrl: HallController, cmd: c.Command, actor: str) -> dict[str, Any]:
    """On the hall thread: the command, and the ticket it moved as it stands after it."""
    out = ctrl.execute(cmd, actor)
    t = out.ticket
    ticket = views.ticket_json(ctrl.engine, ctrl.state, t, ctrl.clock()) if t else None
    return {"ticket": ticket, "events": [e.kind for e in out.events]}
