"""A simulated serial code scanner on a pty, sending codes with the driver's own codec.

`scan(text)` is a citizen holding a QR code or barcode under the scanner;
`chunks` and `gap` make it arrive in pieces, as from a slow UART or a
USB-serial adapter's latency timer. `send_raw(data)` puts anything on the line
(noise, a misconfigured scanner).
"""

from __future__ import annotations

import time

from drivers.code_scanner.codec import encode_scan
from sim.pty_device import PtyDevice


class SimulatedScanner(PtyDevice):
    """The scanner as a peer on a pty, set up like the real one: prefix, suffix, line end, encoding."""

    def __init__(self, link: str | None = None, prefix: bytes = b"", suffix: bytes = b"",
                 terminator: bytes = b"\r\n", encoding: str = "utf-8") -> None:
        super().__init__(link)
        self.prefix, self.suffix = prefix, suffix
        self.terminator, self.encoding = terminator, encoding
        encode_scan("0", prefix, suffix, terminator, encoding)  # a bad setup fails here, not mid-test

    def scan(self, text: str, chunks: int = 1, gap: float = 0.0, prefix: bytes | None = None,
             suffix: bytes | None = None) -> bytes:
        """Send one code, in `chunks` pieces `gap` seconds apart; the bytes sent."""
        data = encode_scan(text, self.prefix if prefix is None else prefix,
                           self.suffix if suffix is None else suffix, self.terminator, self.encoding)
        size = -(-len(data) // max(chunks, 1))
        for at in range(0, len(data), size):
            if at and gap:
                time.sleep(gap)
            self.send(data[at:at + size])
        return data

    def send_raw(self, data: bytes) -> None:
        self.send(data)

    def handle(self, data: bytes) -> None:
        """The host has nothing to say to a scanner (setup codes are scanned from the manual)."""
