"""A real controller on a real loopback port, for API tests (no test client shortcut)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import socket
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import httpx
import uvicorn

from controller.cli import open_hall
from controller.calling_devices import attach_calling
from controller.cases import CaseDesk
from controller.core.callbacks import CaseRules
from controller.workdays_data import hall_calendar
from controller.devices import DeviceAddress, Floor, attach_devices
from controller.device_check import DeviceCheck
from drivers.mqtt import MqttLink
from controller.core.hall import Hall
from controller.hallcontroller import HallController
from controller.web.app import create_app
from sim.attach import Simulation, attach


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RunningHall:
    def __init__(self, ctrl: HallController, url: str, floor: Floor | None = None,
                 sim: Simulation | None = None) -> None:
        self.ctrl = ctrl
        self.url = url
        self.floor = floor
        self.sim = sim

    def client(self, **kw) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=10, **kw)

    def login(self, staff_id: str, window: int | None, pin: str = "1234") -> dict[str, str]:
        """Log `staff_id` in at `window`; the headers that act for them."""
        with self.client() as c:
            r = c.post("/api/v1/auth/login", json={"staff_id": staff_id, "pin": pin, "window": window})
            r.raise_for_status()
            return {"Authorization": f"Bearer {r.json()['token']}"}


@contextmanager
def running_hall(hall: Hall, data_dir: Path, clock, simulate: bool = False,
                 mqtt: tuple[str, int] | None = None) -> Iterator[RunningHall]:
    """A controller serving `hall` on a free port; with `simulate`, its serial devices are
    simulators on ptys, driven by the real drivers; with `mqtt` (host, port), its MQTT
    devices and the hall display use that broker."""
    ctrl, sessions = open_hall(hall, data_dir, clock)
    port = free_port()
    # a test that wants MQTT devices starts its own, on the broker it chose
    sim = attach(hall, data_dir / "sim", mqtt_devices=False) if simulate else None
    floor = attach_devices(ctrl, f"http://127.0.0.1:{port}/api/v1/tickets",
                           {d: DeviceAddress(*w) for d, w in sim.substitutes.items()} if sim else {})
    link = None
    if mqtt:
        link = MqttLink("hall-controller", mqtt[0], mqtt[1], "hall/controller/status").start()
    calling = attach_calling(ctrl, floor, data_dir,
                             {d: DeviceAddress(*w) for d, w in sim.substitutes.items()} if sim else {},
                             link).start()
    desk = CaseDesk(ctrl, hall_calendar(None), CaseRules.from_rules(hall.rules))
    desk.start()
    device_check = DeviceCheck(ctrl, floor, calling)
    app = create_app(ctrl, sessions, kiosks=floor.kiosks, desk=desk, device_check=device_check)
    if sim:
        app.include_router(sim.router)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           timeout_graceful_shutdown=2))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("test controller did not start")
        time.sleep(0.02)
    try:
        running = RunningHall(ctrl, f"http://127.0.0.1:{port}", floor, sim)
        running.clock = clock  # a test's ManualClock, to move the hall's time
        running.calling = calling
        running.device_check = device_check
        running.desk = desk
        running.app = app
        running.sessions = sessions
        yield running
    finally:
        server.should_exit = True
        thread.join(10)
        desk.stop()
        calling.close()
        floor.close()
        if link:
            link.stop()
        if sim:
            sim.close()
        ctrl.store.close()


REPO = Path(__file__).resolve().parents[1]
DEMO_CONFIG = REPO / "config" / "demo-hall.toml"


class HallProcess:
    """`hallctl run` for the demo hall as a child process, on fresh ports at every start."""

    def __init__(self, tmp_path: Path, *extra_args: str,
                 mqtt: tuple[str, int] | None = None, rules: dict[str, int] | None = None,
                 extra_config: str = "") -> None:
        """`mqtt` (host, port): use that broker instead of the embedded one; `rules`: [rules]
        settings that differ from the demo hall's; `extra_config`: TOML added at the end of
        the demo hall's file (its own tables, such as [[closed_days]])."""
        self.extra_args = extra_args
        self.extra_config = extra_config
        self.mqtt = mqtt
        self.rules = rules or {}
        self.tmp = tmp_path
        self.data = tmp_path / "data"
        self.log = tmp_path / "controller.log"
        self.proc: subprocess.Popen | None = None
        self.url = ""

    def start(self, same_port: bool = False) -> None:
        """Start the controller; `same_port` restarts it where its clients look for it."""
        # The demo's embedded MQTT broker has a fixed port; every start gets a free one.
        config = self.tmp / "hall.toml"
        broker = (f'host = "{self.mqtt[0]}"\nport = {self.mqtt[1]}' if self.mqtt
                  else f'embedded_listen = "127.0.0.1:{free_port()}"')
        text, n = re.subn(r'embedded_listen = "127\.0\.0\.1:\d+"', broker,
                          DEMO_CONFIG.read_text(encoding="utf-8"))
        assert n == 1, "the demo config no longer has one embedded_listen line"
        for key, value in self.rules.items():
            text, n = re.subn(rf"^{key} = .*$", f"{key} = {value}", text, flags=re.MULTILINE)
            assert n == 1, f"the demo config no longer sets {key} once"
        config.write_text(text + ("\n" + self.extra_config if self.extra_config else ""),
                          encoding="utf-8")
        port = int(self.url.rsplit(":", 1)[1]) if same_port and self.url else free_port()
        self.url = f"http://127.0.0.1:{port}"
        with self.log.open("ab") as out:
            out.write(f"--- start on port {port}\n".encode())
            out.flush()
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "controller.cli", "run", "--config", str(config),
                 "--data-dir", str(self.data), "--port", str(port),
                 "--clock-start", "09:00", "--log-level", "warning", *self.extra_args],
                cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO), "PYTHONFAULTHANDLER": "1"},
                stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{self.url}/api/v1/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"the controller did not become healthy "
                                     f"(exit {self.proc.returncode}):\n{self.output()}")
            time.sleep(0.05)

    def kill(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(15)
        except subprocess.TimeoutExpired:
            # faulthandler (PYTHONFAULTHANDLER) prints every thread's stack on SIGABRT
            self.proc.send_signal(signal.SIGABRT)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            raise AssertionError(f"the controller ignored SIGTERM:\n{self.output()}")

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")[-5000:]

    def client(self, **kw) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=5, **kw)


def wait_for(check, timeout: float = 3.0):
    """The first truthy value of `check()` within `timeout` seconds; fail the test otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout} s")
