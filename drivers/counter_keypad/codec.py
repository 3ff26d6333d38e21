"""The counter bus's bytes: staff keypads and evaluation pads sharing one RS-485 line.

Pure: no I/O, no transports. Frame, both directions (devices.md section 3;
9600 8N1, one bus per row of counters, one address per device):

    FF 68 LEN LEN 68 ADDR FUNC DATA... SUM 16

- FF wakes the line. It is always sent but not required on receipt: the
  first byte after an RS-485 line turnaround is often lost (as the FE bytes
  of DL/T 645), and an idle or floating line reads as FF, so FF is never
  counted as garbage.
- LEN, sent twice, counts ADDR + FUNC + DATA: our reading of the field
  pattern, so a frame with no DATA has LEN 02. `LEN_OFFSET` is the one
  constant to change for a vendor that counts otherwise (+1 with SUM, +2
  through the 16, -2 for DATA only).
- SUM is the 8-bit sum of ADDR through the last DATA byte (LEN not included).
- 16 ends the frame.
- The controller echoes every device frame it takes, byte for byte, as the
  acknowledgement (a device that hears none may send the frame again); a
  grade only once it is recorded (`driver.CounterBus`). It never echoes a
  device's copy of a controller frame (0x20-0x23): that would ping-pong.

Functions. The field fixes 0x0B, 0x0C, 0x0D, 0x11, 0x12 and 0x13; the rest
(and every DATA layout) are ours, for keypads set up to send them in place
of the field's digit+OK combinations (hold has no function yet):

| FUNC | from | meaning | DATA |
|---|---|---|---|
| 0x0B | keypad | start evaluation | none |
| 0x0C | keypad | call next | none |
| 0x0D | keypad | recall | none |
| 0x0E | keypad | no-show | none |
| 0x0F | keypad | finish | none |
| 0x11 | pad | evaluation grade | grade byte 1-5 |
| 0x12 | keypad | pause | [reason byte [minutes byte]]; 0 = not given |
| 0x13 | keypad | transfer | one byte: 01-09 (the service's place in the hall's list) or "A"-"Z" (its prefix) |
| 0x14 | keypad | resume | none |
| 0x15 | keypad | call a number | ASCII ticket number: optional prefix letter and 1-4 digits (b"A012", b"12") |
| 0x20 | controller | show text (keypad LCD) | GB18030 text |
| 0x21 | controller | pad prompt | window byte, then the staff name in GB18030 |
| 0x22 | controller | pad blank | none |
| 0x23 | controller | pad thanks | none |

Pause reasons: 1 临时离开, 2 取材料/复印, 3 会商/请示, 4 就餐, 5 其他;
minutes 1-255 (the engine sets the real limit). Grades, the pads' keys:
1 非常满意, 2 满意, 3 基本满意, 4 不满意, 5 非常不满意 (the order of
`vocabulary.GRADES`, which the hall core uses too). Text is GB18030, which is GB2312
wherever GB2312 has the character; an LCD that knows only GB2312 shows rare
name characters (堃, 喆) as blanks.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from typing import TypeGuard

import vocabulary
from drivers import text as device_text
from drivers.protocol import ProtocolError

log = logging.getLogger(__name__)

WAKE = 0xFF
START = 0x68
END = 0x16
# LEN = bytes from ADDR to the last DATA byte + LEN_OFFSET. Change here, and only here, for a vendor.
LEN_OFFSET = 0
HEADER_SIZE = 4  # 68 LEN LEN 68
MAX_DATA = 0xFF - LEN_OFFSET - 2  # LEN is one byte
MAX_FRAME = 1 + HEADER_SIZE + 2 + MAX_DATA + 2
assert LEN_OFFSET >= -2, "LEN must be able to count a frame without DATA"

START_EVALUATION, CALL_NEXT, RECALL, NO_SHOW, FINISH = 0x0B, 0x0C, 0x0D, 0x0E, 0x0F
GRADE, PAUSE, TRANSFER, RESUME, CALL_NUMBER = 0x11, 0x12, 0x13, 0x14, 0x15
SHOW_TEXT, PAD_PROMPT, PAD_BLANK, PAD_THANKS = 0x20, 0x21, 0x22, 0x23
TEXT_ENCODING = "gb18030"
SCREEN_TEXT_BYTES = 64  # two 16-character lines of Hanzi on a keypad LCD
NAME_BYTES = 32  # a staff name on the pad's prompt

NUMBER = re.compile(r"[A-Z]?[0-9]{1,4}")
GRADES = frozenset(g.code for g in vocabulary.GRADES)
MINUTES = range(1, 256)


class BusProtocolError(ProtocolError, ValueError):
    """Bytes or values that are not a valid counter bus message."""


class Key(StrEnum):
    """A keypad key; the value is also the `key` of the tablets' JSON."""

    CALL_NEXT = "call_next"
    RECALL = "recall"
    NO_SHOW = "no_show"
    FINISH = "finish"
    START_EVALUATION = "start_evaluation"
    PAUSE = "pause"
    RESUME = "resume"
    TRANSFER = "transfer"
    CALL_NUMBER = "call_number"


