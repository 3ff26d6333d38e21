"""The in-process line the hall-day simulator puts between drivers and simulated devices."""

from __future__ import annotations

import pytest

from drivers.transport import DeviceLink, Health, TransportError, memory_pair


def test_bytes_cross_the_line_and_a_device_answers_inside_the_write():
    host, device = memory_pair("printer")
    device.open()
    device.receiver = lambda data: device.write(b"\x12" if data == b"\x10\x04\x04" else b"")
    host.open()
    host.write(b"\x10\x04\x04")
    assert host.read(8, 0) == b"\x12"  # the answer is there at once: no thread, no waiting
    assert host.read(8, 0) == b""


def test_without_a_receiver_bytes_wait_for_a_read_in_order():
    host, device = memory_pair()
    host.open()
    device.open()
    device.write(b"ab")
    device.write(b"cd")
    assert host.read(3, 0) == b"abc" and host.read(3, 0.01) == b"d"


def test_a_pulled_cable_is_an_offline_device_until_it_is_back():
    host, device = memory_pair("bar-7")
    device.open()
    device.receiver = lambda data: None
    seen = []
    now = [0.0]
    link = DeviceLink("bar-7", host, lambda h: seen.append(h.state), clock=lambda: now[0])
    link.write(b"x")
    host.unplug()
    with pytest.raises(TransportError):
        link.write(b"x")
    host.plug()
    with pytest.raises(TransportError):  # the backoff has not run out yet
        link.write(b"x")
    now[0] += 60
    link.write(b"x")
    assert seen == [Health.ONLINE, Health.OFFLINE, Health.ONLINE]
