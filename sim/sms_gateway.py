"""A simulated SMS gateway (短信网关): a real HTTP server on a loopback port that takes the
controller's messages as the `http` gateway kind sends them (drivers.sms) and records them.

Like a real gateway it drops a message whose `Idempotency-Key` it has already taken (a
controller that stopped between sending and recording sends it again): `messages` holds each
message once, `received` every POST. It can be told to fail (`fail(500)`) or to hang (`hang()`,
until `release()`), to show that the hall does not wait for it.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Received:
    id: str
    to: str
    text: str


class SmsGatewaySim:
    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.messages: list[Received] = []  # each message once, in the order taken
        self.received: list[Received] = []  # every POST that reached it
        self.refused = 0
        self._lock = threading.Lock()
        self._status = 200
        self._open = threading.Event()
        self._open.set()
        self._arrived = threading.Condition(self._lock)
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                gateway._take(self, body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.url = f"http://{host}:{self.server.server_address[1]}/sms"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> SmsGatewaySim:
        self._thread.start()
        return self

    def close(self) -> None:
        self.release()
        self.server.shutdown()
        self.server.server_close()

    # -- behaviour --------------------------------------------------------------------------

    def fail(self, status: int = 500) -> None:
        """Answer every message with `status` (200: take them again)."""
        self._status = status

    def hang(self) -> None:
        """Take no message and answer nothing until `release()`."""
        self._open.clear()

    def release(self) -> None:
        self._open.set()

    def _take(self, handler: BaseHTTPRequestHandler, body: bytes) -> None:
        data = json.loads(body)
        got = Received(data["id"], data["to"], data["text"])
        key = handler.headers.get("Idempotency-Key") or got.id
        with self._lock:
            self.received.append(got)
            self._arrived.notify_all()
        self._open.wait()
        status = self._status
        with self._lock:
            if status == 200 and all(m.id != key for m in self.messages):
                self.messages.append(got)
            elif status != 200:
                self.refused += 1
            self._arrived.notify_all()
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", "application/json")
            handler.end_headers()
            handler.wfile.write(b'{"ok": true}' if status == 200 else b'{"error": "gateway failure"}')
        except OSError:
            pass  # the controller gave up waiting (its timeout) while this one hung: as a real one

    # -- reading ----------------------------------------------------------------------------

    def wait_for(self, count: int, timeout: float = 10.0, taken: bool = True) -> list[Received]:
        """The messages once at least `count` were taken (`taken=False`: received), or
        AssertionError after `timeout` seconds."""
        with self._lock:
            ok = self._arrived.wait_for(
                lambda: len(self.messages if taken else self.received) >= count, timeout)
            seen = list(self.messages if taken else self.received)
        if not ok:
            raise AssertionError(f"the SMS gateway got {len(seen)} messages, not {count}: {seen}")
        return seen

    def to(self, phone: str) -> list[Received]:
        with self._lock:
            return [m for m in self.messages if m.to == phone]


def main(argv: list[str] | None = None) -> int:
    """`python -m sim.sms_gateway --port 8025`: a recording gateway for a demo hall, printing
    each message it takes (the hall's `[reminders] url = "http://127.0.0.1:8025/sms"`)."""
    import argparse
    import time

    parser = argparse.ArgumentParser(description="a simulated SMS gateway that prints what it gets")
    parser.add_argument("--port", type=int, default=8025)
    args = parser.parse_args(argv)
    gateway = SmsGatewaySim(port=args.port).start()
    print(f"SMS gateway at {gateway.url}; Ctrl+C stops it", flush=True)
    shown = 0
    try:
        while True:
            time.sleep(0.2)
            for m in gateway.messages[shown:]:
                print(f"{m.to[:3]}****{m.to[-4:]}  {m.text}", flush=True)
            shown = len(gateway.messages)
    except KeyboardInterrupt:
        return 0
    finally:
        gateway.close()


if __name__ == "__main__":
    raise SystemExit(main())
