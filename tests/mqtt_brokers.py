"""Real MQTT brokers for tests: Mosquitto (production) and the embedded amqtt broker.

Each fixture starts its own broker on a free loopback port and removes it at
teardown. Both yield the same interface: `.name`, `.host`, `.port`, `.stop()`
and `.restart(down_for=0.0)` (stop, stay down `down_for` seconds, start again
on the same port; neither keeps retained messages across a restart, like a
broker whose disk was lost).

tests/conftest.py registers this module as a pytest plugin, so any test can ask
for `mosquitto`, `embedded_amqtt` or `broker` (parametrized over both).
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

MOSQUITTO = "/usr/sbin/mosquitto"
HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def wait_listening(port: int, timeout: float, alive=lambda: True) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and alive():
        try:
            socket.create_connection((HOST, port), 0.2).close()
            return True
        except OSError:
            time.sleep(0.02)
    return False


class Mosquitto:
    """`/usr/sbin/mosquitto` as a child process, persistence off."""

    name = "mosquitto"

    def __init__(self, workdir: Path) -> None:
        self.host = HOST
        self.port = free_port()
        self.workdir = workdir
        self.conf = workdir / "mosquitto.conf"
        self.log = workdir / "mosquitto.log"
        self.conf.write_text(
            f"listener {self.port} {HOST}\n"
            "allow_anonymous true\n"
            "persistence false\n"
            "log_dest stdout\n"
            "log_type error\nlog_type warning\nlog_type notice\n"
        )
        self._proc: subprocess.Popen | None = None

    def start(self) -> None:
        with open(self.log, "ab") as out:
            # stdout is a file we opened: mosquitto drops root to user `mosquitto` before logging
            self._proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)], stdout=out,
                                          stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        proc = self._proc
        if not wait_listening(self.port, 10, alive=lambda: proc.poll() is None):
            self.stop()
            pytest.fail(f"mosquitto did not listen on {HOST}:{self.port}:\n{self.log.read_text()}")

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)

    def restart(self, down_for: float = 0.0) -> None:
        self.stop()
        time.sleep(down_for)
        self.start()


class EmbeddedAmqtt:
    """The controller's own broker (controller.broker), in an event loop on a background thread."""

    name = "amqtt"

    def __init__(self) -> None:
        self.host = HOST
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="amqtt-broker", daemon=True)
        self._thread.start()
        self._shutdown = None

    def _run(self, coro, timeout: float = 10):
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def start(self) -> None:
        from controller.broker import start_embedded_broker

        # returns once listening; probing the port would only make amqtt log errors
        self._shutdown = self._run(start_embedded_broker(f"{HOST}:{self.port}"))

    def stop(self) -> None:
        shutdown, self._shutdown = self._shutdown, None
        if shutdown is not None:
            self._run(shutdown())

    def restart(self, down_for: float = 0.0) -> None:
        self.stop()
        time.sleep(down_for)
        self.start()

    def close(self) -> None:
        self.stop()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


@pytest.fixture
def mosquitto(tmp_path):
    if not os.access(MOSQUITTO, os.X_OK):
        pytest.fail(f"{MOSQUITTO} is missing: `make test` installs the Debian package mosquitto "
                    "(or: sudo apt-get install mosquitto)")
    workdir = tmp_path / "mosquitto"
    workdir.mkdir()
    broker = Mosquitto(workdir)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def embedded_amqtt():
    broker = EmbeddedAmqtt()
    try:
        broker.start()
        yield broker
    finally:
        broker.close()


@pytest.fixture(params=["mosquitto", "amqtt"])
def broker(request):
    """Each test that takes `broker` runs once against Mosquitto and once against amqtt."""
    return request.getfixturevalue({"mosquitto": "mosquitto", "amqtt": "embedded_amqtt"}[request.param])
