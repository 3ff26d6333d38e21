"""Persisting the hall: tickets, windows, the command log and the event log.

Every command is written in one transaction with the events it caused and the
records it touched, so the database always holds a state the engine produced.
On start the state is rebuilt from these tables, never from memory.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import threading
import json
import logging
import shutil
import sqlite3
from enum import Enum
from pathlib import Path
from typing import Any, Callable, Sequence

import sqlite_utils

from vocabulary import chain

from controller.core.engine import Engine
from controller.core.outcome import Outcome
from controller.core.events import (
    DAY_STARTED, GUIDANCE_ANSWERED, GUIDANCE_CALLED, PATROL_DUE, ClockFault, ClockRestored, DayStarted,
    Event, PatrolRecorded, kind_of,
    payload, stored,
)
from controller.core.model import (
    Channel, HallState, PriorityClass, Ticket, TicketStatus, WindowState, WindowStatus,
)
from controller.store import chainlog
from controller.store.db import Shapes, open_db
from controller.store.logform import encode_at, encode_payload, log_json
from controller.store.faults import StorageFault, StorageUnavailable, describe, is_storage_error
from controller.store.reading import ReadOnly

log = logging.getLogger(__name__)

_TICKET_FIELDS = [f.name for f in dataclasses.fields(Ticket)]
_WINDOW_FIELDS = [f.name for f in dataclasses.fields(WindowState)]
_TICKET_TYPES = {"day": dt.date, "channel": Channel,
                 "status": TicketStatus, "priority": PriorityClass, "requeued": bool}
_WINDOW_TYPES = {"status": WindowStatus, "pause_alerted": bool}


def _to_sql(v: Any) -> Any:
    if isinstance(v, Enum):
        return v.value
    if isinstance(v, dt.date | dt.datetime):
        return v.isoformat()
    if isinstance(v, bool):
        return int(v)
    return v


def _from_sql(name: str, v: Any, types: dict[str, type]) -> Any:
    if v is None:
        return None
    kind = types.get(name)
    if kind is dt.date:
        return dt.date.fromisoformat(v)
    if kind is not None:
        return kind(v)
    if name.endswith("_at"):
        return dt.datetime.fromisoformat(v)
    return v


def _inserted_id(cur: sqlite3.Cursor) -> int:
    """The rowid of the row an INSERT just wrote."""
    if cur.lastrowid is None:
        raise RuntimeError("an INSERT wrote no row")
    return cur.lastrowid


def _upsert_sql(table: str, fields: list[str], pk: str) -> str:
    cols = ", ".join(fields)
    marks = ", ".join("?" for _ in fields)
    updates = ", ".join(f"{f} = excluded.{f}" for f in fields if f != pk)
    return (f"INSERT INTO {table} ({cols}) VALUES ({marks}) "
            f"ON CONFLICT ({pk}) DO UPDATE SET {updates}")


_TICKET_UPSERT = _upsert_sql("tickets", _TICKET_FIELDS, "id")
# A new ticket is inserted, never upserted: the database refuses a number twice.
_TICKET_INSERT = (f"INSERT INTO tickets ({', '.join(_TICKET_FIELDS)}) "
                  f"VALUES ({', '.join('?' for _ in _TICKET_FIELDS)})")
_WINDOW_UPSERT = _upsert_sql("windows", _WINDOW_FIELDS, "number")


def ticket_from_row(row: dict[str, Any]) -> Ticket:
    return Ticket(**{f: _from_sql(f, row[f], _TICKET_TYPES) for f in _TICKET_FIELDS})


def window_from_row(row: dict[str, Any]) -> WindowState:
    return WindowState(**{f: _from_sql(f, row[f], _WINDOW_TYPES) for f in _WINDOW_FIELDS})


def _locked(method):
    """Run `method` holding the store's lock: one connection, one user at a time."""
    @functools.wraps(method)
    def run(self, *args, **kwargs):
        with self.lock:
            return method(self, *args, **kwargs)
    return run


@dataclasses.dataclass(frozen=True)
class CommandRow:
    """One command as the command log records it: `result` "ok" with the `outcome` it
    caused, or a refusal's code and message (no outcome), or an act outside the engine."""
    at: dt.datetime
    actor: str
    name: str
    args: dict[str, Any]
    result: str = "ok"
    message: str | None = None
    outcome: Outcome | None = None


