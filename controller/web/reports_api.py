"""The 好差评 figures and grade exports, and the reports page's hall figures, overtime
register (延时服务) and attendance (考勤): JSON, or a CSV / Excel download.

Supervisors, admins and callback officers only (overtime and attendance: supervisors and
admins); an export carries masked identity only.
"""

import asyncio
import datetime as dt
from typing import Any, Callable, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from controller import evaluation_reports as er
from controller import hall_reports as hr
from controller.core.errors import HallError
from controller.core.hall import StaffRole
from controller.hallcontroller import HallController
from controller.store.sessions import Session

API = "/api/v1"
# Evaluation figures name staff members: supervisors, admins and callback officers only.
_READERS = (StaffRole.SUPERVISOR, StaffRole.ADMIN, StaffRole.CALLBACK_OFFICER)
# Overtime and attendance are personnel records: supervisors and admins only.
_MANAGERS = (StaffRole.SUPERVISOR, StaffRole.ADMIN)
_CSV = "text/csv; charset=utf-8"
EARLIEST, LATEST = dt.date(2000, 1, 1), dt.date(2099, 12, 31)
_XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"




def _download(body: bytes, media_type: str, filename: str) -> Response:
    # ASCII file names: every browser and Excel version takes them as they are
    return Response(body, media_type=media_type,
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


def report_routes(ctrl: HallController, session: Callable[..., Session]) -> APIRouter:
    r = APIRouter()

    def span(from_: dt.date | None, to: dt.date | None) -> tuple[dt.date, dt.date]:
        """The report's days: this month so far unless asked; a span that is not a hall's
        (year 1, a year past 2099, or backwards) is refused, not computed."""
        today = ctrl.clock().date()
        day_from, day_to = from_ or today.replace(day=1), to or today
        if not (EARLIEST <= day_from <= day_to <= LATEST):
            raise HallError("invalid_date_range",
                            f"日期范围不正确：应为 {EARLIEST} 至 {LATEST} 之间，且开始不晚于结束")
        return day_from, day_to

    def report(from_: dt.date | None, to: dt.date | None, by: str) -> tuple[list[dict[str, Any]], str]:
        day_from, day_to = span(from_, to)
        with ctrl.store.reads.snapshot() as db:
            rows = er.evaluation_report(db, day_from, day_to, by, ctrl.clock())
        return rows, f"evaluations-{by}-{day_from:%Y%m%d}-{day_to:%Y%m%d}"

    # one handler serves a report's .csv and .xlsx paths: the extension picks the file
    async def as_file(rows: list[dict[str, Any]], name: str, fmt: str, sheet: str) -> Response:
        if fmt == "csv":
            return _download(er.to_csv(rows), _CSV, f"{name}.csv")
        return _download(await asyncio.to_thread(er.to_xlsx, rows, sheet), _XLSX, f"{name}.xlsx")

    By = Literal["window", "staff", "service", "day", "month"]

    @r.get(f"{API}/reports/evaluations", tags=["reports"],
           summary="好差评 figures per window, staff member, service, day or month")
    async def evaluations(from_: dt.date | None = Query(None, alias="from"), to: dt.date | None = None,
                          by: By = "window", s: Session = Depends(session)) -> list[dict[str, Any]]:
        s.require(*_READERS)
        rows, _ = await asyncio.to_thread(report, from_, to, by)
        return rows

    @r.get(f"{API}/reports/evaluations.csv", tags=["reports"], summary="The same figures as CSV")
    @r.get(f"{API}/reports/evaluations.xlsx", tags=["reports"], summary="The same figures as Excel")
    async def evaluations_file(request: Request, from_: dt.date | None = Query(None, alias="from"),
                               to: dt.date | None = None, by: By = "window",
                               s: Session = Depends(session)) -> Response:
        s.require(*_READERS)
        rows, name = await asyncio.to_thread(report, from_, to, by)
        return await as_file(rows, name, request.url.path.rsplit(".", 1)[1], "好差评")

    @r.get(f"{API}/exports/grades", tags=["reports"],
           summary="Graded visits with the upload's grade codes: national (非常满意 = 5 … "
                   "非常不满意 = 1) or reversed; the hall's [export] grade_codes when not given "
                   "(masked identity)")
    async def grades(from_: dt.date | None = Query(None, alias="from"), to: dt.date | None = None,
                     mapping: Literal["national", "reversed"] | None = None,
                     format: Literal["json", "csv", "xlsx"] = "json",
                     s: Session = Depends(session)) -> Any:
        s.require(*_READERS)
        day_from, day_to = span(from_, to)
        table = mapping or ctrl.hall.export_grade_codes

        def export() -> list[dict[str, Any]]:
            with ctrl.store.reads.snapshot() as db:
                try:
                    return er.grade_export(db, day_from, day_to, table,
                                           dict(ctrl.hall.export_channel_codes))
                except ValueError as e:  # a channel with no upload code
                    raise HallError("invalid_channel", f"评价渠道没有上报代码：{e}") from None

        rows = await asyncio.to_thread(export)
        name = f"grades-{table}-{day_from:%Y%m%d}-{day_to:%Y%m%d}"
        return rows if format == "json" else await as_file(rows, name, format, "评价明细")

    def hall_rows(from_: dt.date | None, to: dt.date | None,
                  by: str) -> tuple[list[dict[str, Any]], str]:
        day_from, day_to = span(from_, to)
        with ctrl.store.reads.snapshot() as db:
            rows = hr.hall_figures(db, ctrl.hall, day_from, day_to, by, ctrl.clock())
        return rows, f"hall-{by}-{day_from:%Y%m%d}-{day_to:%Y%m%d}"

    HallBy = Literal["service", "day", "month", "staff", "window"]

    @r.get(f"{API}/reports/hall", tags=["reports"],
           summary="Tickets, waits, service times and evaluation per service, day, month, "
                   "staff member or window")
    async def hall(from_: dt.date | None = Query(None, alias="from"), to: dt.date | None = None,
                   by: HallBy = "service", s: Session = Depends(session)) -> list[dict[str, Any]]:
        s.require(*_READERS)
        rows, _ = await asyncio.to_thread(hall_rows, from_, to, by)
        return rows

    @r.get(f"{API}/reports/hall.csv", tags=["reports"], summary="The same figures as CSV")
    @r.get(f"{API}/reports/hall.xlsx", tags=["reports"], summary="The same figures as Excel")
    async def hall_file(request: Request, from_: dt.date | None = Query(None, alias="from"),
                        to: dt.date | None = None, by: HallBy = "service",
                        s: Session = Depends(session)) -> Response:
        s.require(*_READERS)
        rows, name = await asyncio.to_thread(hall_rows, from_, to, by)
        return await as_file(rows, name, request.url.path.rsplit(".", 1)[1], "大厅统计")

    def overtime_rows(from_: dt.date | None,
                      to: dt.date | None) -> tuple[list[dict[str, Any]], str]:
        day_from, day_to = span(from_, to)
        with ctrl.store.reads.snapshot() as db:
            rows = hr.overtime_register(db, ctrl.hall, day_from, day_to)
        return rows, f"overtime-{day_from:%Y%m%d}-{day_to:%Y%m%d}"

    @r.get(f"{API}/reports/overtime", tags=["reports"],
           summary="延时服务: visits finished past closing, per staff member and day")
    async def overtime(from_: dt.date | None = Query(None, alias="from"), to: dt.date | None = None,
                       s: Session = Depends(session)) -> list[dict[str, Any]]:
        s.require(*_MANAGERS)
        rows, _ = await asyncio.to_thread(overtime_rows, from_, to)
        return rows

    @r.get(f"{API}/reports/overtime.csv", tags=["reports"], summary="The same register as CSV")
    @r.get(f"{API}/reports/overtime.xlsx", tags=["reports"], summary="The same register as Excel")
    async def overtime_file(request: Request, from_: dt.date | None = Query(None, alias="from"),
                            to: dt.date | None = None, s: Session = Depends(session)) -> Response:
        s.require(*_MANAGERS)
        rows, name = await asyncio.to_thread(overtime_rows, from_, to)
        return await as_file(rows, name, request.url.path.rsplit(".", 1)[1], "延时服务")

    def attendance_rows(from_: dt.date | None, to: dt.date | None,
                        tolerance: int) -> tuple[list[dict[str, Any]], str]:
        day_from, day_to = span(from_, to)
        with ctrl.store.reads.snapshot() as db:
            rows = hr.attendance(db, ctrl.hall, day_from, day_to, tolerance,
                                 now=ctrl.clock())
        return rows, f"attendance-{day_from:%Y%m%d}-{day_to:%Y%m%d}"

    # 004 考勤规范 4: late or early by more than 5 minutes
    Tolerance = Query(5, ge=0, le=60, description="minutes late or early that are still on time")

    @r.get(f"{API}/reports/attendance", tags=["reports"],
           summary="考勤 from window logins: late, early leave, absent per staff and session")
    async def attendance(from_: dt.date | None = Query(None, alias="from"),
                         to: dt.date | None = None, tolerance: int = Tolerance,
                         s: Session = Depends(session)) -> list[dict[str, Any]]:
        s.require(*_MANAGERS)
        rows, _ = await asyncio.to_thread(attendance_rows, from_, to, tolerance)
        return rows

    @r.get(f"{API}/reports/attendance.csv", tags=["reports"], summary="The same attendance as CSV")
    @r.get(f"{API}/reports/attendance.xlsx", tags=["reports"],
           summary="The same attendance as Excel")
    async def attendance_file(request: Request, from_: dt.date | None = Query(None, alias="from"),
                              to: dt.date | None = None, tolerance: int = Tolerance,
                              s: Session = Depends(session)) -> Response:
        s.require(*_MANAGERS)
        rows, name = await asyncio.to_thread(attendance_rows, from_, to, tolerance)
        return await as_file(rows, name, request.url.path.rsplit(".", 1)[1], "考勤")
    return r
