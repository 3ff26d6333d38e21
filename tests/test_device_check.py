"""The Admin page's 设备自检 and 下班关机 against a hall of simulated devices: a kiosk printer,
reader and scanner on ptys, keypads, pads and bars on RS-485, a tablet window and the main
display on a real Mosquitto."""

from __future__ import annotations

import json

import dataclasses
import time

import pytest

from controller.runtime.clock import ManualClock
from controller.core.hall import Staff, StaffRole
from drivers.caller_display import bar_lines
from drivers.counter_keypad.codec import PAD_BLANK, PAD_PROMPT
from sim.mqtt_devices import SimulatedMqttDisplay, SimulatedTabletKeypad, SimulatedTabletPad
from tests.halls import CALLING_VOICE, PIN_HASH, at, calling_hall, kiosk_hall
from tests.server import running_hall, wait_for

CHECK = "/api/v1/admin/device-check"
END_OF_DAY = "/api/v1/admin/end-of-day"
FLASH = 0.4  # seconds a test text stays up in these tests


def check_hall():
    """The calling hall with an entrance kiosk and an admin account."""
    hall = calling_hall()
    admin = Staff("admin", "管理员", StaffRole.ADMIN, PIN_HASH, demo=True)
    return dataclasses.replace(hall, staff={**hall.staff, "admin": admin},
                               devices=kiosk_hall().devices + hall.devices)


@pytest.fixture
def hall(tmp_path, mosquitto):
    with running_hall(check_hall(), tmp_path, ManualClock(at("08:50")), simulate=True,
                      voice=CALLING_VOICE, mqtt=(mosquitto.host, mosquitto.port)) as h:
        h.device_check.flash_seconds = FLASH
        h.printer = h.sim.printers["printer-1"]
        h.bus = next(iter(h.sim.buses.values()))
        mqtt = (mosquitto.host, mosquitto.port)
        h.main = SimulatedMqttDisplay("sim-main", *mqtt, "hall/display/main").start()
        h.bar2 = SimulatedMqttDisplay("sim-bar-2", *mqtt, "hall/window/2/display").start()
        h.pad2 = SimulatedTabletPad("sim-pad-2", *mqtt, "hall/window/2/pad").start()
        h.tablet = SimulatedTabletKeypad("sim-tablet-2", *mqtt, "hall/window/2/keypad").start()
        h.staff3 = h.login("s3", 3)
        h.admin = h.login("admin", None)
        # every device, the main display too, has said it is there before the day's check
        wait_for(lambda: all(h.ctrl.devices().get(d.id, ("",))[0] == "online"
                             for d in h.ctrl.hall.devices), 5)
        try:
            yield h
        finally:
            for device in (h.main, h.bar2, h.pad2, h.tablet):
                device.stop()


def run_check(hall) -> dict:
    with hall.client() as api:
        r = api.post(CHECK, headers=hall.admin)
    assert r.status_code == 200, r.text
    return r.json()


def rows(result: dict) -> dict[str, dict]:
    return {row["device"]: row for row in result["devices"]}


def shows_now(hall, window: int):
    """A check that the simulated bar shows the window's state as the hall has it now
    (an Onbon bar shows its lines as one)."""
    return lambda bar: bar.text.split() == " ".join(bar_lines(hall.calling.bar_state(window))).split()


def test_the_morning_check_prints_a_test_ticket_and_flashes_every_screen_and_pad(hall):
    result = run_check(hall)

    failed = [r for r in result["devices"] if not r["ok"]]
    assert failed == [] and result["ok"], failed
    assert result["counts"] == {"total": 12, "ok": 12, "failed": 0}
    by_device = rows(result)
    assert {d: r["action"] for d, r in by_device.items()} == {
        "printer-1": "打印测试票", "reader-1": "状态查询", "scanner-1": "状态查询",
        "keypad-1": "状态查询", "keypad-3": "状态查询", "tablet-2": "状态查询",
        "pad-3": "评价器测试提示", "pad-2": "评价器测试提示",
        "bar-1": "屏幕闪烁", "bar-3": "屏幕闪烁", "bar-2": "屏幕闪烁", "main": "屏幕闪烁"}
    assert by_device["bar-3"] == {"device": "bar-3", "kind": "caller_display", "kind_name": "窗口屏",
                                  "window": 3, "answered": True, "state": "online", "detail": "",
                                  "action": "屏幕闪烁", "ok": True, "problem": None}
    assert result["seconds"] < 3

    # the printer printed a test slip, with the hall's name and no citizen's data
    slip = wait_for(lambda: hall.printer.tickets)[-1]
    assert "设备自检 测试票" in slip.text and "测试大厅" in slip.text and "printer-1" in slip.text
    assert "取号人" not in slip.text and slip.qr == []

    # each bar showed the test text, then its window's state again
    for name, window in (("bar-3", 3), ("bar-1", 1)):
        bar = hall.sim.bars[name]
        assert any("设备自检" in " ".join(lines) for lines in bar.history), (name, bar.history)
        assert bar.wait_until(shows_now(hall, window), 2), (name, bar.showing)
    assert hall.sim.bars["bar-3"].showing == ["3号窗口 欢迎光临"]  # s3 is logged in there
    assert any("设备自检" in s["text"] for s in hall.bar2.history)
    assert hall.bar2.wait_until(lambda s: "设备自检" not in s["text"])

    # the main display showed a test screen, then the hall
    assert any(s.get("notice") == "设备自检 测试画面" for s in hall.main.history)
    assert hall.main.wait_until(lambda s: "notice" not in s and
                                {"window": 3, "text": "空闲 员工3"} in s["windows"])

    # each pad showed a test prompt, then went blank; no evaluation was opened
    assert any((a, f, t) == (13, PAD_PROMPT, "设备自检") for a, f, t in hall.bus.shown)
    # (the blank comes from the calling floor's worker after FLASH; under load, later)
    pad3 = lambda: [(f, t) for a, f, t in hall.bus.shown if a == 13]  # noqa: E731
    try:
        wait_for(lambda: pad3()[-1][0] == PAD_BLANK, 10)
    except AssertionError:
        raise AssertionError(f"pad-3 showed {pad3()[-4:]}; bus errors {hall.bus.errors}") from None
    assert any(s.get("state") == "prompt" and s["staff"] == "设备自检" for s in hall.pad2.display.history)
    assert hall.pad2.wait_until(lambda s: s == {"state": "blank"})
    assert all(w.evaluating is None for w in hall.ctrl.windows().values())

    # the page can show (and print) it again, and the check is in the audit log
    with hall.client() as api:
        assert api.get(CHECK, headers=hall.admin).json() == result
    audit = list(hall.ctrl.store.query("SELECT actor, args FROM commands WHERE name = 'device_check'"))
    assert len(audit) == 1 and audit[0]["actor"] == "staff:admin"
    logged = json.loads(audit[0]["args"])
    assert (logged["failed"], logged["total"]) == (0, 12)


