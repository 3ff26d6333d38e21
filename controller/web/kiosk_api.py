"""The kiosk's API: taking and reprinting tickets, scanned codes, appointments, estimate figures."""

import asyncio
import datetime as dt
from typing import Any, Callable

from fastapi import APIRouter, Depends, Header, Request, Response

from controller.backoffice import reports
from controller.entrance.appointments import Appointments
from controller.core.errors import HallError
from controller.core.hall import StaffRole
from controller.runtime.hallcontroller import HallController
from controller.entrance.kiosk import REQUEST_KEY_MINUTES, Kiosk, KioskTicket
from controller.store.kiosk_credentials import KioskCredentials
from controller.store.sessions import Session
from controller.web import schemas, views
from controller.web.limits import Limits, Reservation, client_address
from controller.web.pages import PAGE_HEADER
from controller.web.auth import API, SessionDependency



# Bookings and figures are for the hall's supervisors and admins.
MANAGERS = (StaffRole.SUPERVISOR, StaffRole.ADMIN)
# The kiosk's key (controller.store.kiosk_credentials): the kiosk page's HttpOnly cookie, or
# this header from a kiosk that is not a page.
KIOSK_COOKIE = "hall_kiosk"
KIOSK_HEADER = "x-kiosk-key"
KIOSK_COOKIE_DAYS = 3650  # the kiosk machine keeps it until the admin replaces or revokes it


def presented_key(request: Request) -> str | None:
    """The kiosk key a request carries. Like the staff session cookie, the cookie alone does
    not authorise a change: an unsafe request must also carry PAGE_HEADER, which no
    cross-site form can set."""
    key = request.headers.get(KIOSK_HEADER)
    if key:
        return key.strip()
    key = request.cookies.get(KIOSK_COOKIE)
    if key and request.method not in ("GET", "HEAD") and PAGE_HEADER not in request.headers:
        return None
    return key


async def kiosk_of_request(ctrl: HallController, credentials: KioskCredentials, request: Request,
                           name: str, args: dict[str, Any]) -> str:
    """The kiosk whose live key the request carries; 401 (audited) without one."""
    key = presented_key(request)
    # a read of the hall's database, on the hall thread, which holds its connection: off the
    # event loop, and without a worker thread waiting for the connection's lock while the
    # hall thread commits (and the hall thread waiting for it in turn)
    kiosk_id = await ctrl.aask(lambda _state: credentials.kiosk_of(key))
    if kiosk_id is None:
        err = HallError("bad_kiosk_key" if key else "kiosk_key_required")
        await ctrl.arefuse("kiosk", name, {**args, "address": client_address(request)}, err)
        raise err
    return kiosk_id


class _Kiosks:
    """The hall's kiosks as the routes reach them: by id, and acting as one only with its key."""

    def __init__(self, ctrl: HallController, kiosks: dict[str, Kiosk],
                 credentials: KioskCredentials) -> None:
        self.ctrl, self.kiosks, self.credentials = ctrl, kiosks, credentials

    def named(self, kiosk_id: str) -> Kiosk:
        if kiosk_id not in self.kiosks:
            raise HallError("unknown_kiosk", f"没有这台取号机：{kiosk_id}")
        return self.kiosks[kiosk_id]

    # Every route that acts as a kiosk depends on this: only the kiosk's own key opens it
    # (issue 14: anyone on the LAN spent a kiosk's quota and paper and read or wiped the
    # identity waiting there).
    async def this_kiosk(self, kiosk_id: str, request: Request) -> str:
        holder = await kiosk_of_request(self.ctrl, self.credentials, request, "kiosk_request",
                                        {"kiosk": kiosk_id, "route": request.url.path})
        self.named(kiosk_id)  # a kiosk asking for one that does not exist: a clear 404
        if holder != kiosk_id:
            err = HallError("kiosk_key_other")
            await self.ctrl.arefuse(f"kiosk:{holder}", "kiosk_request",
                                    {"kiosk": kiosk_id, "route": request.url.path}, err)
            raise err
        return kiosk_id

    async def screen_after(self, kiosk_id: str, act: Callable[[Kiosk], Any]) -> dict[str, Any]:
        """Do `act` at the kiosk (it takes the kiosk's lock and writes the audit log: off the
        event loop), then answer with what the kiosk's screen shows now."""
        kiosk = self.named(kiosk_id)

        def run() -> dict[str, Any]:
            act(kiosk)
            return kiosk.view()
        return await asyncio.to_thread(run)


def kiosk_routes(ctrl: HallController, kiosks: dict[str, Kiosk],
                 session: SessionDependency, limits: Limits | None = None,
                 credentials: KioskCredentials | None = None) -> APIRouter:
    r = APIRouter()
    at = _Kiosks(ctrl, kiosks, credentials or KioskCredentials(ctrl.store))
    _key_routes(r, at, session)
    _citizen_routes(r, at, limits)
    _appointment_routes(r, ctrl, session)
    _kiosk_state_routes(r, at, session)
    return r


