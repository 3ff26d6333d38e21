"""Window bars and the main hall display: what each state shows, and the bytes of both bar codecs."""

from __future__ import annotations

import unicodedata
from datetime import datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivers.caller_display import (
    CODECS, Calling, Closed, Colour, DisplayProtocolError, HallBoard, Idle, PauseSign, bar_colour,
    bar_lines, board_json, display_width, state_text,
)
from drivers.caller_display import generic_codec as generic
from drivers.caller_display import onbon_codec as onbon

BACK = datetime(2024, 5, 6, 10, 45)


# --- what a bar shows -------------------------------------------------------------------------

@pytest.mark.parametrize("state, width, lines", [
    (Calling(3, "A012"), 8, ["A012 请到3号窗口"]),
    (Calling(3, "A012", "社保卡补换"), 8, ["A012 请到3号窗口", "社保卡补换"]),
    (Calling(12, "A012"), 8, ["请 A012 号"]),  # "A012 请到12号窗口" is one column too wide
    (Calling(3, "A012"), 5, ["请 A012 号"]),
    (Calling(3, "A012"), 4, ["A012"]),
    (Idle(3), 8, ["3号窗口 欢迎光临"]),
    (Idle(12), 8, ["12号窗口", "欢迎光临"]),
    (Idle(3, ""), 8, ["3号窗口"]),
    (PauseSign(3, "外出取件", BACK), 8, ["暂停服务", "外出取件 预计 10:45 恢复"]),
    (PauseSign(3, "外出取件", BACK, "2楼档案室"), 8,
     ["暂停服务", "外出取件 去向 2楼档案室 预计 10:45 恢复"]),
    (PauseSign(3, "", None, "B岗 5号窗口"), 8, ["暂停服务", "去向 B岗 5号窗口"]),
    (PauseSign(3), 8, ["暂停服务"]),
    (Closed(3), 8, ["3号窗口", "停止服务"]),
])
def test_each_window_state_shows_these_lines(state, width, lines):
    assert bar_lines(state, width) == lines


@pytest.mark.parametrize("state, colour", [
    (Calling(3, "A012"), Colour.GREEN),
    (PauseSign(3, "会议"), Colour.RED),
    (Closed(3), Colour.RED),
    (Idle(3), Colour.YELLOW),
])
def test_a_call_is_green_and_a_pause_sign_red(state, colour):
    assert bar_colour(state) is colour


def test_widths_count_a_hanzi_as_two_columns():
    assert display_width("A012 请到3号窗口") == 16
    assert display_width("暂停服务") == 8


def test_a_line_wider_than_the_bar_is_kept_whole_to_scroll():
    [title, detail] = bar_lines(PauseSign(3, "参加业务培训", BACK, "三楼会议室"), width_chars=8)
    assert title == "暂停服务" and display_width(detail) > 16
    assert "参加业务培训" in detail and "预计 10:45 恢复" in detail


def test_the_main_display_lists_the_newest_call_first_with_every_window():
    board = HallBoard([("B007", 4), ("A012", 3)], [(3, state_text(Calling(3, "A012"))),
                                                  (4, "办理中"), (5, state_text(PauseSign(5)))])
    assert board_json(board) == {
        "latest": {"number": "B007", "window": 4, "text": "B007 请到4号窗口"},
        "calls": [{"number": "B007", "window": 4, "text": "B007 请到4号窗口"},
                  {"number": "A012", "window": 3, "text": "A012 请到3号窗口"}],
        "windows": [{"window": 3, "text": "A012"}, {"window": 4, "text": "办理中"},
                    {"window": 5, "text": "暂停服务"}],
    }
    assert board_json(HallBoard())["latest"] is None


def test_both_codecs_are_registered_for_the_driver():
    assert set(CODECS) == {"generic", "onbon"}


# --- the generic codec --------------------------------------------------------------------------

