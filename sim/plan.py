"""`hallctl sim plan`: the fewest open windows, hour by hour, that keep the P90 wait under a
target, found by running the scenario again and again.

Hours are taken in order. For each, the number of open windows is searched by
halving (the day's earlier hours as already planned, the later ones with every
window open), judged on the P90 wait of the tickets issued in that hour (a ticket
taken before the windows open counts for the hour they open). A last pass runs
the whole plan and adds windows to any hour still over the target, since fewer
windows in a later hour can lengthen the waits of tickets issued just before it.
Which windows open is `hallday.staffing_order`: each next window is the one whose
services are least covered for their expected work. Every run meets the same
citizens (common random numbers, `sim.population`), so two staffings are
compared on the same day.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Callable

from controller.backoffice.hall_reports import percentile
from sim.hallday import HallDay, staffing_order
from sim.population import seconds
from sim.scenario import Scenario


@dataclass
class HourPlan:
    hour: int
    windows: int
    tickets: int
    p90: float | None


@dataclass
class Plan:
    scenario: str
    target: float
    seeds: tuple[int, ...]
    hours: list[HourPlan]
    order: list[int]
    runs: int
    full_p90: dict[int, float | None]

    def staffing(self) -> tuple[tuple[dt.time, int], ...]:
        return tuple((dt.time(h.hour), h.windows) for h in self.hours)

    def text(self) -> str:
        lines = [f"{self.scenario}: fewest open windows per hour for a P90 wait of at most "
                 f"{self.target:g} minutes (seeds {', '.join(map(str, self.seeds))}; "
                 f"{self.runs} simulated days)", "",
                 "hour    open windows   tickets   P90 wait (min)   with every window open"]
        for h in self.hours:
            full = self.full_p90.get(h.hour)
            mark = "" if h.p90 is None or h.p90 <= self.target else "  over: every window is not enough"
            lines.append(f"{h.hour:02d}:00   {h.windows:>12}   {h.tickets:>7}   "
                         f"{_m(h.p90):>14}   {_m(full):>22}{mark}")
        most = max((h.windows for h in self.hours), default=0)
        lines += ["", "windows in opening order: " + ", ".join(map(str, self.order[:most])),
                  "", "as a scenario's [staffing] table:",
                  "open_windows = { " + ", ".join(f'"{h.hour:02d}:00" = {h.windows}' for h in self.hours) + " }"]
        return "\n".join(lines) + "\n"


def _m(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}"


def _hours(scenario: Scenario) -> list[int]:
    sessions = scenario.hall.hours_on(scenario.day).sessions
    hours: list[int] = []
    for s in sessions:
        h = s.start.hour
        while dt.time(h) < s.end:
            if h not in hours:
                hours.append(h)
            h += 1
    return hours


def _hour_of(issued: float, scenario: Scenario) -> int:
    for s in scenario.hall.hours_on(scenario.day).sessions:
        if issued < seconds(s.end):
            return int(max(issued, seconds(s.start)) // 3600)
    return int(issued // 3600)


class _Trials:
    """Simulated days for a staffing (windows open per hour), run once for every seed and
    remembered: the P90 wait and the tickets of each hour."""

    def __init__(self, scenario: Scenario, seeds: tuple[int, ...], hours: list[int]) -> None:
        self.scenario, self.seeds, self.hours = scenario, seeds, hours
        self.runs = 0
        self.cache: dict[tuple[int, ...], dict[int, tuple[int, float | None]]] = {}

    def p90s(self, counts: dict[int, int]) -> dict[int, tuple[int, float | None]]:
        key = tuple(counts[h] for h in self.hours)
        if key in self.cache:
            return self.cache[key]
        staffing = tuple((dt.time(h), counts[h]) for h in self.hours)
        waits: dict[int, list[float]] = {h: [] for h in self.hours}
        for seed in self.seeds:
            day = HallDay(self.scenario, seed=seed, staffing=staffing, displays=False).run()
            self.runs += 1
            for t in day.tickets.values():
                if t.first_called is not None:
                    waits.setdefault(_hour_of(t.issued, self.scenario), []).append((t.first_called - t.issued) / 60)
        out = {h: (len(w), percentile(sorted(w), 0.9) if w else None) for h, w in waits.items()}
        self.cache[key] = out
        return out


def _within(result: dict[int, tuple[int, float | None]], h: int, target: float) -> bool:
    p = result.get(h, (0, None))[1]
    return p is None or p <= target


def _fewest_windows(trials: _Trials, counts: dict[int, int], h: int, n_all: int, target: float) -> int:
    """The fewest windows open in hour `h` that keep its P90 wait within the target, found by
    halving; every window when even every window is not enough."""
    lo, hi = 1, n_all
    if not _within(trials.p90s(counts), h, target):
        lo = n_all  # every window is not enough: keep them all
    while lo < hi:
        mid = (lo + hi) // 2
        trial = {**counts, h: mid}
        if _within(trials.p90s(trial), h, target):
            hi = mid
        else:
            lo = mid + 1
    return lo


def _add_where_still_over(trials: _Trials, counts: dict[int, int], hours: list[int], n_all: int,
                          target: float) -> None:
    """The whole plan run again, windows added to any hour still over the target."""
    for _ in range(len(hours) * 4):
        result = trials.p90s(counts)
        over = [h for h in hours if not _within(result, h, target) and counts[h] < n_all]
        if not over:
            break
        for h in over:
            counts[h] = min(n_all, counts[h] + max(1, n_all // 20))


def make_plan(scenario: Scenario, target: float, seeds: tuple[int, ...] = (1,),
              progress: Callable[[str], None] | None = None) -> Plan:
    order = staffing_order(scenario)
    n_all = len(order)
    hours = _hours(scenario)
    trials = _Trials(scenario, seeds, hours)
    counts = {h: n_all for h in hours}
    full = {h: v[1] for h, v in trials.p90s(counts).items()}
    for h in hours:
        counts[h] = _fewest_windows(trials, counts, h, n_all, target)
        if progress:
            progress(f"{h:02d}:00 -> {counts[h]} windows ({trials.runs} runs)")
    _add_where_still_over(trials, counts, hours, n_all, target)
    result = trials.p90s(counts)
    return Plan(scenario.name, target, seeds,
                [HourPlan(h, counts[h], result.get(h, (0, None))[0], result.get(h, (0, None))[1])
                 for h in hours], order, trials.runs, full)
