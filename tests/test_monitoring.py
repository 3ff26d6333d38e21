"""Monitoring (issue 18 item 4): /metrics in Prometheus' text format, scraped by a real Prometheus
(Debian's package) from `hallctl run` and read back through Prometheus' query API; who may read
it; and the log as JSON lines with the command id (`hallctl run --log-format json`).

The masking audit (tests/test_masking.py) reads /metrics and the JSON log of its day too.
"""

from __future__ import annotations

import json
import shutil
import subprocess

import httpx
import pytest

from controller.runtime.clock import ManualClock
from sim.mqtt_devices import SimulatedTabletPad
from tests.halls import at, small_hall
from tests.server import HallProcess, free_port, running_hall, wait_for
from tests.test_masking import ID, NAME, PHONE, hall_with_a_tablet_pad, unmasked_in

PROMETHEUS = shutil.which("prometheus")
TOKEN = "metrics-token-for-the-test-0123456789"


def families(text: str) -> dict[str, list[str]]:
    """Metric name -> its sample lines."""
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name = line.split("{", 1)[0].split(" ", 1)[0]
            out.setdefault(name, []).append(line)
    return out


def test_metrics_show_the_floor_and_the_hall_threads_timings(tmp_path, mosquitto):
    clock = ManualClock(at("09:00"))
    with running_hall(hall_with_a_tablet_pad(), tmp_path, clock,
                      mqtt=(mosquitto.host, mosquitto.port)) as hall:
        pad = SimulatedTabletPad("sim-pad-2", mosquitto.host, mosquitto.port,
                                 "hall/window/2/pad").start()
        try:
            with hall.client() as api:
                for _ in range(3):
                    assert api.post("/api/v1/tickets", json={"service": "A"}).status_code == 201
                clock.advance(minutes=4)
                s2 = hall.login("s2", 2)
                for step in ("call", "finish"):
                    assert api.post(f"/api/v1/windows/2/{step}", headers=s2).status_code == 200
                assert api.post("/api/v1/windows/2/pause", headers=s2,
                                json={"reason": "休息", "minutes": 10}).status_code == 200
                with api.stream("GET", "/api/v1/events") as stream:
                    assert stream.status_code == 200
                    text = wait_for(lambda: (t := api.get("/metrics").text)
                                    and "hall_sse_clients 1.0" in t and t, timeout=5)
        finally:
            pad.stop()
    got = families(text)
    assert 'hall_queue_waiting{service="A"} 2.0' in got["hall_queue_waiting"]
    # the two still waiting joined at 09:00: four minutes ago
    assert 'hall_queue_longest_wait_seconds{service="A"} 240.0' in \
        got["hall_queue_longest_wait_seconds"]
    assert {'hall_windows{state="paused"} 1.0', 'hall_windows{state="closed"} 1.0',
            'hall_windows{state="open"} 0.0'} == set(got["hall_windows"])
    assert any(line.startswith('hall_device_up{device="pad-2",kind="evaluator_pad"')
               for line in got["hall_device_up"])
    assert 'hall_command_seconds_count{command="issue_ticket"} 3.0' in \
        got["hall_command_seconds_count"]
    assert 'hall_command_seconds_count{command="call_next"} 1.0' in got["hall_command_seconds_count"]
    assert float(got["hall_commit_seconds_count"][0].split()[-1]) >= 5
    assert 'hall_callback_cases{state="open"} 0.0' in got["hall_callback_cases"]
    assert got["hall_callback_cases_overdue"] == ["hall_callback_cases_overdue 0.0"]
    assert got["hall_storage_ok"] == ["hall_storage_ok 1.0"]
    assert "hall_event_loop_lag_max_seconds" in got and "hall_event_loop_lag_recent_seconds" in got


def test_metrics_answer_loopback_only_without_a_token(tmp_path):
    clock = ManualClock(at("09:00"))
    with running_hall(small_hall(), tmp_path, clock) as hall, hall.client(kiosk=False) as api:
        assert api.get("/metrics").status_code == 200
        # through a proxy of the hall's (uvicorn trusts 127.0.0.1's X-Forwarded-For by default,
        # as `hallctl run --trusted-proxy` does): the client's own address is not loopback
        r = api.get("/metrics", headers={"X-Forwarded-For": "192.0.2.7"})
        assert r.status_code == 403 and r.json()["error"] == "metrics_loopback_only"
        hall.app.state.metrics_token = TOKEN
        assert api.get("/metrics").status_code == 401  # a token set: loopback needs it too
        assert api.get("/metrics", headers={"Authorization": "Bearer nope"}).status_code == 401
        r = api.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}",
                                         "X-Forwarded-For": "192.0.2.7"})
        assert r.status_code == 200 and "hall_queue_waiting" in r.text


