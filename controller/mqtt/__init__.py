"""The hall's MQTT: the embedded broker and its device accounts."""
