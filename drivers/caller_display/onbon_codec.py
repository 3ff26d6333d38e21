"""Onbon BX-5/BX-6 controllers: the dynamic text area frame, as docs devices.md section 4 gives it.

Pure: bytes in, text out, and back. One frame (TCP port 5005 on networked
models, or RS-485):

    A5 A5 A5 A5 A5 A5 A5 A5 | packet, escaped | 5A

    packet (before escaping), multi-byte fields little-endian:
    DST(2) | SRC 01 80 | 00 00 00 | CHECK | DISPLAY | TYPE 61 | VERSION 02 | LEN(2) | DATA | CRC(2)

- DST is the controller's address (screen id), e.g. 1 -> `01 00`.
- SRC `01 80` is the host (0x8001).
- CHECK 00 (CRC16, the only check mode this codec speaks), DISPLAY 00.
- LEN counts the DATA bytes.
- CRC covers every packet byte before it, DST to the end of DATA, computed
  before escaping, sent low byte first.
- Escaping, applied to the whole packet after the CRC is appended, so that A5
  and 5A only ever mark a frame's start and end: A5 -> A6 02, A6 -> A6 01,
  5A -> 5B 02, 5B -> 5B 01.

DATA for the dynamic text area: `A3 06 01`, then the GB2312 text. Colour
escapes in the text: `\\C1` red, `\\C2` green, `\\C3` yellow. A backslash in
the hall's own text is sent as the full-width `＼` so that it can never be read
as an escape. The hall's text goes through drivers/text.py: control characters
dropped, a character outside GB2312 (堃, 喆) sent as □, at most TEXT_MAX_BYTES.

The CRC: devices.md says "CRC16 (IBM)". That name covers two common variants;
this codec uses CRC-16/ARC (polynomial 0x8005, reflected, i.e. 0xA001 shifted
right; init 0x0000; no final XOR; check value 0xBB3D for "123456789"). "IBM"
is ARC's catalogued alias (CRC-16, CRC-IBM, CRC-16/LHA), and the open Onbon
implementations start from 0; CRC-16/MODBUS, the same polynomial from 0xFFFF,
is always called MODBUS.

Not in devices.md, so not sent: public BX-5/6 code puts a process-mode byte,
delete-area and area counts, an area length and the area geometry between
`A3 06 01` and the text, and the BX-6 header an option byte before CHECK. A
controller that rejects this frame needs those fields: check its firmware's
protocol document before the hall relies on it.

Lines: a dynamic area wraps and scrolls on its own, so `encode_bar` sends the
bar's lines as one text joined by a space.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Callable, Sequence

from drivers import text as device_text
from drivers.caller_display.state import Colour, DisplayProtocolError

log = logging.getLogger(__name__)

PREAMBLE = b"\xa5" * 8
FRAME_START = 0xA5
FRAME_END = 0x5A
SOURCE = 0x8001
CHECK_CRC16 = 0x00
DISPLAY_MODE = 0x00
DEVICE_TYPE = 0x61
PROTOCOL_VERSION = 0x02
HEADER_SIZE = 13
DYNAMIC_TEXT = b"\xa3\x06\x01"
MAX_DATA = 4096
TEXT_CHARSET = "gb2312"
TEXT_MAX_BYTES = 256  # a few screens of scrolling text; a longer one is cut, ending in …
# An escaped packet is at most twice the raw packet; past that without a 5A the frame is lost.
MAX_ESCAPED = 2 * (HEADER_SIZE + MAX_DATA + 2)

COLOUR_CODES = {Colour.RED: 1, Colour.GREEN: 2, Colour.YELLOW: 3}
_COLOURS = {str(code): colour for colour, code in COLOUR_CODES.items()}
_ESCAPE = {0xA5: b"\xa6\x02", 0xA6: b"\xa6\x01", 0x5A: b"\x5b\x02", 0x5B: b"\x5b\x01"}
_UNESCAPE = {(0xA6, 0x02): 0xA5, (0xA6, 0x01): 0xA6, (0x5B, 0x02): 0x5A, (0x5B, 0x01): 0x5B}
_COLOUR_ESCAPE = re.compile(r"\\C([1-3])")


def crc16_ibm(data: bytes) -> int:
    """CRC-16/ARC: reflected polynomial 0xA001, init 0x0000, no final XOR."""
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def escape(packet: bytes) -> bytes:
    return b"".join(_ESCAPE.get(b, bytes((b,))) for b in packet)


def unescape(escaped: bytes) -> bytes:
    """The packet as sent; DisplayProtocolError for an escape byte not followed by 01 or 02."""
    out = bytearray()
    i = 0
    while i < len(escaped):
        b = escaped[i]
        if b in (0xA6, 0x5B):
            pair = (b, escaped[i + 1]) if i + 1 < len(escaped) else (b, -1)
            if pair not in _UNESCAPE:
                raise DisplayProtocolError(f"{b:02X} at byte {i} is not followed by 01 or 02")
            out.append(_UNESCAPE[pair])
            i += 2
            continue
        if b in (FRAME_START, FRAME_END):
            raise DisplayProtocolError(f"unescaped {b:02X} at byte {i} inside a packet")
        out.append(b)
        i += 1
    return bytes(out)


def _check_address(address: int) -> None:
    if not 0 <= address <= 0xFFFF:
        raise DisplayProtocolError(f"controller address {address} is outside 0-65535")


def encode_packet(address: int, data: bytes) -> bytes:
    """A whole frame: preamble, escaped header + data + CRC, end byte."""
    _check_address(address)
    if len(data) > MAX_DATA:
        raise DisplayProtocolError(f"{len(data)} data bytes; this codec sends at most {MAX_DATA}")
    header = (address.to_bytes(2, "little") + SOURCE.to_bytes(2, "little") + bytes(3)
              + bytes((CHECK_CRC16, DISPLAY_MODE, DEVICE_TYPE, PROTOCOL_VERSION))
              + len(data).to_bytes(2, "little"))
    packet = header + data
    return PREAMBLE + escape(packet + crc16_ibm(packet).to_bytes(2, "little")) + bytes((FRAME_END,))


def encode_text(text: str, colour: Colour | None = None) -> bytes:
    """GB2312 text with the colour escape in front; see the module docstring for what is done
    to the hall's text."""
    safe = device_text.fit(text.replace("\\", "＼"), TEXT_CHARSET, TEXT_MAX_BYTES)
    prefix = f"\\C{COLOUR_CODES[colour]}" if colour is not None else ""
    return (prefix + safe).encode(TEXT_CHARSET)


