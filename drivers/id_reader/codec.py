"""The SAM reader's bytes: command and reply frames, status codes, and the card text block.

Pure: no I/O, no transports. Frame, both directions (docs devices.md section 1):
`AA AA AA 96 69 | LEN_H LEN_L | body | CHK`; LEN counts every byte after
itself, CHK included; CHK is the XOR of LEN_H, LEN_L and the body.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from enum import Enum, IntEnum, StrEnum
from functools import reduce
from operator import xor

from drivers.protocol import ProtocolError

log = logging.getLogger(__name__)

PREAMBLE = b"\xaa\xaa\xaa\x96\x69"
HEADER_SIZE = len(PREAMBLE) + 2
# The largest real reply is text+photo+fingerprint (LEN 0x090A); anything far
# beyond is a misread length, and waiting for it would swallow good frames.
MAX_LENGTH = 0x1000
TEXT_SIZE = 256


class ReaderProtocolError(ProtocolError):
    """Bytes that are not a valid reader message; `status` is the nearest reader status."""

    def __init__(self, message: str, status: "ReaderStatus | None" = None) -> None:
        super().__init__(message)
        self.status = status if status is not None else ReaderStatus.READ_FAILED


_PLACE_AGAIN = "读卡失败，请重新放置身份证"
_SEE_GUIDE = "身份证认证失败，请到导办台"
_READER_BROKEN = "读卡器故障，请到导办台"


class ReaderStatus(IntEnum):
    """SW3, the reader's answer: English description and the kiosk's Chinese message."""

    description: str
    kiosk_message: str

    def __new__(cls, code: int, description: str, kiosk_message: str) -> "ReaderStatus":
        member = int.__new__(cls, code)
        member._value_ = code
        member.description = description
        member.kiosk_message = kiosk_message
        return member

    OK = 0x90, "ok", "读卡成功"
    CARD_FOUND = 0x9F, "card found", "正在读卡，请勿移动身份证"
    CHECKSUM_ERROR = 0x10, "checksum error", _PLACE_AGAIN
    LENGTH_ERROR = 0x11, "length error", _PLACE_AGAIN
    COMMAND_ERROR = 0x21, "command error", _PLACE_AGAIN
    UNKNOWN_ERROR = 0x24, "unknown error", _PLACE_AGAIN
    AUTHENTICATION_FAILED = 0x31, "authentication failed (card and SAM)", _SEE_GUIDE
    CARD_AUTHENTICATION_FAILED = 0x32, "card authentication failed", _SEE_GUIDE
    VERIFICATION_FAILED = 0x33, "information verification failed", _SEE_GUIDE
    WRONG_CARD = 0x40, "wrong card type", "无法识别的证件，请到导办台"
    READ_FAILED = 0x41, "read failed", _PLACE_AGAIN
    RANDOM_FAILED = 0x47, "random number failed", _PLACE_AGAIN
    SELF_TEST_FAILED = 0x60, "SAM self-test failed", _READER_BROKEN
    NOT_AUTHORISED = 0x66, "reader not authorised", _READER_BROKEN
    NO_CARD = 0x80, "no card (find card failed)", "请放置身份证"
    SELECT_FAILED = 0x81, "select card failed", _PLACE_AGAIN

    @classmethod
    def of(cls, code: int) -> "ReaderStatus":
        """The status for a SW3 byte; codes the vendor never documented count as unknown errors."""
        return next((status for status in cls if status.value == code), cls.UNKNOWN_ERROR)

    @property
    def sam_failure(self) -> bool:
        """The reader itself cannot work (its SAM module): a fault for the hall's IT, not the visitor."""
        return self.value in (0x31, 0x32, 0x33, 0x60, 0x66)


class Command(Enum):
    """Host commands as (CMD, PARA)."""

    RESET_SAM = (0x10, 0xFF)
    SAM_STATUS = (0x11, 0xFF)
    READ_SAM_ID = (0x12, 0xFF)
    FIND_CARD = (0x20, 0x01)
    SELECT_CARD = (0x20, 0x02)
    READ_TEXT_PHOTO = (0x30, 0x01)
    READ_TEXT_PHOTO_FINGERPRINT = (0x30, 0x10)


_COMMANDS = {c.value: c for c in Command}


