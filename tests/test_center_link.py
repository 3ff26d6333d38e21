"""The district link's parts: the mark the hall keeps, TLS with accounts and an ACL, a black-holed
link, batches out of order or lying, the hall file's [federation] and `hallctl run`'s refusals."""

from __future__ import annotations

import socket
import subprocess
import textwrap
import time

import psycopg
import pytest

from center import store
from center.api import hall_view
from center.consumer import Consumer
from controller.config.settings import FederationSettings
from controller.federation.shipper import Shipper
from controller.runtime.clock import ManualClock
from tests.halls import at, small_hall
from tests.server import free_port, running_hall, wait_for
from vocabulary.district import Batch
from tests.district import (
    assert_same_log, batch, caught_up, centre_api, hall_log, hall_of, held, link, serve_a_while, tls_files,
)


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
                   "topic read district/+/chain\n"
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
                # the shipper's audit came through the centre's account too, the chain intact
                assert hall_of(api, "t1")["chain"]["audited_through"] is not None
                assert hall_of(api, "t1")["chain"]["state"] == "ok"
            finally:
                forger.loop_stop()
                forger.disconnect()
    finally:
        consumer.stop()


def test_hallctl_run_refuses_to_start_without_the_district_password_its_ca_or_with_a_bad_district(
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
    monkeypatch.setenv("DEMO_DISTRICT_PASSWORD", "pw")
    with toml.open("a", encoding="utf-8") as f:
        f.write(f'tls = true\nca_file = "{tmp_path / "no-such-ca.pem"}"\n')
    assert main(["run", "--config", str(toml), "--data-dir", str(tmp_path / "data")]) == 2
    assert "federation.ca_file" in capsys.readouterr().err
    assert main(["run", "--config", str(DEMO_CONFIG), "--data-dir", str(tmp_path / "data"),
                 "--district", "大厅@127.0.0.1:1883"]) == 2
    assert "--district" in capsys.readouterr().err
    assert not (tmp_path / "data").exists()  # nothing started


def test_the_centres_database_away_for_a_while_loses_nothing(tmp_path, mosquitto, postgres):
    """PostgreSQL stops while a hall serves: the API says so (503), the consumer keeps the
    batches unacknowledged and tries again; when the database is back, every event is there once."""
    consumer = Consumer(postgres.dsn, mosquitto.host, mosquitto.port).start()
    db = tmp_path / "hall-p" / "hall.sqlite3"
    try:
        with running_hall(small_hall(), tmp_path / "hall-p", ManualClock(at("09:00")),
                          federation=link("hall-p", mosquitto)) as h, centre_api(postgres.dsn) as api:
            serve_a_while(h, 6)
            wait_for(lambda: caught_up(api, "hall-p", db), 30)
            postgres.stop()
            r = api.get("/api/v1/halls")
            assert (r.status_code, r.json()["error"]) == (503, "database_unavailable")
            serve_a_while(h, 12, pause=True)
            postgres.start()
            wait_for(lambda: caught_up(api, "hall-p", db), 30)
            assert_same_log(api, "hall-p", db)
    finally:
        consumer.stop()
