"""A hall-day scenario: who comes when, how long their business takes, how staff behave,
how citizens grade, and what breaks. Read from TOML (`sim/scenarios/*.toml`).

Every mistake is a `ConfigError` naming the key path, as for a hall config
(`services[2].spread: expected a number from 0 to 3, found string 'wide'`).

The hall is either a hall config file (`[scenario] hall = "../../config/demo-hall.toml"`,
relative to the scenario) or generated from a compact `[generate]` table: window
groups, one A-post member of staff per window, B-post cover by neighbours and a
few floaters. The generated hall goes through the same validation as a hall
config file (`controller.config.hall.parse_hall`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from controller.config.hall import parse_hall, load_hall
from controller.core.hall import Hall
from controller.core.hours import issuing_spans
from controller.security.pins import DEMO_PIN, hash_pin
from controller.config.workdays import hall_calendar
from controller.config.tomlkeys import ConfigError, Table, check, claim, found, is_int, matches, read_toml

SCENARIO_DIR = Path(__file__).with_name("scenarios")
HOLIDAYS = Path(__file__).resolve().parent.parent / "config" / "holidays.toml"
# The pads' order: 1 非常满意 ... 5 非常不满意, as the pads send them.
GRADE_KEYS = ("very_satisfied", "satisfied", "basically_satisfied", "dissatisfied",
              "very_dissatisfied")
FAULT_KINDS = ("printer_paper_out", "display_unplugged", "broker_restart", "clock_back")
_HHMM = matches(r"[0-9]{1,2}:[0-9]{2}")


@dataclass(frozen=True)
class ServiceLoad:
    """One service's citizens: how many come, when, and what happens to them."""

    prefix: str
    tickets: float  # expected tickets of the day
    profile: str
    service_minutes: float  # mean of the lognormal service time
    spread: float  # its coefficient of variation (standard deviation / mean)
    no_show_share: float = 0.0
    transfer_share: float = 0.0
    transfer_to: tuple[str, ...] = ()


@dataclass(frozen=True)
class StaffBehaviour:
    """How the staff work the windows: reaction times, lateness, pauses, breaks, absences."""

    call_delay_seconds: tuple[float, float] = (5, 30)
    walk_seconds: tuple[float, float] = (15, 75)
    no_show_wait_seconds: float = 60
    late_login_share: float = 0.1
    late_login_minutes: tuple[float, float] = (2, 15)
    pauses_per_day: float = 1.5
    pause_minutes: float = 6
    pause_spread: float = 0.6
    break_share: float = 0.3
    break_minutes: float = 10
    absence_share: float = 0.05
    absence_minutes: tuple[float, float] = (30, 60)
    cover_delay_minutes: float = 3
    supervisor_delay_minutes: float = 3
    # visits after which staff pause at once (or log out, at a session's end), while the
    # citizen may still be grading: the pad's prompt must survive it (issue 13)
    pause_after_finish_share: float = 0.0
    # staff who leave at the end of the day with their last visit unfinished (no finish, no
    # logout): a share of the windows still serving after the last session, each day
    forget_finish_share: float = 0.0


@dataclass(frozen=True)
class Evaluation:
    share: float = 0.85  # visits the citizen grades on the pad
    grades: tuple[float, ...] = (0.72, 0.20, 0.05, 0.02, 0.01)  # the pads' order
    delay_seconds: tuple[float, float] = (3, 25)

    @property
    def bad_share(self) -> float:
        return self.grades[3] + self.grades[4]