def checksum(data: bytes) -> int:
    return reduce(xor, data, 0)


def encode_frame(body: bytes) -> bytes:
    """Preamble, LEN, body, CHK."""
    length = len(body) + 1
    if length > MAX_LENGTH:
        raise ReaderProtocolError(f"frame body of {len(body)} bytes is longer than {MAX_LENGTH - 1}",
                                  ReaderStatus.LENGTH_ERROR)
    head = length.to_bytes(2, "big")
    return PREAMBLE + head + body + bytes((checksum(head + body),))


def encode_command(command: Command, data: bytes = b"") -> bytes:
    return encode_frame(bytes(command.value) + data)


def encode_reply(status: int, data: bytes = b"", sw1: int = 0, sw2: int = 0) -> bytes:
    """A reader's answer (the simulator's side)."""
    return encode_frame(bytes((sw1, sw2, int(status))) + data)


@dataclass(frozen=True)
class Reply:
    """One reader answer: SW3 and whatever data follows it."""

    sw3: int
    data: bytes = b""
    sw1: int = 0
    sw2: int = 0

    @property
    def status(self) -> ReaderStatus:
        return ReaderStatus.of(self.sw3)


@dataclass(frozen=True)
class Request:
    """One host command as the reader receives it; `command` is None for codes it does not know."""

    cmd: int
    para: int
    data: bytes = b""

    @property
    def command(self) -> Command | None:
        return _COMMANDS.get((self.cmd, self.para))


@dataclass(frozen=True)
class BadFrame:
    """A frame that was skipped (bad checksum, impossible length), for the driver to count."""

    reason: str


class _FrameDecoder:
    """Finds frames in a byte stream however it is chunked; skips garbage and says why."""

    min_body = 1

    def __init__(self, bad_frames: bool = False, max_length: int = MAX_LENGTH) -> None:
        self.bad_frames = bad_frames
        self.max_length = max_length
        self.skipped = 0
        self._buf = bytearray()

    def needed(self) -> int:
        """Bytes that must arrive before the next frame can complete (7 for a header, then LEN)."""
        if len(self._buf) < HEADER_SIZE:
            return HEADER_SIZE - len(self._buf)
        return HEADER_SIZE + self._length() - len(self._buf)

    @property
    def in_frame(self) -> bool:
        """A preamble has been seen and its frame is still arriving."""
        return len(self._buf) >= len(PREAMBLE)

    def _length(self) -> int:
        # `(a << 8) | b`: `a << 8 + b` is a trap in public code (Python bytes are never signed).
        return (self._buf[5] << 8) | self._buf[6]

    def _skip(self, count: int, reason: str) -> None:
        self.skipped += count
        log.warning("id reader: skipped %d bytes: %s", count, reason)
        del self._buf[:count]

    def _frames(self, data: bytes) -> list[bytes | BadFrame]:
        self._buf += data
        out: list[bytes | BadFrame] = []
        while self._buf:
            start = self._buf.find(PREAMBLE)
            if start < 0:  # keep a tail that may be the start of a preamble
                keep = next((n for n in range(4, 0, -1) if self._buf.endswith(PREAMBLE[:n])), 0)
                if len(self._buf) > keep:
                    self._skip(len(self._buf) - keep, "garbage before a preamble")
                break
            if start:
                self._skip(start, "garbage before a preamble")
            if len(self._buf) < HEADER_SIZE:
                break
            length = self._length()
            if not self.min_body + 1 <= length <= self.max_length:
                self._skip(1, f"impossible length {length}")
                if self.bad_frames:
                    out.append(BadFrame(f"impossible length {length}"))
                continue
            end = HEADER_SIZE + length
            if len(self._buf) < end:
                break
            frame = bytes(self._buf[:end])
            expected = checksum(frame[5:-1])
            if frame[-1] != expected:
                # Skip only the preamble: a misread LEN may have covered good frames, found on the rescan.
                reason = f"checksum {frame[-1]:02X}, expected {expected:02X} ({end} byte frame)"
                self._skip(len(PREAMBLE), reason)
                if self.bad_frames:
                    out.append(BadFrame(reason))
                continue
            del self._buf[:end]
            out.append(frame[HEADER_SIZE:-1])
        return out


