"""A citizen's ID number, name and phone appear nowhere a hall shows or exports: not in the logs,
the event stream, the exports and reports, or any page's JSON. The one place they do is the
callback officer's personal-data view, and every look there is an audit row.

The story: a real-name ticket with a phone, served at window 2, a bad review on the window's
tablet pad (a case opens), a complaint by name, and the callback officer at work.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import zipfile


from controller.runtime.clock import ManualClock
from controller.runtime.logs import CommandIdFilter, JsonFormatter
from controller.core.hall import Device, Staff, StaffRole
from sim.mqtt_devices import SimulatedTabletPad
from tests.halls import PIN_HASH, at, small_hall
from tests.server import running_hall, wait_for

ID, NAME, PHONE = "11010119500307097X", "张建国", "13800131234"
OTHER_ID, OTHER_NAME, OTHER_PHONE = "110101199003070978", "李秀英", "13912345678"
UNMASKED = (ID, NAME, PHONE, "138 0013 1234", ID[6:14], "1950-03-07",
            OTHER_ID, OTHER_NAME, OTHER_PHONE)
DAY = "from=2026-11-23&to=2026-11-23"


def hall_with_a_tablet_pad():
    hall = small_hall({1: ("A",), 2: ("A",)})
    staff = dict(hall.staff)
    staff["officer"] = Staff("officer", "回访员", StaffRole.CALLBACK_OFFICER, PIN_HASH, demo=True)
    staff["admin"] = Staff("admin", "管理员", StaffRole.ADMIN, PIN_HASH, demo=True)
    return dataclasses.replace(hall, staff=staff, devices=(
        Device("tablet-2", "counter_keypad", "mqtt", topic="hall/window/2/keypad", window=2),
        Device("pad-2", "evaluator_pad", "mqtt", topic="hall/window/2/pad", window=2)))


def unmasked_in(text: str) -> list[str]:
    return [secret for secret in UNMASKED if secret in text]


def read_events(api, headers: dict[str, str], upto: int) -> str:
    """The event stream from the start, up to event `upto`."""
    seen, last = [], False
    with api.stream("GET", "/api/v1/events", headers={**headers, "Last-Event-ID": "0"}) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            seen.append(line)
            last = last or line == f"id: {upto}"
            if last and line == "":
                break
    return "\n".join(seen)


def xlsx_text(body: bytes) -> str:
    with zipfile.ZipFile(io.BytesIO(body)) as z:
        return "".join(z.read(n).decode("utf-8", "replace") for n in z.namelist())


def test_personal_data_shows_only_in_the_audited_personal_data_view(tmp_path, mosquitto, caplog):
    caplog.set_level(logging.DEBUG)
    # the log as `hallctl run --log-format json` writes it, beside caplog's records
    json_log = io.StringIO()
    as_json = logging.StreamHandler(json_log)
    as_json.addFilter(CommandIdFilter())
    as_json.setFormatter(JsonFormatter())
    logging.getLogger().addHandler(as_json)
    try:
        a_day_with_real_names(tmp_path, mosquitto)
    finally:
        logging.getLogger().removeHandler(as_json)
    logged = "\n".join(f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    assert len(caplog.records) > 10  # the logs were captured: the hall did talk
    assert unmasked_in(logged) == []
    lines = [json.loads(line) for line in json_log.getvalue().splitlines()]
    assert len(lines) > 10 and any("command_id" in line for line in lines)
    assert unmasked_in(json_log.getvalue()) == []


def a_day_with_real_names(tmp_path, mosquitto) -> None:
    clock = ManualClock(at("09:00"))
    with running_hall(hall_with_a_tablet_pad(), tmp_path, clock,
                      mqtt=(mosquitto.host, mosquitto.port)) as hall:
        pad = SimulatedTabletPad("sim-pad-2", mosquitto.host, mosquitto.port,
                                 "hall/window/2/pad").start()
        shown: dict[str, str] = {}  # what each response said, by where it came from
        try:
            with hall.client() as api:
                def get(path: str, headers: dict[str, str] | None = None) -> None:
                    r = api.get(path, headers=headers or {})
                    assert r.status_code == 200, (path, r.status_code, r.text[:200])
                    kind = r.headers.get("content-type", "")
                    shown[path] = xlsx_text(r.content) if "spreadsheet" in kind else r.text

                r = api.post("/api/v1/tickets", json={"service": "A", "id_number": ID, "name": NAME,
                                                      "phone": "138 0013 1234"})
                assert r.status_code == 201, r.text
                shown["POST /tickets"] = r.text
                ticket = r.json()["id"]
                s2 = hall.login("s2", 2)
                for step in ("call", "finish"):
                    r = api.post(f"/api/v1/windows/2/{step}", headers=s2)
                    assert r.status_code == 200, r.text
                    shown[f"POST /windows/2/{step}"] = r.text
                assert pad.wait_until(lambda s: s.get("state") == "prompt")
                pad.grade(5, tags=("态度",))  # 非常不满意, by name
                [case] = wait_for(lambda: hall.desk.list())
                officer, boss = hall.login("officer", None), hall.login("boss", None)
                admin = hall.login("admin", None)
                r = api.post("/api/v1/complaints", headers=boss, json={
                    "source": "phone", "description": "等候太久", "id_number": OTHER_ID,
                    "name": OTHER_NAME, "phone": OTHER_PHONE})
                assert r.status_code == 201, r.text
                shown["POST /complaints"] = r.text
                complaint = r.json()["id"]
                r = api.post(f"/api/v1/cases/{case.id}/assign", json={"officer": "officer"},
                             headers=officer)
                shown["POST /cases/assign"] = r.text

                for path in ("/api/v1/hall", "/api/v1/services", "/api/v1/pages",
                             f"/api/v1/tickets/{ticket}", "/api/v1/health"):
                    get(path)
                get("/api/v1/windows/2", s2)
                get("/api/v1/auth/me", s2)
                get("/api/v1/devices", boss)
                get("/metrics")  # the hall's monitoring (loopback)
                get("/api/v1/appointments", boss)
                for who, headers in (("officer", officer), ("boss", boss), ("admin", admin)):
                    get(f"/api/v1/cases?as={who}", headers)
                get(f"/api/v1/cases/{case.id}", officer)
                get(f"/api/v1/cases/{complaint}", officer)
                get("/api/v1/cases-figures", officer)
                for report in ("evaluations", "hall"):
                    for by in ("window", "staff", "service", "day"):
                        get(f"/api/v1/reports/{report}?{DAY}&by={by}", boss)
                    get(f"/api/v1/reports/{report}.csv?{DAY}", boss)
                    get(f"/api/v1/reports/{report}.xlsx?{DAY}", boss)
                for fmt in ("json", "csv", "xlsx"):
                    for mapping in ("national", "reversed"):
                        get(f"/api/v1/exports/grades?{DAY}&format={fmt}&mapping={mapping}", boss)
                for report in ("overtime", "attendance"):
                    get(f"/api/v1/reports/{report}?{DAY}", boss)
                    get(f"/api/v1/reports/{report}.csv?{DAY}", boss)
                for page in api.get("/api/v1/pages").json()["pages"]:
                    shown[page["path"]] = api.get(page["path"]).text
                # a last citizen (no name): an event every stream carries, so each read ends
                api.post("/api/v1/tickets", json={"service": "A"}).raise_for_status()
                upto = hall.ctrl.store.last_event_id()
                shown["events (public)"] = read_events(api, {}, upto)
                shown["events (officer)"] = read_events(api, officer, upto)

                assert "ticket_evaluated" in shown["events (officer)"]
                # the masked forms are what every one of those shows
                assert "1101**********097X" in shown[f"/api/v1/cases/{case.id}"]
                assert "138****1234" in shown[f"/api/v1/cases/{case.id}"]
                assert "1101**********097X" in shown[f"/api/v1/exports/grades?{DAY}&format=csv"
                                                     "&mapping=national"]
                leaks = {where: unmasked_in(text) for where, text in shown.items() if unmasked_in(text)}
                assert leaks == {}

                # the one way in: the callback officer's view, audited for each look
                r = api.get(f"/api/v1/cases/{case.id}/personal-data", headers=officer)
                assert r.status_code == 200
                assert (r.json()["citizen"]["id_number"], r.json()["citizen"]["name"],
                        r.json()["citizen"]["phone"]) == (ID, NAME, PHONE)
                assert {ID, NAME, PHONE} <= set(unmasked_in(r.text))  # the search does find them
                assert api.get(f"/api/v1/cases/{case.id}/personal-data",
                               headers=boss).status_code == 403
                views = hall.ctrl.store.query(
                    "SELECT actor, args, result FROM commands "
                    "WHERE name = 'case_personal_data_viewed' ORDER BY id")
                assert [(v["actor"], json.loads(v["args"])["case"], v["result"] == "ok")
                        for v in views] == [("staff:officer", case.id, True),
                                            ("staff:boss", case.id, False)]  # refused, recorded
        finally:
            pad.stop()
