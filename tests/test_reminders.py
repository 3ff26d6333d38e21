"""到号提醒 by text message (issue 17 item 2), through `hallctl run` and the simulated SMS
gateway (sim/sms_gateway.py, a real HTTP server that records what it gets).

Given a citizen who left a mobile number for ticket B004 and a hall that reminds at 2 ahead,
when the windows call, then the gateway gets one 即将叫到 message when two are left before
B004 and one 请到 6 号窗口 when it is called: each once, in order, across a restart of the
controller, also when the gateway hung while the call happened (the message is sent after
the restart, not lost and not twice). While the gateway hangs the hall goes on calling.
"""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import httpx
import pytest

from sim.sms_gateway import SmsGatewaySim
from tests.server import DEMO_CONFIG, HallProcess, wait_for

PHONE = "13800138000"


@pytest.fixture
def gateway():
    g = SmsGatewaySim().start()
    try:
        yield g
    finally:
        g.close()


class RemindingHall(HallProcess):
    """The demo hall with its [reminders] pointed at the simulated gateway."""

    def __init__(self, tmp_path, gateway: SmsGatewaySim, *args: str, ahead: int = 2,
                 timeout: int = 1, attempts: int = 5) -> None:
        super().__init__(tmp_path, *args)
        text = DEMO_CONFIG.read_text(encoding="utf-8")
        old = re.search(r"^\[reminders\]\n(?:[^\[].*\n|\n)*?(?=\n#|\n\[)", text, re.MULTILINE)
        assert old, "the demo config has no [reminders] table"
        self.config = tmp_path / "demo-hall.toml"
        self.config.write_text(text.replace(old.group(0), (
            f'[reminders]\nahead = {ahead}\nurl = "{gateway.url}"\ntimeout_seconds = {timeout}\n'
            f"attempts = {attempts}\n")), encoding="utf-8")

    def demo_config(self) -> Path:
        return self.config


def reminding_hall(tmp_path, gateway: SmsGatewaySim) -> HallProcess:
    return RemindingHall(tmp_path, gateway)


def take(hall, service: str) -> dict:
    with hall.client() as kiosk:
        r = kiosk.post("/api/v1/tickets", json={"service": service})
    assert r.status_code == 201, r.text
    return r.json()


def opt_in(hall, ticket_id: str, phone: str, kiosk: bool = True) -> httpx.Response:
    with hall.client(kiosk=kiosk) as c:
        return c.post(f"/api/v1/tickets/{ticket_id}/reminder", json={"phone": phone})


def staff(hall, staff_id: str, window: int) -> httpx.Client:
    c = httpx.Client(base_url=hall.url, timeout=10)
    r = c.post("/api/v1/auth/login", json={"staff_id": staff_id, "pin": "1234", "window": window})
    assert r.status_code == 200, r.text
    c.headers["Authorization"] = f"Bearer {r.json()['token']}"
    return c


def audit(hall) -> list[tuple[str, str]]:
    db = sqlite3.connect(hall.data / "hall.sqlite3")
    try:
        return db.execute("SELECT name, args FROM commands WHERE name LIKE 'reminder%' "
                          "ORDER BY id").fetchall()
    finally:
        db.close()


