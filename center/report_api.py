"""The district reports on the centre's API, each as JSON and as CSV and Excel files with the
hall's Chinese headers (controller.backoffice.export_words):

    GET /api/v1/reports/{by}?from=YYYY-MM-DD&to=YYYY-MM-DD[&hall=ID]   by hall, service, staff,
                                                                        window, day or month
    GET /api/v1/reports/{by}.csv, ….xlsx                                the same rows as files
    GET /api/v1/assessment?month=YYYY-MM, .csv, .xlsx                   月度考核通报 across halls

The JSON keeps English keys and raw values (machines read it); the files go to the district's
leadership.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from center import reports
from center.api import ApiError
from controller.backoffice.export_words import file_rows, header, to_csv, to_xlsx

CSV = "text/csv; charset=utf-8"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
# the district's own columns; every other one is named as in the hall's files
DISTRICT_COLUMNS = {"hall": "大厅", "rank": "排名"}
SHEETS = {"hall": "大厅统计", "service": "业务统计", "staff": "人员统计", "window": "窗口统计",
          "day": "日统计", "month": "月统计"}
ASSESSMENT_SHEET = "月度考核通报"


def district_file_rows(rows: list[dict[str, Any]], sheet: str) -> list[dict[str, Any]]:
    """`rows` in the files' words; a row is about its second key when the first is the hall."""
    out = []
    for row, words in zip(rows, file_rows(rows, sheet), strict=True):
        keys = list(row)
        about = keys[1] if keys[:1] == ["hall"] and len(keys) > 1 else keys[0] if keys else ""
        out.append({DISTRICT_COLUMNS.get(k) or header(k, sheet, about): v
                    for k, v in zip(keys, words.values(), strict=True)})
    return out


def as_file(rows: list[dict[str, Any]], name: str, fmt: str, sheet: str) -> Response:
    if fmt not in ("csv", "xlsx"):
        raise ApiError(404, "unknown_format", "文件格式只有 csv 和 xlsx")
    table = district_file_rows(rows, sheet)
    body, media = (to_csv(table), CSV) if fmt == "csv" else (to_xlsx(table, sheet), XLSX)
    # ASCII file names: every browser and Excel version takes them as they are
    return Response(body, media_type=media, headers={"Content-Disposition": f'attachment; filename="{name}.{fmt}"'})


def _day(text: str | None, default: dt.date) -> dt.date:
    if text is None:
        return default
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise ApiError(422, "bad_date", f"日期格式应为 YYYY-MM-DD，收到的是 {text!r}") from None


def span(day_from: str | None, day_to: str | None) -> tuple[dt.date, dt.date]:
    today = dt.date.today()
    first, last = _day(day_from, today), _day(day_to, today)
    if first > last or (last - first).days > 366:
        raise ApiError(422, "bad_span", "起止日期有误：开始日期须不晚于结束日期，且跨度不超过一年")
    return first, last


def rows_by(conn: Any, by: str, day_from: str | None, day_to: str | None, hall: str | None) -> list[dict[str, Any]]:
    if by not in reports.GROUPINGS:
        raise ApiError(404, "unknown_report", f"没有按 {by} 统计的报表（可选：{'、'.join(reports.GROUPINGS)}）")
    first, last = span(day_from, day_to)
    return reports.report(reports.hall_ledgers(conn, first, last, hall), by, first, last)


def assessment_rows(conn: Any, month: str | None) -> tuple[str, list[dict[str, Any]]]:
    month = month or dt.date.today().strftime("%Y-%m")
    try:
        first = dt.datetime.strptime(month, "%Y-%m").date()
    except ValueError:
        raise ApiError(422, "bad_month", f"月份格式应为 YYYY-MM，收到的是 {month!r}") from None
    last = (first + dt.timedelta(days=32)).replace(day=1) - dt.timedelta(days=1)
    return month, reports.assessment(reports.hall_ledgers(conn, first, last), month)


def report_routes(database: Callable[..., Any]) -> APIRouter:
    r = APIRouter()

    @r.get("/api/v1/reports/{by}.{fmt}", tags=["reports"], summary="A district report as a CSV or Excel file")
    def report_file(by: str, fmt: str, day_from: str | None = Query(None, alias="from"),
                    day_to: str | None = Query(None, alias="to"), hall: str | None = None,
                    conn=Depends(database)) -> Response:
        rows = rows_by(conn, by, day_from, day_to, hall)
        return as_file(rows, f"district-{by}", fmt, SHEETS[by])

    @r.get("/api/v1/reports/{by}", tags=["reports"],
           summary="A district report: per hall, service, staff, window, day or month")
    def report(by: str, day_from: str | None = Query(None, alias="from"), day_to: str | None = Query(None, alias="to"),
               hall: str | None = None, conn=Depends(database)) -> dict[str, Any]:
        return {"by": by, "rows": rows_by(conn, by, day_from, day_to, hall)}

    @r.get("/api/v1/assessment.{fmt}", tags=["reports"], summary="月度考核通报 as a CSV or Excel file")
    def assessment_file(fmt: str, month: str | None = None, conn=Depends(database)) -> Response:
        month, rows = assessment_rows(conn, month)
        return as_file(rows, f"district-assessment-{month}", fmt, ASSESSMENT_SHEET)

    @r.get("/api/v1/assessment", tags=["reports"], summary="月度考核通报: every hall's month, ranked")
    def assessment(month: str | None = None, conn=Depends(database)) -> dict[str, Any]:
        month, rows = assessment_rows(conn, month)
        return {"month": month, "rows": rows}

    return r
