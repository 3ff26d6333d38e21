"""Staff accounts for the admin: 停用 (disable) and 启用 (enable).

When staff leave the hall all their access is revoked at once (001 4.2.4): disabling an
account refuses its logins, revokes every token it holds (the next request with one is a
401, an open event stream closes) and closes the window it is logged in at, even one in
the middle of a visit, so its keypad stops and its queue goes to the other windows.
The disabled set is in the database and survives a restart; the config file's account
can be removed at leisure.
"""

from __future__ import annotations

import asyncio

from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from controller.core import commands as c
from controller.core.errors import HallError
from controller.core.hall import StaffRole
from controller.runtime.hallcontroller import HallController
from controller.store.sessions import Session, SessionStore
from controller.web.auth import API, SessionDependency



class DisableRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    reason: str | None = Field(None, max_length=200, description="e.g. 离职, 调岗")


def staff_routes(ctrl: HallController, sessions: SessionStore,
                 session: SessionDependency) -> APIRouter:
    r = APIRouter()

    async def admin(s: Session, name: str, staff_id: str) -> str:
        actor = f"staff:{s.staff_id}"
        try:
            s.require(StaffRole.ADMIN)
            if staff_id not in ctrl.hall.staff:
                raise HallError("no_such_staff", f"没有这个工号：{staff_id}")
        except HallError as e:
            await ctrl.arefuse(actor, name, {"staff": staff_id}, e)
            raise
        return actor

    @r.get(f"{API}/admin/staff", tags=["admin"],
           summary="Staff accounts: role, posts, whether disabled, the window each is at")
    async def accounts(s: Session = Depends(session)) -> list[dict[str, Any]]:
        s.require(StaffRole.ADMIN)
        disabled = {d["staff_id"]: d for d in await asyncio.to_thread(sessions.disabled)}
        at = await ctrl.aask(lambda state: {w.staff_id: n for n, w in state.windows.items()
                                            if w.staff_id})
        return [{"id": st.id, "name": st.name, "role": st.role.value, "a_post": list(st.a_post),
                 "b_post": list(st.b_post), "window": at.get(st.id),
                 "disabled": ({k: disabled[st.id][k] for k in ("disabled_at", "disabled_by", "reason")}
                              if st.id in disabled else None)}
                for st in ctrl.hall.staff.values()]

    @r.post(f"{API}/admin/staff/{{staff_id}}/disable", tags=["admin"],
            summary="停用: refuse the account's logins, revoke its tokens at once, close its window")
    async def disable(staff_id: str, body: DisableRequest | None = None,
                      s: Session = Depends(session)) -> dict[str, Any]:
        actor = await admin(s, "staff_disable", staff_id)
        if staff_id == s.staff_id:
            err = HallError("cannot_disable_self")
            await ctrl.arefuse(actor, "staff_disable", {"staff": staff_id}, err)
            raise err
        reason = (body.reason.strip() or None) if body and body.reason else None
        revoked = await asyncio.to_thread(sessions.disable, staff_id, actor, reason, ctrl.clock())
        # on the hall thread: whichever windows it holds now
        closed = await ctrl.arun(lambda: _close_windows(ctrl, actor, staff_id, reason, revoked))
        return {"staff": staff_id, "disabled": True, "tokens_revoked": revoked,
                "windows_closed": closed}

    @r.post(f"{API}/admin/staff/{{staff_id}}/enable", tags=["admin"],
            summary="启用: the account may log in again (its old tokens stay revoked)")
    async def enable(staff_id: str, s: Session = Depends(session)) -> dict[str, Any]:
        actor = await admin(s, "staff_enable", staff_id)
        was = await asyncio.to_thread(sessions.enable, staff_id)
        await ctrl.anote(actor, "staff_enable", {"staff": staff_id, "was_disabled": was})
        return {"staff": staff_id, "disabled": False, "changed": was}

    return r


def _close_windows(ctrl: HallController, actor: str, staff_id: str, reason: str | None,
                   revoked: int) -> list[int]:
    """On the hall thread: the disabling noted, and whichever windows the account holds now
    closed."""
    ctrl.note(actor, "staff_disable", {"staff": staff_id, "reason": reason,
                                       "tokens_revoked": revoked})
    held = sorted(n for n, w in ctrl.state.windows.items() if w.staff_id == staff_id)
    closed = []
    for number in held:
        # closed even while serving: its keypad and pad act for whoever is logged in
        # there, so an open window would go on calling for the account; the visit being
        # served goes back to the head of its queue for another window (not a 过号)
        try:
            ctrl.execute(c.Logout(number, requeue_current=True), actor)
            closed.append(number)
        except HallError:  # refused and audited by the engine (closed meanwhile)
            pass
    return closed
