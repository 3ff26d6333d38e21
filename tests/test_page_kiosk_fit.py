"""The kiosk fits its screen (issue 17 item 3), in Chromium against `hallctl run --simulate`.

At the kiosk's three screens (1080x1920 portrait, 1280x1024, 1920x1080) every service button
is on the screen without scrolling, for the demo hall's 11 services and for a big hall's 22;
no name breaks inside a word (驾驶证与机动车业/务); the language goes back to Chinese after
each ticket and after the idle period; 帮办代办 calls the guidance desk and the supervisor
sees the call (from the server, so also on a page opened afterwards); an ID card the reader
cannot read says so on the screen. Screenshots go to var/screenshots/kiosk-fit-*.png.
"""

from __future__ import annotations

from typing import Iterator

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.browser import DESK, open_page, log_in, screenshot
from tests.server import HallProcess

IDLE = 4  # kiosk_identity_seconds here: the idle stories run in seconds
SCREENS = {"portrait": {"width": 1080, "height": 1920}, "square": {"width": 1280, "height": 1024},
           "landscape": {"width": 1920, "height": 1080}}

# Where each name may break: between these words (a line is whole words), nowhere else.
WORDS = {
    "社保医保": ["社保", "医保"], "不动产登记": ["不动产", "登记"], "户籍办理": ["户籍", "办理"],
    "出入境证件": ["出入境", "证件"], "市场主体登记": ["市场主体", "登记"],
    "住房公积金": ["住房", "公积金"], "税费办理": ["税费", "办理"],
    "驾驶证与机动车业务": ["驾驶证", "与", "机动车", "业务"],
    "办不成事·投诉咨询": ["办不成事·", "投诉", "咨询"], "帮办代办": ["帮办", "代办"],
    "跨域通办": ["跨域", "通办"],
    # the big hall's further services
    "机动车业务": ["机动车", "业务"], "民政婚姻": ["民政", "婚姻"], "残联服务": ["残联", "服务"],
    "退役军人服务": ["退役军人", "服务"], "教育服务": ["教育", "服务"], "卫生健康": ["卫生", "健康"],
    "水电气过户": ["水电气", "过户"], "企业开办一件事": ["企业开办", "一件事"],
    "人才服务": ["人才", "服务"], "企业专区": ["企业", "专区"], "医疗保险": ["医疗", "保险"],
}
BIG_HALL_SERVICES = {"M": "机动车业务", "N": "民政婚姻", "P": "残联服务", "Q": "退役军人服务",
                     "R": "教育服务", "S": "卫生健康", "T": "水电气过户", "U": "企业开办一件事",
                     "V": "人才服务", "W": "企业专区", "X": "医疗保险"}


def big_hall_config() -> str:
    """The demo hall with 11 services more (22, as a city hall has) on a window of their own."""
    services = "".join(f'\n[[services]]\nprefix = "{p}"\nname = "{n}"\nkind = "综合"\nmean_minutes = 10\n'
                       for p, n in BIG_HALL_SERVICES.items())
    window = ('\n[[windows]]\nnumber = 21\nname = "综合受理 21"\nkind = "综合受理"\nservices = ['
              + ", ".join(f'"{p}"' for p in BIG_HALL_SERVICES) + "]\n")
    # every window has its place on the supervisor's floor (the demo hall has a [layout])
    zone = '\n[[layout.zones]]\nname = "城市综合区"\nrows = [[21]]\n'
    return services + window + zone


@pytest.fixture(scope="module")
def kiosk_hall(tmp_path_factory) -> Iterator[HallProcess]:
    hall = HallProcess(tmp_path_factory.mktemp("kiosk-fit"), "--simulate",
                       rules={"kiosk_identity_seconds": IDLE})
    hall.start()
    try:
        yield hall
    finally:
        hall.stop()


@pytest.fixture(scope="module")
def big_hall(tmp_path_factory) -> Iterator[HallProcess]:
    hall = HallProcess(tmp_path_factory.mktemp("kiosk-fit-big"), "--simulate",
                       extra_config=big_hall_config())
    hall.start()
    try:
        yield hall
    finally:
        hall.stop()


