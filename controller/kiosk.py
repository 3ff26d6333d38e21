"""取号机: the entrance kiosk — service buttons, the ID-card reader and the ticket printer.

Taking a ticket at a kiosk: the identity comes from a card just read, or from
an ID number typed on the screen; the printer is asked for paper first; the
ticket is committed; then it is printed. If printing fails after the commit,
the ticket is cancelled (reason `not_printed`) so no phantom ticket waits in
the queue, and the citizen is sent to the guidance desk (导办台), where staff
issue one by hand. Staff can reprint a ticket that did print.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from dataclasses import dataclass
from typing import Any

from controller.core import commands as c
from controller.core.engine import Outcome
from controller.core.errors import HallError
from controller.core.estimate import wait_range
from controller.core.identity import Citizen
from controller.core.model import Ticket, TicketStatus, WindowStatus
from controller.appointments import Appointments
from controller.hallcontroller import HallController
from drivers.code_scanner import ScanKind, classify
from drivers.ticket_printer import (
    PaperOut, PaperStatus, PrinterUnavailable, TicketPrint, TicketPrinter,
)
from drivers.transport import DeviceHealth

log = logging.getLogger(__name__)

# A card read is offered for this long; then the next citizen's tap is needed.
CARD_SECONDS = 60
NEAR_END = "纸将用尽，请更换纸卷"
# While the reader is unplugged or faulty (a failed SAM, answering garbage) the citizen is told
# at once, not left waiting for a card that will never be read; it goes when the reader is back.
READER_DOWN = "读卡器暂不能使用，请输入身份证号码或到导办台"


@dataclass
class PendingCard:
    citizen: Citizen
    read_at: dt.datetime


@dataclass(frozen=True)
class KioskTicket:
    """A ticket the kiosk handed out, and whether it printed."""

    outcome: Outcome
    printed: bool
    paper_near_end: bool = False


class Kiosk:
    """One entrance kiosk of the hall."""

    def __init__(self, kiosk_id: str, ctrl: HallController, printer: TicketPrinter | None = None,
                 status_url: str | None = None, appointments: Appointments | None = None) -> None:
        self.id = kiosk_id
        self.ctrl = ctrl
        self.printer = printer
        self.reader_id: str | None = None  # the ID-card reader's device id, if the kiosk has one
        self.appointments = appointments
        self.status_url = status_url
        self.lock = threading.RLock()
        self.card: PendingCard | None = None
        self.message: str | None = None

    @property
    def actor(self) -> str:
        return f"kiosk:{self.id}"

    # -- the ID-card reader ------------------------------------------------

    def card_read(self, id_number: str, name: str | None) -> None:
        """A card was tapped: hold its citizen for the next ticket taken here."""
        try:
            self.hold(id_number, name)
        except HallError as e:
            self.reader_message(e.message)

    def hold(self, id_number: str, name: str | None) -> Citizen:
        """Hold the citizen of a card or scanned number for the next ticket; a number that
        is wrong raises and leaves no earlier card waiting (it is a new citizen at the kiosk)."""
        with self.lock:
            self.card = None
            citizen = self.ctrl.citizen(id_number, name)
            self.card = PendingCard(citizen, self.ctrl.clock())
            self.message = None
        self.ctrl.note(self.actor, "card_read", {"id_masked": citizen.id_masked})
        return citizen

    def reader_message(self, message: str) -> None:
        with self.lock:
            self.message = message

    def pending_citizen(self) -> Citizen | None:
        with self.lock:
            if self.card and (self.ctrl.clock() - self.card.read_at).total_seconds() <= CARD_SECONDS:
                return self.card.citizen
            self.card = None
            return None

    # -- the printer -------------------------------------------------------

    def device_health(self, health: DeviceHealth) -> None:
        """A driver's health report becomes an audited event the supervisor sees."""
        self.ctrl.execute(c.ReportDevice(health.device, health.state.value, health.detail), "system")

    def _check_printer(self) -> None:
        if self.printer is None or not self.printer.can_answer:
            return
        try:
            status = self.printer.paper_status()
        except PrinterUnavailable as e:
            raise HallError("printer_unavailable") from e
        if status is PaperStatus.OUT:
            raise HallError("paper_out")

    def _print(self, t: Ticket, out: Outcome, reprint: bool = False) -> bool:
        """Print `t`; True when it printed and the roll is running out."""
        result = self.printer.print_ticket(self.ticket_print(t, out, reprint))
        device = self.printer.device_id
        with self.ctrl.lock:
            was = self.ctrl.state.devices.get(device, ("", ""))[0]
        if result.near_end:
            self.ctrl.execute(c.ReportDevice(device, "warning", NEAR_END), "system")
        elif was == "warning":  # a new roll went in
            self.ctrl.execute(c.ReportDevice(device, "online"), "system")
        return result.near_end

    # -- taking a ticket ---------------------------------------------------

    def take_ticket(self, service: str, id_number: str | None = None, name: str | None = None,
                    priority: str | None = None, phone: str | None = None) -> KioskTicket:
        """Issue and print a ticket; HallError (with the kiosk's message) if it cannot be had."""
        with self.lock:
            try:
                citizen = self.ctrl.citizen(id_number, name, phone) if id_number else None
                if citizen is None and (card := self.pending_citizen()) is not None:
                    citizen = self.ctrl.sealer.with_phone(card, phone)
            except HallError as e:
                self.ctrl.refuse(self.actor, "issue_ticket", {"service": service}, e)
                raise
            got = self._issue_and_print(
                lambda: self.ctrl.execute(c.IssueTicket(service, "kiosk", citizen, priority),
                                          self.actor), {"service": service})
            self.card = None
            return got

    def scanned(self, code: str) -> KioskTicket | None:
        """A code shown at the scanner: an ID number (held like a card) or an appointment
        code (checked in and printed at once)."""
        code = code.strip()
        kind = classify(code)
        if kind is ScanKind.ID_NUMBER:
            self.hold(code, None)
            return None
        if kind is ScanKind.APPOINTMENT and self.appointments is not None:
            with self.lock:
                try:
                    return self._issue_and_print(
                        lambda: self.appointments.check_in(code, self.actor), {"code": code})
                except HallError as e:
                    if e.code in ("paper_out", "printer_unavailable"):
                        self.appointments.release(code)  # the booking stays good for the desk
                    raise
        err = HallError("unknown_code")
        self.ctrl.refuse(self.actor, "scan", {"code_length": len(code)}, err)
        raise err

    def _issue_and_print(self, issue, args: dict[str, Any]) -> KioskTicket:
        """Paper first, then the durable ticket, then the slip; a slip that fails cancels it."""
        with self.lock:
            try:
                self._check_printer()
            except HallError as e:
                self.ctrl.refuse(self.actor, "issue_ticket", args, e)
                raise
            out = issue()
            if self.printer is None:
                return KioskTicket(out, printed=False)
            try:
                near_end = self._print(out.ticket, out)
            except PrinterUnavailable as e:
                # The ticket is on disk but not on paper: take it out of the queue.
                self.ctrl.execute(c.CancelTicket(out.ticket.id, "not_printed"), self.actor)
                code = "paper_out" if isinstance(e, PaperOut) else "printer_unavailable"
                raise HallError(code, f"小票未能打印（{out.ticket.label} 已作废），请到导办台取号") from e
            return KioskTicket(out, printed=True, paper_near_end=near_end)

    def reprint(self, ticket_id: str, actor: str) -> bool:
        """补打: print a waiting ticket again (the citizen lost it, or it came out torn)."""
        with self.lock:
            with self.ctrl.lock:
                t = self.ctrl.state.tickets.get(ticket_id)
            if t is None:
                raise HallError("unknown_ticket")
            if self.printer is None:
                raise HallError("printer_unavailable")
            if t.status is not TicketStatus.WAITING:
                raise HallError("ticket_not_waiting")
            self._check_printer()
            with self.ctrl.lock:
                ahead = self.ctrl.engine.people_ahead(self.ctrl.state, t)
                out = Outcome(ticket=t, people_ahead=ahead,
                              estimate=self.ctrl.engine.estimate(self.ctrl.state, t.service, ahead,
                                                                 self.ctrl.clock()))
            try:
                self._print(t, out, reprint=True)
            except PrinterUnavailable as e:
                raise HallError("paper_out" if isinstance(e, PaperOut) else "printer_unavailable") from e
            self.ctrl.note(actor, "reprint", {"ticket": ticket_id, "kiosk": self.id})
            return True

    def ticket_print(self, t: Ticket, out: Outcome, reprint: bool = False) -> TicketPrint:
        """What the slip says: number, service, people ahead, the wait as a range, where to look."""
        hall = self.ctrl.hall
        eta = out.estimate
        wait = wait_range(eta) if eta else None
        return TicketPrint(
            hall_name=hall.name,
            service_name=hall.services[t.service].name,
            number=t.label,
            people_ahead=out.people_ahead or 0,
            wait_minutes=wait,
            issued_at=t.issued_at,
            window_hint=self.window_hint(t.service),
            qr_url=f"{self.status_url.rstrip('/')}/{t.id}" if self.status_url else None,
            masked_name=t.name_masked,
            warning=out.warning,
            footer=("补打小票",) if reprint else ("请在等候区留意叫号，过号请到窗口说明",),
        )

    def window_hint(self, prefix: str) -> str | None:
        """请留意 1、2、18 号窗口: the windows that serve the service (open ones, if any are)."""
        serving = self.ctrl.hall.windows_serving(prefix)
        with self.ctrl.lock:
            open_ = [w.number for w in serving
                     if self.ctrl.state.windows[w.number].status is not WindowStatus.CLOSED]
        numbers = open_ or [w.number for w in serving]
        return f"请留意 {'、'.join(str(n) for n in numbers)} 号窗口" if numbers else None

    def view(self) -> dict[str, Any]:
        """What the kiosk page needs to know: a card waiting, a reader message, the printer."""
        citizen = self.pending_citizen()
        with self.ctrl.lock:
            printer = (self.ctrl.state.devices.get(self.printer.device_id)
                       if self.printer else None)
            reader = self.ctrl.state.devices.get(self.reader_id) if self.reader_id else None
        reader_down = reader is not None and reader[0] in ("offline", "fault")
        return {
            "kiosk": self.id,
            "card": {"name_masked": citizen.name_masked, "id_masked": citizen.id_masked}
            if citizen else None,
            "message": READER_DOWN if reader_down else self.message,
            "printer": {"device": self.printer.device_id,
                        "state": printer[0] if printer else "unknown",
                        "detail": printer[1] if printer else ""} if self.printer else None,
        }
