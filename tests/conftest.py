"""Shared fixtures: the MQTT brokers (a real Mosquitto, the embedded amqtt) live in
mqtt_brokers; the real browser (Playwright driving Debian's Chromium) and the demo hall
the page tests open live in browser."""

pytest_plugins = ["tests.mqtt_brokers", "tests.browser", "tests.postgres"]
