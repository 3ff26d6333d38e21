"""The calling path end to end: simulated keypads, window bars, an MQTT tablet and main display,
the real drivers, the controller, and the voice — against a real Mosquitto (and amqtt)."""

from __future__ import annotations

import subprocess
import time

import pytest

from controller.runtime.clock import ManualClock
from controller.core import commands as c
from drivers.counter_keypad.codec import PAD_BLANK
from sim.mqtt_devices import SimulatedMqttDisplay, SimulatedTabletKeypad
from tests.halls import CALLING_VOICE, at, calling_hall
from tests.server import running_hall, wait_for


@pytest.fixture
def hall(tmp_path, mosquitto):
    clock = ManualClock(at("09:00"))
    with running_hall(calling_hall(), tmp_path, clock, simulate=True, voice=CALLING_VOICE,
                      mqtt=(mosquitto.host, mosquitto.port)) as h:
        h.clock, h.broker = clock, mosquitto
        h.bus = next(iter(h.sim.buses.values()))
        h.main = SimulatedMqttDisplay("sim-main", mosquitto.host, mosquitto.port,
                                      "hall/display/main").start()
        h.tablet = SimulatedTabletKeypad("sim-tablet-2", mosquitto.host, mosquitto.port,
                                         "hall/window/2/keypad").start()
        h.bar2 = SimulatedMqttDisplay("sim-bar-2", mosquitto.host, mosquitto.port,
                                      "hall/window/2/display").start()
        for n in (1, 2, 3):
            h.login(f"s{n}", n)
        try:
            yield h
        finally:
            for device in (h.main, h.tablet, h.bar2):
                device.stop()


def issue(hall, n=1):
    with hall.client() as api:
        return [api.post("/api/v1/tickets", json={"service": "A"}).json()["number"] for _ in range(n)]


def wav_seconds_and_rms(path) -> tuple[float, float]:
    seconds = float(subprocess.run(["sox", "--i", "-D", str(path)], capture_output=True,
                                   text=True, check=True).stdout)
    stat = subprocess.run(["sox", str(path), "-n", "stat"], capture_output=True, text=True).stderr
    rms = float(next(line for line in stat.splitlines() if line.startswith("RMS     amplitude"))
                .split()[-1])
    return seconds, rms


def test_a_keypad_call_shows_on_the_bar_and_the_main_display_and_is_announced(hall):
    issue(hall, 2)
    hall.bus.press(3, "call_next")
    bar = hall.sim.bars["bar-3"]
    assert bar.wait_until(lambda b: any("A001" in line for line in b.showing), 2)
    assert hall.main.wait_until(lambda s: s["latest"] and s["latest"]["number"] == "A001"
                                and s["latest"]["window"] == 3)
    voice = hall.calling.voice
    assert voice.wait_idle(15)
    text, wav = voice.played[-1]
    assert "三号窗口" in text
    seconds, rms = wav_seconds_and_rms(wav)
    assert 1.0 < seconds < 10.0 and rms > 0.01  # a real phrase, not silence

    hall.bus.press(3, "recall")
    assert wait_for(lambda: len(voice.played) >= 3) and voice.wait_idle(15)
    # a recall is the cached "再次呼叫" clip, then the call's own phrase again
    assert [t for t, _ in voice.played[-2:]] == ["再次呼叫，", text]
    assert any("A001" in line for line in bar.showing)

    hall.tablet.press("call_next")  # window 2 calls from its tablet
    assert hall.bar2.wait_until(lambda s: "A002" in s["text"])
    assert hall.main.wait_until(lambda s: [c["number"] for c in s["calls"]][:2] == ["A002", "A001"])


def test_a_repeated_tablet_message_acts_once(hall):
    issue(hall, 2)
    hall.tablet.press("call_next", message_id="same-press")
    hall.tablet.press("call_next", message_id="same-press")
    assert hall.bar2.wait_until(lambda s: "A001" in s["text"])
    time.sleep(0.5)
    with hall.client() as api:
        assert [q["waiting"] for q in api.get("/api/v1/services").json() if q["service"] == "A"] == [1]


