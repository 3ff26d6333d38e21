"""Starting the calling path's devices from the hall config: keypads, window bars, the main
hall display, evaluation pads' blanking, and the voice.

Serial devices sharing a port share one RS-485 bus (one link, one address each);
MQTT devices share the controller's one MQTT connection.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from controller.counters.calling import Bar, CallingFloor, Pad
from controller.core import commands as c
from controller.core.hall import Device, Hall
from controller.floor.device_kinds import DeviceKind, Station, device_kinds, register_device_kind
from controller.floor.devices import DeviceAddress, Floor
from controller.runtime.hallcontroller import HallController
from controller.counters.keypads import grade_given, key_pressed
from controller.mqtt.accounts import controller_credentials, controller_status_topic
from controller.config.settings import MqttSettings, VoiceSettings
from drivers.announcer import Announcer, EspeakSynthesizer, SpokenWords, vocabulary
from drivers.caller_display import CODECS, WindowBar
from drivers.caller_display.mqtt import MqttBar
from drivers.counter_keypad import CounterBus, KeyPress, RepeatFilter, show_text
from drivers.counter_keypad.mqtt import MqttKeypad
from drivers.evaluator_pad import PAD_GRADES
from drivers.evaluator_pad.bus import BusPad
from drivers.evaluator_pad.mqtt import MqttPad
from drivers.mqtt import MqttLink
from drivers.transport import Backoff, DeviceHealth, DeviceLink, Health, transport_for

log = logging.getLogger(__name__)


class CounterRole(Enum):
    """What a counter device does at its window, on the bus or on MQTT."""

    KEYPAD = "keypad"  # the staff's presses: polled on the bus, or heard on MQTT
    PAD = "pad"  # the citizen's grades: polled on the bus, or heard on MQTT; prompted, blanked
    DISPLAY = "display"  # the window bar, which is also the pause-service sign


def _display_options(options: Mapping[str, str]) -> tuple[str, str] | None:
    codec = options.get("codec", "generic")
    if codec not in CODECS:
        return "codec", f"{codec!r} is no display codec this controller knows; known: {', '.join(CODECS)}"
    return None


register_device_kind(DeviceKind("counter_keypad", Station.COUNTER, role=CounterRole.KEYPAD))
register_device_kind(DeviceKind("evaluator_pad", Station.COUNTER, role=CounterRole.PAD))
register_device_kind(DeviceKind("caller_display", Station.COUNTER, _display_options,
                                role=CounterRole.DISPLAY))
register_device_kind(DeviceKind("hall_display", Station.HALL))


def controller_mqtt(hall: Hall, mqtt: MqttSettings,
                    on_health: Callable[[DeviceHealth], None]) -> MqttLink:
    """The controller's own MQTT connection: the hall's broker, or the embedded one, logged in
    with `[mqtt] username` when the hall gives one (ConfigError if its password is not set)."""
    host, port = mqtt.address()
    username, password = controller_credentials(mqtt)
    return MqttLink("hall-controller", host, port, controller_status_topic(hall),
                    on_health=on_health, username=username, password=password)


def attach_calling(ctrl: HallController, floor: Floor, data_dir: Path,
                   substitutes: dict[str, DeviceAddress] | None = None,
                   mqtt: MqttLink | None = None, voice: VoiceSettings | None = None) -> CallingFloor:
    """Start the calling path's drivers and the floor that keeps them showing the hall; with
    `voice` on, the calls are spoken too."""
    hall = ctrl.hall
    substitutes = substitutes or {}
    counters = _Counters(ctrl, floor)
    for (_transport, port), devices in _counter_buses(hall, substitutes).items():
        counters.join_bus(port, _where(devices[0], substitutes), devices)
    if mqtt is not None:
        counters.join_mqtt(mqtt, [d for d in hall.devices if d.transport == "mqtt" and d.id not in substitutes])
    board_topic = next((d.topic for d in hall.devices
                        if _station(d) is Station.HALL and d.topic), None)
    announcer = None
    if voice is not None and voice.enabled:
        announcer = Announcer(_spoken_words(hall, data_dir), data_dir / "voice", voice.device,
                              repeats=voice.repeats, clock=ctrl.clock,
                              on_error=lambda _a, e: counters.report(DeviceHealth("voice", Health.FAULT, str(e))))
    return CallingFloor(ctrl, dict(counters.bars), mqtt, board_topic, announcer, dict(counters.pads))


def _spoken_words(hall: Hall, data_dir: Path) -> SpokenWords:
    """The voice: espeak-ng's words, each synthesized once (kept under `data_dir`/voice/words),
    the hall's own words (its windows, its letters) made ready in the background from the start."""
    espeak = EspeakSynthesizer()
    words = SpokenWords(espeak, data_dir / "voice" / "words", f"{espeak.voice} {espeak.speed}")
    words.warm(vocabulary(hall.services, sorted(hall.windows)))
    return words


