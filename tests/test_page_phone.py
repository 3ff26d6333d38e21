"""The citizen's phone page behind the slip's QR code (issue 17 item 1), in Chromium at a
phone's size (390x844) against `hallctl run --simulate` on the demo hall.

Given a ticket printed at the kiosk, when the citizen scans the slip's QR code, then the page
shows the number, the service and the people ahead, and follows the ticket as staff call,
recall and transfer it and finish the visit. A guessed link (the ticket's number with no
secret, or a wrong one) gets a Chinese "not found" and nothing of the ticket.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import httpx
from playwright.sync_api import expect

from tests.browser import open_page, screenshot

PHONE = {"width": 390, "height": 844}
PRINTER = "kiosk-printer"


def printed_link(hall, service: str) -> tuple[dict, str]:
    """A ticket taken at the kiosk and printed; the link in its slip's QR code."""
    with hall.client() as kiosk:
        r = kiosk.post("/api/v1/kiosks/entrance/tickets", json={"service": service})
        assert r.status_code == 201, r.text
        slip = kiosk.get(f"/sim/printers/{PRINTER}/tickets", params={"last": 1}).json()[-1]
    assert len(slip["qr"]) == 1, slip
    return r.json(), slip["qr"][0]


def act(hall, headers: dict, window: int, what: str, **body) -> dict:
    r = httpx.post(f"{hall.url}/api/v1/windows/{window}/{what}", headers=headers, json=body or None,
                   timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def login(hall, staff_id: str, window: int) -> dict:
    with hall.client() as c:
        r = c.post("/api/v1/auth/login", json={"staff_id": staff_id, "pin": "1234", "window": window})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


def fits(page) -> None:
    """Nothing wider than the phone, and the number and what to do now on the first screen."""
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the page is {width} px wide on a {PHONE['width']} px phone"
    for sel in ("#number", "#headline"):
        box = page.locator(sel).bounding_box()
        assert box and box["y"] + box["height"] <= PHONE["height"], f"{sel} is below the fold"


def test_the_slips_qr_code_opens_the_tickets_phone_page_which_follows_it_live(browser, demo_hall):
    ahead, _ = printed_link(demo_hall, "C")
    ticket, link = printed_link(demo_hall, "C")
    parts = urlsplit(link)
    assert parts.path == f"/t/{ticket['id']}" and parts.netloc == urlsplit(demo_hall.url).netloc
    secret = parse_qs(parts.query)["k"][0]
    assert len(secret) >= 22 and ticket["number"] not in secret

    page = open_page(browser, link, PHONE)
    expect(page.locator("#number")).to_have_text(ticket["number"])
    expect(page.locator("#service")).to_contain_text("户籍办理")
    expect(page.locator("#ahead")).to_have_text("1")
    expect(page.locator("#wait")).to_contain_text("分钟")
    fits(page)
    screenshot(page, "phone-waiting", "#headline")

    # called: the window, in large type; the citizen ahead first, then this one
    staff = login(demo_hall, "wujuan", 7)
    assert act(demo_hall, staff, 7, "call")["ticket"]["id"] == ahead["id"]
    expect(page.locator("#ahead")).to_have_text("0")
    act(demo_hall, staff, 7, "finish")
    called = act(demo_hall, staff, 7, "call")["ticket"]
    assert called["id"] == ticket["id"]
    expect(page.locator("#headline")).to_have_text("请到 7 号窗口")
    expect(page.locator("#state")).to_have_attribute("data-status", "called")
    fits(page)
    screenshot(page, "phone-called", "#headline")

    # recalled: said so
    act(demo_hall, staff, 7, "recall")
    expect(page.locator("#recall")).to_have_text("已重呼 1 次，请尽快到 7 号窗口")

    # transferred: the number stays, the service it went to is named, and it waits again
    act(demo_hall, staff, 7, "transfer", service="D")
    expect(page.locator("#transfer")).to_contain_text("出入境证件")
    expect(page.locator("#state")).to_have_attribute("data-status", "waiting")
    expect(page.locator("#number")).to_have_text(ticket["number"])
    screenshot(page, "phone-transferred", "#transfer")

    # called at the transfer's window and served: the end of the visit
    other = login(demo_hall, "zhengwei", 8)
    assert act(demo_hall, other, 8, "call")["ticket"]["id"] == ticket["id"]
    expect(page.locator("#headline")).to_have_text("请到 8 号窗口")
    act(demo_hall, other, 8, "finish")
    expect(page.locator("#headline")).to_have_text("办理完毕，感谢您的耐心等待")
    screenshot(page, "phone-finished", "#headline")
    assert page.errors == []


def test_a_guessed_link_gets_a_chinese_not_found_and_nothing_of_the_ticket(browser, demo_hall):
    ticket, link = printed_link(demo_hall, "C")
    base = f"{demo_hall.url}/t/{ticket['id']}"
    for guess in (base, f"{base}?k=", f"{base}?k=AAAAAAAAAAAAAAAAAAAAAA", link.replace("?k=", "?k=x")):
        r = httpx.get(guess, timeout=5)
        assert r.status_code == 404 and "没有找到这张号" in r.text, guess
        assert ticket["number"] not in r.text
        api = httpx.get(guess.replace("/t/", "/api/v1/phone/tickets/"), timeout=5)
        assert api.status_code == 404 and api.json()["error"] == "ticket_link_invalid"
        assert ticket["number"] not in api.text
    # a ticket that does not exist reads the same as one with a wrong secret
    nobody = httpx.get(f"{demo_hall.url}/api/v1/phone/tickets/20990101-Z999?k=abc", timeout=5)
    assert nobody.status_code == 404 and nobody.json()["error"] == "ticket_link_invalid"

    page = open_page(browser, base + "?k=wrong", PHONE)
    expect(page.locator("h1")).to_have_text("没有找到这张号")
    screenshot(page, "phone-not-found", "#message")

    # the right link answers its own ticket and nothing personal or of other tickets
    body = httpx.get(link.replace("/t/", "/api/v1/phone/tickets/"), timeout=5).json()
    assert body["number"] == ticket["number"]
    assert set(body) <= {"hall", "number", "service", "service_name", "status", "issued_at", "now",
                         "window", "called_at", "recalls", "requeued", "transferred_from",
                         "people_ahead", "wait", "reminder"}


def test_an_address_guessing_secrets_is_held_off(demo_hall):
    ticket, link = printed_link(demo_hall, "C")
    api = link.replace("/t/", "/api/v1/phone/tickets/")
    codes = [httpx.get(f"{api}x{i}", timeout=5).status_code for i in range(25)]
    assert codes[0] == 404 and codes[-1] == 429, codes
    # held off even with the right secret, until the period is over
    r = httpx.get(api, timeout=5)
    assert r.status_code == 429 and "Retry-After" in r.headers and "再试" in r.json()["message"]
    page = httpx.get(link, timeout=5)
    assert page.status_code == 429 and "查询过于频繁" in page.text and ticket["number"] not in page.text
