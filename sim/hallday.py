"""A simulated hall day: a discrete-event engine driving the real controller through its
real device paths, on a virtual clock.

The controller (`HallController`, its store and its `CaseDesk`) runs as in a hall,
on a `ManualClock` that this engine moves from event to event, on a throw-away
database (`durable=False`) in a temporary directory. Citizens take tickets at the
real kiosk, which prints them through the real printer driver; staff press keys
on simulated keypads whose frames the real counter-bus driver turns into
commands; citizens grade on simulated pads when the pad's prompt frame reaches
them (`sim.sim_floor`). Staff log in and out through the controller, as the
counter page's login does. What staff and citizens will do is drawn before the
day from the seed (`sim.population`); nothing runs in a thread, so a seed
replays the same day and the same report.

What the staff do is `sim.staff`; the devices are `sim.sim_floor`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import heapq
import random
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable
from zoneinfo import ZoneInfo

from controller.backoffice.cases import CaseDesk
from controller.assembly import open_hall
from controller.runtime.clock import ManualClock
from controller.core import commands as c
from controller.core import events as ev
from controller.core.callbacks import CaseRules
from controller.core.errors import HallError
from controller.core.hall import StaffRole
from controller.core.identity import normalise
from controller.core.model import WindowStatus
from controller.entrance.kiosk import KioskTicket
from controller.config.settings import ReminderSettings
from controller.config.workdays import hall_calendar
from controller.entrance.reminders import ReminderDesk
from drivers.counter_keypad import Key
from drivers.evaluator_pad import PAD_GRADES
from drivers.sms import HttpGateway
from sim.population import Citizen, a_post_staff, citizens, seconds, staff_plans
from sim.scenario import Scenario
from sim.sim_floor import SimFloor
from sim.sms_gateway import SmsGatewaySim
from sim.staff import StaffRules, WindowAgent

TICK_SECONDS = 30
# Halls with more windows than this run without window bars and the main display (see sim_floor).
DISPLAY_WINDOWS = 60


@dataclass
class TicketRecord:
    """One ticket as the simulation saw it: what it promised and what happened."""

    id: str
    service: str
    issued: float
    ahead: int
    eta: tuple[float, float, float]
    queue_length_eta: float  # the baselines, computed at the same moment
    last_entered_eta: float
    first_called: float | None = None
    window: int | None = None


@dataclass
class DayRecord:
    """What the simulated day produced, for `sim.day_report`."""

    scenario: Scenario
    seed: int
    staffing: tuple[tuple[dt.time, int], ...]
    tickets: dict[str, TicketRecord]
    statuses: dict[str, str]
    refused: dict[str, int]
    desk_issued: int
    windows: list[WindowAgent]
    pauses: list[dict]
    events: dict[str, int]
    devices: list[tuple[float, str, str, str]]
    invariants: dict[str, list[str]]
    evaluation: dict
    cases: dict
    commands: int
    printed: int
    finished_twice: list[str]
    service_minutes: dict[str, list[float]] = field(default_factory=dict)
    covers: int = 0
    absences: int = 0
    tidal_opened: int = 0
    end: float = 0.0
    habits: dict[str, int] = field(default_factory=dict)  # double taps, cards left, steps away
    reminders: dict[str, int] = field(default_factory=dict)  # 到号提醒: opted in, messages
    reminded: dict[str, str] = field(default_factory=dict)  # ticket -> the mobile it gave
    texts: list[tuple[str, str, str]] = field(default_factory=list)  # (id, to, text) as taken


class HallDay(StaffRules):
    """One day of one scenario; `run()` returns its `DayRecord`."""

    # The day reads `self.ctrl.state` directly (here, in sim.staff and in sim.multiday), not
    # through `ctrl.ask`: this thread is the only one that gives the controller work, each
    # command returns only once the hall thread has applied, written and fanned it out, and
    # the floor's calling devices are driven from here (its worker thread never starts), so
    # between two commands the hall thread is idle and the state holds still.

    def __init__(self, scenario: Scenario, seed: int | None = None,
                 staffing: tuple[tuple[dt.time, int], ...] | None = None,
                 displays: bool | None = None, speed: float | None = None,
                 progress: Callable[[float, str], None] | None = None,
                 workdir: Path | None = None, data_dir: Path | None = None,
                 draws: str | None = None) -> None:
        self.scenario = scenario
        self.hall = scenario.hall
        self.seed = scenario.seed if seed is None else seed
        self.staffing = scenario.staffing if staffing is None else staffing
        self.displays = len(self.hall.windows) <= DISPLAY_WINDOWS if displays is None else displays
        self.speed = speed
        self.progress = progress
        self.workdir = workdir
        # a hall database kept from day to day (`sim.multiday`): opened at the day's start as
        # after a reboot, closed at its end; None: a throw-away one
        self.data_dir = data_dir
        # what the random streams are drawn from: the seed, or the seed and the day in a run of days
        self.draws = self.seed if draws is None else draws
        self.rng = random.Random(f"{self.draws}:staff-moments")
        self.midnight = dt.datetime.combine(scenario.day, dt.time(0), ZoneInfo(self.hall.timezone))
        self.clock = ManualClock(self.midnight)
        self.behind = dt.timedelta()  # a clock_back fault: how far the clock is set back now
        self.now = 0.0
        self._queue: list[tuple[float, int, Callable, tuple]] = []
        self._seq = 0
        hours = self.hall.hours_on(scenario.day)
        self.sessions = [(seconds(s.start), seconds(s.end)) for s in hours.sessions]
        self.order = staffing_order(scenario)

    # -- the event queue ------------------------------------------------------------

    def at(self, t: float, fn: Callable, *args) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (max(t, self.now), self._seq, fn, args))

    def after(self, delay: float, fn: Callable, *args) -> None:
        self.at(self.now + delay, fn, *args)

    def _seconds(self) -> float:
        return self.now

    # -- the day ------------------------------------------------------------------------

    def run(self) -> DayRecord:
        # the day's database is thrown away: in memory-backed /dev/shm where there is one
        where = self.workdir or (Path("/dev/shm") if Path("/dev/shm").is_dir() else None)
        # a clock set back from midnight on: the controller starts with it behind
        self.behind = max([dt.timedelta(hours=f.behind_hours) for f in self.faults()
                           if f.kind == "clock_back" and seconds(f.at) == 0] + [dt.timedelta()])
        self.clock.now = self.midnight - self.behind
        with contextlib.ExitStack() as stack:
            data_dir = self.data_dir or Path(stack.enter_context(
                tempfile.TemporaryDirectory(prefix="hallday-", dir=where)))
            self.ctrl, _ = open_hall(self.hall, data_dir, self.clock, durable=False)
            self.texts = self.gateway = None
            try:
                if self.scenario.reminder_share > 0:
                    self.gateway = stack.enter_context(contextlib.closing(SmsGatewaySim().start()))
                    self.texts = ReminderDesk(self.ctrl, ReminderSettings(
                        True, self.scenario.reminder_ahead, url=self.gateway.url),
                        HttpGateway(self.gateway.url, timeout=5.0)).start()
                return self._run()
            finally:
                if self.texts is not None:
                    self.texts.stop()
                self.ctrl.store.close()

    def faults(self) -> list:
        """The scenario's faults that happen on this day."""
        return [f for f in self.scenario.faults if f.day in (None, self.scenario.day)]

    def _run(self) -> DayRecord:
        scenario = self.scenario
        holidays = Path(__file__).resolve().parent.parent / "config" / "holidays.toml"
        self.desk = CaseDesk(self.ctrl, hall_calendar(holidays if holidays.exists() else None),
                             CaseRules.from_rules(self.hall.rules))
        self.desk.start()
        self.floor = SimFloor(self.ctrl, self._seconds, self._prompted, lambda w, text: None,
                              self.displays)
        self.citizens = citizens(scenario, self.draws)
        self.by_ticket: dict[str, Citizen] = {}
        self.records: dict[str, TicketRecord] = {}
        self.refused: dict[str, int] = {}
        self.desk_issued = 0
        # 导办台: who gives priority (绿色通道) there; a supervisor when no one is marked
        staff = self.hall.staff.values()
        self.guide = (next((s.id for s in staff if s.guidance_desk), None)
                      or next((s.id for s in staff if s.role is StaffRole.SUPERVISOR), None))
        self.pauses: list[dict] = []
        self.service_minutes: dict[str, list[float]] = {}
        self.counts: dict[str, int] = {}
        self.devices: list[tuple[float, str, str, str]] = []
        self.last_entered: dict[str, float] = {}
        self.issuing: Citizen | None = None
        self.covers = self.absences = self.tidal_opened = 0
        self.habits = dict.fromkeys(("double_taps", "second_tap_same_ticket", "cards_left",
                                     "taps_beside_a_left_card", "pause_after_finish",
                                     "logout_after_finish", "prompt_open_at_step_away"), 0)
        self.reminded: dict[str, str] = {}  # ticket -> the mobile its 到号提醒 go to
        self.forgotten: list[str] = []  # visits staff left unfinished (sim.staff, forget_finish_share)
        own = a_post_staff(scenario)
        plans = staff_plans(scenario, self.draws)
        self.agents = {n: WindowAgent(n, w.services, own.get(n), plans[n])
                       for n, w in sorted(self.hall.windows.items())}
        self.logged: dict[str, int] = {}  # staff id -> window

        for citizen in self.citizens:
            self.at(citizen.arrives, self.arrive, citizen)
        for k, (start, end) in enumerate(self.sessions):
            self.at(start, self.session_start, k)
            self.at(end, self.session_end, k)
        for when, _ in self.staffing:
            self.at(seconds(when), self.reconcile)
        for a in self.agents.values():
            for due, _, _ in a.plan.pauses:
                self.at(due, self.wake, a, 0.0)
            if a.plan.absence:
                self.at(a.plan.absence[0], self.leave, a)
        for f in self.faults():
            self.at(seconds(f.at), self.fault, f, True)
            self.at(seconds(f.at) + f.minutes * 60, self.fault, f, False)
        first = min([c.arrives for c in self.citizens[:1]] + [self.sessions[0][0]])
        self.at(first - 1, self.tick)

        wall0, virtual0 = time.perf_counter(), None
        span = max(1.0, self.sessions[-1][1] - first)
        shown = -1
        while self._queue:
            t, _, fn, args = heapq.heappop(self._queue)
            if self.speed:
                virtual0 = t if virtual0 is None else virtual0
                lag = (t - virtual0) / self.speed - (time.perf_counter() - wall0)
                if lag > 0:
                    time.sleep(lag)
            self.now = t
            self.clock.now = self.midnight + dt.timedelta(seconds=t) - self.behind
            fn(*args)
            if self.progress and int((t - first) / span * 100) != shown:
                shown = int((t - first) / span * 100)
                self.progress(min(1.0, (t - first) / span), f"{self.clock.now:%H:%M}")
        return self._record()

    def _handle(self) -> None:
        for event in self.floor.events():
            self.observe(event)

    def execute(self, cmd: c.Command, actor: str) -> bool:
        try:
            self.ctrl.execute(cmd, actor)
        except HallError:
            return False
        finally:
            self._handle()
        return True

    def press(self, a: WindowAgent, key: Key, **data) -> None:
        self.floor.press(a.number, key, **data)
        self._handle()

    def tick(self) -> None:
        self.ctrl.tick()
        self.floor.resync()
        self._handle()
        busy = any(a.state != "closed" for a in self.agents.values()) or any(
            self.waiting(p) for p in self.hall.services)
        if busy or self.now < self.sessions[-1][1] or len(self._queue) > 0:
            self.after(TICK_SECONDS, self.tick)

    # -- citizens --------------------------------------------------------------------------

    def arrive(self, citizen: Citizen) -> None:
        self.issuing = citizen
        if citizen.priority:  # only the guidance desk may put someone first, not the kiosk
            self._desk(citizen)
            self.issuing = None
            return
        self._at_the_reader(citizen)
        self._took(citizen, self._tap_for_ticket(citizen))
        if citizen.card_left:
            self.habits["cards_left"] += 1
        elif citizen.id_number:
            self.floor.lift_card()
        self._handle()
        self.issuing = None

    def _at_the_reader(self, citizen: Citizen) -> None:
        """A citizen with an ID card puts it on the kiosk's reader (and gives a phone number)."""
        if citizen.id_number:
            # a card someone left on the reader goes to the guidance desk; theirs goes on it
            self.floor.lift_card()
            self.floor.place_card(citizen.id_number, citizen.name)
            try:
                if citizen.phone:
                    self.floor.kiosk.hold_phone(citizen.phone)
            except HallError:
                pass  # the card was refused: the kiosk shows why, and the ticket is anonymous
        elif self.floor.card_on_reader:
            self.habits["taps_beside_a_left_card"] += 1

    def _tap_for_ticket(self, citizen: Citizen) -> list[KioskTicket | HallError]:
        """The kiosk's answer to each tap of the service's button (two for a double tap)."""
        kiosk = self.floor.kiosk
        # the page sends one request key per tap of a button, the same for a tap repeated
        key = f"sim-{self.draws}-{citizen.index}"  # a key of its own each day
        taps: list[KioskTicket | HallError] = []
        for _ in range(2 if citizen.double_tap else 1):
            try:
                taps.append(kiosk.take_ticket(citizen.service, priority=citizen.priority,
                                              request_key=key))
            except HallError as e:
                taps.append(e)
            self._handle()
        return taps

    def _took(self, citizen: Citizen, taps: list[KioskTicket | HallError]) -> None:
        """A refused ticket goes to the guidance desk (no paper) or is counted; a second tap
        should give the same ticket again."""
        first = taps[0]
        if isinstance(first, HallError):
            if first.code in ("paper_out", "printer_unavailable"):
                self._desk(citizen)  # 导办台: staff at the guidance desk issue it by hand
            else:
                self.refused[first.code] = self.refused.get(first.code, 0) + 1
        else:
            self._opt_in(citizen, first)
        if not isinstance(first, HallError) and len(taps) > 1:
            self.habits["double_taps"] += 1
            again = taps[1]
            self.habits["second_tap_same_ticket"] += (
                isinstance(again, KioskTicket) and again.outcome.ticket.id == first.outcome.ticket.id)

    def _opt_in(self, citizen: Citizen, got: KioskTicket) -> None:
        """到号提醒: a citizen with a mobile for text messages types it after the ticket."""
        if citizen.reminder is None or self.texts is None:
            return
        try:
            self.texts.opt_in(got.outcome.ticket.id, citizen.reminder, "kiosk:entrance")
            self.reminded[got.outcome.ticket.id] = citizen.reminder
        except HallError as e:
            self.refused[f"reminder_{e.code}"] = self.refused.get(f"reminder_{e.code}", 0) + 1
        self._handle()

    def _desk(self, citizen: Citizen) -> None:
        who = (self.ctrl.citizen(citizen.id_number, citizen.name, citizen.phone)
               if citizen.id_number else None)
        cmd = c.IssueTicket(citizen.service, "staff", who, citizen.priority, staff_id=self.guide)
        if self.execute(cmd, f"staff:{self.guide or 'desk'}"):
            self.desk_issued += 1
        else:
            self.refused["desk"] = self.refused.get("desk", 0) + 1

    def _prompted(self, window: int) -> None:
        """The pad at `window` asks for a grade: the citizen just served there may give one."""
        a = self.agents[window]
        citizen = a.last
        if citizen is not None and citizen.grade is not None and citizen.graded_visit is None:
            citizen.graded_visit = a.last_ticket  # one press per visit
            self.after(citizen.grade_delay, self._grade, window, citizen.grade)

    def _grade(self, window: int, grade: int) -> None:
        self.floor.grade(window, grade)
        self._handle()

    # -- what the controller said -------------------------------------------------------

    def observe(self, e: ev.Event) -> None:
        self.counts[e.kind] = self.counts.get(e.kind, 0) + 1
        match e:
            case ev.TicketIssued():
                self._issued(e)
            case ev.TicketCalled():
                self._called(e)
            case ev.TicketMissed(requeued=True):
                self.wake_for(self.by_ticket[e.ticket].service if e.ticket in self.by_ticket
                              else self.ctrl.state.tickets[e.ticket].service)
            case ev.TicketTransferred():
                self.wake_for(e.target)
            case ev.TicketFinished(service_seconds=int(seconds)):
                self.service_minutes.setdefault(e.service, []).append(seconds / 60)
            case ev.WindowResumed():
                self.pauses.append({"window": e.window, "seconds": e.paused_seconds,
                                    "over_limit": e.over_limit})
            case ev.DeviceHealth():
                self.devices.append((self.now, e.device, e.state, e.detail))
            case ev.TidalOpenProposed() if not self.staffing:
                self.after(self.scenario.staff.supervisor_delay_minutes * 60, self._open_tidal,
                           self.agents[e.window])
            case ev.TidalCloseProposed() if not self.staffing:
                a = self.agents[e.window]
                a.tidal_open = False
                self.wake(a, 0.0)

    def _issued(self, e: ev.Event) -> None:
        state = self.ctrl.state
        t = state.tickets[e.ticket]
        citizen = self.issuing
        if citizen is not None:
            citizen.ticket = t.id
            citizen.tickets.append(t.id)
            self.by_ticket[t.id] = citizen
        prefix = t.service
        serving = [w for w in self.hall.windows_serving(prefix)
                   if state.windows[w.number].status is not WindowStatus.CLOSED]
        count = len(serving) or len(self.hall.windows_serving(prefix))
        mean = state.service_minutes.get(prefix, self.hall.services[prefix].mean_minutes)
        self.records[t.id] = TicketRecord(
            t.id, prefix, self.now, t.ahead_at_issue or 0, (t.eta_p10, t.eta_p50, t.eta_p90),
            queue_length_eta=(t.ahead_at_issue + 1) * mean / count,
            last_entered_eta=self.last_entered.get(prefix, 0.0))
        self.wake_for(prefix)

    def _called(self, e: ev.Event) -> None:
        record = self.records.get(e.ticket)
        if record is not None and record.first_called is None:
            record.first_called, record.window = self.now, e.window
            t = self.ctrl.state.tickets[e.ticket]
            if t.transfers == 0:
                self.last_entered[record.service] = (self.now - record.issued) / 60
        a = self.agents[e.window]
        citizen = self.by_ticket.get(e.ticket)
        a.state, a.ticket, a.citizen, a.since = "serving", e.ticket, citizen, self.now
        wait = self.scenario.staff.no_show_wait_seconds
        if citizen is None or citizen.absent:
            self.after(wait / 2, self._recall, a, e.ticket)
            self.after(wait, self._end_visit, a, e.ticket, Key.NO_SHOW)
        elif citizen.transfer_to and not self.ctrl.state.tickets[e.ticket].transfers:
            self.after(citizen.walk_seconds + citizen.transfer_seconds, self._end_visit, a, e.ticket,
                       Key.TRANSFER)
        else:
            self.after(citizen.walk_seconds + citizen.service_seconds, self._end_visit, a, e.ticket,
                       Key.FINISH)

    def fault(self, f, start: bool) -> None:
        if f.kind == "printer_paper_out":
            self.floor.paper("out" if start else "ok")
            if not start:
                # the next customer's paper check reports the new roll; the kiosk page polls too
                try:
                    self.floor.kiosk.printer.paper_status()
                except Exception:
                    pass
        elif f.kind == "display_unplugged":
            (self.floor.unplug_bar if start else self.floor.plug_bar)(f.window)
        elif f.kind == "broker_restart":
            self.floor.broker_restart() if start else self.floor.broker_back()
        elif f.kind == "clock_back":
            self.behind = dt.timedelta(hours=f.behind_hours) if start else dt.timedelta()
            self.clock.now = self.midnight + dt.timedelta(seconds=self.now) - self.behind
        self._handle()

    # -- the record ---------------------------------------------------------------------------

    def _record(self) -> DayRecord:
        if self.texts is not None:  # what is due is sent before the day's figures are read
            self.texts.drain(timeout=60)
        from controller.backoffice.evaluation_reports import evaluation_report
        db = self.ctrl.store.db
        day = self.scenario.day.isoformat()
        statuses = {r["id"]: r["status"] for r in db.query(
            "SELECT id, status FROM tickets WHERE day = ?", [day])}
        twice = [r["ticket_id"] for r in db.query(
            "SELECT ticket_id FROM events WHERE kind = 'ticket_finished' GROUP BY ticket_id "
            "HAVING COUNT(*) > 1")]
        rows = evaluation_report(db, self.scenario.day, self.scenario.day, "day", self.clock())
        cases = self.desk.figures(self.scenario.day, self.scenario.day, self.clock())
        record = DayRecord(
            scenario=self.scenario, seed=self.seed, staffing=self.staffing, tickets=self.records,
            statuses=statuses, refused=dict(sorted(self.refused.items())),
            desk_issued=self.desk_issued, windows=list(self.agents.values()), pauses=self.pauses,
            events=dict(sorted(self.counts.items())), devices=self.devices,
            invariants=invariants(self, statuses, twice), evaluation=rows[0] if rows else {},
            cases=cases, commands=db.execute("SELECT COUNT(*) FROM commands").fetchone()[0],
            printed=len(self.floor.printer.tickets), finished_twice=twice,
            service_minutes=self.service_minutes, covers=self.covers,
            absences=self.absences, tidal_opened=self.tidal_opened, end=self.now,
            habits=dict(self.habits), reminders=self._reminder_figures(),
            reminded=dict(self.reminded),
            texts=[(m.id, m.to, m.text) for m in self.gateway.messages] if self.gateway else [])
        return record

    def _reminder_figures(self) -> dict[str, int]:
        """到号提醒: citizens who opted in, and the messages the simulated gateway took."""
        if self.gateway is None:
            return {}
        got = self.gateway.messages
        return {"opted_in": len(self.reminded), "messages": len(got),
                "ahead": sum(m.id.endswith("-ahead") for m in got),
                "called": sum(m.id.endswith("-called") for m in got),
                "posts": len(self.gateway.received)}


