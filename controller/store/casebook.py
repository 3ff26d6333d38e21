"""The case desk's records (controller.backoffice.cases): callback and complaint cases, anonymous bad
reviews, overdue alerts, and how far into the event log the desk has looked.

The caller holds the hall's lock around writes (see HallStore). Inserts go through
sqlite-utils; the case upsert and the filtered reads are plain SQL on purpose: the upsert
updates only the columns a workflow step changes, which sqlite-utils' upsert does not offer.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any, Iterator

import sqlite_utils

# meta key: the id of the last event the desk has looked at for bad reviews. A restart reads
# only events after it, so starting up does not grow with the hall's history.
SEEN_KEY = "cases_seen_event"


def seen_until(db: sqlite_utils.Database) -> int:
    row = db.execute("SELECT value FROM meta WHERE key = ?", [SEEN_KEY]).fetchone()
    return int(row[0]) if row else 0


def mark_seen(db: sqlite_utils.Database, event_id: int) -> None:
    db.table("meta").upsert({"key": SEEN_KEY, "value": str(event_id)}, pk="key")


def last_event_id(db: sqlite_utils.Database) -> int:
    return db.execute("SELECT COALESCE(MAX(id), 0) FROM event_log").fetchone()[0]


def events_of_kind_after(db: sqlite_utils.Database, kind: str,
                         after: int) -> Iterator[dict[str, Any]]:
    """Events of `kind` about a ticket with an id above `after`, oldest first; by the rowid
    range, so only the newer part of the log is read."""
    return db.query("SELECT * FROM events WHERE id > ? AND kind = ? AND ticket_id IS NOT NULL "
                    "ORDER BY id", [after, kind])


def bad_review_seen(db: sqlite_utils.Database, ticket_id: str) -> bool:
    return bool(db.execute(
        "SELECT 1 FROM cases WHERE kind = 'bad_review' AND ticket_id = ? UNION ALL "
        "SELECT 1 FROM anonymous_bad_reviews WHERE ticket_id = ?",
        [ticket_id, ticket_id]).fetchone())


def count_anonymous(db: sqlite_utils.Database, row: dict[str, Any]) -> None:
    """An anonymous bad review, counted once per ticket."""
    db.table("anonymous_bad_reviews").insert(row, ignore=True)


def last_case_id(db: sqlite_utils.Database, prefix: str) -> str | None:
    row = db.execute("SELECT MAX(id) FROM cases WHERE id LIKE ?", [prefix + "%"]).fetchone()
    return row[0] if row else None


def save_case(db: sqlite_utils.Database, row: dict[str, Any]) -> None:
    """Insert a case, or record a workflow step on it (state, assignee, body)."""
    cols = list(row)
    db.execute(
        f"INSERT INTO cases ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)}) "
        "ON CONFLICT (id) DO UPDATE SET state = excluded.state, assignee = excluded.assignee, "
        "updated_at = excluded.updated_at, body = excluded.body", list(row.values()))


def case_body(db: sqlite_utils.Database, case_id: str) -> dict[str, Any] | None:
    row = db.execute("SELECT body FROM cases WHERE id = ?", [case_id]).fetchone()
    return json.loads(row[0]) if row else None


def case_bodies(db: sqlite_utils.Database, state: str | None = None, kind: str | None = None,
                not_state: str | None = None) -> list[dict[str, Any]]:
    where, params = [], []
    for clause, value in (("state = ?", state), ("kind = ?", kind), ("state != ?", not_state)):
        if value is not None:
            where.append(clause)
            params.append(value)
    sql = "SELECT body FROM cases" + (" WHERE " + " AND ".join(where) if where else "")
    return [json.loads(r[0]) for r in db.execute(sql, params)]


def alerts_done(db: sqlite_utils.Database) -> set[tuple[str, str]]:
    return {(r[0], r[1]) for r in db.execute("SELECT case_id, deadline FROM case_alerts")}


def record_alert(db: sqlite_utils.Database, case_id: str, deadline: str, due: dt.datetime,
                 at: dt.datetime) -> None:
    db.table("case_alerts").insert({"case_id": case_id, "deadline": deadline, "due": due.isoformat(),
                                    "alerted_at": at.isoformat()})


def figures_rows(db: sqlite_utils.Database, day_from: dt.date,
                 day_to: dt.date) -> tuple[list[dict[str, Any]], int, int]:
    """The bodies of cases opened on those days, the anonymous bad reviews counted then, and
    how many of those cases were ever overdue."""
    span = [day_from.isoformat(), day_to.isoformat()]
    bodies = [json.loads(r[0]) for r in db.execute(
        "SELECT body FROM cases WHERE day BETWEEN ? AND ?", span)]
    anonymous = db.execute(
        "SELECT COUNT(*) FROM anonymous_bad_reviews WHERE day BETWEEN ? AND ?", span).fetchone()[0]
    alerted = db.execute(
        "SELECT COUNT(DISTINCT case_id) FROM case_alerts JOIN cases ON cases.id = case_id "
        "WHERE cases.day BETWEEN ? AND ?", span).fetchone()[0]
    return bodies, anonymous, alerted