KEY_FUNCTIONS: dict[Key, int] = {
    Key.CALL_NEXT: CALL_NEXT, Key.RECALL: RECALL, Key.NO_SHOW: NO_SHOW, Key.FINISH: FINISH,
    Key.START_EVALUATION: START_EVALUATION, Key.PAUSE: PAUSE, Key.RESUME: RESUME,
    Key.TRANSFER: TRANSFER, Key.CALL_NUMBER: CALL_NUMBER,
}
_KEYS = {function: key for key, function in KEY_FUNCTIONS.items()}
DEVICE_FUNCTIONS = frozenset(KEY_FUNCTIONS.values()) | {GRADE}
DISPLAY_FUNCTIONS = frozenset({SHOW_TEXT, PAD_PROMPT, PAD_BLANK, PAD_THANKS})


class PauseReason(IntEnum):
    """Why a window pauses: the code a keypad sends and the words the hall records."""

    AWAY = 1
    MATERIALS = 2
    CONSULT = 3
    MEAL = 4
    OTHER = 5

    @property
    def label(self) -> str:
        """The words the hall records for the pause."""
        return _PAUSE_LABELS[self]


_PAUSE_LABELS = {
    PauseReason.AWAY: "临时离开",
    PauseReason.MATERIALS: "取材料/复印",
    PauseReason.CONSULT: "会商/请示",
    PauseReason.MEAL: "就餐",
    PauseReason.OTHER: "其他",
}


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _byte(value: object, what: str, lowest: int = 0) -> int:
    if _is_int(value) and lowest <= value <= 0xFF:
        return value
    raise BusProtocolError(f"{what} must be a whole number {lowest}-255, not {value!r}")


@dataclass(frozen=True)
class BusFrame:
    """One frame on the bus: a device's address, the function and its data."""

    address: int
    function: int
    data: bytes = b""

    def __post_init__(self) -> None:
        _byte(self.address, "a bus address")
        _byte(self.function, "a function code")
        if not isinstance(self.data, bytes | bytearray):
            raise BusProtocolError(f"frame data must be bytes, not {type(self.data).__name__}")
        if len(self.data) > MAX_DATA:
            raise BusProtocolError(f"frame data of {len(self.data)} bytes is longer than {MAX_DATA}")
        object.__setattr__(self, "data", bytes(self.data))


def checksum(body: bytes) -> int:
    """SUM: the 8-bit sum of ADDR through the last DATA byte."""
    return sum(body) & 0xFF


def encode_frame(frame: BusFrame) -> bytes:
    body = bytes((frame.address, frame.function)) + frame.data
    length = len(body) + LEN_OFFSET
    return bytes((WAKE, START, length, length, START)) + body + bytes((checksum(body), END))


