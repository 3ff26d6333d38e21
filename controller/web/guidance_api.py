"""帮办代办: the kiosk's call to the guidance desk (导办台), and the desk's list of calls.

A citizen presses 帮办代办 at a kiosk (001 5.1.6.3): the kiosk's key says which kiosk calls.
The call is a command (`CallGuidance`) through the hall thread like any other, and it stands
on `GET /api/v1/guidance-calls` (the supervisor's alerts) until the guidance desk or a
supervisor answers it (`AnswerGuidance`).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from controller.core import commands as c
from controller.core.errors import HallError
from controller.core.hall import StaffRole
from controller.core.model import HallState
from controller.runtime.hallcontroller import HallController
from controller.store.kiosk_credentials import KioskCredentials
from controller.store.sessions import Session
from controller.web.auth import API, SessionDependency
from controller.web.kiosk_api import kiosk_of_request

CALLED = "已通知导办台，工作人员马上就到，请在取号机旁稍候"


def guidance_routes(ctrl: HallController, session: SessionDependency,
                    credentials: KioskCredentials) -> APIRouter:
    r = APIRouter()

    def require_desk(s: Session) -> None:
        """Supervisors, admins (reading) and the guidance desk's staff see the calls."""
        staff = ctrl.hall.staff.get(s.staff_id)
        if s.role in (StaffRole.SUPERVISOR, StaffRole.ADMIN) or (staff and staff.guidance_desk):
            return
        raise HallError("forbidden_role")

    def calls(state: HallState) -> list[dict[str, Any]]:
        return [{"kiosk": kiosk, "called_at": at.isoformat()}
                for kiosk, at in sorted(state.guidance_calls.items(), key=lambda kv: kv[1])]

    @r.post(f"{API}/kiosk/guidance", tags=["kiosk"],
            summary="帮办代办: the kiosk (its key) calls the guidance desk; once per standing call")
    async def call(request: Request) -> dict[str, Any]:
        kiosk = await kiosk_of_request(ctrl, credentials, request, "guidance_call",
                                       {"route": request.url.path})
        await ctrl.submit(c.CallGuidance(kiosk), f"kiosk:{kiosk}")
        called = await ctrl.aask(lambda state: state.guidance_calls.get(kiosk))
        return {"kiosk": kiosk, "called_at": called.isoformat() if called else None,
                "message": CALLED}

    @r.get(f"{API}/guidance-calls", tags=["kiosk"],
           summary="帮办代办: the kiosks' calls not yet answered, oldest first "
                   "(supervisor, admin, guidance desk)")
    async def standing(s: Session = Depends(session)) -> list[dict[str, Any]]:
        require_desk(s)
        return await ctrl.aask(calls)

    @r.post(f"{API}/guidance-calls/{{kiosk}}/answer", tags=["kiosk"],
            summary="帮办代办: someone has gone to the kiosk (supervisor, guidance desk)")
    async def answer(kiosk: str, s: Session = Depends(session)) -> list[dict[str, Any]]:
        if s.role == StaffRole.ADMIN:
            raise HallError("forbidden_role")
        require_desk(s)
        await ctrl.submit(c.AnswerGuidance(kiosk, s.staff_id), f"staff:{s.staff_id}")
        return await ctrl.aask(calls)

    return r
