"""The lean log (migration 17, issue 15): a hall's database written by the previous schema opens
on this controller and reads back the same through every reader: the event stream's replay
(GET /api/v1/events), the reports, the tickets, the store's own readers and the raw views.

The previous schema's database is made the way that controller wrote it: migration 15's own
tables, filled through its views, whose triggers encoded each row as its store did."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from pathlib import Path

import httpx
import sqlite_utils

from controller.backoffice.cases import CaseDesk
from controller.cli import open_hall
from controller.config.hall import load_hall
from controller.config.workdays import hall_calendar
from controller.core import commands as c
from controller.core.callbacks import CaseRules
from controller.core.errors import HallError
from controller.runtime.clock import ManualClock
from controller.store.db import MIGRATIONS, open_db
from controller.store import history
from controller.store.hallstore import HallStore
from controller.store.logform import encode_at, encode_payload
from controller.store.replay import EventReader
from tests.server import DEMO_CONFIG, HallProcess

PIN = "1234"
SUPERVISOR = "huangjianguo"
TZ = dt.timezone(dt.timedelta(hours=8))
MONDAY, TUESDAY = dt.date(2026, 11, 23), dt.date(2026, 11, 24)
GRADES = ["非常满意", "满意", "基本满意", "非常满意", "不满意", "非常不满意"]


def live(data: Path) -> None:
    """Two days of a hall through the real engine and store: tickets issued, called, missed,
    transferred, finished and graded (bad reviews open cases), a pause with its whereabouts, a
    patrol round, the day closing in between."""
    hall = load_hall(DEMO_CONFIG)
    clock = ManualClock(dt.datetime.combine(MONDAY, dt.time(8, 30), TZ))
    ctrl, _ = open_hall(hall, data, clock, durable=False)
    desk = CaseDesk(ctrl, hall_calendar(None), CaseRules.from_rules(hall.rules))
    desk.start()
    staff = {s.a_post[0]: s.id for s in hall.staff.values() if s.a_post}
    services: dict[int, str] = {}
    for n in sorted(staff):  # four windows, each of a service of its own
        if len(services) < 4 and hall.windows[n].services[0] not in services.values():
            services[n] = hall.windows[n].services[0]
    windows = sorted(services)
    try:
        for day in (MONDAY, TUESDAY):
            clock.now = dt.datetime.combine(day, dt.time(8, 40), TZ)
            for n in windows:
                ctrl.execute(c.Login(n, staff[n]), f"staff:{staff[n]}")
            for i in range(24):
                clock.now += dt.timedelta(minutes=7, microseconds=123_457 * (i % 3))
                n = windows[i % len(windows)]
                ctrl.execute(c.IssueTicket(services[n]), "kiosk")
                ctrl.execute(c.CallNext(n), f"staff:{staff[n]}")
                if i % 7 == 3:
                    ctrl.execute(c.NoShow(n), f"staff:{staff[n]}")
                    continue
                if i % 9 == 4:
                    other = services[windows[(i + 1) % len(windows)]]
                    ctrl.execute(c.Transfer(n, other), f"staff:{staff[n]}")
                    continue
                ctrl.execute(c.Finish(n), f"staff:{staff[n]}")
                ctrl.execute(c.Evaluate(n, GRADES[i % len(GRADES)], "pad"), f"pad:{n}")
            n = windows[0]
            ctrl.execute(c.Pause(n, "会商", 15, "二楼审批科"), f"staff:{staff[n]}")
            clock.now += dt.timedelta(minutes=10)
            ctrl.execute(c.Resume(n), f"staff:{staff[n]}")
            ctrl.execute(c.RecordPatrol(SUPERVISOR, False, "3号窗口桌面杂乱"), f"staff:{SUPERVISOR}")
            clock.now = dt.datetime.combine(day, dt.time(17, 40), TZ)
            for n in windows:
                try:
                    ctrl.execute(c.Logout(n, requeue_current=True), f"staff:{staff[n]}")
                except HallError:
                    pass
        desk.catch_up()
    finally:
        desk.stop()
        ctrl.store.close()


def as_schema_15(path: Path) -> None:
    """The database at `path` as the controller of schema 15 would have written it."""
    old_path = path.with_name("old.sqlite3")
    old = sqlite3.connect(old_path, isolation_level=None)
    for i, step in enumerate(MIGRATIONS[:15]):
        assert isinstance(step, str)
        old.executescript("BEGIN;\n" + step + f"\nPRAGMA user_version = {i + 1};\nCOMMIT;")
    old.execute("ATTACH ? AS now", [str(path)])
    # the tables schema 15 has (the later migrations' own tables have nothing to carry here)
    tables = [r[0] for r in old.execute(
        "SELECT name FROM main.sqlite_master WHERE type = 'table' AND name NOT IN "
        "('command_log', 'event_log', 'log_names', 'log_shapes', 'sqlite_sequence')")]
    # the logs first, then the tickets: the closed-day triggers look at meta and the summaries
    old.execute("BEGIN")
    old.execute("INSERT INTO commands SELECT * FROM now.commands ORDER BY id")
    old.execute("INSERT INTO events SELECT * FROM now.events ORDER BY id")
    for table in ["tickets"] + [t for t in tables if t not in ("tickets", "meta", "day_changes")]:
        old.execute(f"DELETE FROM {table}")
        old.execute(f"INSERT INTO {table} SELECT * FROM now.{table}")
    for table in ("meta", "day_changes"):
        old.execute(f"DELETE FROM {table}")
        old.execute(f"INSERT INTO {table} SELECT * FROM now.{table}")
    old.execute("COMMIT")
    old.execute("DETACH now")
    old.close()
    old_path.replace(path)
    for suffix in ("-wal", "-shm"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)


def rows(path: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(path) as conn:
        return conn.execute(sql).fetchall()


def readings(proc: HallProcess, events: int) -> dict:
    """What the hall's readers say: the stream replayed from the start (its first `events`),
    the reports and the cases."""
    with httpx.Client(base_url=proc.url, timeout=30) as api:
        r = api.post("/api/v1/auth/login", json={"staff_id": SUPERVISOR, "pin": PIN, "window": None})
        assert r.status_code == 200, r.text
        boss = {"Authorization": f"Bearer {r.json()['token']}"}
        days = {"from": MONDAY.isoformat(), "to": TUESDAY.isoformat()}
        out = {f"{name} by {by}": api.get(f"/api/v1/reports/{name}", headers=boss,
                                          params={**days, "by": by}).json()
               for name, by in (("hall", "service"), ("hall", "window"), ("hall", "staff"),
                                ("evaluations", "window"))}
        out["cases"] = api.get("/api/v1/cases", headers=boss).json()
        stream = []
        with api.stream("GET", "/api/v1/events", params={"after": 0}, headers=boss) as s:
            assert s.status_code == 200
            for line in s.iter_lines():
                if line.startswith("id: "):
                    stream.append([line])
                elif line.startswith("data: "):
                    stream[-1].append(json.loads(line[6:]))
                    if len(stream) == events:
                        break
        out["stream"] = stream
    return out


def store_readings(path: Path) -> dict:
    store = HallStore(path)
    try:
        last = store.last_event_id()
        return {
            "events": store.events_after(0, 100_000),
            "replay": EventReader(store).events_after(0, last, 100_000),
            "tickets": store.query("SELECT * FROM tickets ORDER BY id"),
            "history": [store.ticket_history(t["id"]) for t in store.query("SELECT id FROM tickets")],
            "patrols": store.patrol_rounds(MONDAY, TUESDAY),
            "commands": store.query("SELECT * FROM commands ORDER BY id"),
            "raw events": store.query("SELECT * FROM events ORDER BY id"),
        }
    finally:
        store.close()


def test_a_database_of_the_previous_schema_reads_back_the_same_through_every_reader(tmp_path):
    proc = HallProcess(tmp_path)
    proc.data.mkdir(parents=True, exist_ok=True)
    live(proc.data)
    db = proc.data / "hall.sqlite3"
    stored = store_readings(db)
    n = len(stored["events"])
    assert n > 200 and any(e["kind"] == "patrol_recorded" for _, e in stored["events"])
    proc.extra_args = ("--clock-start", f"{TUESDAY}T18:00:00+08:00")
    proc.start()
    try:
        before = readings(proc, n)
    finally:
        proc.stop()
    assert len(before["stream"]) == n and rows(db, "SELECT COUNT(*) FROM anonymous_bad_reviews")[0][0] > 0

    as_schema_15(db)
    assert rows(db, "PRAGMA user_version") == [(15,)]
    assert [tuple(r.values()) for r in stored["raw events"]] == \
        rows(db, f"SELECT * FROM events WHERE id <= {n} ORDER BY id")
    assert rows(db, "SELECT COUNT(*) FROM command_log")[0][0] >= len(stored["commands"])

    proc.start()  # migrates
    try:
        after = readings(proc, n)
    finally:
        proc.stop()
    assert rows(db, "PRAGMA user_version") == [(len(MIGRATIONS),)]
    assert after == before
    # the hall's own runs added rows (the supervisor's logins): the rows there were read the same
    again = store_readings(db)
    for key, value in stored.items():
        assert again[key][:len(value)] == value, key


def test_the_stored_form_gives_back_the_text_it_was_given(tmp_path):
    """Moments and payloads the store may be given, through the table and back out of the view."""
    db = open_db(tmp_path / "hall.sqlite3")
    conn = db.conn
    moments = [dt.datetime(2026, 3, 2, 8, 30, 31, 500000, TZ), dt.datetime(2026, 3, 2, 8, 30, tzinfo=TZ),
               dt.datetime(2026, 3, 2, 23, 59, 59, 999999, dt.timezone.utc),
               dt.datetime(2026, 7, 1, 9, 0, 0, 1, dt.timezone(dt.timedelta(hours=-3, minutes=-30))),
               dt.datetime(2026, 3, 2, 8, 30), dt.datetime(1969, 12, 31, 23, 0, tzinfo=TZ),
               dt.datetime(2026, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=5, minutes=45, seconds=7)))]
    payloads = [{}, {"a": None, "b": False, "c": 0, "d": -0.0, "e": [], "f": "", "g": 1.5},
                {"channel": "pad", "grade": "非常满意", "staff": None, "tags": ["态度好"], "bad": True},
                {"eta": {"p10": 0.0, "p50": 0.5, "p90": 1.5}, "note": "一\n\"二\"\\三"},
                {"nested": {"x": None, "y": {"z": None}}, "list": [None, {"k": None}]},
                {"service": "A", "n": 12345678901234567890, "f": 0.1 + 0.2}]
    conn.execute("INSERT INTO log_names (name) VALUES ('kiosk')")
    for i, (moment, payload) in enumerate(zip(moments, payloads * 2, strict=False)):
        at, zone = encode_at(moment)
        template, stored = encode_payload(payload)
        conn.execute("INSERT INTO log_shapes (name, template) VALUES ('x', ?)", [template])
        conn.execute("INSERT INTO command_log (id, at, zone, actor, name, args) VALUES "
                     "(?, ?, ?, 1, last_insert_rowid(), ?)", [i + 1, at, zone, stored])
        conn.execute("INSERT INTO event_log (command_id, kind, data) VALUES "
                     "(?, (SELECT name FROM command_log WHERE id = ?), ?)", [i + 1, i + 1, stored])
        [(when, args, result)] = conn.execute(
            "SELECT at, args, result FROM commands WHERE id = ?", [i + 1]).fetchall()
        [(event_at, data)] = conn.execute(
            "SELECT at, data FROM events WHERE command_id = ?", [i + 1]).fetchall()
        text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
        assert (when, event_at, args, data, result) == (
            moment.isoformat(), moment.isoformat(), text, text, "ok")
    conn.close()


def test_the_reports_find_a_span_of_events_as_the_view_finds_it(tmp_path):
    """The reports' reads of the events between two moments compare the stored integers
    (controller.store.logform.events_by_moment): the same rows as the view's text compares,
    whatever the bounds (an event's own moment, a bound in another zone, a date)."""
    live(tmp_path)
    db = sqlite_utils.Database(sqlite3.connect(tmp_path / "hall.sqlite3"))
    moments = [r[0] for r in db.execute("SELECT at FROM events WHERE id % 37 = 1")]
    bounds = [(lo, hi) for lo in moments[:6] for hi in moments[-3:]] + [
        (moments[3].replace("+08:00", "+00:00"), moments[-1]), (MONDAY.isoformat(), TUESDAY.isoformat()),
        (f"{MONDAY}T12:00:00+08:00", f"{TUESDAY}T12:00:00.000001+08:00")]
    for lo, hi in bounds:
        by_text = list(db.query("SELECT at, kind, window, data FROM events WHERE window IS NOT NULL "
                                "AND at >= ? AND at < ? ORDER BY id", [lo, hi]))
        assert list(history.window_events(db, lo, hi)) == by_text
    assert by_text and len(bounds) > 20
