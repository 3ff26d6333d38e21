"""Configuration flowing down (配置下发), accepted: the centre publishes a hall's bundle over a real
Mosquitto from a real PostgreSQL (a cluster of the test's own) to real halls served on loopback;
a staff account disabled at the centre is refused at its hall within 5 s, a bad bundle is
refused and reported and changes nothing, the bundle in use survives a restart without a link,
and versions never go backwards."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from contextlib import contextmanager

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from center.bundles import BundleDesk
from controller.config.hall import read_toml
from controller.config.tomlkeys import ConfigError
from controller.federation.bundles import BUNDLE_FILE, check, hall_document
from controller.runtime.clock import ManualClock
from tests.district import centre_api, districtctl_run, hall_log, link
from tests.halls import at, small_hall
from tests.server import REPO, HallProcess, running_hall, wait_for
from vocabulary import district

# the acceptance: a staff account disabled at the centre is refused at its hall within 5 s
STAFF_DISABLE_SECONDS = 5.0


@contextmanager
def centre(postgres, broker):
    """The centre's API with its bundle desk, on the test's broker and database."""
    desk = BundleDesk(postgres.dsn, broker.host, broker.port).start()
    try:
        with centre_api(postgres.dsn, desk) as api:
            yield api
    finally:
        desk.stop()


def health(hall) -> dict:
    with hall.client() as c:
        return c.get("/api/v1/health").json()


def in_use(hall) -> int | None:
    bundle = health(hall)["district"]["bundle"]
    return bundle and bundle["version"]


def login_status(hall, staff_id: str, window: int | None) -> int:
    with hall.client() as c:
        return c.post("/api/v1/auth/login", json={"staff_id": staff_id, "pin": "1234", "window": window}).status_code


def me_status(hall, headers: dict[str, str]) -> int:
    with hall.client(kiosk=False) as c:
        return c.get("/api/v1/auth/me", headers=headers).status_code


def said(api, hall_id: str, version: int) -> dict | None:
    """What the hall reported of `version`, as the centre stored it."""
    versions = api.get(f"/api/v1/halls/{hall_id}/bundles").json()["versions"]
    return next((v["hall"] for v in versions if v["version"] == version), None)


def test_a_staff_account_disabled_at_the_centre_is_refused_at_its_hall_within_5_s(tmp_path, mosquitto, postgres):
    """s1 is logged in at window 1 serving a citizen; the centre disables s1. Within 5 s the hall
    refuses s1's token and login, window 1 is closed and the visit is back in its queue; s2 goes
    on. The hall tells the centre, and its health and heartbeat say the version in use."""
    clock = ManualClock(at("09:00"))
    with centre(postgres, mosquitto) as api, \
            running_hall(small_hall(), tmp_path / "hall-1", clock, federation=link("hall-1", mosquitto)) as hall:
        wait_for(lambda: health(hall)["district"]["link"] == "online", 10)
        assert in_use(hall) is None  # nothing from the centre yet
        s1, s2 = hall.login("s1", 1), hall.login("s2", 2)
        with hall.client() as c:
            assert c.post("/api/v1/tickets", json={"service": "A"}).status_code == 201
            assert c.post("/api/v1/windows/1/call", headers=s1).status_code == 200
        assert me_status(hall, s1) == 200

        r = api.post("/api/v1/halls/hall-1/staff/s1/disable", json={"created_by": "区县政务办 张科长"})
        assert r.status_code == 201, r.text
        assert r.json()["version"] == 1 and r.json()["content"]["disabled_staff"] == ["s1"]

        wait_for(lambda: me_status(hall, s1) == 401, STAFF_DISABLE_SECONDS)  # the existing session ends
        assert login_status(hall, "s1", 1) == 403  # account_disabled
        assert hall.ctrl.window(1).staff_id is None  # its window closed, as the admin's disable does
        assert [t.label for t in hall.ctrl.queue("A")] == ["A001"]  # the visit back at the head
        assert me_status(hall, s2) == 200  # the others serve on
        assert in_use(hall) == 1
        applied = [e for e in hall_log(tmp_path / "hall-1" / "hall.sqlite3") if e["kind"] == "district_bundle_applied"]
        assert [e["data"] for e in applied] == [{"version": 1, "created_by": "区县政务办 张科长", "disabled": ["s1"],
                                                 "enabled": [], "restart_needed": False}]
        wait_for(lambda: (said(api, "hall-1", 1) or {}).get("state") == "applied", 10)
        assert api.get("/api/v1/halls/hall-1/bundles").json()["in_use"] == 1

        # the heartbeat carries it too
        heard: list[district.Link] = []
        listener = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        listener.on_message = lambda c, u, m: heard.append(district.Link.decode(m.payload))
        listener.connect(mosquitto.host, mosquitto.port)
        listener.subscribe(district.link_topic("hall-1"), qos=1)
        listener.loop_start()
        try:
            wait_for(lambda: any(h.bundle == 1 for h in heard), 10)
        finally:
            listener.disconnect()
            listener.loop_stop()

        # enabled again at the centre: the account may log in again (its old token stays revoked)
        assert api.post("/api/v1/halls/hall-1/staff/s1/enable", json={"created_by": "张科长"}).status_code == 201
        wait_for(lambda: login_status(hall, "s1", 1) == 200, 10)
        assert me_status(hall, s1) == 401
        assert in_use(hall) == 2


def test_a_bad_bundle_is_refused_and_reported_and_the_hall_serves_on_with_the_last_good_one(
        tmp_path, mosquitto, postgres):
    """A bundle whose window serves a service the hall does not have: the hall refuses it with
    the key, the centre stores the refusal, and nothing changes: v1 stays in use, s2 stays
    disabled, the hall issues and calls."""
    clock = ManualClock(at("09:00"))
    with centre(postgres, mosquitto) as api, \
            running_hall(small_hall(), tmp_path / "hall-1", clock, federation=link("hall-1", mosquitto)) as hall:
        assert api.post("/api/v1/halls/hall-1/staff/s2/disable", json={"created_by": "张科长"}).status_code == 201
        wait_for(lambda: in_use(hall) == 1, 10)

        # the centre checks the shape; a section no hall takes is refused there, naming the key
        r = api.post("/api/v1/halls/hall-1/bundles", json={"content": {"printers": []}, "created_by": "张科长"})
        assert r.status_code == 400 and "content.printers" in r.json()["message"]

        bad = {"windows": [{"number": 1, "name": "1号窗口", "kind": "general", "services": ["Z"]}],
               "disabled_staff": []}
        r = api.post("/api/v1/halls/hall-1/bundles", json={"content": bad, "created_by": "张科长"})
        assert r.status_code == 201 and r.json()["version"] == 2
        wait_for(lambda: said(api, "hall-1", 2) is not None, 10)
        report = said(api, "hall-1", 2)
        assert report["state"] == "refused" and report["in_use"] == 1
        assert report["key"] == "windows[0].services[0]" and "'Z'" in report["reason"]
        assert health(hall)["district"]["last_refused"]["key"] == "windows[0].services[0]"

        assert in_use(hall) == 1
        assert login_status(hall, "s2", 2) == 403  # v2 would have enabled s2: it did not
        assert json.loads((tmp_path / "hall-1" / BUNDLE_FILE).read_text())["version"] == 1
        s1 = hall.login("s1", 1)
        with hall.client() as c:
            assert c.post("/api/v1/tickets", json={"service": "A"}).status_code == 201
            assert c.post("/api/v1/windows/1/call", headers=s1).status_code == 200
        refused = list(hall.ctrl.store.db.query(
            "SELECT result, message FROM commands WHERE name = 'district_bundle'"))
        assert refused and refused[0]["result"] == "invalid_bundle"
        assert "windows[0].services[0]" in refused[0]["message"]

        # a good v3 after it is taken
        assert api.post("/api/v1/halls/hall-1/staff/s3/disable", json={"created_by": "张科长"}).status_code == 201
        wait_for(lambda: in_use(hall) == 3, 10)
        assert login_status(hall, "s3", 3) == 403 and login_status(hall, "s2", 2) == 403


def test_versions_never_go_backwards_and_a_restart_without_a_link_keeps_the_bundle(tmp_path, mosquitto, postgres):
    """v2 applied; an old v1 retained on the hall's topic afterwards (a broker's leftover, a
    replayed message) is ignored. The hall restarts with the broker gone: it uses v2 still."""
    clock = ManualClock(at("09:00"))
    data = tmp_path / "hall-1"
    settings = link("hall-1", mosquitto)
    with centre(postgres, mosquitto) as api, \
            running_hall(small_hall(), data, clock, federation=settings) as hall:
        assert api.post("/api/v1/halls/hall-1/staff/s1/disable", json={"created_by": "张科长"}).status_code == 201
        v1 = api.get("/api/v1/halls/hall-1/bundles").json()["versions"][0]
        assert api.post("/api/v1/halls/hall-1/staff/s2/disable", json={"created_by": "张科长"}).status_code == 201
        wait_for(lambda: in_use(hall) == 2, 10)
        old = district.Bundle("hall-1", 1, v1["created_at"], v1["created_by"], {"disabled_staff": []})
        replay = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        replay.connect(mosquitto.host, mosquitto.port)
        replay.loop_start()
        replay.publish(district.config_topic("hall-1"), old.encode(), qos=1, retain=True).wait_for_publish(5)
        replay.disconnect()
        replay.loop_stop()
        # and after a reconnect of the hall's link it meets it again as the retained one
        mosquitto.restart()
        wait_for(lambda: health(hall)["district"]["link"] == "online", 15)
        assert in_use(hall) == 2
        assert login_status(hall, "s1", 1) == 403 and login_status(hall, "s2", 2) == 403
    mosquitto.stop()  # no link at all
    with running_hall(small_hall(), data, ManualClock(at("09:30")), federation=settings) as hall:
        assert health(hall)["district"]["link"] == "offline"
        assert in_use(hall) == 2
        assert login_status(hall, "s1", 1) == 403 and login_status(hall, "s2", 2) == 403
        assert login_status(hall, "s3", 3) == 200


def test_districtctl_publishes_and_disables_and_hallctl_run_takes_the_sections_at_its_next_start(
        tmp_path, mosquitto, postgres):
    """The district's own commands: `districtctl run`, `districtctl bundle` (a service renamed
    for the demo hall) and `districtctl disable-staff`; the hall is `hallctl run` with
    [federation]. The staff disable takes at once; the renamed service at the hall's next start,
    also when the link is gone by then."""
    hall = HallProcess(tmp_path / "hall", extra_config=textwrap.dedent(f"""
        [federation]
        hall_id = "demo-1"
        host = "{mosquitto.host}"
        port = {mosquitto.port}
        """))
    (tmp_path / "hall").mkdir()
    services = read_toml(REPO / "config" / "demo-hall.toml")["services"]
    services[0] = {**services[0], "name": "社保医保（区县统一）"}
    bundle_file = tmp_path / "bundle.json"
    bundle_file.write_text(json.dumps({"services": services}, ensure_ascii=False), encoding="utf-8")

    def districtctl(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "center.cli", *args, "--centre", str(centre.base_url)],
                              cwd=REPO, capture_output=True, text=True, timeout=60)

    def service_names() -> dict[str, str]:
        with hall.client() as c:
            return {s["service"]: s["name"] for s in c.get("/api/v1/services").json()}

    with districtctl_run(postgres, mosquitto) as centre:
        hall.start()
        try:
            wait_for(lambda: health(hall)["district"]["link"] == "online", 15)
            assert login_status(hall, "chenjing", 1) == 200
            done = districtctl("bundle", "demo-1", str(bundle_file), "--by", "张科长")
            assert done.returncode == 0, done.stderr
            assert "v1" in done.stdout
            wait_for(lambda: in_use(hall) == 1, 10)
            assert service_names()["A"] == "社保医保"  # the running day keeps its services
            applied = [e["data"] for e in hall_log(hall.data / "hall.sqlite3")
                       if e["kind"] == "district_bundle_applied"]
            assert applied[-1]["version"] == 1 and applied[-1]["restart_needed"] is True
            done = districtctl("disable-staff", "demo-1", "chenjing", "--by", "张科长")
            assert done.returncode == 0, done.stderr
            wait_for(lambda: login_status(hall, "chenjing", 1) == 403, STAFF_DISABLE_SECONDS)
            assert in_use(hall) == 2
            bad = districtctl("disable-staff", "no such hall!", "chenjing", "--by", "张科长")
            assert bad.returncode == 1 and "大厅编号不正确" in bad.stderr
        finally:
            hall.stop()
    mosquitto.stop()
    hall.start()
    try:
        assert service_names()["A"] == "社保医保（区县统一）"  # taken at the start, from the kept bundle
        assert in_use(hall) == 2
        assert login_status(hall, "chenjing", 1) == 403
    finally:
        hall.stop()


def test_a_lying_bundle_is_refused_naming_its_key_and_nothing_else_escapes():
    """What a broken or hostile publisher may put in a bundle, against the hall's checks: each is
    a ConfigError naming the key, never another exception (which would leave the centre
    without a report)."""
    document = hall_document(small_hall())
    lies = {
        "disabled_staff[0]": {"disabled_staff": [{"id": "s1"}]},
        "disabled_staff[1]": {"disabled_staff": ["s1", "nobody"]},
        "disabled_staff": {"disabled_staff": "s1"},
        "printers": {"printers": []},
        "windows[0].services[0]": {"windows": [{"number": 1, "name": "1号窗口", "kind": "general",
                                                "services": ["Z"]}]},
        "services[0].prefix": {"services": [{**document["services"][0], "prefix": None}]},
        "staff[0].a_post[0]": {"staff": [{**document["staff"][0], "a_post": [99]}]},
    }
    for key, content in lies.items():
        with pytest.raises(ConfigError) as refused:
            check(district.Bundle("hall-1", 1, "2026-11-23T09:00:00+08:00", "x", content), document)
        assert refused.value.key == key, (key, refused.value)
    # the hall's own configuration as a bundle passes
    same = {k: document[k] for k in ("services", "windows", "staff")}
    assert check(district.Bundle("hall-1", 1, "t", "x", same), document).hall.staff.keys() == small_hall().staff.keys()
