"""A device's MQTT link against real brokers: Mosquitto (production) and the embedded amqtt.

Every story runs against both: a display that comes late still gets the state,
a dead device reads `offline`, a broker restart is survived with the right
state, and a repeated command is acted on once.
"""

from __future__ import annotations

import json
import queue
import socket
import threading
import time
import uuid

import paho.mqtt.client as mqtt
import pytest

from drivers.mqtt import Deduplicator, MqttLink
from drivers.transport import DeviceHealth, Health


class Watcher:
    """A plain paho client that records what arrives on `topic_filter` (someone looking at the broker)."""

    def __init__(self, broker, topic_filter: str) -> None:
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                                  client_id=f"watcher-{uuid.uuid4().hex[:8]}", protocol=mqtt.MQTTv311)
        # amqtt 0.12.1 also hands a connecting client the retained messages of *other*
        # clients' subscriptions; a device, like MqttLink, acts only on what it subscribed to
        self.client.on_message = lambda c, u, m: (
            self.messages.put(m) if mqtt.topic_matches_sub(topic_filter, m.topic) else None)
        self.client.on_subscribe = lambda *a: subscribed.set()
        self.client.connect(broker.host, broker.port, keepalive=10)
        self.client.loop_start()
        self.client.subscribe(topic_filter, qos=1)
        assert subscribed.wait(5), "no SUBACK"

    def next(self, timeout: float) -> mqtt.MQTTMessage | None:
        try:
            return self.messages.get(timeout=timeout)
        except queue.Empty:
            return None

    def wait_for(self, payload: bytes, timeout: float) -> mqtt.MQTTMessage | None:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            m = self.next(left)
            if m is not None and m.payload == payload:
                return m
        return None

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def retained(broker, topic: str, timeout: float = 2.0) -> bytes | None:
    """What a device connecting now is given for `topic` (None: nothing retained)."""
    w = Watcher(broker, topic)
    try:
        m = w.next(timeout)
        return m.payload if m is not None and m.retain else None
    finally:
        w.close()


