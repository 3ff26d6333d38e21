"""Every card the reader reads gives a real-name ticket, its number checked as its own kind:
the simulated ID-card reader (sim/id_card_reader.py, the cards in sim/cards.toml) on a pty, the
real driver, the kiosk and the controller's API; and the number rules as a table."""

from __future__ import annotations

import datetime as dt

import pytest

from controller.runtime.clock import ManualClock
from controller.core import identity
from controller.core.errors import HallError
from controller.core.identity import IdKind
from tests.halls import at, kiosk_hall
from tests.server import running_hall, wait_for


@pytest.fixture
def hall(tmp_path):
    with running_hall(kiosk_hall(), tmp_path, ManualClock(at("09:00")), simulate=True) as h:
        h.reader = h.sim.readers["reader-1"]
        h.printer = h.sim.printers["printer-1"]
        yield h


@pytest.mark.parametrize("card, number, masked, name", [
    ("elderly", "11010119500307097X", "1101**********097X", "张**"),
    ("hk_permit", "810000198805120024", "8100**********0024", "陈**"),
    ("foreign_2017", "USA310080010115", "USA3*******0115", "史**"),
    ("foreign_2023", "911100198001010014", "9111**********0014", "卡**"),
])
def test_each_kind_of_card_takes_a_real_name_ticket(hall, card, number, masked, name):
    with hall.client() as api:
        hall.reader.place(card)
        shown = wait_for(lambda: api.get("/api/v1/kiosks/entrance").json()["card"])
        assert (shown["name_masked"], shown["id_masked"], shown["source"]) == (name, masked, "card")
        r = api.post("/api/v1/kiosks/entrance/tickets", json={"service": "A"})
        assert r.status_code == 201, r.text
        assert (r.json()["real_name"], r.json()["printed"]) == (True, True)
        stored = hall.ctrl.store.ticket(r.json()["id"])
        assert stored.id_masked == masked
        assert hall.ctrl.sealer.open(stored.identity_sealed)[0] == number
        assert name in wait_for(lambda: hall.printer.tickets)[-1].text


def test_a_foreign_card_typed_at_the_counter_takes_a_ticket_too(hall):
    with hall.client() as api:
        r = api.post("/api/v1/tickets", json={"service": "A", "id_number": "usa310080010115"})
        assert r.status_code == 201 and r.json()["real_name"], r.text
        wrong = api.post("/api/v1/tickets", json={"service": "A", "id_number": "USA310080010116"})
        assert (wrong.status_code, wrong.json()["error"]) == (422, "invalid_id_number")
        assert "外国人永久居留身份证" in wrong.json()["message"]


def test_a_card_whose_number_is_not_of_its_kind_is_refused_and_logged(hall):
    with hall.client() as api:
        hall.reader.place("foreign_2023_wrong_number")  # a Y card with a resident's number
        message = wait_for(lambda: api.get("/api/v1/kiosks/entrance").json().get("message"))
        assert "外国人永久居留身份证" in message
        assert api.get("/api/v1/kiosks/entrance").json()["card"] is None
        r = api.post("/api/v1/kiosks/entrance/tickets", json={"service": "A"})
        assert r.json()["real_name"] is False
    refused = list(hall.ctrl.store.query(
        "SELECT result FROM commands WHERE name = 'card_read' AND result != 'ok'"))
    assert [r["result"] for r in refused] == ["invalid_id_number"]


# -- the rules, as a table -----------------------------------------------------------------

@pytest.mark.parametrize("number, kind, valid, born", [
    ("11010119500307097X", IdKind.RESIDENT, True, dt.date(1950, 3, 7)),
    ("110101195003070971", IdKind.RESIDENT, False, None),  # check digit
    ("110101195002300979", IdKind.RESIDENT, False, None),  # 30 February
    ("810000198805120024", IdKind.RESIDENCE_PERMIT, True, dt.date(1988, 5, 12)),
    ("830000198805120027", IdKind.RESIDENCE_PERMIT, False, None),  # check digit
    ("911100198001010014", IdKind.FOREIGN_2023, True, dt.date(1980, 1, 1)),
    ("911100198001010015", IdKind.FOREIGN_2023, False, None),
    ("USA310080010115", IdKind.FOREIGN_2017, True, dt.date(1980, 1, 1)),
    ("USA310080010116", IdKind.FOREIGN_2017, False, None),  # ICAO 9303 check digit
    ("USA310000800101", IdKind.FOREIGN_2017, False, None),  # no birth date where it belongs
    ("CAN110015063022", IdKind.FOREIGN_2017, True, dt.date(2015, 6, 30)),  # a child: 20YY
    ("US1310080010115", IdKind.FOREIGN_2017, False, None),  # two letters only
])
def test_each_number_is_checked_as_its_own_kind(number, kind, valid, born):
    assert identity.kind_of(number) is kind
    assert identity.is_valid(number) is valid
    if valid:
        assert identity.birth_date(number) == born


@pytest.mark.parametrize("number, card_kind", [
    ("11010119500307097X", IdKind.FOREIGN_2023),  # a resident's number on a 2023 foreign card
    ("911100198001010014", IdKind.RESIDENT),
    ("810000198805120024", IdKind.RESIDENT),  # a permit's number is not a resident card's
    ("USA310080010115", IdKind.RESIDENT),
])
def test_a_number_read_from_a_card_must_be_of_that_cards_kind(number, card_kind):
    with pytest.raises(HallError) as e:
        identity.citizen(number, "某某", lambda n, name: n, lambda n: n, kind=card_kind)
    assert e.value.code == "invalid_id_number"
