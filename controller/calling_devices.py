"""Starting the calling path's devices from the hall config: keypads, window bars, the main
hall display, evaluation pads' blanking, and the voice.

Serial devices sharing a port share one RS-485 bus (one link, one address each);
MQTT devices share the controller's one MQTT connection.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping
from enum import Enum
from pathlib import Path
from typing import Callable

from controller.calling import CallingFloor
from controller.core import commands as c
from controller.core.hall import Device, Hall
from controller.device_kinds import DeviceKind, Station, device_kinds, register_device_kind
from controller.devices import DeviceAddress, Floor
from controller.hallcontroller import HallController
from controller.keypads import grade_given, key_pressed
from controller.mqtt_security import controller_credentials, controller_status_topic
from controller.settings import MqttSettings, VoiceSettings
from drivers.announcer import Announcer, EspeakSynthesizer
from drivers.caller_display import CODECS, WindowBar
from drivers.caller_display.mqtt import MqttBar
from drivers.counter_keypad import CounterBus, RepeatFilter, show_text
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

    def report(health: DeviceHealth, devices: list[str] | None = None) -> None:
        for device in devices or [health.device]:
            ctrl.execute(c.ReportDevice(device, health.state.value, health.detail), "system")

    kinds = device_kinds()

    def role(d: Device) -> CounterRole | None:
        kind = kinds.get(d.kind)
        return kind.role if kind else None

    def station(d: Device) -> Station | None:
        kind = kinds.get(d.kind)
        return kind.station if kind else None

    bars: dict[int, list] = defaultdict(list)
    pad_list: dict[int, list] = defaultdict(list)
    by_port: dict[tuple[str, str], list[Device]] = defaultdict(list)
    for d in hall.devices:
        where = substitutes.get(d.id) or DeviceAddress(d.transport, d.port, d.address)
        if station(d) is Station.COUNTER and where.transport != "mqtt":
            by_port[(where.transport, where.port or where.address or "")].append(d)

    for (kind, port), devices in by_port.items():
        first = devices[0]
        where = substitutes.get(first.id) or DeviceAddress(first.transport, first.port, first.address)
        names = [d.id for d in devices]
        displays = [d for d in devices if role(d) is CounterRole.DISPLAY]
        bar_list: list[WindowBar] = []
        link = DeviceLink(f"bus:{port}", transport_for(where.transport, where.port, where.address,
                                                       dict(first.options)),
                          lambda h, names=names, bar_list=bar_list: _bus_health(h, names, report, bar_list),
                          Backoff(0.2, 1.0))
        floor.links.append(link)
        polled = any(role(d) in (CounterRole.KEYPAD, CounterRole.PAD) for d in devices)
        bar_list += [WindowBar(d.id, link, int(dict(d.options).get("address", d.window)),
                               dict(d.options).get("codec", "generic"), idle_check=not polled,
                               charset=dict(d.options).get("charset"))
                     for d in displays]
        for d, bar in zip(displays, bar_list):
            bars[d.window].append(bar)
        inputs = {int(dict(d.options).get("address", d.window)): d.window for d in devices
                  if role(d) is CounterRole.KEYPAD}
        pads = [d for d in devices if role(d) is CounterRole.PAD]
        if inputs or pads:
            # a pad's grade comes from its own bus address, answered for its window
            grades_from = {int(dict(d.options).get("address", d.window)): d.window for d in pads}
            bus = CounterBus(f"bus:{port}", link, {**inputs, **grades_from}, lambda window, press: None,
                             on_grade=lambda window, press: grade_given(
                                 ctrl, window, PAD_GRADES[press.grade - 1], "pad"))
            bus.on_key = (lambda window, press, bus=bus, inputs=inputs: key_pressed(
                ctrl, window, press, tell=lambda w, msg: _tell(bus, inputs, w, msg)))
            floor.run(bus.run, f"bus:{port}")
            for d in pads:
                pad_list[d.window].append(BusPad(bus, int(dict(d.options).get("address", d.window))))

    if mqtt is not None:
        repeats = RepeatFilter()
        for d in hall.devices:
            if d.transport != "mqtt" or d.id in substitutes:
                continue
            if role(d) is CounterRole.DISPLAY:
                bars[d.window].append(MqttBar(mqtt, d.topic))
            elif role(d) is CounterRole.PAD:
                pad = MqttPad(mqtt, d.topic)
                pad_list[d.window].append(pad)
                pad.listen(lambda grade, w=d.window: grade_given(ctrl, w, grade.grade, "tablet", grade.tags),
                           repeats)
            elif role(d) is CounterRole.KEYPAD:
                MqttKeypad(mqtt, d.topic, d.window).listen(
                    lambda window, press: key_pressed(ctrl, window, press), repeats)
            # every MQTT device, the main hall display too, says online/offline (its will)
            mqtt.subscribe(f"{d.topic}/status", lambda topic, payload, name=d.id: report(
                DeviceHealth(name, Health.ONLINE if payload == b"online" else Health.OFFLINE)))
    board_topic = next((d.topic for d in hall.devices
                        if station(d) is Station.HALL and d.topic), None)
    announcer = None
    if voice is not None and voice.enabled:
        announcer = Announcer(EspeakSynthesizer(), data_dir / "voice", voice.device,
                              repeats=voice.repeats, clock=ctrl.clock,
                              on_error=lambda _a, e: report(DeviceHealth("voice", Health.FAULT, str(e))))
    calling = CallingFloor(ctrl, dict(bars), mqtt, board_topic, announcer, dict(pad_list))
    return calling


def _bus_health(health: DeviceHealth, names: list[str], report, bars: list[WindowBar]) -> None:
    report(health, names)
    for bar in bars:
        bar.health_changed(health)


def _tell(bus: CounterBus, inputs: dict[int, int], window: int, message: str) -> None:
    """A refusal shows on the keypad's own screen, where it has one."""
    for address, w in inputs.items():
        if w == window:
            try:
                bus.send(show_text(address, message[:16]))
            except Exception as e:  # the keypad's screen is a courtesy, never a failure
                log.info("window %s: cannot show %r: %s", window, message, e)
