"""好差评 delivered to the provincial platform: two town halls' mornings over a real Mosquitto
into a centre on a real PostgreSQL, delivered to sim.province (a real HTTP server that is slow,
fails, resets, hangs and acknowledges twice). The province ends up holding every evaluation
once by its idempotency key, with the right fields, and the centre every acknowledgement id,
also with the province down for a while and the consumer and the deliverer restarted."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import psycopg

from center import province as delivery
from center.consumer import Consumer
from controller.assembly import open_hall
from controller.runtime.clock import ManualClock
from sim.province import Province
from tests.district import hall_log, run_mornings, town_halls
from tests.server import REPO, wait_for
from vocabulary import SYSTEM_DEFAULT

REGIONS = {"town-1": "500101", "town-2": "500102"}
CHANNEL_CODES = {"pad": "1", "tablet": "2", SYSTEM_DEFAULT: "9"}
GRADE_CODES = {"非常满意": 5, "满意": 4, "基本满意": 3, "不满意": 2, "非常不满意": 1}


def evaluations(tmp_path: Path) -> dict[str, tuple[str, dict]]:
    """Every evaluation the halls' own logs hold, by its key: (hall, event)."""
    return {f"{hall}:{e['id']}": (hall, e) for hall in REGIONS
            for e in hall_log(tmp_path / hall / "hall.sqlite3") if e["kind"] == "ticket_evaluated"}


def deliveries(dsn: str) -> dict[str, tuple[str, str | None]]:
    with psycopg.connect(dsn) as conn:
        return {k: (s, a) for k, s, a in conn.execute(
            "SELECT idempotency_key, state, ack_id FROM province_deliveries").fetchall()}


def all_acknowledged(dsn: str, expected: int) -> bool:
    held = deliveries(dsn)
    return len(held) == expected and all(s == "acknowledged" for s, _ in held.values())


def assert_delivered_once_each(tmp_path: Path, dsn: str, platform: Province) -> None:
    """The province holds every evaluation of both halls, once by its key, as the hall has it;
    the centre holds every acknowledgement id the province gave."""
    own = evaluations(tmp_path)
    assert len(own) > 50  # two real mornings of grades
    assert set(platform.records) == set(own)
    assert platform.conflicts == 0  # a key never came with another body
    for key, (hall, e) in own.items():
        got = platform.records[key]["record"]
        data = e["data"]
        assert got == {
            "idempotency_key": key, "hall_id": hall, "event_id": e["id"], "region_code": REGIONS[hall],
            "grade": data["grade"], "grade_code": GRADE_CODES[data["grade"]],
            "channel": data["channel"], "channel_code": CHANNEL_CODES[data["channel"]],
            "default_grade": data["channel"] == SYSTEM_DEFAULT, "bad_review": data["bad"],
            "real_name": data["real_name"], "window": e["window"], "staff_id": data["staff"],
            "service": data["service"], "visit_id": e["ticket"], "evaluated_at": e["at"],
        }
    held = deliveries(dsn)
    assert {k: a for k, (_, a) in held.items()} == {k: r["ack_id"] for k, r in platform.records.items()}


def default_grades(tmp_path: Path, halls) -> None:
    """A week on: each hall gives its visits left unevaluated its default grade (默认好评)."""
    for n, (day, _) in halls.items():
        later = day.clock() + dt.timedelta(days=8)
        ctrl, _ = open_hall(day.hall, tmp_path / n, ManualClock(later), durable=False)
        try:
            ctrl.tick()  # the day changes, then the defaults are given
        finally:
            ctrl.store.close()


def test_a_day_with_a_flaky_province_delivers_every_evaluation_once_with_its_ack(tmp_path, mosquitto, postgres):
    # a fifth of the requests fail (503, reset, a hang past the deliverer's timeout), a tenth
    # are taken and their answer lost: those are sent again and acknowledged twice
    platform = Province(fail_rate=0.2, ack_twice_rate=0.1, slow_seconds=0.02, hang_seconds=0.6).start()
    consumers = [Consumer(postgres.dsn, mosquitto.host, mosquitto.port, name=str(i), max_messages=3).start()
                 for i in (1, 2)]
    # two deliverers (as two `districtctl deliver` processes would be) of three workers each,
    # taking small claims: they compete for the same rows all the time
    deliverers = [delivery.Deliverer(postgres.dsn, platform.url, REGIONS, workers=3, claim=3, timeout=0.3,
                                     backoff_seconds=0.05, max_backoff_seconds=0.5, idle_seconds=0.1).start()
                  for _ in range(2)]
    halls = town_halls(tmp_path, mosquitto, batch_events=20)
    try:
        run_mornings(halls)
        default_grades(tmp_path, halls)
        expected = len(evaluations(tmp_path))
        wait_for(lambda: all_acknowledged(postgres.dsn, expected), 120)
        assert_delivered_once_each(tmp_path, postgres.dsn, platform)
        assert sum(r["received"] > 1 for r in platform.records.values()) > 0  # acknowledged twice, kept once
        assert {"503", "reset", "hang", "502_after", "reset_after"} <= set(platform.failures)
        assert any(r["record"]["default_grade"] for r in platform.records.values())  # 默认好评, marked
        assert all(d.posted > 0 for d in deliverers)  # both took their share
    finally:
        for d in deliverers:
            d.stop()
        for _, shipper in halls.values():
            shipper.stop()
        for c in consumers:
            c.stop()
        platform.stop()


