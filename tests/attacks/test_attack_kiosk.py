"""Attack (issue 14 item 3): the kiosk can be borrowed.

Through the real server (`hallctl run --simulate` as a child process, its kiosk printer a
simulator that keeps every slip it cut). Someone on the hall's LAN (another loopback
address here, 127.0.0.2) talks to the kiosk's API the way its page does.

What main did (56a695f, before this branch): the kiosk routes needed no credential at all.
The LAN client took tickets on the kiosk (spending its paper), read the identity waiting at
it, held and wiped identities, and spent the kiosk's per-minute quota, so the citizen at the
screen got 429 for a minute; the anonymous kiosk channel of POST /api/v1/tickets took
tickets from anyone. The limit was checked before the print and counted after it: 32
requests at once all passed a limit of 20 and 32 slips were printed.

Now a kiosk is a device with a key the admin sets up (`hallctl kiosk-credential`, or the
admin API; `hallctl run --simulate` sets one up for each kiosk and prints the enrolling
link), and a ticket is reserved against the limit before the print.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from playwright.sync_api import expect

from controller.web.kiosk_api import KIOSK_HEADER
from tests.browser import KIOSK as KIOSK_SCREEN, open_page
from tests.server import REPO, HallProcess

LIMIT = 20  # [rules] kiosk_tickets_per_minute, the demo hall's own
LAN = "127.0.0.2"  # anyone on the hall's LAN, not the kiosk
KIOSK = "/api/v1/kiosks/entrance"
ID_NUMBER = "11010519491231002X"

# Every route that acts as the kiosk, with a valid request for it.
KIOSK_ROUTES = [
    ("POST", f"{KIOSK}/tickets", {"service": "A"}),
    ("POST", f"{KIOSK}/identity", {"id_number": ID_NUMBER}),
    ("POST", f"{KIOSK}/identity/phone", {"phone": "13800131234"}),
    ("POST", f"{KIOSK}/identity/touch", None),
    ("DELETE", f"{KIOSK}/identity", None),
    ("POST", f"{KIOSK}/scan", {"code": ID_NUMBER}),
    ("GET", KIOSK, None),  # the card waiting, the printer's state
    ("GET", "/api/v1/kiosk/me", None),
    ("POST", "/api/v1/tickets", {"service": "A"}),  # the kiosk channel, no login
    ("POST", "/api/v1/tickets", {"service": "A", "channel": "kiosk"}),
]


def lan_client(hall: HallProcess, **kw) -> httpx.Client:
    """A client on the LAN (a real other source address), holding no key unless given one."""
    return httpx.Client(base_url=hall.url, timeout=10,
                        transport=httpx.HTTPTransport(local_address=LAN), **kw)


def slips(hall: HallProcess) -> int:
    return len(httpx.get(f"{hall.url}/sim/printers/kiosk-printer/tickets?last=1000", timeout=5).json())


def issued(hall: HallProcess) -> int:
    """Tickets issued today, whoever issued them (the hall's queues plus anything called)."""
    with hall.client(kiosk=False) as api:
        return sum(q["waiting"] for q in api.get("/api/v1/hall").json()["queues"])


def hallctl(hall: HallProcess, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "controller.cli", *args], cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True,
                          text=True, timeout=60)


@pytest.fixture
def hall(tmp_path):
    proc = HallProcess(tmp_path, "--simulate")
    proc.start()
    yield proc
    proc.stop()


def test_without_the_kiosk_key_every_kiosk_route_is_refused_and_nothing_is_spent(hall):
    """The LAN client tries every kiosk route, bare, as a page (the page header), with a
    made-up key, and with the kiosk's real key in a cookie but no page header (a cross-site
    form): all refused. No slip is cut, no ticket issued, and the kiosk's quota is whole:
    the citizen at the kiosk then takes all 20 of the minute's tickets."""
    attempts = {
        "bare": {},
        "page header": {"headers": {"x-hall-page": "1"}},
        "made-up key": {"headers": {KIOSK_HEADER: "entrance.bm90LXRoZS1rZXk"}},
        "the key as a cookie, no page header": {"cookies": {"hall_kiosk": hall.kiosk_key}},
    }
    before_slips, before_issued = slips(hall), issued(hall)
    for how, kw in attempts.items():
        with lan_client(hall, **kw) as lan:
            for method, path, body in KIOSK_ROUTES:
                if "cookie" in how and method == "GET":
                    continue  # a cookie reads (SameSite=Strict: no other site's page sends it)
                for _ in range(3 if path.endswith("tickets") else 1):  # a flood, not a tap
                    r = lan.request(method, path, json=body)
                    assert r.status_code == 401, f"{how}: {method} {path} -> {r.status_code} {r.text}"
                    assert r.json()["error"] in ("kiosk_key_required", "bad_kiosk_key"), r.text
    assert (slips(hall), issued(hall)) == (before_slips, before_issued)

    # the kiosk's quota was not touched: the citizen takes the minute's 20, the 21st waits
    with hall.client() as kiosk:
        taken = [kiosk.post(f"{KIOSK}/tickets", json={"service": "B"}).status_code
                 for _ in range(LIMIT + 1)]
    assert taken == [201] * LIMIT + [429], taken
    assert slips(hall) == before_slips + LIMIT
    # the refusals are in the audit log, with the address they came from
    with sqlite3.connect(hall.data / "hall.sqlite3") as conn:
        refused = conn.execute("SELECT COUNT(*) FROM commands WHERE result IN "
                               "('kiosk_key_required', 'bad_kiosk_key') "
                               "AND json_extract(args, '$.address') = ?", [LAN]).fetchone()[0]
    assert refused >= len(KIOSK_ROUTES) * 3


