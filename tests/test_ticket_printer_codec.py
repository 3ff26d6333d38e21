"""The ticket on paper: rendered to ESC/POS, read back, and the paper sensor byte."""

from __future__ import annotations

import time
from datetime import datetime

import pytest
from escpos.printer import Dummy
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.ticket_printer import (
    STATUS_QUERY, Cut, PaperStatus, PrinterProtocolError, PrintoutDecoder, QrCode, SizeChange,
    StatusQuery, TextLine, TicketPrint, decode_printout, encode_paper_status, parse_paper_status,
    render_ticket, wait_text,
)

URL = "https://zwfw.example.gov.cn/q?t=A012&h=cq-yb"


def a_ticket(**changes) -> TicketPrint:
    base = dict(
        hall_name="渝北区政务服务中心", service_name="不动产登记", number="A012", people_ahead=3,
        wait_minutes=(10, 25), issued_at=datetime(2024, 5, 6, 9, 12), window_hint="请留意 1、2、18 号窗口",
        qr_url=URL, masked_name="张*三", warning="距下班不足 30 分钟，今日可能无法办结",
        footer=("【】", "——————", "请妥善保管小票"),
    )
    return TicketPrint(**{**base, **changes})


def lines_of(items) -> list[str]:
    return [i.text for i in items if isinstance(i, TextLine)]


def test_a_rendered_ticket_reads_back_as_the_hall_printed_it():
    items = decode_printout(render_ticket(a_ticket()))
    lines = lines_of(items)
    for expected in ("渝北区政务服务中心", "不动产登记", "A012", "前面还有 3 人", "约 10-25 分钟",
                     "取号时间 2024-05-06 09:12", "请留意 1、2、18 号窗口", "取号人 张*三",
                     "距下班不足 30 分钟，今日可能无法办结", "请妥善保管小票"):
        assert expected in lines
    assert [i.content for i in items if isinstance(i, QrCode)] == [URL]
    assert [i for i in items if isinstance(i, Cut)] == [Cut(partial=False)]
    assert isinstance(items[-1], Cut)


def test_the_number_is_printed_large_and_the_rest_normal():
    items = decode_printout(render_ticket(a_ticket()))
    number = next(i for i in items if isinstance(i, TextLine) and i.text == "A012")
    assert (number.width, number.height) == (4, 4) and number.align == "center"
    assert SizeChange(4, 4) in items
    ahead = next(i for i in items if isinstance(i, TextLine) and i.text == "前面还有 3 人")
    assert (ahead.width, ahead.height) == (1, 1)


def test_a_punctuation_only_line_survives_as_gb18030():
    data = render_ticket(a_ticket())
    for line in ("——————", "【】"):
        assert line.encode("gb18030") + b"\n" in data
        assert line in lines_of(decode_printout(data))


def test_python_escpos_alone_would_garble_punctuation_only_lines():
    """Why render_ticket encodes text itself: escpos only spots U+4E00..U+9FA5."""
    p = Dummy()
    p.text("【】\n")
    assert "【】".encode("gb18030") not in p.output


@pytest.mark.parametrize("wait, text", [
    ((10, 25), "约 10-25 分钟"), ((15, 15), "约 15 分钟"), ((0, 0), "无需等待"), (None, None),
])
def test_the_wait_is_a_range_or_no_wait(wait, text):
    assert wait_text(wait) == text
    lines = lines_of(decode_printout(render_ticket(a_ticket(wait_minutes=wait, people_ahead=0))))
    assert "前面还有 0 人" in lines
    assert (text in lines) if text else not any(line.startswith("约") for line in lines)


def test_an_anonymous_ticket_without_qr_has_no_name_line_and_no_code():
    items = decode_printout(render_ticket(a_ticket(masked_name=None, qr_url=None, warning=None)))
    assert not any(line.startswith("取号人") for line in lines_of(items))
    assert not any(isinstance(i, QrCode) for i in items)


def test_a_ticket_with_a_negative_queue_is_a_programming_error():
    with pytest.raises(ValueError):
        a_ticket(people_ahead=-1)
    with pytest.raises(ValueError):
        a_ticket(wait_minutes=(25, 10))


def matches_pattern(b: int) -> bool:
    return f"{b:08b}"[0] == "0" and f"{b:08b}"[3] == "1" and f"{b:08b}"[6:] == "10"