def test_pause_shows_the_sign_blanks_the_pad_and_stops_routing(hall):
    hall.bus.press(3, "pause", reason=2, minutes=10)
    bar = hall.sim.bars["bar-3"]
    assert bar.wait_until(lambda b: b.showing and b.showing[0] == "暂停服务", 2)
    assert "取材料" in " ".join(bar.showing) and "09:10" in " ".join(bar.showing)
    wait_for(lambda: any(f == PAD_BLANK and a == 13 for a, f, _ in hall.bus.shown))

    issue(hall, 1)
    hall.bus.press(3, "call_next")  # refused: the window is paused
    wait_for(lambda: any("暂停" in text for _, _, text in hall.bus.shown))
    hall.bus.press(1, "call_next")
    assert hall.sim.bars["bar-1"].wait_until(lambda b: "A001" in b.text, 2)

    hall.clock.advance(minutes=16)
    alerts = hall.ctrl.tick().events
    assert [(e.kind, e.window) for e in alerts] == [("pause_over_limit", 3)]
    hall.bus.press(3, "resume")
    assert bar.wait_until(lambda b: b.showing and b.showing[0] != "暂停服务", 2)


def test_a_bar_that_was_unplugged_shows_the_current_state_within_2_s_of_return(hall):
    issue(hall, 1)
    bar = hall.sim.bars["bar-3"]
    bar.unplug()
    hall.bus.press(3, "call_next")  # the call happens while the bar is away
    wait_for(lambda: hall.ctrl.window(3).current)
    time.sleep(0.3)
    bar.plug()
    assert bar.wait_until(lambda b: any("A001" in line for line in b.showing), 2.0)


def test_after_a_broker_restart_every_mqtt_display_shows_the_current_state_within_2_s(hall):
    issue(hall, 1)
    hall.bus.press(3, "call_next")
    assert hall.main.wait_until(lambda s: s["latest"] and s["latest"]["number"] == "A001")
    hall.broker.restart()  # the broker forgets every retained message
    fresh = SimulatedMqttDisplay("sim-main-2", hall.broker.host, hall.broker.port,
                                 "hall/display/main").start()
    try:
        assert fresh.wait_until(lambda s: s["latest"] and s["latest"]["number"] == "A001", 2.5)
    finally:
        fresh.stop()


def test_b_post_cover_shows_who_covers_the_window(hall):
    with hall.client() as api:
        s3 = hall.login("s3", 3)  # the same token acts again: s3 holds window 3 already
        api.post("/api/v1/auth/logout", headers=s3)
    hall.login("boss", 3)  # the supervisor covers window 3 (B post)
    bar = hall.sim.bars["bar-3"]
    assert bar.wait_until(lambda b: "主任 顶岗服务" in b.text, 2)
    assert hall.main.wait_until(lambda s: {"window": 3, "text": "空闲 主任(顶岗)"} in s["windows"])


def test_the_pause_sign_tells_where_staff_went(hall):
    staff = hall.login("s3", 3)
    with hall.client() as api:
        r = api.post("/api/v1/windows/3/pause", headers=staff,
                     json={"reason": "会商", "minutes": 15, "whereabouts": "二楼审批科 电话 8021"})
        assert r.status_code == 200, r.text
        # on the window's own sign and for staff; not for a screen without a login
        pause = api.get("/api/v1/hall", headers=staff).json()["windows"][2]["pause"]
        assert pause["whereabouts"] == "二楼审批科 电话 8021"
        assert "whereabouts" not in api.get("/api/v1/hall").json()["windows"][2]["pause"]
    bar = hall.sim.bars["bar-3"]
    assert bar.wait_until(lambda b: "二楼审批科" in " ".join(b.showing), 2)


def test_the_pad_asks_after_the_visit_and_takes_one_grade(hall):
    from drivers.counter_keypad.codec import PAD_PROMPT, PAD_THANKS
    issue(hall, 1)
    hall.bus.press(3, "call_next")
    wait_for(lambda: hall.ctrl.window(3).current)
    hall.bus.press(3, "finish")
    wait_for(lambda: any(f == PAD_PROMPT and a == 13 for a, f, _ in hall.bus.shown))
    hall.bus.grade(13, 5)  # 非常不满意
    wait_for(lambda: hall.ctrl.store.ticket("20261123-A001").grade)
    wait_for(lambda: any(f == PAD_THANKS and a == 13 for a, f, _ in hall.bus.shown))
    time.sleep(0.4)  # past the bus debounce: a real second press
    hall.bus.grade(13, 1)
    wait_for(lambda: list(hall.ctrl.store.query(
        "SELECT 1 FROM commands WHERE name = 'evaluate' AND result = 'no_evaluation'")))
    t = hall.ctrl.store.ticket("20261123-A001")
    assert (t.grade, t.grade_channel) == ("非常不满意", "pad")


