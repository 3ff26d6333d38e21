"""Who comes to the hall on a simulated day, and what each member of staff will do: drawn
once from the scenario and the seed, before the day runs.

Everything random about the day is drawn here, each kind from a stream of its own
(`Random(f"{seed}:citizens")`, ...), so a seed gives the same day, and two runs
that differ only in staffing (`hallctl sim plan`) meet the same citizens with the
same business: common random numbers, so a staffing change is compared on
equal terms.
"""

from __future__ import annotations

import datetime as dt
import math
import random
from dataclasses import dataclass, field
from itertools import pairwise

from controller.core.hall import StaffRole, TimeSpan
from controller.core.identity import check_digit
from sim.scenario import Scenario, ServiceLoad, StaffBehaviour

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程"
GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华建国红梅志强玉兰"
PRIORITY_CLASSES = ("disabled", "pregnant", "ill")


@dataclass
class Citizen:
    """One visitor: when they come, for what, and how their visit will go."""

    index: int
    service: str
    arrives: float  # seconds after midnight
    id_number: str | None
    name: str | None
    phone: str | None
    priority: str | None  # given at the guidance desk (导办台); the elderly get theirs from the card
    service_seconds: float
    walk_seconds: float
    absent: bool  # not there when called (过号)
    transfer_to: str | None
    transfer_seconds: float  # time at the first window before the transfer
    grade: int | None  # 1-5 on the pad (1 非常满意 … 5 非常不满意), None: does not grade
    grade_delay: float
    double_tap: bool = False  # taps the service button twice; the page sends one request key
    card_left: bool = False  # walks away leaving the ID card on the kiosk's reader
    reminder: str | None = None  # a mobile left at the kiosk for 到号提醒 text messages
    # filled in as the day runs
    ticket: str | None = None
    tickets: list[str] = field(default_factory=list)  # every ticket issued for them
    graded_visit: str | None = None  # the ticket whose pad prompt reached them, and they pressed


@dataclass
class StaffPlan:
    """What one window's staff will do besides serving: lateness, pauses, breaks, an absence."""

    late: dict[int, float] = field(default_factory=dict)  # session index -> seconds late
    pauses: list[tuple[float, float, int]] = field(default_factory=list)  # (due, seconds, reason)
    absence: tuple[float, float] | None = None  # (from, seconds)
    # the window's visits (1 = its first) after which staff pause at once: visit -> seconds
    pause_after_finish: dict[int, float] = field(default_factory=dict)
    forgets: bool = False  # leaves the last visit of the day unfinished (no finish, no logout)


def seconds(t: dt.time) -> float:
    return t.hour * 3600 + t.minute * 60 + t.second


def lognormal(rng: random.Random, mean: float, spread: float) -> float:
    """A lognormal draw with the given mean and coefficient of variation."""
    if spread <= 0:
        return mean
    sigma2 = math.log(1 + spread * spread)
    return rng.lognormvariate(math.log(mean) - sigma2 / 2, math.sqrt(sigma2))


def _poisson(rng: random.Random, mean: float) -> int:
    """Knuth's method for small means, a rounded normal for large ones (deterministic either way)."""
    if mean <= 0:
        return 0
    if mean > 60:
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit, k, p = math.exp(-mean), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def arrival_times(rng: random.Random, load: ServiceLoad,
                  profile: tuple[tuple[dt.time, float], ...]) -> list[float]:
    """A non-homogeneous Poisson process: the expected `load.tickets` spread by the profile's
    piecewise-constant rates."""
    pieces = [(seconds(a), seconds(b), rate) for (a, rate), (b, _) in pairwise(profile)]
    weight = sum((b - a) * rate for a, b, rate in pieces)
    times = []
    for a, b, rate in pieces:
        n = _poisson(rng, load.tickets * (b - a) * rate / weight)
        times += [rng.uniform(a, b) for _ in range(n)]
    return sorted(times)


def _id_number(rng: random.Random, region: str, day: dt.date, index: int, elderly: bool) -> str:
    age = rng.randint(70, 90) if elderly else rng.randint(18, 69)
    born = dt.date(day.year - age, rng.randint(1, 12), rng.randint(1, 28))
    first17 = f"{region}{born:%Y%m%d}{index % 1000:03d}"
    return first17 + check_digit(first17)


