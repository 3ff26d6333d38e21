"""The centre checks every hall's hash chain (防篡改记录, vocabulary.chain) and keeps what it
finds wrong in `chain_flags` (centre schema 3), with the hall, the event and the kind of break:

    gap          the chain does not join across ids the hall's log skipped: events are missing
    altered      the event's data does not give the hash the hall wrote with it (changed in
                 the hall before it was shipped)
    reordered    the event gives the hash written for another id of the stretch: moved
    unlinked     an event came without a hash (the first of a run of them)
    resent       an event sent again differs from what the centre holds (changed after shipping)
    rewritten    the hall's audit: its events now give hashes other than those the centre
                 verified as it ingested them (changed after shipping, stored links rewritten
                 with it or not)

Verification follows the hall's ids, not the order batches arrive in: it runs as the hall's mark
moves (center.store._advance), over the events the mark moved over, from the hash of the event
at the mark. After a break it goes on from the hash the hall sent, so each break is flagged at
its own event and an intact stretch after it verifies again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import dict_row

from vocabulary import chain
from vocabulary.district import Audit, Batch, event_hash

# centre schema 3 (chain)
MIGRATION = f"""
    ALTER TABLE hall_events ADD COLUMN hash text;
    -- the hash of the event at the hall's mark; NULL for a hall the centre held before its chain
    -- was checked (the next event's hash is then taken as it comes)
    ALTER TABLE halls ADD COLUMN chain_hash text;
    ALTER TABLE halls ALTER COLUMN chain_hash SET DEFAULT '{chain.GENESIS}';
    ALTER TABLE halls ADD COLUMN audited_at text;
    ALTER TABLE halls ADD COLUMN audited_through bigint;
    CREATE TABLE chain_flags (
        hall_id text NOT NULL REFERENCES halls (hall_id),
        event_id bigint NOT NULL,
        kind text NOT NULL,
        detail text NOT NULL,
        source text NOT NULL,
        flagged_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (hall_id, event_id, kind)
    );
"""

NEAR = 16  # how far from its place a moved event is looked for


@dataclass(frozen=True)
class Flag:
    event_id: int
    kind: str
    detail: str
    source: str = "ingest"


def _moved_to(events: Sequence[dict[str, Any]], i: int, previous: str) -> int | None:
    """The id of the stretch whose written hash events[i]'s data gives at that id, if any."""
    for j in range(max(0, i - NEAR), min(len(events), i + NEAR + 1)):
        before = previous if j == 0 else event_hash(events[j - 1])
        target = event_hash(events[j])
        if j != i and before and target and chain.link(before, {**events[i], "id": events[j]["id"]}) == target:
            return events[j]["id"]
    return None


def check(after: int, previous: str | None, events: Sequence[dict[str, Any]]) -> tuple[str | None, list[Flag]]:
    """Verify `events` (a hall's, in its ids' order, each with the `hash` it came with) following
    the event `after` whose hash is `previous`; the hash at the last of them and the breaks."""
    flags: list[Flag] = []
    start, last, unlinked = previous, after, False
    for i, e in enumerate(events):
        sent = event_hash(e)
        computed = None if previous is None else chain.link(previous, e)
        if sent is None:
            if not unlinked:  # the first of a run (an old shipper sends none at all)
                flags.append(Flag(e["id"], "unlinked", "事件未带哈希（此后连续未带哈希的事件不再逐条标记）"))
        elif computed is not None and computed != sent:
            flags.append(_break(events, i, last, start))
        previous, last, unlinked = sent or computed, e["id"], sent is None
    return previous, flags


def _break(events: Sequence[dict[str, Any]], i: int, last: int, start: str | None) -> Flag:
    e = events[i]
    if e["id"] != last + 1:
        return Flag(e["id"], "gap", f"事件 {last + 1}–{e['id'] - 1} 缺失：哈希链在此断开")
    moved = _moved_to(events, i, start or chain.GENESIS)
    if moved is not None:
        return Flag(e["id"], "reordered", f"该事件的内容原属事件 {moved}：顺序被改动")
    return Flag(e["id"], "altered", "事件内容与大厅写入时的哈希不符（发送前被改动）")


def _flag(conn: psycopg.Connection, hall: str, flags: Sequence[Flag]) -> None:
    if flags:
        conn.cursor().executemany(
            "INSERT INTO chain_flags (hall_id, event_id, kind, detail, source) VALUES (%s, %s, %s, %s, %s) "
            "ON CONFLICT DO NOTHING", [(hall, f.event_id, f.kind, f.detail, f.source) for f in flags])


def advance(conn: psycopg.Connection, hall: str, after: int, events: Sequence[dict[str, Any]]) -> None:
    """The hall's mark moved from `after` over `events`: verify them, flag what breaks, keep
    the hash at the new mark (in the caller's transaction, under the hall row's lock)."""
    row = conn.execute("SELECT chain_hash FROM halls WHERE hall_id = %s", (hall,)).fetchone()
    head, flags = check(after, row[0] if row else None, events)
    _flag(conn, hall, flags)
    conn.execute("UPDATE halls SET chain_hash = %s WHERE hall_id = %s", (head, hall))


def _differs(held: dict[str, Any], sent: dict[str, Any]) -> bool:
    return chain.canonical(held) != chain.canonical(sent) or (
        held["hash"] is not None and held["hash"] != event_hash(sent))


def resent(conn: psycopg.Connection, batches: Sequence[Batch]) -> None:
    """Flag the events of `batches` the centre holds already in another form (before they are
    written: the centre keeps the first it got)."""
    for b in batches:
        if not b.events:
            continue
        with conn.cursor(row_factory=dict_row) as cur:
            held = {r["id"]: r for r in cur.execute(
                "SELECT event_id AS id, kind, at, window_no AS window, ticket, data, hash FROM hall_events "
                "WHERE hall_id = %s AND event_id > %s AND event_id <= %s", (b.hall, b.after, b.last))}
        if held:
            _flag(conn, b.hall, [
                Flag(e["id"], "resent", "再次发送的事件与中心已收到的不同（发送后被改动）")
                for e in b.events if e["id"] in held and _differs(held[e["id"]], e)])


def audit(conn: psycopg.Connection, a: Audit) -> None:
    """What the hall's audit says: its own break, and its checkpoints against the chain held."""
    conn.execute("INSERT INTO halls (hall_id) VALUES (%s) ON CONFLICT DO NOTHING", (a.hall,))
    row = conn.execute("SELECT acked FROM halls WHERE hall_id = %s FOR UPDATE", (a.hall,)).fetchone()
    acked = row[0] if row else 0
    conn.execute("UPDATE halls SET audited_at = %s, audited_through = %s WHERE hall_id = %s",
                 (a.at, a.through, a.hall))
    flags = []
    if a.first_break is not None:
        flags.append(Flag(a.first_break, a.problem or "altered",
                          "大厅自检：日志与其哈希链不符", "audit"))
    points = sorted(i for i in a.checkpoints if i <= acked)
    held: dict[int, str | None] = dict(conn.execute(
        "SELECT event_id, hash FROM hall_events WHERE hall_id = %s AND event_id = ANY(%s)",
        (a.hall, points)).fetchall())
    good = 0
    for i in points:
        if held.get(i) in (None, a.checkpoints[i]):
            good = i
            continue
        # the change is in (good, i]: the hall's own break names it when its stored links were kept
        at = a.first_break if a.first_break is not None and good < a.first_break <= i else i
        if conn.execute("SELECT 1 FROM chain_flags WHERE hall_id = %s AND source = 'ingest' AND event_id > %s "
                        "AND event_id <= %s", (a.hall, good, at)).fetchone():
            break  # already broken as it came in: changed before shipping, not after
        flags.append(Flag(at, "rewritten", f"大厅日志在事件 {good + 1}–{i} 之间与已发送并核验的记录不符"
                          "（发送后被改写）", "audit"))
        break
    _flag(conn, a.hall, flags)


def summaries(conn: psycopg.Connection) -> dict[str, dict[str, Any]]:
    """Per hall: `chain` ok or broken, the first bad event, how many flags, the last audit."""
    rows = conn.execute(
        "SELECT h.hall_id, h.audited_at, h.audited_through, MIN(f.event_id), COUNT(f.event_id) "
        "FROM halls h LEFT JOIN chain_flags f ON f.hall_id = h.hall_id GROUP BY h.hall_id").fetchall()
    return {hall: {"state": "broken" if n else "ok", "first_bad_event_id": first, "flags": n,
                   "audited_at": at, "audited_through": through}
            for hall, at, through, first, n in rows}


def flags(conn: psycopg.Connection, hall: str) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT event_id, kind, detail, source, flagged_at FROM chain_flags WHERE hall_id = %s "
            "ORDER BY event_id, kind", (hall,)).fetchall()
