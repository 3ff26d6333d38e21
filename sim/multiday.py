"""A run of several simulated hall days against one hall database (`[scenario] days`).

Each day is a `HallDay` as a single-day scenario runs it, on the day's own opening hours
(the holiday calendar: a statutory holiday is closed, a 调休 Saturday opens with the
weekday's hours), with citizens and staff drawn from the seed and the day. Between two
days the controller is restarted, as `hallctl run` is after a reboot overnight: its store
is closed at the end of one day and the controller is opened again from the same
directory at midnight, on the clock the scenario gives it (`[[faults]] kind =
"clock_back"` at "00:00": the machine comes up with its clock behind, and is set right
when the fault ends). On a closed day citizens still come to the kiosk; every one of them
is refused, and told why.

After the last day the controller starts once more on the next morning, so that what
the last day left open (a visit nobody finished) ends at a day change too.

Besides each day's own checks (`sim.hallday.invariants`), the run is checked as a whole:
every window usable every morning, no ticket cancelled by a clock fault, nothing issued
on a closed day, every citizen on a closed day told why, every visit left unfinished ended
at the next day change as served past closing.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import tempfile
from contextlib import closing
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable
from zoneinfo import ZoneInfo

from controller.assembly import DB_NAME, open_hall
from controller.runtime.clock import ManualClock
from controller.core import commands as c
from controller.core.errors import HallError
from controller.core.hours import issuing_spans
from controller.core.model import WindowStatus
from drivers.counter_keypad import Key
from sim.hallday import DISPLAY_WINDOWS, TICK_SECONDS, DayRecord, HallDay
from sim.population import citizens
from sim.scenario import Scenario
from sim.sim_floor import SimFloor
from sim.staff import WindowAgent

# the single-day check a visit left unfinished at a window breaks until the next day change
ENDS_CHECK = "every ticket ends served, no-show or cancelled"
ENDED = ("finished", "no_show", "cancelled")
LAST_MOMENT = 24 * 3600 - 60  # seconds after midnight: a day's events end before the next day
MOST_CRASHES = 200  # a day whose requests keep failing stops here


class WatchedDay(HallDay):
    """A `HallDay` that notes how each window fares in the morning: the first login and the
    first call of the day, whether the day change left any window pointing at an earlier
    day's ticket, any command answered with an error that is not the hall's (a 500)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.problems: list[str] = []  # "window 3: ..." for "every window usable every morning"
        self.crashes: list[str] = []  # requests that failed with an error not the hall's (a 500)
        self.first_login: dict[int, str] = {}
        self.first_call: dict[int, str] = {}
        self.morning_checked = False
        self.behind_events: list[tuple[int, int]] = []  # event ids written while the clock was behind
        self._behind_from: int | None = None

    def _last_id(self, table: str) -> int:
        return self.ctrl.store.db.execute(f"SELECT COALESCE(MAX(id), 0) FROM {table}").fetchone()[0]

    def _answer_since(self, command_id: int) -> str | None:
        row = self.ctrl.store.db.execute(
            "SELECT result FROM commands WHERE id > ? ORDER BY id LIMIT 1", [command_id]).fetchone()
        return row[0] if row else None

    def execute(self, cmd: c.Command, actor: str) -> bool:
        first = isinstance(cmd, c.Login) and cmd.window not in self.first_login
        before = self._last_id("commands")
        try:
            ok = super().execute(cmd, actor)
        except HallError:
            raise
        except Exception as e:  # what the API would answer with a 500
            self._crashed(f"{cmd.kind} at window {getattr(cmd, 'window', '-')}", e)
            if getattr(cmd, "window", None) is not None:
                self.problems.append(f"window {cmd.window}: {cmd.kind} failed ({type(e).__name__})")
            ok = False
        if first:
            answer = self._answer_since(before) or "no answer"
            self.first_login[cmd.window] = answer
            if not ok:
                self.problems.append(f"window {cmd.window}: first login refused ({answer})")
        return ok

    def press(self, a: WindowAgent, key: Key, **data) -> None:
        before = self._last_id("commands")
        try:
            super().press(a, key, **data)
        except HallError:
            raise
        except Exception as e:
            self._crashed(f"key {key.value} at window {a.number}", e)
            self.problems.append(f"window {a.number}: key {key.value} failed ({type(e).__name__})")
        answer = self._answer_since(before)
        if answer is None:  # the key reached nothing that answered: the keypad path broke
            self.problems.append(f"window {a.number}: key {key.value} got no answer")
            self.crashes.append(f"{self.clock.now:%m-%d %H:%M} key {key.value} at window "
                                f"{a.number}: no answer (the bus driver's listener failed)")
        if key is Key.CALL_NEXT and a.number not in self.first_call:
            self.first_call[a.number] = answer or "no answer"
            if answer != "ok":
                self.problems.append(f"window {a.number}: first call of the day refused ({answer})")

    def at(self, t: float, fn: Callable, *args) -> None:
        # a day's run ends with its day: a controller that fails (a 500 on every key) must not
        # keep its staff pressing keys for ever
        if t < LAST_MOMENT and len(self.crashes) < MOST_CRASHES:
            super().at(t, fn, *args)

    def _crashed(self, what: str, e: Exception) -> None:
        self.crashes.append(f"{self.clock.now:%m-%d %H:%M} {what}: {type(e).__name__}: {e}")
        try:
            self._handle()
        except Exception:
            pass

    def arrive(self, citizen) -> None:
        try:
            super().arrive(citizen)
        except Exception as e:  # the kiosk's request failed with a 500
            self.issuing = None
            self._crashed(f"a ticket for {citizen.service} at the kiosk", e)

    def tick(self) -> None:
        try:
            super().tick()
        except Exception as e:
            self._crashed("tick", e)
            if self._queue or self.now < self.sessions[-1][1]:
                self.after(TICK_SECONDS, self.tick)
            return
        state = self.ctrl.state
        if not self.morning_checked and state.day == self.scenario.day:
            # the day has begun: no window may still hold an earlier day's visit or login
            self.morning_checked = True
            for n, w in sorted(state.windows.items()):
                for what, ticket in (("serving", w.current), ("evaluating", w.evaluating)):
                    t = state.tickets.get(ticket) if ticket else None
                    if ticket and (t is None or t.day != state.day):
                        self.problems.append(f"window {n}: still {what} {ticket} of an earlier day")
                if (w.status is not WindowStatus.CLOSED and w.logged_in_at is not None
                        and w.logged_in_at.date() < state.day):
                    self.problems.append(f"window {n}: still open from {w.logged_in_at:%m-%d %H:%M}")

    def fault(self, f, start: bool) -> None:
        if f.kind == "clock_back":
            if start:
                self._behind_from = self._last_id("events")
            elif self._behind_from is not None:  # what was written before it is set right
                self.behind_events.append((self._behind_from, self._last_id("events")))
                self._behind_from = None
        super().fault(f, start)

    def _record(self) -> DayRecord:
        if self._behind_from is not None:  # still behind at the day's end
            self.behind_events.append((self._behind_from, self._last_id("events")))
        return super()._record()