def invariants(day: HallDay, statuses: dict[str, str], twice: list[str]) -> dict[str, list[str]]:
    """Each check with the tickets (or windows) that break it; an empty list holds."""
    db = day.ctrl.store.db
    open_tickets = sorted(t for t, s in statuses.items() if s not in ("finished", "no_show", "cancelled"))
    missing_cases = [r["id"] for r in db.query(
        "SELECT id FROM tickets WHERE day = ? AND grade IN ('不满意', '非常不满意') "
        "AND grade_channel != 'system_default' AND id_masked IS NOT NULL "
        "AND id NOT IN (SELECT ticket_id FROM cases WHERE kind = 'bad_review')",
        [day.scenario.day.isoformat()])]
    kiosk = [r["id"] for r in db.query(
        "SELECT id FROM tickets WHERE day = ? AND channel = 'kiosk' AND status != 'cancelled'",
        [day.scenario.day.isoformat()])]
    printed = {line for t in day.floor.printer.tickets for line in t.lines}
    unprinted = [t for t in kiosk if t.split("-", 1)[1] not in printed]
    checks = {
        "every ticket ends served, no-show or cancelled": open_tickets,
        "no ticket served twice": twice,
        "every real-name bad review has a case": missing_cases,
        "every kiosk ticket was printed": unprinted,
        "no ticket in another person's name": in_another_name(day),
        "no duplicate ticket from one tap": duplicates(day, statuses),
        "no visit that lost a grade to a pause": lost_grades(day),
    }
    if day.gateway is not None:
        checks["every opted-in citizen called got one reminder, then one call message"] = \
            reminders_missing(day, statuses)
        checks["no text message sent twice"] = sorted(
            {m.id for m in day.gateway.received if [r.id for r in day.gateway.received].count(m.id) > 1})
    checks["every slip's QR code opens its own ticket's phone page"] = qr_links_broken(day)
    if day.displays:
        checks["every window bar shows the hall's state"] = [str(n) for n in day.floor.bars_out_of_step()]
    return checks


