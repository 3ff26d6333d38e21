"""The reports page (统计报表) in a real browser against the demo hall: day figures per
service match the API, the charts are drawn from the rows, the downloads work, and the
personnel records (overtime, attendance) stay hidden from a callback officer."""

from __future__ import annotations

import httpx
import pytest
from playwright.sync_api import expect

from tests.browser import DESK, SHOTS, log_in, screenshot

API = "/api/v1"


def _token(c: httpx.Client, staff_id: str, window: int | None = None) -> dict[str, str]:
    r = c.post(f"{API}/auth/login", json={"staff_id": staff_id, "pin": "1234", "window": window})
    r.raise_for_status()
    return {"Authorization": f"Bearer {r.json()['token']}"}


@pytest.fixture(scope="module")
def activity(demo_hall):
    """Two staff members at their windows serve some citizens: service A gets four
    tickets of which two are served, service C one, served."""
    with demo_hall.client() as c:
        staff = {1: _token(c, "chenjing", 1), 2: _token(c, "liuyang", 2)}
        for service in ("A", "A", "A", "A", "C"):
            c.post(f"{API}/tickets", json={"service": service}).raise_for_status()
        for window in (1, 2):
            c.post(f"{API}/windows/{window}/call", headers=staff[window]).raise_for_status()
            c.post(f"{API}/windows/{window}/finish", headers=staff[window]).raise_for_status()
        hall = c.get(f"{API}/hall").json()
        day = hall["now"][:10]
        boss = _token(c, "huangjianguo")
        rows = c.get(f"{API}/reports/hall", params={"from": day, "to": day, "by": "service"},
                     headers=boss).json()
    return {"day": day, "rows": {r["service"]: r for r in rows}}


def test_supervisor_sees_the_day(browser, demo_hall, activity):
    base = demo_hall.url
    page = log_in(browser, base, "huangjianguo", None, "/reports", DESK)
    expect(page.locator("body")).to_have_attribute("data-state", "ready")
    assert page.input_value("#pick-day") == activity["day"]

    api_rows = activity["rows"]
    assert api_rows["A"]["issued"] >= 4 and api_rows["A"]["served"] >= 1
    row = page.locator("#services tbody tr[data-service='A']")
    expect(row.locator("td.issued")).to_have_text(str(api_rows["A"]["issued"]))
    expect(row.locator("td.served")).to_have_text(str(api_rows["A"]["served"]))
    expect(page.locator("#services thead")).to_contain_text("取号")

    # the chart: an issued bar and a served bar for every service row
    services = page.locator("#services tbody tr[data-service]")
    n = services.count()
    assert n == len(api_rows)
    for series in ("issued", "served"):
        bars = page.locator(f"#chart-tickets svg rect.bar[data-series='{series}']")
        expect(bars).to_have_count(n)
        assert sorted(bars.evaluate_all("els => els.map(e => e.dataset.key)")) == sorted(api_rows)
    expect(page.locator("#chart-tickets svg")).to_contain_text("社保医保")
    expect(page.locator("#chart-waits svg")).to_be_visible()

    # the tiles add up the rows
    issued = sum(r["issued"] for r in api_rows.values())
    expect(page.locator("[data-tile='issued'] .value")).to_contain_text(str(issued))

    # the personnel records are there for a supervisor; the two logged-in staff are present
    expect(page.locator("#sec-overtime")).to_be_visible()
    expect(page.locator("#overtime")).to_contain_text("本期没有延时服务")
    expect(page.locator("#attendance tr[data-staff='chenjing'][data-session='morning']")).to_contain_text("陈静")
    expect(page.locator("#attendance tr[data-status='absent']").first).to_have_class("absent")

    # the CSV download, authorised by the page's cookie
    link = page.locator("#sec-services .downloads a[data-format='csv']")
    assert f"from={activity['day']}" in link.get_attribute("href")
    with page.expect_download() as got:
        link.click()
    download = got.value
    assert download.suggested_filename.endswith(".csv")
    text = open(download.path(), encoding="utf-8-sig").read()
    assert text.splitlines()[0].startswith("业务,业务名称,取号,办结")
    assert any(line.startswith(f"A,社保医保,{api_rows['A']['issued']},{api_rows['A']['served']},")
               for line in text.splitlines())
    xlsx = page.request.get(base + page.get_attribute("#sec-attendance .downloads a[data-format='xlsx']", "href"))
    assert xlsx.ok and xlsx.body()[:2] == b"PK"

    screenshot(page, "reports", "#sec-services h2")

    # English, then the month report with its daily chart
    page.click("button.lang")
    expect(page.locator("#services thead")).to_contain_text("Tickets")
    page.click("button.lang")
    page.click("#mode-month")
    expect(page.locator("#sec-days")).to_be_visible()
    expect(page.locator("body")).to_have_attribute("data-state", "ready")
    expect(page.locator(f"#days tr[data-day='{activity['day']}']")).to_be_visible()
    assert page.locator("#chart-days svg rect.bar[data-series='issued']").count() >= 28
    page.screenshot(path=str(SHOTS / "reports-month.png"), full_page=True)
    assert page.errors == []


