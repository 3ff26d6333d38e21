"""The callback officer's page (差评回访) in a real browser, on `hallctl run --simulate`.

A bad review is made through the real paths: a card on the simulated reader, a real-name
ticket at the kiosk, the counter's staff call and finish it over the API, the simulated pad
is pressed 非常不满意. The officer's open page picks the case up from the live stream, shows
the unmasked phone only on request (and the look is audited), and works the case.
"""

from __future__ import annotations

import json
import sqlite3

from playwright.sync_api import expect

from controller.cli import DB_NAME
from tests.browser import DESK, log_in, screenshot
from tests.server import wait_for

PHONE = "13800131234"  # typed at the kiosk beside the card, for the callback


def make_bad_review(hall) -> str:
    """A real-name 非常不满意 for chenjing at window 1; the ticket's id."""
    with hall.client() as api:
        assert api.post("/sim/id-readers/kiosk-id-reader/place", json={"card": "young"}).status_code == 200
        wait_for(lambda: api.get("/api/v1/kiosks/entrance").json()["card"], 10)
        r = api.post("/api/v1/kiosks/entrance/tickets", json={"service": "A", "phone": PHONE})
        assert r.status_code == 201 and r.json()["real_name"], r.text
        ticket = r.json()["id"]

        r = api.post("/api/v1/auth/login", json={"staff_id": "chenjing", "pin": "1234", "window": 1})
        assert r.status_code == 200, r.text
        staff = {"Authorization": f"Bearer {r.json()['token']}"}
        called = api.post("/api/v1/windows/1/call", headers=staff)
        assert called.status_code == 200 and called.json()["ticket"]["id"] == ticket, called.text
        assert api.post("/api/v1/windows/1/finish", headers=staff).status_code == 200
        # the pad asks for a grade once the controller has told it to
        wait_for(lambda: api.get("/api/v1/windows/1", headers=staff).json()["evaluating"], 10)
        assert api.post("/sim/pads/1/grade", json={"grade": 5}).status_code == 200
        wait_for(lambda: not api.get("/api/v1/windows/1", headers=staff).json()["evaluating"], 10)
        # free window 1 (and chenjing) for the other test
        assert api.post("/api/v1/auth/logout", headers=staff).status_code == 200
    return ticket


def audit_rows(hall, name: str) -> list[tuple[str, dict]]:
    conn = sqlite3.connect(f"file:{hall.data / DB_NAME}?mode=ro", uri=True)
    try:
        return [(actor, json.loads(args)) for actor, args in conn.execute(
            "SELECT actor, args FROM commands WHERE name = ? ORDER BY id", [name])]
    finally:
        conn.close()


