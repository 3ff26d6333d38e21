"""One counter bus: the staff keypads and evaluation pads of a row of windows on one RS-485 line."""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable, TypeVar

from drivers.counter_keypad.codec import (
    DISPLAY_FUNCTIONS, GRADE, BusFrame, BusProtocolError, FrameDecoder, GradePress, KeyPress, Unknown,
    encode_frame, parse,
)
from drivers.transport import DeviceLink, TransportError

log = logging.getLogger(__name__)

KeyListener = Callable[[int, KeyPress], None]
GradeListener = Callable[[int, GradePress], None]
_Press = TypeVar("_Press", KeyPress, GradePress)


class CounterBus:
    """Listens on one bus, acknowledges each frame and tells the controller which window pressed what.

    `windows` maps bus addresses to window numbers; a keypad and its window's
    evaluation pad have two addresses and one window. A key's frame from a known
    address is echoed at once (the acknowledgement), including a repeat. A
    frame identical to the last one from the same address within `debounce`
    seconds is a key bounce, or the device sending again because our echo was
    lost: echoed, logged, not acted on. Frames from an address no window has
    are logged and not echoed, so a miswired or misaddressed keypad shows its
    "no answer" error rather than beeping as if the hall had heard it.
    `clock` times the debounce.

    A grade is echoed only once `on_grade` has returned: the listener returns
    when the grade (or its refusal) is durable and raises when it is not (a
    full disk), and then the grade is not echoed, so the pad, which showed
    谢谢 on our echo, sends it again and the grade is taken from the repeat.
    A lost grade is the one loss a citizen cannot see or make good; a grade
    that arrives twice is refused the second time (one per visit), so for
    grades the echo waits for the commit. Keys are echoed on receipt instead:
    staff see on the bar whether a key acted, and a keypad that sent call-next
    again because a slow commit held back its echo would call two citizens.

    A broken line is the link's to reconnect (it reports offline and online
    itself); while offline the driver waits out each poll's timeout.
    """

    def __init__(self, device_id: str, link: DeviceLink, windows: dict[int, int], on_key: KeyListener,
                 on_grade: GradeListener | None = None, debounce: float = 0.3,
                 clock: Callable[[], float] = time.monotonic, stale_after: float = 0.1) -> None:
        self.device_id = device_id
        self.link = link
        self.windows = dict(windows)
        self.on_key = on_key
        self.on_grade = on_grade
        self.debounce = debounce
        self.clock = clock
        self.stale_after = stale_after  # a device sends a frame in one burst: a gap this long ends it
        self.decoder = FrameDecoder()
        self.repeats = 0  # frames dropped by the debounce
        self.strays = 0  # frames from addresses no window has
        self._last: dict[int, tuple[BusFrame, float]] = {}
        self._last_bytes_at = 0.0

    def poll_once(self, timeout: float = 0.2) -> list[KeyPress | GradePress]:
        """Wait up to `timeout` for bytes; the presses they complete, each also given to its listener."""
        try:
            data = self.link.poll(timeout)
        except TransportError as e:
            log.info("%s: %s", self.device_id, e)
            self.decoder = FrameDecoder()  # a frame cut by the unplug must not join the first one after
            return []
        now = time.monotonic()
        if data:
            self._last_bytes_at = now
            frames = self.decoder.feed(data)
        elif self.decoder.pending and now - self._last_bytes_at >= self.stale_after:
            frames = self.decoder.give_up()
        else:
            frames = []
        out: list[KeyPress | GradePress] = []
        for frame in frames:
            try:
                message = self._take(frame)
            except TransportError as e:  # the echo failed: the link has reported offline
                log.info("%s: %s", self.device_id, e)
                break
            if message is not None:
                out.append(message)
        return out

    def _take(self, frame: BusFrame) -> KeyPress | GradePress | None:
        if frame.function in DISPLAY_FUNCTIONS:
            # A device acknowledging our own frame: echoing it would ping-pong for ever.
            log.debug("%s: address %d acknowledged function %02X", self.device_id, frame.address,
                      frame.function)
            return None
        window = self.windows.get(frame.address)
        if window is None:
            self.strays += 1
            log.warning("%s: function %02X from bus address %d, which no window has; not acknowledged",
                        self.device_id, frame.function, frame.address)
            return None
        if frame.function == GRADE:
            return self._take_grade(window, frame)
        self.link.write(encode_frame(frame))  # a key: acknowledged on receipt (see the class)
        now = self.clock()
        repeat = self._repeat(window, frame, now)
        self._last[frame.address] = (frame, now)
        if repeat:
            return None
        message = self._parse(window, frame)
        if message is not None:
            self._hand_over(window, message)
        return message

    def _take_grade(self, window: int, frame: BusFrame) -> GradePress | None:
        """A grade: echoed after the listener made it durable, never before (see the class)."""
        now = self.clock()
        if self._repeat(window, frame, now):  # taken already; its echo was lost
            self.link.write(encode_frame(frame))
            return None
        message = self._parse(window, frame)
        # a GRADE frame parses as a grade or as None: no grade to record, heard and said so,
        # so the pad stops sending it
        if not isinstance(message, GradePress):
            self.link.write(encode_frame(frame))
            return None
        if not self._hand_over(window, message):
            log.warning("%s: window %d: grade %d not recorded; not acknowledged, the pad will send "
                        "it again", self.device_id, window, message.grade)
            return None
        self._last[frame.address] = (frame, now)
        self.link.write(encode_frame(frame))
        return message

    def _repeat(self, window: int, frame: BusFrame, now: float) -> bool:
        last = self._last.get(frame.address)
        if last is not None and last[0] == frame and now - last[1] < self.debounce:
            self.repeats += 1
            log.info("%s: window %d: function %02X again within %.2f s (bounce or lost echo); acted on once",
                     self.device_id, window, frame.function, self.debounce)
            return True
        return False

    def _parse(self, window: int, frame: BusFrame) -> KeyPress | GradePress | None:
        try:
            message = parse(frame)
        except BusProtocolError as e:
            log.warning("%s: window %d: %s", self.device_id, window, e)
            return None
        if isinstance(message, Unknown):
            log.info("%s: window %d: unknown function %02X (%d data bytes) ignored", self.device_id, window,
                     message.function, len(message.data))
            return None
        return message

    def _hand_over(self, window: int, message: KeyPress | GradePress) -> bool:
        """Give `message` to its listener; False when there is none or it failed."""
        if isinstance(message, KeyPress):
            return self._deliver(window, message, self.on_key)
        return self._deliver(window, message, self.on_grade)

    def _deliver(self, window: int, message: _Press, listener: Callable[[int, _Press], None] | None) -> bool:
        if listener is None:
            log.warning("%s: window %d: a grade, but nobody listens for grades", self.device_id, window)
            return False
        try:
            listener(window, message)
        except Exception:
            log.exception("%s: window %d: listener failed", self.device_id, window)
            return False
        return True

    def send(self, frame: BusFrame) -> None:
        """Send a controller frame (show text, pad prompt); TransportError when the line is down.

        Waits for a poll's read in progress (at most its timeout): the bus is one line.
        """
        self.link.write(encode_frame(frame))

    def run(self, stop: threading.Event, timeout: float = 0.2) -> None:
        """Listen until `stop` is set (the body of the bus's thread)."""
        while not stop.is_set():
            try:
                self.poll_once(timeout)
            except Exception:
                log.exception("%s: poll failed", self.device_id)
                stop.wait(timeout)
