"""The reports page from one real Monday: tickets and waits per service, window, staff, day
and month; the overtime register (延时服务) for visits finished after 17:30; attendance (考勤)
from window logins, late at 09:07 but not at 09:03; and the API's files and role checks."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re

import pytest
from fastapi import FastAPI, Header, Request
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient
from openpyxl import load_workbook

from controller.backoffice import hall_reports as hr
from controller.cli import open_hall
from controller.runtime.clock import ManualClock
from controller.core import commands as c
from controller.core.errors import HallError
from controller.core.hall import NoShowPolicy
from controller.core.workdays import WorkCalendar
from controller.store.sessions import Session
from controller.web.reports_api import report_routes
from tests.halls import MONDAY, at, small_hall

TUESDAY = MONDAY + dt.timedelta(days=1)
WEDNESDAY = MONDAY + dt.timedelta(days=2)


@pytest.fixture(scope="module")
def hall(tmp_path_factory):
    """Monday 23 November (09:00-12:00, 13:30-17:30), then one visit on Tuesday morning.

    s1 at window 1 (A): in 09:03-12:00 and 13:31-17:45. A001-A004 in the morning, waits
        2, 5, 10, 20 and service 8, 10, 8, 4 minutes; A005 and A006 taken before the 17:00
        cut-off, waits 20 and 25, service 10 (to 17:20) and 22 (to 17:42, overtime).
        Grades 满意, 不满意, -, 非常满意, 满意, -.
    s2 at window 2 (B, A): in 09:07 (late) to 11:50 (early); B001 called after 5 minutes
        and transferred to C; B002 called after 5 minutes and 过号 (dropped). Afternoon absent.
    s3 at window 3 (C): absent in the morning, in at 13:35 (on time, just) and never out:
        B001 (now C) called at 13:40, finished 13:50; C002 called 17:21, finished 17:31.
    C001 taken at 10:30 and cancelled at 10:31, never called.
    """
    clock = ManualClock(at("09:00"))
    ctrl, sessions = open_hall(small_hall(no_show=NoShowPolicy.DROP),
                               tmp_path_factory.mktemp("hall"), clock)

    def when(hhmm: str, *commands: tuple[c.Command, str], day: dt.date = MONDAY):
        clock.now = at(hhmm, day)
        return [ctrl.execute(cmd, actor) for cmd, actor in commands]

    def w(n: int, cmd: c.Command) -> tuple[c.Command, str]:
        return cmd, f"staff:s{n}"

    def issue(service: str) -> tuple[c.Command, str]:
        return c.IssueTicket(service), "kiosk"

    def grade(n: int, g: str) -> tuple[c.Command, str]:
        return c.Evaluate(n, g), f"pad:{n}"

    when("09:03", w(1, c.Login(1, "s1")))
    when("09:07", w(2, c.Login(2, "s2")))
    when("09:10", issue("A"))
    when("09:12", w(1, c.CallNext(1)))
    when("09:15", issue("A"))
    when("09:20", w(1, c.Finish(1)), grade(1, "满意"), w(1, c.CallNext(1)))
    when("09:22", issue("A"))
    when("09:30", w(1, c.Finish(1)), grade(1, "不满意"))
    when("09:32", w(1, c.CallNext(1)))
    when("09:36", issue("A"))
    when("09:40", w(1, c.Finish(1)))
    when("09:56", w(1, c.CallNext(1)))
    when("10:00", w(1, c.Finish(1)), grade(1, "非常满意"))
    when("10:05", issue("B"))
    when("10:10", w(2, c.CallNext(2)))
    when("10:11", issue("B"))
    when("10:15", w(2, c.Transfer(2, "C")))
    when("10:16", w(2, c.CallNext(2)))
    when("10:20", w(2, c.NoShow(2)))
    cancelled = when("10:30", issue("C"))[0].ticket.id
    when("10:31", (c.CancelTicket(cancelled, "群众放弃"), "staff:boss"))
    when("11:50", w(2, c.Logout(2)))
    when("12:00", w(1, c.Logout(1)))
    when("13:31", w(1, c.Login(1, "s1")))
    when("13:35", w(3, c.Login(3, "s3")))
    when("13:40", w(3, c.CallNext(3)))
    when("13:50", w(3, c.Finish(3)))
    when("16:50", issue("A"))
    when("16:55", issue("A"))
    when("16:58", issue("C"))
    when("17:10", w(1, c.CallNext(1)))
    when("17:20", w(1, c.Finish(1)), grade(1, "满意"), w(1, c.CallNext(1)))
    when("17:21", w(3, c.CallNext(3)))
    when("17:31", w(3, c.Finish(3)))
    when("17:42", w(1, c.Finish(1)))
    when("17:45", w(1, c.Logout(1)))
    # Tuesday: the day starts (closing s3's window for the controller, not a logout)
    clock.now = at("09:00", TUESDAY)
    ctrl.tick()
    when("09:00", w(1, c.Login(1, "s1")), day=TUESDAY)
    when("09:01", issue("A"), day=TUESDAY)
    when("09:02", w(1, c.CallNext(1)), day=TUESDAY)
    when("09:05", w(1, c.Finish(1)), day=TUESDAY)
    return ctrl


def by_key(rows, key):
    return {r[key]: r for r in rows}


def test_figures_per_window_count_tickets_where_they_ended(hall):
    rows = by_key(hr.hall_figures(hall.store.db, hall.hall, MONDAY, MONDAY, "window"), "window")
    assert list(rows) == [1, 2, 3, None]
    counts = ("issued", "served", "no_show", "cancelled", "transferred")
    assert [rows[1][k] for k in counts] == [6, 6, 0, 0, 0]
    assert [rows[2][k] for k in counts] == [1, 0, 1, 0, 0]  # the 过号 B002, marked at window 2
    assert [rows[3][k] for k in counts] == [2, 2, 0, 0, 1]  # B001 ended here as a C ticket
    assert [rows[None][k] for k in counts] == [1, 0, 0, 1, 0]  # C001, never called
    w1 = rows[1]
    assert w1["name"] == "1号窗口"
    # waits 2, 5, 10, 20, 20, 25: the median of 10 and 20, P90 at rank 4.5 between 20 and 25
    assert (w1["wait_minutes_mean"], w1["wait_minutes_p50"], w1["wait_minutes_p90"]) == \
        (round(82 / 6, 1), 15.0, 22.5)
    # service 8, 10, 8, 4, 10, 22 → sorted 4, 8, 8, 10, 10, 22
    assert (w1["service_minutes_mean"], w1["service_minutes_p50"], w1["service_minutes_p90"]) == \
        (round(62 / 6, 1), 9.0, 16.0)
    assert (w1["evaluated"], w1["evaluation_rate"], w1["satisfaction_rate"], w1["bad_reviews"]) == \
        (4, round(4 / 6, 4), 0.75, 1)
    # window 3: B001 waited 10:05-13:40 (215 min), C002 16:58-17:21 (23 min)
    w3 = rows[3]
    assert (w3["wait_minutes_p50"], w3["wait_minutes_p90"]) == (119.0, round(23 + 0.9 * 192, 1))
    assert w3["service_minutes_p50"] == 10.0 and w3["evaluated"] == 0
    assert w3["satisfaction_rate"] is None
    assert rows[2]["service_minutes_p50"] is None and rows[2]["wait_minutes_p50"] == 5.0


def test_figures_per_service_staff_day_and_month(hall):
    db, h = hall.store.db, hall.hall
    services = by_key(hr.hall_figures(db, h, MONDAY, MONDAY, "service"), "service")
    assert {k: r["issued"] for k, r in services.items()} == {"A": 6, "B": 1, "C": 3}
    assert services["C"]["name"] == "户政"
    assert (services["C"]["transferred"], services["C"]["cancelled"]) == (1, 1)
    assert services["A"]["wait_minutes_p50"] == 15.0
    staff = by_key(hr.hall_figures(db, h, MONDAY, MONDAY, "staff"), "staff")
    assert {k: r["issued"] for k, r in staff.items()} == {"s1": 6, "s2": 1, "s3": 2, None: 1}
    assert staff["s1"]["name"] == "员工1"
    assert staff["s1"]["satisfaction_points"] == 5  # 3 of 4 satisfied: below 80%
    assert staff["s3"]["satisfaction_points"] is None  # nobody graded s3
    days = by_key(hr.hall_figures(db, h, MONDAY, TUESDAY, "day"), "day")
    assert {k: (r["issued"], r["served"]) for k, r in days.items()} == {
        "2026-11-23": (10, 8), "2026-11-24": (1, 1)}
    assert days["2026-11-24"]["wait_minutes_p50"] == 1.0
    months = hr.hall_figures(db, h, MONDAY, WEDNESDAY, "month")
    assert [(r["month"], r["issued"], r["no_show"]) for r in months] == [("2026-11", 11, 1)]
    with pytest.raises(ValueError):
        hr.hall_figures(db, h, MONDAY, MONDAY, "floor")


@pytest.mark.parametrize("values, q, expected", [
    ([2, 5, 10, 20], 0.5, 7.5), ([2, 5, 10, 20], 0.9, 17.0), ([7], 0.9, 7), ([], 0.5, None),
    ([3, 1, 2], 0.5, 2),
])
def test_percentile_is_a_spreadsheets(values, q, expected):
    assert hr.percentile(values, q) == expected


def test_overtime_register_lists_visits_finished_after_closing(hall):
    rows = hr.overtime_register(hall.store.db, hall.hall, MONDAY, TUESDAY)
    assert [(r["day"], r["staff"]) for r in rows] == [("2026-11-23", "s3"), ("2026-11-23", "s1")]
    s3, s1 = rows
    # A005 finished at 17:20, inside the hours: only A006 is overtime
    assert (s1["name"], s1["windows"], s1["visits"], s1["tickets"]) == ("员工1", [1], 1, ["A006"])
    assert s1["closing"] == "17:30"
    assert dt.datetime.fromisoformat(s1["last_finished_at"]) == at("17:42")
    assert s1["minutes_past_closing"] == (at("17:42") - at("17:30")).total_seconds() / 60
    assert (s3["tickets"], s3["minutes_past_closing"]) == (["C002"], 1.0)
    assert hr.overtime_register(hall.store.db, hall.hall, TUESDAY, TUESDAY) == []


def test_attendance_late_early_and_absent_per_session(hall):
    rows = hr.attendance(hall.store.db, hall.hall, MONDAY, MONDAY)
    got = {(r["staff"], r["session"]): r for r in rows}
    assert len(rows) == 6  # s1-s3 with A posts; the supervisor has none
    assert "boss" not in {r["staff"] for r in rows}

    def times(r):
        return [dt.datetime.fromisoformat(v) if v else None
                for v in (r["first_login"], r["last_logout"])]

    s1 = got["s1", "morning"]
    assert times(s1) == [at("09:03"), at("12:00")]
    assert (s1["late"], s1["early_leave"], s1["absent"], s1["status"]) == \
        (False, False, False, "present")
    s2 = got["s2", "morning"]
    assert times(s2) == [at("09:07"), at("11:50")]
    assert (s2["late"], s2["early_leave"], s2["status"]) == (True, True, "late_and_early_leave")
    assert (got["s2", "afternoon"]["absent"], got["s2", "afternoon"]["status"]) == (True, "absent")
    assert got["s3", "morning"]["absent"] and got["s3", "morning"]["first_login"] is None
    s3 = got["s3", "afternoon"]
    # 13:35 is 5 minutes, not more; the controller's day-end close on Tuesday is no logout
    assert times(s3) == [at("13:35"), None]
    assert (s3["late"], s3["early_leave"], s3["windows"]) == (False, False, [3])
    s1 = got["s1", "afternoon"]
    assert times(s1) == [at("13:31"), at("17:45")] and s1["status"] == "present"
    assert (s1["session_start"], s1["session_end"]) == ("13:30", "17:30")


def test_attendance_tolerance_calendar_and_sessions_not_yet_begun(hall):
    db, h = hall.store.db, hall.hall
    strict = by_key([r for r in hr.attendance(db, h, MONDAY, MONDAY, tolerance_minutes=2)
                     if r["session"] == "morning"], "staff")
    assert strict["s1"]["late"]  # 09:03 is more than 2 minutes
    # nobody logged in on Wednesday: without a calendar no working day, with one all absent
    assert hr.attendance(db, h, WEDNESDAY, WEDNESDAY) == []
    plain = WorkCalendar({}, {}, frozenset())
    assert [r["status"] for r in hr.attendance(db, h, WEDNESDAY, WEDNESDAY, workdays=plain)] == \
        ["absent"] * 6
    holiday = WorkCalendar({WEDNESDAY: "test"}, {}, frozenset({2026}))
    assert hr.attendance(db, h, WEDNESDAY, WEDNESDAY, workdays=holiday) == []
    # Tuesday at 10:00: the afternoon has not begun, the morning is still on
    tuesday = hr.attendance(db, h, TUESDAY, TUESDAY, now=at("10:00", TUESDAY))
    assert {r["session"] for r in tuesday} == {"morning"}
    s1 = by_key(tuesday, "staff")["s1"]
    assert (s1["late"], s1["early_leave"]) == (False, None)


def _client(ctrl) -> TestClient:
    app = FastAPI()

    def session(x_role: str = Header("staff"), x_staff: str = Header("s1")) -> Session:
        return Session(x_staff, x_role, None)

    @app.exception_handler(HallError)
    async def hall_error(request: Request, e: HallError) -> JSONResponse:
        return JSONResponse({"error": e.code, "message": e.message},
                            status_code={"forbidden": 403, "invalid": 422}.get(e.category, 400))

    app.include_router(report_routes(ctrl, session))
    return TestClient(app)


MONDAY_ONLY = {"from": "2026-11-23", "to": "2026-11-23"}
PATHS = [f"/api/v1/reports/{name}{ext}" for name in ("hall", "overtime", "attendance")
         for ext in ("", ".csv", ".xlsx")]


@pytest.mark.parametrize("role", ["supervisor", "admin"])
def test_the_api_serves_json_and_files(hall, role):
    client = _client(hall)
    h = {"X-Role": role}
    got = client.get("/api/v1/reports/hall", params={**MONDAY_ONLY, "by": "window"}, headers=h)
    assert got.status_code == 200
    windows = by_key(got.json(), "window")
    assert (windows[1]["wait_minutes_p50"], windows[None]["cancelled"]) == (15.0, 1)

    got = client.get("/api/v1/reports/hall.csv", params={**MONDAY_ONLY, "by": "service"}, headers=h)
    assert got.headers["content-disposition"] == \
        'attachment; filename="hall-service-20261123-20261123.csv"'
    read = list(csv.DictReader(io.StringIO(got.content.decode("utf-8-sig"))))
    assert [(r["业务"], r["取号"]) for r in read] == [("A", "6"), ("B", "1"), ("C", "3")]

    got = client.get("/api/v1/reports/overtime.xlsx", params=MONDAY_ONLY, headers=h)
    assert got.headers["content-disposition"].endswith('overtime-20261123-20261123.xlsx"')
    sheet = load_workbook(io.BytesIO(got.content))["延时服务"]
    values = list(sheet.iter_rows(values_only=True))
    header = list(values[0])
    assert len(values) == 3  # header, s3, s1
    assert {r[header.index("工号")]: r[header.index("号码")] for r in values[1:]} == {
        "s1": "A006", "s3": "C002"}

    got = client.get("/api/v1/reports/attendance.xlsx", params=MONDAY_ONLY, headers=h)
    values = list(load_workbook(io.BytesIO(got.content))["考勤"].iter_rows(values_only=True))
    header = list(values[0])
    assert len(values) == 7
    late = {(r[header.index("工号")], r[header.index("时段")]) for r in values[1:]
            if r[header.index("迟到")] == "是"}
    assert late == {("s2", "上午")}

    got = client.get("/api/v1/reports/attendance.csv", params={**MONDAY_ONLY, "tolerance": 2},
                     headers=h)
    read = list(csv.DictReader(io.StringIO(got.content.decode("utf-8-sig"))))
    # with 2 minutes, 09:03 and 13:35 are late too; 13:31 is not
    assert {(r["工号"], r["时段"]) for r in read if r["迟到"] == "是"} == {
        ("s1", "上午"), ("s2", "上午"), ("s3", "下午")}
    got = client.get("/api/v1/reports/attendance", params=MONDAY_ONLY, headers=h)
    assert sum(r["absent"] for r in got.json()) == 2


def test_the_files_for_leadership_are_in_chinese_with_plain_times(hall):
    """The same attendance and overtime as the JSON, in the hall's words: Chinese headers,
    是/否, 上午/下午 and the attendance page's statuses, times to the minute; the JSON keeps
    its keys and ISO times for the machines that read it."""
    client = _client(hall)
    h = {"X-Role": "supervisor"}
    got = client.get("/api/v1/reports/attendance.csv", params=MONDAY_ONLY, headers=h)
    assert got.content.startswith(b"\xef\xbb\xbf")  # Excel reads UTF-8 only with it
    header, *lines = csv.reader(io.StringIO(got.content.decode("utf-8-sig")))
    assert header == ["日期", "时段", "时段开始", "时段结束", "工号", "姓名", "A岗窗口", "窗口",
                      "首次登录", "最后退出", "迟到", "早退", "未登录", "考勤"]
    rows = {(line[4], line[1]): line for line in lines}
    assert rows["s2", "上午"] == ["2026-11-23", "上午", "09:00", "12:00", "s2", "员工2", "2", "2",
                                  "2026-11-23 09:07", "2026-11-23 11:50", "是", "是", "否", "迟到、早退"]
    assert rows["s3", "上午"][8:] == ["", "", "否", "否", "是", "未登录"]
    assert rows["s3", "下午"][8:10] == ["2026-11-23 13:35", ""]  # never logged out

    got = client.get("/api/v1/reports/attendance.xlsx", params=MONDAY_ONLY, headers=h)
    values = list(load_workbook(io.BytesIO(got.content))["考勤"].iter_rows(values_only=True))
    assert list(values[0]) == header
    [s2] = [v for v in values[1:] if v[4] == "s2" and v[1] == "上午"]
    assert s2[8:] == ("2026-11-23 09:07", "2026-11-23 11:50", "是", "是", "否", "迟到、早退")

    got = client.get("/api/v1/reports/overtime.csv", params=MONDAY_ONLY, headers=h)
    header, *lines = csv.reader(io.StringIO(got.content.decode("utf-8-sig")))
    assert header == ["日期", "工号", "姓名", "窗口", "下班时间", "延时办件", "号码", "最后办结",
                      "延时（分钟）", "跨日自动办结"]
    assert {line[1]: line[6:9] for line in lines} == {
        "s1": ["A006", "2026-11-23 17:42", "12.0"], "s3": ["C002", "2026-11-23 17:31", "1.0"]}

    got = client.get("/api/v1/reports/hall.csv", params={**MONDAY_ONLY, "by": "window"}, headers=h)
    header, first, *_ = csv.reader(io.StringIO(got.content.decode("utf-8-sig")))
    assert header[:8] == ["窗口", "窗口名称", "取号", "办结", "过号", "取消", "转办", "等候均值（分钟）"]
    # waits 2, 5, 10, 20, 20, 25: 13.7 minutes on average, one decimal; 4 of 6 graded
    assert (first[7], first[header.index("评价率")]) == ("13.7", "66.7%")

    json_row = client.get("/api/v1/reports/attendance", params=MONDAY_ONLY, headers=h).json()[1]
    assert (json_row["session"], json_row["late"], json_row["status"]) == ("morning", True,
                                                                          "late_and_early_leave")
    assert dt.datetime.fromisoformat(json_row["first_login"]) == at("09:07")


@pytest.mark.parametrize("path, params", [
    *[("hall.xlsx", {"by": by}) for by in hr.GROUPINGS], ("overtime.xlsx", {}), ("attendance.xlsx", {})])
def test_every_column_of_every_file_has_a_chinese_header(hall, path, params):
    got = _client(hall).get(f"/api/v1/reports/{path}", params={**MONDAY_ONLY, **params},
                            headers={"X-Role": "admin"})
    header = next(load_workbook(io.BytesIO(got.content)).active.iter_rows(values_only=True))
    assert header and [h for h in header if not re.search("[\u4e00-\u9fff]", h)] == []


def test_the_api_refuses_staff_and_keeps_personnel_records_from_callback_officers(hall):
    client = _client(hall)
    for path in PATHS:
        got = client.get(path, params=MONDAY_ONLY, headers={"X-Role": "staff"})
        assert (got.status_code, got.json()["error"]) == (403, "forbidden_role"), path
        got = client.get(path, params=MONDAY_ONLY, headers={"X-Role": "callback_officer"})
        assert got.status_code == (200 if "/hall" in path else 403), path


def test_the_api_rejects_bad_dates_and_groupings(hall):
    client = _client(hall)
    boss = {"X-Role": "supervisor"}
    for path in PATHS:
        assert client.get(path, params={"from": "2026-13-01"}, headers=boss).status_code == 422
    assert client.get("/api/v1/reports/hall", params={"by": "floor"},
                      headers=boss).status_code == 422
    assert client.get("/api/v1/reports/attendance", params={"tolerance": -1},
                      headers=boss).status_code == 422