def test_one_reminder_and_one_call_message_each_once_across_a_restart(tmp_path, gateway):
    hall = reminding_hall(tmp_path, gateway)
    hall.start()
    try:
        tickets = [take(hall, "B") for _ in range(4)]
        b004 = tickets[3]
        r = opt_in(hall, b004["id"], PHONE)
        assert r.status_code == 201 and r.json()["phone_masked"] == "138****8000", r.text
        assert gateway.messages == []  # three ahead: not yet

        window = staff(hall, "zhoutao", 6)
        assert window.post("/api/v1/windows/6/call").json()["ticket"]["id"] == tickets[0]["id"]
        [ahead] = gateway.wait_for(1)
        assert ahead.to == PHONE and "B004" in ahead.text and "即将叫到，前面还有 2 人" in ahead.text
        assert "不动产登记" in ahead.text and ahead.text.startswith("【万州区政务服务中心】")

        # the gateway hangs: the hall calls on regardless, and B004's call is answered at once
        gateway.hang()
        for t in tickets[1:]:
            assert window.post("/api/v1/windows/6/finish").status_code == 200
            called = window.post("/api/v1/windows/6/call")
            assert called.status_code == 200 and called.json()["ticket"]["id"] == t["id"]
        gateway.wait_for(2, taken=False)  # the call's message reached the hung gateway
        assert window.post("/api/v1/windows/6/recall").status_code == 200
        assert httpx.get(f"{hall.url}/api/v1/hall", timeout=5).status_code == 200
        assert len(gateway.messages) == 1  # nothing taken while it hangs

        # the controller stops before the call's message was sent: after the restart it is
        window.close()
        assert hall.stop() == 0
        gateway.release()
        hall.start(same_port=True)
        messages = gateway.wait_for(2)
        assert [m.id for m in messages] == [f"{b004['id']}-ahead", f"{b004['id']}-called"]
        assert messages[1].to == PHONE and messages[1].text == \
            "【万州区政务服务中心】请 B004 号到 6 号窗口办理不动产登记。"

        # sent again after the restart (the hung try may have reached it too: dropped as a copy)
        assert sum(m.id.endswith("-called") for m in gateway.received) >= 2

        # once both are recorded sent, another restart sends nothing more
        wait_for(lambda: [n for n, _ in audit(hall)].count("reminder_sent") == 2, 10)
        received = len(gateway.received)
        assert hall.stop() == 0
        hall.start(same_port=True)
        take(hall, "B")
        assert len(gateway.received) == received and len(gateway.messages) == 2
    finally:
        if hall.proc and hall.proc.poll() is None:
            hall.stop()

    # every step in the log, the phone masked only; the phone forgotten once the call was sent
    steps = audit(hall)
    names = [n for n, _ in steps]
    assert names[0] == "reminder_opt_in" and names.count("reminder_due") == 2
    assert names.count("reminder_sent") == 2
    assert all(PHONE not in args for _, args in steps) and "138****8000" in steps[0][1]
    db = sqlite3.connect(hall.data / "hall.sqlite3")
    try:
        assert db.execute("SELECT phone_sealed, phone_masked FROM reminders").fetchall() == \
            [(None, "138****8000")]
        dump = "\n".join(db.iterdump())
    finally:
        db.close()
    assert PHONE not in dump


def test_a_failing_gateway_is_tried_again_and_the_queue_never_waits(tmp_path, gateway):
    hall = reminding_hall(tmp_path, gateway)
    hall.start()
    try:
        gateway.fail(500)
        first = take(hall, "C")
        assert opt_in(hall, first["id"], "139 0013 9000").status_code == 201  # 0 ahead: due now
        gateway.wait_for(1, taken=False)
        window = staff(hall, "wujuan", 7)
        assert window.post("/api/v1/windows/7/call").json()["ticket"]["id"] == first["id"]
        gateway.fail(200)  # back: the retry goes through, each message once, in order
        messages = gateway.wait_for(2, timeout=20)
        assert [m.id.rsplit("-", 1)[1] for m in messages] == ["ahead", "called"]
        assert gateway.refused >= 1
        window.close()
    finally:
        hall.stop()
    failed = [args for name, args in audit(hall) if name == "reminder_send_failed"]
    assert failed and "HTTP 500" in failed[0]
    # the supervisor saw the gateway fail, and come back
    db = sqlite3.connect(hall.data / "hall.sqlite3")
    try:
        health = [json.loads(d) for (d,) in db.execute(
            "SELECT data FROM events WHERE kind = 'device_health' AND data LIKE '%sms-gateway%'")]
    finally:
        db.close()
    assert [h["state"] for h in health] == ["fault", "online"] and "HTTP 500" in health[0]["detail"]


def test_opting_in_is_checked_and_refused_plainly(tmp_path, gateway):
    hall = reminding_hall(tmp_path, gateway)
    hall.start()
    try:
        t = take(hall, "D")
        landline = opt_in(hall, t["id"], "023-68861234")
        assert landline.status_code == 422 and "手机" in landline.json()["message"]
        assert audit(hall)[-1][0] == "reminder_opt_in"  # the refusal is an audit row
        assert opt_in(hall, t["id"], PHONE, kiosk=False).status_code == 401  # anyone on the LAN
        assert opt_in(hall, t["id"], PHONE).status_code == 201
        again = opt_in(hall, t["id"], "13900139000")
        assert again.status_code == 409 and again.json()["error"] == "reminder_exists"
        assert opt_in(hall, "20990101-Z001", PHONE).status_code == 404
    finally:
        hall.stop()
    assert all(PHONE not in args and "68861234" not in args for _, args in audit(hall))


# --- the citizen's way through the pages -------------------------------------------------------

