"""The kiosk's ID card reader driver against the simulated reader on a real pty (and a faked USB reader)."""

from __future__ import annotations

import threading
import time
from array import array
from dataclasses import dataclass, field

import pytest

from controller.core.identity import is_valid
from drivers.id_reader import Card, CardType, Command, IdCardReader, ReaderStatus
from drivers.transport import Backoff, DeviceHealth, DeviceLink, Health, SerialTransport, UsbTransport
from sim.id_card_reader import SimulatedIdCardReader

PLACE_AGAIN = "读卡失败，请重新放置身份证"


@dataclass
class Kiosk:
    """One ticket kiosk: its reader (simulated) and what the controller hears from the driver."""

    sim: SimulatedIdCardReader
    link: DeviceLink
    reader: IdCardReader
    cards: list[Card] = field(default_factory=list)
    errors: list[tuple[ReaderStatus, str]] = field(default_factory=list)
    health: list[DeviceHealth] = field(default_factory=list)

    def polls(self, n: int) -> None:
        for _ in range(n):
            self.reader.poll_once()

    def poll_until(self, done, seconds: float = 3.0) -> None:
        deadline = time.monotonic() + seconds
        while not done():
            assert time.monotonic() < deadline, "the reader never got there"
            self.reader.poll_once()
            time.sleep(0.02)

    @property
    def states(self) -> list[Health]:
        return [h.state for h in self.health]


@pytest.fixture
def kiosk(tmp_path):
    sim = SimulatedIdCardReader(link=str(tmp_path / "ttyIDCARD")).start()
    health: list[DeviceHealth] = []
    link = DeviceLink("kiosk-1.id-reader", SerialTransport(sim.path, 115200), health.append,
                      Backoff(first=0.05, most=0.2))
    k = Kiosk(sim, link, None, health=health)  # type: ignore[arg-type]
    k.reader = IdCardReader("kiosk-1.id-reader", link, k.cards.append,
                            lambda status, message: k.errors.append((status, message)), pause=0.0)
    yield k
    link.close()
    sim.unplug()


def test_a_card_left_on_the_reader_is_read_once_and_again_after_it_is_placed_again(kiosk):
    kiosk.polls(2)
    assert kiosk.cards == [] and kiosk.errors == []
    kiosk.sim.place("elderly")
    kiosk.polls(4)
    [card] = kiosk.cards
    assert (card.name, card.birth_date.isoformat(), card.valid_to) == ("张建国", "1950-03-07", "长期")
    assert card.card_type is CardType.RESIDENT and is_valid(card.id_number)
    assert len(card.photo) == 1024
    assert list(kiosk.sim.requests)[-3:] == [Command.FIND_CARD] * 3  # nothing but "find card" since

    kiosk.sim.remove()
    kiosk.polls(1)
    kiosk.sim.place("elderly")
    kiosk.polls(2)
    assert [c.id_number for c in kiosk.cards] == ["11010119500307097X"] * 2
    assert kiosk.states == [Health.ONLINE]


@pytest.mark.parametrize("name, card_type, expect", [
    ("hk_permit", CardType.RESIDENCE_PERMIT,
     dict(name="陈嘉欣", id_number="810000198805120024", pass_number="H60214587", issue_count="01")),
    ("foreign_2017", CardType.FOREIGN_PERMANENT_2017,
     dict(name="史密斯", english_name="SMITH, JOHN ROBERT", id_number="USA310080010115", nationality="USA",
          authority="1500")),
    ("foreign_2023", CardType.FOREIGN_PERMANENT_2023,
     dict(name="卡洛斯", english_name="GARCIA LOPEZ, CARLOS ALBERTO FERNANDO", id_number="911100198001010014",
          nationality="ESP", renewal_count="00")),
])
def test_permits_and_foreign_resident_cards_are_read(kiosk, name, card_type, expect):
    kiosk.sim.place(name)
    kiosk.polls(1)
    [card] = kiosk.cards
    assert card.card_type is card_type
    assert {k: getattr(card, k) for k in expect} == expect
    assert card.birth_date is not None and card.photo


def test_a_slow_reader_answering_in_chunks_still_gives_the_card(kiosk):
    kiosk.sim.place("slow")
    started = time.monotonic()
    kiosk.polls(1)
    assert time.monotonic() - started >= 0.4  # three chunks, 0.2 s apart
    assert [c.name for c in kiosk.cards] == ["周秀英"]
    assert kiosk.states == [Health.ONLINE]


def test_a_broken_checksum_is_reported_once_not_a_crash(kiosk):
    kiosk.sim.place("broken_checksum")
    kiosk.polls(3)
    assert kiosk.cards == []
    assert kiosk.errors == [(ReaderStatus.CHECKSUM_ERROR, PLACE_AGAIN)]
    assert kiosk.reader.bad_frames == 3
    assert kiosk.states == [Health.ONLINE]
    kiosk.sim.place("young")  # the line is still in step: the next card reads
    kiosk.polls(2)
    assert [c.name for c in kiosk.cards] == ["王志强"]


def test_an_unreadable_card_asks_the_visitor_to_place_it_again(kiosk):
    kiosk.sim.place("unreadable")
    kiosk.polls(2)
    assert kiosk.cards == [] and kiosk.errors == [(ReaderStatus.READ_FAILED, PLACE_AGAIN)]
    kiosk.sim.remove()
    kiosk.polls(1)
    kiosk.sim.place("unreadable")
    kiosk.polls(2)
    assert len(kiosk.errors) == 2  # once per placing


