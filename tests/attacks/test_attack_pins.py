"""Attack (issue 14 item 4): the PIN lockout as a denial of service, and staff ids that can
be enumerated.

Through the real server (`hallctl run` as a child process). Someone on the hall's LAN
(another loopback address here, 127.0.0.2) types wrong PINs for chenjing until the
lockout: chenjing at the counter (127.0.0.1) must still log in. The same someone tries to
learn which 工号 exist: by the time a wrong PIN takes to refuse, or by reading them off
the anonymous answers that every screen in the hall reads.
"""

from __future__ import annotations

import json
import statistics
import time

import httpx
import pytest

from tests.server import HallProcess

PIN, WRONG = "1234", "9876"
STAFF = "chenjing"  # A post of window 1
COUNTER, LAN = "127.0.0.1", "127.0.0.2"  # chenjing's counter, and a guesser elsewhere on the LAN
STAFF_IDS = ("chenjing", "liuyang", "wangfang", "huangjianguo", "jiangwen", "yangfan")


def client_from(proc: HallProcess, address: str) -> httpx.Client:
    """A client whose requests come from `address` (a real source address, not a header)."""
    return httpx.Client(base_url=proc.url, timeout=10,
                        transport=httpx.HTTPTransport(local_address=address))


def login(api: httpx.Client, staff: str, pin: str, window: int | None = None) -> httpx.Response:
    return api.post("/api/v1/auth/login", json={"staff_id": staff, "pin": pin, "window": window})


@pytest.fixture
def hall(tmp_path):
    proc = HallProcess(tmp_path)
    proc.start()
    yield proc
    proc.stop()


def test_wrong_pins_from_elsewhere_do_not_lock_the_counter_out(hall):
    with client_from(hall, LAN) as guesser, client_from(hall, COUNTER) as counter:
        codes = [login(guesser, STAFF, f"{n:04d}").status_code for n in range(7000, 7010)]
        assert codes[:5] == [401] * 5 and codes[-1] == 429, codes  # the guesser is stopped
        r = login(counter, STAFF, PIN, window=1)
        assert r.status_code == 200, r.text  # and chenjing logs in at the counter
        # from the guesser's address that id stays locked, even with the right PIN
        assert login(guesser, STAFF, PIN, window=1).status_code == 429


@pytest.fixture
def unlimited_hall(tmp_path):
    """Limits above the samples below, so every one of them runs the PIN check."""
    proc = HallProcess(tmp_path, rules={"login_failures_per_staff": 100, "login_failures_per_address": 100})
    proc.start()
    yield proc
    proc.stop()


def test_a_known_and_an_unknown_id_answer_in_the_same_time(unlimited_hall):
    """An information leak check, not a performance target: many samples of each, taken
    in turn so the machine's load falls on both alike, and their medians compared. Today's
    main answered a known id in 16 ms and an unknown one in 1.6 ms: that 10x fails here."""
    known, unknown = [], []
    with unlimited_hall.client() as api:
        for _ in range(3):  # warm up the connection and the server
            login(api, STAFF, WRONG)
        for i in range(30):
            for staff, into in (((STAFF, known), (f"nosuch{i:02d}", unknown)) if i % 2 else
                                ((f"nosuch{i:02d}", unknown), (STAFF, known))):
                t0 = time.perf_counter()
                r = login(api, staff, WRONG)
                into.append(time.perf_counter() - t0)
                assert (r.status_code, r.json()["error"]) == (401, "bad_credentials")
    k, u = statistics.median(known), statistics.median(unknown)
    figure = f"median known {k * 1000:.1f} ms, unknown {u * 1000:.1f} ms"
    print(figure)  # pytest -s shows it (docs/reliability.md, Attacks)
    assert max(k, u) / min(k, u) < 2.5, figure


def test_no_staff_id_in_anonymous_answers(hall):
    """The hall display, the kiosk and a slip's QR code read these without a login. With a
    window open, a visit served and a pause (its whereabouts written by staff), none names
    a 工号 or says where staff went."""
    with hall.client() as api, hall.client() as screen:  # the screen: no login, no cookie
        staff = login(api, STAFF, PIN, window=1).json()["token"]
        h = {"Authorization": f"Bearer {staff}"}
        ticket = api.post("/api/v1/tickets", json={"service": "A"}).json()["id"]
        assert api.post("/api/v1/windows/1/call", headers=h).status_code == 200
        assert api.post("/api/v1/windows/1/finish", headers=h).status_code == 200
        assert api.post("/api/v1/windows/1/pause", headers=h, json={
            "reason": "会商", "minutes": 15, "whereabouts": "二楼审批科找陈科长"}).status_code == 200
        seen = {path: screen.get(path).text for path in (
            "/api/v1/hall", "/api/v1/services", f"/api/v1/tickets/{ticket}", "/api/v1/pages")}
        # staff still see who is at the window and where they went
        mine = api.get("/api/v1/hall", headers=h).json()["windows"][0]
        assert (mine["staff"]["id"], mine["pause"]["whereabouts"]) == (STAFF, "二楼审批科找陈科长")
    display = json.loads(seen["/api/v1/hall"])["windows"][0]
    assert (display["state"], display["pause"]["reason"]) == ("paused", "会商")  # what it shows
    for path, text in seen.items():
        for word in (*STAFF_IDS, "二楼审批科"):
            assert word not in text, f"{path} shows {word!r}"