def test_a_bad_review_on_the_tablet_pad_opens_a_case_that_the_callback_officer_closes(hall, tmp_path):
    from sim.mqtt_devices import SimulatedTabletPad
    pad = SimulatedTabletPad("sim-pad-2", hall.broker.host, hall.broker.port, "hall/window/2/pad").start()
    try:
        with hall.client() as api:
            r = api.post("/api/v1/tickets", json={"service": "A", "id_number": "11010119500307097X",
                                                  "name": "张建国", "phone": "138 0013 1234"})
            assert r.status_code == 201, r.text
            hall.tablet.press("call_next")
            wait_for(lambda: hall.ctrl.window(2).current)
            hall.tablet.press("finish")
            assert pad.wait_until(lambda s: s.get("state") == "prompt" and s["ticket"] == "A001"
                                  and s["window"] == 2 and s["staff"] == "员工2")
            pad.grade(5, tags=("态度",))  # 非常不满意
            assert pad.wait_until(lambda s: s.get("state") == "thanks")
            case = wait_for(lambda: hall.desk.list())[0]
            assert (case.ticket_id, case.window, case.staff_id, case.grade) == (
                "20261123-A001", 2, "s2", "非常不满意")
            # Monday 09:00: callback by the end of Tuesday, rectification by the end of next Monday
            assert case.callback_due.isoformat() == "2026-11-25T00:00:00+08:00"
            assert case.rectify_due.isoformat() == "2026-12-01T00:00:00+08:00"

            officer = hall.login("boss", None)  # a supervisor works cases too
            cid = case.id
            figures = api.get("/api/v1/cases-figures", headers=officer).json()
            assert figures["callback_rate"] == 0.0
            for path, body in (("assign", {"officer": "boss"}),
                               ("callback", {"reached": True, "summary": "已致电，了解情况"}),
                               ("verify", {"justified": True, "finding": "等候时态度生硬"}),
                               ("rectify", {"change": "窗口服务用语培训"}),
                               ("feedback", {"summary": "已告知整改结果"}),
                               ("close", None)):
                r = api.post(f"/api/v1/cases/{cid}/{path}", headers=officer,
                             **({"json": body} if body is not None else {}))
                assert r.status_code == 200, (path, r.text)
            assert api.get(f"/api/v1/cases/{cid}", headers=officer).json()["state"] == "closed"
            assert api.get("/api/v1/cases-figures", headers=officer).json()["callback_rate"] == 1.0
    finally:
        pad.stop()
    hall.ctrl.store.checkpoint()
    for f in tmp_path.glob("hall.sqlite3*"):
        raw = f.read_bytes()
        for secret in ("11010119500307097X", "13800131234", "张建国"):
            assert secret.encode() not in raw


def test_the_evaluation_report_and_grade_export_are_served(hall):
    with hall.client() as api:
        api.post("/api/v1/tickets", json={"service": "A"})
        hall.tablet.press("call_next")
        wait_for(lambda: hall.ctrl.window(2).current)
        hall.tablet.press("finish")
        wait_for(lambda: hall.ctrl.window(2).evaluating)
        hall.ctrl.execute(c.Evaluate(2, "满意", "tablet"), "pad:2")
        boss = hall.login("boss", None)
        [row] = [r for r in api.get("/api/v1/reports/evaluations?from=2026-11-23&to=2026-11-23&by=window",
                                    headers=boss).json() if r["window"] == 2]
        assert (row["visits"], row["满意"], row["evaluation_rate"]) == (1, 1, 1.0)
        xlsx = api.get("/api/v1/exports/grades?from=2026-11-23&to=2026-11-23&format=xlsx", headers=boss)
        assert xlsx.status_code == 200 and xlsx.content[:2] == b"PK"
        assert api.get("/api/v1/reports/evaluations", headers=hall.login("s1", 1)).status_code == 403
