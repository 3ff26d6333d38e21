"""The hall's pages in a real browser (Debian's Chromium driven by Playwright) against
`hallctl run --simulate` on the demo hall: the kiosk, counter, display and supervisor
pages, and what each role may open.

The tests share one demo hall; each works its own windows and services so they do
not depend on one another's order.
"""

from __future__ import annotations

import httpx
from playwright.sync_api import expect

from tests.browser import COUNTER, DESK, KIOSK, TV, log_in, open_page, screenshot


def api_login(url: str, staff_id: str, window: int | None) -> dict[str, str]:
    r = httpx.post(f"{url}/api/v1/auth/login",
                   json={"staff_id": staff_id, "pin": "1234", "window": window}, timeout=5)
    r.raise_for_status()
    return {"Authorization": f"Bearer {r.json()['token']}"}


def mark_loaded(page) -> None:
    """A flag that a reload would wipe: the page must update without one."""
    page.evaluate("window.__notReloaded = true")


def still_loaded(page) -> bool:
    return page.evaluate("window.__notReloaded === true")


def test_a_kiosk_ticket_reaches_the_counter_and_its_call_the_display_within_a_second(browser, demo_hall):
    url = demo_hall.url
    display = open_page(browser, f"{url}/display", TV)
    expect(display.locator(".win[data-window='7']")).to_have_attribute("data-state", "closed")
    mark_loaded(display)

    # 户籍办理 (C) at the kiosk: the slip's number is on the confirmation
    kiosk = open_page(browser, demo_hall.kiosk_page(), KIOSK)
    kiosk.click("button.service[data-service='C']")
    number = kiosk.locator("#ticket-number")
    expect(number).to_have_text("C001")
    expect(kiosk.locator("#ticket-body")).to_contain_text("前面还有 0 人等候")
    printed = httpx.get(f"{url}/sim/printers/kiosk-printer/tickets", timeout=5).json()
    assert any("C001" in str(p) for p in printed), "the simulated printer printed no C001"
    screenshot(kiosk, "kiosk-ticket", "#ticket-body")

    # window 7 (户籍办理) sees it waiting and calls it
    counter = log_in(browser, url, "wujuan", 7, "/counter", COUNTER)
    expect(counter.locator("#title")).to_contain_text("7号窗口")
    expect(counter.locator("#who")).to_contain_text("A岗")
    expect(counter.locator("#queues tr[data-service='C'] td.n")).to_have_text("1 人")
    counter.click("#call")
    expect(counter.locator("#current-number")).to_have_text("C001")
    screenshot(counter, "counter", "#title")

    # the display shows the call within 1 s of the click, without a reload
    expect(display.locator("#newest-number")).to_have_text("C001", timeout=1000)
    expect(display.locator("#newest-window")).to_have_text("7")
    expect(display.locator(".win[data-window='7']")).to_have_attribute("data-state", "serving")
    assert still_loaded(display)
    screenshot(display, "display", "#calls-head")

    counter.click("#finish")
    expect(counter.locator("#current-number")).to_have_text("—")
    expect(counter.locator("#last-visit")).to_contain_text("C001")
    for page in (display, kiosk, counter):
        assert page.errors == []


def test_pausing_at_the_counter_shows_pause_service_on_the_display(browser, demo_hall):
    url = demo_hall.url
    display = open_page(browser, f"{url}/display", TV)
    tile = display.locator(".win[data-window='13']")
    expect(tile).to_have_attribute("data-state", "closed")
    mark_loaded(display)

    counter = log_in(browser, url, "heyong", 13, "/counter", COUNTER)
    expect(tile).to_have_attribute("data-state", "open")
    counter.click("#pause")
    counter.select_option("#pause-reason", "临时离岗")
    counter.fill("#pause-minutes", "10")
    counter.fill("#pause-whereabouts", "档案室")
    counter.click("#pause-ok")
    expect(counter.locator("#state-line")).to_contain_text("暂停服务：临时离岗")
    expect(counter.locator("#resume")).to_be_enabled()
    expect(counter.locator("#call")).to_be_disabled()

    expect(tile).to_have_attribute("data-state", "paused", timeout=1000)
    expect(tile).to_contain_text("暂停服务")
    expect(tile).to_contain_text("临时离岗")
    assert still_loaded(display)

    # the supervisor sees the pause with its reason and whereabouts
    supervisor = log_in(browser, url, "huangjianguo", None, "/supervisor", DESK)
    row = supervisor.locator("#windows tr[data-window='13']")
    expect(row).to_have_attribute("data-state", "paused")
    expect(row).to_contain_text("临时离岗")
    expect(row).to_contain_text("档案室")
    expect(supervisor.locator("#devices tr[data-device='kiosk-printer']")).to_contain_text("取号打印机")
    expect(supervisor.locator("#patrol")).to_contain_text("何勇")
    screenshot(supervisor, "supervisor", "#title")

    counter.click("#resume")
    expect(tile).to_have_attribute("data-state", "open", timeout=1000)
    for page in (display, counter, supervisor):
        assert page.errors == []


