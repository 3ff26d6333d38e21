"""The personal data in the hall database, as the purge and the key rotation rewrite it
(controller.security.personal_data decides what goes; this module knows where it lies).

Plain sqlite3 on purpose: both rewrites run in one BEGIN IMMEDIATE transaction with
`secure_delete` on, so that freed bytes are zeroed, and sqlite-utils has neither.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from typing import Any, Iterator, Sequence

from controller.store.hallstore import HallStore


@contextlib.contextmanager
def secure_transaction(store: HallStore) -> Iterator[sqlite3.Connection]:
    """One write transaction on the hall's connection in which overwritten and deleted bytes
    are zeroed on disk (secure_delete), put back as it was afterwards. The caller holds the
    store's lock, or the data directory (no controller running)."""
    conn = store.db.conn
    secure = conn.execute("PRAGMA secure_delete").fetchone()[0]
    conn.execute("PRAGMA secure_delete = ON")
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    finally:
        conn.execute(f"PRAGMA secure_delete = {int(secure)}")


def purge_tickets(conn: sqlite3.Connection, before: str, open_statuses: Sequence[str],
                  id_mask: str, name_mask: str) -> int:
    """Tickets of days before `before`, no longer open: sealed identity, phone and lookup key
    gone, masks replaced by `id_mask` and `name_mask`. How many changed."""
    return conn.execute(
        "UPDATE tickets SET identity_sealed = NULL, phone_sealed = NULL, citizen_key = NULL, "
        "id_masked = CASE WHEN id_masked IS NULL THEN NULL ELSE ? END, "
        "name_masked = CASE WHEN name_masked IS NULL THEN NULL ELSE ? END "
        f"WHERE day < ? AND status NOT IN ({', '.join('?' for _ in open_statuses)}) AND ("
        "identity_sealed IS NOT NULL OR phone_sealed IS NOT NULL OR citizen_key IS NOT NULL "
        "OR id_masked != ? OR name_masked != ?)",
        [id_mask, name_mask, before, *open_statuses, id_mask, name_mask]).rowcount


def purge_appointments(conn: sqlite3.Connection, before: str, id_mask: str,
                       name_mask: str) -> int:
    """Appointments of days before `before`, as `purge_tickets`."""
    return conn.execute(
        "UPDATE appointments SET identity_sealed = NULL, citizen_key = NULL, "
        "id_masked = CASE WHEN id_masked IS NULL THEN NULL ELSE ? END, "
        "name_masked = CASE WHEN name_masked IS NULL THEN NULL ELSE ? END "
        "WHERE day < ? AND (identity_sealed IS NOT NULL OR citizen_key IS NOT NULL "
        "OR id_masked != ? OR name_masked != ?)",
        [id_mask, name_mask, before, id_mask, name_mask]).rowcount


def closed_cases(conn: sqlite3.Connection) -> list[tuple[str, str, dict[str, Any]]]:
    """(id, updated_at, body) of every closed case."""
    return [(i, at, json.loads(body)) for i, at, body in conn.execute(
        "SELECT id, updated_at, body FROM cases WHERE state = 'closed'").fetchall()]


def all_cases(conn: sqlite3.Connection) -> list[tuple[str, dict[str, Any]]]:
    return [(i, json.loads(body)) for i, body in conn.execute(
        "SELECT id, body FROM cases").fetchall()]


def rewrite_case(conn: sqlite3.Connection, case_id: str, body: dict[str, Any]) -> None:
    """A case's body rewritten in place; updated_at stays (no step of the case's own)."""
    conn.execute("UPDATE cases SET body = ? WHERE id = ?",
                 [json.dumps(body, ensure_ascii=False), case_id])


def sealed_values(conn: sqlite3.Connection) -> Iterator[str]:
    """Every sealed value in the database, tickets first (to find which key opens them)."""
    for row in conn.execute("SELECT identity_sealed, phone_sealed FROM tickets "
                            "WHERE identity_sealed IS NOT NULL OR phone_sealed IS NOT NULL"):
        yield from (v for v in row if v is not None)
    for (v,) in conn.execute(
            "SELECT identity_sealed FROM appointments WHERE identity_sealed IS NOT NULL"):
        yield v
    for (body,) in conn.execute("SELECT body FROM cases"):
        data = json.loads(body)
        yield from (data[n] for n in ("identity_sealed", "phone_sealed") if data.get(n) is not None)
    for (v,) in conn.execute("SELECT phone_sealed FROM reminders WHERE phone_sealed IS NOT NULL"):
        yield v


def sealed_tickets(conn: sqlite3.Connection) -> list[tuple[str, str | None, str | None, str | None]]:
    """(id, citizen_key, identity_sealed, phone_sealed) of tickets holding any of them."""
    return conn.execute(
        "SELECT id, citizen_key, identity_sealed, phone_sealed FROM tickets WHERE "
        "citizen_key IS NOT NULL OR identity_sealed IS NOT NULL OR phone_sealed IS NOT NULL"
    ).fetchall()


def reseal_ticket(conn: sqlite3.Connection, ticket_id: str, key: str | None,
                  identity: str | None, phone: str | None) -> None:
    conn.execute("UPDATE tickets SET citizen_key = ?, identity_sealed = ?, phone_sealed = ? "
                 "WHERE id = ?", [key, identity, phone, ticket_id])


def sealed_appointments(conn: sqlite3.Connection) -> list[tuple[str, str | None, str | None]]:
    """(code, citizen_key, identity_sealed) of appointments holding either."""
    return conn.execute(
        "SELECT code, citizen_key, identity_sealed FROM appointments WHERE "
        "citizen_key IS NOT NULL OR identity_sealed IS NOT NULL").fetchall()


def reseal_appointment(conn: sqlite3.Connection, code: str, key: str | None,
                       identity: str | None) -> None:
    conn.execute("UPDATE appointments SET citizen_key = ?, identity_sealed = ? WHERE code = ?",
                 [key, identity, code])


def truncate_wal(store: HallStore) -> None:
    """Copy the WAL into the main file and empty it: old ciphertexts leave the WAL for the
    zeroed pages of the main file."""
    store.db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
