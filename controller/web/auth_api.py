"""Window login (登录), who a token acts for, and logout.

A login checks the PIN under the rate limits (controller.web.limits), takes the window and
answers with a token; pages get the same token as an HttpOnly cookie. Logging out closes
the window and ends every session of that login.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends, Request, Response

from controller.security import pins
from controller.core import commands as c
from controller.core.errors import HallError
from controller.core.hall import Staff, StaffRole
from controller.core.model import HallState
from controller.runtime.hallcontroller import HallController
from controller.store.sessions import Session, SessionStore
from controller.web import schemas
from controller.web.auth import API, SessionDependency, token_of
from controller.web.limits import Limits, client_address
from controller.web.pages import COOKIE


def auth_routes(ctrl: HallController, sessions: SessionStore, session: SessionDependency,
                limits: Limits) -> APIRouter:
    r = APIRouter()

    @r.post(f"{API}/auth/login", tags=["auth"], summary="Window login; the token acts for that window")
    async def login(body: schemas.LoginRequest, request: Request,
                    response: Response) -> dict[str, Any]:
        staff = await _checked_login(ctrl, sessions, limits, body, client_address(request))
        if body.window is None:
            if staff.role == StaffRole.STAFF and not staff.guidance_desk:  # 导办台 has no window
                raise HallError("unknown_window", "请选择要登录的窗口")
            await ctrl.anote(f"staff:{staff.id}", "login",
                             {"staff_id": body.staff_id, "window": body.window})
        else:
            await ctrl.submit(c.Login(body.window, staff.id), f"staff:{staff.id}")
        now = ctrl.clock()
        if body.window is not None:  # whoever held the window before holds nothing there now
            await asyncio.to_thread(sessions.revoke_others_at, body.window, staff.id, now)
        token = await asyncio.to_thread(sessions.create, staff.id, staff.role.value, body.window, now)
        # The pages' session: HttpOnly, so no script reads it; SameSite=Strict, so no other
        # site's page sends it; unsafe requests carrying it must also carry PAGE_HEADER.
        response.set_cookie(COOKIE, token, httponly=True, samesite="strict", path="/")
        return {"token": token, "staff": {"id": staff.id, "name": staff.name,
                                          "role": staff.role.value}, "window": body.window}

    @r.get(f"{API}/auth/me", tags=["auth"], summary="Who the token (or page session) acts for")
    async def me(s: Session = Depends(session)) -> dict[str, Any]:
        staff = ctrl.hall.staff.get(s.staff_id)

        def post_of(state: HallState) -> str | None:
            w = state.windows.get(s.window) if s.window is not None else None
            return w.post if w is not None and w.staff_id == s.staff_id else None
        post = await ctrl.aask(post_of)
        return {"staff": {"id": s.staff_id, "name": staff.name if staff else s.staff_id,
                          "role": s.role}, "window": s.window, "post": post}

    @r.post(f"{API}/auth/logout", tags=["auth"], summary="Log out (closes the window)")
    async def logout(request: Request, response: Response,
                     s: Session = Depends(session)) -> dict[str, Any]:
        def log_out() -> None:  # check-then-logout, on the hall thread
            if s.window is not None and ctrl.state.windows[s.window].staff_id == s.staff_id:
                ctrl.execute(c.Logout(s.window), f"staff:{s.staff_id}")
            else:
                ctrl.note(f"staff:{s.staff_id}", "logout", {"window": s.window})
        await ctrl.arun(log_out)
        # the whole login ends: every page and device that logged in for it at that window
        await asyncio.to_thread(sessions.revoke_login, s, token_of(request) or "", ctrl.clock())
        response.delete_cookie(COOKIE, path="/")
        return {"ok": True}

    return r


async def _checked_login(ctrl: HallController, sessions: SessionStore, limits: Limits,
                         body: schemas.LoginRequest, address: str) -> Staff:
    """The staff member whose PIN this is, if they may log in now; every refusal audited."""
    staff = ctrl.hall.staff.get(body.staff_id)
    args = {"staff_id": body.staff_id, "window": body.window}
    # PIN guessing: a locked-out id or address gets no PIN check at all
    await limits.check_login(body.staff_id, address, args)
    # an unknown id costs the same hash as a known one: its answer time tells nothing
    if not pins.verify_pin(body.pin, staff.pin_hash if staff else pins.UNKNOWN_STAFF_HASH) \
            or staff is None:
        limits.login_failed(body.staff_id, address)
        err = HallError("bad_credentials")
        await ctrl.arefuse(f"staff:{body.staff_id}", "login", {**args, "address": address}, err)
        raise err
    limits.login_succeeded(staff.id, address)
    if sessions.is_disabled(staff.id):  # told only to whoever knows the PIN
        err = HallError("account_disabled")
        await ctrl.arefuse(f"staff:{staff.id}", "login", args, err)
        raise err
    if not staff.demo and pins.trivial(body.pin):  # 0000 is the first PIN a guesser tries
        err = HallError("weak_pin")
        await ctrl.arefuse(f"staff:{staff.id}", "login", args, err)
        raise err
    return staff
