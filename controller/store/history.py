"""The hall's history as the reports read it: tickets of a span of days, the events that say
what tickets forget (who marked a 过号, a call out of order, a prompt cut short, logins), cases.

Read-only queries, plain SQL: sqlite-utils has no operation for them beyond `query`. Pass a
read-only snapshot (`HallStore.reads.snapshot()`), so that a report never holds the hall's
lock. `span` is [first day, last day] as ISO dates, inclusive.
"""

from __future__ import annotations

import json
from typing import Any, Iterator

import sqlite_utils

from controller.store.logform import events_by_moment, moment_bounds

Rows = Iterator[dict[str, Any]]


# -- tickets -------------------------------------------------------------------------

def tickets_of_days(db: sqlite_utils.Database, span: list[str]) -> Rows:
    """The tickets issued on those days, by day and id."""
    return db.query("SELECT id, day, service, window, staff_id, status, transfers, issued_at, "
                    "called_at, finished_at FROM tickets WHERE day BETWEEN ? AND ? "
                    "ORDER BY day, id", span)


def tickets_of_day(db: sqlite_utils.Database, day: str) -> Rows:
    """A day's tickets by id, with what its figures count (controller.backoffice.day_figures)."""
    return db.query("SELECT id, service, window, staff_id, status, transfers, issued_at, called_at, "
                    "finished_at, grade, grade_channel, id_masked FROM tickets WHERE day = ? "
                    "ORDER BY id", [day])


def finished_tickets(db: sqlite_utils.Database, span: list[str]) -> Rows:
    """Visits finished on those days, by day and finishing time (the overtime register)."""
    return db.query("SELECT id, label, day, window, staff_id, finished_at FROM tickets "
                    "WHERE status = 'finished' AND day BETWEEN ? AND ? "
                    "ORDER BY day, finished_at, id", span)


def visits_by(db: sqlite_utils.Database, column: str, span: list[str]) -> Rows:
    """Finished visits with their grade, `column` (a tickets column or expression) as `key`."""
    return db.query(f"SELECT id, {column} AS key, grade, grade_channel, id_masked FROM tickets "
                    "WHERE status = 'finished' AND day BETWEEN ? AND ? ORDER BY key, id", span)


def graded_visits(db: sqlite_utils.Database, span: list[str]) -> Rows:
    """Graded visits of those days, for the grade export (masked identity only)."""
    return db.query("SELECT id, day, service, window, staff_id, finished_at, graded_at, grade, "
                    "grade_channel, id_masked, name_masked FROM tickets WHERE status = 'finished' "
                    "AND grade IS NOT NULL AND day BETWEEN ? AND ? ORDER BY day, graded_at, id",
                    span)


def estimated_waits(db: sqlite_utils.Database, day: str) -> Rows:
    """The day's called tickets with the wait printed on them."""
    return db.query("SELECT service, issued_at, called_at, eta_p10, eta_p50, eta_p90 FROM tickets "
                    "WHERE day = ? AND called_at IS NOT NULL AND eta_p50 IS NOT NULL", [day])


# -- what the event log adds -----------------------------------------------------------

def missed_at(db: sqlite_utils.Database, span: list[str]) -> dict[str, int]:
    """The window that marked each final 过号: the ticket itself forgets it."""
    return {r["ticket_id"]: r["window"] for r in db.query(
        "SELECT ticket_id, window FROM events WHERE kind = 'ticket_missed' AND ticket_id IN "
        "(SELECT id FROM tickets WHERE status = 'no_show' AND day BETWEEN ? AND ?) ORDER BY id",
        span)}


def calls_of_days(db: sqlite_utils.Database, span: list[str]) -> Iterator[dict[str, Any]]:
    """The data of every call of those days' tickets, in order."""
    for r in db.query("SELECT data FROM events WHERE kind = 'ticket_called' AND ticket_id IN "
                      "(SELECT id FROM tickets WHERE day BETWEEN ? AND ?) ORDER BY id", span):
        yield json.loads(r["data"]) if r["data"] else {}


def out_of_order_calls_of_days(db: sqlite_utils.Database, span: list[str]) -> Iterator[dict[str, Any]]:
    """The data of every call of those days' tickets made out of order, in order."""
    for r in db.query("SELECT data FROM events WHERE kind = 'ticket_called' AND ticket_id IN "
                      "(SELECT id FROM tickets WHERE day BETWEEN ? AND ?) "
                      "AND data LIKE '%out_of_order%' ORDER BY id", span):
        data = json.loads(r["data"]) if r["data"] else {}
        if data.get("out_of_order"):
            yield data


