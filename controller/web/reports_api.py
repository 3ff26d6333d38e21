"""The 好差评 figures and grade exports, and the reports page's hall figures, overtime
register (延时服务) and attendance (考勤): JSON, or a CSV / Excel download in Chinese
(controller.backoffice.export_words; the upload's grade and channel codes stay numbers).

Supervisors, admins and callback officers only (overtime and attendance: supervisors and
admins); an export carries masked identity only.
"""

import asyncio
import datetime as dt
from typing import Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query

from controller.backoffice import evaluation_reports as er
from controller.backoffice import hall_reports as hr
from controller.core.errors import HallError
from controller.core.hall import StaffRole
from controller.runtime.hallcontroller import HallController
from controller.store.sessions import Session
from controller.web.auth import API, SessionDependency
from controller.web.downloads import Computation, Rows, as_file, report_route

# Evaluation figures name staff members: supervisors, admins and callback officers only.
_READERS = (StaffRole.SUPERVISOR, StaffRole.ADMIN, StaffRole.CALLBACK_OFFICER)
# Overtime and attendance are personnel records: supervisors and admins only.
_MANAGERS = (StaffRole.SUPERVISOR, StaffRole.ADMIN)
EARLIEST, LATEST = dt.date(2000, 1, 1), dt.date(2099, 12, 31)

By = Literal["window", "staff", "service", "day", "month"]
HallBy = Literal["service", "day", "month", "staff", "window"]
GradeCodes = Literal["national", "reversed"]
# 004 考勤规范 4: late or early by more than 5 minutes
Tolerance = Query(5, ge=0, le=60, description="minutes late or early that are still on time")


class Reports:
    """The reports' rows from a snapshot of the hall's database, with their file names."""

    def __init__(self, ctrl: HallController) -> None:
        self.ctrl = ctrl

    def span(self, from_: dt.date | None, to: dt.date | None) -> tuple[dt.date, dt.date]:
        """The report's days: this month so far unless asked; a span that is not a hall's
        (year 1, a year past 2099, or backwards) is refused, not computed."""
        today = self.ctrl.clock().date()
        day_from, day_to = from_ or today.replace(day=1), to or today
        if not (EARLIEST <= day_from <= day_to <= LATEST):
            raise HallError("invalid_date_range",
                            f"日期范围不正确：应为 {EARLIEST} 至 {LATEST} 之间，且开始不晚于结束")
        return day_from, day_to

    def evaluations(self, from_: dt.date | None, to: dt.date | None, by: str) -> tuple[Rows, str]:
        day_from, day_to = self.span(from_, to)
        with self.ctrl.store.reads.snapshot() as db:
            rows = er.evaluation_report(db, day_from, day_to, by, self.ctrl.clock())
        return rows, f"evaluations-{by}-{day_from:%Y%m%d}-{day_to:%Y%m%d}"

    def grades(self, day_from: dt.date, day_to: dt.date, table: str) -> Rows:
        with self.ctrl.store.reads.snapshot() as db:
            try:
                return er.grade_export(db, day_from, day_to, table,
                                       dict(self.ctrl.hall.export_channel_codes))
            except ValueError as e:  # a channel with no upload code
                raise HallError("invalid_channel", f"评价渠道没有上报代码：{e}") from None

    def hall(self, from_: dt.date | None, to: dt.date | None, by: str) -> tuple[Rows, str]:
        day_from, day_to = self.span(from_, to)
        with self.ctrl.store.reads.snapshot() as db:
            rows = hr.hall_figures(db, self.ctrl.hall, day_from, day_to, by, self.ctrl.clock())
        return rows, f"hall-{by}-{day_from:%Y%m%d}-{day_to:%Y%m%d}"

    def overtime(self, from_: dt.date | None, to: dt.date | None) -> tuple[Rows, str]:
        day_from, day_to = self.span(from_, to)
        with self.ctrl.store.reads.snapshot() as db:
            rows = hr.overtime_register(db, self.ctrl.hall, day_from, day_to)
        return rows, f"overtime-{day_from:%Y%m%d}-{day_to:%Y%m%d}"

    def attendance(self, from_: dt.date | None, to: dt.date | None,
                   tolerance: int) -> tuple[Rows, str]:
        day_from, day_to = self.span(from_, to)
        with self.ctrl.store.reads.snapshot() as db:
            rows = hr.attendance(db, self.ctrl.hall, day_from, day_to, tolerance,
                                 now=self.ctrl.clock())
        return rows, f"attendance-{day_from:%Y%m%d}-{day_to:%Y%m%d}"


