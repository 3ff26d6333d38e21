"""The ID card reader's codec: the vendor's example frames byte for byte, and properties of the rest."""

from __future__ import annotations

import datetime as dt
import logging

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivers.id_reader.codec import (
    MAX_LENGTH, BadFrame, Card, CardType, Command, CommandDecoder, ReaderProtocolError, ReaderStatus, Reply,
    ReplyDecoder, Request, encode_card, encode_command, encode_read_data, encode_reply, parse_card,
    parse_card_reply, parse_read_data,
)

# devices.md section 1, "Commands (complete frames, checksums verified)"
DOCUMENTED_COMMANDS = [
    (Command.RESET_SAM, "AA AA AA 96 69 00 03 10 FF EC"),
    (Command.SAM_STATUS, "AA AA AA 96 69 00 03 11 FF ED"),
    (Command.READ_SAM_ID, "AA AA AA 96 69 00 03 12 FF EE"),
    (Command.FIND_CARD, "AA AA AA 96 69 00 03 20 01 22"),
    (Command.SELECT_CARD, "AA AA AA 96 69 00 03 20 02 21"),
    (Command.READ_TEXT_PHOTO, "AA AA AA 96 69 00 03 30 01 32"),
    (Command.READ_TEXT_PHOTO_FINGERPRINT, "AA AA AA 96 69 00 03 30 10 23"),
]

ELDERLY = Card(CardType.RESIDENT, name="张建国", sex="1", nation="01", birth_date=dt.date(1950, 3, 7),
               address="北京市东城区景山前街4号", id_number="11010119500307097X",
               authority="北京市公安局东城分局", valid_from="20100307", valid_to="长期",
               photo=bytes(range(256)) * 4)


@pytest.mark.parametrize("command, frame", DOCUMENTED_COMMANDS, ids=[c.name for c, _ in DOCUMENTED_COMMANDS])
def test_command_frames_are_the_vendors_own(command, frame):
    assert encode_command(command) == bytes.fromhex(frame)
    [request] = CommandDecoder().feed(bytes.fromhex(frame))
    assert request.command is command


def test_read_reply_has_the_documented_lengths():
    """30 01: LEN 05 08, lengths 01 00 and 04 00, 1295 bytes; 30 10 adds 04 00 and 1024 bytes, LEN 09 0A."""
    frame = encode_reply(ReaderStatus.OK, encode_read_data(encode_card(ELDERLY), ELDERLY.photo))
    assert len(frame) == 1295
    assert frame[5:7] == b"\x05\x08" and frame[7:14] == bytes.fromhex("00 00 90 01 00 04 00")
    [reply] = ReplyDecoder().feed(frame)
    assert parse_card_reply(reply) == ELDERLY

    with_print = ELDERLY.__class__(**{**ELDERLY.__dict__, "fingerprint": b"\x7f" * 1024})
    frame = encode_reply(ReaderStatus.OK, encode_read_data(encode_card(with_print), with_print.photo,
                                                           with_print.fingerprint))
    assert frame[5:7] == b"\x09\x0a" and frame[14:16] == b"\x04\x00"
    [reply] = ReplyDecoder().feed(frame)
    assert parse_card_reply(reply, fingerprint=True) == with_print


def test_a_reply_fed_byte_by_byte_decodes_once():
    frame = encode_reply(ReaderStatus.OK, encode_read_data(encode_card(ELDERLY), ELDERLY.photo))
    decoder, out = ReplyDecoder(), []
    for i in range(len(frame)):
        out += decoder.feed(frame[i:i + 1])
    assert [parse_card_reply(r) for r in out] == [ELDERLY]


# Kiosk messages the hall asked for, by status code.
KIOSK = [
    (0x80, "请放置身份证"),
    (0x41, "读卡失败，请重新放置身份证"),
    (0x31, "身份证认证失败，请到导办台"),
    (0x32, "身份证认证失败，请到导办台"),
    (0x33, "身份证认证失败，请到导办台"),
    (0x60, "读卡器故障，请到导办台"),
    (0x66, "读卡器故障，请到导办台"),
]


@pytest.mark.parametrize("code, message", KIOSK)
def test_kiosk_messages(code, message):
    assert ReaderStatus(code).kiosk_message == message