class FrameDecoder:
    """Finds frames in a byte stream however it is chunked; skips garbage and bad frames, saying why.

    A frame with a bad SUM, LEN bytes that differ or no 16 is skipped and the
    stream scanned again from the byte after its first 68, so a good frame
    that a misread LEN covered is still found. The buffer never holds more
    than one frame's worth of bytes.
    """

    def __init__(self) -> None:
        self.skipped = 0  # garbage bytes (not FF) dropped since start
        self.rejected = 0  # frame-shaped byte runs dropped since start
        self._buf = bytearray()
        self._rejected_until = 0

    @property
    def pending(self) -> int:
        """Bytes of a frame that has not ended yet."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[BusFrame]:
        if not isinstance(data, bytes | bytearray | memoryview):
            raise BusProtocolError(f"the decoder takes bytes, not {type(data).__name__}")
        self._buf += data
        return self._decode(final=False)

    def give_up(self) -> list[BusFrame]:
        """The line went quiet mid-frame: drop what never finished and decode any frame behind it."""
        return self._decode(final=True)

    def _reject(self, quiet: bool, reason: str) -> None:
        if not quiet:
            self.rejected += 1
            log.warning("counter bus: skipped a frame: %s", reason)

    def _whole_frame(self, run: bytearray, quiet: bool) -> BusFrame | None:
        """The frame in `run`, a frame's length of bytes from its first 68; None (reported) when
        its SUM or its 16 is wrong."""
        body = bytes(run[HEADER_SIZE:-2])
        total, last = run[-2], run[-1]
        if total != checksum(body):
            self._reject(quiet, f"SUM {total:02X}, expected {checksum(body):02X} "
                         f"(address {body[0]}, function {body[1]:02X})")
        elif last != END:
            self._reject(quiet, f"ends with {last:02X}, not 16 "
                                f"(address {body[0]}, function {body[1]:02X})")
        else:
            return BusFrame(body[0], body[1], body[2:])
        return None

    def _decode(self, final: bool) -> list[BusFrame]:
        buf = self._buf
        out: list[BusFrame] = []
        pos = garbage = 0
        rejected_until = self._rejected_until  # the rest of a rejected frame: reported, not garbage too
        while pos < len(buf):
            start = buf.find(START, pos)
            stop = len(buf) if start < 0 else start
            counted = min(max(pos, rejected_until), stop)
            garbage += stop - counted - buf.count(WAKE, counted, stop)
            pos = stop
            if start < 0:
                break
            if len(buf) - pos < HEADER_SIZE:
                if final:
                    self._reject(pos < rejected_until, f"cut off after {len(buf) - pos} bytes")
                    pos = len(buf)
                break
            length, again = buf[pos + 1], buf[pos + 2]
            if buf[pos + 3] != START:
                garbage += pos >= rejected_until  # a lone 68 in the noise, not a frame start
                pos += 1
                continue
            size = length - LEN_OFFSET  # ADDR + FUNC + DATA
            end = pos + HEADER_SIZE + size + 2
            extent = pos + HEADER_SIZE  # how far the frame just rejected reached, as far as is known
            # A frame-shaped run inside one already rejected is part of the same bad bytes: one report.
            quiet = pos < rejected_until
            if length != again:
                self._reject(quiet, f"LEN {length:02X} repeated as {again:02X}")
            elif size < 2:
                self._reject(quiet, f"LEN {length:02X} leaves no room for ADDR and FUNC")
            elif end > len(buf) and not final:
                break
            elif end > len(buf):
                self._reject(quiet, f"cut off after {len(buf) - pos} of {end - pos} bytes")
                extent = len(buf)
            else:
                extent = end
                frame = self._whole_frame(buf[pos:end], quiet)
                if frame is not None:
                    out.append(frame)
                    pos = end
                    continue
            rejected_until = max(rejected_until, extent)
            pos += 1
        if garbage:
            self.skipped += garbage
            log.warning("counter bus: skipped %d bytes: not a frame", garbage)
        del buf[:pos]
        self._rejected_until = max(0, rejected_until - pos)
        return out


@dataclass(frozen=True)
class KeyPress:
    """A key pressed on the staff keypad at `address`; the data fields only for the keys that take them."""

    address: int
    key: Key
    reason: int | None = None  # PAUSE: a PauseReason code
    minutes: int | None = None  # PAUSE
    service_digit: int | None = None  # TRANSFER: position 1-9 in the hall's service list
    service_letter: str | None = None  # TRANSFER: the service's prefix letter
    number: str | None = None  # CALL_NUMBER: "A012", or digits only


@dataclass(frozen=True)
class GradePress:
    """A citizen's grade on the evaluation pad at `address`: 1 非常满意 … 5 非常不满意."""

    address: int
    grade: int


