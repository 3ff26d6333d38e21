"""The event log's hash chain in the hall database (hall schema 19: `event_chain`): each
event's link (vocabulary.chain) kept beside it, written in the event's own transaction.

The links are computed from the events as the `events` view reads them, never from how
event_log stores them, so the log's layout may change under the chain.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from vocabulary import chain

PAGE = 2000


def head(conn: sqlite3.Connection) -> tuple[int, str]:
    """The last link of the chain: (event id, hash); (0, GENESIS) for none."""
    row = conn.execute("SELECT event_id, hash FROM event_chain ORDER BY event_id DESC LIMIT 1").fetchone()
    return (row[0], row[1]) if row else (0, chain.GENESIS)


def append(conn: sqlite3.Connection, event_id: int, hash_: str) -> None:
    conn.execute("INSERT INTO event_chain (event_id, hash) VALUES (?, ?)", (event_id, hash_))


def events(conn: sqlite3.Connection, after: int, limit: int = PAGE) -> list[dict[str, Any]]:
    """At most `limit` events with id > `after` as the hall's readers return them, each with
    the link stored for it (`hash`, None when it has none)."""
    rows = conn.execute(
        "SELECT e.id, e.kind, e.at, e.window, e.ticket_id, e.data, c.hash FROM events e "
        "LEFT JOIN event_chain c ON c.event_id = e.id WHERE e.id > ? ORDER BY e.id LIMIT ?",
        (after, limit)).fetchall()
    return [{"id": r[0], "kind": r[1], "at": r[2], "window": r[3], "ticket": r[4],
             "data": json.loads(r[5]), "hash": r[6]} for r in rows]


def _all(conn: sqlite3.Connection, after: int = 0) -> Iterator[dict[str, Any]]:
    while page := events(conn, after):
        yield from page
        after = page[-1]["id"]


def extend(conn: sqlite3.Connection) -> tuple[int, str]:
    """Link the events the chain does not reach yet (a log from before hall schema 19), in one
    transaction of the caller's; the chain's head after."""
    last, previous = head(conn)
    for e in list(_all(conn, last)):
        previous = chain.link(previous, e)
        append(conn, e["id"], previous)
        last = e["id"]
    return last, previous


@dataclass(frozen=True)
class Verdict:
    """The log checked against its chain: `checked` events up to `through`, the hash the
    events themselves give at `through` (`computed`), the first event whose stored link is
    not what the events give (`first_break`, None when all agree) and what is wrong there."""

    checked: int
    through: int
    computed: str
    stored: str | None
    first_break: int | None = None
    problem: str | None = None


def verify(conn: sqlite3.Connection, every: int = 0) -> tuple[Verdict, dict[int, str]]:
    """Recompute the whole chain from the events and compare it with the stored links. With
    `every` > 0 also the computed hash at every event whose id is a multiple of it (checkpoints
    for the centre's audit, vocabulary.district.Audit)."""
    previous, checked, through, stored = chain.GENESIS, 0, 0, None
    first_break: int | None = None
    problem: str | None = None
    checkpoints: dict[int, str] = {}
    for e in _all(conn):
        previous = chain.link(previous, e)
        skipped = e["id"] != through + 1
        checked, through, stored = checked + 1, e["id"], e["hash"]
        if first_break is None and stored != previous:
            first_break = through
            problem = "unlinked" if stored is None else "gap" if skipped else "altered"
        if every and through % every == 0:
            checkpoints[through] = previous
    if through:
        checkpoints[through] = previous
    return Verdict(checked, through, previous, stored, first_break, problem), checkpoints