@dataclasses.dataclass(frozen=True)
class AlsoWrite:
    """Rows a job writes beside its commands, in the same transaction and after them (an
    appointment marked checked in with the ticket it was issued): `fn(conn)`."""
    at: dt.datetime
    fn: Callable[[sqlite3.Connection], None]
    name: str = "also_write"


# While a storage fault stands, the free space below which the probe still reports the disk
# full (a busy hour's tickets and their log take about 2 MiB).
MIN_FREE_BYTES = 2 * 2**20


class HallStore:
    """The hall's database: one connection, used by one thread at a time.

    Every method takes `lock` (re-entrant); the controller holds the same lock
    around a command, and anyone using `db` directly must hold it too.
    """

    def __init__(self, path: str | Path, durable: bool = True) -> None:
        """`durable=False`: a simulation's throw-away database (see `open_db`)."""
        self.path = Path(path)
        self.durable = durable
        self.db: sqlite_utils.Database = open_db(self.path, durable)
        self.lock = threading.RLock()
        # the hash chain's head (controller.store.chainlog): committed, and as the open write leaves it
        self._chain_head = self._linked()
        self._new_head = self._chain_head
        self._checkpointer: sqlite3.Connection | None = None
        # the standing storage fault, from the failed write until a write succeeds again
        self.fault: StorageFault | None = None
        self.probed_at = 0.0  # time.monotonic() of the last probe (controller.web.hall_api)
        self.closed = False
        # reports and histories read beside the writer: `with store.reads.snapshot() as db`
        self.reads = ReadOnly(self)
        # log_names' codes (migration 15): those committed, and those the open write added
        self._codes: dict[str, int] = {}
        self._new_codes: dict[str, int] = {}
        # the last write's commands (id, name, result) and its events' commands (event id ->
        # command id), for the logs (controller.runtime.logs); new objects at every write
        self.commands_written: list[tuple[int, str, str]] = []
        self.event_commands: dict[int, int] = {}
        self._shapes = Shapes(self.db.conn)  # the payloads' shapes (migration 17)

    # -- storage faults ----------------------------------------------------

    def failed(self, e: BaseException, at: dt.datetime | None = None) -> StorageUnavailable:
        """Record the storage fault `e` as standing; the error to raise in its place."""
        fault = describe(e, self.path, at)
        if self.fault is None or self.fault.detail != fault.detail:
            log.error("storage fault: %s", fault.line())
            self.fault = fault
        return StorageUnavailable(fault)

    def _recovered(self) -> None:
        if self.fault is not None:
            log.warning("storage works again after: %s", self.fault.line())
            self.fault = None

    @_locked
    def probe(self, at: dt.datetime | None = None) -> StorageFault | None:
        """Write and commit one row, to find whether the store takes writes: at start-up (a
        read-only database opens fine and fails every ticket after) and while a fault stands
        (so /health turns ok again once the disk has room). The fault, or None."""
        conn = self.db.conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO meta (key, value) VALUES ('written_at', ?) "
                         "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                         ((at or dt.datetime.now(dt.timezone.utc)).isoformat(),))
            conn.execute("COMMIT")
            # a row this small can still fit in the WAL's pages while a ticket no longer does:
            # the disk counts as full until it has room for a busy while's writes again
            if self.fault is not None and shutil.disk_usage(self.path.parent).free < MIN_FREE_BYTES:
                raise sqlite3.OperationalError(
                    f"database or disk is full (less than {MIN_FREE_BYTES // 2**20} MiB free)")
        except Exception as e:
            self._rollback()
            if not is_storage_error(e):
                raise
            return self.failed(e, at).fault
        self._recovered()
        return None

    def _rollback(self) -> None:
        """Undo an open transaction. SQLite has already rolled back after SQLITE_FULL or an I/O
        error, and a second ROLLBACK's "cannot rollback" would hide the real error."""
        conn = self.db.conn
        self._new_codes.clear()
        self._shapes.added.clear()
        if conn.in_transaction:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                log.exception("rollback failed")

    @_locked
    def close(self) -> None:
        self.checkpoint()
        self.reads.close()
        if self._checkpointer is not None:
            self._checkpointer.close()
        self.db.conn.close()
        self.closed = True

    def checkpoint(self) -> tuple[int, int]:
        """Copy committed pages from the WAL into the database file, beside the writers.

        Runs on a connection of its own and may run in another thread: commits
        are already durable in the WAL, so this moves no promise, only the
        checkpoint's fsync off the path of a window's call-next.
        """
        if not self.durable:
            return 0, 0  # no WAL to copy: the journal lives in memory
        if self._checkpointer is None:
            self._checkpointer = sqlite3.connect(str(self.path), check_same_thread=False,
                                                 isolation_level=None)
        _, wal_frames, copied = self._checkpointer.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        return wal_frames, copied

    # -- loading -----------------------------------------------------------

    @_locked
    def load(self, engine: Engine) -> HallState:
        """The hall's state as the last committed command left it."""
        row = self.db.execute("SELECT value FROM meta WHERE key = 'day'").fetchone()
        day = dt.date.fromisoformat(row[0]) if row else None
        tickets = [ticket_from_row(r) for r in
                   self.db.query("SELECT * FROM tickets WHERE day = ?", [day.isoformat()])
                   ] if day else []
        windows = [window_from_row(r) for r in self.db.query("SELECT * FROM windows")]
        state = engine.restore(day, tickets, windows)
        if day:  # a restart does not remind of a patrol twice
            # today's events only: those after the day's start, found from the log's end (the
            # whole log was read here, a second of every restart at 200,000 tickets)
            # (two queries: within one, SQLite would index the whole log by kind to find the start)
            start = self.db.execute("SELECT id FROM events WHERE kind = ? ORDER BY id DESC LIMIT 1",
                                    [DAY_STARTED]).fetchone()
            state.patrols_reminded = {json.loads(r["data"])["time"] for r in self.db.query(
                "SELECT data FROM events WHERE id >= ? AND kind = ? AND substr(at, 1, 10) = ?",
                [start[0] if start else 0, PATROL_DUE, day.isoformat()])}
            state.guidance_calls = self._guidance_calls(start[0] if start else 0)
        return state

    def _guidance_calls(self, start: int) -> dict[str, dt.datetime]:
        """The kiosks' 帮办代办 calls still unanswered among today's events (those from the
        day's start, event `start`) (controller.core.guidance)."""
        calls: dict[str, dt.datetime] = {}
        for r in self.db.query("SELECT kind, at, data FROM events WHERE id >= ? AND kind IN (?, ?) ORDER BY id",
                               [start, GUIDANCE_CALLED, GUIDANCE_ANSWERED]):
            kiosk = json.loads(r["data"])["kiosk"]
            if r["kind"] == GUIDANCE_CALLED:
                calls[kiosk] = dt.datetime.fromisoformat(r["at"])
            else:
                calls.pop(kiosk, None)
        return calls

    @_locked
    def last_moments(self, events: int = 100) -> list[dt.datetime]:
        """When the hall's last `events` events happened (the latest, whatever their order).
        Events, not commands: a tool such as `hallctl rotate-key` logs a command by its own
        clock, while every event is at the hall's time."""
        return [dt.datetime.fromisoformat(r[0]) for r in self.db.execute(
            "SELECT at FROM events ORDER BY id DESC LIMIT ?", [events]).fetchall()]

    @_locked
    def standing_clock_fault(self) -> dict[str, Any] | None:
        """The last clock fault recorded, if no end of it was recorded after."""
        row = self.db.execute("SELECT value FROM meta WHERE key = 'clock_fault'").fetchone()
        return json.loads(row[0]) if row else None

    # -- writing -----------------------------------------------------------

    @_locked
    def write(self, rows: Sequence[CommandRow | AlsoWrite]) -> list[tuple[int, Event]]:
        """Write several commands, each with its events and the records it touched, in ONE
        transaction (one fsync: the hall thread's group commit); durable on return. The
        events written, with their ids, in the order of `rows`."""
        if not rows:
            return []
        conn = self.db.conn
        conn.execute("BEGIN IMMEDIATE")
        self._new_head = self._chain_head
        try:
            written: list[tuple[int, Event]] = []
            commands: list[tuple[int, str, str]] = []
            self.event_commands = {}
            for row in rows:
                if isinstance(row, AlsoWrite):
                    row.fn(conn)
                    continue
                command_id = self._log_command(row.at, row.actor, row.name, row.args,
                                               row.result, row.message)
                commands.append((command_id, row.name, row.result))
                if row.outcome is not None:
                    written += self._write_outcome(command_id, row.at, row.outcome)
            conn.execute("COMMIT")
            self._chain_head = self._new_head
            self.commands_written = commands
            self._codes.update(self._new_codes)
            self._new_codes.clear()
            self._shapes.committed()
        except BaseException as e:
            self._rollback()
            if is_storage_error(e):
                raise self.failed(e, rows[-1].at) from e
            raise
        self._recovered()
        return written

    def commit(self, at: dt.datetime, actor: str, name: str, args: dict[str, Any],
               outcome: Outcome) -> list[tuple[int, Event]]:
        """Write a command that succeeded, its events and the records it touched; durable on return."""
        return self.write([CommandRow(at, actor, name, args, outcome=outcome)])

    def log_command(self, at: dt.datetime, actor: str, name: str, args: dict[str, Any],
                    result: str, message: str | None = None) -> None:
        """Record a command that changed no hall state: a refusal (`result` is its code),
        or an act outside the engine such as a supervisor's login."""
        self.write([CommandRow(at, actor, name, args, result, message)])

    def _write_outcome(self, command_id: int, command_at: dt.datetime,
                       outcome: Outcome) -> list[tuple[int, Event]]:
        conn = self.db.conn
        for t in outcome.tickets.values():
            conn.execute(_TICKET_INSERT if t.id in outcome.created else _TICKET_UPSERT,
                         [_to_sql(getattr(t, f)) for f in _TICKET_FIELDS])
        conn.executemany(_WINDOW_UPSERT, [[_to_sql(getattr(w, f)) for f in _WINDOW_FIELDS]
                                          for w in outcome.windows.values()])
        written: list[tuple[int, Event]] = []
        for e in outcome.events:
            # an event at its command's moment leaves `at` to the command (the `events` view)
            at = None if e.at.isoformat() == command_at.isoformat() else e.at.isoformat()
            body = stored(e)  # a case's event names its case (controller.core.events.stored)
            template, data = encode_payload(body)
            cur = conn.execute(
                "INSERT INTO event_log (command_id, at, kind, window, ticket_id, data) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (command_id, at, self._shapes.code(kind_of(e), template), e.window, e.ticket, data))
            event_id = _inserted_id(cur)
            # the chain links the event as the `events` view gives it back (its whole payload)
            self._link(event_id, {"id": event_id, "kind": kind_of(e), "at": e.at.isoformat(), "window": e.window,
                                  "ticket": e.ticket, "data": json.loads(log_json(body))})
            written.append((event_id, e))
            self.event_commands[event_id] = command_id
            if isinstance(e, DayStarted):
                conn.execute("INSERT INTO meta (key, value) VALUES ('day', ?) "
                             "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                             (e.day,))
            elif isinstance(e, ClockFault):  # standing until it is recorded as ended
                conn.execute("INSERT INTO meta (key, value) VALUES ('clock_fault', ?) "
                             "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                             (json.dumps(payload(e), ensure_ascii=False),))
            elif isinstance(e, ClockRestored):
                conn.execute("DELETE FROM meta WHERE key = 'clock_fault'")
            elif isinstance(e, PatrolRecorded):
                self._insert_patrol(event_id, e)
        return written

    def _link(self, event_id: int, event: dict[str, Any]) -> None:
        """The event's link in the hash chain, in its transaction (as the `events` view reads it)."""
        link = chain.link(self._new_head[1], event)
        chainlog.append(self.db.conn, event_id, link)
        self._new_head = (event_id, link)

    def _linked(self) -> tuple[int, str]:
        """Link the events a log from before the chain (hall schema 19) has; the chain's head."""
        conn = self.db.conn
        linked = chainlog.head(conn)
        if conn.execute("SELECT COALESCE(MAX(id), 0) FROM event_log").fetchone()[0] == linked[0]:
            return linked
        conn.execute("BEGIN IMMEDIATE")
        try:
            linked = chainlog.extend(conn)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return linked

    def _log_command(self, at: dt.datetime, actor: str, name: str, args: dict[str, Any],
                     result: str, message: str | None) -> int:
        moment, zone = encode_at(at)
        template, kept = encode_payload(args, default=str)
        cur = self.db.conn.execute(
            "INSERT INTO command_log (at, zone, actor, name, args, result, message) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (moment, zone, self._code(actor), self._shapes.code(name, template), kept,
             None if result == "ok" else result, message))
        return _inserted_id(cur)

    def _code(self, name: str) -> int:
        """The code log_names keeps for `name` (an actor; before migration 17 also kinds and names), added
        the first time the logs write it; a code added counts as known once its write commits."""
        code = self._codes.get(name) or self._new_codes.get(name)
        if code is None:
            conn = self.db.conn
            row = conn.execute("SELECT code FROM log_names WHERE name = ?", (name,)).fetchone()
            code = row[0] if row else _inserted_id(
                conn.execute("INSERT INTO log_names (name) VALUES (?)", (name,)))
            self._new_codes[name] = code
        return code

    def _insert_patrol(self, event_id: int, e: PatrolRecorded) -> None:
        self.db.conn.execute(
            "INSERT INTO patrol_rounds (event_id, at, day, scheduled, area, no_problems, findings, "
            "signer, windows) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (event_id, e.at.isoformat(), e.day, e.scheduled, e.area, int(e.no_problems),
             e.findings, e.signer, json.dumps(e.windows, ensure_ascii=False)))

    # -- reading -----------------------------------------------------------

    @_locked
    def ticket(self, ticket_id: str) -> Ticket | None:
        rows = list(self.db.query("SELECT * FROM tickets WHERE id = ?", [ticket_id]))
        return ticket_from_row(rows[0]) if rows else None

    @_locked
    def ticket_id_for_request_key(self, key: str) -> str | None:
        """The ticket a kiosk's request key was committed with, if any (indexed)."""
        rows = list(self.db.query("SELECT id FROM tickets WHERE request_key = ?", [key]))
        return rows[0]["id"] if rows else None

    @_locked
    def ungraded_before(self, cutoff: dt.datetime, limit: int = 500) -> list[Ticket]:
        """Finished visits nobody evaluated, finished before `cutoff` (for the default grade)."""
        return [ticket_from_row(r) for r in self.db.query(
            "SELECT * FROM tickets WHERE grade IS NULL AND status = 'finished' AND finished_at < ? "
            "ORDER BY finished_at LIMIT ?", [cutoff.isoformat(), limit])]

    @_locked
    def ticket_history(self, ticket_id: str) -> list[dict[str, Any]]:
        return [_event_row(r) for r in self.db.query(
            "SELECT events.*, commands.actor FROM events JOIN commands "
            "ON commands.id = events.command_id WHERE ticket_id = ? ORDER BY events.id",
            [ticket_id])]

    @_locked
    def events_after(self, event_id: int, limit: int = 1000) -> list[tuple[int, dict[str, Any]]]:
        return [(r["id"], _event_row(r)) for r in self.db.query(
            "SELECT * FROM events WHERE id > ? ORDER BY id LIMIT ?", [event_id, limit])]

    @_locked
    def query(self, sql: str, params: list | tuple = ()) -> list[dict[str, Any]]:
        """Rows of a read-only query, taken under the lock."""
        return list(self.db.query(sql, params))

    @_locked
    def patrol_rounds(self, day_from: dt.date, day_to: dt.date) -> list[dict[str, Any]]:
        """The patrol ledger's rounds of those days, oldest first."""
        return [{**r, "no_problems": bool(r["no_problems"]), "windows": json.loads(r["windows"])}
                for r in self.db.query(
                    "SELECT id, at, day, scheduled, area, no_problems, findings, signer, windows "
                    "FROM patrol_rounds WHERE day BETWEEN ? AND ? ORDER BY id",
                    [day_from.isoformat(), day_to.isoformat()])]

    @_locked
    def last_event_id(self) -> int:
        return self.db.execute("SELECT COALESCE(MAX(id), 0) FROM event_log").fetchone()[0]


def _event_row(r: dict[str, Any]) -> dict[str, Any]:
    out = {"id": r["id"], "kind": r["kind"], "at": r["at"], "window": r["window"],
           "ticket": r["ticket_id"], "data": json.loads(r["data"])}
    if "actor" in r:
        out["actor"] = r["actor"]
    return out
