"""The counter bus codec: frames in and out however the line chunks them, and the tablets' JSON."""

from __future__ import annotations

import logging
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.counter_keypad.codec import (
    LEN_OFFSET, MAX_DATA, MAX_FRAME, PAD_BLANK, PAD_PROMPT, PAD_THANKS, SHOW_TEXT, BusFrame, BusProtocolError,
    Display, FrameDecoder, GradePress, Key, KeyPress, PauseReason, Unknown, encode_frame, encode_press,
    pad_blank, pad_prompt, pad_thanks, parse, parse_display, show_text,
)
from drivers.counter_keypad.json_codec import KeyMessage, RepeatFilter, encode_key_json, parse_key_json

CODEC_LOG = "drivers.counter_keypad.codec"


def frame_bytes(text: str) -> bytes:
    return bytes.fromhex(text)


# Worked by hand from devices.md section 3: LEN counts ADDR+FUNC+DATA, SUM is ADDR..DATA mod 256.
EXAMPLES = [
    ("FF 68 02 02 68 01 0C 0D 16", BusFrame(1, 0x0C), KeyPress(1, Key.CALL_NEXT)),
    ("FF 68 02 02 68 03 0D 10 16", BusFrame(3, 0x0D), KeyPress(3, Key.RECALL)),
    ("FF 68 02 02 68 02 0B 0D 16", BusFrame(2, 0x0B), KeyPress(2, Key.START_EVALUATION)),
    ("FF 68 02 02 68 04 0E 12 16", BusFrame(4, 0x0E), KeyPress(4, Key.NO_SHOW)),
    ("FF 68 02 02 68 04 0F 13 16", BusFrame(4, 0x0F), KeyPress(4, Key.FINISH)),
    ("FF 68 02 02 68 01 14 15 16", BusFrame(1, 0x14), KeyPress(1, Key.RESUME)),
    ("FF 68 02 02 68 01 12 13 16", BusFrame(1, 0x12), KeyPress(1, Key.PAUSE)),  # the field's plain pause key
    ("FF 68 04 04 68 02 12 04 1E 36 16", BusFrame(2, 0x12, b"\x04\x1e"),
     KeyPress(2, Key.PAUSE, reason=PauseReason.MEAL, minutes=30)),
    ("FF 68 03 03 68 02 12 01 15 16", BusFrame(2, 0x12, b"\x01"), KeyPress(2, Key.PAUSE, reason=1)),
    ("FF 68 03 03 68 01 13 02 16 16", BusFrame(1, 0x13, b"\x02"), KeyPress(1, Key.TRANSFER, service_digit=2)),
    ("FF 68 03 03 68 01 13 42 56 16", BusFrame(1, 0x13, b"B"), KeyPress(1, Key.TRANSFER, service_letter="B")),
    ("FF 68 06 06 68 03 15 41 30 31 32 EC 16", BusFrame(3, 0x15, b"A012"),
     KeyPress(3, Key.CALL_NUMBER, number="A012")),
    ("FF 68 03 03 68 0B 11 01 1D 16", BusFrame(11, 0x11, b"\x01"), GradePress(11, 1)),
    ("FF 68 03 03 68 0E 11 05 24 16", BusFrame(14, 0x11, b"\x05"), GradePress(14, 5)),
    # SUM wraps: F0 + 30 + 05 = 0x125 -> 25
    ("FF 68 03 03 68 F0 30 05 25 16", BusFrame(0xF0, 0x30, b"\x05"), Unknown(0xF0, 0x30, b"\x05")),
]


@pytest.mark.parametrize("hex_frame, frame, message", EXAMPLES)
def test_hand_written_frames_decode_encode_and_mean_what_the_table_says(hex_frame, frame, message):
    raw = frame_bytes(hex_frame)
    assert encode_frame(frame) == raw
    assert FrameDecoder().feed(raw) == [frame]
    assert parse(frame) == message
    if not isinstance(message, Unknown):
        assert encode_press(message) == frame


def test_len_counts_addr_func_and_data_and_is_sent_twice():
    assert LEN_OFFSET == 0
    for data in (b"", b"\x01", bytes(MAX_DATA)):
        raw = encode_frame(BusFrame(7, 0x20, data))
        assert raw[2] == raw[3] == 2 + len(data)
        assert len(raw) == 1 + 4 + 2 + len(data) + 2 <= MAX_FRAME
        assert raw[-2] == (7 + 0x20 + sum(data)) % 256 and raw[-1] == 0x16


