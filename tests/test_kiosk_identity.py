"""One identity, one ticket; one tap, one ticket (issue 13, items 1 and 2).

The kiosk path for real: simulated ID-card reader and printer on ptys, the real drivers,
the controller behind a real HTTP server. Citizens who walk away from the kiosk, leave
their number typed in, lift their card, press twice, and kiosks that retry.
"""

from __future__ import annotations

import threading

import httpx
import pytest

from controller.runtime.clock import ManualClock
from controller.core.hall import Rules
from controller.entrance.kiosk import REQUEST_KEY_MINUTES
from tests.halls import at, kiosk_hall
from tests.server import running_hall, wait_for

ELDER_ID = "11010119500307097X"  # 张建国, born 1950: elderly priority (sim/cards.toml "elderly")
TYPED_ELDER = "11010519491231002X"  # born 1949, typed on the keypad
IDLE = Rules().kiosk_identity_seconds
KIOSK = "/api/v1/kiosks/entrance"


@pytest.fixture
def hall(tmp_path):
    with running_hall(kiosk_hall(), tmp_path, ManualClock(at("09:00")), simulate=True) as h:
        h.printer = h.sim.printers["printer-1"]
        h.reader = h.sim.readers["reader-1"]
        yield h


def waiting_identity(api):
    return api.get(KIOSK).json()["card"]


def lift_card(hall) -> None:
    """The citizen takes the card off; the driver sees the reader empty."""
    empty = hall.reader.empty_finds
    hall.reader.remove()
    wait_for(lambda: hall.reader.empty_finds > empty)


def tickets_in_db(hall) -> int:
    return hall.ctrl.store.query("SELECT COUNT(*) AS n FROM tickets")[0]["n"]


# -- item 1: the next citizen never gets the last person's identity ---------------------------

def test_a_typed_number_left_behind_is_forgotten_before_the_next_citizen_taps(hall):
    """The reported story: an elderly citizen types their number, walks off without a ticket;
    20 s later the next citizen taps a service and must get an anonymous ticket."""
    with hall.client() as api:
        held = api.post(f"{KIOSK}/identity", json={"id_number": TYPED_ELDER})
        assert held.status_code == 200, held.text
        assert held.json()["card"]["id_masked"] == "1101**********002X"
        hall.clock.advance(seconds=IDLE)
        assert waiting_identity(api) is not None  # still within the idle period
        hall.clock.advance(seconds=20 - IDLE)
        assert waiting_identity(api) is None

        t = api.post(f"{KIOSK}/tickets", json={"service": "A"}).json()
        assert (t["real_name"], t["priority"], t["name_masked"]) == (False, None, None)
        slip = wait_for(lambda: hall.printer.tickets)[-1]
        assert "1101" not in slip.text and "取号人" not in slip.text
        why = hall.ctrl.store.query("SELECT args FROM commands WHERE name = 'identity_cleared'")
        assert '"idle"' in why[-1]["args"]


def test_a_lifted_card_is_forgotten_at_once(hall):
    with hall.client() as api:
        hall.reader.place("elderly")
        assert wait_for(lambda: waiting_identity(api))["name_masked"] == "张**"
        lift_card(hall)
        assert wait_for(lambda: waiting_identity(api) is None)
        # well within what used to be the card's minute
        t = api.post(f"{KIOSK}/tickets", json={"service": "A"}).json()
        assert (t["real_name"], t["priority"]) == (False, None)


def test_a_card_left_on_the_reader_serves_one_ticket_only(hall):
    """A citizen takes a ticket and leaves the card on the reader: the next tap is anonymous
    (the card is read once per placing, and the identity is used up by the ticket)."""
    with hall.client() as api:
        hall.reader.place("elderly")
        wait_for(lambda: waiting_identity(api))
        first = api.post(f"{KIOSK}/tickets", json={"service": "A"}).json()
        assert first["real_name"] and first["priority"] == "elderly"
        second = api.post(f"{KIOSK}/tickets", json={"service": "B"}).json()
        assert second["real_name"] is False and second["priority"] is None


