"""The 好差评 figures and grade exports: JSON, or a CSV / Excel download.

Supervisors, admins and callback officers only; an export carries masked identity only.
"""

import asyncio
import datetime as dt
from typing import Any, Callable, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from controller import evaluation_reports as er
from controller.core.errors import HallError
from controller.core.hall import StaffRole
from controller.hallcontroller import HallController
from controller.store.sessions import Session

API = "/api/v1"
# Evaluation figures name staff members: supervisors, admins and callback officers only.
_READERS = (StaffRole.SUPERVISOR, StaffRole.ADMIN, StaffRole.CALLBACK_OFFICER)
_CSV = "text/csv; charset=utf-8"
_XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"




def _download(body: bytes, media_type: str, filename: str) -> Response:
    # ASCII file names: every browser and Excel version takes them as they are
    return Response(body, media_type=media_type,
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


def report_routes(ctrl: HallController, session: Callable[..., Session]) -> APIRouter:
    r = APIRouter()

    def span(from_: dt.date | None, to: dt.date | None) -> tuple[dt.date, dt.date]:
        today = ctrl.clock().date()
        return from_ or today.replace(day=1), to or today

    def report(from_: dt.date | None, to: dt.date | None, by: str) -> tuple[list[dict[str, Any]], str]:
        day_from, day_to = span(from_, to)
        with ctrl.lock:
            rows = er.evaluation_report(ctrl.store.db, day_from, day_to, by, ctrl.clock())
        return rows, f"evaluations-{by}-{day_from:%Y%m%d}-{day_to:%Y%m%d}"

    By = Literal["window", "staff", "service", "day", "month"]

    @r.get(f"{API}/reports/evaluations", tags=["reports"],
           summary="好差评 figures per window, staff member, service, day or month")
    async def evaluations(from_: dt.date | None = Query(None, alias="from"), to: dt.date | None = None,
                          by: By = "window", s: Session = Depends(session)) -> list[dict[str, Any]]:
        s.require(*_READERS)
        rows, _ = await asyncio.to_thread(report, from_, to, by)
        return rows

    @r.get(f"{API}/reports/evaluations.csv", tags=["reports"], summary="The same figures as CSV")
    async def evaluations_csv(from_: dt.date | None = Query(None, alias="from"),
                              to: dt.date | None = None, by: By = "window",
                              s: Session = Depends(session)) -> Response:
        s.require(*_READERS)
        rows, name = await asyncio.to_thread(report, from_, to, by)
        return _download(er.to_csv(rows), _CSV, f"{name}.csv")

    @r.get(f"{API}/reports/evaluations.xlsx", tags=["reports"], summary="The same figures as Excel")
    async def evaluations_xlsx(from_: dt.date | None = Query(None, alias="from"),
                               to: dt.date | None = None, by: By = "window",
                               s: Session = Depends(session)) -> Response:
        s.require(*_READERS)
        rows, name = await asyncio.to_thread(report, from_, to, by)
        body = await asyncio.to_thread(er.to_xlsx, rows, "好差评")
        return _download(body, _XLSX, f"{name}.xlsx")

    @r.get(f"{API}/exports/grades", tags=["reports"],
           summary="Graded visits with GB/T 39046 or provincial grade codes (masked identity)")
    async def grades(from_: dt.date | None = Query(None, alias="from"), to: dt.date | None = None,
                     mapping: Literal["gbt39046", "provincial"] = "gbt39046",
                     format: Literal["json", "csv", "xlsx"] = "json",
                     s: Session = Depends(session)) -> Any:
        s.require(*_READERS)
        day_from, day_to = span(from_, to)

        def export() -> list[dict[str, Any]]:
            with ctrl.lock:
                try:
                    return er.grade_export(ctrl.store.db, day_from, day_to, mapping,
                                           dict(ctrl.hall.export_channel_codes))
                except ValueError as e:  # a channel with no upload code
                    raise HallError("invalid_channel", f"评价渠道没有上报代码：{e}") from None

        rows = await asyncio.to_thread(export)
        name = f"grades-{mapping}-{day_from:%Y%m%d}-{day_to:%Y%m%d}"
        if format == "csv":
            return _download(er.to_csv(rows), _CSV, f"{name}.csv")
        if format == "xlsx":
            return _download(await asyncio.to_thread(er.to_xlsx, rows, "评价明细"), _XLSX,
                             f"{name}.xlsx")
        return rows
    return r