def out_of_order_calls(db: sqlite_utils.Database, lo: str, hi: str) -> Rows:
    """Calls between `lo` and `hi` (moments) whose data may say out_of_order."""
    return db.query(events_by_moment(
        "at, window, data", "kind = 'ticket_called' AND data LIKE '%out_of_order%'"),
        moment_bounds(lo, hi))


def day_end_finishes(db: sqlite_utils.Database, span: list[str]) -> set[str]:
    """Visits the controller finished at the day change (nobody pressed finish)."""
    return {r["ticket_id"] for r in db.query(
        "SELECT ticket_id FROM events WHERE kind = 'ticket_finished' "
        "AND json_extract(data, '$.reason') = 'day_end' AND ticket_id IN "
        "(SELECT id FROM tickets WHERE status = 'finished' AND day BETWEEN ? AND ?)", span)}


def evaluation_ends(db: sqlite_utils.Database, span: list[str]) -> Iterator[tuple[str, Any]]:
    """(ticket, reason) of each evaluation prompt ended, over those days' finished visits."""
    for r in db.query("SELECT ticket_id, json_extract(data, '$.reason') AS reason FROM events "
                      "WHERE kind = 'evaluation_ended' AND ticket_id IN (SELECT id FROM tickets "
                      "WHERE status = 'finished' AND day BETWEEN ? AND ?)", span):
        yield r["ticket_id"], r["reason"]


def window_logins(db: sqlite_utils.Database, lo: str, hi: str) -> Rows:
    """window_opened and window_closed events between `lo` and `hi` (moments), in order."""
    return db.query(events_by_moment(
        "at, kind, window, data", "kind IN ('window_opened', 'window_closed')"),
        moment_bounds(lo, hi))


def window_events(db: sqlite_utils.Database, lo: str, hi: str) -> Rows:
    """Every event at a window between `lo` and `hi` (moments), in order."""
    return db.query(events_by_moment("at, kind, window, data", "window IS NOT NULL"),
                    moment_bounds(lo, hi))


# -- cases -------------------------------------------------------------------------------

def has_cases(db: sqlite_utils.Database) -> bool:
    """Whether the database has the case desk's tables (a bare report database may not)."""
    return "cases" in db.table_names()


def bad_review_cases(db: sqlite_utils.Database, span: list[str]) -> list[dict[str, Any]]:
    """The bodies of the bad-review cases of those days' finished visits."""
    return [json.loads(r["body"]) for r in db.query(
        "SELECT body FROM cases WHERE kind = 'bad_review' AND ticket_id IN "
        "(SELECT id FROM tickets WHERE status = 'finished' AND day BETWEEN ? AND ?)", span)]


def bad_review_cases_by(db: sqlite_utils.Database, column: str,
                        span: list[str]) -> Iterator[tuple[Any, dict[str, Any]]]:
    """(key, body) of the bad-review cases of those days' finished visits, `column` of the
    visit's ticket (a column of tickets as `t`, or an expression over it) as the key.

    From the cases to their tickets, not over every ticket of the span: a bad review is opened
    on the day of its grade, never before its visit's day."""
    for r in db.query(f"SELECT {column} AS key, c.body AS body FROM cases c CROSS JOIN tickets t "
                      "ON t.id = c.ticket_id WHERE c.kind = 'bad_review' AND c.day >= ? "
                      "AND t.status = 'finished' AND t.day BETWEEN ? AND ? ORDER BY t.id",
                      [span[0], *span]):
        yield r["key"], json.loads(r["body"])


def complaints_by(db: sqlite_utils.Database, column: str,
                  span: list[str]) -> Iterator[tuple[Any, dict[str, Any]]]:
    """(key, body) of the complaints opened on those days, `column` of cases as the key."""
    for r in db.query(f"SELECT {column} AS key, body FROM cases "
                      "WHERE kind = 'complaint' AND day BETWEEN ? AND ?", span):
        yield r["key"], json.loads(r["body"])


def cases_of_staff(db: sqlite_utils.Database, staff_id: Any) -> list[dict[str, Any]]:
    return [json.loads(r["body"]) for r in db.query(
        "SELECT body FROM cases WHERE staff_id = ?", [staff_id])]


def staff_cases_of_month(db: sqlite_utils.Database, month: str) -> list[dict[str, Any]]:
    """The bodies of cases naming a member of staff, opened in `month` (YYYY-MM)."""
    return [json.loads(r["body"]) for r in db.query(
        "SELECT body FROM cases WHERE staff_id IS NOT NULL AND substr(day, 1, 7) = ?", [month])]
