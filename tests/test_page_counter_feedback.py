"""The counter page says what each action did (issue 17 item 6), in a real browser at the
counter PC's size against `hallctl run --simulate` on the demo hall.

Given a window with a citizen at it, when staff mark a no-show, transfer, or call a number
out of order, then the page names what happened, and the number it called before is no
longer shown as current. Each test works its own window and services.
"""

from __future__ import annotations

import httpx
from playwright.sync_api import expect

from tests.browser import COUNTER, log_in, screenshot

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
