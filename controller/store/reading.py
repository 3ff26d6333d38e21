"""Reading the hall's history beside the floor: reports, histories, the roll-up and exports,
each on a read-only connection of its own thread, never holding the hall's lock.

A whole-range report reads for a second or more; a window's call-next must not wait behind
it. The database is in WAL mode, so a reader sees one committed snapshot of the hall (its
read transaction) while the hall thread goes on writing beside it.

The connections are plain sqlite3 opened with `mode=ro`, wrapped in sqlite-utils: sqlite-utils
has no read-only open of its own.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import sqlite3
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import sqlite_utils

if TYPE_CHECKING:
    from controller.store.hallstore import HallStore


class ReadOnly:
    """Read-only connections to one hall database, one per thread that reads."""

    def __init__(self, store: HallStore) -> None:
        self.store = store
        self._local = threading.local()
        self._opened: list[sqlite3.Connection] = []
        self._guard = threading.Lock()
        self._closed = False

    def _separate(self) -> bool:
        """Whether readers can have connections of their own: only beside a WAL. A simulated
        day's store keeps its journal in memory (no WAL), where a reader would block the writer."""
        return self.store.durable and Path(self.store.path).is_file()

    def _database(self) -> sqlite_utils.Database:
        db = getattr(self._local, "db", None)
        if db is None:
            conn = sqlite3.connect(f"file:{Path(self.store.path).resolve()}?mode=ro", uri=True,
                                   isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA busy_timeout=5000")
            db = self._local.db = sqlite_utils.Database(conn)
            with self._guard:
                self._opened.append(conn)
        return db

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[sqlite_utils.Database]:
        """A database to read from: every query inside sees the same committed state.

        Run it in a worker thread, never on the event loop. Where readers cannot have their
        own connection (see `_separate`), it reads through the hall's, under its lock."""
        if self._closed or not self._separate():
            with self.store.lock:
                yield self.store.db
            return
        db = self._database()
        db.conn.execute("BEGIN")  # deferred: a read transaction, one snapshot for the whole report
        try:
            yield db
        finally:
            try:
                db.conn.execute("COMMIT")
            except sqlite3.Error:  # a reader that failed mid-query starts afresh next time
                self._local.db = None
                db.conn.close()

    def close(self) -> None:
        self._closed = True
        with self._guard:
            opened, self._opened = self._opened, []
        for conn in opened:
            conn.close()


def last_command_at(path: Path) -> dt.datetime | None:
    """When the database at `path` last recorded a command, read without opening it for the
    hall (no migration, no write): None if there is none, or no readable database."""
    if not path.exists():
        return None
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        try:
            row = conn.execute("SELECT at FROM commands ORDER BY id DESC LIMIT 1").fetchone()
        except sqlite3.Error:
            return None
    return dt.datetime.fromisoformat(row[0]) if row else None
