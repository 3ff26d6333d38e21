"""停用: when staff leave the hall all their access is revoked at once (001 4.2.4).

Given a hall where `leaver` (B post at every window) is working, when the admin disables
the account, then every token it holds stops working with the next request, its window
closes so the queue goes to the other windows, it cannot log in again, and all of that
holds after a restart.
"""

from __future__ import annotations

import time

import pytest

from controller.runtime.clock import ManualClock
from tests.halls import access_hall, at
from tests.server import running_hall

DISABLE = "/api/v1/admin/staff/{}/disable"
ENABLE = "/api/v1/admin/staff/{}/enable"


@pytest.fixture
def hall(tmp_path):
    with running_hall(access_hall(), tmp_path, ManualClock(at("09:00"))) as h:
        yield h


def login(client, staff_id: str, window: int | None, pin: str = "1234"):
    return client.post("/api/v1/auth/login", json={"staff_id": staff_id, "pin": pin, "window": window})


def test_disabling_revokes_every_token_at_once_and_closes_the_window(hall):
    with hall.client() as api:
        api.post("/api/v1/tickets", json={"service": "A"}).raise_for_status()
        counter = hall.login("leaver", 1)
        again = hall.login("leaver", 1)  # a second device at the same window
        page = {"Cookie": f"hall_session={again['Authorization'].split()[1]}"}
        assert api.get("/api/v1/auth/me", headers=counter).status_code == 200
        assert api.get("/counter", headers=page).status_code == 200
        admin = hall.login("admin", None)

        r = api.post(DISABLE.format("leaver"), headers=admin, json={"reason": "离职"})
        done = time.monotonic()
        assert r.status_code == 200, r.text
        assert (r.json()["tokens_revoked"], r.json()["windows_closed"]) == (2, [1])
        refused = api.post("/api/v1/windows/1/call", headers=counter)
        assert time.monotonic() - done < 1.0
        assert (refused.status_code, refused.json()["error"]) == (401, "not_logged_in")
        assert api.get("/api/v1/auth/me", headers=again).status_code == 401
        assert api.get("/counter", headers=page).status_code == 303  # back to the login page

        assert api.get("/api/v1/hall").json()["windows"][0]["state"] == "closed"
        # the queue goes elsewhere: window 2 serves B, then A
        s2 = hall.login("s2", 2)
        called = api.post("/api/v1/windows/2/call", headers=s2).json()["ticket"]
        assert called["number"] == "A001"

        listed = {a["id"]: a for a in api.get("/api/v1/admin/staff", headers=admin).json()}
        assert listed["leaver"]["disabled"]["reason"] == "离职"
        assert listed["leaver"]["disabled"]["disabled_by"] == "staff:admin"
        assert listed["s2"]["disabled"] is None and listed["s2"]["window"] == 2

    audit = hall.ctrl.store.query(
        "SELECT actor, name, result FROM commands WHERE actor = 'staff:admin' AND name != 'login' "
        "ORDER BY id")
    assert audit == [{"actor": "staff:admin", "name": "staff_disable", "result": "ok"},
                     {"actor": "staff:admin", "name": "logout", "result": "ok"}]


def test_a_disabled_account_cannot_log_in_and_a_wrong_pin_learns_nothing(hall):
    with hall.client() as api:
        admin = hall.login("admin", None)
        api.post(DISABLE.format("leaver"), headers=admin).raise_for_status()
        r = login(api, "leaver", 1)
        assert (r.status_code, r.json()["error"]) == (403, "account_disabled")
        assert "停用" in r.json()["message"]
        r = login(api, "leaver", 1, pin="0000")
        assert (r.status_code, r.json()["error"]) == (401, "bad_credentials")
        assert api.get("/api/v1/hall").json()["windows"][0]["state"] == "closed"

        assert api.post(ENABLE.format("leaver"), headers=admin).json()["changed"] is True
        assert login(api, "leaver", 1).status_code == 200
    refusals = hall.ctrl.store.query(
        "SELECT result FROM commands WHERE actor = 'staff:leaver' AND name = 'login' ORDER BY id")
    assert [r["result"] for r in refusals] == ["account_disabled", "bad_credentials", "ok"]