@dataclass
class ClosedDay:
    """A day the hall is closed: who came, and what the kiosk told them."""

    day: dt.date
    reason: str | None
    came: int = 0
    refused: dict[str, int] = field(default_factory=dict)
    messages: list[str] = field(default_factory=list)  # each different answer once
    opened_windows: list[int] = field(default_factory=list)


@dataclass
class RunDay:
    day: dt.date
    record: DayRecord | None = None  # an open day
    closed: ClosedDay | None = None
    problems: list[str] = field(default_factory=list)
    crashes: list[str] = field(default_factory=list)
    forgotten: list[str] = field(default_factory=list)
    first_login: dict[int, str] = field(default_factory=dict)  # window -> the answer ("ok", a code)
    first_call: dict[int, str] = field(default_factory=dict)
    past_closing: int = 0  # visits finished after the day's last session, by staff or the day change
    ended_at_day_change: int = 0
    clock_faults: int = 0  # recorded by the controller from the night before to the day's end
    events: tuple[int, int] = (0, 0)  # the ids of the events written in that time


@dataclass
class RunRecord:
    scenario: Scenario
    seed: int
    days: list[RunDay]
    invariants: dict[str, list[str]]
    commands: int = 0


class HallRun:
    """The scenario's days one after another against one database; `run()` gives a `RunRecord`."""

    def __init__(self, scenario: Scenario, seed: int | None = None, displays: bool | None = None,
                 progress: Callable[[float, str], None] | None = None,
                 workdir: Path | None = None) -> None:
        self.scenario = scenario
        self.seed = scenario.seed if seed is None else seed
        self.displays = displays
        self.progress = progress
        self.workdir = workdir

    def run(self) -> RunRecord:
        where = self.workdir or (Path("/dev/shm") if Path("/dev/shm").is_dir() else None)
        with tempfile.TemporaryDirectory(prefix="hallrun-", dir=where) as tmp:
            data_dir = Path(tmp)
            days: list[RunDay] = []
            watched: dict[dt.date, WatchedDay] = {}
            for i, day in enumerate(self.scenario.days):
                scenario = replace(self.scenario, day=day)
                draws = f"{self.seed}:{day.isoformat()}"
                if issuing_spans(scenario.hall, day):
                    hd = WatchedDay(scenario, seed=self.seed, draws=draws, data_dir=data_dir,
                                    displays=self.displays, progress=self._day_progress(i, day))
                    rec = hd.run()
                    watched[day] = hd
                    days.append(RunDay(day, record=rec, problems=hd.problems, crashes=hd.crashes,
                                       forgotten=list(hd.forgotten), first_login=hd.first_login,
                                       first_call=hd.first_call))
                else:
                    days.append(RunDay(day, closed=closed_day(scenario, draws, data_dir,
                                                              self.displays)))
                last = _last_event(data_dir)
                days[-1].events = (days[-2].events[1] if len(days) > 1 else 0, last)
            self._morning_after(data_dir)
            with closing(sqlite3.connect(data_dir / DB_NAME)) as db:
                db.row_factory = sqlite3.Row
                invariants = self._check(db, days, watched)
                commands = db.execute("SELECT COUNT(*) FROM commands").fetchone()[0]
        return RunRecord(self.scenario, self.seed, days, invariants, commands)

    def _day_progress(self, i: int, day: dt.date) -> Callable[[float, str], None] | None:
        """The run's progress bar, moved on by the i-th day's own progress."""
        run_progress = self.progress
        if not run_progress:
            return None

        def progress(f: float, clock: str) -> None:
            run_progress((i + max(0.0, f)) / len(self.scenario.days), f"{day:%m-%d} {clock}")
        return progress

    def _morning_after(self, data_dir: Path) -> None:
        """The controller starts once more the morning after the last day: its first command
        begins the next day, which ends whatever the last day left open."""
        last = self.scenario.days[-1]
        tz = ZoneInfo(self.scenario.hall.timezone)
        clock = ManualClock(dt.datetime.combine(last + dt.timedelta(days=1), dt.time(8), tz))
        ctrl, _ = open_hall(self.scenario.hall, data_dir, clock, durable=False)
        try:
            ctrl.tick()
        finally:
            ctrl.store.close()

    def _check(self, db: sqlite3.Connection, days: list[RunDay],
               watched: dict[dt.date, WatchedDay]) -> dict[str, list[str]]:
        usable, clock, closed_issued, closed_told, unfinished = [], [], [], [], []
        crashes = []
        for d in days:
            usable += [f"{d.day} {p}" for p in d.problems]
            crashes += [f"{d.day} {p}" for p in d.crashes]
            if d.closed is not None:
                closed_issued += _issued_on_closed_day(db, d.day, d.closed)
                closed_told += _not_told_why(d.day, d.closed)
                continue
            unfinished += self._after_the_day_change(db, d)
            clock += _cancelled_while_behind(db, watched[d.day].behind_events)
            d.clock_faults = db.execute(
                "SELECT COUNT(*) FROM events WHERE kind = 'clock_fault' AND id > ? AND id <= ?",
                list(d.events)).fetchone()[0]
        clock += _cancelled_on_their_own_day(db)
        return {
            "every window usable every morning": usable,
            "no request fails with an error that is not the hall's (a 500)": crashes,
            "no ticket cancelled by a clock fault": sorted(set(clock)),
            "nothing issued on a closed day": closed_issued,
            "every citizen on a closed day is told why": closed_told,
            "every visit left unfinished ends at the next day change (served past closing)": unfinished,
        }

    def _after_the_day_change(self, db: sqlite3.Connection, d: RunDay) -> list[str]:
        """An open day as the database holds it once the next day has begun: its final
        statuses, the visits finished past closing or ended by the day change, and the
        forgotten visits the day change did not end."""
        hall = self.scenario.hall
        rec = d.record
        assert rec is not None
        day = d.day.isoformat()
        # the day's statuses after the day change: a visit left at a window has ended by now
        final = {r["id"]: r["status"] for r in db.execute(
            "SELECT id, status FROM tickets WHERE day = ?", [day])}
        rec.statuses = final
        if ENDS_CHECK in rec.invariants:
            rec.invariants[ENDS_CHECK] = sorted(t for t, s in final.items() if s not in ENDED)
        last_end = max(s.end for s in hall.hours_on(d.day).sessions)
        closing_at = dt.datetime.combine(d.day, last_end, ZoneInfo(hall.timezone))
        for r in db.execute("SELECT id, finished_at FROM tickets WHERE day = ? AND status = "
                            "'finished' AND finished_at IS NOT NULL", [day]):
            if dt.datetime.fromisoformat(r["finished_at"]) > closing_at:
                d.past_closing += 1
        ended = {r["ticket_id"] for r in db.execute(
            "SELECT ticket_id FROM events WHERE kind = 'ticket_finished' AND "
            "json_extract(data, '$.reason') = 'day_end' AND ticket_id IN "
            "(SELECT id FROM tickets WHERE day = ?)", [day])}
        d.ended_at_day_change = len(ended)
        return [f"{d.day} {t}" for t in d.forgotten if t not in ended]


