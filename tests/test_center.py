"""The district centre (区县政务服务管理办公室), accepted: halls ship their event logs over a real
Mosquitto to a centre writing into a real PostgreSQL (a cluster of the test's own), and the centre
ends up with every event of every hall exactly once, in order, through a cut link and restarts."""

from __future__ import annotations

import textwrap

import psycopg

from center.consumer import Consumer
from controller.runtime.clock import ManualClock
from tests.halls import at, small_hall
from tests.server import HallProcess, running_hall, wait_for
from vocabulary import SYSTEM_DEFAULT, by_label
from tests.district import (
    PHONE, assert_same_log, caught_up, centre_api, districtctl_run, hall_log, hall_of, held, id_number, link,
    run_mornings, serve_a_while, town_halls,
)


def test_two_town_halls_morning_reaches_the_centre_once_each_and_in_order(tmp_path, mosquitto, postgres):
    """Two halls' mornings, shipped as they happen, into a centre of two consumers sharing the
    subscription (so batches of one hall land out of order and on both)."""
    consumers = [Consumer(postgres.dsn, mosquitto.host, mosquitto.port, name=str(i), max_messages=3).start()
                 for i in (1, 2)]
    # small batches: a morning is many messages, several in flight at once
    halls = town_halls(tmp_path, mosquitto, batch_events=20)
    try:
        run_mornings(halls)  # both halls' mornings at once, shipped as they happen
        with centre_api(postgres.dsn) as api:
            for n in halls:
                db = tmp_path / n / "hall.sqlite3"
                wait_for(lambda n=n, db=db: caught_up(api, n, db), 30)
                own = hall_log(db)
                assert len(own) > 200  # a real morning: tickets, calls, grades, cases
                assert held(api, n) == own  # every event, once, in the hall's order, as the hall has it
                assert hall_of(api, n)["chain"]["state"] == "ok"  # its hash chain verified, every link
                view = hall_of(api, n)
                wait_for(lambda n=n: hall_of(api, n)["lag_events"] == 0, 5)
                assert hall_of(api, n)["link"]["state"] == "online"
                graded = [e for e in own if e["kind"] == "ticket_evaluated" and e["data"]["channel"] != SYSTEM_DEFAULT]
                satisfied = sum(not by_label(e["data"]["grade"]).is_bad for e in graded)
                assert view["satisfaction"] == {"evaluated": len(graded), "satisfied": satisfied,
                                                "rate": round(satisfied / len(graded), 4)}
                assert view["day"] == "2026-11-23"
            with psycopg.connect(postgres.dsn) as conn:  # nothing twice, nothing left over
                assert conn.execute("SELECT count(*) FROM hall_spans").fetchone()[0] == 0
            assert all(c.committed > 0 for c in consumers)  # both took their share
    finally:
        for _, shipper in halls.values():
            shipper.stop()
        for c in consumers:
            c.stop()
    # the clean stop said so; the hall's events are all there still
    with centre_api(postgres.dsn) as api:
        wait_for(lambda: hall_of(api, "town-1")["link"]["state"] == "offline", 5)


def test_a_cut_link_loses_nothing_and_doubles_nothing_through_broker_and_centre_restarts(
        tmp_path, mosquitto, postgres):
    """The district link is cut while two halls serve; when it returns the backlog drains, and
    the broker (which forgets everything: no persistence) and the centre restart mid-drain."""
    consumer = Consumer(postgres.dsn, mosquitto.host, mosquitto.port, max_messages=1).start()
    clock_1, clock_2 = ManualClock(at("09:00")), ManualClock(at("09:00"))
    # two events a message and few in flight: the drain takes many round trips
    settings = {n: link(n, mosquitto, batch_events=2, window_events=10) for n in ("hall-1", "hall-2")}
    with running_hall(small_hall(), tmp_path / "hall-1", clock_1, federation=settings["hall-1"]) as h1, \
            running_hall(small_hall(), tmp_path / "hall-2", clock_2, federation=settings["hall-2"]) as h2, \
            centre_api(postgres.dsn) as api:
        halls = {"hall-1": h1, "hall-2": h2}
        dbs = {n: tmp_path / n / "hall.sqlite3" for n in halls}
        for h in halls.values():
            serve_a_while(h, 12)
        for n in halls:
            wait_for(lambda n=n: caught_up(api, n, dbs[n]), 30)
        before_cut = {n: hall_of(api, n)["last_event_id"] for n in halls}

        mosquitto.stop()  # the WAN link is down
        for h in halls.values():
            h.clock.advance(minutes=30)
            serve_a_while(h, 90, pause=True)  # the halls serve fully meanwhile
        backlog = {n: hall_log(dbs[n])[-1]["id"] - before_cut[n] for n in halls}
        assert min(backlog.values()) > 100

        mosquitto.start()  # back: the backlog drains...
        wait_for(lambda: all(hall_of(api, n)["last_event_id"] > before_cut[n] for n in halls), 30)
        views = {n: hall_of(api, n) for n in halls}
        mid_drain = {n: v["last_event_id"] for n, v in views.items()}
        for v in views.values():  # the heartbeat came first: the centre knows how far behind it is
            assert v["lag_events"] == v["link"]["hall_last_event_id"] - v["last_event_id"]
            assert v["lag_seconds_at_most"] is not None and v["lag_seconds_at_most"] >= 0
        consumer.stop()  # ...and the centre and the broker restart in the middle of it
        mosquitto.restart()
        consumer = Consumer(postgres.dsn, mosquitto.host, mosquitto.port, name="2", max_messages=1).start()
        assert any(mid_drain[n] < before_cut[n] + backlog[n] for n in halls), "drained before the restart"

        for n in halls:
            wait_for(lambda n=n: caught_up(api, n, dbs[n]), 60)
            assert_same_log(api, n, dbs[n])
            assert hall_of(api, n)["chain"]["state"] == "ok"  # resent batches, all as the first time
            with halls[n].client() as c:
                own = c.get("/api/v1/hall", headers=halls[n].login("boss", None)).json()
            wait_for(lambda n=n: hall_of(api, n)["link"]["state"] == "online", 10)
            wait_for(lambda n=n: hall_of(api, n)["lag_events"] == 0, 10)
            view = hall_of(api, n)
            assert view["lag_seconds_at_most"] == 0
            # the hall's floor as the centre folded it from the events
            assert view["queues"] == {q["service"]: q["waiting"] for q in own["queues"] if q["waiting"]}
            assert view["windows_open"] == [w["number"] for w in own["windows"] if w["state"] == "open"]
            assert view["windows_paused"] == [w["number"] for w in own["windows"] if w["state"] == "paused"]
        with psycopg.connect(postgres.dsn) as conn:
            dupes = conn.execute("SELECT count(*) - count(DISTINCT (hall_id, event_id)) FROM hall_events").fetchone()
            assert dupes[0] == 0
    consumer.stop()


