"""Slow clients cannot use up the server: a flood of half-sent requests leaves /health and the
kiosk answering.

`hallctl run` as a child process limited to 256 open files (as a hall's service might be); the
attacker, on loopback only, opens more half-sent requests than that and holds them.
"""

from __future__ import annotations

import resource
import socket
import subprocess
import time
from unittest import mock

import httpx
import pytest

import tests.server
from tests.server import HallProcess

OPEN_FILES = 256
FLOOD = 400  # more half-sent requests than the server has file descriptors
HALF_SENT = b"GET /api/v1/health HTTP/1.1\r\nHost: hall\r\nX-Slow: "  # no blank line: never ends


class LimitedHall(HallProcess):
    """`hallctl run` for the demo hall with at most `open_files` file descriptors."""

    def __init__(self, tmp_path, open_files: int, *extra_args: str) -> None:
        super().__init__(tmp_path, *extra_args)
        self.open_files = open_files

    def start(self, same_port: bool = False) -> None:
        popen = subprocess.Popen

        def limited(*args, **kw):
            return popen(*args, preexec_fn=lambda: resource.setrlimit(
                resource.RLIMIT_NOFILE, (self.open_files, self.open_files)), **kw)

        with mock.patch.object(tests.server.subprocess, "Popen", limited):
            super().start(same_port)


@pytest.fixture
def hall(tmp_path):
    process = LimitedHall(tmp_path, OPEN_FILES)
    process.start()
    try:
        yield process
    finally:
        process.stop()


def half_sent(port: int, n: int, within: float) -> list[socket.socket]:
    """`n` connections to the controller, each with a request whose headers never end."""
    held, deadline = [], time.monotonic() + within
    for _ in range(n):
        assert time.monotonic() < deadline, f"only {len(held)} connections in {within} s"
        s = socket.create_connection(("127.0.0.1", port), timeout=2)
        s.sendall(HALF_SENT)
        held.append(s)
    return held


def test_a_flood_of_half_sent_requests_leaves_health_and_the_kiosk_answering(hall):
    port = int(hall.url.rsplit(":", 1)[1])
    held = half_sent(port, FLOOD, within=30)
    try:
        time.sleep(0.5)  # the server has taken them all
        with httpx.Client(base_url=hall.url, timeout=5) as citizen:
            assert citizen.get("/api/v1/health").json()["ok"] is True
            ticket = citizen.post("/api/v1/tickets", json={"service": "A"})
            assert ticket.status_code == 201, ticket.text
            assert ticket.json()["number"].startswith("A")
        # and the server is still itself afterwards: a second round answers too
        more = half_sent(port, FLOOD // 2, within=30)
        held += more
        assert httpx.get(f"{hall.url}/api/v1/health", timeout=5).status_code == 200
    finally:
        for s in held:
            s.close()
    assert hall.proc.poll() is None, hall.output()
