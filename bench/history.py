"""make bench-history: what a long history costs the floor.

    make bench-history                        # = python -m bench.history; rewrites docs/benchmarks.md
    python -m bench.history --tickets 2000    # a small pass that only prints

The demo hall (`config/demo-hall.toml`, 20 windows) is given N working days of busy history
(`generate`): ten days lived through the real engine and store (every window logged in before
opening, each ticket issued, called, finished and graded, one in a hundred a bad review for
the case desk), the later days copies of those ten under their own dates, rows appended in
order (`replicate`: batch days, minutes instead of an hour). The generation writes without
fsync; what is measured then runs on the hall's own durable store:

- the month's hall report and the whole range's (by service), on a read-only connection;
- restart to serving: opening the store and the controller and the case desk's catch-up;
- bytes per ticket on disk, the database after a checkpoint, its events and commands included.

Benchmarks inform and never gate CI; a missed target is printed as MISS.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import sqlite3
import sys
import tempfile
import threading
import time
from pathlib import Path
from zoneinfo import ZoneInfo

from bench.core import DOCS, ROOT, Result, Run, machine, section, write_docs
from controller.backoffice import hall_reports as hr
from controller.backoffice.cases import CaseDesk
from controller.cli import DB_NAME, open_hall
from controller.runtime.clock import ManualClock
from controller.config.hall import load_hall
from controller.core import commands as c
from controller.core.callbacks import CaseRules
from controller.core.errors import HallError
from controller.core.hall import Hall
from controller.core.hours import issuing_spans
from controller.config.workdays import hall_calendar
from controller.store.replay import EventReader

START, END = "<!-- bench-history:start -->", "<!-- bench-history:end -->"
COMMAND = "make bench-history"
DEMO = ROOT / "config" / "demo-hall.toml"
TICKETS = 200_000
PER_DAY = 2_000  # a busy 20-window hall: 100 a window a day
TARGETS = {"month": 100.0, "range": 500.0, "restart": 1000.0, "bytes": 1024.0, "call": 20.0}
CALLS, PACE, REPLAYED = 200, 0.01, 5_000  # call-nexts beside the reports, their pace, events replayed
# the mix of grades given on the pads (非常满意 … 非常不满意), one in a hundred a bad review
GRADES = [("非常满意", 80), ("满意", 14), ("基本满意", 5), ("不满意", 1)]


def working_days(hall: Hall, first: dt.date, count: int) -> list[dt.date]:
    days, day = [], first
    while len(days) < count:
        if hall.hours_on(day) is not None and hall.hours_on(day).sessions:
            days.append(day)
        day += dt.timedelta(days=1)
    return days


def issue_moments(hall: Hall, day: dt.date, count: int) -> list[dt.datetime]:
    """`count` moments spread evenly over the times of `day` at which tickets are taken."""
    tz = ZoneInfo(hall.timezone)
    spans = [(dt.datetime.combine(day, a, tz), dt.datetime.combine(day, b, tz))
             for a, b in issuing_spans(hall, day)]
    total = sum((b - a).total_seconds() for a, b in spans)
    out = []
    for i in range(count):
        at = total * (i + 0.5) / count
        for a, b in spans:
            if at < (b - a).total_seconds():
                out.append(a + dt.timedelta(seconds=at))
                break
            at -= (b - a).total_seconds()
    return out


def generate(data_dir: Path, tickets: int = TICKETS, per_day: int = PER_DAY, seed: int = 1,
             first: dt.date = dt.date(2026, 3, 2)) -> Hall:
    """A hall database in `data_dir` holding `tickets` tickets over as many working days as
    `per_day` makes, written through the real engine and store."""
    hall = load_hall(DEMO)
    tz = ZoneInfo(hall.timezone)
    rng = random.Random(seed)
    clock = ManualClock(dt.datetime.combine(first, dt.time(8, 0), tz))
    ctrl, _ = open_hall(hall, data_dir, clock, durable=False)
    desk = CaseDesk(ctrl, hall_calendar(None), CaseRules.from_rules(hall.rules))
    desk.start()
    windows = {n: w.services for n, w in hall.windows.items()}
    staff = {s.a_post[0]: s.id for s in hall.staff.values() if s.a_post}
    services = sorted({s for serves in windows.values() for s in serves})
    grades, weights = zip(*GRADES, strict=True)
    days = working_days(hall, first, -(-tickets // per_day))
    left = tickets
    for day in days[:TEMPLATE_DAYS]:
        clock.now = dt.datetime.combine(day, dt.time(8, 20), tz)
        for n in windows:
            ctrl.execute(c.Login(n, staff[n]), f"staff:{staff[n]}")
        today = min(per_day, left)
        moments = issue_moments(hall, day, today)
        for moment in moments:
            clock.now = moment
            service = rng.choice(services)
            ctrl.execute(c.IssueTicket(service), "kiosk")
            n = rng.choice([w for w, serves in windows.items() if service in serves])
            try:
                ctrl.execute(c.CallNext(n), f"staff:{staff[n]}")
            except HallError:
                continue  # the window had nothing for it: the ticket waits for the next call
            ctrl.execute(c.Finish(n), f"staff:{staff[n]}")
            ctrl.execute(c.Evaluate(n, rng.choices(grades, weights)[0], "pad"), f"pad:{n}")
        left -= today
        clock.now = dt.datetime.combine(day, dt.time(17, 40), tz)
        for n in windows:
            try:
                ctrl.execute(c.Logout(n, requeue_current=True), f"staff:{staff[n]}")
            except HallError:
                pass
    desk.stop()
    ctrl.store.close()
    replicate(data_dir, hall, days, per_day, tickets)
    return hall


TEMPLATE_DAYS = 10  # days lived through the engine; the rest are copies of them


def replicate(data_dir: Path, hall: Hall, days: list[dt.date], per_day: int, tickets: int) -> None:
    """Fill `days` past the lived ones with copies of them: every row of a lived day (tickets,
    commands, events, cases, anonymous bad reviews, its summary) again under a later date, the
    logs appended in order. Much faster than living each day, and the same rows a day of the hall writes."""
    conn = sqlite3.connect(data_dir / DB_NAME, isolation_level=None)
    conn.execute("PRAGMA synchronous=OFF")
    lived, rest = days[:TEMPLATE_DAYS], days[TEMPLATE_DAYS:]
    left = tickets - per_day * len(lived)
    conn.execute("BEGIN")
    ranges = {day: log_ranges(conn, day) for day in lived}
    last = None
    for i, day in enumerate(rest):
        if left <= 0:
            break
        src = lived[i % len(lived)]
        a, b = src.isoformat(), day.isoformat()
        a8, b8 = f"{src:%Y%m%d}", f"{day:%Y%m%d}"

        def moved(v, a=a, b=b, a8=a8, b8=b8):
            return v.replace(a, b).replace(a8, b8) if isinstance(v, str) else v

        # the logs' own tables (migration 15: `commands` and `events` are views of them)
        (c0, c1), (e0, e1) = ranges[src]
        nc = conn.execute("SELECT MAX(id) FROM command_log").fetchone()[0] + 1 - c0
        ne = conn.execute("SELECT MAX(id) FROM event_log").fetchone()[0] + 1 - e0
        for table, where, shift in (
                ("tickets", "day = ?", None), ("cases", "day = ?", None),
                ("anonymous_bad_reviews", "day = ?", None),
                ("command_log", "id BETWEEN ? AND ?", "commands"),
                ("event_log", "id BETWEEN ? AND ?", "events"),
                # a day's summary, kept as the day closed (a lived day closed with its summary)
                ("day_figures", "day = ?", None), ("day_summaries", "day = ?", None)):
            cols = [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]
            args = [a] if shift is None else ([c0, c1] if shift == "commands" else [e0, e1])
            rows = []
            for r in conn.execute(f"SELECT * FROM {table} WHERE {where}", args).fetchall():
                row = dict(zip(cols, r, strict=True))
                if shift == "commands":
                    row["id"] += nc
                    if isinstance(row["at"], int):  # microseconds on the wall clock (migration 17)
                        row["at"] += (day - src).days * 86_400_000_000
                elif shift == "events":
                    row["id"] += ne
                    row["command_id"] += nc
                rows.append([moved(row[c]) for c in cols])
            conn.executemany(f"INSERT INTO {table} VALUES ({', '.join('?' for _ in cols)})", rows)
        left -= per_day
        last = b
    if last is not None:  # the hall's day is the last day it lived
        conn.execute("UPDATE meta SET value = ? WHERE key = 'day'", [last])
    conn.execute("INSERT INTO meta (key, value) VALUES ('cases_seen_event', "
                 "(SELECT MAX(id) FROM event_log)) ON CONFLICT (key) DO UPDATE SET value = excluded.value")
    conn.execute("COMMIT")
    conn.close()


def log_ranges(conn: sqlite3.Connection, day: dt.date) -> tuple[tuple[int, int], tuple[int, int]]:
    """The first and last ids of the commands and of the events of a lived `day` (a command's
    moment is stored as microseconds on the hall's wall clock, migration 17)."""
    start = (dt.datetime.combine(day, dt.time()) - dt.datetime(1970, 1, 1)) // dt.timedelta(microseconds=1)
    (c0, c1), = conn.execute("SELECT MIN(id), MAX(id) FROM command_log WHERE at >= ? AND at < ?",
                             [start, start + 86_400_000_000])
    (e0, e1), = conn.execute("SELECT MIN(id), MAX(id) FROM event_log WHERE command_id BETWEEN ? AND ?",
                             [c0, c1])
    return (c0, c1), (e0, e1)


def measure(data_dir: Path, hall: Hall, run: Run) -> None:
    path = data_dir / DB_NAME
    clock = ManualClock(dt.datetime.now(ZoneInfo(hall.timezone)))
    # one start first, as the hall had before: a restart finds its schema up to date, and is
    # timed as the next start, its current day the history's last (a busy day to restore)
    ctrl, _ = open_hall(hall, data_dir, clock)
    ctrl.store.close()
    t0 = time.perf_counter()
    ctrl, _ = open_hall(hall, data_dir, clock)
    desk = CaseDesk(ctrl, hall_calendar(None), CaseRules.from_rules(hall.rules))
    desk.start()
    restart = (time.perf_counter() - t0) * 1000
    try:
        t = time.perf_counter()
        ctrl.tick()  # the next day begins: every day of the history is closed, the last summarised
        day_change_ms = (time.perf_counter() - t) * 1000
        with ctrl.store.reads.snapshot() as db:
            summarised = db.execute("SELECT COUNT(*) FROM day_summaries").fetchone()[0]
        with ctrl.store.reads.snapshot() as db:
            first, last, tickets = db.execute(
                "SELECT MIN(day), MAX(day), COUNT(*) FROM tickets").fetchone()
        first, last = dt.date.fromisoformat(first), dt.date.fromisoformat(last)
        month = last.replace(day=1)

        def report(day_from: dt.date) -> float:
            t = time.perf_counter()
            with ctrl.store.reads.snapshot() as db:
                hr.hall_figures(db, hall, day_from, last, "service", clock())
            return (time.perf_counter() - t) * 1000

        # the first report summarises the closed days that have no summary yet and keeps them;
        # the figures are the reports that follow
        first_ms = report(first)
        with ctrl.store.reads.snapshot() as db:
            days = db.execute("SELECT COUNT(DISTINCT day) FROM tickets").fetchone()[0]
            late = db.execute("SELECT COUNT(*) FROM day_summaries").fetchone()[0] - summarised

        def timed(day_from: dt.date) -> float:
            best = float("inf")
            for _ in range(3):
                t = time.perf_counter()
                with ctrl.store.reads.snapshot() as db:
                    hr.hall_figures(db, hall, day_from, last, "service", clock())
                best = min(best, (time.perf_counter() - t) * 1000)
            return best

        month_ms, range_ms = timed(month), timed(first)
        alone, calls, reports_run = call_next_beside_reports(ctrl, hall, clock, first, last)
    finally:
        desk.stop()
        ctrl.store.close()
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:  # with the call-nexts' own
        stored = conn.execute("SELECT COUNT(*) FROM tickets").fetchone()[0]
    run.notes.append(where_the_bytes_go(path, stored))
    size = path.stat().st_size
    wal = path.with_name(path.name + "-wal")
    size += wal.stat().st_size if wal.exists() else 0
    n = f"{tickets:,} tickets"
    run.notes.append(f"A day is summarised as it closes, on the hall thread with the day change "
                     f"(controller.backoffice.day_figures.keep_closed_days): the day change after "
                     f"the timed restart, closing the history's last day ({per_day_note(tickets, days)}) "
                     f"and summarising it, took {day_change_ms:,.0f} ms. The first whole-range report "
                     f"took {first_ms:,.0f} ms: it summarised the {late} of {days} days that had no "
                     "summary (the copies of the lived day that was still open when the history was "
                     "copied) and kept them.")
    run.add(Result("the month's hall report, by service", month_ms, "ms", TARGETS["month"], False,
                   f"hall_reports.hall_figures from {month} to {last}, {n} of history; best of 3"))
    run.add(Result("the whole range's hall report, by service", range_ms, "ms", TARGETS["range"],
                   False, f"the same from {first} to {last}; best of 3"))
    run.add(Result("restart to serving", restart, "ms", TARGETS["restart"], False,
                   f"open_hall (store, state, controller) and the case desk's catch-up, {n}"))
    run.add(Result("slowest call-next while reports run", calls[-1], "ms", TARGETS["call"], False,
                   f"{len(calls)} call-nexts through the controller on a durable store (each after a "
                   f"ticket issued, one every {PACE * 1000:.0f} ms) while a thread ran {reports_run} "
                   f"whole-range reports and replays of the last {REPLAYED:,} events back to back: "
                   f"median {calls[len(calls) // 2]:.2f} ms; the same {len(alone)} calls just before, "
                   f"without the reports: median {alone[len(alone) // 2]:.2f} ms, slowest {alone[-1]:.1f} ms"))
    run.add(Result("bytes per ticket on disk", size / stored, "B", TARGETS["bytes"], False,
                   f"the database and its WAL after a checkpoint, {size / 2**20:.1f} MiB for "
                   f"{stored:,} tickets (the history's and the call-nexts'), "
                   "events and commands included"))


def call_next_beside_reports(ctrl, hall: Hall, clock: ManualClock, first: dt.date,
                             last: dt.date) -> tuple[list[float], list[float], int]:
    """Call-next times (ms, each measured around `execute`) on the morning after the history:
    alone, then while another thread computes whole-range reports and replays the event log's
    tail without pause, as the web server's worker threads would; and how many reports ran."""
    tz = ZoneInfo(hall.timezone)
    morning = working_days(hall, clock().date() + dt.timedelta(days=1), 1)[0]
    clock.now = dt.datetime.combine(morning, dt.time(9, 30), tz)
    staff = next(s for s in hall.staff.values() if s.a_post)
    window = staff.a_post[0]
    service = hall.windows[window].services[0]
    ctrl.execute(c.Login(window, staff.id), f"staff:{staff.id}")  # the day changes here
    stop, ran = threading.Event(), [0]
    reader = EventReader(ctrl.store)

    def calls() -> list[float]:
        times = []
        while len(times) < CALLS:
            clock.now += dt.timedelta(seconds=10)
            ctrl.execute(c.IssueTicket(service), "kiosk")
            t = time.perf_counter()
            ctrl.execute(c.CallNext(window), f"staff:{staff.id}")
            times.append((time.perf_counter() - t) * 1000)
            time.sleep(PACE)
        return sorted(times)

    def reports() -> None:
        while not stop.is_set():
            with ctrl.store.reads.snapshot() as db:
                hr.hall_figures(db, hall, first, last, "service", clock())
            upto = reader.last_id()
            reader.events_after(upto - REPLAYED, upto, REPLAYED)
            ran[0] += 1

    alone = calls()
    thread = threading.Thread(target=reports, daemon=True)
    thread.start()
    try:
        beside = calls()
    finally:
        stop.set()
        thread.join()
    return alone, beside, ran[0]


def per_day_note(tickets: int, days: int) -> str:
    return f"{tickets // max(days, 1):,} tickets a day"


def where_the_bytes_go(path: Path, tickets: int) -> str:
    """Bytes a ticket per table and index, largest first (SQLite's dbstat table, where it is
    compiled in)."""
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        try:
            rows = conn.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name "
                                "ORDER BY 2 DESC").fetchall()
        except sqlite3.Error:
            return "Where the bytes go: this SQLite has no dbstat table."
    top = [f"{name} {size / tickets:,.0f} B" for name, size in rows if size / tickets >= 1]
    return ("Where a ticket's bytes go (`SELECT name, SUM(pgsize) FROM dbstat GROUP BY name`, "
            "divided by the tickets): " + ", ".join(top) + ".")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.history", description=__doc__.splitlines()[0])
    p.add_argument("--tickets", type=int, default=TICKETS)
    p.add_argument("--per-day", type=int, default=PER_DAY)
    p.add_argument("--keep", type=Path, help="generate into (or reuse) this directory")
    args = p.parse_args(argv)
    started = dt.datetime.now(dt.timezone.utc)
    t0 = time.perf_counter()
    run = Run()
    with tempfile.TemporaryDirectory(prefix="bench-history-") as tmp:
        data_dir = args.keep or Path(tmp)
        if args.keep is not None and (data_dir / DB_NAME).exists():
            hall = load_hall(DEMO)
        else:
            g = time.perf_counter()
            hall = generate(data_dir, args.tickets, args.per_day)
            run.notes.append(f"{args.tickets:,} tickets generated in {time.perf_counter() - g:.0f} s "
                             f"({args.per_day:,} a working day, `bench.history.generate`)")
        measure(data_dir, hall, run)
    run.notes.append("The machine was shared with other work while measured (2 cores, several "
                     "test runs beside it): treat the times as upper bounds.")
    run.notes.append("The reports read a closed day's summary (per service, staff, window and "
                     "day, with each ticket's wait and service minutes for exact percentiles) "
                     "and count only the current day from its tickets; they do not hold the "
                     "hall's lock while they do (tests/test_reads_do_not_block.py).")
    if args.tickets != TICKETS:
        return 0  # a small pass only prints
    write_docs(DOCS, section(run, machine(), started, time.perf_counter() - t0, START, END,
                             COMMAND), START, END)
    return 0


if __name__ == "__main__":
    sys.exit(main())