def test_the_disabled_set_survives_a_restart(tmp_path):
    clock = ManualClock(at("09:00"))
    with running_hall(access_hall(), tmp_path, clock) as hall, hall.client() as api:
        old = hall.login("leaver", 2)
        api.post(DISABLE.format("leaver"), headers=hall.login("admin", None)).raise_for_status()
    with running_hall(access_hall(), tmp_path, clock) as hall, hall.client() as api:
        assert login(api, "leaver", 2).json()["error"] == "account_disabled"
        assert api.get("/api/v1/auth/me", headers=old).status_code == 401
        admin = hall.login("admin", None)
        assert api.post(ENABLE.format("leaver"), headers=admin).status_code == 200
        assert login(api, "leaver", 2).status_code == 200
        # enabling lets the person log in again; it does not bring old tokens back
        assert api.get("/api/v1/auth/me", headers=old).status_code == 401


def test_a_window_mid_service_closes_at_once_and_its_visitor_is_called_elsewhere(hall):
    """The leaver was serving A001 when the admin disabled the account: the window closes
    at once (its keypad acts for whoever is logged in there), and A001 is not lost nor
    counted as 过号: it waits at the head of its queue, ahead of A002, for window 2."""
    with hall.client() as api:
        for _ in range(2):
            api.post("/api/v1/tickets", json={"service": "A"}).raise_for_status()
        leaver = hall.login("leaver", 1)
        api.post("/api/v1/windows/1/call", headers=leaver).raise_for_status()
        admin = hall.login("admin", None)
        r = api.post(DISABLE.format("leaver"), headers=admin).json()
        assert r["windows_closed"] == [1]
        assert api.post("/api/v1/windows/1/finish", headers=leaver).status_code == 401
        assert api.get("/api/v1/hall").json()["windows"][0]["state"] == "closed"
        s2 = hall.login("s2", 2)
        called = api.post("/api/v1/windows/2/call", headers=s2).json()["ticket"]
        assert (called["number"], called["window"], called["status"]) == ("A001", 2, "called")
        history = [e["kind"] for e in api.get(f"/api/v1/tickets/{called['id']}",
                                                 headers=admin).json()["history"]]
        assert history == ["ticket_issued", "ticket_called", "ticket_requeued", "ticket_called"]


@pytest.mark.parametrize("path,body,status,code", [
    (DISABLE.format("ghost"), None, 404, "no_such_staff"),
    (ENABLE.format("ghost"), None, 404, "no_such_staff"),
    (DISABLE.format("admin"), None, 409, "cannot_disable_self"),
    (DISABLE.format("leaver"), {"reason": 42}, 422, "invalid_request"),
    (DISABLE.format("leaver"), {"reason": "离职", "when": "now"}, 422, "invalid_request"),
    (DISABLE.format("leaver"), {"reason": "x" * 201}, 422, "invalid_request"),
])
def test_bad_requests_change_nothing(hall, path, body, status, code):
    with hall.client() as api:
        leaver = hall.login("leaver", 1)
        r = api.post(path, headers=hall.login("admin", None), json=body)
        assert (r.status_code, r.json()["error"]) == (status, code), r.text
        assert r.json()["message"]
        assert api.get("/api/v1/auth/me", headers=leaver).status_code == 200
        assert login(api, "admin", None).status_code == 200
    assert hall.sessions.disabled() == []


def test_only_the_admin_disables(hall):
    with hall.client() as api:
        leaver = hall.login("leaver", 1)
        for who in (hall.login("boss", None), hall.login("s2", 2), leaver, {}):
            r = api.post(DISABLE.format("leaver"), headers=who)
            assert r.status_code in (401, 403), r.text
        assert api.get("/api/v1/auth/me", headers=leaver).status_code == 200
