"""PIN guessing: failed logins are limited per staff id and per address ([rules]
login_failures_per_staff, login_failures_per_address, login_failure_minutes).

Given the default 5 failures in 5 minutes, when someone keeps trying s1's PIN, then the
sixth try is refused with 429 before any PIN is checked, the right PIN included, and
the message says when to try again; the controller's clock moves, nobody sleeps.
"""

from __future__ import annotations

import pytest

from controller.runtime.clock import ManualClock
from tests.halls import access_hall, at
from tests.server import running_hall


@pytest.fixture
def hall(tmp_path):
    clock = ManualClock(at("09:00"))
    with running_hall(access_hall(), tmp_path, clock) as h:
        yield h


def login(api, staff_id: str, pin: str, window: int | None = 1):
    return api.post("/api/v1/auth/login", json={"staff_id": staff_id, "pin": pin, "window": window})


def test_five_wrong_pins_lock_the_staff_id_for_five_minutes(hall):
    with hall.client() as api:
        for _ in range(5):
            assert login(api, "s1", "0000").json()["error"] == "bad_credentials"
        hall.clock.advance(seconds=30)
        r = login(api, "s1", "1234")  # the right PIN: not even checked now
        assert (r.status_code, r.json()["error"]) == (429, "too_many_login_failures")
        assert "请于 09:05:00 后再试" in r.json()["message"]
        assert r.headers["Retry-After"] == "270"
        assert api.get("/api/v1/hall").json()["windows"][0]["state"] == "closed"
        assert login(api, "s2", "1234", 2).status_code == 200  # others at the same desk log in

        hall.clock.advance(minutes=4, seconds=29)
        assert login(api, "s1", "1234").status_code == 429
        hall.clock.advance(seconds=1)
        assert login(api, "s1", "1234").status_code == 200

    audit = hall.ctrl.store.query(
        "SELECT result FROM commands WHERE actor = 'staff:s1' AND name = 'login' ORDER BY id")
    assert [r["result"] for r in audit] == ["bad_credentials"] * 5 + [
        "too_many_login_failures"] * 2 + ["ok"]


def test_successes_do_not_count_and_forgive_the_persons_own_mistypes(hall):
    with hall.client() as api:
        for _ in range(10):
            assert login(api, "boss", "1234", None).status_code == 200
        for _ in range(4):
            login(api, "s1", "0000")
        assert login(api, "s1", "1234").status_code == 200
        for _ in range(4):
            assert login(api, "s1", "0000").status_code == 401  # four more: still not locked
        assert login(api, "s1", "1234").status_code == 200


def test_one_address_guessing_many_ids_is_locked_out(hall):
    with hall.client() as api:
        for i in range(20):  # each id under its own limit; the address is not
            assert login(api, f"guess{i % 10}", "0000").status_code == 401
        r = login(api, "s1", "1234")
        assert (r.status_code, r.json()["error"]) == (429, "too_many_login_failures")
        hall.clock.advance(minutes=5)
        assert login(api, "s1", "1234").status_code == 200


def test_the_limits_are_hall_settings(tmp_path):
    clock = ManualClock(at("09:00"))
    with running_hall(access_hall(login_failures_per_staff=2, login_failure_minutes=1),
                      tmp_path, clock) as hall, hall.client() as api:
        login(api, "s1", "0000"), login(api, "s1", "0000")
        assert "请于 09:01:00 后再试" in login(api, "s1", "1234").json()["message"]
        clock.advance(minutes=1)
        assert login(api, "s1", "1234").status_code == 200
