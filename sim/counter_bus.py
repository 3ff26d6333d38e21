"""A simulated counter bus on a pty: staff keypads and evaluation pads by address, with the driver's codec.

`press(address, key, **data)` is a member of staff pressing a key (`data`:
the KeyPress fields, e.g. `reason=4, minutes=30`, `service_letter="B"`,
`number="A012"`); `grade(address, grade)` is a citizen grading on a pad. Any
address is a device on this bus, as a miswired keypad would be.

Switches: `bounce` sends every press twice 20 ms apart (a worn key);
`drop_echo` loses the next N echoes on the line, and with `retry_after` set a
device that hears no echo sends its frame again, up to `retries` times;
`echo_commands` makes the devices acknowledge controller frames too, as some
models do. What the devices heard: `acks` (echoes received), `shown`
((address, function, text) per controller frame; the staff name for a
prompt) and `screens` (what each device shows now).
"""

from __future__ import annotations

import logging
import threading
import time

from drivers.counter_keypad.codec import (
    DISPLAY_FUNCTIONS, BusFrame, BusProtocolError, Display, FrameDecoder, GradePress, Key, KeyPress,
    encode_frame, encode_press, parse_display,
)
from sim.pty_device import PtyDevice

log = logging.getLogger(__name__)

BOUNCE_GAP = 0.02


class SimulatedCounterBus(PtyDevice):
    """One RS-485 bus of keypads and pads as a peer on a pty."""

    def __init__(self, link: str | None = None, bounce: bool = False, drop_echo: int = 0,
                 retry_after: float | None = None, retries: int = 3, echo_commands: bool = False) -> None:
        super().__init__(link)
        self.bounce = bounce
        self.drop_echo = drop_echo
        self.retry_after = retry_after
        self.retries = retries
        self.echo_commands = echo_commands
        self.sent: list[BusFrame] = []  # every frame the devices put on the line, repeats included
        self.acks: list[BusFrame] = []
        self.shown: list[tuple[int, int, str]] = []
        self.screens: dict[int, Display] = {}
        self.errors: list[str] = []  # controller frames the devices could not read
        self.lost_echoes = 0
        self._waiting: dict[BusFrame, threading.Event] = {}
        self._decoder = FrameDecoder()

    def plug(self) -> str:
        self._decoder = FrameDecoder()
        return super().plug()

    def press(self, address: int, key: Key | str, bounce: bool | None = None, **data: object) -> BusFrame:
        """A key pressed on the keypad at `address`; the frame sent."""
        frame = encode_press(KeyPress(address, Key(key), **data))  # type: ignore[arg-type]
        self._transmit(frame, self.bounce if bounce is None else bounce)
        return frame

    def grade(self, address: int, grade: int, bounce: bool | None = None) -> BusFrame:
        """A citizen's grade (1 非常满意 … 5 非常不满意) on the pad at `address`; the frame sent."""
        frame = encode_press(GradePress(address, grade))
        self._transmit(frame, self.bounce if bounce is None else bounce)
        return frame

    def send_frame(self, frame: BusFrame) -> None:
        """Any frame, as a device of another make might send it (no retries)."""
        self._put(frame)

    def send_raw(self, data: bytes) -> None:
        """Anything on the line: noise, a broken frame."""
        self.send(data)

    def wait_for_acks(self, count: int, timeout: float = 2.0) -> bool:
        deadline = time.monotonic() + timeout
        while len(self.acks) < count:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def _put(self, frame: BusFrame) -> None:
        with self.lock:
            self.sent.append(frame)
        self.send(encode_frame(frame))

    def _transmit(self, frame: BusFrame, bounce: bool) -> None:
        acked = threading.Event()
        with self.lock:
            self._waiting[frame] = acked
        self._put(frame)
        if bounce:
            time.sleep(BOUNCE_GAP)
            self._put(frame)
        if self.retry_after is not None:
            threading.Thread(target=self._retry, args=(frame, acked), daemon=True,
                             name=f"sim-bus-retry:{frame.address}").start()

    def _retry(self, frame: BusFrame, acked: threading.Event) -> None:
        for _ in range(self.retries):
            if acked.wait(self.retry_after) or self._master is None:
                return
            self._put(frame)

    def handle(self, data: bytes) -> None:
        with self.lock:
            frames = self._decoder.feed(data)
            for frame in frames:
                if frame.function in DISPLAY_FUNCTIONS:
                    self._show(frame)
                else:
                    self._acknowledged(frame)

    def _acknowledged(self, frame: BusFrame) -> None:
        if self.drop_echo > 0:
            self.drop_echo -= 1
            self.lost_echoes += 1
            return
        self.acks.append(frame)
        acked = self._waiting.pop(frame, None)
        if acked is not None:
            acked.set()

    def _show(self, frame: BusFrame) -> None:
        try:
            display = parse_display(frame)
        except BusProtocolError as e:
            self.errors.append(f"address {frame.address}: {e}")
            log.warning("simulated bus: address %d: %s", frame.address, e)
            return
        self.shown.append((display.address, display.function, display.text))
        self.screens[display.address] = display
        if self.echo_commands:
            self.send(encode_frame(frame))
