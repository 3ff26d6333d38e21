"""`hallctl run` as a child process, for the tests that need the whole program (restarts,
crashes, the embedded broker, the browser pages) and the benchmarks that measure it."""

from __future__ import annotations

import os
import re
import resource
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import httpx

from controller.store.hallstore import HallStore
from controller.store.kiosk_credentials import KioskCredentials
from sim.served import PAGE_KIOSK, free_port, kiosk_client


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
        test runs share the machine): such a start is tried once more on fresh ports. The
        embedded broker's port is picked afresh on every start, `same_port` too (its clients
        are the hall's own devices, told by the config), so a restart whose broker port was
        taken meanwhile is tried once more as well; the web port stays where the clients look."""
        try:
            self._start(same_port)
        except _PortTaken:
            try:
                self._start(same_port)
            except _PortTaken:
                raise AssertionError(f"a port of the controller was taken twice:\n{self.output()}") from None

    def demo_config(self) -> Path:
        """The hall file the child runs, before the changes this start makes to it."""
        return DEMO_CONFIG

    def popen_options(self) -> dict:
        """More `subprocess.Popen` options for the child (a resource limit, say)."""
        return {}

    def _start(self, same_port: bool) -> None:
        # The demo's embedded MQTT broker has a fixed port; every start gets a free one.
        config = self.tmp / "hall.toml"
        broker = (f'host = "{self.mqtt[0]}"\nport = {self.mqtt[1]}' if self.mqtt
                  else f'embedded_listen = "127.0.0.1:{free_port()}"')
        text, n = re.subn(r'embedded_listen = "127\.0\.0\.1:\d+"', broker,
                          self.demo_config().read_text(encoding="utf-8"))
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
                stdout=out, stderr=subprocess.STDOUT, **self.popen_options())
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
            raise AssertionError(f"the controller ignored SIGTERM:\n{self.output()}") from None

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")[-5000:]

    def client(self, kiosk: bool = True, **kw) -> httpx.Client:
        """A client holding the first kiosk's key; `kiosk=False`: anyone on the LAN."""
        return kiosk_client(self.url, self.kiosk_key if kiosk else None, 5, **kw)


# --- a child hall with few open files, for the slow-client flood ------------------------------

OPEN_FILES = 256
FLOOD = 400  # more half-sent requests than the server has file descriptors
HALF_SENT = b"GET /api/v1/health HTTP/1.1\r\nHost: hall\r\nX-Slow: "  # no blank line: never ends


class LimitedHall(HallProcess):
    """`hallctl run` for the demo hall with at most `open_files` file descriptors."""

    def __init__(self, tmp_path, open_files: int, *extra_args: str) -> None:
        super().__init__(tmp_path, *extra_args)
        self.open_files = open_files

    def popen_options(self) -> dict:
        limit = (self.open_files, self.open_files)
        return {"preexec_fn": lambda: resource.setrlimit(resource.RLIMIT_NOFILE, limit)}


def half_sent(port: int, n: int, within: float) -> list[socket.socket]:
    """`n` connections to the controller, each with a request whose headers never end."""
    held, deadline = [], time.monotonic() + within
    for _ in range(n):
        assert time.monotonic() < deadline, f"only {len(held)} connections in {within} s"
        s = socket.create_connection(("127.0.0.1", port), timeout=2)
        s.sendall(HALF_SENT)
        held.append(s)
    return held
