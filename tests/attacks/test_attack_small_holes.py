"""Issue 14 item 8, the smaller holes, each as someone on the hall's LAN (or a careless admin)
would use it against `hallctl run` as a child process (tests/server.py): a forged
X-Forwarded-For, a Last-Event-ID that is a digit only to Unicode, ID numbers nobody was issued,
a slot in year 9999, a case handed to the accused, a formula for a name, a zone-less
--clock-start on a hall that has run before, a PIN of 000000, and the demo's PIN-1234
accounts on real devices."""

from __future__ import annotations

import datetime as dt
import io
import re

import httpx
import pytest
from openpyxl import load_workbook

from controller.security import pins
from controller.core.identity import check_digit
from tests import server
from tests.server import HallProcess

SUPERVISOR, OFFICER = "huangjianguo", "yangfan"


def login(api: httpx.Client, staff: str, window: int | None = None,
          pin: str = "1234") -> httpx.Response:
    return api.post("/api/v1/auth/login", json={"staff_id": staff, "pin": pin, "window": window})


def as_(api: httpx.Client, staff: str, window: int | None = None) -> dict[str, str]:
    r = login(api, staff, window)
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


def with_staff(text: str, staff_id: str, **fields: str) -> str:
    """The demo config with `fields` of one [[staff]] account replaced."""
    start = text.index(f'id = "{staff_id}"')
    end = text.find("[[", start)
    block = text[start:end]
    for key, value in fields.items():
        block, n = re.subn(rf"^{key} = .*$", f"{key} = {value}", block, flags=re.MULTILINE)
        assert n == 1, f"{staff_id} has no single {key}"
    return text[:start] + block + text[end:]


@pytest.fixture
def hall(tmp_path):
    ctl = HallProcess(tmp_path, "--simulate", rules={"address_tickets_per_minute": 3})
    ctl.start()
    yield ctl
    ctl.stop()


def test_a_forged_x_forwarded_for_does_not_escape_the_per_address_ticket_limit(tmp_path):
    """A script on the LAN takes tickets with a new X-Forwarded-For each time: it is still one
    address (uvicorn used to trust the header from 127.0.0.1 without being told to)."""
    ctl = HallProcess(tmp_path, "--simulate", rules={"address_tickets_per_minute": 3})
    ctl.start()
    try:
        with ctl.client() as api:
            codes = [api.post("/api/v1/tickets", json={"service": "A"},
                              headers={"X-Forwarded-For": f"10.9.8.{i}"}).status_code
                     for i in range(1, 6)]
        assert codes == [201, 201, 201, 429, 429]
    finally:
        ctl.stop()
    # the hall's own reverse proxy, named with --trusted-proxy, does tell the clients apart
    proxied = HallProcess(tmp_path / "proxied", "--simulate", "--trusted-proxy", "127.0.0.1",
                          rules={"address_tickets_per_minute": 3})
    (tmp_path / "proxied").mkdir()
    proxied.start()
    try:
        with proxied.client() as api:
            codes = [api.post("/api/v1/tickets", json={"service": "A"},
                              headers={"X-Forwarded-For": f"10.9.8.{i}"}).status_code
                     for i in range(1, 6)]
        assert codes == [201] * 5
    finally:
        proxied.stop()


def test_a_last_event_id_that_is_a_digit_only_to_unicode_is_ignored_not_a_500(hall):
    """'²'.isdigit() is True and int('²') raises: the stream starts from now instead."""
    with hall.client() as api:
        with api.stream("GET", "/api/v1/events", headers={"Last-Event-ID": b"\xb2"}) as r:
            assert r.status_code == 200
            first = next(r.iter_bytes())
            assert first.startswith(b"retry:")


def id_number(first17: str) -> str:
    return first17 + check_digit(first17)


