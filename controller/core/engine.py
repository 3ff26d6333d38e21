"""The queue engine: apply a command to the hall's state at a given moment.

Pure: no I/O, no clock of its own. `apply` validates a command completely
before it changes anything, so a refused command (a `HallError`) leaves the
state exactly as it was. The state is changed in place rather than copied:
a busy day holds tens of thousands of tickets and copying them per command
would make every call-next cost the whole day.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from controller.core import commands as c
from controller.core import events as ev
from controller.core import identity
from controller.core.errors import HallError
from controller.core.estimate import WaitEstimate, estimate_wait
from controller.core.hall import Hall, NoShowPolicy, Service, StaffRole, TransferPosition
from controller.core.hours import check_issuing, near_closing_warning
from controller.core.model import (
    OPEN_STATUSES, Channel, HallState, PriorityClass, QueueIndex, Ticket,
    TicketStatus, WindowState, WindowStatus,
)

# Weight of the newest service time in the running mean per service.
EWMA_WEIGHT = 0.2
MAX_PAUSE_MINUTES = 240
MAX_REASON_CHARS = 50


@dataclass
class Outcome:
    """What one command did: its events, the records it touched, and its answer."""

    events: list[ev.Event] = field(default_factory=list)
    tickets: dict[str, Ticket] = field(default_factory=dict)
    created: set[str] = field(default_factory=set)
    windows: dict[int, WindowState] = field(default_factory=dict)
    ticket: Ticket | None = None
    estimate: WaitEstimate | None = None
    people_ahead: int | None = None
    warning: str | None = None

    def emit(self, kind: str, at: dt.datetime, window: int | None = None,
             ticket: Ticket | None = None, **data: Any) -> None:
        if ticket is not None:
            self.tickets[ticket.id] = ticket
        self.events.append(ev.Event(kind, at, window, ticket.id if ticket else None, data))

    def touch(self, w: WindowState) -> None:
        self.windows[w.number] = w


class Engine:
    """The hall's rules, applied to a `HallState`."""

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
        for t in sorted((t for t in tickets if t.finished_at and t.called_at),
                        key=lambda t: t.finished_at):
            self._learn_service_time(state, t)
        return state

    def needs_new_day(self, state: HallState, now: dt.datetime) -> bool:
        return state.day != now.date()

    def start_day(self, state: HallState, now: dt.datetime) -> Outcome:
        """A new day: yesterday's open tickets are cancelled, windows closed, numbers reset."""
        out = Outcome()
        for t in state.tickets.values():
            if t.status in OPEN_STATUSES:
                t.status = TicketStatus.CANCELLED
                t.finished_at = now
                out.emit(ev.TICKET_CANCELLED, now, t.window, t, reason="day_end")
        for w in state.windows.values():
            if w.status is not WindowStatus.CLOSED:
                out.emit(ev.WINDOW_CLOSED, now, w.number, staff=w.staff_id, reason="day_end")
                self._close(w)
                out.touch(w)
        fresh = self.restore(now.date(), [], list(state.windows.values()))
        fresh.devices = state.devices
        state.__dict__.update(fresh.__dict__)
        out.emit(ev.DAY_STARTED, now, day=now.date().isoformat())
        return out

    # -- commands ----------------------------------------------------------

    def apply(self, state: HallState, cmd: c.Command, now: dt.datetime) -> Outcome:
        handler = getattr(self, "_" + cmd.kind)
        out = Outcome()
        handler(state, cmd, now, out)
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

        if priority is None and born and identity.age_on(born, now.date()) >= self.hall.rules.priority_age:
            priority = PriorityClass.ELDERLY
        number = state.last_number.get(service.prefix, 0) + 1
        state.last_number[service.prefix] = number
        label = f"{service.prefix}{number:03d}"
        t = Ticket(
            id=f"{now:%Y%m%d}-{label}", day=now.date(), prefix=service.prefix, number=number,
            label=label, service=service.prefix, channel=channel, issued_at=now,
            queued_at=now, queue_seq=self._next_seq(state), priority=priority,
            appointment_at=cmd.appointment_at,
            id_masked=citizen.id_masked if citizen else None,
            name_masked=citizen.name_masked if citizen else None,
            citizen_key=citizen.key if citizen else None,
            identity_sealed=citizen.sealed if citizen else None,
        )
        state.tickets[t.id] = t
        out.created.add(t.id)
        state.queues.add(t, service.priority_first)
        ahead = state.queues.ahead_of(t, service.priority_first)
        eta = self.estimate(state, service.prefix, ahead)
        t.ahead_at_issue, t.eta_p10, t.eta_p50, t.eta_p90 = ahead, eta.p10, eta.p50, eta.p90
        out.ticket, out.estimate, out.people_ahead = t, eta, ahead
        out.warning = near_closing_warning(self.hall, now, eta.p90)
        out.emit(ev.TICKET_ISSUED, now, None, t, label=label, service=t.service,
                 channel=channel.value, priority=priority.value if priority else None,
                 real_name=citizen is not None, people_ahead=ahead, eta=eta.to_json(),
                 warning=out.warning)

    def _check_hoarding(self, state: HallState, prefix: str, citizen: identity.Citizen) -> None:
        limit = self.hall.rules.waiting_tickets_per_person
        if not limit:
            return
        q = state.queues.services[prefix]
        held = [state.tickets[k[2]] for lane in (q.appointments, q.priority, q.regular)
                for k in lane if state.tickets[k[2]].citizen_key == citizen.key]
        if len(held) >= limit:
            raise HallError("already_waiting", f"您已取过这项业务的号 {held[0].label}，请等候叫号")

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
        out.emit(ev.TICKET_CANCELLED, now, None, t, label=t.label, reason=cmd.reason)

    def _report_device(self, state: HallState, cmd: c.ReportDevice, now: dt.datetime,
                       out: Outcome) -> None:
        report = (cmd.state, cmd.detail)
        if state.devices.get(cmd.device) == report:
            return
        state.devices[cmd.device] = report
        out.emit(ev.DEVICE_HEALTH, now, None, device=cmd.device, state=cmd.state,
                 detail=cmd.detail)

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
        w.current = nxt.id
        out.touch(w)
        out.ticket = nxt
        out.emit(ev.TICKET_CALLED, now, w.number, nxt, label=nxt.label, service=nxt.service,
                 waited_seconds=int((now - nxt.issued_at).total_seconds()))

    def _call_number(self, state: HallState, cmd: c.CallNumber, now: dt.datetime,
                     out: Outcome) -> None:
        w = self._open_window(state, cmd.window)
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
        t.status = TicketStatus.CALLED
        t.window, t.staff_id, t.called_at = w.number, w.staff_id, now
        t.finished_at = None
        w.current = t.id
        out.touch(w)
        out.ticket = t
        out.emit(ev.TICKET_CALLED, now, w.number, t, label=t.label, service=t.service,
                 waited_seconds=int((now - t.issued_at).total_seconds()), out_of_order=True)

    def _recall(self, state: HallState, cmd: c.Recall, now: dt.datetime, out: Outcome) -> None:
        w = self._open_window(state, cmd.window)
        t = self._current(state, w)
        t.recalls += 1
        out.ticket = t
        out.emit(ev.TICKET_RECALLED, now, w.number, t, label=t.label, recalls=t.recalls)

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
        out.emit(ev.TICKET_MISSED, now, w.number, t, label=t.label, requeued=requeue)

    def _complete(self, state: HallState, w: WindowState, t: Ticket, now: dt.datetime,
                  out: Outcome, auto: bool = False) -> None:
        t.status = TicketStatus.FINISHED
        t.finished_at = now
        w.current = None
        out.touch(w)
        self._learn_service_time(state, t)
        out.emit(ev.TICKET_FINISHED, now, w.number, t, label=t.label, service=t.service,
                 staff=t.staff_id, auto=auto,
                 service_seconds=int((now - t.called_at).total_seconds()) if t.called_at else None)

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
        out.emit(ev.TICKET_TRANSFERRED, now, w.number, t, label=t.label,
                 source=source, target=target.prefix)

    def _pause(self, state: HallState, cmd: c.Pause, now: dt.datetime, out: Outcome) -> None:
        w = self._open_window(state, cmd.window)
        reason = (cmd.reason or "").strip()
        if not reason or len(reason) > MAX_REASON_CHARS:
            raise HallError("invalid_reason", f"请填写暂停原因（不超过 {MAX_REASON_CHARS} 字）")
        if not isinstance(cmd.minutes, int) or not 1 <= cmd.minutes <= MAX_PAUSE_MINUTES:
            raise HallError("invalid_minutes", f"预计时长应为 1 到 {MAX_PAUSE_MINUTES} 分钟")
        whereabouts = (cmd.whereabouts or "").strip() or None
        if whereabouts and len(whereabouts) > MAX_REASON_CHARS:
            raise HallError("invalid_reason", f"去向说明不超过 {MAX_REASON_CHARS} 字")
        if w.current is not None:
            raise HallError("window_busy")
        w.status = WindowStatus.PAUSED
        w.pause_whereabouts = whereabouts
        w.paused_at = now
        w.pause_reason = reason
        w.pause_minutes = cmd.minutes
        w.pause_alerted = False
        out.touch(w)
        out.emit(ev.WINDOW_PAUSED, now, w.number, staff=w.staff_id, reason=reason,
                 minutes=cmd.minutes, whereabouts=whereabouts,
                 until=(now + dt.timedelta(minutes=cmd.minutes)).isoformat())

    def _resume(self, state: HallState, cmd: c.Resume, now: dt.datetime, out: Outcome) -> None:
        w = self._window(state, cmd.window)
        if w.status is not WindowStatus.PAUSED:
            raise HallError("window_not_paused")
        paused = now - w.paused_at if w.paused_at else dt.timedelta()
        limit = dt.timedelta(minutes=self.hall.rules.pause_limit_minutes)
        w.status = WindowStatus.OPEN
        w.paused_at = w.pause_reason = w.pause_minutes = w.pause_whereabouts = None
        w.pause_alerted = False
        out.touch(w)
        out.emit(ev.WINDOW_RESUMED, now, w.number, staff=w.staff_id,
                 paused_seconds=int(paused.total_seconds()), over_limit=paused > limit)

    def _login(self, state: HallState, cmd: c.Login, now: dt.datetime, out: Outcome) -> None:
        w = self._window(state, cmd.window)
        staff = self.hall.staff.get(cmd.staff_id)
        if staff is None:
            raise HallError("unknown_staff")
        if w.staff_id == staff.id:
            return  # already there: logging in again changes nothing
        if w.number in staff.a_post:
            post = "A"
        elif w.number in staff.b_post or staff.role is StaffRole.SUPERVISOR:
            post = "B"  # a supervisor may cover any window in a pinch
        else:
            raise HallError("not_at_post")
        if w.status is not WindowStatus.CLOSED:
            raise HallError("window_occupied", f"{w.number} 号窗口已由 {w.staff_id} 登录")
        elsewhere = [o.number for o in state.windows.values() if o.staff_id == staff.id]
        if elsewhere:
            raise HallError("already_logged_in", f"您已在 {elsewhere[0]} 号窗口登录，请先退出")
        w.status = WindowStatus.OPEN
        w.staff_id = staff.id
        w.post = post
        w.logged_in_at = now
        out.touch(w)
        out.emit(ev.WINDOW_OPENED, now, w.number, staff=staff.id, post=post)

    def _logout(self, state: HallState, cmd: c.Logout, now: dt.datetime, out: Outcome) -> None:
        w = self._window(state, cmd.window)
        if w.status is WindowStatus.CLOSED:
            raise HallError("window_closed")
        if w.current is not None:
            raise HallError("window_busy")
        staff, since = w.staff_id, w.logged_in_at
        self._close(w)
        out.touch(w)
        out.emit(ev.WINDOW_CLOSED, now, w.number, staff=staff,
                 seconds=int((now - since).total_seconds()) if since else None)

    def _tick(self, state: HallState, cmd: c.Tick, now: dt.datetime, out: Outcome) -> None:
        self._propose_tidal(state, now, out)
        limit = dt.timedelta(minutes=self.hall.rules.pause_limit_minutes)
        for w in state.windows.values():
            if (w.status is WindowStatus.PAUSED and not w.pause_alerted and w.paused_at
                    and now - w.paused_at > limit):
                w.pause_alerted = True
                out.touch(w)
                out.emit(ev.PAUSE_OVER_LIMIT, now, w.number, staff=w.staff_id,
                         reason=w.pause_reason,
                         paused_seconds=int((now - w.paused_at).total_seconds()))

    def _propose_tidal(self, state: HallState, now: dt.datetime, out: Outcome) -> None:
        """潮汐窗口: propose opening a closed tidal window when a queue it serves runs long,
        and closing an open one when its queues are empty. Each proposal is made once."""
        rules = self.hall.rules
        for cfg in self.hall.windows.values():
            if not cfg.tidal:
                continue
            w = state.windows[cfg.number]
            waiting = {p: state.queues.waiting(p) for p in cfg.services}
            if w.status is WindowStatus.CLOSED:
                for prefix, n in waiting.items():
                    p50 = self.estimate(state, prefix, n).p50 if n else 0.0
                    if n >= rules.tidal_open_waiting or p50 >= rules.tidal_open_wait_minutes:
                        if state.tidal.get(cfg.number) != "open":
                            state.tidal[cfg.number] = "open"
                            out.emit(ev.TIDAL_OPEN_PROPOSED, now, cfg.number, service=prefix,
                                     waiting=n, eta_p50=p50)
                        break
                else:
                    state.tidal.pop(cfg.number, None)
            elif not any(waiting.values()) and w.current is None:
                if state.tidal.get(cfg.number) != "close":
                    state.tidal[cfg.number] = "close"
                    out.emit(ev.TIDAL_CLOSE_PROPOSED, now, cfg.number)
            else:
                state.tidal.pop(cfg.number, None)

    # -- routing -----------------------------------------------------------

    def _next_for(self, state: HallState, window: int, now: dt.datetime) -> Ticket | None:
        """The ticket this window calls next.

        Services in the window's priority order; within a service, appointments
        whose slot has come, then priority tickets (when the service says so),
        then the rest, oldest first.
        """
        due = now + dt.timedelta(minutes=self.hall.rules.appointment_early_minutes)
        for prefix in self.hall.windows[window].services:
            q = state.queues.services[prefix]
            if q.appointments and q.appointments[0][0] <= due:
                return state.tickets[q.appointments[0][2]]
            for lane in (q.priority, q.regular):
                if lane:
                    return state.tickets[lane[0][2]]
        return None

    def people_ahead(self, state: HallState, t: Ticket) -> int:
        return state.queues.ahead_of(t, self._priority_first(t.service))

    def estimate(self, state: HallState, prefix: str, ahead: int) -> WaitEstimate:
        """P10/P50/P90 minutes for a ticket with `ahead` tickets before it in `prefix`."""
        serving = [w for w in self.hall.windows_serving(prefix)
                   if state.windows[w.number].status is WindowStatus.OPEN]
        idle = sum(1 for w in serving if state.windows[w.number].current is None)
        count = len(serving) or len(self.hall.windows_serving(prefix))
        mean = state.service_minutes.get(prefix, self.hall.services[prefix].mean_minutes)
        return estimate_wait(ahead, count, idle if serving else 0, mean)

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

    @staticmethod
    def _close(w: WindowState) -> None:
        w.status = WindowStatus.CLOSED
        w.staff_id = w.post = w.logged_in_at = None
        w.paused_at = w.pause_reason = w.pause_minutes = w.pause_whereabouts = None
        w.pause_alerted = False

    def _learn_service_time(self, state: HallState, t: Ticket) -> None:
        minutes = (t.finished_at - t.called_at).total_seconds() / 60
        prior = state.service_minutes.get(t.service, self.hall.services[t.service].mean_minutes)
        state.service_minutes[t.service] = (1 - EWMA_WEIGHT) * prior + EWMA_WEIGHT * minutes


def _enum(kind, value, code: str, message: str | None = None):
    try:
        return kind(value)
    except ValueError:
        raise HallError(code, message) from None
