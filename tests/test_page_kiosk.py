"""The kiosk page in Chromium against `hallctl run --simulate` (issue 13, items 1-3): whose name
a ticket carries, one ticket per tap, and a phone for the callback of a bad review.

The hall here forgets an idle identity after 4 s (`kiosk_identity_seconds`), so the idle
story runs in seconds; each test takes tickets of its own services.
"""

from __future__ import annotations

import time
from typing import Iterator

import httpx
import pytest
from playwright.sync_api import expect

from tests.browser import KIOSK, open_page, screenshot
from tests.server import HallProcess, wait_for

IDLE = 4
TYPED = "11010519491231002X"  # born 1949: elderly priority if the ticket is in this name


@pytest.fixture(scope="module")
def kiosk_hall(tmp_path_factory) -> Iterator[HallProcess]:
    hall = HallProcess(tmp_path_factory.mktemp("kiosk-page"), "--simulate",
                       rules={"kiosk_identity_seconds": IDLE})
    hall.start()
    try:
        yield hall
    finally:
        hall.stop()


def sim(hall: HallProcess, path: str, body: dict | None = None):
    r = httpx.post(f"{hall.url}/sim/{path}", json=body, timeout=5)
    r.raise_for_status()
    return r.json()


def slips(hall: HallProcess) -> list[str]:
    """The text of every slip the simulated printer cut, oldest first."""
    printed = httpx.get(f"{hall.url}/sim/printers/kiosk-printer/tickets?last=100", timeout=5).json()
    return [str(p) for p in printed]


def ticket(hall: HallProcess, number: str) -> dict:
    day = httpx.get(f"{hall.url}/api/v1/hall", timeout=5).json()["now"][:10].replace("-", "")
    return httpx.get(f"{hall.url}/api/v1/tickets/{day}-{number}", timeout=5).json()


def type_id(page, number: str) -> None:
    page.click("#type-id")
    for key in number:
        page.click(f"#keypad button[data-key='{key}']")
    page.click("#id-ok")


def test_a_typed_number_shows_whose_ticket_it_is_and_lapses_before_the_next_citizen(browser, kiosk_hall):
    page = open_page(browser, f"{kiosk_hall.url}/kiosk", KIOSK)
    type_id(page, TYPED)
    expect(page.locator("#identity-who")).to_contain_text("1101**********002X")
    expect(page.locator("#clear-identity")).to_be_visible()
    screenshot(page, "kiosk-identity", "#clear-identity")
    # the citizen walks away; the next one comes after the idle period and taps a service
    expect(page.locator("#identity-who")).to_have_count(0, timeout=(IDLE + 3) * 1000)
    expect(page.locator("#clear-identity")).to_be_hidden()
    page.click("button.service[data-service='E']")
    expect(page.locator("#ticket-number")).to_have_text("E001")
    t = ticket(kiosk_hall, "E001")
    assert (t["real_name"], t["priority"]) == (False, None)
    assert page.errors == []


def test_clear_wipes_a_card_and_a_lifted_card_is_gone_at_once(browser, kiosk_hall):
    page = open_page(browser, f"{kiosk_hall.url}/kiosk", KIOSK)
    sim(kiosk_hall, "id-readers/kiosk-id-reader/place", {"card": "elderly"})
    expect(page.locator("#identity-who")).to_contain_text("张**")
    page.click("#clear-identity")  # not me: the next citizen wipes it
    expect(page.locator("#identity-who")).to_have_count(0)
    page.click("button.service[data-service='F']")
    expect(page.locator("#ticket-number")).to_have_text("F001")
    assert ticket(kiosk_hall, "F001")["real_name"] is False
    page.click("#ticket-close")

    sim(kiosk_hall, "id-readers/kiosk-id-reader/remove")
    time.sleep(0.8)  # the reader is seen empty, so the next placing is a new card
    sim(kiosk_hall, "id-readers/kiosk-id-reader/place", {"card": "elderly"})
    expect(page.locator("#identity-who")).to_contain_text("张**")
    sim(kiosk_hall, "id-readers/kiosk-id-reader/remove")  # taken away, well within the idle period
    expect(page.locator("#identity-who")).to_have_count(0, timeout=2000)
    page.click("button.service[data-service='F']")
    expect(page.locator("#ticket-number")).to_have_text("F002")
    assert ticket(kiosk_hall, "F002")["real_name"] is False
    assert page.errors == []


def test_a_double_tap_gives_one_ticket(browser, kiosk_hall):
    page = open_page(browser, f"{kiosk_hall.url}/kiosk", KIOSK)
    before = len(slips(kiosk_hall))
    button = page.locator("button.service[data-service='G']")
    expect(button).to_be_enabled()
    # two taps in the same instant, before any answer can come back
    button.evaluate("b => { b.click(); b.click(); }")
    expect(page.locator("#ticket-number")).to_have_text("G001")
    expect(page.locator("button.service[data-service='G']")).to_be_enabled()
    time.sleep(0.5)
    assert [s for s in slips(kiosk_hall)[before:] if "G00" in s] != []
    assert not any("G002" in s for s in slips(kiosk_hall))
    waiting = {q["service"]: q["waiting"] for q in httpx.get(f"{kiosk_hall.url}/api/v1/services",
                                                               timeout=5).json()}
    assert waiting["G"] == 1
    assert page.errors == []


def test_an_answer_lost_on_the_network_is_asked_again_and_gives_the_same_ticket(browser, kiosk_hall):
    """The controller issued and printed, but the answer never reached the screen: the page
    asks again with the same key and shows that ticket; no second ticket, no second slip."""
    page = open_page(browser, f"{kiosk_hall.url}/kiosk", KIOSK)
    keys: list[str] = []

    def lose_the_first_answer(route):
        keys.append(route.request.headers.get("idempotency-key"))
        if len(keys) == 1:
            route.fetch()  # the request reaches the controller ...
            route.abort("connectionreset")  # ... and its answer is lost
        else:
            route.continue_()

    page.route("**/api/v1/kiosks/*/tickets", lose_the_first_answer)
    page.click("button.service[data-service='H']")
    expect(page.locator("#ticket-number")).to_have_text("H001")
    assert len(keys) == 2 and keys[0] == keys[1] and keys[0].startswith("tap-")
    assert sum("H001" in s for s in slips(kiosk_hall)) == 1
    assert not any("H002" in s for s in slips(kiosk_hall))
    page.unroute("**/api/v1/kiosks/*/tickets")
    # the next tap is a new request: a new key, a new ticket
    page.click("#ticket-close")
    page.click("button.service[data-service='H']")
    expect(page.locator("#ticket-number")).to_have_text("H002")
    assert page.errors == []
