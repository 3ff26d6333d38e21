"""预约: appointments booked elsewhere (the provincial booking system, a phone line) and
checked in at the kiosk, where they become tickets served at their slot.

A booking is imported through the API with a code; the citizen shows the code
(a QR code the scanner reads, or typed on the kiosk) and the kiosk issues an
appointment ticket, which routing calls when its slot comes.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass
from typing import Any

from controller.core import commands as c
from controller.core.errors import HallError
from controller.core.outcome import Outcome
from controller.runtime.hallcontroller import HallController, issued_ticket
from controller.store import appointment_book

CODE_PREFIX = "APT-"
# Check-in opens this long before the slot and closes this long after it.
EARLIEST = dt.timedelta(hours=2)
LATEST = dt.timedelta(minutes=30)
# How far ahead a slot may be booked: a slot in year 9999 is a typing or an attacker's error.
BOOKING_DAYS = 90


@dataclass(frozen=True)
class Appointment:
    code: str
    service: str
    slot: dt.datetime
    status: str
    id_masked: str | None
    name_masked: str | None
    ticket_id: str | None

    def to_json(self) -> dict[str, Any]:
        return {"code": self.code, "service": self.service, "slot": self.slot.isoformat(),
                "status": self.status, "id_masked": self.id_masked,
                "name_masked": self.name_masked, "ticket": self.ticket_id}


def _from_row(r: dict[str, Any]) -> Appointment:
    return Appointment(r["code"], r["service"], dt.datetime.fromisoformat(r["slot"]), r["status"],
                       r["id_masked"], r["name_masked"], r["ticket_id"])


class Appointments:
    """The day's bookings, kept in the hall database beside the tickets."""

    def __init__(self, ctrl: HallController) -> None:
        self.ctrl = ctrl
        self.db = ctrl.store.db

    def book(self, service: str, slot: dt.datetime, actor: str, id_number: str | None = None,
             name: str | None = None, code: str | None = None) -> Appointment:
        if service not in self.ctrl.hall.services:
            raise HallError("unknown_service", f"没有这项业务：{service}")
        now = self.ctrl.clock()
        if slot.tzinfo is None:
            slot = slot.replace(tzinfo=now.tzinfo)
        if slot - now > dt.timedelta(days=BOOKING_DAYS):  # not slot > now + x: year 9999 overflows
            raise HallError("invalid_appointment",
                            f"预约时段 {slot:%Y-%m-%d} 太远：最多可预约 {BOOKING_DAYS} 天内的时段")
        citizen = self.ctrl.citizen(id_number, name) if id_number else None
        code = code or CODE_PREFIX + secrets.token_hex(5).upper()
        def book() -> None:
            if appointment_book.exists(self.db, code):
                raise HallError("appointment_exists")
            appointment_book.book(self.db, {
                "code": code, "service": service, "slot": slot.isoformat(),
                "day": slot.date().isoformat(), "citizen_key": citizen.key if citizen else None,
                "identity_sealed": citizen.sealed if citizen else None,
                "id_masked": citizen.id_masked if citizen else None,
                "name_masked": citizen.name_masked if citizen else None,
                "booked_at": self.ctrl.clock().isoformat(), "booked_by": actor})
        self.ctrl.run(book)
        self.ctrl.note(actor, "book_appointment", {"code": code, "service": service,
                                                   "slot": slot.isoformat()})
        return self.get(code)

    def release(self, code: str) -> None:
        """Undo a check-in whose ticket was cancelled (it never printed)."""
        self.ctrl.run(lambda: appointment_book.release(self.db, code))

    def get(self, code: str) -> Appointment:
        row = self.ctrl.run(lambda: appointment_book.get(self.db, code.strip()))
        if row is None:
            raise HallError("unknown_appointment")
        return _from_row(row)

    def on_day(self, day: dt.date) -> list[Appointment]:
        return [_from_row(r) for r in
                self.ctrl.run(lambda: appointment_book.on_day(self.db, day.isoformat()))]

    def check_in(self, code: str, actor: str) -> Outcome:
        """The citizen is here: issue the appointment ticket (once) within the check-in window."""
        # on the hall thread: two kiosks scanning one code, one ticket
        return self.ctrl.run(lambda: self._check_in(self.get(code), actor))

    def _check_in(self, appt: Appointment, actor: str) -> Outcome:
        now = self.ctrl.clock()
        if appt.status != "booked":
            raise HallError("appointment_used", f"预约 {appt.code} 已签到（{appt.ticket_id}）")
        if now < appt.slot - EARLIEST:
            raise HallError("appointment_not_due", f"预约时段 {appt.slot:%m-%d %H:%M}，"
                                                   f"请于 {appt.slot - EARLIEST:%H:%M} 后签到")
        if now > appt.slot + LATEST:
            raise HallError("appointment_expired", f"预约时段 {appt.slot:%H:%M} 已过，请重新取号")
        sealed = appointment_book.sealed_identity(self.db, appt.code)
        citizen = None
        if sealed:
            id_number, name = self.ctrl.identity_sealer().open(sealed)
            citizen = self.ctrl.citizen(id_number, name)
        out = self.ctrl.execute(c.IssueTicket(appt.service, "appointment", citizen,
                                              appointment_at=appt.slot), actor)
        ticket_id = issued_ticket(out).id
        # in the ticket's own transaction: the ticket row is written there, and no check-in
        # is recorded for a ticket that never reached the disk
        self.ctrl.also_write(lambda conn: appointment_book.checked_in(conn, appt.code, ticket_id))
        return out
