"""Real MQTT brokers for tests: Mosquitto (production) and the embedded amqtt broker.

Each fixture starts its own broker on a free loopback port and removes it at
teardown. Both yield the same interface: `.name`, `.host`, `.port`, `.stop()`
and `.restart(down_for=0.0)` (stop, stay down `down_for` seconds, start again
on the same port; neither keeps retained messages across a restart, like a
broker whose disk was lost).

tests/conftest.py registers this module as a pytest plugin, so any test can ask
for `mosquitto`, `embedded_amqtt` or `broker` (parametrized over both), or, for a
broker with accounts and an ACL, `make_mosquitto(settings)` and
`make_embedded_amqtt(password_file, acl)`.
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
    """`/usr/sbin/mosquitto` as a child process, persistence off; anyone may connect unless
    `settings` (mosquitto.conf lines) say otherwise."""

    name = "mosquitto"

    def __init__(self, workdir: Path, settings: str = "allow_anonymous true\n") -> None:
        self.host = HOST
        self.port = free_port()
        self.workdir = workdir
        self.conf = workdir / "mosquitto.conf"
        self.log = workdir / "mosquitto.log"
        if os.geteuid() == 0 and "password_file" in settings:
            # as root Mosquitto drops to user `mosquitto` before reading its password and ACL
            # files, which live in the test's private temporary directory
            settings += "user root\n"
        self.conf.write_text(
            f"listener {self.port} {HOST}\n"
            + settings +
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
    """The controller's own broker (controller.mqtt.broker), in an event loop on a background thread."""

    name = "amqtt"

    def __init__(self, password_file: str | None = None, acl: dict | None = None) -> None:
        self.password_file, self.acl = password_file, acl
        self.host = HOST
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="amqtt-broker", daemon=True)
        self._thread.start()
        self._shutdown = None

    def _run(self, coro, timeout: float = 10):
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def start(self) -> None:
        from controller.mqtt.broker import start_embedded_broker

        # returns once listening; probing the port would only make amqtt log errors
        self._shutdown = self._run(start_embedded_broker(f"{HOST}:{self.port}", self.password_file,
                                                         self.acl))

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
def make_mosquitto(tmp_path):
    """`make_mosquitto(settings)`: a started Mosquitto with those mosquitto.conf lines (such as
    `allow_anonymous false`, `password_file`, `acl_file`), stopped at teardown."""
    started: list[Mosquitto] = []

    def make(settings: str) -> Mosquitto:
        if not os.access(MOSQUITTO, os.X_OK):
            pytest.fail(f"{MOSQUITTO} is missing (sudo apt-get install mosquitto)")
        workdir = tmp_path / f"mosquitto-{len(started)}"
        workdir.mkdir()
        broker = Mosquitto(workdir, settings)
        started.append(broker)
        broker.start()
        return broker

    try:
        yield make
    finally:
        for broker in started:
            broker.stop()


@pytest.fixture
def make_embedded_amqtt():
    """`make_embedded_amqtt(password_file, acl)`: a started embedded broker with accounts and
    the topic ACL, closed at teardown."""
    started: list[EmbeddedAmqtt] = []

    def make(password_file: str, acl: dict) -> EmbeddedAmqtt:
        broker = EmbeddedAmqtt(password_file, acl)
        started.append(broker)
        broker.start()
        return broker

    try:
        yield make
    finally:
        for broker in started:
            broker.close()


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
