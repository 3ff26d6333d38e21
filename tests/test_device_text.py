"""Text that cannot break a device (issue 13 item 6): a name, a pause reason, a whereabouts or a
staff name holding printer commands, bar framing bytes, NUL, characters a GB2312 bar has no
glyph for, or a wall of text, reaches every device as harmless text — and the device still
answers afterwards.

The stories run through the real paths: `hallctl run --simulate` with an ID card whose name
field holds ESC @, GS V, DLE EOT and NUL (sim/cards.toml `hostile_name`), and the calling hall
with its simulated Onbon and generic bars (GB2312 fonts), counter bus pad, MQTT bar and main
display on Mosquitto. The helper itself (drivers/text.py) is checked table-driven at the end;
tests/test_fuzz.py feeds random and hostile text to each codec's text encoder (fuzz/targets.py).
"""

from __future__ import annotations

import dataclasses
import json
import stat
import unicodedata

import pytest

from controller.runtime.clock import ManualClock
from drivers import text as device_text
from drivers.announcer import EspeakSynthesizer
from drivers.announcer.speech import SPEECH_MAX_CHARS, speakable
from drivers.caller_display import WindowBar
from drivers.counter_keypad.codec import PAD_PROMPT
from drivers.mqtt import STATE_TEXT_CHARS
from drivers.transport import DeviceLink, SerialTransport
from sim.mqtt_devices import SimulatedMqttDisplay
from tests.halls import CALLING_VOICE, at, calling_hall
from tests.server import HallProcess, running_hall, wait_for

HOSTILE = "\x1b@堃\x1dV喆\x10\x04\x00"  # printer reset, cut, status query, NUL, two rare Hanzi
GB2312_LACKS = "堃喆"


def controls_in(text: str) -> list[str]:
    """The control and format characters in `text` (none may reach a device)."""
    return [hex(ord(c)) for c in text if unicodedata.category(c) in ("Cc", "Cf")]


def strings_in(value) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in strings_in(v)]
    if isinstance(value, list):
        return [s for v in value for s in strings_in(v)]
    return []


# --- the kiosk printer, through `hallctl run --simulate` ----------------------------------------

def test_a_card_whose_name_holds_printer_commands_prints_harmlessly_and_the_printer_still_answers(tmp_path):
    """The hostile card's masked name is ESC and asterisks: sent raw, ESC * is a bit image that
    swallows ten thousand bytes, the next status query among them, and the kiosk refuses every
    later ticket. Through the codec the ESC is dropped: the slip prints, and so do the next ones."""
    proc = HallProcess(tmp_path, "--simulate")
    proc.start()
    try:
        with proc.client() as api:
            assert api.post("/sim/id-readers/kiosk-id-reader/place",
                            json={"card": "hostile_name"}).status_code == 200
            card = wait_for(lambda: api.get("/api/v1/kiosks/entrance").json()["card"])
            assert card["id_masked"] == "1101**********1230"
            first = api.post("/api/v1/kiosks/entrance/tickets", json={"service": "B"})
            assert first.status_code == 201, first.text
            assert first.json()["printed"] and first.json()["real_name"]
            api.post("/sim/id-readers/kiosk-id-reader/remove")

            # the next citizens, anonymous: the printer is asked for paper before each and answers
            numbers = [first.json()["number"]]
            for _ in range(2):
                r = api.post("/api/v1/kiosks/entrance/tickets", json={"service": "B"})
                assert r.status_code == 201, r.text
                assert r.json()["printed"], r.json()
                numbers.append(r.json()["number"])

            slips = wait_for(lambda: (s := api.get("/sim/printers/kiosk-printer/tickets").json())
                             and len(s) >= 3 and s)
            # three tickets, three slips: no cut (GS V) hidden in the name split one in two
            assert len(slips) == 3
            assert [n in slip["lines"] for n, slip in zip(numbers, slips, strict=True)] == [True] * 3
            hostile_slip = slips[0]["lines"]
            assert not [line for line in hostile_slip if controls_in(line)], hostile_slip
            assert any(line.startswith("取号人 ") and line.endswith("*") for line in hostile_slip)
            # the whole slip is there after the name: nothing after it was swallowed
            assert hostile_slip[-1] == "请在等候区留意叫号，过号请到窗口说明", hostile_slip
    finally:
        proc.stop()


# --- bars, pad, MQTT displays: the calling hall ----------------------------------------------------

