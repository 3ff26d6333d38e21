"""A simulated window LED bar on a pty, speaking either codec from the bar's side.

The bar decodes what the driver writes with the driver's own codec and keeps
what it shows now (`showing`, `colour`) and everything it has shown
(`history`). With the generic codec it acknowledges every frame addressed to
it alone; `silent` stops that (a bar powered off behind a live adapter).
Frames for other addresses are ignored, as on a shared RS-485 bus.

`unplug()` also cuts the bar's power: it goes blank, as a real bar loses its
dynamic text, so a test sees the driver put the state back after `plug()`.

`font` is the character set the bar's glyphs cover (GB18030, or GB2312 as on
many bars): a character outside it shows as "\ufffd", the garbage a real bar
shows, so a test sees whether the driver sent something the bar can show.
"""

from __future__ import annotations

import threading
import time
from typing import Callable

from drivers.caller_display import generic_codec, onbon_codec
from drivers.caller_display.state import Colour
from sim.pty_device import PtyDevice

SIM_CODECS = ("generic", "onbon")


class SimulatedBar(PtyDevice):
    """One bar at `address`, speaking `codec` ("generic" or "onbon"); `receive(data)` is its brain."""

    def __init__(self, codec: str = "generic", address: int = 1, link: str | None = None,
                 font: str | None = None) -> None:
        if codec not in SIM_CODECS:
            raise ValueError(f"the simulated bar speaks {', '.join(SIM_CODECS)}, not {codec!r}")
        super().__init__(link)
        self.codec = codec
        self.font = font or ("gb18030" if codec == "generic" else "gb2312")
        self.address = address
        self.silent = False
        self.showing: list[str] = []
        self.colour: Colour | None = None
        self.brightness = 15
        self.history: list[list[str]] = []
        self.frames = 0  # frames addressed to this bar
        self._changed = threading.Condition(self.lock)
        self._decoder = self._new_decoder()

    def _new_decoder(self) -> generic_codec.FrameDecoder | onbon_codec.OnbonDecoder:
        return generic_codec.FrameDecoder() if self.codec == "generic" else onbon_codec.OnbonDecoder()

    def plug(self) -> str:
        with self.lock:
            self._decoder = self._new_decoder()  # half a frame from before the cable was pulled is gone
        return super().plug()

    def unplug(self) -> None:
        super().unplug()
        with self.lock:
            self.showing, self.colour = [], None
            self._changed.notify_all()

    stop = unplug

    def handle(self, data: bytes) -> None:
        for reply in self.receive(data):
            self.send(reply)

    def receive(self, data: bytes) -> list[bytes]:
        """Take bytes from the host; the replies the bar sends back."""
        replies: list[bytes] = []
        with self.lock:
            if self.codec == "generic":
                for message in self._decoder.feed(data):
                    reply = self._generic(message)  # type: ignore[arg-type]
                    if reply:
                        replies.append(reply)
            else:
                for text in self._decoder.feed(data):
                    if isinstance(text, onbon_codec.DynamicText) and text.address == self.address:
                        self._show([text.text], text.colour)
        return replies

    def _generic(self, message: generic_codec.Message) -> bytes | None:
        if message.address not in (self.address, generic_codec.BROADCAST):
            return None
        if isinstance(message, generic_codec.ShowText):
            self._show(list(message.lines), message.colour)
        elif isinstance(message, generic_codec.Clear):
            self._show([], None)
        elif isinstance(message, generic_codec.Brightness):
            self.brightness = message.level
            self.frames += 1
        else:
            return None  # another bar's ACK on the bus
        if self.silent or message.address == generic_codec.BROADCAST:
            return None
        return generic_codec.encode_ack(self.address)

    def _glyphs(self, line: str) -> str:
        return "".join(c if c.encode(self.font, "ignore") else "\ufffd" for c in line)

    def _show(self, lines: list[str], colour: Colour | None) -> None:
        lines = [self._glyphs(line) for line in lines]
        self.frames += 1
        self.showing, self.colour = lines, colour
        self.history.append(list(lines))
        self._changed.notify_all()

    @property
    def text(self) -> str:
        """Everything the bar shows now, as one line."""
        with self.lock:
            return " ".join(self.showing)

    def wait_until(self, shows: Callable[["SimulatedBar"], bool], timeout: float = 2.0) -> bool:
        """Wait until `shows(self)` holds (checked whenever the bar changes); False after `timeout`."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not shows(self):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(left)
            return True
