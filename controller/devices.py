"""The hall floor's devices as the controller drives them: one driver per configured device.

Each device gets a `DeviceLink` (reconnect and health live there) on the
transport its config names, or on the one a simulator substitutes for it
(`hallctl run --simulate`). A device that cannot be reached is reported
offline to the supervisor; the controller keeps serving without it.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

from controller.core.hall import Device
from controller.hallcontroller import HallController
from controller.kiosk import Kiosk
from drivers.id_reader import IdCardReader
from drivers.ticket_printer import TicketPrinter
from drivers.transport import Backoff, DeviceLink, transport_for

log = logging.getLogger(__name__)

DEFAULT_KIOSK = "entrance"
KIOSK_KINDS = ("ticket_printer", "id_reader")


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

    def close(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(3)
        for link in self.links:
            try:
                link.close()
            except Exception:
                log.exception("closing %s", link.device)


def kiosk_of(device: Device) -> str:
    return dict(device.options).get("kiosk", DEFAULT_KIOSK)


def attach_devices(ctrl: HallController, status_url: str | None = None,
                   substitutes: dict[str, DeviceAddress] | None = None) -> Floor:
    """Start a driver for every kiosk device of the hall (the calling path adds its own)."""
    floor = Floor()
    substitutes = substitutes or {}
    for device in ctrl.hall.devices:
        if device.kind not in KIOSK_KINDS:
            continue
        kiosk = floor.kiosks.setdefault(kiosk_of(device), Kiosk(kiosk_of(device), ctrl,
                                                                 status_url=status_url))
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
        if device.kind == "ticket_printer":
            kiosk.printer = TicketPrinter(device.id, link)
            link.ensure_open()  # an absent printer is reported at once, not at the first ticket
        else:
            reader = IdCardReader(
                device.id, link,
                on_card=lambda card, k=kiosk: k.card_read(card.id_number, card.name),
                on_error=lambda status, message, k=kiosk: k.reader_message(message))
            t = threading.Thread(target=reader.run, args=(floor.stop,), daemon=True,
                                 name=f"reader:{device.id}")
            t.start()
            floor.threads.append(t)
    return floor