def start_deliver(dsn: str, url: str, log: Path) -> subprocess.Popen:
    """`districtctl deliver` as a child process, as a district runs it."""
    regions = [a for hall, code in REGIONS.items() for a in ("--region", f"{hall}={code}")]
    return subprocess.Popen(
        [sys.executable, "-m", "center.cli", "deliver", "--database", dsn, "--province", url, *regions,
         "--workers", "3", "--timeout", "0.5", "--backoff", "0.1", "--max-backoff", "1"],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=log.open("ab"), stderr=subprocess.STDOUT)


def test_province_down_then_consumer_and_deliverer_killed_mid_delivery_still_exactly_once(
        tmp_path, mosquitto, postgres):
    platform = Province(fail_rate=0.1, ack_twice_rate=0.1, slow_seconds=0.05, hang_seconds=0.8).start()
    platform.stop()  # the province is down: its port refuses connections
    consumer = Consumer(postgres.dsn, mosquitto.host, mosquitto.port, max_messages=5).start()
    log = tmp_path / "deliver.log"
    deliverer = start_deliver(postgres.dsn, platform.url, log)
    halls = town_halls(tmp_path, mosquitto, batch_events=20)
    day = threading.Thread(target=run_mornings, args=(halls,))
    day.start()
    try:
        # evaluations queue at the centre while the province is away: none delivered
        wait_for(lambda: len(deliveries(postgres.dsn)) > 20, 60)
        assert not any(s == "acknowledged" for s, _ in deliveries(postgres.dsn).values())
        consumer.stop()  # the consumer goes away mid-day and comes back
        consumer = Consumer(postgres.dsn, mosquitto.host, mosquitto.port, max_messages=5).start()
        platform.start()  # the province is back, on the same address
        wait_for(lambda: sum(s == "acknowledged" for s, _ in deliveries(postgres.dsn).values()) > 10, 60)
        deliverer.send_signal(signal.SIGKILL)  # killed mid-delivery: claims in flight roll back
        deliverer.wait(10)
        deliverer = start_deliver(postgres.dsn, platform.url, log)
        day.join(120)
        expected = len(evaluations(tmp_path))
        wait_for(lambda: all_acknowledged(postgres.dsn, expected), 120)
        assert deliverer.poll() is None, log.read_text()
        assert_delivered_once_each(tmp_path, postgres.dsn, platform)
    finally:
        deliverer.terminate()
        deliverer.wait(15)
        for _, shipper in halls.values():
            shipper.stop()
        consumer.stop()
        platform.stop()


def test_a_refused_record_fails_at_once_and_is_queued_again_on_request(postgres):
    """A 4xx is the platform saying no: not retried (the same key would be refused again), kept
    as failed with the platform's words, until `--retry-failed` queues it again."""
    from center import store

    with store.connect(postgres.dsn) as conn:
        store.migrate(conn)
        conn.execute("INSERT INTO halls (hall_id) VALUES ('town-1')")
        event = {"id": 7, "kind": "ticket_evaluated", "at": "2026-11-23T09:30:00+08:00", "window": 2,
                 "ticket": "20261123-A007", "data": {"grade": "满意", "channel": "pad", "real_name": False,
                                                     "staff": "s2", "service": "A", "tags": [], "bad": False}}
        assert delivery.enqueue(conn, "town-1", [event, {**event, "id": 8, "kind": "ticket_finished"}]) == 1
        assert delivery.enqueue(conn, "town-1", [event]) == 0  # the same batch again: nothing twice
    platform = Province().start()
    try:
        # a platform that only knows another path: 404 for every record
        d = delivery.Deliverer(postgres.dsn, platform.url.replace("/evaluations", "/wrong"), REGIONS, workers=1,
                               idle_seconds=0.05).start()
        wait_for(lambda: deliveries(postgres.dsn)["town-1:7"][0] == "failed", 10)
        d.stop()
        with store.connect(postgres.dsn) as conn:
            attempts, error = conn.execute("SELECT attempts, last_error FROM province_deliveries").fetchone()
            assert (attempts, error[:8]) == (1, "HTTP 404")
            assert delivery.retry_failed(conn) == 1
        d = delivery.Deliverer(postgres.dsn, platform.url, REGIONS, workers=1, idle_seconds=0.05).start()
        wait_for(lambda: deliveries(postgres.dsn)["town-1:7"][0] == "acknowledged", 10)
        d.stop()
        assert platform.records["town-1:7"]["record"]["region_code"] == "500101"
    finally:
        platform.stop()


