"""The one base of the codecs' protocol errors: bytes or values a device's codec cannot
understand or will not encode. A driver that catches `ProtocolError` catches every codec's;
each codec's own subclass says which device it was.

Like a codec, this module imports nothing from transports, drivers or the controller."""

from __future__ import annotations


class ProtocolError(Exception):
    """Bytes or values that are not a valid message of a device's protocol."""
