"""A simulated SAM ID card reader on a pty, speaking the reader's side with the driver's own codec.

Cards come from `sim/cards.toml`. At run time: `place(name)`, `remove()`, and
the switches `faulty_sam` (every command answers 60, self-test failed),
`garbage` (every command answers random bytes) and `silent` (the reader is
powered off behind a live USB-serial adapter: no answer at all).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random
from collections import deque
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drivers.id_reader.codec import (
    BadFrame, Card, CardType, Command, CommandDecoder, ReaderStatus, Request, encode_card, encode_read_data,
    encode_reply,
)
from sim.pty_device import PtyDevice

CARDS_FILE = Path(__file__).with_name("cards.toml")
REPLIES = ("normal", "broken_checksum", "slow", "read_failed")
_TYPES = {"resident": CardType.RESIDENT, "J": CardType.RESIDENCE_PERMIT,
          "I": CardType.FOREIGN_PERMANENT_2017, "Y": CardType.FOREIGN_PERMANENT_2023}
_TEXT_FIELDS = ("name", "sex", "id_number", "valid_from", "valid_to", "nation", "address", "authority",
                "nationality", "english_name", "pass_number", "issue_count", "card_version",
                "renewal_count", "previous_card")


@dataclass(frozen=True)
class SimCard:
    """A card in the simulator's drawer and how the reader behaves reading it."""

    card: Card
    reply: str = "normal"
    chunks: int = 1
    gap: float = 0.0


def filler(seed: str, size: int = 1024) -> bytes:
    """Deterministic stand-in bytes (photo, fingerprint) derived from `seed`."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{seed}:{counter}".encode()).digest()
        counter += 1
    return bytes(out[:size])


def _card_from(key: str, entry: dict[str, Any]) -> SimCard:
    try:
        card_type = _TYPES[entry.get("type", "resident")]
    except KeyError:
        raise ValueError(f"card {key}: type must be one of {', '.join(_TYPES)}") from None
    reply = entry.get("reply", "normal")
    if reply not in REPLIES:
        raise ValueError(f"card {key}: reply must be one of {', '.join(REPLIES)}")
    birth = str(entry.get("birth", ""))
    card = Card(
        card_type=card_type,
        birth_date=dt.datetime.strptime(birth, "%Y%m%d").date() if birth else None,
        photo=filler(f"{key}:photo"),
        fingerprint=filler(f"{key}:fingerprint") if entry.get("fingerprint") else None,
        **{f: str(entry.get(f, "")) for f in _TEXT_FIELDS},
    )
    encode_card(card)  # a field too long for its slot fails here, when the file is loaded
    return SimCard(card, reply, int(entry.get("chunks", 1)), float(entry.get("gap", 0.0)))


def load_cards(path: Path | str = CARDS_FILE) -> dict[str, SimCard]:
    """The cards a simulation file describes, by name."""
    with open(path, "rb") as f:
        data = tomllib.load(f)
    return {key: _card_from(key, entry) for key, entry in data.get("cards", {}).items()}


class SimulatedIdCardReader(PtyDevice):
    """The ID card reader as a peer on a pty; `answer(data)` is its brain, usable without a pty too."""

    def __init__(self, link: str | None = None, cards: dict[str, SimCard] | None = None,
                 seed: int = 0) -> None:
        super().__init__(link)
        self.cards = cards if cards is not None else load_cards()
        self.faulty_sam = False
        self.garbage = False
        self.silent = False
        self.sam_id = bytes.fromhex("0501000020240101000000000000002a")
        self.requests: deque[Command | None] = deque(maxlen=100)  # what the host asked, newest last
        self.empty_finds = 0  # "find card" answered "no card": the host has seen the reader empty
        self._card: SimCard | None = None
        self._random = random.Random(seed)
        self._decoder = CommandDecoder()

    def place(self, card_name: str) -> None:
        """A visitor puts a card on the reader."""
        with self.lock:
            self._card = self.cards[card_name]

    def remove(self) -> None:
        with self.lock:
            self._card = None

    def handle(self, data: bytes) -> None:
        for delay, chunk in self.answer(data):
            if delay:
                time.sleep(delay)
            self.send(chunk)

    def answer(self, data: bytes) -> list[tuple[float, bytes]]:
        """What the reader sends back for bytes from the host, as (delay before, chunk)."""
        out: list[tuple[float, bytes]] = []
        with self.lock:
            for request in self._decoder.feed(data):
                if isinstance(request, BadFrame):
                    out.append((0.0, encode_reply(ReaderStatus.CHECKSUM_ERROR)))
                    continue
                self.requests.append(request.command)
                out.extend(self._answer(request))
        return out

    def _answer(self, request: Request) -> list[tuple[float, bytes]]:
        if self.silent:
            return []
        if self.garbage:
            return [(0.0, self._random.randbytes(24))]
        if self.faulty_sam:
            return [(0.0, encode_reply(ReaderStatus.SELF_TEST_FAILED))]
        command, card = request.command, self._card
        if command in (Command.RESET_SAM, Command.SAM_STATUS):
            return [(0.0, encode_reply(ReaderStatus.OK))]
        if command is Command.READ_SAM_ID:
            return [(0.0, encode_reply(ReaderStatus.OK, self.sam_id))]
        if command is Command.FIND_CARD:
            # Real readers add four zero bytes to "found"; the driver must not care.
            found = card is not None
            self.empty_finds += not found
            return [(0.0, encode_reply(ReaderStatus.CARD_FOUND, bytes(4)) if found
                     else encode_reply(ReaderStatus.NO_CARD))]
        if command is Command.SELECT_CARD:
            status = ReaderStatus.OK if card else ReaderStatus.SELECT_FAILED
            return [(0.0, encode_reply(status, bytes(8) if card else b""))]
        if command in (Command.READ_TEXT_PHOTO, Command.READ_TEXT_PHOTO_FINGERPRINT):
            if card is None:
                return [(0.0, encode_reply(ReaderStatus.READ_FAILED))]
            return self._read(card, command is Command.READ_TEXT_PHOTO_FINGERPRINT)
        return [(0.0, encode_reply(ReaderStatus.COMMAND_ERROR))]

    @staticmethod
    def _read(sim: SimCard, with_fingerprint: bool) -> list[tuple[float, bytes]]:
        if sim.reply == "read_failed":
            return [(0.0, encode_reply(ReaderStatus.READ_FAILED))]
        fingerprint = (sim.card.fingerprint or b"") if with_fingerprint else None
        frame = encode_reply(ReaderStatus.OK, encode_read_data(encode_card(sim.card), sim.card.photo,
                                                               fingerprint))
        if sim.reply == "broken_checksum":
            return [(0.0, frame[:-1] + bytes((frame[-1] ^ 0x5A,)))]
        if sim.reply == "slow":
            size = -(-len(frame) // max(sim.chunks, 1))
            return [(sim.gap if i else 0.0, frame[i:i + size]) for i in range(0, len(frame), size)]
        return [(0.0, frame)]
