"""The counter page says what each action did (issue 17 item 6), in a real browser at the
counter PC's size against `hallctl run --simulate` on the demo hall; and from it staff reprint
a waiting ticket at the kiosk's printer and register a complaint at the 办不成事 window.

Given a window with a citizen at it, when staff mark a no-show, transfer, or call a number
out of order, then the page names what happened, and the number it called before is no
longer shown as current. Each test works its own window and services.
"""

from __future__ import annotations

import json
import re
import sqlite3

import httpx
from playwright.sync_api import expect

from tests.browser import COUNTER, log_in, screenshot
from tests.server import wait_for

ELDER_ID = "11010119500307097X"  # born 1950: past the demo hall's priority_age of 70


def take(hall, service: str, **identity: str) -> dict:
    with hall.client() as api:
        r = api.post("/api/v1/tickets", json={"service": service, **identity})
    assert r.status_code == 201, r.text
    return r.json()


def status(hall, ticket_id: str) -> str:
    return httpx.get(f"{hall.url}/api/v1/tickets/{ticket_id}", timeout=5).json()["status"]


def test_a_no_show_is_asked_first_and_then_says_the_ticket_went_back_to_the_queue(browser, demo_hall):
    b001 = take(demo_hall, "B")
    counter = log_in(browser, demo_hall.url, "zhoutao", 6, "/counter", COUNTER)
    counter.click("#call")
    expect(counter.locator("#toast")).to_have_text("已叫号 B001")
    expect(counter.locator("#current-number")).to_have_text("B001")

    # asked first: cancelling leaves the citizen called at this window
    counter.click("#no-show")
    expect(counter.locator("#no-show-dialog")).to_be_visible()
    expect(counter.locator("#no-show-question")).to_have_text("B001 过号？")
    counter.click("#no-show-cancel")
    expect(counter.locator("#no-show-dialog")).to_be_hidden()
    expect(counter.locator("#current-number")).to_have_text("B001")
    assert status(demo_hall, b001["id"]) == "called"

    # confirmed: the first no-show goes back to the queue, and the page says so
    counter.click("#no-show")
    counter.click("#no-show-ok")
    expect(counter.locator("#toast")).to_have_text("B001 已过号并重新排队")
    expect(counter.locator("#current-number")).to_have_text("—")
    expect(counter.locator("body")).not_to_contain_text("已叫号 B001")
    assert status(demo_hall, b001["id"]) == "waiting"
    screenshot(counter, "counter-no-show", "#toast")

    # the second time it leaves the queue for good
    counter.click("#call")
    expect(counter.locator("#current-number")).to_have_text("B001")
    counter.click("#no-show")
    counter.click("#no-show-ok")
    expect(counter.locator("#toast")).to_have_text("B001 已过号，不再排队")
    assert status(demo_hall, b001["id"]) == "no_show"
    assert counter.errors == []


def test_a_transfer_names_the_service_it_went_to(browser, demo_hall):
    take(demo_hall, "E")
    counter = log_in(browser, demo_hall.url, "majun", 10, "/counter", COUNTER)
    counter.click("#call")
    expect(counter.locator("#current-number")).to_have_text("E001")
    counter.click("#transfer")
    counter.click("#transfer-pick button[data-service='F']")
    expect(counter.locator("#toast")).to_have_text("E001 已转办至 F 住房公积金")
    expect(counter.locator("#current-number")).to_have_text("—")
    expect(counter.locator("body")).not_to_contain_text("已叫号 E001")
    assert counter.errors == []


def test_a_priority_real_name_ticket_shows_both_at_the_counter(browser, demo_hall):
    elder = take(demo_hall, "G", id_number=ELDER_ID, name="张建国")
    assert elder["priority"] == "elderly" and elder["real_name"] is True
    counter = log_in(browser, demo_hall.url, "huxuemei", 11, "/counter", COUNTER)
    counter.click("#call")
    expect(counter.locator("#current-number")).to_have_text(elder["number"])
    expect(counter.locator("#tag-priority")).to_have_text("优先 · 老年人")
    expect(counter.locator("#tag-real-name")).to_have_text("实名")
    screenshot(counter, "counter-priority", "#current-tags")

    # an ordinary ticket after it shows neither
    take(demo_hall, "G")
    counter.click("#finish")
    expect(counter.locator("#toast")).to_have_text(f"{elder['number']} 已办结")
    counter.click("#call")
    expect(counter.locator("#current-number")).not_to_have_text(elder["number"])
    expect(counter.locator("#current-tags")).to_have_text("")
    assert counter.errors == []


def test_calling_a_number_out_of_order_takes_a_reason_the_supervisor_can_read(browser, demo_hall):
    tickets = [take(demo_hall, "H") for _ in range(3)]
    third = tickets[2]
    counter = log_in(browser, demo_hall.url, "heyong", 13, "/counter", COUNTER)
    counter.click("#call-number")
    counter.fill("#call-number-number", third["number"].lower())
    counter.select_option("#call-number-reason", "预约到达")
    screenshot(counter, "counter-call-number", "#call-number-dialog h2")
    counter.click("#call-number-ok")
    expect(counter.locator("#toast")).to_have_text(f"已叫指定号 {third['number']}（预约到达）")
    expect(counter.locator("#current-number")).to_have_text(third["number"])

    # the ticket's history, as a supervisor reads it, has who called it out of order and why
    boss = httpx.post(f"{demo_hall.url}/api/v1/auth/login", timeout=5,
                      json={"staff_id": "huangjianguo", "pin": "1234", "window": None}).json()["token"]
    seen = httpx.get(f"{demo_hall.url}/api/v1/tickets/{third['id']}", timeout=5,
                     headers={"Authorization": f"Bearer {boss}"}).json()
    called = [e["data"] for e in seen["history"] if e["kind"] == "ticket_called"]
    assert [(d.get("out_of_order"), d.get("staff"), d.get("reason")) for d in called] == \
        [(True, "heyong", "预约到达")]
    # the others still wait their turn
    assert [status(demo_hall, t["id"]) for t in tickets[:2]] == ["waiting", "waiting"]
    assert counter.errors == []