def encode_dynamic_text(address: int, text: str, colour: Colour | None = None) -> bytes:
    """Show `text` in `colour` (None: the controller's default) on the controller at `address`."""
    return encode_packet(address, DYNAMIC_TEXT + encode_text(text, colour))


@dataclass(frozen=True)
class Packet:
    """One unescaped, CRC-checked packet."""

    address: int
    source: int
    device_type: int
    version: int
    data: bytes


@dataclass(frozen=True)
class DynamicText:
    """What a dynamic text area was told to show: runs of text, each in a colour (None: default)."""

    address: int
    segments: tuple[tuple[Colour | None, str], ...]

    @property
    def text(self) -> str:
        return "".join(text for _, text in self.segments)

    @property
    def colour(self) -> Colour | None:
        """The colour of the first visible text."""
        return next((c for c, text in self.segments if text), None)


def decode_packet(escaped: bytes) -> Packet:
    """The bytes between the preamble and 5A as a packet; DisplayProtocolError says what is wrong."""
    packet = unescape(escaped)
    if len(packet) < HEADER_SIZE + 2:
        raise DisplayProtocolError(f"packet of {len(packet)} bytes is shorter than a header and CRC")
    body, sent = packet[:-2], int.from_bytes(packet[-2:], "little")
    expected = crc16_ibm(body)
    if sent != expected:
        raise DisplayProtocolError(f"CRC {sent:04X}, expected {expected:04X}")
    length = int.from_bytes(body[11:13], "little")
    if length != len(body) - HEADER_SIZE:
        raise DisplayProtocolError(f"length field says {length} data bytes, the packet has "
                                   f"{len(body) - HEADER_SIZE}")
    if body[7] != CHECK_CRC16:
        raise DisplayProtocolError(f"check mode {body[7]:02X}; this codec speaks only CRC16 (00)")
    return Packet(int.from_bytes(body[0:2], "little"), int.from_bytes(body[2:4], "little"),
                  body[9], body[10], bytes(body[HEADER_SIZE:]))


