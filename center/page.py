"""The district page (区县大厅总览): every hall as a tile, and a hall's floor on a click; a static
page of the centre's own (center/static, no outside assets) reading GET /api/v1/halls."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

STATIC = Path(__file__).resolve().parent / "static"


def page_routes() -> APIRouter:
    r = APIRouter()

    @r.get("/", include_in_schema=False)
    def district_page() -> FileResponse:
        return FileResponse(STATIC / "district.html", media_type="text/html; charset=utf-8")

    return r
