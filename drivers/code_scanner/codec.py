"""A serial code scanner's bytes: one scanned code per line, and what kind of code it is.

Pure: no I/O, no transports. A serial scanner (USB-CDC or RS-232) sends each
code as text ended by CR, LF or CR LF, optionally wrapped in a prefix and a
suffix set in the scanner's own menu (STX 0x02 ... ETX 0x03 is common). The
text is UTF-8, or GB18030 on scanners set up for Chinese Windows.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from dataclasses import dataclass
from enum import StrEnum

from drivers.protocol import ProtocolError

log = logging.getLogger(__name__)

MAX_LENGTH = 512  # bytes of one code; the kiosk API takes no longer code either
TERMINATORS = (b"\r", b"\n", b"\r\n")
# Tried in this order. GB18030 text that happens to be valid UTF-8 (possible for a
# code of one or two Chinese characters) reads as UTF-8: a hall whose scanners are
# set to GB18030 is better off setting them to UTF-8.
ENCODINGS = ("utf-8", "gb18030")

_LINE_END = re.compile(rb"[\r\n]")
_ID_NUMBER = re.compile(r"[0-9]{17}[0-9Xx]")
_APPOINTMENT = re.compile(r"APT-[A-Z0-9]{4,32}")


class ScannerProtocolError(ProtocolError, ValueError):
    """A code that cannot be sent as one scan, or a prefix/suffix that cannot frame one."""


class ScanKind(StrEnum):
    ID_NUMBER = "id_number"  # the shape of a resident ID number; the controller checks the digit
    APPOINTMENT = "appointment"
    OTHER = "other"


def classify(text: str) -> ScanKind:
    """What a scanned code looks like: an ID number, an appointment code, or something else."""
    if _ID_NUMBER.fullmatch(text):
        return ScanKind.ID_NUMBER
    if _APPOINTMENT.fullmatch(text):
        return ScanKind.APPOINTMENT
    return ScanKind.OTHER


@dataclass(frozen=True)
class Scan:
    """One code as the scanner read it."""

    text: str

    @property
    def kind(self) -> ScanKind:
        return classify(self.text)


def _control_character(text: str) -> str | None:
    return next((c for c in text if unicodedata.category(c) == "Cc"), None)


def _check_framing(prefix: bytes, suffix: bytes) -> None:
    for name, value in (("prefix", prefix), ("suffix", suffix)):
        if _LINE_END.search(value):
            raise ScannerProtocolError(f"a {name} with CR or LF would split every scan: {value!r}")
    if prefix and prefix in suffix:
        # The decoder resynchronises on the last prefix of a line; one inside the suffix would win.
        raise ScannerProtocolError(f"the suffix {suffix!r} contains the prefix {prefix!r}")


def encode_scan(text: str, prefix: bytes = b"", suffix: bytes = b"", terminator: bytes = b"\r\n",
                encoding: str = "utf-8") -> bytes:
    """The bytes a scanner sends for `text` (the simulator's side)."""
    _check_framing(prefix, suffix)
    if terminator not in TERMINATORS:
        raise ScannerProtocolError(f"a scan ends with CR, LF or CR LF, not {terminator!r}")
    if not text:
        raise ScannerProtocolError("an empty code is no scan")
    bad = _control_character(text)
    if bad is not None:
        raise ScannerProtocolError(f"control character U+{ord(bad):04X} in a code")
    try:
        body = text.encode(encoding)
    except UnicodeEncodeError as e:
        raise ScannerProtocolError(f"not encodable as {encoding}: {e.reason}") from None
    return prefix + body + suffix + terminator


class ScanDecoder:
    """Finds scans in a byte stream however it is chunked; drops bad lines and says why.

    A line is kept only if, after the prefix and suffix are taken off, it is at
    most `max_length` bytes of UTF-8 (or GB18030) text with no control
    characters. With a prefix set, the bytes before the last prefix on a line
    are noise and are dropped, so a scan right after line noise still reads.
    The buffer never holds more than one line's worth of bytes.
    """

    def __init__(self, prefix: bytes = b"", suffix: bytes = b"", max_length: int = MAX_LENGTH) -> None:
        _check_framing(prefix, suffix)
        if max_length < 1:
            raise ScannerProtocolError(f"max_length must be at least 1, not {max_length}")
        self.prefix, self.suffix, self.max_length = prefix, suffix, max_length
        self.dropped = 0  # lines (and runs of noise) dropped since start
        self._limit = max_length + len(prefix) + len(suffix)
        self._line = bytearray()
        self._overflow = 0  # bytes of a too-long line already thrown away

    @property
    def pending(self) -> int:
        """Bytes of a line that has not ended yet."""
        return len(self._line) + self._overflow

    def feed(self, data: bytes) -> list[Scan]:
        out: list[Scan] = []
        at = 0
        while at < len(data):
            end = _LINE_END.search(data, at)
            self._take(data[at:end.start() if end else len(data)])
            if end is None:
                break
            scan = self._end_line()
            if scan is not None:
                out.append(scan)
            at = end.end()
        return out

    def drop_pending(self, reason: str) -> int:
        """Forget an unfinished line (noise, a line cut by an unplug); the bytes dropped."""
        count = self.pending
        if count:
            self._drop(count, reason)
        self._line.clear()
        self._overflow = 0
        return count

    def _drop(self, count: int, reason: str) -> None:
        self.dropped += 1
        log.warning("code scanner: dropped %d bytes: %s", count, reason)

    def _take(self, piece: bytes) -> None:
        if not piece:
            return
        before = len(self._line)
        self._line += piece
        if self.prefix:
            start = self._line.rfind(self.prefix, max(0, before - len(self.prefix) + 1))
            if start > 0 or (start == 0 and self._overflow):
                self._drop(start + self._overflow, "noise before the prefix")
                del self._line[:start]
                self._overflow = 0
        if len(self._line) > self._limit or self._overflow:
            # Keep only what could be the start of a prefix that resynchronises the stream.
            keep = min(len(self.prefix) - 1, len(self._line)) if self.prefix else 0
            self._overflow += len(self._line) - keep
            del self._line[:len(self._line) - keep]

    def _end_line(self) -> Scan | None:
        line = bytes(self._line)
        self._line.clear()
        if self._overflow:
            count, self._overflow = self._overflow + len(line), 0
            self._drop(count, f"line longer than {self.max_length} bytes")
            return None
        if not line:
            return None  # the LF of CR LF, or a blank line
        if self.prefix:
            if not line.startswith(self.prefix):
                self._drop(len(line), f"no prefix {self.prefix!r}")
                return None
            body = line[len(self.prefix):]
        else:
            body = line
        if self.suffix:
            if not body.endswith(self.suffix):
                self._drop(len(line), f"no suffix {self.suffix!r}")
                return None
            body = body[:-len(self.suffix)]
        if not body:
            self._drop(len(line), "nothing between the prefix and the suffix")
            return None
        if len(body) > self.max_length:
            self._drop(len(line), f"line longer than {self.max_length} bytes")
            return None
        text = _decode(body)
        if text is None:
            self._drop(len(line), f"neither {' nor '.join(ENCODINGS)}")
            return None
        bad = _control_character(text)
        if bad is not None:
            # The code itself is never logged: it may be a citizen's ID number.
            self._drop(len(line), f"control character U+{ord(bad):04X}")
            return None
        return Scan(text)


def _decode(body: bytes) -> str | None:
    for encoding in ENCODINGS:
        try:
            return body.decode(encoding)
        except UnicodeDecodeError:
            continue
    return None
