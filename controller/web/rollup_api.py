"""月度考核汇总: the monthly roll-up per staff member as JSON, or a CSV / Excel download with
Chinese headers. Personnel records: supervisors and admins only."""

from __future__ import annotations

import re
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query

from controller.backoffice import rollup
from controller.core.errors import HallError
from controller.core.hall import StaffRole
from controller.runtime.hallcontroller import HallController
from controller.web.auth import SessionDependency
from controller.web.downloads import Computation, Rows, report_route

_MONTH = re.compile(r"(20[0-9]{2})-(0[1-9]|1[0-2])")


def rollup_routes(ctrl: HallController, session: SessionDependency) -> APIRouter:
    r = APIRouter()

    def rows(month: str | None) -> tuple[Rows, str]:
        now = ctrl.clock()
        month = month or f"{now:%Y-%m}"
        if not _MONTH.fullmatch(month):
            raise HallError("invalid_date_range", "月份不正确：应为 YYYY-MM，例如 2026-11")
        try:
            with ctrl.store.reads.snapshot() as db:
                found = rollup.monthly_rollup(db, ctrl.hall, month, now)
        except ValueError:
            raise HallError("invalid_date_range", f"{month} 还没有开始") from None
        return found, f"rollup-{month.replace('-', '')}"

    async def monthly(month: str | None = Query(None, description="YYYY-MM; this month if left out")
                      ) -> Computation:
        return lambda: rows(month)

    report_route(r, session, path="reports/rollup", name="monthly", query=monthly,
                 summary="月度考核汇总: late, early, absence, overtime, cases, out-of-order calls and "
                         "points per staff member",
                 file_summary="The same roll-up as {}, Chinese headers",
                 readers=(StaffRole.SUPERVISOR, StaffRole.ADMIN), sheet="月度考核",
                 zone=ZoneInfo(ctrl.hall.timezone))
    return r
