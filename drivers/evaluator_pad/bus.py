"""An evaluation pad on the counter bus (RS-485, beside the keypads; drivers.counter_keypad
carries its frames and hears its grades)."""

from __future__ import annotations

import logging

from drivers.counter_keypad.codec import pad_blank, pad_prompt, pad_thanks
from drivers.counter_keypad.driver import CounterBus

log = logging.getLogger(__name__)


class BusPad:
    """An evaluation pad on the counter bus. Blanked while its window is paused or closed
    (DB50/T 1603-2024 4.2.2: switch the service devices off when staff leave)."""

    def __init__(self, bus: CounterBus, address: int) -> None:
        self.bus, self.address = bus, address

    def _send(self, frame) -> None:
        try:
            self.bus.send(frame)
        except Exception as e:  # the bus link reports the fault; the hall goes on
            log.info("pad %s: %s", self.address, e)

    def prompt(self, window: int, staff: str | None, ticket: str) -> None:
        self._send(pad_prompt(self.address, window, staff or ""))

    def thanks(self) -> None:
        self._send(pad_thanks(self.address))

    def blank(self) -> None:
        self._send(pad_blank(self.address))