@pytest.mark.parametrize("number, why", [
    (id_number("11010120990101123"), "born in 2099"),
    (id_number("10000019900101123"), "province 10 does not exist"),
    (id_number("00000019900101123"), "region 000000"),
    (id_number("90012019900101123"), "a 2023 foreign card with region 00"),
    (id_number("81123419900101123"), "a Hong Kong permit is 810000"),
])
def test_id_numbers_nobody_was_issued_take_no_real_name_ticket(hall, number, why):
    with hall.client() as api:
        r = api.post("/api/v1/tickets", json={"service": "A", "id_number": number, "name": "张三"})
        assert (r.status_code, r.json()["error"]) == (422, "invalid_id_number"), why
        ok = api.post("/api/v1/tickets", json={"service": "A", "name": "张三",
                                               "id_number": id_number("11010119900101123")})
        assert ok.status_code == 201, ok.text


def test_an_appointment_in_year_9999_is_refused(hall):
    with hall.client() as api:
        boss = as_(api, SUPERVISOR)
        far = api.post("/api/v1/appointments", headers=boss,
                       json={"service": "A", "slot": "9999-12-31T23:59:00+08:00"})
        assert (far.status_code, far.json()["error"]) == (422, "invalid_appointment")
        assert "90 天" in far.json()["message"]
        soon = (dt.date.today() + dt.timedelta(days=7)).isoformat()
        r = api.post("/api/v1/appointments", headers=boss,
                     json={"service": "A", "slot": f"{soon}T10:00:00+08:00"})
        assert r.status_code == 201, r.text
        assert [a["slot"][:4] for a in api.get("/api/v1/appointments", headers=boss).json()
                if a["slot"].startswith("9999")] == []


def test_a_complaint_is_never_handed_to_the_accused_or_to_an_unknown_id(hall):
    """A supervisor hands the complaint against 陈静 to 陈静 herself, or mistypes the officer."""
    with hall.client() as api:
        boss = as_(api, SUPERVISOR)
        r = api.post("/api/v1/complaints", headers=boss,
                     json={"source": "phone", "description": "窗口人员态度生硬", "window": 1,
                           "staff_id": "chenjing", "service": "A"})
        assert r.status_code == 201, r.text
        case = r.json()["id"]
        to_accused = api.post(f"/api/v1/cases/{case}/assign", headers=boss, json={"officer": "chenjing"})
        assert (to_accused.status_code, to_accused.json()["error"]) == (403, "assignee_is_staff")
        to_nobody = api.post(f"/api/v1/cases/{case}/assign", headers=boss, json={"officer": "yangfna"})
        assert (to_nobody.status_code, to_nobody.json()["error"]) == (404, "unknown_staff_member")
        assert api.get(f"/api/v1/cases/{case}", headers=boss).json()["state"] == "open"
        r = api.post(f"/api/v1/cases/{case}/assign", headers=boss, json={"officer": OFFICER})
        assert r.status_code == 200 and r.json()["state"] == "assigned"


def test_a_name_beginning_with_equals_stays_text_in_the_xlsx(tmp_path, monkeypatch):
    """A name that is a formula (=HYPERLINK to a phishing page) reaches the supervisor's Excel
    as the text it is, never as a formula cell."""
    evil = '=HYPERLINK("http://attacker.invalid/","陈静")'
    config = tmp_path / "evil-hall.toml"
    config.write_text(with_staff(server.DEMO_CONFIG.read_text(encoding="utf-8"), "chenjing",
                                 name='"' + evil.replace('"', '\\"') + '"'), encoding="utf-8")
    monkeypatch.setattr(server, "DEMO_CONFIG", config)
    ctl = HallProcess(tmp_path, "--simulate")
    ctl.start()
    try:
        with ctl.client() as api:
            as_(api, "chenjing", 1)
            boss = as_(api, SUPERVISOR)
            r = api.get("/api/v1/reports/attendance.xlsx", headers=boss)
            assert r.status_code == 200, r.text
        cells = [c for row in load_workbook(io.BytesIO(r.content)).active.iter_rows() for c in row]
        named = [c for c in cells if isinstance(c.value, str) and "attacker.invalid" in c.value]
        assert named, "the name is not in the attendance sheet"
        assert all(c.data_type == "s" and c.value == evil for c in named)
        assert [c.coordinate for c in cells if c.data_type == "f"] == []
    finally:
        ctl.stop()


