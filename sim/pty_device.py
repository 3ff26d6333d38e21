"""A simulated serial device on a real pty: the driver opens `path` like hardware.

The simulator holds the master end and speaks the device's side of the protocol
through the same codec the driver uses. Baud rate and control lines are not
emulated (a pty has none). `unplug()` closes the device end; `plug()` gives a
new path, as a USB-serial adapter re-enumerating would. With a `link`, the link
goes away while unplugged, as a /dev/serial/by-id entry does: a driver retrying
it must not open whatever pty the kernel hands out next under the old number.
"""

from __future__ import annotations

import os
import select
import threading
import tty
from abc import ABC, abstractmethod


class PtyDevice(ABC):
    """Runs `handle(data)` on every chunk the driver writes; `send(data)` answers it."""

    def __init__(self, link: str | None = None) -> None:
        """`link`: a stable path (symlink) to the current pty, like /dev/serial/by-id."""
        self.link = link
        self._master: int | None = None
        self._slave: int | None = None
        self.path = ""
        self._tty = ""  # the pty behind `link` while plugged
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.lock = threading.RLock()

    def start(self) -> "PtyDevice":
        self.plug()
        return self

    def plug(self) -> str:
        master, slave = os.openpty()
        tty.setraw(master)
        tty.setraw(slave)
        self._master, self._slave = master, slave
        self.path = self._tty = os.ttyname(slave)
        if self.link:
            tmp = f"{self.link}.new"
            if os.path.lexists(tmp):
                os.remove(tmp)
            os.symlink(self.path, tmp)
            os.replace(tmp, self.link)
            self.path = self.link
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"sim:{self.path}", daemon=True)
        self._thread.start()
        return self.path

    def unplug(self) -> None:
        if self.link and self._tty:
            try:
                if os.readlink(self.link) == self._tty:
                    os.remove(self.link)
            except OSError:
                pass  # already gone
        self._tty = ""
        self._stop.set()
        if self._thread:
            self._thread.join(2)
        for fd in (self._master, self._slave):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._master = self._slave = None

    stop = unplug

    def send(self, data: bytes) -> None:
        with self.lock:
            if self._master is not None:
                os.write(self._master, data)

    def _run(self) -> None:
        while not self._stop.is_set():
            master = self._master
            if master is None:
                return
            try:
                ready, _, _ = select.select([master], [], [], 0.05)
                if not ready:
                    continue
                data = os.read(master, 4096)
            except OSError:
                return
            if data:
                self.handle(data)

    @abstractmethod
    def handle(self, data: bytes) -> None:
        """Bytes the driver wrote to the device."""

    def __enter__(self) -> "PtyDevice":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.unplug()
