"""The kiosk's code scanner driver against the simulated scanner on a real pty."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

import pytest

from drivers.code_scanner import CodeScanner, Scan, ScanKind
from drivers.transport import Backoff, DeviceHealth, DeviceLink, Health, SerialTransport
from sim.code_scanner import SimulatedScanner

ELDER = "11010119500307097X"
POLL = 0.05


@dataclass
class Entrance:
    """The entrance kiosk's scanner (simulated) and what the controller hears from the driver."""

    sim: SimulatedScanner
    link: DeviceLink
    scanner: CodeScanner = None  # type: ignore[assignment]
    scans: list[Scan] = field(default_factory=list)
    health: list[DeviceHealth] = field(default_factory=list)

    @property
    def texts(self) -> list[str]:
        return [s.text for s in self.scans]

    @property
    def states(self) -> list[Health]:
        return [h.state for h in self.health]

    def polls(self, n: int) -> None:
        for _ in range(n):
            self.scanner.poll_once(POLL)

    def poll_until(self, done, seconds: float = 3.0) -> None:
        deadline = time.monotonic() + seconds
        while not done():
            assert time.monotonic() < deadline, "the scanner never got there"
            self.scanner.poll_once(POLL)


@pytest.fixture
def entrance(tmp_path, request):
    """`@pytest.mark.parametrize("entrance", [dict(prefix=..., ...)], indirect=True)` sets the scanner up."""
    setup = getattr(request, "param", {})
    sim = SimulatedScanner(link=str(tmp_path / "ttySCANNER"), **setup).start()
    e = Entrance(sim, None)  # type: ignore[arg-type]
    e.link = DeviceLink("kiosk-1.scanner", SerialTransport(sim.path, 9600), e.health.append,
                        Backoff(first=0.05, most=0.2))
    e.scanner = CodeScanner("kiosk-1.scanner", e.link, e.scans.append, prefix=setup.get("prefix", b""),
                            suffix=setup.get("suffix", b""), stale_after=0.15)
    # The kiosk is up before anyone scans: opening a port flushes what came before (pyserial).
    assert e.link.ensure_open()
    yield e
    e.link.close()
    sim.unplug()


def test_codes_arrive_in_the_order_they_were_scanned(entrance):
    for text in (ELDER, "APT-7F3A9C21D0", "6901234567892", "APT-00C0FFEE"):
        entrance.sim.scan(text)
    entrance.poll_until(lambda: len(entrance.scans) == 4)
    assert entrance.texts == [ELDER, "APT-7F3A9C21D0", "6901234567892", "APT-00C0FFEE"]
    assert [s.kind for s in entrance.scans] == [ScanKind.ID_NUMBER, ScanKind.APPOINTMENT, ScanKind.OTHER,
                                                ScanKind.APPOINTMENT]
    entrance.polls(2)
    assert len(entrance.scans) == 4 and entrance.states == [Health.ONLINE]


@pytest.mark.parametrize("entrance", [dict(terminator=b"\r"), dict(terminator=b"\n")], indirect=True,
                         ids=["CR", "LF"])
def test_a_scanner_ending_lines_with_cr_or_lf_alone_reads_too(entrance):
    entrance.sim.scan(ELDER)
    entrance.sim.scan("APT-ABCD")
    entrance.poll_until(lambda: len(entrance.scans) == 2)
    assert entrance.texts == [ELDER, "APT-ABCD"]


def test_a_code_trickling_in_from_a_slow_uart_arrives_whole(entrance):
    sent = threading.Thread(target=entrance.sim.scan, args=("APT-7F3A9C21D0",),
                            kwargs=dict(chunks=8, gap=0.03))
    sent.start()
    entrance.poll_until(lambda: entrance.scans)
    sent.join()
    assert entrance.texts == ["APT-7F3A9C21D0"]
    assert entrance.scanner.decoder.dropped == 0  # the gaps were shorter than stale_after


@pytest.mark.parametrize("entrance", [dict(prefix=b"\x02", suffix=b"\x03")], indirect=True)
def test_a_stx_etx_scanner_hands_over_the_code_alone(entrance):
    entrance.sim.scan("APT-7F3A9C21D0", chunks=5, gap=0.01)
    entrance.poll_until(lambda: entrance.scans)
    assert entrance.texts == ["APT-7F3A9C21D0"]


@pytest.mark.parametrize("entrance", [dict(encoding="gb18030")], indirect=True)
def test_a_scanner_set_to_gb18030_reads_in_chinese(entrance):
    entrance.sim.scan("张三丰的预约")
    entrance.poll_until(lambda: entrance.scans)
    assert entrance.texts == ["张三丰的预约"]


