"""`hallctl sim run` and `hallctl sim plan`, found by hallctl through the `hallctl.sim` entry
points (pyproject.toml), so the controller never imports the simulator."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import resource
import sys
import time
from pathlib import Path

from sim.day_report import figures, page, run_figures, run_page, run_text, text
from sim.hallday import HallDay
from sim.multiday import HallRun
from sim.plan import make_plan
from sim.scenario import load_scenario


@contextlib.contextmanager
def _quiet():
    # a pulled display cable is reported to the controller as device health and in the
    # report; the drivers' own log lines for every failed write would drown the progress bar
    loggers = [logging.getLogger(name) for name in ("drivers", "controller", "sim")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


class ProgressBar:
    """[#####.....]  45%  10:35 on stderr; on a file or a CI log, a line every 10%."""

    def __init__(self, label: str, stream=sys.stderr) -> None:
        self.label, self.stream = label, stream
        self.tty = stream.isatty()
        self.shown = -1

    def __call__(self, fraction: float, clock: str) -> None:
        pct = int(fraction * 100)
        if self.tty:
            bar = "#" * (pct // 4) + "." * (25 - pct // 4)
            self.stream.write(f"\r{self.label} [{bar}] {pct:3d}%  {clock}")
            self.stream.flush()
        elif pct // 10 != self.shown:
            self.shown = pct // 10
            self.stream.write(f"{self.label}: {pct}% ({clock})\n")

    def done(self) -> None:
        if self.tty:
            self.stream.write("\n")


def _speed(value: str | None) -> float | None:
    if value in (None, "max"):
        return None
    return float(value)


def run(args: argparse.Namespace) -> int:
    with _quiet():
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    scenario = load_scenario(args.scenario)
    seed = scenario.seed if args.seed is None else args.seed
    bar = None if args.quiet else ProgressBar(f"{scenario.name} seed {seed}")
    if scenario.days:
        return _run_days(args, scenario, seed, bar)
    t0, cpu0 = time.perf_counter(), _cpu()
    day = HallDay(scenario, seed=seed, speed=_speed(args.speed), progress=bar).run()
    wall, cpu = time.perf_counter() - t0, _cpu() - cpu0
    if bar:
        bar.done()
    f = figures(day)
    sys.stdout.write(text(f))
    html_path = Path(args.html or f"sim-{scenario.name}-seed{seed}.html")
    html_path.write_text(page(f, day), encoding="utf-8")
    if args.json:
        Path(args.json).write_text(json.dumps(f, ensure_ascii=False, indent=1), encoding="utf-8")
    print(f"\nsimulated {len(day.statuses)} tickets, {day.commands} commands in {wall:.1f} s wall "
          f"({cpu:.1f} s CPU); report page: {html_path}", file=sys.stderr)
    return 0 if all(not bad for bad in day.invariants.values()) else 1


def _run_days(args: argparse.Namespace, scenario, seed: int, bar: ProgressBar | None) -> int:
    """A scenario of several days (`[scenario] days`): one report for the run and its days."""
    t0, cpu0 = time.perf_counter(), _cpu()
    run = HallRun(scenario, seed=seed, progress=bar).run()
    wall, cpu = time.perf_counter() - t0, _cpu() - cpu0
    if bar:
        bar.done()
    f = run_figures(run)
    sys.stdout.write(run_text(f))
    html_path = Path(args.html or f"sim-{scenario.name}-seed{seed}.html")
    html_path.write_text(run_page(f), encoding="utf-8")
    if args.json:
        Path(args.json).write_text(json.dumps(f, ensure_ascii=False, indent=1), encoding="utf-8")
    print(f"\nsimulated {len(run.days)} days, {run.commands} commands in {wall:.1f} s wall "
          f"({cpu:.1f} s CPU); report page: {html_path}", file=sys.stderr)
    days_hold = all(not bad for d in run.days if d.record for bad in d.record.invariants.values())
    return 0 if days_hold and all(not bad for bad in run.invariants.values()) else 1


def plan(args: argparse.Namespace) -> int:
    with _quiet():
        return _plan(args)


def _plan(args: argparse.Namespace) -> int:
    scenario = load_scenario(args.scenario)
    seeds = tuple(args.seed) if args.seed else (scenario.seed,)
    t0 = time.perf_counter()
    result = make_plan(scenario, args.p90_wait, seeds,
                       progress=None if args.quiet else lambda s: print(f"  {s}", file=sys.stderr))
    sys.stdout.write(result.text())
    print(f"\n{result.runs} simulated days in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return 0


def _cpu() -> float:
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime
