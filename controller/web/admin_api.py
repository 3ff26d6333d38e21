"""The Admin page's device routes: 设备自检 (start of day) and 下班关机 (end of day).

Admins only. The check talks to every device and takes a few seconds, so it
runs off the event loop; its result stays available for the page to show and
print until the day ends.
"""

import asyncio
from typing import Any

from fastapi import APIRouter, Depends

from controller.core.errors import HallError
from controller.core.hall import StaffRole
from controller.backoffice.device_check import DeviceCheck
from controller.runtime.hallcontroller import HallController
from controller.store.sessions import Session
from controller.web.auth import API, SessionDependency



def admin_routes(ctrl: HallController, check: DeviceCheck, session: SessionDependency) -> APIRouter:
    r = APIRouter()

    async def admin(s: Session, name: str) -> str:
        actor = f"staff:{s.staff_id}"
        try:
            s.require(StaffRole.ADMIN)
        except HallError as e:
            await ctrl.arefuse(actor, name, {}, e)
            raise
        return actor

    @r.post(f"{API}/admin/device-check", tags=["admin"],
            summary="设备自检: every device answers, a test ticket, each screen and pad flashes")
    async def run_check(s: Session = Depends(session)) -> dict[str, Any]:
        actor = await admin(s, "device_check")
        return await asyncio.to_thread(check.run, actor)

    @r.get(f"{API}/admin/device-check", tags=["admin"], summary="Today's latest device check")
    async def last_check(s: Session = Depends(session)) -> dict[str, Any]:
        await admin(s, "device_check_viewed")
        last = check.last()
        if last is None:
            raise HallError("no_device_check")
        return last

    @r.post(f"{API}/admin/end-of-day", tags=["admin"],
            summary="下班关机: blank the pads, close the window bars and the main display "
                    "(409 while a window is logged in)")
    async def end_of_day(s: Session = Depends(session)) -> dict[str, Any]:
        actor = await admin(s, "end_of_day")
        return await asyncio.to_thread(check.end_of_day, actor)

    return r
