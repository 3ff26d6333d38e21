"""The supervisor's floor (issue 17 item 5), in Chromium at the supervisor's 1920x1080: the
windows stand as the hall file's [layout] places them, above the fold, each tile saying what
its window does; the alerts come from the controller when the page opens (one raised before
is there), arrive live with a sound (two tones made by the page's WebAudio, counted by a hook
on the browser's AudioContext, not by a stand-in for the server); device faults come first
and the working devices are folded away.
"""

from __future__ import annotations

import re

import httpx
import pytest
from playwright.sync_api import expect

from controller.config.hall import load_config
from controller.runtime.clock import ManualClock
from tests.browser import log_in, screenshot
from tests.halls import at
from tests.server import DEMO_CONFIG, running_hall, wait_for
from tests.test_floor import floor_hall

SCREEN = {"width": 1920, "height": 1080}

# Counts the oscillators the page starts: each tone of the alert sound is one.
SOUND_HOOK = """
window.__tones = 0;
const made = AudioContext.prototype.createOscillator;
AudioContext.prototype.createOscillator = function () { window.__tones += 1; return made.call(this); };
"""


def token(url: str, staff: str, window: int | None) -> dict[str, str]:
    r = httpx.post(f"{url}/api/v1/auth/login", timeout=5,
                   json={"staff_id": staff, "pin": "1234", "window": window})
    r.raise_for_status()
    return {"Authorization": f"Bearer {r.json()['token']}"}


def box(page, window: int) -> dict[str, float]:
    # the floor is drawn again on every event: a tile measured while it is being replaced has
    # no box for that moment, so it is measured again (up to 2 s) before it counts as missing
    tile = page.locator(f"#floor .wtile[data-window='{window}']")
    for _ in range(20):
        found = tile.bounding_box()
        if found is not None:
            return found
        page.wait_for_timeout(100)
    raise AssertionError(f"window {window} has no tile")


def test_the_floor_stands_as_the_hall_file_lays_it_out_above_the_fold(browser, demo_hall):
    url = demo_hall.url
    with demo_hall.client() as api:
        api.post("/api/v1/tickets", json={"service": "A"}).raise_for_status()
        at_one = token(url, "chenjing", 1)
        serving = api.post("/api/v1/windows/1/call", headers=at_one).json()["ticket"]["number"]
        at_two = token(url, "liuyang", 2)
        api.post("/api/v1/windows/2/pause", headers=at_two,
                 json={"reason": "临时离岗", "minutes": 10}).raise_for_status()
    page = log_in(browser, url, "huangjianguo", None, "/supervisor", SCREEN)
    layout = load_config(DEMO_CONFIG).layout
    assert layout is not None and len(layout.zones) == 3
    expect(page.locator("#floor .wtile")).to_have_count(20)

    for z, zone in enumerate(layout.zones):
        expect(page.locator(f"#floor .zone[data-zone='{z}'] h3")).to_have_text(zone.name)
        first = next(n for n in zone.rows[0] if n)
        origin, pitch = box(page, first), None
        for r, row in enumerate(zone.rows):
            for c, n in enumerate(row):
                if not n:
                    continue  # a place with no window: nothing drawn, the row keeps its gap
                tile = page.locator(f"#floor .zone[data-zone='{z}'] .wtile[data-window='{n}']")
                expect(tile).to_have_attribute("data-row", str(r))
                expect(tile).to_have_attribute("data-col", str(c))
                b = box(page, n)
                # every tile of the floor inside the 1920x1080 screen: no scrolling to see it
                assert b["x"] >= 0 and b["y"] >= 0, (n, b)
                assert b["x"] + b["width"] <= SCREEN["width"] and b["y"] + b["height"] <= SCREEN["height"], (n, b)
                # its place: the row's height, the column's width, counted from the zone's first
                pitch = pitch or (b["width"] + 8, b["height"] + 8)
                col_of_first = zone.rows[0].index(first)
                assert abs(b["x"] - origin["x"] - (c - col_of_first) * pitch[0]) < 2, (n, r, c, b)
                assert abs(b["y"] - origin["y"] - r * pitch[1]) < 2, (n, r, c, b)

    # what the windows do: serving whom, paused with the return time, closed
    one = page.locator("#floor .wtile[data-window='1']")
    expect(one).to_have_attribute("data-state", "serving")
    expect(one).to_contain_text(serving)
    expect(one).to_contain_text("陈静")
    two = page.locator("#floor .wtile[data-window='2']")
    expect(two).to_have_attribute("data-state", "paused")
    expect(two).to_contain_text("临时离岗")
    # the demo's clock starts at 09:00: back ten minutes on, said in full (not cut off)
    back = two.locator(".line.big")
    expect(back).to_have_text(re.compile(r"预计09:1\d回"))
    assert back.evaluate("e => e.scrollWidth <= e.clientWidth"), back.inner_text()
    expect(page.locator("#floor .wtile[data-window='3']")).to_have_attribute("data-state", "closed")
    # the alerts beside the floor, on the same screen
    alerts = page.locator("#alerts-card").bounding_box()
    assert alerts is not None and alerts["x"] > box(page, 20)["x"] and alerts["y"] < 200
    screenshot(page, "supervisor-floor", "#floor .zone h3")
    assert page.errors == []


