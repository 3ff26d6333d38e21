"""Window 3's LED bar: the real driver over a real serial port (a pty) to the simulated bar, both codecs."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime

import pytest

from drivers.caller_display import Calling, Colour, Idle, PauseSign, WindowBar
from drivers.caller_display import generic_codec
from drivers.transport import Backoff, DeviceHealth, DeviceLink, Health, SerialTransport
from sim.caller_display import SimulatedBar

BACK = datetime(2024, 5, 6, 10, 45)
CALL = Calling(3, "A012", "社保卡补换")
PAUSE = PauseSign(3, "外出取件", BACK)


@dataclass
class Window3:
    """Window 3's bar (simulated, at bus address 3) and what the controller hears from its line."""

    sim: SimulatedBar
    link: DeviceLink
    bar: WindowBar
    health: list[DeviceHealth] = field(default_factory=list)

    @property
    def states(self) -> list[Health]:
        return [h.state for h in self.health]

    def until(self, done, seconds: float = 2.0) -> None:
        deadline = time.monotonic() + seconds
        while not done():
            assert time.monotonic() < deadline, "never got there"
            time.sleep(0.02)


@pytest.fixture(params=["generic", "onbon"])
def window3(request, tmp_path):
    sim = SimulatedBar(request.param, address=3, link=str(tmp_path / "ttyBAR")).start()
    health: list[DeviceHealth] = []
    link = DeviceLink("window-3.bar", SerialTransport(sim.path, 9600), None, Backoff(first=0.05, most=0.2))
    w = Window3(sim, link, WindowBar("window-3.bar", link, 3, request.param), health)

    def on_health(h: DeviceHealth) -> None:  # as the controller wires it: record, and re-show on ONLINE
        health.append(h)
        w.bar.health_changed(h)

    link.on_health = on_health
    yield w
    link.close()
    sim.unplug()


def test_a_called_ticket_appears_on_the_windows_bar_in_green(window3):
    assert window3.bar.show(CALL)
    assert window3.sim.wait_until(lambda b: "A012" in b.text)
    if window3.sim.codec == "generic":
        assert window3.sim.showing == ["A012 请到3号窗口", "社保卡补换"]
    else:
        assert window3.sim.showing == ["A012 请到3号窗口 社保卡补换"]
    assert window3.sim.colour is Colour.GREEN
    assert window3.bar.in_sync and window3.states == [Health.ONLINE]


def test_the_pause_sign_shows_pause_service_the_reason_and_the_return_time_in_red(window3):
    window3.bar.show(CALL)
    assert window3.bar.show(PAUSE)
    assert window3.sim.wait_until(lambda b: "暂停服务" in b.text)
    assert "外出取件" in window3.sim.text and "预计 10:45 恢复" in window3.sim.text
    assert window3.sim.colour is Colour.RED
    assert [lines[0].split()[0] for lines in window3.sim.history] == ["A012", "暂停服务"]


def test_after_the_bar_is_unplugged_and_plugged_back_resync_puts_the_pause_sign_back(window3):
    window3.bar.show(CALL)
    window3.sim.wait_until(lambda b: "A012" in b.text)
    window3.sim.unplug()
    assert window3.sim.showing == []  # the bar lost power with its cable
    assert window3.bar.show(PAUSE) is False  # staff pause while the bar is away: no exception
    assert window3.states == [Health.ONLINE, Health.OFFLINE]
    assert window3.bar.current == PAUSE and not window3.bar.in_sync

    window3.sim.plug()
    plugged = time.monotonic()
    window3.until(window3.bar.resync)
    assert window3.sim.wait_until(lambda b: "暂停服务" in b.text, timeout=2.0)
    assert time.monotonic() - plugged < 2.0
    assert window3.states == [Health.ONLINE, Health.OFFLINE, Health.ONLINE]
    assert window3.bar.in_sync
    assert window3.sim.history[-1][0].startswith("暂停服务")
    assert window3.sim.frames == 2  # the reopening send was not repeated by the health listener


def test_a_bar_replugged_unnoticed_gets_the_state_on_the_next_show(window3):
    window3.bar.show(CALL)
    window3.sim.wait_until(lambda b: "A012" in b.text)
    window3.sim.unplug()
    window3.sim.plug()  # the driver still holds the old, dead port
    assert window3.sim.showing == []
    window3.until(lambda: window3.bar.show(Idle(3)))
    assert window3.sim.wait_until(lambda b: "欢迎光临" in b.text)
    assert window3.sim.colour is Colour.YELLOW
    assert Health.OFFLINE in window3.states and window3.states[-1] is Health.ONLINE


def test_a_bar_that_is_not_there_at_all_is_reported_offline_and_never_raises(tmp_path):
    link = DeviceLink("window-9.bar", SerialTransport(str(tmp_path / "missing")), None, Backoff(0.05, 0.2))
    bar = WindowBar("window-9.bar", link, 9)
    assert bar.show(CALL) is False and bar.resync() is False
    assert link.health is not None and link.health.state is Health.OFFLINE
    assert bar.current == CALL


def test_a_silent_generic_bar_counts_as_offline_until_it_answers_again(tmp_path):
    sim = SimulatedBar("generic", address=3, link=str(tmp_path / "ttyBAR")).start()
    link = DeviceLink("window-3.bar", SerialTransport(sim.path), None, Backoff(first=0.05, most=0.2))
    bar = WindowBar("window-3.bar", link, 3, "generic", ack_timeout=0.2)
    try:
        sim.silent = True
        assert bar.show(CALL) is False
        assert link.health is not None and link.health.state is Health.OFFLINE
        assert "did not acknowledge" in link.health.detail
        sim.silent = False
        deadline = time.monotonic() + 2
        while not bar.resync():
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert link.health.state is Health.ONLINE and "A012" in sim.text
    finally:
        link.close()
        sim.unplug()


def test_a_bar_ignores_frames_for_another_window_on_the_same_bus():
    sim = SimulatedBar("generic", address=3)
    assert sim.receive(generic_codec.encode(4, ["B001"], Colour.GREEN)) == []
    assert sim.showing == []
    assert sim.receive(generic_codec.encode(3, ["B001"], Colour.GREEN)) == [generic_codec.encode_ack(3)]
    assert sim.receive(generic_codec.encode(generic_codec.BROADCAST, ["闭馆"], Colour.RED)) == []
    assert sim.showing == ["闭馆"]


def test_an_unknown_codec_is_refused_when_the_bar_is_set_up():
    with pytest.raises(ValueError, match="generic, onbon"):
        WindowBar("window-3.bar", DeviceLink("x", SerialTransport("/dev/null")), 3, "vendorx")
