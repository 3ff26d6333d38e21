"""The floor through the real server (issue 12 items 5-7): the first tickets of the morning at
the kiosk of `hallctl run --simulate`, and a morning at the counters where a window's A post
pauses too long, the supervisor's page says so, and her B post takes the window over."""

from __future__ import annotations

import json
import re
import threading
import time

import httpx
import pytest
from playwright.sync_api import expect

from controller.runtime.clock import ManualClock
from tests.browser import DESK, KIOSK, log_in, open_page
from controller.backoffice.hall_reports import attendance
from tests.halls import MONDAY, at
from tests.server import running_hall, wait_for
from tests.test_floor import floor_hall


def printed_since(url: str, count: int) -> list[str]:
    """The text of the tickets the simulated kiosk printer printed after the first `count`."""
    tickets = httpx.get(f"{url}/sim/printers/kiosk-printer/tickets", timeout=5).json()
    return [json.dumps(t, ensure_ascii=False) for t in tickets[count:]]


def test_at_nine_the_kiosk_button_its_screen_and_the_slip_tell_the_same_short_wait(browser, demo_hall):
    """`hallctl run --simulate` starts at 09:00 with nobody logged in. 跨域通办 (L) is due to open
    with the session: the first ticket waits minutes, not the 4½ hours to the afternoon."""
    url = demo_hall.url
    kiosk = open_page(browser, demo_hall.kiosk_page(), KIOSK)
    button = kiosk.locator("button.service[data-service='L']")  # 跨域通办: no other test uses it
    for ahead in (0, 1):
        expect(button).to_contain_text("分钟")
        said = re.search(r"约 (\d+)(?:-(\d+))? 分钟", button.inner_text())
        assert said, button.inner_text()
        low, high = int(said[1]), int(said[2] or said[1])
        assert high < 60, f"the button promises {low}-{high} minutes at 09:00"
        if ahead == 0:
            assert "无人等候" in button.inner_text()
        else:
            assert "等候 1 人" in button.inner_text()
        before = len(httpx.get(f"{url}/sim/printers/kiosk-printer/tickets", timeout=5).json())
        button.click()
        expect(kiosk.locator("#ticket-body")).to_contain_text(f"前面还有 {ahead} 人等候")
        expect(kiosk.locator("#ticket-wait")).to_have_text(f"预计等候{said[0]}")
        slip = wait_for(lambda before=before: printed_since(url, before), 10)
        assert said[0] in slip[0], (said[0], slip[0])
        kiosk.click("#ticket-close")
    assert kiosk.errors == []


@pytest.fixture
def morning(tmp_path):
    clock = ManualClock(at("08:55"))
    with running_hall(floor_hall(), tmp_path, clock) as hall:
        hall.ctrl.tick()
        clock.advance(minutes=5)
        yield hall


def supervisor_stream(hall, token: dict[str, str]) -> tuple[list[dict], threading.Event]:
    """The supervisor's live event stream, collected in a thread until `stop` is set."""
    seen: list[dict] = []
    stop = threading.Event()
    ready = threading.Event()

    def listen():
        try:
            with httpx.Client(base_url=hall.url, timeout=30, headers=token) as c, \
                    c.stream("GET", "/api/v1/events") as r:
                ready.set()
                for line in r.iter_lines():
                    if line.startswith("data: "):
                        seen.append(json.loads(line[6:]))
                    if stop.is_set():
                        return
        except httpx.HTTPError:
            pass  # the hall stopped at the end of the test

    threading.Thread(target=listen, daemon=True).start()
    assert ready.wait(5)
    return seen, stop


def kinds(seen: list[dict], *wanted: str) -> list[tuple[str, int]]:
    return [(e["kind"], e["window"]) for e in seen if e["kind"] in wanted]