def test_a_device_fault_comes_first_and_the_working_devices_are_folded(browser, demo_hall):
    url = demo_hall.url
    with demo_hall.client() as api:
        httpx.post(f"{url}/sim/printers/kiosk-printer/paper", json={"paper": "out"}, timeout=5)
        r = api.post("/api/v1/kiosks/entrance/tickets", json={"service": "C"})
        assert (r.status_code, r.json()["error"]) == (409, "paper_out")
    try:
        # the fault stood before the page was opened: it is listed when it opens
        page = log_in(browser, url, "huangjianguo", None, "/supervisor", SCREEN)
        first = page.locator("#device-faults tr[data-device]").first
        expect(first).to_have_attribute("data-device", "kiosk-printer")
        expect(first).to_have_attribute("data-state", "fault")
        expect(first).to_contain_text("缺纸")
        fault = page.locator("#alerts li[data-kind='device_fault']")
        expect(fault).to_contain_text("设备 kiosk-printer（取号打印机）故障：缺纸")
        # the working devices: folded away under their count, none of them among the faults
        expect(page.locator("#devices-ok")).not_to_have_attribute("open", "")
        working = page.locator("#devices-ok-rows tr[data-device]")
        expect(working.first).to_be_hidden()
        assert working.count() > 20
        expect(page.locator("#devices-ok-summary")).to_have_text(f"运行正常 {working.count()} 台（点击展开）")
        states = page.locator("#devices-ok-rows tr[data-device]").evaluate_all(
            "rows => rows.map(r => r.dataset.state)")
        assert set(states) == {"online"}
        assert page.locator("#device-faults tr[data-state='online']").count() == 0
        expect(page.locator("[data-tile='tile.faults']")).to_contain_text("1")
        page.locator("#devices-card").scroll_into_view_if_needed()
        screenshot(page, "supervisor-device-fault", "#devices-card h2")
        page.click("#devices-ok-summary")
        expect(working.first).to_be_visible()
        assert page.errors == []
    finally:
        httpx.post(f"{url}/sim/printers/kiosk-printer/paper", json={"paper": "ok"}, timeout=5)


@pytest.fixture
def morning(tmp_path):
    clock = ManualClock(at("08:55"))
    with running_hall(floor_hall(), tmp_path, clock) as hall:
        hall.ctrl.tick()
        clock.advance(minutes=5)
        yield hall


def standing(hall, boss) -> list[dict]:
    with hall.client() as api:
        return api.get("/api/v1/alerts", headers=boss).json()


def test_an_alert_from_before_the_page_opened_is_listed_and_a_new_one_arrives_with_a_sound(browser, morning):
    hall = morning
    li, boss = hall.login("li", 1), hall.login("boss", None)
    hall.login("wang", 2)
    zhao = hall.login("zhao", 3)
    with hall.client() as api:
        assert api.post("/api/v1/windows/1/pause", headers=li,
                        json={"reason": "去库房取档案", "minutes": 10}).status_code == 200
    hall.clock.advance(minutes=16)
    hall.ctrl.tick()
    assert [a["kind"] for a in standing(hall, boss)] == ["pause_over_limit"]

    page = log_in(browser, hall.url, "boss", None, "/supervisor", SCREEN)
    page.add_init_script(SOUND_HOOK)
    page.reload()
    over = page.locator("#alerts li[data-kind='pause_over_limit']")
    expect(over).to_contain_text("09:15")  # since the pause passed its 15 minutes
    expect(over).to_contain_text("1号窗口暂停超过时限（李娜，去库房取档案，已暂停 16 分钟）")
    expect(page.locator("#alert-count")).to_have_text("1")
    tile = page.locator("#floor .wtile[data-window='1']")
    expect(tile).to_have_attribute("data-state", "over_limit")
    expect(tile).to_contain_text("已暂停 16 分钟")
    # what stood when the page opened is listed, not announced
    assert page.evaluate("window.__tones") == 0
    expect(over).not_to_have_class("new")

    # window 3 sits idle while a citizen waits for it: the alert arrives live
    with hall.client() as api:
        api.post("/api/v1/tickets", json={"service": "C"}).raise_for_status()
        hall.clock.advance(seconds=70)
        hall.ctrl.tick()
        idle = page.locator("#alerts li[data-kind='window_idle']")
        expect(idle).to_contain_text("3号窗口空闲 70 秒，C 业务有 1 人等候（先外后内）", timeout=5000)
        expect(idle).to_have_class("new")
        wait_for(lambda: page.evaluate("window.__tones") >= 2, 5)  # the two tones of one alert
        expect(page.locator("#floor .wtile[data-window='3'] .flag")).to_have_text("! 1")
        screenshot(page, "supervisor-alert-live", "#alerts-card h2")
        # called: the alert ends, and its going makes no sound
        tones = page.evaluate("window.__tones")
        assert api.post("/api/v1/windows/3/call", headers=zhao).json()["ticket"]["number"] == "C001"
    expect(idle).to_have_count(0)
    expect(page.locator("#floor .wtile[data-window='3']")).to_have_attribute("data-state", "serving")
    assert page.evaluate("window.__tones") == tones
    assert page.errors == []
