"""Tamper-evident records (防篡改记录), accepted: a hall's events travel with their links in its
hash chain (vocabulary.chain); the centre verifies the chain as it ingests, and the hall's audit
tells it when the hall's database no longer says what was shipped. Real halls (the server), a
real Mosquitto, a PostgreSQL cluster of the test's own; the tampering is done the way it would
be done, with sqlite3 on the hall's database file."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import psycopg

from center.consumer import Consumer
from controller.core import commands as c
from controller.runtime.clock import ManualClock
from tests.district import caught_up, centre_api, hall_log, hall_of, held, link, serve_a_while
from tests.halls import at, small_hall
from tests.server import running_hall, wait_for
from vocabulary import chain

ROOT = Path(__file__).resolve().parent.parent


def graded(hall, window: int, grade: str) -> None:
    """A citizen at `window` served and grading it on the pad."""
    staff = hall.login(f"s{window}", window)
    with hall.client() as api:
        assert api.post("/api/v1/tickets", json={"service": "A"}).status_code == 201
        assert api.post(f"/api/v1/windows/{window}/call", headers=staff).status_code == 200
        hall.clock.advance(minutes=2)
        assert api.post(f"/api/v1/windows/{window}/finish", headers=staff).status_code == 200
    hall.ctrl.execute(c.Evaluate(window, grade, "pad"), f"pad:{window}")


def tamper(db: Path, sql: str) -> None:
    """What someone with the hall's database file and sqlite3 can do: drop the append-only
    guards, change the log, put them back."""
    conn = sqlite3.connect(db)
    guards = conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'trigger' "
                          "AND name LIKE 'events_append_only%'").fetchall()
    for name, _ in guards:
        conn.execute(f"DROP TRIGGER {name}")
    conn.execute(sql)
    for _, text in guards:
        conn.execute(text)
    conn.commit()
    conn.close()


def chain_of(api, hall_id: str) -> dict:
    r = api.get(f"/api/v1/halls/{hall_id}/chain")
    assert r.status_code == 200, r.text
    return r.json()


def verify_log(db: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "controller.cli", "verify-log", "--data-dir", str(db.parent)],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_a_grade_rewritten_after_it_was_shipped_is_flagged_with_its_hall_and_event(tmp_path, mosquitto, postgres):
    consumer = Consumer(postgres.dsn, mosquitto.host, mosquitto.port).start()
    clocks = {n: ManualClock(at("09:00")) for n in ("hall-1", "hall-2")}
    settings = {n: link(n, mosquitto, audit_seconds=1.0) for n in clocks}
    try:
        with running_hall(small_hall(), tmp_path / "hall-1", clocks["hall-1"], federation=settings["hall-1"]) as h1, \
                running_hall(small_hall(), tmp_path / "hall-2", clocks["hall-2"],
                             federation=settings["hall-2"]) as h2, \
                centre_api(postgres.dsn) as api:
            dbs = {n: tmp_path / n / "hall.sqlite3" for n in clocks}
            for h in (h1, h2):
                serve_a_while(h, 6)
                graded(h, 1, "非常不满意")
                serve_a_while(h, 3)
            for n in dbs:
                wait_for(lambda n=n: caught_up(api, n, dbs[n]), 30)
                assert [e["hash"] for e in held(api, n)] == [e["hash"] for e in hall_log(dbs[n])]
            # an intact day: every event verified, no flag, the audit agrees
            wait_for(lambda: all(hall_of(api, n)["chain"]["audited_through"] for n in dbs), 15)
            for n in dbs:
                assert hall_of(api, n)["chain"]["state"] == "ok"
                assert chain_of(api, n)["breaks"] == []
                assert verify_log(dbs[n]).returncode == 0

            # hall-1's bad review, already at the centre, made good in the hall's database
            [bad] = [e for e in hall_log(dbs["hall-1"]) if e["kind"] == "ticket_evaluated"]
            assert bad["data"]["grade"] == "非常不满意"
            tamper(dbs["hall-1"], "UPDATE event_log SET data = json_set(data, '$.grade', '非常满意') "
                                  f"WHERE id = {bad['id']}")
            assert [e for e in hall_log(dbs["hall-1"]) if e["id"] == bad["id"]][0]["data"]["grade"] == "非常满意"

            # the hall's own check finds it at once
            checked = verify_log(dbs["hall-1"])
            assert checked.returncode == 1 and f"event {bad['id']}" in checked.stdout, checked.stdout

            # the next audit (at start, after every reconnect, every audit_seconds): the centre flags it
            wait_for(lambda: hall_of(api, "hall-1")["chain"]["state"] == "broken", 15)
            view = hall_of(api, "hall-1")["chain"]
            assert view["first_bad_event_id"] == bad["id"]
            kinds = {(f["event_id"], f["kind"]) for f in chain_of(api, "hall-1")["breaks"]}
            assert (bad["id"], "rewritten") in kinds  # against what was shipped and verified
            assert (bad["id"], "altered") in kinds  # the hall's own log against its chain
            # the centre still holds what was graded
            assert [e for e in held(api, "hall-1") if e["id"] == bad["id"]][0]["data"]["grade"] == "非常不满意"
            # the other hall's day is intact
            serve_a_while(h2, 3)
            wait_for(lambda: caught_up(api, "hall-2", dbs["hall-2"]), 30)
            assert hall_of(api, "hall-2")["chain"]["state"] == "ok"

    finally:
        consumer.stop()
    with psycopg.connect(postgres.dsn) as conn:
        rows = conn.execute("SELECT hall_id, event_id, kind FROM chain_flags ORDER BY 1, 2, 3").fetchall()
    assert {r[0] for r in rows} == {"hall-1"}


def test_a_rewrite_that_also_rewrites_the_chain_is_caught_by_the_centre(tmp_path, mosquitto, postgres):
    """The stored links recomputed after the change, so the hall's log agrees with its own chain:
    only the chain the centre verified as it ingested shows it."""
    consumer = Consumer(postgres.dsn, mosquitto.host, mosquitto.port).start()
    try:
        with running_hall(small_hall(), tmp_path / "h", ManualClock(at("09:00")),
                          federation=link("hall-3", mosquitto, audit_seconds=1.0)) as h, \
                centre_api(postgres.dsn) as api:
            db = tmp_path / "h" / "hall.sqlite3"
            serve_a_while(h, 4)
            graded(h, 1, "不满意")
            serve_a_while(h, 3)
            wait_for(lambda: caught_up(api, "hall-3", db), 30)
            [bad] = [e for e in hall_log(db) if e["kind"] == "ticket_evaluated"]
            tamper(db, f"UPDATE event_log SET data = json_set(data, '$.grade', '满意') WHERE id = {bad['id']}")
            conn = sqlite3.connect(db)  # every link from it on, recomputed
            conn.execute("DROP TRIGGER event_chain_append_only_d")
            conn.execute("DELETE FROM event_chain WHERE event_id >= ?", (bad["id"],))
            previous = conn.execute("SELECT hash FROM event_chain WHERE event_id = ?", (bad["id"] - 1,)).fetchone()[0]
            for e in hall_log(db):
                if e["id"] >= bad["id"]:
                    previous = chain.link(previous, e)
                    conn.execute("INSERT INTO event_chain VALUES (?, ?)", (e["id"], previous))
            conn.commit()
            conn.close()
            assert verify_log(db).returncode == 0  # the hall's own check cannot see it

            wait_for(lambda: hall_of(api, "hall-3")["chain"]["state"] == "broken", 15)
            [flag] = chain_of(api, "hall-3")["breaks"]
            assert flag["kind"] == "rewritten"
            # located to the checkpoint after it: a small hall's log has only its last event
            assert bad["id"] <= flag["event_id"] <= hall_log(db)[-1]["id"]
    finally:
        consumer.stop()


def test_a_gap_in_the_log_is_flagged(tmp_path, mosquitto, postgres):
    """An event removed from the hall's log before it was shipped: the centre sees the ids skip
    and the chain not join across them."""
    clock = ManualClock(at("09:00"))
    consumer = Consumer(postgres.dsn, mosquitto.host, mosquitto.port).start()
    try:
        with running_hall(small_hall(), tmp_path / "h", clock) as h:  # no district yet: nothing shipped
            db = tmp_path / "h" / "hall.sqlite3"
            serve_a_while(h, 6)
            graded(h, 1, "非常不满意")
            serve_a_while(h, 3)
        [bad] = [e for e in hall_log(db) if e["kind"] == "ticket_evaluated"]
        tamper(db, f"DELETE FROM event_log WHERE id = {bad['id']}")
        checked = verify_log(db)
        assert checked.returncode == 1 and "gap" in checked.stdout, checked.stdout
        with running_hall(small_hall(), tmp_path / "h", clock, federation=link("hall-4", mosquitto)) as h, \
                centre_api(postgres.dsn) as api:
            wait_for(lambda: caught_up(api, "hall-4", db), 30)
            view = hall_of(api, "hall-4")["chain"]
            assert view["state"] == "broken" and view["first_bad_event_id"] == bad["id"] + 1
            flags = chain_of(api, "hall-4")["breaks"]
            assert {(f["event_id"], f["kind"]) for f in flags} >= {(bad["id"] + 1, "gap")}
            assert all(f["kind"] == "gap" for f in flags)  # the audit's break is the same one, seen before
    finally:
        consumer.stop()


def _log(n: int) -> list[dict]:
    """A hall's log of `n` events, each with its link."""
    events = [{"id": i, "kind": "ticket_issued", "at": f"2026-11-23T09:{i:02d}:00+08:00", "window": None,
               "ticket": f"20261123-A{i:03d}", "data": {"service": "A"}} for i in range(1, n + 1)]
    previous = chain.GENESIS
    for e in events:
        e["hash"] = previous = chain.link(previous, e)
    return events