@pytest.fixture
def hall(tmp_path, mosquitto):
    """The calling hall with window 3's generic bar configured for a GB2312 font (window 1's
    Onbon is GB2312 anyway), and window 3's staff member named with control characters and
    rare Hanzi, as an admin could type them into the staff list."""
    base = calling_hall()
    devices = tuple(dataclasses.replace(d, options=d.options + (("charset", "gb2312"),))
                    if d.id == "bar-3" else d for d in base.devices)
    staff = dict(base.staff)
    staff["s3"] = dataclasses.replace(staff["s3"], name="\x1b陈\x00堃\x1dV")
    clock = ManualClock(at("09:00"))
    with running_hall(dataclasses.replace(base, devices=devices, staff=staff), tmp_path, clock,
                      voice=CALLING_VOICE, simulate=True, mqtt=(mosquitto.host, mosquitto.port)) as h:
        h.bus = next(iter(h.sim.buses.values()))
        h.main = SimulatedMqttDisplay("sim-main", mosquitto.host, mosquitto.port,
                                      "hall/display/main").start()
        h.bar2 = SimulatedMqttDisplay("sim-bar-2", mosquitto.host, mosquitto.port,
                                      "hall/window/2/display").start()
        try:
            yield h
        finally:
            h.main.stop()
            h.bar2.stop()


def pause(hall, staff: str, window: int, reason: str, whereabouts: str | None = None) -> None:
    headers = hall.login(staff, window)
    with hall.client() as api:
        r = api.post(f"/api/v1/windows/{window}/pause", headers=headers,
                     json={"reason": reason, "minutes": 10, "whereabouts": whereabouts})
        assert r.status_code == 200, r.text


def test_a_hostile_pause_reason_shows_on_both_gb2312_bars_as_text_with_stand_ins(hall):
    """The bars' fonts are GB2312 (the simulated bars show a character outside it as garbage,
    U+FFFD): 堃 and 喆 arrive as □, the control characters not at all, and each bar still
    acknowledges and shows the next state."""
    pause(hall, "s1", 1, HOSTILE + "取材料", "二楼" + "\x0d\x0a" + "审批科")
    pause(hall, "s3", 3, HOSTILE + "会商", "长" * 50)
    for name in ("bar-1", "bar-3"):
        bar = hall.sim.bars[name]
        assert bar.wait_until(lambda b: "暂停服务" in b.text and "□" in b.text, 2), (name, bar.showing)
        shown = bar.text
        assert not controls_in(shown) and "\ufffd" not in shown, (name, shown)
        assert not set(GB2312_LACKS) & set(shown)
        assert shown.count("□") == 2  # one stand-in each for 堃 and 喆
    assert "去向 二楼 审批科" in hall.sim.bars["bar-1"].text  # a line break is a space

    frames = hall.sim.bars["bar-3"].frames
    with hall.client() as api:
        r = api.post("/api/v1/windows/3/resume", headers=hall.login("s3", 3))
        assert r.status_code == 200, r.text
    bar3 = hall.sim.bars["bar-3"]
    assert bar3.wait_until(lambda b: b.frames > frames and "暂停服务" not in b.text, 2), bar3.showing


def test_a_staff_name_with_control_characters_reaches_the_pad_and_the_main_display_as_text(hall):
    with hall.client() as api:
        api.post("/api/v1/tickets", json={"service": "A"})
    hall.login("s3", 3)
    hall.bus.press(3, "call_next")
    wait_for(lambda: hall.ctrl.window(3).current)
    hall.bus.press(3, "finish")
    prompt = wait_for(lambda: [t for a, f, t in hall.bus.shown if a == 13 and f == PAD_PROMPT])
    assert prompt[-1] == "陈堃V", prompt  # GB18030 pad: 堃 shows; ESC, NUL and GS are gone
    assert hall.main.wait_until(lambda s: any("陈堃V" in w["text"] for w in s["windows"]), 2), hall.main.showing
    for text in strings_in(hall.main.showing):
        assert not controls_in(text), text


def test_the_mqtt_bar_and_main_display_get_no_control_character_and_no_endless_text(hall):
    pause(hall, "s2", 2, HOSTILE + "x" * 40, "\u202e" + "三楼" * 20)
    assert hall.bar2.wait_until(lambda s: s["kind"] == "pausesign", 2), hall.bar2.showing
    payload = hall.bar2.showing
    assert "堃" in json.dumps(payload, ensure_ascii=False)  # a tablet has the glyph: no stand-in
    for text in strings_in(payload):
        assert not controls_in(text), text
        assert len(text) <= STATE_TEXT_CHARS
    # the state the hall publishes itself goes through the same gate, however it was built
    hall.calling.board.publish_state("hall/display/main", {"latest": None, "calls": [], "windows": [],
                                                           "notice": "\x1b" + "通知" * 500})
    # (the calling floor may publish the board again right after, so the screen's history is read)
    noticed = lambda: [s for s in hall.main.history if s.get("notice", "").startswith("通知")]  # noqa: E731
    wait_for(noticed, 5)
    assert len(noticed()[-1]["notice"]) <= STATE_TEXT_CHARS
    assert noticed()[-1]["notice"].endswith("…")


