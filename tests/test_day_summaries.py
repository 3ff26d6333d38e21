"""The reports from day summaries (日汇总) give the numbers the tickets give.

Given a hall that lived Monday and Tuesday, was switched off on Tuesday evening and started
again on Thursday (so Tuesday was closed while the controller was down), when a supervisor
reads the hall and evaluation reports from Monday to Thursday, then every grouping gives what
the raw tickets give: on the first report (which summarises the closed days and keeps them),
on the next (which reads them), after a restart, and after a closed day's ticket changes.
"""

from __future__ import annotations

import datetime as dt
import sqlite3

import pytest
import sqlite_utils

from controller.backoffice import day_figures
from controller.backoffice import evaluation_reports as er
from controller.backoffice import hall_reports as hr
from controller.cli import open_hall
from controller.runtime.clock import ManualClock
from controller.core import commands as c
from controller.core.errors import HallError
from controller.core.hall import NoShowPolicy
from tests.halls import MONDAY, at, small_hall

TUESDAY, THURSDAY = MONDAY + dt.timedelta(days=1), MONDAY + dt.timedelta(days=3)
HALL = small_hall(no_show=NoShowPolicy.DROP)
GROUPINGS = ("service", "day", "month", "staff", "window")


def a_day(ctrl, clock: ManualClock, day: dt.date) -> None:
    """Two windows: waits and visits of every kind, grades good and bad, a 过号, a transfer,
    a call out of order and a cancelled ticket."""
    def when(hhmm: str, cmd: c.Command, actor: str):
        clock.now = at(hhmm, day)
        return ctrl.execute(cmd, actor)

    when("09:00", c.Login(1, "s1"), "staff:s1")
    when("09:01", c.Login(2, "s2"), "staff:s2")
    for minute, service in ((2, "A"), (4, "A"), (7, "B"), (9, "A"), (12, "B"), (13, "C")):
        when(f"09:{minute:02}", c.IssueTicket(service), "kiosk")
    when("09:10", c.CallNext(1), "staff:s1")
    when("09:17", c.Finish(1), "staff:s1")
    when("09:17", c.Evaluate(1, "满意"), "pad:1")
    when("09:20", c.CallNumber(1, "A003", "绿色通道"), "staff:s1")
    when("09:31", c.Finish(1), "staff:s1")
    when("09:31", c.Evaluate(1, "不满意"), "pad:1")
    when("09:33", c.CallNext(2), "staff:s2")
    when("09:36", c.Transfer(2, "C"), "staff:s2")
    when("09:37", c.CallNext(2), "staff:s2")
    when("09:45", c.NoShow(2), "staff:s2")
    cancelled = when("10:00", c.IssueTicket("C"), "kiosk").ticket.id
    when("10:01", c.CancelTicket(cancelled, "群众放弃"), "staff:boss")
    when("10:05", c.CallNext(1), "staff:s1")  # A002, left at the window for the day's end
    try:
        when("10:06", c.CallNext(2), "staff:s2")
    except HallError:
        pass


def from_the_tickets(db: sqlite_utils.Database, fn, *args):
    """`fn` on a copy of the hall's database that knows no current day: every day is counted
    from its tickets and nothing is kept."""
    copy = sqlite3.connect(":memory:")
    db.conn.backup(copy)
    copy.execute("DELETE FROM meta WHERE key = 'day'")
    copy.execute("DELETE FROM day_figures")
    copy.execute("DELETE FROM day_summaries")
    return fn(sqlite_utils.Database(copy), *args)


def reports(db: sqlite_utils.Database, now: dt.datetime) -> dict[str, list]:
    out = {}
    for by in GROUPINGS:
        out[f"hall-{by}"] = hr.hall_figures(db, HALL, MONDAY, THURSDAY, by, now)
        out[f"evaluations-{by}"] = er.evaluation_report(db, MONDAY, THURSDAY, by, now)
    return out


def raw_reports(db: sqlite_utils.Database, now: dt.datetime) -> dict[str, list]:
    return from_the_tickets(db, reports, now)


def kept_days(db: sqlite_utils.Database) -> list[str]:
    return [r[0] for r in db.execute("SELECT day FROM day_summaries ORDER BY day")]


@pytest.fixture
def counted(monkeypatch):
    """The days counted from their tickets rather than read from a summary."""
    days: list[str] = []
    count_day = day_figures.count_day

    def counting(db, day, tz):
        days.append(day)
        return count_day(db, day, tz)

    monkeypatch.setattr(day_figures, "count_day", counting)
    return days


