"""The hall display read from ten metres away (issue 17 item 4), in Chromium at the TV's
1920x1080 on the demo hall's twenty windows: names and details in 28 px type or more, a
paused window's return time whole on a line of its own, long names wrapped rather than cut,
no language button, every tile on the screen, and a big panel that never sends a citizen
to a window that has paused."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import httpx
import pytest
from playwright.sync_api import expect

from tests.browser import TV, open_page, screenshot

HALL_TZ = ZoneInfo("Asia/Shanghai")  # config/demo-hall.toml's timezone
LONG_NAME_WINDOW = 4  # 不动产一窗办理 1: the demo hall's longest window name
SHORT_NAME_WINDOW = 16  # 办不成事


def api_login(url: str, staff_id: str, window: int) -> dict[str, str]:
    r = httpx.post(f"{url}/api/v1/auth/login",
                   json={"staff_id": staff_id, "pin": "1234", "window": window}, timeout=5)
    r.raise_for_status()
    return {"Authorization": f"Bearer {r.json()['token']}"}


def post(url: str, path: str, headers: dict[str, str], body: dict | None = None) -> dict:
    r = httpx.post(f"{url}{path}", json=body, headers=headers, timeout=5)
    r.raise_for_status()
    return r.json() if r.content else {}


def take_and_call(url: str, service: str, window: int, headers: dict[str, str]) -> str:
    post(url, "/api/v1/tickets", headers, {"service": service})
    return post(url, f"/api/v1/windows/{window}/call", headers)["ticket"]["number"]


def finish_and_pause(url: str, window: int, headers: dict[str, str], reason: str = "临时离岗",
                     minutes: int = 10) -> None:
    post(url, f"/api/v1/windows/{window}/finish", headers)
    post(url, f"/api/v1/windows/{window}/pause", headers, {"reason": reason, "minutes": minutes})


def expected_return(url: str, window: int) -> str:
    """The time the hall expects `window` back from its pause, as the hall's clock reads."""
    hall = httpx.get(f"{url}/api/v1/hall", timeout=5).json()
    pause = next(w for w in hall["windows"] if w["number"] == window)["pause"]
    back = dt.datetime.fromisoformat(pause["since"]) + dt.timedelta(minutes=pause["minutes"])
    return back.astimezone(HALL_TZ).strftime("%H:%M")


def box(page, selector: str) -> dict:
    """The element's box, scroll sizes and the CSS that would cut its text."""
    return page.locator(selector).evaluate("""(el) => {
        const r = el.getBoundingClientRect(), css = getComputedStyle(el);
        return {top: r.top, bottom: r.bottom, left: r.left, right: r.right, height: r.height,
                fontSize: parseFloat(css.fontSize), lineHeight: parseFloat(css.lineHeight),
                textOverflow: css.textOverflow, whiteSpace: css.whiteSpace,
                scrollWidth: el.scrollWidth, clientWidth: el.clientWidth,
                scrollHeight: el.scrollHeight, clientHeight: el.clientHeight,
                text: el.textContent};
    }""")


@pytest.fixture(scope="module")
def busy_hall(demo_hall) -> str:
    """The demo hall mid-morning: window 1 covered by its B post and serving, window 2
    serving, window 4 (the longest name) paused for ten minutes, the rest closed or free."""
    url = demo_hall.url
    cover = api_login(url, "wangfang", 1)  # 王芳, B post of window 1
    take_and_call(url, "A", 1, cover)
    take_and_call(url, "A", 2, api_login(url, "liuyang", 2))
    long_name = api_login(url, "liqiang", LONG_NAME_WINDOW)
    take_and_call(url, "B", LONG_NAME_WINDOW, long_name)
    finish_and_pause(url, LONG_NAME_WINDOW, long_name)
    return url


@pytest.fixture
def busy_display(browser, busy_hall):
    """The busy hall's display on its TV, drawn."""
    display = open_page(browser, f"{busy_hall}/display", TV)
    expect(display.locator(f".win[data-window='{LONG_NAME_WINDOW}']")).to_have_attribute(
        "data-state", "paused")
    expect(display.locator(".win[data-window='1'] .detail.cover")).to_have_text("王芳 顶岗")
    display.evaluate("document.fonts.ready.then(() => true)")
    return display


def test_window_names_and_details_are_28_px_or_more(busy_display):
    sizes = busy_display.evaluate("""() => [...document.querySelectorAll('.win .name, .win .detail')]
        .map((el) => [el.className, el.textContent, parseFloat(getComputedStyle(el).fontSize)])""")
    assert {cls for cls, _, _ in sizes} >= {"name", "detail back", "detail reason", "detail cover"}
    small = [(cls, text, px) for cls, text, px in sizes if px < 28]
    assert not small, f"text under 28 px on the display: {small}"


