"""The staff's rules of thumb at the windows of a simulated hall day (a mixin of `HallDay`).

Press call-next a few seconds after a visit ends; when nothing is waiting, sit
idle until a ticket for one of the window's services appears; recall a citizen
who does not come and mark the ticket missed after a minute; take pauses and the
hall's break in turns when no citizen is at the window; hand the window to its B
post (or the supervisor) for a meeting; at the end of a session finish the
queue of that session before logging out (延时服务, overtime). The supervisor opens
a proposed tidal window and closes it when proposed. A `staffing` schedule (from
the scenario or `hallctl sim plan`) replaces the default of every staffed,
non-tidal window open all day.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from controller.core import commands as c
from controller.core.hall import StaffRole
from controller.core.model import WindowStatus
from drivers.counter_keypad import Key
from sim.population import Citizen, StaffPlan, seconds


@dataclass
class WindowAgent:
    """One window and whoever staffs it, as the day follows them."""

    number: int
    services: tuple[str, ...]
    own: str | None
    plan: StaffPlan
    staff: str | None = None
    state: str = "closed"  # closed, idle, waking, ready, serving, paused
    ticket: str | None = None
    citizen: Citizen | None = None
    last: Citizen | None = None  # whose visit the pad asks about
    last_ticket: str | None = None  # and that visit's ticket
    tidal_open: bool = False
    absent_until: float | None = None
    covering: bool = False
    returning: bool = False
    idle_since: float = 0.0
    since: float = 0.0  # when the current visit or login began
    busy: float = 0.0
    logged_in: float = 0.0
    visits: int = 0


class StaffRules:
    """What the staff of each window do when it is free; the event loop is `HallDay`'s."""

    def _recall(self, a: WindowAgent, ticket: str) -> None:
        if a.ticket == ticket:
            self.press(a, Key.RECALL)

    def _end_visit(self, a: WindowAgent, ticket: str, key: Key) -> None:
        if a.ticket != ticket:
            return
        if key is Key.FINISH:
            a.last, a.last_ticket = a.citizen, ticket  # the pad will ask this citizen
            a.visits += 1
        a.busy += self.now - a.since
        a.ticket = a.citizen = None
        a.state = "ready"
        if key is Key.TRANSFER:
            self.press(a, key, service_letter=self.by_ticket[ticket].transfer_to)
        else:
            self.press(a, key)
        if self.ctrl.state.windows[a.number].current is None:
            pause = a.plan.pause_after_finish.get(a.visits) if key is Key.FINISH else None
            if pause is not None:
                self.after(self.rng.uniform(0.5, 2.0), self._pause_after_finish, a, pause)
            else:
                self.after(self.call_delay(), self.act, a)

    def _pause_after_finish(self, a: WindowAgent, length: float) -> None:
        """Right after 办结, before the citizen has graded, staff step away: a pause, or a logout
        when they were leaving anyway (the session is over, a meeting, the A post is back)."""
        if a.state != "ready":
            return
        prompt = self.ctrl.state.windows[a.number].evaluating is not None
        leaving = (a.returning or (not self.should_be_open(a) and not self.overtime(a))
                   or (a.absent_until is not None and not a.covering and a.staff == a.own))
        if leaving:
            self.act(a)
            how = "logout"
        else:
            a.state = "paused"
            self.press(a, Key.PAUSE, reason=1, minutes=max(1, min(255, round(length / 60))))
            if self.ctrl.state.windows[a.number].status is not WindowStatus.PAUSED:
                a.state = "ready"
                self.act(a)
                return
            self.after(length, self._resume, a)
            how = "pause"
        self.habits[f"{how}_after_finish"] += 1
        self.habits["prompt_open_at_step_away"] += prompt

    def wake(self, a: WindowAgent, delay: float | None = None) -> None:
        if a.state == "idle":
            a.state = "waking"
            self.after(self.call_delay() if delay is None else delay, self.act, a)

    def call_delay(self) -> float:
        # at least a second: the bus driver takes a key pressed twice within 0.3 s as one
        return max(1.0, self.rng.uniform(*self.scenario.staff.call_delay_seconds))

    def wake_for(self, prefix: str) -> None:
        """A ticket is waiting: the window idle longest that serves it calls; if no window that
        serves it is open after its session, one is opened to finish it (延时服务)."""
        idle = [a for a in self.agents.values() if a.state == "idle" and prefix in a.services]
        if idle:
            self.wake(min(idle, key=lambda a: (a.idle_since, a.number)))
            return
        if any(a.state != "closed" and prefix in a.services for a in self.agents.values()):
            return
        if self.in_session() or not self.backlog(prefix):
            return  # nobody serves it now by the staffing: it waits for the next change
        spare = [a for a in self.agents.values() if prefix in a.services and a.own
                 and a.own not in self.logged and a.absent_until is None]
        if spare:
            self.login(spare[0], spare[0].own)

    def act(self, a: WindowAgent) -> None:
        """The window is free: staff decide what to do next."""
        if a.state not in ("waking", "ready"):
            return
        plan = a.plan
        if a.absent_until is not None and not a.covering and a.staff == a.own:
            self._go_away(a)
            return
        if a.returning:
            self._come_back(a)
            return
        if not self.should_be_open(a) and not self.overtime(a):
            self.logout(a)
            return
        if plan.pauses and plan.pauses[0][0] <= self.now:
            _, length, reason = plan.pauses.pop(0)
            minutes = self.scenario.staff.break_minutes if reason == 5 else self.scenario.staff.pause_minutes
            a.state = "paused"
            self.press(a, Key.PAUSE, reason=reason, minutes=max(1, min(255, round(minutes))))
            if self.ctrl.state.windows[a.number].status is WindowStatus.PAUSED:
                self.after(length, self._resume, a)
                return
            a.state = "ready"
        a.state = "ready"
        self.press(a, Key.CALL_NEXT)
        if a.state == "ready":  # no ticket came: sit idle until one does
            a.state, a.idle_since = "idle", self.now

    def _resume(self, a: WindowAgent) -> None:
        self.press(a, Key.RESUME)
        a.state = "ready"
        self.act(a)

    def should_be_open(self, a: WindowAgent) -> bool:
        if not self.in_session():
            return False
        if a.tidal_open:
            return True
        if self.staffing:
            return a.number in self.order[:self.open_count()]
        return not self.hall.windows[a.number].tidal and a.own is not None

    def overtime(self, a: WindowAgent) -> bool:
        """After the session, staff finish the queue of their services before leaving."""
        return not self.in_session() and any(self.backlog(p) for p in a.services)

    def waiting(self, prefix: str) -> int:
        return self.ctrl.state.queues.waiting(prefix)

    def backlog(self, prefix: str) -> bool:
        """Tickets of `prefix` still waiting from the session that has ended (not the next
        session's early tickets)."""
        ended = [b for _, b in self.sessions if b <= self.now]
        if not ended:
            return False
        end = self.midnight + dt.timedelta(seconds=ended[-1])
        q = self.ctrl.state.queues.services[prefix]
        return any(lane and lane[0][0] < end for lane in (q.appointments, q.priority, q.regular))

    def in_session(self) -> bool:
        return any(a <= self.now < b for a, b in self.sessions)

    def open_count(self) -> int:
        n = len(self.order)
        for when, count in self.staffing:
            if seconds(when) <= self.now:
                n = count
        return n

    def login(self, a: WindowAgent, staff: str) -> None:
        if a.state != "closed" or staff in self.logged:
            return
        if self.execute(c.Login(a.number, staff), f"staff:{staff}"):
            a.staff, a.state, a.since = staff, "ready", self.now
            a.logged_in -= self.now
            self.logged[staff] = a.number
            self.act(a)

    def logout(self, a: WindowAgent) -> None:
        if a.staff is not None and self.execute(c.Logout(a.number), f"staff:{a.staff}"):
            self.logged.pop(a.staff, None)
            a.logged_in += self.now
            a.staff = None
        a.state = "closed"

    # -- the day's shape -------------------------------------------------------------------

    def session_start(self, k: int) -> None:
        for a in self.agents.values():
            if a.own and a.state == "closed" and self.should_be_open(a) and a.absent_until is None:
                self.after(a.plan.late.get(k, 0.0), self.login, a, a.own)

    def session_end(self, k: int) -> None:
        for a in self.agents.values():
            a.tidal_open = False
            self.wake(a, 0.0)
        for prefix in self.hall.services:
            if self.waiting(prefix):
                self.wake_for(prefix)

    def reconcile(self) -> None:
        """A staffing change: windows now wanted open log in, the others log out when free."""
        if not self.in_session():
            return
        for a in self.agents.values():
            if a.state == "closed" and a.own and self.should_be_open(a) and a.absent_until is None:
                self.login(a, a.own)
            elif a.state == "idle" and not self.should_be_open(a):
                self.wake(a, 0.0)

    def _open_tidal(self, a: WindowAgent) -> None:
        if not self.in_session():
            # proposed before the windows open: the supervisor opens it with the others
            later = [start for start, _ in self.sessions if start > self.now]
            if later and not a.tidal_open:
                self.at(later[0], self._open_tidal, a)
            return
        if a.own and a.state == "closed":
            a.tidal_open = True
            self.tidal_opened += 1
            self.login(a, a.own)

    def leave(self, a: WindowAgent) -> None:
        """A meeting: the A post leaves when the visit ends; a B post or the supervisor covers."""
        start, length = a.plan.absence
        if a.state == "closed" or a.staff != a.own:
            return
        a.absent_until = start + length
        self.absences += 1
        self.wake(a, 0.0)

    def _go_away(self, a: WindowAgent) -> None:
        self.logout(a)
        cover = self._cover_for(a)
        if cover is not None:
            self.covers += 1
            a.covering = True
            self.logged[cover] = a.number  # on the way
            self.after(self.scenario.staff.cover_delay_minutes * 60, self._cover, a, cover)
        self.at(a.absent_until, self._back, a)

    def _cover_for(self, a: WindowAgent) -> str | None:
        staff = self.hall.staff
        b_posts = [s for s in staff.values() if a.number in s.b_post and s.id not in self.logged]
        supervisors = [s for s in staff.values() if s.role is StaffRole.SUPERVISOR and s.id not in self.logged]
        for s in b_posts + supervisors:
            return s.id
        return None

    def _cover(self, a: WindowAgent, cover: str) -> None:
        self.logged.pop(cover, None)
        if a.covering and a.state == "closed":
            self.login(a, cover)

    def _back(self, a: WindowAgent) -> None:
        a.absent_until = None
        if a.covering and a.state != "closed":
            a.returning = True
            self.wake(a, 0.0)
        else:
            a.covering = False
            if a.state == "closed" and self.should_be_open(a):
                self.login(a, a.own)

    def _come_back(self, a: WindowAgent) -> None:
        a.returning = a.covering = False
        self.logout(a)
        if self.should_be_open(a) or self.overtime(a):
            self.login(a, a.own)
