"""The day change and the clock through the real server (`hallctl run` as a child process, its
clock injected with --clock-start): a window still serving when the clock passes midnight, a
controller killed and restarted in the night, a clock set back a week and put right again.
No answer is ever a 500; no ticket is cancelled by a clock fault; /health, the supervisor's
event stream and page, and the audit log all show the fault.

Then the same on a controller that keeps running while its clock (in the test's hand) jumps,
and the floor's devices (RS-485 pad and bar, MQTT main display) at midnight."""

from __future__ import annotations

import datetime as dt
import json
import re
import time

import httpx
import pytest
from playwright.sync_api import expect

from controller.runtime.clock import ManualClock
from drivers.counter_keypad.codec import PAD_BLANK, PAD_PROMPT
from sim.mqtt_devices import SimulatedMqttDisplay
from tests import server
from tests.browser import DESK, log_in
from tests.halls import CALLING_VOICE, MONDAY, at, calling_hall, small_hall
from tests.server import HallProcess, running_hall, wait_for

PIN = "1234"
STAFF, SUPERVISOR = "chenjing", "huangjianguo"  # chenjing's A post is window 1 (社保医保)
THURSDAY, FRIDAY = "2026-12-03", "2026-12-04"
NEXT_DAY = MONDAY + dt.timedelta(days=1)  # the small halls' Tuesday


def start_at(proc: HallProcess, when: str) -> None:
    """(Re)start the controller with its clock at `when` (ISO, hall time)."""
    proc.extra_args = ("--clock-start", when)
    proc.start()


def login(api: httpx.Client, staff: str, window: int | None) -> dict[str, str]:
    r = api.post("/api/v1/auth/login", json={"staff_id": staff, "pin": PIN, "window": window})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


def ok(r: httpx.Response, *codes: int) -> httpx.Response:
    """Every answer is a success or a 4xx with the hall's error body, never a 500."""
    assert r.status_code < 500, f"{r.request.method} {r.request.url}: {r.status_code} {r.text}"
    if codes:
        assert r.status_code in codes, r.text
    if r.status_code >= 400:
        assert set(r.json()) == {"error", "message"}
    return r


def health(api: httpx.Client) -> dict:
    return ok(api.get("/api/v1/health"), 200).json()


def every_window_button(api: httpx.Client, h: dict[str, str], no: int) -> list[int]:
    """What a counter presses on a window: none may answer 500 whatever the window's state."""
    codes = []
    for path, body in (("call", None), ("recall", None), ("no-show", None), ("finish", None),
                       ("transfer", {"service": "F"}), ("call-number", {"number": "A001"}),
                       ("pause", {"reason": "取材料", "minutes": 5}), ("resume", None)):
        codes.append(ok(api.post(f"/api/v1/windows/{no}/{path}", headers=h, json=body)).status_code)
    codes.append(ok(api.get(f"/api/v1/windows/{no}", headers=h)).status_code)
    return codes


def a_morning(api: httpx.Client, tickets: int = 3) -> tuple[dict[str, str], list[str]]:
    """chenjing logs in at window 1, citizens take A tickets, the first is called."""
    staff = login(api, STAFF, 1)
    ids = [ok(api.post("/api/v1/tickets", json={"service": "A"}), 201).json()["id"]
           for _ in range(tickets)]
    called = ok(api.post("/api/v1/windows/1/call", headers=staff), 200).json()["ticket"]
    assert called["id"] == ids[0]
    return staff, ids


def ticket(api: httpx.Client, h: dict[str, str], ticket_id: str) -> dict:
    return ok(api.get(f"/api/v1/tickets/{ticket_id}", headers=h), 200).json()


def streamed(proc: HallProcess, h: dict[str, str], kinds: set[str], timeout: float = 10) -> list[dict]:
    """The events of `kinds` the supervisor's event stream delivers, from the first event on,
    until the stream has caught up with the database."""
    found, last_id = [], None
    with httpx.Client(base_url=proc.url, timeout=30) as c, \
            c.stream("GET", "/api/v1/events", headers={**h, "Last-Event-ID": "0"}) as r:
        deadline = time.monotonic() + timeout
        for line in r.iter_lines():
            if line.startswith("data: "):
                body = json.loads(line[6:])
                last_id = body.get("id", last_id)
                if body["kind"] in kinds:
                    found.append(body)
            if line.startswith(": heartbeat") or time.monotonic() > deadline:
                break
            if found and {e["kind"] for e in found} >= kinds:
                break
    return found


