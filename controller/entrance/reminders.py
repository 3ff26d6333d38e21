"""到号提醒: a text message to a citizen who left a mobile number at the kiosk, when `ahead`
people are left before them (即将叫到) and when they are called (请到 3 号窗口).

The hall thread only decides: after each committed ticket event it looks at the tickets
that asked (few at any moment) and, when a trigger happens, writes the message into the
outbox (`reminder_messages`, one row per ticket and trigger, so a trigger is due once) with
its audit row. Sending is a thread of its own: each try within the gateway's timeout, at
most `attempts` tries with a growing pause between them, each outcome an audit row. A
gateway that hangs or fails holds up this thread only, never the hall thread nor the event
loop: calls go on being answered.

After a restart the outbox is read again: a message not yet sent is sent then, under the
same id (the gateway's `Idempotency-Key`, so a gateway that got it just before the stop
can drop the copy), and a trigger that happened while the controller was stopping (its
ticket called, no message written yet) is found from the ticket's state and written then.

The phone is personal data: sealed with the hall's key (controller.security.privacy), shown
and logged masked (138****1234), forgotten once the ticket's messages are done, and at the
latest by the next day's purge (controller.security.personal_data).
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import threading
import time
from typing import Callable

from controller.config.settings import ReminderSettings
from controller.core import identity
from controller.core.commands import ReportDevice
from controller.core.errors import Category, HallError
from controller.core.events import DAY_STARTED, Event
from controller.core.model import Ticket, TicketStatus
from controller.runtime.hallcontroller import HallController
from controller.store import reminders as rows
from drivers.sms import GatewayError, SmsGateway, TextMessage
from vocabulary import SYSTEM

log = logging.getLogger(__name__)

AHEAD = "ahead"  # 即将叫到
CALLED = "called"  # 请到 N 号窗口
TRIGGERS = (AHEAD, CALLED)
_MOBILE = re.compile(r"1[3-9]\d{9}")
# seconds before the second, third... try of a message that failed
RETRY_SECONDS = (2.0, 10.0, 30.0, 60.0)
# the gateway as the supervisor's device list names it: a failed try reports it faulty
# (device_health), the next message it takes online again
GATEWAY_DEVICE = "sms-gateway"


class ReminderError(HallError):
    """A refusal of the reminder desk."""

    codes = {
        "reminders_off": (Category.CONFLICT, "本大厅未开通到号短信提醒"),
        "invalid_mobile": (Category.INVALID, "请输入 11 位手机号码（以 1 开头），短信提醒只能发到手机"),
        "reminder_exists": (Category.CONFLICT, "这张号已登记过到号提醒"),
        "unknown_ticket": (Category.NOT_FOUND, "没有这张号"),
        "ticket_not_waiting": (Category.CONFLICT, "这张号不在等候中"),
    }


def mobile(phone: str) -> str | None:
    """An 11-digit mainland mobile as digits (+86, spaces and dashes allowed); None otherwise."""
    p = re.sub(r"[\s()-]", "", phone or "")
    if p.startswith("+86"):
        p = p[3:]
    return p if _MOBILE.fullmatch(p) else None


class ReminderDesk:
    """The hall's reminders: opt-in at the kiosk, triggers on the hall thread, the sender."""

    def __init__(self, ctrl: HallController, settings: ReminderSettings,
                 gateway: SmsGateway | None,
                 retry_seconds: tuple[float, ...] = RETRY_SECONDS) -> None:
        self.ctrl = ctrl
        self.settings = settings
        self.gateway = gateway
        self.retry_seconds = retry_seconds
        self._watching: dict[str, set[str]] = {}  # hall thread only: ticket -> triggers to come
        self._outbox: list[rows.Outgoing] = []
        self._next_try: dict[str, float] = {}  # message id -> monotonic time of its next try
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._faulty = False  # the sender's: the last try failed, and was reported
        self._unsubscribe: Callable[[], None] | None = None

    @property
    def enabled(self) -> bool:
        return self.settings.enabled and self.gateway is not None

    # -- life -------------------------------------------------------------------------------

    def start(self) -> ReminderDesk:
        if not self.enabled:
            return self
        self.ctrl.run(self._resume)
        self._unsubscribe = self.ctrl.subscribe(self._on_event)
        self._thread = threading.Thread(target=self._send_loop, name="reminders", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 2.0) -> None:
        """Stop sending; what is not sent stays in the outbox for the next start. A send in
        flight is not waited for past `timeout` (its message is sent again next time)."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def drain(self, timeout: float) -> bool:
        """Wait until every message due has been sent or given up (a simulated day's end);
        False if some are still waiting after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if not self._outbox:
                    return True
            self._wake.set()
            time.sleep(0.01)
        return False

    def _resume(self) -> None:
        """On the hall thread at start: today's outbox read, today's reminders watched again and
        triggers that happened meanwhile written (they join the outbox). An earlier day's
        messages are not sent: a call of yesterday is no news."""
        today = self.ctrl.clock().date()
        conn = self.ctrl.store.db.conn
        with self._lock:
            self._outbox = rows.outgoing(conn, today)
        if self.ctrl.state.day == today:
            for ticket_id, due in rows.watched(conn, today):
                self._watching[ticket_id] = set(TRIGGERS) - set(due)
            for ticket_id in list(self._watching):
                self._check(ticket_id)
        self._wake.set()

    # -- opting in --------------------------------------------------------------------------

    def opt_in(self, ticket_id: str, phone: str, actor: str) -> str:
        """The citizen of `ticket_id` asks for text messages at `phone`; the masked phone.
        A refusal (HallError) is an audit row too, with the phone masked if it is one."""
        number = mobile(phone)
        masked = identity.mask_phone(number) if number else None
        try:
            if not self.enabled:
                raise ReminderError("reminders_off")
            if number is None:
                raise ReminderError("invalid_mobile")
            return self._opt_in(ticket_id, number, actor)
        except HallError as e:
            self.ctrl.refuse(actor, "reminder_opt_in", {"ticket": ticket_id, "phone": masked}, e)
            raise

    def _opt_in(self, ticket_id: str, number: str, actor: str) -> str:
        sealed = self.ctrl.identity_sealer().seal(number, None)
        masked = identity.mask_phone(number)

        def act() -> str:
            t = self.ctrl.state.tickets.get(ticket_id)
            if t is None:
                raise ReminderError("unknown_ticket")
            if t.status is not TicketStatus.WAITING:
                raise ReminderError("ticket_not_waiting")
            if ticket_id in self._watching or rows.has_reminder(self.ctrl.store.db.conn, ticket_id):
                raise ReminderError("reminder_exists")
            now = self.ctrl.clock()
            self.ctrl.also_write(lambda conn: rows.opt_in(conn, ticket_id, t.day, sealed, masked, now))
            self.ctrl.note(actor, "reminder_opt_in", {"ticket": ticket_id, "label": t.label,
                                                      "phone": masked})
            self._watching[ticket_id] = set(TRIGGERS)
            self._check(ticket_id)
            return masked

        return self.ctrl.run(act)

    # -- triggers, on the hall thread ---------------------------------------------------------

    def _on_event(self, event_id: int, event: Event) -> None:
        if event.kind == DAY_STARTED:
            self._watching.clear()  # yesterday's tickets are gone; their phones go at the purge
            return
        if event.ticket is None or not self._watching:
            return
        for ticket_id in list(self._watching):
            self._check(ticket_id)

    def _check(self, ticket_id: str) -> None:
        t = self.ctrl.state.tickets.get(ticket_id)
        to_come = self._watching.get(ticket_id)
        if t is None or to_come is None:
            self._watching.pop(ticket_id, None)
            return
        if t.called_at is not None:
            if AHEAD in to_come:  # called before the reminder could come: none is sent
                self._due(t, AHEAD, skipped=True)
            if CALLED in to_come:
                self._due(t, CALLED)
            self._watching.pop(ticket_id, None)
        elif t.status is not TicketStatus.WAITING:  # cancelled before being called
            self._watching.pop(ticket_id, None)
            self.ctrl.also_write(lambda conn: rows.forget_phone(conn, ticket_id))
        elif AHEAD in to_come:
            ahead = self.ctrl.engine.people_ahead(self.ctrl.state, t)
            if ahead <= self.settings.ahead:
                self._due(t, AHEAD, ahead=ahead)
                to_come.discard(AHEAD)

    def _due(self, t: Ticket, trigger: str, skipped: bool = False, ahead: int = 0) -> None:
        """The trigger's message into the outbox (and its audit row), in one transaction."""
        now = self.ctrl.clock()
        text = self.text(t, trigger, ahead)
        message_id = f"{t.id}-{trigger}"
        self.ctrl.run(lambda: self._write_due(t, trigger, text, message_id, now, skipped))
        if not skipped:
            self._wake.set()

    def _write_due(self, t: Ticket, trigger: str, text: str, message_id: str, now: dt.datetime,
                   skipped: bool) -> None:
        self.ctrl.also_write(lambda conn: rows.add_message(conn, message_id, t.id, trigger, text,
                                                           now, skipped))
        self.ctrl.note(SYSTEM, "reminder_skipped" if skipped else "reminder_due",
                       {"ticket": t.id, "label": t.label, "trigger": trigger, "message": message_id})
        if not skipped:  # what the sender needs; it reads the phone, sealed, when it sends
            with self._lock:
                self._outbox.append(rows.Outgoing(message_id, t.id, trigger, text, None, 0))

    def text(self, t: Ticket, trigger: str, ahead: int = 0) -> str:
        """The message, in the hall's words (`ahead`: the people before the ticket now)."""
        hall = self.ctrl.hall
        service = hall.services[t.service].name
        if trigger == CALLED:
            return f"【{hall.name}】请 {t.label} 号到 {t.window} 号窗口办理{service}。"
        left = "下一位就是您" if ahead == 0 else f"前面还有 {ahead} 人"
        return f"【{hall.name}】您的 {t.label} 号（{service}）即将叫到，{left}，请回到等候区留意叫号。"

    # -- sending, on a thread of its own --------------------------------------------------

    def _send_loop(self) -> None:
        while not self._stop.is_set():
            message = self._next()
            if message is None:
                with self._lock:
                    waits = [at - time.monotonic() for at in self._next_try.values()]
                self._wake.wait(max(0.05, min(waits, default=5.0)))
                self._wake.clear()
                continue
            self._send(message)

    def _next(self) -> rows.Outgoing | None:
        """The oldest message whose try is due; a ticket's messages one after another, so the
        reminder never comes after the call."""
        now = time.monotonic()
        earlier: set[str] = set()
        with self._lock:
            for m in self._outbox:
                if m.ticket_id not in earlier and self._next_try.get(m.id, 0.0) <= now:
                    return m
                earlier.add(m.ticket_id)
        return None

    def _send(self, m: rows.Outgoing) -> None:
        assert self.gateway is not None
        phone = self._phone(m.ticket_id)
        try:
            if phone is None:
                raise GatewayError("no phone kept for the ticket")
            self.gateway.send(TextMessage(m.id, phone, m.text))
        except GatewayError as e:
            self._failed(m, str(e))
            return
        except Exception as e:  # a gateway of the hall's own that misbehaves: logged, retried
            log.exception("SMS gateway %s failed on %s", type(self.gateway).__name__, m.id)
            self._failed(m, type(e).__name__)
            return
        self._record(m, None)

    def _phone(self, ticket_id: str) -> str | None:
        found = self.ctrl.store.query("SELECT phone_sealed FROM reminders WHERE ticket_id = ?",
                                      [ticket_id])
        sealed = found[0]["phone_sealed"] if found else None
        return self.ctrl.identity_sealer().open(sealed)[0] if sealed else None

    def _failed(self, m: rows.Outgoing, error: str) -> None:
        attempts = m.attempts + 1
        give_up = attempts >= self.settings.attempts
        log.warning("reminder %s not sent (try %d of %d): %s", m.id, attempts,
                    self.settings.attempts, error)
        self._record(m, error, give_up)
        if not give_up:
            pause = self.retry_seconds[min(attempts - 1, len(self.retry_seconds) - 1)]
            with self._lock:
                self._next_try[m.id] = time.monotonic() + pause
                self._outbox = [x if x.id != m.id else rows.Outgoing(
                    m.id, m.ticket_id, m.trigger, m.text, None, attempts) for x in self._outbox]

    def _record(self, m: rows.Outgoing, error: str | None, give_up: bool = False) -> None:
        """The try's outcome into the outbox and the audit log, on the hall thread. When the
        hall has stopped meanwhile nothing is recorded: the message is sent again at the next
        start, under the same id."""
        def act() -> None:
            now = self.ctrl.clock()
            if error is None:
                self.ctrl.also_write(lambda conn: rows.sent(conn, m.id, now))
                self.ctrl.note(SYSTEM, "reminder_sent", {"ticket": m.ticket_id, "trigger": m.trigger,
                                                         "message": m.id})
            else:
                self.ctrl.also_write(lambda conn: rows.attempt_failed(
                    conn, m.id, error, now if give_up else None))
                self.ctrl.note(SYSTEM, "reminder_gave_up" if give_up else "reminder_send_failed",
                               {"ticket": m.ticket_id, "trigger": m.trigger, "message": m.id,
                                "attempt": m.attempts + 1, "error": error[:200]})
            if (error is None or give_up) and m.trigger == CALLED:
                self.ctrl.also_write(lambda conn: rows.forget_phone(conn, m.ticket_id))
            if error is not None or self._faulty:
                self.ctrl.execute(ReportDevice(GATEWAY_DEVICE, "fault" if error else "online",
                                               f"短信网关未能发送：{error}" if error else ""), SYSTEM)
                self._faulty = error is not None
        try:
            self.ctrl.run(act)
        except RuntimeError as e:  # the hall thread has stopped
            log.info("reminder %s: its outcome was not recorded (%s)", m.id, e)
            return
        except Exception:
            log.exception("reminder %s: its outcome was not recorded", m.id)
            return
        if error is None or give_up:
            with self._lock:
                self._outbox = [x for x in self._outbox if x.id != m.id]
                self._next_try.pop(m.id, None)
