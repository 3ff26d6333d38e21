"""Real-browser fixtures: Playwright for Python driving Debian's Chromium (no browser download).

`make test` installs the Debian packages chromium and fonts-noto-cjk. Screenshots go
to var/screenshots/, one per page at its target size; each is checked to have been
drawn with a CJK font (Chromium reports the platform fonts it used for an element's
glyphs), so a page that shows boxes instead of Chinese fails.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Iterator

import pytest
from playwright.sync_api import Browser, Page, sync_playwright
from playwright.sync_api import Error as PlaywrightError

from tests.server import REPO, HallProcess

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]
SHOTS = REPO / "var" / "screenshots"

# The pages' target sizes: a hall TV, a kiosk's touch screen, a counter PC, a desk.
TV = {"width": 1920, "height": 1080}
KIOSK = {"width": 1920, "height": 1080}
COUNTER = {"width": 1366, "height": 768}
DESK = {"width": 1600, "height": 900}


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs the Debian package chromium "
                    "(or: sudo apt-get install chromium fonts-noto-cjk)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="module")
def demo_hall(tmp_path_factory) -> Iterator[HallProcess]:
    """`hallctl run --simulate` on the demo hall, shared by a module's page tests."""
    hall = HallProcess(tmp_path_factory.mktemp("pages"), "--simulate")
    hall.start()
    try:
        yield hall
    finally:
        hall.stop()


_open_contexts: list = []


@pytest.fixture(autouse=True)
def _close_pages() -> Iterator[None]:
    """Close the test's browser contexts, and with them their event streams."""
    yield
    while _open_contexts:
        try:
            _open_contexts.pop().close()
        except Exception:
            pass  # the browser went first


class PageErrors(list):
    """Uncaught script errors of a page; a test ends by asserting there were none."""


def open_page(browser: Browser, url: str, viewport: dict[str, int]) -> Page:
    """A page in a fresh browser context (its own cookies: one person at one screen)."""
    context = browser.new_context(viewport=viewport, locale="zh-CN", timezone_id="Asia/Shanghai")
    _open_contexts.append(context)
    page = context.new_page()
    page.errors = PageErrors()
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    page.goto(url)
    return page


def log_in(browser: Browser, base: str, staff_id: str, window: int | None, then: str,
           viewport: dict[str, int], pin: str = "1234") -> Page:
    """Log in through the login page and land on `then`."""
    page = open_page(browser, f"{base}/login?next={then}", viewport)
    page.fill("#staff_id", staff_id)
    page.fill("#pin", pin)
    if window is not None:
        page.wait_for_selector(f"#window option[value='{window}']", state="attached")
        page.select_option("#window", str(window))
    page.click("#submit")
    page.wait_for_url(f"{base}{then}*")
    return page


def cjk_fonts(page: Page, selector: str) -> dict[str, int]:
    """The fonts Chromium drew `selector`'s text with, and how many glyphs each."""
    cdp = page.context.new_cdp_session(page)
    try:
        cdp.send("DOM.enable")
        cdp.send("CSS.enable")
        for attempt in range(5):
            root = cdp.send("DOM.getDocument", {"depth": -1})["root"]["nodeId"]
            node = cdp.send("DOM.querySelector", {"nodeId": root, "selector": selector})["nodeId"]
            assert node, f"no element {selector}"
            try:
                fonts = cdp.send("CSS.getPlatformFontsForNode", {"nodeId": node})["fonts"]
                break
            except PlaywrightError as e:
                # the page redrew the element between the two calls (a live update): look again
                if "Could not find node" not in str(e) or attempt == 4:
                    raise
    finally:
        cdp.detach()
    return {f["familyName"]: f["glyphCount"] for f in fonts}


def screenshot(page: Page, name: str, chinese: str) -> Path:
    """Save the page as var/screenshots/NAME.png and check that `chinese` (a selector whose
    text is Chinese) was drawn with a CJK font."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    text = page.inner_text(chinese)
    assert any("\u4e00" <= ch <= "\u9fff" for ch in text), f"{chinese} shows no Chinese: {text!r}"
    page.evaluate("document.fonts.ready.then(() => true)")
    # Chromium reports the fonts of the last layout: on a loaded machine the first look
    # may come before it, so look again for a moment before calling it missing
    deadline = time.monotonic() + 3
    while True:
        fonts = cjk_fonts(page, chinese)
        if any("CJK" in family for family in fonts) or time.monotonic() > deadline:
            break
        page.wait_for_timeout(100)
    assert any("CJK" in family for family in fonts), \
        f"{chinese} ({text!r}) was drawn without a CJK font: {fonts}; install fonts-noto-cjk"
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path))
    assert path.stat().st_size > 10_000, f"{path} is suspiciously small"
    return path
