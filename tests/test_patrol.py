"""巡查台账 (000 巡查制度 第三条, 第六条): the supervisor is reminded at 9:30 and 13:40, walks the
floor and records the round: the time, who is at each window (from the live state, nobody
types it), what was found, and who signed. Staff cannot write the ledger; a restart neither
loses a round nor reminds twice; a weekend reminds nobody."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

import pytest

from controller.runtime.clock import ManualClock
from controller.config.hall import parse_hall
from controller.core import commands as c
from controller.core.engine import Engine
from controller.config.tomlkeys import ConfigError
from controller.web import views
from tests.halls import MONDAY, access_hall, at, small_hall
from tests.server import running_hall
from tests.test_config import minimal_hall_dict


def reminders(ctrl) -> list[dict]:
    return [{"at": r["at"], **json.loads(r["data"])} for r in ctrl.store.query(
        "SELECT at, data FROM events WHERE kind = 'patrol_due' ORDER BY id")]


def test_the_supervisor_is_reminded_once_at_each_patrol_time_of_an_open_day():
    engine = Engine(small_hall())
    state = engine.new_state()
    engine.start_day(state, at("08:00"))

    def tick(hhmm: str, day: dt.date = MONDAY) -> list[str]:
        now = at(hhmm, day)
        if engine.needs_new_day(state, now):
            engine.start_day(state, now)
        return [e.time for e in engine.apply(state, c.Tick(), now).events
                if e.kind == "patrol_due"]

    assert tick("09:29") == []
    assert tick("09:30") == ["09:30"]
    assert tick("09:30:05") == [] and tick("11:00") == []  # once, however often time ticks
    assert tick("13:39") == []
    assert tick("13:41") == ["13:40"]
    assert tick("17:00") == []
    # the next morning the 9:30 round is due again
    assert tick("09:31", MONDAY + dt.timedelta(days=1)) == ["09:30"]
    # Saturday the hall is closed: nobody patrols an empty hall
    saturday = MONDAY + dt.timedelta(days=5)
    assert tick("09:30", saturday) == [] and tick("13:40", saturday) == []
    # a controller started at 15:00 reminds of the afternoon round, not of the morning's too
    friday = MONDAY + dt.timedelta(days=4)
    assert tick("15:00", friday) == ["13:40"]
    assert tick("15:01", friday) == []


def test_a_hall_sets_its_own_patrol_times_and_a_wrong_one_is_named():
    minimal = minimal_hall_dict()
    hall = parse_hall({**minimal, "patrol": {"times": ["08:45", "14:00", "16:30"]}})
    assert hall.patrol_times == (dt.time(8, 45), dt.time(14), dt.time(16, 30))
    assert parse_hall(minimal).patrol_times == (dt.time(9, 30), dt.time(13, 40))
    for times, key in ((["9:30", "25:00"], "patrol.times[1]"), (["13:40", "09:30"], "patrol.times[1]"),
                       (["0930"], "patrol.times[0]"), ("09:30", "patrol.times")):
        with pytest.raises(ConfigError) as e:
            parse_hall({**minimal, "patrol": {"times": times}})
        assert e.value.key == key


def round_body(**kw):
    return {"no_problems": False, "findings": "2号窗口暂停服务，去向牌已摆放", **kw}


def test_a_patrol_round_through_the_real_server(tmp_path):
    """Monday: s1 opens window 1 at 08:55, s2 window 2 at 08:58 and pauses at 09:20 to fetch
    files; window 3 stays closed. At 9:30 the reminder; the supervisor walks the floor and
    records at 09:36. Staff and the admin cannot write the ledger; a wrong form changes
    nothing. After a restart in the lunch break the round is still there, 9:30 is not
    reminded again, and 13:40 is."""
    clock = ManualClock(at("08:55"))
    with running_hall(access_hall(), tmp_path, clock) as h, h.client() as http:
        ctrl = h.ctrl
        ctrl.execute(c.Login(1, "s1"), "staff:s1")
        clock.now = at("08:58")
        ctrl.execute(c.Login(2, "s2"), "staff:s2")
        clock.now = at("09:20")
        ctrl.execute(c.Pause(2, "取档案", 15, "档案室"), "staff:s2")
        clock.now = at("09:29:59")
        ctrl.tick()
        assert reminders(ctrl) == []
        clock.now = at("09:30")
        ctrl.tick()
        clock.now = at("09:31")
        ctrl.tick()
        assert [(r["at"], r["time"]) for r in reminders(ctrl)] == [(at("09:30").isoformat(), "09:30")]

        boss = h.login("boss", None)
        clock.now = at("09:36")
        r = http.post("/api/v1/patrols", json=round_body(area="一楼大厅"), headers=boss)
        assert r.status_code == 201, r.text
        recorded = r.json()
        assert (recorded["at"], recorded["scheduled"], recorded["signer"], recorded["area"]) == (
            at("09:36").isoformat(), "09:30", "boss", "一楼大厅")
        seen = {w["window"]: (w["status"], w["staff"], w["post"], w["pause_reason"])
                for w in recorded["windows"]}
        assert seen == {1: ("open", "s1", "A", None), 2: ("paused", "s2", "A", "取档案"),
                        3: ("closed", None, None, None)}

        # staff cannot write the ledger, nor the admin; neither can a form that says nothing
        s1 = h.login("s3", 3)
        for headers, body, status in ((s1, round_body(), 403),
                                      (h.login("admin", None), round_body(), 403),
                                      (boss, {"no_problems": False, "findings": "  "}, 422),
                                      (boss, {"no_problems": True, "findings": "地面有水"}, 422),
                                      (boss, {"no_problems": "yes"}, 422)):
            r = http.post("/api/v1/patrols", json=body, headers=headers)
            assert r.status_code == status, r.text
        assert http.post("/api/v1/patrols", json={"no_problems": False, "findings": ""},
                         headers=boss).json()["message"].startswith("请选择")
        assert http.get("/api/v1/patrols", headers=s1).status_code == 403

        ledger = http.get("/api/v1/patrols", headers=boss).json()
        assert [(x["at"], x["findings"], x["no_problems"]) for x in ledger] == [
            (at("09:36").isoformat(), round_body()["findings"], False)]
        assert ledger[0]["windows"] == recorded["windows"] and ledger[0]["signer_name"] == "主任"
        # it went through the command path: logged with its actor, and in the event log
        logged = ctrl.store.query("SELECT actor, result FROM commands WHERE name = 'record_patrol'")
        assert [(x["actor"], x["result"]) for x in logged] == [
            ("staff:boss", "ok"), *[("staff:boss", "invalid_reason")] * 3]
        assert len(ctrl.store.query("SELECT id FROM events WHERE kind = 'patrol_recorded'")) == 1

    clock.now = at("12:30")  # a restart in the lunch break
    with running_hall(access_hall(), tmp_path, clock) as h, h.client() as http:
        boss = h.login("boss", None)
        assert len(http.get("/api/v1/patrols", headers=boss).json()) == 1
        h.ctrl.tick()
        clock.now = at("13:40")
        h.ctrl.tick()
        assert [r["time"] for r in reminders(h.ctrl)] == ["09:30", "13:40"]
        clock.now = at("13:52")
        r = http.post("/api/v1/patrols", json={"no_problems": True}, headers=boss)
        assert r.status_code == 201 and r.json()["scheduled"] == "13:40"
        assert r.json()["area"] == "大厅"
        assert [x["at"] for x in http.get("/api/v1/patrols", headers=boss).json()] == [
            at("09:36").isoformat(), at("13:52").isoformat()]
        # a day without a round lists none; yesterday's ledger is asked for by date
        assert http.get("/api/v1/patrols", params={"from": "2026-11-20", "to": "2026-11-22"},
                        headers=boss).json() == []
        assert http.get("/api/v1/patrols", params={"from": "2026-11-24", "to": "2026-11-23"},
                        headers=boss).status_code == 422


def test_the_findings_stay_off_the_public_event_stream():
    """The hall display reads the public stream: a patrol's findings are personnel matters."""
    event = {"kind": "patrol_recorded", "data": {"findings": "3号窗口人员玩手机", "signer": "boss",
                                                  "windows": [], "area": "大厅", "no_problems": False}}
    assert views.public_event(event)["data"] == {"area": "大厅"}


