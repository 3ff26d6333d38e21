"""MQTT devices from the device side: a display that records what it is told to show, and a
tablet keypad that can be pressed. Both are real MQTT clients with their own Last Will."""

from __future__ import annotations

import json
import threading
import uuid

from drivers.mqtt import MqttLink


class SimulatedMqttDisplay:
    """An ESP32 matrix or TV on MQTT: subscribes its state topic, keeps what it shows."""

    def __init__(self, name: str, host: str, port: int, topic: str) -> None:
        self.topic = topic
        self.showing: dict | None = None
        self.history: list[dict] = []
        self.changed = threading.Condition()
        self.link = MqttLink(name, host, port, f"{topic}/status")
        self.link.subscribe(topic, self._receive)

    def start(self) -> "SimulatedMqttDisplay":
        self.link.start()
        return self

    def stop(self) -> None:
        self.link.stop()

    def _receive(self, topic: str, payload: bytes) -> None:
        with self.changed:
            self.showing = json.loads(payload)
            self.history.append(self.showing)
            self.changed.notify_all()

    def wait_until(self, shows, timeout: float = 2.0) -> bool:
        with self.changed:
            return self.changed.wait_for(lambda: self.showing is not None and shows(self.showing),
                                         timeout)


class SimulatedTabletKeypad:
    """A tablet caller at one window: `press(key, **data)` publishes the keypad JSON."""

    def __init__(self, name: str, host: str, port: int, topic: str) -> None:
        self.topic = topic
        self.link = MqttLink(name, host, port, f"{topic}/status")

    def start(self) -> "SimulatedTabletKeypad":
        self.link.start()
        return self

    def stop(self) -> None:
        self.link.stop()

    def press(self, key: str, message_id: str | None = None, **data) -> str:
        return self.link.publish_command(f"{self.topic}/press",
                                         {"id": message_id or uuid.uuid4().hex, "key": key, **data})


class SimulatedTabletPad:
    """A tablet evaluation pad: shows the state it is told (`showing`), and grades."""

    def __init__(self, name: str, host: str, port: int, topic: str) -> None:
        self.topic = topic
        self.display = SimulatedMqttDisplay(f"{name}-screen", host, port, f"{topic}/state")
        self.link = MqttLink(name, host, port, f"{topic}/status")

    def start(self) -> "SimulatedTabletPad":
        self.display.start()
        self.link.start()
        return self

    def stop(self) -> None:
        self.display.stop()
        self.link.stop()

    @property
    def showing(self) -> dict | None:
        return self.display.showing

    def wait_until(self, shows, timeout: float = 2.0) -> bool:
        return self.display.wait_until(shows, timeout)

    def grade(self, grade: int | str, tags: tuple[str, ...] = (), message_id: str | None = None) -> str:
        return self.link.publish_command(f"{self.topic}/grade", {
            "id": message_id or uuid.uuid4().hex, "grade": grade, "tags": list(tags)})
