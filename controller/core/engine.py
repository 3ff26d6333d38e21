"""The queue engine: apply a command to the hall's state at a given moment.

Pure: no I/O, no clock of its own. `apply` validates a command completely
before it changes anything, so a refused command (a `HallError`) leaves the
state exactly as it was. The state is changed in place rather than copied:
a busy day holds tens of thousands of tickets and copying them per command
would make every call-next cost the whole day.
"""

from __future__ import annotations

import datetime as dt

from controller.core import commands as c
from controller.core import events as ev
from controller.core import identity
from controller.core.errors import HallError
from controller.core.hall import Hall, NoShowPolicy, Service, TransferPosition
from controller.core.outcome import Outcome  # noqa: F401 (the engine answers with it)
from controller.core.hours import check_issuing, near_closing_warning
from controller.core.evaluation import EvaluationCommands
from controller.core.priority import call_reason, granted
from controller.core.patrol import PatrolCommands
from controller.core.routing import Routing
from controller.core.windows import WindowCommands, close_window
from controller.core.model import (
    OPEN_STATUSES, Channel, HallState, PriorityClass, QueueIndex, Ticket,
    TicketStatus, WindowState, WindowStatus,
)

# Weight of the newest service time in the running mean per service.
EWMA_WEIGHT = 0.2


