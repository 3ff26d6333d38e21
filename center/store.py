"""The centre's PostgreSQL: every hall's events, once each, and what the centre knows of each
hall. All the centre's SQL lives here.

    halls        one row per hall: `acked` (every event up to it is held: the mark the hall
                 is told) and when that event happened, the link as its heartbeat last said,
                 and its floor (center.floor)
    hall_events  unique on (hall_id, event_id): a batch sent twice inserts nothing twice
    hall_bundles, hall_bundle_reports   the halls' configuration bundles (their SQL in center.bundles)
    hall_spans   the stretches (after_id, last_id] of a hall's log that batches covered above
                 its mark; `acked` moves over them as they join up, and they are then dropped

Batches may arrive in any order (several consumers share the subscription) and more than
once: the mark only moves over what is committed and joined, under the hall row's lock.
"""

from __future__ import annotations

import datetime as dt
import logging
import weakref
from collections.abc import Iterable, Sequence
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from center import cases
from center import chain as chains
from center import floor as floors
from center import province
from vocabulary.district import Batch, Link, event_hash

log = logging.getLogger(__name__)

# Each entry migrates the schema from version i to i + 1; never edit a shipped one.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE halls (
        hall_id text PRIMARY KEY,
        acked bigint NOT NULL DEFAULT 0,
        acked_at text,
        first_seen timestamptz NOT NULL DEFAULT now(),
        received_at timestamptz,
        link_state text,
        link_at text,
        link_seen timestamptz,
        hall_last_event bigint,
        floor jsonb NOT NULL DEFAULT '{}'
    );
    CREATE TABLE hall_events (
        hall_id text NOT NULL REFERENCES halls (hall_id),
        event_id bigint NOT NULL,
        kind text NOT NULL,
        at text NOT NULL,
        window_no integer,
        ticket text,
        data jsonb NOT NULL,
        received_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (hall_id, event_id)
    );
    CREATE TABLE hall_spans (
        hall_id text NOT NULL REFERENCES halls (hall_id),
        after_id bigint NOT NULL,
        last_id bigint NOT NULL,
        PRIMARY KEY (hall_id, after_id, last_id)
    );
    """,
    # centre schema 2 (bundles): the halls' configuration bundles and what they said of them
    """
    CREATE TABLE hall_bundles (
        hall_id text NOT NULL,
        version bigint NOT NULL,
        content jsonb NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        created_by text NOT NULL,
        PRIMARY KEY (hall_id, version)
    );
    CREATE TABLE hall_bundle_reports (
        hall_id text NOT NULL,
        version bigint NOT NULL,
        state text NOT NULL,
        in_use bigint NOT NULL,
        hall_time text NOT NULL,
        key text,
        reason text,
        received_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (hall_id, version, state)
    );
    """,
    chains.MIGRATION,  # centre schema 3 (chain)
    province.MIGRATION + cases.MIGRATION,  # centre schema 4 (province, cases)
]
_MIGRATE_LOCK = 160016  # pg_advisory_xact_lock: consumers starting at once migrate one at a time


def connect(dsn: str) -> psycopg.Connection:
    return psycopg.connect(dsn, autocommit=True)


def migrate(conn: psycopg.Connection) -> int:
    """Bring the schema up to date; its version."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATE_LOCK,))
        conn.execute("CREATE TABLE IF NOT EXISTS centre_schema (version integer NOT NULL)")
        row = conn.execute("SELECT version FROM centre_schema").fetchone()
        version = row[0] if row else 0
        if row is None:
            conn.execute("INSERT INTO centre_schema VALUES (0)")
        for sql in MIGRATIONS[version:]:
            conn.execute(sql)
        conn.execute("UPDATE centre_schema SET version = %s", (len(MIGRATIONS),))
    return len(MIGRATIONS)


def joined(acked: int, spans: Iterable[tuple[int, int]]) -> int:
    """How far the mark `acked` moves over `spans` ((after, last] each) that join up to it."""
    for after, last in sorted(spans):
        if after > acked:
            break
        acked = max(acked, last)
    return acked


# the connections that have their staging table (a temporary table lives as long as its session)
_STAGED: weakref.WeakSet[psycopg.Connection] = weakref.WeakSet()
_EVENT_COLUMNS = "hall_id, event_id, kind, at, window_no, ticket, data, hash"


def _stage(conn: psycopg.Connection) -> None:
    if conn not in _STAGED:
        conn.execute(f"CREATE TEMP TABLE IF NOT EXISTS hall_events_in AS SELECT {_EVENT_COLUMNS} "
                     "FROM hall_events WITH NO DATA")
        _STAGED.add(conn)