@dataclass(frozen=True)
class Unknown:
    """A well-formed frame with a function this codec does not know (a vendor's heartbeat, say)."""

    address: int
    function: int
    data: bytes


@dataclass(frozen=True)
class Display:
    """A controller frame as the keypad or pad reads it (the simulator's side)."""

    address: int
    function: int
    text: str = ""  # SHOW_TEXT: the text; PAD_PROMPT: the staff name
    window: int | None = None  # PAD_PROMPT


_FIELDS = ("reason", "minutes", "service_digit", "service_letter", "number")
_KEY_FIELDS = {Key.PAUSE: {"reason", "minutes"}, Key.TRANSFER: {"service_digit", "service_letter"},
               Key.CALL_NUMBER: {"number"}}


def check_press(press: KeyPress) -> None:
    """BusProtocolError unless the press carries exactly what its key takes, each in range."""
    _byte(press.address, "a bus address")
    if not isinstance(press.key, Key):
        raise BusProtocolError(f"no key {press.key!r}")
    given = {f for f in _FIELDS if getattr(press, f) is not None}
    extra = given - _KEY_FIELDS.get(press.key, set())
    if extra:
        raise BusProtocolError(f"{press.key} takes no {', '.join(sorted(extra))}")
    if press.reason is not None and (not _is_int(press.reason) or press.reason not in set(PauseReason)):
        raise BusProtocolError(f"pause reason must be 1-5, not {press.reason!r}")
    if press.minutes is not None and (not _is_int(press.minutes) or press.minutes not in MINUTES):
        raise BusProtocolError(f"pause minutes must be 1-255, not {press.minutes!r}")
    if press.key is Key.TRANSFER:
        if len(given) != 1:
            raise BusProtocolError("a transfer names its target by service_digit or by service_letter")
        if press.service_digit is not None and (not _is_int(press.service_digit)
                                                or not 1 <= press.service_digit <= 9):
            raise BusProtocolError(f"a service digit is 1-9, not {press.service_digit!r}")
        letter = press.service_letter
        if letter is not None and not (isinstance(letter, str) and re.fullmatch("[A-Z]", letter)):
            raise BusProtocolError(f"a service prefix is one letter A-Z, not {letter!r}")
    if press.key is Key.CALL_NUMBER and not (isinstance(press.number, str) and NUMBER.fullmatch(press.number)):
        raise BusProtocolError(f"a ticket number is an optional letter A-Z and 1-4 digits, "
                               f"not {press.number!r}")


def encode_press(message: KeyPress | GradePress) -> BusFrame:
    """The frame a keypad or pad sends for `message` (the simulator's side)."""
    if isinstance(message, GradePress):
        if not _is_int(message.grade) or message.grade not in GRADES:
            raise BusProtocolError(f"a grade is 1-5, not {message.grade!r}")
        return BusFrame(message.address, GRADE, bytes((message.grade,)))
    if not isinstance(message, KeyPress):
        raise BusProtocolError(f"not a key press or grade: {message!r}")
    check_press(message)
    data = b""
    if message.key is Key.PAUSE:
        data = bytes((message.reason or 0, message.minutes or 0)).rstrip(b"\x00")
    elif message.key is Key.TRANSFER:
        digit, letter = message.service_digit, message.service_letter
        data = bytes((digit,)) if digit else str(letter).encode("ascii")
    elif message.key is Key.CALL_NUMBER:
        data = str(message.number).encode("ascii")
    return BusFrame(message.address, KEY_FUNCTIONS[message.key], data)


