"""The store: state after a restart equals the state before; the logs are append-only."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import sqlite3

import pytest

from controller.runtime.clock import ManualClock
from controller.core import commands as c
from controller.core.errors import HallError
from controller.runtime.hallcontroller import HallController
from controller.store.db import MIGRATIONS, schema_version
from controller.store.faults import StorageUnavailable
from controller.store.hallstore import HallStore
from tests.halls import SEALER, at, small_hall


def controller(tmp_path, clock, hall=None) -> HallController:
    return HallController(hall or small_hall(), HallStore(tmp_path / "hall.sqlite3"), clock)


def busy_morning(ctrl: HallController, clock: ManualClock) -> None:
    for n in (1, 2, 3):
        ctrl.execute(c.Login(n, f"s{n}"), f"staff:s{n}")
    for i, prefix in enumerate("AABACBAACB"):
        first = i == 4  # the supervisor puts this one first (绿色通道): who is kept too
        ctrl.execute(c.IssueTicket(prefix, priority="elderly" if first else None,
                                   staff_id="boss" if first else None),
                     "staff:boss" if first else "kiosk")
        clock.advance(minutes=1)
    ctrl.execute(c.IssueTicket("A", citizen=SEALER.citizen("11010119500307097X", "张三")), "kiosk")
    ctrl.execute(c.IssueTicket("A", channel="appointment", appointment_at=at("10:30")), "staff:s1")
    for cmd in (c.CallNext(1), c.CallNext(2), c.CallNext(3), c.Recall(1), c.NoShow(2),
                c.CallNext(2), c.Transfer(2, "A"), c.CallNext(2), c.Finish(3),
                c.Pause(3, "去后台取件", 10), c.CallNext(1)):
        clock.advance(minutes=4)
        ctrl.execute(cmd, "staff:test")


def snapshot(ctrl: HallController) -> dict:
    return ctrl.ask(_snapshot)


def _snapshot(s) -> dict:
    return {
        "day": s.day,
        "tickets": {k: dataclasses.asdict(t) for k, t in s.tickets.items()},
        "windows": {k: dataclasses.asdict(w) for k, w in s.windows.items()},
        "queues": {p: dataclasses.astuple(q) for p, q in s.queues.services.items()},
        "last_number": dict(s.last_number),
        "queue_seq": s.queue_seq,
        "service_minutes": {k: round(v, 9) for k, v in s.service_minutes.items()},
    }


def test_state_after_restart_equals_state_before(tmp_path):
    clock = ManualClock(at("09:00"))
    ctrl = controller(tmp_path, clock)
    busy_morning(ctrl, clock)
    before = snapshot(ctrl)
    ctrl.store.close()

    again = controller(tmp_path, clock)
    assert snapshot(again) == before
    # and it carries on where it left off
    assert again.execute(c.IssueTicket("A"), "kiosk").ticket.label == "A008"


def test_a_new_day_after_restart_starts_at_one(tmp_path):
    clock = ManualClock(at("09:00"))
    ctrl = controller(tmp_path, clock)
    busy_morning(ctrl, clock)
    ctrl.store.close()
    clock.now = at("09:00", dt.date(2026, 11, 24))
    again = controller(tmp_path, clock)
    assert again.execute(c.IssueTicket("A"), "kiosk").ticket.label == "A001"
    statuses = {r["status"] for r in again.store.query(
        "SELECT status FROM tickets WHERE day = '2026-11-23'")}
    assert "waiting" not in statuses and "called" not in statuses


def test_every_command_is_logged_with_actor_and_result(tmp_path):
    clock = ManualClock(at("09:00"))
    ctrl = controller(tmp_path, clock)
    ctrl.execute(c.IssueTicket("A", citizen=SEALER.citizen("11010119500307097X", "张三")), "kiosk")
    with pytest.raises(HallError):
        ctrl.execute(c.CallNext(1), "staff:s1")
    rows = list(ctrl.store.query("SELECT actor, name, args, result FROM commands ORDER BY id"))
    assert [(r["actor"], r["name"], r["result"]) for r in rows] == [
        ("system", "start_day", "ok"), ("kiosk", "issue_ticket", "ok"),
        ("staff:s1", "call_next", "window_closed")]
    assert "11010119500307097X" not in rows[1]["args"]  # personal data masked in the log
    assert "1101**********097X" in rows[1]["args"]


def test_logs_are_append_only(tmp_path):
    clock = ManualClock(at("09:00"))
    ctrl = controller(tmp_path, clock)
    ctrl.execute(c.IssueTicket("A"), "kiosk")
    for sql in ("UPDATE events SET kind = 'x'", "DELETE FROM events",
                "UPDATE commands SET actor = 'x'", "DELETE FROM commands"):
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            ctrl.store.db.execute(sql)


def test_numbers_cannot_repeat_even_if_memory_is_wrong(tmp_path):
    clock = ManualClock(at("09:00"))
    ctrl = controller(tmp_path, clock)
    ctrl.execute(c.IssueTicket("A"), "kiosk")
    def forget(state) -> None:  # a bug in memory must not reuse a number on disk
        state.last_number["A"] = 0
    ctrl.ask(forget)
    with pytest.raises(sqlite3.IntegrityError):
        ctrl.execute(c.IssueTicket("A"), "kiosk")
    assert ctrl.ask(lambda s: s.last_number["A"]) == 1  # reloaded from the database
    assert ctrl.execute(c.IssueTicket("A"), "kiosk").ticket.label == "A002"


def test_a_failed_commit_leaves_memory_as_the_disk(tmp_path, monkeypatch):
    clock = ManualClock(at("09:00"))
    ctrl = controller(tmp_path, clock)
    ctrl.execute(c.IssueTicket("A"), "kiosk")

    def disk_full(*a, **k):
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(ctrl.store, "write", disk_full)
    with pytest.raises(sqlite3.OperationalError):
        ctrl.execute(c.IssueTicket("A"), "kiosk")
    monkeypatch.undo()
    assert ctrl.ask(lambda s: [t.label for t in s.tickets.values()]) == ["A001"]
    assert ctrl.execute(c.IssueTicket("A"), "kiosk").ticket.label == "A002"


def test_schema_is_versioned(tmp_path):
    store = HallStore(tmp_path / "hall.sqlite3")
    assert schema_version(store.db) == len(MIGRATIONS)
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    store.db.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    store.close()
    with pytest.raises(RuntimeError, match="newer than this controller"):
        HallStore(tmp_path / "hall.sqlite3")


def test_events_reach_subscribers_after_commit(tmp_path):
    clock = ManualClock(at("09:00"))
    ctrl = controller(tmp_path, clock)
    seen = []

    def on_event(event_id, event):
        row = ctrl.store.db.execute("SELECT kind FROM events WHERE id = ?", [event_id]).fetchone()
        seen.append((event.kind, row[0]))  # already on disk when we hear of it

    ctrl.subscribe(on_event)
    ctrl.execute(c.IssueTicket("A"), "kiosk")
    assert seen == [("day_started", "day_started"), ("ticket_issued", "ticket_issued")]


def test_checkpoints_run_beside_the_writer(tmp_path):
    clock = ManualClock(at("09:00"))
    ctrl = controller(tmp_path, clock)
    for _ in range(50):
        ctrl.execute(c.IssueTicket("A"), "kiosk")
    wal_frames, copied = ctrl.store.checkpoint()
    assert wal_frames > 0 and copied == wal_frames  # everything committed reached the file
    ctrl.execute(c.IssueTicket("A"), "kiosk")  # and the writer carries on
    ctrl.store.close()
    again = controller(tmp_path, clock)
    assert len(again.state.tickets) == 51


def test_an_old_database_upgrades_to_the_compact_log_and_reads_back(tmp_path):
    """A hall's database from before the compact log (schema 11, JSON written with spaces)
    opens on this controller: the same state, the same events, in fewer bytes, and still
    append-only."""
    now = tmp_path / "now"
    now.mkdir()
    clock = ManualClock(at("09:00"))
    ctrl = controller(now, clock)
    busy_morning(ctrl, clock)
    before_state = snapshot(ctrl)
    history = ctrl.store.events_after(0, 10_000)
    audit = ctrl.store.query("SELECT id, actor, name, args, result FROM commands ORDER BY id")
    ctrl.store.close()
    # what the controller of schema 11 wrote: the same rows, its JSON with json.dumps's default
    # separators
    old = sqlite3.connect(tmp_path / "hall.sqlite3", isolation_level=None)
    for i, step in enumerate(MIGRATIONS[:11]):
        old.executescript("BEGIN;\n" + step + f"\nPRAGMA user_version = {i + 1};\nCOMMIT;")
    old.execute("ATTACH ? AS now", [str(now / "hall.sqlite3")])
    old.create_function("spaced", 1, lambda text: json.dumps(json.loads(text), ensure_ascii=False))
    old.executescript("""
        INSERT INTO meta SELECT * FROM now.meta;
        INSERT INTO tickets SELECT * FROM now.tickets;
        INSERT INTO windows SELECT * FROM now.windows;
        INSERT INTO commands SELECT id, at, actor, name, spaced(args), result, message FROM now.commands;
        INSERT INTO events SELECT id, command_id, at, kind, window, ticket_id, spaced(data) FROM now.events;
        DETACH now;""")
    spaced_bytes = old.execute("SELECT SUM(LENGTH(CAST(data AS BLOB))) FROM events").fetchone()[0]
    assert '": "' in old.execute("SELECT data FROM events LIMIT 1").fetchone()[0]
    old.close()

    ctrl = controller(tmp_path, clock)
    assert schema_version(ctrl.store.db) == len(MIGRATIONS)
    assert snapshot(ctrl) == before_state
    assert ctrl.store.events_after(0, 10_000) == history
    after = ctrl.store.query("SELECT id, actor, name, args, result FROM commands ORDER BY id")
    assert [{**r, "args": json.loads(r["args"])} for r in after] == \
        [{**r, "args": json.loads(r["args"])} for r in audit]
    compact = ctrl.store.query(
        "SELECT SUM(LENGTH(CAST(data AS BLOB))) AS n FROM events")[0]["n"]
    assert compact < spaced_bytes and '": "' not in ctrl.store.query(
        "SELECT data FROM events LIMIT 1")[0]["data"]
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        ctrl.store.db.execute("UPDATE events SET kind = 'x' WHERE id = 1")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        ctrl.store.db.execute("UPDATE commands SET name = 'x' WHERE id = 1")
    ctrl.store.close()


def test_a_report_reads_one_snapshot_beside_the_hall_and_cannot_write(tmp_path):
    """A report's reads see the hall as it was when the report began, while the hall goes on
    committing; the report's connection cannot change anything."""
    clock = ManualClock(at("09:00"))
    ctrl = controller(tmp_path, clock)
    ctrl.execute(c.IssueTicket("A"), "kiosk")
    with ctrl.store.reads.snapshot() as db:
        assert db.execute("SELECT COUNT(*) FROM tickets").fetchone()[0] == 1
        ctrl.execute(c.IssueTicket("A"), "kiosk")  # the hall is not held up by the reader
        assert db.execute("SELECT COUNT(*) FROM tickets").fetchone()[0] == 1
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            db.execute("INSERT INTO meta (key, value) VALUES ('x', 'y')")
    with ctrl.store.reads.snapshot() as db:
        assert db.execute("SELECT COUNT(*) FROM tickets").fetchone()[0] == 2
    ctrl.store.close()


