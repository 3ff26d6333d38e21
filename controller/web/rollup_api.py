"""月度考核汇总: the monthly roll-up per staff member as JSON, or a CSV / Excel download with
Chinese headers. Personnel records: supervisors and admins only."""

from __future__ import annotations

import asyncio
import re
from typing import Any, Callable

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from controller import evaluation_reports as er
from controller import rollup
from controller.core.errors import HallError
from controller.core.hall import StaffRole
from controller.hallcontroller import HallController
from controller.store.sessions import Session

API = "/api/v1"
_CSV = "text/csv; charset=utf-8"
_XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
_MONTH = re.compile(r"(20[0-9]{2})-(0[1-9]|1[0-2])")


def rollup_routes(ctrl: HallController, session: Callable[..., Session]) -> APIRouter:
    r = APIRouter()

    def rows(month: str | None) -> tuple[list[dict[str, Any]], str]:
        now = ctrl.clock()
        month = month or f"{now:%Y-%m}"
        if not _MONTH.fullmatch(month):
            raise HallError("invalid_date_range", "月份不正确：应为 YYYY-MM，例如 2026-11")
        try:
            with ctrl.store.reads.snapshot() as db:
                return rollup.monthly_rollup(db, ctrl.hall, month, now), month
        except ValueError:
            raise HallError("invalid_date_range", f"{month} 还没有开始") from None

    Month = Query(None, description="YYYY-MM; this month if left out")

    @r.get(f"{API}/reports/rollup", tags=["reports"],
           summary="月度考核汇总: late, early, absence, overtime, cases, out-of-order calls and "
                   "points per staff member")
    async def monthly(month: str | None = Month,
                      s: Session = Depends(session)) -> list[dict[str, Any]]:
        s.require(StaffRole.SUPERVISOR, StaffRole.ADMIN)
        found, _ = await asyncio.to_thread(rows, month)
        return found

    @r.get(f"{API}/reports/rollup.csv", tags=["reports"],
           summary="The same roll-up as CSV, Chinese headers")
    @r.get(f"{API}/reports/rollup.xlsx", tags=["reports"],
           summary="The same roll-up as Excel, Chinese headers")
    async def monthly_file(request: Request, month: str | None = Month,
                           s: Session = Depends(session)) -> Response:
        s.require(StaffRole.SUPERVISOR, StaffRole.ADMIN)
        found, month = await asyncio.to_thread(rows, month)
        table = rollup.chinese_rows(found)
        name = f"rollup-{month.replace('-', '')}"
        if request.url.path.endswith(".csv"):
            body, media, name = er.to_csv(table), _CSV, f"{name}.csv"
        else:
            body, media, name = await asyncio.to_thread(er.to_xlsx, table, "月度考核"), _XLSX, f"{name}.xlsx"
        return Response(body, media_type=media,
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})

    return r
