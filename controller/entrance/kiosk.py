"""取号机: the entrance kiosk — service buttons, the ID-card reader and the ticket printer.

Taking a ticket at a kiosk: the identity comes from a card just read, or from
an ID number typed on the screen; the printer is asked for paper first; the
ticket is committed; then it is printed.

One identity, one ticket: a card read or a typed number (with the phone typed
beside it) waits for exactly one ticket. It is forgotten after that ticket,
after a refusal, when the reader reports the card lifted, when the citizen
presses 清除, and after `[rules] kiosk_identity_seconds` (15 s) without a touch,
so the next citizen at the kiosk never takes a ticket in the last one's name.

One request, one ticket: a kiosk ticket request may carry an idempotency key
(the page sends one per tap). The key is committed with its ticket; the same key
again within `REQUEST_KEY_MINUTES` gets the same ticket back, not printed again,
also after a restart, and two requests with one key arriving together are
served one after the other under the kiosk's lock. A refused request's key
gets the same refusal for as long (kept in memory: a refusal changed nothing). If printing fails after the commit,
the ticket is cancelled (reason `not_printed`) so no phantom ticket waits in
the queue, and the citizen is sent to the guidance desk (导办台), where staff
issue one by hand. Staff can reprint a ticket that did print.
"""

from __future__ import annotations

import copy
import datetime as dt
import logging
import threading
from dataclasses import dataclass
from typing import Any, Callable

from controller.core import commands as c, identity
from controller.core.errors import HallError
from controller.core.estimate import WaitEstimate, wait_range
from controller.core.identity import Citizen
from controller.core.model import HallState, Ticket, TicketStatus, WindowStatus
from controller.core.outcome import Outcome
from controller.entrance.appointments import Appointments
from controller.runtime.hallcontroller import HallController, issued_ticket
from drivers.code_scanner import ScanKind, classify
from drivers.ticket_printer import (
    PaperOut, PaperStatus, PrinterUnavailable, TicketPrint, TicketPrinter,
)
from drivers.transport import DeviceHealth

log = logging.getLogger(__name__)

# A repeated request key gets its ticket back for this long; later it is refused as used
# (a double tap or a retry comes within seconds; a key is never meant for a second ticket).
REQUEST_KEY_MINUTES = 5
NEAR_END = "纸将用尽，请更换纸卷"
# While the reader is unplugged or faulty (a failed SAM, answering garbage) the citizen is told
# at once, not left waiting for a card that will never be read; it goes when the reader is back.
READER_DOWN = "读卡器暂不能使用，请输入身份证号码或到导办台"


@dataclass
class PendingIdentity:
    """Who the next ticket at this kiosk is for: a card on the reader, or a number typed or
    scanned; `touched_at` is the citizen's last touch (the idle period runs from it)."""

    citizen: Citizen
    source: str  # card, typed or scanned
    touched_at: dt.datetime
    phone_masked: str | None = None


@dataclass(frozen=True)
class KioskTicket:
    """A ticket the kiosk handed out, and whether it printed."""

    outcome: Outcome
    printed: bool
    paper_near_end: bool = False
    repeated: bool = False  # the answer to a request key seen before: nothing new issued


# the citizen's phone page of a ticket (controller.web.phone_api), where the slip's QR leads
PHONE_PAGE = "/t"


