"""The kinds of device a hall config may name, each registered with how it is checked and
how it attaches to the hall, as python-can registers its bus interfaces.

A kind registers itself (`register_device_kind`) beside the code that drives it: the kiosk
devices in `controller.floor.devices`, the counter devices and the hall display in
`controller.counters.calling_devices`. The hall config (`controller.config.hall`) accepts the registered
kinds, asks each to check its device's options, and the assembly starts each by its station.
Transports register the same way in `drivers.transport`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

# The modules that register the hall's own kinds; imported on the first look-up.
BUILTIN = ("controller.floor.devices", "controller.counters.calling_devices")


class Station(StrEnum):
    """Where a device attaches to the hall."""

    KIOSK = "kiosk"  # at one of the hall's kiosks, a driver on a line of its own
    COUNTER = "counter"  # at one counter window (so it names it): its RS-485 bus, or MQTT
    HALL = "hall"  # for the whole hall: the main display, fed the hall board over MQTT


# An options check: (the option, what is wrong with it), or None when all is well.
OptionsCheck = Callable[[Mapping[str, str]], "tuple[str, str] | None"]


def no_check(options: Mapping[str, str]) -> tuple[str, str] | None:
    return None


@dataclass(frozen=True)
class DeviceKind:
    """One kind of device. `attach` starts a kiosk device's driver (`controller.floor.devices`:
    `attach(kiosk, device, link, floor)`); counter devices join their window's bus or the
    hall's MQTT link by `role` (`controller.counters.calling_devices`)."""

    name: str
    station: Station
    check: OptionsCheck = no_check
    attach: Callable[..., Any] | None = None
    role: Any = None

    @property
    def at_window(self) -> bool:
        """Sits at one counter window and so must name it."""
        return self.station is Station.COUNTER


_KINDS: dict[str, DeviceKind] = {}
_loaded = False


def register_device_kind(kind: DeviceKind) -> DeviceKind:
    """Make `kind` known to the hall config and the assembly (a later one of the same name
    replaces the earlier)."""
    device_kinds()  # the hall's own first, so that a later registration wins
    _KINDS[kind.name] = kind
    return kind


def device_kinds() -> dict[str, DeviceKind]:
    """Every registered kind by name, the hall's own first."""
    global _loaded
    if not _loaded:
        _loaded = True
        for module in BUILTIN:
            importlib.import_module(module)
    return _KINDS


def device_kind(name: str) -> DeviceKind:
    return device_kinds()[name]