@pytest.fixture
def evening_hall(tmp_path, monkeypatch):
    """The demo hall open 00:00-23:59 with no cut-off, so a visit can run into the night."""
    text = server.DEMO_CONFIG.read_text(encoding="utf-8")
    text, n = re.subn(r'sessions = \["09:00-12:00", "13:30-17:30"\]', 'sessions = ["00:00-23:59"]', text)
    assert n == 5, "the demo hall no longer has its weekday hours"
    config = tmp_path / "evening-hall.toml"
    config.write_text(text, encoding="utf-8")
    monkeypatch.setattr(server, "DEMO_CONFIG", config)
    proc = HallProcess(tmp_path, rules={"ticket_cutoff_minutes": 0})
    yield proc
    if proc.proc and proc.proc.poll() is None:
        proc.stop()


@pytest.fixture
def hall_proc(tmp_path):
    proc = HallProcess(tmp_path)
    yield proc
    if proc.proc and proc.proc.poll() is None:
        proc.stop()


def test_the_clock_passes_midnight_with_a_window_still_serving(evening_hall):
    start_at(evening_hall, f"{THURSDAY}T23:58:20+08:00")
    with evening_hall.client() as api:
        staff, ids = a_morning(api, tickets=2)  # before the 23:59 cut-off
    evening_hall.stop()
    # started again a little before midnight (so the test waits seconds, not minutes)
    start_at(evening_hall, f"{THURSDAY}T23:59:40+08:00")
    with evening_hall.client() as api:
        assert health(api)["clock"]["day"] == THURSDAY
        assert ok(api.get("/api/v1/hall")).json()["windows"][0]["current"]["id"] == ids[0]
        # nobody presses finish; the hall's clock runs through midnight and the ticker changes day
        wait_for(lambda: health(api)["clock"]["day"] == FRIDAY, timeout=45)
        boss = login(api, SUPERVISOR, None)
        served = ticket(api, boss, ids[0])
        assert served["status"] == "finished"
        day_end = [e for e in served["history"] if e["kind"] == "ticket_finished"]
        assert [e["data"]["reason"] for e in day_end] == ["day_end"]
        assert not [e for e in served["history"] if e["kind"] == "evaluation_prompted"]
        assert ticket(api, boss, ids[1])["status"] == "cancelled"  # never called: cancelled
        # the old login ended with its day: a clear refusal, not a 500
        codes = every_window_button(api, staff, 1)
        assert set(codes) == {401}, codes
        assert ok(api.post("/api/v1/windows/1/call", headers=staff)).json()["error"] == "not_logged_in"
        # the next morning at window 1
        staff = login(api, STAFF, 1)
        new = ok(api.post("/api/v1/tickets", json={"service": "A"}), 201).json()
        assert new["id"] == f"{FRIDAY.replace('-', '')}-A001"
        assert ok(api.post("/api/v1/windows/1/call", headers=staff), 200).json()["ticket"]["id"] == new["id"]
        for path in ("recall", "finish"):
            ok(api.post(f"/api/v1/windows/1/{path}", headers=staff), 200)
        ok(api.post("/api/v1/windows/1/pause", headers=staff, json={"reason": "取材料", "minutes": 5}), 200)
        ok(api.post("/api/v1/windows/1/resume", headers=staff), 200)
        ok(api.post("/api/v1/auth/logout", headers=staff), 200)
        # 延时服务: the visit the day ended counts as served past closing, not as a 过号
        [row] = ok(api.get("/api/v1/reports/overtime", headers=boss,
                           params={"from": THURSDAY, "to": THURSDAY}), 200).json()
        assert (row["staff"], row["tickets"], row["ended_by_day_change"]) == (STAFF, ["A001"], ["A001"])
        assert row["minutes_past_closing"] == 1.0  # closing 23:59, the day's end 00:00
        rows = ok(api.get("/api/v1/reports/hall", headers=boss,
                          params={"from": THURSDAY, "to": THURSDAY, "by": "staff"}), 200).json()
        [mine] = [r for r in rows if r["staff"] == STAFF]
        assert (mine["served"], mine["no_show"]) == (1, 0)


