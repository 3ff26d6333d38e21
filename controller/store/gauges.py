"""What /metrics reads from the database on a scrape (controller.web.metrics), on a read-only
connection of its own: the callback cases by state, and the open ones' bodies (their deadlines)."""

from __future__ import annotations

import json
from typing import Any

import sqlite_utils


def cases_by_state(db: sqlite_utils.Database) -> dict[str, int]:
    return {state: n for state, n in db.execute("SELECT state, COUNT(*) FROM cases GROUP BY state")}


def open_case_bodies(db: sqlite_utils.Database, closed: str) -> list[dict[str, Any]]:
    """The cases not in state `closed` (the only ones that can be overdue)."""
    return [json.loads(body) for (body,) in
            db.execute("SELECT body FROM cases WHERE state != ?", [closed])]