def test_hallctl_run_ships_to_districtctl_run_across_a_crash_and_no_id_number_or_phone_leaves_the_hall(
        tmp_path, mosquitto, postgres):
    """The two commands of a district, as children: the demo hall (`hallctl run`, its hall file
    with [federation]) and the centre (`districtctl run`). Real-name tickets with a phone reach
    the centre masked; the hall is killed (SIGKILL), its link shows offline, and after its
    restart it goes on from the centre's mark."""
    hall = HallProcess(tmp_path / "hall", "--simulate", extra_config=textwrap.dedent(f"""
        [federation]
        hall_id = "demo-1"
        host = "{mosquitto.host}"
        port = {mosquitto.port}
        """))
    (tmp_path / "hall").mkdir()
    db = tmp_path / "hall" / "data" / "hall.sqlite3"
    with districtctl_run(postgres, mosquitto) as centre:
        hall.start()
        try:
            with hall.client() as api:
                for n in range(3):
                    r = api.post("/api/v1/kiosks/entrance/tickets",
                                 json={"service": "K", "id_number": id_number(n), "phone": PHONE})
                    assert r.status_code == 201, r.text
            wait_for(lambda: caught_up(centre, "demo-1", db), 30)
            assert hall_of(centre, "demo-1")["queues"] == {"K": 3}
            hall.kill()
            wait_for(lambda: hall_of(centre, "demo-1")["link"]["state"] == "offline", 10)  # its will
            hall.start(same_port=True)
            with hall.client() as api:
                assert api.post("/api/v1/kiosks/entrance/tickets", json={"service": "K"}).status_code == 201
            wait_for(lambda: caught_up(centre, "demo-1", db), 30)
            assert_same_log(centre, "demo-1", db)
            assert hall_of(centre, "demo-1")["link"]["state"] == "online"
            assert hall_of(centre, "demo-1")["queues"] == {"K": 4}
        finally:
            hall.stop()
    with psycopg.connect(postgres.dsn) as conn:
        everything = conn.execute("SELECT string_agg(data::text || coalesce(ticket, ''), ' ') FROM hall_events"
                                  ).fetchone()[0]
    assert "real_name" in everything  # the tickets are there, and said real-name...
    for n in range(3):  # ...and whose, not
        assert id_number(n)[:-1] not in everything
    assert PHONE not in everything


def test_a_whole_morning_without_a_link_drains_through_a_broker_and_centre_restart(tmp_path, mosquitto, postgres):
    """The district link is down for the halls' whole morning; they serve it all. When it is back
    the backlog drains, and the broker (forgetting everything) and the centre restart in the
    middle of the drain: every event arrives, once, in order."""
    mosquitto.stop()
    halls = town_halls(tmp_path, mosquitto, batch_events=3, window_events=12)
    consumer = Consumer(postgres.dsn, mosquitto.host, mosquitto.port, max_messages=1).start()
    try:
        run_mornings(halls)
        with centre_api(postgres.dsn) as api:
            assert api.get("/api/v1/halls").json()["halls"] == []  # nothing reached the centre
            dbs = {n: tmp_path / n / "hall.sqlite3" for n in halls}
            last = {n: hall_log(db)[-1]["id"] for n, db in dbs.items()}
            mosquitto.start()
            wait_for(lambda: all(hall_of(api, n).get("last_event_id", 0) > 0 for n in halls), 30)
            mid_drain = {n: hall_of(api, n)["last_event_id"] for n in halls}
            consumer.stop()
            mosquitto.restart()
            consumer = Consumer(postgres.dsn, mosquitto.host, mosquitto.port, name="2", max_messages=1).start()
            assert any(mid_drain[n] < last[n] for n in halls), "drained before the restart"
            for n, db in dbs.items():
                wait_for(lambda db=db, n=n: caught_up(api, n, db), 60)
                assert_same_log(api, n, db)
    finally:
        for _, shipper in halls.values():
            shipper.stop()
        consumer.stop()
