"""Our own serial frame for generic RS-485 window bars (9600 8N1), documented here in full.

Pure: bytes in, messages out, and back. No vendor shares one frame for these
bars (docs devices.md section 4), so a bar we program ourselves, or a vendor
bar whose firmware is configured for it, speaks this:

    AA 55 | ADDR | CMD | LEN_H LEN_L | DATA (LEN bytes) | XOR | 0D

- ADDR: the bar's address on the bus, 00-FE. FF is every bar at once
  (broadcast) and is never acknowledged, or the bus would collide.
- LEN: big-endian count of the DATA bytes, at most 512.
- XOR: the XOR of ADDR, CMD, LEN_H, LEN_L and every DATA byte.
- 0D ends the frame. It may also occur inside DATA: LEN, not 0D, finds the end.

Commands, host to bar:

| CMD | meaning    | DATA                                                 |
|-----|------------|------------------------------------------------------|
| 01  | show text  | COLOUR, then GB18030 text, lines separated by 0A     |
| 02  | clear      | none                                                 |
| 03  | brightness | one byte, 0 (dark) to 15 (brightest)                 |

COLOUR is 01 red, 02 green, 03 yellow (the numbers Onbon uses for \\C1-\\C3).
A GB18030 multi-byte character never contains 0A or 0D, so 0A is a safe line
separator; a line's own line breaks are sent as spaces. One or more lines are
sent as one frame; the bar scrolls a line wider than itself.

The text holds no byte below 20 but the 0A between lines (drivers/text.py:
control characters are dropped), at most LINE_MAX_BYTES a line. A bar whose
font holds only GB2312 (devices.md section 4) is configured with
`charset = "gb2312"`: a character outside it (堃, 喆) is sent as □, which the
bar can show, instead of bytes it would show as garbage.

Bar to host, after every frame addressed to it alone, with a good XOR:

    AA 55 | ADDR | 80 | 00 00 | XOR | 0D        (ACK)

Examples (checked by the tests):
- show "A012" in green on bar 3: `AA 55 03 01 00 05 02 41 30 31 32 77 0D`
- bar 3 acknowledges: `AA 55 03 80 00 00 83 0D`
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import reduce
from operator import xor
from typing import Callable, Sequence

from drivers import text as device_text
from drivers.caller_display.state import Colour, DisplayProtocolError

log = logging.getLogger(__name__)

START = b"\xaa\x55"
END = 0x0D
HEADER_SIZE = 6  # AA 55 ADDR CMD LEN_H LEN_L
MAX_DATA = 512
MAX_LINES = 4
# Four lines of this much, their separators and the colour byte stay within MAX_DATA.
LINE_MAX_BYTES = 120
TEXT_CHARSETS = ("gb18030", "gb2312")  # what the bar's font holds; the frame's bytes are GB18030
BROADCAST = 0xFF

SHOW_TEXT = 0x01
CLEAR = 0x02
BRIGHTNESS = 0x03
ACK = 0x80

COLOUR_CODES = {Colour.RED: 0x01, Colour.GREEN: 0x02, Colour.YELLOW: 0x03}
_COLOURS = {code: colour for colour, code in COLOUR_CODES.items()}


@dataclass(frozen=True)
class ShowText:
    """Host to bar: show these lines in this colour."""

    address: int
    lines: tuple[str, ...]
    colour: Colour


@dataclass(frozen=True)
class Clear:
    """Host to bar: show nothing."""

    address: int


@dataclass(frozen=True)
class Brightness:
    """Host to bar: 0 (dark) to 15 (brightest)."""

    address: int
    level: int


@dataclass(frozen=True)
class Ack:
    """Bar to host: the last frame to this address arrived whole."""

    address: int


Message = ShowText | Clear | Brightness | Ack


def checksum(data: bytes) -> int:
    return reduce(xor, data, 0)


def _check_address(address: int) -> None:
    if not 0 <= address <= 0xFF:
        raise DisplayProtocolError(f"bar address {address} is outside 0-255")


def encode_frame(address: int, command: int, data: bytes = b"") -> bytes:
    """Start, address, command, length, data, XOR, end."""
    _check_address(address)
    if len(data) > MAX_DATA:
        raise DisplayProtocolError(f"{len(data)} bytes of data; a bar frame holds at most {MAX_DATA}")
    body = bytes((address, command)) + len(data).to_bytes(2, "big") + data
    return START + body + bytes((checksum(body), END))


def _charset(charset: str | None) -> str:
    if charset is None:
        return TEXT_CHARSETS[0]
    if charset.lower() not in TEXT_CHARSETS:
        raise DisplayProtocolError(f"a generic bar's font is {' or '.join(TEXT_CHARSETS)}, not {charset!r}")
    return charset.lower()


def line_text(line: str, charset: str | None = None) -> bytes:
    """One line as GB18030 bytes the bar shows as text: see the module docstring."""
    return device_text.fit(line, _charset(charset), LINE_MAX_BYTES).encode("gb18030")


def encode_text(lines: Sequence[str], charset: str | None = None) -> bytes:
    """The lines as GB18030, separated by 0A (a line's own line breaks become spaces)."""
    if len(lines) > MAX_LINES:
        raise DisplayProtocolError(f"{len(lines)} lines; a bar frame holds at most {MAX_LINES}")
    charset = _charset(charset)
    return b"\n".join(line_text(line, charset) for line in lines)


def encode(address: int, lines: Sequence[str], colour: Colour, charset: str | None = None) -> bytes:
    """Show `lines` (one frame, one or more lines) in `colour` on the bar at `address`, whose font
    holds `charset` (None: GB18030)."""
    return encode_frame(address, SHOW_TEXT, bytes((COLOUR_CODES[colour],)) + encode_text(lines, charset))


def encode_clear(address: int) -> bytes:
    return encode_frame(address, CLEAR)


def encode_brightness(address: int, level: int) -> bytes:
    if not 0 <= level <= 15:
        raise DisplayProtocolError(f"brightness {level} is outside 0-15")
    return encode_frame(address, BRIGHTNESS, bytes((level,)))


def encode_ack(address: int) -> bytes:
    """The bar's answer (the simulator's side)."""
    return encode_frame(address, ACK)


def decode_frame(frame: bytes) -> Message:
    """One complete frame as its message; DisplayProtocolError says what is wrong with it."""
    if len(frame) < HEADER_SIZE + 2 or not frame.startswith(START):
        raise DisplayProtocolError(f"not a bar frame: {frame[:8].hex(' ')}")
    length = (frame[4] << 8) | frame[5]
    if len(frame) != HEADER_SIZE + length + 2:
        raise DisplayProtocolError(f"length field says {length} data bytes, the frame has "
                                   f"{len(frame) - HEADER_SIZE - 2}")
    if frame[-1] != END:
        raise DisplayProtocolError(f"frame ends in {frame[-1]:02X}, not 0D")
    expected = checksum(frame[2:-2])
    if frame[-2] != expected:
        raise DisplayProtocolError(f"XOR {frame[-2]:02X}, expected {expected:02X}")
    address, command, data = frame[2], frame[3], frame[HEADER_SIZE:-2]
    if command == SHOW_TEXT:
        if not data or data[0] not in _COLOURS:
            raise DisplayProtocolError(f"show text without a known colour: {data[:1].hex()}")
        try:
            text = data[1:].decode("gb18030")
        except UnicodeDecodeError as e:
            raise DisplayProtocolError(f"text is not GB18030: {e.reason} at byte {e.start}") from None
        return ShowText(address, tuple(text.split("\n")) if text else (), _COLOURS[data[0]])
    if command == CLEAR and not data:
        return Clear(address)
    if command == BRIGHTNESS and len(data) == 1 and data[0] <= 15:
        return Brightness(address, data[0])
    if command == ACK and not data:
        return Ack(address)
    raise DisplayProtocolError(f"command {command:02X} with {len(data)} data bytes is not in the codec")


class FrameDecoder:
    """Finds frames in a byte stream however it is chunked; skips garbage and says why.

    `feed` never raises: a damaged frame or garbage is logged and counted in
    `skipped` (bytes) and `rejected` (well-framed but meaningless frames).
    """

    def __init__(self) -> None:
        self.skipped = 0
        self.rejected = 0
        self._buf = bytearray()

    def _skip(self, count: int, reason: str) -> None:
        self.skipped += count
        log.warning("bar frame: skipped %d bytes: %s", count, reason)
        del self._buf[:count]

    def feed(self, data: bytes) -> list[Message]:
        self._buf += data
        out: list[Message] = []
        while self._buf:
            start = self._buf.find(START)
            if start < 0:
                keep = 1 if self._buf.endswith(START[:1]) else 0
                if len(self._buf) > keep:
                    self._skip(len(self._buf) - keep, "garbage before a frame start")
                break
            if start:
                self._skip(start, "garbage before a frame start")
            if len(self._buf) < HEADER_SIZE:
                break
            length = (self._buf[4] << 8) | self._buf[5]
            if length > MAX_DATA:
                self._skip(len(START), f"impossible length {length}")
                continue
            end = HEADER_SIZE + length + 2
            if len(self._buf) < end:
                break
            frame = bytes(self._buf[:end])
            if frame[-1] != END or frame[-2] != checksum(frame[2:-2]):
                # Skip only the start: a misread LEN may have covered good frames, found on the rescan.
                self._skip(len(START), f"bad XOR or end byte ({end} byte frame)")
                continue
            del self._buf[:end]
            try:
                out.append(decode_frame(frame))
            except DisplayProtocolError as e:
                self.rejected += 1
                log.warning("bar frame: rejected: %s", e)
        return out


# --- the driver's view of this codec (see drivers.caller_display.driver.CODECS) ---------------

def encode_bar(address: int, lines: Sequence[str], colour: Colour, charset: str | None = None) -> bytes:
    return encode(address, lines, colour, charset)


def ack_waiter(address: int) -> Callable[[bytes], bool] | None:
    """A function fed the bytes read back; True once the bar at `address` has acknowledged."""
    if address == BROADCAST:
        return None
    decoder = FrameDecoder()

    def acknowledged(chunk: bytes) -> bool:
        return any(isinstance(m, Ack) and m.address == address for m in decoder.feed(chunk))

    return acknowledged