def _key_routes(r: APIRouter, at: _Kiosks, session: SessionDependency) -> None:
    """The kiosk's key: the kiosk page enrols with it; an admin issues and revokes it."""
    ctrl, credentials, kiosks = at.ctrl, at.credentials, at.kiosks

    @r.post(f"{API}/kiosk/enrol", tags=["kiosk"],
            summary="登记取号机: the kiosk page presents its key once; the answer sets its cookie",
            description="The key (`KIOSK.SECRET`, from `hallctl kiosk-credential` or the admin "
                        "API) is kept in an HttpOnly cookie, so no script on the page reads it.")
    async def enrol(body: schemas.KioskEnrolRequest, request: Request,
                    response: Response) -> dict[str, Any]:
        kiosk_id = await asyncio.to_thread(credentials.kiosk_of, body.key)
        if kiosk_id is None:
            err = HallError("bad_kiosk_key")
            await ctrl.arefuse("kiosk", "kiosk_enrol", {"address": client_address(request)}, err)
            raise err
        await ctrl.anote(f"kiosk:{kiosk_id}", "kiosk_enrol", {"address": client_address(request)})
        response.set_cookie(KIOSK_COOKIE, body.key.strip(), httponly=True, samesite="strict",
                            path="/", max_age=KIOSK_COOKIE_DAYS * 86400)
        return {"kiosk": kiosk_id, "device": kiosk_id in kiosks}

    @r.get(f"{API}/kiosk/me", tags=["kiosk"],
           summary="Which kiosk this device is (its key); 401 if it has none")
    async def kiosk_me(request: Request) -> dict[str, Any]:
        kiosk_id = await kiosk_of_request(ctrl, credentials, request, "kiosk_request",
                                          {"route": request.url.path})
        return {"kiosk": kiosk_id, "device": kiosk_id in kiosks}

    @r.post(f"{API}/kiosks/{{kiosk_id}}/credential", tags=["kiosk"],
            summary="设置取号机密钥 (admin): a new key for the kiosk, shown this once; the old one ends")
    async def new_credential(kiosk_id: str, s: Session = Depends(session)) -> dict[str, Any]:
        s.require(StaffRole.ADMIN)
        try:
            key = await asyncio.to_thread(credentials.issue, kiosk_id, f"staff:{s.staff_id}",
                                          ctrl.clock())
        except ValueError:
            raise HallError("invalid_kiosk_id") from None
        await ctrl.anote(f"staff:{s.staff_id}", "kiosk_credential_issued", {"kiosk": kiosk_id})
        return {"kiosk": kiosk_id, "key": key.key, "device": kiosk_id in kiosks}

    @r.delete(f"{API}/kiosks/{{kiosk_id}}/credential", tags=["kiosk"],
              summary="停用取号机密钥 (admin): the kiosk's key ends at once")
    async def revoke_credential(kiosk_id: str, s: Session = Depends(session)) -> dict[str, Any]:
        s.require(StaffRole.ADMIN)
        revoked = await asyncio.to_thread(credentials.revoke, kiosk_id, f"staff:{s.staff_id}",
                                          ctrl.clock())
        await ctrl.anote(f"staff:{s.staff_id}", "kiosk_credential_revoked",
                         {"kiosk": kiosk_id, "revoked": revoked})
        return {"kiosk": kiosk_id, "revoked": revoked}


def _citizen_routes(r: APIRouter, at: _Kiosks, limits: Limits | None) -> None:
    """What a citizen does at the kiosk: a ticket, an identity typed or a phone left, a code
    scanned. Each only with the kiosk's own key."""

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
                               description="one per tap: a repeat gets the same ticket"),
                           _: str = Depends(at.this_kiosk)) -> dict[str, Any]:
        kiosk = at.named(kiosk_id)
        # ticket flooding: a kiosk issues a few a minute, not hundreds; reserved before the print
        held = await limits.reserve_kiosk(kiosk_id, {"service": body.service}) if limits else None
        got = await _take_ticket(kiosk, body, request_key, held)
        return {**views.issued_json(at.ctrl.hall, got.outcome), "printed": got.printed,
                "paper_near_end": got.paper_near_end, "repeated": got.repeated,
                "phone_masked": kiosk.phone_masked(views.issued_ticket(got.outcome))}

    @r.post(f"{API}/kiosks/{{kiosk_id}}/identity", tags=["kiosk"],
            summary="输入身份证号: hold a typed ID number for the next ticket at this kiosk")
    async def kiosk_identity(kiosk_id: str, body: schemas.KioskIdentityRequest,
                             _: str = Depends(at.this_kiosk)) -> dict[str, Any]:
        return await at.screen_after(kiosk_id, lambda k: k.hold(body.id_number, None, "typed"))

    @r.post(f"{API}/kiosks/{{kiosk_id}}/identity/phone", tags=["kiosk"],
            summary="留电话: a phone for the callback, beside the identity waiting at the kiosk")
    async def kiosk_phone(kiosk_id: str, body: schemas.PhoneRequest,
                          _: str = Depends(at.this_kiosk)) -> dict[str, Any]:
        return await at.screen_after(kiosk_id, lambda k: k.hold_phone(body.phone))

    @r.post(f"{API}/kiosks/{{kiosk_id}}/identity/touch", tags=["kiosk"],
            summary="The citizen is still typing: the identity's idle period starts again")
    async def kiosk_touch(kiosk_id: str,
                          _: str = Depends(at.this_kiosk)) -> dict[str, Any]:
        return await at.screen_after(kiosk_id, lambda k: k.touch())

    @r.delete(f"{API}/kiosks/{{kiosk_id}}/identity", tags=["kiosk"],
              summary="清除: forget the identity (and phone) waiting at the kiosk")
    async def kiosk_clear(kiosk_id: str,
                          _: str = Depends(at.this_kiosk)) -> dict[str, Any]:
        return await at.screen_after(kiosk_id, lambda k: k.clear())

    @r.post(f"{API}/kiosks/{{kiosk_id}}/scan", tags=["kiosk"],
            summary="扫码: a code shown at the kiosk (ID number, or appointment check-in)")
    async def kiosk_scan(kiosk_id: str, body: schemas.ScanRequest,
                         _: str = Depends(at.this_kiosk)) -> dict[str, Any]:
        kiosk = at.named(kiosk_id)
        got = await asyncio.to_thread(kiosk.scanned, body.code)
        if got is None:
            return {"kind": "id_number", "kiosk": await asyncio.to_thread(kiosk.view)}
        return {"kind": "appointment", **views.issued_json(at.ctrl.hall, got.outcome),
                "printed": got.printed, "paper_near_end": got.paper_near_end}


