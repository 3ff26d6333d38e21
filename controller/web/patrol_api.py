"""巡查台账: the supervisor records a patrol round and reads the ledger back.

A round is a command (`RecordPatrol`) like a window's call: logged, with its event, durable
before the answer. Who is at each window comes from the live state; the signer is the
supervisor logged in. Supervisors record; supervisors and admins read.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

from fastapi import APIRouter, Depends, Query
from pydantic import Field

from controller.core import commands as c
from controller.core.errors import HallError
from controller.core.events import payload
from controller.core.hall import StaffRole
from controller.core.patrol import MAX_AREA_CHARS, MAX_FINDINGS_CHARS
from controller.runtime.hallcontroller import HallController
from controller.store.sessions import Session
from controller.web.schemas import Strict
from controller.web.auth import API, SessionDependency

MAX_DAYS = 366


class PatrolRequest(Strict):
    no_problems: bool = Field(description="今日巡查无异常: nothing found on this round")
    findings: str = Field("", max_length=MAX_FINDINGS_CHARS,
                          description="巡查中发现的问题: what was found (required unless no_problems)")
    area: str = Field("", max_length=MAX_AREA_CHARS, description="地点: where (default 大厅)")


def patrol_routes(ctrl: HallController, session: SessionDependency) -> APIRouter:
    r = APIRouter()

    @r.post(f"{API}/patrols", status_code=201, tags=["patrols"],
            summary="巡查: record a patrol round (supervisor); windows from the live state")
    async def record(body: PatrolRequest, s: Session = Depends(session)) -> dict[str, Any]:
        s.require(StaffRole.SUPERVISOR)
        cmd = c.RecordPatrol(s.staff_id, body.no_problems, body.findings, body.area)
        out = await ctrl.submit(cmd, f"staff:{s.staff_id}")
        event = out.events[0]
        return {"at": event.at.isoformat(), **payload(event)}

    @r.get(f"{API}/patrols", tags=["patrols"], summary="巡查台账: the rounds of some days")
    async def ledger(from_: dt.date | None = Query(None, alias="from"), to: dt.date | None = None,
                     s: Session = Depends(session)) -> list[dict[str, Any]]:
        s.require(StaffRole.SUPERVISOR, StaffRole.ADMIN)
        today = ctrl.clock().date()
        day_from, day_to = from_ or today, to or today
        if not (day_from <= day_to <= day_from + dt.timedelta(days=MAX_DAYS)):
            raise HallError("invalid_date_range",
                            f"日期范围不正确：开始不晚于结束，且不超过 {MAX_DAYS} 天")
        rounds = await asyncio.to_thread(ctrl.store.patrol_rounds, day_from, day_to)
        for r in rounds:
            staff = ctrl.hall.staff.get(r["signer"])
            r["signer_name"] = staff.name if staff else None
        return rounds

    return r