class Engine(WindowCommands, EvaluationCommands, PatrolCommands, Routing):
    """The hall's rules, applied to a `HallState`.

    Ticket commands are here; window commands (pause, cover, logins, the tick)
    are in `windows`, and which ticket a window calls next is in `routing`.
    """

    def __init__(self, hall: Hall) -> None:
        self.hall = hall

    # -- state -------------------------------------------------------------

    def new_state(self) -> HallState:
        return self.restore(None, [], [])

    def restore(self, day: dt.date | None, tickets: list[Ticket],
                windows: list[WindowState]) -> HallState:
        """Build the state from persisted tickets and windows; derived parts are recomputed."""
        state = HallState(
            day=day,
            tickets={t.id: t for t in tickets},
            windows={n: WindowState(n) for n in self.hall.windows},
            queues=QueueIndex(list(self.hall.services)),
        )
        for w in windows:
            if w.number in state.windows:
                state.windows[w.number] = w
        for t in sorted(tickets, key=lambda t: t.queue_seq):
            state.last_number[t.prefix] = max(state.last_number.get(t.prefix, 0), t.number)
            state.queue_seq = max(state.queue_seq, t.queue_seq)
            if t.status is TicketStatus.WAITING:
                state.queues.add(t, self._priority_first(t.service))
            if t.citizen_key is not None:
                state.by_citizen.setdefault(t.citizen_key, []).append(t.id)
        for t in sorted((t for t in tickets if t.finished_at and t.called_at),
                        key=lambda t: t.finished_at):
            self._learn_service_time(state, t)
        for t in sorted((t for t in tickets if t.called_at), key=lambda t: t.called_at):
            self._record_call(state, t.service, t.called_at)
        return state

    def needs_new_day(self, state: HallState, now: dt.datetime) -> bool:
        """Only a later day starts a day: a clock set back never takes the hall to an earlier
        one (the runtime's `controller.clock.HallTime` keeps it from trying)."""
        return state.day is None or now.date() > state.day

    def start_day(self, state: HallState, now: dt.datetime) -> Outcome:
        """A new day: every window is closed cleanly, yesterday's waiting tickets are cancelled,
        numbers reset.

        A window still serving (staff who forgot to press finish, or 延时服务 past closing)
        has its visit finished with reason `day_end`: a visit served past closing, never a
        过号. Its end was not recorded, so it is put at the end of its day (or now, if that is
        earlier), and no pad asks about it the next morning: any prompt ends with the day.
        """
        out = Outcome()
        for w in state.windows.values():
            current = state.tickets.get(w.current) if w.current else None
            if w.current is not None:
                w.current = None
                out.touch(w)
            if current is not None and current.status is TicketStatus.CALLED:
                self._finish_at_day_end(current, w, now, out)
            self._end_prompt(w, now, out, "day_end")
            if w.status is not WindowStatus.CLOSED:
                out.emit(ev.WindowClosed(at=now, window=w.number, staff=w.staff_id,
                                         reason="day_end"))
                close_window(w)
                out.touch(w)
        for t in state.tickets.values():
            if t.status is TicketStatus.CALLED:  # called at no window: nobody was serving it
                self._finish_at_day_end(t, None, now, out)
            elif t.status in OPEN_STATUSES:
                t.status = TicketStatus.CANCELLED
                t.finished_at = now
                out.emit(ev.TicketCancelled(at=now, window=t.window, ticket=t.id,
                                            reason="day_end"), t)
        fresh = self.restore(now.date(), [], list(state.windows.values()))
        fresh.devices = state.devices
        state.__dict__.update(fresh.__dict__)
        out.emit(ev.DayStarted(at=now, day=now.date().isoformat()))
        return out

    def close_stale_windows(self, state: HallState, now: dt.datetime,
                            earlier: dict[str, Ticket]) -> Outcome:
        """Windows left pointing at a ticket of an earlier day (a database written before the
        day change closed windows cleanly): closed as `start_day` closes them. `earlier` holds
        those tickets as the database has them; the outcome is empty when nothing is stale.
        A window its staff logged in at today stays open, free."""
        out = Outcome()
        for w in state.windows.values():
            stale = [i for i in (w.current, w.evaluating) if i and i not in state.tickets]
            if not stale:
                continue
            current = earlier.get(w.current) if w.current in stale else None
            if w.current in stale:
                w.current = None
            out.touch(w)
            if current is not None and current.status is TicketStatus.CALLED:
                self._finish_at_day_end(current, w, now, out)
            if w.evaluating in stale:
                self._end_prompt(w, now, out, "day_end")
            today = w.logged_in_at is not None and w.logged_in_at.date() == state.day
            if w.status is not WindowStatus.CLOSED and not today:
                out.emit(ev.WindowClosed(at=now, window=w.number, staff=w.staff_id,
                                         reason="day_end"))
                close_window(w)
        return out

    @staticmethod
    def _finish_at_day_end(t: Ticket, w: WindowState | None, now: dt.datetime,
                           out: Outcome) -> None:
        midnight = dt.datetime.combine(t.day + dt.timedelta(days=1), dt.time(), now.tzinfo)
        t.status = TicketStatus.FINISHED
        t.finished_at = min(now, midnight)
        served = int((t.finished_at - t.called_at).total_seconds()) if t.called_at else None
        out.emit(ev.TicketFinished(
            at=now, window=w.number if w else t.window, ticket=t.id, label=t.label,
            service=t.service, staff=t.staff_id, auto=True, service_seconds=served,
            reason="day_end", finished_at=t.finished_at.isoformat()), t)

    # -- commands ----------------------------------------------------------

    def apply(self, state: HallState, cmd: c.Command, now: dt.datetime) -> Outcome:
        handler = getattr(self, "_" + cmd.kind)
        out = Outcome()
        handler(state, cmd, now, out)
        self._note_window_changes(state, out, now)
        return out

    def _issue_ticket(self, state: HallState, cmd: c.IssueTicket, now: dt.datetime,
                      out: Outcome) -> None:
        service = self._service(cmd.service)
        channel = _enum(Channel, cmd.channel, "invalid_channel")
        priority = (_enum(PriorityClass, cmd.priority, "invalid_priority")
                    if cmd.priority else None)
        citizen = cmd.citizen
        born = citizen.birth_date if citizen else None
        if (cmd.appointment_at is None) != (channel is not Channel.APPOINTMENT):
            raise HallError("invalid_appointment", "预约号需要预约时段，其他号不能带预约时段")
        if cmd.appointment_at is not None and cmd.appointment_at.date() != now.date():
            raise HallError("invalid_appointment", "预约时段不是今天")
        check_issuing(self.hall, now)
        if citizen:
            self._check_hoarding(state, service.prefix, citizen)

        priority, priority_by = granted(self.hall, state, priority, cmd.staff_id, born, now.date())
        number = state.last_number.get(service.prefix, 0) + 1
        state.last_number[service.prefix] = number
        label = f"{service.prefix}{number:03d}"
        t = Ticket(
            id=f"{now:%Y%m%d}-{label}", day=now.date(), prefix=service.prefix, number=number,
            label=label, service=service.prefix, channel=channel, issued_at=now,
            queued_at=now, queue_seq=self._next_seq(state), priority=priority,
            priority_by=priority_by, appointment_at=cmd.appointment_at,
            id_masked=citizen.id_masked if citizen else None,
            name_masked=citizen.name_masked if citizen else None,
            citizen_key=citizen.key if citizen else None,
            identity_sealed=citizen.sealed if citizen else None,
            phone_sealed=citizen.phone_sealed if citizen else None,
            request_key=cmd.request_key,
        )
        state.tickets[t.id] = t
        if t.citizen_key is not None:
            state.by_citizen.setdefault(t.citizen_key, []).append(t.id)
        out.created.add(t.id)
        state.queues.add(t, service.priority_first)
        ahead = state.queues.ahead_of(t, service.priority_first)
        eta = self.estimate(state, service.prefix, ahead, now)
        t.ahead_at_issue, t.eta_p10, t.eta_p50, t.eta_p90 = ahead, eta.p10, eta.p50, eta.p90
        out.ticket, out.estimate, out.people_ahead = t, eta, ahead
        out.warning = near_closing_warning(self.hall, now, eta.p90)
        out.emit(ev.TicketIssued(
            at=now, ticket=t.id, label=label, service=t.service, channel=channel.value,
            priority=priority.value if priority else None, priority_by=priority_by,
            real_name=citizen is not None, people_ahead=ahead, eta=eta.to_json(),
            warning=out.warning), t)

    def _check_hoarding(self, state: HallState, prefix: str, citizen: identity.Citizen) -> None:
        limit = self.hall.rules.waiting_tickets_per_person
        held = state.queues.held_by(prefix, citizen.key) if limit else []
        if limit and len(held) >= limit:
            first = state.tickets[held[0]]
            raise HallError("already_waiting", f"您已取过这项业务的号 {first.label}，请等候叫号")
        per_day = self.hall.rules.tickets_per_person_per_day
        if not per_day:
            return
        # today's tickets are all in memory; a ticket cancelled unprinted was never had
        taken = sum(1 for i in state.by_citizen.get(citizen.key, ())
                    if state.tickets[i].status is not TicketStatus.CANCELLED)
        if taken >= per_day:
            raise HallError("daily_ticket_limit",
                            f"您今天已取号 {taken} 次，已达上限，请到导办台咨询")

    def _cancel_ticket(self, state: HallState, cmd: c.CancelTicket, now: dt.datetime,
                       out: Outcome) -> None:
        t = state.tickets.get(cmd.ticket)
        if t is None:
            raise HallError("unknown_ticket")
        if t.status is not TicketStatus.WAITING:
            raise HallError("ticket_not_waiting")
        state.queues.remove(t, self._priority_first(t.service))
        t.status = TicketStatus.CANCELLED
        t.finished_at = now
        out.ticket = t
        out.emit(ev.TicketCancelled(at=now, ticket=t.id, label=t.label, reason=cmd.reason), t)

    def _report_device(self, state: HallState, cmd: c.ReportDevice, now: dt.datetime,
                       out: Outcome) -> None:
        report = (cmd.state, cmd.detail)
        if state.devices.get(cmd.device) == report:
            return
        state.devices[cmd.device] = report
        out.emit(ev.DeviceHealth(at=now, device=cmd.device, state=cmd.state, detail=cmd.detail))

    def _call_next(self, state: HallState, cmd: c.CallNext, now: dt.datetime,
                   out: Outcome) -> None:
        w = self._open_window(state, cmd.window)
        current = state.current_at(w.number)
        nxt = self._next_for(state, w.number, now)
        if current is not None:
            self._complete(state, w, current, now, out, auto=True)
        if nxt is None:
            return
        state.queues.remove(nxt, self._priority_first(nxt.service))
        nxt.status = TicketStatus.CALLED
        nxt.window = w.number
        nxt.staff_id = w.staff_id
        nxt.called_at = now
        self._record_call(state, nxt.service, now)
        w.current = nxt.id
        out.touch(w)
        out.ticket = nxt
        out.emit(ev.TicketCalled(
            at=now, window=w.number, ticket=nxt.id, label=nxt.label, service=nxt.service,
            waited_seconds=int((now - nxt.issued_at).total_seconds())), nxt)

    def _call_number(self, state: HallState, cmd: c.CallNumber, now: dt.datetime,
                     out: Outcome) -> None:
        w = self._open_window(state, cmd.window)
        reason, note = call_reason(cmd.reason, cmd.note)
        t = state.find_label(cmd.number.strip().upper()) if isinstance(cmd.number, str) else None
        if t is None:
            raise HallError("unknown_ticket", f"今天没有 {cmd.number} 号")
        if t.status not in (TicketStatus.WAITING, TicketStatus.NO_SHOW):
            raise HallError("not_callable")
        if t.service not in self.hall.windows[w.number].services:
            raise HallError("not_served_here")
        current = state.current_at(w.number)
        if current is not None:
            self._complete(state, w, current, now, out, auto=True)
        if t.status is TicketStatus.WAITING:
            state.queues.remove(t, self._priority_first(t.service))
            self._record_call(state, t.service, now)
        t.status = TicketStatus.CALLED
        t.window, t.staff_id, t.called_at = w.number, w.staff_id, now
        t.finished_at = None
        w.current = t.id
        out.touch(w)
        out.ticket = t
        out.emit(ev.TicketCalled(
            at=now, window=w.number, ticket=t.id, label=t.label, service=t.service,
            waited_seconds=int((now - t.issued_at).total_seconds()), out_of_order=True,
            staff=w.staff_id, reason=reason, note=note), t)

    def _recall(self, state: HallState, cmd: c.Recall, now: dt.datetime, out: Outcome) -> None:
        w = self._open_window(state, cmd.window)
        t = self._current(state, w)
        t.recalls += 1
        out.ticket = t
        out.emit(ev.TicketRecalled(at=now, window=w.number, ticket=t.id, label=t.label,
                                   recalls=t.recalls), t)

    def _set_phone(self, state: HallState, cmd: c.SetPhone, now: dt.datetime, out: Outcome) -> None:
        w = self._window(state, cmd.window)
        t = self._current(state, w)
        if not t.real_name:  # a callback needs the identity a bad review opens its case with
            raise HallError("not_real_name")
        corrected = t.phone_sealed is not None
        t.phone_sealed = cmd.phone_sealed
        out.ticket = t
        out.emit(ev.TicketPhoneSet(at=now, window=w.number, ticket=t.id, label=t.label,
                                   corrected=corrected), t)

    def _no_show(self, state: HallState, cmd: c.NoShow, now: dt.datetime, out: Outcome) -> None:
        w = self._open_window(state, cmd.window)
        t = self._current(state, w)
        requeue = self.hall.rules.no_show == NoShowPolicy.REQUEUE_ONCE and not t.requeued
        w.current = None
        out.touch(w)
        t.window = None
        if requeue:
            t.status = TicketStatus.WAITING
            t.requeued = True
            self._enqueue(state, t, now)
        else:
            t.status = TicketStatus.NO_SHOW
            t.finished_at = now
        out.ticket = t
        out.emit(ev.TicketMissed(at=now, window=w.number, ticket=t.id, label=t.label,
                                 requeued=requeue), t)

    def _complete(self, state: HallState, w: WindowState, t: Ticket, now: dt.datetime,
                  out: Outcome, auto: bool = False) -> None:
        t.status = TicketStatus.FINISHED
        t.finished_at = now
        w.current = None
        out.touch(w)
        self._learn_service_time(state, t)
        served = int((now - t.called_at).total_seconds()) if t.called_at else None
        out.emit(ev.TicketFinished(at=now, window=w.number, ticket=t.id, label=t.label,
                                   service=t.service, staff=t.staff_id, auto=auto,
                                   service_seconds=served), t)
        self._prompt(w, t, now, out)

    def _finish(self, state: HallState, cmd: c.Finish, now: dt.datetime, out: Outcome) -> None:
        w = self._open_window(state, cmd.window)
        t = self._current(state, w)
        self._complete(state, w, t, now, out)
        out.ticket = t

    def _transfer(self, state: HallState, cmd: c.Transfer, now: dt.datetime, out: Outcome) -> None:
        w = self._open_window(state, cmd.window)
        t = self._current(state, w)
        target = self._service(cmd.service)
        if target.prefix == t.service:
            raise HallError("same_service")
        source = t.service
        t.service = target.prefix
        t.status = TicketStatus.WAITING
        t.window = None
        t.transfers += 1
        w.current = None
        out.touch(w)
        # 首问负责 (000, 003): a transferred ticket need not queue from the back.
        back = self.hall.rules.transfer_position == TransferPosition.BACK
        self._enqueue(state, t, now if back else t.issued_at)
        out.ticket = t
        out.emit(ev.TicketTransferred(at=now, window=w.number, ticket=t.id, label=t.label,
                                      source=source, target=target.prefix), t)

    # -- helpers -----------------------------------------------------------

    def _service(self, prefix: str) -> Service:
        service = self.hall.services.get(prefix) if isinstance(prefix, str) else None
        if service is None:
            raise HallError("unknown_service", f"没有这项业务：{prefix}")
        return service

    def _priority_first(self, prefix: str) -> bool:
        return self.hall.services[prefix].priority_first

    def _window(self, state: HallState, number: int) -> WindowState:
        w = state.windows.get(number) if isinstance(number, int) else None
        if w is None:
            raise HallError("unknown_window", f"没有 {number} 号窗口")
        return w

    def _open_window(self, state: HallState, number: int) -> WindowState:
        w = self._window(state, number)
        if w.status is WindowStatus.CLOSED:
            raise HallError("window_closed")
        if w.status is WindowStatus.PAUSED:
            raise HallError("window_paused")
        return w

    def _current(self, state: HallState, w: WindowState) -> Ticket:
        t = state.current_at(w.number)
        if t is None:
            raise HallError("no_current_ticket")
        return t

    def _enqueue(self, state: HallState, t: Ticket, queued_at: dt.datetime) -> None:
        t.queued_at = queued_at
        t.queue_seq = self._next_seq(state)
        state.queues.add(t, self._priority_first(t.service))

    @staticmethod
    def _next_seq(state: HallState) -> int:
        state.queue_seq += 1
        return state.queue_seq

    def _learn_service_time(self, state: HallState, t: Ticket) -> None:
        minutes = (t.finished_at - t.called_at).total_seconds() / 60
        prior = state.service_minutes.get(t.service, self.hall.services[t.service].mean_minutes)
        state.service_minutes[t.service] = (1 - EWMA_WEIGHT) * prior + EWMA_WEIGHT * minutes


def _enum(kind, value, code: str, message: str | None = None):
    try:
        return kind(value)
    except ValueError:
        raise HallError(code, message) from None
