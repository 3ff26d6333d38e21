"""The kiosk's API: taking and reprinting tickets, scanned codes, appointments, estimate figures."""

import asyncio
import datetime as dt
from typing import Any, Callable

from fastapi import APIRouter, Depends, Header

from controller import reports
from controller.appointments import Appointments
from controller.core.errors import HallError
from controller.core.hall import StaffRole
from controller.hallcontroller import HallController
from controller.kiosk import REQUEST_KEY_MINUTES, Kiosk
from controller.store.sessions import Session
from controller.web import schemas, views
from controller.web.limits import Limits

API = "/api/v1"


# Bookings and figures are for the hall's supervisors and admins.
MANAGERS = (StaffRole.SUPERVISOR, StaffRole.ADMIN)


def kiosk_routes(ctrl: HallController, kiosks: dict[str, Kiosk],
                 session: Callable[..., Session], limits: Limits | None = None) -> APIRouter:
    r = APIRouter()
    appointments = Appointments(ctrl)

    def kiosk_named(kiosk_id: str) -> Kiosk:
        if kiosk_id not in kiosks:
            raise HallError("unknown_kiosk", f"没有这台取号机：{kiosk_id}")
        return kiosks[kiosk_id]

    @r.post(f"{API}/kiosks/{{kiosk_id}}/tickets", status_code=201, tags=["kiosk"],
            summary="取号机取号: issue and print (the identity waiting at the kiosk makes it real-name)",
            description="The identity waiting at the kiosk (a card on the reader, a typed number) is "
                        "used for this one ticket and then forgotten. With an `Idempotency-Key` "
                        f"header, the same key again within {REQUEST_KEY_MINUTES} minutes answers "
                        "with the same ticket (`repeated`: true) and prints nothing; later it is "
                        "refused (409 request_key_used).")
    async def kiosk_ticket(kiosk_id: str, body: schemas.KioskTicketRequest,
                           request_key: str | None = Header(
                               None, alias="Idempotency-Key", min_length=8, max_length=64,
                               pattern=r"^[A-Za-z0-9_-]+$",
                               description="one per tap: a repeat gets the same ticket")
                           ) -> dict[str, Any]:
        kiosk = kiosk_named(kiosk_id)
        if limits:  # ticket flooding: a kiosk issues a few a minute, not hundreds
            limits.check_kiosk(kiosk_id, {"service": body.service})
        # printing waits for the printer: off the event loop
        got = await asyncio.to_thread(kiosk.take_ticket, body.service, body.id_number,
                                      body.name, body.priority, body.phone, request_key)
        if limits and not got.repeated:
            limits.kiosk_issued(kiosk_id)
        return {**views.issued_json(ctrl.hall, got.outcome), "printed": got.printed,
                "paper_near_end": got.paper_near_end, "repeated": got.repeated,
                "phone_masked": kiosk.phone_masked(got.outcome.ticket)}

    @r.post(f"{API}/kiosks/{{kiosk_id}}/identity", tags=["kiosk"],
            summary="输入身份证号: hold a typed ID number for the next ticket at this kiosk")
    async def kiosk_identity(kiosk_id: str, body: schemas.KioskIdentityRequest) -> dict[str, Any]:
        kiosk = kiosk_named(kiosk_id)
        await asyncio.to_thread(kiosk.hold, body.id_number, None, "typed")
        return await asyncio.to_thread(kiosk.view)

    @r.post(f"{API}/kiosks/{{kiosk_id}}/identity/phone", tags=["kiosk"],
            summary="留电话: a phone for the callback, beside the identity waiting at the kiosk")
    async def kiosk_phone(kiosk_id: str, body: schemas.PhoneRequest) -> dict[str, Any]:
        kiosk = kiosk_named(kiosk_id)
        await asyncio.to_thread(kiosk.hold_phone, body.phone)
        return await asyncio.to_thread(kiosk.view)

    @r.post(f"{API}/kiosks/{{kiosk_id}}/identity/touch", tags=["kiosk"],
            summary="The citizen is still typing: the identity's idle period starts again")
    async def kiosk_touch(kiosk_id: str) -> dict[str, Any]:
        kiosk = kiosk_named(kiosk_id)
        await asyncio.to_thread(kiosk.touch)
        return await asyncio.to_thread(kiosk.view)

    @r.delete(f"{API}/kiosks/{{kiosk_id}}/identity", tags=["kiosk"],
              summary="清除: forget the identity (and phone) waiting at the kiosk")
    async def kiosk_clear(kiosk_id: str) -> dict[str, Any]:
        kiosk = kiosk_named(kiosk_id)
        await asyncio.to_thread(kiosk.clear)
        return await asyncio.to_thread(kiosk.view)

    @r.post(f"{API}/kiosks/{{kiosk_id}}/scan", tags=["kiosk"],
            summary="扫码: a code shown at the kiosk (ID number, or appointment check-in)")
    async def kiosk_scan(kiosk_id: str, body: schemas.ScanRequest) -> dict[str, Any]:
        kiosk = kiosk_named(kiosk_id)
        got = await asyncio.to_thread(kiosk.scanned, body.code)
        if got is None:
            return {"kind": "id_number", "kiosk": await asyncio.to_thread(kiosk.view)}
        return {"kind": "appointment", **views.issued_json(ctrl.hall, got.outcome),
                "printed": got.printed, "paper_near_end": got.paper_near_end}

    @r.post(f"{API}/appointments", status_code=201, tags=["kiosk"],
            summary="预约: import a booking (supervisor or admin); the code checks it in")
    async def book(body: schemas.AppointmentRequest, s: Session = Depends(session)) -> dict[str, Any]:
        s.require(*MANAGERS)
        return appointments.book(body.service, body.slot, f"staff:{s.staff_id}", body.id_number,
                                 body.name, body.code).to_json()

    @r.get(f"{API}/appointments", tags=["kiosk"], summary="The day's bookings (supervisor or admin)")
    async def booked(day: dt.date | None = None, s: Session = Depends(session)) -> list[dict[str, Any]]:
        s.require(*MANAGERS)
        return [a.to_json() for a in appointments.on_day(day or ctrl.clock().date())]

    @r.get(f"{API}/kiosks/{{kiosk_id}}", tags=["kiosk"],
           summary="A kiosk now: card waiting, reader message, printer state")
    async def kiosk_view(kiosk_id: str) -> dict[str, Any]:
        return await asyncio.to_thread(kiosk_named(kiosk_id).view)

    @r.post(f"{API}/tickets/{{ticket_id}}/reprint", tags=["kiosk"],
            summary="补打: staff reprint a waiting ticket")
    async def reprint(ticket_id: str, body: schemas.ReprintRequest | None = None,
                      s: Session = Depends(session)) -> dict[str, Any]:
        name = body.kiosk if body and body.kiosk else next(iter(kiosks), None)
        if name is None:
            raise HallError("unknown_kiosk", "这个大厅没有取号机")
        await asyncio.to_thread(kiosk_named(name).reprint, ticket_id, f"staff:{s.staff_id}")
        return {"ok": True, "kiosk": name}

    @r.get(f"{API}/reports/estimates", tags=["reports"],
           summary="Printed wait estimates against actual waits (supervisor or admin)")
    async def estimates(day: dt.date | None = None, s: Session = Depends(session)) -> dict[str, Any]:
        s.require(*MANAGERS)
        with ctrl.lock:
            return reports.estimate_accuracy(ctrl.store.db, day or ctrl.clock().date())

    return r