def test_the_kiosk_checks_a_typed_id_number_and_issues_a_real_name_ticket(browser, demo_hall):
    url = demo_hall.url
    kiosk = open_page(browser, demo_hall.kiosk_page(), KIOSK)
    kiosk.click("#type-id")
    for key in "11010519491231002":
        kiosk.click(f"#keypad button[data-key='{key}']")
    kiosk.click("#keypad button[data-key='9']")  # the wrong check digit (it is X)
    kiosk.click("#id-ok")
    expect(kiosk.locator("#id-error")).to_contain_text("校验位不正确")
    kiosk.click("#keypad button[data-key='⌫']")
    kiosk.click("#keypad button[data-key='X']")
    kiosk.click("#id-ok")
    # the masked number the ticket will carry, shown until it is used, cleared or left idle
    expect(kiosk.locator("#identity-who")).to_contain_text("1101**********002X")

    kiosk.click("button.service[data-service='D']")
    expect(kiosk.locator("#ticket-number")).to_have_text("D001")
    ticket = httpx.get(f"{url}/api/v1/hall", timeout=5).json()
    assert ticket["queues"][3]["service"] == "D" and ticket["queues"][3]["waiting"] == 1
    # the slip is real-name: the same citizen may not hold a second D ticket
    kiosk.click("#ticket-close")
    kiosk.click("#type-id")
    for key in "11010519491231002X":
        kiosk.click(f"#keypad button[data-key='{key}']")
    kiosk.click("#id-ok")
    kiosk.click("button.service[data-service='D']")
    expect(kiosk.locator("#refusal")).to_be_visible()
    assert kiosk.errors == []


def test_the_kiosk_says_when_the_printer_is_out_of_paper(browser, demo_hall):
    url = demo_hall.url
    kiosk = open_page(browser, demo_hall.kiosk_page(), KIOSK)
    expect(kiosk.locator("button.service[data-service='H']")).to_be_enabled()
    httpx.post(f"{url}/sim/printers/kiosk-printer/paper", json={"paper": "out"}, timeout=5)
    try:
        kiosk.click("button.service[data-service='H']")
        expect(kiosk.locator("#refusal")).to_contain_text("缺纸")
        kiosk.click("#ticket-close")
        # the kiosk now knows: every service button is off and the alarm says why
        expect(kiosk.locator("#alarm")).to_contain_text("缺纸")
        expect(kiosk.locator("button.service[data-service='H']")).to_be_disabled()
        screenshot(kiosk, "kiosk-paper-out", "#alarm")
    finally:
        httpx.post(f"{url}/sim/printers/kiosk-printer/paper", json={"paper": "ok"}, timeout=5)
    kiosk.click("button.service[data-service='H']")  # a new roll: tickets again
    expect(kiosk.locator("#ticket-number")).to_have_text("H001")
    expect(kiosk.locator("#alarm")).to_be_hidden()
    assert kiosk.errors == []


def test_each_page_checks_its_role(browser, demo_hall):
    url = demo_hall.url
    # no login: the staff pages lead to the login page
    anonymous = open_page(browser, f"{url}/admin", DESK)
    expect(anonymous).to_have_url(f"{url}/login?next=/admin")

    # a staff token cannot open the admin page, nor use its API
    staff = log_in(browser, url, "liuyang", 2, "/counter", COUNTER)
    response = staff.goto(f"{url}/admin")
    assert response.status == 403
    expect(staff.locator("h1")).to_contain_text("无权访问")
    for page in ("/supervisor", "/callbacks", "/reports"):
        assert staff.goto(f"{url}{page}").status == 403
    headers = api_login(url, "liuyang", 2)
    assert httpx.get(f"{url}/api/v1/devices", headers=headers).status_code == 200
    refused = httpx.post(f"{url}/api/v1/admin/device-check", headers=headers, timeout=10)
    assert refused.status_code == 403

    # a page session's cookie alone cannot change anything: no cross-site form may call
    cookie = {c["name"]: c["value"] for c in staff.context.cookies()}
    assert "hall_session" in cookie
    forged = httpx.post(f"{url}/api/v1/windows/2/call", cookies=cookie, timeout=5)
    assert forged.status_code == 401

    # the admin opens it
    admin = log_in(browser, url, "jiangwen", None, "/admin", DESK)
    assert admin.goto(f"{url}/admin").status == 200


def test_the_pages_switch_to_english(browser, demo_hall):
    # (the hall display has no language button: tests/test_page_display_readable.py)
    page = open_page(browser, f"{demo_hall.url}/login", DESK)
    expect(page.locator("#hall-name")).to_have_text("工作人员登录")
    page.click("button.lang")
    expect(page.locator("#hall-name")).to_have_text("Staff login")
    # the choice is kept for the next page opened in this browser
    page.goto(demo_hall.kiosk_page())  # this browser is the enrolled kiosk
    expect(page.locator("#card-text")).to_contain_text("Real-name ticket")
    page.click("button.lang")
    expect(page.locator("#card-text")).to_contain_text("实名取号")
