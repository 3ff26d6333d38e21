"""Opening days follow the holiday calendar (issue 12, item 3).

000 考勤管理办法 第三条: the hall opens Monday to Friday "除国家法定节假日外". The dates
come from the same working-day calendar as the callback deadlines (chinesecalendar plus
holidays.toml): on National Day 2026 the kiosk says the hall is closed and why, on the
调休 Saturday 2026-10-10 it opens with the configured weekday's hours, the hall file
adds a Saturday 延时服务 session or closes a weekday, and attendance counts the same days.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import sqlite3
import time

import httpx
import pytest
from playwright.sync_api import expect

from controller import assembly, cli
from controller.backoffice import hall_reports as hr
from controller.assembly import hall_clock
from controller.runtime.clock import ManualClock
from controller.config.hall import ConfigError, load_hall, parse_hall
from controller.core import commands as c
from controller.core.errors import HallError
from controller.core.hall import DayHours, Hall, OpenDay, OpeningCalendar
from controller.web.views import opening_json
from controller.config.workdays import from_chinesecalendar
from tests.browser import DESK, KIOSK, TV, log_in, open_page
from tests.halls import TZ, WEEKDAY_HOURS, at, small_hall, span
from tests.server import DEMO_CONFIG, HallProcess
from tests.story import Story
from tests.test_config import minimal_hall_dict

CHINA = from_chinesecalendar()  # 2026: 国庆节 10-01..10-07, 调休 Sunday 09-20 and Saturday 10-10
NATIONAL_DAY = dt.date(2026, 10, 1)
MAKE_UP_SATURDAY = dt.date(2026, 10, 10)
# Friday afternoons close at 16:00 in these halls (政治学习), so a 调休 day on Friday's
# hours is told apart from one on Monday's
FRIDAY_HOURS = DayHours(sessions=(span("09:00-12:00"), span("13:30-16:00")))


def calendar_hall(make_up: str = "mon", open_days: tuple[OpenDay, ...] = (),
                  closed_days: dict[dt.date, str] | None = None) -> Hall:
    hall = small_hall()
    return dataclasses.replace(
        hall, hours={**hall.hours, "fri": FRIDAY_HOURS},
        calendar=OpeningCalendar(CHINA, make_up, {d.day: d for d in open_days}, closed_days or {}))


def refusal(story: Story, hhmm: str) -> HallError:
    story.at(hhmm)
    with pytest.raises(HallError) as e:
        story.issue("A")
    return e.value


# --- the hall as the calendar opens it ---------------------------------------------------


@pytest.mark.parametrize("day, opens, why", [
    ("2026-09-30", True, None),           # Wednesday before the holiday
    ("2026-10-01", False, "国庆节放假"),   # National Day, a Thursday
    ("2026-10-03", False, "国庆节放假"),   # a Saturday inside the holiday
    ("2026-10-07", False, "国庆节放假"),
    ("2026-10-08", True, None),           # back to work on Thursday
    ("2026-09-20", True, None),           # 调休 Sunday before it
    ("2026-10-10", True, None),           # 调休 Saturday after it
    ("2026-10-11", False, "周日休息"),     # an ordinary Sunday
    ("2026-01-01", False, "元旦放假"),
])
def test_the_hall_opens_by_the_holiday_calendar(day, opens, why):
    opening = calendar_hall().opening_on(dt.date.fromisoformat(day))
    assert (opening.open, opening.closed_reason) == (opens, why)


def test_on_national_day_the_kiosk_refuses_and_says_why_and_when_the_hall_opens():
    story = Story(calendar_hall(), "09:00", NATIONAL_DAY)
    error = refusal(story, "09:00")
    assert error.code == "hall_closed"
    assert error.message == "今天不办公：国庆节放假。10月8日（周四）09:00 起办公"
    assert not story.state.tickets
    # the day before, the same kiosk issued tickets as on any Wednesday
    story = Story(calendar_hall(), "09:00", NATIONAL_DAY - dt.timedelta(days=1))
    assert story.issue("A") == "A001"


def test_the_make_up_saturday_opens_with_the_configured_weekdays_hours():
    on_friday_hours = Story(calendar_hall(make_up="fri"), "08:30", MAKE_UP_SATURDAY)
    assert on_friday_hours.issue("A") == "A001"
    assert calendar_hall(make_up="fri").opening_on(MAKE_UP_SATURDAY).note == "国庆节调休"
    # Friday's afternoon ends at 16:00: tickets stop at 15:30, as on a Friday
    assert refusal(on_friday_hours, "15:40").message == \
        "今日取号已于 15:30 截止。10月12日（周一）09:00 起办公"
    # a hall that works its 调休 days on Monday's hours still issues then
    on_monday_hours = Story(calendar_hall(make_up="mon"), "15:40", MAKE_UP_SATURDAY)
    assert on_monday_hours.issue("A") == "A001"
    # and an ordinary Saturday stays closed
    assert refusal(Story(calendar_hall(), "09:00", dt.date(2026, 10, 17)), "09:00").message == \
        "今天不办公：周六休息。10月19日（周一）09:00 起办公"


def test_a_saturday_session_from_the_hall_file_opens_a_weekend_morning():
    saturday = dt.date(2026, 11, 28)
    hall = calendar_hall(open_days=(OpenDay(saturday, DayHours((span("09:00-12:00"),)),
                                            "周六延时服务"),))
    story = Story(hall, "09:00", saturday)
    assert story.issue("A") == "A001"
    assert hall.opening_on(saturday).note == "周六延时服务"
    assert refusal(story, "11:40").code == "after_cutoff"
    # the Friday before, the cut-off sends citizens to tomorrow's session; a week later, to Monday
    friday = Story(hall, "17:10", saturday - dt.timedelta(days=1))
    assert refusal(friday, "17:10").message == "今日取号已于 15:30 截止，请明天再来"
    next_friday = Story(hall, "17:10", saturday + dt.timedelta(days=6))
    assert refusal(next_friday, "17:10").message == "今日取号已于 15:30 截止。12月7日（周一）09:00 起办公"
    # only that Saturday: the next one is closed
    assert not hall.opening_on(saturday + dt.timedelta(days=7)).open


def test_a_lunchtime_session_joins_the_day_without_a_gap():
    wednesday = dt.date(2026, 11, 25)
    hall = calendar_hall(open_days=(OpenDay(wednesday, DayHours((span("12:00-13:30"),)),
                                            "午间延时服务"),))
    assert hall.hours_on(wednesday).sessions == (span("09:00-17:30"),)
    assert hall.hours_on(wednesday).breaks == WEEKDAY_HOURS.breaks
    story = Story(hall, "12:15", wednesday)
    assert story.issue("A") == "A001"
    # the Wednesday after keeps its lunch break: no tickets between 11:30 and 13:00
    plain = Story(hall, "12:15", wednesday + dt.timedelta(days=7))
    assert refusal(plain, "12:15").code == "before_opening"


def test_a_weekday_closed_by_the_hall_file_refuses_with_its_reason():
    thursday = dt.date(2026, 11, 26)
    hall = calendar_hall(closed_days={thursday: "系统升级"})
    error = refusal(Story(hall, "09:00", thursday), "09:00")
    assert (error.code, error.message) == ("hall_closed", "今天不办公：系统升级。11月27日（周五）09:00 起办公")
    view = opening_json(hall, thursday)
    assert (view["open"], view["closed_reason"], view["next_open"]["date"]) == \
        (False, "系统升级", "2026-11-27")


def test_a_year_the_calendar_lacks_opens_monday_to_friday_and_says_so():
    hall = calendar_hall()
    new_year = dt.date(2031, 1, 1)  # a Wednesday in a year no calendar knows yet
    assert CHINA.missing_years(new_year, new_year) == [2031]
    story = Story(hall, "09:00", new_year)
    assert story.issue("A") == "A001"  # never a crash: the weekday's hours
    assert opening_json(hall, new_year)["calendar_missing"] is True
    assert opening_json(hall, NATIONAL_DAY)["calendar_missing"] is False


def test_demo_clock_start_skips_the_holiday_to_the_next_open_day(monkeypatch):
    class Holiday:  # the real clock says: the second day of National Day
        def __init__(self, tz):
            pass

        def __call__(self):
            return dt.datetime(2026, 10, 2, 20, 0, tzinfo=TZ)

    monkeypatch.setattr(assembly, "SystemClock", Holiday)
    hall = calendar_hall()
    started = hall_clock(hall, "09:00")()
    assert at("09:00", dt.date(2026, 10, 8)) <= started < at("09:01", dt.date(2026, 10, 8))
    # on the 调休 Saturday itself it is today
    monkeypatch.setattr(Holiday, "__call__", lambda self: dt.datetime(2026, 10, 10, 7, 0, tzinfo=TZ))
    assert hall_clock(hall, "09:00")().date() == MAKE_UP_SATURDAY


def test_check_config_warns_of_a_year_the_calendar_lacks_before_it_comes(tmp_path, monkeypatch,
                                                                        capsys):
    class Clock:  # the real date, for check-config
        now = dt.datetime(2030, 3, 4, 10, 0, tzinfo=TZ)

        def __init__(self, tz):
            pass

        def __call__(self):
            return self.now

    monkeypatch.setattr(cli, "SystemClock", Clock)
    (tmp_path / "hall.toml").write_bytes(DEMO_CONFIG.read_bytes())
    (tmp_path / "holidays.toml").write_text(  # the hall has added 2030, not yet 2031
        '[years.2030]\nholidays = [ { date = 2030-10-01, name = "国庆节" } ]\nworkdays = []\n',
        encoding="utf-8")
    assert cli.main(["check-config", str(tmp_path / "hall.toml")]) == 0
    assert "warning" not in capsys.readouterr().err
    Clock.now = dt.datetime(2030, 12, 3, 10, 0, tzinfo=TZ)  # a month before 2031
    assert cli.main(["check-config", str(tmp_path / "hall.toml")]) == 0
    err = capsys.readouterr().err
    assert "no holidays for 2031" in err and "[years.2031]" in err


# --- the hall file ------------------------------------------------------------------------


def dated_hall_dict() -> dict:
    data = minimal_hall_dict()
    data["hours"]["fri"] = {"sessions": ["09:00-12:00", "13:30-16:00"]}
    data["calendar"] = {"make_up_day_hours": "fri"}
    data["open_days"] = [{"date": dt.date(2026, 10, 3), "sessions": ["09:00-12:00"],
                          "note": "国庆延时服务"},
                         {"date": "2026-11-28", "sessions": ["09:00-11:30"]}]
    data["closed_days"] = [{"date": dt.date(2026, 11, 23), "reason": "系统升级"}]
    return data


def test_the_hall_file_gives_the_make_up_weekday_extra_sessions_and_closures():
    hall = parse_hall(dated_hall_dict(), workdays=CHINA)
    holiday_session = hall.opening_on(dt.date(2026, 10, 3))
    assert holiday_session.open and holiday_session.note == "国庆延时服务"
    assert [f"{s.start:%H:%M}" for s in holiday_session.hours.sessions] == ["09:00"]
    assert hall.opening_on(dt.date(2026, 10, 2)).closed_reason == "国庆节放假"
    assert hall.opening_on(dt.date(2026, 11, 28)).note == "延时服务"  # the default note
    assert hall.opening_on(dt.date(2026, 11, 23)).closed_reason == "系统升级"
    assert hall.hours_on(MAKE_UP_SATURDAY).sessions[-1].end == dt.time(16, 0)
    # a hall file without the sections: 调休 days on Monday's hours, no dated changes
    plain = parse_hall(minimal_hall_dict(), workdays=CHINA)
    assert plain.calendar.make_up_day_hours == "mon" and not plain.calendar.open_days


def test_a_hall_closed_on_mondays_works_its_make_up_days_on_its_first_open_weekday():
    data = minimal_hall_dict()
    data["hours"] = {"tue": {"sessions": ["09:00-12:00"]}, "sat": {"sessions": ["09:00-11:00"]}}
    hall = parse_hall(data, workdays=CHINA)
    assert hall.calendar.make_up_day_hours == "tue"
    assert hall.hours_on(MAKE_UP_SATURDAY).sessions == (span("09:00-12:00"),)


@pytest.mark.parametrize("change, key, says", [
    (lambda d: d["calendar"].update(make_up_day_hours="sat"),
     "calendar.make_up_day_hours", "no hours in [hours]"),
    (lambda d: d["calendar"].update(make_up_day_hours="monday"),
     "calendar.make_up_day_hours", '"mon"'),
    (lambda d: d["closed_days"][0].pop("reason"), "closed_days[0].reason", "missing"),
    (lambda d: d["open_days"][1].update(date="2026-13-01"), "open_days[1].date", "2026-10-03"),
    (lambda d: d["open_days"][0].update(date=dt.date(2026, 11, 23)), "open_days[0].date",
     "duplicate date"),
    (lambda d: d["open_days"][0].update(sessions=[]), "open_days[0].sessions", "[[closed_days]]"),
    (lambda d: d["open_days"][0].update(sessions=["09:00-12:00", "11:00-13:00"]),
     "open_days[0].sessions[1]", "not overlap"),
    (lambda d: d["open_days"][0].update(day="2026-10-03"), "open_days[0].day", "unknown key"),
])
def test_a_mistake_in_the_dated_changes_names_its_key(change, key, says):
    data = copy.deepcopy(dated_hall_dict())
    change(data)
    with pytest.raises(ConfigError) as e:
        parse_hall(data, workdays=CHINA)
    assert e.value.key == key and says in e.value.reason


def test_the_holiday_file_beside_the_hall_file_opens_and_closes_a_year_the_package_lacks(tmp_path):
    (tmp_path / "hall.toml").write_bytes(DEMO_CONFIG.read_bytes())
    (tmp_path / "holidays.toml").write_text(
        "[years.2027]\n"
        'holidays = [ { date = 2027-10-01, name = "国庆节" } ]\n'
        'workdays = [ { date = 2027-10-09, name = "国庆节调休" } ]\n', encoding="utf-8")
    hall = load_hall(tmp_path / "hall.toml")
    assert hall.opening_on(dt.date(2027, 10, 1)).closed_reason == "国庆节放假"
    assert hall.opening_on(dt.date(2027, 10, 9)).open  # a Saturday
    assert not hall.opening_on(dt.date(2027, 10, 1)).calendar_missing
    assert hall.opening_on(NATIONAL_DAY).closed_reason == "国庆节放假"  # the package's 2026 too
    # a mistake in that file stops the hall at start, naming the file and the key
    (tmp_path / "holidays.toml").write_text(
        '[years.2027]\nholidays = [ { date = 2028-10-01, name = "国庆节" } ]\nworkdays = []\n',
        encoding="utf-8")
    with pytest.raises(ConfigError) as e:
        load_hall(tmp_path / "hall.toml")
    assert e.value.key == "years.2027.holidays[0].date" and "holidays.toml" in str(e.value)


# --- attendance -----------------------------------------------------------------------------


def test_attendance_counts_a_make_up_saturday_and_not_a_holiday(tmp_path):
    saturday_session = dt.date(2026, 11, 28)
    closed_thursday = dt.date(2026, 11, 26)
    hall = calendar_hall(make_up="fri",
                         open_days=(OpenDay(saturday_session, DayHours((span("09:00-12:00"),))),),
                         closed_days={closed_thursday: "系统升级"})
    clock = ManualClock(at("09:00", NATIONAL_DAY))
    ctrl, _ = cli.open_hall(hall, tmp_path, clock)
    try:
        # 员工1 comes in on National Day anyway, on the 调休 Saturday, the closed Thursday and
        # the 延时服务 Saturday; the others stay home on all four
        for day in (NATIONAL_DAY, MAKE_UP_SATURDAY, closed_thursday, saturday_session):
            clock.now = at("09:02", day)
            ctrl.execute(c.Login(1, "s1"), "staff:s1")
            clock.now = at("11:58", day)
            ctrl.execute(c.Logout(1), "staff:s1")
        rows = hr.attendance(ctrl.store.db, hall, NATIONAL_DAY, saturday_session,
                             now=at("18:00", saturday_session))
    finally:
        ctrl.store.close()
    # the working days: Monday to Friday, but not the holiday (10-01..10-07) nor the closed
    # Thursday; the 调休 Saturday is one, the 延时服务 Saturday is a rota, not attendance
    working = {NATIONAL_DAY + dt.timedelta(days=n) for n in range(59)}
    working = {d for d in working if d.weekday() < 5 and not NATIONAL_DAY <= d <= dt.date(2026, 10, 7)}
    working = (working - {closed_thursday}) | {MAKE_UP_SATURDAY}
    assert {r["day"] for r in rows} == {d.isoformat() for d in working}
    saturday = {(r["staff"], r["session"]): r for r in rows if r["day"] == "2026-10-10"}
    # Friday's hours: the afternoon ends at 16:00; 员工1 came in the morning, left before noon
    assert saturday["s1", "afternoon"]["session_end"] == "16:00"
    assert saturday["s1", "morning"]["status"] == "present"
    assert saturday["s2", "morning"]["status"] == "absent"


# --- through the real server -------------------------------------------------------------------


def post_ticket(hall: HallProcess, service: str = "A") -> httpx.Response:
    with hall.client() as cl:
        return cl.post("/api/v1/tickets", json={"service": service})


def today(hall: HallProcess) -> dict:
    with hall.client() as cl:
        return cl.get("/api/v1/hall").json()["today"]


def kiosk_ticket(hall: HallProcess) -> httpx.Response:
    with hall.client() as cl:
        kiosk = cl.get("/api/v1/pages").json()["kiosks"][0]
        return cl.post(f"/api/v1/kiosks/{kiosk}/tickets", json={"service": "A"})


def test_the_hall_closes_through_national_day_and_opens_on_its_make_up_saturday(tmp_path):
    """The demo hall, with Friday's hours for its 调休 days, runs over midnight into
    National Day, then is restarted on the 调休 Saturday, morning and afternoon."""
    hall = HallProcess(tmp_path, "--simulate", rules={
        "make_up_day_hours": '"fri"',
        "fri": '{ sessions = ["09:00-12:00", "13:30-16:00"] }'})
    # 15 s before midnight: time enough for a start on a busy machine
    hall.extra_args = ("--simulate", "--clock-start", "2026-09-30T23:59:45+08:00")
    hall.start()
    try:
        assert today(hall)["date"] == "2026-09-30", "the controller took over 15 s to start"
        late = post_ticket(hall)
        assert late.status_code == 409
        # tomorrow is National Day: not "come back tomorrow"
        assert late.json()["message"] == "今日取号已于 17:00 截止。10月8日（周四）09:00 起办公"
        deadline = time.monotonic() + 40
        while today(hall)["date"] != "2026-10-01":
            assert time.monotonic() < deadline, "the hall's clock did not reach midnight"
            time.sleep(0.2)
        closed = post_ticket(hall)
        assert closed.status_code == 409
        assert closed.json()["message"] == "今天不办公：国庆节放假。10月8日（周四）09:00 起办公"
        at_kiosk = kiosk_ticket(hall)
        assert at_kiosk.status_code == 409 and at_kiosk.json()["message"].startswith(
            "今天不办公：国庆节放假")
        view = today(hall)
        assert (view["open"], view["closed_reason"], view["next_open"]) == (
            False, "国庆节放假", {"date": "2026-10-08", "sessions": ["09:00-12:00", "13:30-17:30"]})
    finally:
        hall.stop()
    with sqlite3.connect(hall.data / "hall.sqlite3") as db:
        assert db.execute("SELECT COUNT(*) FROM tickets").fetchone()[0] == 0
    # restarted on the 调休 Saturday at 09:00: open on Friday's hours
    hall.extra_args = ("--simulate", "--clock-start", "2026-10-10T09:00+08:00")
    hall.start()
    try:
        view = today(hall)
        assert (view["open"], view["note"], view["sessions"]) == (
            True, "国庆节调休", ["09:00-12:00", "13:30-16:00"])
        issued = post_ticket(hall)
        assert issued.status_code == 201 and issued.json()["number"] == "A001"
        assert kiosk_ticket(hall).status_code == 201
    finally:
        hall.stop()
    # and again at 15:40: Friday's ticket cut-off, not Monday's
    hall.extra_args = ("--clock-start", "2026-10-10T15:40+08:00")
    hall.start()
    try:
        cut_off = post_ticket(hall)
        assert cut_off.status_code == 409
        assert cut_off.json()["message"] == "今日取号已于 15:30 截止。10月12日（周一）09:00 起办公"
    finally:
        hall.stop()


def test_the_hall_file_closes_a_weekday_and_opens_a_saturday_morning(tmp_path):
    hall = HallProcess(tmp_path, extra_config=(
        '[[closed_days]]\ndate = 2026-11-26\nreason = "系统升级"\n\n'
        '[[open_days]]\ndate = 2026-11-28\nsessions = ["09:00-12:00"]\nnote = "周六延时服务"\n'))
    hall.extra_args = ("--clock-start", "2026-11-26T09:00+08:00")
    hall.start()
    try:
        refused = post_ticket(hall)
        assert refused.status_code == 409
        assert refused.json()["message"] == "今天不办公：系统升级。11月27日（周五）09:00 起办公"
        assert today(hall)["closed_reason"] == "系统升级"
    finally:
        hall.stop()
    hall.extra_args = ("--clock-start", "2026-11-28T09:00+08:00")
    hall.start()
    try:
        view = today(hall)
        assert (view["open"], view["note"], view["sessions"]) == (True, "周六延时服务", ["09:00-12:00"])
        issued = post_ticket(hall)
        assert issued.status_code == 201 and issued.json()["number"] == "A001"
    finally:
        hall.stop()


def test_a_year_without_holiday_data_is_an_alert_not_a_crash(browser, tmp_path):
    hall = HallProcess(tmp_path)
    hall.extra_args = ("--clock-start", "2031-01-06T09:00+08:00")  # a Monday
    hall.start()
    try:
        assert post_ticket(hall).status_code == 201
        view = today(hall)
        assert (view["calendar_missing"], view["calendar_missing_years"]) == (True, [2031])
        # the supervisor sees it among the day's alerts for as long as it lasts
        supervisor = log_in(browser, hall.url, "huangjianguo", None, "/supervisor", DESK)
        expect(supervisor.locator("#alerts")).to_contain_text("节假日安排缺 2031 年")
        assert not supervisor.errors
    finally:
        hall.stop()
    with sqlite3.connect(hall.data / "hall.sqlite3") as db:
        noted = db.execute("SELECT args FROM commands WHERE name = 'calendar_year_missing'").fetchall()
    assert noted and "2031" in noted[0][0]


def test_the_kiosk_and_the_display_say_the_hall_is_closed_for_national_day(browser, tmp_path):
    hall = HallProcess(tmp_path)
    hall.extra_args = ("--clock-start", "2026-10-01T09:00+08:00")
    hall.start()
    try:
        display = open_page(browser, f"{hall.url}/display", TV)
        expect(display.locator("#closed-reason")).to_have_text("今天不办公：国庆节放假")
        expect(display.locator("#closed-next")).to_have_text("10月8日（周四）09:00 起办公")
        kiosk = open_page(browser, hall.kiosk_page(), KIOSK)  # the enrolled kiosk
        expect(kiosk.locator("#alarm")).to_contain_text("今天不办公：国庆节放假")
        expect(kiosk.locator("button.service").first).to_be_disabled()
        assert not display.errors and not kiosk.errors
    finally:
        hall.stop()