def reminders_missing(day: HallDay, statuses: dict[str, str]) -> list[str]:
    """Opted-in tickets that were called without exactly [reminder, call message] reaching the
    citizen's phone in that order, or that got a message they should not have."""
    assert day.gateway is not None
    got: dict[str, list[tuple[str, str]]] = {}
    for m in day.gateway.messages:
        ticket, trigger = m.id.rsplit("-", 1)
        got.setdefault(ticket, []).append((trigger, m.to))
    called = {r["id"] for r in day.ctrl.store.db.query(
        "SELECT id FROM tickets WHERE day = ? AND called_at IS NOT NULL",
        [day.scenario.day.isoformat()])}
    wrong = []
    for ticket, phone in day.reminded.items():
        want = [("ahead", phone), ("called", phone)] if ticket in called else \
            [m for m in got.get(ticket, []) if m == ("ahead", phone)]
        if got.get(ticket, []) != want:
            wrong.append(ticket)
    return wrong + sorted(set(got) - set(day.reminded))


def qr_links_broken(day: HallDay) -> list[str]:
    """Printed slips whose QR code does not open the phone page of the slip's own ticket
    (its secret, and the page's answer for it, as controller.web.phone_api gives them)."""
    from urllib.parse import parse_qs, urlsplit

    from controller.web.phone_api import phone_view

    broken = []
    for slip in day.floor.printer.tickets:
        link = urlsplit(slip.qr[0]) if len(slip.qr) == 1 else None
        ticket_id = link.path.rsplit("/", 1)[-1] if link else ""
        secret = parse_qs(link.query).get("k", [""])[0] if link else ""
        label = ticket_id.split("-", 1)[-1]
        if (not link or label not in slip.lines or day.ctrl.sealer is None
                or not day.ctrl.sealer.ticket_secret_ok(ticket_id, secret)
                or day.ctrl.ask(lambda s, i=ticket_id: phone_view(day.ctrl, s, i, day.texts))["number"] != label):
            broken.append(label or str(slip.lines[:3]))
    return broken


