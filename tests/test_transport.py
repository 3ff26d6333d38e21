"""Transports and the reconnecting device link, on real ptys and TCP sockets."""

from __future__ import annotations

import socket
import threading

import pytest

from drivers.transport import (
    Backoff, DeviceLink, Health, SerialTransport, TcpTransport, TransportError, transport_for,
)
from sim.pty_device import PtyDevice


class Echo(PtyDevice):
    def handle(self, data: bytes) -> None:
        self.send(data.upper())


def test_serial_round_trip_in_chunks(tmp_path):
    with Echo(link=str(tmp_path / "ttyECHO")) as dev:
        t = SerialTransport(dev.path)
        t.open()
        t.write(b"hello")
        assert t.read_exactly(5, 2) == b"HELLO"
        with pytest.raises(TransportError, match="0 of 3 bytes"):
            t.read_exactly(3, 0.1)
        t.close()


def test_link_reports_unplug_and_replug_once_each(tmp_path):
    seen = []
    now = [0.0]
    dev = Echo(link=str(tmp_path / "ttyECHO")).start()
    link = DeviceLink("keypad-1", SerialTransport(dev.path), seen.append,
                      Backoff(first=1, most=4), clock=lambda: now[0])
    link.write(b"a")
    assert link.read_exactly(1, 2) == b"A"
    dev.unplug()
    with pytest.raises(TransportError):
        link.write(b"b" * 4096)
        link.read_exactly(1, 0.5)
    assert not link.ensure_open()  # within the backoff: no retry yet
    dev.plug()
    now[0] += 1
    assert link.ensure_open()
    link.write(b"c")
    assert link.read_exactly(1, 2) == b"C"
    assert [h.state for h in seen] == [Health.ONLINE, Health.OFFLINE, Health.ONLINE]
    dev.unplug()


def test_link_backoff_doubles_to_its_limit():
    b = Backoff(first=0.5, most=4)
    assert [b.next_delay() for _ in range(6)] == [0.5, 1, 2, 4, 4, 4]
    b.reset()
    assert b.next_delay() == 0.5


def test_tcp_round_trip_and_a_refused_connection():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]

    def serve():
        conn, _ = server.accept()
        conn.sendall(conn.recv(100)[::-1])
        conn.close()

    threading.Thread(target=serve, daemon=True).start()
    t = TcpTransport("127.0.0.1", port)
    t.open()
    t.write(b"abc")
    assert t.read_exactly(3, 2) == b"cba"
    with pytest.raises(TransportError, match="closed"):
        t.read(1, 1)
    t.close()
    server.close()
    with pytest.raises(TransportError):
        TcpTransport("127.0.0.1", port).open()


def test_transport_for_names_what_it_cannot_build():
    assert isinstance(transport_for("serial", port="/dev/ttyUSB0"), SerialTransport)
    assert transport_for("usb", address="0416:5011").name == "usb:0416:5011"
    with pytest.raises(ValueError, match="mqtt"):
        transport_for("mqtt")