def test_a_frame_without_the_wake_byte_still_reads():
    # The first byte after an RS-485 turnaround is often lost.
    assert FrameDecoder().feed(frame_bytes("68 02 02 68 01 0C 0D 16")) == [BusFrame(1, 0x0C)]


GOOD = frame_bytes("FF 68 02 02 68 01 0C 0D 16")


@pytest.mark.parametrize("bad, reason", [
    ("FF 68 02 02 68 01 0C 0E 16", "SUM 0E, expected 0D (address 1, function 0C)"),
    ("FF 68 02 03 68 01 0C 0D 16", "LEN 02 repeated as 03"),
    ("FF 68 02 02 68 01 0C 0D 17", "ends with 17, not 16 (address 1, function 0C)"),
    ("FF 68 01 01 68 01 0C 0D 16", "LEN 01 leaves no room for ADDR and FUNC"),
])
def test_a_bad_frame_is_skipped_with_its_reason_and_the_next_press_still_reads(caplog, bad, reason):
    caplog.set_level(logging.WARNING, CODEC_LOG)
    decoder = FrameDecoder()
    assert decoder.feed(frame_bytes(bad) + GOOD) == [BusFrame(1, 0x0C)]
    assert caplog.messages[0] == f"counter bus: skipped a frame: {reason}"
    assert decoder.rejected == 1 and decoder.pending == 0


def test_garbage_is_skipped_and_counted_but_idle_ff_is_not(caplog):
    caplog.set_level(logging.WARNING, CODEC_LOG)
    decoder = FrameDecoder()
    assert decoder.feed(b"\xff\xff\x00\x13\x68\x99\x00" + GOOD + b"\xff\xff") == [BusFrame(1, 0x0C)]
    assert caplog.messages == ["counter bus: skipped 5 bytes: not a frame"]
    assert decoder.skipped == 5 and decoder.pending == 0 and decoder.rejected == 0


def test_a_stray_68_right_before_a_frame_looks_like_a_bad_header_and_the_frame_still_reads():
    decoder = FrameDecoder()
    assert decoder.feed(b"\x68\x99" + GOOD) == [BusFrame(1, 0x0C)]
    assert decoder.rejected == 1  # "68 99 FF 68": LEN 99 repeated as FF


def test_a_good_frame_inside_a_misread_one_is_found_on_the_rescan():
    # A header whose LEN (0x07) swallows the press that follows; its SUM fails, the press is found.
    assert FrameDecoder().feed(frame_bytes("68 07 07 68") + GOOD) == [BusFrame(1, 0x0C)]


def test_a_frame_cut_off_by_silence_is_dropped_and_the_press_behind_it_read(caplog):
    caplog.set_level(logging.WARNING, CODEC_LOG)
    decoder = FrameDecoder()
    assert decoder.feed(frame_bytes("FF 68 40 40 68 01") + GOOD) == []  # waits for 0x40 bytes
    assert decoder.pending > 0
    assert decoder.give_up() == [BusFrame(1, 0x0C)]
    assert decoder.pending == 0
    assert caplog.messages == ["counter bus: skipped a frame: cut off after 14 of 70 bytes"]


def test_a_frame_arriving_a_byte_at_a_time_reads_once_complete():
    decoder = FrameDecoder()
    raw = encode_frame(BusFrame(3, 0x15, b"A012"))
    assert [f for b in raw[:-1] for f in decoder.feed(bytes((b,)))] == []
    assert decoder.feed(raw[-1:]) == [BusFrame(3, 0x15, b"A012")]


ROUND_TRIPS = [
    KeyPress(1, Key.CALL_NEXT), KeyPress(1, Key.RECALL), KeyPress(1, Key.NO_SHOW), KeyPress(1, Key.FINISH),
    KeyPress(1, Key.START_EVALUATION), KeyPress(1, Key.RESUME), KeyPress(1, Key.PAUSE),
    KeyPress(1, Key.PAUSE, reason=PauseReason.CONSULT),
    KeyPress(1, Key.PAUSE, minutes=255), KeyPress(1, Key.PAUSE, reason=5, minutes=1),
    KeyPress(1, Key.TRANSFER, service_digit=9), KeyPress(1, Key.TRANSFER, service_letter="Z"),
    KeyPress(255, Key.CALL_NUMBER, number="7"), KeyPress(0, Key.CALL_NUMBER, number="Z9999"),
    GradePress(11, 3),
]


