"""The district centre (区县政务服务管理办公室): halls ship their event logs over a real Mosquitto
to a centre writing into a real PostgreSQL (a cluster of the test's own), and the centre ends
up with every event of every hall exactly once, in order, through a cut link and restarts."""

from __future__ import annotations

import datetime as dt
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import psycopg
import pytest
import uvicorn

from center import store
from center.api import create_app, hall_view
from center.consumer import Consumer
from controller.assembly import open_hall
from controller.config.settings import FederationSettings
from controller.federation.shipper import Shipper
from controller.runtime.clock import ManualClock
from controller.store.outbox import Outbox
from sim.hallday import HallDay
from sim.scenario import load_scenario
from tests.halls import at, small_hall
from tests.server import REPO, HallProcess, free_port, running_hall, wait_for
from vocabulary import SYSTEM_DEFAULT, by_label
from vocabulary.district import Batch

# A morning of a small town hall (便民服务中心), as the hall-day simulator's tests use it.
MORNING = """
[scenario]
name = "town-morning"
day = 2026-11-23
seed = {seed}

[generate]
name = "{name}"
sessions = ["09:00-11:00"]
rules = {{ ticket_cutoff_minutes = 15 }}

[[generate.windows]]
count = 2
services = ["A"]
[[generate.windows]]
count = 2
services = ["B", "A"]

[arrivals]
real_name_share = 0.5
priority_share = 0.05

[profiles]
morning = {{ "08:45" = 1.0, "09:30" = 2.0, "10:15" = 0.5, "10:45" = 0 }}

[[services]]
prefix = "A"
tickets = 40
service_minutes = 5
spread = 0.5
no_show_share = 0.05
transfer_share = 0.05
transfer_to = ["B"]

[[services]]
prefix = "B"
tickets = 20
service_minutes = 8
spread = 0.5

[evaluation]
share = 0.9

[evaluation.grades]
very_satisfied = 0.5
satisfied = 0.2
basically_satisfied = 0.1
dissatisfied = 0.1
very_dissatisfied = 0.1
"""


def link(hall_id: str, broker, **kw) -> FederationSettings:
    """A hall's [federation] for the test's broker; quick heartbeats and resends."""
    return FederationSettings(hall_id, broker.host, broker.port,
                              **{"heartbeat_seconds": 0.5, "resend_seconds": 3.0, **kw})


