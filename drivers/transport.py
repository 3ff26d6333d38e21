"""Moving bytes to and from a device, and keeping the line up.

A transport knows no message types: it opens, writes, reads with a timeout and
closes. `DeviceLink` wraps one transport with the single reconnect-with-backoff
loop every driver shares, and reports the line's health (online, offline,
fault) so the supervisor sees a pulled cable the moment a driver does.
"""

from __future__ import annotations

import io
import logging
import re
import socket
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from enum import StrEnum
from typing import Callable

log = logging.getLogger(__name__)


class TransportError(Exception):
    """The line to the device failed (unplugged, refused, timed out)."""


class Health(StrEnum):
    ONLINE = "online"
    OFFLINE = "offline"
    FAULT = "fault"  # answering, but unable to do its job (paper out, SAM failure)


@dataclass(frozen=True)
class DeviceHealth:
    """A device's health as its driver last saw it."""

    device: str
    state: Health
    detail: str = ""


HealthListener = Callable[[DeviceHealth], None]


class Transport(ABC):
    """Bytes to and from one device."""

    name: str = "transport"

    @abstractmethod
    def open(self) -> None: ...

    @abstractmethod
    def close(self) -> None: ...

    @abstractmethod
    def write(self, data: bytes) -> None: ...

    @abstractmethod
    def read(self, size: int, timeout: float) -> bytes:
        """At most `size` bytes; b"" when nothing arrives within `timeout` seconds."""

    def read_exactly(self, size: int, timeout: float) -> bytes:
        """Exactly `size` bytes within `timeout`, however the device chunks them."""
        deadline = time.monotonic() + timeout
        out = bytearray()
        while len(out) < size:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TransportError(f"{self.name}: {len(out)} of {size} bytes within {timeout} s")
            out += self.read(size - len(out), left)
        return bytes(out)


class SerialTransport(Transport):
    """A serial port (RS-232/RS-485 adapter, USB-serial, or a pty in tests)."""

    def __init__(self, port: str, baudrate: int = 9600) -> None:
        self.port = port
        self.baudrate = baudrate
        self.name = f"serial:{port}"
        self._serial = None

    def open(self) -> None:
        import serial

        try:
            self._serial = serial.Serial(self.port, self.baudrate, timeout=0)
        except (serial.SerialException, OSError) as e:
            raise TransportError(f"{self.name}: {e}") from None

    def close(self) -> None:
        if self._serial is not None:
            try:
                self._serial.close()
            finally:
                self._serial = None

    def write(self, data: bytes) -> None:
        import serial

        if self._serial is None:
            raise TransportError(f"{self.name}: not open")
        try:
            self._serial.write(data)
            self._serial.flush()
        except (serial.SerialException, OSError) as e:
            raise TransportError(f"{self.name}: {e}") from None

    def read(self, size: int, timeout: float) -> bytes:
        import serial

        if self._serial is None:
            raise TransportError(f"{self.name}: not open")
        try:
            self._serial.timeout = max(timeout, 0.0)
            return self._serial.read(size)
        except (serial.SerialException, OSError, TypeError) as e:
            # pyserial reports an unplugged device as "readiness to read but returned no data"
            raise TransportError(f"{self.name}: {e}") from None


