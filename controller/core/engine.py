"""The queue engine: apply a command to the hall's state at a given moment.

Pure: no I/O, no clock of its own. `apply` validates a command completely
before it changes anything, so a refused command (a `HallError`) leaves the
state exactly as it was. The state is changed in place rather than copied:
a busy day holds tens of thousands of tickets and copying them per command
would make every call-next cost the whole day.

`HANDLERS` says which rule each command goes to: ticket commands are in
`tickets`, window commands (pause, cover, logins, the tick) in `windows`, the
pad's in `evaluation`, patrols in `patrol`, the kiosk's 帮办代办 call in `guidance`; which ticket a window calls next is
in `routing`. Each rule is a function of a `Context` (the hall, its state, the
moment, the outcome) and its command.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from controller.core import commands as c
from controller.core import events as ev
from controller.core import evaluation, guidance, patrol, tickets, windows
from controller.core.context import Context
from controller.core.estimate import WaitEstimate
from controller.core.evaluation import end_prompt
from controller.core.hall import Hall, Staff
from controller.core.lookups import priority_first
from controller.core.model import (
    OPEN_STATUSES, HallState, QueueIndex, Ticket, TicketStatus, WindowState, WindowStatus,
)
from controller.core.outcome import Outcome as Outcome  # re-exported: the controller takes it from here
from controller.core import routing
from controller.core.routing import record_call
from controller.core.tickets import finish_at_day_end, learn_service_time
from controller.core.windows import close_window, note_window_changes

# command -> the rule that applies it
HANDLERS: dict[type[c.Command], Callable[[Context, Any], None]] = {
    c.IssueTicket: tickets.issue_ticket,
    c.CancelTicket: tickets.cancel_ticket,
    c.CallNext: tickets.call_next,
    c.CallNumber: tickets.call_number,
    c.Recall: tickets.recall,
    c.NoShow: tickets.no_show,
    c.Finish: tickets.finish,
    c.Transfer: tickets.transfer,
    c.SetPhone: tickets.set_phone,
    c.ReportDevice: tickets.report_device,
    c.Login: windows.login,
    c.Logout: windows.logout,
    c.Pause: windows.pause,
    c.Resume: windows.resume,
    c.Tick: windows.tick,
    c.StartEvaluation: evaluation.start_evaluation,
    c.Evaluate: evaluation.evaluate,
    c.RecordPatrol: patrol.record_patrol,
    c.CallGuidance: guidance.call_guidance,
    c.AnswerGuidance: guidance.answer_guidance,
    c.ApplyDistrictBundle: windows.apply_district_bundle,
}


class Engine:
    """The hall's rules, applied to a `HallState`: the day's start, and each command through
    `HANDLERS`."""

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
                state.queues.add(t, priority_first(self.hall, t.service))
            if t.citizen_key is not None:
                state.by_citizen.setdefault(t.citizen_key, []).append(t.id)
        finished = [(t.finished_at, t) for t in tickets if t.finished_at and t.called_at]
        for _, t in sorted(finished, key=lambda pair: pair[0]):
            learn_service_time(self.hall, state, t)
        called = [(t.called_at, t) for t in tickets if t.called_at]
        for called_at, t in sorted(called, key=lambda pair: pair[0]):
            record_call(state, t.service, called_at)
        return state

    def needs_new_day(self, state: HallState, now: dt.datetime) -> bool:
        """Only a later day starts a day: a clock set back never takes the hall to an earlier
        one (the runtime's `controller.runtime.clock.HallTime` keeps it from trying)."""
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
                finish_at_day_end(current, w, now, out)
            end_prompt(w, now, out, "day_end")
            if w.status is not WindowStatus.CLOSED:
                out.emit(ev.WindowClosed(at=now, window=w.number, staff=w.staff_id,
                                         reason="day_end"))
                close_window(w)
                out.touch(w)
        for t in state.tickets.values():
            if t.status is TicketStatus.CALLED:  # called at no window: nobody was serving it
                finish_at_day_end(t, None, now, out)
            elif t.status in OPEN_STATUSES:
                t.status = TicketStatus.CANCELLED
                t.finished_at = now
                out.emit(ev.TicketCancelled(at=now, window=t.window, ticket=t.id,
                                            reason="day_end"), t)
        fresh = self.restore(now.date(), [], list(state.windows.values()))
        fresh.devices = state.devices
        fresh.device_since = state.device_since
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
                finish_at_day_end(current, w, now, out)
            if w.evaluating in stale:
                end_prompt(w, now, out, "day_end")
            today = w.logged_in_at is not None and w.logged_in_at.date() == state.day
            if w.status is not WindowStatus.CLOSED and not today:
                out.emit(ev.WindowClosed(at=now, window=w.number, staff=w.staff_id,
                                         reason="day_end"))
                close_window(w)
        return out

    # -- commands ----------------------------------------------------------

    def apply(self, state: HallState, cmd: c.Command, now: dt.datetime) -> Outcome:
        handler = HANDLERS[type(cmd)]
        ctx = Context(self.hall, state, now, Outcome())
        handler(ctx, cmd)
        note_window_changes(state, ctx.out, now)
        return ctx.out

    # -- reads -------------------------------------------------------------

    def estimate(self, state: HallState, prefix: str, ahead: int,
                 now: dt.datetime) -> WaitEstimate:
        return routing.estimate(self.hall, state, prefix, ahead, now)

    def people_ahead(self, state: HallState, t: Ticket) -> int:
        return routing.people_ahead(self.hall, state, t)

    def a_posts(self, window: int) -> list[Staff]:
        return routing.a_posts(self.hall, window)

    def b_posts(self, window: int) -> list[Staff]:
        return routing.b_posts(self.hall, window)
