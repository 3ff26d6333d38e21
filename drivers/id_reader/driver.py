"""The kiosk's ID card reader: find, select, read over a DeviceLink, one read per card placed."""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

from drivers.id_reader.codec import (
    BadFrame, Card, Command, ReaderProtocolError, ReaderStatus, Reply, ReplyDecoder, encode_command,
    parse_card_reply,
)
from drivers.transport import DeviceLink, TransportError

log = logging.getLogger(__name__)

CardListener = Callable[[Card], None]
ErrorListener = Callable[[ReaderStatus, str], None]
GoneListener = Callable[[], None]


class _NoGoodReply(Exception):
    """The reader answered, but not with a frame (bad checksum) or only with garbage."""

    def __init__(self, status: ReaderStatus, detail: str, garbage: bool = False) -> None:
        super().__init__(detail)
        self.status, self.detail, self.garbage = status, detail, garbage


class IdCardReader:
    """Polls one reader and hands each card placed on it to `on_card` once.

    Reader errors go to `on_error(status, kiosk message)`, once per card
    placed; SAM failures also mark the link as fault. When a card that was
    read is seen gone (the reader finds no card), `on_card_gone()` is called
    once: its holder has left the kiosk. A broken line is the
    link's to reconnect (it reports offline and online itself). `pause` is
    the wait between find, select and read (some readers need 0.1-0.3 s).
    """

    def __init__(self, device_id: str, link: DeviceLink, on_card: CardListener,
                 on_error: ErrorListener | None = None, pause: float = 0.1,
                 reply_timeout: float = 1.0, fingerprint: bool = False,
                 on_card_gone: GoneListener | None = None) -> None:
        self.device_id = device_id
        self.link = link
        self.on_card = on_card
        self.on_card_gone = on_card_gone
        self.on_error = on_error
        self.pause = pause
        self.reply_timeout = reply_timeout
        self.fingerprint = fingerprint
        self.bad_frames = 0
        self._card_read = False  # the card now on the reader was read already
        self._last_error: ReaderStatus | None = None

    # --- one conversation -------------------------------------------------------------------

    def ask(self, command: Command) -> Reply:
        """Send one command and wait for its reply (TransportError when the line breaks)."""
        with self.link.lock:
            self._drain()
            self.link.write(encode_command(command))
            return self._receive(command)

    def _drain(self) -> None:
        # A late answer to an earlier command must not pass for the answer to this one.
        for _ in range(8):
            stale = self.link.read(4096, 0)
            if not stale:
                return
            log.warning("%s: discarded %d stale bytes", self.device_id, len(stale))

    def _receive(self, command: Command) -> Reply:
        decoder = ReplyDecoder(bad_frames=True)
        deadline = time.monotonic() + self.reply_timeout
        while True:
            left = deadline - time.monotonic()
            if decoder.in_frame:
                # Replies come in chunks: header first, then LEN bytes, against one deadline.
                chunk = self.link.read_exactly(decoder.needed(), max(left, 0.001))
            elif left > 0:
                chunk = self.link.read(decoder.needed(), left)
            elif decoder.skipped:
                raise _NoGoodReply(ReaderStatus.UNKNOWN_ERROR,
                                   f"answers garbage ({decoder.skipped} bytes) to {command.name}",
                                   garbage=True)
            else:
                error = TransportError(f"{self.device_id}: no answer to {command.name} "
                                       f"within {self.reply_timeout} s")
                self.link.failed(error)
                raise error
            for item in decoder.feed(chunk):
                if isinstance(item, BadFrame):
                    self.bad_frames += 1
                    raise _NoGoodReply(ReaderStatus.CHECKSUM_ERROR,
                                       f"bad reply to {command.name}: {item.reason}")
                return item

    def check_sam(self) -> ReaderStatus:
        """Ask the SAM module's status; a failure marks the link as fault."""
        status = self.ask(Command.SAM_STATUS).status
        if status.sam_failure:
            self.link.fault(f"SAM: {status.description}")
        elif status is ReaderStatus.OK:
            self.link.fine()
        return status

    # --- polling ----------------------------------------------------------------------------

    def poll_once(self) -> Card | None:
        """Find a card; if it is new, select and read it. The card read, if any."""
        if not self.link.ensure_open():
            return None
        try:
            return self._poll()
        except TransportError as e:
            # The link has reported offline and will reopen; the card may be a new one then.
            log.info("%s: %s", self.device_id, e)
            self._card_read = False
            return None
        except _NoGoodReply as e:
            if e.garbage:
                self.link.fault(e.detail)
            else:
                self._report(e.status, e.detail)
            return None

    def _poll(self) -> Card | None:
        found = self.ask(Command.FIND_CARD).status
        if found is ReaderStatus.NO_CARD:
            was_read, self._card_read = self._card_read, False
            self._last_error = None
            self.link.fine()
            if was_read and self.on_card_gone:
                try:
                    self.on_card_gone()
                except Exception:
                    log.exception("%s: card-gone listener failed", self.device_id)
            return None
        if found is not ReaderStatus.CARD_FOUND:
            self._report(found, "find card")
            return None
        if self._card_read:
            return None
        self._wait()
        selected = self.ask(Command.SELECT_CARD).status
        if selected is not ReaderStatus.OK:
            self._report(selected, "select card")
            return None
        self._wait()
        read = Command.READ_TEXT_PHOTO_FINGERPRINT if self.fingerprint else Command.READ_TEXT_PHOTO
        try:
            card = parse_card_reply(self.ask(read), self.fingerprint)
        except ReaderProtocolError as e:
            self._report(e.status, str(e))
            return None
        self._card_read = True
        self._last_error = None
        self.link.fine()
        try:
            self.on_card(card)
        except Exception:
            log.exception("%s: card listener failed", self.device_id)
        return card

    def _wait(self) -> None:
        if self.pause > 0:
            time.sleep(self.pause)

    def _report(self, status: ReaderStatus, detail: str) -> None:
        if status.sam_failure:
            self.link.fault(f"SAM: {status.description} ({detail})")
        if status == self._last_error:
            return
        self._last_error = status
        log.warning("%s: %s: %s", self.device_id, detail, status.description)
        if self.on_error:
            try:
                self.on_error(status, status.kiosk_message)
            except Exception:
                log.exception("%s: error listener failed", self.device_id)

    def run(self, stop: threading.Event, interval: float = 0.3) -> None:
        """Poll until `stop` is set (the body of the reader's thread)."""
        while not stop.is_set():
            try:
                self.poll_once()
            except Exception:
                log.exception("%s: poll failed", self.device_id)
            stop.wait(interval)