def test_every_documented_status_is_known_and_described():
    documented = [0x90, 0x9F, 0x10, 0x11, 0x21, 0x24, 0x31, 0x32, 0x33, 0x40, 0x41, 0x47, 0x60, 0x66,
                  0x80, 0x81]
    assert sorted(documented) == sorted(s.value for s in ReaderStatus)
    for status in ReaderStatus:
        assert status.description.isascii() and status.kiosk_message
    assert {s for s in ReaderStatus if s.sam_failure} == {0x31, 0x32, 0x33, 0x60, 0x66}
    assert ReaderStatus.of(0x12) is ReaderStatus.UNKNOWN_ERROR


class Remember(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def test_garbage_before_a_preamble_is_skipped_with_a_logged_reason():
    decoder, seen = ReplyDecoder(), Remember()
    log = logging.getLogger("drivers.id_reader.codec")
    log.addHandler(seen)
    try:
        out = decoder.feed(b"\x00\x13noise\xaa\xaa" + encode_reply(ReaderStatus.NO_CARD))
    finally:
        log.removeHandler(seen)
    assert out == [Reply(0x80)]
    assert decoder.skipped == 9
    assert seen.lines == ["id reader: skipped 9 bytes: garbage before a preamble"]


def test_a_bad_checksum_skips_that_frame_only():
    bad = bytearray(encode_reply(ReaderStatus.OK, b"abc"))
    bad[-1] ^= 0xFF
    stream = bytes(bad) + encode_reply(ReaderStatus.CARD_FOUND)
    assert ReplyDecoder().feed(stream) == [Reply(0x9F)]
    [marker, reply] = ReplyDecoder(bad_frames=True).feed(stream)
    assert isinstance(marker, BadFrame) and "checksum" in marker.reason
    assert reply == Reply(0x9F)


def test_an_impossible_length_is_skipped_without_waiting_for_it():
    for length in (b"\x00\x01", b"\xff\xff"):
        stream = b"\xaa\xaa\xaa\x96\x69" + length + encode_reply(ReaderStatus.NO_CARD)
        decoder = ReplyDecoder(bad_frames=True)
        out = decoder.feed(stream)
        assert out[-1] == Reply(0x80) and any(isinstance(x, BadFrame) for x in out)


def test_a_read_reply_whose_blocks_do_not_add_up_is_a_protocol_error():
    with pytest.raises(ReaderProtocolError):
        parse_read_data(b"\x01\x00\x04\x00" + bytes(100))
    with pytest.raises(ReaderProtocolError) as e:
        parse_card(bytes(200))
    assert e.value.status is ReaderStatus.LENGTH_ERROR


def test_an_unknown_card_type_is_a_wrong_card():
    text = bytearray(encode_card(ELDERLY))
    text[248:250] = "Q".encode("utf-16-le")
    with pytest.raises(ReaderProtocolError) as e:
        parse_card(bytes(text))
    assert e.value.status is ReaderStatus.WRONG_CARD


# --- properties --------------------------------------------------------------------------------

replies = st.builds(Reply, sw3=st.integers(0, 255), data=st.binary(max_size=300),
                    sw1=st.integers(0, 255), sw2=st.integers(0, 255))


@given(replies)
def test_reply_round_trip(reply):
    assert ReplyDecoder().feed(encode_reply(reply.sw3, reply.data, reply.sw1, reply.sw2)) == [reply]


def test_a_reply_too_long_for_the_frame_is_refused():
    encode_reply(ReaderStatus.OK, bytes(MAX_LENGTH - 4))
    with pytest.raises(ReaderProtocolError):
        encode_reply(ReaderStatus.OK, bytes(MAX_LENGTH - 3))


@given(st.lists(replies, max_size=5), st.data())
def test_any_chunking_decodes_the_same(batch, data):
    stream = b"".join(encode_reply(r.sw3, r.data, r.sw1, r.sw2) for r in batch)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=20)))
    decoder, out = ReplyDecoder(), []
    for start, end in zip([0] + cuts, cuts + [len(stream)], strict=True):
        out += decoder.feed(stream[start:end])
    assert out == batch and decoder.needed() == 7


