"""A window bar or pause-service sign that is an MQTT display (ESP32 matrix, tablet): the bar's
state, retained, on its topic as JSON (devices.md section 5)."""

from __future__ import annotations

from drivers.caller_display.state import WindowBarState, bar_lines, state_text
from drivers.mqtt import MqttLink

# the characters an MQTT bar's line holds
MQTT_BAR_CHARS = 16


class MqttBar:
    """A window bar on MQTT; `show` publishes the state, retained."""

    in_sync = True  # the MQTT link re-publishes retained states after every reconnect

    def __init__(self, mqtt: MqttLink, topic: str) -> None:
        self.mqtt, self.topic = mqtt, topic

    def show(self, state: WindowBarState) -> bool:
        self.mqtt.publish_state(self.topic, {"lines": bar_lines(state, MQTT_BAR_CHARS),
                                             "text": state_text(state),
                                             "kind": type(state).__name__.lower()})
        return True