@contextmanager
def centre_api(dsn: str):
    """The centre's web API on a free loopback port (uvicorn, as `districtctl run` serves it)."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(dsn), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, 10)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            yield client
    finally:
        server.should_exit = True
        thread.join(10)


def held(api: httpx.Client, hall_id: str) -> list[dict]:
    """Every event of the hall the centre holds, through its API, page by page."""
    out: list[dict] = []
    after = 0
    while True:
        page = api.get(f"/api/v1/halls/{hall_id}/events", params={"after": after, "limit": 200}).json()
        if not page["events"]:
            return out
        out += page["events"]
        after = page["next_after"]


def hall_of(api: httpx.Client, hall_id: str) -> dict:
    return next((h for h in api.get("/api/v1/halls").json()["halls"] if h["hall_id"] == hall_id), {})


def hall_log(db: Path) -> list[dict]:
    outbox = Outbox(db)
    try:
        return outbox.after(0, 10**7)
    finally:
        outbox.close()


def assert_same_log(api: httpx.Client, hall_id: str, db: Path) -> None:
    """What the centre holds of the hall is the hall's log up to the last event it holds: every
    event, once, in order, as the hall has it (a running hall may have written more since)."""
    theirs = held(api, hall_id)
    assert theirs == [e for e in hall_log(db) if e["id"] <= theirs[-1]["id"]]


def caught_up(api: httpx.Client, hall_id: str, db: Path) -> bool:
    last = hall_log(db)[-1]["id"]
    return hall_of(api, hall_id).get("last_event_id") == last


def town_halls(tmp_path: Path, broker, **settings) -> dict[str, tuple[HallDay, Shipper]]:
    """Two town halls of the hall-day simulator, each with its shipper started."""
    halls = {}
    for n, seed in (("town-1", 7), ("town-2", 11)):
        scenario_path = tmp_path / f"{n}.toml"
        scenario_path.write_text(textwrap.dedent(MORNING.format(seed=seed, name=n)), encoding="utf-8")
        day = HallDay(load_scenario(scenario_path), data_dir=tmp_path / n)
        ctrl, _ = open_hall(day.hall, tmp_path / n, day.clock, durable=False)  # the hall's database, made
        ctrl.store.close()
        shipper = Shipper(link(n, broker, **settings), tmp_path / n / "hall.sqlite3", tmp_path / n,
                          day.clock).start()
        halls[n] = (day, shipper)
    return halls


def run_mornings(halls: dict[str, tuple[HallDay, Shipper]]) -> None:
    records = {}
    days = [threading.Thread(target=lambda n=n, d=d: records.update({n: d.run()})) for n, (d, _) in halls.items()]
    for t in days:
        t.start()
    for t in days:
        t.join(120)
    assert records.keys() == halls.keys()  # each morning ran to its end


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


def serve_a_while(hall, tickets: int, pause: bool = False) -> None:
    """Citizens take `tickets` tickets; windows 1 and 2 call and finish some; window 2 pauses."""
    with hall.client() as api:
        s1, s2 = hall.login("s1", 1), hall.login("s2", 2)
        for i in range(tickets):
            r = api.post("/api/v1/tickets", json={"service": "AB"[i % 2]})
            assert r.status_code == 201, r.text
            if i % 3 == 2:
                for staff, window in ((s1, 1), (s2, 2)):
                    if api.post(f"/api/v1/windows/{window}/call", headers=staff).status_code == 200:
                        hall.clock.advance(minutes=1)
                        assert api.post(f"/api/v1/windows/{window}/finish", headers=staff).status_code == 200
        if pause:
            assert api.post("/api/v1/windows/2/pause", headers=s2,
                            json={"reason": "去后台复印", "minutes": 10}).status_code == 200


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


def test_the_hall_keeps_the_centres_mark_and_resumes_from_it_not_from_the_broker(tmp_path, mosquitto, postgres):
    """The centre's acknowledgement is the mark: a shipper restarted while the broker forgot its
    retained ack resumes from the mark it kept, and what the centre holds does not change."""
    consumer = Consumer(postgres.dsn, mosquitto.host, mosquitto.port).start()
    clock = ManualClock(at("09:00"))
    data = tmp_path / "hall-9"
    settings = link("hall-9", mosquitto)
    try:
        with running_hall(small_hall(), data, clock, federation=settings) as h, centre_api(postgres.dsn) as api:
            serve_a_while(h, 6)
            wait_for(lambda: caught_up(api, "hall-9", data / "hall.sqlite3"), 30)
            mark = hall_of(api, "hall-9")["last_event_id"]
        assert (data / "federation-acked.json").read_text() == f'{{"hall": "hall-9", "acked": {mark}}}'
        mosquitto.restart()  # forgets the retained ack
        shipper = Shipper(settings, data / "hall.sqlite3", data).start()
        try:
            assert shipper.acked == mark and shipper.sent == mark
            wait_for(lambda: shipper.connected, 10)
            with psycopg.connect(postgres.dsn) as conn:
                assert conn.execute("SELECT count(*) FROM hall_events").fetchone()[0] == mark
                assert conn.execute("SELECT count(*) FROM hall_spans").fetchone()[0] == 0
        finally:
            shipper.stop()
    finally:
        consumer.stop()


def test_the_centre_drops_a_batch_that_lies_about_its_hall_and_goes_on(tmp_path, mosquitto, postgres):
    """A message on one hall's topic naming another hall, not JSON, or holding what PostgreSQL
    cannot store is dropped; the real batches are written."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from vocabulary import district

    consumer = Consumer(postgres.dsn, mosquitto.host, mosquitto.port).start()
    liar = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="liar")
    liar.connect(mosquitto.host, mosquitto.port)
    liar.loop_start()
    try:
        event = {"id": 1, "kind": "day_started", "at": "2026-11-23T00:00:00+08:00", "window": None,
                 "ticket": None, "data": {"day": "2026-11-23"}}
        wait_for(lambda: consumer.client.is_connected(), 10)
        time.sleep(0.2)  # the consumer's subscription is made on connect
        liar.publish(district.events_topic("hall-a"), district.Batch("hall-b", 0, 1, (event,)).encode(), qos=1)
        liar.publish(district.events_topic("hall-a"), b"\xff not json", qos=1)
        liar.publish(district.events_topic("hall-a"), district.Batch("hall-a", 0, 1, (event,)).encode(), qos=1)
        nul = {**event, "id": 2, "kind": "patrol_recorded", "data": {"findings": "\u0000"}}
        liar.publish(district.events_topic("hall-a"), district.Batch("hall-a", 1, 2, (nul,)).encode(), qos=1)
        later = {**event, "id": 3, "kind": "day_started"}
        liar.publish(district.events_topic("hall-a"), district.Batch("hall-a", 2, 3, (later,)).encode(), qos=1)
        with centre_api(postgres.dsn) as api:
            # a NUL PostgreSQL cannot store: dropped, the hall held at 1, its next batch kept
            wait_for(lambda: [e["id"] for e in held(api, "hall-a")] == [1, 3], 10)
            assert hall_of(api, "hall-a").get("last_event_id") == 1
            assert [h["hall_id"] for h in api.get("/api/v1/halls").json()["halls"]] == ["hall-a"]
            r = api.get("/api/v1/halls/hall-b/events")
            assert (r.status_code, r.json()["error"]) == (404, "unknown_hall")
    finally:
        liar.loop_stop()
        consumer.stop()



