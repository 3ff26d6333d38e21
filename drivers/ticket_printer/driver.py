"""The ticket printer driver: checks the paper, prints the ticket, checks the paper again.

A printer on a `FileTransport` (e.g. /dev/usb/lp0) cannot answer, so there the
paper checks are skipped and `PrintResult.status_checked` is False: the kiosk
then cannot know the roll ran out, and the hall should prefer a USB or serial
line that answers DLE EOT.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from drivers.ticket_printer.codec import (
    STATUS_QUERY, PaperStatus, PrinterProtocolError, TicketPrint, parse_paper_status, render_ticket,
)
from drivers.transport import DeviceLink, FileTransport, TransportError

log = logging.getLogger(__name__)

PAPER_OUT_DETAIL = "缺纸"


class PrinterUnavailable(Exception):
    """The ticket printer cannot print now (offline, or not answering sensibly)."""

    code = "printer_unavailable"
    kiosk_message = "打印机故障，请到导办台取号"

    def __init__(self, detail: str = "") -> None:
        super().__init__(detail or self.kiosk_message)
        self.detail = detail


class PaperOut(PrinterUnavailable):
    """The roll is empty; with `mid_ticket` the last ticket may have come out incomplete."""

    code = "paper_out"
    kiosk_message = "打印机缺纸，请到导办台取号"

    def __init__(self, detail: str = "", mid_ticket: bool = False) -> None:
        super().__init__(detail or PAPER_OUT_DETAIL)
        self.mid_ticket = mid_ticket


@dataclass(frozen=True)
class PrintResult:
    """A ticket went out; `near_end` asks the supervisor to bring a new roll."""

    near_end: bool = False
    status_checked: bool = True
    bytes_sent: int = 0


class TicketPrinter:
    """One kiosk's ticket printer on one `DeviceLink`."""

    def __init__(self, device_id: str, link: DeviceLink, status_timeout: float = 1.0) -> None:
        self.device_id = device_id
        self.link = link
        self.status_timeout = status_timeout

    @property
    def can_answer(self) -> bool:
        """False for a write-only line, where paper status cannot be read."""
        return not isinstance(self.link.transport, FileTransport)

    def paper_status(self) -> PaperStatus:
        """Ask the paper sensor (DLE EOT 4); updates the link's health.

        Raises `PrinterUnavailable` when the line is down or the printer does not answer.
        """
        if not self.can_answer:
            raise PrinterUnavailable(f"{self.device_id}: {self.link.transport.name} cannot report status")
        with self.link.lock:
            status = self._ask()
        if status is PaperStatus.OUT:
            self.link.fault(PAPER_OUT_DETAIL)
        else:
            self.link.fine()
        return status

    def print_ticket(self, ticket: TicketPrint) -> PrintResult:
        """Print one ticket. Raises `PaperOut` (nothing sent, or `mid_ticket`) or `PrinterUnavailable`."""
        data = render_ticket(ticket)
        with self.link.lock:
            if not self.can_answer:
                self._write(data)
                return PrintResult(status_checked=False, bytes_sent=len(data))
            before = self.paper_status()
            if before is PaperStatus.OUT:
                raise PaperOut(f"{self.device_id}: {PAPER_OUT_DETAIL}")
            self._write(data)
            # DLE EOT is answered in real time, possibly before the printer has
            # printed the whole ticket: a roll ending later shows at the next ticket.
            after = self.paper_status()
            if after is PaperStatus.OUT:
                raise PaperOut(f"{self.device_id}: {PAPER_OUT_DETAIL}，小票可能不完整", mid_ticket=True)
        near_end = PaperStatus.NEAR_END in (before, after)
        if near_end:
            log.warning("%s: paper near end", self.device_id)
        return PrintResult(near_end=near_end, bytes_sent=len(data))

    def _write(self, data: bytes) -> None:
        try:
            self.link.write(data)
        except TransportError as e:
            raise PrinterUnavailable(f"{self.device_id}: {e}") from e

    def _ask(self) -> PaperStatus:
        """One status round trip; skips stray bytes that are not a status reply."""
        try:
            for _ in range(16):  # a late answer to an earlier query must not pass for this one
                if not self.link.read(64, 0):
                    break
            self.link.write(STATUS_QUERY)
            deadline = time.monotonic() + self.status_timeout
            strays = 0
            while (left := deadline - time.monotonic()) > 0:
                reply = self.link.read(1, left)
                if not reply:
                    continue
                try:
                    return parse_paper_status(reply)
                except PrinterProtocolError as e:
                    strays += 1
                    log.warning("%s: %s", self.device_id, e)
        except TransportError as e:
            raise PrinterUnavailable(f"{self.device_id}: {e}") from e
        if strays:
            self.link.fault("状态应答无效")
            raise PrinterUnavailable(f"{self.device_id}: {strays} bytes, none a valid status reply")
        error = TransportError(f"{self.device_id}: no answer to DLE EOT 4 within {self.status_timeout} s")
        self.link.failed(error)
        raise PrinterUnavailable(str(error)) from error