def in_another_name(day: HallDay) -> list[str]:
    """Real-name tickets whose holder is not the citizen who took them (a card left on the
    reader, an identity the kiosk kept for the next citizen)."""
    wrong = []
    for r in day.ctrl.store.db.query(
            "SELECT id, citizen_key FROM tickets WHERE day = ? AND citizen_key IS NOT NULL",
            [day.scenario.day.isoformat()]):
        citizen = day.by_ticket.get(r["id"])
        own = day.ctrl.sealer.key(normalise(citizen.id_number)) if citizen and citizen.id_number else None
        if r["citizen_key"] != own:
            wrong.append(r["id"])
    return wrong


def duplicates(day: HallDay, statuses: dict[str, str]) -> list[str]:
    """Tickets beyond the one a citizen meant (a tap repeated), and request keys that gave two."""
    extra = [r["request_key"] for r in day.ctrl.store.db.query(
        "SELECT request_key FROM tickets WHERE day = ? AND request_key IS NOT NULL "
        "GROUP BY request_key HAVING COUNT(*) > 1", [day.scenario.day.isoformat()])]
    for citizen in day.citizens:
        held = [t for t in citizen.tickets if statuses.get(t) != "cancelled"]
        extra += held[1:]
    return extra


def lost_grades(day: HallDay) -> list[str]:
    """Visits whose citizen saw the prompt and pressed a grade that is not the visit's grade
    (refused as no_evaluation after a pause or logout, then defaulted by the system)."""
    meant = {c.graded_visit: PAD_GRADES[c.grade - 1] for c in day.citizens
             if c.graded_visit is not None and c.grade is not None}
    got = {r["id"]: (r["grade"], r["grade_channel"]) for r in day.ctrl.store.db.query(
        "SELECT id, grade, grade_channel FROM tickets WHERE day = ? AND status = 'finished'",
        [day.scenario.day.isoformat()])}
    return sorted(t for t, grade in meant.items()
                  if got.get(t, (None, None)) not in ((grade, "pad"), (grade, "tablet")))


def staffing_order(scenario: Scenario) -> list[int]:
    """The order in which windows are opened when fewer than all are: each next window is the
    one whose services are least covered for their expected work (tickets x minutes)."""
    hall = scenario.hall
    work = {s.prefix: s.tickets * s.service_minutes for s in scenario.services}
    own = a_post_staff(scenario)
    left = [n for n in sorted(hall.windows) if n in own]
    cover = {p: 0.0 for p in hall.services}
    order = []
    while left:
        def need(n: int) -> tuple[float, int]:
            served = hall.windows[n].services
            # a window gives most to its first service
            return (max(work.get(p, 0.0) / (1 + cover[p]) / (1 + i) for i, p in enumerate(served)), -n)
        best = max(left, key=need)
        left.remove(best)
        order.append(best)
        for i, p in enumerate(hall.windows[best].services):
            cover[p] += 1 / (1 + i)
    return order
