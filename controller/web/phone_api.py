"""The citizen's phone (手机查看排队): the page behind a slip's QR code, and 到号提醒.

A slip's QR code carries `/t/<ticket>?k=<secret>` (controller.entrance.kiosk.phone_link): the
secret is the ticket's own (controller.security.privacy.IdentitySealer.ticket_secret), so a
ticket number, which anyone can guess, opens nothing. The page polls its ticket's own
endpoint, which answers what the slip already says and how it stands now (people ahead,
the wait, the window that called it, recalls, a transfer, finished or missed), nothing
personal and nothing of any other ticket. A wrong or missing secret is a plain Chinese
"not found" (the same whether the ticket exists or not), and an address that keeps trying
secrets is held off like one that keeps trying PINs (`login_failures_per_address` within
`login_failure_minutes`, 429).

到号提醒: the kiosk (its key) or staff sign a waiting ticket up for text messages
(controller.entrance.reminders).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import html
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, HTMLResponse, Response

from controller.core.errors import Category, HallError
from controller.core.estimate import wait_range
from controller.core.model import HallState, Ticket, TicketStatus
from controller.entrance.kiosk import PHONE_PAGE
from controller.entrance.reminders import ReminderDesk, ReminderError
from controller.runtime.hallcontroller import HallController
from controller.security.ratelimit import RateLimit, wait_text
from controller.store.kiosk_credentials import KioskCredentials
from controller.store.sessions import Session
from controller.web import schemas
from controller.web.auth import API, OptionalSessionDependency
from controller.web.kiosk_api import kiosk_of_request
from controller.web.limits import client_address
from controller.web.pages import NO_STORE, STATIC

# the secret rides in the address: no page of the hall's links elsewhere, and none tells
PRIVATE = {**NO_STORE, "Referrer-Policy": "no-referrer", "X-Robots-Tag": "noindex"}


class LinkError(HallError):
    codes = {
        "ticket_link_invalid": (Category.NOT_FOUND, "没有找到这张号：请扫描小票上的二维码，或到导办台咨询"),
        "too_many_link_failures": (Category.TOO_MANY, "查询过于频繁，请稍后再试"),
    }


def phone_routes(ctrl: HallController, reminders: ReminderDesk | None,
                 optional_session: OptionalSessionDependency,
                 kiosk_credentials: KioskCredentials) -> APIRouter:
    r = APIRouter()
    rules = ctrl.hall.rules
    failures = RateLimit(rules.login_failures_per_address,
                         dt.timedelta(minutes=rules.login_failure_minutes))

    async def checked(ticket_id: str, k: str | None, request: Request) -> None:
        """The secret is the ticket's; otherwise a 404 that says nothing of the ticket (and
        counted: an address over the limit gets 429 even with the right one)."""
        address = client_address(request)
        now = ctrl.clock()
        until = failures.blocked_until(address, now)
        if until is not None:
            err = LinkError("too_many_link_failures", f"查询过于频繁，{wait_text(until, now)}",
                            retry_after=max(1, int((until - now).total_seconds() + 0.999)))
            await ctrl.arefuse("phone", "ticket_page", {"address": address}, err)
            raise err
        sealer = ctrl.sealer
        if k and len(k) <= 64 and sealer is not None and sealer.ticket_secret_ok(ticket_id, k):
            return
        failures.hit(address, now)
        err = LinkError("ticket_link_invalid")
        await ctrl.arefuse("phone", "ticket_page", {"address": address}, err)
        raise err

    @r.get(f"{PHONE_PAGE}/{{ticket_id}}", response_class=HTMLResponse, include_in_schema=False)
    async def phone_page(ticket_id: str, request: Request, k: str | None = None) -> Response:
        try:
            await checked(ticket_id, k, request)
        except LinkError as e:
            return _message_page(e)
        return FileResponse(STATIC / "phone.html", headers=PRIVATE)

    @r.get(f"{API}/phone/tickets/{{ticket_id}}", tags=["phone"],
           summary="手机查看排队: one ticket as its holder's phone shows it (the slip's secret `k`)")
    async def phone_ticket(ticket_id: str, request: Request, response: Response,
                           k: str | None = None) -> dict[str, Any]:
        await checked(ticket_id, k, request)
        response.headers.update(PRIVATE)
        return await ctrl.aask(lambda state: phone_view(ctrl, state, ticket_id, reminders))

    @r.get(f"{API}/reminders", tags=["phone"],
           summary="到号提醒: whether the hall sends them, and at how many people ahead")
    async def reminder_settings() -> dict[str, Any]:
        on = reminders is not None and reminders.enabled
        return {"enabled": on, "ahead": reminders.settings.ahead if reminders and on else None}

    @r.post(f"{API}/tickets/{{ticket_id}}/reminder", status_code=201, tags=["phone"],
            summary="到号提醒: text messages for a waiting ticket (a kiosk's key, or a login)")
    async def opt_in(ticket_id: str, body: schemas.PhoneRequest, request: Request,
                     s: Session | None = Depends(optional_session)) -> dict[str, Any]:
        actor = (f"staff:{s.staff_id}" if s else
                 "kiosk:" + await kiosk_of_request(ctrl, kiosk_credentials, request,
                                                   "reminder_opt_in", {"ticket": ticket_id}))
        if reminders is None or not reminders.enabled:
            raise ReminderError("reminders_off")
        # the desk waits for the hall thread: off the event loop
        masked = await asyncio.to_thread(reminders.opt_in, ticket_id, body.phone, actor)
        return {"ticket": ticket_id, "phone_masked": masked, "ahead": reminders.settings.ahead}

    return r


def phone_view(ctrl: HallController, state: HallState, ticket_id: str,
               reminders: ReminderDesk | None) -> dict[str, Any]:
    """On the hall thread: what the phone page shows of today's ticket (or an earlier one)."""
    t: Ticket | None = state.tickets.get(ticket_id) or ctrl.store.ticket(ticket_id)
    if t is None:
        raise LinkError("ticket_link_invalid")
    hall = ctrl.hall
    now = ctrl.clock()
    out: dict[str, Any] = {
        "hall": hall.name, "number": t.label, "service": t.service,
        "service_name": hall.services[t.service].name if t.service in hall.services else t.service,
        "status": str(t.status), "issued_at": t.issued_at.isoformat(), "now": now.isoformat(),
        "window": t.window if t.status is TicketStatus.CALLED else None,
        "called_at": t.called_at.isoformat() if t.called_at else None,
        "recalls": t.recalls, "requeued": t.requeued,
        "transferred_from": None, "people_ahead": None, "wait": None,
        "reminder": reminders is not None and reminders.enabled,
    }
    if t.transfers and t.prefix != t.service and t.prefix in hall.services:
        out["transferred_from"] = {"service": t.prefix, "service_name": hall.services[t.prefix].name}
    if t.status is TicketStatus.WAITING and t.id in state.tickets:
        ahead = ctrl.engine.people_ahead(state, t)
        low, high = wait_range(ctrl.engine.estimate(state, t.service, ahead, now))
        out["people_ahead"], out["wait"] = ahead, {"low": low, "high": high}
    elif t.status is TicketStatus.WAITING:  # an earlier day's, never called: the day ended it
        out["status"] = str(TicketStatus.CANCELLED)
    return out


def _message_page(e: HallError) -> HTMLResponse:
    """The page a wrong link (404) or a guessing address (429) gets: plain Chinese, nothing of
    any ticket."""
    held_off = e.code == "too_many_link_failures"
    title = "查询过于频繁" if held_off else "没有找到这张号"
    says = (html.escape(e.message) if held_off else
            "请扫描本大厅打印的取号小票上的二维码；链接不完整或有误时无法查看。")
    body = f"""<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title><link rel="stylesheet" href="/static/hall.css"></head>
<body class="page-message"><main id="message"><h1>{title}</h1>
<p>{says}</p>
<p>如有疑问，请到导办台咨询工作人员。</p>
</main></body></html>"""
    headers = dict(PRIVATE)
    if e.retry_after:
        headers["Retry-After"] = str(e.retry_after)
    return HTMLResponse(body, status_code=429 if held_off else 404, headers=headers)