async def _take_ticket(kiosk: Kiosk, body: schemas.KioskTicketRequest, request_key: str | None,
                       held: Reservation | None) -> KioskTicket:
    """The ticket issued and printed; the kiosk's reservation given back when nothing was
    issued (a refusal before the issue) or nothing printed (the same tap again)."""
    try:
        # printing waits for the printer: off the event loop
        got = await asyncio.to_thread(kiosk.take_ticket, body.service, body.id_number,
                                      body.name, body.priority, body.phone, request_key)
    except HallError as e:
        if held and not getattr(e, "ticket_issued", None):
            held.release()  # refused before any ticket was issued: it spent nothing
        raise
    if held and got.repeated:
        held.release()  # the same tap again: nothing printed
    return got


def _appointment_routes(r: APIRouter, ctrl: HallController, session: SessionDependency) -> None:
    """预约: bookings imported by a supervisor or admin; the kiosk checks them in by code."""
    appointments = Appointments(ctrl)

    @r.post(f"{API}/appointments", status_code=201, tags=["kiosk"],
            summary="预约: import a booking (supervisor or admin); the code checks it in")
    async def book(body: schemas.AppointmentRequest, s: Session = Depends(session)) -> dict[str, Any]:
        s.require(*MANAGERS)
        booked = await asyncio.to_thread(appointments.book, body.service, body.slot,
                                         f"staff:{s.staff_id}", body.id_number, body.name, body.code)
        return booked.to_json()

    @r.get(f"{API}/appointments", tags=["kiosk"], summary="The day's bookings (supervisor or admin)")
    async def booked(day: dt.date | None = None, s: Session = Depends(session)) -> list[dict[str, Any]]:
        s.require(*MANAGERS)
        return [a.to_json() for a in await asyncio.to_thread(appointments.on_day,
                                                             day or ctrl.clock().date())]


def _kiosk_state_routes(r: APIRouter, at: _Kiosks, session: SessionDependency) -> None:
    """What a kiosk shows and printed: its state now, a reprint, and how the printed wait
    estimates compared with the actual waits."""
    ctrl, kiosks = at.ctrl, at.kiosks

    @r.get(f"{API}/kiosks/{{kiosk_id}}", tags=["kiosk"],
           summary="A kiosk now: card waiting, reader message, printer state")
    async def kiosk_view(kiosk_id: str,
                         _: str = Depends(at.this_kiosk)) -> dict[str, Any]:
        return await asyncio.to_thread(at.named(kiosk_id).view)

    @r.post(f"{API}/tickets/{{ticket_id}}/reprint", tags=["kiosk"],
            summary="补打: staff reprint a waiting ticket")
    async def reprint(ticket_id: str, body: schemas.ReprintRequest | None = None,
                      s: Session = Depends(session)) -> dict[str, Any]:
        name = body.kiosk if body and body.kiosk else next(iter(kiosks), None)
        if name is None:
            raise HallError("unknown_kiosk", "这个大厅没有取号机")
        await asyncio.to_thread(at.named(name).reprint, ticket_id, f"staff:{s.staff_id}")
        return {"ok": True, "kiosk": name}

    @r.get(f"{API}/reports/estimates", tags=["reports"],
           summary="Printed wait estimates against actual waits (supervisor or admin)")
    async def estimates(day: dt.date | None = None, s: Session = Depends(session)) -> dict[str, Any]:
        s.require(*MANAGERS)

        def read() -> dict[str, Any]:
            with ctrl.store.reads.snapshot() as db:
                return reports.estimate_accuracy(db, day or ctrl.clock().date())
        return await asyncio.to_thread(read)
