"""Kiosk abuse: ticket flooding from one kiosk, one address or one person is limited, and an
absurd request gets a clear 4xx that changes nothing and prints nothing."""

from __future__ import annotations

import json

import pytest

from controller.runtime.clock import ManualClock
from tests.halls import at, kiosk_hall, small_hall
from tests.server import running_hall

ELDER_ID = "11010119500307097X"
KIOSK = "/api/v1/kiosks/entrance/tickets"


@pytest.fixture
def kiosk(tmp_path):
    """The kiosk hall with its printer and card reader simulated, and the default rules."""
    clock = ManualClock(at("09:00"))
    with running_hall(kiosk_hall(), tmp_path, clock, simulate=True) as h:
        h.printer = h.sim.printers["printer-1"]
        yield h


@pytest.fixture
def hall(tmp_path):
    clock = ManualClock(at("09:00"))
    with running_hall(small_hall(), tmp_path, clock) as h:
        yield h


def waiting(api) -> dict[str, int]:
    return {q["service"]: q["waiting"] for q in api.get("/api/v1/services").json()}


# -- flooding ---------------------------------------------------------------------------

def test_one_kiosk_issues_at_most_twenty_tickets_a_minute(kiosk):
    with kiosk.client() as api:
        for _ in range(20):
            assert api.post(KIOSK, json={"service": "C"}).status_code == 201
        kiosk.clock.advance(seconds=50)
        r = api.post(KIOSK, json={"service": "C"})
        assert (r.status_code, r.json()["error"]) == (429, "too_many_tickets")
        assert "每分钟最多 20 张" in r.json()["message"] and "导办台" in r.json()["message"]
        assert r.headers["Retry-After"] == "10"
        assert waiting(api)["C"] == 20
        kiosk.clock.advance(seconds=10)
        assert api.post(KIOSK, json={"service": "C"}).status_code == 201
    assert len(kiosk.printer.tickets) == 21
    refused = kiosk.ctrl.store.query(
        "SELECT actor, result FROM commands WHERE name = 'issue_ticket' AND result != 'ok'")
    assert refused == [{"actor": "kiosk:entrance", "result": "too_many_tickets"}]


def test_one_address_without_a_login_takes_at_most_thirty_a_minute(hall):
    with hall.client() as api:
        for _ in range(30):
            assert api.post("/api/v1/tickets", json={"service": "C"}).status_code == 201
        r = api.post("/api/v1/tickets", json={"service": "C"})
        assert (r.status_code, r.json()["error"]) == (429, "too_many_tickets")
        assert waiting(api)["C"] == 30
        # staff at the guidance desk are accountable by name: not limited by address
        desk = hall.login("s3", 3)
        r = api.post("/api/v1/tickets", json={"service": "C", "channel": "staff"}, headers=desk)
        assert r.status_code == 201
        hall.clock.advance(minutes=1)
        assert api.post("/api/v1/tickets", json={"service": "C"}).status_code == 201
    refused = hall.ctrl.store.query(
        "SELECT actor, args, result FROM commands WHERE result = 'too_many_tickets'")
    assert len(refused) == 1 and json.loads(refused[0]["args"])["address"] == "127.0.0.1"


def test_the_flood_limits_are_hall_settings(tmp_path):
    clock = ManualClock(at("09:00"))
    with running_hall(small_hall(address_tickets_per_minute=2), tmp_path, clock) as hall, \
            hall.client() as api:
        api.post("/api/v1/tickets", json={"service": "A"}), api.post("/api/v1/tickets", json={"service": "A"})
        assert api.post("/api/v1/tickets", json={"service": "A"}).status_code == 429