def commands(hall, name: str) -> list[dict]:
    """The hall's command log rows of `name`, read from its database beside the running hall."""
    db = sqlite3.connect(f"file:{hall.data / 'hall.sqlite3'}?mode=ro", uri=True)
    try:
        db.row_factory = sqlite3.Row
        return [{"actor": r["actor"], "args": json.loads(r["args"] or "{}")}
                for r in db.execute("SELECT actor, args FROM commands WHERE name = ?", [name])]
    finally:
        db.close()


def printed(hall) -> list[str]:
    """What the kiosk's (simulated) printer printed, each slip's lines joined."""
    slips = httpx.get(f"{hall.url}/sim/printers/kiosk-printer/tickets", params={"last": 50}, timeout=5).json()
    return ["\n".join(s["lines"]) for s in slips]


def test_a_requeued_ticket_is_reprinted_from_the_counter_at_the_kiosk_printer(browser, demo_hall):
    with demo_hall.client() as api:
        r = api.post("/api/v1/kiosks/entrance/tickets", json={"service": "L"})  # 跨域通办: window 15
    assert r.status_code == 201, r.text
    number = r.json()["number"]
    before = len(printed(demo_hall))
    counter = log_in(browser, demo_hall.url, "luoting", 15, "/counter", COUNTER)
    counter.click("#call")
    expect(counter.locator("#current-number")).to_have_text(number)
    counter.click("#no-show")
    counter.click("#no-show-ok")
    expect(counter.locator("#toast")).to_have_text(f"{number} 已过号并重新排队")

    # the ticket just sent back to the queue is the one offered
    counter.click("#reprint")
    expect(counter.locator("#reprint-number")).to_have_value(number)
    screenshot(counter, "counter-reprint", "#reprint-dialog h2")
    counter.click("#reprint-ok")
    expect(counter.locator("#toast")).to_have_text(f"已补打 {number} 的小票，请到取号机取票")
    slips = wait_for(lambda: printed(demo_hall)[before:] or None, 10)
    assert number in slips[-1] and "补打小票" in slips[-1], slips[-1]
    assert {"actor": "staff:luoting", "args": {"ticket": r.json()["id"], "kiosk": "entrance"}} in \
        commands(demo_hall, "reprint")

    # a number that is not waiting is refused in the controller's words, and nothing prints
    counter.click("#reprint")
    counter.fill("#reprint-number", "L999")
    counter.click("#reprint-ok")
    expect(counter.locator("#toast")).to_have_text("没有这张号")
    assert len(printed(demo_hall)) == len(slips) + before
    assert counter.errors == []


def test_a_complaint_is_registered_at_the_complaints_window(browser, demo_hall):
    # a general window has no complaint form: complaints are heard at 办不成事
    general = log_in(browser, demo_hall.url, "zhoutao", 6, "/counter", COUNTER)
    expect(general.locator("#title")).to_contain_text("6号窗口")
    expect(general.locator("#complaint")).to_be_hidden()

    counter = log_in(browser, demo_hall.url, "tanxiaohong", 16, "/counter", COUNTER)
    expect(counter.locator("#complaint")).to_be_visible()
    counter.click("#complaint")
    counter.select_option("#complaint-source", "desk")
    counter.fill("#complaint-description", "不动产登记材料被退回三次，每次说法不一")
    counter.select_option("#complaint-window", "6")
    counter.select_option("#complaint-service", "B")
    counter.fill("#complaint-phone", "13800131234")
    screenshot(counter, "counter-complaint", "#complaint-dialog h2")
    counter.click("#complaint-ok")
    expect(counter.locator("#toast")).to_contain_text("已登记投诉 TS")
    said = re.fullmatch(r"已登记投诉 (TS\S+)，(\d\d-\d\d \d\d:\d\d) 前答复", counter.locator("#toast").inner_text())
    assert said, counter.locator("#toast").inner_text()
    case_id = said[1]

    # the case desk has it, as the supervisor reads it; the log says who opened it
    boss = httpx.post(f"{demo_hall.url}/api/v1/auth/login", timeout=5,
                      json={"staff_id": "huangjianguo", "pin": "1234", "window": None}).json()["token"]
    case = httpx.get(f"{demo_hall.url}/api/v1/cases/{case_id}", timeout=5,
                     headers={"Authorization": f"Bearer {boss}"}).json()
    assert (case["kind"], case["source"], case["window"], case["service"]) == ("complaint", "desk", 6, "B")
    assert case["description"] == "不动产登记材料被退回三次，每次说法不一"
    assert case["citizen"]["phone_masked"] == "138****1234"
    # answered within the hall's deadline (2 working days), as the toast said
    assert case["next_due"][5:16].replace("T", " ") == said[2]
    assert [c["actor"] for c in commands(demo_hall, "case_open") if c["args"].get("case") == case_id] == \
        ["staff:tanxiaohong"]

    # an empty complaint is refused and the form stays open
    counter.click("#complaint")
    counter.fill("#complaint-description", "   ")
    counter.click("#complaint-ok")
    expect(counter.locator("#complaint-dialog")).to_be_visible()
    assert counter.errors == [] and general.errors == []