def test_a_cases_steps_stay_off_the_staff_event_stream():
    """A case's events (now in the log, for the district) name the staff member reviewed, the
    grade and what the callback found: the callback desk's, never other staff's."""
    from controller.core import events as ev

    opened = ev.CaseOpened(at=dt.datetime(2026, 11, 23, 10, tzinfo=dt.timezone.utc), case="HP1",
                           case_kind="bad_review", window=3, ticket="20261123-A001", staff="s3",
                           source="pad", grade="非常不满意", due={"callback_due": "2026-11-24T10:00:00+08:00"})
    for shape in (ev.to_json(opened), {"id": 9, "kind": "case_opened", "at": "2026-11-23T10:00:00+00:00",
                                       "window": 3, "ticket": "20261123-A001", "data": ev.stored(opened)}):
        shown = views.public_event(shape)
        assert "s3" not in str(shown) and "非常不满意" not in str(shown) and shown["data"] == {}
        assert views.anonymous_event(shape) is None


def test_a_hall_without_patrol_times_reminds_nobody():
    engine = Engine(dataclasses.replace(small_hall(), patrol_times=()))
    state = engine.new_state()
    engine.start_day(state, at("08:00"))
    assert not [e for e in engine.apply(state, c.Tick(), at("16:00")).events if e.kind == "patrol_due"]