def test_a_bar_font_the_codec_cannot_serve_is_refused_when_the_bar_is_set_up():
    """options.charset names the bar's font: an Onbon controller's is GB2312, a generic bar's
    GB18030 or GB2312; anything else is a configuration mistake, said at start, not at 9:00."""
    line = DeviceLink("x", SerialTransport("/dev/null"))
    assert WindowBar("bar-3", line, 3, "generic", charset="gb2312").charset == "gb2312"
    assert WindowBar("bar-1", line, 1, "onbon", charset="GB2312").charset == "GB2312"
    with pytest.raises(ValueError, match="bar-1: an Onbon controller's text is gb2312"):
        WindowBar("bar-1", line, 1, "onbon", charset="gb18030")
    with pytest.raises(ValueError, match="bar-3: a generic bar's font is gb18030 or gb2312"):
        WindowBar("bar-3", line, 3, "generic", charset="big5")


# --- the voice ----------------------------------------------------------------------------------

def test_the_voice_is_given_no_phoneme_brackets_control_characters_or_endless_text(tmp_path):
    """espeak-ng reads [[...]] as raw phonemes and control characters as embedded commands:
    whatever phrase the synthesizer is handed, what reaches espeak-ng has neither, and is
    bounded. A wrapper records espeak-ng's arguments, then runs the real one."""
    argv_log = tmp_path / "argv.json"
    wrapper = tmp_path / "espeak-ng"
    wrapper.write_text("#!/usr/bin/env python3\nimport json, os, sys\n"
                       f"open({str(argv_log)!r}, 'w').write(json.dumps(sys.argv[1:]))\n"
                       "os.execvp('espeak-ng', ['espeak-ng', *sys.argv[1:]])\n")
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    synth = EspeakSynthesizer(executable=str(wrapper))
    wav = synth.to_wav("请 A 零 零 一 号 [[h@l'oU]]\x01 5S <speak>" + "办理" * 200, tmp_path / "a.wav")
    assert wav.stat().st_size > 44
    spoken = json.loads(argv_log.read_text())[-1]
    assert "[[" not in spoken and "<" not in spoken and not controls_in(spoken)
    assert spoken.startswith("请 A 零 零 一 号") and len(spoken) <= SPEECH_MAX_CHARS


def test_an_ordinary_call_phrase_is_spoken_as_it_was():
    phrase = "再次呼叫，请 A 零 零 一 号 到 十二号窗口 办理"
    assert speakable(phrase) == phrase


# --- the helper every codec calls -------------------------------------------------------------

@pytest.mark.parametrize("text, charset, max_bytes, shown", [
    ("张建国", "gb2312", 64, "张建国"),
    ("\x1b@张\x1dV建\x10\x04国\x00", "gb18030", 64, "@张V建国"),  # the commands' letters stay, as text
    ("王堃喆", "gb2312", 64, "王□□"),  # no glyph on a GB2312 bar: a visible stand-in
    ("王堃喆", "gb18030", 64, "王堃喆"),
    ("二楼\r\n审批科\t8021", "gb2312", 64, "二楼 审批科 8021"),  # line breaks and tabs are spaces
    ("a\u200bb\u202ec\ufeffd", "gb18030", 64, "abcd"),  # zero-width and direction overrides go
    ("a\ud800b\ue000c\U000e0001", "gb18030", 64, "a□b□c"),  # surrogate, private use; a tag goes
    ("e\u0301", "gb2312", 64, "é"),  # composed first: GB2312 has é (pinyin)
    ("n\u0303", "gb2312", 64, "□"),  # but not ñ
    ("n\u0303", "gb18030", 64, "ñ"),
    ("a\u00a0b", "gb2312", 64, "a b"),  # a space the charset lacks is a plain space
    ("长" * 100, "gb2312", 11, "长长长长…"),  # cut within the bytes, the cut visible
    ("x" * 100, "ascii", 10, "xxxxxxx..."),  # a charset without … gets three dots
    ("张x", "ascii", 10, "?x"),  # and without □ a question mark
    ("", "gb2312", 10, ""),
])
def test_device_text_drops_controls_stands_in_and_bounds(text, charset, max_bytes, shown):
    assert device_text.fit(text, charset, max_bytes) == shown
    assert len(device_text.encode(text, charset, max_bytes)) <= max_bytes


def test_device_text_counts_characters_where_a_screen_does():
    assert device_text.fit("通知" * 10, None, max_chars=5) == "通知通知…"
    assert device_text.fit_json({"a": ["x\x1by", 3, None, {"b": "\x00"}]}, 10) == {"a": ["xy", 3, None, {"b": ""}]}


def test_a_megabyte_of_controls_is_dropped_quickly_and_a_megabyte_of_text_is_cut():
    assert device_text.fit("\x1b" * 1_000_000 + "张", "gb2312", 64) == "张"
    assert len(device_text.encode("张" * 1_000_000, "gb2312", 64)) <= 64


def test_an_unknown_charset_is_a_programming_error():
    with pytest.raises(LookupError):
        device_text.fit("x", "no-such-charset", 10)
