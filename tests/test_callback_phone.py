"""A phone for every callback (issue 13, item 3), through the real server: the counter adds or
corrects the phone of its current visit; a bad review without one is flagged 无联系方式; and
a kiosk's duplicate requests against `hallctl run` itself give one ticket and one slip."""

from __future__ import annotations

import json

import asyncio
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from controller.runtime.clock import ManualClock
from controller.core import commands as c
from tests.halls import at, kiosk_hall
from controller.web.kiosk_api import KIOSK_HEADER
from tests.server import HallProcess, running_hall

CARD_ID = "11010519491231002X"
WINDOW = "/api/v1/windows/1"


@pytest.fixture
def hall(tmp_path):
    with running_hall(kiosk_hall(), tmp_path, ManualClock(at("09:00")), simulate=True) as h:
        yield h


def serving(hall, api, staff, id_number: str | None, phone: str | None = None) -> str:
    """A kiosk ticket for A (real-name when `id_number`), called at window 1; its id."""
    body = {"service": "A"}
    if id_number:
        body["id_number"] = id_number
    if phone:
        body["phone"] = phone
    issued = api.post("/api/v1/kiosks/entrance/tickets", json=body)
    assert issued.status_code == 201, issued.text
    called = api.post(f"{WINDOW}/call", headers=staff).json()
    assert called["ticket"]["id"] == issued.json()["id"]
    return issued.json()["id"]


def test_the_counter_adds_and_corrects_the_phone_of_its_visit(hall, tmp_path):
    staff = hall.login("s1", 1)
    with hall.client() as api:
        visit = serving(hall, api, staff, CARD_ID)
        assert api.get(WINDOW, headers=staff).json()["current"]["phone_masked"] is None

        bad = api.post(f"{WINDOW}/phone", json={"phone": "1380013123"}, headers=staff)
        assert (bad.status_code, bad.json()["error"]) == (422, "invalid_phone")
        assert "手机号 11 位" in bad.json()["message"]
        assert hall.ctrl.ticket(visit).phone_sealed is None  # nothing changed
        # and the refusal is in the audit log, without the number typed
        refusals = hall.ctrl.store.query(
            "SELECT actor, args, result FROM commands WHERE name = 'window_phone'")
        assert [(r["actor"], r["result"]) for r in refusals] == [("staff:s1", "invalid_phone")]
        assert "1380013123" not in refusals[0]["args"]

        assert api.post(f"{WINDOW}/phone", json={"phone": "13800131234"}, headers=staff).status_code == 200
        assert api.post(f"{WINDOW}/phone", json={"phone": "023-6886 1234"}, headers=staff).status_code == 200
        current = api.get(WINDOW, headers=staff).json()["current"]
        assert current["phone_masked"] == "023****1234" and current["real_name"] is True

        other = hall.login("s2", 2)
        refused = api.post(f"{WINDOW}/phone", json={"phone": "13900139999"}, headers=other)
        assert (refused.status_code, refused.json()["error"]) == (403, "not_your_window")

    stored = hall.ctrl.store.ticket(visit)
    assert hall.ctrl.sealer.open(stored.phone_sealed) == ("023-68861234", None)
    logged = hall.ctrl.store.query("SELECT args, result FROM commands WHERE name = 'set_phone'")
    assert [r["result"] for r in logged] == ["ok", "ok"]
    assert json.loads(logged[0]["args"])["phone_masked"] == "138****1234"
    events = hall.ctrl.store.ticket_history(visit)
    assert [e["data"]["corrected"] for e in events if e["kind"] == "ticket_phone_set"] == [False, True]
    hall.ctrl.store.checkpoint()
    for f in tmp_path.glob("hall.sqlite3*"):
        raw = f.read_bytes()
        assert b"13800131234" not in raw and b"68861234" not in raw


def test_an_anonymous_visit_or_an_empty_window_takes_no_phone(hall):
    staff = hall.login("s1", 1)
    with hall.client() as api:
        none = api.post(f"{WINDOW}/phone", json={"phone": "13800131234"}, headers=staff)
        assert (none.status_code, none.json()["error"]) == (409, "no_current_ticket")
        serving(hall, api, staff, None)
        anonymous = api.post(f"{WINDOW}/phone", json={"phone": "13800131234"}, headers=staff)
        assert (anonymous.status_code, anonymous.json()["error"]) == (409, "not_real_name")
        assert "实名" in anonymous.json()["message"]


def test_a_bad_review_without_a_phone_is_flagged_and_counted(hall):
    staff = hall.login("s1", 1)
    officer = hall.login("boss", None)  # a supervisor reads the cases too
    with hall.client() as api:
        for phone in ("13800131234", None):
            serving(hall, api, staff, CARD_ID, phone)
            api.post(f"{WINDOW}/finish", headers=staff)
            hall.ctrl.execute(c.Evaluate(1, "非常不满意"), "pad:1")
        cases = sorted(api.get("/api/v1/cases", headers=officer).json(), key=lambda x: x["id"])
        assert [x["no_contact"] for x in cases] == [False, True]
        assert cases[0]["citizen"]["phone_masked"] == "138****1234"
        figures = api.get("/api/v1/cases-figures", headers=officer).json()
        assert (figures["bad_reviews"], figures["bad_reviews_reachable"],
                figures["bad_reviews_no_contact"]) == (2, 1, 1)
    opened = hall.ctrl.store.query("SELECT args FROM commands WHERE name = 'case_open' ORDER BY id")
    assert [json.loads(r["args"])["no_contact"] for r in opened] == [False, True]


def test_duplicate_requests_at_once_against_hallctl_run_give_one_ticket_and_one_slip(tmp_path):
    hall = HallProcess(tmp_path, "--simulate")
    hall.start()
    try:
        async def taps() -> list[httpx.Response]:
            async with httpx.AsyncClient(base_url=hall.url, timeout=10,
                                         headers={KIOSK_HEADER: hall.kiosk_key}) as api:
                return await asyncio.gather(*(
                    api.post("/api/v1/kiosks/entrance/tickets", json={"service": "K"},
                             headers={"Idempotency-Key": "same-tap-k-0001"}) for _ in range(6)))

        # a thread of its own: Playwright's sync API may hold this thread's event loop
        with ThreadPoolExecutor(1) as pool:
            answers = pool.submit(asyncio.run, taps()).result(60)
        assert [r.status_code for r in answers] == [201] * 6, [r.text for r in answers]
        assert {r.json()["number"] for r in answers} == {"K001"}
        assert sum(not r.json()["repeated"] for r in answers) == 1
        services = httpx.get(f"{hall.url}/api/v1/services", timeout=5).json()
        assert next(s for s in services if s["service"] == "K")["waiting"] == 1
        printed = httpx.get(f"{hall.url}/sim/printers/kiosk-printer/tickets?last=50", timeout=5).json()
        assert sum("K001" in str(p) for p in printed) == 1
    finally:
        hall.stop()
