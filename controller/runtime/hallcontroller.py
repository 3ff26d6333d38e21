"""The running hall: the pure engine, its durable store and the event fan-out, joined.

One thread, the hall thread, owns the hall's state, the engine and the store's
write connection; every command reaches it through one queue, so two windows
calling at the same instant are two commands in a row and can never get the same
ticket. The hall thread takes a job and whatever else is waiting (a group),
applies them in memory in order, writes them all in one transaction with one
fsync, and only then fans their events out and answers their callers: a ticket
is durable before anyone is told to print it, and eight kiosks issuing together
pay for one fsync, not eight.

Callers: `execute` (any thread; blocks until durable), `submit` (the event loop;
awaits), `run`/`arun` (a compound act done atomically on the hall thread), and
the read side (`ask`/`aask` and the named reads below), which return plain
copies and run once their group is written (what they read of memory is on disk).
Nothing outside the hall thread touches `state`. Event subscribers run on the hall
thread after the commit; one that has slow work to do hands it to a thread of its own.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import copy
import dataclasses
import datetime as dt
import functools
import logging
import queue
import sqlite3
import threading
import time
from typing import Any, Callable, Protocol, TypeVar
from zoneinfo import ZoneInfo

from controller.runtime.clock import ClockChange, HallTime
from controller.runtime.logs import COMMAND_ID
from controller.core import commands as c
from controller.core.engine import Engine
from controller.core.errors import HallError
from controller.core.evaluation import default_grade
from controller.core.events import CLOCK_FAULT, CLOCK_RESTORED, ClockFault, ClockRestored, Event
from controller.core.hall import Hall
from controller.core.identity import Citizen
from controller.core.model import HallState, Ticket, WindowState
from controller.core.outcome import Outcome
from controller.security.personal_data import Purged, purge
from controller.security.privacy import IdentitySealer
from controller.store.faults import StorageUnavailable
from controller.store.hallstore import AlsoWrite, CommandRow, HallStore
from vocabulary import SYSTEM

log = logging.getLogger(__name__)

Subscriber = Callable[[int, Event], None]
T = TypeVar("T")
# How many waiting jobs one group takes: enough that a burst of kiosks shares an fsync, few
# enough that the first caller of a group is not kept waiting long for the last.
GROUP_LIMIT = 64
# The hall thread looks this often, while idle, whether its store was closed without it.
IDLE_SECONDS = 1.0
CLOCK_FAULT_TEXT = "系统时钟慢于大厅已记录的时间，大厅按已记录的营业日继续服务，请检查并校准时钟"


def issued_ticket(out: Outcome) -> Ticket:
    """The ticket an issue (at a kiosk, a desk, an appointment's check-in) answered with."""
    if out.ticket is None:
        raise RuntimeError("an issued ticket's outcome names no ticket")
    return out.ticket


def _answer(job: _Job) -> tuple[_Job, bool, Any]:
    """A job run: (job, True, its result) or (job, False, what it raised)."""
    try:
        return job, True, job.fn()
    except BaseException as e:
        return job, False, e


def _clock_event(change: ClockChange, now: dt.datetime, state: HallState) -> Event:
    kind = ClockFault if change.kind == CLOCK_FAULT else ClockRestored
    return kind(at=now, hall_time=change.hall_time.isoformat(),
                wall_clock=change.wall_clock.isoformat(), behind_seconds=change.behind_seconds,
                day=state.day.isoformat() if state.day else None)


@dataclasses.dataclass(frozen=True)
class Published:
    """What the hall thread publishes after each group, for readers that must not wait
    behind a long hall job (/health, the event stream's heartbeat)."""
    day: dt.date | None
    groups: int = 0  # groups committed since the start


@dataclasses.dataclass(frozen=True)
class HallSnapshot:
    """The hall at one moment, copied: what a board or a supervisor's overview needs."""
    day: dt.date | None
    windows: dict[int, WindowState]
    waiting: dict[str, int]  # by service prefix
    devices: dict[str, tuple[str, str]]  # device id -> (state, detail)


@dataclasses.dataclass
class _Job:
    fn: Callable[[], Any]
    future: concurrent.futures.Future
    # a read (`ask`): run once its group is written, so what it reads of the state and of the
    # store agree (a ticket finished in memory has its ticket_finished event on disk)
    read: bool = False
    name: str | None = None  # its (first) command's kind: its latency is reported
    queued: float = 0.0  # time.perf_counter() when it was queued


class Timing(Protocol):
    """Where the hall thread reports how long its work took (controller.web.metrics): a
    command from being queued to its answer, and a group's commit."""

    def command(self, name: str, seconds: float) -> None: ...

    def commit(self, seconds: float) -> None: ...


def _closing(fn: Callable[[sqlite3.Connection, dt.date], object], day: dt.date,
             conn: sqlite3.Connection) -> None:
    fn(conn, day)


class HallController:
    def __init__(self, hall: Hall, store: HallStore, clock: Callable[[], dt.datetime],
                 sealer: IdentitySealer | None = None) -> None:
        self.hall = hall
        self.store = store
        # seals personal data before it reaches the engine, the logs or the disk
        self.sealer = sealer
        self.engine = Engine(hall)
        # The hall thread's own: it mutates `state` and nothing outside the hall thread reads it.
        # Other threads read through the read side below (`ask`/`aask` and the named reads).
        self.state: HallState = store.load(self.engine)
        # Everyone reads the hall's time, never the bare clock: a clock set back is held at
        # what the database last recorded, so no day earlier than the stored one begins.
        self.clock = HallTime(clock, self._recorded_until())
        self._subscribers: list[Subscriber] = []  # replaced, never changed in place
        # events written while others are fanned out (a subscriber's own, the case desk's): they
        # go out after those, so every subscriber sees the log's order
        self._fanning: collections.deque[tuple[int, Event]] | None = None
        self._at_day_change: list[Callable[[sqlite3.Connection, dt.date], object]] = []
        self._subscribing = threading.Lock()
        self._purged_on: dt.date | None = None
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._batch: list[CommandRow | AlsoWrite] | None = None  # open while a group's jobs run
        self._stopping = False
        self.published = Published(self.state.day)
        self.timing: Timing | None = None  # set before the first command, if at all
        self._job: _Job | None = None  # the job the hall thread runs now
        # the constructing thread is the hall thread until the hall thread starts
        self._hall_ident: int | None = threading.get_ident()
        with self.store.lock:
            now = self.clock()
            self._record_clock(now, starting=True)
            self._close_stale_windows(now)
        self._thread = threading.Thread(target=self._serve, name="hall", daemon=True)
        self._thread.start()
        self._hall_ident = self._thread.ident

    # -- the hall thread -----------------------------------------------------

    def on_hall_thread(self) -> bool:
        return threading.get_ident() == self._hall_ident

    def _serve(self) -> None:
        while True:
            try:
                job = self._jobs.get(timeout=IDLE_SECONDS)
            except queue.Empty:
                if self.store.closed:  # closed under us (tests, tools): nothing more can be done
                    return
                continue
            if job is None:
                return
            group = [job]
            while len(group) < GROUP_LIMIT:
                try:
                    more = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._jobs.put(None)  # stop after this group
                    break
                group.append(more)
            try:
                self._run_group(group)
            except BaseException:
                log.exception("the hall thread failed on a group")
                for j in group:
                    if not j.future.done():
                        j.future.set_exception(RuntimeError("the hall thread failed"))

    def _run_group(self, group: list[_Job]) -> None:
        """Apply each job in memory, write all of them in one transaction, fan out, answer."""
        # the store's lock, held while the state changes and is written: the store's own
        # readers that share its connection (`store.query`, reports where they cannot have a
        # connection of their own) never see a group half-written
        with self.store.lock:
            self._batch = []
            answers: list[tuple[_Job, bool, Any]] = []
            started = [job for job in group if job.future.set_running_or_notify_cancel()]
            try:
                answers += [self._answer_job(job) for job in started if not job.read]
            finally:
                rows, self._batch = self._batch, None
                self._job = None
            try:
                written = self._timed_write(rows) if rows else []
            except BaseException as e:
                for job in started:
                    job.future.set_exception(e)
                return
            # the events go out before the callers hear back: as when a command ran on the
            # caller's thread, whoever gets an answer finds every subscriber has seen its
            # events (a bad review has its case); subscribers are quick, so this costs little
            self._fan_out(written)
            answers += [_answer(job) for job in started if job.read]
        for job, ok, value in answers:
            if ok:
                job.future.set_result(value)
            else:
                job.future.set_exception(value)
        if self.timing is not None:
            answered = time.perf_counter()
            for job in started:
                if job.name is not None:
                    self.timing.command(job.name, answered - job.queued)

    def _answer_job(self, job: _Job) -> tuple[_Job, bool, Any]:
        self._job = job  # named by the first command it executes, if not named already
        return _answer(job)

    def _timed_write(self, rows: list[CommandRow | AlsoWrite]) -> list[tuple[int, Event]]:
        if self.timing is None:
            return self._write(rows)
        began = time.perf_counter()
        written = self._write(rows)
        self.timing.commit(time.perf_counter() - began)
        return written

    def _write(self, rows: list[CommandRow | AlsoWrite]) -> list[tuple[int, Event]]:
        """Make `rows` durable in one transaction; if that fails, memory goes back to the disk."""
        try:
            written = self.store.write(rows)
        except BaseException as e:
            # Memory moved ahead of the disk: go back to what the disk holds.
            names = ", ".join(r.name for r in rows)
            if isinstance(e, StorageUnavailable):
                log.error("%s not written (%s); reloading the state from the database", names, e)
            else:
                log.exception("commit of %s failed; reloading the state from the database", names)
            self.state = self.store.load(self.engine)
            self._publish()
            raise
        self._publish()
        if log.isEnabledFor(logging.DEBUG):  # `hallctl run --log-level debug`: each command
            for command_id, name, result in self.store.commands_written:
                log.debug("command %s: %s", name, result, extra={"command_id": command_id})
        return written

    def _publish(self) -> None:
        self.published = Published(self.state.day, self.published.groups + 1)

    def _fan_out(self, written: list[tuple[int, Event]]) -> None:
        if self._fanning is not None:  # a subscriber wrote these: after the ones under way
            self._fanning.extend(written)
            return
        self._fanning = collections.deque(written)
        try:
            while self._fanning:
                self._fan_out_one(*self._fanning.popleft())
        finally:
            self._fanning = None

    def _fan_out_one(self, event_id: int, event: Event) -> None:
        # what the subscribers log carries the command the event came of (controller.runtime.logs)
        token = COMMAND_ID.set(self.store.event_commands.get(event_id))
        try:
            for fn in self._subscribers:
                try:
                    fn(event_id, event)
                except Exception:
                    log.exception("event subscriber failed")
        finally:
            COMMAND_ID.reset(token)

    def _enqueue(self, fn: Callable[[], T], read: bool = False,
                 name: str | None = None) -> concurrent.futures.Future:
        if self._stopping or not self._thread.is_alive():
            raise RuntimeError("the hall thread has stopped")
        # the hall thread takes the store's lock for every group: waiting for it while holding
        # that lock would never end
        if self.store.lock._is_owned():  # type: ignore[attr-defined]  # RLock's, untyped in typeshed
            raise RuntimeError("waiting for the hall thread while holding the store's lock: a deadlock")
        future: concurrent.futures.Future = concurrent.futures.Future()
        self._jobs.put(_Job(fn, future, read, name, time.perf_counter()))
        return future

    def run(self, fn: Callable[[], T]) -> T:
        """`fn()` on the hall thread, atomically with respect to every other command, and its
        result once what it did is durable. `fn` may read `state` and call `execute`; a
        HallError it raises reaches the caller (after the commands it did are written).
        Called on the hall thread, runs inline."""
        if self.on_hall_thread():
            return fn()
        return self._enqueue(fn).result()

    async def arun(self, fn: Callable[[], T]) -> T:
        """`run` for the event loop: awaits, never blocks the loop."""
        if self.on_hall_thread():
            return fn()
        return await asyncio.wrap_future(self._enqueue(fn))

    def execute(self, cmd: c.Command, actor: str) -> Outcome:
        """Apply `cmd` for `actor` and make it durable; raise `HallError` if refused."""
        if self.on_hall_thread():
            return self._execute(cmd, actor)
        return self._enqueue(lambda: self._execute(cmd, actor), name=cmd.kind).result()

    async def submit(self, cmd: c.Command, actor: str) -> Outcome:
        """`execute` for the event loop: awaits the commit."""
        if self.on_hall_thread():
            return self._execute(cmd, actor)
        return await asyncio.wrap_future(self._enqueue(lambda: self._execute(cmd, actor),
                                                       name=cmd.kind))

    def ask(self, fn: Callable[[HallState], T]) -> T:
        """`fn(state)` on the hall thread, once the commands queued with it are written, so
        the state and the store it reads agree. `fn` only reads, and returns plain data it
        copied, never parts of the state (they change under the reader once it returns)."""
        if self.on_hall_thread():
            return fn(self.state)
        return self._enqueue(lambda: fn(self.state), read=True).result()

    async def aask(self, fn: Callable[[HallState], T]) -> T:
        """`ask` for the event loop: awaits, never blocks the loop."""
        if self.on_hall_thread():
            return fn(self.state)
        return await asyncio.wrap_future(self._enqueue(lambda: fn(self.state), read=True))

    def close(self, timeout: float | None = 10.0) -> None:
        """Stop the hall thread after what is queued is done. The store stays open."""
        if self._stopping:
            return
        self._stopping = True
        if self._thread.is_alive() and not self.on_hall_thread():
            self._jobs.put(None)
            self._thread.join(timeout)

    # -- the read side: plain copies -----------------------------------------

    def window(self, number: int) -> WindowState | None:
        """A copy of window `number`'s state (None: no such window)."""
        return self.ask(lambda s: copy.copy(s.windows.get(number)))

    def windows(self) -> dict[int, WindowState]:
        """Copies of every window's state, by number."""
        return self.ask(lambda s: {n: copy.copy(w) for n, w in s.windows.items()})

    def ticket(self, ticket_id: str) -> Ticket | None:
        """A copy of today's ticket `ticket_id`, else the stored one, else None."""
        def read(s: HallState) -> Ticket | None:
            t = s.tickets.get(ticket_id)
            return copy.copy(t) if t is not None else self.store.ticket(ticket_id)
        return self.ask(read)

    def devices(self) -> dict[str, tuple[str, str]]:
        """Every device's last reported (state, detail), by device id."""
        return self.ask(lambda s: dict(s.devices))

    def queue(self, prefix: str) -> list[Ticket]:
        """Copies of the tickets waiting for service `prefix`, in calling order."""
        def read(s: HallState) -> list[Ticket]:
            q = s.queues.services[prefix]
            return [copy.copy(s.tickets[key[2]]) for lane in (q.appointments, q.priority, q.regular)
                    for key in lane]
        return self.ask(read)

    def snapshot(self) -> HallSnapshot:
        """The day, every window, the waiting counts and the devices, at one moment."""
        return self.ask(lambda s: HallSnapshot(
            s.day, {n: copy.copy(w) for n, w in s.windows.items()},
            {p: len(q) for p, q in s.queues.services.items()}, dict(s.devices)))

    def day(self) -> dt.date | None:
        """The hall's day as last committed (published: never waits for the hall thread)."""
        return self.published.day

    def _recorded_until(self) -> dt.datetime | None:
        """The latest moment the database knows: its last events, and the start of its day."""
        moments = self.store.last_moments()
        if self.state.day is not None:
            moments.append(dt.datetime.combine(self.state.day, dt.time(), ZoneInfo(self.hall.timezone)))
        return max(moments, default=None)

    def clock_status(self) -> dict[str, Any]:
        """What /health says about time: the hall's day, and a clock fault while one stands.
        Published data only: it answers while the hall thread is busy."""
        now, fault = self.clock(), self.clock.fault
        day = self.published.day
        status: dict[str, Any] = {"state": "ok" if fault is None else "behind",
                                  "hall_time": now.isoformat(),
                                  "day": day.isoformat() if day else None}
        if fault is not None:
            status.update(since=fault.hall_time.isoformat(),
                          wall_clock=self.clock.wall().isoformat(),
                          behind_seconds=int((now - self.clock.wall()).total_seconds()),
                          message=CLOCK_FAULT_TEXT)
        return status

    def _execute(self, cmd: c.Command, actor: str) -> Outcome:
        if self._job is not None and self._job.name is None:
            self._job.name = cmd.kind  # a compound act (`run`) is timed as its first command
        now = self.clock()
        self._record_clock(now)
        if self.engine.needs_new_day(self.state, now):
            self._commit(now, SYSTEM, "start_day", {},
                         lambda: self.engine.start_day(self.state, now))
            day = self.state.day
            if day is not None:
                for fn in self._at_day_change:
                    self.also_write(functools.partial(_closing, fn, day))
        return self._commit(now, actor, cmd.kind, cmd.log_args(),
                            lambda: self.engine.apply(self.state, cmd, now),
                            quiet=isinstance(cmd, c.Tick))

    def tick(self) -> Outcome:
        def tick() -> Outcome:
            out = self._execute(c.Tick(), SYSTEM)
            self.apply_default_grades()
            self.purge_personal_data()
            return out
        return self.run(tick)

    def purge_personal_data(self) -> Purged | None:
        """Once a day, at its first tick: the personal data of visits older than the hall keeps
        it (`[rules] personal_data_days`) is removed, the figures stay (controller.security.personal_data)."""
        def purge_once() -> Purged | None:
            now = self.clock()
            if self._purged_on == now.date():
                return None
            done = purge(self.store, now, self.hall.rules.personal_data_days, SYSTEM,
                         audit_nothing=False)
            self._purged_on = now.date()
            return done
        return self.run(purge_once)

    def apply_default_grades(self) -> int:
        """Visits left unevaluated past the hall's period get its default grade, as the system's."""
        rules = self.hall.rules

        def grade() -> int:
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
        return self.run(grade)

    def refuse(self, actor: str, name: str, args: dict[str, Any], error: HallError) -> None:
        """Log a refusal decided outside the engine (a wrong PIN, a window not one's own)."""
        self.run(lambda: self._log(CommandRow(self.clock(), actor, name, args, error.code,
                                              error.message)))

    async def arefuse(self, actor: str, name: str, args: dict[str, Any], error: HallError) -> None:
        await self.arun(lambda: self._log(CommandRow(self.clock(), actor, name, args, error.code,
                                                     error.message)))

    def note(self, actor: str, name: str, args: dict[str, Any]) -> None:
        """Log an act that changes no hall state (a supervisor logs in or out)."""
        self.run(lambda: self._log(CommandRow(self.clock(), actor, name, args)))

    def record(self, actor: str, name: str, args: dict[str, Any], events: list[Event]) -> None:
        """Log an act whose state lives outside the hall's (a case's step) with its events, so
        that they are in the event log (and shipped to the district) with it."""
        self.run(lambda: self._log(CommandRow(self.clock(), actor, name, args, outcome=Outcome(events=events))))

    async def anote(self, actor: str, name: str, args: dict[str, Any]) -> None:
        await self.arun(lambda: self._log(CommandRow(self.clock(), actor, name, args)))

    def _record_clock(self, now: dt.datetime, starting: bool = False) -> None:
        """Faults of the clock found since the last command, and their ends, into the logs (and so
        to the supervisor's event stream). A fault the last run recorded and a restart found
        gone (the clock set right while the controller was stopped) ends here too."""
        changes = self.clock.take_changes()
        if (starting and not changes and self.clock.fault is None
                and self.store.standing_clock_fault() is not None):
            changes = [ClockChange(CLOCK_RESTORED, now, self.clock.wall(), 0)]
        for change in changes:
            self._record_clock_change(now, change)

    def _record_clock_change(self, now: dt.datetime, change: ClockChange) -> None:
        out = Outcome()
        out.emit(_clock_event(change, now, self.state))
        self._commit(now, SYSTEM, change.kind, {"behind_seconds": change.behind_seconds}, lambda: out)
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
        """Apply a change in memory and log it: into the open group's transaction, or, outside
        a group (a subscriber's command, the start-up), in a transaction of its own now."""
        try:
            outcome = apply()
        except HallError as e:
            self._log(CommandRow(now, actor, name, args, e.code, e.message))
            raise
        if quiet and not outcome.events:
            return outcome
        self._log(CommandRow(now, actor, name, args, outcome=outcome))
        return outcome

    def at_day_change(self, fn: Callable[[sqlite3.Connection, dt.date], object]) -> None:
        """`fn(conn, day)` runs on the hall thread whenever the day changes to `day`, in the
        transaction that writes the change (see `also_write`): rows that close the day before."""
        self._at_day_change = [*self._at_day_change, fn]

    def also_write(self, fn: Callable[[sqlite3.Connection], None]) -> None:
        """On the hall thread, inside `run`: `fn(conn)` is run in the transaction that makes the
        commands done so far durable, after them; it commits or fails with them. For rows that
        belong with a command (the appointment a ticket was issued for)."""
        self._log(AlsoWrite(self.clock(), fn))

    def _log(self, row: CommandRow | AlsoWrite) -> None:
        assert self.on_hall_thread(), "the hall's log is written by the hall thread only"
        if self._batch is not None:
            self._batch.append(row)
            return
        with self.store.lock:
            written = self._write([row])
        self._fan_out(written)

    # -- fan-out -----------------------------------------------------------

    def identity_sealer(self) -> IdentitySealer:
        """What seals the ID numbers and phones of real-name tickets; RuntimeError where the
        hall has none (real-name tickets are off)."""
        if self.sealer is None:
            raise RuntimeError("this hall has no identity sealer: real-name tickets are off")
        return self.sealer

    def citizen(self, id_number: str, name: str | None = None, phone: str | None = None) -> Citizen:
        """The sealed citizen of a real-name ticket; HallError for a wrong number."""
        return self.identity_sealer().citizen(id_number, name, phone, today=self.clock().date())

    def subscribe(self, fn: Subscriber) -> Callable[[], None]:
        """Call `fn(event_id, event)` on the hall thread after every committed event; returns
        the unsubscribe. `fn` must be quick: slow work goes to a thread of its own."""
        with self._subscribing:
            self._subscribers = [*self._subscribers, fn]

        def unsubscribe() -> None:
            with self._subscribing:
                self._subscribers = [f for f in self._subscribers if f is not fn]
        return unsubscribe