def test_the_generic_frame_is_as_documented():
    assert generic.encode(3, ["A012"], Colour.GREEN) == bytes.fromhex("AA 55 03 01 00 05 02 41 30 31 32 77 0D")
    assert generic.encode_ack(3) == bytes.fromhex("AA 55 03 80 00 00 83 0D")
    assert generic.encode_clear(3) == bytes.fromhex("AA 55 03 02 00 00 01 0D")
    assert generic.encode_brightness(3, 8) == bytes.fromhex("AA 55 03 03 00 01 08 09 0D")


def test_two_lines_travel_in_one_frame_and_come_back():
    frame = generic.encode(7, ["暂停服务", "外出取件 预计 10:45 恢复"], Colour.RED)
    [message] = generic.FrameDecoder().feed(frame)
    assert message == generic.ShowText(7, ("暂停服务", "外出取件 预计 10:45 恢复"), Colour.RED)


def test_the_generic_decoder_skips_garbage_and_a_damaged_frame():
    good = generic.encode(1, ["A001"], Colour.GREEN)
    damaged = bytearray(generic.encode(1, ["A002"], Colour.GREEN))
    damaged[8] ^= 0xFF
    decoder = generic.FrameDecoder()
    out = decoder.feed(b"\x00\xaa\x13" + bytes(damaged) + b"noise" + good + generic.encode_ack(1))
    assert out == [generic.ShowText(1, ("A001",), Colour.GREEN), generic.Ack(1)]
    assert decoder.skipped > 0


@pytest.mark.parametrize("frame, reason", [
    (bytes.fromhex("AA 55 03 01 00 01 07 04 0D"), "colour"),
    (bytes.fromhex("AA 55 03 01 00 03 02 FF FF 03 0D"), "GB18030"),  # FF never starts a character
    (bytes.fromhex("AA 55 03 09 00 00 0A 0D"), "command 09"),
    (bytes.fromhex("AA 55 03 80 00 00 84 0D"), "XOR"),
])
def test_a_well_framed_but_meaningless_frame_is_refused_with_a_reason(frame, reason):
    with pytest.raises(DisplayProtocolError, match=reason):
        generic.decode_frame(frame)
    decoder = generic.FrameDecoder()
    assert decoder.feed(frame) == []


def test_the_generic_encoder_refuses_what_no_bar_can_take():
    with pytest.raises(DisplayProtocolError):
        generic.encode(256, ["A001"], Colour.GREEN)
    with pytest.raises(DisplayProtocolError):
        generic.encode(1, ["A001"] * 5, Colour.GREEN)
    with pytest.raises(DisplayProtocolError):
        generic.encode_brightness(1, 16)


def test_a_text_too_long_for_a_frame_is_cut_and_the_cut_shows():
    """A pause reason pasted ten times over still reaches the bar, cut, ending in "…"."""
    frame = generic.encode(1, ["很长" * 200] * 4, Colour.GREEN)
    shown = generic.decode_frame(frame)
    assert len(shown.lines) == 4
    for line in shown.lines:
        assert line.endswith("…") and line.startswith("很长很长")
        assert len(line.encode("gb18030")) <= generic.LINE_MAX_BYTES


# Any text a bar can show: no controls, format characters, surrogates, private use or
# unassigned code points (those are dropped or shown as □, tests/test_device_text.py), and
# at most LINE_MAX_BYTES (30 characters of at most 4 bytes).
bar_text = st.text(st.characters(exclude_categories=("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp")),
                   min_size=1, max_size=30)


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in zip(points, points[1:], strict=False)]


@given(st.integers(0, 254), st.lists(bar_text, min_size=1, max_size=2), st.sampled_from(Colour),
       st.lists(st.integers(0, 10_000), max_size=8), st.binary(max_size=20))
def test_any_text_survives_the_generic_codec_however_it_is_chunked(address, lines, colour, cuts, noise):
    frame = generic.encode(address, lines, colour)
    decoder = generic.FrameDecoder()
    out = []
    for piece in chunked(noise.replace(b"\xaa", b"") + frame, cuts):
        out += decoder.feed(piece)
    # composed as NFC: "e" and a combining accent is sent as the one character "é"
    assert out == [generic.ShowText(address, tuple(unicodedata.normalize("NFC", t) for t in lines), colour)]


