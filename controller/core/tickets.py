"""Ticket commands: issue, call (next or by number), recall, 过号, finish, transfer, cancel; and
the device reports the hall keeps. Pure, like the engine: each rule is a function of the
command's `Context`."""

from __future__ import annotations

import datetime as dt
from enum import Enum
from typing import TypeVar

from controller.core import commands as c
from controller.core import events as ev
from controller.core import identity
from controller.core.context import Context
from controller.core.errors import HallError
from controller.core.evaluation import prompt
from controller.core.hall import Hall, NoShowPolicy, TransferPosition
from controller.core.hours import check_issuing, near_closing_warning
from controller.core.lookups import (
    current_ticket, enqueue, known_service, known_window, next_seq, open_window, priority_first,
)
from controller.core.model import Channel, HallState, PriorityClass, Ticket, TicketStatus, WindowState
from controller.core.outcome import Outcome
from controller.core.priority import call_reason, granted
from controller.core.routing import estimate, next_for, record_call

# Weight of the newest service time in the running mean per service.
EWMA_WEIGHT = 0.2


def finish_at_day_end(t: Ticket, w: WindowState | None, now: dt.datetime,
                      out: Outcome) -> None:
    midnight = dt.datetime.combine(t.day + dt.timedelta(days=1), dt.time(), now.tzinfo)
    t.status = TicketStatus.FINISHED
    t.finished_at = min(now, midnight)
    served = int((t.finished_at - t.called_at).total_seconds()) if t.called_at else None
    out.emit(ev.TicketFinished(
        at=now, window=w.number if w else t.window, ticket=t.id, label=t.label,
        service=t.service, staff=t.staff_id, auto=True, service_seconds=served,
        reason="day_end", finished_at=t.finished_at.isoformat()), t)


