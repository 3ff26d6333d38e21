"""The running hall: the pure engine, its durable store and the event fan-out, joined.

One lock serialises commands, so two windows calling at the same instant are
two commands in a row and can never get the same ticket. A command's result is
on disk before `execute` returns: a ticket is durable before anyone is told to
print it.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any, Callable
from zoneinfo import ZoneInfo

from controller.clock import ClockChange, HallTime
from controller.core import commands as c
from controller.core.engine import Engine, Outcome
from controller.core.evaluation import default_grade
from controller.core.errors import HallError
from controller.core.events import CLOCK_FAULT, CLOCK_RESTORED, ClockFault, ClockRestored, Event
from controller.core.hall import Hall
from controller.core.identity import Citizen
from controller.core.model import HallState
from controller.personal_data import Purged, purge
from controller.privacy import IdentitySealer
from controller.store.faults import StorageUnavailable
from controller.store.hallstore import HallStore
from vocabulary import SYSTEM

log = logging.getLogger(__name__)

Subscriber = Callable[[int, Event], None]
CLOCK_FAULT_TEXT = "系统时钟慢于大厅已记录的时间，大厅按已记录的营业日继续服务，请检查并校准时钟"


def _clock_event(change: ClockChange, now: dt.datetime, state: HallState) -> Event:
    kind = ClockFault if change.kind == CLOCK_FAULT else ClockRestored
    return kind(at=now, hall_time=change.hall_time.isoformat(),
                wall_clock=change.wall_clock.isoformat(), behind_seconds=change.behind_seconds,
                day=state.day.isoformat() if state.day else None)


class HallController:
    def __init__(self, hall: Hall, store: HallStore, clock: Callable[[], dt.datetime],
                 sealer: IdentitySealer | None = None) -> None:
        self.hall = hall
        self.store = store
        # seals personal data before it reaches the engine, the logs or the disk
        self.sealer = sealer
        self.engine = Engine(hall)
        self.lock = store.lock  # one lock for the state and the connection it is written through
        self.state: HallState = store.load(self.engine)
        # Everyone reads the hall's time, never the bare clock: a clock set back is held at
        # what the database last recorded, so no day earlier than the stored one begins.
        self.clock = HallTime(clock, self._recorded_until())
        self._subscribers: list[Subscriber] = []
        self._purged_on: dt.date | None = None
        with self.lock:
            now = self.clock()
            self._record_clock(now, starting=True)
            self._close_stale_windows(now)

    def _recorded_until(self) -> dt.datetime | None:
        """The latest moment the database knows: its last events, and the start of its day."""
        moments = self.store.last_moments()
        if self.state.day is not None:
            moments.append(dt.datetime.combine(self.state.day, dt.time(), ZoneInfo(self.hall.timezone)))
        return max(moments, default=None)

    def clock_status(self) -> dict[str, Any]:
        """What /health says about time: the hall's day, and a clock fault while one stands."""
        now, fault = self.clock(), self.clock.fault
        status: dict[str, Any] = {"state": "ok" if fault is None else "behind",
                                  "hall_time": now.isoformat(),
                                  "day": self.state.day.isoformat() if self.state.day else None}
        if fault is not None:
            status.update(since=fault.hall_time.isoformat(),
                          wall_clock=self.clock.wall().isoformat(),
                          behind_seconds=int((now - self.clock.wall()).total_seconds()),
                          message=CLOCK_FAULT_TEXT)
        return status

    def execute(self, cmd: c.Command, actor: str) -> Outcome:
        """Apply `cmd` for `actor` and make it durable; raise `HallError` if refused."""
        with self.lock:
            now = self.clock()
            self._record_clock(now)
            if self.engine.needs_new_day(self.state, now):
                self._commit(now, SYSTEM, "start_day", {},
                             lambda: self.engine.start_day(self.state, now))
            return self._commit(now, actor, cmd.kind, cmd.log_args(),
                                lambda: self.engine.apply(self.state, cmd, now),
                                quiet=isinstance(cmd, c.Tick))

    def tick(self) -> Outcome:
        out = self.execute(c.Tick(), SYSTEM)
        self.apply_default_grades()
        self.purge_personal_data()
        return out

    def purge_personal_data(self) -> Purged | None:
        """Once a day, at its first tick: the personal data of visits older than the hall keeps
        it (`[rules] personal_data_days`) is removed, the figures stay (controller.personal_data)."""
        with self.lock:
            now = self.clock()
            if self._purged_on == now.date():
                return None
            done = purge(self.store, now, self.hall.rules.personal_data_days, SYSTEM,
                         audit_nothing=False)
            self._purged_on = now.date()
            return done

    def apply_default_grades(self) -> int:
        """Visits left unevaluated past the hall's period get its default grade, as the system's."""
        rules = self.hall.rules
        with self.lock:
            now = self.clock()
            cutoff = now - dt.timedelta(days=rules.evaluation_default_days)
            # today's tickets live in memory and change there; the period is at least a day,
            # so only earlier days' tickets, read from the database, are ever due
            stale = [t for t in self.store.ungraded_before(cutoff) if t.id not in self.state.tickets]
            if not stale:
                return 0
            out = Outcome()
            for t in stale:
                out.events.append(default_grade(t, rules.evaluation_default_grade, now))
                out.tickets[t.id] = t
            self._commit(now, SYSTEM, "default_grades",
                         {"grade": rules.evaluation_default_grade, "count": len(stale)}, lambda: out)
            return len(stale)

    def refuse(self, actor: str, name: str, args: dict[str, Any], error: HallError) -> None:
        """Log a refusal decided outside the engine (a wrong PIN, a window not one's own)."""
        with self.lock:
            self.store.log_command(self.clock(), actor, name, args, error.code, error.message)

    def note(self, actor: str, name: str, args: dict[str, Any]) -> None:
        """Log an act that changes no hall state (a supervisor logs in or out)."""
        with self.lock:
            self.store.log_command(self.clock(), actor, name, args, "ok")

    def _record_clock(self, now: dt.datetime, starting: bool = False) -> None:
        """Faults of the clock found since the last command, and their ends, into the logs (and so
        to the supervisor's event stream). A fault the last run recorded and a restart found
        gone (the clock set right while the controller was stopped) ends here too."""
        changes = self.clock.take_changes()
        if (starting and not changes and self.clock.fault is None
                and self.store.standing_clock_fault() is not None):
            changes = [ClockChange(CLOCK_RESTORED, now, self.clock.wall(), 0)]
        for change in changes:
            out = Outcome()
            out.emit(_clock_event(change, now, self.state))
            self._commit(now, SYSTEM, change.kind, {"behind_seconds": change.behind_seconds},
                         lambda: out)
            if change.kind == CLOCK_FAULT:
                log.error("the clock is %s s behind the hall's time (%s): serving on %s",
                          change.behind_seconds, change.wall_clock.isoformat(), self.state.day)

    def _close_stale_windows(self, now: dt.datetime) -> None:
        """A window left pointing at an earlier day's ticket is closed as the day change closes
        it, so it serves again (a database from before the day change did so itself)."""
        ids = {i for w in self.state.windows.values() for i in (w.current, w.evaluating)
               if i and i not in self.state.tickets}
        if not ids:
            return
        earlier = {i: t for i in ids if (t := self.store.ticket(i)) is not None}
        self._commit(now, SYSTEM, "close_stale_windows", {"tickets": sorted(ids)},
                     lambda: self.engine.close_stale_windows(self.state, now, earlier))

    def _commit(self, now: dt.datetime, actor: str, name: str, args: dict[str, Any],
                apply: Callable[[], Outcome], quiet: bool = False) -> Outcome:
        try:
            outcome = apply()
        except HallError as e:
            self.store.log_command(now, actor, name, args, e.code, e.message)
            raise
        if quiet and not outcome.events:
            return outcome
        try:
            written = self.store.commit(now, actor, name, args, outcome)
        except BaseException as e:
            # Memory moved ahead of the disk: go back to what the disk holds.
            if isinstance(e, StorageUnavailable):
                log.error("%s not written (%s); reloading the state from the database", name, e)
            else:
                log.exception("commit of %s failed; reloading the state from the database", name)
            self.state = self.store.load(self.engine)
            raise
        for event_id, event in written:
            for fn in list(self._subscribers):
                try:
                    fn(event_id, event)
                except Exception:
                    log.exception("event subscriber failed")
        return outcome

    # -- fan-out -----------------------------------------------------------

    def citizen(self, id_number: str, name: str | None = None, phone: str | None = None) -> Citizen:
        """The sealed citizen of a real-name ticket; HallError for a wrong number."""
        if self.sealer is None:
            raise RuntimeError("this hall has no identity sealer: real-name tickets are off")
        return self.sealer.citizen(id_number, name, phone, today=self.clock().date())

    def subscribe(self, fn: Subscriber) -> Callable[[], None]:
        """Call `fn(event_id, event)` after every committed event; returns the unsubscribe."""
        with self.lock:
            self._subscribers.append(fn)
        return lambda: self._subscribers.remove(fn) if fn in self._subscribers else None
