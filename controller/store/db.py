"""Opening the hall database: SQLite in WAL mode, synchronous=FULL, versioned migrations.

synchronous=FULL makes every commit reach the disk before it returns: a ticket
acknowledged to a citizen survives a power cut, not only a crash.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from pathlib import Path
from typing import Callable

import sqlite_utils

from controller.store.logform import at_sql, encode_at, encode_payload, payload_sql


def _closed_day_trigger(name: str, action: str, table: str, day: str) -> str:
    """A trigger that counts a change to a ticket of a closed (or summarised) day and drops
    that day's summary (migration 13)."""
    return f"""
    CREATE TRIGGER IF NOT EXISTS {name} AFTER {action} ON {table}
        WHEN {day} < (SELECT value FROM meta WHERE key = 'day') OR {day} IN (SELECT day FROM day_summaries)
        BEGIN
            INSERT INTO day_changes (day, n) SELECT {day}, 0
                WHERE NOT EXISTS (SELECT 1 FROM day_changes WHERE day = {day});
            UPDATE day_changes SET n = n + 1 WHERE day = {day};
            DELETE FROM day_figures WHERE day = {day};
            DELETE FROM day_summaries WHERE day = {day};
        END;
    """


_EVENT_DAY = "(SELECT day FROM tickets WHERE id = NEW.ticket_id)"