@pytest.mark.parametrize("message", ROUND_TRIPS)
def test_every_key_and_grade_round_trips_through_the_bytes(message):
    [frame] = FrameDecoder().feed(encode_frame(encode_press(message)))
    assert parse(frame) == message


@pytest.mark.parametrize("message", [
    KeyPress(1, Key.CALL_NEXT, minutes=5),
    KeyPress(1, Key.PAUSE, reason=6), KeyPress(1, Key.PAUSE, reason=0), KeyPress(1, Key.PAUSE, minutes=0),
    KeyPress(1, Key.PAUSE, minutes=256), KeyPress(1, Key.PAUSE, minutes=True),
    KeyPress(1, Key.TRANSFER), KeyPress(1, Key.TRANSFER, service_digit=0),
    KeyPress(1, Key.TRANSFER, service_digit=1, service_letter="A"), KeyPress(1, Key.TRANSFER, service_letter="b"),
    KeyPress(1, Key.CALL_NUMBER), KeyPress(1, Key.CALL_NUMBER, number="A01234"),
    KeyPress(1, Key.CALL_NUMBER, number="AB12"), KeyPress(256, Key.CALL_NEXT), KeyPress(1, "call_next"),
    GradePress(11, 0), GradePress(11, 6), "call_next",
])
def test_a_press_that_no_keypad_could_send_is_refused(message):
    with pytest.raises(BusProtocolError):
        encode_press(message)  # type: ignore[arg-type]


@pytest.mark.parametrize("frame", [
    BusFrame(11, 0x11, b""), BusFrame(11, 0x11, b"\x06"), BusFrame(11, 0x11, b"\x01\x02"),
    BusFrame(1, 0x12, b"\x06"), BusFrame(1, 0x12, b"\x01\x0a\x00"), BusFrame(1, 0x13, b""),
    BusFrame(1, 0x13, b"\x00"), BusFrame(1, 0x13, b"a"), BusFrame(1, 0x15, b"A 12"), BusFrame(1, 0x15, b"\xb0\xa1"),
    BusFrame(1, 0x0C, b"\x01"),
])
def test_a_known_function_with_data_it_cannot_carry_is_a_protocol_error(frame):
    with pytest.raises(BusProtocolError, match="address"):
        parse(frame)


def test_controller_frames_for_keypad_lcds_and_pads():
    assert parse_display(show_text(1, "请 A012 到 3 号窗口")) == Display(1, SHOW_TEXT, "请 A012 到 3 号窗口")
    prompt = pad_prompt(11, 3, "张喆")
    assert prompt.data == b"\x03" + "张喆".encode("gb18030")
    assert parse_display(prompt) == Display(11, PAD_PROMPT, "张喆", 3)
    assert encode_frame(pad_blank(11)) == frame_bytes("FF 68 02 02 68 0B 22 2D 16")
    assert encode_frame(pad_thanks(11)) == frame_bytes("FF 68 02 02 68 0B 23 2E 16")
    assert parse_display(pad_blank(11)) == Display(11, PAD_BLANK)
    assert parse_display(pad_thanks(12)) == Display(12, PAD_THANKS)


@pytest.mark.parametrize("make", [
    lambda: show_text(1, 42),
    lambda: pad_prompt(11, 0, "张三"),
    lambda: pad_prompt(11, 256, "张三"),
    lambda: pad_prompt(256, 1, "张三"),
    lambda: pad_blank(-1),
    lambda: parse_display(BusFrame(1, 0x0C)),
    lambda: parse_display(BusFrame(1, PAD_PROMPT, b"")),
    lambda: parse_display(BusFrame(1, SHOW_TEXT, b"\xff\xff")),
    lambda: BusFrame(1, 0x20, "text"),  # type: ignore[arg-type]
])
def test_controller_frames_out_of_range_are_refused(make):
    with pytest.raises(BusProtocolError):
        make()


# --- properties --------------------------------------------------------------------------------

frames = st.builds(BusFrame, st.integers(0, 255), st.integers(0, 255), st.binary(max_size=MAX_DATA))


