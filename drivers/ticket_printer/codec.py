"""ESC/POS for the ticket printer: the ticket as bytes, the status byte, and the printout read back.

Pure: no I/O. `render_ticket` drives python-escpos `Dummy` for the commands and
encodes every text line as GB18030 itself, because python-escpos only detects
U+4E00..U+9FA5: a line of CJK punctuation ("——", "【】") or a rare name
character would otherwise get a Western code page or "?". Every text goes
through `ticket_text` (drivers/text.py): a name holding ESC, GS or DLE would
otherwise be a command (ESC * swallows the bytes after it as a bit image, the
status queries too, and the printer stops answering). `PrintoutDecoder` is the
same stream read from the printer's side (simulator, tests).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum

from escpos.printer import Dummy

from drivers import text as device_text
from drivers.protocol import ProtocolError

log = logging.getLogger(__name__)

STATUS_QUERY = b"\x10\x04\x04"  # DLE EOT 4: roll paper sensor status
ESC, GS, FS, DLE, LF = 0x1B, 0x1D, 0x1C, 0x10, 0x0A
CHINESE_ON, CHINESE_OFF = b"\x1c&", b"\x1c."
NUMBER_SIZE = 4  # GS ! magnification of the ticket number (legible from ~3 m on 80 mm paper)
RULE = "—" * 12
TEXT_CHARSET = "gb18030"
# Two printed lines of 48 columns on 80 mm paper (a Hanzi is two columns and two bytes); a longer
# service name or notice is cut, ending in "…".
TEXT_MAX_BYTES = 96


class PrinterProtocolError(ProtocolError):
    """The printer said something that is not ESC/POS as we know it."""


class PaperStatus(IntEnum):
    """The roll paper sensor; values as python-escpos `paper_status()` returns them."""

    OUT = 0
    NEAR_END = 1
    OK = 2


_STATUS_MASK, _STATUS_FIXED = 0b1001_0011, 0b0001_0010  # a reply is 0xx1xx10
_NEAR_END_BITS, _OUT_BITS = 0b0000_1100, 0b0110_0000
_STATUS_BYTE = {PaperStatus.OK: 0x12, PaperStatus.NEAR_END: 0x1E, PaperStatus.OUT: 0x72}


def parse_paper_status(byte: int | bytes) -> PaperStatus:
    """The reply to DLE EOT 4; both sensor bits of a pair must be set, as python-escpos reads it."""
    if isinstance(byte, (bytes, bytearray)):
        if len(byte) != 1:
            raise PrinterProtocolError(f"status reply must be one byte, got {bytes(byte)!r}")
        byte = byte[0]
    if not 0 <= byte <= 0xFF or byte & _STATUS_MASK != _STATUS_FIXED:
        raise PrinterProtocolError(f"status byte {byte:#04x} does not match 0xx1xx10")
    if byte & _OUT_BITS == _OUT_BITS:
        return PaperStatus.OUT
    if byte & _NEAR_END_BITS == _NEAR_END_BITS:
        return PaperStatus.NEAR_END
    return PaperStatus.OK


def encode_paper_status(status: PaperStatus) -> bytes:
    """The byte a printer answers DLE EOT 4 with (paper out also trips the near-end sensor)."""
    return bytes([_STATUS_BYTE[PaperStatus(status)]])


@dataclass(frozen=True)
class TicketPrint:
    """What goes on the paper of one queue ticket."""

    hall_name: str
    service_name: str
    number: str
    people_ahead: int
    wait_minutes: tuple[int, int] | None
    issued_at: datetime
    window_hint: str | None = None
    qr_url: str | None = None
    masked_name: str | None = None
    warning: str | None = None
    footer: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.people_ahead < 0:
            raise ValueError(f"people_ahead must be >= 0, got {self.people_ahead}")
        if self.wait_minutes is not None and not 0 <= self.wait_minutes[0] <= self.wait_minutes[1]:
            raise ValueError(f"wait range must be 0 <= low <= high, got {self.wait_minutes}")


def wait_text(wait: tuple[int, int] | None) -> str | None:
    """"约 10-25 分钟", "约 10 分钟", "无需等待", or None when the hall gives no estimate."""
    if wait is None:
        return None
    low, high = wait
    if high <= 0:
        return "无需等待"
    return f"约 {low} 分钟" if low == high else f"约 {low}-{high} 分钟"


def ticket_text(text: str) -> bytes:
    """One line's text as the printer gets it: GB18030 without a control byte (so never a
    command), a stand-in for what GB18030 cannot carry, at most TEXT_MAX_BYTES."""
    return device_text.encode(text, TEXT_CHARSET, TEXT_MAX_BYTES)


def render_ticket(t: TicketPrint) -> bytes:
    """The ESC/POS byte stream of one ticket, ending with a cut."""
    p = Dummy()

    def line(text: str = "") -> None:
        p._raw(ticket_text(text) + b"\n")

    p.hw("INIT")
    p._raw(CHINESE_ON)
    p.set(align="center", bold=True, custom_size=True, width=1, height=2)
    line(t.hall_name)
    p.set(bold=False, custom_size=True, width=1, height=1)
    line(t.service_name)
    line(RULE)
    p.set(bold=True, custom_size=True, width=NUMBER_SIZE, height=NUMBER_SIZE)
    line(t.number)
    p.set(bold=False, custom_size=True, width=1, height=1)
    line(RULE)
    line(f"前面还有 {t.people_ahead} 人")
    if (w := wait_text(t.wait_minutes)) is not None:
        line(w)
    line(f"取号时间 {t.issued_at:%Y-%m-%d %H:%M}")
    for extra in (t.window_hint, t.masked_name and f"取号人 {t.masked_name}"):
        if extra:
            line(extra)
    if t.warning:
        p.set(bold=True)
        line(t.warning)
        p.set(bold=False)
    if t.qr_url:
        p.qr(t.qr_url, native=True, size=6)
        line()
    for text in t.footer:
        line(text)
    p.cut()
    return bytes(p.output)


# --- reading the stream back -------------------------------------------------


@dataclass(frozen=True)
class TextLine:
    """One printed line and the style it was printed in."""

    text: str
    width: int = 1
    height: int = 1
    align: str = "left"
    bold: bool = False


@dataclass(frozen=True)
class SizeChange:
    """GS ! or ESC ! changed the character size."""

    width: int
    height: int


@dataclass(frozen=True)
class QrCode:
    """A native QR code (GS ( k) printed with this content."""

    content: str


@dataclass(frozen=True)
class Cut:
    """GS V: the ticket is cut off."""

    partial: bool = False


@dataclass(frozen=True)
class StatusQuery:
    """DLE EOT n: the host asks for status n (4 = paper sensor)."""

    kind: int


Printout = TextLine | SizeChange | QrCode | Cut | StatusQuery

_ALIGN = {0: "left", 1: "center", 2: "right"}
_CODE_TABLE = {0: "cp437", 2: "cp850", 3: "cp860", 16: "cp1252", 17: "cp866", 19: "cp858"}


def _table(prefix: int, counts: str) -> dict[tuple[int, int], int]:
    """"a1 E1" -> {(prefix, ord("a")): 1, (prefix, ord("E")): 1}."""
    return {(prefix, ord(tok[0])): int(tok[1:]) for tok in counts.split()}


# Fixed-length commands -> parameter bytes. Those `_apply` does not act on
# (underline, fonts, spacing, drawer kick, barcode settings...) are read and ignored.
_FIXED = {
    **_table(ESC, "@0 a1 E1 !1 t1 d1 J1 -1 M1 G1 {1 V1 R1 31 20 $2 \\2 p3 =1 U1 c2 r1 S0 L0 T1 %1 <0 i0 m0"),
    (ESC, 0x20): 1,  # ESC SP n: right-side character spacing
    **_table(GS, "!1 B1 H1 h1 w1 f1 L2 W2 a1 r1 I1 b1 P2 T1 ^3 :0 /1"),
    **_table(FS, "&0 .0 !1 -1 S2 W1 C1 p2"),
    (DLE, 0x04): 1, (DLE, 0x05): 1,  # DLE EOT n status, DLE ENQ n recover
}
_CUT_WITH_FEED = (65, 66, 97, 98, 103, 104)  # GS V m n


@dataclass
class _Style:
    width: int = 1
    height: int = 1
    align: str = "left"
    bold: bool = False
    chinese: bool = True  # GB18030 printers start in Chinese mode
    code_table: int = 0


class PrintoutDecoder:
    """Feed it the bytes a printer receives, in any chunks; get back what it printed."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._skip = 0  # payload bytes of an ignored command still to come
        self._raw = bytearray()  # text bytes of the current line, not yet decoded
        self._text: list[str] = []
        self._qr_data = b""
        self.style = _Style()
        self.skipped = 0  # commands or bytes dropped as unknown or malformed

    def feed(self, data: bytes) -> list[Printout]:
        """Everything completed by these bytes; an unfinished command waits for the next feed."""
        out: list[Printout] = []
        self._buf += data
        buf, i = self._buf, 0
        while i < len(buf):
            if self._skip:
                n = min(self._skip, len(buf) - i)
                self._skip -= n
                i += n
                continue
            used = self._step(buf, i, out)
            if used is None:
                break
            i += used
        del self._buf[:i]
        return out

    def finish(self) -> list[Printout]:
        """End of the stream: print a last unterminated line, report an unfinished command."""
        out: list[Printout] = []
        if self._buf or self._skip:
            self._drop(f"stream ended inside a command ({len(self._buf)} bytes, {self._skip} to skip)")
            self._buf.clear()
            self._skip = 0
        self._flush(out)
        return out

    def _drop(self, reason: str) -> None:
        self.skipped += 1
        log.warning("printout: skipped %s", reason)

    def _settle(self) -> None:
        if self._raw:
            s = self.style
            codec = "gb18030" if s.chinese else _CODE_TABLE.get(s.code_table, "latin-1")
            self._text.append(bytes(self._raw).decode(codec, errors="replace"))
            self._raw.clear()

    def _flush(self, out: list[Printout], blank: bool = False) -> None:
        """The current line goes to paper (an empty one only on LF)."""
        self._settle()
        if self._text or blank:
            s = self.style
            out.append(TextLine("".join(self._text), s.width, s.height, s.align, s.bold))
            self._text.clear()

    def _size(self, width: int, height: int, out: list[Printout]) -> None:
        if (width, height) != (self.style.width, self.style.height):
            self.style.width, self.style.height = width, height
            out.append(SizeChange(width, height))

    def _step(self, buf: bytearray, i: int, out: list[Printout]) -> int | None:
        """Consume text or one command at `buf[i]`: bytes used, or None until more arrive."""
        b = buf[i]
        if 0x20 <= b != 0x7F:  # GB18030 trail bytes are >= 0x30: no command byte inside a Hanzi
            j = i
            while j < len(buf) and 0x20 <= buf[j] != 0x7F:
                j += 1
            self._raw += buf[i:j]
            return j - i
        if b in (LF, 0x0C):  # FF: print in page mode, treated as a line end
            self._flush(out, blank=b == LF)
        elif b == 0x09:
            self._raw += b"\t"
        elif b not in (ESC, GS, FS, DLE):
            if b not in (0x0D, 0x00, 0x7F):
                self._drop(f"control byte {b:#04x}")
        elif len(buf) - i < 2:
            return None
        else:
            size = self._measure(buf, i)
            if size is None:
                return None
            n, self._skip = size
            self._apply(buf[i], buf[i + 1], bytes(buf[i + 2:i + n]), out)
            return n
        return 1

    def _measure(self, buf: bytearray, i: int) -> tuple[int, int] | None:
        """(command length, payload bytes to skip after it), or None until more bytes arrive."""
        p, c, left = buf[i], buf[i + 1], len(buf) - i
        if (p, c) in _FIXED:
            n = 2 + _FIXED[p, c]
        elif p == GS and c == ord("V"):
            n = 3 if left < 3 or buf[i + 2] not in _CUT_WITH_FEED else 4
        elif p == GS and c == ord("("):  # GS ( fn pL pH payload; only QR (fn k) is kept
            if left < 5:
                return None
            if buf[i + 2] != ord("k"):
                return 5, _word(buf, i + 3)
            n = 5 + _word(buf, i + 3)
        else:
            return self._measure_skipped(buf, i)
        return (n, 0) if n <= left else None

    def _measure_skipped(self, buf: bytearray, i: int) -> tuple[int, int] | None:
        """`_measure` for the commands read only to be passed over (images, barcodes, tab
        stops) and for unknown ones."""
        p, c, left = buf[i], buf[i + 1], len(buf) - i
        if p == ESC and c == ord("*"):  # bit image: m nL nH, then n or 3n bytes
            return None if left < 5 else (5, _word(buf, i + 3) * (3 if buf[i + 2] in (32, 33) else 1))
        if p == GS and c == ord("v"):  # GS v 0 m xL xH yL yH raster image
            return None if left < 8 else (8, _word(buf, i + 4) * _word(buf, i + 6))
        if p == GS and c == ord("8"):  # GS 8 L p1..p4 graphics
            return None if left < 7 else (7, int.from_bytes(buf[i + 3:i + 7], "little"))
        if p == GS and c == ord("k"):  # barcode: m, then NUL-ended data or n + data
            if left < 4:
                return None
            if buf[i + 2] >= 65:
                return 4, buf[i + 3]
            return self._until_nul(buf, i, 3, 256)
        if p == ESC and c == ord("D"):  # tab stops, NUL-ended
            return self._until_nul(buf, i, 2, 33)
        self._drop(f"unknown command {bytes(buf[i:i + 2]).hex(' ')}")
        return 2, 0

    def _until_nul(self, buf: bytearray, i: int, start: int, most: int) -> tuple[int, int] | None:
        end = buf.find(b"\x00", i + start, i + start + most)
        if end >= 0:
            return end + 1 - i, 0
        if len(buf) - i < start + most:
            return None
        self._drop(f"{bytes(buf[i:i + 2]).hex(' ')} without its NUL")
        return 2, 0

    def _apply(self, p: int, c: int, args: bytes, out: list[Printout]) -> None:
        arg = args[0] if args else 0
        if p == ESC:
            self._apply_esc(c, arg, out)
        elif p == GS:
            if c == ord("!"):
                self._size(((arg >> 4) & 7) + 1, (arg & 7) + 1, out)
            elif c == ord("V"):
                self._cut(arg, out)
            elif c == ord("(") and args[:1] == b"k":
                self._two_d_code(args[3:], out)
        elif p == FS and c in b"&.":
            self._settle()
            self.style.chinese = c == ord("&")
        elif p == DLE and c == 0x04:
            out.append(StatusQuery(arg))

    def _apply_esc(self, c: int, arg: int, out: list[Printout]) -> None:
        s = self.style
        if c == ord("@"):
            self._flush(out)
            self._size(1, 1, out)
            self.style = _Style()
        elif c == ord("a"):
            self._flush(out)
            s.align = _ALIGN.get(arg % 48, "left")
        elif c == ord("E"):
            s.bold = bool(arg & 1)
        elif c == ord("!"):
            s.bold = bool(arg & 0x08)
            self._size(2 if arg & 0x20 else 1, 2 if arg & 0x10 else 1, out)
        elif c == ord("t"):
            self._settle()
            s.code_table = arg
        elif c in b"dJ":
            self._flush(out)
        elif c in b"im":  # older cut commands
            self._cut(1 if c == ord("m") else 0, out)

    def _cut(self, m: int, out: list[Printout]) -> None:
        if m in (0, 1, 48, 49) or m in _CUT_WITH_FEED:
            self._flush(out)
            out.append(Cut(partial=m in (1, 49, 66, 98, 104)))
        else:
            self._drop(f"GS V with mode {m}")

    def _two_d_code(self, payload: bytes, out: list[Printout]) -> None:
        if payload[:1] != b"1":
            self._drop(f"2D code other than QR ({payload[:2]!r})")
        elif payload[1:2] == b"P":  # store: cn fn m data
            self._qr_data = payload[3:]
        elif payload[1:2] == b"Q" and self._qr_data:
            self._flush(out)
            out.append(QrCode(self._qr_data.decode("utf-8", errors="replace")))
        elif payload[1:2] == b"Q":
            self._drop("QR print with nothing stored")


def _word(buf: bytearray, at: int) -> int:
    """A little-endian two-byte count at `buf[at]`."""
    return buf[at] + 256 * buf[at + 1]


def decode_printout(data: bytes) -> list[Printout]:
    """A whole stream at once."""
    d = PrintoutDecoder()
    return d.feed(data) + d.finish()
