"""The simulated hall floor on in-process lines (`drivers.transport.memory_pair`).

The controller's real drivers talk to simulated devices that speak the device side
of the same codecs, as on the ptys of `hallctl run --simulate`, but nothing runs
in a thread and a device answers inside the driver's write, so a seed replays the
day byte for byte:

- the entrance kiosk (`controller.entrance.kiosk.Kiosk`) prints through the real
  `TicketPrinter` (ESC/POS, DLE EOT paper checks) to a `SimulatedPrinter`, and
  reads ID cards through the real `IdCardReader` driver from a
  `SimulatedIdCardReader`: a card stays on the reader until someone lifts it,
  and the driver reports it once when placed and once when gone, as on the floor;
- every window's keypad and evaluation pad sit on a simulated RS-485 counter bus
  (up to 100 windows a bus: keypad address = the window's place on the bus, pad
  = 100 + it), read by the real `CounterBus` driver, whose presses become
  commands through `controller.counters.keypads` exactly as on the floor. Halls whose own
  keypads are MQTT tablets are put on buses too: the tablets' JSON carries the
  same presses and is tested in tests/test_calling.py. Windows above 255 have
  tablet pads (`TabletPad`, the tablets' JSON handed over in-process): the
  bus's prompt frame names the window in one byte;
- every window's LED bar is a `WindowBar` (generic codec) on a line of its own
  to a `SimulatedBar`, driven by the real `CallingFloor`, whose pads' prompt,
  thanks and blank frames reach the simulated pads;
- the main hall display is `Board`, standing in for the controller's MQTT link:
  it keeps the retained state, loses it when the broker restarts, and is given
  it again on reconnect, as `drivers.mqtt.MqttLink` promises. No broker runs.

The floor is driven from the event loop: `press` puts a keypad's frame on its
bus and polls the bus driver once; `handle` hands the controller's events to the
calling floor. Window bars and the board are switched off for big halls
(`displays=False`): what they show does not change the queue, and every event
would redraw a 300-window board.
"""

from __future__ import annotations

import json
import logging
from collections import deque
from typing import Callable

from controller.counters.calling import CallingFloor
from drivers.evaluator_pad.bus import BusPad
from controller.core import commands as c
from controller.core.events import Event
from controller.core.identity import birth_date
from controller.floor.devices import _card_read  # the kiosk's own card handler: each kind checked as its own
from controller.runtime.hallcontroller import HallController
from controller.counters.keypads import grade_given, key_pressed
from controller.entrance.kiosk import Kiosk
from drivers.caller_display import WindowBar, bar_lines
from drivers.counter_keypad import (
    CounterBus, Display, FrameDecoder, GradePress, Key, KeyPress, RepeatFilter, encode_frame,
    encode_press, parse_display, show_text,
)
from drivers.counter_keypad.codec import DISPLAY_FUNCTIONS, PAD_PROMPT, SHOW_TEXT
from drivers.id_reader import Card, CardType, IdCardReader
from drivers.evaluator_pad import (
    PAD_GRADES, PadGrade, encode_grade_json, pad_state_json, parse_grade_json,
)
from drivers.mqtt import encode
from drivers.ticket_printer import TicketPrinter
from drivers.transport import Backoff, DeviceHealth, DeviceLink, Health, MemoryTransport, memory_pair
from sim.caller_display import SimulatedBar
from sim.id_card_reader import SimCard, SimulatedIdCardReader, filler
from sim.ticket_printer import SimulatedPrinter

log = logging.getLogger(__name__)

WINDOWS_PER_BUS = 100
MAX_BUS_WINDOW = 255  # a PAD_PROMPT frame carries the window number in one byte
PAD_OFFSET = 100
BAR_WIDTH = 8
REPLY_SECONDS = 30.0


def _device(end: MemoryTransport, brain: Callable[[bytes], None]) -> MemoryTransport:
    end.open()
    end.receiver = brain
    return end


