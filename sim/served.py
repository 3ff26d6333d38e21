"""A real controller on a real loopback port, in this process, built by `controller.assembly`
as `hallctl run` builds it: for API tests and the API fuzzer (no test client shortcut)."""

from __future__ import annotations

import socket
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import httpx
import uvicorn

from controller.assembly import assemble
from controller.core.hall import Hall
from controller.floor.devices import DeviceAddress, Floor
from controller.runtime.hallcontroller import HallController
from controller.config.settings import FederationSettings, FloorLayout, VoiceSettings
from controller.store.kiosk_credentials import KioskCredentials
from controller.web.kiosk_api import KIOSK_HEADER
from controller.config.workdays import hall_calendar
from drivers.mqtt import MqttLink
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
                 mqtt: tuple[str, int] | None = None,
                 voice: VoiceSettings | None = None,
                 layout: FloorLayout | None = None,
                 federation: FederationSettings | None = None) -> Iterator[RunningHall]:
    """A controller serving `hall` on a free port; with `simulate`, its serial devices are
    simulators on ptys, driven by the real drivers; with `mqtt` (host, port), its MQTT
    devices and the hall display use that broker; with `voice` on, the calls are spoken;
    `layout`: the supervisor's floor ([layout]; None: the windows in order); with
    `federation`, its event log is shipped to that district broker."""
    port = free_port()
    # a test that wants MQTT devices starts its own, on the broker it chose
    sim = attach(hall, data_dir / "sim", mqtt_devices=False) if simulate else None
    link = None
    if mqtt:
        link = MqttLink("hall-controller", mqtt[0], mqtt[1], "hall/controller/status").start()
    assembled = assemble(hall, data_dir, clock, status_url=f"http://127.0.0.1:{port}",
                         substitutes={d: DeviceAddress(*w) for d, w in sim.substitutes.items()} if sim else {},
                         mqtt=link, voice=voice, layout=layout, workdays=hall_calendar(None),
                         routers=[sim.router] if sim else [], stop_with_app=False, federation=federation)
    ctrl, floor, app = assembled.ctrl, assembled.floor, assembled.app
    credentials = KioskCredentials(ctrl.store)
    keys = {k: credentials.issue(k, "test:admin", ctrl.clock()).key for k in (floor.kiosks or [PAGE_KIOSK])}
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
        running.calling = assembled.calling
        running.device_check = assembled.device_check
        running.desk = assembled.desk
        running.app = app
        running.sessions = assembled.sessions
        yield running
    finally:
        server.should_exit = True
        thread.join(10)
        assembled.stop()
        if sim:
            sim.close()
        ctrl.store.close()
