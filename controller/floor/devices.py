"""The hall floor's devices as the controller drives them: one driver per configured device.

Each device gets a `DeviceLink` (reconnect and health live there) on the
transport its config names, or on the one a simulator substitutes for it
(`hallctl run --simulate`). A device that cannot be reached is reported
offline to the supervisor; the controller keeps serving without it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from controller.entrance.appointments import Appointments
from controller.core.hall import Device
from controller.runtime.hallcontroller import HallController, issued_ticket
from controller.entrance.kiosk import Kiosk
from controller.core import identity
from controller.core.errors import HallError
from controller.floor.device_kinds import DeviceKind, Station, device_kinds, register_device_kind
from drivers.code_scanner import CodeScanner
from drivers.id_reader import Card, CardType, IdCardReader
from drivers.ticket_printer import PrinterUnavailable, TicketPrinter
from drivers.transport import Backoff, DeviceLink, transport_for

log = logging.getLogger(__name__)

DEFAULT_KIOSK = "entrance"
# How often an idle printer's paper sensor is asked: the kiosk page learns of an empty
# roll before a citizen presses a button, and of a new roll soon after it goes in.
PRINTER_POLL_SECONDS = 3.0


@dataclass(frozen=True)
class DeviceAddress:
    """Where to reach a device: what its config says, or what a simulator offers instead."""

    transport: str
    port: str | None = None
    address: str | None = None


@dataclass
class Floor:
    """The running drivers; `close()` stops their threads and lines."""

    kiosks: dict[str, Kiosk] = field(default_factory=dict)
    links: list[DeviceLink] = field(default_factory=list)
    threads: list[threading.Thread] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self, loop: Callable[[threading.Event], object], device: str) -> None:
        """Run a driver's polling loop in a thread of its own until `close()`."""
        t = threading.Thread(target=loop, args=(self.stop,), daemon=True, name=f"driver:{device}")
        t.start()
        self.threads.append(t)

    def close(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(3)
        for link in self.links:
            try:
                link.close()
            except Exception:
                log.exception("closing %s", link.device)


# The number check of each card kind the reader reads (controller.core.identity).
CARD_KINDS = {
    CardType.RESIDENT: identity.IdKind.RESIDENT,
    CardType.RESIDENCE_PERMIT: identity.IdKind.RESIDENCE_PERMIT,
    CardType.FOREIGN_PERMANENT_2017: identity.IdKind.FOREIGN_2017,
    CardType.FOREIGN_PERMANENT_2023: identity.IdKind.FOREIGN_2023,
}


def _card_read(kiosk: Kiosk, card: Card) -> None:
    """A card is checked as its own kind: a number that is not one of that card's (a misread,
    a forgery) is refused here, whatever other kind of number it might pass for."""
    kind = CARD_KINDS[card.card_type]
    if identity.kind_of(card.id_number) is not kind:
        error = HallError("invalid_id_number", identity.WRONG_NUMBER[kind])
        kiosk.ctrl.refuse(kiosk.actor, "card_read", {"card": kind.value}, error)
        kiosk.clear()  # a new card on the reader is a new citizen: no earlier identity waits
        kiosk.reader_message(error.message)
        return
    kiosk.card_read(card.id_number, card.name)


def _scanned(kiosk: Kiosk, code: str) -> None:
    """A serial scanner has no one to answer: the outcome shows on the kiosk's screen."""
    try:
        got = kiosk.scanned(code)
    except HallError as e:
        kiosk.reader_message(e.message)
        return
    if got is not None:
        kiosk.reader_message(f"预约已签到：{issued_ticket(got.outcome).label}")


def _watch_printer(printer: TicketPrinter, stop: threading.Event) -> None:
    while not stop.wait(PRINTER_POLL_SECONDS):
        try:
            printer.paper_status()  # reports fault, online or offline through the link
        except PrinterUnavailable:
            pass  # the link has reported it; the next poll tries again


def kiosk_of(device: Device) -> str:
    return dict(device.options).get("kiosk", DEFAULT_KIOSK)


def place_of(device: Device) -> dict[str, object]:
    """设备位置: where a device is on the floor, from the hall file: at a window (`window`),
    at a kiosk (`kiosk`, its id) or for the whole hall (the main display)."""
    if device.window is not None:
        return {"place": "window", "window": device.window}
    kind = device_kinds().get(device.kind)
    if kind is not None and kind.station is Station.KIOSK:
        return {"place": "kiosk", "kiosk": kiosk_of(device)}
    return {"place": "hall"}


def _attach_printer(kiosk: Kiosk, device: Device, link: DeviceLink, floor: Floor) -> None:
    printer = kiosk.printer = TicketPrinter(device.id, link)
    link.ensure_open()  # an absent printer is reported at once, not at the first ticket
    if printer.can_answer:
        floor.run(lambda stop: _watch_printer(printer, stop), device.id)


def _attach_reader(kiosk: Kiosk, device: Device, link: DeviceLink, floor: Floor) -> None:
    kiosk.reader_id = device.id
    reader = IdCardReader(
        device.id, link,
        on_card=lambda card: _card_read(kiosk, card),
        on_error=lambda status, message: kiosk.reader_message(message),
        on_card_gone=kiosk.card_gone)
    floor.run(reader.run, device.id)


def _attach_scanner(kiosk: Kiosk, device: Device, link: DeviceLink, floor: Floor) -> None:
    scanner = CodeScanner(device.id, link, on_scan=lambda scan: _scanned(kiosk, scan.text))
    floor.run(scanner.run, device.id)


register_device_kind(DeviceKind("ticket_printer", Station.KIOSK, attach=_attach_printer))
register_device_kind(DeviceKind("id_reader", Station.KIOSK, attach=_attach_reader))
register_device_kind(DeviceKind("code_scanner", Station.KIOSK, attach=_attach_scanner))


def kiosk_kinds() -> tuple[str, ...]:
    """The registered kinds that stand at a kiosk."""
    return tuple(k.name for k in device_kinds().values() if k.station is Station.KIOSK)


def attach_devices(ctrl: HallController, status_url: str | None = None,
                   substitutes: dict[str, DeviceAddress] | None = None) -> Floor:
    """Start a driver for every kiosk device of the hall (the calling path adds its own)."""
    floor = Floor()
    substitutes = substitutes or {}
    appointments = Appointments(ctrl)
    kinds = device_kinds()
    for device in ctrl.hall.devices:
        kind = kinds.get(device.kind)
        if kind is None or kind.station is not Station.KIOSK or kind.attach is None:
            continue
        kiosk = floor.kiosks.setdefault(kiosk_of(device), Kiosk(
            kiosk_of(device), ctrl, status_url=status_url, appointments=appointments))
        where = substitutes.get(device.id) or DeviceAddress(device.transport, device.port,
                                                            device.address)
        try:
            transport = transport_for(where.transport, where.port, where.address,
                                      dict(device.options))
        except ValueError as e:
            log.error("%s: %s", device.id, e)
            continue
        link = DeviceLink(device.id, transport, kiosk.device_health, Backoff(0.5, 10))
        floor.links.append(link)
        kind.attach(kiosk, device, link, floor)
    return floor