def test_a_citizen_opts_in_at_the_kiosk_page_and_follows_the_ticket_on_the_phone(
        browser, tmp_path, gateway):
    from playwright.sync_api import expect

    from tests.browser import KIOSK, open_page, screenshot

    hall = RemindingHall(tmp_path, gateway, "--simulate", ahead=1, timeout=2)
    hall.start()
    try:
        take(hall, "E")
        kiosk = open_page(browser, hall.kiosk_page(), KIOSK)
        kiosk.click("button.service[data-service='E']")
        expect(kiosk.locator("#ticket-number")).to_have_text("E002")
        kiosk.click("#remind")
        expect(kiosk.locator("#remind-why")).to_contain_text("前面还剩 1 人时")
        for key in "023":  # not a mobile: said so on the spot
            kiosk.click(f"#remind-keypad button[data-key='{key}']")
        kiosk.click("#remind-ok")
        expect(kiosk.locator("#remind-error")).to_have_text("请输入 11 位手机号码（以 1 开头）")
        for _ in range(3):
            kiosk.click("#remind-keypad button[data-key='⌫']")
        for key in "13912345678":
            kiosk.click(f"#remind-keypad button[data-key='{key}']")
        kiosk.click("#remind-ok")
        expect(kiosk.locator("#ticket-reminder")).to_have_text("到号短信提醒：139****5678")
        screenshot(kiosk, "kiosk-reminder", "#ticket-reminder")
        [ahead] = gateway.wait_for(1)  # one ahead already: the reminder goes at once
        assert ahead.to == "13912345678" and "E002" in ahead.text
        assert kiosk.errors == []

        slip = httpx.get(f"{hall.url}/sim/printers/kiosk-printer/tickets?last=1", timeout=5).json()[-1]
        phone = open_page(browser, slip["qr"][0], {"width": 390, "height": 844})
        expect(phone.locator("#number")).to_have_text("E002")
        window = staff(hall, "majun", 10)
        window.post("/api/v1/windows/10/call").raise_for_status()
        window.post("/api/v1/windows/10/finish").raise_for_status()
        assert window.post("/api/v1/windows/10/call").json()["ticket"]["number"] == "E002"
        expect(phone.locator("#headline")).to_have_text("请到 10 号窗口")
        called = gateway.wait_for(2)[1]
        assert called.text.endswith("请 E002 号到 10 号窗口办理市场主体登记。")
        assert phone.errors == []
        window.close()
    finally:
        hall.stop()


# --- the phone as personal data ---------------------------------------------------------------

def test_a_reminders_phone_is_resealed_by_a_key_rotation_and_gone_the_next_day(tmp_path, monkeypatch):
    """Opted in, never sent (the desk's sender is not started): the sealed phone is rewritten by
    `hallctl rotate-key` and removed by the next day's purge, the masked form kept."""
    import datetime as dt

    from controller.cli import main, open_hall
    from controller.config.settings import ReminderSettings
    from controller.core import commands as c
    from controller.entrance.reminders import ReminderDesk
    from controller.runtime.clock import ManualClock
    from controller.security.privacy import ENV_KEY, IdentitySealer, read_secret
    from drivers.sms import HttpGateway
    from tests.halls import at, small_hall

    monkeypatch.delenv(ENV_KEY, raising=False)
    data, hall = tmp_path / "data", small_hall({1: ("A",)})
    day = dt.date(2026, 11, 23)
    clock = ManualClock(at("09:00", day))
    settings = ReminderSettings(True, 3, url="http://127.0.0.1:9/sms")

    def phone_sealed() -> str | None:
        db = sqlite3.connect(data / "hall.sqlite3")
        try:
            return db.execute("SELECT phone_sealed FROM reminders").fetchone()[0]
        finally:
            db.close()

    ctrl, _ = open_hall(hall, data, clock)
    ticket = ctrl.execute(c.IssueTicket("A"), "kiosk").ticket
    assert ReminderDesk(ctrl, settings, HttpGateway(settings.url)).opt_in(
        ticket.id, PHONE, "kiosk:entrance") == "138****8000"
    before = phone_sealed()
    assert ctrl.sealer.open(before)[0] == PHONE
    ctrl.close()
    ctrl.store.close()

    assert main(["rotate-key", "--data-dir", str(data)]) == 0
    after = phone_sealed()
    assert after != before
    assert IdentitySealer(read_secret(data / "secret.key")).open(after)[0] == PHONE

    clock.now = at("09:00", day + dt.timedelta(days=1))
    ctrl, _ = open_hall(hall, data, clock)
    try:
        ctrl.tick()  # the first tick of the next day
        assert phone_sealed() is None
        assert ctrl.store.query("SELECT phone_masked FROM reminders") == [{"phone_masked": "138****8000"}]
    finally:
        ctrl.close()
        ctrl.store.close()


# --- the hall file's [reminders] and the gateway registry -------------------------------------