def test_the_log_keeps_each_name_once_and_an_event_takes_its_commands_moment(tmp_path):
    """Migrations 15 and 16: actors are stored once, in log_names, and event kinds and command
    names once with each template of their payloads, in log_shapes; an event at its command's
    moment stores no time of its own; the views read as the logs always did."""
    clock = ManualClock(at("09:00"))
    ctrl = controller(tmp_path, clock)
    busy_morning(ctrl, clock)
    db = ctrl.store.db
    names = [r[0] for r in db.execute("SELECT name FROM log_names").fetchall()]
    assert len(names) == len(set(names)) and "staff:test" in names
    shapes = db.execute("SELECT name, template FROM log_shapes").fetchall()
    assert len(shapes) == len(set(shapes)) and {"ticket_called", "call_next"} <= {n for n, _ in shapes}
    assert db.execute("SELECT COUNT(*) FROM event_log WHERE at IS NOT NULL").fetchone()[0] == 0
    [(kind, when, actor)] = db.execute(
        "SELECT e.kind, e.at, c.actor FROM events e JOIN commands c ON c.id = e.command_id "
        "ORDER BY e.id DESC LIMIT 1").fetchall()
    assert (kind, when, actor) == ("ticket_called", clock().isoformat(), "staff:test")
    ctrl.store.close()
    again = controller(tmp_path, clock)  # the codes found again after a restart, not added twice
    again.execute(c.CallNext(2), "staff:test")
    assert db is not again.store.db and again.store.db.execute(
        "SELECT COUNT(*) FROM log_names").fetchone()[0] == len(names)
    later = again.store.db.execute("SELECT name, template FROM log_shapes").fetchall()
    assert len(later) == len(set(later)) and set(shapes) <= set(later)


def test_a_name_first_written_in_a_failed_write_is_written_again(tmp_path, monkeypatch):
    """A new actor's code added in a write that rolled back is not taken as known after."""
    clock = ManualClock(at("09:00"))
    ctrl = controller(tmp_path, clock)

    def disk_full(*args, **kwargs):
        raise sqlite3.OperationalError("database or disk is full")
    monkeypatch.setattr(ctrl.store, "_write_outcome", disk_full)
    with pytest.raises(StorageUnavailable):
        ctrl.execute(c.IssueTicket("A"), "kiosk:new")
    monkeypatch.undo()
    assert ctrl.execute(c.IssueTicket("A"), "kiosk:new").ticket.label == "A001"
    assert [r["actor"] for r in ctrl.store.query("SELECT actor FROM commands")][-1] == "kiosk:new"
