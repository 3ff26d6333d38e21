"""The hall's outbox to its district centre is its event log, read here on a read-only
connection of its own (WAL): the shipper never takes the hall's lock, so a slow or absent
link never holds up a command."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from controller.store import chainlog


class Outbox:
    """The event log of the hall database at `path`, for one reader thread."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._conn: sqlite3.Connection | None = None

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False)
            conn.execute("PRAGMA busy_timeout=5000")
            conn.row_factory = sqlite3.Row
            self._conn = conn
        return self._conn

    def last_id(self) -> int:
        """The id of the last committed event (0 for none)."""
        return self._connection().execute("SELECT COALESCE(MAX(id), 0) FROM event_log").fetchone()[0]

    def after(self, after: int, limit: int) -> list[dict[str, Any]]:
        """At most `limit` events with id > `after`, oldest first, as the `events` view reads
        them, each with its link in the hash chain: {"id", "kind", "at", "window", "ticket",
        "data", "hash"}."""
        return chainlog.events(self._connection(), after, limit)

    def verify(self, every: int) -> tuple[chainlog.Verdict, dict[int, str]]:
        """The whole log checked against its chain, with checkpoints (chainlog.verify)."""
        return chainlog.verify(self._connection(), every)

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