def test_a_controller_killed_for_the_night_closes_the_window_left_serving(hall_proc):
    start_at(hall_proc, f"{THURSDAY}T16:58:00+08:00")
    with hall_proc.client() as api:
        staff, ids = a_morning(api, tickets=1)
    hall_proc.kill()  # a power cut with window 1 serving

    start_at(hall_proc, f"{FRIDAY}T02:00:00+08:00")
    with hall_proc.client() as api:
        wait_for(lambda: health(api)["clock"]["day"] == FRIDAY, timeout=15)
        boss = login(api, SUPERVISOR, None)
        window = ok(api.get("/api/v1/windows/1", headers=boss), 200).json()
        assert window["state"] == "closed" and window.get("current") is None, window
        served = ticket(api, boss, ids[0])
        assert served["status"] == "finished"
        assert served["history"][-1]["data"]["reason"] == "day_end"
        assert set(every_window_button(api, staff, 1)) == {401}  # yesterday's login ended
    hall_proc.stop()

    start_at(hall_proc, f"{FRIDAY}T08:55:00+08:00")
    with hall_proc.client() as api:
        staff = login(api, STAFF, 1)
        new = ok(api.post("/api/v1/tickets", json={"service": "A"}), 201).json()
        assert ok(api.post("/api/v1/windows/1/call", headers=staff), 200).json()["ticket"]["id"] == new["id"]
        ok(api.post("/api/v1/windows/1/finish", headers=staff), 200)
        ok(api.post("/api/v1/auth/logout", headers=staff), 200)


def test_a_clock_set_back_a_week_and_put_right_cancels_nothing(hall_proc, browser):
    start_at(hall_proc, f"{THURSDAY}T10:00:00+08:00")
    with hall_proc.client() as api:
        staff, ids = a_morning(api, tickets=3)
        assert health(api)["clock"]["state"] == "ok"
    hall_proc.stop()

    # the machine comes back with its clock a week behind
    start_at(hall_proc, "2026-11-26T10:05:00+08:00")
    with hall_proc.client() as api:
        clock = health(api)["clock"]
        assert (clock["state"], clock["day"]) == ("behind", THURSDAY)
        assert clock["behind_seconds"] >= 7 * 86400 - 600 and clock["message"]
        assert clock["hall_time"].startswith(THURSDAY)
        staff = login(api, STAFF, 1)  # the same window, the same staff: still logged in
        a004 = ok(api.post("/api/v1/tickets", json={"service": "A"}), 201).json()
        assert a004["id"] == "20261203-A004"
        assert ok(api.post("/api/v1/windows/1/call", headers=staff), 200).json()["ticket"]["id"] == ids[1]
        boss = login(api, SUPERVISOR, None)
        for t in ids[2:]:
            assert ticket(api, boss, t)["status"] == "waiting"
        for path in ("/api/v1/hall", "/api/v1/services", "/api/v1/devices",
                     "/api/v1/reports/overtime", "/api/v1/reports/hall", "/api/v1/reports/attendance"):
            ok(api.get(path, headers=boss), 200)
        # the supervisor's stream carries the fault, from the audit log
        [fault] = streamed(hall_proc, boss, {"clock_fault"})
        assert fault["data"]["day"] == THURSDAY
        assert fault["data"]["wall_clock"].startswith("2026-11-26T10:0")
        # and the supervisor's page shows it, however late it was opened
        page = log_in(browser, hall_proc.url, SUPERVISOR, None, "/supervisor", DESK)
        alert = page.locator("#alerts li[data-alert='clock']")
        expect(alert).to_contain_text("时钟故障")
        expect(alert).to_contain_text(THURSDAY)
        expect(alert).to_contain_text("7 天")
        assert page.errors == []
    hall_proc.stop()

    # put right: the fault ends, is recorded as ended, and the numbers go on without a clash
    start_at(hall_proc, f"{THURSDAY}T10:30:00+08:00")
    with hall_proc.client() as api:
        assert health(api)["clock"]["state"] == "ok"
        staff = login(api, STAFF, 1)
        a005 = ok(api.post("/api/v1/tickets", json={"service": "A"}), 201).json()
        assert a005["id"] == "20261203-A005"
        assert ok(api.post("/api/v1/windows/1/call", headers=staff), 200).json()["ticket"]["id"] == ids[2]
        boss = login(api, SUPERVISOR, None)
        kinds = [e["kind"] for e in streamed(hall_proc, boss, {"clock_fault", "clock_restored"})]
        assert kinds == ["clock_fault", "clock_restored"]
        for t in ids + [a004["id"], a005["id"]]:
            assert ticket(api, boss, t)["status"] != "cancelled"