class ReplyDecoder(_FrameDecoder):
    """The host's side: `feed(bytes)` gives the replies completed so far (and BadFrame markers if asked)."""

    min_body = 3

    def feed(self, data: bytes) -> list[Reply | BadFrame]:
        return [item if isinstance(item, BadFrame) else Reply(item[2], item[3:], item[0], item[1])
                for item in self._frames(data) if self.bad_frames or not isinstance(item, BadFrame)]


class CommandDecoder(_FrameDecoder):
    """The reader's side (the simulator): `feed(bytes)` gives host requests and BadFrame markers."""

    min_body = 2

    def feed(self, data: bytes) -> list[Request | BadFrame]:
        return [item if isinstance(item, BadFrame) else Request(item[0], item[1], item[2:])
                for item in self._frames(data)]


@dataclass(frozen=True)
class CardBlocks:
    """The read reply's data split into its blocks (photo is WLT: kept, never decoded)."""

    text: bytes
    photo: bytes
    fingerprint: bytes | None = None


def encode_read_data(text: bytes, photo: bytes, fingerprint: bytes | None = None) -> bytes:
    """The data of a read reply: big-endian lengths, then the blocks."""
    blocks = [text, photo] + ([fingerprint] if fingerprint is not None else [])
    lengths = b"".join(len(b).to_bytes(2, "big") for b in blocks)
    return lengths + b"".join(blocks)


def parse_read_data(data: bytes, fingerprint: bool = False) -> CardBlocks:
    """Split the reply to `30 01` (or `30 10` with `fingerprint`) into text, photo, fingerprint."""
    count = 3 if fingerprint else 2
    sizes = [(data[2 * i] << 8) | data[2 * i + 1] for i in range(count)] if len(data) >= 2 * count else []
    if not sizes or 2 * count + sum(sizes) != len(data):
        raise ReaderProtocolError(f"read reply blocks {sizes} do not fill its {len(data)} bytes",
                                  ReaderStatus.LENGTH_ERROR)
    ends = [2 * count + sum(sizes[:i + 1]) for i in range(count)]
    blocks = [data[end - size:end] for size, end in zip(sizes, ends, strict=True)]
    return CardBlocks(blocks[0], blocks[1], blocks[2] if fingerprint else None)


class CardType(StrEnum):
    """The character at offset 248 of the text block."""

    RESIDENT = " "  # 居民身份证 (second generation)
    RESIDENCE_PERMIT = "J"  # Hong Kong / Macau / Taiwan residence permit
    FOREIGN_PERMANENT_2017 = "I"  # foreign permanent resident card (2017)
    FOREIGN_PERMANENT_2023 = "Y"  # foreign permanent resident card (2023)


@dataclass(frozen=True)
class Card:
    """What an ID card says. Dates of validity stay text (YYYYMMDD, or 长期 for no expiry)."""

    card_type: CardType
    name: str
    sex: str  # code: 1 male, 2 female, 0 unknown, 9 unstated
    birth_date: dt.date | None
    id_number: str  # I cards: the permit number
    valid_from: str
    valid_to: str
    nation: str = ""  # resident, J: two-digit GB 3304 code
    address: str = ""
    authority: str = ""  # I cards: the issuing office code
    nationality: str = ""  # I, Y: three-letter code
    english_name: str = ""  # I, Y
    pass_number: str = ""  # J
    issue_count: str = ""  # J
    card_version: str = ""  # I
    renewal_count: str = ""  # Y
    previous_card: str = ""  # Y: link to the old card
    photo: bytes = b""
    fingerprint: bytes | None = None


_BIRTH = "birth_date"
_TYPE = "card_type"
_ENGLISH_MORE = "english_name+"  # Y cards: the English name continues near the end
_Layout = tuple[tuple[str | None, int], ...]

