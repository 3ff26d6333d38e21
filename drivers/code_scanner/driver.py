"""The kiosk's serial code scanner: listens on a DeviceLink and hands over each code scanned."""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

from drivers.code_scanner.codec import MAX_LENGTH, Scan, ScanDecoder
from drivers.transport import DeviceLink, TransportError

log = logging.getLogger(__name__)

ScanListener = Callable[[Scan], None]


class CodeScanner:
    """Reads one serial scanner and gives each code to `on_scan`, in the order scanned.

    The scanner speaks only when a code is shown, so the driver only listens.
    A broken line is the link's to reconnect (it reports offline and online
    itself). Bytes with no line end for `stale_after` seconds are line noise
    (a cable plugged in, a scanner powering up) and are dropped, so they
    cannot spoil the next code; a scanner sends one code in a single burst.
    """

    def __init__(self, device_id: str, link: DeviceLink, on_scan: ScanListener, prefix: bytes = b"",
                 suffix: bytes = b"", max_length: int = MAX_LENGTH, stale_after: float = 0.5) -> None:
        self.device_id = device_id
        self.link = link
        self.on_scan = on_scan
        self.decoder = ScanDecoder(prefix, suffix, max_length)
        self.stale_after = stale_after
        self._last_bytes_at = 0.0

    def poll_once(self, timeout: float = 0.2) -> list[Scan]:
        """Wait up to `timeout` for bytes; the scans they complete, each also given to `on_scan`.

        Offline, it waits out `timeout` too, so a loop of polls never spins while
        the link's backoff runs.
        """
        try:
            data = self.link.poll(timeout)
        except TransportError as e:
            log.info("%s: %s", self.device_id, e)
            # A code cut off by the unplug must not run into the first one after the replug.
            self.decoder.drop_pending("the line broke before the code ended")
            return []
        if not data:
            if self.decoder.pending and time.monotonic() - self._last_bytes_at >= self.stale_after:
                self.decoder.drop_pending(f"no line end within {self.stale_after} s")
            return []
        self._last_bytes_at = time.monotonic()
        scans = self.decoder.feed(data)
        for scan in scans:
            try:
                self.on_scan(scan)
            except Exception:
                log.exception("%s: scan listener failed", self.device_id)
        return scans

    def run(self, stop: threading.Event, timeout: float = 0.2) -> None:
        """Listen until `stop` is set (the body of the scanner's thread)."""
        while not stop.is_set():
            try:
                self.poll_once(timeout)
            except Exception:
                log.exception("%s: poll failed", self.device_id)
                stop.wait(timeout)
