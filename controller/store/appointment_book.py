"""Appointments booked elsewhere (the provincial booking system), as controller.entrance.appointments
keeps them. The caller is the hall thread. A booking is a sqlite-utils insert; the
check-in's release is plain SQL, conditional on the ticket, which sqlite-utils cannot say.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import sqlite_utils


def exists(db: sqlite_utils.Database, code: str) -> bool:
    return db.execute("SELECT 1 FROM appointments WHERE code = ?", [code]).fetchone() is not None


def book(db: sqlite_utils.Database, row: dict[str, Any]) -> None:
    db.table("appointments").insert({**row, "status": "booked"})


def get(db: sqlite_utils.Database, code: str) -> dict[str, Any] | None:
    rows = list(db.query("SELECT * FROM appointments WHERE code = ?", [code]))
    return rows[0] if rows else None


def on_day(db: sqlite_utils.Database, day: str) -> list[dict[str, Any]]:
    return list(db.query("SELECT * FROM appointments WHERE day = ? ORDER BY slot", [day]))


def sealed_identity(db: sqlite_utils.Database, code: str) -> str | None:
    return db.execute("SELECT identity_sealed FROM appointments WHERE code = ?",
                      [code]).fetchone()[0]


def checked_in(conn: sqlite3.Connection, code: str, ticket_id: str) -> None:
    """Inside the ticket's own transaction (HallController.also_write): plain SQL, since
    sqlite-utils' update would commit that transaction on its way out."""
    conn.execute("UPDATE appointments SET status = 'checked_in', ticket_id = ? WHERE code = ?",
                 [ticket_id, code])


def release(db: sqlite_utils.Database, code: str) -> None:
    """Back to booked, if its check-in's ticket was cancelled."""
    db.execute("UPDATE appointments SET status = 'booked', ticket_id = NULL WHERE code = ? AND "
               "status = 'checked_in' AND ticket_id IN (SELECT id FROM tickets WHERE status = 'cancelled')",
               [code])
