"""The Admin page (系统管理) in a real browser: the start-of-day device check with its printable
sheet, the live device health, and the end-of-day shutdown; staff may not open it.

`--simulate` simulates every device of the demo hall: the serial ones (printer, reader,
scanner, windows 1-4) on ptys, the MQTT ones (windows 5-20, the hall display) as MQTT
clients of its embedded broker, so every device can answer."""

from __future__ import annotations

import re
from typing import Iterator

import httpx
import pytest
from playwright.sync_api import expect

from tests.browser import DESK, log_in, open_page, screenshot
from tests.server import wait_for

PRINTER = "kiosk-printer"
CHECK = "/api/v1/admin/device-check"


@pytest.fixture(scope="module")
def hall(demo_hall) -> Iterator:
    """The demo hall once `--simulate` has every device online, its MQTT devices too."""
    with httpx.Client(base_url=demo_hall.url, timeout=10) as c:
        admin = bearer(c, "jiangwen", None)  # device health is for staff
        wait_for(lambda: all(x["state"] == "online"
                             for x in c.get("/api/v1/devices", headers=admin).json()), 15)
    yield demo_hall


@pytest.fixture(scope="module")
def api(hall) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=hall.url, timeout=15) as c:
        yield c


def bearer(api: httpx.Client, staff_id: str, window: int | None) -> dict[str, str]:
    r = api.post("/api/v1/auth/login", json={"staff_id": staff_id, "pin": "1234", "window": window})
    r.raise_for_status()
    return {"Authorization": f"Bearer {r.json()['token']}"}


@pytest.fixture
def pages() -> Iterator[list]:
    """Pages to close whatever happens: an open page's event stream would hold up the
    controller's shutdown."""
    opened: list = []
    yield opened
    for page in opened:
        page.context.close()


def set_paper(api: httpx.Client, paper: str) -> None:
    api.post(f"/sim/printers/{PRINTER}/paper", json={"paper": paper}).raise_for_status()