@given(st.binary(max_size=4000), st.integers(1, 64))
@settings(deadline=500)
def test_arbitrary_bytes_never_break_the_decoders(junk, chunk):
    for decoder in (ReplyDecoder(bad_frames=True), CommandDecoder()):
        for i in range(0, len(junk), chunk):
            for item in decoder.feed(junk[i:i + chunk]):
                assert isinstance(item, (Reply, Request, BadFrame))
        assert 0 < decoder.needed() <= MAX_LENGTH + 7


@st.composite
def mutated_frames(draw):
    reply = draw(replies)
    frame = bytearray(encode_reply(reply.sw3, reply.data))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(frame) - 1))
        kind = draw(st.sampled_from(["flip", "drop", "insert"]))
        if kind == "flip":
            frame[at] ^= draw(st.integers(1, 255))
        elif kind == "drop":
            del frame[at]
        else:
            frame.insert(at, draw(st.integers(0, 255)))
        if not frame:
            break
    return bytes(frame)


@given(mutated_frames(), st.integers(1, 16))
@settings(deadline=500)
def test_mutated_frames_are_skipped_or_decoded_never_crash(frame, chunk):
    decoder = ReplyDecoder(bad_frames=True)
    out = []
    for i in range(0, len(frame), chunk):
        out += decoder.feed(frame[i:i + chunk])
    # Whatever the damage, the decoder resynchronises once a misread length has been used up.
    out += decoder.feed(encode_reply(ReaderStatus.NO_CARD) * (MAX_LENGTH // 10 + 2))
    assert out[-1] == Reply(0x80)
    assert all(isinstance(x, (Reply, BadFrame)) for x in out)


@given(st.binary(min_size=256, max_size=256), st.booleans())
def test_arbitrary_card_text_parses_or_is_a_protocol_error(text, fingerprint):
    try:
        parse_card(text)
    except ReaderProtocolError:
        pass
    try:
        parse_read_data(text, fingerprint)
    except ReaderProtocolError:
        pass


def field(chars: int) -> st.SearchStrategy[str]:
    """Text that fits a field of `chars` UCS-2 characters, as the reader would pad and we would strip."""
    letters = st.characters(min_codepoint=0x20, max_codepoint=0xFFFF, exclude_categories=("Cs",))
    return st.text(letters, max_size=chars).map(lambda s: s.strip(" \x00"))


dates = st.dates(dt.date(1900, 1, 1), dt.date(2099, 12, 31))
day_text = dates.map(lambda d: d.strftime("%Y%m%d"))
common = dict(name=field(15), sex=field(1), birth_date=st.none() | dates, valid_from=day_text,
              valid_to=day_text | st.just("长期"), photo=st.binary(max_size=1024),
              fingerprint=st.none() | st.binary(max_size=1024))
resident = dict(nation=field(2), address=field(35), id_number=field(18), authority=field(15))

cards = st.one_of(
    st.builds(Card, card_type=st.just(CardType.RESIDENT), **common, **resident),
    st.builds(Card, card_type=st.just(CardType.RESIDENCE_PERMIT), **common, **resident,
              pass_number=field(9), issue_count=field(2)),
    st.builds(Card, card_type=st.just(CardType.FOREIGN_PERMANENT_2017), **common,
              english_name=field(60), id_number=field(15), nationality=field(3), card_version=field(2),
              authority=field(4)),
    st.builds(Card, card_type=st.just(CardType.FOREIGN_PERMANENT_2023), **common,
              english_name=field(46), id_number=field(18), nationality=field(3), renewal_count=field(2),
              previous_card=field(3)),
)


@given(cards)
@settings(suppress_health_check=[HealthCheck.too_slow])
def test_card_round_trip_for_all_four_types(card):
    text = encode_card(card)
    assert len(text) == 256
    assert parse_card(text, card.photo, card.fingerprint) == card
    fingerprint = card.fingerprint is not None
    frame = encode_reply(ReaderStatus.OK, encode_read_data(text, card.photo, card.fingerprint))
    [reply] = ReplyDecoder().feed(frame)
    assert parse_card_reply(reply, fingerprint) == card


def test_a_field_too_long_for_its_slot_is_refused():
    with pytest.raises(ReaderProtocolError, match="longer than 15"):
        encode_card(ELDERLY.__class__(**{**ELDERLY.__dict__, "name": "长" * 16}))