def citizens(scenario: Scenario, seed: int) -> list[Citizen]:
    """Every visitor of the day, in arrival order."""
    rng = random.Random(f"{seed}:citizens")
    loads = {s.prefix: s for s in scenario.services}
    staff = scenario.staff
    grades = scenario.evaluation
    # the kiosk habits come from a stream of their own: turning them on changes no one's business
    habits = random.Random(f"{seed}:kiosk-habits")
    texts = random.Random(f"{seed}:reminders")
    out: list[Citizen] = []
    drawn = [(t, s.prefix) for s in scenario.services
             for t in arrival_times(rng, s, scenario.profiles[s.profile])]
    drawn.sort()
    for i, (arrives, prefix) in enumerate(drawn):
        load = loads[prefix]
        real_name = rng.random() < scenario.real_name_share
        priority_flag = rng.random() < scenario.priority_share
        id_number = name = phone = priority = None
        if real_name:
            # region digits vary so that 1,000 citizens a day never share a number
            region = f"5001{(i // 1000) % 100:02d}"
            id_number = _id_number(rng, region, scenario.day, i, elderly=priority_flag)
            name = rng.choice(SURNAMES) + rng.choice(GIVEN) + (rng.choice(GIVEN) if rng.random() < 0.6 else "")
            phone = f"13{rng.randint(0, 9)}{rng.randint(0, 99_999_999):08d}"
        elif priority_flag:
            priority = rng.choice(PRIORITY_CLASSES)
        transfer_to = (rng.choice(load.transfer_to)
                       if load.transfer_to and rng.random() < load.transfer_share else None)
        own = lognormal(rng, load.service_minutes, load.spread) * 60
        target = loads.get(transfer_to) if transfer_to else None
        if transfer_to:
            # a first look at the business, then the rest of it at the right window
            first = own * rng.uniform(0.15, 0.4)
            rest = (lognormal(rng, target.service_minutes, target.spread) * 60 if target
                    else lognormal(rng, scenario.hall.services[transfer_to].mean_minutes, 0.5) * 60)
        else:
            first, rest = 0.0, own
        graded = rng.random() < grades.share
        grade = rng.choices(range(1, 6), weights=grades.grades)[0] if graded else None
        out.append(Citizen(
            index=i, service=prefix, arrives=arrives, id_number=id_number, name=name, phone=phone,
            priority=priority, service_seconds=rest,
            walk_seconds=rng.uniform(*staff.walk_seconds),
            absent=rng.random() < load.no_show_share, transfer_to=transfer_to,
            transfer_seconds=first, grade=grade, grade_delay=rng.uniform(*grades.delay_seconds),
            double_tap=habits.random() < scenario.double_tap_share,
            card_left=habits.random() < scenario.card_left_share and real_name,
            reminder=(phone or f"15{texts.randint(0, 999_999_999):09d}")
            if texts.random() < scenario.reminder_share else None))
    return out


def staff_plans(scenario: Scenario, seed: int) -> dict[int, StaffPlan]:
    """Per window (its A post's day): late logins, pauses, a break, an absence."""
    rng = random.Random(f"{seed}:staff")
    hall = scenario.hall
    behaviour = scenario.staff
    hours = hall.hours_on(scenario.day)
    sessions = [(seconds(s.start), seconds(s.end)) for s in hours.sessions]
    open_seconds = sum(b - a for a, b in sessions)
    plans: dict[int, StaffPlan] = {}
    for number in sorted(hall.windows):
        plan = StaffPlan(late=_late_logins(rng, behaviour, len(sessions)))
        pauses = _poisson(rng, behaviour.pauses_per_day)
        for _ in range(pauses if sessions else 0):  # a day with no session has no pause
            due = _moment_in(sessions, rng.uniform(0, open_seconds))
            length = lognormal(rng, behaviour.pause_minutes, behaviour.pause_spread) * 60
            plan.pauses.append((due, length, rng.choice((1, 1, 2, 3))))
        plan.pauses += _breaks_taken(rng, behaviour, hours.breaks)
        if sessions and rng.random() < behaviour.absence_share:
            a, b = sessions[-1]
            start = rng.uniform(a + 600, a + (b - a) * 0.6)
            plan.absence = (start, rng.uniform(*behaviour.absence_minutes) * 60)
        plan.pauses.sort()
        plans[number] = plan
    after = random.Random(f"{seed}:pause-after-finish")
    for number in sorted(hall.windows):
        plans[number].pause_after_finish = _pauses_after_finish(after, behaviour)
    if behaviour.forget_finish_share:
        # a stream of its own: a scenario without forgetful staff draws the same day as before
        forget = random.Random(f"{seed}:forgetting")
        for number in sorted(plans):
            plans[number].forgets = forget.random() < behaviour.forget_finish_share
    return plans


def _late_logins(rng: random.Random, behaviour: StaffBehaviour, sessions: int) -> dict[int, float]:
    """Session index -> seconds late logging in."""
    late: dict[int, float] = {}
    for k in range(sessions):
        if rng.random() < behaviour.late_login_share:
            late[k] = rng.uniform(*behaviour.late_login_minutes) * 60
    return late


def _moment_in(sessions: list[tuple[float, float]], x: float) -> float:
    """The moment `x` seconds into the day's open time (its sessions laid end to end); a draw
    at the very end of the open time is the last session's end."""
    for a, b in sessions:
        if x < b - a:
            return a + x
        x -= b - a
    return sessions[-1][1]


def _breaks_taken(rng: random.Random, behaviour: StaffBehaviour,
                  breaks: tuple[TimeSpan, ...]) -> list[tuple[float, float, int]]:
    """The hall's breaks this window's staff take: (start, seconds, reason 5)."""
    taken: list[tuple[float, float, int]] = []
    for brk in breaks:
        if rng.random() < behaviour.break_share:
            start = rng.uniform(seconds(brk.start), max(seconds(brk.start),
                                                        seconds(brk.end) - behaviour.break_minutes * 60))
            taken.append((start, behaviour.break_minutes * 60, 5))
    return taken


MOST_VISITS = 400  # a window's visits in a day, far above any hall's


def _pauses_after_finish(rng: random.Random, behaviour: StaffBehaviour) -> dict[int, float]:
    """Each visit is followed by a pause with the scenario's share: the gaps between them are
    geometric, drawn up to `MOST_VISITS`."""
    share = behaviour.pause_after_finish_share
    out: dict[int, float] = {}
    visit = 0
    while share > 0:
        gap = 0 if share >= 1 else int(math.log(1 - rng.random()) / math.log(1 - share))
        visit += 1 + gap
        if visit > MOST_VISITS:
            break
        out[visit] = lognormal(rng, behaviour.pause_minutes, behaviour.pause_spread) * 60
    return out


def a_post_staff(scenario: Scenario) -> dict[int, str]:
    """Each window's own member of staff (its A post); windows without one cannot open."""
    out: dict[int, str] = {}
    for s in scenario.hall.staff.values():
        if s.role is StaffRole.STAFF:
            for n in s.a_post:
                out.setdefault(n, s.id)
    return out