def test_32_requests_at_once_with_the_key_issue_at_most_the_limit(hall):
    """A limit of 20 a minute, 32 taps at the same moment (each its own request key): 20
    tickets and 20 slips, 12 refusals (429). The limit is reserved before the print, so
    requests arriving together cannot all pass a check made before any was counted."""
    before = slips(hall)

    async def taps() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=hall.url, timeout=30,
                                     headers={KIOSK_HEADER: hall.kiosk_key}) as api:
            return await asyncio.gather(*(
                api.post(f"{KIOSK}/tickets", json={"service": "C"},
                         headers={"Idempotency-Key": f"tap-at-once-{n:04d}"}) for n in range(32)))

    with ThreadPoolExecutor(1) as pool:  # a loop of its own (Playwright may hold this thread's)
        answers = pool.submit(asyncio.run, taps()).result(120)
    codes = sorted(r.status_code for r in answers)
    assert codes == [201] * LIMIT + [429] * (32 - LIMIT), [r.text for r in answers if r.status_code >= 500]
    numbers = {r.json()["number"] for r in answers if r.status_code == 201}
    assert len(numbers) == LIMIT
    assert slips(hall) == before + LIMIT
    assert all("Retry-After" in r.headers for r in answers if r.status_code == 429)


def test_a_tap_refused_before_its_ticket_gives_its_place_back(hall):
    """Out of paper, the citizen taps ten times and is sent to the desk each time; an unknown
    service is refused too. None of it spent the minute's quota: paper back, 20 tickets."""
    printer = f"{hall.url}/sim/printers/kiosk-printer/paper"
    with hall.client() as kiosk:
        httpx.post(printer, json={"paper": "out"}, timeout=5).raise_for_status()
        for _ in range(10):
            r = kiosk.post(f"{KIOSK}/tickets", json={"service": "D"})
            assert (r.status_code, r.json()["error"]) == (409, "paper_out"), r.text
        httpx.post(printer, json={"paper": "ok"}, timeout=5).raise_for_status()
        for _ in range(5):
            assert kiosk.post(f"{KIOSK}/tickets", json={"service": "Z"}).status_code == 404
        taken = [kiosk.post(f"{KIOSK}/tickets", json={"service": "D"}).status_code
                 for _ in range(LIMIT + 1)]
    assert taken == [201] * LIMIT + [429], taken