class SimulatedBusDevices:
    """The keypads and pads of one bus, seen from the devices' side."""

    def __init__(self, end: MemoryTransport, windows: dict[int, int],
                 on_prompt: Callable[[int], None], on_text: Callable[[int, str], None]) -> None:
        self.end = _device(end, self._heard)
        self.windows = windows  # bus address -> window
        self.on_prompt = on_prompt
        self.on_text = on_text
        self.decoder = FrameDecoder()
        self.acks = 0

    def send(self, message: KeyPress | GradePress) -> None:
        self.end.write(encode_frame(encode_press(message)))

    def _heard(self, data: bytes) -> None:
        for frame in self.decoder.feed(data):
            if frame.function not in DISPLAY_FUNCTIONS:
                self.acks += 1  # the controller's echo of our own frame
                continue
            shown: Display = parse_display(frame)
            window = self.windows.get(frame.address)
            if window is None:
                continue
            if frame.function == PAD_PROMPT:
                self.on_prompt(window)
            elif frame.function == SHOW_TEXT:
                self.on_text(window, shown.text)


class TabletPad:
    """An evaluation tablet (MQTT in a hall): the pad's state and the grade as the tablets' JSON
    (`drivers.evaluator_pad`), handed over in-process rather than through a broker."""

    def __init__(self, ctrl: HallController, window: int, on_prompt: Callable[[int], None]) -> None:
        self.ctrl, self.window, self.on_prompt = ctrl, window, on_prompt
        self.repeats = RepeatFilter()
        self.sent = 0

    def _show(self, state: dict) -> None:
        if json.loads(encode(state))["state"] == "prompt":
            self.on_prompt(self.window)

    def prompt(self, window: int, staff: str | None, ticket: str) -> None:
        self._show(pad_state_json("prompt", window, staff, ticket))

    def thanks(self) -> None:
        self._show(pad_state_json("thanks"))

    def blank(self) -> None:
        self._show(pad_state_json("blank"))

    def grade(self, grade: int) -> None:
        """The citizen's press: the tablet's message, read as the controller reads it."""
        self.sent += 1
        payload = encode_grade_json(PadGrade(f"{self.window}-{self.sent}", PAD_GRADES[grade - 1]))
        message = parse_grade_json(payload)
        if self.repeats.first_time(message.id):
            grade_given(self.ctrl, self.window, message.grade, "tablet", message.tags)


class Board:
    """The main hall display's retained state, as the broker would hold it for the screen."""

    def __init__(self) -> None:
        self.up = True
        self.wanted: dict | None = None  # what the controller last published
        self.retained: dict | None = None  # what the broker holds for the screen
        self.publishes = 0

    def publish_state(self, topic: str, payload: dict) -> None:
        self.wanted = payload
        self.publishes += 1
        if self.up:
            self.retained = payload

    def restart(self) -> None:
        self.up, self.retained = False, None

    def reconnect(self) -> None:
        self.up, self.retained = True, self.wanted  # MqttLink re-publishes its states


HALL_ADDRESS = "http://hall.lan"