def eventually(check, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return check()


def cut_the_line(link: MqttLink) -> None:
    """The device's TCP connection dies without an MQTT DISCONNECT, so the broker fires the will."""
    link._client.socket().shutdown(socket.SHUT_RDWR)


@pytest.fixture
def links(broker):
    made: list[MqttLink] = []

    def make(name: str, on_health=None, subscriptions: dict | None = None) -> MqttLink:
        link = MqttLink(name, broker.host, broker.port, f"hall/test/{name}/status", on_health)
        # subscribed before start(), the device listens before it says `online`
        for topic_filter, callback in (subscriptions or {}).items():
            link.subscribe(topic_filter, callback)
        made.append(link.start())
        assert link.wait_connected(5), f"{name} did not connect to {broker.name}"
        return link

    yield make
    for link in made:
        link.stop(timeout=0.5)


CALL = {"window": 3, "ticket": "A001", "text": "A001 请到 3 号窗口"}


def test_a_display_that_connects_later_gets_the_current_state(broker, links):
    link = links("display-3")
    link.publish_state("hall/test/display-3/state", CALL)

    assert eventually(lambda: retained(broker, "hall/test/display-3/state", 0.3) is not None, 3)
    payload = retained(broker, "hall/test/display-3/state")
    assert "请到 3 号窗口".encode() in payload  # UTF-8, not \\u escapes
    assert json.loads(payload) == CALL


def test_status_reads_online_and_offline_when_the_device_dies(broker, links):
    link = links("printer-1")
    assert eventually(lambda: retained(broker, "hall/test/printer-1/status", 0.3) == b"online", 2)
    status = Watcher(broker, "hall/test/printer-1/status")
    try:
        assert status.wait_for(b"online", 2)
        link._client.loop_stop()  # the device freezes: nothing will reconnect it
        cut_the_line(link)
        assert status.wait_for(b"offline", 3), f"{broker.name} did not publish the will"
    finally:
        status.close()
    assert retained(broker, "hall/test/printer-1/status") == b"offline"


@pytest.mark.parametrize("down_for", [0.0, 0.7], ids=["quick", "down-0.7s"])
def test_a_broker_restart_is_survived_with_state_and_subscriptions(broker, links, down_for, capsys):
    healths: list[tuple[float, DeviceHealth]] = []
    commands: queue.Queue = queue.Queue()
    link = links("display-4", lambda h: healths.append((time.monotonic(), h)), subscriptions={
        "hall/test/display-4/cmd": lambda topic, payload: commands.put((topic, json.loads(payload)))})
    link.publish_state("hall/test/display-4/state", CALL)
    assert eventually(lambda: retained(broker, "hall/test/display-4/state", 0.3) is not None, 3)

    began = time.monotonic()
    broker.restart(down_for)
    back = time.monotonic()
    states = lambda: [h.state for _, h in healths]  # noqa: E731
    assert eventually(lambda: states() == [Health.ONLINE, Health.OFFLINE, Health.ONLINE], 3), \
        f"{broker.name}: health went {healths}"
    (_, online), (_, offline), (reconnected, _) = healths
    assert online.device == offline.device == "display-4"
    assert "lost the connection" in offline.detail or "closed" in offline.detail
    assert reconnected - back < 2.5

    # a display connecting now sees the state the broker forgot when it restarted
    assert eventually(lambda: retained(broker, "hall/test/display-4/state", 0.3) is not None,
                      max(0.1, 2 - (time.monotonic() - back)))
    assert json.loads(retained(broker, "hall/test/display-4/state")) == CALL
    assert retained(broker, "hall/test/display-4/status") == b"online"

    # and its subscription works again
    controller = MqttLink("controller", broker.host, broker.port, "hall/test/controller/status").start()
    try:
        assert controller.wait_connected(5)
        controller.publish_command("hall/test/display-4/cmd", {"action": "blink"})
        topic, command = commands.get(timeout=2)
        assert (topic, command["action"]) == ("hall/test/display-4/cmd", "blink")
        assert commands.empty()
    finally:
        controller.stop(timeout=0.5)

    with capsys.disabled():
        print(f"\n[{broker.name}, down {down_for} s] restart() took {back - began:.2f} s; "
              f"link online {reconnected - back:.2f} s after the broker was up, "
              f"{reconnected - began:.2f} s after it went down")


def test_a_newer_state_wins_over_one_in_flight_when_the_line_dropped(broker, links):
    healths: list[DeviceHealth] = []
    link = links("display-5", healths.append)
    link.publish_state("hall/test/display-5/state", {"ticket": "A001"})
    cut_the_line(link)  # A001 is probably still unacknowledged: paho re-sends it after reconnecting
    assert eventually(lambda: link.health.state == Health.OFFLINE, 2)
    link.publish_state("hall/test/display-5/state", {"ticket": "A002"})
    assert eventually(lambda: [h.state for h in healths][-1:] == [Health.ONLINE], 3)
    time.sleep(0.3)  # let any re-sent A001 land first
    assert json.loads(retained(broker, "hall/test/display-5/state")) == {"ticket": "A002"}


def test_commands_are_not_retained_and_carry_an_id(broker, links):
    controller = links("controller")
    printer = Watcher(broker, "hall/test/printer-2/cmd")
    try:
        sent_id = controller.publish_command("hall/test/printer-2/cmd", {"action": "print", "ticket": "A001"})
        m = printer.next(2)
        assert m is not None and not m.retain
        assert json.loads(m.payload) == {"action": "print", "ticket": "A001", "id": sent_id}
        assert controller.publish_command("hall/test/printer-2/cmd", {"action": "beep", "id": "k-7"}) == "k-7"
        assert json.loads(printer.next(2).payload)["id"] == "k-7"
    finally:
        printer.close()
    assert retained(broker, "hall/test/printer-2/cmd", 0.5) is None  # a printer restarting prints nothing


def test_a_repeated_command_is_acted_on_once(broker, links):
    printed: list[str] = []
    done = threading.Event()
    dedup = Deduplicator()

    def on_command(topic: str, payload: bytes) -> None:
        command = json.loads(payload)
        if not dedup.seen(command["id"]):
            printed.append(command["ticket"])
        if command["ticket"] == "last":
            done.set()

    links("printer-3", subscriptions={"hall/test/printer-3/cmd": on_command})
    controller = links("controller-3")
    # the same command delivered twice, as QoS 1 does when a PUBACK is lost
    for command in ({"id": "c1", "ticket": "A001"}, {"id": "c1", "ticket": "A001"},
                    {"id": "c2", "ticket": "A002"}, {"id": "c3", "ticket": "last"}):
        controller.publish_command("hall/test/printer-3/cmd", command)
    assert done.wait(3)
    assert printed == ["A001", "A002", "last"]


def test_the_deduplicator_forgets_the_oldest_ids():
    dedup = Deduplicator(size=2)
    # "a" was used more recently than "b", so "c" pushes "b" out
    assert [dedup.seen(i) for i in ("a", "b", "a", "c", "a", "b")] == [False, False, True, False, True, False]