def test_the_admin_sets_up_a_key_and_revokes_it_while_the_hall_runs(hall):
    """`hallctl kiosk-credential` beside the running controller: the new key is printed once,
    works at once, ends the old one (the demo's), and is not in the database in the clear;
    `--revoke` ends it at the next request. The admin API does the same from the admin page."""
    old = hall.kiosk_key
    made = hallctl(hall, "kiosk-credential", "entrance", "--data-dir", str(hall.data),
                   "--url", hall.url)
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()
    assert key.startswith("entrance.") and f"{hall.url}/kiosk#key={key}" in made.stderr
    with lan_client(hall, headers={KIOSK_HEADER: key}) as kiosk:
        assert kiosk.get(KIOSK).status_code == 200
    with lan_client(hall, headers={KIOSK_HEADER: old}) as stale:
        assert (stale.get(KIOSK).status_code, stale.get(KIOSK).json()["error"]) == (401, "bad_kiosk_key")
    secret = key.split(".", 1)[1]
    for path in hall.data.glob("hall.sqlite3*"):
        assert secret.encode() not in path.read_bytes(), f"{path.name} holds the key in the clear"

    revoked = hallctl(hall, "kiosk-credential", "entrance", "--data-dir", str(hall.data), "--revoke")
    assert revoked.returncode == 0, revoked.stderr
    with lan_client(hall, headers={KIOSK_HEADER: key}) as kiosk:
        r = kiosk.post(f"{KIOSK}/tickets", json={"service": "A"})
        assert (r.status_code, r.json()["error"]) == (401, "bad_kiosk_key")

    # the admin API: only an admin, the key shown once, revocable at once
    with hall.client(kiosk=False) as api:
        admin = {"Authorization": "Bearer " + api.post(
            "/api/v1/auth/login", json={"staff_id": "jiangwen", "pin": "1234"}).json()["token"]}
        boss = {"Authorization": "Bearer " + api.post(
            "/api/v1/auth/login", json={"staff_id": "huangjianguo", "pin": "1234"}).json()["token"]}
        assert api.post(f"{KIOSK}/credential", headers=boss).status_code == 403
        given = api.post(f"{KIOSK}/credential", headers=admin).json()
        assert given["device"] is True
        with lan_client(hall, headers={KIOSK_HEADER: given["key"]}) as kiosk:
            assert kiosk.post(f"{KIOSK}/tickets", json={"service": "A"}).status_code == 201
            assert api.delete(f"{KIOSK}/credential", headers=admin).json()["revoked"] is True
            assert kiosk.get(KIOSK).status_code == 401


def test_a_kiosk_page_without_a_printer_takes_tickets_only_through_its_own_key(hall):
    """A tablet at the lobby is enrolled as kiosk `lobby-tablet` (not one of the hall's kiosk
    devices): its key takes tickets on the kiosk channel of POST /tickets, acting as that
    kiosk in the audit log, and opens none of the entrance kiosk's routes."""
    made = hallctl(hall, "kiosk-credential", "lobby-tablet", "--data-dir", str(hall.data),
                   "--config", str(hall.tmp / "hall.toml"))
    assert made.returncode == 0 and "no kiosk of the hall's devices" in made.stderr, made.stderr
    tablet_key = made.stdout.strip()
    with lan_client(hall, headers={KIOSK_HEADER: tablet_key}) as tablet:
        r = tablet.post("/api/v1/tickets", json={"service": "E"})
        assert r.status_code == 201, r.text
        for method, path, body in KIOSK_ROUTES[:7]:
            r = tablet.request(method, path, json=body)
            assert (r.status_code, r.json()["error"]) == (403, "kiosk_key_other"), f"{path}: {r.text}"
        assert tablet.get("/api/v1/kiosk/me").json() == {"kiosk": "lobby-tablet", "device": False}
    with sqlite3.connect(hall.data / "hall.sqlite3") as conn:
        actors = {a for (a,) in conn.execute(
            "SELECT actor FROM commands WHERE name = 'issue_ticket' AND result = 'ok'")}
    assert "kiosk:lobby-tablet" in actors


def test_a_browser_is_no_kiosk_until_the_admin_enrols_it_once(browser, hall):
    """Anyone can open /kiosk on the LAN: without the key the page asks for it and shows no
    service. The admin types it once (a wrong one is refused); the page works and keeps
    working after a reload, and no script on it can read the key (HttpOnly). The demo's
    printed link enrols a browser the same way, and the key leaves the address bar."""
    page = open_page(browser, f"{hall.url}/kiosk", KIOSK_SCREEN)
    expect(page.locator("#enrol-dialog")).to_be_visible()
    expect(page.locator("button.service")).to_have_count(0)
    page.fill("#enrol-key", "entrance.bm90LXRoZS1rZXk")
    page.click("#enrol-ok")
    expect(page.locator("#enrol-error")).to_contain_text("密钥不正确")
    page.fill("#enrol-key", hall.kiosk_key)
    page.click("#enrol-ok")
    expect(page.locator("#enrol-dialog")).to_be_hidden()
    page.click("button.service[data-service='F']")
    expect(page.locator("#ticket-number")).to_have_text("F001")
    assert hall.kiosk_key.split(".", 1)[1] not in page.evaluate("document.cookie")
    page.reload()
    expect(page.locator("button.service[data-service='F']")).to_be_enabled()
    expect(page.locator("#enrol-dialog")).to_be_hidden()
    assert page.errors == []

    linked = open_page(browser, hall.kiosk_page(), KIOSK_SCREEN)
    expect(linked.locator("button.service[data-service='F']")).to_be_enabled()
    assert "key=" not in linked.url
    expect(linked.locator("#enrol-dialog")).to_be_hidden()