def test_a_printer_out_of_paper_an_unplugged_bar_and_an_offline_tablet_are_reported(hall):
    hall.printer.paper = "out"
    hall.sim.bars["bar-3"].unplug()
    hall.bar2.stop()  # the MQTT window display is switched off
    wait_for(lambda: hall.ctrl.devices()["bar-2"][0] == "offline")

    started = time.monotonic()
    result = run_check(hall)
    assert time.monotonic() - started < 3  # dead devices do not hold the check up

    by_device = rows(result)
    bad = {d for d, r in by_device.items() if not r["ok"]}
    assert bad == {"printer-1", "bar-3", "bar-2"}
    assert result["counts"] == {"total": 12, "ok": 9, "failed": 3} and not result["ok"]
    printer = by_device["printer-1"]
    assert printer["answered"] and "缺纸" in printer["problem"]
    assert (printer["state"], printer["detail"]) == ("fault", "缺纸")
    assert not by_device["bar-3"]["answered"] and "3号窗口屏没有应答" in by_device["bar-3"]["problem"]
    assert by_device["bar-3"]["state"] == "offline"
    assert not by_device["bar-2"]["answered"] and "不在线" in by_device["bar-2"]["problem"]
    assert hall.printer.tickets == []
    # the others were still tested
    assert any("设备自检" in " ".join(lines) for lines in hall.sim.bars["bar-1"].history)
    assert any(s.get("notice") == "设备自检 测试画面" for s in hall.main.history)

    # once the roll is changed and the bar plugged back in, it comes back as it should
    hall.printer.paper = "ok"
    hall.sim.bars["bar-3"].plug()
    assert hall.sim.bars["bar-3"].wait_until(shows_now(hall, 3), 3)


def test_only_an_admin_may_check_or_shut_down(hall):
    with hall.client() as api:
        assert api.get(CHECK, headers=hall.admin).status_code == 404  # none yet today
        assert api.post(CHECK).status_code == 401
        for who in (hall.staff3, hall.login("boss", None)):
            for method, path in (("POST", CHECK), ("GET", CHECK), ("POST", END_OF_DAY)):
                r = api.request(method, path, headers=who)
                assert (r.status_code, r.json()["error"]) == (403, "forbidden_role"), (method, path)
    assert hall.printer.tickets == []
    assert hall.ctrl.window(3).status.value == "open"


def test_end_of_day_is_refused_while_windows_are_open_then_closes_every_screen(hall):
    with hall.client() as api:
        r = api.post(END_OF_DAY, headers=hall.admin)
        assert (r.status_code, r.json()["error"]) == (409, "windows_open")
        assert "3号窗口" in r.json()["message"]
        assert hall.ctrl.window(3).status.value == "open"

        assert api.post("/api/v1/auth/logout", headers=hall.staff3).status_code == 200
        shown_before = len(hall.bus.shown)
        r = api.post(END_OF_DAY, headers=hall.admin)
        assert r.status_code == 200, r.text
        body = r.json()
    assert {(b["device"], b["shown"]) for b in body["bars"]} == {
        ("bar-1", True), ("bar-2", True), ("bar-3", True)}
    assert {p["device"] for p in body["pads"]} == {"pad-2", "pad-3"}
    assert body["display"] and body["problems"] == []

    for name in ("bar-1", "bar-3"):
        assert hall.sim.bars[name].wait_until(lambda b: "停止服务" in b.text, 2)
    assert hall.bar2.wait_until(lambda s: s["kind"] == "closed")
    assert any(a == 13 and f == PAD_BLANK for a, f, _ in hall.bus.shown[shown_before:])
    assert hall.pad2.wait_until(lambda s: s == {"state": "blank"})
    assert hall.main.wait_until(lambda s: s.get("notice") == "今日服务已结束" and s["calls"] == [])
    audit = list(hall.ctrl.store.query("SELECT actor, result FROM commands WHERE name = 'end_of_day'"))
    assert audit == [{"actor": "staff:admin", "result": "windows_open"},
                     {"actor": "staff:admin", "result": "ok"}]

    # a resync (a reconnect) keeps the closing screen while every window stays closed
    hall.calling.resync()
    time.sleep(0.2)
    assert hall.main.showing.get("notice") == "今日服务已结束"

    # the next login shows the hall again
    hall.login("s1", 1)
    assert hall.main.wait_until(lambda s: "notice" not in s
                                and {"window": 1, "text": "空闲 员工1"} in s["windows"])
    assert hall.sim.bars["bar-1"].wait_until(lambda b: "欢迎光临" in b.text, 2)
