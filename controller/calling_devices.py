"""Starting the calling path's devices from the hall config: keypads, window bars, the main
hall display, evaluation pads' blanking, and the voice.

Serial devices sharing a port share one RS-485 bus (one link, one address each);
MQTT devices share the controller's one MQTT connection.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable

from controller.calling import CallingFloor
from controller.core import commands as c
from controller.core.hall import Device, Hall
from controller.devices import DeviceAddress, Floor
from controller.hallcontroller import HallController
from controller.keypads import grade_given, key_pressed
from controller.mqtt_security import controller_credentials, controller_status_topic
from drivers.announcer import Announcer, EspeakSynthesizer
from drivers.caller_display import WindowBar, bar_lines, state_text
from drivers.counter_keypad import (
    BusProtocolError, CounterBus, RepeatFilter, pad_blank, pad_prompt, pad_thanks, parse_key_json,
    show_text,
)
from drivers.evaluator_pad import PAD_GRADES, PadProtocolError, pad_state_json, parse_grade_json
from drivers.mqtt import MqttLink
from drivers.transport import Backoff, DeviceHealth, DeviceLink, Health, transport_for

log = logging.getLogger(__name__)


class MqttBar:
    """A window bar or pause-service sign that is an MQTT display (ESP32 matrix, tablet)."""

    in_sync = True  # the MQTT link re-publishes retained states after every reconnect

    def __init__(self, mqtt: MqttLink, topic: str) -> None:
        self.mqtt, self.topic = mqtt, topic

    def show(self, state: Any) -> bool:
        self.mqtt.publish_state(self.topic, {"lines": bar_lines(state, 16), "text": state_text(state),
                                             "kind": type(state).__name__.lower()})
        return True


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


class MqttPad:
    """A tablet evaluation pad: its state, retained, on `<topic>/state`."""

    def __init__(self, mqtt: MqttLink, topic: str) -> None:
        self.mqtt, self.topic = mqtt, topic

    def prompt(self, window: int, staff: str | None, ticket: str) -> None:
        self.mqtt.publish_state(f"{self.topic}/state", pad_state_json("prompt", window, staff, ticket))

    def thanks(self) -> None:
        self.mqtt.publish_state(f"{self.topic}/state", pad_state_json("thanks"))

    def blank(self) -> None:
        self.mqtt.publish_state(f"{self.topic}/state", pad_state_json("blank"))


def controller_mqtt(hall: Hall, on_health: Callable[[DeviceHealth], None]) -> MqttLink:
    """The controller's own MQTT connection: the hall's broker, or the embedded one, logged in
    with `[mqtt] username` when the hall gives one (ConfigError if its password is not set)."""
    if hall.mqtt_host:
        host, port = hall.mqtt_host, hall.mqtt_port
    else:
        host, _, p = hall.mqtt_embedded_listen.rpartition(":")
        port = int(p)
    username, password = controller_credentials(hall)
    return MqttLink("hall-controller", host, port, controller_status_topic(hall),
                    on_health=on_health, username=username, password=password)


def attach_calling(ctrl: HallController, floor: Floor, data_dir: Path,
                   substitutes: dict[str, DeviceAddress] | None = None,
                   mqtt: MqttLink | None = None) -> CallingFloor:
    """Start the calling path's drivers and the floor that keeps them showing the hall."""
    hall = ctrl.hall
    substitutes = substitutes or {}

    def report(health: DeviceHealth, devices: list[str] | None = None) -> None:
        for device in devices or [health.device]:
            ctrl.execute(c.ReportDevice(device, health.state.value, health.detail), "system")

    bars: dict[int, list] = defaultdict(list)
    pad_list: dict[int, list] = defaultdict(list)
    by_port: dict[tuple[str, str], list[Device]] = defaultdict(list)
    for d in hall.devices:
        where = substitutes.get(d.id) or DeviceAddress(d.transport, d.port, d.address)
        if d.kind in ("counter_keypad", "evaluator_pad", "caller_display") and where.transport != "mqtt":
            by_port[(where.transport, where.port or where.address or "")].append(d)

    for (kind, port), devices in by_port.items():
        first = devices[0]
        where = substitutes.get(first.id) or DeviceAddress(first.transport, first.port, first.address)
        names = [d.id for d in devices]
        displays = [d for d in devices if d.kind == "caller_display"]
        bar_list: list[WindowBar] = []
        link = DeviceLink(f"bus:{port}", transport_for(where.transport, where.port, where.address,
                                                       dict(first.options)),
                          lambda h, names=names, bar_list=bar_list: _bus_health(h, names, report, bar_list),
                          Backoff(0.2, 1.0))
        floor.links.append(link)
        polled = any(d.kind in ("counter_keypad", "evaluator_pad") for d in devices)
        bar_list += [WindowBar(d.id, link, int(dict(d.options).get("address", d.window)),
                               dict(d.options).get("codec", "generic"), idle_check=not polled,
                               charset=dict(d.options).get("charset"))
                     for d in displays]
        for d, bar in zip(displays, bar_list):
            bars[d.window].append(bar)
        inputs = {int(dict(d.options).get("address", d.window)): d.window for d in devices
                  if d.kind == "counter_keypad"}
        pads = [d for d in devices if d.kind == "evaluator_pad"]
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
            if d.kind == "caller_display":
                bars[d.window].append(MqttBar(mqtt, d.topic))
            elif d.kind == "evaluator_pad":
                pad_list[d.window].append(MqttPad(mqtt, d.topic))
                mqtt.subscribe(f"{d.topic}/grade", lambda topic, payload, w=d.window: _tablet_grade(
                    ctrl, w, payload, repeats))
            elif d.kind == "counter_keypad":
                mqtt.subscribe(f"{d.topic}/press", lambda topic, payload, w=d.window: _tablet_key(
                    ctrl, w, payload, repeats))
            # every MQTT device, the main hall display too, says online/offline (its will)
            mqtt.subscribe(f"{d.topic}/status", lambda topic, payload, name=d.id: report(
                DeviceHealth(name, Health.ONLINE if payload == b"online" else Health.OFFLINE)))
    board_topic = next((d.topic for d in hall.devices if d.kind == "hall_display" and d.topic), None)
    voice = None
    if hall.voice_enabled:
        voice = Announcer(EspeakSynthesizer(), data_dir / "voice", hall.voice_device,
                          repeats=hall.voice_repeats, clock=ctrl.clock,
                          on_error=lambda _a, e: report(DeviceHealth("voice", Health.FAULT, str(e))))
    calling = CallingFloor(ctrl, dict(bars), mqtt, board_topic, voice, dict(pad_list))
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


def _tablet_grade(ctrl: HallController, window: int, payload: bytes, repeats: RepeatFilter) -> None:
    try:
        grade = parse_grade_json(payload)
    except PadProtocolError as e:
        log.warning("window %s: tablet pad sent %s", window, e)
        return
    if repeats.first_time(grade.id):
        grade_given(ctrl, window, grade.grade, "tablet", grade.tags)


def _tablet_key(ctrl: HallController, window: int, payload: bytes, repeats: RepeatFilter) -> None:
    try:
        message = parse_key_json(payload, window)
    except BusProtocolError as e:
        log.warning("window %s: tablet keypad sent %s", window, e)
        return
    if repeats.first_time(message.id):
        key_pressed(ctrl, window, message.press)