def test_a_refusal_forgets_the_identity(hall):
    """The citizen already holds an A ticket and is refused a second; they walk away, and the
    next citizen's tap is not issued in their name."""
    with hall.client() as api:
        api.post(f"{KIOSK}/identity", json={"id_number": TYPED_ELDER})
        assert api.post(f"{KIOSK}/tickets", json={"service": "A"}).json()["real_name"]
        api.post(f"{KIOSK}/identity", json={"id_number": TYPED_ELDER})
        refused = api.post(f"{KIOSK}/tickets", json={"service": "A"})
        assert (refused.status_code, refused.json()["error"]) == (409, "already_waiting")
        assert waiting_identity(api) is None
        nxt = api.post(f"{KIOSK}/tickets", json={"service": "C"}).json()
        assert nxt["real_name"] is False and nxt["priority"] is None


def test_clear_forgets_the_identity_and_its_phone(hall):
    with hall.client() as api:
        api.post(f"{KIOSK}/identity", json={"id_number": TYPED_ELDER})
        shown = api.post(f"{KIOSK}/identity/phone", json={"phone": "138 0013 1234"}).json()
        assert shown["card"]["phone_masked"] == "138****1234"
        assert api.delete(f"{KIOSK}/identity").json()["card"] is None
        t = api.post(f"{KIOSK}/tickets", json={"service": "A"}).json()
        assert t["real_name"] is False and t["phone_masked"] is None
        logged = hall.ctrl.store.query("SELECT args FROM commands WHERE name = 'identity_cleared'")
        assert '"cleared"' in logged[-1]["args"]


def test_typing_keeps_the_identity_and_a_wrong_number_leaves_none(hall):
    with hall.client() as api:
        api.post(f"{KIOSK}/identity", json={"id_number": TYPED_ELDER})
        for _ in range(3):  # a slow citizen typing a phone number: each key is a touch
            hall.clock.advance(seconds=IDLE - 2)
            assert api.post(f"{KIOSK}/identity/touch").json()["card"] is not None
        wrong = api.post(f"{KIOSK}/identity", json={"id_number": "110105194912310021"})
        assert (wrong.status_code, wrong.json()["error"]) == (422, "invalid_id_number")
        assert waiting_identity(api) is None  # not the previous number either


def test_a_phone_needs_an_identity(hall):
    with hall.client() as api:
        r = api.post(f"{KIOSK}/identity/phone", json={"phone": "13800131234"})
        assert (r.status_code, r.json()["error"]) == (409, "no_identity_waiting")
        api.post(f"{KIOSK}/identity", json={"id_number": TYPED_ELDER})
        bad = api.post(f"{KIOSK}/identity/phone", json={"phone": "2800131234"})
        assert (bad.status_code, bad.json()["error"]) == (422, "invalid_phone")
        assert "手机号 11 位" in bad.json()["message"]
        assert waiting_identity(api)["phone_masked"] is None  # a typo keeps the identity
        ticket = api.post(f"{KIOSK}/tickets", json={"service": "B", "phone": "13800131234"}).json()
        assert (ticket["real_name"], ticket["phone_masked"]) == (True, "138****1234")
        refused = api.post(f"{KIOSK}/tickets", json={"service": "C", "phone": "13800131234"})
        assert (refused.status_code, refused.json()["error"]) == (422, "phone_needs_identity")


# -- item 2: one tap, one ticket ---------------------------------------------------------------

def test_a_repeated_request_gets_the_same_ticket_and_prints_once(hall):
    with hall.client() as api:
        hall.reader.place("elderly")
        wait_for(lambda: waiting_identity(api))
        key = {"Idempotency-Key": "tap-0001-aaaa"}
        first = api.post(f"{KIOSK}/tickets", json={"service": "A"}, headers=key)
        again = api.post(f"{KIOSK}/tickets", json={"service": "A"}, headers=key)
        assert (first.status_code, again.status_code) == (201, 201)
        assert again.json()["id"] == first.json()["id"] and again.json()["repeated"] is True
        assert again.json()["real_name"] is True  # the same ticket, in the same name
        assert first.json()["repeated"] is False
        assert hall.printer.printer.wait_for_tickets(1) and not hall.printer.printer.wait_for_tickets(2, 0.5)
        assert tickets_in_db(hall) == 1

        other = api.post(f"{KIOSK}/tickets", json={"service": "B"}, headers={"Idempotency-Key": "tap-0002-bbbb"})
        assert other.json()["number"] == "B001"
        hall.clock.advance(minutes=REQUEST_KEY_MINUTES, seconds=1)
        late = api.post(f"{KIOSK}/tickets", json={"service": "A"}, headers=key)
        assert (late.status_code, late.json()["error"]) == (409, "request_key_used")
        reused = api.post(f"{KIOSK}/tickets", json={"service": "C"}, headers={"Idempotency-Key": "tap-0002-bbbb"})
        assert (reused.status_code, reused.json()["error"]) == (409, "request_key_used")
        assert tickets_in_db(hall) == 2