# Each entry migrates the schema from version i to i + 1: SQL, or a function of the connection
# where rows must pass through the store's own encoding (controller.store.logform). Never edit
# a shipped entry: add a new one.
Migration = str | Callable[[sqlite3.Connection], None]
MIGRATIONS: list[Migration] = [
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE tickets (
        id TEXT PRIMARY KEY,
        day TEXT NOT NULL,
        prefix TEXT NOT NULL,
        number INTEGER NOT NULL,
        label TEXT NOT NULL,
        service TEXT NOT NULL,
        channel TEXT NOT NULL,
        issued_at TEXT NOT NULL,
        queued_at TEXT NOT NULL,
        queue_seq INTEGER NOT NULL,
        status TEXT NOT NULL,
        priority TEXT,
        appointment_at TEXT,
        id_masked TEXT,
        name_masked TEXT,
        window INTEGER,
        staff_id TEXT,
        called_at TEXT,
        finished_at TEXT,
        recalls INTEGER NOT NULL DEFAULT 0,
        requeued INTEGER NOT NULL DEFAULT 0,
        transfers INTEGER NOT NULL DEFAULT 0,
        UNIQUE (day, prefix, number)
    );
    CREATE INDEX tickets_day ON tickets (day);
    CREATE TABLE windows (
        number INTEGER PRIMARY KEY,
        status TEXT NOT NULL,
        staff_id TEXT,
        post TEXT,
        logged_in_at TEXT,
        current TEXT REFERENCES tickets (id),
        paused_at TEXT,
        pause_reason TEXT,
        pause_minutes INTEGER,
        pause_alerted INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE commands (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at TEXT NOT NULL,
        actor TEXT NOT NULL,
        name TEXT NOT NULL,
        args TEXT NOT NULL,
        result TEXT NOT NULL,
        message TEXT
    );
    CREATE TABLE events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        command_id INTEGER NOT NULL REFERENCES commands (id),
        at TEXT NOT NULL,
        kind TEXT NOT NULL,
        window INTEGER,
        ticket_id TEXT,
        data TEXT NOT NULL
    );
    CREATE INDEX events_ticket ON events (ticket_id);
    CREATE TRIGGER commands_append_only_u BEFORE UPDATE ON commands
        BEGIN SELECT RAISE(ABORT, 'commands are append-only'); END;
    CREATE TRIGGER commands_append_only_d BEFORE DELETE ON commands
        BEGIN SELECT RAISE(ABORT, 'commands are append-only'); END;
    CREATE TRIGGER events_append_only_u BEFORE UPDATE ON events
        BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
    CREATE TRIGGER events_append_only_d BEFORE DELETE ON events
        BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
    CREATE TABLE sessions (
        token_hash TEXT PRIMARY KEY,
        staff_id TEXT NOT NULL,
        role TEXT NOT NULL,
        window INTEGER,
        created_at TEXT NOT NULL,
        revoked_at TEXT
    );
    """,
    # 2: the kiosk path: sealed identity, lookup key, and what the ticket promised.
    """
    ALTER TABLE tickets ADD COLUMN citizen_key TEXT;
    ALTER TABLE tickets ADD COLUMN identity_sealed TEXT;
    ALTER TABLE tickets ADD COLUMN ahead_at_issue INTEGER;
    ALTER TABLE tickets ADD COLUMN eta_p10 REAL;
    ALTER TABLE tickets ADD COLUMN eta_p50 REAL;
    ALTER TABLE tickets ADD COLUMN eta_p90 REAL;
    CREATE INDEX tickets_citizen ON tickets (citizen_key);
    """,
    # 3: appointments booked elsewhere (the provincial booking system), checked in at the kiosk.
    """
    CREATE TABLE appointments (
        code TEXT PRIMARY KEY,
        service TEXT NOT NULL,
        slot TEXT NOT NULL,
        day TEXT NOT NULL,
        citizen_key TEXT,
        identity_sealed TEXT,
        id_masked TEXT,
        name_masked TEXT,
        status TEXT NOT NULL,
        ticket_id TEXT REFERENCES tickets (id),
        booked_at TEXT NOT NULL,
        booked_by TEXT NOT NULL
    );
    CREATE INDEX appointments_day ON appointments (day);
    """,
    # 4: where staff went during a pause (去向告知).
    """
    ALTER TABLE windows ADD COLUMN pause_whereabouts TEXT;
    """,
    # 5: evaluation (好差评): one grade per visit, by name, with its channel; the open prompt.
    """
    ALTER TABLE tickets ADD COLUMN grade TEXT;
    ALTER TABLE tickets ADD COLUMN grade_channel TEXT;
    ALTER TABLE tickets ADD COLUMN graded_at TEXT;
    ALTER TABLE tickets ADD COLUMN grade_tags TEXT;
    ALTER TABLE tickets ADD COLUMN phone_sealed TEXT;
    ALTER TABLE windows ADD COLUMN evaluating TEXT;
    ALTER TABLE windows ADD COLUMN prompted_at TEXT;
    CREATE INDEX tickets_ungraded ON tickets (finished_at) WHERE grade IS NULL;
    """,
    # 6: callback and complaint cases (controller.backoffice.cases): indexed columns for listing, the
    # whole case (sealed identity and phone, history) in `body`; anonymous bad reviews
    # counted without a case; overdue alerts, once per case and deadline.
    """
    CREATE TABLE cases (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        state TEXT NOT NULL,
        source TEXT NOT NULL,
        opened_at TEXT NOT NULL,
        day TEXT NOT NULL,
        staff_id TEXT,
        window INTEGER,
        service TEXT,
        ticket_id TEXT,
        assignee TEXT,
        callback_due TEXT,
        rectify_due TEXT,
        feedback_due TEXT,
        resolve_due TEXT,
        updated_at TEXT NOT NULL,
        body TEXT NOT NULL
    );
    CREATE INDEX cases_state ON cases (state, kind);
    CREATE INDEX cases_day ON cases (day);
    CREATE INDEX cases_staff ON cases (staff_id);
    CREATE UNIQUE INDEX cases_bad_review_ticket ON cases (ticket_id) WHERE kind = 'bad_review';
    CREATE TABLE anonymous_bad_reviews (
        ticket_id TEXT PRIMARY KEY,
        at TEXT NOT NULL,
        day TEXT NOT NULL,
        grade TEXT NOT NULL,
        channel TEXT,
        window INTEGER,
        staff_id TEXT,
        service TEXT
    );
    CREATE INDEX anonymous_bad_reviews_day ON anonymous_bad_reviews (day);
    CREATE TABLE case_alerts (
        case_id TEXT NOT NULL REFERENCES cases (id),
        deadline TEXT NOT NULL,
        due TEXT NOT NULL,
        alerted_at TEXT NOT NULL,
        PRIMARY KEY (case_id, deadline)
    );
    """,
    # 7: staff accounts disabled (停用, e.g. on leaving the hall, 001 4.2.4); enabling deletes the row.
    """
    CREATE TABLE staff_disabled (
        staff_id TEXT PRIMARY KEY,
        disabled_at TEXT NOT NULL,
        disabled_by TEXT NOT NULL,
        reason TEXT
    );
    """,
    # 8: who granted a ticket's priority ("staff:<id>", or "rule:age"), controller.core.priority.
    """
    ALTER TABLE tickets ADD COLUMN priority_by TEXT;
    """,
    # 9: the patrol ledger (巡查台账, 000 巡查制度 第六条): one row per round, written with its
    # patrol_recorded event; `windows` is who was at each window then (JSON).
    """
    CREATE TABLE patrol_rounds (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        event_id INTEGER NOT NULL UNIQUE REFERENCES events (id),
        at TEXT NOT NULL,
        day TEXT NOT NULL,
        scheduled TEXT,
        area TEXT NOT NULL,
        no_problems INTEGER NOT NULL,
        findings TEXT NOT NULL,
        signer TEXT NOT NULL,
        windows TEXT NOT NULL
    );
    CREATE INDEX patrol_rounds_day ON patrol_rounds (day);
    """,
    # 10: one kiosk request, one ticket: the request's idempotency key is kept with its ticket,
    # so a repeated request (a double tap, a retry after a restart) finds the ticket again.
    """
    ALTER TABLE tickets ADD COLUMN request_key TEXT;
    CREATE UNIQUE INDEX tickets_request_key ON tickets (request_key) WHERE request_key IS NOT NULL;
    """,
    # 11: kiosk device credentials (controller.store.kiosk_credentials): one live key per
    # kiosk, stored hashed; revoking keeps the row, with when and by whom.
    """
    CREATE TABLE kiosk_credentials (
        kiosk_id TEXT PRIMARY KEY,
        key_hash TEXT NOT NULL,
        created_at TEXT NOT NULL,
        created_by TEXT NOT NULL,
        revoked_at TEXT,
        revoked_by TEXT
    );
    """,
    # 12: the logs' JSON without the spaces json.dumps puts after "," and ":" (a tenth of a
    # busy hall's database). The append-only triggers stand aside for this one rewrite, which
    # changes the text and not what it says; SQLite's json() is the minifier.
    """
    DROP TRIGGER commands_append_only_u;
    DROP TRIGGER events_append_only_u;
    UPDATE events SET data = json(data) WHERE json_valid(data) AND data != json(data);
    UPDATE commands SET args = json(args) WHERE json_valid(args) AND args != json(args);
    CREATE TRIGGER commands_append_only_u BEFORE UPDATE ON commands
        BEGIN SELECT RAISE(ABORT, 'commands are append-only'); END;
    CREATE TRIGGER events_append_only_u BEFORE UPDATE ON events
        BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
    """,
    # 13: day summaries (controller.backoffice.day_figures): a closed day's figures per service, staff,
    # window and the whole day, kept once computed, since a past day rarely changes. When one
    # does (a late grade, a purge, a ticket of a closed day touched at all), the triggers count
    # the change in day_changes and drop that day's summary, which is computed again when next
    # read; a summary is kept only if no change was counted while it was computed. Like 12, it
    # can run again over its own result. No INSERT OR IGNORE in the triggers: the statement
    # that fires them, the store's upsert, would impose its own conflict handling on it.
    # day_figures has rowids: its rows of a few KB then fit their leaf pages (WITHOUT ROWID
    # would put all past 1 KB of a row in overflow pages, half empty).
    """
    CREATE TABLE IF NOT EXISTS day_summaries (
        day TEXT PRIMARY KEY,
        changes INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS day_figures (
        day TEXT NOT NULL,
        grouping TEXT NOT NULL,
        key TEXT NOT NULL,
        counts TEXT NOT NULL,
        waits BLOB NOT NULL,
        service BLOB NOT NULL,
        PRIMARY KEY (day, grouping, key)
    );
    CREATE TABLE IF NOT EXISTS day_changes (
        day TEXT PRIMARY KEY,
        n INTEGER NOT NULL
    ) WITHOUT ROWID;
""" + "".join(_closed_day_trigger(name, action, table, day) for name, action, table, day in (
        ("tickets_closed_day_i", "INSERT", "tickets", "NEW.day"),
        ("tickets_closed_day_u", "UPDATE", "tickets", "OLD.day"),
        ("tickets_closed_day_d", "DELETE", "tickets", "OLD.day"),
        ("events_closed_day", "INSERT", "events", _EVENT_DAY),
    )),
    # 14: indexes that cost bytes and bought nothing: tickets_day repeats the first column of
    # the (day, prefix, number) index, which serves every lookup by day; citizen_key is empty
    # on most tickets (no ID card read), so its index holds only the tickets that have one.
    """
    DROP INDEX IF EXISTS tickets_day;
    DROP INDEX IF EXISTS tickets_citizen;
    CREATE INDEX tickets_citizen ON tickets (citizen_key) WHERE citizen_key IS NOT NULL;
    """,
    # 15: the logs lean (issue 15: a ticket's bytes on disk). The names the logs repeat on
    # every row (event kinds, command names, actors) are kept once in log_names and the rows
    # hold their codes; an event at the moment of its command (nearly all) leaves its `at`
    # NULL. The rows live in event_log and command_log; `events` and `commands` are views
    # with the columns and values they always had, so every reader reads as before, and
    # writes through them are refused as before (append-only) or encoded (an INSERT).
    # patrol_rounds is made again to refer to event_log. Runs once, in one transaction.
    """
    CREATE TABLE log_names (code INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
    INSERT INTO log_names (name) SELECT kind FROM events UNION SELECT name FROM commands
        UNION SELECT actor FROM commands;
    CREATE TABLE command_log (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at TEXT NOT NULL,
        actor INTEGER NOT NULL REFERENCES log_names (code),
        name INTEGER NOT NULL REFERENCES log_names (code),
        args TEXT NOT NULL,
        result TEXT NOT NULL,
        message TEXT
    );
    INSERT INTO command_log (id, at, actor, name, args, result, message)
        SELECT c.id, c.at, a.code, n.code, c.args, c.result, c.message FROM commands c
        JOIN log_names a ON a.name = c.actor JOIN log_names n ON n.name = c.name ORDER BY c.id;
    CREATE TABLE event_log (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        command_id INTEGER NOT NULL REFERENCES command_log (id),
        at TEXT,
        kind INTEGER NOT NULL REFERENCES log_names (code),
        window INTEGER,
        ticket_id TEXT,
        data TEXT NOT NULL
    );
    INSERT INTO event_log (id, command_id, at, kind, window, ticket_id, data)
        SELECT e.id, e.command_id, NULLIF(e.at, c.at), k.code, e.window, e.ticket_id, e.data
        FROM events e JOIN commands c ON c.id = e.command_id JOIN log_names k ON k.name = e.kind
        ORDER BY e.id;
    CREATE TABLE patrol_rounds_15 (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        event_id INTEGER NOT NULL UNIQUE REFERENCES event_log (id),
        at TEXT NOT NULL,
        day TEXT NOT NULL,
        scheduled TEXT,
        area TEXT NOT NULL,
        no_problems INTEGER NOT NULL,
        findings TEXT NOT NULL,
        signer TEXT NOT NULL,
        windows TEXT NOT NULL
    );
    INSERT INTO patrol_rounds_15 SELECT * FROM patrol_rounds ORDER BY id;
    DROP TABLE patrol_rounds;
    ALTER TABLE patrol_rounds_15 RENAME TO patrol_rounds;
    CREATE INDEX patrol_rounds_day ON patrol_rounds (day);
    DROP TRIGGER events_append_only_u;
    DROP TRIGGER events_append_only_d;
    DROP TRIGGER commands_append_only_u;
    DROP TRIGGER commands_append_only_d;
    DROP TRIGGER events_closed_day;
    DROP TABLE events;
    DROP TABLE commands;
    CREATE INDEX events_ticket ON event_log (ticket_id);
    CREATE VIEW commands AS
        SELECT c.id AS id, c.at AS at, a.name AS actor, n.name AS name, c.args AS args,
               c.result AS result, c.message AS message
        FROM command_log c JOIN log_names a ON a.code = c.actor JOIN log_names n ON n.code = c.name;
    CREATE VIEW events AS
        SELECT e.id AS id, e.command_id AS command_id, COALESCE(e.at, c.at) AS at, k.name AS kind,
               e.window AS window, e.ticket_id AS ticket_id, e.data AS data
        FROM event_log e JOIN command_log c ON c.id = e.command_id JOIN log_names k ON k.code = e.kind;
    CREATE TRIGGER commands_insert INSTEAD OF INSERT ON commands BEGIN
        INSERT INTO log_names (name) SELECT NEW.actor WHERE NOT EXISTS
            (SELECT 1 FROM log_names WHERE name = NEW.actor);
        INSERT INTO log_names (name) SELECT NEW.name WHERE NOT EXISTS
            (SELECT 1 FROM log_names WHERE name = NEW.name);
        INSERT INTO command_log (id, at, actor, name, args, result, message) VALUES (NEW.id, NEW.at,
            (SELECT code FROM log_names WHERE name = NEW.actor),
            (SELECT code FROM log_names WHERE name = NEW.name), NEW.args, NEW.result, NEW.message);
    END;
    CREATE TRIGGER events_insert INSTEAD OF INSERT ON events BEGIN
        INSERT INTO log_names (name) SELECT NEW.kind WHERE NOT EXISTS
            (SELECT 1 FROM log_names WHERE name = NEW.kind);
        INSERT INTO event_log (id, command_id, at, kind, window, ticket_id, data) VALUES (NEW.id,
            NEW.command_id, NULLIF(NEW.at, (SELECT at FROM command_log WHERE id = NEW.command_id)),
            (SELECT code FROM log_names WHERE name = NEW.kind), NEW.window, NEW.ticket_id, NEW.data);
    END;
""" + "".join(f"""
    CREATE TRIGGER {log}_append_only_{verb[0].lower()} BEFORE {verb} ON {table}
        BEGIN SELECT RAISE(ABORT, '{log} are append-only'); END;
    CREATE TRIGGER {log}_view_append_only_{verb[0].lower()} INSTEAD OF {verb} ON {log}
        BEGIN SELECT RAISE(ABORT, '{log} are append-only'); END;
    """ for log, table in (("commands", "command_log"), ("events", "event_log"))
        for verb in ("UPDATE", "DELETE")) + _closed_day_trigger("events_closed_day", "INSERT", "event_log", _EVENT_DAY),
    # 16: the day-summary triggers made again. A database that ran migration 13 as 605e880
    # wrote it (until 6459d83 fixed its text) kept triggers whose INSERT OR IGNORE the store's
    # upsert overrides: the first write that changes two tickets of a closed day failed on
    # UNIQUE day_changes.day (tests/test_upgrades.py, the fixtures of versions 13 and 14).
    "".join(f"DROP TRIGGER IF EXISTS {name};\n" for name in (
        "tickets_closed_day_i", "tickets_closed_day_u", "tickets_closed_day_d", "events_closed_day"))
    + "".join(_closed_day_trigger(name, action, table, day) for name, action, table, day in (
        ("tickets_closed_day_i", "INSERT", "tickets", "NEW.day"),
        ("tickets_closed_day_u", "UPDATE", "tickets", "OLD.day"),
        ("tickets_closed_day_d", "DELETE", "tickets", "OLD.day"),
        ("events_closed_day", "INSERT", "event_log", _EVENT_DAY))),
    # 17: the logs leaner still (issue 15), see controller.store.logform.
    lambda conn: _lean_logs(conn),
    # 18 (issue 17): 到号提醒 by text message (controller.entrance.reminders). A citizen's phone
    # for the reminders, sealed, kept until the ticket's messages are done (and never past its day); the messages as an
    # outbox, one row per ticket and trigger (`ahead`, `called`), so a trigger is due once and
    # a message not yet sent is sent after a restart, under the same id.
    """
    CREATE TABLE reminders (
        ticket_id TEXT PRIMARY KEY,
        day TEXT NOT NULL,
        phone_sealed TEXT,
        phone_masked TEXT NOT NULL,
        opted_at TEXT NOT NULL
    );
    CREATE TABLE reminder_messages (
        id TEXT PRIMARY KEY,
        ticket_id TEXT NOT NULL REFERENCES reminders (ticket_id),
        trigger TEXT NOT NULL,
        text TEXT NOT NULL,
        due_at TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        sent_at TEXT,
        gave_up_at TEXT,
        skipped INTEGER NOT NULL DEFAULT 0,
        UNIQUE (ticket_id, trigger)
    );
    CREATE INDEX reminder_messages_open ON reminder_messages (due_at)
        WHERE sent_at IS NULL AND gave_up_at IS NULL AND skipped = 0;
    """,
    # 19 (issue 16, the chain): each event's link in the log's hash chain (vocabulary.chain), written
    # with the event in its transaction (controller.store.chainlog); a side table, so the log's own
    # layout is free to change. Append-only like the log. The events already in the log get their
    # links when the store next opens (chainlog.extend), in one transaction.
    """
    CREATE TABLE event_chain (
        event_id INTEGER PRIMARY KEY REFERENCES event_log (id),
        hash TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE TRIGGER event_chain_append_only_u BEFORE UPDATE ON event_chain
        BEGIN SELECT RAISE(ABORT, 'the event chain is append-only'); END;
    CREATE TRIGGER event_chain_append_only_d BEFORE DELETE ON event_chain
        BEGIN SELECT RAISE(ABORT, 'the event chain is append-only'); END;
    """,
]


def _log_views() -> str:
    """The views `commands` and `events` over the logs' tables (migration 17): the columns and
    values they always had. Writes through them are refused: the store writes the tables."""
    return f"""
    CREATE VIEW commands AS
        SELECT c.id AS id, {at_sql("c.at", "c.zone")} AS at, a.name AS actor, s.name AS name,
               {payload_sql("s.template", "c.args")} AS args, COALESCE(c.result, 'ok') AS result,
               c.message AS message
        FROM command_log c JOIN log_names a ON a.code = c.actor JOIN log_shapes s ON s.code = c.name;
    CREATE VIEW events AS
        SELECT e.id AS id, e.command_id AS command_id, COALESCE(e.at, {at_sql("c.at", "c.zone")}) AS at,
               s.name AS kind, e.window AS window, e.ticket_id AS ticket_id,
               {payload_sql("s.template", "e.data")} AS data
        FROM event_log e JOIN command_log c ON c.id = e.command_id JOIN log_shapes s ON s.code = e.kind;
    """ + "".join(f"""
    CREATE TRIGGER {log}_append_only_{verb[0].lower()} BEFORE {verb} ON {table}
        BEGIN SELECT RAISE(ABORT, '{log} are append-only'); END;
    CREATE TRIGGER {log}_view_append_only_{verb[0].lower()} INSTEAD OF {verb} ON {log}
        BEGIN SELECT RAISE(ABORT, '{log} are append-only'); END;
    """ for log, table in (("commands", "command_log"), ("events", "event_log"))
        for verb in ("UPDATE", "DELETE")) + "".join(f"""
    CREATE TRIGGER {log}_view_insert INSTEAD OF INSERT ON {log}
        BEGIN SELECT RAISE(ABORT, '{log} are written by the store (controller.store.hallstore)'); END;
    """ for log in ("commands", "events"))


class Shapes:
    """log_shapes' codes (migration 17): a payload's name and template, kept once."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.known: dict[tuple[str, str | None], int] = {}
        self.added: dict[tuple[str, str | None], int] = {}  # by the open write, until it commits

    def code(self, name: str, template: str | None) -> int:
        key = (name, template)
        code = self.known.get(key) or self.added.get(key)
        if code is None:
            row = self.conn.execute("SELECT code FROM log_shapes WHERE name = ? AND template IS ?",
                                    key).fetchone()
            code = row[0] if row else self.conn.execute(
                "INSERT INTO log_shapes (name, template) VALUES (?, ?)", key).lastrowid
            assert code is not None
            self.added[key] = code
        return code

    def committed(self) -> None:
        self.known.update(self.added)
        self.added.clear()


def _lean_logs(conn: sqlite3.Connection) -> None:
    """Migration 17: every command's and event's row again, through the store's encoding: the
    payloads against their shapes (log_shapes), a command's moment as an integer, "ok" as NULL.
    The rows keep their ids; patrol_rounds' references stay good."""
    _script(conn, """
    CREATE TABLE log_shapes (code INTEGER PRIMARY KEY, name TEXT NOT NULL, template TEXT);
    CREATE INDEX log_shapes_name ON log_shapes (name, template);
    CREATE TABLE command_log_16 (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at INTEGER NOT NULL,
        zone INTEGER,
        actor INTEGER NOT NULL REFERENCES log_names (code),
        name INTEGER NOT NULL REFERENCES log_shapes (code),
        args TEXT,
        result TEXT,
        message TEXT
    );
    CREATE TABLE event_log_16 (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        command_id INTEGER NOT NULL REFERENCES command_log (id),
        at TEXT,
        kind INTEGER NOT NULL REFERENCES log_shapes (code),
        window INTEGER,
        ticket_id TEXT,
        data TEXT
    );
    """)
    shapes = Shapes(conn)

    def commands():
        for id_, at, actor, name, args, result, message in conn.execute(
                "SELECT c.id, v.at, c.actor, v.name, v.args, v.result, v.message "
                "FROM command_log c JOIN commands v ON v.id = c.id ORDER BY c.id"):
            moment, zone = encode_at(dt.datetime.fromisoformat(at))
            template, stored = encode_payload(json.loads(args))
            yield (id_, moment, zone, actor, shapes.code(name, template), stored,
                   None if result == "ok" else result, message)

    def events():
        for id_, command_id, at, kind, window, ticket, data in conn.execute(
                "SELECT e.id, e.command_id, e.at, v.kind, e.window, e.ticket_id, v.data "
                "FROM event_log e JOIN events v ON v.id = e.id ORDER BY e.id"):
            template, stored = encode_payload(json.loads(data))
            yield id_, command_id, at, shapes.code(kind, template), window, ticket, stored

    conn.executemany("INSERT INTO command_log_16 VALUES (?, ?, ?, ?, ?, ?, ?, ?)", commands())
    conn.executemany("INSERT INTO event_log_16 VALUES (?, ?, ?, ?, ?, ?, ?)", events())
    _script(conn, """
    DROP VIEW events;
    DROP VIEW commands;
    DROP TABLE event_log;
    DROP TABLE command_log;
    ALTER TABLE command_log_16 RENAME TO command_log;
    ALTER TABLE event_log_16 RENAME TO event_log;
    CREATE INDEX events_ticket ON event_log (ticket_id);
    """ + _log_views() + _closed_day_trigger("events_closed_day", "INSERT", "event_log", _EVENT_DAY))


FALLBACK_CHECKPOINT_PAGES = 20_000


def open_db(path: str | Path, durable: bool = True) -> sqlite_utils.Database:
    """Open (creating if needed) the hall database and bring its schema up to date.

    `durable=False` is for a simulated day's throw-away database in a temporary
    directory: no fsync and the rollback journal in memory, so a commit costs no
    disk wait. A hall's own database is always durable.
    """
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    db = sqlite_utils.Database(conn)
    db.execute("PRAGMA journal_mode=" + ("WAL" if durable else "MEMORY"))
    db.execute("PRAGMA synchronous=" + ("FULL" if durable else "OFF"))
    db.execute("PRAGMA foreign_keys=ON")
    db.execute("PRAGMA busy_timeout=5000")
    # Checkpoints run beside the writers (HallStore.checkpoint); this automatic one
    # is only the fallback when nobody calls it, so a commit rarely pays for one.
    db.execute(f"PRAGMA wal_autocheckpoint={FALLBACK_CHECKPOINT_PAGES}")
    migrate(db)
    return db


def schema_version(db: sqlite_utils.Database) -> int:
    return db.execute("PRAGMA user_version").fetchone()[0]


def migrate(db: sqlite_utils.Database, to: int | None = None) -> None:
    """Bring the schema up to date (or up to version `to`: the upgrade tests stop there)."""
    version = schema_version(db)
    if version > len(MIGRATIONS):
        raise RuntimeError(f"the database has schema version {version}, newer than this "
                           f"controller ({len(MIGRATIONS)}); upgrade the controller")
    for i in range(version, len(MIGRATIONS) if to is None else to):
        step = MIGRATIONS[i]
        if isinstance(step, str):
            db.conn.executescript("BEGIN IMMEDIATE;\n" + step
                                  + f"\nPRAGMA user_version = {i + 1};\nCOMMIT;")
        else:
            _run_rebuild(db.conn, step, i + 1)


def _script(conn: sqlite3.Connection, sql: str) -> None:
    """Run `sql`'s statements one by one inside the open transaction (executescript would
    commit it first)."""
    statement = ""
    for line in sql.splitlines(keepends=True):
        statement += line
        if sqlite3.complete_statement(statement):
            conn.execute(statement)
            statement = ""
    if statement.strip():
        raise ValueError(f"an incomplete statement: {statement!r}")


def _run_rebuild(conn: sqlite3.Connection, step: Callable[[sqlite3.Connection], None],
                 version: int) -> None:
    """A migration that makes tables again: foreign keys off while the old ones are dropped and
    the new renamed in their place (SQLite's own way to change a table), checked before the
    commit; one transaction."""
    enforced = conn.execute("PRAGMA foreign_keys").fetchone()[0]
    conn.execute("PRAGMA foreign_keys=OFF")
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            step(conn)
            broken = conn.execute("PRAGMA foreign_key_check").fetchall()
            if broken:
                raise RuntimeError(f"migration {version} broke references: {broken[:5]}")
            conn.execute(f"PRAGMA user_version = {version}")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
    finally:
        conn.execute(f"PRAGMA foreign_keys={'ON' if enforced else 'OFF'}")
