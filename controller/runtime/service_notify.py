"""Telling systemd how the controller is doing (sd_notify), when it runs as a service.

systemd starts `hallctl run` with NOTIFY_SOCKET (Type=notify) and, with WatchdogSec=, with
WATCHDOG_USEC. The controller says READY=1 once the web API listens, then WATCHDOG=1 every half
watchdog period, but only after the hall thread has answered a question through the web
server's event loop: a hall thread stuck on a command, or a loop that no longer turns, stops
the pings and systemd restarts the service (Restart=on-failure). STOPPING=1 when told to stop.

The protocol is one datagram per message on a unix socket (an address starting with '@' is in
the abstract namespace); no library is needed.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from typing import Awaitable, Callable, Mapping

log = logging.getLogger(__name__)

class ServiceNotifier:
    """sd_notify for one process; does nothing when systemd did not ask for it."""

    def __init__(self, address: str | None, watchdog_seconds: float | None) -> None:
        self.address = address
        self.watchdog_seconds = watchdog_seconds
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> ServiceNotifier:
        """The notifier systemd's environment asks for (NOTIFY_SOCKET, WATCHDOG_USEC,
        WATCHDOG_PID). A watchdog meant for another process (WATCHDOG_PID) is not ours."""
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET") or None
        watchdog = None
        usec, pid = env.get("WATCHDOG_USEC", ""), env.get("WATCHDOG_PID", "")
        if usec.isdigit() and int(usec) > 0 and (not pid or pid == str(os.getpid())):
            watchdog = int(usec) / 1_000_000
        return cls(address, watchdog)

    @property
    def active(self) -> bool:
        return self.address is not None

    def send(self, message: str) -> bool:
        """One notification; False (logged) when the socket is gone, never an exception: the
        hall keeps running whatever happens to its service manager."""
        if self.address is None:
            return False
        target = "\0" + self.address[1:] if self.address.startswith("@") else self.address
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
                s.sendto(message.encode(), target)
        except OSError as e:
            log.warning("sd_notify %s to %s failed: %s", message.split("\n")[0], self.address, e)
            return False
        return True

    def ready(self, alive: Callable[[], Awaitable[object]]) -> None:
        """The web API listens: READY=1, and from now on the watchdog pings, each after
        `alive()` (a question to the hall thread) has answered. Called on the event loop."""
        if not self.active:
            return
        self.send(f"READY=1\nMAINPID={os.getpid()}\nSTATUS=serving")
        if self.watchdog_seconds:
            self._task = asyncio.get_running_loop().create_task(self._watch(alive))

    def stopping(self) -> None:
        if self._task is not None:
            self._task.cancel()
        self.send("STOPPING=1\nSTATUS=stopping")

    async def _watch(self, alive: Callable[[], Awaitable[object]]) -> None:
        assert self.watchdog_seconds
        period = self.watchdog_seconds / 2
        while True:
            try:
                await asyncio.wait_for(alive(), timeout=period)
            except asyncio.TimeoutError:
                log.error("watchdog: the hall thread did not answer within %.0f s; no ping "
                          "(systemd restarts the controller if this goes on)", period)
            except Exception:
                log.exception("watchdog: asking the hall thread failed; no ping")
            else:
                self.send("WATCHDOG=1")
            await asyncio.sleep(period)
