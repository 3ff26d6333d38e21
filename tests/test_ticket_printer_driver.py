"""The kiosk's ticket printer driver against the simulated printer, on a real pty and on TCP."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import pytest

from drivers.ticket_printer import (
    PaperOut, PaperStatus, PrinterUnavailable, StatusQuery, TicketPrint, TicketPrinter,
    decode_printout,
)
from drivers.transport import (
    Backoff, DeviceHealth, DeviceLink, FileTransport, Health, SerialTransport, TcpTransport,
)
from sim.pty_device import PtyDevice
from sim.ticket_printer import PtyPrinter, SimulatedPrinter, TcpPrinter, load_printers

TICKET = TicketPrint(
    hall_name="渝北区政务服务中心", service_name="社保卡补换", number="B007", people_ahead=3,
    wait_minutes=(10, 25), issued_at=datetime(2024, 5, 6, 14, 30), qr_url="https://zw.example.cn/t/B007",
    masked_name="李*", footer=("——————",),
)


@dataclass
class Kiosk:
    sim: PtyPrinter | TcpPrinter
    link: DeviceLink
    printer: TicketPrinter
    seen: list[DeviceHealth]
    now: list[float]

    @property
    def health(self) -> Health:
        assert self.link.health is not None
        return self.link.health.state


@pytest.fixture(params=["serial", "tcp"])
def kiosk(request, tmp_path):
    if request.param == "serial":
        sim = PtyPrinter(SimulatedPrinter("kiosk-1"), link=str(tmp_path / "ttyPRN")).start()
        transport = SerialTransport(sim.path, 115200)
    else:
        sim = TcpPrinter(SimulatedPrinter("kiosk-1")).start()
        transport = TcpTransport(sim.host, sim.port)
    seen: list[DeviceHealth] = []
    now = [0.0]
    link = DeviceLink("kiosk-1-printer", transport, seen.append, Backoff(first=1, most=4),
                      clock=lambda: now[0])
    yield Kiosk(sim, link, TicketPrinter("kiosk-1-printer", link, status_timeout=1.0), seen, now)
    link.close()
    sim.unplug()


def test_a_ticket_comes_out_as_the_simulator_reads_it(kiosk):
    result = kiosk.printer.print_ticket(TICKET)
    assert not result.near_end and result.status_checked and result.bytes_sent > 0
    [ticket] = kiosk.sim.tickets
    assert "B007" in ticket.lines and "前面还有 3 人" in ticket.lines and "取号人 李*" in ticket.lines
    assert "——————" in ticket.lines
    assert ticket.qr == ["https://zw.example.cn/t/B007"] and (4, 4) in ticket.sizes
    assert kiosk.health is Health.ONLINE


def test_paper_near_end_prints_and_asks_for_a_new_roll(kiosk):
    kiosk.sim.paper = "near_end"
    assert kiosk.printer.paper_status() is PaperStatus.NEAR_END
    result = kiosk.printer.print_ticket(TICKET)
    assert result.near_end
    assert len(kiosk.sim.tickets) == 1 and kiosk.health is Health.ONLINE


def test_paper_out_sends_nothing_and_faults_until_the_roll_is_back(kiosk):
    kiosk.printer.print_ticket(TICKET)
    kiosk.sim.log.clear()
    kiosk.sim.paper = "out"
    with pytest.raises(PaperOut) as caught:
        kiosk.printer.print_ticket(TICKET)
    assert not caught.value.mid_ticket
    assert caught.value.kiosk_message == "打印机缺纸，请到导办台取号"
    assert isinstance(caught.value, PrinterUnavailable)
    assert kiosk.sim.log == [StatusQuery(4)]
    assert len(kiosk.sim.tickets) == 1
    assert kiosk.link.health == DeviceHealth("kiosk-1-printer", Health.FAULT, "缺纸")

    kiosk.sim.paper = "ok"
    kiosk.printer.print_ticket(TICKET)
    assert len(kiosk.sim.tickets) == 2
    assert [h.state for h in kiosk.seen] == [Health.ONLINE, Health.FAULT, Health.ONLINE]


def test_paper_running_out_mid_ticket_is_reported_as_possibly_incomplete(kiosk):
    kiosk.sim.paper_after(120)
    with pytest.raises(PaperOut) as caught:
        kiosk.printer.print_ticket(TICKET)
    assert caught.value.mid_ticket
    assert kiosk.sim.tickets == [] and kiosk.sim.pending.lines  # half a ticket, no cut
    assert kiosk.health is Health.FAULT


def test_a_pulled_cable_is_offline_and_a_replugged_one_prints_again(kiosk):
    kiosk.printer.print_ticket(TICKET)
    kiosk.sim.unplug()
    with pytest.raises(PrinterUnavailable) as caught:
        kiosk.printer.print_ticket(TICKET)
    assert not isinstance(caught.value, PaperOut)
    assert caught.value.kiosk_message == "打印机故障，请到导办台取号"
    assert kiosk.health is Health.OFFLINE
    with pytest.raises(PrinterUnavailable):  # within the backoff: no retry, no wait
        kiosk.printer.paper_status()

    kiosk.sim.plug()
    kiosk.now[0] += 5
    kiosk.printer.print_ticket(TICKET)
    assert len(kiosk.sim.tickets) == 2 and kiosk.health is Health.ONLINE


class Mute(PtyDevice):
    """Powered, cabled, and silent (a printer in a firmware hang)."""

    def handle(self, data: bytes) -> None:
        pass


class Chatty(PtyDevice):
    """Answers every status query with a stray byte first."""

    def handle(self, data: bytes) -> None:
        if data.endswith(b"\x10\x04\x04"):
            self.send(b"\x00\x12")


def test_a_printer_that_does_not_answer_is_offline():
    with Mute() as dev:
        link = DeviceLink("p", SerialTransport(dev.path))
        with pytest.raises(PrinterUnavailable, match="no answer"):
            TicketPrinter("p", link, status_timeout=0.2).print_ticket(TICKET)
        assert link.health is not None and link.health.state is Health.OFFLINE
        link.close()


def test_a_stray_byte_before_the_status_reply_is_skipped():
    with Chatty() as dev:
        link = DeviceLink("p", SerialTransport(dev.path))
        assert TicketPrinter("p", link, status_timeout=0.5).paper_status() is PaperStatus.OK
        link.close()


def test_a_write_only_printer_file_prints_without_status(tmp_path):
    path = tmp_path / "lp0"
    link = DeviceLink("p", FileTransport(str(path)))
    printer = TicketPrinter("p", link)
    result = printer.print_ticket(TICKET)
    assert not result.status_checked and not result.near_end
    assert any(getattr(i, "text", None) == "B007" for i in decode_printout(path.read_bytes()))
    with pytest.raises(PrinterUnavailable, match="cannot report status"):
        printer.paper_status()
    link.close()


def test_the_demo_hall_printers_file_starts_its_printers():
    sims = [spec.start() for spec in load_printers()]
    try:
        assert {type(s) for s in sims} == {PtyPrinter, TcpPrinter}
        assert {s.printer.name: s.paper for s in sims} == {
            "kiosk-1": PaperStatus.OK, "kiosk-2": PaperStatus.NEAR_END}
    finally:
        for s in sims:
            s.unplug()
