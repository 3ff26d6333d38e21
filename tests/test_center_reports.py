"""The district's reports (区县报表), accepted: two town halls' mornings reach the centre over a
real Mosquitto into a real PostgreSQL, and the centre's reports, computed from the events it
holds, equal each hall's own report (the rows its report API serves, hall_reports.hall_figures),
field by field; the files carry them with the hall's Chinese headers."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest
from openpyxl import load_workbook

from zoneinfo import ZoneInfo

from center.consumer import Consumer
from center.local import LocalPostgres
from controller.assembly import open_hall
from controller.backoffice import hall_reports
from controller.runtime.clock import ManualClock
from controller.store.hallstore import HallStore
from tests.district import caught_up, centre_api, link, run_mornings, serve_a_while, town_halls
from tests.halls import at, small_hall
from tests.mqtt_brokers import Mosquitto
from tests.server import running_hall, wait_for

DAY = dt.date(2026, 11, 23)
# what the centre cannot know and leaves out: the names in the hall's configuration, and the
# assessment points of the case desk's cases
HALL_ONLY = {"name", "assessment_points"}


def morning_after(day, data_dir):
    """The hall starts the next morning: the day changes, and what the morning left open (a
    visit at a window, tickets still waiting) ends with it, as served past closing and as
    cancelled, in the log the centre gets too (as sim.multiday does after its last day)."""
    clock = ManualClock(dt.datetime.combine(DAY + dt.timedelta(days=1), dt.time(8), ZoneInfo(day.hall.timezone)))
    ctrl, _ = open_hall(day.hall, data_dir, clock, durable=False)
    try:
        ctrl.tick()
    finally:
        ctrl.store.close()


def own_report(tmp_path, name, day, by):
    """The hall's own report, as its report API computes it."""
    store = HallStore(tmp_path / name / "hall.sqlite3", durable=False)
    try:
        return hall_reports.hall_figures(store.db, day.hall, DAY, DAY, by, day.clock.now)
    finally:
        store.close()


@pytest.fixture(scope="module")
def district(tmp_path_factory):
    """One simulated morning of two halls, shipped and held, read by every test here (a morning
    takes a while: the tests only read)."""
    tmp_path = tmp_path_factory.mktemp("district")
    (tmp_path / "mosquitto").mkdir()
    broker, database = Mosquitto(tmp_path / "mosquitto"), LocalPostgres(fsync=False)
    broker.start()
    database.start()
    consumer = Consumer(database.dsn, broker.host, broker.port).start()
    halls = town_halls(tmp_path, broker)
    try:
        run_mornings(halls)
        for n, (day, _) in halls.items():
            morning_after(day, tmp_path / n)
        with centre_api(database.dsn) as api:
            for n in halls:
                wait_for(lambda n=n: caught_up(api, n, tmp_path / n / "hall.sqlite3"), 30)
            yield tmp_path, {n: d for n, (d, _) in halls.items()}, api
    finally:
        for _, shipper in halls.values():
            shipper.stop()
        consumer.stop()
        broker.stop()
        database.remove()


@pytest.mark.parametrize("by", ["service", "staff", "window", "day", "month"])
def test_each_halls_report_at_the_centre_equals_its_own(district, by):
    tmp_path, halls, api = district
    r = api.get(f"/api/v1/reports/{by}", params={"from": DAY.isoformat(), "to": DAY.isoformat()})
    assert r.status_code == 200, r.text
    rows = r.json()["rows"]
    for name, day in halls.items():
        own = [{k: v for k, v in row.items() if k not in HALL_ONLY} for row in own_report(tmp_path, name, day, by)]
        theirs = [{k: v for k, v in row.items() if k != "hall"} for row in rows if row["hall"] == name]
        assert own and theirs == own
    # one hall alone: its rows only
    one = api.get(f"/api/v1/reports/{by}", params={"from": DAY.isoformat(), "to": DAY.isoformat(), "hall": "town-2"})
    assert one.json()["rows"] == [row for row in rows if row["hall"] == "town-2"]


