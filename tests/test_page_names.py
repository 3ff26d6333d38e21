"""Names, not codes (issue 17 item 7), in Chromium against `hallctl run --simulate`.

A case about 陈静 (工号 chenjing), worked by 杨帆 (yangfan): the callbacks page and the case's
history name them; 陈静 lodges an appeal (申诉) from her own page, with the form's checks in
Chinese; the admin page lists the devices by where they are (the hall, the kiosk, each window).
Screenshots go to var/screenshots/names-*.png.
"""

from __future__ import annotations

import httpx
from playwright.sync_api import expect

from tests.browser import DESK, log_in, screenshot


def token(hall, staff_id: str, window: int | None = None) -> dict[str, str]:
    r = httpx.post(f"{hall.url}/api/v1/auth/login",
                   json={"staff_id": staff_id, "pin": "1234", "window": window}, timeout=5)
    r.raise_for_status()
    return {"Authorization": f"Bearer {r.json()['token']}"}


def justified_complaint_about_chenjing(hall) -> str:
    """A complaint about 陈静 at window 1, assigned to 杨帆, called back and found justified."""
    boss, officer = token(hall, "huangjianguo"), token(hall, "yangfan")
    url = f"{hall.url}/api/v1"
    r = httpx.post(f"{url}/complaints", headers=boss, timeout=5, json={
        "source": "phone", "description": "窗口人员办理时接听私人电话，让群众久等", "window": 1,
        "staff_id": "chenjing", "service": "A"})
    assert r.status_code == 201, r.text
    case = r.json()["id"]
    for step, body in (("assign", {"officer": "yangfan"}),
                       ("callback", {"reached": True, "summary": "已联系投诉人，了解经过"}),
                       ("verify", {"justified": True, "finding": "调取录像，情况属实"})):
        done = httpx.post(f"{url}/cases/{case}/{step}", headers=officer, json=body, timeout=5)
        assert done.status_code == 200, done.text
    return case


def test_cases_name_their_staff_and_the_staff_member_appeals_from_her_page(browser, demo_hall):
    case = justified_complaint_about_chenjing(demo_hall)

    desk = log_in(browser, demo_hall.url, "yangfan", None, "/callbacks", DESK)
    row = desk.locator(f"#cases tr[data-case='{case}']")
    expect(row.locator("td.staff")).to_have_text("陈静")
    row.click()
    detail = desk.locator("#detail")
    expect(detail).to_contain_text("陈静")
    expect(detail).to_contain_text("杨帆")
    history = desk.locator("#history")
    expect(history).to_contain_text("交办给 杨帆")
    expect(history).to_contain_text("黄建国")  # who opened it
    for code in ("chenjing", "yangfan", "huangjianguo", "staff:"):
        expect(detail).not_to_contain_text(code)
    screenshot(desk, "names-case-history", "#history .what")

    # 陈静 at window 1 opens her appeals page: the case, its finding, and an appeal button
    mine = log_in(browser, demo_hall.url, "chenjing", 1, "/appeals", DESK)
    mine_row = mine.locator(f"#cases tr[data-case='{case}']")
    expect(mine_row).to_contain_text("情况属实")
    mine_row.locator("button.appeal-open").click()
    expect(mine.locator("#appeal-facts")).to_contain_text("接听私人电话")
    error = mine.locator("#appeal-error")
    mine.click("#appeal-submit")
    expect(error).to_have_text("请填写申诉理由")
    mine.fill("#appeal-reason", "  当时有事  ")
    mine.click("#appeal-submit")
    expect(error).to_contain_text("申诉理由至少 10 个字")
    screenshot(mine, "names-appeal-form", "#appeal-error")
    assert httpx.get(f"{demo_hall.url}/api/v1/cases/{case}", headers=token(demo_hall, "huangjianguo"),
                     timeout=5).json()["state"] == "verified"  # nothing was sent
    mine.fill("#appeal-reason", "当时是单位来电通知系统停机维护，接听后立即告知群众并继续办理")
    expect(mine.locator("#appeal-count")).to_contain_text("/ 2000 字")
    mine.click("#appeal-submit")
    expect(mine.locator("#toast")).to_contain_text("已提交申诉")
    expect(mine_row).to_contain_text("已申诉，复核中")
    expect(mine_row.locator("button.appeal-open")).to_have_count(0)
    got = httpx.get(f"{demo_hall.url}/api/v1/cases/{case}", headers=token(demo_hall, "huangjianguo"),
                    timeout=5).json()
    assert got["state"] == "appealed" and got["history"][-1]["actor_name"] == "陈静"

    # the supervisor's page shows the appeal in the history, by name
    boss = log_in(browser, demo_hall.url, "huangjianguo", None, "/callbacks", DESK)
    boss.locator(f"#cases tr[data-case='{case}']").click()
    expect(boss.locator("#history li").last).to_contain_text("申诉")
    expect(boss.locator("#history li").last).to_contain_text("陈静")
    assert desk.errors == [] and mine.errors == [] and boss.errors == []


def test_the_admin_page_lists_devices_by_where_they_are(browser, demo_hall):
    page = log_in(browser, demo_hall.url, "jiangwen", None, "/admin", DESK)
    places = page.locator("#devices tr.place")
    expect(places.first).to_contain_text("大厅")
    texts = places.all_inner_texts()
    assert any(t.startswith("取号机 entrance") for t in texts), texts
    assert any(t.startswith("1 号窗口 · 社保医保 1") for t in texts), texts
    windows = [t for t in texts if "号窗口" in t]
    assert len(windows) == 20 and windows[0].startswith("1 号窗口") and windows[-1].startswith("20 号窗口")
    # each device sits under its place: window 1's keypad between window 1's heading and window 2's
    order = page.evaluate("""() => Array.from(document.querySelectorAll('#devices tr'),
        (r) => r.dataset.place || r.dataset.device || '')""")
    assert order.index("window:00001") < order.index("keypad-01") < order.index("window:00002")
    assert order.index("kiosk:entrance") < order.index("kiosk-printer") < order.index("window:00001")
    # framing for the screenshot only; the table is drawn again on every event, so no waiting
    # for a row to hold still
    page.evaluate("""() => document.querySelector("#devices tr[data-place='window:00001']").scrollIntoView()""")
    screenshot(page, "names-admin-devices", "#devices tr.place th")
    assert page.errors == []