def _issued_on_closed_day(db: sqlite3.Connection, day: dt.date, closed: ClosedDay) -> list[str]:
    rows = db.execute("SELECT id FROM tickets WHERE day = ? OR substr(issued_at, 1, 10) = ?",
                      [day.isoformat()] * 2).fetchall()
    return ([f"{day} ticket {r['id']}" for r in rows]
            + [f"{day} window {n} opened" for n in closed.opened_windows])


def _not_told_why(day: dt.date, closed: ClosedDay) -> list[str]:
    """A citizen on a closed day refused for another reason, or told something without the
    day's reason in it."""
    told = [f"{day}: {n} refused with {code}" for code, n in closed.refused.items() if code != "hall_closed"]
    told += [f"{day}: told {m!r}" for m in closed.messages if closed.reason and closed.reason not in m]
    return told


def _cancelled_while_behind(db: sqlite3.Connection, behind_events: list[tuple[int, int]]) -> list[str]:
    return [f"{r['ticket_id']} cancelled at {r['at']} while the clock was behind"
            for first, last in behind_events
            for r in db.execute("SELECT ticket_id, at FROM events WHERE kind = 'ticket_cancelled' "
                                "AND id > ? AND id <= ?", [first, last])]


def _cancelled_on_their_own_day(db: sqlite3.Connection) -> list[str]:
    """A day's waiting tickets are cancelled only when a later day begins."""
    return [f"{r['ticket_id']} cancelled day_end at {r['at']}, on its own day"
            for r in db.execute("SELECT e.ticket_id, e.at, t.day FROM events e JOIN tickets t "
                                "ON t.id = e.ticket_id WHERE e.kind = 'ticket_cancelled' AND "
                                "json_extract(e.data, '$.reason') = 'day_end'")
            if dt.datetime.fromisoformat(r["at"]).date() <= dt.date.fromisoformat(r["day"])]