def test_a_clock_set_back_while_serving_and_put_right_answers_no_500(tmp_path):
    """The same on a controller that keeps running (a real server on a loopback port, its
    clock in the test's hand): the clock jumps a week back mid-morning, then forward again."""
    clock = ManualClock(at("10:00"))
    with running_hall(small_hall(), tmp_path, clock) as hall, hall.client() as api:
        staff = hall.login("s1", 1)
        ids = [ok(api.post("/api/v1/tickets", json={"service": "A"}), 201).json()["id"]
               for _ in range(3)]
        ok(api.post("/api/v1/windows/1/call", headers=staff), 200)
        boss = hall.login("boss", None)

        clock.now = at("10:05") - dt.timedelta(days=7)
        a004 = ok(api.post("/api/v1/tickets", json={"service": "A"}), 201).json()
        assert a004["id"] == "20261123-A004"
        assert health(api)["clock"]["state"] == "behind"
        assert ok(api.post("/api/v1/windows/1/call", headers=staff), 200).json()["ticket"]["id"] == ids[1]
        for path in ("/api/v1/hall", "/api/v1/services", "/api/v1/windows/1",
                     f"/api/v1/tickets/{ids[2]}", "/api/v1/reports/hall", "/api/v1/reports/overtime"):
            ok(api.get(path, headers=boss), 200)

        clock.now = at("10:10")  # put right
        a005 = ok(api.post("/api/v1/tickets", json={"service": "A"}), 201).json()
        assert a005["id"] == "20261123-A005"
        assert ok(api.post("/api/v1/windows/1/call", headers=staff), 200).json()["ticket"]["id"] == ids[2]
        assert health(api)["clock"]["state"] == "ok"
        kinds = [e["kind"] for e in streamed(hall, boss, {"clock_fault", "clock_restored"})]
        assert kinds == ["clock_fault", "clock_restored"]
        assert hall.ctrl.store.query(
            "SELECT COUNT(*) AS n FROM tickets WHERE status = 'cancelled'") == [{"n": 0}]


def test_at_midnight_the_pad_stops_asking_and_the_board_forgets_yesterday(tmp_path, mosquitto):
    """The floor's devices at the day change (simulated keypads, pad and bars on RS-485, the
    main display on a real Mosquitto): window 3 served past closing and its pad still asks
    about the last visit; at midnight the pad is blanked, the bar shows the window closed, the
    main display lists no call, and no pad asks about anything the next morning."""
    clock = ManualClock(at("16:50"))
    with running_hall(calling_hall(), tmp_path, clock, simulate=True, voice=CALLING_VOICE,
                      mqtt=(mosquitto.host, mosquitto.port)) as hall:
        main = SimulatedMqttDisplay("sim-main", mosquitto.host, mosquitto.port,
                                    "hall/display/main").start()
        bus = next(iter(hall.sim.buses.values()))
        try:
            staff = hall.login("s3", 3)
            with hall.client() as api:
                for _ in range(2):
                    ok(api.post("/api/v1/tickets", json={"service": "A"}), 201)
                clock.now = at("17:20")
                ok(api.post("/api/v1/windows/3/call", headers=staff), 200)
                clock.now = at("17:40")
                ok(api.post("/api/v1/windows/3/finish", headers=staff), 200)  # the pad asks
                wait_for(lambda: any(f == PAD_PROMPT and a == 13 for a, f, _ in bus.shown))
                ok(api.post("/api/v1/windows/3/call", headers=staff), 200)  # A002, never finished
            assert main.wait_until(lambda s: [c["number"] for c in s["calls"]][:2] == ["A002", "A001"])
            seen = len(bus.shown)

            clock.now = at("00:00:05", NEXT_DAY)
            hall.ctrl.tick()
            wait_for(lambda: any(f == PAD_BLANK and a == 13 for a, f, _ in bus.shown[seen:]))
            assert hall.sim.bars["bar-3"].wait_until(
                lambda b: any("停止服务" in line for line in b.showing), 2)
            assert main.wait_until(lambda s: s["calls"] == [] and s["latest"] is None)
            assert hall.ctrl.store.ticket("20261123-A002").status.value == "finished"

            clock.now = at("08:55", NEXT_DAY)
            hall.ctrl.tick()
            time.sleep(0.5)
            assert not [f for a, f, _ in bus.shown[seen:] if f == PAD_PROMPT]
        finally:
            main.stop()