def test_a_paused_window_shows_its_return_time_whole_on_its_own_line(busy_display, busy_hall):
    tile = f".win[data-window='{LONG_NAME_WINDOW}']"
    back, state, reason, whole = (box(busy_display, f"{tile} {part}")
                                  for part in (".detail.back", ".state", ".detail.reason", ""))
    assert expected_return(busy_hall, LONG_NAME_WINDOW) in back["text"], back["text"]
    assert back["scrollWidth"] <= back["clientWidth"], back
    # one line of its own: below the state, above the reason, one line high, inside the tile
    assert state["bottom"] <= back["top"] and back["bottom"] <= reason["top"], (state, back, reason)
    assert back["height"] < 1.5 * back["lineHeight"], back
    assert back["bottom"] <= whole["bottom"] and whole["scrollHeight"] <= whole["clientHeight"], whole


def test_a_long_window_name_wraps_and_is_never_cut(busy_display):
    long = box(busy_display, f".win[data-window='{LONG_NAME_WINDOW}'] .name")
    short = box(busy_display, f".win[data-window='{SHORT_NAME_WINDOW}'] .name")
    assert long["text"] == "不动产一窗办理 1"
    assert long["height"] > 1.5 * short["height"], (long, short)  # two lines, not one cut short
    assert long["textOverflow"] != "ellipsis" and long["whiteSpace"] != "nowrap", long
    assert long["scrollWidth"] <= long["clientWidth"], long


def test_the_display_has_no_language_button_and_stays_chinese(browser, busy_hall, busy_display):
    lang = busy_display.locator("#lang, button.lang")
    assert lang.count() == 0 or not lang.first.is_visible()
    # a browser that chose English on another page still shows the hall's Chinese here
    display = open_page(browser, f"{busy_hall}/login", TV)
    display.evaluate("localStorage.setItem('hall.lang', 'en')")
    display.goto(f"{busy_hall}/display")
    expect(display.locator(f".win[data-window='{LONG_NAME_WINDOW}'] .state")).to_have_text("暂停服务")
    expect(display.locator("#calls-head")).to_have_text("号码")
    assert display.locator("button.lang").count() == 0


def test_every_window_tile_is_on_the_screen_whole(busy_display, busy_hall):
    windows = httpx.get(f"{busy_hall}/api/v1/hall", timeout=5).json()["windows"]
    tiles = busy_display.locator(".win")
    assert tiles.count() == len(windows) == 20
    for i in range(tiles.count()):
        tile = box(busy_display, f".win >> nth={i}")
        assert 0 <= tile["left"] and tile["right"] <= TV["width"], tile
        assert 0 <= tile["top"] and tile["bottom"] <= TV["height"], tile
        assert tile["scrollHeight"] <= tile["clientHeight"], f"tile {i + 1} cuts its text: {tile}"
    page = busy_display.evaluate("[document.scrollingElement.scrollHeight, innerHeight]")
    assert page[0] <= page[1], "the display scrolls"
    screenshot(busy_display, "display-readable", "#calls-head")
    assert busy_display.errors == []


def test_the_big_panel_leaves_a_window_once_it_pauses(browser, busy_hall, busy_display):
    """Window 7 calls, then window 8 calls: the panel shows window 8's call. Window 8 pauses:
    the panel goes back to window 7's call, still being served. Window 7 pauses: the panel
    shows the latest call still being served, window 2's (the busy hall's)."""
    url = busy_hall
    display = open_page(browser, f"{url}/display", TV)
    panel_number, panel_window = display.locator("#newest-number"), display.locator("#newest-window")
    seven, eight = api_login(url, "wujuan", 7), api_login(url, "zhengwei", 8)
    first = take_and_call(url, "C", 7, seven)
    second = take_and_call(url, "D", 8, eight)
    expect(panel_number).to_have_text(second, timeout=2000)
    expect(panel_window).to_have_text("8")

    finish_and_pause(url, 8, eight)
    expect(display.locator(".win[data-window='8']")).to_have_attribute("data-state", "paused")
    expect(panel_number).to_have_text(first, timeout=2000)
    expect(panel_window).to_have_text("7")
    # the call just left is still listed below, for whoever missed it
    expect(display.locator("#calls")).to_contain_text(second)

    finish_and_pause(url, 7, seven)
    window_2 = next(w for w in httpx.get(f"{url}/api/v1/hall", timeout=5).json()["windows"]
                    if w["number"] == 2)
    expect(panel_number).to_have_text(window_2["current"]["number"], timeout=2000)
    expect(panel_window).to_have_text("2")
    screenshot(display, "display-panel-after-pause", "#calls-head")
    assert display.errors == []


def test_the_big_panel_shows_no_call_when_no_window_is_serving(browser, busy_hall, busy_display):
    url = busy_hall
    post(url, "/api/v1/windows/1/finish", api_login(url, "wangfang", 1))
    post(url, "/api/v1/windows/2/finish", api_login(url, "liuyang", 2))
    expect(busy_display.locator("#newest")).to_have_class("newest empty", timeout=2000)
    expect(busy_display.locator("#newest-call")).to_have_text("—")
    expect(busy_display.locator("#newest-number")).to_have_count(0)