def test_the_officer_works_a_bad_review_from_the_page(browser, demo_hall):
    page = log_in(browser, demo_hall.url, "yangfan", None, "/callbacks", DESK)
    try:
        expect(page.locator("#who")).to_contain_text("杨帆")
        expect(page.locator("#cases .empty-row")).to_be_visible()
        expect(page.locator("#fig-bad .n")).to_have_text("0")

        ticket = make_bad_review(demo_hall)

        # the page learns of it from the live stream (ticket_evaluated), well before its 30 s refresh
        row = page.locator("#cases tr[data-case]")
        expect(row).to_have_count(1, timeout=10_000)
        case_id = row.get_attribute("data-case")
        assert case_id.startswith("HP")
        expect(row).to_contain_text("差评")
        expect(row).to_contain_text("待交办")
        expect(row).to_contain_text("社保医保")
        expect(row).to_contain_text("陈静")  # the staff member by name, not 工号
        expect(row).not_to_contain_text("chenjing")
        expect(row).not_to_have_class("alert")  # due tomorrow, not overdue
        expect(page.locator("#fig-bad .n")).to_have_text("1")
        expect(page.locator("#fig-rate .n")).to_have_text("0%")

        row.click()
        expect(page.locator("#detail-title")).to_have_text(f"案件 {case_id}")
        detail = page.locator("#detail")
        expect(detail).to_contain_text("非常不满意")
        expect(detail).to_contain_text(ticket)
        expect(page.locator("#citizen-phone")).to_have_text("138****1234")
        expect(page.locator("#citizen-name")).to_have_text("王**")
        expect(page.locator("#reveal-note")).to_contain_text("记录")
        expect(page.locator("#deadlines [data-deadline=callback_due]")).to_be_visible()
        expect(page.locator("#history li")).to_have_count(1)
        # open: only assigning is allowed
        expect(page.locator("#actions form.act")).to_have_count(1)
        expect(page.locator("#act-assign")).to_be_visible()
        assert audit_rows(demo_hall, "case_personal_data_viewed") == []

        page.click("#reveal")
        expect(page.locator("#citizen-phone")).to_have_text(PHONE)
        expect(page.locator("#citizen-name")).to_have_text("王志强")
        expect(page.locator("#citizen-id")).to_have_text("110101199003070978")
        expect(page.locator("#reveal-note")).to_contain_text("已记录")
        expect(page.locator("#reveal")).to_have_count(0)
        assert audit_rows(demo_hall, "case_personal_data_viewed") == [("staff:yangfan", {"case": case_id})]

        # 问题交办 to the officer themself (the form's default), then the callback form appears
        officer = page.locator("#act-assign select[name=officer]")
        expect(officer).to_have_value("yangfan")
        # chosen by name (问题交办 to 杨帆, not to a 工号 typed in)
        expect(officer.locator("option:checked")).to_have_text("杨帆（回访专员）")
        page.click("#act-assign button[type=submit]")
        expect(page.locator("#detail-state")).to_have_text("已交办")
        expect(page.locator("#cases tr[data-case]")).to_contain_text("已交办")
        expect(page.locator("#act-callback")).to_be_visible()

        form = page.locator("#act-callback")
        form.locator("input[name=reached][value=yes]").check()
        form.locator("textarea[name=summary]").fill("已电话联系王先生，了解到等候时窗口人员态度生硬，已致歉。")
        form.locator("button[type=submit]").click()
        expect(page.locator("#detail-state")).to_have_text("已回访")
        expect(page.locator("#cases tr[data-case]")).to_contain_text("已回访")
        expect(page.locator("#history li")).to_have_count(3)
        expect(page.locator("#history")).to_contain_text("回访：已联系上")
        expect(page.locator("#act-callback")).to_have_count(0)
        expect(page.locator("#act-verify")).to_be_visible()
        expect(page.locator("#citizen-phone")).to_have_text(PHONE)  # still open for this case

        with demo_hall.client() as api:
            r = api.post("/api/v1/auth/login", json={"staff_id": "yangfan", "pin": "1234", "window": None})
            officer = {"Authorization": f"Bearer {r.json()['token']}"}
            case = api.get(f"/api/v1/cases/{case_id}", headers=officer).json()
        assert (case["state"], case["assignee"]) == ("called_back", "yangfan")
        assert case["history"][-1]["note"] == {
            "reached": True, "summary": "已电话联系王先生，了解到等候时窗口人员态度生硬，已致歉。"}
        assert case["history"][-1]["actor"] == "yangfan"

        page.locator("#detail").evaluate("box => box.scrollTo(0, 0)")
        screenshot(page, "callbacks", "#detail-title")

        # a refused command shows the server's message: verify without a finding is sent blank
        page.locator("#act-verify input[name=justified][value=yes]").check()
        page.locator("#act-verify textarea[name=finding]").fill("   ")
        page.locator("#act-verify button[type=submit]").click()
        expect(page.locator("#toast")).to_contain_text("请填写核实情况")
        expect(page.locator("#detail-state")).to_have_text("已回访")

        assert page.errors == []
    finally:
        # an open page keeps its event stream open, and hallctl waits for it on SIGTERM
        page.context.close()


def test_counter_staff_may_not_open_the_callbacks_page(browser, demo_hall):
    page = log_in(browser, demo_hall.url, "chenjing", 1, "/callbacks", DESK)
    try:
        expect(page.locator("h1")).to_contain_text("无权访问")
        expect(page.locator("body")).not_to_contain_text("回访案件")
        refused = [args for actor, args in audit_rows(demo_hall, "page_opened") if actor == "staff:chenjing"]
        assert refused == [{"page": "callbacks"}]
        r = page.request.post(f"{demo_hall.url}/api/v1/auth/logout", headers={"x-hall-page": "1"})
        assert r.ok
        assert page.errors == []
    finally:
        page.context.close()
