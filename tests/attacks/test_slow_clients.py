"""Slow clients cannot use up the server: a flood of half-sent requests leaves /health and the
kiosk answering.

`hallctl run` as a child process limited to 256 open files (as a hall's service might be); the
attacker, on loopback only, opens more half-sent requests than that and holds them.
"""

from __future__ import annotations

import resource
import socket
import subprocess
import sys
import time

import httpx
import pytest

import tests.server
# the limited child hall and the flood are the benchmark's too (bench/slow_clients.py)
from sim.process import FLOOD, HALF_SENT, OPEN_FILES, LimitedHall, half_sent


@pytest.fixture
def hall(tmp_path):
    process = LimitedHall(tmp_path, OPEN_FILES)
    process.start()
    try:
        yield process
    finally:
        process.stop()


def event_stream(port: int) -> socket.socket:
    """The hall display's event stream, as a raw connection whose answer has begun."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(b"GET /api/v1/events HTTP/1.1\r\nHost: hall\r\nAccept: text/event-stream\r\n\r\n")
    assert s.recv(4096).startswith(b"HTTP/1.1 200")
    return s


def received_until(s: socket.socket, wanted: bytes, within: float) -> bytes:
    seen, deadline = b"", time.monotonic() + within
    while wanted not in seen and time.monotonic() < deadline:
        s.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = s.recv(65536)
        except TimeoutError:
            break
        if not chunk:
            break  # closed
        seen += chunk
    return seen


def test_a_flood_of_half_sent_requests_leaves_health_and_the_kiosk_answering(hall):
    port = int(hall.url.rsplit(":", 1)[1])
    display = event_stream(port)  # the hall display was showing before the flood
    held = half_sent(port, FLOOD, within=30)
    try:
        time.sleep(0.5)  # the server has taken them all
        with hall.client() as citizen:  # at the kiosk: it holds the kiosk's key
            assert citizen.get("/api/v1/health").json()["ok"] is True
            ticket = citizen.post("/api/v1/tickets", json={"service": "A"})
            assert ticket.status_code == 201, ticket.text
            number = ticket.json()["number"]
            assert number.startswith("A")
        # the display's stream was busy, not waiting: it was kept, and shows the new ticket
        assert number.encode() in received_until(display, number.encode(), 5)
        # and the server is still itself afterwards: a second round answers too
        more = half_sent(port, FLOOD // 2, within=30)
        held += more
        assert httpx.get(f"{hall.url}/api/v1/health", timeout=5).status_code == 200
    finally:
        display.close()
        for s in held:
            s.close()
    assert hall.proc.poll() is None, hall.output()


def test_a_request_dribbled_a_byte_at_a_time_is_cut_off_at_the_request_timeout(tmp_path):
    hall = LimitedHall(tmp_path, OPEN_FILES, "--request-timeout", "2")
    hall.start()
    try:
        port = int(hall.url.rsplit(":", 1)[1])
        slow = socket.create_connection(("127.0.0.1", port), timeout=5)
        opened, closed_after = time.monotonic(), None
        for byte in HALF_SENT + b"x" * 40:  # one byte every 0.25 s, never a blank line
            try:
                slow.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                closed_after = time.monotonic() - opened
                break
            slow.settimeout(0.25)
            try:
                if slow.recv(1) == b"":
                    closed_after = time.monotonic() - opened
                    break
            except TimeoutError:
                pass
        slow.close()
        assert closed_after is not None, "the server kept a dribbling request for 20 s"
        assert 1.5 < closed_after < 5, closed_after
        # an ordinary client on a kept-alive connection is not hurried: three requests, 3 s apart
        with httpx.Client(base_url=hall.url, timeout=5) as staff_page:
            for _ in range(3):
                assert staff_page.get("/api/v1/health").status_code == 200
                time.sleep(3)
    finally:
        hall.stop()


def test_an_open_file_limit_too_low_for_the_hall_stops_the_start_with_the_fix(tmp_path):
    config = tmp_path / "hall.toml"
    config.write_text(tests.server.DEMO_CONFIG.read_text(encoding="utf-8"), encoding="utf-8")
    ran = subprocess.run(
        [sys.executable, "-m", "controller.cli", "run", "--config", str(config),
         "--data-dir", str(tmp_path / "data"), "--port", str(tests.server.free_port())],
        cwd=tests.server.REPO, capture_output=True, text=True, timeout=60,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (160, 160)))
    assert ran.returncode == 1
    assert "open-file limit (160)" in ran.stderr and "LimitNOFILE" in ran.stderr