def parse_text(raw: bytes) -> tuple[tuple[Colour | None, str], ...]:
    """GB2312 text with colour escapes as (colour, text) runs; other escapes stay as text."""
    try:
        text = raw.decode("gb2312")
    except UnicodeDecodeError as e:
        raise DisplayProtocolError(f"text is not GB2312: {e.reason} at byte {e.start}") from None
    segments: list[tuple[Colour | None, str]] = []
    colour: Colour | None = None
    at = 0
    for m in _COLOUR_ESCAPE.finditer(text):
        if m.start() > at:
            segments.append((colour, text[at:m.start()]))
        colour, at = _COLOURS[m.group(1)], m.end()
    if at < len(text) or not segments:
        segments.append((colour, text[at:]))
    return tuple(segments)


def decode_dynamic_text(packet: Packet) -> DynamicText:
    if not packet.data.startswith(DYNAMIC_TEXT):
        raise DisplayProtocolError(f"command {packet.data[:3].hex(' ')} is not the dynamic text area")
    return DynamicText(packet.address, parse_text(packet.data[len(DYNAMIC_TEXT):]))


class OnbonDecoder:
    """The controller's side (the simulator): finds frames however chunked, gives their text.

    `feed` never raises: garbage, damaged frames and commands other than the
    dynamic text area are logged and counted in `skipped` (bytes) and
    `rejected` (frames).
    """

    def __init__(self) -> None:
        self.skipped = 0
        self.rejected = 0
        self._buf = bytearray()

    def _skip(self, count: int, reason: str) -> None:
        self.skipped += count
        log.warning("onbon frame: skipped %d bytes: %s", count, reason)
        del self._buf[:count]

    def feed(self, data: bytes) -> list[DynamicText]:
        self._buf += data
        out: list[DynamicText] = []
        while self._buf:
            start = self._buf.find(FRAME_START)
            if start < 0:
                self._skip(len(self._buf), "garbage before a preamble")
                break
            if start:
                self._skip(start, "garbage before a preamble")
            body = len(self._buf) - len(self._buf.lstrip(b"\xa5"))
            if body > len(PREAMBLE):  # keep the preamble's length; more A5 say nothing new
                self._skip(body - len(PREAMBLE), "preamble longer than 8 bytes")
                body = len(PREAMBLE)
            if body == len(self._buf):
                break
            end = self._buf.find(FRAME_END, body)
            restart = self._buf.find(FRAME_START, body, end if end >= 0 else len(self._buf))
            if restart >= 0:  # a new preamble before this frame's end: this one was cut short
                self._skip(restart, "frame cut short by a new preamble")
                continue
            if end < 0:
                if len(self._buf) - body > MAX_ESCAPED:
                    self._skip(len(self._buf), "no end byte within the largest frame")
                break
            escaped = bytes(self._buf[body:end])
            del self._buf[:end + 1]
            try:
                out.append(decode_dynamic_text(decode_packet(escaped)))
            except DisplayProtocolError as e:
                self.rejected += 1
                log.warning("onbon frame: rejected: %s", e)
        return out


# --- the driver's view of this codec (see drivers.caller_display.driver.CODECS) ---------------

def encode_bar(address: int, lines: Sequence[str], colour: Colour, charset: str | None = None) -> bytes:
    """`charset`: an Onbon controller's font is GB2312; nothing else can be configured."""
    if charset is not None and charset.lower() != TEXT_CHARSET:
        raise DisplayProtocolError(f"an Onbon controller's text is {TEXT_CHARSET}, not {charset!r}")
    return encode_dynamic_text(address, " ".join(lines), colour)


def ack_waiter(address: int) -> Callable[[bytes], bool] | None:
    """None: devices.md documents no reply frame, so the driver does not wait for one."""
    return None