def test_a_hall_whose_district_link_is_a_black_hole_serves_fully(tmp_path):
    """The district's address answers nothing (a firewall dropping the link's packets): the
    shipper waits on its own thread, and the hall takes, calls and finishes tickets as ever."""
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(8)  # accepts the connection, never says a word
    settings = FederationSettings("hall-h", "127.0.0.1", hole.getsockname()[1])
    try:
        with running_hall(small_hall(), tmp_path / "h", ManualClock(at("09:00")), federation=settings) as h:
            serve_a_while(h, 30, pause=True)
            with h.client() as api:
                assert api.get("/api/v1/health").status_code == 200
                view = api.get("/api/v1/hall", headers=h.login("boss", None)).json()
            assert sum(q["waiting"] for q in view["queues"]) > 0
            assert not (tmp_path / "h" / "federation-acked.json").exists()  # nothing acknowledged
    finally:
        hole.close()


def batch(hall: str, after: int, ids: list[int]) -> Batch:
    return Batch(hall, after, ids[-1] if ids else after, tuple(
        {"id": i, "kind": "ticket_issued", "at": f"2026-11-23T09:{i:02d}:00+08:00", "window": None,
         "ticket": f"20261123-A{i:03d}", "data": {"service": "A"}} for i in ids))


def test_batches_out_of_order_twice_and_across_a_gap_in_the_ids_move_the_mark_only_over_what_joins(postgres):
    """The centre acknowledges the highest mark up to which it holds everything: a later batch
    first holds the mark back, a repeated one changes nothing, and ids the hall's log skipped
    (a batch says what stretch it covers) do not stop it."""
    with psycopg.connect(postgres.dsn, autocommit=True) as conn:
        store.migrate(conn)
        assert store.ingest(conn, [batch("h", 3, [4, 5, 6])], {}) == {"h": 0}
        assert store.ingest(conn, [batch("h", 3, [4, 5, 6])], {}) == {"h": 0}
        assert store.ingest(conn, [batch("h", 0, [1, 2, 3]), batch("h", 0, [1, 2, 3])], {}) == {"h": 6}
        assert store.ingest(conn, [batch("h", 9, [12])], {}) == {"h": 6}
        assert store.ingest(conn, [batch("h", 6, [7, 9])], {}) == {"h": 12}  # 8, 10, 11: not in the log
        assert store.ingest(conn, [batch("h", 0, [1, 2, 3])], {}) == {"h": 12}
        ids = [r[0] for r in conn.execute("SELECT event_id FROM hall_events ORDER BY event_id")]
        assert ids == [1, 2, 3, 4, 5, 6, 7, 9, 12]
        floor = conn.execute("SELECT floor FROM halls").fetchone()[0]
        assert len(floor["waiting"]) == 9
        paper = {"id": 13, "kind": "device_health", "at": "2026-11-23T10:00:00+08:00", "window": None,
                 "ticket": None, "data": {"device": "kiosk-printer", "state": "fault", "detail": "缺纸"}}
        store.ingest(conn, [Batch("h", 12, 13, (paper,))], {})
        view = hall_view(store.halls(conn)[0])
        assert view["device_faults"] == [{"device": "kiosk-printer", "state": "fault", "detail": "缺纸",
                                          "since": "2026-11-23T10:00:00+08:00"}]
        assert (view["last_event_id"], view["queues"], view["link"]["state"]) == (13, {"A": 9}, "unknown")