_RESIDENT: _Layout = (
    ("name", 30), ("sex", 2), ("nation", 4), (_BIRTH, 16), ("address", 70), ("id_number", 36),
    ("authority", 30), ("valid_from", 16), ("valid_to", 16),
)
_LAYOUTS: dict[CardType, _Layout] = {
    CardType.RESIDENT: _RESIDENT + ((None, 28), (_TYPE, 2), (None, 6)),
    CardType.RESIDENCE_PERMIT: _RESIDENT + (
        ("pass_number", 18), ("issue_count", 4), (None, 6), (_TYPE, 2), (None, 6)),
    CardType.FOREIGN_PERMANENT_2017: (
        ("english_name", 120), ("sex", 2), ("id_number", 30), ("nationality", 6), ("name", 30),
        ("valid_from", 16), ("valid_to", 16), (_BIRTH, 16), ("card_version", 4), ("authority", 8),
        (_TYPE, 2), (None, 6)),
    CardType.FOREIGN_PERMANENT_2023: (
        ("name", 30), ("sex", 2), ("renewal_count", 4), (_BIRTH, 16), ("english_name", 70),
        ("id_number", 36), (None, 30), ("valid_from", 16), ("valid_to", 16), (_ENGLISH_MORE, 22),
        ("nationality", 6), (_TYPE, 2), ("previous_card", 6)),
}
assert all(sum(size for _, size in layout) == TEXT_SIZE for layout in _LAYOUTS.values())
_TYPE_OFFSET = 248
_PAD = " \x00"


def _date(text: str) -> dt.date | None:
    if len(text) != 8 or not (text.isascii() and text.isdigit()):
        return None
    try:
        return dt.date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        return None


def parse_card(text: bytes, photo: bytes = b"", fingerprint: bytes | None = None) -> Card:
    """The 256-byte text block (UCS-2 LE, space padded) as a Card of the type named at offset 248."""
    if len(text) != TEXT_SIZE:
        raise ReaderProtocolError(f"card text is {len(text)} bytes, not 256", ReaderStatus.LENGTH_ERROR)
    mark = text[_TYPE_OFFSET:_TYPE_OFFSET + 2].decode("utf-16-le", "replace")
    try:
        card_type = CardType(" " if mark in (" ", "\x00") else mark)
    except ValueError:
        raise ReaderProtocolError(f"unknown card type {mark!r} at offset {_TYPE_OFFSET}",
                                  ReaderStatus.WRONG_CARD) from None
    raw: dict[str, str] = {}
    at = 0
    for field, size in _LAYOUTS[card_type]:
        if field not in (None, _TYPE):
            raw[str(field)] = text[at:at + size].decode("utf-16-le", "replace")
        at += size
    if _ENGLISH_MORE in raw:  # join before stripping: the first part may end in a real space
        raw["english_name"] += raw.pop(_ENGLISH_MORE)
    fields = {k: v.strip(_PAD) for k, v in raw.items()}
    born = _date(fields.pop(_BIRTH))
    return Card(card_type=card_type, birth_date=born, photo=photo, fingerprint=fingerprint, **fields)


def _ucs2(value: str, size: int, field: str) -> bytes:
    if any(ord(c) > 0xFFFF for c in value):
        raise ReaderProtocolError(f"{field} {value!r} has characters outside UCS-2")
    out = value.encode("utf-16-le")
    if len(out) > size:
        raise ReaderProtocolError(f"{field} {value!r} is longer than {size // 2} characters")
    return out + " ".encode("utf-16-le") * ((size - len(out)) // 2)


def encode_card(card: Card) -> bytes:
    """The 256-byte text block a reader returns for `card` (the simulator's side)."""
    out = bytearray()
    english = card.english_name
    for field, size in _LAYOUTS[card.card_type]:
        if field is None:
            value = ""
        elif field == _TYPE:
            value = card.card_type.value
        elif field == _BIRTH:
            d = card.birth_date
            value = f"{d.year:04}{d.month:02}{d.day:02}" if d else ""
        elif field == "english_name" and card.card_type is CardType.FOREIGN_PERMANENT_2023:
            value, english = english[:size // 2], english[size // 2:]
        elif field == _ENGLISH_MORE:
            value = english
        else:
            value = str(getattr(card, field))
        out += _ucs2(value, size, field or "reserved")
    return bytes(out)


def parse_card_reply(reply: Reply, fingerprint: bool = False) -> Card:
    """The Card in a successful read reply."""
    if reply.status is not ReaderStatus.OK:
        raise ReaderProtocolError(f"read answered {reply.sw3:02X}", reply.status)
    blocks = parse_read_data(reply.data, fingerprint)
    return parse_card(blocks.text, blocks.photo, blocks.fingerprint)
