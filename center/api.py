"""The centre's web API (FastAPI), read from its PostgreSQL.

    GET /api/v1/halls                          every hall: what the centre holds, the link, the floor
    GET /api/v1/halls/{hall_id}/events?after=N  the hall's events the centre holds, for checking
    GET /api/v1/cases?hall=&state=&overdue=     the halls' cases with their deadlines (center.cases)
    /api/v1/halls/{hall_id}/bundles, .../staff/{staff_id}/disable: center.bundles
    GET /api/v1/halls/{hall_id}/chain           what the centre found wrong in the hall's hash chain
    GET /api/v1/reports/…, /api/v1/assessment  the district reports (center.report_api)
    GET /                                       the district page (center.page)

Errors are {"error": code, "message": text} with a 4xx status, as the hall's API gives them
(503 while the centre's database is away).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import psycopg
from fastapi import Depends, FastAPI, Query
from fastapi.responses import JSONResponse
from fastapi_offline import FastAPIOffline

from center import cases
from center import chain as chains
from center import floor as floors
from center import store
from center.bundles import BundleDesk

# a heartbeat older than this many of the shipper's periods (5 s): the link is silent
SILENT_SECONDS = 30.0


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        self.status, self.code, self.message = status, code, message


def link_state(row: dict[str, Any]) -> str:
    """online, silent (online last said, but not heard from for SILENT_SECONDS), offline, or
    unknown (no heartbeat yet)."""
    state = row["link_state"]
    since = store.seconds_since(row["link_seen"], row["now"])
    if state == "online" and since is not None and since > SILENT_SECONDS:
        return "silent"
    return state or "unknown"


def behind_seconds(row: dict[str, Any], lag: int | None) -> float | None:
    """How far the centre is behind the hall at most, by the hall's own clock: from the last
    event held to the hall's last heartbeat (the events not held yet are all younger)."""
    if lag == 0:
        return 0.0
    if lag is None or not row["acked_at"] or not row["link_at"]:
        return None
    try:
        then, now = dt.datetime.fromisoformat(row["acked_at"]), dt.datetime.fromisoformat(row["link_at"])
        return max(0.0, round((now - then).total_seconds(), 1))
    except (TypeError, ValueError):  # a time without a zone, or not a time: not comparable
        return None


def hall_view(row: dict[str, Any]) -> dict[str, Any]:
    hall_last = row["hall_last_event"]
    lag = None if hall_last is None else max(0, hall_last - row["acked"])
    return {
        "hall_id": row["hall_id"],
        # every event up to this one is held (the mark the hall was told)
        "last_event_id": row["acked"],
        # events the hall had, by its last heartbeat, that the centre does not hold yet
        "lag_events": lag,
        "lag_seconds_at_most": behind_seconds(row, lag),
        "last_received_seconds_ago": store.seconds_since(row["received_at"], row["now"]),
        "link": {"state": link_state(row), "hall_time": row["link_at"],
                 "heard_seconds_ago": store.seconds_since(row["link_seen"], row["now"]),
                 "hall_last_event_id": hall_last},
        **floors.summary(row["floor"]),
    }


def create_app(dsn: str, bundles: BundleDesk | None = None) -> FastAPI:
    """`bundles`: the desk publishing the halls' configuration bundles (center.bundles); without
    it the centre only reads."""
    # /docs served by the centre itself, as the hall's: a district network may have no internet
    app = FastAPIOffline(title="区县政务服务管理办公室 district centre", version="0.1.0")

    def database() -> Iterator[Any]:
        with store.connect(dsn) as conn:
            yield conn

    @app.exception_handler(ApiError)
    def _error(request, e: ApiError) -> JSONResponse:
        return JSONResponse({"error": e.code, "message": e.message}, status_code=e.status)

    @app.exception_handler(psycopg.OperationalError)
    def _database_away(request, e: psycopg.OperationalError) -> JSONResponse:
        return JSONResponse({"error": "database_unavailable", "message": "中心数据库暂不可用，请稍后再试"},
                            status_code=503)

    @app.get("/api/v1/halls")
    def halls(conn=Depends(database)) -> dict[str, Any]:
        late = cases.overdue_counts(conn, dt.datetime.now(dt.timezone.utc))
        chain = chains.summaries(conn)
        return {"halls": [{**hall_view(r), "overdue_cases": late.get(r["hall_id"], 0), "chain": chain.get(r["hall_id"])}
                          for r in store.halls(conn)]}

    @app.get("/api/v1/halls/{hall_id}/events")
    def events(hall_id: str, after: int = Query(0, ge=0), limit: int = Query(500, ge=1, le=5000),
               conn=Depends(database)) -> dict[str, Any]:
        if not store.hall_known(conn, hall_id):
            raise ApiError(404, "unknown_hall", f"本中心未收到过大厅 {hall_id} 的任何数据")
        rows = store.events_after(conn, hall_id, after, limit)
        return {"hall_id": hall_id, "after": after, "events": rows,
                "next_after": rows[-1]["id"] if rows else after}

    @app.get("/api/v1/halls/{hall_id}/chain")
    def chain_flags(hall_id: str, conn=Depends(database)) -> dict[str, Any]:
        if not store.hall_known(conn, hall_id):
            raise ApiError(404, "unknown_hall", f"本中心未收到过大厅 {hall_id} 的任何数据")
        return {"hall_id": hall_id, **chains.summaries(conn)[hall_id], "breaks": chains.flags(conn, hall_id)}

    if bundles is not None:
        from center.bundles import add_routes

        add_routes(app, dsn, bundles, ApiError)

    app.include_router(cases.router(database, ApiError))

    from center.report_api import report_routes  # it takes ApiError from here
    from center.page import page_routes

    app.include_router(report_routes(database))
    app.include_router(page_routes(database))
    return app