def test_a_hall_file_names_its_district():
    from controller.config.hall import ConfigError, parse_config
    from tests.test_config import minimal_hall_dict

    data = minimal_hall_dict()
    assert parse_config(data).federation is None  # no [federation]: the hall stands alone
    data["federation"] = {"hall_id": "500101-main", "host": "district.example", "username": "hall-500101",
                          "password_env": "HALL_DISTRICT_PASSWORD", "tls": True}
    f = parse_config(data).federation
    assert (f.hall_id, f.host, f.port, f.username, f.tls) == ("500101-main", "district.example", 8883,
                                                              "hall-500101", True)
    for bad, key in (({"hall_id": "大厅 1"}, "federation.hall_id"), ({"host": ""}, "federation.host"),
                     ({"password": "x"}, "federation.password"), ({"ca_file": "ca.pem", "tls": False},
                                                                    "federation.ca_file")):
        data["federation"] = {"hall_id": "h1", "host": "d", "username": "u", "password_env": "P", **bad}
        with pytest.raises(ConfigError) as e:
            parse_config(data)
        assert e.value.key == key


PHONE = "13800138000"


def id_number(n: int) -> str:
    """A resident ID number (GB 11643, its check digit right) born 1949-12-31, the n-th of the day."""
    body = f"110105194912310{n:02d}"
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    return body + "10X98765432"[sum(int(d) * w for d, w in zip(body, weights, strict=True)) % 11]


@contextmanager
def districtctl_run(postgres, broker):
    """`districtctl run` as a child process, as a district runs it; its API's client."""
    port = free_port()
    log = open(Path(postgres.directory) / "districtctl.log", "ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "center.cli", "run", "--database", postgres.dsn,
         "--broker", f"{broker.host}:{broker.port}", "--port", str(port)],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=log, stderr=subprocess.STDOUT)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as api:
            def up() -> bool:
                assert proc.poll() is None, Path(log.name).read_text()
                try:
                    return api.get("/api/v1/halls").status_code == 200
                except httpx.TransportError:
                    return False
            wait_for(up, 30)
            yield api
    finally:
        proc.terminate()
        proc.wait(15)
        log.close()


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