def test_concurrent_duplicates_give_one_ticket_and_one_slip(hall):
    """A double tap, a flaky network retrying: eight requests with one key arrive at once."""
    start = threading.Barrier(8)
    answers: list[httpx.Response] = []

    def tap() -> None:
        with hall.client() as api:
            start.wait()
            answers.append(api.post(f"{KIOSK}/tickets", json={"service": "A"},
                                    headers={"Idempotency-Key": "double-tap-0001"}))

    threads = [threading.Thread(target=tap) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert [r.status_code for r in answers] == [201] * 8, [r.text for r in answers]
    assert {r.json()["number"] for r in answers} == {"A001"}
    assert sorted(r.json()["repeated"] for r in answers) == [False] + [True] * 7
    assert tickets_in_db(hall) == 1
    assert hall.printer.printer.wait_for_tickets(1) and not hall.printer.printer.wait_for_tickets(2, 0.5)


def test_a_refused_request_repeated_is_refused_again_not_issued_anonymously(hall):
    """The first of two duplicates is refused (and forgets the identity): the second must not
    then slip through as an anonymous ticket."""
    with hall.client() as api:
        api.post(f"{KIOSK}/identity", json={"id_number": TYPED_ELDER})
        api.post(f"{KIOSK}/tickets", json={"service": "A"})
        api.post(f"{KIOSK}/identity", json={"id_number": TYPED_ELDER})
        key = {"Idempotency-Key": "tap-refused-1"}
        first = api.post(f"{KIOSK}/tickets", json={"service": "A"}, headers=key)
        again = api.post(f"{KIOSK}/tickets", json={"service": "A"}, headers=key)
        assert first.json()["error"] == again.json()["error"] == "already_waiting"
        assert tickets_in_db(hall) == 1


def test_a_retry_of_a_ticket_that_did_not_print_never_brings_it_back(tmp_path):
    """The roll ends inside the slip: the ticket is cancelled and the citizen sent to the desk.
    The kiosk's retry, before and after a restart, is told the same, and issues nothing."""
    clock = ManualClock(at("09:00"))
    key = {"Idempotency-Key": "torn-slip-0001"}
    with running_hall(kiosk_hall(), tmp_path, clock, simulate=True) as h, h.client() as api:
        h.sim.printers["printer-1"].paper_after(40)
        first = api.post(f"{KIOSK}/tickets", json={"service": "A"}, headers=key)
        assert (first.status_code, first.json()["error"]) == (409, "paper_out")
        h.sim.printers["printer-1"].paper = "ok"
        again = api.post(f"{KIOSK}/tickets", json={"service": "A"}, headers=key)
        assert again.json() == first.json()
    with running_hall(kiosk_hall(), tmp_path, clock, simulate=True) as h, h.client() as api:
        after = api.post(f"{KIOSK}/tickets", json={"service": "A"}, headers=key)
        assert (after.status_code, after.json()["error"]) == (409, "ticket_not_waiting")
        assert "A001 已作废" in after.json()["message"]
        assert tickets_in_db(h) == 1


def test_a_retry_after_a_restart_finds_the_ticket(tmp_path):
    clock = ManualClock(at("09:00"))
    with running_hall(kiosk_hall(), tmp_path, clock, simulate=True) as h, h.client() as api:
        first = api.post(f"{KIOSK}/tickets", json={"service": "A"},
                         headers={"Idempotency-Key": "before-restart-1"}).json()
    clock.advance(seconds=30)
    with running_hall(kiosk_hall(), tmp_path, clock, simulate=True) as h, h.client() as api:
        again = api.post(f"{KIOSK}/tickets", json={"service": "A"},
                         headers={"Idempotency-Key": "before-restart-1"})
        assert again.status_code == 201 and again.json()["id"] == first["id"]
        assert again.json()["repeated"] is True
        assert not h.sim.printers["printer-1"].printer.wait_for_tickets(1, 0.5)  # nothing printed again
        assert tickets_in_db(h) == 1


def test_a_bad_key_is_a_clear_4xx(hall):
    with hall.client() as api:
        r = api.post(f"{KIOSK}/tickets", json={"service": "A"}, headers={"Idempotency-Key": "x"})
        assert r.status_code == 422 and r.json()["error"]
        assert tickets_in_db(hall) == 0