def test_admin_page(browser, hall, api, pages):
    devices = [d["device"] for d in api.get("/api/v1/devices",
                                            headers=bearer(api, "jiangwen", None)).json()]
    page = log_in(browser, hall.url, "jiangwen", None, "/admin", DESK)
    pages.append(page)
    expect(page.locator("#who")).to_have_text("蒋文")

    # no check yet today; the live health table lists every device
    expect(page.locator("#no-check")).to_contain_text("今日尚未自检")
    expect(page.locator("#print-check")).to_be_disabled()
    expect(page.locator("#devices tr[data-device]")).to_have_count(len(devices))  # under their places
    expect(page.locator(f"#devices tr[data-device='{PRINTER}']")).to_have_attribute("data-state", "online")

    # 开始自检: every device answers, the printer prints a test slip
    printed_before = len(api.get(f"/sim/printers/{PRINTER}/tickets", params={"last": 1000}).json())
    page.click("#run-check")
    expect(page.locator("#verdict")).to_have_text("全部正常", timeout=10_000)
    rows = page.locator("#check-table tbody tr")
    expect(rows).to_have_count(len(devices))
    assert rows.evaluate_all("rs => rs.map(r => r.dataset.device)") == devices
    expect(page.locator("#check-table tr.alert")).to_have_count(0)
    # the sheet says where each device is (设备位置), for whoever walks the floor with it
    expect(page.locator("#check-table tr[data-device='keypad-01'] td.place")).to_have_text("1 号窗口 · 社保医保 1")
    expect(page.locator(f"#check-table tr[data-device='{PRINTER}'] td.place")).to_have_text("取号机 entrance")
    expect(page.locator("#count-total b")).to_have_text(str(len(devices)))
    expect(page.locator("#count-failed b")).to_have_text("0")
    expect(page.locator("#checked-at")).to_contain_text("蒋文")
    expect(page.locator(f"#check-table tr[data-device='{PRINTER}']")).to_contain_text("打印测试票")
    expect(page.locator("#check-table tr[data-device='display-01']")).to_contain_text("屏幕闪烁")
    expect(page.locator("#check-table tr[data-device='evaluator-05']")).to_contain_text("评价器测试提示")
    slips = api.get(f"/sim/printers/{PRINTER}/tickets", params={"last": 1000}).json()
    assert len(slips) == printed_before + 1
    assert "设备自检" in "\n".join(slips[-1]["lines"])

    # the printer out of paper: its row fails, red; every other device still passes
    set_paper(api, "out")
    try:
        page.click("#run-check")
        expect(page.locator("#verdict")).to_have_text("1 台设备异常", timeout=10_000)
        printer_row = page.locator(f"#check-table tr[data-device='{PRINTER}']")
        expect(printer_row).to_have_class("alert")
        expect(printer_row).to_have_attribute("data-ok", "0")
        expect(printer_row).to_contain_text("缺纸")
        expect(page.locator("#check-table tr.alert")).to_have_count(1)
        expect(page.locator("#check-table tr[data-ok='1']")).to_have_count(len(devices) - 1)
        expect(page.locator("#count-failed b")).to_have_text("1")
        expect(printer_row.locator("td").first).to_have_css("background-color", "rgb(253, 236, 234)")
        # 只看异常 narrows the table to the failed devices
        page.check("#only-failed")
        expect(rows).to_have_count(1)
        page.uncheck("#only-failed")
        expect(rows).to_have_count(len(devices))
        screenshot(page, "admin", "#check-section h2")
        # the print layout: the hall, the time, the table and a signature line; nothing else
        page.emulate_media(media="print")
        expect(page.locator("#sheet-title")).to_be_visible()
        expect(page.locator("#sheet-title")).to_have_text("万州区政务服务中心 开班设备自检单")
        expect(page.locator("#checked-at")).to_be_visible()
        expect(page.locator("#check-table")).to_be_visible()
        expect(page.locator(".sign")).to_be_visible()
        expect(page.locator(".sign")).to_contain_text("检查人签字")
        for hidden in ("header.bar", "#run-check", "#print-check", "#eod-section", "#health-section",
                       "#only-failed"):
            expect(page.locator(hidden)).to_be_hidden()
        page.emulate_media(media="screen")
        expect(page.locator(".sign")).to_be_hidden()
        expect(page.locator("#print-check")).to_be_enabled()
    finally:
        set_paper(api, "ok")

    # reopening the page shows today's last result
    page.reload()
    expect(page.locator("#verdict")).to_have_text("1 台设备异常")
    expect(page.locator("#check-table tbody tr")).to_have_count(len(devices))

    # the health table follows the live events: a check run elsewhere finds the roll near its end
    admin = bearer(api, "jiangwen", None)
    set_paper(api, "near_end")
    try:
        api.post(CHECK, headers=admin).raise_for_status()
        expect(page.locator(f"#devices tr[data-device='{PRINTER}']")).to_have_attribute("data-state", "warning")
    finally:
        set_paper(api, "ok")
    api.post(CHECK, headers=admin).raise_for_status()
    expect(page.locator(f"#devices tr[data-device='{PRINTER}']")).to_have_attribute("data-state", "online")

    # English
    page.click("header.bar button.lang")
    expect(page.locator("#title")).to_have_text("Administration")
    expect(page.locator("#run-check")).to_have_text("Run the check")
    expect(page.locator("#verdict")).to_have_text("All devices OK")
    page.click("header.bar button.lang")
    expect(page.locator("#title")).to_have_text("系统管理")

    # 下班关机 while window 1 is logged in: refused, naming it
    staff = bearer(api, "chenjing", 1)
    expect(page.locator("#open-windows")).to_contain_text("1号窗口")
    page.click("#end-of-day")
    expect(page.locator("#eod-dialog")).to_be_visible()
    page.click("#eod-cancel")
    expect(page.locator("#eod-dialog")).to_be_hidden()
    expect(page.locator("#eod-result")).to_be_empty()
    page.click("#end-of-day")
    page.click("#eod-ok")
    expect(page.locator("#eod-refused")).to_contain_text("1号窗口")
    expect(page.locator("#eod-refused")).to_contain_text("退出登录")

    # once chenjing has logged out it goes through
    api.post("/api/v1/auth/logout", headers=staff).raise_for_status()
    expect(page.locator("#open-windows")).to_contain_text("所有窗口均已退出登录")
    page.click("#end-of-day")
    page.click("#eod-ok")
    done = page.locator("#eod-done")
    expect(done).to_contain_text("已下班关机")
    expect(done).to_contain_text("窗口屏 20 块")
    expect(done).to_contain_text("评价器 20 台")
    expect(done).to_contain_text("综合屏已显示下班")
    expect(page.locator("#eod-refused")).to_have_count(0)
    assert page.errors == []


def test_staff_may_not_open_it(browser, hall, api, pages):
    staff = bearer(api, "chenjing", 1)
    try:
        assert api.post(CHECK, headers=staff).status_code == 403
        assert api.get(CHECK, headers=staff).status_code == 403
        assert api.post("/api/v1/admin/end-of-day", headers=staff).status_code == 403
        page = log_in(browser, hall.url, "chenjing", 1, "/admin", DESK)
        pages.append(page)
        expect(page.locator("h1")).to_contain_text("无权访问")
        assert re.search(r"/admin$", page.url)
        assert page.errors == []
    finally:
        api.post("/api/v1/auth/logout", headers=staff)


def test_without_login_it_asks_for_one(browser, hall, pages):
    page = open_page(browser, f"{hall.url}/admin", DESK)
    pages.append(page)
    expect(page).to_have_url(re.compile(r"/login\?next=(/|%2F)admin$"))
    expect(page.locator("#staff_id")).to_be_visible()
