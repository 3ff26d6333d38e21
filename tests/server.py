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
from datetime import datetime
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
from controller.store.hallstore import HallStore
from controller.store.kiosk_credentials import KioskCredentials
from controller.web.app import create_app
from controller.web.kiosk_api import KIOSK_HEADER
from sim.attach import Simulation, attach


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# The kiosk a test client stands at in a hall with no kiosk devices (a kiosk page without a
# printer, taking tickets through POST /api/v1/tickets).
PAGE_KIOSK = "entrance"


def kiosk_client(url: str, key: str | None, timeout: float, **kw) -> httpx.Client:
    """A client on the hall's LAN. With `key` it stands where a kiosk stands: it holds the
    kiosk's key (X-Kiosk-Key), as the hall's kiosks do; without, it is anyone on the LAN."""
    headers = dict(kw.pop("headers", None) or {})
    if key is not None:
        headers.setdefault(KIOSK_HEADER, key)
    return httpx.Client(base_url=url, timeout=timeout, headers=headers, **kw)


class RunningHall:
    def __init__(self, ctrl: HallController, url: str, floor: Floor | None = None,
                 sim: Simulation | None = None, kiosk_keys: dict[str, str] | None = None) -> None:
        self.ctrl = ctrl
        self.url = url
        self.floor = floor
        self.sim = sim
        self.kiosk_keys = kiosk_keys or {}  # kiosk id -> its key, set up as the admin would

    @property
    def kiosk_key(self) -> str:
        """The first kiosk's key."""
        return next(iter(self.kiosk_keys.values()))

    def client(self, kiosk: bool = True, **kw) -> httpx.Client:
        """A client holding the first kiosk's key; `kiosk=False`: anyone on the LAN."""
        return kiosk_client(self.url, self.kiosk_key if kiosk else None, 10, **kw)

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
    credentials = KioskCredentials(ctrl.store)
    keys = {k: credentials.issue(k, "test:admin", ctrl.clock()).key for k in (floor.kiosks or [PAGE_KIOSK])}
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
        running = RunningHall(ctrl, f"http://127.0.0.1:{port}", floor, sim, keys)
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


class _PortTaken(Exception):
    """The child could not bind a port picked free a moment before."""


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
        self.kiosk_keys: dict[str, str] = {}  # kiosk id -> its key (see _learn_kiosk_keys)

    def start(self, same_port: bool = False) -> None:
        """Start the controller; `same_port` restarts it where its clients look for it.

        A port picked free can be taken by another process before the child binds it (other
        test runs share the machine): such a start is tried once more on fresh ports, unless
        the clients look for it at its old port."""
        try:
            self._start(same_port)
        except _PortTaken:
            if same_port:
                raise AssertionError(f"the controller's port was taken:\n{self.output()}") from None
            self._start(False)

    def _start(self, same_port: bool) -> None:
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
                    self._learn_kiosk_keys()
                    return
            except httpx.TransportError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.proc.kill()
                self.proc.wait()
                this_start = self.log.read_text(encoding="utf-8", errors="replace").rsplit(
                    f"--- start on port {port}\n", 1)[-1]
                if "address already in use" in this_start.lower():
                    raise _PortTaken()
                errors = [line for line in this_start.splitlines()
                          if "error" in line.lower() and "not shown" not in line]
                raise AssertionError(f"the controller did not become healthy "
                                     f"(exit {self.proc.returncode}); errors:\n"
                                     + "\n".join(errors[:20]) + f"\n...\n{self.output()}")
            time.sleep(0.05)

    def _learn_kiosk_keys(self) -> None:
        """The kiosks' keys: with --simulate, the ones the demo set up and printed (a newcomer's
        way in); otherwise one set up beside the running controller, as `hallctl
        kiosk-credential` does. Kept across restarts, like a kiosk's cookie."""
        if self.kiosk_keys:
            return
        printed = re.findall(r"取号机 (\S+): open \S+#key=(\S+)",
                             self.log.read_text(encoding="utf-8", errors="replace"))
        self.kiosk_keys = {kiosk: key for kiosk, key in printed}
        if not self.kiosk_keys:
            store = HallStore(self.data / "hall.sqlite3")
            try:
                key = KioskCredentials(store).issue(PAGE_KIOSK, "test:admin", datetime.now().astimezone())
            finally:
                store.close()
            self.kiosk_keys = {PAGE_KIOSK: key.key}

    @property
    def kiosk_key(self) -> str:
        return next(iter(self.kiosk_keys.values()))

    def kiosk_page(self) -> str:
        """The address that enrols a browser as the first kiosk (the demo prints it)."""
        return f"{self.url}/kiosk#key={self.kiosk_key}"

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

    def client(self, kiosk: bool = True, **kw) -> httpx.Client:
        """A client holding the first kiosk's key; `kiosk=False`: anyone on the LAN."""
        return kiosk_client(self.url, self.kiosk_key if kiosk else None, 5, **kw)


def wait_for(check, timeout: float = 3.0):
    """The first truthy value of `check()` within `timeout` seconds; fail the test otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout} s")