def issue_ticket(ctx: Context, cmd: c.IssueTicket) -> None:
    hall, state, now, out = ctx.hall, ctx.state, ctx.now, ctx.out
    service = known_service(hall, cmd.service)
    channel = _enum(Channel, cmd.channel, "invalid_channel")
    priority = (_enum(PriorityClass, cmd.priority, "invalid_priority")
                if cmd.priority else None)
    citizen = cmd.citizen
    born = citizen.birth_date if citizen else None
    if (cmd.appointment_at is None) != (channel is not Channel.APPOINTMENT):
        raise HallError("invalid_appointment", "预约号需要预约时段，其他号不能带预约时段")
    if cmd.appointment_at is not None and cmd.appointment_at.date() != now.date():
        raise HallError("invalid_appointment", "预约时段不是今天")
    check_issuing(hall, now)
    if citizen:
        _check_hoarding(hall, state, service.prefix, citizen)

    priority, priority_by = granted(hall, state, priority, cmd.staff_id, born, now.date())
    number = state.last_number.get(service.prefix, 0) + 1
    state.last_number[service.prefix] = number
    label = f"{service.prefix}{number:03d}"
    t = Ticket(
        id=f"{now:%Y%m%d}-{label}", day=now.date(), prefix=service.prefix, number=number,
        label=label, service=service.prefix, channel=channel, issued_at=now,
        queued_at=now, queue_seq=next_seq(state), priority=priority,
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
    eta = estimate(hall, state, service.prefix, ahead, now)
    t.ahead_at_issue, t.eta_p10, t.eta_p50, t.eta_p90 = ahead, eta.p10, eta.p50, eta.p90
    out.ticket, out.estimate, out.people_ahead = t, eta, ahead
    out.warning = near_closing_warning(hall, now, eta.p90)
    out.emit(ev.TicketIssued(
        at=now, ticket=t.id, label=label, service=t.service, channel=channel.value,
        priority=priority.value if priority else None, priority_by=priority_by,
        real_name=citizen is not None, people_ahead=ahead, eta=eta.to_json(),
        warning=out.warning), t)


def _check_hoarding(hall: Hall, state: HallState, prefix: str, citizen: identity.Citizen) -> None:
    limit = hall.rules.waiting_tickets_per_person
    held = state.queues.held_by(prefix, citizen.key) if limit else []
    if limit and len(held) >= limit:
        first = state.tickets[held[0]]
        raise HallError("already_waiting", f"您已取过这项业务的号 {first.label}，请等候叫号")
    per_day = hall.rules.tickets_per_person_per_day
    if not per_day:
        return
    # today's tickets are all in memory; a ticket cancelled unprinted was never had
    taken = sum(1 for i in state.by_citizen.get(citizen.key, ())
                if state.tickets[i].status is not TicketStatus.CANCELLED)
    if taken >= per_day:
        raise HallError("daily_ticket_limit",
                        f"您今天已取号 {taken} 次，已达上限，请到导办台咨询")


def cancel_ticket(ctx: Context, cmd: c.CancelTicket) -> None:
    hall, state, now, out = ctx.hall, ctx.state, ctx.now, ctx.out
    t = state.tickets.get(cmd.ticket)
    if t is None:
        raise HallError("unknown_ticket")
    if t.status is not TicketStatus.WAITING:
        raise HallError("ticket_not_waiting")
    state.queues.remove(t, priority_first(hall, t.service))
    t.status = TicketStatus.CANCELLED
    t.finished_at = now
    out.ticket = t
    out.emit(ev.TicketCancelled(at=now, ticket=t.id, label=t.label, reason=cmd.reason), t)


def report_device(ctx: Context, cmd: c.ReportDevice) -> None:
    state, now, out = ctx.state, ctx.now, ctx.out
    report = (cmd.state, cmd.detail)
    if state.devices.get(cmd.device) == report:
        return
    if state.devices.get(cmd.device, ("",))[0] != cmd.state:
        state.device_since[cmd.device] = now
    state.devices[cmd.device] = report
    out.emit(ev.DeviceHealth(at=now, device=cmd.device, state=cmd.state, detail=cmd.detail))


def call_next(ctx: Context, cmd: c.CallNext) -> None:
    hall, state, now, out = ctx.hall, ctx.state, ctx.now, ctx.out
    w = open_window(state, cmd.window)
    current = state.current_at(w.number)
    nxt = next_for(hall, state, w.number, now)
    if current is not None:
        complete(hall, state, w, current, now, out, auto=True)
    if nxt is None:
        return
    state.queues.remove(nxt, priority_first(hall, nxt.service))
    nxt.status = TicketStatus.CALLED
    nxt.window = w.number
    nxt.staff_id = w.staff_id
    nxt.called_at = now
    record_call(state, nxt.service, now)
    w.current = nxt.id
    out.touch(w)
    out.ticket = nxt
    out.emit(ev.TicketCalled(
        at=now, window=w.number, ticket=nxt.id, label=nxt.label, service=nxt.service,
        waited_seconds=int((now - nxt.issued_at).total_seconds())), nxt)


def call_number(ctx: Context, cmd: c.CallNumber) -> None:
    hall, state, now, out = ctx.hall, ctx.state, ctx.now, ctx.out
    w = open_window(state, cmd.window)
    reason, note = call_reason(cmd.reason, cmd.note)
    t = state.find_label(cmd.number.strip().upper()) if isinstance(cmd.number, str) else None
    if t is None:
        raise HallError("unknown_ticket", f"今天没有 {cmd.number} 号")
    if t.status not in (TicketStatus.WAITING, TicketStatus.NO_SHOW):
        raise HallError("not_callable")
    if t.service not in hall.windows[w.number].services:
        raise HallError("not_served_here")
    current = state.current_at(w.number)
    if current is not None:
        complete(hall, state, w, current, now, out, auto=True)
    if t.status is TicketStatus.WAITING:
        state.queues.remove(t, priority_first(hall, t.service))
        record_call(state, t.service, now)
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


def recall(ctx: Context, cmd: c.Recall) -> None:
    state, now, out = ctx.state, ctx.now, ctx.out
    w = open_window(state, cmd.window)
    t = current_ticket(state, w)
    t.recalls += 1
    out.ticket = t
    out.emit(ev.TicketRecalled(at=now, window=w.number, ticket=t.id, label=t.label,
                               recalls=t.recalls), t)


def set_phone(ctx: Context, cmd: c.SetPhone) -> None:
    state, now, out = ctx.state, ctx.now, ctx.out
    w = known_window(state, cmd.window)
    t = current_ticket(state, w)
    if not t.real_name:  # a callback needs the identity a bad review opens its case with
        raise HallError("not_real_name")
    corrected = t.phone_sealed is not None
    t.phone_sealed = cmd.phone_sealed
    out.ticket = t
    out.emit(ev.TicketPhoneSet(at=now, window=w.number, ticket=t.id, label=t.label,
                               corrected=corrected), t)


def no_show(ctx: Context, cmd: c.NoShow) -> None:
    hall, state, now, out = ctx.hall, ctx.state, ctx.now, ctx.out
    w = open_window(state, cmd.window)
    t = current_ticket(state, w)
    requeue = hall.rules.no_show == NoShowPolicy.REQUEUE_ONCE and not t.requeued
    w.current = None
    out.touch(w)
    t.window = None
    if requeue:
        t.status = TicketStatus.WAITING
        t.requeued = True
        enqueue(hall, state, t, now)
    else:
        t.status = TicketStatus.NO_SHOW
        t.finished_at = now
    out.ticket = t
    out.emit(ev.TicketMissed(at=now, window=w.number, ticket=t.id, label=t.label,
                             requeued=requeue), t)


def complete(hall: Hall, state: HallState, w: WindowState, t: Ticket, now: dt.datetime,
             out: Outcome, auto: bool = False) -> None:
    t.status = TicketStatus.FINISHED
    t.finished_at = now
    w.current = None
    out.touch(w)
    learn_service_time(hall, state, t)
    served = int((now - t.called_at).total_seconds()) if t.called_at else None
    out.emit(ev.TicketFinished(at=now, window=w.number, ticket=t.id, label=t.label,
                               service=t.service, staff=t.staff_id, auto=auto,
                               service_seconds=served), t)
    prompt(w, t, now, out)


def finish(ctx: Context, cmd: c.Finish) -> None:
    hall, state, now, out = ctx.hall, ctx.state, ctx.now, ctx.out
    w = open_window(state, cmd.window)
    t = current_ticket(state, w)
    complete(hall, state, w, t, now, out)
    out.ticket = t


def transfer(ctx: Context, cmd: c.Transfer) -> None:
    hall, state, now, out = ctx.hall, ctx.state, ctx.now, ctx.out
    w = open_window(state, cmd.window)
    t = current_ticket(state, w)
    target = known_service(hall, cmd.service)
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
    back = hall.rules.transfer_position == TransferPosition.BACK
    enqueue(hall, state, t, now if back else t.issued_at)
    out.ticket = t
    out.emit(ev.TicketTransferred(at=now, window=w.number, ticket=t.id, label=t.label,
                                  source=source, target=target.prefix), t)


def learn_service_time(hall: Hall, state: HallState, t: Ticket) -> None:
    if t.finished_at is None or t.called_at is None:
        raise ValueError(f"ticket {t.id}: a service time needs its call and its finish")
    minutes = (t.finished_at - t.called_at).total_seconds() / 60
    prior = state.service_minutes.get(t.service, hall.services[t.service].mean_minutes)
    state.service_minutes[t.service] = (1 - EWMA_WEIGHT) * prior + EWMA_WEIGHT * minutes


E = TypeVar("E", bound=Enum)


def _enum(kind: type[E], value: object, code: str, message: str | None = None) -> E:
    try:
        return kind(value)
    except ValueError:
        raise HallError(code, message) from None