@pytest.fixture
def prometheus(tmp_path):
    """Start Debian's Prometheus on a free port scraping `targets` set by the test: a function
    taking the hall's port; returns the query API's base URL."""
    if PROMETHEUS is None:
        pytest.fail("prometheus is not installed (make deps-debian installs it)")
    procs: list[subprocess.Popen] = []

    def start(hall_port: int) -> str:
        token_file = tmp_path / "metrics.token"
        token_file.write_text(TOKEN)
        config = tmp_path / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
            "scrape_configs:\n  - job_name: hall\n    metrics_path: /metrics\n"
            f"    authorization:\n      credentials_file: {token_file}\n"
            f"    static_configs:\n      - targets: ['127.0.0.1:{hall_port}']\n")
        port = free_port()
        log = (tmp_path / "prometheus.log").open("wb")
        procs.append(subprocess.Popen(
            [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{port}"], stdout=log, stderr=subprocess.STDOUT))
        url = f"http://127.0.0.1:{port}"

        def ready() -> bool:
            try:
                return httpx.get(f"{url}/-/ready", timeout=1).status_code == 200
            except httpx.TransportError:
                return False
        wait_for(ready, timeout=30)
        return url

    yield start
    for p in procs:
        p.terminate()
        p.wait(15)


def query(url: str, promql: str) -> list[dict]:
    r = httpx.get(f"{url}/api/v1/query", params={"query": promql}, timeout=5)
    r.raise_for_status()
    return r.json()["data"]["result"]


def test_a_real_prometheus_scrapes_the_hall_and_answers_a_query(tmp_path, prometheus, monkeypatch):
    monkeypatch.setenv("HALL_METRICS_TOKEN", TOKEN)  # the scrape from "the LAN" carries it
    ctl = HallProcess(tmp_path)
    ctl.start()
    try:
        with ctl.client() as api:
            assert api.get("/metrics").status_code == 401  # the token is asked of everyone
            for _ in range(3):
                assert api.post("/api/v1/tickets", json={"service": "A"}).status_code == 201
        url = prometheus(int(ctl.url.rsplit(":", 1)[1]))

        def waiting() -> str | None:
            found = query(url, 'hall_queue_waiting{job="hall",service="A"}')
            return found[0]["value"][1] if found else None
        assert wait_for(lambda: waiting() == "3", timeout=30)
        [up] = query(url, 'up{job="hall"}')
        assert up["value"][1] == "1"
        [issued] = query(url, 'hall_command_seconds_count{command="issue_ticket"}')
        assert issued["value"][1] == "3"
    finally:
        ctl.stop()


def test_hallctl_run_logs_json_lines_with_command_ids_and_nothing_personal(tmp_path):
    ctl = HallProcess(tmp_path, "--log-format", "json", "--log-level", "debug")
    ctl.start()
    try:
        with ctl.client() as api:
            r = api.post("/api/v1/tickets", json={"service": "A", "id_number": ID, "name": NAME,
                                                  "phone": PHONE})
            assert r.status_code == 201, r.text
            token = api.post("/api/v1/auth/login", json={"staff_id": "chenjing", "pin": "1234",
                                                         "window": 1}).json()["token"]
            for step in ("call", "finish"):
                assert api.post(f"/api/v1/windows/1/{step}",
                                headers={"Authorization": f"Bearer {token}"}).status_code == 200
            assert api.post("/api/v1/windows/1/call", json={},
                            headers={"Authorization": "Bearer wrong"}).status_code == 401
    finally:
        assert ctl.stop() == 0
    text = ctl.log.read_text(encoding="utf-8")
    records = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    assert records, text[-2000:]
    assert all({"time", "level", "logger", "message"} <= set(r) for r in records)
    commands = {r["message"]: r["command_id"] for r in records if "command_id" in r}
    assert "command issue_ticket: ok" in commands and "command finish: ok" in commands
    assert commands["command finish: ok"] > commands["command issue_ticket: ok"]
    assert any(r["logger"].startswith("uvicorn") for r in records)  # the server's own, as JSON
    assert unmasked_in(text) == []