# --- the Onbon codec ----------------------------------------------------------------------------

def test_the_crc_is_crc16_arc():
    assert onbon.crc16_ibm(b"123456789") == 0xBB3D  # the catalogued check value of CRC-16/ARC


def test_the_onbon_dynamic_text_frame_byte_for_byte():
    # Computed by hand from devices.md section 4: "A012" in green (\C2) on controller 1.
    expected = bytes.fromhex(
        "A5 A5 A5 A5 A5 A5 A5 A5"        # preamble
        " 01 00 01 80 00 00 00"          # destination 1 (LE), source 8001 (LE), 3 reserved
        " 00 00 61 02 0A 00"             # CRC16 check, display mode, type 61, version 02, length 10 (LE)
        " A3 06 01 5C 43 32 41 30 31 32"  # dynamic text area, "\C2A012"
        " 8A CD 5A")                     # CRC 0xCD8A (LE), end
    assert onbon.encode_dynamic_text(1, "A012", Colour.GREEN) == expected
    [shown] = onbon.OnbonDecoder().feed(expected)
    assert (shown.address, shown.text, shown.colour) == (1, "A012", Colour.GREEN)


def test_a5_a6_5a_5b_are_escaped_in_the_address_the_text_and_the_crc():
    # Address 5A; "Z[" is 5A 5B; 哎 唉 are B0 A5, B0 A6 in GB2312.
    assert onbon.encode_dynamic_text(0x5A, "Z[哎唉", Colour.RED) == bytes.fromhex(
        "A5 A5 A5 A5 A5 A5 A5 A5 5B 02 00 01 80 00 00 00 00 00 61 02 0C 00"
        " A3 06 01 5C 43 31 5B 02 5B 01 B0 A6 02 B0 A6 01 8E FA 5A")
    # "A008" green on 1: CRC 0x5A0B, sent 0B 5A, escaped 0B 5B 02.
    assert onbon.encode_dynamic_text(1, "A008", Colour.GREEN).endswith(bytes.fromhex("0B 5B 02 5A"))
    assert onbon.unescape(bytes.fromhex("5B 02 A6 02 A6 01 5B 01 00")) == bytes.fromhex("5A A5 A6 5B 00")


@pytest.mark.parametrize("escaped, reason", [
    (bytes.fromhex("A6 03"), "not followed"),
    (bytes.fromhex("00 5B"), "not followed"),
    (bytes.fromhex("00 A5 00"), "unescaped A5"),
])
def test_a_broken_escape_is_refused(escaped, reason):
    with pytest.raises(DisplayProtocolError, match=reason):
        onbon.unescape(escaped)


def test_a_frame_with_a_wrong_crc_or_another_command_shows_nothing():
    frame = bytearray(onbon.encode_dynamic_text(1, "A012", Colour.GREEN))
    frame[-3] ^= 0x01
    decoder = onbon.OnbonDecoder()
    assert decoder.feed(bytes(frame)) == [] and decoder.rejected == 1
    with pytest.raises(DisplayProtocolError, match="CRC"):
        onbon.decode_packet(bytes(frame[8:-1]))
    with pytest.raises(DisplayProtocolError, match="not the dynamic text area"):
        onbon.decode_dynamic_text(onbon.decode_packet(onbon.encode_packet(1, b"\xa2\x00")[8:-1]))


def test_a_frame_cut_short_by_the_next_preamble_is_dropped_and_the_next_one_read():
    first = onbon.encode_dynamic_text(1, "A001", Colour.GREEN)
    second = onbon.encode_dynamic_text(1, "A002", Colour.GREEN)
    decoder = onbon.OnbonDecoder()
    assert [t.text for t in decoder.feed(first[:20] + b"\x00\x00" + second)] == ["A002"]


def test_several_colours_in_one_text_are_runs():
    [shown] = onbon.OnbonDecoder().feed(onbon.encode_packet(2, b"\xa3\x06\x01\\C1AB\\C2CD\\F1"))
    assert shown.segments == ((Colour.RED, "AB"), (Colour.GREEN, "CD\\F1"))