def test_callback_officer_sees_no_personnel_records(browser, demo_hall, activity):
    page = log_in(browser, demo_hall.url, "yangfan", None, "/reports", DESK)
    expect(page.locator("body")).to_have_attribute("data-state", "ready")
    expect(page.locator("#services tbody tr[data-service='A']")).to_be_visible()
    expect(page.locator("#sec-overtime")).to_be_hidden()
    expect(page.locator("#sec-attendance")).to_be_hidden()
    expect(page.locator("#sec-staff")).to_be_visible()
    assert page.errors == []


def test_staff_may_not_open_reports(browser, demo_hall, activity):
    page = log_in(browser, demo_hall.url, "chenjing", 1, "/reports", DESK)
    expect(page.locator("h1")).to_contain_text("无权访问")
    assert page.errors == []


def test_supervisor_reads_the_monthly_roll_up_and_downloads_it(browser, demo_hall, activity):
    """The month report carries the roll-up (月度考核汇总): a row per staff member as the API
    gives it, and an Excel file with Chinese headers; the day report and the callback
    officer do not show it."""
    from io import BytesIO

    from openpyxl import load_workbook

    base = demo_hall.url
    month = activity["day"][:7]
    with httpx.Client(base_url=base, timeout=10) as c:
        api_rows = {r["staff"]: r for r in c.get(f"{API}/reports/rollup", params={"month": month},
                                                  headers=_token(c, "huangjianguo")).json()}
    page = log_in(browser, base, "huangjianguo", None, "/reports", DESK)
    expect(page.locator("body")).to_have_attribute("data-state", "ready")
    expect(page.locator("#sec-rollup")).to_be_hidden()  # a day is no month
    page.click("#mode-month")
    expect(page.locator("#sec-rollup")).to_be_visible()
    row = page.locator("#rollup tr[data-staff='chenjing']")
    expect(row).to_contain_text("陈静")
    expect(row.locator("td.late")).to_have_text(str(api_rows["chenjing"]["late"]))
    assert page.locator("#rollup tbody tr[data-staff]").count() == len(api_rows)
    href = page.get_attribute("#sec-rollup .downloads a[data-format='xlsx']", "href")
    assert href.endswith(f"rollup.xlsx?month={month}")
    got = page.request.get(base + href)
    assert got.ok
    header = next(load_workbook(BytesIO(got.body())).active.iter_rows(values_only=True))
    assert header[:3] == ("月份", "工号", "姓名") and "合计扣分" in header
    assert page.errors == []

    officer = log_in(browser, base, "yangfan", None, "/reports?month=" + month, DESK)
    expect(officer.locator("body")).to_have_attribute("data-state", "ready")
    expect(officer.locator("#sec-rollup")).to_be_hidden()
    assert officer.errors == []
