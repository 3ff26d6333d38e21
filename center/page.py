"""The district page (区县大厅总览): every hall as a tile, and a hall's floor on a click; a static
page of the centre's own (center/static, no outside assets: a district network may have no
internet) reading the centre's API:

    GET /                                   the page
    GET /api/v1/halls                       the tiles (center.api)
    GET /api/v1/halls/{hall_id}/floor       a hall's windows, queues and devices, for the drill-down
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import FileResponse

from center import floor as floors
from center import store

STATIC = Path(__file__).resolve().parent / "static"


def page_routes(database: Callable[..., Any]) -> APIRouter:
    from center.api import ApiError, hall_view  # api.py registers these routes

    r = APIRouter()

    @r.get("/", include_in_schema=False)
    def district_page() -> FileResponse:
        return FileResponse(STATIC / "district.html", media_type="text/html; charset=utf-8")

    @r.get("/api/v1/halls/{hall_id}/floor", tags=["halls"], summary="A hall's floor as the centre holds it")
    def hall_floor(hall_id: str, conn=Depends(database)) -> dict[str, Any]:
        row = store.hall(conn, hall_id)
        if row is None:
            raise ApiError(404, "unknown_hall", f"本中心未收到过大厅 {hall_id} 的任何数据")
        return {**hall_view(row), "windows": floors.windows(row["floor"])}

    return r
