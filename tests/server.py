"""A real controller on a real loopback port, for API tests (no test client shortcut)."""

from __future__ import annotations

import socket
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import httpx
import uvicorn

from controller.cli import open_hall
from controller.core.hall import Hall
from controller.hallcontroller import HallController
from controller.web.app import create_app


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RunningHall:
    def __init__(self, ctrl: HallController, url: str) -> None:
        self.ctrl = ctrl
        self.url = url

    def client(self, **kw) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=10, **kw)

    def login(self, staff_id: str, window: int | None, pin: str = "1234") -> dict[str, str]:
        """Log `staff_id` in at `window`; the headers that act for them."""
        with self.client() as c:
            r = c.post("/api/v1/auth/login", json={"staff_id": staff_id, "pin": pin, "window": window})
            r.raise_for_status()
            return {"Authorization": f"Bearer {r.json()['token']}"}


@contextmanager
def running_hall(hall: Hall, data_dir: Path, clock) -> Iterator[RunningHall]:
    ctrl, sessions = open_hall(hall, data_dir, clock)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(ctrl, sessions), host="127.0.0.1",
                                           port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("test controller did not start")
        time.sleep(0.02)
    try:
        yield RunningHall(ctrl, f"http://127.0.0.1:{port}")
    finally:
        server.should_exit = True
        thread.join(10)
        ctrl.store.close()