def test_a_zone_less_clock_start_runs_a_hall_that_has_run_before(tmp_path):
    """`--clock-start 2027-03-01T09:00` (no +08:00) is the hall's own time: the second start,
    on a data dir with records, used to crash comparing it with the recorded (zoned) times."""
    ctl = HallProcess(tmp_path, "--simulate", "--clock-start", "2027-03-01T09:00")
    ctl.start()
    with ctl.client() as api:
        assert api.post("/api/v1/tickets", json={"service": "A"}).status_code == 201
    ctl.stop()
    ctl.start()
    try:
        with ctl.client() as api:
            clock = api.get("/api/v1/health").json()["clock"]
            assert clock["hall_time"].startswith("2027-03-01T09:") and clock["hall_time"].endswith("+08:00")
            assert api.post("/api/v1/tickets", json={"service": "A"}).json()["number"] == "A002"
    finally:
        ctl.stop()


def test_a_trivial_pin_neither_hashes_nor_logs_in(tmp_path, monkeypatch, capsys):
    """000000 is the first PIN anyone tries: `hallctl hash-pin` refuses it (and 123456, 121212,
    short ones), and an account whose hash was made of one before cannot log in with it."""
    from controller.cli import main
    for weak in ("000000", "123456", "987654", "121212", "1234", "11112222"):
        assert main(["hash-pin", "--pin", weak]) == 2, weak
    assert "PIN" in capsys.readouterr().err
    assert main(["hash-pin", "--pin", "739251"]) == 0
    good = capsys.readouterr().out.strip()

    text = server.DEMO_CONFIG.read_text(encoding="utf-8")
    text = with_staff(text, "chenjing", pin_hash=f'"{pins.hash_pin("000000")}"', demo="false")
    text = with_staff(text, "liuyang", pin_hash=f'"{good}"', demo="false")
    config = tmp_path / "live-hall.toml"
    config.write_text(text, encoding="utf-8")
    monkeypatch.setattr(server, "DEMO_CONFIG", config)
    ctl = HallProcess(tmp_path, "--simulate")
    ctl.start()
    try:
        with ctl.client() as api:
            r = login(api, "chenjing", 1, pin="000000")
            assert (r.status_code, r.json()["error"]) == (403, "weak_pin")
            assert "hash-pin" in r.json()["message"]
            [one] = [w for w in api.get("/api/v1/hall").json()["windows"] if w["number"] == 1]
            assert one["staff"] is None
            assert login(api, "liuyang", 2, pin="739251").status_code == 200
            assert login(api, "wangfang", 3).status_code == 200  # demo accounts keep 1234
    finally:
        ctl.stop()


def test_the_demo_file_on_real_devices_warns_loudly_about_its_pin_1234_accounts(tmp_path):
    """The demo hall without --simulate drives real devices with 23 accounts anyone can log in to."""
    ctl = HallProcess(tmp_path)
    ctl.start()
    try:
        with ctl.client() as api:
            assert login(api, "chenjing", 1).status_code == 200  # it still runs, as a demo
    finally:
        ctl.stop()
    warning = [line for line in ctl.output().splitlines() if "WARNING" in line and "1234" in line]
    assert len(warning) == 1 and "--simulate" in warning[0] and "demo" in warning[0]
    n = len(re.findall(r"^demo = true$", server.DEMO_CONFIG.read_text(encoding="utf-8"), re.MULTILINE))
    assert f"{n} demo accounts" in warning[0]
    simulated = HallProcess(tmp_path / "sim", "--simulate")
    (tmp_path / "sim").mkdir()
    simulated.start()
    simulated.stop()
    assert "1234" not in simulated.output()

