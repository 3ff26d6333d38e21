"""One device's MQTT connection, kept up, with its status, state and commands.

paho owns the socket and its own reconnect loop, so MQTT does not go through
`DeviceLink`; `MqttLink` gives the same promises a driver gets from it: health
reported once per change, reconnect with backoff, and nothing lost that the
hall's screens depend on (devices.md section 5):

- the status topic reads `online` while the link is up and `offline` when it
  dies, however it dies (the broker publishes the Last Will for us);
- state is retained, and re-published after every reconnect, so a broker that
  restarted and forgot its retained messages still ends with the right state;
- commands are not retained (a retained "print" would replay on every
  reconnect) and carry an id, so a repeated QoS 1 delivery is acted on once
  (`Deduplicator`).
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections import OrderedDict
from typing import Callable

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from drivers import text as device_text
from drivers.transport import DeviceHealth, Health, HealthListener, TransportKind, register_transport

log = logging.getLogger(__name__)
RECONNECT_MAX_SECONDS = 0.5
STATE_TEXT_CHARS = 200  # one string of a display's state: a call, a pause sign, a notice

ONLINE = "online"
OFFLINE = "offline"

MessageCallback = Callable[[str, bytes], None]


def is_topic(value: object) -> bool:
    """A topic a device publishes or subscribes under: no wildcards."""
    return isinstance(value, str) and value.strip() != "" and not set("+#") & set(value)


# MQTT devices are driven through the controller's one MQTT link, not a byte transport
register_transport(TransportKind(
    "mqtt", "topic", 'an MQTT topic without wildcards such as "hall/window/5/keypad"', is_topic))


def encode(payload: dict) -> bytes:
    """JSON as the hall's screens read it: Chinese left as Chinese, UTF-8."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def encode_state(payload: dict) -> bytes:
    """A screen's state as published: every string through drivers/text.py (a screen shows what
    a string holds, so no control character may be in one; at most STATE_TEXT_CHARS each)."""
    return encode(device_text.fit_json(payload, STATE_TEXT_CHARS))