@settings(deadline=1000, max_examples=150)
@given(st.lists(frames, max_size=8), st.data())
def test_any_chunking_of_a_stream_of_frames_gives_the_same_frames(sent, data):
    stream = b"".join(encode_frame(f) for f in sent)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=12)))
    decoder = FrameDecoder()
    got = []
    for start, end in zip([0] + cuts, cuts + [len(stream)], strict=True):
        got += decoder.feed(stream[start:end])
    assert got == sent
    assert decoder.pending == 0 and decoder.rejected == 0 and decoder.skipped == 0


@settings(deadline=1000, max_examples=150)
@given(st.lists(frames, min_size=1, max_size=6), st.binary(max_size=40), st.binary(max_size=40))
def test_a_frame_between_noise_is_found_when_the_noise_is_not_frame_shaped(sent, before, after):
    noise = bytes(b for b in before if b != 0x68)  # a 68 in the noise may start a long false frame
    decoder = FrameDecoder()
    got = decoder.feed(noise + b"".join(encode_frame(f) for f in sent)) + decoder.feed(after) + decoder.give_up()
    assert got[:len(sent)] == sent


@settings(deadline=1000, max_examples=300)
@given(st.binary(max_size=2000), st.integers(1, 64))
def test_arbitrary_bytes_never_raise_never_hang_and_never_pile_up(data, chunk):
    decoder = FrameDecoder()
    started = time.monotonic()
    for at in range(0, len(data), chunk):
        for frame in decoder.feed(data[at:at + chunk]):
            try:
                parse(frame)
            except BusProtocolError:
                pass
        assert decoder.pending <= MAX_FRAME
    decoder.give_up()
    assert decoder.pending == 0
    assert time.monotonic() - started < 0.5


@settings(deadline=1000, max_examples=300)
@given(frames, st.integers(0, 300), st.integers(0, 255))
def test_a_frame_with_one_byte_changed_is_never_taken_for_the_frame_sent(frame, at, value):
    sent = encode_frame(frame)
    raw = bytearray(sent)
    raw[at % len(raw)] = value
    decoder = FrameDecoder()
    got = decoder.feed(bytes(raw)) + decoder.give_up()
    # Only a change to the wake byte (or no change at all) leaves the frame readable.
    assert (frame in got) == (raw[1:] == sent[1:])
    assert decoder.pending == 0


@settings(deadline=1000, max_examples=200)
@given(frames, st.lists(st.tuples(st.integers(0, 300), st.integers(0, 255)), min_size=1, max_size=6),
       st.integers(1, 16))
def test_mutated_frames_never_raise_and_leave_nothing_behind(frame, flips, chunk):
    raw = bytearray(encode_frame(frame) * 2)
    for at, value in flips:
        raw[at % len(raw)] = value
    decoder = FrameDecoder()
    got = [f for at in range(0, len(raw), chunk) for f in decoder.feed(bytes(raw[at:at + chunk]))]
    got += decoder.give_up()
    assert all(isinstance(f, BusFrame) for f in got)
    assert decoder.pending == 0


def test_a_million_bytes_of_noise_decode_in_well_under_a_second():
    noise = bytes(range(256)) * 4096
    started = time.monotonic()
    decoder = FrameDecoder()
    assert decoder.feed(noise) == []
    assert decoder.pending <= MAX_FRAME
    assert time.monotonic() - started < 1.0


def test_the_decoder_takes_bytes_only():
    with pytest.raises(BusProtocolError):
        FrameDecoder().feed("FF 68")  # type: ignore[arg-type]


# --- the tablets' JSON -------------------------------------------------------------------------

VALID_JSON = [
    ('{"id":"a1","key":"call_next"}', KeyPress(5, Key.CALL_NEXT)),
    ('{"id":"a2","key":"recall"}', KeyPress(5, Key.RECALL)),
    ('{"id":"a3","key":"no_show"}', KeyPress(5, Key.NO_SHOW)),
    ('{"id":"a4","key":"finish"}', KeyPress(5, Key.FINISH)),
    ('{"id":"a5","key":"start_evaluation"}', KeyPress(5, Key.START_EVALUATION)),
    ('{"id":"a6","key":"resume"}', KeyPress(5, Key.RESUME)),
    ('{"id":"a7","key":"pause"}', KeyPress(5, Key.PAUSE)),
    ('{"id":"a8","key":"pause","reason":"meal","minutes":30}',
     KeyPress(5, Key.PAUSE, reason=PauseReason.MEAL, minutes=30)),
    ('{"id":"a9","key":"pause","reason":"materials"}', KeyPress(5, Key.PAUSE, reason=2)),
    ('{"id":"b1","key":"transfer","service":"B"}', KeyPress(5, Key.TRANSFER, service_letter="B")),
    ('{"id":"b2","key":"transfer","service":"3"}', KeyPress(5, Key.TRANSFER, service_digit=3)),
    ('{"id":"b3","key":"call_number","number":"A012"}', KeyPress(5, Key.CALL_NUMBER, number="A012")),
    ('  {"key":"call_next", "id":"' + "x" * 64 + '"}\n', KeyPress(5, Key.CALL_NEXT)),
]