def parse(frame: BusFrame) -> KeyPress | GradePress | Unknown:
    """What a device frame means; BusProtocolError when a known function carries data it cannot."""
    address, function, data = frame.address, frame.function, frame.data
    if function == GRADE:
        if len(data) != 1 or data[0] not in GRADES:
            raise BusProtocolError(f"address {address}: a grade is one byte 1-5, not {data.hex(' ')!r}")
        return GradePress(address, data[0])
    key = _KEYS.get(function)
    if key is None:
        return Unknown(address, function, data)
    if key is Key.PAUSE:
        return _pause(address, data)
    if key is Key.TRANSFER:
        return _transfer(address, data)
    if key is Key.CALL_NUMBER:
        return _call_number(address, data)
    if data:
        raise BusProtocolError(f"address {address}: {key} carries no data, got {data.hex(' ')!r}")
    return KeyPress(address, key)


def _pause(address: int, data: bytes) -> KeyPress:
    """Pause: [reason byte [minutes byte]], 0 where not given."""
    if len(data) > 2:
        raise BusProtocolError(f"address {address}: pause data is at most 2 bytes, not {len(data)}")
    reason, minutes = (tuple(data) + (0, 0))[:2]
    if reason and reason not in set(PauseReason):
        raise BusProtocolError(f"address {address}: pause reason {reason} is not 1-5")
    return KeyPress(address, Key.PAUSE, reason=PauseReason(reason) if reason else None, minutes=minutes or None)


def _transfer(address: int, data: bytes) -> KeyPress:
    """Transfer: one byte, the service's place in the hall's list (01-09) or its prefix (A-Z)."""
    if len(data) != 1 or not (1 <= data[0] <= 9 or 0x41 <= data[0] <= 0x5A):
        raise BusProtocolError(f"address {address}: a transfer target is one byte 01-09 or A-Z, "
                               f"not {data.hex(' ')!r}")
    if data[0] <= 9:
        return KeyPress(address, Key.TRANSFER, service_digit=data[0])
    return KeyPress(address, Key.TRANSFER, service_letter=chr(data[0]))


def _call_number(address: int, data: bytes) -> KeyPress:
    number = data.decode("ascii", "replace")
    if not NUMBER.fullmatch(number):
        raise BusProtocolError(f"address {address}: {number!r} is not a ticket number")
    return KeyPress(address, Key.CALL_NUMBER, number=number)


def _text(text: str, what: str, max_bytes: int) -> bytes:
    """Text for a keypad or pad screen (drivers/text.py): control characters dropped, so no
    byte below 20 reaches the device, a stand-in for what GB18030 cannot carry, bounded."""
    if not isinstance(text, str):
        raise BusProtocolError(f"{what} must be text, not {type(text).__name__}")
    return device_text.encode(text, TEXT_ENCODING, max_bytes)


def show_text(address: int, text: str) -> BusFrame:
    """Show `text` on the keypad LCD at `address` (at most SCREEN_TEXT_BYTES of GB18030)."""
    return BusFrame(address, SHOW_TEXT, _text(text, "keypad text", SCREEN_TEXT_BYTES))


def pad_prompt(address: int, window: int, staff_name: str) -> BusFrame:
    """Ask the citizen at the pad to grade window `window`'s staff member."""
    data = bytes((_byte(window, "a window number", 1),)) + _text(staff_name, "staff name", NAME_BYTES)
    return BusFrame(address, PAD_PROMPT, data)


def pad_blank(address: int) -> BusFrame:
    return BusFrame(address, PAD_BLANK)


def pad_thanks(address: int) -> BusFrame:
    return BusFrame(address, PAD_THANKS)


def parse_display(frame: BusFrame) -> Display:
    """What a controller frame asks the device to show (the simulator's side)."""
    address, function, data = frame.address, frame.function, frame.data
    if function not in DISPLAY_FUNCTIONS:
        raise BusProtocolError(f"function {function:02X} is not a controller display frame")
    if function in (PAD_BLANK, PAD_THANKS):
        if data:
            raise BusProtocolError(f"function {function:02X} carries no data, got {len(data)} bytes")
        return Display(address, function)
    if function == PAD_PROMPT:
        if not data or data[0] == 0:
            raise BusProtocolError("a pad prompt starts with the window number 1-255")
        window, data = data[0], data[1:]
    else:
        window = None
    try:
        text = data.decode(TEXT_ENCODING)
    except UnicodeDecodeError as e:
        raise BusProtocolError(f"not {TEXT_ENCODING} text: {e.reason}") from None
    return Display(address, function, text, window)
