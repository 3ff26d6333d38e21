"""One fuzz target per codec entry point: a function of bytes, the codec's own errors, valid seeds.

A target's `run(data)` returns how many messages the input decoded to, or
raises. An exception of a type in `errors` is the codec refusing the input,
as documented; any other exception is a bug. Stream targets check more than
"no exception":

- the input fed whole and fed in small chunks gives the same messages (every
  decoder says it works "however it is chunked");
- after every feed the decoder holds at most `bound` bytes, so garbage can
  never make it grow without end;
- each message a stream yields goes through the parser the driver (or the
  simulator) applies next, as the hall's code does: the per-message codec
  errors are counted, not raised.

Seeds are made by the codecs' own encoders, so mutations start from frames
with good preambles, lengths and checksums and reach the parsers behind them.
"""

from __future__ import annotations

import datetime as dt
import json
import unicodedata
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from drivers import text as device_text
from drivers.announcer.speech import SPEECH_MAX_CHARS, speakable
from drivers.caller_display import generic_codec as bar
from drivers.caller_display import onbon_codec as onbon
from drivers.caller_display.state import Colour, DisplayProtocolError
from drivers.code_scanner.codec import ScanDecoder, ScannerProtocolError, encode_scan
from drivers.counter_keypad import codec as bus
from drivers.counter_keypad.codec import BusProtocolError, GradePress, Key, KeyPress, PauseReason
from drivers.counter_keypad.json_codec import KeyMessage, encode_key_json, parse_key_json
from drivers.evaluator_pad.json_codec import PadGrade, PadProtocolError, encode_grade_json, parse_grade_json
from drivers.id_reader import codec as sam
from drivers.id_reader.codec import Card, CardType, ReaderProtocolError
from drivers.ticket_printer import codec as escpos
from drivers.mqtt import STATE_TEXT_CHARS, encode_state
from drivers.ticket_printer.codec import PaperStatus, PrinterProtocolError, TextLine, TicketPrint
from fuzz.mutate import Seed


