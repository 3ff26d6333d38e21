"""The district page (区县大厅总览) in Chromium at the district office's screen (1920x1080): every
hall a tile (link, lag, queue, windows open and paused, device faults, today's satisfaction),
and a click opens the hall's floor as the centre holds it.

The halls' events here are written through the consumer's own write path (center.store.ingest)
rather than shipped: the page reads only what the store holds, the shipping is tested in
test_center.py, and a printer out of paper is a state the hall-day simulator does not reach."""

from __future__ import annotations

import re

import pytest

from center import store
from tests.browser import TV, open_page, screenshot
from tests.district import centre_api
from vocabulary.district import Batch, Link

DAY = "2026-11-23"


def at(minute: int) -> str:
    return f"{DAY}T09:{minute:02d}:00+08:00"


def events(hall: str) -> list[dict]:
    """A morning so far: three windows open, window 2 paused, five tickets, one at window 1,
    graded; a ticket printer out of paper."""
    out = [("day_started", None, None, {"day": DAY})]
    out += [("window_opened", w, None, {"staff": f"s{w}", "post": "A"}) for w in (1, 2, 3)]
    out += [("ticket_issued", None, f"{hall}-A00{i}", {"label": f"A00{i}", "service": "A"}) for i in range(1, 6)]
    out += [("ticket_issued", None, f"{hall}-B001", {"label": "B001", "service": "B"}),
            ("ticket_called", 1, f"{hall}-A001", {"label": "A001", "service": "A", "waited_seconds": 60}),
            ("ticket_finished", 1, f"{hall}-A001", {"label": "A001", "service": "A", "staff": "s1", "auto": False,
                                                     "service_seconds": 300}),
            ("ticket_evaluated", 1, f"{hall}-A001", {"grade": "满意", "channel": "pad", "real_name": False,
                                                      "staff": "s1", "service": "A", "tags": [], "bad": False}),
            ("ticket_called", 1, f"{hall}-A002", {"label": "A002", "service": "A", "waited_seconds": 90}),
            ("window_paused", 2, None, {"staff": "s2", "reason": "去后台复印", "minutes": 10}),
            ("device_health", None, None, {"device": "票号打印机", "state": "fault", "detail": "缺纸"})]
    return [{"id": i, "kind": k, "at": at(i), "window": w, "ticket": t, "data": d}
            for i, (k, w, t, d) in enumerate(out, 1)]


@pytest.fixture
def district(postgres):
    conn = store.connect(postgres.dsn)
    store.migrate(conn)
    for hall, link in (("城关镇便民服务中心", Link("online", at(30), 16)),
                       ("龙河镇便民服务中心", Link("offline", at(30), 36)),
                       ("区政务服务中心", None)):
        log = events(hall)
        store.ingest(conn, [Batch(hall, 0, len(log), tuple(log))], {hall: link} if link else {})
    conn.close()
    with centre_api(postgres.dsn) as api:
        yield api


def test_every_hall_is_a_tile_and_a_click_opens_its_floor(district, browser):
    base = str(district.base_url).rstrip("/")
    outside: list[str] = []
    page = open_page(browser, "about:blank", TV)
    page.on("request", lambda r: outside.append(r.url) if not r.url.startswith(base) else None)
    page.goto(base + "/")
    page.wait_for_selector(".tile")
    tiles = page.locator(".tile")
    assert tiles.count() == 3
    assert "大厅 3 个，在线 1 个；排队 12 人；设备故障 3 处" in page.inner_text("#sum")

    town = page.locator(".tile[data-hall='城关镇便民服务中心']")
    text = town.inner_text()
    assert "在线" in text and "已同步至第 16 条事件" in text
    figures = dict(re.findall(r"(排队|开放窗口|暂停窗口|设备故障|今日评价|满意率)\n(\S+)", text))
    assert figures == {"排队": "4", "开放窗口": "2", "暂停窗口": "1", "设备故障": "1", "今日评价": "1",
                       "满意率": "100.0%"}
    behind = page.inner_text(".tile[data-hall='龙河镇便民服务中心']")
    assert "离线" in behind and "落后 20 条事件" in behind
    assert "尚未收到心跳" in page.inner_text(".tile[data-hall='区政务服务中心']")
    # every tile on the one screen, nothing cut off
    assert page.evaluate("document.documentElement.scrollWidth") <= TV["width"]
    screenshot(page, "district-halls", "header h1")

    town.click()
    page.wait_for_selector("#floor.shown .window")
    assert page.inner_text("#floor-title") == f"城关镇便民服务中心（{DAY}）"
    windows = {w.get_attribute("data-window"): w.inner_text() for w in page.locator(".window").all()}
    assert windows.keys() == {"1", "2", "3"}
    assert "办理中" in windows["1"] and "正在办理 A002" in windows["1"]
    assert "暂停" in windows["2"] and "正在办理" not in windows["2"]
    assert "A\t3" in page.inner_text("#queues") and "B\t1" in page.inner_text("#queues")
    assert "票号打印机\t故障\t缺纸" in page.inner_text("#faults")
    screenshot(page, "district-floor", "#floor-title")

    page.click("#back")
    page.wait_for_selector("#halls .tile")
    assert not outside, f"the page fetched from elsewhere: {outside}"
    assert not page.errors


def test_an_unknown_hall_and_a_centre_without_its_database_say_so(district, browser, postgres):
    assert district.get("/api/v1/halls/nowhere/floor").json()["error"] == "unknown_hall"
    base = str(district.base_url).rstrip("/")
    page = open_page(browser, base + "/#hall=nowhere", TV)
    page.wait_for_selector("#error.shown")
    assert "暂时读不到中心的数据" in page.inner_text("#error") and "nowhere" in page.inner_text("#error")
    postgres.stop()
    page.goto(base + "/")
    page.wait_for_selector("#error.shown")
    assert "中心数据库暂不可用" in page.inner_text("#error")
    assert not page.errors