def test_the_centre_names_each_kind_of_break_at_its_event(postgres):
    """Batches as a lying or tampered hall would send them, straight into the centre's store:
    every break flagged at its own event, the stretch after it verified again; ids the hall's
    log skipped with the chain joining across them are no break."""
    from center import chain as chains
    from center import store
    from vocabulary.district import Batch

    def flags(hall: str) -> set[tuple[int, str]]:
        return {(f["event_id"], f["kind"]) for f in chains.flags(conn, hall)}

    with psycopg.connect(postgres.dsn, autocommit=True) as conn:
        store.migrate(conn)
        good = _log(10)
        store.ingest(conn, [Batch("intact", 0, 10, tuple(good))], {})
        skipped = [e for e in _log(10) if e["id"] != 4]  # a log that skipped id 4 when it was written
        previous = chain.GENESIS
        for e in skipped:
            e["hash"] = previous = chain.link(previous, e)
        store.ingest(conn, [Batch("skips", 0, 10, tuple(skipped))], {})
        assert flags("intact") == flags("skips") == set()

        tampered = _log(12)
        tampered[2] = {**tampered[2], "data": {"service": "B"}}  # 3 changed before shipping
        tampered[5], tampered[6] = ({**tampered[6], "id": 6, "hash": tampered[5]["hash"]},
                                    {**tampered[5], "id": 7, "hash": tampered[6]["hash"]})  # 6 and 7 swapped
        del tampered[8]  # 9 removed
        tampered[9] = {k: v for k, v in tampered[9].items() if k != "hash"}  # 11 (after 9 went) without its link
        store.ingest(conn, [Batch("tampered", 6, 12, tuple(tampered[6:]))], {})  # out of order: held back
        store.ingest(conn, [Batch("tampered", 0, 6, tuple(tampered[:6]))], {})
        assert flags("tampered") == {(3, "altered"), (6, "reordered"), (7, "reordered"), (10, "gap"),
                                     (11, "unlinked")}
        assert chains.summaries(conn)["tampered"]["first_bad_event_id"] == 3

        # sent again (a lost mark file), one event changed after shipping
        again = _log(10)
        again[4] = {**again[4], "data": {"service": "B"}}
        store.ingest(conn, [Batch("intact", 0, 10, tuple(again))], {})
        assert flags("intact") == {(5, "resent")}
        store.ingest(conn, [Batch("skips", 0, 10, tuple(skipped))], {})  # the same again: nothing
        assert flags("skips") == set()


def test_a_log_from_before_the_chain_is_linked_when_the_hall_next_starts(tmp_path):
    """A hall database of the schema before the chain (hall schema 19): the controller links its
    events at its first start, the same links the hall would have written, and goes on from them."""
    from controller.store.db import MIGRATIONS

    clock = ManualClock(at("09:00"))
    db = tmp_path / "h" / "hall.sqlite3"
    with running_hall(small_hall(), tmp_path / "h", clock) as h:
        serve_a_while(h, 6)
    written = [(e["id"], e["hash"]) for e in hall_log(db)]
    conn = sqlite3.connect(db)  # as the version before left it
    conn.executescript(f"DROP TABLE event_chain; PRAGMA user_version = {len(MIGRATIONS) - 1};")
    conn.close()
    assert verify_log(db).returncode == 1  # "unlinked"
    with running_hall(small_hall(), tmp_path / "h", clock) as h:
        assert [(e["id"], e["hash"]) for e in hall_log(db)] == written
        serve_a_while(h, 3)
    assert len(hall_log(db)) > len(written)
    checked = verify_log(db)
    assert checked.returncode == 0, checked.stdout