def _where(d: Device, substitutes: Mapping[str, DeviceAddress]) -> DeviceAddress:
    """Where the device is: its config's place, or what a simulator offers instead."""
    return substitutes.get(d.id) or DeviceAddress(d.transport, d.port, d.address)


def _station(d: Device) -> Station | None:
    kind = device_kinds().get(d.kind)
    return kind.station if kind else None


def _role(d: Device) -> CounterRole | None:
    kind = device_kinds().get(d.kind)
    return kind.role if kind else None


def _window(d: Device) -> int:
    """A counter device's window; the hall config refuses a counter device without one."""
    if d.window is None:
        raise ValueError(f"device {d.id!r}: a {d.kind} belongs to one counter window, and names none")
    return d.window


def _bus_address(d: Device) -> int:
    """The device's address on its bus: its `address` option, else its window's number."""
    address = dict(d.options).get("address")
    return int(address) if address is not None else _window(d)


def _topic(d: Device) -> str:
    """An MQTT device's topic; the hall config refuses an MQTT device without one."""
    if d.topic is None:
        raise ValueError(f"device {d.id!r}: an MQTT {d.kind} names no topic")
    return d.topic


def _counter_buses(hall: Hall, substitutes: Mapping[str, DeviceAddress]) -> dict[tuple[str, str], list[Device]]:
    """The counter devices that are not on MQTT, by the bus they share: (transport, port)."""
    buses: dict[tuple[str, str], list[Device]] = defaultdict(list)
    for d in hall.devices:
        where = _where(d, substitutes)
        if _station(d) is Station.COUNTER and where.transport != "mqtt":
            buses[(where.transport, where.port or where.address or "")].append(d)
    return buses


def _by_role(devices: list[Device]) -> dict[CounterRole, list[Device]]:
    by_role: dict[CounterRole, list[Device]] = {role: [] for role in CounterRole}
    for d in devices:
        role = _role(d)
        if role is not None:
            by_role[role].append(d)
    return by_role


