"""The embedded amqtt broker a hall without Mosquitto runs: a real MQTT round trip."""

from __future__ import annotations

import asyncio
import concurrent.futures
import queue
import threading

import paho.mqtt.client as mqtt
import pytest

from controller.mqtt.broker import start_embedded_broker
from tests.server import free_port


@pytest.fixture
def embedded_broker():
    port = free_port()
    loop = asyncio.new_event_loop()
    started = threading.Event()
    holder = {}

    def serve():
        asyncio.set_event_loop(loop)
        holder["stop"] = loop.run_until_complete(start_embedded_broker(f"127.0.0.1:{port}"))
        started.set()
        loop.run_forever()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    assert started.wait(10)
    yield port
    asyncio.run_coroutine_threadsafe(holder["stop"](), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    t.join(10)


def test_a_device_can_publish_and_subscribe(embedded_broker):
    got: queue.Queue = queue.Queue()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="test-display")
    client.on_message = lambda c, u, m: got.put((m.topic, m.payload, m.retain))
    client.connect("127.0.0.1", embedded_broker)
    client.loop_start()
    try:
        client.subscribe("hall/test/#", qos=1)
        client.publish("hall/test/state", "A001 请到 3 号窗口".encode(), qos=1, retain=True).wait_for_publish(5)
        topic, payload, _ = got.get(timeout=5)
        assert (topic, payload.decode()) == ("hall/test/state", "A001 请到 3 号窗口")
    finally:
        client.loop_stop()
        client.disconnect()


def test_a_taken_port_is_a_clear_error(embedded_broker):
    # in a thread of its own: a browser test earlier in the session leaves Playwright's event
    # loop running in the main thread, where asyncio.run() refuses to start
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        attempt = pool.submit(asyncio.run, start_embedded_broker(f"127.0.0.1:{embedded_broker}"))
        with pytest.raises(RuntimeError, match="embedded_listen"):
            attempt.result(timeout=30)
