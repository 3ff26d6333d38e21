"""Copies of the hall database: the online backup, its checks, and the schema version of a file.

The copy is SQLite's backup API (`sqlite3.Connection.backup`) on a connection of its own beside
the running controller, in one step inside one read transaction: one committed moment of the
hall, WAL included (a file copy of `hall.sqlite3` would miss what the WAL holds, or catch a
checkpoint half-way). The counts are read in that same read transaction, so the copy is
verified against what it was copied from, not against a hall that moved on meanwhile.
"""

from __future__ import annotations

import contextlib
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from controller.store.db import MIGRATIONS
from controller.store.personal import sealed_values

# What a backup's manifest counts, and a restore checks again.
COUNTED = {
    "tickets": "SELECT COUNT(*) FROM tickets",
    "events": "SELECT COUNT(*) FROM events",
    "commands": "SELECT COUNT(*) FROM commands",
    "cases": "SELECT COUNT(*) FROM cases",
    "last_event_id": "SELECT COALESCE(MAX(id), 0) FROM events",
}
SCHEMA_TOO_NEW = ("{path} has schema version {found}, newer than this controller ({known}): "
                  "upgrade the controller, or restore a backup made by this version "
                  "(hallctl restore)")


@dataclass(frozen=True)
class Checked:
    """What a database file holds: its schema version, its counts, the day it was on."""

    schema_version: int
    counts: dict[str, int]
    day: str | None


def _read_only(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{path.resolve()}?mode=ro", uri=True, isolation_level=None)


def schema_version_of(path: Path) -> int | None:
    """The schema version of the database at `path`, read without opening it for the hall
    (no migration, no write); None if there is no file."""
    try:
        if not path.exists():
            return None
    except PermissionError:  # a data directory it may not read: the hall's start says so
        return None
    with contextlib.closing(_read_only(path)) as conn:
        return conn.execute("PRAGMA user_version").fetchone()[0]


def refuse_newer(path: Path) -> None:
    """RuntimeError, in one line, if the database at `path` is newer than this controller."""
    found = schema_version_of(path)
    if found is not None and found > len(MIGRATIONS):
        raise RuntimeError(SCHEMA_TOO_NEW.format(path=path, found=found, known=len(MIGRATIONS)))


def _counts(conn: sqlite3.Connection, version: int) -> dict[str, int]:
    # the cases table came with schema version 6; older halls have none
    return {name: conn.execute(sql).fetchone()[0] for name, sql in COUNTED.items()
            if name != "cases" or version >= 6}


def _day(conn: sqlite3.Connection) -> str | None:
    row = conn.execute("SELECT value FROM meta WHERE key = 'day'").fetchone()
    return row[0] if row else None


def online_copy(source: Path, target: Path) -> Checked:
    """Copy the hall database `source` (its controller may be running) to `target` (a new
    file); what the copy holds, as read from `source` in the same read transaction."""
    with contextlib.closing(sqlite3.connect(str(source), isolation_level=None)) as src, \
            contextlib.closing(sqlite3.connect(str(target), isolation_level=None)) as dst:
        src.execute("PRAGMA busy_timeout=5000")
        src.execute("BEGIN")  # one snapshot for the counts and the copy
        try:
            version = src.execute("PRAGMA user_version").fetchone()[0]
            checked = Checked(version, _counts(src, version), _day(src))
            src.backup(dst)  # in one step (pages=-1): inside this read transaction
        finally:
            src.execute("COMMIT")
        # the copy stands alone: one file, no WAL beside it
        dst.execute("PRAGMA journal_mode=DELETE")
    return checked


def check(path: Path) -> Checked:
    """Check the database file at `path`: SQLite's integrity check, then its schema version and
    counts. RuntimeError naming what is wrong."""
    with contextlib.closing(_read_only(path)) as conn:
        try:
            problems = [row[0] for row in conn.execute("PRAGMA integrity_check")]
        except sqlite3.DatabaseError as e:
            raise RuntimeError(f"{path} is no readable SQLite database ({e})") from None
        if problems != ["ok"]:
            raise RuntimeError(f"{path} fails SQLite's integrity check: {'; '.join(problems[:3])}")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version < 1:
            raise RuntimeError(f"{path} is no hall database (schema version {version})")
        return Checked(version, _counts(conn, version), _day(conn))


def first_sealed(path: Path, passing_over: str) -> str | None:
    """One sealed value the database at `path` holds (to try a key on), or None; values equal
    to `passing_over` (a purge's mark) are no sealed data."""
    with contextlib.closing(_read_only(path)) as conn:
        try:
            return next((v for v in sealed_values(conn) if v != passing_over), None)
        except sqlite3.OperationalError:  # a hall older than the case desk (schema < 6)
            return None
