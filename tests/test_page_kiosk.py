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

from tests.browser import COUNTER, DESK, KIOSK, log_in, open_page, screenshot
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


# -- item 3: a phone for every callback ---------------------------------------------------------

def api_login(hall: HallProcess, staff_id: str) -> dict[str, str]:
    r = httpx.post(f"{hall.url}/api/v1/auth/login",
                   json={"staff_id": staff_id, "pin": "1234", "window": None}, timeout=5)
    r.raise_for_status()
    return {"Authorization": f"Bearer {r.json()['token']}"}


def grade_very_unsatisfied_at_window_2(hall: HallProcess, boss: dict[str, str]) -> None:
    """The citizen presses 非常不满意 on window 2's pad once it asks."""
    wait_for(lambda: httpx.get(f"{hall.url}/api/v1/windows/2", headers=boss, timeout=5)
             .json()["evaluating"], 10)
    sim(hall, "pads/2/grade", {"grade": 5})
    wait_for(lambda: not httpx.get(f"{hall.url}/api/v1/windows/2", headers=boss, timeout=5)
             .json()["evaluating"], 10)


def case_of(hall: HallProcess, officer: dict[str, str], ticket_id: str) -> dict:
    def found():
        cases = httpx.get(f"{hall.url}/api/v1/cases", headers=officer, timeout=5).json()
        return next((c for c in cases if c["ticket"] == ticket_id), None)
    return wait_for(found, 10)


def test_a_phone_typed_at_the_kiosk_or_the_counter_reaches_the_callback(browser, kiosk_hall):
    """A citizen leaves a phone at the kiosk; the counter corrects it; their bad review can be
    called back. The next citizen leaves none: their case is flagged 无联系方式 and the figures
    say one of two cases can be reached."""
    url = kiosk_hall.url
    boss, officer = api_login(kiosk_hall, "huangjianguo"), api_login(kiosk_hall, "yangfan")
    kiosk = open_page(browser, f"{url}/kiosk", KIOSK)
    sim(kiosk_hall, "id-readers/kiosk-id-reader/place", {"card": "young"})
    expect(kiosk.locator("#identity-who")).to_contain_text("*")
    kiosk.click("#add-phone")
    for key in "2800131234":  # a digit short of a mobile, and starting with 2
        kiosk.click(f"#phone-keypad button[data-key='{key}']")
    kiosk.click("#phone-ok")
    expect(kiosk.locator("#phone-error")).to_contain_text("手机号 11 位")
    for _ in "2800131234":
        kiosk.click("#phone-keypad button[data-key='⌫']")
    for key in "13800131234":
        kiosk.click(f"#phone-keypad button[data-key='{key}']")
    kiosk.click("#phone-ok")
    expect(kiosk.locator("#identity-phone")).to_contain_text("138****1234")
    screenshot(kiosk, "kiosk-phone", "#identity-phone")
    kiosk.click("button.service[data-service='A']")
    expect(kiosk.locator("#ticket-number")).to_have_text("A001")
    expect(kiosk.locator("#ticket-phone")).to_contain_text("138****1234")
    slip = next(s for s in reversed(slips(kiosk_hall)) if "A001" in s)
    assert "回访电话 138****1234" in slip and "13800131234" not in slip
    kiosk.click("#ticket-close")
    sim(kiosk_hall, "id-readers/kiosk-id-reader/remove")

    # the counter: the citizen gives a better number, staff correct it
    counter = log_in(browser, url, "liuyang", 2, "/counter", COUNTER)
    counter.click("#call")
    expect(counter.locator("#current-number")).to_have_text("A001")
    expect(counter.locator("#visit-phone-shown")).to_contain_text("138****1234")
    counter.fill("#visit-phone-input", "139 0013 9999")
    counter.click("#visit-phone-save")
    expect(counter.locator("#visit-phone-shown")).to_contain_text("139****9999")
    counter.click("#finish")
    grade_very_unsatisfied_at_window_2(kiosk_hall, boss)
    first = case_of(kiosk_hall, officer, ticket(kiosk_hall, "A001")["id"])
    assert first["no_contact"] is False and first["citizen"]["phone_masked"] == "139****9999"
    opened = httpx.get(f"{url}/api/v1/cases/{first['id']}/personal-data", headers=officer, timeout=5)
    assert opened.json()["citizen"]["phone"] == "13900139999"

    # the next citizen types a number and leaves no phone
    type_id(kiosk, TYPED)
    kiosk.click("button.service[data-service='A']")
    expect(kiosk.locator("#ticket-number")).to_have_text("A002")
    expect(kiosk.locator("#ticket-phone")).to_have_count(0)
    counter.click("#call")
    expect(counter.locator("#current-number")).to_have_text("A002")
    expect(counter.locator("#visit-phone-shown")).to_contain_text("未留回访电话")
    counter.click("#finish")
    grade_very_unsatisfied_at_window_2(kiosk_hall, boss)
    second = case_of(kiosk_hall, officer, ticket(kiosk_hall, "A002")["id"])
    assert second["no_contact"] is True
    figures = httpx.get(f"{url}/api/v1/cases-figures", headers=officer, timeout=5).json()
    assert (figures["bad_reviews"], figures["bad_reviews_reachable"],
            figures["bad_reviews_no_contact"]) == (2, 1, 1)

    desk = log_in(browser, url, "yangfan", None, "/callbacks", DESK)
    expect(desk.locator(f"#cases tr[data-case='{second['id']}']")).to_contain_text("无联系方式")
    expect(desk.locator(f"#cases tr[data-case='{first['id']}']")).not_to_contain_text("无联系方式")
    expect(desk.locator("#fig-reachable .n")).to_have_text("1 / 2")
    assert kiosk.errors == [] and counter.errors == [] and desk.errors == []