@dataclass(frozen=True)
class Fault:
    """A device fault at a time of day, fixed `minutes` later."""

    at: dt.time
    kind: str
    minutes: float
    window: int | None = None  # display_unplugged
    behind_hours: float = 0.0  # clock_back: how far the clock is set back
    day: dt.date | None = None  # in a run of several days, the one day it happens (None: every day)


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    source: str
    hall: Hall
    day: dt.date
    seed: int
    real_name_share: float
    priority_share: float
    profiles: dict[str, tuple[tuple[dt.time, float], ...]]
    services: tuple[ServiceLoad, ...]
    staff: StaffBehaviour = field(default_factory=StaffBehaviour)
    evaluation: Evaluation = field(default_factory=Evaluation)
    faults: tuple[Fault, ...] = ()
    # open windows from each time on; empty: every non-tidal window with an A post, all day
    staffing: tuple[tuple[dt.time, int], ...] = ()
    # citizens who tap a service button twice (one request key: one ticket), and card holders
    # who walk away leaving their card on the reader (the next tap must not be in their name)
    double_tap_share: float = 0.0
    card_left_share: float = 0.0
    # 到号提醒: the share of kiosk citizens who leave a mobile for text messages, and how many
    # people ahead the first one comes at; the day runs the simulated SMS gateway
    reminder_share: float = 0.0
    reminder_ahead: int = 3
    # a run of several days against one database (`[scenario] days`), closed days included;
    # empty for a single day. `day` is then the first open one.
    days: tuple[dt.date, ...] = ()

    def expected_tickets(self) -> float:
        return sum(s.tickets for s in self.services)


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate the scenario file at `path` (a name such as `demo-day` is looked
    up in `sim/scenarios/`)."""
    path = resolve(path)
    source = str(path)
    data = read_toml(path)
    try:
        return parse_scenario(data, path.parent, source)
    except ConfigError as e:
        raise ConfigError(e.key, e.reason, e.source if e.source != "<config>" else source) from None


def resolve(path: str | Path) -> Path:
    p = Path(path)
    if not p.exists() and not p.suffix and (SCENARIO_DIR / f"{p}.toml").exists():
        return SCENARIO_DIR / f"{p}.toml"
    return p


_TOP = ("scenario", "generate", "arrivals", "profiles", "services", "staff", "evaluation",
        "faults", "staffing", "reminders")


def parse_scenario(data: dict[str, Any], base: Path, source: str = "<scenario>") -> Scenario:
    top = Table(data, "", _TOP)
    head = top.table("scenario", ("name", "description", "hall", "day", "days", "seed"), required=True)
    name = head.text("name")
    description = head.text("description", "")
    services_in = top.tables("services", ("prefix", "name", "kind", "tickets", "profile",
                                          "service_minutes", "spread", "no_show_share",
                                          "transfer_share", "transfer_to"), True)
    if "hall" in head.data and "generate" in top.data:
        head.fail("hall", "give either a hall config file or a [generate] table, not both")
    if "hall" in head.data:
        hall_path = base / head.text("hall")
        if not hall_path.exists():
            head.fail("hall", f"no hall config at {hall_path}")
        hall = load_hall(hall_path)
    elif "generate" in top.data:
        hall = generate_hall(top.table("generate", _GENERATE_KEYS), services_in)
    else:
        head.fail("hall", "missing; expected a hall config file, or a [generate] table")
    days: tuple[dt.date, ...] = ()
    if "days" in head.data:
        if "day" in head.data:
            head.fail("days", "give either one day or a list of days, not both")
        days = _days(head)
        day = next((d for d in days if issuing_spans(hall, d)), None)
        if day is None:
            head.fail("days", "the hall is closed on every one of them; at least one must open")
    else:
        day = head.get("day", "a TOML date such as 2026-11-23", _is_date)
    if not issuing_spans(hall, day):
        why = hall.opening_on(day).closed_reason
        head.fail("day", f"{day} is a {day:%A}; the hall is closed that day"
                  + (f" ({why})" if why else ""))
    seed = head.integer("seed", 0, 2**31 - 1, 1)

    arrivals = top.table("arrivals", ("real_name_share", "priority_share", "profile",
                                      "double_tap_share", "card_left_share"), required=True)
    profiles = _profiles(top)
    default_profile = arrivals.text("profile", next(iter(profiles)))
    if default_profile not in profiles:
        arrivals.fail("profile", f"no profile {default_profile!r}; profiles: {', '.join(profiles)}")
    services = _services(services_in, hall, profiles, default_profile)
    staffing = _staffing(top, hall)
    reminders = top.table("reminders", ("share", "ahead"))
    return Scenario(
        name=name, description=description, source=source, hall=hall, day=day, seed=seed,
        real_name_share=_share(arrivals, "real_name_share"),
        priority_share=_share(arrivals, "priority_share"),
        profiles=profiles, services=services, staff=_staff(top), evaluation=_evaluation(top),
        faults=_faults(top, hall, days or (day,)), staffing=staffing, days=days,
        double_tap_share=_share(arrivals, "double_tap_share", 0.0),
        card_left_share=_share(arrivals, "card_left_share", 0.0),
        reminder_share=_share(reminders, "share", 0.0),
        reminder_ahead=reminders.integer("ahead", 1, 50, 3))


# --- reading values -------------------------------------------------------------


def _is_date(v: object) -> bool:
    return isinstance(v, dt.date) and not isinstance(v, dt.datetime)


def _days(head: Table) -> tuple[dt.date, ...]:
    """[scenario] days: TOML dates, earliest first; closed days may be among them."""
    days = []
    for key, value in head.items("days", expected="an array of TOML dates, earliest first"):
        check(key, value, "a TOML date such as 2026-10-09", _is_date)
        days.append(value)
    if not days:
        head.fail("days", "expected a list of TOML dates, earliest first; found none")
    if sorted(set(days)) != days:
        head.fail("days", "the days must be in order, earliest first, each once")
    return tuple(days)


def _is_number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _number(t: Table, name: str, low: float, high: float, default: Any = ...) -> float:
    expected = f"a number from {low:g} to {high:g}"
    kw = {} if default is ... else {"default": default}
    return float(t.get(name, expected, lambda v: _is_number(v) and low <= v <= high, **kw))


def _share(t: Table, name: str, default: Any = ...) -> float:
    return _number(t, name, 0, 1, default)


def _range(t: Table, name: str, low: float, high: float, default: tuple[float, float]
           ) -> tuple[float, float]:
    expected = f"two numbers [least, most] from {low:g} to {high:g}, least first"
    value = t.get(name, expected, lambda v: isinstance(v, list) and len(v) == 2
                  and all(_is_number(x) and low <= x <= high for x in v) and v[0] <= v[1], default)
    return float(value[0]), float(value[1])


def _time(key: str, value: object) -> dt.time:
    check(key, value, 'a time of day "HH:MM"', _HHMM)
    hh, mm = str(value).split(":")
    try:
        return dt.time(int(hh), int(mm))
    except ValueError:
        raise ConfigError(key, f"{value!r} is not a time of day (hours 00-23, minutes 00-59)") from None


def _timetable(t: Table, name: str, ok, expected: str) -> tuple[tuple[dt.time, Any], ...]:
    """An inline table {"HH:MM" = value, ...} in time order."""
    table = t.get(name, f'a table of times such as {{ "09:00" = {expected} }}',
                  lambda v: isinstance(v, dict) and v)
    points = []
    for hhmm, value in table.items():
        key = f"{t.key(name)}.\"{hhmm}\""
        at = _time(key, hhmm)
        check(key, value, expected, ok)
        points.append((at, value))
    ordered = sorted(points)
    if [p[0] for p in ordered] != [p[0] for p in points]:
        t.fail(name, "times must be in order, earliest first")
    return tuple(ordered)


def _profiles(top: Table) -> dict[str, tuple[tuple[dt.time, float], ...]]:
    """Arrival profiles: the relative arrival rate from each time to the next; 0 stops arrivals."""
    raw = top.get("profiles", 'a table [profiles] of named profiles, e.g. ordinary = { "09:00" = 1 }',
                  lambda v: isinstance(v, dict) and v)
    table = Table(raw, "profiles", tuple(raw))
    profiles = {}
    for name in raw:
        points = _timetable(table, name, lambda v: _is_number(v) and 0 <= v <= 1000,
                            "a relative rate from 0 to 1000")
        if points[-1][1] != 0:
            raise ConfigError(f"profiles.{name}", "the last time must have rate 0 (when arrivals stop)")
        if not any(rate for _, rate in points):
            raise ConfigError(f"profiles.{name}", "every rate is 0; nobody would come")
        profiles[name] = tuple((at, float(rate)) for at, rate in points)
    return profiles


def _services(tables: list[Table], hall: Hall, profiles: dict, default_profile: str
              ) -> tuple[ServiceLoad, ...]:
    out: list[ServiceLoad] = []
    seen: dict[object, str] = {}
    for t in tables:
        prefix = t.get("prefix", "one uppercase letter A-Z", matches("[A-Z]"))
        claim(seen, prefix, t.key("prefix"), "service prefix")
        if prefix not in hall.services:
            t.fail("prefix", f"the hall has no service {prefix!r}; its services: {', '.join(hall.services)}")
        profile = t.text("profile", default_profile)
        if profile not in profiles:
            t.fail("profile", f"no profile {profile!r}; profiles: {', '.join(profiles)}")
        targets = []
        for key, value in t.items("transfer_to", []):
            check(key, value, "a service prefix", lambda v: isinstance(v, str))
            if value not in hall.services or value == prefix:
                raise ConfigError(key, f"expected another service of the hall ({', '.join(hall.services)}), "
                                       f"found {found(value)}")
            targets.append(value)
        transfer = _share(t, "transfer_share", 0.0)
        if transfer and not targets:
            t.fail("transfer_to", "missing; a service with transfer_share names where tickets go")
        out.append(ServiceLoad(
            prefix=prefix, tickets=_number(t, "tickets", 0, 100_000), profile=profile,
            service_minutes=_number(t, "service_minutes", 0.1, 240),
            spread=_number(t, "spread", 0, 3, 0.5), no_show_share=_share(t, "no_show_share", 0.0),
            transfer_share=transfer, transfer_to=tuple(targets)))
    return tuple(out)


_STAFF_KEYS = ("call_delay_seconds", "walk_seconds", "no_show_wait_seconds", "late_login_share",
               "late_login_minutes", "pauses_per_day", "pause_minutes", "pause_spread", "break_share",
               "break_minutes", "absence_share", "absence_minutes", "cover_delay_minutes",
               "supervisor_delay_minutes", "pause_after_finish_share", "forget_finish_share")


def _staff(top: Table) -> StaffBehaviour:
    t = top.table("staff", _STAFF_KEYS)
    d = StaffBehaviour()
    return StaffBehaviour(
        call_delay_seconds=_range(t, "call_delay_seconds", 0, 600, d.call_delay_seconds),
        walk_seconds=_range(t, "walk_seconds", 0, 600, d.walk_seconds),
        no_show_wait_seconds=_number(t, "no_show_wait_seconds", 10, 600, d.no_show_wait_seconds),
        late_login_share=_share(t, "late_login_share", d.late_login_share),
        late_login_minutes=_range(t, "late_login_minutes", 0, 120, d.late_login_minutes),
        pauses_per_day=_number(t, "pauses_per_day", 0, 20, d.pauses_per_day),
        pause_minutes=_number(t, "pause_minutes", 1, 120, d.pause_minutes),
        pause_spread=_number(t, "pause_spread", 0, 3, d.pause_spread),
        break_share=_share(t, "break_share", d.break_share),
        break_minutes=_number(t, "break_minutes", 1, 60, d.break_minutes),
        absence_share=_share(t, "absence_share", d.absence_share),
        absence_minutes=_range(t, "absence_minutes", 1, 240, d.absence_minutes),
        cover_delay_minutes=_number(t, "cover_delay_minutes", 0, 60, d.cover_delay_minutes),
        supervisor_delay_minutes=_number(t, "supervisor_delay_minutes", 0, 60,
                                         d.supervisor_delay_minutes),
        pause_after_finish_share=_share(t, "pause_after_finish_share", d.pause_after_finish_share),
        forget_finish_share=_share(t, "forget_finish_share", d.forget_finish_share))


def _evaluation(top: Table) -> Evaluation:
    t = top.table("evaluation", ("share", "grades", "delay_seconds"))
    d = Evaluation()
    grades = d.grades
    if "grades" in t.data:
        g = t.table("grades", GRADE_KEYS)
        for key in GRADE_KEYS:
            _share(g, key)  # every grade given, each a share
        grades = tuple(float(g.data[k]) for k in GRADE_KEYS)
        if abs(sum(grades) - 1) > 0.001:
            t.fail("grades", f"the shares add up to {sum(grades):g}; expected 1")
    return Evaluation(share=_share(t, "share", d.share), grades=grades,
                      delay_seconds=_range(t, "delay_seconds", 0, 55, d.delay_seconds))


def _faults(top: Table, hall: Hall, days: tuple[dt.date, ...]) -> tuple[Fault, ...]:
    out = []
    for t in top.tables("faults", ("at", "kind", "minutes", "window", "behind_hours", "day"), False):
        at = _time(t.key("at"), t.data.get("at"))
        kind = t.choice("kind", FAULT_KINDS)
        window = None
        day = None
        if "day" in t.data:
            day = t.get("day", "a TOML date, one of the scenario's days", _is_date)
            if day not in days:
                t.fail("day", f"{day} is not one of the scenario's days")
        behind = 0.0
        if kind == "clock_back":
            # a clock set back: a dead RTC battery, a wrong NTP server; a week is 168 hours
            behind = _number(t, "behind_hours", 0.1, 24 * 400)
        elif "behind_hours" in t.data:
            t.fail("behind_hours", f"only clock_back sets the clock back, not {kind}")
        if kind == "display_unplugged":
            window = t.integer("window", 1, 9999)
            if window not in hall.windows:
                t.fail("window", f"the hall has no window {window}")
        elif "window" in t.data:
            t.fail("window", f"only display_unplugged names a window, not {kind}")
        out.append(Fault(at, kind, _number(t, "minutes", 0.1, 600), window, behind, day))
    return tuple(sorted(out, key=lambda f: f.at))


def _staffing(top: Table, hall: Hall) -> tuple[tuple[dt.time, int], ...]:
    t = top.table("staffing", ("open_windows",))
    if "open_windows" not in t.data:
        return ()
    n = len(hall.windows)
    return tuple((at, int(v)) for at, v in _timetable(
        t, "open_windows", lambda v: is_int(v) and 0 <= v <= n, f"a number of windows from 0 to {n}"))


# --- a generated hall ---------------------------------------------------------------

_GENERATE_KEYS = ("name", "region_code", "sessions", "breaks", "windows", "floaters", "rules")


def generate_hall(g: Table, services: list[Table]) -> Hall:
    """A hall config built from window groups, validated like a hall config file."""
    sessions = [v for _, v in g.items("sessions")]
    breaks = [v for _, v in g.items("breaks", [])]
    day = {"sessions": sessions, "breaks": breaks}
    pin = hash_pin(DEMO_PIN, iterations=1000)
    svc = []
    for t in services:
        svc.append({"prefix": t.data.get("prefix"), "name": t.data.get("name", f"业务 {t.data.get('prefix')}"),
                    "kind": t.data.get("kind", "综合"),
                    "mean_minutes": t.data.get("service_minutes")})
    windows, staff = [], []
    groups = g.tables("windows", ("count", "services", "kind", "tidal"), True)
    number = 0
    for grp in groups:
        count = grp.integer("count", 1, 2000)
        served = grp.get("services", "an array of service prefixes", lambda v: isinstance(v, list) and v)
        for _ in range(count):
            number += 1
            windows.append({"number": number, "name": f"{number}号窗口",
                            "kind": grp.data.get("kind", "综合受理"), "services": served,
                            "tidal": grp.flag("tidal", False)})
    if number > 9999:
        g.fail("windows", f"{number} windows; a hall has at most 9999")
    for w in windows:
        n = w["number"]
        neighbours = [m for m in (n - 1, n + 1) if 1 <= m <= number and
                      windows[m - 1]["services"] == w["services"]]
        staff.append({"id": f"w{n:04d}", "name": f"员工{n}", "role": "staff", "pin_hash": pin,
                      "a_post": [n], "b_post": neighbours, "demo": True})
    floaters = g.integer("floaters", 0, 500, 0)
    for i in range(1, floaters + 1):
        staff.append({"id": f"float{i:03d}", "name": f"机动{i}", "role": "staff", "pin_hash": pin,
                      "b_post": list(range(i, number + 1, floaters)), "demo": True})
    staff.append({"id": "supervisor", "name": "值班长", "role": "supervisor", "pin_hash": pin,
                  "demo": True})
    data = {
        "hall": {"name": g.text("name"), "region_code": g.data.get("region_code", "500101"),
                 "timezone": "Asia/Shanghai"},
        "hours": {d: day for d in ("mon", "tue", "wed", "thu", "fri")},
        "rules": g.data.get("rules", {}),
        "services": svc, "windows": windows, "staff": staff,
        "voice": {"enabled": False},
    }
    try:
        # opening days follow the working-day calendar, as a hall config file's do (holidays
        # closed, 调休 days open with the weekday's hours)
        return parse_hall(data, "[generate]", hall_calendar(HOLIDAYS if HOLIDAYS.exists() else None))
    except ConfigError as e:
        # the generated file's keys, said in the scenario's words where they differ
        key = e.key.replace("hours.mon.", "generate.").replace("rules.", "generate.rules.")
        if key.startswith("services["):
            key = key.replace(".mean_minutes", ".service_minutes")
        raise ConfigError(key, e.reason) from None
