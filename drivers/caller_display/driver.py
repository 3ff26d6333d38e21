"""A window's LED bar: shows the window's state through one vendor codec over one DeviceLink.

The bar remembers what it should show. When a write fails it says so (False,
and the link reports offline) and the next `show` or `resync` sends the state
again, so a bar that was unplugged or lost power comes back showing the right
thing. The controller calls `resync()` when the link's health turns ONLINE
(or passes `health_changed` as part of the link's health listener).
"""

from __future__ import annotations

import logging
import time
from typing import Callable, Protocol, Sequence

from drivers.caller_display import generic_codec, onbon_codec
from drivers.caller_display.state import (
    Colour, DisplayProtocolError, WindowBarState, bar_colour, bar_lines,
)
from drivers.transport import DeviceHealth, DeviceLink, Health, TransportError

log = logging.getLogger(__name__)


class BarCodec(Protocol):
    """What a vendor codec module offers the driver (module-level functions)."""

    def encode_bar(self, address: int, lines: Sequence[str], colour: Colour,
                   charset: str | None = None) -> bytes: ...

    def ack_waiter(self, address: int) -> Callable[[bytes], bool] | None: ...


# A new vendor's bar is a new codec module with `encode_bar` and `ack_waiter`, and its
# `register_codec` call; the hall config names it in the device's options (`codec = "onbon"`),
# and the config check knows it from here.
CODECS: dict[str, BarCodec] = {}


def register_codec(name: str, codec: BarCodec) -> BarCodec:
    """Make a bar codec (a module with the two functions, or any object that has them) known
    by the name a hall config gives in `options.codec`."""
    CODECS[name] = codec
    return codec


register_codec("generic", generic_codec)
register_codec("onbon", onbon_codec)


class WindowBar:
    """One LED bar (or pause-service sign) above one window.

    `show(state)` never raises: a failure is logged, the link hears of it, and
    the answer is False. `wait_ack` waits up to `ack_timeout` seconds for the
    codec's acknowledgement, where the codec has one; no acknowledgement
    counts as a broken line, as a silent ID card reader does.
    """

    def __init__(self, device_id: str, link: DeviceLink, address: int, codec: str = "generic",
                 width_chars: int = 8, wait_ack: bool = True, ack_timeout: float = 0.5,
                 idle_check: bool = True, charset: str | None = None) -> None:
        if codec not in CODECS:
            raise ValueError(f"{device_id}: unknown display codec {codec!r}; known: {', '.join(CODECS)}")
        try:  # the character set the bar's font holds (options.charset); the codec knows which it can
            CODECS[codec].encode_bar(0, [], Colour.YELLOW, charset)
        except DisplayProtocolError as e:
            raise ValueError(f"{device_id}: {e}") from None
        self.charset = charset
        self.device_id = device_id
        self.link = link
        self.address = address
        self.codec_name = codec
        self.codec = CODECS[codec]
        self.width_chars = width_chars
        self.wait_ack = wait_ack
        self.ack_timeout = ack_timeout
        # False on a line a counter bus polls: the bus sees a pulled cable already, and a read
        # here could take a keypad's frame
        self.idle_check = idle_check
        self.current: WindowBarState | None = None
        self.in_sync = False  # the bar is known to show `current`
        self.failures = 0
        self._sending = False

    def show(self, state: WindowBarState) -> bool:
        """Remember `state` as what the bar should show, and send it. True when the bar has it."""
        with self.link.lock:
            self.current = state
            self.in_sync = False
            return self._send(state)

    def resync(self) -> bool:
        """Send the remembered state again (after a reconnect). True when the bar has it."""
        with self.link.lock:
            if self._sending:
                # Called from the health listener while a send reopens the line: that send shows it.
                return True
            if self.current is None:
                return True
            return self._send(self.current)

    def check_line(self) -> bool:
        """Notice a pulled cable while nothing is being shown. A bar only speaks when spoken
        to, so an idle line is read (stale replies are dropped, as before a send): a broken
        one reports offline, and the state is shown again once it is back. False when down."""
        if not self.idle_check:
            return True
        with self.link.lock:
            try:
                self._drain()
            except TransportError:
                self.in_sync = False
                return False
            except Exception as e:  # a transport bug must not stop the other windows' bars
                log.exception("%s: line check", self.device_id)
                self.in_sync = False
                self.link.failed(e)
                return False
        return True

    def health_changed(self, health: DeviceHealth) -> None:
        """A health listener: re-show the current state when the line comes back."""
        if health.state is Health.OFFLINE:
            self.in_sync = False  # whatever the bar shows after it returns, it is not known
        elif health.state is Health.ONLINE and not self.in_sync:
            self.resync()

    def _send(self, state: WindowBarState) -> bool:
        try:
            frame = self.codec.encode_bar(self.address, bar_lines(state, self.width_chars),
                                          bar_colour(state), self.charset)
        except (DisplayProtocolError, ValueError, TypeError) as e:
            log.error("%s: cannot encode %r: %s", self.device_id, state, e)
            self.in_sync = False
            return False
        self._sending = True
        try:
            self._drain()
            self.link.write(frame)
            waiter = self.codec.ack_waiter(self.address) if self.wait_ack else None
            if waiter is not None:
                self._await_ack(waiter)
        except TransportError as e:
            self.failures += 1
            self.in_sync = False
            log.warning("%s: not shown (%s): %s", self.device_id, type(state).__name__, e)
            return False
        except Exception as e:  # a transport bug must not stop the other windows' bars
            self.failures += 1
            self.in_sync = False
            log.exception("%s: not shown (%s)", self.device_id, type(state).__name__)
            self.link.failed(e)
            return False
        finally:
            self._sending = False
        self.in_sync = True
        return True

    def _drain(self) -> None:
        # Replies nobody waits for (an Onbon answer, a late ACK) must not pass for the next ACK.
        for _ in range(8):
            stale = self.link.read(4096, 0)
            if not stale:
                return
            log.debug("%s: discarded %d stale bytes", self.device_id, len(stale))

    def _await_ack(self, acknowledged: Callable[[bytes], bool]) -> None:
        deadline = time.monotonic() + self.ack_timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                error = TransportError(f"{self.device_id}: bar {self.address} did not acknowledge "
                                       f"within {self.ack_timeout} s")
                self.link.failed(error)
                raise error
            # One byte with the deadline, then whatever else is there: a serial read of more
            # bytes than an ACK holds would wait out the whole timeout.
            chunk = self.link.read(1, left)
            if chunk:
                chunk += self.link.read(4096, 0)
            if acknowledged(chunk):
                return
