"""A real controller on a real loopback port, for API tests (no test client shortcut): in this
process (`running_hall`, from sim.served) or as `hallctl run` in a child (`HallProcess`)."""

from __future__ import annotations

import time
from pathlib import Path

from sim import process
from sim.process import REPO, _PortTaken  # noqa: F401
# the in-process hall lives beside the simulator, which the API fuzzer uses too
from sim.served import PAGE_KIOSK, RunningHall, free_port, kiosk_client, running_hall  # noqa: F401


DEMO_CONFIG = REPO / "config" / "demo-hall.toml"


class HallProcess(process.HallProcess):
    """`hallctl run` for the demo hall as a child process (sim.process); the hall file is this
    module's DEMO_CONFIG, which a test may patch to run a hall of its own."""

    def demo_config(self) -> Path:
        return DEMO_CONFIG


def wait_for(check, timeout: float = 3.0):
    """The first truthy value of `check()` within `timeout` seconds; fail the test otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout} s")