class SimFloor:
    """The simulated devices of one hall, wired to the controller's real drivers."""

    def __init__(self, ctrl: HallController, clock: Callable[[], float],
                 on_prompt: Callable[[int], None], on_text: Callable[[int, str], None],
                 displays: bool = True) -> None:
        self.ctrl = ctrl
        hall = ctrl.hall
        self.clock = clock
        self.pending: deque[Event] = deque()
        ctrl.subscribe(lambda _id, event: self.pending.append(event))

        printer_id = next((d.id for d in hall.devices if d.kind == "ticket_printer"), "kiosk-printer")
        host, end = memory_pair(printer_id)
        self.printer = SimulatedPrinter(printer_id)
        _device(end, lambda data, e=end: self._answer(e, self.printer.receive(data)))
        # the slips' QR codes lead to the phone page at the hall's address on its Wi-Fi
        self.kiosk = Kiosk("entrance", ctrl, status_url=HALL_ADDRESS)
        link = DeviceLink(printer_id, host, self.kiosk.device_health, Backoff(0.5, 10), clock=clock)
        # devices answer inside the driver's write: a long timeout costs nothing, and a busy
        # machine pausing the process can never make a real-time timeout change the day
        self.kiosk.printer = TicketPrinter(printer_id, link, status_timeout=REPLY_SECONDS)
        link.ensure_open()

        reader_id = next((d.id for d in hall.devices if d.kind == "id_reader"), "kiosk-reader")
        host, end = memory_pair(reader_id)
        self.card_reader = SimulatedIdCardReader(cards={})
        _device(end, lambda data, e=end: self._answer(
            e, b"".join(chunk for _, chunk in self.card_reader.answer(data))))
        self.kiosk.reader_id = reader_id
        link = DeviceLink(reader_id, host, self.kiosk.device_health, Backoff(0.5, 10), clock=clock)
        self.reader = IdCardReader(reader_id, link, on_card=lambda card: _card_read(self.kiosk, card),
                                   on_error=lambda status, message: self.kiosk.reader_message(message),
                                   pause=0, reply_timeout=REPLY_SECONDS,
                                   on_card_gone=self.kiosk.card_gone)
        self.photo = filler("sim-floor:photo")
        self.card_on_reader: str | None = None  # the ID number of the card lying there
        self.reader.poll_once()

        self.buses: list[CounterBus] = []
        self.bus_devices: list[SimulatedBusDevices] = []
        self.keypads: dict[int, tuple[SimulatedBusDevices, CounterBus, int]] = {}
        pads: dict[int, list[BusPad]] = {}
        numbers = sorted(hall.windows)
        for i in range(0, len(numbers), WINDOWS_PER_BUS):
            group = numbers[i:i + WINDOWS_PER_BUS]
            keypads = {k + 1: n for k, n in enumerate(group)}
            addresses = {**keypads, **{a + PAD_OFFSET: n for a, n in keypads.items()}}
            name = f"sim-bus-{i // WINDOWS_PER_BUS + 1}"
            host, end = memory_pair(name)
            link = DeviceLink(name, host, self.report, Backoff(0.2, 1.0), clock=clock)
            bus = CounterBus(name, link, addresses, lambda window, press: None,
                             on_grade=lambda window, press: grade_given(
                                 ctrl, window, PAD_GRADES[press.grade - 1], "pad"), clock=clock)
            bus.on_key = lambda window, press, bus=bus, keypads=keypads: key_pressed(
                ctrl, window, press, tell=lambda w, msg: self._tell(bus, keypads, w, msg))
            devices = SimulatedBusDevices(end, addresses, on_prompt, on_text)
            self.buses.append(bus)
            self.bus_devices.append(devices)
            for address, n in keypads.items():
                self.keypads[n] = (devices, bus, address)
                # the bus's prompt frame names the window in one byte: higher windows have tablets
                pads[n] = [BusPad(bus, address + PAD_OFFSET) if n <= MAX_BUS_WINDOW
                           else TabletPad(ctrl, n, on_prompt)]
        self.tablets = {n: p[0] for n, p in pads.items() if isinstance(p[0], TabletPad)}

        self.bars: dict[int, WindowBar] = {}
        self.sim_bars: dict[int, SimulatedBar] = {}
        self.bar_ends: dict[int, MemoryTransport] = {}
        self.board = Board() if displays else None
        if displays:
            for n in numbers:
                host, end = memory_pair(f"bar-{n}")
                bar_device = SimulatedBar("generic", 1)
                _device(end, lambda data, d=bar_device, e=end: self._answer(e, b"".join(d.receive(data))))
                link = DeviceLink(f"bar-{n}", host, lambda h, n=n: self._bar_health(n, h),
                                  Backoff(0.5, 5), clock=clock)
                bar = WindowBar(f"bar-{n}", link, 1, "generic", BAR_WIDTH, ack_timeout=REPLY_SECONDS)
                self.bars[n], self.sim_bars[n], self.bar_ends[n] = bar, bar_device, end
        self.calling = CallingFloor(ctrl, {n: [b] for n, b in self.bars.items()}, self.board,
                                    voice=None, pads=pads)
        self.faults: dict[str, int] = {}

    # -- the lines ----------------------------------------------------------------

    @staticmethod
    def _answer(end: MemoryTransport, reply: bytes) -> None:
        if reply:
            end.write(reply)

    def report(self, health: DeviceHealth) -> None:
        self.ctrl.execute(c.ReportDevice(health.device, health.state.value, health.detail), "system")

    def _bar_health(self, window: int, health: DeviceHealth) -> None:
        self.report(health)
        self.bars[window].health_changed(health)

    @staticmethod
    def _tell(bus: CounterBus, keypads: dict[int, int], window: int, message: str) -> None:
        for address, w in keypads.items():
            if w == window:
                bus.send(show_text(address, message[:16]))

    # -- the staff and the citizens -----------------------------------------------------

    def press(self, window: int, key: Key, **data) -> None:
        """A key on the window's keypad: the frame goes on the bus and the bus driver reads it."""
        devices, bus, address = self.keypads[window]
        devices.send(KeyPress(address, key, **data))
        bus.poll_once(0)

    def place_card(self, id_number: str, name: str) -> None:
        """A citizen puts their ID card on the kiosk's reader; the reader's next poll reads it."""
        card = Card(CardType.RESIDENT, name, "1" if int(id_number[16]) % 2 else "2",
                    birth_date(id_number), id_number, "20200101", "长期", nation="01",
                    photo=self.photo)
        self.card_reader.cards["on-the-reader"] = SimCard(card)
        self.card_reader.place("on-the-reader")
        self.card_on_reader = id_number
        self.reader.poll_once()

    def lift_card(self) -> None:
        """Whatever card is on the reader is taken off (its owner's, or one left behind)."""
        if self.card_on_reader is None:
            return  # an empty reader stays empty: polling it would change nothing
        self.card_reader.remove()
        self.card_on_reader = None
        self.reader.poll_once()

    def grade(self, window: int, grade: int) -> None:
        """A citizen's press on the window's pad (1 非常满意 ... 5 非常不满意)."""
        if window in self.tablets:
            self.tablets[window].grade(grade)
            return
        devices, bus, address = self.keypads[window]
        devices.send(GradePress(address + PAD_OFFSET, grade))
        bus.poll_once(0)

    def events(self) -> list[Event]:
        """The controller's events since the last call, after the calling floor has shown them."""
        out = []
        while self.pending:
            event = self.pending.popleft()
            self.calling.handle(event)
            out.append(event)
        return out

    def resync(self) -> None:
        """What the calling floor's worker does twice a second: show lost bars their state again."""
        for bar in self.bars.values():
            if not bar.in_sync:
                bar.resync()

    # -- faults ---------------------------------------------------------------------

    def paper(self, status: str) -> None:
        self.printer.paper = status

    def unplug_bar(self, window: int) -> None:
        if window in self.bar_ends:
            self.bar_ends[window].unplug()
            self.sim_bars[window].showing = []  # a bar without power loses its text

    def plug_bar(self, window: int) -> None:
        if window in self.bar_ends:
            self.bar_ends[window].plug()

    def broker_restart(self) -> None:
        if self.board is not None:
            self.board.restart()
        self.report(DeviceHealth("hall-controller", Health.OFFLINE,
                                 "lost the connection to the broker"))

    def broker_back(self) -> None:
        if self.board is not None:
            self.board.reconnect()
        self.report(DeviceHealth("hall-controller", Health.ONLINE))

    # -- checks ---------------------------------------------------------------------

    def bars_out_of_step(self) -> list[int]:
        """Windows whose simulated bar does not show what the hall's state says it should."""
        wrong = []
        for n, sim_bar in self.sim_bars.items():
            if sim_bar.showing != bar_lines(self.calling.bar_state(n), BAR_WIDTH):
                wrong.append(n)
        return wrong
