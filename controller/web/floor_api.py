"""The supervisor's floor (现场): the windows as the hall lays them out, and the alerts
standing now (controller.backoffice.alerts), for the page to load when it opens and again
on every change. Supervisors and admins."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends

from controller.backoffice.alerts import FloorAlerts
from controller.config.settings import FloorLayout
from controller.core.hall import StaffRole
from controller.store.sessions import Session
from controller.web.auth import API, SessionDependency

MANAGERS = (StaffRole.SUPERVISOR, StaffRole.ADMIN)


def floor_routes(alerts: FloorAlerts, layout: FloorLayout, session: SessionDependency) -> APIRouter:
    r = APIRouter()
    plan = layout.json()

    @r.get(f"{API}/floor", tags=["hall"],
           summary="现场布局: the windows in zones and rows as the hall stands ([layout])")
    async def floor(s: Session = Depends(session)) -> dict[str, Any]:
        s.require(*MANAGERS)
        return plan

    @r.get(f"{API}/alerts", tags=["hall"],
           summary="提醒: the alerts standing now, urgent first, each {kind, window, since, text}")
    async def standing(s: Session = Depends(session)) -> list[dict[str, Any]]:
        s.require(*MANAGERS)
        return [a.json() for a in await asyncio.to_thread(alerts.current)]

    return r