# Every service button as drawn, read in one go (the page updates the buttons every second):
# its name, box, whether it shows all it holds, and its name's characters grouped by the line
# they were drawn on.
BUTTONS = """() => Array.from(document.querySelectorAll('button.service'), (button) => {
  const name = button.querySelector('.name');
  const lines = [];
  let top = null;
  const walk = document.createTreeWalker(name, NodeFilter.SHOW_TEXT);
  while (walk.nextNode()) {
    const text = walk.currentNode;
    for (let i = 0; i < text.length; i++) {
      const range = document.createRange();
      range.setStart(text, i); range.setEnd(text, i + 1);
      const box = range.getClientRects()[0];
      if (!box) continue;
      if (top === null || box.top - top > box.height / 2) { lines.push(''); top = box.top; }
      lines[lines.length - 1] += text.data[i];
    }
  }
  const r = button.getBoundingClientRect();
  return { name: name.textContent, lines, box: { x: r.x, y: r.y, width: r.width, height: r.height },
           whole: button.scrollHeight <= button.clientHeight + 1 };
})"""


def breaks_inside_a_word(name: str, lines: list[str]) -> list[str]:
    """The places the rendered `lines` of `name` break that are not between two of its words."""
    assert "".join(lines) == name, f"{name!r} drawn as {lines!r}"
    allowed, at = set(), 0
    for word in WORDS[name]:
        at += len(word)
        allowed.add(at)
    assert at == len(name), f"WORDS[{name!r}] does not spell it"
    bad, at = [], 0
    for line in lines[:-1]:
        at += len(line)
        if at not in allowed:
            bad.append(f"{name[:at]}/{name[at:]}")
    return bad


def check_fits(page: Page, expected: int, screen: dict[str, int]) -> list[str]:
    """Every service button inside the screen and no name broken inside a word; the names."""
    buttons = page.locator("button.service")
    expect(buttons).to_have_count(expected)
    page.evaluate("document.fonts.ready.then(() => true)")
    page.wait_for_timeout(200)  # the layout after the fonts
    assert page.evaluate("document.documentElement.scrollHeight") <= screen["height"]
    assert page.evaluate("document.documentElement.scrollWidth") <= screen["width"]
    names = []
    for b in page.evaluate(BUTTONS):
        name, box = b["name"], b["box"]
        assert box["x"] >= 0 and box["y"] >= 0, (name, box)
        assert box["x"] + box["width"] <= screen["width"] + 0.5, (name, box)
        assert box["y"] + box["height"] <= screen["height"] + 0.5, (name, box, screen)
        assert box["height"] >= 60, (name, box)  # a target a finger finds
        assert b["whole"], name  # the button shows all it holds: nothing of it cut off
        assert breaks_inside_a_word(name, b["lines"]) == [], (screen, b["lines"])
        names.append(name)
    assert len(names) == expected
    return names


@pytest.mark.parametrize("screen", SCREENS)
def test_every_demo_service_is_on_the_screen_and_no_name_breaks_inside_a_word(browser, kiosk_hall, screen):
    size = SCREENS[screen]
    page = open_page(browser, kiosk_hall.kiosk_page(), size)
    names = check_fits(page, 11, size)
    assert "办不成事·投诉咨询" in names and "驾驶证与机动车业务" in names
    expect(page.locator("#call-guidance")).to_be_in_viewport()
    screenshot(page, f"kiosk-fit-demo-{size['width']}x{size['height']}", "#call-guidance")
    assert page.errors == []


@pytest.mark.parametrize("screen", SCREENS)
def test_a_big_halls_22_services_fit_every_screen(browser, big_hall, screen):
    size = SCREENS[screen]
    page = open_page(browser, big_hall.kiosk_page(), size)
    names = check_fits(page, 22, size)
    assert set(BIG_HALL_SERVICES.values()) <= set(names)
    screenshot(page, f"kiosk-fit-big-{size['width']}x{size['height']}", "#call-guidance")
    assert page.errors == []


def test_a_card_on_the_reader_still_leaves_every_service_on_the_screen(browser, kiosk_hall):
    """The identity band grows when a card is read; the buttons shrink, none leaves the screen."""
    size = SCREENS["square"]
    page = open_page(browser, kiosk_hall.kiosk_page(), size)
    httpx.post(f"{kiosk_hall.url}/sim/id-readers/kiosk-id-reader/place", json={"card": "young"},
               timeout=5).raise_for_status()
    expect(page.locator("#identity-who")).to_contain_text("*")
    page.wait_for_timeout(300)
    check_fits(page, 11, size)
    screenshot(page, "kiosk-fit-card-1280x1024", "#identity-who")
    page.click("#clear-identity")
    httpx.post(f"{kiosk_hall.url}/sim/id-readers/kiosk-id-reader/remove", timeout=5)
    assert page.errors == []