def closed_day(scenario: Scenario, draws: str, data_dir: Path,
               displays: bool | None = None) -> ClosedDay:
    """Citizens come to the kiosk on a day the hall is closed; the controller is restarted
    in the night before as on any other day."""
    hall = scenario.hall
    midnight = dt.datetime.combine(scenario.day, dt.time(0), ZoneInfo(hall.timezone))
    clock = ManualClock(midnight)
    now = [0.0]
    ctrl, _ = open_hall(hall, data_dir, clock, durable=False)
    out = ClosedDay(scenario.day, hall.opening_on(scenario.day).closed_reason)
    try:
        floor = SimFloor(ctrl, lambda: now[0], lambda w: None, lambda w, text: None,
                         len(hall.windows) <= DISPLAY_WINDOWS if displays is None else displays)
        ctrl.tick()  # midnight: the day changes
        for citizen in citizens(scenario, draws):
            now[0] = citizen.arrives
            clock.now = midnight + dt.timedelta(seconds=citizen.arrives)
            ctrl.tick()
            out.came += 1
            try:
                # nobody at the guidance desk on a holiday: everyone tries the kiosk, as is
                floor.kiosk.take_ticket(citizen.service, citizen.id_number, citizen.name,
                                        None, citizen.phone)
            except HallError as e:
                out.refused[e.code] = out.refused.get(e.code, 0) + 1
                if e.message not in out.messages:
                    out.messages.append(e.message)
            floor.events()
        out.opened_windows = sorted(n for n, w in ctrl.state.windows.items()
                                    if w.status is not WindowStatus.CLOSED)
    finally:
        ctrl.store.close()
    return out


def _last_event(data_dir: Path) -> int:
    with closing(sqlite3.connect(data_dir / DB_NAME)) as db:
        return db.execute("SELECT COALESCE(MAX(id), 0) FROM events").fetchone()[0]