@dataclass
class _Counters:
    """The counter windows' devices as they start: their bars and pads by window, and the
    health of each line told to the hall."""

    ctrl: HallController
    floor: Floor
    bars: defaultdict[int, list[Bar]] = field(default_factory=lambda: defaultdict(list))
    pads: defaultdict[int, list[Pad]] = field(default_factory=lambda: defaultdict(list))

    def report(self, health: DeviceHealth, devices: list[str] | None = None) -> None:
        for device in devices or [health.device]:
            self.ctrl.execute(c.ReportDevice(device, health.state.value, health.detail), "system")

    def join_bus(self, port: str, where: DeviceAddress, devices: list[Device]) -> None:
        """One RS-485 bus (reached at `where`, its first device's place): its line, its window
        bars, and the keypads and pads polled on it."""
        by_role = _by_role(devices)
        keypads, pads = by_role[CounterRole.KEYPAD], by_role[CounterRole.PAD]
        names = [d.id for d in devices]
        bars: list[WindowBar] = []
        link = DeviceLink(f"bus:{port}", transport_for(where.transport, where.port, where.address,
                                                       dict(devices[0].options)),
                          lambda health: self._bus_health(health, names, bars), Backoff(0.2, 1.0))
        self.floor.links.append(link)
        polled = bool(keypads or pads)
        for d in by_role[CounterRole.DISPLAY]:
            options = dict(d.options)
            bar = WindowBar(d.id, link, _bus_address(d), options.get("codec", "generic"),
                            idle_check=not polled, charset=options.get("charset"))
            bars.append(bar)
            self.bars[_window(d)].append(bar)
        if polled:
            self._poll(port, link, keypads, pads)

    def _bus_health(self, health: DeviceHealth, names: list[str], bars: list[WindowBar]) -> None:
        self.report(health, names)
        for bar in bars:
            bar.health_changed(health)

    def _poll(self, port: str, link: DeviceLink, keypads: list[Device], pads: list[Device]) -> None:
        """Poll the bus's keypads and pads: a key acts at its window; a pad's grade comes from
        its own bus address, answered for its window."""
        ctrl = self.ctrl
        inputs = {_bus_address(d): _window(d) for d in keypads}
        grades_from = {_bus_address(d): _window(d) for d in pads}

        def key(window: int, press: KeyPress) -> None:
            key_pressed(ctrl, window, press, tell=lambda w, message: _tell(bus, inputs, w, message))

        bus = CounterBus(f"bus:{port}", link, {**inputs, **grades_from}, key,
                         on_grade=lambda window, press: grade_given(
                             ctrl, window, PAD_GRADES[press.grade - 1], "pad"))
        self.floor.run(bus.run, f"bus:{port}")
        for d in pads:
            self.pads[_window(d)].append(BusPad(bus, _bus_address(d)))

    def join_mqtt(self, mqtt: MqttLink, devices: list[Device]) -> None:
        """The hall's MQTT devices, each joined by its role; every one, the main hall display
        too, says online/offline (its will)."""
        repeats = RepeatFilter()
        for d in devices:
            role = _role(d)
            if role is not None:
                _MQTT_JOINS[role](self, mqtt, d, repeats)
            mqtt.subscribe(f"{d.topic}/status", self._status_of(d.id))

    def _status_of(self, device: str) -> Callable[[str, bytes], None]:
        def status(topic: str, payload: bytes) -> None:
            self.report(DeviceHealth(device, Health.ONLINE if payload == b"online" else Health.OFFLINE))
        return status

    def mqtt_bar(self, mqtt: MqttLink, d: Device, repeats: RepeatFilter) -> None:
        self.bars[_window(d)].append(MqttBar(mqtt, _topic(d)))

    def mqtt_pad(self, mqtt: MqttLink, d: Device, repeats: RepeatFilter) -> None:
        ctrl, window = self.ctrl, _window(d)
        pad = MqttPad(mqtt, _topic(d))
        self.pads[window].append(pad)
        pad.listen(lambda grade: grade_given(ctrl, window, grade.grade, "tablet", grade.tags), repeats)

    def mqtt_keypad(self, mqtt: MqttLink, d: Device, repeats: RepeatFilter) -> None:
        ctrl = self.ctrl
        MqttKeypad(mqtt, _topic(d), _window(d)).listen(
            lambda window, press: key_pressed(ctrl, window, press), repeats)


# How an MQTT counter device joins the hall, by its role (its kind's, `device_kinds`).
_MQTT_JOINS: dict[CounterRole, Callable[[_Counters, MqttLink, Device, RepeatFilter], None]] = {
    CounterRole.DISPLAY: _Counters.mqtt_bar,
    CounterRole.PAD: _Counters.mqtt_pad,
    CounterRole.KEYPAD: _Counters.mqtt_keypad,
}


def _tell(bus: CounterBus, inputs: dict[int, int], window: int, message: str) -> None:
    """A refusal shows on the keypad's own screen, where it has one."""
    for address, w in inputs.items():
        if w == window:
            try:
                bus.send(show_text(address, message[:16]))
            except Exception as e:  # the keypad's screen is a courtesy, never a failure
                log.info("window %s: cannot show %r: %s", window, message, e)
