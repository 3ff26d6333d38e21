"""Where the closed days' summaries live (the day_summaries and day_figures tables of
migration 13; controller.backoffice.day_figures says what they hold).

Reading is done on the report's own snapshot. Keeping a summary needs a write, which a
report's read-only connection cannot make: `keep` opens a connection of its own, a short
transaction a day, and keeps a day only if the hall is still on the same day and no change
to that day was counted (day_changes, by the triggers) since the report's snapshot read it.
A keep that would wait for the hall (its writer busy longer than `WAIT_SECONDS`) gives up:
the day is computed again by the next report, and the floor never waits for a report.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from dataclasses import dataclass
from typing import Iterator

import sqlite_utils

log = logging.getLogger(__name__)

WAIT_SECONDS = 0.2


@dataclass(frozen=True)
class FigureRow:
    """One group of one day as stored: `key` and `counts` as JSON, the minutes as float64s."""

    day: str
    grouping: str
    key: str
    counts: str
    waits: bytes
    service: bytes


def hall_day(db: sqlite_utils.Database) -> str | None:
    """The hall's current day (ISO), as the last day change recorded it; None before any."""
    row = db.execute("SELECT value FROM meta WHERE key = 'day'").fetchone()
    return row[0] if row else None


def ticket_days(db: sqlite_utils.Database, first: str, last: str) -> list[str]:
    """The days from `first` to `last` on which tickets were issued, one index seek a day
    (the tickets' (day, prefix, number) index), not a walk over every ticket."""
    days: list[str] = []
    row = db.execute("SELECT MIN(day) FROM tickets WHERE day >= ?", [first]).fetchone()
    while row and row[0] is not None and row[0] <= last:
        days.append(row[0])
        row = db.execute("SELECT MIN(day) FROM tickets WHERE day > ?", [row[0]]).fetchone()
    return days


def changes(db: sqlite_utils.Database, first: str, last: str) -> dict[str, int]:
    """The changes counted to each closed day from `first` to `last` (days with none left out)."""
    return dict(db.execute("SELECT day, n FROM day_changes WHERE day BETWEEN ? AND ?",
                           [first, last]).fetchall())


def summarised(db: sqlite_utils.Database, first: str, last: str) -> set[str]:
    return {r[0] for r in db.execute("SELECT day FROM day_summaries WHERE day BETWEEN ? AND ?",
                                     [first, last])}


def figures(db: sqlite_utils.Database, grouping: str, first: str,
            last: str) -> Iterator[FigureRow]:
    """The stored groups of `grouping` from `first` to `last`, by day and key."""
    for r in db.execute("SELECT day, grouping, key, counts, waits, service FROM day_figures "
                        "WHERE day BETWEEN ? AND ? AND grouping = ? ORDER BY day, key",
                        [first, last, grouping]):
        yield FigureRow(*r)


def has_tables(db: sqlite_utils.Database) -> bool:
    """Whether the database has the summaries' tables (schema 13 or later)."""
    return db.execute("SELECT 1 FROM sqlite_master WHERE name = 'day_summaries'").fetchone() is not None


def writable_path(db: sqlite_utils.Database) -> str | None:
    """The file a summary can be kept in beside `db`: only a WAL database's, where a second
    connection writes without waiting for readers (a simulation's in-memory journal, or a
    database without a file, keeps none)."""
    if db.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
        return None
    for _, name, path in db.execute("PRAGMA database_list").fetchall():
        if name == "main" and path:
            return str(path)
    return None


def keep(path: str, today: str, days: dict[str, tuple[int, list[FigureRow]]]) -> int:
    """Store the summaries of `days` (day: (the changes counted to it when read, its rows)),
    those still valid, a day a transaction so that the hall's writer never waits for more
    than one day's rows; how many days were kept."""
    kept = 0
    try:
        with contextlib.closing(sqlite3.connect(path, timeout=WAIT_SECONDS,
                                                isolation_level=None)) as conn:
            for day, (seen, rows) in days.items():
                conn.execute("BEGIN IMMEDIATE")
                try:
                    if _still_valid(conn, today, day, seen):
                        insert(conn, day, seen, rows)
                        kept += 1
                    conn.execute("COMMIT")
                finally:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
    except sqlite3.Error as e:  # busy, read-only or full: the next report computes it again
        log.info("day summaries not kept (%s): computed again when next read", e)
    return kept


def _still_valid(conn: sqlite3.Connection, today: str, day: str, seen: int) -> bool:
    """Whether the hall is still on `today`, no change to `day` was counted since the report
    read it (`seen` changes then), and nobody kept it meanwhile."""
    hall_day = conn.execute("SELECT value FROM meta WHERE key = 'day'").fetchone()
    counted = conn.execute("SELECT n FROM day_changes WHERE day = ?", [day]).fetchone()
    done = conn.execute("SELECT 1 FROM day_summaries WHERE day = ?", [day]).fetchone()
    return (hall_day is not None and hall_day[0] == today
            and (counted[0] if counted else 0) == seen and done is None)


def insert(conn: sqlite3.Connection, day: str, seen: int, rows: list[FigureRow]) -> None:
    """Keep `day`'s summary, made when `seen` changes had been counted to it."""
    conn.execute("INSERT INTO day_summaries (day, changes) VALUES (?, ?)", [day, seen])
    conn.executemany("INSERT INTO day_figures (day, grouping, key, counts, waits, service) "
                     "VALUES (?, ?, ?, ?, ?, ?)",
                     [(r.day, r.grouping, r.key, r.counts, r.waits, r.service) for r in rows])