class AnsweringDummy(Dummy):
    """python-escpos' own reading of the paper byte, as the reference."""

    def __init__(self, reply: int) -> None:
        super().__init__()
        self.reply = reply

    def _read(self) -> bytes:
        return bytes([self.reply])


@settings(max_examples=256)
@given(st.integers(0, 255))
def test_a_status_byte_is_accepted_exactly_when_it_matches_0xx1xx10(b):
    if matches_pattern(b):
        assert parse_paper_status(b) == AnsweringDummy(b).paper_status()
        assert parse_paper_status(bytes([b])) == parse_paper_status(b)
    else:
        with pytest.raises(PrinterProtocolError):
            parse_paper_status(b)


def test_all_valid_status_bytes_and_what_they_mean():
    valid = [b for b in range(256) if matches_pattern(b)]
    assert len(valid) == 16
    seen = {b: parse_paper_status(b) for b in valid}
    assert seen[0x12] is PaperStatus.OK and seen[0x1E] is PaperStatus.NEAR_END
    assert seen[0x72] is PaperStatus.OUT and seen[0x7E] is PaperStatus.OUT
    with pytest.raises(PrinterProtocolError):
        parse_paper_status(b"")
    with pytest.raises(PrinterProtocolError):
        parse_paper_status(b"\x12\x12")


@pytest.mark.parametrize("status", list(PaperStatus))
def test_the_simulator_byte_reads_back_as_the_same_status(status):
    assert parse_paper_status(encode_paper_status(status)) is status
    assert AnsweringDummy(encode_paper_status(status)[0]).paper_status() == status


def test_status_queries_are_decoded_between_tickets():
    items = decode_printout(STATUS_QUERY + render_ticket(a_ticket()) + STATUS_QUERY)
    assert items[0] == StatusQuery(4) and items[-1] == StatusQuery(4)


@settings(max_examples=50)
@given(st.integers(1, 64))
def test_the_decoder_gives_the_same_result_in_any_chunk_size(size):
    data = render_ticket(a_ticket())
    d = PrintoutDecoder()
    items = []
    for i in range(0, len(data), size):
        items += d.feed(data[i:i + size])
    assert items + d.finish() == decode_printout(data)


def decode_quickly(data: bytes) -> None:
    started = time.monotonic()
    try:
        d = PrintoutDecoder()
        d.feed(data[: len(data) // 2])
        d.feed(data[len(data) // 2:])
        d.finish()
    except PrinterProtocolError:
        pass
    assert time.monotonic() - started < 0.5


@given(st.binary(max_size=2048))
def test_arbitrary_bytes_never_break_the_decoder(data):
    decode_quickly(data)


@given(st.data())
def test_mutated_tickets_never_break_the_decoder(draw):
    data = bytearray(render_ticket(a_ticket()))
    for _ in range(draw.draw(st.integers(1, 8))):
        at = draw.draw(st.integers(0, len(data) - 1))
        action = draw.draw(st.sampled_from(["flip", "drop", "insert"]))
        if action == "flip":
            data[at] = draw.draw(st.integers(0, 255))
        elif action == "drop":
            del data[at]
        else:
            data[at:at] = draw.draw(st.sampled_from([b"\x1b", b"\x1d(k", b"\x1c", b"\x10\x04", b"\xff\xff"]))
    decode_quickly(bytes(data))


def test_common_commands_from_other_pos_software():
    stream = (b"\x1b@\x1ba\x02\x1b!\x30Big\n\x1b!\x00\x1c.\x1bt\x10caf\xe9\n\x1c&"
              + "收据".encode("gb18030") + b"\x1bd\x03\x1dVA\x03\x10\x04\x01")
    assert decode_printout(stream) == [
        SizeChange(2, 2), TextLine("Big", 2, 2, "right"), SizeChange(1, 1),
        TextLine("café", align="right"), TextLine("收据", align="right"), Cut(partial=False),
        StatusQuery(1),
    ]


def test_older_cut_commands_and_ignored_settings_are_understood():
    stream = b"\x1b-\x01\x1d\x48\x02\x1dL\x00\x00ok\n\x1bm\x1bi"
    assert decode_printout(stream) == [TextLine("ok"), Cut(partial=True), Cut(partial=False)]
