"""The hall as a whole: windows and queues now, the services, the devices' health, and
/health for the hall's monitoring."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from controller.config.settings import DisplaySettings
from controller.floor.devices import place_of
from controller.runtime.hallcontroller import HallController
from controller.store.faults import StorageFault, StorageUnavailable
from controller.store.sessions import Session
from controller.web import views
from controller.web.auth import API, OptionalSessionDependency, SessionDependency
from controller.web.loop_lag import LoopLag

PROBE_SECONDS = 2.0


def device_routes(ctrl: HallController, session: SessionDependency) -> APIRouter:
    r = APIRouter()

    # Staff only: device names, ports and fault details tell an outsider how the floor is
    # wired and which device is down, and no display or kiosk needs them.
    @r.get(f"{API}/devices", tags=["hall"],
           summary="Every device's health as last reported (any login)")
    async def devices(s: Session = Depends(session)) -> list[dict[str, Any]]:
        seen = await ctrl.aask(lambda state: dict(state.devices))
        return [{"device": d.id, "kind": d.kind, "window": d.window, "location": place_of(d),
                 "state": seen.get(d.id, ("unknown", ""))[0], "detail": seen.get(d.id, ("", ""))[1]}
                for d in ctrl.hall.devices]

    return r


def hall_routes(ctrl: HallController, optional_session: OptionalSessionDependency,
                lag: LoopLag, display: DisplaySettings | None = None) -> APIRouter:
    """`display`: the hall display page's settings ([display] notices; the defaults if None)."""
    r = APIRouter()
    notices = list((display or DisplaySettings()).notices)

    @r.get(f"{API}/hall", tags=["hall"], summary="Windows and queues now")
    async def get_hall(s: Session | None = Depends(optional_session)) -> dict[str, Any]:
        body = await ctrl.aask(lambda state: views.hall_json(ctrl.engine, state, ctrl.clock()))
        body["notices"] = notices
        # displays, kiosks and the login page read it without a login: no 工号 to guess PINs for
        return body if s is not None else views.anonymous_hall(body)

    @r.get(f"{API}/services", tags=["hall"], summary="Services with waiting counts and estimates")
    async def get_services() -> list[dict[str, Any]]:
        return await ctrl.aask(lambda state: views.services_json(ctrl.engine, state, ctrl.clock()))

    @r.get(f"{API}/health", tags=["hall"],
           summary="Liveness, and the hall's time: its day, and a clock fault while one stands")
    async def health(request: Request) -> Any:
        # ok: the controller serves; a clock behind the hall's time is reported, not fatal.
        # A storage fault is: nothing can be issued or called, so the answer is 503.
        fault = await _storage_fault(ctrl)
        body = {"ok": fault is None, "hall": ctrl.hall.name, "clock": ctrl.clock_status(),
                "storage": fault.json() if fault else {"state": "ok"}, "loop_lag_ms": lag.json()}
        district = getattr(request.app.state, "district", None)
        if district is not None:  # a hall of a district: the centre's configuration bundle in use
            body["district"] = district()
        if fault is None:
            return body
        return JSONResponse({**body, "state": "degraded", "error": "storage_unavailable",
                             "message": StorageUnavailable(fault).message}, status_code=503)

    return r


async def _storage_fault(ctrl: HallController) -> StorageFault | None:
    """The standing storage fault; while one stands, a write is tried (at most every
    PROBE_SECONDS) so that /health turns ok again once the disk has room."""
    if ctrl.store.fault is None:
        return None
    now = time.monotonic()
    if now - ctrl.store.probed_at >= PROBE_SECONDS:
        ctrl.store.probed_at = now
        return await asyncio.to_thread(ctrl.store.probe, ctrl.clock())
    return ctrl.store.fault