def phone_link(base_url: str, ticket_id: str, secret: str) -> str:
    """The link a slip's QR code carries: `base_url` is the hall's address as phones on its LAN
    or Wi-Fi reach it (`hallctl run --public-url`)."""
    return f"{base_url.rstrip('/')}{PHONE_PAGE}/{ticket_id}?k={secret}"


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
        self.pending: PendingIdentity | None = None
        self.message: str | None = None
        self.message_at: dt.datetime | None = None
        # refusals of keyed requests: key -> (when, error), for a repeat to get the same answer
        self._refused: dict[str, tuple[dt.datetime, HallError]] = {}

    @property
    def actor(self) -> str:
        return f"kiosk:{self.id}"

    # -- the ID-card reader ------------------------------------------------

    def card_read(self, id_number: str, name: str | None) -> None:
        """A card was tapped: hold its citizen for the next ticket taken here."""
        try:
            self.hold(id_number, name, "card")
        except HallError as e:
            self.reader_message(e.message)

    def card_gone(self) -> None:
        """The reader reports the card lifted: its holder has left, and so has their identity."""
        with self.lock:
            if self.pending is not None and self.pending.source == "card":
                self._forget("card_gone")

    def hold(self, id_number: str, name: str | None, source: str = "scanned") -> Citizen:
        """Hold the citizen of a card, or of a typed or scanned number, for the next ticket; a
        number that is wrong raises and leaves no earlier identity waiting (it is a new citizen
        at the kiosk)."""
        with self.lock:
            self.pending = None
            try:
                citizen = self.ctrl.citizen(id_number, name)
            except HallError as e:
                self.ctrl.refuse(self.actor, "identity_held", {"source": source}, e)
                raise
            self.pending = PendingIdentity(citizen, source, self.ctrl.clock())
            self.message = None
        self.ctrl.note(self.actor, "card_read" if source == "card" else "identity_held",
                       {"id_masked": citizen.id_masked, "source": source})
        return citizen

    def hold_phone(self, phone: str) -> None:
        """A phone typed beside the waiting identity, for the callback of a bad review: checked,
        sealed like the ID number, and forgotten with it."""
        with self.lock:
            try:
                pending = self._pending()
                if pending is None:
                    raise HallError("no_identity_waiting")
                citizen = self.ctrl.identity_sealer().with_phone(pending.citizen, phone)
                checked = identity.normalise_phone(phone)
                if checked is None:  # an empty phone, which with_phone passes over
                    raise HallError("invalid_phone")
            except HallError as e:
                self.ctrl.refuse(self.actor, "phone_held", {}, e)
                raise
            masked = identity.mask_phone(checked)
            self.pending = PendingIdentity(citizen, pending.source, self.ctrl.clock(), masked)
        self.ctrl.note(self.actor, "phone_held", {"phone_masked": masked})

    def touch(self) -> None:
        """The citizen is still at the kiosk (typing): the idle period starts again."""
        with self.lock:
            if (pending := self._pending()) is not None:
                pending.touched_at = self.ctrl.clock()

    def clear(self) -> None:
        """清除: the citizen (or the next one) wipes the identity waiting at the kiosk."""
        with self.lock:
            if self._pending() is not None:
                self._forget("cleared")

    def reader_message(self, message: str) -> None:
        """What the reader or scanner says to the citizen (读卡失败，请重新放置身份证): shown on
        the screen for the idle period, so the next citizen does not read it."""
        with self.lock:
            self.message = message
            self.message_at = self.ctrl.clock()

    def _message(self) -> str | None:
        if self.message is None or self.message_at is None:
            return self.message
        shown = (self.ctrl.clock() - self.message_at).total_seconds()
        return self.message if shown <= self.ctrl.hall.rules.kiosk_identity_seconds else None

    def pending_citizen(self) -> Citizen | None:
        with self.lock:
            pending = self._pending()
            return pending.citizen if pending else None

    def _pending(self) -> PendingIdentity | None:
        """The identity waiting here, unless the citizen left it idle too long (then forgotten)."""
        if self.pending is None:
            return None
        idle = (self.ctrl.clock() - self.pending.touched_at).total_seconds()
        if idle > self.ctrl.hall.rules.kiosk_identity_seconds:
            self._forget("idle")
            return None
        return self.pending

    def _forget(self, why: str) -> None:
        if self.pending is None:
            return
        masked = self.pending.citizen.id_masked
        self.pending = None
        self.ctrl.note(self.actor, "identity_cleared", {"id_masked": masked, "why": why})

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

    def _print(self, printer: TicketPrinter, t: Ticket, out: Outcome, reprint: bool = False) -> bool:
        """Print `t`; True when it printed and the roll is running out."""
        result = printer.print_ticket(self.ticket_print(t, out, reprint))
        device = printer.device_id
        was = self.ctrl.devices().get(device, ("", ""))[0]
        if result.near_end:
            self.ctrl.execute(c.ReportDevice(device, "warning", NEAR_END), "system")
        elif was == "warning":  # a new roll went in
            self.ctrl.execute(c.ReportDevice(device, "online"), "system")
        return result.near_end

    # -- taking a ticket ---------------------------------------------------

    def take_ticket(self, service: str, id_number: str | None = None, name: str | None = None,
                    priority: str | None = None, phone: str | None = None,
                    request_key: str | None = None) -> KioskTicket:
        """Issue and print a ticket; HallError (with the kiosk's message) if it cannot be had.

        The identity waiting here (or the number given) is used for this ticket only: it is
        forgotten whether the ticket is had or refused. A `request_key` seen before gets the
        same answer as the first time (module docstring)."""
        with self.lock:
            key = f"{self.actor}:{request_key}" if request_key else None
            if key is not None and (again := self._repeated(key, service)) is not None:
                return again
            outcome = "refused"
            try:
                try:
                    pending = self._pending()
                    if id_number:
                        citizen = self.ctrl.citizen(id_number, name, phone)
                    elif pending is not None:
                        citizen = self.ctrl.identity_sealer().with_phone(pending.citizen, phone)
                    else:
                        citizen = None
                    if phone and citizen is None:
                        raise HallError("phone_needs_identity")
                except HallError as e:
                    self.ctrl.refuse(self.actor, "issue_ticket", {"service": service}, e)
                    raise
                got = self._issue_and_print(
                    lambda: self.ctrl.execute(c.IssueTicket(service, "kiosk", citizen, priority,
                                                            request_key=key), self.actor),
                    {"service": service})
                outcome = "used"
                return got
            except HallError as e:
                if key is not None:
                    self._refused[key] = (self.ctrl.clock(), e)
                raise
            finally:
                self._forget(outcome)

    def _repeated(self, key: str, service: str) -> KioskTicket | None:
        """The answer already given to request `key`, if it was asked before."""
        now = self.ctrl.clock()
        window = dt.timedelta(minutes=REQUEST_KEY_MINUTES)
        for k, (at, _) in list(self._refused.items()):
            if now - at > window:
                del self._refused[k]
        if key in self._refused:
            err = self._refused[key][1]
            self.ctrl.refuse(self.actor, "issue_ticket_repeated", {"service": service}, err)
            raise err
        # the key's ticket is on disk before anyone was told of it (indexed: no scan of the day's
        # tickets per tap); today's state has its latest status, the store an older day's
        found = self.ctrl.store.ticket_id_for_request_key(key)
        if found is None:
            return None
        t = self.ctrl.ticket(found)
        if t is None:
            return None
        if now - t.issued_at > window or t.service != service:
            err = HallError("request_key_used")
            self.ctrl.refuse(self.actor, "issue_ticket", {"service": service}, err)
            raise err
        self.ctrl.note(self.actor, "issue_ticket_repeated", {"ticket": t.id})
        if t.status is TicketStatus.CANCELLED:
            # taken back (its slip did not print, or withdrawn at the desk): never handed out again
            raise HallError("ticket_not_waiting", f"号票 {t.label} 已作废，请到导办台取号")
        eta = (WaitEstimate(t.eta_p10, t.eta_p50, t.eta_p90)
               if t.eta_p10 is not None and t.eta_p50 is not None and t.eta_p90 is not None else None)
        return KioskTicket(Outcome(ticket=t, people_ahead=t.ahead_at_issue, estimate=eta),
                           printed=self.printer is not None, repeated=True)

    def scanned(self, code: str) -> KioskTicket | None:
        """A code shown at the scanner: an ID number (held like a card) or an appointment
        code (checked in and printed at once)."""
        code = code.strip()
        kind = classify(code)
        if kind is ScanKind.ID_NUMBER:
            self.hold(code, None, "scanned")
            return None
        appointments = self.appointments
        if kind is ScanKind.APPOINTMENT and appointments is not None:
            with self.lock:
                try:
                    return self._issue_and_print(
                        lambda: appointments.check_in(code, self.actor), {"code": code})
                except HallError as e:
                    if e.code in ("paper_out", "printer_unavailable"):
                        appointments.release(code)  # the booking stays good for the desk
                    raise
        err = HallError("unknown_code")
        self.ctrl.refuse(self.actor, "scan", {"code_length": len(code)}, err)
        raise err

    def _issue_and_print(self, issue: Callable[[], Outcome], args: dict[str, Any]) -> KioskTicket:
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
            ticket = issued_ticket(out)
            try:
                near_end = self._print(self.printer, ticket, out)
            except PrinterUnavailable as e:
                # The ticket is on disk but not on paper: take it out of the queue.
                self.ctrl.execute(c.CancelTicket(ticket.id, "not_printed"), self.actor)
                code = "paper_out" if isinstance(e, PaperOut) else "printer_unavailable"
                err = HallError(code, f"小票未能打印（{ticket.label} 已作废），请到导办台取号")
                err.ticket_issued = ticket.id  # type: ignore[attr-defined]  # it counts
                raise err from e
            return KioskTicket(out, printed=True, paper_near_end=near_end)

    def reprint(self, ticket_id: str, actor: str) -> bool:
        """补打: print a waiting ticket again (the citizen lost it, or it came out torn)."""
        with self.lock:
            def waiting(state: HallState) -> tuple[Ticket | None, Outcome | None]:
                t = state.tickets.get(ticket_id)
                if t is None or t.status is not TicketStatus.WAITING:
                    return (copy.copy(t), None)
                ahead = self.ctrl.engine.people_ahead(state, t)
                return copy.copy(t), Outcome(ticket=copy.copy(t), people_ahead=ahead, estimate=(
                    self.ctrl.engine.estimate(state, t.service, ahead, self.ctrl.clock())))
            t, out = self.ctrl.ask(waiting)
            if t is None:
                raise HallError("unknown_ticket")
            if self.printer is None:
                raise HallError("printer_unavailable")
            if t.status is not TicketStatus.WAITING or out is None:
                raise HallError("ticket_not_waiting")
            self._check_printer()
            try:
                self._print(self.printer, t, out, reprint=True)
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
            qr_url=self.page_link(t.id),
            masked_name=t.name_masked,
            warning=out.warning,
            footer=((f"回访电话 {phone}",) if (phone := self.phone_masked(t)) else ())
            + (("补打小票",) if reprint else ("请在等候区留意叫号，过号请到窗口说明",)),
        )

    def page_link(self, ticket_id: str) -> str | None:
        """The slip's QR code: the ticket's phone page on the hall's address (`status_url`),
        with the ticket's secret (controller.web.phone_api); none without an address or key."""
        if not self.status_url or self.ctrl.sealer is None:
            return None
        return phone_link(self.status_url, ticket_id, self.ctrl.sealer.ticket_secret(ticket_id))

    def phone_masked(self, t: Ticket) -> str | None:
        """138****1234: the ticket's phone for a callback as the slip and screens show it."""
        return self.ctrl.sealer.phone_masked(t.phone_sealed) if self.ctrl.sealer else None

    def window_hint(self, prefix: str) -> str | None:
        """请留意 1、2、18 号窗口: the windows that serve the service (open ones, if any are)."""
        serving = self.ctrl.hall.windows_serving(prefix)
        open_ = self.ctrl.ask(lambda state: [w.number for w in serving if state.windows[
            w.number].status is not WindowStatus.CLOSED])
        numbers = open_ or [w.number for w in serving]
        return f"请留意 {'、'.join(str(n) for n in numbers)} 号窗口" if numbers else None

    def view(self) -> dict[str, Any]:
        """What the kiosk page needs to know: the identity waiting (masked), a reader message,
        the printer."""
        with self.lock:
            pending = self._pending()
            left = (self.ctrl.hall.rules.kiosk_identity_seconds
                    - (self.ctrl.clock() - pending.touched_at).total_seconds()) if pending else 0
            message = self._message()
        seen = self.ctrl.devices()
        printer = seen.get(self.printer.device_id) if self.printer else None
        reader = seen.get(self.reader_id) if self.reader_id else None
        reader_down = reader is not None and reader[0] in ("offline", "fault")
        return {
            "kiosk": self.id,
            "card": {"name_masked": pending.citizen.name_masked,
                     "id_masked": pending.citizen.id_masked, "source": pending.source,
                     "phone_masked": pending.phone_masked, "seconds_left": max(0, round(left))}
            if pending else None,
            "identity_seconds": self.ctrl.hall.rules.kiosk_identity_seconds,
            "message": READER_DOWN if reader_down else message,
            "printer": {"device": self.printer.device_id,
                        "state": printer[0] if printer else "unknown",
                        "detail": printer[1] if printer else ""} if self.printer else None,
        }
