"""Shared fixtures: the MQTT brokers (a real Mosquitto, the embedded amqtt) live in mqtt_brokers."""

pytest_plugins = ["tests.mqtt_brokers"]