@pytest.mark.parametrize("reminders,key,says", [
    ({"url": "ftp://sms.example.cn"}, "reminders.url", "http://"),
    ({"enabled": True}, "reminders.url", "no SMS gateway url"),
    ({"url": "http://sms.lan/send", "gateway": "carrier-pigeon"}, "reminders.gateway", '"http"'),
    ({"url": "http://sms.lan/send", "ahead": 0}, "reminders.ahead", "from 1 to 50"),
    ({"url": "http://sms.lan/send", "retries": 3}, "reminders.retries", "unknown key"),
])
def test_a_bad_reminders_table_names_its_key(reminders, key, says):
    from controller.config.hall import ConfigError, parse_config
    from controller.config.tomlkeys import read_toml

    data = read_toml(DEMO_CONFIG)
    data["reminders"] = reminders
    with pytest.raises(ConfigError) as e:
        parse_config(data)
    assert e.value.key == key and says in e.value.reason


def test_a_gateway_kind_of_the_halls_own_is_one_registration_and_one_line(tmp_path, monkeypatch):
    """A vendor's SMS API that is no JSON POST: its class, `register_gateway`, and
    `gateway = "<kind>"` in the hall file; the assembly builds the desk with it."""
    from controller.assembly import open_hall, open_reminders
    from controller.config.hall import parse_config
    from controller.config.tomlkeys import read_toml
    from controller.runtime.clock import ManualClock
    from drivers import sms
    from tests.halls import at

    class VendorGateway:
        def __init__(self, url: str, timeout: float, token: str | None) -> None:
            self.url, self.timeout, self.token = url, timeout, token

        def send(self, message) -> None:
            raise sms.GatewayError("not in this test")

    monkeypatch.setitem(sms.GATEWAYS, "vendor", VendorGateway)
    monkeypatch.setenv("HALL_SMS_TOKEN", "s3cret")
    data = read_toml(DEMO_CONFIG)
    data["reminders"] = {"gateway": "vendor", "url": "https://sms.vendor.cn/api",
                         "token_env": "HALL_SMS_TOKEN", "timeout_seconds": 4}
    config = parse_config(data)
    assert (config.reminders.enabled, config.reminders.ahead) == (True, 3)
    ctrl, _ = open_hall(config.hall, tmp_path, ManualClock(at("09:00")))
    desk = open_reminders(ctrl, config.reminders)
    try:
        gateway = desk.gateway
        assert isinstance(gateway, VendorGateway) and desk.enabled
        assert (gateway.url, gateway.timeout, gateway.token) == ("https://sms.vendor.cn/api", 4.0, "s3cret")
    finally:
        desk.stop()
        ctrl.close()
        ctrl.store.close()


def test_a_call_made_while_the_desk_was_down_is_texted_when_it_starts_again(tmp_path, gateway):
    """The controller stopped between committing a call and writing its message (the desk was
    not listening): at the next start the desk finds the ticket called and texts it, once."""
    from controller.assembly import open_hall
    from controller.config.settings import ReminderSettings
    from controller.core import commands as c
    from controller.entrance.reminders import ReminderDesk
    from controller.runtime.clock import ManualClock
    from drivers.sms import HttpGateway
    from tests.halls import at, small_hall

    hall = small_hall({1: ("A",)})
    ctrl, _ = open_hall(hall, tmp_path, ManualClock(at("09:00")))
    settings = ReminderSettings(True, 3, url=gateway.url)
    try:
        first = ctrl.execute(c.IssueTicket("A"), "kiosk").ticket
        mine = ctrl.execute(c.IssueTicket("A"), "kiosk").ticket
        desk = ReminderDesk(ctrl, settings, HttpGateway(gateway.url)).start()
        desk.opt_in(mine.id, PHONE, "kiosk:entrance")  # one ahead: the reminder at once
        assert desk.drain(5)  # taken by the gateway and recorded sent
        desk.stop()

        ctrl.execute(c.Login(1, "s1"), "staff:s1")
        assert ctrl.execute(c.CallNext(1), "staff:s1").ticket.id == first.id
        ctrl.execute(c.Finish(1), "staff:s1")
        assert ctrl.execute(c.CallNext(1), "staff:s1").ticket.id == mine.id

        desk = ReminderDesk(ctrl, settings, HttpGateway(gateway.url)).start()
        try:
            messages = gateway.wait_for(2)
            assert [m.id for m in messages] == [f"{mine.id}-ahead", f"{mine.id}-called"]
            assert messages[1].text.endswith(f"请 {mine.label} 号到 1 号窗口办理{hall.services['A'].name}。")
            assert desk.drain(5) and len(gateway.received) == 2
        finally:
            desk.stop()
    finally:
        ctrl.close()
        ctrl.store.close()