def test_one_person_one_waiting_ticket_per_service_and_ten_a_day(hall):
    with hall.client() as api:
        person = {"id_number": ELDER_ID, "name": "张建国"}
        assert api.post("/api/v1/tickets", json={"service": "A", **person}).status_code == 201
        r = api.post("/api/v1/tickets", json={"service": "A", **person})
        assert (r.status_code, r.json()["error"]) == (409, "already_waiting")
        s1 = hall.login("s1", 1)
        for _ in range(9):  # called and served, they may queue again: up to ten a day
            api.post("/api/v1/windows/1/call", headers=s1).raise_for_status()
            api.post("/api/v1/windows/1/finish", headers=s1).raise_for_status()
            assert api.post("/api/v1/tickets", json={"service": "A", **person}).status_code == 201
        api.post("/api/v1/windows/1/call", headers=s1).raise_for_status()
        r = api.post("/api/v1/tickets", json={"service": "B", **person})
        assert (r.status_code, r.json()["error"]) == (409, "daily_ticket_limit")
        assert "10 次" in r.json()["message"]
        assert waiting(api) == {"A": 0, "B": 0, "C": 0}


# -- absurd requests --------------------------------------------------------------------

TEN_MB = 10 * 1024 * 1024

ABSURD = [
    # (path, body: JSON value or raw bytes, status, error code)
    (KIOSK, {"service": "Z"}, 404, "unknown_service"),
    ("/api/v1/kiosks/nowhere/tickets", {"service": "A"}, 404, "unknown_kiosk"),
    (KIOSK, {"service": ["A"]}, 422, "invalid_request"),
    (KIOSK, {"service": {"$ne": None}}, 422, "invalid_request"),
    (KIOSK, {"service": ""}, 422, "invalid_request"),
    (KIOSK, {"service": "A", "id_number": 11010119500307097}, 422, "invalid_request"),
    (KIOSK, {"service": "A", "id_number": "123"}, 422, "invalid_id_number"),
    (KIOSK, {"service": "A", "priority": 1}, 422, "invalid_request"),
    (KIOSK, {"service": "A", "priority": "vip"}, 422, "invalid_priority"),
    (KIOSK, {"service": "A", "name": "张" * 65}, 422, "invalid_request"),
    (KIOSK, {"service": "A", "channel": "staff"}, 422, "invalid_request"),
    (KIOSK, "A", 422, "invalid_request"),
    (KIOSK, None, 422, "invalid_request"),
    (KIOSK, b"service=A", 422, "invalid_request"),
    (KIOSK, b"\xff\xfe{", 400, "invalid_request"),
    (KIOSK, b"x" * TEN_MB, 413, "body_too_large"),
    ("/api/v1/tickets", b"x" * TEN_MB, 413, "body_too_large"),
]


@pytest.mark.parametrize("path,body,status,code", ABSURD,
                         ids=[f"{p.rsplit('/', 2)[-2]} {c} {i}" for i, (p, _, _, c) in enumerate(ABSURD)])
def test_an_absurd_request_gets_a_clear_4xx_and_changes_nothing(kiosk, path, body, status, code):
    with kiosk.client() as api:
        before = waiting(api)
        if isinstance(body, bytes):
            r = api.post(path, content=body, headers={"content-type": "application/json"})
        else:
            r = api.post(path, json=body)
        assert (r.status_code, r.json()["error"]) == (status, code), r.text
        assert r.json()["message"]
        assert waiting(api) == before
    assert kiosk.printer.tickets == []


def chunks(total: int, size: int = 64 * 1024):
    for _ in range(total // size):
        yield b"x" * size


@pytest.mark.parametrize("path", [KIOSK, "/api/v1/tickets"])
def test_a_huge_body_without_a_length_is_cut_off(kiosk, path):
    """Chunked transfer: no content-length to refuse up front, so the read stops at 64 KiB."""
    with kiosk.client() as api:
        r = api.post(path, content=chunks(TEN_MB), headers={"content-type": "application/json"})
        assert "content-length" not in r.request.headers
        assert (r.status_code, r.json()["error"]) == (413, "body_too_large")
        assert "65536" in r.json()["message"]
        assert sum(waiting(api).values()) == 0
        # a small chunked body is read as usual
        ok = api.post(path, content=iter([b'{"service": ', b'"A"}']),
                      headers={"content-type": "application/json"})
        assert ok.status_code == 201, ok.text
