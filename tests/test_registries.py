"""A new vendor's display is a codec file, its registration and one config line: the hall
config accepts it, the assembly drives it, and the bar above window 1 shows the call."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from controller.assembly import assemble
from controller.counters.calling_devices import CounterRole
from controller.runtime.clock import ManualClock
from controller.config.hall import ConfigError, parse_hall
from controller.core import commands as c
from controller.floor.device_kinds import DeviceKind, Station, device_kinds
from controller.config.workdays import hall_calendar
from drivers.caller_display import CODECS, register_codec
from drivers.transport import TRANSPORTS, TransportKind, memory_pair
from sim.halls import at
from tests import toy_codec
from tests.server import wait_for
from tests.test_config import minimal_hall_dict


@pytest.fixture
def lines(monkeypatch):
    """A toy transport, `loop`, registered for the test: a device at `address = "NAME"` is
    the controller's end of an in-memory line; the test holds the device's end."""
    ends: dict[str, Any] = {}

    def open_line(name: str, options: dict[str, str]):
        host, device = memory_pair(name)
        ends[name] = device
        device.open()
        return host

    monkeypatch.setitem(TRANSPORTS, "loop", TransportKind(
        "loop", "address", "a line name", lambda v: isinstance(v, str) and v != "", open_line))
    return ends


@pytest.fixture
def toy_registered(monkeypatch):
    monkeypatch.setitem(CODECS, "toy", CODECS["generic"])  # restored after the test
    register_codec("toy", toy_codec)


def hall_with(*devices: dict[str, Any]):
    data = copy.deepcopy(minimal_hall_dict())
    data["devices"] = list(devices)
    data["voice"] = {"enabled": False}
    return parse_hall(data)


def shown(end, address: int) -> list[str]:
    """The bar texts the toy frames on the device's end of the line carried so far."""
    data = end.read(65536, 0.05)
    shown.buffer = getattr(shown, "buffer", b"") + data
    return [frame[4:].decode() for frame in shown.buffer.split(b"\n")
            if frame.startswith(b"TOY" + bytes([address]))]


def call_at_window_1(hall, tmp_path):
    clock = ManualClock(at("09:00"))
    running = assemble(hall, tmp_path, clock, status_url=None, workdays=hall_calendar(None),
                       stop_with_app=False)
    running.ctrl.execute(c.Login(1, "zhangli"), "staff:zhangli")
    running.ctrl.execute(c.IssueTicket("A"), "kiosk")
    running.ctrl.execute(c.CallNext(1), "staff:zhangli")
    return running


def test_a_new_vendors_bar_is_a_codec_file_its_registration_and_one_config_line(
        tmp_path, lines, toy_registered):
    shown.buffer = b""
    hall = hall_with({"id": "bar-1", "kind": "caller_display", "transport": "loop",
                      "address": "bar-line-1", "window": 1,
                      "options": {"codec": "toy", "address": "7"}})
    running = call_at_window_1(hall, tmp_path)
    try:
        wait_for(lambda: [t for t in shown(lines["bar-line-1"], 7) if "A001" in t])
    finally:
        running.close()


def test_a_codec_the_controller_does_not_know_is_a_config_error_naming_the_option():
    with pytest.raises(ConfigError) as e:
        hall_with({"id": "bar-1", "kind": "caller_display", "transport": "serial",
                   "port": "/dev/ttyUSB2", "window": 1, "options": {"codec": "toy"}})
    assert e.value.key == "devices[0].options.codec"
    assert "generic" in e.value.reason and "onbon" in e.value.reason


def test_a_new_kind_registers_its_check_and_attaches_by_its_station(
        tmp_path, monkeypatch, lines, toy_registered):
    """A queue sign over a window is a bar by another name: registered as a counter device
    showing the window's state, it needs a window and checks its own options."""
    shown.buffer = b""

    def needs_codec(options):
        return None if "codec" in options else ("codec", "missing; a queue sign names its codec")

    monkeypatch.setitem(device_kinds(), "queue_sign", DeviceKind(
        "queue_sign", Station.COUNTER, needs_codec, role=CounterRole.DISPLAY))
    sign = {"id": "sign-1", "kind": "queue_sign", "transport": "loop", "address": "sign-line",
            "window": 1, "options": {"codec": "toy", "address": "9"}}
    with pytest.raises(ConfigError, match="window"):
        hall_with({k: v for k, v in sign.items() if k != "window"})
    with pytest.raises(ConfigError) as e:
        hall_with({**sign, "options": {"address": "9"}})
    assert e.value.key == "devices[0].options.codec"

    running = call_at_window_1(hall_with(sign), tmp_path)
    try:
        wait_for(lambda: [t for t in shown(lines["sign-line"], 9) if "A001" in t])
    finally:
        running.close()


def test_an_unknown_transport_is_refused_with_the_registered_ones_named():
    with pytest.raises(ConfigError) as e:
        hall_with({"id": "bar-1", "kind": "caller_display", "transport": "carrier-pigeon",
                   "address": "x", "window": 1})
    for name in ("serial", "usb", "tcp", "mqtt", "file"):
        assert f'"{name}"' in e.value.reason