def test_a_pause_past_the_limit_reaches_the_supervisor_and_b_takes_the_window_over(browser, morning):
    hall = morning
    li, wang = hall.login("li", 1), hall.login("wang", 2)
    hall.login("zhao", 3)
    boss = hall.login("boss", None)
    seen, stop = supervisor_stream(hall, boss)
    page = log_in(browser, hall.url, "boss", None, "/supervisor", DESK)
    with hall.client() as api:
        assert api.post("/api/v1/windows/1/pause", headers=li,
                        json={"reason": "去库房取档案", "minutes": 10}).status_code == 200
        # 王 leaves his window for a meeting, and 钱 (window 1's other B post) is not in
        assert api.post("/api/v1/auth/logout", headers=wang).status_code == 200
        hall.clock.advance(minutes=16)
        # the server's own ticker (every 5 s) notices; the supervisor is told at once
        wait_for(lambda: ("pause_over_limit", 1) in kinds(seen, "pause_over_limit"), 15)
        wait_for(lambda: kinds(seen, "posts_away", "window_uncovered"), 15)
        alerts = page.locator("#alerts")
        expect(alerts).to_contain_text("1号窗口暂停超过时限", timeout=5000)
        expect(alerts).to_contain_text("1号窗口 A岗 李娜 与 B岗 王强、钱多 均不在岗")
        expect(alerts).to_contain_text("2号窗口（A岗 王强）开放时间内无人在岗已 16 分钟，无人顶岗")

        # 王 comes back from the meeting and takes over 李's window: her pause ends
        before = len(kinds(seen, "window_resumed", "window_closed", "window_opened"))
        wang = hall.login("wang", 1)
        wait_for(lambda: kinds(seen, "window_resumed", "window_closed", "window_opened")[before:] == [
            ("window_resumed", 1), ("window_closed", 1), ("window_opened", 1)], 10)
        ticket = api.post("/api/v1/tickets", json={"service": "A"}).json()
        called = api.post("/api/v1/windows/1/call", headers=wang).json()["ticket"]
        assert called["number"] == ticket["number"]
        # her page, still open at window 1, may no longer act there: her login ended
        r = api.post("/api/v1/windows/1/call", headers=li)
        assert (r.status_code, r.json()["error"]) == (401, "not_logged_in")
        window = api.get("/api/v1/hall", headers=boss).json()["windows"][0]
        assert (window["state"], window["staff"]["id"], window["staff"]["post"]) == ("open", "wang", "B")
    stop.set()
    expect(page.locator("#windows tr[data-window='1']")).to_contain_text("王强")

    # the records: 李's login ended by the cover, 王's began; the call is his
    rows = list(hall.ctrl.store.query(
        "SELECT kind, data FROM events WHERE window = 1 AND kind IN "
        "('window_resumed', 'window_closed', 'window_opened') ORDER BY id"))
    last = [(r["kind"], json.loads(r["data"]).get("staff"), json.loads(r["data"]).get("reason"))
            for r in rows[-3:]]
    assert last == [("window_resumed", "li", None), ("window_closed", "li", "cover"),
                    ("window_opened", "wang", None)]
    assert hall.ctrl.ticket(called["id"]).staff_id == "wang"
    # attendance per person: her login ended when he took over, his runs on at her window
    with hall.ctrl.store.reads.snapshot() as db:
        rows = {r["staff"]: r for r in attendance(db, hall.ctrl.hall, MONDAY, MONDAY,
                                                  now=hall.clock()) if r["session"] == "morning"}
    assert (rows["li"]["windows"], rows["li"]["first_login"], rows["li"]["last_logout"]) == (
        [1], "2026-11-23T09:00:00+08:00", "2026-11-23T09:16:00+08:00")
    assert 1 in rows["wang"]["windows"] and rows["wang"]["last_logout"] is None
    assert page.errors == []


def test_an_idle_window_with_people_waiting_reaches_the_supervisor(browser, morning):
    hall = morning
    zhao = hall.login("zhao", 3)
    boss = hall.login("boss", None)
    seen, stop = supervisor_stream(hall, boss)
    page = log_in(browser, hall.url, "boss", None, "/supervisor", DESK)
    with hall.client() as api:
        api.post("/api/v1/tickets", json={"service": "C"})
        hall.clock.advance(seconds=50)
        time.sleep(6)  # a tick or more of the server's: still within the minute
        assert kinds(seen, "window_idle") == []
        hall.clock.advance(seconds=20)
        wait_for(lambda: kinds(seen, "window_idle") == [("window_idle", 3)], 15)
        expect(page.locator("#alerts")).to_contain_text("3号窗口空闲", timeout=5000)
        expect(page.locator("#alerts")).to_contain_text("C 业务有 1 人等候（先外后内）")
        assert api.post("/api/v1/windows/3/call", headers=zhao).json()["ticket"]["number"] == "C001"
    stop.set()
    assert page.errors == []