def tls_files(directory: Path) -> tuple[Path, Path, Path]:
    """A district CA and the broker's certificate for 127.0.0.1 signed by it: (ca, cert, key)."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    def name(text: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])

    now = dt.datetime.now(dt.timezone.utc)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("区县 district CA")).issuer_name(name("区县 district CA"))
          .public_key(ca_key.public_key()).serial_number(1).not_valid_before(now - dt.timedelta(hours=1))
          .not_valid_after(now + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    cert = (x509.CertificateBuilder().subject_name(name("district broker")).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(2).not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = directory / "ca.pem", directory / "broker.pem", directory / "broker.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


def test_a_hall_ships_over_tls_with_its_own_account_and_writes_only_its_own_topics(
        tmp_path, make_mosquitto, postgres, monkeypatch):
    """The district broker as a district runs it: TLS for the halls (over the WAN), an account
    each, an ACL. The hall's shipper logs in with the password from its environment variable,
    checks the broker's certificate against the district's CA, and is heard; another hall's
    account cannot write this hall's events."""
    ca, cert, key = tls_files(tmp_path)
    passwd, acl = tmp_path / "passwd", tmp_path / "acl"
    for i, account in enumerate(("hall-t1", "hall-t2", "centre")):
        subprocess.run(["mosquitto_passwd", "-b", *(["-c"] if i == 0 else []), str(passwd), account,
                        f"pw-{account}"], check=True, capture_output=True)
    acl.write_text("user hall-t1\ntopic write district/t1/#\ntopic read district/t1/ack\n"
                   "user hall-t2\ntopic write district/t2/#\ntopic read district/t2/ack\n"
                   "user centre\ntopic read district/+/events\ntopic read district/+/link\n"
                   "topic write district/+/ack\n")
    tls_port = free_port()
    broker = make_mosquitto(f"allow_anonymous false\npassword_file {passwd}\nacl_file {acl}\n"
                            f"listener {tls_port} 127.0.0.1\ncafile {ca}\ncertfile {cert}\nkeyfile {key}\n")
    consumer = Consumer(postgres.dsn, broker.host, broker.port, username="centre", password="pw-centre").start()
    monkeypatch.setenv("T1_DISTRICT_PASSWORD", "pw-hall-t1")
    settings = FederationSettings("t1", "127.0.0.1", tls_port, username="hall-t1",
                                  password_env="T1_DISTRICT_PASSWORD", tls=True, ca_file=str(ca),
                                  heartbeat_seconds=0.5)
    try:
        with running_hall(small_hall(), tmp_path / "t1", ManualClock(at("09:00")), federation=settings) as h, \
                centre_api(postgres.dsn) as api:
            serve_a_while(h, 6)
            wait_for(lambda: caught_up(api, "t1", tmp_path / "t1" / "hall.sqlite3"), 30)
            assert_same_log(api, "t1", tmp_path / "t1" / "hall.sqlite3")
            # hall-t2 writes t1's next event first, a forged 非常满意: the broker drops it (ACL), so the
            # centre takes t1's own event with that id, not the forgery
            import paho.mqtt.client as mqtt
            from paho.mqtt.enums import CallbackAPIVersion

            from vocabulary import district

            forger = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="forger", protocol=mqtt.MQTTv5)
            forger.username_pw_set("hall-t2", "pw-hall-t2")
            forger.tls_set(ca_certs=str(ca))
            forger.connect("127.0.0.1", tls_port)
            forger.loop_start()
            try:
                last = hall_log(tmp_path / "t1" / "hall.sqlite3")[-1]["id"]
                forged = {"id": last + 1, "kind": "ticket_evaluated", "at": "2026-11-23T09:30:00+08:00",
                          "window": 1, "ticket": "20261123-A001",
                          "data": {"grade": "非常满意", "channel": "pad", "real_name": False, "staff": "s1",
                                   "service": "A", "tags": [], "bad": False}}
                info = forger.publish(district.events_topic("t1"),
                                      district.Batch("t1", last, last + 1, (forged,)).encode(), qos=1)
                info.wait_for_publish(5)
                time.sleep(0.5)  # the consumer would have had it by now
                serve_a_while(h, 3)  # t1's own events, its id last + 1 among them
                wait_for(lambda: caught_up(api, "t1", tmp_path / "t1" / "hall.sqlite3"), 30)
                assert_same_log(api, "t1", tmp_path / "t1" / "hall.sqlite3")
                assert held(api, "t1")[last]["kind"] != "ticket_evaluated"
            finally:
                forger.loop_stop()
                forger.disconnect()
    finally:
        consumer.stop()


def test_hallctl_run_refuses_to_start_without_the_district_password_or_with_a_bad_district(
        tmp_path, monkeypatch, capsys):
    from controller.cli import main
    from tests.server import DEMO_CONFIG

    toml = tmp_path / "hall.toml"
    toml.write_text(DEMO_CONFIG.read_text(encoding="utf-8") + textwrap.dedent("""
        [federation]
        hall_id = "demo"
        host = "127.0.0.1"
        username = "hall-demo"
        password_env = "DEMO_DISTRICT_PASSWORD"
        """), encoding="utf-8")
    monkeypatch.delenv("DEMO_DISTRICT_PASSWORD", raising=False)
    assert main(["run", "--config", str(toml), "--data-dir", str(tmp_path / "data")]) == 2
    assert "federation.password_env" in capsys.readouterr().err
    assert main(["run", "--config", str(DEMO_CONFIG), "--data-dir", str(tmp_path / "data"),
                 "--district", "大厅@127.0.0.1:1883"]) == 2
    assert "--district" in capsys.readouterr().err
    assert not (tmp_path / "data").exists()  # nothing started