def ingest(conn: psycopg.Connection, batches: Sequence[Batch], links: dict[str, Link]) -> dict[str, int]:
    """Write `batches` and the halls' latest `links` in one transaction; the mark of every hall
    they touched, as committed.

    The events go in with COPY into a staging table, then one INSERT ... ON CONFLICT DO NOTHING
    into hall_events: a few round trips a transaction, however many events (make bench-center)."""
    halls = sorted({b.hall for b in batches} | links.keys())  # rows locked in one order: no deadlock
    rows = sorted({(b.hall, e["id"]): e for b in batches for e in b.events}.items())
    fresh: set[tuple[str, int]] = set()
    _stage(conn)
    with conn.transaction():
        with conn.cursor() as cur:
            cur.execute("INSERT INTO halls (hall_id) SELECT unnest(%s::text[]) ON CONFLICT DO NOTHING", (halls,))
            chains.resent(conn, batches)  # an event sent again that differs from the one held
            if rows:
                with cur.copy(f"COPY hall_events_in ({_EVENT_COLUMNS}) FROM STDIN") as copy:
                    for (hall, event_id), e in rows:
                        copy.write_row((hall, event_id, e["kind"], e["at"], e.get("window"), e.get("ticket"),
                                        Jsonb(e.get("data") or {}), event_hash(e)))
                cur.execute(f"INSERT INTO hall_events ({_EVENT_COLUMNS}) SELECT {_EVENT_COLUMNS} FROM hall_events_in "
                            "ON CONFLICT DO NOTHING RETURNING hall_id, event_id")
                fresh = set(cur.fetchall())
                cur.execute("TRUNCATE hall_events_in")
            spans = sorted({(b.hall, b.after, b.last) for b in batches})
            if spans:
                cur.execute("INSERT INTO hall_spans (hall_id, after_id, last_id) "
                            "SELECT * FROM unnest(%s::text[], %s::bigint[], %s::bigint[]) ON CONFLICT DO NOTHING",
                            ([h for h, _, _ in spans], [a for _, a, _ in spans], [lst for _, _, lst in spans]))
        mine: dict[str, list[Batch]] = {}
        for b in batches:
            mine.setdefault(b.hall, []).append(b)
        marks = {hall: _advance(conn, hall, mine.get(hall, []), links.get(hall),
                                {i for h, i in fresh if h == hall}) for hall in halls}
    return marks


def _advance(conn: psycopg.Connection, hall: str, batches: list[Batch], link: Link | None,
             fresh: set[int]) -> int:
    """Move the hall's mark over the stretches that join up to it, folding the events it moves
    over into the hall's floor: from the batches in hand when they cover the stretch and this
    transaction stored every one of them (so they are what is held), else read back."""
    row = conn.execute("SELECT acked, floor FROM halls WHERE hall_id = %s FOR UPDATE", (hall,)).fetchone()
    assert row is not None  # inserted in this transaction if it was not there
    acked, floor = row
    spans = conn.execute("SELECT after_id, last_id FROM hall_spans WHERE hall_id = %s", (hall,)).fetchall()
    mark = joined(acked, spans)
    if mark > acked:
        fields = ("id", "kind", "at", "window", "ticket", "data", "hash")
        held = {e["id"]: e for b in batches for e in b.events if acked < e["id"] <= mark}
        if joined(acked, [(b.after, b.last) for b in batches]) >= mark and held.keys() <= fresh:
            # the batches in hand, as stored: their own hash (None for a malformed one, as held)
            moved = [{**{f: held[i].get(f) for f in fields[:-1]}, "hash": event_hash(held[i])}
                     for i in sorted(held)]
        else:
            moved = [dict(zip(fields, e, strict=True)) for e in conn.execute(
                "SELECT event_id AS id, kind, at, window_no AS window, ticket, data, hash FROM hall_events "
                "WHERE hall_id = %s AND event_id > %s AND event_id <= %s ORDER BY event_id",
                (hall, acked, mark)).fetchall()]
        chains.advance(conn, hall, acked, moved)
        floor = floors.fold(floor, moved)
        province.enqueue(conn, hall, moved)  # 好差评 for the province, in this transaction
        cases.fold(conn, hall, moved)
        conn.execute("UPDATE halls SET acked = %s, acked_at = %s, floor = %s WHERE hall_id = %s",
                     (mark, moved[-1]["at"] if moved else None, Jsonb(floor), hall))
        conn.execute("DELETE FROM hall_spans WHERE hall_id = %s AND last_id <= %s", (hall, mark))
    if batches:
        conn.execute("UPDATE halls SET received_at = now() WHERE hall_id = %s", (hall,))
    if link is not None:
        conn.execute("UPDATE halls SET link_state = %s, link_at = %s, link_seen = now(), "
                     "hall_last_event = COALESCE(%s, hall_last_event) WHERE hall_id = %s",
                     (link.state, link.at, link.last_event, hall))
    return mark


# -- reading (the API) ---------------------------------------------------------------

def halls(conn: psycopg.Connection) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT hall_id, acked, acked_at, received_at, link_state, link_at, link_seen, hall_last_event, floor, "
            "now() AS now FROM halls ORDER BY hall_id").fetchall()


def hall(conn: psycopg.Connection, hall_id: str) -> dict[str, Any] | None:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT hall_id, acked, acked_at, received_at, link_state, link_at, link_seen, hall_last_event, floor, "
            "now() AS now FROM halls WHERE hall_id = %s", (hall_id,)).fetchone()


def hall_known(conn: psycopg.Connection, hall: str) -> bool:
    return conn.execute("SELECT 1 FROM halls WHERE hall_id = %s", (hall,)).fetchone() is not None


def events_after(conn: psycopg.Connection, hall: str, after: int, limit: int) -> list[dict[str, Any]]:
    """The hall's events the centre holds with id > `after`, in the hall's order (a gap the
    mark has not joined yet included: the caller compares with `acked`)."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT event_id AS id, kind, at, window_no AS window, ticket, data, hash FROM hall_events "
            "WHERE hall_id = %s AND event_id > %s ORDER BY event_id LIMIT %s", (hall, after, limit)).fetchall()


def seconds_since(then: dt.datetime | None, now: dt.datetime) -> float | None:
    return None if then is None else round((now - then).total_seconds(), 1)