@pytest.mark.parametrize("payload, press", VALID_JSON)
def test_tablet_json_becomes_the_same_press_a_bus_keypad_gives(payload, press):
    message = parse_key_json(payload.encode(), window=5)
    assert message.window == 5 and message.press == press
    assert parse_key_json(encode_key_json(message), 5) == message


INVALID_JSON = [
    (b"\xff\xfe", "not UTF-8"),
    (b"", "not JSON"),
    (b"{", "not JSON"),
    (b'["call_next"]', "JSON object is expected"),
    (b'{"key":"call_next"}', "id must be text"),
    (b'{"id":"","key":"call_next"}', "id must be text"),
    (b'{"id":7,"key":"call_next"}', "id must be text"),
    ('{"id":"' .encode() + b"x" * 65 + b'","key":"call_next"}', "id must be text"),
    (b'{"id":"a"}', "key must be one of"),
    (b'{"id":"a","key":"CALL_NEXT"}', "key must be one of"),
    (b'{"id":"a","key":["call_next"]}', "key must be one of"),
    (b'{"id":"a","key":"call_next","window":3}', "unknown field 'window'"),
    (b'{"id":"a","key":"call_next","minutes":5}', "call_next takes no minutes"),
    (b'{"id":"a","key":"pause","service":"B"}', "pause takes no service"),
    (b'{"id":"a","key":"pause","reason":"lunch"}', "reason must be one of away, materials"),
    (b'{"id":"a","key":"pause","reason":4}', "reason must be one of"),
    (b'{"id":"a","key":"pause","minutes":0}', "minutes must be 1-255"),
    (b'{"id":"a","key":"pause","minutes":"30"}', "minutes must be 1-255"),
    (b'{"id":"a","key":"pause","minutes":30.0}', "minutes must be 1-255"),
    (b'{"id":"a","key":"pause","minutes":true}', "minutes must be 1-255"),
    (b'{"id":"a","key":"transfer"}', "transfer needs service"),
    (b'{"id":"a","key":"transfer","service":"b"}', "one letter A-Z"),
    (b'{"id":"a","key":"transfer","service":"0"}', "one letter A-Z"),
    (b'{"id":"a","key":"transfer","service":2}', "one letter A-Z"),
    (b'{"id":"a","key":"call_number"}', "call_number needs number"),
    (b'{"id":"a","key":"call_number","number":"a012"}', "ticket number"),
    (b'{"id":"a","key":"call_number","number":12}', "ticket number"),
    (b'{"id":"a","key":"call_next","minutes":' + b"9" * 5000 + b"}", "not JSON"),
    (b"[" * 100000, "not JSON"),
]


@pytest.mark.parametrize("payload, message", INVALID_JSON)
def test_bad_tablet_json_is_refused_with_a_clear_message(payload, message):
    with pytest.raises(BusProtocolError, match="^keypad message: .*" + message.replace("(", r"\(")):
        parse_key_json(payload, window=5)


@pytest.mark.parametrize("window", [0, 256, "5", True])
def test_the_window_from_the_topic_must_be_a_window_number(window):
    with pytest.raises(BusProtocolError, match="window"):
        parse_key_json(b'{"id":"a","key":"call_next"}', window)


def test_a_repeated_delivery_is_seen_once_and_old_ids_are_forgotten():
    seen = RepeatFilter(size=2)
    assert [seen.first_time(i) for i in ("a", "a", "b", "a", "c", "a")] == [True, False, True, False, True, True]


@settings(deadline=1000, max_examples=200)
@given(st.one_of(st.binary(max_size=300), st.text(max_size=300)))
def test_arbitrary_payloads_are_a_press_or_a_protocol_error(payload):
    try:
        message = parse_key_json(payload, 5)
    except BusProtocolError:
        return
    assert isinstance(message, KeyMessage)