def test_an_unplugged_reader_goes_offline_and_reads_again_when_plugged_back(kiosk):
    kiosk.sim.place("young")
    kiosk.polls(1)
    kiosk.sim.unplug()
    kiosk.polls(1)
    assert kiosk.states == [Health.ONLINE, Health.OFFLINE]
    kiosk.polls(3)  # still unplugged: no crash, no repeated report
    assert kiosk.states == [Health.ONLINE, Health.OFFLINE]

    kiosk.sim.plug()  # same /dev/serial/by-id style path
    kiosk.poll_until(lambda: len(kiosk.cards) == 2)
    assert kiosk.states == [Health.ONLINE, Health.OFFLINE, Health.ONLINE]
    assert kiosk.cards[0] == kiosk.cards[1]


def test_a_failed_sam_marks_the_reader_as_fault_until_it_recovers(kiosk):
    kiosk.polls(1)
    kiosk.sim.faulty_sam = True
    kiosk.sim.place("elderly")
    kiosk.polls(3)
    assert kiosk.states == [Health.ONLINE, Health.FAULT]
    assert "self-test" in kiosk.health[-1].detail
    assert kiosk.errors == [(ReaderStatus.SELF_TEST_FAILED, "读卡器故障，请到导办台")]
    assert kiosk.reader.check_sam() is ReaderStatus.SELF_TEST_FAILED

    kiosk.sim.faulty_sam = False
    kiosk.polls(1)
    assert kiosk.states[-1] is Health.ONLINE and [c.name for c in kiosk.cards] == ["张建国"]


def test_a_reader_answering_garbage_is_a_fault_not_a_crash(kiosk):
    kiosk.reader.reply_timeout = 0.2
    kiosk.sim.garbage = True
    kiosk.sim.place("elderly")
    kiosk.polls(2)
    assert kiosk.cards == [] and kiosk.states == [Health.ONLINE, Health.FAULT]
    assert "garbage" in kiosk.health[-1].detail
    kiosk.sim.garbage = False
    kiosk.polls(1)
    assert [c.name for c in kiosk.cards] == ["张建国"] and kiosk.states[-1] is Health.ONLINE


def test_a_silent_reader_is_offline_until_it_answers_again(kiosk):
    kiosk.reader.reply_timeout = 0.2
    kiosk.sim.silent = True
    kiosk.polls(1)
    assert kiosk.states == [Health.ONLINE, Health.OFFLINE] and "no answer" in kiosk.health[-1].detail
    kiosk.sim.silent = False
    kiosk.sim.place("elderly")
    kiosk.poll_until(lambda: kiosk.cards)
    assert kiosk.states[-1] is Health.ONLINE


def test_a_fingerprint_reader_gets_the_fingerprint_too(kiosk):
    kiosk.reader.fingerprint = True
    kiosk.sim.place("young")
    kiosk.polls(1)
    [card] = kiosk.cards
    assert len(card.fingerprint) == 1024 and is_valid(card.id_number)


def test_the_reader_thread_hands_over_cards_and_stops(kiosk):
    stop = threading.Event()
    thread = threading.Thread(target=kiosk.reader.run, args=(stop, 0.02), daemon=True)
    thread.start()
    kiosk.sim.place("young")
    deadline = time.monotonic() + 3
    while not kiosk.cards and time.monotonic() < deadline:
        time.sleep(0.02)
    stop.set()
    thread.join(2)
    assert not thread.is_alive() and [c.name for c in kiosk.cards] == ["王志强"]


class FakeUsbReader:
    """A pyusb device object whose bulk endpoints lead to the simulator's reader logic."""

    def __init__(self, sim: SimulatedIdCardReader) -> None:
        self.sim = sim
        self.pending = bytearray()
        self.unplugged = False

    def is_kernel_driver_active(self, interface: int) -> bool:
        return False

    def set_configuration(self) -> None:
        pass

    def write(self, endpoint: int, data: bytes, timeout: int) -> int:
        import usb.core

        if self.unplugged:
            raise usb.core.USBError("No such device (it may have been disconnected)", errno=19)
        for _, chunk in self.sim.answer(bytes(data)):
            self.pending += chunk
        return len(data)

    def read(self, endpoint: int, size: int, timeout: int) -> array:
        import usb.core

        if self.unplugged:
            raise usb.core.USBError("No such device (it may have been disconnected)", errno=19)
        if not self.pending:
            raise usb.core.USBTimeoutError("Operation timed out")
        n = min(size, 64)
        chunk = bytes(self.pending[:n])
        del self.pending[:n]
        return array("B", chunk)


def test_the_same_driver_reads_over_usb(monkeypatch):
    """USB is faked (usb.core.find returns a fake device): the test machine has no USB bus.

    The fake hands out at most 64 bytes per read, like a full-speed bulk pipe.
    """
    import usb.core
    import usb.util

    sim = SimulatedIdCardReader()
    device = FakeUsbReader(sim)
    monkeypatch.setattr(usb.core, "find", lambda idVendor, idProduct, backend=None:
                        None if device.unplugged or (idVendor, idProduct) != (0x0400, 0xC35A) else device)
    monkeypatch.setattr(usb.util, "dispose_resources", lambda dev: None)
    health: list[DeviceHealth] = []
    cards: list[Card] = []
    link = DeviceLink("kiosk-2.id-reader", UsbTransport(0x0400, 0xC35A), health.append,
                      Backoff(first=0.01, most=0.02))
    reader = IdCardReader("kiosk-2.id-reader", link, cards.append, pause=0.0)

    sim.place("hk_permit")
    reader.poll_once()
    reader.poll_once()
    assert [c.pass_number for c in cards] == ["H60214587"]

    device.unplugged = True
    reader.poll_once()
    assert [h.state for h in health] == [Health.ONLINE, Health.OFFLINE]
    device.unplugged = False
    time.sleep(0.03)
    reader.poll_once()
    assert [h.state for h in health][-1] is Health.ONLINE and len(cards) == 2
