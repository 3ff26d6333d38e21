"""The kiosk path end to end: simulated ID-card reader and printer on ptys, the real drivers,
the controller and its API."""

from __future__ import annotations


import pytest

from controller.runtime.clock import ManualClock
from tests.halls import at, kiosk_hall
from tests.server import HallProcess, running_hall, wait_for

ELDER_ID = "11010119500307097X"  # the "elderly" card in sim/cards.toml: 张建国, born 1950


@pytest.fixture
def hall(tmp_path):
    with running_hall(kiosk_hall(), tmp_path, ManualClock(at("09:00")), simulate=True) as h:
        h.printer = h.sim.printers["printer-1"]
        h.reader = h.sim.readers["reader-1"]
        h.scanner = h.sim.scanners["scanner-1"]
        yield h


def devices(api, hall) -> dict[str, dict]:
    """Device health as the supervisor sees it (it needs a login)."""
    found = api.get("/api/v1/devices", headers=hall.login("boss", None)).json()
    return {d["device"]: d for d in found}


def waiting(api) -> dict[str, int]:
    return {q["service"]: q["waiting"] for q in api.get("/api/v1/services").json()}


def test_tapping_a_card_prints_a_real_name_ticket(hall, tmp_path):
    with hall.client() as api:
        api.post("/api/v1/tickets", json={"service": "A"})  # someone is ahead
        hall.reader.place("elderly")
        card = wait_for(lambda: api.get("/api/v1/kiosks/entrance").json()["card"])
        assert (card["name_masked"], card["id_masked"]) == ("张**", "1101**********097X")

        r = api.post("/api/v1/kiosks/entrance/tickets", json={"service": "A"})
        assert r.status_code == 201, r.text
        body = r.json()
        assert (body["number"], body["printed"], body["real_name"]) == ("A002", True, True)
        assert body["priority"] == "elderly"  # born 1950: the age rule from the card

        slip = wait_for(lambda: hall.printer.tickets)[-1]
        text = slip.text
        assert "A002" in text and "社保医保" in text and "张**" in text
        assert "前面还有 0 人" in text  # elderly go first
        low, high = int(body["eta"]["p10"]), int(-(-body["eta"]["p90"] // 1))
        assert f"约 {low}-{high} 分钟" in text
        # the QR code: the ticket's phone page, with its secret (tests/test_page_phone.py)
        secret = hall.ctrl.sealer.ticket_secret(body["id"])
        assert slip.qr == [f"{hall.url}/t/{body['id']}?k={secret}"]

        stored = hall.ctrl.store.ticket(body["id"])
        assert stored.real_name and stored.id_masked == "1101**********097X"
        assert hall.ctrl.sealer.open(stored.identity_sealed) == (ELDER_ID, "张建国")
        # the card is used once: the next ticket is anonymous unless the card is tapped again
        assert api.get("/api/v1/kiosks/entrance").json()["card"] is None

    hall.ctrl.store.checkpoint()
    for f in tmp_path.glob("hall.sqlite3*"):
        raw = f.read_bytes()
        assert ELDER_ID.encode() not in raw and "张建国".encode() not in raw


def test_paper_out_sends_the_citizen_to_the_desk_and_leaves_no_phantom(hall):
    with hall.client() as api:
        hall.printer.paper = "out"
        before = waiting(api)
        r = api.post("/api/v1/kiosks/entrance/tickets", json={"service": "B"})
        assert (r.status_code, r.json()["error"]) == (409, "paper_out")
        assert "导办台" in r.json()["message"]
        assert waiting(api) == before
        assert hall.printer.tickets == []
        printer = devices(api, hall)["printer-1"]
        assert (printer["state"], printer["detail"]) == ("fault", "缺纸")
        alerts = [e for e in hall.ctrl.store.events_after(0) if e[1]["kind"] == "device_health"]
        assert alerts[-1][1]["data"] == {"device": "printer-1", "state": "fault", "detail": "缺纸"}

        hall.printer.paper = "ok"
        r = api.post("/api/v1/kiosks/entrance/tickets", json={"service": "B"})
        assert r.status_code == 201 and r.json()["number"] == "B001"
        assert "B001" in wait_for(lambda: hall.printer.tickets)[-1].text
        assert devices(api, hall)["printer-1"]["state"] == "online"


def test_paper_running_out_mid_ticket_cancels_it(hall):
    with hall.client() as api:
        hall.printer.paper_after(40)  # the roll ends inside the first ticket
        r = api.post("/api/v1/kiosks/entrance/tickets", json={"service": "A"})
        assert (r.status_code, r.json()["error"]) == (409, "paper_out")
        assert "A001 已作废" in r.json()["message"]
        assert waiting(api)["A"] == 0  # no phantom ticket waits to be called
        history = api.get("/api/v1/tickets/20261123-A001").json()
        assert history["status"] == "cancelled"
        assert history["history"][-1]["data"]["reason"] == "not_printed"


def test_paper_near_end_alerts_the_supervisor(hall):
    with hall.client() as api:
        hall.printer.paper = "near_end"
        r = api.post("/api/v1/kiosks/entrance/tickets", json={"service": "A"})
        assert r.json()["paper_near_end"] is True
        state = devices(api, hall)["printer-1"]
        assert state["state"] == "warning" and "纸将用尽" in state["detail"]


def test_staff_reprint_a_waiting_ticket(hall):
    with hall.client() as api:
        ticket = api.post("/api/v1/kiosks/entrance/tickets", json={"service": "C"}).json()
        assert api.post(f"/api/v1/tickets/{ticket['id']}/reprint").status_code == 401
        staff = hall.login("s3", 3)
        r = api.post(f"/api/v1/tickets/{ticket['id']}/reprint", headers=staff)
        assert r.json() == {"ok": True, "kiosk": "entrance"}
        slips = wait_for(lambda: hall.printer.tickets if len(hall.printer.tickets) == 2 else None)
        assert "C001" in slips[1].text and "补打小票" in slips[1].text
        audit = list(hall.ctrl.store.query("SELECT actor FROM commands WHERE name = 'reprint'"))
        assert audit == [{"actor": "staff:s3"}]


def test_typed_id_numbers_are_checked_and_limited(hall):
    with hall.client() as api:
        bad = api.post("/api/v1/kiosks/entrance/tickets",
                       json={"service": "A", "id_number": "110101195003070971"})
        assert (bad.status_code, bad.json()["error"]) == (422, "invalid_id_number")
        ok = api.post("/api/v1/kiosks/entrance/tickets",
                      json={"service": "A", "id_number": "110101199003070978"})
        assert ok.status_code == 201 and ok.json()["real_name"]
        again = api.post("/api/v1/kiosks/entrance/tickets",
                         json={"service": "A", "id_number": "110101199003070978"})
        assert (again.status_code, again.json()["error"]) == (409, "already_waiting")
        assert len(hall.printer.tickets) == 1


def test_a_card_the_reader_cannot_read_becomes_a_kiosk_message(hall):
    with hall.client() as api:
        hall.reader.place("unreadable")
        view = wait_for(lambda: (v := api.get("/api/v1/kiosks/entrance").json())["message"] and v)
        assert "读卡失败" in view["message"] and view["card"] is None


def test_an_unknown_kiosk_is_a_clear_404(hall):
    with hall.client() as api:
        r = api.post("/api/v1/kiosks/nowhere/tickets", json={"service": "A"})
        assert (r.status_code, r.json()["error"]) == (404, "unknown_kiosk")


def test_hallctl_run_simulate_serves_the_kiosk_path_on_the_demo_hall(tmp_path):
    """`hallctl run --simulate`: the demo hall's printer and reader are simulators on ptys."""
    proc = HallProcess(tmp_path, "--simulate")
    proc.start()
    try:
        with proc.client() as api:
            assert api.post("/sim/id-readers/kiosk-id-reader/place",
                            json={"card": "young"}).status_code == 200
            wait_for(lambda: api.get("/api/v1/kiosks/entrance").json()["card"])
            r = api.post("/api/v1/kiosks/entrance/tickets", json={"service": "B"})
            assert r.status_code == 201 and r.json()["real_name"] and r.json()["printed"]
            printed = wait_for(lambda: api.get("/sim/printers/kiosk-printer/tickets").json())
            assert r.json()["number"] in printed[-1]["lines"] and "王**" in "".join(printed[-1]["lines"])
    finally:
        proc.stop()


# -- codes shown at the scanner: ID numbers and appointments ------------------------------------

def book(hall, api, slot="09:30", **kw) -> dict:
    boss = hall.login("boss", None)
    r = api.post("/api/v1/appointments", headers=boss,
                 json={"service": "B", "slot": f"2026-11-23T{slot}:00+08:00", **kw})
    assert r.status_code == 201, r.text
    return r.json()


def test_a_scanned_id_number_is_held_like_a_card(hall):
    with hall.client() as api:
        hall.scanner.scan("110101199003070978")
        card = wait_for(lambda: api.get("/api/v1/kiosks/entrance").json()["card"])
        assert card["id_masked"] == "1101**********0978"
        r = api.post("/api/v1/kiosks/entrance/tickets", json={"service": "C"})
        assert r.json()["real_name"] is True


def test_an_appointment_code_checks_in_and_prints_at_once(hall):
    with hall.client() as api:
        booking = book(hall, api, id_number=ELDER_ID, name="张建国")
        assert booking["code"].startswith("APT-") and booking["name_masked"] == "张**"
        hall.scanner.scan(booking["code"])  # a serial scanner: the answer shows on the screen
        slip = wait_for(lambda: hall.printer.tickets)[-1]
        assert "B001" in slip.text and "张**" in slip.text
        view = api.get("/api/v1/kiosks/entrance").json()
        assert "B001" in view["message"]
        boss = hall.login("boss", None)
        [listed] = api.get("/api/v1/appointments", headers=boss).json()
        assert (listed["status"], listed["ticket"]) == ("checked_in", "20261123-B001")
        ticket = api.get("/api/v1/tickets/20261123-B001").json()
        assert (ticket["channel"], ticket["appointment_at"]) == ("appointment", "2026-11-23T09:30:00+08:00")

        again = api.post("/api/v1/kiosks/entrance/scan", json={"code": booking["code"]})
        assert (again.status_code, again.json()["error"]) == (409, "appointment_used")


def test_a_typed_appointment_code_checks_in_through_the_api(hall):
    with hall.client() as api:
        code = book(hall, api, code="APT-HALL2026")["code"]
        r = api.post("/api/v1/kiosks/entrance/scan", json={"code": code})
        assert r.status_code == 200, r.text
        assert (r.json()["kind"], r.json()["number"], r.json()["printed"]) == ("appointment", "B001", True)


@pytest.mark.parametrize("slot,error", [("12:00", "appointment_not_due"), ("08:00", "appointment_expired")])
def test_an_appointment_outside_its_check_in_window_is_refused(hall, slot, error):
    hall.ctrl.clock.now = at("09:00")
    with hall.client() as api:
        code = book(hall, api, slot=slot)["code"]
        r = api.post("/api/v1/kiosks/entrance/scan", json={"code": code})
        assert (r.status_code, r.json()["error"]) == (409, error)
        assert hall.printer.tickets == []


def test_an_appointment_that_fails_to_print_stays_booked(hall):
    with hall.client() as api:
        code = book(hall, api)["code"]
        hall.printer.paper_after(40)
        r = api.post("/api/v1/kiosks/entrance/scan", json={"code": code})
        assert r.json()["error"] == "paper_out"
        boss = hall.login("boss", None)
        [listed] = api.get("/api/v1/appointments", headers=boss).json()
        assert (listed["status"], listed["ticket"]) == ("booked", None)


def test_unknown_codes_and_bookings_by_staff_are_refused(hall):
    with hall.client() as api:
        r = api.post("/api/v1/kiosks/entrance/scan", json={"code": "https://example.invalid/x"})
        assert (r.status_code, r.json()["error"]) == (422, "unknown_code")
        r = api.post("/api/v1/kiosks/entrance/scan", json={"code": "APT-NOSUCHCODE"})
        assert (r.status_code, r.json()["error"]) == (404, "unknown_appointment")
        staff = hall.login("s1", 1)
        r = api.post("/api/v1/appointments", headers=staff,
                     json={"service": "B", "slot": "2026-11-23T09:30:00+08:00"})
        assert (r.status_code, r.json()["error"]) == (403, "forbidden_role")


def test_estimate_accuracy_report_for_the_supervisor(hall):
    with hall.client() as api:
        api.post("/api/v1/kiosks/entrance/tickets", json={"service": "A"})
        staff = hall.login("s1", 1)
        hall.ctrl.clock.advance(minutes=5)
        api.post("/api/v1/windows/1/call", headers=staff)
        assert api.get("/api/v1/reports/estimates", headers=staff).status_code == 403
        report = api.get("/api/v1/reports/estimates", headers=hall.login("boss", None)).json()
        assert report["tickets"] == 1 and report["mean_wait_minutes"] == 5.0


def test_a_wrong_number_scanned_after_a_card_leaves_no_card_waiting(hall):
    with hall.client() as api:
        hall.reader.place("elderly")
        wait_for(lambda: api.get("/api/v1/kiosks/entrance").json()["card"])
        hall.reader.remove()
        r = api.post("/api/v1/kiosks/entrance/scan", json={"code": "110101195003070971"})
        assert (r.status_code, r.json()["error"]) == (422, "invalid_id_number")
        assert api.get("/api/v1/kiosks/entrance").json()["card"] is None
        ticket = api.post("/api/v1/kiosks/entrance/tickets", json={"service": "A"}).json()
        assert ticket["real_name"] is False  # not the previous citizen's card


def test_a_phone_typed_beside_a_card_is_sealed_with_it(hall):
    with hall.client() as api:
        hall.reader.place("young")
        wait_for(lambda: api.get("/api/v1/kiosks/entrance").json()["card"])
        bad = api.post("/api/v1/kiosks/entrance/tickets", json={"service": "A", "phone": "12345"})
        assert (bad.status_code, bad.json()["error"]) == (422, "invalid_phone")
        # a refusal ends the identity too: the card is placed again for the next try
        assert api.get("/api/v1/kiosks/entrance").json()["card"] is None
        empty = hall.reader.empty_finds
        hall.reader.remove()
        wait_for(lambda: hall.reader.empty_finds > empty)
        hall.reader.place("young")
        wait_for(lambda: api.get("/api/v1/kiosks/entrance").json()["card"])
        ok = api.post("/api/v1/kiosks/entrance/tickets", json={"service": "A", "phone": "13800131234"})
        assert ok.json()["phone_masked"] == "138****1234"
        stored = hall.ctrl.store.ticket(ok.json()["id"])
        assert hall.ctrl.sealer.open(stored.phone_sealed) == ("13800131234", None)