def report_routes(ctrl: HallController, session: SessionDependency) -> APIRouter:
    r = APIRouter()
    reports = Reports(ctrl)
    zone = ZoneInfo(ctrl.hall.timezone)

    # The reports' URL parameters; each answers the computation the routes run in a thread.

    async def evaluations(from_: dt.date | None = Query(None, alias="from"), to: dt.date | None = None,
                          by: By = "window") -> Computation:
        return lambda: reports.evaluations(from_, to, by)

    async def hall(from_: dt.date | None = Query(None, alias="from"), to: dt.date | None = None,
                   by: HallBy = "service") -> Computation:
        return lambda: reports.hall(from_, to, by)

    async def overtime(from_: dt.date | None = Query(None, alias="from"),
                       to: dt.date | None = None) -> Computation:
        return lambda: reports.overtime(from_, to)

    async def attendance(from_: dt.date | None = Query(None, alias="from"),
                         to: dt.date | None = None, tolerance: int = Tolerance) -> Computation:
        return lambda: reports.attendance(from_, to, tolerance)

    report_route(r, session, path="reports/evaluations", name="evaluations", query=evaluations,
                 summary="好差评 figures per window, staff member, service, day or month",
                 file_summary="The same figures as {}", readers=_READERS, sheet="好差评", zone=zone)
    _grade_export(r, reports, session)
    report_route(r, session, path="reports/hall", name="hall", query=hall,
                 summary="Tickets, waits, service times and evaluation per service, day, month, "
                         "staff member or window",
                 file_summary="The same figures as {}", readers=_READERS, sheet="大厅统计", zone=zone)
    report_route(r, session, path="reports/overtime", name="overtime", query=overtime,
                 summary="延时服务: visits finished past closing, per staff member and day",
                 file_summary="The same register as {}", readers=_MANAGERS, sheet="延时服务", zone=zone)
    report_route(r, session, path="reports/attendance", name="attendance", query=attendance,
                 summary="考勤 from window logins: late, early leave, absent per staff and session",
                 file_summary="The same attendance as {}", readers=_MANAGERS, sheet="考勤", zone=zone)
    return r


def _grade_export(r: APIRouter, reports: Reports, session: SessionDependency) -> None:
    """The graded visits for the upload: one route, the format a parameter."""

    @r.get(f"{API}/exports/grades", tags=["reports"],
           summary="Graded visits with the upload's grade codes: national (非常满意 = 5 … "
                   "非常不满意 = 1) or reversed; the hall's [export] grade_codes when not given "
                   "(masked identity)")
    async def grades(from_: dt.date | None = Query(None, alias="from"), to: dt.date | None = None,
                     mapping: GradeCodes | None = None,
                     format: Literal["json", "csv", "xlsx"] = "json",
                     s: Session = Depends(session)) -> Any:
        s.require(*_READERS)
        day_from, day_to = reports.span(from_, to)
        table = mapping or reports.ctrl.hall.export_grade_codes
        rows = await asyncio.to_thread(reports.grades, day_from, day_to, table)
        name = f"grades-{table}-{day_from:%Y%m%d}-{day_to:%Y%m%d}"
        if format == "json":
            return rows
        return await as_file(rows, name, format, "评价明细", ZoneInfo(reports.ctrl.hall.timezone))