def test_a_garbage_line_between_two_scans_is_dropped_and_the_next_scan_reads(entrance, caplog):
    caplog.set_level(logging.WARNING, "drivers.code_scanner")
    entrance.sim.scan("APT-AAAA")
    entrance.sim.send_raw(b"\x00\xff\xfe\x1b[2J\x07\x80\x81\r\n")  # a scanner in the wrong mode
    entrance.sim.scan("APT-BBBB")
    entrance.poll_until(lambda: len(entrance.scans) == 2)
    assert entrance.texts == ["APT-AAAA", "APT-BBBB"]
    assert entrance.scanner.decoder.dropped == 1
    assert "dropped 10 bytes: neither utf-8 nor gb18030" in caplog.text


def test_noise_with_no_line_end_does_not_spoil_the_next_scan(entrance, caplog):
    caplog.set_level(logging.WARNING, "drivers.code_scanner")
    entrance.sim.send_raw(b"\x00\xff\x13")  # the scanner powering up
    entrance.polls(1)
    assert entrance.scanner.decoder.pending == 3
    entrance.polls(4)  # 0.2 s of quiet: longer than stale_after
    assert entrance.scanner.decoder.pending == 0
    entrance.sim.scan(ELDER)
    entrance.poll_until(lambda: entrance.scans)
    assert entrance.texts == [ELDER]
    assert "dropped 3 bytes: no line end within 0.15 s" in caplog.text


@pytest.mark.parametrize("entrance", [dict(prefix=b"\x02", suffix=b"\x03")], indirect=True)
def test_with_a_prefix_even_noise_stuck_to_the_scan_does_not_spoil_it(entrance):
    entrance.sim.send_raw(b"\x00\xff\x02\x13" + b"\xaa" * 600)  # longer than any code: dropped unseen
    entrance.sim.scan(ELDER)
    entrance.poll_until(lambda: entrance.scans)
    assert entrance.texts == [ELDER]


def test_an_unplugged_scanner_goes_offline_and_scans_again_when_plugged_back(entrance):
    entrance.sim.scan("APT-AAAA")
    entrance.poll_until(lambda: entrance.scans)
    entrance.sim.send_raw(b"APT-BB")  # the cable comes out mid-code
    entrance.polls(1)
    entrance.sim.unplug()
    entrance.polls(1)
    assert entrance.states == [Health.ONLINE, Health.OFFLINE]
    started = time.monotonic()
    entrance.polls(4)  # still unplugged: no crash, no busy loop, and never online
    assert time.monotonic() - started >= 4 * POLL
    # The link reports again only when its reason changes (the read failed, the port is gone).
    assert entrance.states[0] is Health.ONLINE and set(entrance.states[1:]) == {Health.OFFLINE}
    assert len(entrance.states) <= 3

    entrance.sim.plug()  # the same /dev/serial/by-id style path
    entrance.poll_until(lambda: entrance.states[-1] is Health.ONLINE)
    entrance.sim.scan("APT-CCCC")
    entrance.poll_until(lambda: len(entrance.scans) == 2)
    assert entrance.texts == ["APT-AAAA", "APT-CCCC"]  # not "APT-BBAPT-CCCC"
    assert entrance.states[-1] is Health.ONLINE and entrance.states.count(Health.ONLINE) == 2


def test_a_failing_listener_does_not_stop_the_scanner(entrance, caplog):
    def listener(scan: Scan) -> None:
        entrance.scans.append(scan)
        if len(entrance.scans) == 1:
            raise RuntimeError("kiosk page busy")

    entrance.scanner.on_scan = listener
    entrance.sim.scan("APT-AAAA")
    entrance.sim.scan("APT-BBBB")
    entrance.poll_until(lambda: len(entrance.scans) == 2)
    assert entrance.texts == ["APT-AAAA", "APT-BBBB"] and "scan listener failed" in caplog.text


def test_the_scanner_thread_hands_over_codes_and_stops(entrance):
    stop = threading.Event()
    thread = threading.Thread(target=entrance.scanner.run, args=(stop, POLL), daemon=True)
    thread.start()
    entrance.sim.scan("APT-AAAA", chunks=4, gap=0.02)
    entrance.sim.scan(ELDER)
    deadline = time.monotonic() + 3
    while len(entrance.scans) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    stop.set()
    thread.join(2)
    assert not thread.is_alive() and entrance.texts == ["APT-AAAA", ELDER]