def test_reports_from_the_summaries_equal_the_reports_from_the_tickets(tmp_path, counted):
    clock = ManualClock(at("08:55"))
    ctrl, _ = open_hall(HALL, tmp_path, clock)
    a_day(ctrl, clock, MONDAY)
    clock.now = at("08:55", TUESDAY)
    ctrl.tick()
    a_day(ctrl, clock, TUESDAY)
    ctrl.store.close()  # Tuesday evening: switched off, Tuesday never closed while running

    clock.now = at("08:55", THURSDAY)
    ctrl, _ = open_hall(HALL, tmp_path, clock)  # the day changes at start
    a_day(ctrl, clock, THURSDAY)
    now = clock()

    # each day was summarised as it closed, on the hall thread with the day change: Monday at
    # Tuesday's first tick, Tuesday when the controller started on Thursday
    assert set(counted) == {MONDAY.isoformat(), TUESDAY.isoformat()}
    counted.clear()
    with ctrl.store.reads.snapshot() as db:
        assert kept_days(db) == [MONDAY.isoformat(), TUESDAY.isoformat()]
        first = reports(db, now)
        assert set(counted) == {THURSDAY.isoformat()}  # only the current day from its tickets
        assert first == raw_reports(db, now)
    assert sum(r["issued"] for r in first["hall-day"]) == 3 * 7
    assert any(r["out_of_order_calls"] for r in first["hall-staff"])
    assert any(r["no_show"] for r in first["hall-window"] if r["window"] is not None)

    counted.clear()
    with ctrl.store.reads.snapshot() as db:
        assert kept_days(db) == [MONDAY.isoformat(), TUESDAY.isoformat()]
        assert reports(db, now) == first
    assert set(counted) == {THURSDAY.isoformat()}  # only the current day from its tickets

    ctrl.store.close()
    ctrl, _ = open_hall(HALL, tmp_path, clock)
    counted.clear()
    with ctrl.store.reads.snapshot() as db:
        assert reports(db, now) == first
    assert set(counted) == {THURSDAY.isoformat()}

    # a closed day changes (grades given late, written as the store writes a ticket): its
    # summary goes, and is made again
    late = [r[0] for r in ctrl.store.db.execute(
        "SELECT id FROM tickets WHERE day = ? AND grade IS NULL AND status = 'finished'",
        [MONDAY.isoformat()])]
    assert late
    for ticket in late + late:
        ctrl.store.db.execute(
            "INSERT INTO tickets SELECT * FROM tickets WHERE id = ? ON CONFLICT (id) DO UPDATE "
            "SET grade = '非常不满意', grade_channel = 'pad'", [ticket])
    with ctrl.store.reads.snapshot() as db:
        assert kept_days(db) == [TUESDAY.isoformat()]
        changed = reports(db, now)
        assert changed == raw_reports(db, now) and changed != first
    with ctrl.store.reads.snapshot() as db:
        assert kept_days(db) == [MONDAY.isoformat(), TUESDAY.isoformat()]
        assert reports(db, now) == changed
    ctrl.store.close()


def test_a_day_whose_summary_fails_at_the_day_change_still_changes_and_reports_right(
        tmp_path, monkeypatch):
    """The summary made at the day change is the reports' help, not the day's: if making it
    fails, the day still changes, nothing half-made is kept, and the report counts the day."""
    clock = ManualClock(at("08:55"))
    ctrl, _ = open_hall(HALL, tmp_path, clock)
    a_day(ctrl, clock, MONDAY)

    def broken(db, day, tz):
        raise ValueError("a bug in the summaries")
    monkeypatch.setattr(day_figures, "count_day", broken)
    clock.now = at("08:55", TUESDAY)
    ctrl.tick()
    assert ctrl.ask(lambda state: state.day) == TUESDAY
    monkeypatch.undo()
    with ctrl.store.reads.snapshot() as db:
        assert kept_days(db) == [] and not db.execute("SELECT 1 FROM day_figures").fetchall()
        assert reports(db, clock()) == raw_reports(db, clock())
    ctrl.store.close()


def test_a_summary_read_while_its_day_changed_is_not_kept(tmp_path):
    """A report that counted a closed day before a change to it was committed keeps nothing:
    the next report counts that day again."""
    clock = ManualClock(at("08:55"))
    ctrl, _ = open_hall(HALL, tmp_path, clock)
    a_day(ctrl, clock, MONDAY)
    clock.now = at("08:55", TUESDAY)
    ctrl.tick()
    day = MONDAY.isoformat()
    with ctrl.store.reads.snapshot() as db:
        figures = day_figures.count_day(db, day, dt.timezone.utc)
        seen = dict(db.execute("SELECT day, n FROM day_changes").fetchall()).get(day, 0)
        ctrl.store.db.execute("UPDATE tickets SET transfers = transfers WHERE day = ?", [day])
        kept = day_figures.store.keep(str(ctrl.store.path), TUESDAY.isoformat(),
                                      {day: (seen, day_figures.to_rows(day, figures))})
    assert kept == 0
    with ctrl.store.reads.snapshot() as db:
        assert kept_days(db) == []
    ctrl.store.close()


def test_an_older_database_gets_the_summaries_and_leaner_indexes(tmp_path):
    """A hall's database of schema 12 opens on this controller with its tickets, the day
    summaries' tables and triggers, and without the index that repeated another."""
    from controller.store.db import MIGRATIONS, open_db, schema_version

    path = tmp_path / "hall.sqlite3"
    old = sqlite3.connect(path, isolation_level=None)
    for i, step in enumerate(MIGRATIONS[:12]):
        old.executescript("BEGIN;\n" + step + f"\nPRAGMA user_version = {i + 1};\nCOMMIT;")
    old.execute("INSERT INTO tickets (id, day, prefix, number, label, service, channel, issued_at, "
                "queued_at, queue_seq, status) VALUES ('20261123-A001', '2026-11-23', 'A', 1, "
                "'A001', 'A', 'kiosk', '2026-11-23T09:00:00+08:00', '2026-11-23T09:00:00+08:00', "
                "1, 'cancelled')")
    old.close()

    db = open_db(path)
    assert schema_version(db) == len(MIGRATIONS)
    names = {r[0] for r in db.execute("SELECT name FROM sqlite_master")}
    assert {"day_summaries", "day_figures", "day_changes", "tickets_closed_day_u",
            "events_closed_day"} <= names
    assert "tickets_day" not in names
    plan = db.execute("EXPLAIN QUERY PLAN SELECT * FROM tickets WHERE day = '2026-11-23'").fetchall()
    assert "INDEX" in str(plan)
    assert db.execute("SELECT COUNT(*) FROM tickets").fetchone()[0] == 1
    db.conn.close()