def english(page: Page) -> None:
    page.click("#lang button")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.locator("#call-guidance")).to_contain_text("Help")


def test_the_language_returns_to_chinese_after_a_ticket_and_after_idle(browser, kiosk_hall):
    page = open_page(browser, kiosk_hall.kiosk_page(), SCREENS["portrait"])
    english(page)
    page.click("button.service[data-service='C']")
    expect(page.locator("#ticket-number")).to_have_text("C001")
    expect(page.locator("#ticket-close")).to_have_text("Close")  # the ticket in the citizen's language
    page.click("#ticket-close")
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    expect(page.locator("#call-guidance")).to_have_text("帮办代办 · 呼叫导办台")
    expect(page.locator("button.service[data-service='C'] .wait")).to_contain_text("等候")

    # a visitor switches to English and walks away without a ticket
    english(page)
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN", timeout=(IDLE + 3) * 1000)
    expect(page.locator("#card-text")).to_contain_text("实名取号")
    screenshot(page, "kiosk-fit-back-to-chinese", "#card-text")
    assert page.errors == []


def test_an_unreadable_card_says_so_on_the_kiosk(browser, kiosk_hall):
    page = open_page(browser, kiosk_hall.kiosk_page(), SCREENS["landscape"])
    httpx.post(f"{kiosk_hall.url}/sim/id-readers/kiosk-id-reader/place", json={"card": "unreadable"},
               timeout=5).raise_for_status()
    message = page.locator("#reader-message")
    expect(message).to_contain_text("读卡失败，请重新放置身份证")
    expect(page.locator("#card-band")).to_have_class("card-band reader-problem")
    screenshot(page, "kiosk-fit-unreadable-card", "#reader-message")
    httpx.post(f"{kiosk_hall.url}/sim/id-readers/kiosk-id-reader/remove", timeout=5)
    # the next citizen does not find the last one's trouble on the screen
    expect(message).to_have_count(0, timeout=(IDLE + 3) * 1000)
    expect(page.locator("#card-text")).to_contain_text("实名取号")
    assert page.errors == []


def supervisor_token(hall: HallProcess) -> dict[str, str]:
    r = httpx.post(f"{hall.url}/api/v1/auth/login",
                   json={"staff_id": "huangjianguo", "pin": "1234", "window": None}, timeout=5)
    r.raise_for_status()
    return {"Authorization": f"Bearer {r.json()['token']}"}


def test_help_at_the_kiosk_calls_the_guidance_desk_and_the_supervisor_sees_it(browser, kiosk_hall):
    boss = supervisor_token(kiosk_hall)
    calls = f"{kiosk_hall.url}/api/v1/guidance-calls"
    kiosk = open_page(browser, kiosk_hall.kiosk_page(), SCREENS["portrait"])
    kiosk.click("#call-guidance")
    expect(kiosk.locator("#guidance-called")).to_contain_text("已通知导办台")
    check_fits(kiosk, 11, SCREENS["portrait"])  # the note takes room; every button still shows
    screenshot(kiosk, "kiosk-fit-guidance-called", "#guidance-called")
    kiosk.click("#call-guidance")  # pressed again: the same call, not a second one
    standing = httpx.get(calls, headers=boss, timeout=5).json()
    assert [c["kiosk"] for c in standing] == ["entrance"]

    # the supervisor opens the page after the call: it is there, from the server
    desk = log_in(browser, kiosk_hall.url, "huangjianguo", None, "/supervisor", DESK)
    alert = desk.locator("#alerts li[data-alert='guidance'][data-kiosk='entrance']")
    expect(alert).to_contain_text("帮办代办")
    screenshot(desk, "kiosk-fit-supervisor-guidance", "#alerts li[data-alert='guidance']")
    alert.locator("button.guidance-answer").click()
    expect(alert).to_have_count(0)
    assert httpx.get(calls, headers=boss, timeout=5).json() == []
    # the next call reaches the open page over the live stream, before its 15 s reload
    kiosk.click("#call-guidance")
    expect(alert).to_have_count(1, timeout=5000)
    assert kiosk.errors == [] and desk.errors == []