class MqttLink:
    """One paho client for one device (or the controller), MQTT 3.1.1 so amqtt serves it too."""

    def __init__(self, client_id: str, host: str, port: int, status_topic: str,
                 on_health: HealthListener | None = None, username: str | None = None,
                 password: str | None = None, keepalive: int = 10) -> None:
        self.client_id = client_id
        self.host, self.port = host, port
        self.status_topic = status_topic
        self.on_health = on_health
        self.keepalive = keepalive
        self.health: DeviceHealth | None = None

        self._lock = threading.Lock()
        self._health_lock = threading.Lock()
        self._connected = threading.Event()
        self._stopping = False
        self._states: dict[str, bytes] = {}
        # The last state message handed to paho per topic. One still unacknowledged when
        # the line dropped is re-sent by paho *after* on_connect returns, so a newer state
        # must wait for its PUBACK or the broker would end up retaining the older one.
        self._sent: dict[str, tuple[bytes, mqtt.MQTTMessageInfo]] = {}
        self._republish_after_ack: dict[int, str] = {}
        self._subscriptions: dict[str, MessageCallback] = {}

        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                        protocol=mqtt.MQTTv311, clean_session=True)
        if username is not None:
            c.username_pw_set(username, password)
        # devices.md 5: the will is registered before connecting, so any death reads `offline`.
        c.will_set(status_topic, OFFLINE, qos=1, retain=True)
        # At most half a second between tries: a hall's broker is on the LAN (often inside the
        # controller), and after a restart every display must show the hall within 2 s.
        # paho annotates the delays as int, but only adds them to the clock: 0.2 s works
        c.reconnect_delay_set(min_delay=0.2, max_delay=RECONNECT_MAX_SECONDS)  # type: ignore[arg-type]
        c.on_connect = self._on_connect
        c.on_connect_fail = self._on_connect_fail
        c.on_disconnect = self._on_disconnect
        c.on_publish = self._on_publish
        c.on_message = self._on_unmatched_message
        self._client = c

    # -- life cycle -----------------------------------------------------------

    def start(self) -> MqttLink:
        """Connect in the background; a broker that is not up yet is retried with backoff."""
        self._stopping = False
        self._client.connect_async(self.host, self.port, keepalive=self.keepalive)
        self._client.loop_start()
        return self

    def stop(self, timeout: float = 2.0) -> None:
        """Say `offline` (a clean disconnect fires no will) and disconnect."""
        with self._lock:
            self._stopping = True
            info = None
            if self._connected.is_set():
                info = self._client.publish(self.status_topic, OFFLINE, qos=1, retain=True)
        if info is not None:
            try:
                info.wait_for_publish(timeout)
            except (RuntimeError, ValueError):
                pass  # lost the line meanwhile; the will says `offline` instead
        self._client.disconnect()
        self._client.loop_stop()
        self._connected.clear()
        self._report(Health.OFFLINE, "stopped")

    def __enter__(self) -> MqttLink:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def wait_connected(self, timeout: float) -> bool:
        """True once the broker has accepted the connection (within `timeout` seconds)."""
        return self._connected.wait(timeout)

    # -- messages -------------------------------------------------------------

    def publish_state(self, topic: str, payload: dict) -> None:
        """What the device should show now: retained, QoS 1, and re-published after every reconnect.

        Every string passes drivers/text.py on the way (`encode_state`), whoever built the state.
        """
        data = encode_state(payload)
        with self._lock:
            self._states[topic] = data
            if self._connected.is_set():
                self._sent[topic] = (data, self._client.publish(topic, data, qos=1, retain=True))

    def publish_command(self, topic: str, payload: dict) -> str:
        """Something to do once (print, beep): QoS 1, not retained, with an id; returns the id.

        Queued by paho while the link is down and sent after it reconnects.
        """
        message = dict(payload)
        message.setdefault("id", uuid.uuid4().hex)
        self._client.publish(topic, encode(message), qos=1, retain=False)
        return str(message["id"])

    def subscribe(self, topic_filter: str, callback: MessageCallback) -> None:
        """Call `callback(topic, payload)` for each message on `topic_filter`, across reconnects."""

        def deliver(client, userdata, message: mqtt.MQTTMessage) -> None:
            try:
                callback(message.topic, bytes(message.payload))
            except Exception:
                # an exception escaping a paho callback would end its network thread
                log.exception("%s: handler for %s failed", self.client_id, message.topic)

        with self._lock:
            self._subscriptions[topic_filter] = callback
            self._client.message_callback_add(topic_filter, deliver)
            if self._connected.is_set():
                self._client.subscribe(topic_filter, qos=1)

    # -- paho callbacks (its network thread) ----------------------------------

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self._report(Health.OFFLINE, f"the broker at {self.host}:{self.port} refused us: {reason_code}")
            return
        with self._lock:
            if self._stopping:
                return
            # Subscribe before saying `online`: whoever sends a command on seeing
            # `online` must find us listening (the broker handles both in order).
            for topic_filter in self._subscriptions:
                client.subscribe(topic_filter, qos=1)
            client.publish(self.status_topic, ONLINE, qos=1, retain=True)
            self._republish_after_ack.clear()
            for topic, data in self._states.items():
                sent = self._sent.get(topic)
                if sent is not None and not sent[1].is_published():
                    # paho re-sends this one right after this callback returns
                    if sent[0] != data:
                        self._republish_after_ack[sent[1].mid] = topic
                    continue
                self._sent[topic] = (data, client.publish(topic, data, qos=1, retain=True))
            self._connected.set()
        log.debug("%s: connected, session present %s", self.client_id, flags.session_present)
        self._report(Health.ONLINE)

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        # Runs holding paho's outgoing-message lock, which publish_state takes under
        # self._lock: taking self._lock here could deadlock, and is not needed.
        topic = self._republish_after_ack.pop(mid, None)
        if topic is not None and self._connected.is_set():
            data = self._states[topic]
            self._sent[topic] = (data, client.publish(topic, data, qos=1, retain=True))

    def _on_connect_fail(self, client, userdata) -> None:
        self._report(Health.OFFLINE, f"cannot reach the broker at {self.host}:{self.port}")

    def _on_disconnect(self, client, userdata, disconnect_flags, reason_code, properties) -> None:
        self._connected.clear()
        if self._stopping:
            return
        where = f"{self.host}:{self.port}"
        if disconnect_flags.is_disconnect_packet_from_server:
            detail = f"the broker at {where} closed the connection: {reason_code}"
        elif str(reason_code) == "Keep alive timeout":
            detail = f"no answer from the broker at {where} within {self.keepalive} s"
        else:
            detail = f"lost the connection to the broker at {where}"
        self._report(Health.OFFLINE, detail)

    def _on_unmatched_message(self, client, userdata, message: mqtt.MQTTMessage) -> None:
        log.debug("%s: no handler for %s", self.client_id, message.topic)

    def _report(self, state: Health, detail: str = "") -> None:
        with self._health_lock:
            if self.health is not None and self.health.state == state:
                return
            self.health = DeviceHealth(self.client_id, state, detail)
            report = self.health
        log.info("%s: %s %s", self.client_id, state.value, detail)
        if self.on_health:
            try:
                self.on_health(report)
            except Exception:
                log.exception("health listener failed")


class Deduplicator:
    """The command ids recently acted on, so a repeated QoS 1 delivery is acted on once."""

    def __init__(self, size: int = 256) -> None:
        self.size = size
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()

    def seen(self, command_id: str) -> bool:
        """True when `command_id` was seen recently (drop it); otherwise remember it and say False."""
        with self._lock:
            if command_id in self._ids:
                self._ids.move_to_end(command_id)
                return True
            self._ids[command_id] = None
            if len(self._ids) > self.size:
                self._ids.popitem(last=False)
            return False
