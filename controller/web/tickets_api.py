"""取号 and a ticket's record: taking a ticket (staff, guidance desk, a kiosk page) and reading
one with its status history (the slip's QR code leads to the phone page instead,
controller.web.phone_api)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from controller.core import commands as c
from controller.core.errors import HallError
from controller.core.model import HallState
from controller.runtime.hallcontroller import HallController
from controller.store.kiosk_credentials import KioskCredentials
from controller.store.sessions import Session
from controller.web import schemas, views
from controller.web.auth import API, READERS, OptionalSessionDependency
from controller.web.kiosk_api import kiosk_of_request
from controller.web.limits import Limits, Reservation, client_address


def ticket_routes(ctrl: HallController, optional_session: OptionalSessionDependency,
                  limits: Limits, kiosk_credentials: KioskCredentials) -> APIRouter:
    r = APIRouter()

    @r.post(f"{API}/tickets", status_code=201, tags=["tickets"],
            summary="取号: take a ticket (the kiosk channel needs a kiosk's key instead of a login; "
                    "priority only from the guidance desk, a green-channel window or a supervisor)")
    async def issue_ticket(body: schemas.TicketRequest, request: Request,
                           s: Session | None = Depends(optional_session)) -> dict[str, Any]:
        if body.channel != "kiosk" and s is None:
            raise HallError("not_logged_in", "工作人员取号或预约签到需要登录")
        # the kiosk channel without a login: a kiosk's key (a kiosk page with no printer)
        kiosk_id = None if s else await kiosk_of_request(ctrl, kiosk_credentials, request,
                                                         "issue_ticket", {"service": body.service})
        actor = f"staff:{s.staff_id}" if s else f"kiosk:{kiosk_id}"
        # without a login, the address tells a flood from one kiosk; reserved before the issue
        held = (await limits.reserve_address(client_address(request), {"service": body.service})
                if s is None else None)
        return await _issue(ctrl, body, s, actor, held)

    @r.get(f"{API}/tickets/{{ticket_id}}", tags=["tickets"],
           summary="A ticket with its status history")
    async def get_ticket(ticket_id: str,
                         s: Session | None = Depends(optional_session)) -> dict[str, Any]:
        body = await ctrl.aask(lambda state: _ticket_with_history(ctrl, state, ticket_id))
        # anyone may ask, and ticket ids are guessable: without a login, no names
        if s is None:
            return views.anonymous_ticket(body)
        if s.role not in READERS:  # as on the event stream: no grades, nor who acted
            body["history"] = [views.public_event(e) for e in body["history"]]
        return body

    return r


async def _issue(ctrl: HallController, body: schemas.TicketRequest, s: Session | None, actor: str,
                 held: Reservation | None) -> dict[str, Any]:
    """The ticket issued; a refusal gives back the address's reservation."""
    try:
        citizen = ctrl.citizen(body.id_number, body.name, body.phone) if body.id_number else None
        # priority only from staff whose post may grant it (controller.core.priority)
        out = await ctrl.submit(c.IssueTicket(body.service, body.channel, citizen, body.priority,
                                              body.appointment_at, s.staff_id if s else None),
                                actor)
    except HallError:
        if held:
            held.release()
        raise
    return views.issued_json(ctrl.hall, out)


def _ticket_with_history(ctrl: HallController, state: HallState, ticket_id: str) -> dict[str, Any]:
    """On the hall thread (`ask`: the store has every command applied to `state`): today's
    ticket as it stands, or an earlier day's from the store, with its history."""
    t = state.tickets.get(ticket_id)
    body = views.ticket_json(ctrl.engine, state, t, ctrl.clock()) if t else None
    if body is None:
        old = ctrl.store.ticket(ticket_id)
        if old is None:
            raise HallError("unknown_ticket")
        body = views.ticket_json(ctrl.engine, None, old, ctrl.clock())
    body["history"] = ctrl.store.ticket_history(ticket_id)
    return body