def test_a_backslash_in_the_halls_text_is_never_a_colour_escape():
    [shown] = onbon.OnbonDecoder().feed(onbon.encode_dynamic_text(1, r"请到\C3", Colour.GREEN))
    assert shown.text == "请到＼C3" and shown.segments == ((Colour.GREEN, "请到＼C3"),)


def _gb2312_alphabet() -> list[str]:
    chars = [chr(c) for c in range(0x20, 0x7F)]
    for lead in range(0xA1, 0xF8):
        for trail in range(0xA1, 0xFF):
            try:
                chars.append(bytes((lead, trail)).decode("gb2312"))
            except UnicodeDecodeError:
                pass
    return chars


gb2312_text = st.text(st.sampled_from(_gb2312_alphabet()), max_size=60)


@given(st.integers(0, 0xFFFF), gb2312_text, st.sampled_from(Colour),
       st.lists(st.integers(0, 10_000), max_size=8), st.binary(max_size=20))
def test_any_gb2312_text_survives_the_onbon_codec_however_it_is_chunked(address, text, colour, cuts,
                                                                        noise):
    frame = onbon.encode_dynamic_text(address, text, colour)
    decoder = onbon.OnbonDecoder()
    out = []
    for piece in chunked(noise.replace(b"\xa5", b"") + frame, cuts):
        out += decoder.feed(piece)
    [shown] = out
    assert (shown.address, shown.text) == (address, text.replace("\\", "＼"))
    assert shown.colour is (colour if text else None)


# --- both decoders against arbitrary bytes --------------------------------------------------------

def _frames_of(data: bytes) -> list[bytes]:
    """Arbitrary bytes, salted with frame starts so the decoders get past their garbage skipping."""
    return [data, b"\xaa\x55" + data, b"\xa5" * 8 + data, data.replace(b"\x00", b"\xa5"),
            data + b"\x5a"]


# what a decoder may hold between feeds: at most one frame in the making (no stall on garbage:
# whatever cannot begin a frame is dropped as it comes, whatever the chunking)
HELD_AT_MOST = {generic.FrameDecoder: generic.MAX_DATA + 64, onbon.OnbonDecoder: onbon.MAX_ESCAPED + 16}


@given(st.binary(max_size=3000), st.integers(1, 64))
@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_arbitrary_bytes_never_crash_or_stall_either_decoder(data, chunk):
    # how fast is the fuzz and benchmark runs' business (make fuzz); here: no crash, and no
    # decoder holding more than a frame's worth of bytes, however the garbage is cut
    for raw in _frames_of(data):
        for decoder in (generic.FrameDecoder(), onbon.OnbonDecoder()):
            for i in range(0, len(raw), chunk):
                decoder.feed(raw[i:i + chunk])
                assert len(decoder._buf) <= HELD_AT_MOST[type(decoder)]
        for decode in (generic.decode_frame, onbon.decode_packet):
            try:
                decode(raw)
            except DisplayProtocolError:
                pass


@given(st.binary(max_size=200))
def test_arbitrary_packets_and_texts_fail_only_with_the_codecs_error(data):
    for check in (onbon.unescape, lambda d: onbon.decode_dynamic_text(onbon.Packet(1, 0x8001, 0x61, 2, d)),
                  lambda d: onbon.parse_text(d)):
        try:
            check(data)
        except DisplayProtocolError:
            pass
    try:
        generic.decode_frame(generic.START + data)
    except DisplayProtocolError:
        pass


@given(st.integers(1, 254), st.lists(bar_text, min_size=1, max_size=2), st.integers(0, 400))
def test_a_single_flipped_byte_never_shows_wrong_text(address, lines, where):
    frame = bytearray(generic.encode(address, lines, Colour.GREEN))
    where %= len(frame)
    frame[where] ^= 0x5A
    out = generic.FrameDecoder().feed(bytes(frame))
    assert out in ([], [generic.ShowText(address, tuple(lines), Colour.GREEN)])