def test_by_hall_is_each_halls_day_and_the_assessment_its_month(district):
    tmp_path, halls, api = district
    by_hall = api.get("/api/v1/reports/hall", params={"from": DAY.isoformat(), "to": DAY.isoformat()}).json()["rows"]
    ranked = api.get("/api/v1/assessment", params={"month": "2026-11"}).json()["rows"]
    assert [r["hall"] for r in by_hall] == sorted(halls)
    assert sorted(r["rank"] for r in ranked) == [1, 2]
    for name, day in halls.items():
        (own_day,) = own_report(tmp_path, name, day, "day")
        (own_month,) = own_report(tmp_path, name, day, "month")
        (hall_row,) = [r for r in by_hall if r["hall"] == name]
        assert hall_row == {"hall": name, **{k: v for k, v in own_day.items() if k != "day"}}
        (month_row,) = [r for r in ranked if r["hall"] == name]
        assert {k: month_row[k] for k in own_month} == own_month
        assert month_row["evaluated"] > 0 and month_row["satisfaction_points"] in (5, 7, 9, 10)
    first, second = sorted(ranked, key=lambda r: r["rank"])
    assert first["satisfaction_rate"] >= second["satisfaction_rate"]


def test_the_files_carry_the_rows_with_chinese_headers(district):
    _, _, api = district
    params = {"from": DAY.isoformat(), "to": DAY.isoformat()}
    rows = api.get("/api/v1/reports/service", params=params).json()["rows"]
    r = api.get("/api/v1/reports/service.csv", params=params)
    assert r.status_code == 200 and r.content.startswith(b"\xef\xbb\xbf")  # BOM: Excel reads UTF-8
    read = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert list(read[0])[:4] == ["大厅", "业务", "取号", "办结"]
    assert [(x["大厅"], x["业务"], int(x["取号"])) for x in read] == [
        (x["hall"], x["service"], x["issued"]) for x in rows]
    assert read[0]["满意率"].endswith("%")

    book = load_workbook(io.BytesIO(api.get("/api/v1/assessment.xlsx", params={"month": "2026-11"}).content))
    sheet = book.active
    assert sheet.title == "月度考核通报"
    head = [c.value for c in sheet[1]]
    assert head[:3] == ["排名", "大厅", "月份"] and "满意度得分" in head and "满意率" in head
    assert sheet.max_row == 3  # two halls


@pytest.mark.parametrize("path, params, code", [
    ("/api/v1/reports/department", {}, "unknown_report"),
    ("/api/v1/reports/service", {"from": "2026-13-01"}, "bad_date"),
    ("/api/v1/reports/service", {"from": "2026-11-30", "to": "2026-11-01"}, "bad_span"),
    ("/api/v1/reports/service.pdf", {}, "unknown_format"),
    ("/api/v1/assessment", {"month": "November"}, "bad_month"),
])
def test_a_wrong_question_gets_a_clear_answer(district, path, params, code):
    _, _, api = district
    r = api.get(path, params=params)
    assert r.status_code in (404, 422) and r.json()["error"] == code
    assert any("\u4e00" <= ch <= "\u9fff" for ch in r.json()["message"])




def test_a_served_halls_report_api_equals_the_centres_across_a_day_change(tmp_path, mosquitto, postgres):
    """A hall served through its own server: a visit left at window 1 and tickets left waiting
    when the day changes (served past closing, and cancelled); the hall's report API and the
    centre's give the same rows."""
    consumer = Consumer(postgres.dsn, mosquitto.host, mosquitto.port).start()
    clock = ManualClock(at("09:00"))
    day = at("09:00").date()
    try:
        with running_hall(small_hall(), tmp_path / "h", clock, federation=link("hall-s", mosquitto)) as h, \
                centre_api(postgres.dsn) as centre:
            serve_a_while(h, 12, pause=True)
            with h.client() as api:
                s1 = h.login("s1", 1)
                assert api.post("/api/v1/windows/1/call", headers=s1).status_code == 200  # never finished
                clock.advance(hours=16)  # past midnight: the hall's ticker changes the day
                wait_for(lambda: api.get("/api/v1/health").json()["clock"]["day"] != day.isoformat(), 45)
                boss = h.login("boss", None)
                own = {by: api.get("/api/v1/reports/hall", headers=boss,
                                   params={"from": day.isoformat(), "to": day.isoformat(), "by": by}).json()
                       for by in ("service", "staff", "window", "day")}
            wait_for(lambda: caught_up(centre, "hall-s", tmp_path / "h" / "hall.sqlite3"), 30)
            assert own["day"][0]["cancelled"] > 0  # tickets left waiting, cancelled by the day's end
            for by, rows in own.items():
                theirs = centre.get(f"/api/v1/reports/{by}", params={"from": day.isoformat(), "to": day.isoformat(),
                                                                      "hall": "hall-s"}).json()["rows"]
                assert [{k: v for k, v in r.items() if k != "hall"} for r in theirs] == [
                    {k: v for k, v in r.items() if k not in HALL_ONLY} for r in rows]
    finally:
        consumer.stop()