class TcpTransport(Transport):
    """A TCP device: a networked printer (port 9100), display or serial server."""

    def __init__(self, host: str, port: int, connect_timeout: float = 3.0) -> None:
        self.host, self.port = host, port
        self.connect_timeout = connect_timeout
        self.name = f"tcp:{host}:{port}"
        self._sock: socket.socket | None = None

    def open(self) -> None:
        try:
            self._sock = socket.create_connection((self.host, self.port), self.connect_timeout)
            self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError as e:
            raise TransportError(f"{self.name}: {e}") from None

    def close(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock = None

    def write(self, data: bytes) -> None:
        if self._sock is None:
            raise TransportError(f"{self.name}: not open")
        try:
            self._sock.sendall(data)
        except OSError as e:
            raise TransportError(f"{self.name}: {e}") from None

    def read(self, size: int, timeout: float) -> bytes:
        if self._sock is None:
            raise TransportError(f"{self.name}: not open")
        try:
            self._sock.settimeout(max(timeout, 0.001))
            data = self._sock.recv(size)
        except socket.timeout:
            return b""
        except OSError as e:
            raise TransportError(f"{self.name}: {e}") from None
        if not data:
            raise TransportError(f"{self.name}: closed by the device")
        return data


class UsbTransport(Transport):
    """A USB device spoken to over bulk endpoints (pyusb; no hotplug events, so a failure means poll)."""

    def __init__(self, vid: int, pid: int, in_ep: int = 0x82, out_ep: int = 0x01,
                 backend=None) -> None:
        self.vid, self.pid, self.in_ep, self.out_ep = vid, pid, in_ep, out_ep
        self.backend = backend
        self.name = f"usb:{vid:04x}:{pid:04x}"
        self._dev = None

    def open(self) -> None:
        try:
            import usb.core
        except ImportError:
            raise TransportError(f"{self.name}: pyusb is not installed") from None
        try:
            dev = usb.core.find(idVendor=self.vid, idProduct=self.pid, backend=self.backend)
        except usb.core.NoBackendError:
            raise TransportError(f"{self.name}: no USB backend (libusb) on this machine") from None
        if dev is None:
            raise TransportError(f"{self.name}: not connected")
        try:
            if dev.is_kernel_driver_active(0):
                dev.detach_kernel_driver(0)
        except (NotImplementedError, usb.core.USBError):
            pass
        try:
            dev.set_configuration()
        except usb.core.USBError as e:
            raise TransportError(f"{self.name}: {e}") from None
        self._dev = dev

    def close(self) -> None:
        if self._dev is not None:
            try:
                import usb.util
                usb.util.dispose_resources(self._dev)
            finally:
                self._dev = None

    def write(self, data: bytes) -> None:
        import usb.core

        if self._dev is None:
            raise TransportError(f"{self.name}: not open")
        try:
            self._dev.write(self.out_ep, data, timeout=5000)
        except usb.core.USBError as e:
            raise TransportError(f"{self.name}: {e}") from None

    def read(self, size: int, timeout: float) -> bytes:
        import usb.core

        if self._dev is None:
            raise TransportError(f"{self.name}: not open")
        try:
            return bytes(self._dev.read(self.in_ep, size, timeout=max(int(timeout * 1000), 1)))
        except usb.core.USBTimeoutError:
            return b""
        except usb.core.USBError as e:
            raise TransportError(f"{self.name}: {e}") from None


class FileTransport(Transport):
    """A device file written to blindly (e.g. /dev/usb/lp0): it cannot answer."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.name = f"file:{path}"
        self._f: io.FileIO | None = None

    def open(self) -> None:
        try:
            self._f = open(self.path, "ab", buffering=0)
        except OSError as e:
            raise TransportError(f"{self.name}: {e}") from None

    def close(self) -> None:
        if self._f is not None:
            try:
                self._f.close()
            finally:
                self._f = None

    def write(self, data: bytes) -> None:
        if self._f is None:
            raise TransportError(f"{self.name}: not open")
        try:
            self._f.write(data)
        except OSError as e:
            raise TransportError(f"{self.name}: {e}") from None

    def read(self, size: int, timeout: float) -> bytes:
        time.sleep(min(timeout, 0.05))
        return b""


class MemoryTransport(Transport):
    """One end of an in-process byte line, like one end of a null-modem cable (python-can's
    virtual bus, for bytes). Made in pairs by `memory_pair`.

    For simulations and tests that must be reproducible: nothing runs in a thread.
    A peer with a `receiver` (a simulated device's brain) is handed the bytes inside
    the writer's `write`, and whatever it answers is waiting for the writer's next
    `read`; a peer without one buffers them for its own `read`. `unplug()` pulls the
    cable: both ends fail until `plug()`, as a serial line does.
    """

    def __init__(self, name: str = "memory") -> None:
        self.name = name
        self.peer: MemoryTransport | None = None
        self.receiver: Callable[[bytes], None] | None = None
        self.plugged = True
        self._open = False
        self._inbox = bytearray()
        self._ready = threading.Condition()

    def open(self) -> None:
        if not self.plugged:
            raise TransportError(f"{self.name}: unplugged")
        self._open = True

    def close(self) -> None:
        self._open = False
        with self._ready:
            self._inbox.clear()

    def write(self, data: bytes) -> None:
        if not (self._open and self.plugged) or self.peer is None:
            raise TransportError(f"{self.name}: {'not open' if self.plugged else 'unplugged'}")
        self.peer._deliver(bytes(data))

    def read(self, size: int, timeout: float) -> bytes:
        if not (self._open and self.plugged):
            raise TransportError(f"{self.name}: {'not open' if self.plugged else 'unplugged'}")
        with self._ready:
            if not self._inbox and timeout > 0:
                self._ready.wait_for(lambda: self._inbox or not self.plugged, timeout)
            data = bytes(self._inbox[:size])
            del self._inbox[:size]
            return data

    def _deliver(self, data: bytes) -> None:
        if self.receiver is not None:
            self.receiver(data)
            return
        with self._ready:
            self._inbox += data
            self._ready.notify_all()

    def unplug(self) -> None:
        """Pull the cable: both ends fail on their next write or read."""
        for end in (self, self.peer):
            if end is not None:
                with end._ready:
                    end.plugged = False
                    end._inbox.clear()
                    end._ready.notify_all()

    def plug(self) -> None:
        for end in (self, self.peer):
            if end is not None:
                end.plugged = True


def memory_pair(name: str = "memory") -> tuple[MemoryTransport, MemoryTransport]:
    """A line with two ends: (the controller's end, the device's end)."""
    host, device = MemoryTransport(f"{name}:host"), MemoryTransport(f"{name}:device")
    host.peer, device.peer = device, host
    return host, device


class Backoff:
    """Delays between reconnect attempts: doubling from `first` up to `most` seconds."""

    def __init__(self, first: float = 0.5, most: float = 30.0) -> None:
        self.first, self.most = first, most
        self.delay = first

    def next_delay(self) -> float:
        d = self.delay
        self.delay = min(self.delay * 2, self.most)
        return d

    def reset(self) -> None:
        self.delay = self.first


class DeviceLink:
    """One device's line: opened on demand, reopened with backoff after a failure.

    Every change of health goes to `on_health` once (no repeats), so the
    supervisor hears "offline" when the cable is pulled and "online" when it
    is back, and a driver never writes its own reconnect loop.
    """

    def __init__(self, device: str, transport: Transport, on_health: HealthListener | None = None,
                 backoff: Backoff | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.device = device
        self.transport = transport
        self.on_health = on_health
        self.backoff = backoff or Backoff()
        self.clock = clock
        self.lock = threading.RLock()
        self.health: DeviceHealth | None = None
        self._open = False
        self._next_try = 0.0

    def _report(self, state: Health, detail: str = "") -> None:
        report = DeviceHealth(self.device, state, detail)
        if report != self.health:
            self.health = report
            log.info("%s: %s %s", self.device, state.value, detail)
            if self.on_health:
                try:
                    self.on_health(report)
                except Exception:
                    log.exception("health listener failed")

    def ensure_open(self) -> bool:
        """True when the line is open; tries to open it when the backoff allows."""
        with self.lock:
            if self._open:
                return True
            if self.clock() < self._next_try:
                return False
            try:
                self.transport.open()
            except TransportError as e:
                self._next_try = self.clock() + self.backoff.next_delay()
                self._report(Health.OFFLINE, str(e))
                return False
            self._open = True
            self.backoff.reset()
            self._report(Health.ONLINE)
            return True

    def failed(self, error: Exception) -> None:
        """The line broke mid-conversation: close it, report it, retry after the backoff."""
        with self.lock:
            self._open = False
            try:
                self.transport.close()
            except Exception:
                pass
            self._next_try = self.clock() + self.backoff.next_delay()
            self._report(Health.OFFLINE, str(error))

    def fault(self, detail: str) -> None:
        """The device answers but cannot do its job (paper out)."""
        self._report(Health.FAULT, detail)

    def fine(self) -> None:
        """The device answers and can work again."""
        self._report(Health.ONLINE)

    def write(self, data: bytes) -> None:
        with self.lock:
            if not self.ensure_open():
                raise TransportError(f"{self.device}: offline")
            try:
                self.transport.write(data)
            except TransportError as e:
                self.failed(e)
                raise

    def read(self, size: int, timeout: float) -> bytes:
        with self.lock:
            if not self.ensure_open():
                raise TransportError(f"{self.device}: offline")
            try:
                return self.transport.read(size, timeout)
            except TransportError as e:
                self.failed(e)
                raise

    def poll(self, timeout: float) -> bytes:
        """What a polling driver reads: one byte within `timeout`, then whatever else is there,
        so a message is handed over as soon as it ends. Offline, it waits out `timeout` while
        the backoff runs and gives b"", so a polling loop never spins."""
        if not self.ensure_open():
            time.sleep(timeout)
            return b""
        data = self.read(1, timeout)
        if data:
            data += self.read(4096, 0)
        return data

    def read_exactly(self, size: int, timeout: float) -> bytes:
        with self.lock:
            if not self.ensure_open():
                raise TransportError(f"{self.device}: offline")
            try:
                return self.transport.read_exactly(size, timeout)
            except TransportError as e:
                self.failed(e)
                raise

    def close(self) -> None:
        with self.lock:
            self._open = False
            self.transport.close()


# --- the transports a hall config can name ---------------------------------------------------
#
# Like python-can's bus interfaces, each transport registers itself under the name the hall
# config uses (`transport = "serial"`): the device key that says where the device is, what that
# looks like and its check (for the config's error message), and how to open it. A new transport
# is one `register_transport` call beside its class; the config check and `transport_for` find it.


@dataclass(frozen=True)
class TransportKind:
    """One transport a device may be reached by.

    `where`: the device key naming where the device is ("port", "address" or "topic");
    `expected`: what that value looks like, for a config error; `check`: True when it does;
    `open(where, options)`: the byte transport (None for a transport that carries messages,
    not bytes: MQTT devices are driven through the controller's MQTT link)."""

    name: str
    where: str
    expected: str
    check: Callable[[object], bool]
    open: Callable[[str, dict[str, str]], Transport] | None = None


TRANSPORTS: dict[str, TransportKind] = {}


def register_transport(kind: TransportKind) -> TransportKind:
    """Make `kind` known to the hall config and to `transport_for` (a later one of the same
    name replaces the earlier)."""
    TRANSPORTS[kind.name] = kind
    return kind


def _is_path(value: object) -> bool:
    return isinstance(value, str) and value.strip() != ""


def _is_host_port(value: object) -> bool:
    if not isinstance(value, str) or not re.fullmatch(r"[^\s:]\S*:[0-9]{1,5}", value):
        return False
    return 1 <= int(value.rpartition(":")[2]) <= 65535


HOST_PORT = '"host:port" with a port from 1 to 65535, e.g. "127.0.0.1:18830"'


def _tcp(address: str, options: dict[str, str]) -> Transport:
    host, _, p = address.rpartition(":")
    return TcpTransport(host, int(p))


def _usb(address: str, options: dict[str, str]) -> Transport:
    vid, _, pid = address.partition(":")
    return UsbTransport(int(vid, 16), int(pid, 16), int(options.get("in_ep", "0x82"), 0),
                        int(options.get("out_ep", "0x01"), 0))


register_transport(TransportKind(
    "serial", "port", 'a device path such as "/dev/ttyUSB1"', _is_path,
    lambda port, options: SerialTransport(port, int(options.get("baud", 9600)))))
register_transport(TransportKind("file", "port", "a file path", _is_path,
                                 lambda port, options: FileTransport(port)))
register_transport(TransportKind("tcp", "address", HOST_PORT, _is_host_port, _tcp))
register_transport(TransportKind(
    "usb", "address", 'a USB "vid:pid" in hex such as "0416:5011"',
    lambda v: isinstance(v, str) and bool(re.fullmatch("[0-9a-fA-F]{4}:[0-9a-fA-F]{4}", v)), _usb))


def transport_for(kind: str, port: str | None = None, address: str | None = None,
                  options: dict[str, str] | None = None) -> Transport:
    """The byte transport a device config names (`serial`, `tcp`, `usb`, `file`, or any
    registered one), at its `port` or `address`."""
    found = TRANSPORTS.get(kind)
    where = (port if found.where == "port" else address if found.where == "address" else None
             ) if found else None
    if found is None or found.open is None or not where:
        raise ValueError(f"no byte transport for {kind!r} (port={port!r}, address={address!r})")
    return found.open(where, options or {})
