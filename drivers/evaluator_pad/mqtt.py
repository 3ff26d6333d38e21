"""A tablet evaluation pad on MQTT: its state, retained, on `<topic>/state`; the grades it
gives on `<topic>/grade` (json_codec), each acted on once however often it is delivered."""

from __future__ import annotations

import logging
from typing import Callable

from drivers.counter_keypad.json_codec import RepeatFilter
from drivers.evaluator_pad.json_codec import PadGrade, PadProtocolError, pad_state_json, parse_grade_json
from drivers.mqtt import MqttLink

log = logging.getLogger(__name__)


class MqttPad:
    """A tablet evaluation pad at one window."""

    def __init__(self, mqtt: MqttLink, topic: str) -> None:
        self.mqtt, self.topic = mqtt, topic

    def prompt(self, window: int, staff: str | None, ticket: str) -> None:
        self.mqtt.publish_state(f"{self.topic}/state", pad_state_json("prompt", window, staff, ticket))

    def thanks(self) -> None:
        self.mqtt.publish_state(f"{self.topic}/state", pad_state_json("thanks"))

    def blank(self) -> None:
        self.mqtt.publish_state(f"{self.topic}/state", pad_state_json("blank"))

    def listen(self, on_grade: Callable[[PadGrade], None], repeats: RepeatFilter | None = None) -> None:
        """Hear the pad's grades: `on_grade` once per grade (a message id seen before in
        `repeats` is a repeated delivery); a message that is no grade is logged and dropped."""
        repeats = repeats or RepeatFilter()

        def received(topic: str, payload: bytes) -> None:
            try:
                grade = parse_grade_json(payload)
            except PadProtocolError as e:
                log.warning("%s: tablet pad sent %s", self.topic, e)
                return
            if repeats.first_time(grade.id):
                on_grade(grade)

        self.mqtt.subscribe(f"{self.topic}/grade", received)