def test_the_supervisor_page_shows_the_reminder_and_records_a_round(browser, tmp_path):
    """On the supervisor page at a desk: at 9:30 the reminder appears without a reload; the
    supervisor ticks 今日巡查无异常 and records; the round is in today's ledger and the
    reminder is gone. A form that says nothing gets the Chinese reason, and no round."""
    from playwright.sync_api import expect

    from tests.browser import DESK, log_in

    clock = ManualClock(at("09:20"))
    with running_hall(access_hall(), tmp_path, clock) as h:
        h.ctrl.execute(c.Login(1, "s1"), "staff:s1")
        page = log_in(browser, h.url, "boss", None, "/supervisor", DESK)
        expect(page.locator("#patrol-rounds")).to_contain_text("今天还没有巡查记录")
        expect(page.locator("#patrol-due")).to_be_hidden()
        clock.now = at("09:30")
        h.ctrl.tick()
        expect(page.locator("#patrol-due")).to_be_visible()
        expect(page.locator("#patrol-due")).to_contain_text("09:30 定时巡查时间到")

        page.click("#patrol-record")  # neither ticked nor filled in
        expect(page.locator("#toast")).to_contain_text("请选择")
        assert h.ctrl.store.patrol_rounds(MONDAY, MONDAY) == []

        clock.now = at("09:41")
        page.check("#patrol-ok")
        page.fill("#patrol-area", "一楼")
        page.click("#patrol-record")
        expect(page.locator("#patrol-rounds li")).to_have_count(1)
        expect(page.locator("#patrol-rounds")).to_contain_text("09:41 · 一楼 · 巡查人员 主任 · 无异常")
        expect(page.locator("#patrol-due")).to_be_hidden()
        [recorded] = h.ctrl.store.patrol_rounds(MONDAY, MONDAY)
        assert recorded["signer"] == "boss" and recorded["windows"][0]["staff"] == "s1"
        assert page.errors == []