def test_the_halls_cases_are_seen_at_the_centre_with_the_halls_deadlines(tmp_path, mosquitto, postgres):
    """Real-name bad reviews of two mornings open cases at the halls (their desks, their
    calendars); one is called back at its hall that afternoon. The centre lists every case with
    the hall's own deadlines and state, and which are overdue by those deadlines."""
    from controller.backoffice.cases import CaseDesk
    from controller.config.workdays import hall_calendar
    from controller.core.callbacks import Assign, CaseRules, RecordCallback
    from tests.district import caught_up, centre_api, hall_of

    consumer = Consumer(postgres.dsn, mosquitto.host, mosquitto.port).start()
    halls = town_halls(tmp_path, mosquitto, batch_events=50)
    try:
        run_mornings(halls)
        day, _ = halls["town-1"]
        ctrl, _ = open_hall(day.hall, tmp_path / "town-1", ManualClock(day.clock() + dt.timedelta(hours=3)),
                            durable=False)
        try:
            desk = CaseDesk(ctrl, hall_calendar(None), CaseRules.from_rules(day.hall.rules))
            worked = desk.list()[0]
            officer = next(iter(day.hall.staff))
            desk.act(worked.id, Assign(officer), "staff:" + officer)
            desk.act(worked.id, RecordCallback(True, "已致电说明"), "staff:" + officer)
            own = desk.list()
        finally:
            ctrl.store.close()
        with centre_api(postgres.dsn) as api:
            for n in halls:
                wait_for(lambda n=n: caught_up(api, n, tmp_path / n / "hall.sqlite3"), 30)
            listed = api.get("/api/v1/cases", params={"hall": "town-1"}).json()["cases"]
            assert {c["case"] for c in listed} == {c.id for c in own}
            assert len(listed) > 0 and all(c["kind"] == "bad_review" for c in listed)
            for c in own:
                shown = next(s for s in listed if s["case"] == c.id)
                assert shown["due"] == {"callback_due": c.callback_due.isoformat(),
                                        "rectify_due": c.rectify_due.isoformat()}
                assert (shown["state"], shown["ticket"], shown["window"], shown["staff"], shown["grade"]) == (
                    str(c.state), c.ticket_id, c.window, c.staff_id, c.grade)
            called = next(s for s in listed if s["case"] == worked.id)
            assert called["state"] == "called_back" and called["callbacks"]["count"] == 1
            assert called["callbacks"]["reached"] is True
            # by the centre's clock (days after these mornings) every deadline of town-1 has passed,
            # the called-back case's rectification too
            assert hall_of(api, "town-1")["overdue_cases"] == len(own)
            # the day after every callback deadline: the others are overdue for their callback,
            # the called-back one only once its rectification is due
            after_callbacks = max(c.callback_due for c in own) + dt.timedelta(minutes=1)
            late = api.get("/api/v1/cases", params={"hall": "town-1", "overdue": "true",
                                                    "at": after_callbacks.isoformat()}).json()["cases"]
            assert {c["case"] for c in late} == {c.id for c in own} - {worked.id}
            assert all(c["overdue"] == ["callback_due"] for c in late)
            on_time = api.get("/api/v1/cases", params={"overdue": "false", "at": after_callbacks.isoformat()})
            assert worked.id in {c["case"] for c in on_time.json()["cases"]}
            assert api.get("/api/v1/cases", params={"state": "called_back"}).json()["cases"] == [called]
            # both halls' cases, from both halls' logs
            assert {c["hall_id"] for c in api.get("/api/v1/cases").json()["cases"]} == set(halls)
            bad = api.get("/api/v1/cases", params={"at": "yesterday"})
            assert bad.status_code == 422 and bad.json()["error"] == "invalid_time"
    finally:
        for _, shipper in halls.values():
            shipper.stop()
        consumer.stop()
