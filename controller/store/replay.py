"""The event log as the live stream's replay reads it: on read-only connections of its own,
in threads, never holding the hall's lock.

A display that reconnects with Last-Event-ID, or a hundred of them at once after a network
blip, must not hold up a ticket at the kiosk: the hall's one connection and its lock are
for commands; the database's WAL lets these readers see every committed event beside them.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import sqlite3
import threading
from pathlib import Path
from typing import Any, Iterator

from controller.store.hallstore import HallStore


class EventReader:
    def __init__(self, store: HallStore) -> None:
        self.store = store
        self._first_of_day: dict[dt.date, int] = {}
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection | None]:
        path = Path(self.store.path)
        if not path.is_file():  # no file of its own (an in-memory store): read through the hall's
            yield None
            return
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
        try:
            conn.execute("PRAGMA busy_timeout=5000")
            yield conn
        finally:
            conn.close()

    def events_after(self, after: int, upto: int, limit: int = 500) -> list[tuple[int, dict[str, Any]]]:
        """Events with `after` < id <= `upto`, oldest first, at most `limit` of them."""
        with self._connection() as conn:
            if conn is None:
                return [(i, e) for i, e in self.store.events_after(after, limit) if i <= upto]
            conn.row_factory = sqlite3.Row
            rows = conn.execute(
                "SELECT id, kind, at, window, ticket_id, data FROM events "
                "WHERE id > ? AND id <= ? ORDER BY id LIMIT ?", (after, upto, limit)).fetchall()
        return [(r["id"], {"id": r["id"], "kind": r["kind"], "at": r["at"], "window": r["window"],
                           "ticket": r["ticket_id"], "data": json.loads(r["data"])}) for r in rows]

    def last_id(self) -> int:
        """The id of the last committed event (0 for none)."""
        with self._connection() as conn:
            if conn is None:
                return self.store.last_event_id()
            return conn.execute("SELECT COALESCE(MAX(id), 0) FROM event_log").fetchone()[0]

    def before_day(self, day: dt.date, start: dt.datetime) -> int:
        """The id of the last event before the hall's day `day` began at `start` (its midnight,
        in the hall's zone): a replay that may show only today starts after it."""
        with self._lock:
            if day in self._first_of_day:
                return self._first_of_day[day]
        with self._connection() as conn:
            sql, args = "SELECT MIN(id) FROM events WHERE at >= ?", [start.isoformat()]
            if conn is None:
                row = self.store.query(sql.replace("MIN(id)", "MIN(id) AS first"), args)
                first = row[0]["first"] if row else None
            else:
                first = _first_since(conn, start.isoformat())
        if first is None:  # nothing yet today: everything so far is before it
            return self.store.last_event_id()
        with self._lock:
            self._first_of_day = {day: first - 1}  # ids only grow: today's first stays first
        return first - 1


def _first_since(conn: sqlite3.Connection, start: str) -> int | None:
    """The first event of the log's last run of events at `start` or later: read back from the
    log's end to the first event before it, so a day's first replay reads that day's events
    and not the whole log (the views compute each event's moment). None if there is none."""
    first = None
    for event_id, at in conn.execute("SELECT id, at FROM events ORDER BY id DESC"):
        if at < start:
            break
        first = event_id
    return first