class FuzzFailure(AssertionError):
    """A property a codec promises broke (chunking changed the messages, a buffer outgrew its bound)."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind


@dataclass(frozen=True)
class Target:
    name: str
    codec: str
    run: Callable[[bytes], tuple[int, int]]  # (messages decoded, messages refused by the codec)
    errors: tuple[type[BaseException], ...]
    seeds: tuple[Seed, ...]
    tokens: tuple[bytes, ...] = ()
    max_size: int = 4096
    note: str = ""
    stream: bool = False
    bound: int | None = None  # bytes a stream decoder may hold between feeds


# Feeding in pieces of these sizes, in turn, starting at a place that depends on the input's length.
_PIECES = (1, 7, 2, 64, 3, 300, 5, 1, 1, 2048)


def chunks(data: bytes) -> Iterable[bytes]:
    at, i = 0, len(data) % len(_PIECES)
    while at < len(data):
        size = _PIECES[i % len(_PIECES)]
        yield data[at:at + size]
        at, i = at + size, i + 1


def _single(fn: Callable[[bytes], object]) -> Callable[[bytes], tuple[int, int]]:
    def run(data: bytes) -> tuple[int, int]:
        fn(data)
        return 1, 0
    return run


def _stream(make: Callable[[], Any], held: Callable[[Any], int], bound: int,
            then: Callable[[Any], object] | None = None, errors: tuple[type[BaseException], ...] = (),
            finish: str | None = None) -> Callable[[bytes], tuple[int, int]]:
    """Feed `data` whole to one decoder and in chunks to another; compare; check the bound; parse."""

    def feed_all(pieces: Iterable[bytes]) -> list[Any]:
        decoder, out = make(), []
        for piece in pieces:
            out += decoder.feed(piece)
            if held(decoder) > bound:
                raise FuzzFailure("buffer over its bound", f"decoder holds {held(decoder)} bytes, bound {bound}")
        if finish:
            out += getattr(decoder, finish)()
            if held(decoder) > bound:
                raise FuzzFailure("buffer over its bound", f"{held(decoder)} bytes after {finish}, bound {bound}")
        return out

    def run(data: bytes) -> tuple[int, int]:
        whole = feed_all((data,))
        pieces = feed_all(chunks(data))
        if whole != pieces:
            raise FuzzFailure("chunking changed the messages",
                              f"fed whole: {whole!r:.300}; fed in pieces: {pieces!r:.300}")
        refused = 0
        if then is not None:
            for message in whole:
                try:
                    then(message)
                except errors:
                    refused += 1
        return len(whole) - refused, refused

    return run


# --- seeds: valid frames from the codecs' own encoders ------------------------------------------

_PHOTO = bytes(range(256)) * 4
_CARDS = (
    Card(CardType.RESIDENT, name="张建国", sex="1", nation="01", birth_date=dt.date(1950, 3, 7),
         address="北京市东城区景山前街4号", id_number="11010119500307097X", authority="北京市公安局东城分局",
         valid_from="20100307", valid_to="长期"),
    Card(CardType.RESIDENCE_PERMIT, name="陈大文", sex="1", nation="", birth_date=dt.date(1988, 8, 8),
         address="重庆市渝中区解放碑", id_number="810000198808080017", authority="重庆市公安局",
         valid_from="20200101", valid_to="20250101", pass_number="H01234567", issue_count="01"),
    Card(CardType.FOREIGN_PERMANENT_2017, name="约翰", sex="1", birth_date=dt.date(1970, 1, 31),
         id_number="USA110070013101", valid_from="20170101", valid_to="20270101", nationality="USA",
         english_name="SMITH, JOHN", card_version="1", authority="1100"),
    Card(CardType.FOREIGN_PERMANENT_2023, name="玛丽", sex="2", birth_date=dt.date(1990, 12, 1),
         id_number="931586199012010026", valid_from="20230101", valid_to="20330101", nationality="GBR",
         english_name="WILLIAMS, MARY ANNE ELIZABETH CHARLOTTE", renewal_count="00"),
)


def _sam_seeds() -> tuple[Seed, ...]:
    length = ((5, 2, "big"),)
    frames = [sam.encode_reply(status) for status in sam.ReaderStatus]
    for card in _CARDS:
        text = sam.encode_card(card)
        frames.append(sam.encode_reply(sam.ReaderStatus.OK, sam.encode_read_data(text, _PHOTO)))
        frames.append(sam.encode_reply(sam.ReaderStatus.OK, sam.encode_read_data(text, _PHOTO, _PHOTO)))
    return tuple(Seed(f, length) for f in frames)


def _sam_command_seeds() -> tuple[Seed, ...]:
    return tuple(Seed(sam.encode_command(c), ((5, 2, "big"),)) for c in sam.Command)


def _both_layouts(parse: Callable[[Any, bool], object], value: Any) -> object:
    """Parse as a `30 01` reply and as a `30 10` one (a reader is set up for one of them)."""
    last: ReaderProtocolError | None = None
    for fingerprint in (False, True):
        try:
            return parse(value, fingerprint)
        except ReaderProtocolError as e:
            last = e
    raise last  # type: ignore[misc]


def _card_reply(reply: Any) -> object:
    if isinstance(reply, sam.BadFrame):
        return reply
    return _both_layouts(sam.parse_card_reply, reply)


def _tickets() -> tuple[bytes, ...]:
    at = dt.datetime(2026, 11, 23, 9, 0)
    full = TicketPrint("测试大厅", "社保医保", "A012", 3, (10, 25), at, "请到1号窗口",
                       "https://hall.example/t/A012", "张*", "请携带身份证原件", ("——【温馨提示】——", "12345"))
    bare = TicketPrint("Hall", "Tax", "B7", 0, None, at)
    extra = b"".join((
        b"\x1b*\x21\x03\x00" + bytes(9) + b"\n",  # bit image, 24-dot: 3 columns x 3 bytes
        b"\x1dv0\x00\x02\x00\x02\x00" + bytes(4),  # raster image, 2 x 2
        b"\x1dk\x024006381333931\x00\x1dkI\x05ABCDE",  # barcodes, NUL-ended and counted
        b"\x1bD\x08\x10\x00\x1bt\x02caf\x82\n\x1c.\x1bt\x10\x80\x1c&\x1dV\x42\x03",
        b"\x1b!\x38big\n\x1d8L\x02\x00\x00\x00\x30\x45\x10\x04\x04\x1bi",
    ))
    return (escpos.render_ticket(full), escpos.render_ticket(bare), extra, escpos.STATUS_QUERY)


def _escpos_lengths(frame: bytes) -> tuple[tuple[int, int, str], ...]:
    """The pL pH of GS ( k, the xL xH yL yH of GS v 0, the n of GS k m n: the little-endian counts."""
    out: list[tuple[int, int, str]] = []
    for prefix, offsets in ((b"\x1d(k", (3,)), (b"\x1dv0", (4, 6)), (b"\x1b*", (3,)), (b"\x1d8L", (3, 5))):
        at = frame.find(prefix)
        while at >= 0:
            out += [(at + o, 2, "little") for o in offsets]
            at = frame.find(prefix, at + 1)
    return tuple(out)


def _printout_held(d: escpos.PrintoutDecoder) -> int:
    return len(d._buf)


def _scans(prefix: bytes = b"", suffix: bytes = b"") -> tuple[Seed, ...]:
    codes = ("11010119500307097X", "APT-20261123A012", "https://hall.example/t/A012", "张建国", "x" * 512)
    frames = [encode_scan(c, prefix, suffix, term) for c in codes for term in (b"\r\n", b"\r", b"\n")]
    frames.append(encode_scan("张建国", prefix, suffix, encoding="gb18030"))
    return tuple(Seed(f) for f in frames)


def _bus_seeds() -> tuple[Seed, ...]:
    presses: list[KeyPress | GradePress] = [KeyPress(3, k) for k in (
        Key.CALL_NEXT, Key.RECALL, Key.NO_SHOW, Key.FINISH, Key.START_EVALUATION, Key.RESUME)]
    presses += [KeyPress(1, Key.PAUSE, reason=PauseReason.MEAL, minutes=30), KeyPress(1, Key.PAUSE),
                KeyPress(2, Key.TRANSFER, service_digit=3), KeyPress(2, Key.TRANSFER, service_letter="B"),
                KeyPress(254, Key.CALL_NUMBER, number="A012"), GradePress(7, 1), GradePress(7, 5)]
    frames = [bus.encode_press(p) for p in presses]
    frames += [bus.show_text(3, "请A012到3号窗口"), bus.pad_prompt(3, 3, "陈静"), bus.pad_blank(3),
               bus.pad_thanks(3), bus.BusFrame(9, 0x42, b"\x01\x02")]
    return tuple(Seed(bus.encode_frame(f), ((2, 1, "big"), (3, 1, "big"))) for f in frames)


def _bus_parse(frame: bus.BusFrame) -> object:
    if frame.function in bus.DISPLAY_FUNCTIONS:
        return bus.parse_display(frame)  # the simulated keypad's side
    return bus.parse(frame)  # the controller's side


def _key_json_seeds() -> tuple[Seed, ...]:
    messages = [KeyMessage("5f0c2a", 3, KeyPress(3, Key.PAUSE, reason=PauseReason.MEAL, minutes=30)),
                KeyMessage("a" * 64, 3, KeyPress(3, Key.CALL_NEXT)),
                KeyMessage("t1", 3, KeyPress(3, Key.TRANSFER, service_digit=2)),
                KeyMessage("t2", 3, KeyPress(3, Key.TRANSFER, service_letter="C")),
                KeyMessage("n1", 3, KeyPress(3, Key.CALL_NUMBER, number="B042"))]
    return tuple(Seed(encode_key_json(m)) for m in messages)


def _grade_json_seeds() -> tuple[Seed, ...]:
    grades = [PadGrade("g1", "非常满意", ("态度好", "效率高")), PadGrade("g" * 64, "非常不满意"),
              PadGrade("g3", "基本满意", tuple("标签" + str(i) for i in range(8)))]
    return tuple(Seed(encode_grade_json(g)) for g in grades) + (Seed(b'{"id":"n","grade":3,"tags":[]}'),)


def _bar_seeds() -> tuple[Seed, ...]:
    frames = [bar.encode(3, ["A012 请到3号窗口", "社保医保"], Colour.GREEN), bar.encode(255, ["暂停服务"], Colour.RED),
              bar.encode(0, [], Colour.YELLOW), bar.encode(1, ["x" * 100] * 4, Colour.YELLOW),
              bar.encode_clear(3), bar.encode_brightness(3, 15), bar.encode_ack(3)]
    return tuple(Seed(f, ((4, 2, "big"),)) for f in frames)


def _onbon_frames() -> tuple[bytes, ...]:
    return (onbon.encode_dynamic_text(1, "A012 请到3号窗口", Colour.GREEN),
            onbon.encode_dynamic_text(0xA55A, "\\C1红\\C2绿\\C3黄 ＺZ", None),
            onbon.encode_dynamic_text(2, "暂停服务 预计 10:30 恢复" * 3, Colour.RED),
            onbon.encode_packet(3, b"\xa3\x06\x01"), onbon.encode_packet(3, b"\x01\x02\x5a\xa5\xa6\x5b"))


def _onbon_packet(escaped: bytes) -> object:
    return onbon.decode_dynamic_text(onbon.decode_packet(escaped))


# --- text on its way to a device (issue 13 item 6) -----------------------------------------------
#
# A text target takes the input as text (UTF-8; a byte that is not becomes a lone surrogate),
# gives it to one codec's text encoder as the hall would (a name, a reason, a notice), decodes
# the bytes from the device's side and checks what the device got: no byte below 20 in the text
# but the codec's own framing, no control character in what it shows, no more than the codec's
# bound, only characters of its charset, and the frame around the text unchanged. It never
# raises. (1, 0) when the text reached the device as given, (0, 0) when some of it was dropped,
# replaced or cut: both happen.

HOSTILE_TEXTS = (
    "张建国", "\x1b@张\x1dV建\x10\x04国\x00", "\x1b" + "*" * 14, "王堃喆", "二楼\r\n审批科\t8021",
    "会商|请示|取材料|就餐|其他", "\\C1红\\C2绿", "\u202e反向\u200b", "长" * 300, "\ue000\U0001f600é",
    "\x1d(A" + "z" * 20, "[[h@l'oU]] <speak>", "",
)
_TEXT_TOKENS = (b"\x1b", b"\x1d", b"\x1c", b"\x10\x04", b"\x00", b"\r\n", b"\n", b"|", b"\\C1", b"\xa5",
                b"\x5a", b"\xaa\x55", b"\x68", b"\x16", b"[[", b"<", "堃".encode(), "\u202e".encode(),
                b"\xed\xa0\x80")


def _text_seeds() -> tuple[Seed, ...]:
    return tuple(Seed(t.encode("utf-8", "surrogatepass")) for t in HOSTILE_TEXTS)


def _as_text(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


def _no_controls(where: str, shown: str) -> None:
    bad = [hex(ord(c)) for c in shown if unicodedata.category(c) in ("Cc", "Cf", "Cs")]
    if bad:
        raise FuzzFailure("control character reached a device", f"{where}: {bad[:8]} in {shown!r:.200}")


def _no_control_bytes(where: str, raw: bytes, allowed: bytes = b"") -> None:
    bad = sorted({b for b in raw if (b < 0x20 or b == 0x7F) and b not in allowed})
    if bad:
        raise FuzzFailure("control byte in a text field", f"{where}: {bytes(bad).hex(' ')} in {raw[:120]!r}")


def _bounded(where: str, size: int, bound: int) -> None:
    if size > bound:
        raise FuzzFailure("text over its bound", f"{where}: {size} > {bound}")


def _as_given(text: str, charset: str | None, bound: int) -> tuple[int, int]:
    return (1, 0) if device_text.fit(text, charset, bound) == text else (0, 0)


def _ticket_text(data: bytes) -> tuple[int, int]:
    text = _as_text(data)
    at = dt.datetime(2026, 11, 23, 9, 0)

    def ticket(t: str) -> TicketPrint:
        return TicketPrint(t, t, t, 3, (10, 25), at, t, None, t, t, (t, "请在等候区留意叫号"))

    raw = escpos.ticket_text(text)
    _no_control_bytes("ticket_text", raw)
    _bounded("ticket_text bytes", len(raw), escpos.TEXT_MAX_BYTES)
    decoder = escpos.PrintoutDecoder()
    items = decoder.feed(escpos.render_ticket(ticket(text))) + decoder.finish()
    expected = escpos.decode_printout(escpos.render_ticket(ticket(text and "x")))
    if decoder.skipped or [type(i) for i in items] != [type(i) for i in expected]:
        raise FuzzFailure("text changed the ticket's commands",
                          f"{decoder.skipped} skipped; printed {items!r:.300}")
    for item in items:
        if isinstance(item, TextLine):
            _no_controls("printed line", item.text)
            _bounded("printed line bytes", len(item.text.encode("gb18030")), escpos.TEXT_MAX_BYTES)
    return _as_given(text, escpos.TEXT_CHARSET, escpos.TEXT_MAX_BYTES)


def _generic_bar_text(data: bytes) -> tuple[int, int]:
    text = _as_text(data)
    lines = text.split("|")[:bar.MAX_LINES]
    for charset in bar.TEXT_CHARSETS:
        frame = bar.encode(1, lines, Colour.GREEN, charset)
        payload = frame[bar.HEADER_SIZE + 1:-2]
        _no_control_bytes(f"generic bar text ({charset})", payload, allowed=b"\n")
        shown = bar.decode_frame(frame)
        if len(shown.lines) != (len(lines) if payload else 0):  # one empty line is an empty frame
            raise FuzzFailure("text changed the bar's lines", f"{len(lines)} sent, {len(shown.lines)} shown")
        for line in shown.lines:
            _no_controls("bar line", line)
            _bounded("bar line bytes", len(line.encode("gb18030")), bar.LINE_MAX_BYTES)
            line.encode(charset)  # a character outside the bar's font would raise here
    return _as_given(text, "gb2312", bar.LINE_MAX_BYTES)


def _onbon_text(data: bytes) -> tuple[int, int]:
    text = _as_text(data)
    frame = onbon.encode_bar(0xA55A, text.split("|"), Colour.RED)
    packets = onbon.OnbonDecoder().feed(frame)
    if len(packets) != 1 or len(packets[0].segments) != 1 or packets[0].colour not in (Colour.RED, None):
        raise FuzzFailure("text changed the Onbon frame", f"decoded {packets!r:.300}")
    raw = onbon.decode_packet(frame[len(onbon.PREAMBLE):-1]).data[len(onbon.DYNAMIC_TEXT):]
    _no_control_bytes("onbon text", raw)
    _bounded("onbon text bytes", len(raw), len("\\C1") + onbon.TEXT_MAX_BYTES)
    _no_controls("onbon text", packets[0].text)
    return _as_given(" ".join(text.split("|")), onbon.TEXT_CHARSET, onbon.TEXT_MAX_BYTES)


def _bus_text(data: bytes) -> tuple[int, int]:
    text = _as_text(data)
    frames = [bus.show_text(3, text), bus.pad_prompt(13, 3, text)]
    decoder = bus.FrameDecoder()
    got = decoder.feed(b"".join(bus.encode_frame(f) for f in frames))
    if got != frames:
        raise FuzzFailure("text changed the bus frames", f"sent {frames!r:.200}, read {got!r:.200}")
    for frame, bound in zip(frames, (bus.SCREEN_TEXT_BYTES, bus.NAME_BYTES + 1), strict=True):
        _no_control_bytes("bus text", frame.data[1:] if frame.function == bus.PAD_PROMPT else frame.data)
        _bounded("bus text bytes", len(frame.data), bound)
        _no_controls("keypad or pad screen", bus.parse_display(frame).text or "")
    return _as_given(text, bus.TEXT_ENCODING, bus.NAME_BYTES)


def _state_text(data: bytes) -> tuple[int, int]:
    text = _as_text(data)
    state = {"lines": text.split("|"), "text": text, "kind": "pausesign", "window": 3,
             "calls": [{"number": text[:5], "window": 1, "text": text}], "latest": None}
    shown = json.loads(encode_state(state))
    if shown["window"] != 3 or shown["latest"] is not None or len(shown["lines"]) != len(state["lines"]):
        raise FuzzFailure("text changed the state's shape", f"{shown!r:.300}")
    for value in (shown["text"], shown["calls"][0]["text"], *shown["lines"]):
        _no_controls("display state", value)
        _bounded("display state characters", len(value), STATE_TEXT_CHARS)
    return _as_given(text, None, 10 ** 9) if len(text) <= STATE_TEXT_CHARS else (0, 0)


def _speech_text(data: bytes) -> tuple[int, int]:
    text = _as_text(data)
    spoken = speakable(text)
    _no_controls("espeak-ng input", spoken)
    if set(spoken) & set("[]<>&\\"):
        raise FuzzFailure("markup reached the synthesizer", f"{spoken!r:.200}")
    _bounded("espeak-ng input characters", len(spoken), SPEECH_MAX_CHARS)
    return (1, 0) if spoken == text else (0, 0)


# --- the targets ---------------------------------------------------------------------------------

def stream(name: str, note: str, make: Callable[[], Any], held: Callable[[Any], int], bound: int,
           seeds: tuple[Seed, ...], tokens: tuple[bytes, ...], max_size: int,
           then: Callable[[Any], object] | None = None, errors: tuple[type[BaseException], ...] = (),
           finish: str | None = None) -> Target:
    """A stream decoder's target: `held(decoder)` is what it buffers, never more than `bound`."""
    return Target(name, name.split(".")[0], _stream(make, held, bound, then, errors, finish), errors, seeds,
                  tokens, max_size, note, stream=True, bound=bound)


def single(name: str, note: str, fn: Callable[[bytes], object], errors: tuple[type[BaseException], ...],
           seeds: tuple[Seed, ...], tokens: tuple[bytes, ...], max_size: int) -> Target:
    """A parser of one whole message: it returns a value or raises one of `errors`."""
    return Target(name, name.split(".")[0], _single(fn), errors, seeds, tokens, max_size, note)


def text(name: str, note: str, fn: Callable[[bytes], tuple[int, int]]) -> Target:
    """A codec's text encoder: never raises; its checks raise FuzzFailure."""
    return Target(name, name.split(".")[0], fn, (), _text_seeds(), _TEXT_TOKENS, 2048, note)


def _buffered(decoder: Any) -> int:
    return len(decoder._buf)  # the decoders keep their bytes private; the fuzzer looks anyway


def _scanner_line(decoder: ScanDecoder) -> int:
    return len(decoder._line)


def _scanner_bound(prefix: bytes = b"", suffix: bytes = b"") -> int:
    return ScanDecoder(prefix, suffix).max_length + len(prefix) + len(suffix)


def _targets() -> dict[str, Target]:
    reader = (ReaderProtocolError,)
    sam_tokens = (sam.PREAMBLE, b"\x05\x08", b"\x09\x0a", b"\x00\x00\x90", b"\xff\xff")
    sam_bound = sam.HEADER_SIZE + sam.MAX_LENGTH
    block_lengths = ((0, 2, "big"), (2, 2, "big"), (4, 2, "big"))
    read_data = tuple(Seed(sam.encode_read_data(sam.encode_card(c), _PHOTO, fp), block_lengths)
                      for c in _CARDS for fp in (None, _PHOTO))
    type_marks = (b"I\x00", b"J\x00", b"Y\x00", b" \x00", b"\x00\xd8")
    escpos_tokens = (b"\x1b", b"\x1d", b"\x1c", b"\x10\x04\x04", b"\x1d(k", b"\x1dV", b"\x1dv0", b"\x1b*",
                     b"\x1dk", b"\x1bD", b"\x1d8L", b"\n", b"\x1c&", b"\x1c.", b"\xb2\xe2")
    printout_bound = 5 + 0xFFFF  # GS ( k: five bytes and a 16-bit count waits whole in the buffer
    scan_tokens = (b"\r", b"\n", b"\r\n", b"\x02", b"\x03", "张".encode(), "张".encode("gb18030"))
    bus_tokens = (b"\xff", b"\x68", b"\x16", b"\x68\x02\x02\x68", b"\xff\x68")
    json_tokens = (b"{", b"}", b"[", b"]", b'"', b",", b":", b"\\u", b"1e999", b"null", b'"id"', b'"key"',
                   b'"grade"', b'"tags"', b'"pause"', "满意".encode())
    bar_tokens = (bar.START, b"\x0d", b"\x02\x00", b"\x80", b"\xff")
    bar_bound = bar.HEADER_SIZE + bar.MAX_DATA + 2
    onbon_frames = _onbon_frames()
    onbon_tokens = (onbon.PREAMBLE, b"\xa5", b"\x5a", b"\xa6\x02", b"\x5b\x01", b"\xa3\x06\x01", b"\\C1")
    onbon_bound = len(onbon.PREAMBLE) + onbon.MAX_ESCAPED
    display = (DisplayProtocolError,)

    targets = [
        stream("id_reader.replies", "ReplyDecoder.feed, then parse_card_reply on each reply (both layouts)",
               lambda: sam.ReplyDecoder(bad_frames=True), _buffered, sam_bound, _sam_seeds(), sam_tokens, 6000,
               then=_card_reply, errors=reader),
        stream("id_reader.commands", "CommandDecoder.feed (the simulated reader)", sam.CommandDecoder, _buffered,
               sam_bound, _sam_command_seeds(), sam_tokens, 512, errors=reader),
        single("id_reader.read_data", "parse_read_data, with and without the fingerprint block",
               lambda d: _both_layouts(sam.parse_read_data, d), reader, read_data, (b"\x01\x00", b"\x04\x00"), 3000),
        single("id_reader.card", "parse_card on a 256-byte text block", sam.parse_card, reader,
               tuple(Seed(sam.encode_card(c)) for c in _CARDS), type_marks, 300),
        stream("ticket_printer.printout", "PrintoutDecoder.feed + finish (the simulated printer)",
               escpos.PrintoutDecoder, _buffered, printout_bound,
               tuple(Seed(t, _escpos_lengths(t)) for t in _tickets()), escpos_tokens, 2048, finish="finish"),
        single("ticket_printer.paper_status", "parse_paper_status on the reply to DLE EOT 4",
               escpos.parse_paper_status, (PrinterProtocolError,),
               tuple(Seed(escpos.encode_paper_status(s)) for s in PaperStatus), (), 4),
        stream("code_scanner.lines", "ScanDecoder.feed, no prefix or suffix", ScanDecoder, _scanner_line,
               _scanner_bound(), _scans(), scan_tokens, 2048, errors=(ScannerProtocolError,)),
        stream("code_scanner.framed", "ScanDecoder.feed, STX prefix and ETX suffix",
               lambda: ScanDecoder(b"\x02", b"\x03"), _scanner_line, _scanner_bound(b"\x02", b"\x03"),
               _scans(b"\x02", b"\x03"), scan_tokens, 2048, errors=(ScannerProtocolError,)),
        stream("counter_keypad.bus", "FrameDecoder.feed + give_up, then parse or parse_display on each frame",
               bus.FrameDecoder, lambda d: d.pending, bus.MAX_FRAME, _bus_seeds(), bus_tokens, 1024,
               then=_bus_parse, errors=(BusProtocolError,), finish="give_up"),
        single("counter_keypad.key_json", "parse_key_json (tablet keypads, MQTT)", lambda d: parse_key_json(d, 3),
               (BusProtocolError,), _key_json_seeds(), json_tokens, 512),
        stream("caller_display.generic", "generic_codec.FrameDecoder.feed (documented: never raises)",
               bar.FrameDecoder, _buffered, bar_bound, _bar_seeds(), bar_tokens, 2048),
        single("caller_display.generic_frame", "generic_codec.decode_frame on one frame", bar.decode_frame,
               display, _bar_seeds(), bar_tokens, 1024),
        stream("caller_display.onbon", "onbon_codec.OnbonDecoder.feed (documented: never raises)",
               onbon.OnbonDecoder, _buffered, onbon_bound, tuple(Seed(f) for f in onbon_frames), onbon_tokens, 2048),
        single("caller_display.onbon_packet", "decode_packet + decode_dynamic_text on one escaped packet",
               _onbon_packet, display, tuple(Seed(f[len(onbon.PREAMBLE):-1]) for f in onbon_frames),
               onbon_tokens, 1024),
        single("evaluator_pad.grade_json", "parse_grade_json (tablet pads, MQTT)", parse_grade_json,
               (PadProtocolError,), _grade_json_seeds(), json_tokens, 512),
        text("ticket_printer.text", "render_ticket with the text in every field, read back by PrintoutDecoder",
             _ticket_text),
        text("caller_display.generic_text", "generic_codec.encode, GB18030 and GB2312 fonts, then decode_frame",
             _generic_bar_text),
        text("caller_display.onbon_text", "onbon_codec.encode_bar, then OnbonDecoder", _onbon_text),
        text("counter_keypad.text", "show_text and pad_prompt, then FrameDecoder and parse_display", _bus_text),
        text("mqtt.state_text", "encode_state (every MQTT display's state), then json.loads", _state_text),
        text("announcer.speech", "speakable (what espeak-ng is given)", _speech_text),
    ]
    return {t.name: t for t in targets}


TARGETS = _targets()
