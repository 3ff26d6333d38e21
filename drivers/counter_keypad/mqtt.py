"""A tablet keypad at one window on MQTT: its presses on `<topic>/press` (json_codec), each
acted on once however often it is delivered."""

from __future__ import annotations

import logging
from typing import Callable

from drivers.counter_keypad.codec import BusProtocolError, KeyPress
from drivers.counter_keypad.json_codec import RepeatFilter, parse_key_json
from drivers.mqtt import MqttLink

log = logging.getLogger(__name__)


class MqttKeypad:
    """A tablet keypad at window `window`."""

    def __init__(self, mqtt: MqttLink, topic: str, window: int) -> None:
        self.mqtt, self.topic, self.window = mqtt, topic, window

    def listen(self, on_press: Callable[[int, KeyPress], None],
               repeats: RepeatFilter | None = None) -> None:
        """Hear the keypad: `on_press(window, press)` once per press; a message that is no
        press is logged and dropped."""
        repeats = repeats or RepeatFilter()

        def received(topic: str, payload: bytes) -> None:
            try:
                message = parse_key_json(payload, self.window)
            except BusProtocolError as e:
                log.warning("window %s: tablet keypad sent %s", self.window, e)
                return
            if repeats.first_time(message.id):
                on_press(self.window, message.press)

        self.mqtt.subscribe(f"{self.topic}/press", received)
