"""Upgrades: a hall database made by every earlier schema version migrates forward to this
controller's (however many MIGRATIONS it has), and everything it held is read back through the
current readers; a database newer than the controller is refused by `hallctl run` in one line.

The fixtures (tests/fixtures/schema/vN.sqlite) were made by the code of the commit that
introduced each version, running a small hall day (tests/fixtures/schema/make_fixtures.py, which
says how to make one for a version added later). A version with no fixture of its own (5: added
in the same commit as 6; one added after the fixtures were made) is made here from the nearest
older fixture by this controller's own migrations up to it, so every version below the current
one is migrated forward from.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import sqlite_utils

from controller.backoffice.hall_reports import hall_figures
from controller.core import commands as c
from controller.runtime.clock import ManualClock
from controller.runtime.hallcontroller import HallController
from controller.store.db import MIGRATIONS, migrate, schema_version
from controller.store.hallstore import HallStore
from tests.halls import MONDAY, at, small_hall
from tests.server import DEMO_CONFIG, REPO, free_port

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "schema"
MADE = {int(p.stem[1:]): p for p in FIXTURES.glob("v*.sqlite")}
CURRENT = len(MIGRATIONS)
EARLIER = list(range(1, CURRENT))


def hall():
    return small_hall({1: ("A",), 2: ("A", "B")})  # the fixtures' hall (make_fixtures.DAY)


def database_of(version: int, into: Path) -> tuple[Path, dict]:
    """A hall database of schema `version` in `into`, and what its day did."""
    made = max(v for v in MADE if v <= version)
    db = into / "hall.sqlite3"
    shutil.copy(MADE[made], db)
    done = json.loads(MADE[made].with_suffix(".json").read_text(encoding="utf-8"))
    with sqlite3.connect(db, isolation_level=None) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == made
        migrate(sqlite_utils.Database(conn), to=version)
    conn.close()
    return db, done


def test_the_fixtures_cover_every_version_their_script_knows():
    sys.path.insert(0, str(FIXTURES))
    try:
        import make_fixtures
    finally:
        sys.path.remove(str(FIXTURES))
    assert sorted(MADE) == sorted(make_fixtures.VERSIONS)
    assert sorted(MADE)[0] == 1 and max(MADE) <= CURRENT
    for version, path in MADE.items():
        assert path.stat().st_size < 100_000  # small: a few tickets, VACUUMed
        done = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
        assert done["version"] == version and done["commit"] == make_fixtures.VERSIONS[version]


# The fixtures of versions 13 and 14 found an upgrade bug: a database that ran migration 13 at
# 605e880..726fc5a kept that commit's day-summary triggers, and the first write changing two
# tickets of a closed day failed on UNIQUE day_changes.day. Migration 16 makes the triggers again;
# those two cases are the test of it.
CASES = [pytest.param(v, id=f"v{v}") for v in EARLIER]


@pytest.mark.parametrize("version", CASES)
def test_a_database_of_an_earlier_version_migrates_and_keeps_everything(version, tmp_path):
    db, done = database_of(version, tmp_path)
    store = HallStore(db)
    try:
        assert schema_version(store.db) == CURRENT
        tickets = {t: store.ticket(t) for t in done["tickets"]}
        assert all(tickets.values()), [t for t, v in tickets.items() if v is None]
        for ticket_id, ticket in tickets.items():
            kinds = [e["kind"] for e in store.ticket_history(ticket_id)]
            assert kinds[0] == "ticket_issued", (ticket_id, kinds)
            if ticket_id in done["finished"]:
                assert "ticket_finished" in kinds and ticket.status.value == "finished"
            assert ticket.grade == done["grades"].get(ticket_id), ticket_id
            graded = [e["data"]["grade"] for e in store.ticket_history(ticket_id)
                      if e["kind"] == "ticket_evaluated"]
            assert graded == ([done["grades"][ticket_id]] if ticket_id in done["grades"] else [])
        assert len(store.events_after(0, limit=100_000)) == done["events"]
        assert store.query("SELECT COUNT(*) AS n FROM commands")[0]["n"] == done["commands"]
        # the reports read it as a day of the current schema
        rows = {r["service"]: r for r in hall_figures(store.db, hall(), MONDAY, MONDAY, "service")}
        assert (rows["A"]["issued"], rows["B"]["issued"]) == (3, 2)
        assert sum(r["served"] for r in rows.values()) == len(done["finished"])
        assert sum(r["evaluated"] for r in rows.values()) == len(done["grades"])

        # and the current controller goes on with the day: numbering continues, the log grows
        clock = ManualClock(at("10:00"))
        ctrl = HallController(hall(), store, clock)
        try:
            issued = ctrl.execute(c.IssueTicket(service="A"), "kiosk").ticket
            assert issued is not None and issued.label == "A004"
            served = [ctrl.execute(c.CallNext(window=w), f"staff:s{w}").ticket for w in (1, 2)]
            assert [t.label for t in served if t] == ["A004", "B001"]
            for w in (1, 2):
                ctrl.execute(c.Finish(window=w), f"staff:s{w}")
            # a week on, the visits nobody graded get the default grade: a closed day's
            # tickets change, twice in one transaction (the day summaries' triggers fire)
            clock.now = at("09:00", MONDAY + dt.timedelta(days=8))
            ctrl.tick()
            assert store.ticket(issued.id).grade == hall().rules.evaluation_default_grade
        finally:
            ctrl.close()
        assert len(store.events_after(0, limit=100_000)) > done["events"]
    finally:
        store.close()


def test_hallctl_run_refuses_a_database_newer_than_itself(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    db, _ = database_of(max(MADE), data)
    with sqlite3.connect(db) as conn:
        conn.execute(f"PRAGMA user_version = {CURRENT + 1}")
    conn.close()
    before = db.read_bytes()
    config = tmp_path / "hall.toml"
    config.write_text(re.sub(r'embedded_listen = "127\.0\.0\.1:\d+"',
                             f'embedded_listen = "127.0.0.1:{free_port()}"',
                             DEMO_CONFIG.read_text(encoding="utf-8")), encoding="utf-8")
    run = subprocess.run([sys.executable, "-m", "controller.cli", "run", "--config", str(config),
                          "--data-dir", str(data), "--port", str(free_port())],
                         cwd=REPO, capture_output=True, text=True, timeout=60)
    assert run.returncode == 1, run.stderr
    assert "Traceback" not in run.stderr + run.stdout
    # the demo hall's accounts are warned of first (no --simulate); then the one line
    lines = [line for line in run.stderr.splitlines() if line.startswith("hallctl:")]
    assert lines[-1:] == [f"hallctl: {db} has schema version {CURRENT + 1}, newer than this controller "
                     f"({CURRENT}): upgrade the controller, or restore a backup made by this "
                     "version (hallctl restore)"], run.stderr
    assert db.read_bytes() == before  # not touched
