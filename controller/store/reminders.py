"""到号提醒's rows (controller.entrance.reminders): the phones that asked for a text message,
sealed, and the messages as an outbox. Every statement runs on the connection it is given:
the hall's write connection inside a hall-thread transaction (`ctrl.also_write`), or a
read on the store's connection under its lock (`HallStore.query`)."""

from __future__ import annotations

import datetime as dt
import sqlite3
from dataclasses import dataclass


@dataclass(frozen=True)
class Outgoing:
    """A message due and not yet sent (nor given up): what the sender needs for it."""

    id: str
    ticket_id: str
    trigger: str
    text: str
    phone_sealed: str | None
    attempts: int


def opt_in(conn: sqlite3.Connection, ticket_id: str, day: dt.date, phone_sealed: str,
           phone_masked: str, at: dt.datetime) -> None:
    conn.execute("INSERT INTO reminders (ticket_id, day, phone_sealed, phone_masked, opted_at) "
                 "VALUES (?, ?, ?, ?, ?)",
                 [ticket_id, day.isoformat(), phone_sealed, phone_masked, at.isoformat()])


def add_message(conn: sqlite3.Connection, message_id: str, ticket_id: str, trigger: str,
                text: str, at: dt.datetime, skipped: bool = False) -> None:
    """A trigger's message, due once: a second insert for the same ticket and trigger is
    ignored."""
    conn.execute("INSERT OR IGNORE INTO reminder_messages (id, ticket_id, trigger, text, due_at, "
                 "skipped) VALUES (?, ?, ?, ?, ?, ?)",
                 [message_id, ticket_id, trigger, text, at.isoformat(), int(skipped)])


def attempt_failed(conn: sqlite3.Connection, message_id: str, error: str,
                   gave_up_at: dt.datetime | None) -> None:
    conn.execute("UPDATE reminder_messages SET attempts = attempts + 1, last_error = ?, "
                 "gave_up_at = ? WHERE id = ?",
                 [error[:200], gave_up_at.isoformat() if gave_up_at else None, message_id])


def sent(conn: sqlite3.Connection, message_id: str, at: dt.datetime) -> None:
    conn.execute("UPDATE reminder_messages SET attempts = attempts + 1, sent_at = ?, "
                 "last_error = NULL WHERE id = ? AND sent_at IS NULL", [at.isoformat(), message_id])


def forget_phone(conn: sqlite3.Connection, ticket_id: str) -> None:
    """The ticket's messages are done: its phone goes (the masked form stays for the log)."""
    conn.execute("UPDATE reminders SET phone_sealed = NULL WHERE ticket_id = ?", [ticket_id])


def watched(conn: sqlite3.Connection, day: dt.date) -> list[tuple[str, list[str]]]:
    """(ticket id, the triggers already due) of `day`'s reminders whose phone is kept."""
    rows = conn.execute(
        "SELECT r.ticket_id, m.trigger FROM reminders r LEFT JOIN reminder_messages m "
        "ON m.ticket_id = r.ticket_id WHERE r.day = ? AND r.phone_sealed IS NOT NULL "
        "ORDER BY r.ticket_id", [day.isoformat()]).fetchall()
    out: dict[str, list[str]] = {}
    for ticket_id, trigger in rows:
        out.setdefault(ticket_id, [])
        if trigger is not None:
            out[ticket_id].append(trigger)
    return list(out.items())


def has_reminder(conn: sqlite3.Connection, ticket_id: str) -> str | None:
    """The masked phone of the ticket's reminder, if it has one."""
    row = conn.execute("SELECT phone_masked FROM reminders WHERE ticket_id = ?",
                       [ticket_id]).fetchone()
    return row[0] if row else None


def outgoing(conn: sqlite3.Connection, day: dt.date) -> list[Outgoing]:
    """`day`'s messages due and neither sent nor given up, oldest first."""
    return [Outgoing(*row) for row in conn.execute(
        "SELECT m.id, m.ticket_id, m.trigger, m.text, r.phone_sealed, m.attempts "
        "FROM reminder_messages m JOIN reminders r ON r.ticket_id = m.ticket_id "
        "WHERE r.day = ? AND m.sent_at IS NULL AND m.gave_up_at IS NULL AND m.skipped = 0 "
        "ORDER BY m.due_at, m.id", [day.isoformat()]).fetchall()]


def message_counts(conn: sqlite3.Connection) -> dict[str, int]:
    """How many messages were sent, given up, skipped and are waiting, of every day."""
    row = conn.execute(
        "SELECT COUNT(sent_at), COUNT(gave_up_at), COALESCE(SUM(skipped), 0), "
        "COALESCE(SUM(sent_at IS NULL AND gave_up_at IS NULL AND skipped = 0), 0) "
        "FROM reminder_messages").fetchone()
    return {"sent": row[0], "gave_up": row[1], "skipped": row[2], "waiting": row[3]}


# --- personal data (controller.security.personal_data) ---------------------------------------

def purge(conn: sqlite3.Connection, before: str) -> int:
    """Phones of reminders of days before `before` (their day is over): gone. How many."""
    return conn.execute("UPDATE reminders SET phone_sealed = NULL WHERE day < ? "
                        "AND phone_sealed IS NOT NULL", [before]).rowcount


def sealed(conn: sqlite3.Connection) -> list[tuple[str, str]]:
    """(ticket id, phone_sealed) of every reminder still holding its phone."""
    return conn.execute("SELECT ticket_id, phone_sealed FROM reminders "
                        "WHERE phone_sealed IS NOT NULL").fetchall()


def reseal(conn: sqlite3.Connection, ticket_id: str, phone_sealed: str | None) -> None:
    conn.execute("UPDATE reminders SET phone_sealed = ? WHERE ticket_id = ?",
                 [phone_sealed, ticket_id])
