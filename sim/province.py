"""A provincial 好差评 platform (省级好差评系统) to deliver to: a real HTTP server that is slow,
fails, and acknowledges twice, as a platform over a WAN does.

    POST /evaluations   a JSON record with the header Idempotency-Key: 200 {"ack_id": ...};
                        the same key again is acknowledged again with the same ack id and
                        stored once
    GET  /records       what it holds: {key: {"record", "ack_id", "received"}} (received: how
                        many requests carried the key)

Each request is delayed by up to `slow_seconds`; then, at the rates given, it fails before
taking the record (a 503, a reset connection, or no answer for `hang_seconds`), or takes it
and loses the answer (a 502 or a reset after the record is stored: the sender must send it
again, and gets a second acknowledgement). A record whose key is known with a different body
is a 409 and counted in `conflicts`: a sender that changes a record under the same key.

    python -m sim.province --port 8200 --fail-rate 0.2 --ack-twice-rate 0.1 --slow 0.05
"""

from __future__ import annotations

import argparse
import json
import random
import socket
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Province:
    """The platform: its records and its misbehaviour; `start()` serves it on a port."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, fail_rate: float = 0.0,
                 ack_twice_rate: float = 0.0, slow_seconds: float = 0.0, hang_seconds: float = 3.0,
                 seed: int = 1) -> None:
        self.host, self.port = host, port
        self.fail_rate, self.ack_twice_rate = fail_rate, ack_twice_rate
        self.slow_seconds, self.hang_seconds = slow_seconds, hang_seconds
        self.records: dict[str, dict[str, Any]] = {}
        self.requests = 0
        self.conflicts = 0
        self.failures: dict[str, int] = {}
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/evaluations"

    def start(self) -> Province:
        """Serve (again, on the same port after a `stop()`); what it holds is kept."""
        province = self

        class Handler(_Handler):
            platform = province

        server = ThreadingHTTPServer((self.host, self.port), Handler)
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="province", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """The platform is down: the port refuses connections."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def _draw(self) -> str | None:
        """This request's misbehaviour, if any."""
        with self._lock:
            self.requests += 1
            r = self._rng.random()
            if r < self.fail_rate:
                return self._rng.choice(("503", "reset", "hang"))
            if r < self.fail_rate + self.ack_twice_rate:
                return self._rng.choice(("502_after", "reset_after"))
            return None

    def take(self, key: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """Store the record under its key (once); the answer."""
        with self._lock:
            held = self.records.get(key)
            if held is None:
                held = self.records[key] = {"record": body, "ack_id": f"ACK{len(self.records) + 1:08d}",
                                            "received": 0}
            elif held["record"] != body:
                self.conflicts += 1
                return 409, {"error": "conflict", "message": "同一幂等键的评价内容不一致"}
            held["received"] += 1
            return 200, {"ack_id": held["ack_id"], "duplicate": held["received"] > 1}


class _Handler(BaseHTTPRequestHandler):
    platform: Province
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _send(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body, ensure_ascii=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _reset(self) -> None:
        """Close with a TCP reset, no answer."""
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.connection.close()

    def do_GET(self) -> None:
        p = self.platform
        if self.path != "/records":
            self._send(404, {"error": "not_found"})
            return
        with p._lock:
            self._send(200, {"records": p.records, "requests": p.requests, "conflicts": p.conflicts})

    def do_POST(self) -> None:
        p = self.platform
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        key = self.headers.get("Idempotency-Key")
        if self.path != "/evaluations":
            self._send(404, {"error": "not_found"})
            return
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        if not key or not isinstance(body, dict):
            self._send(400, {"error": "bad_request", "message": "缺少幂等键或评价内容不是 JSON 对象"})
            return
        if p.slow_seconds:
            time.sleep(p._rng.random() * p.slow_seconds)
        trouble = p._draw()
        if trouble is not None:
            with p._lock:
                p.failures[trouble] = p.failures.get(trouble, 0) + 1
        if trouble == "503":
            self._send(503, {"error": "busy"})
        elif trouble == "reset":
            self._reset()
        elif trouble == "hang":
            time.sleep(p.hang_seconds)
            self._reset()
        else:
            status, answer = p.take(key, body)
            if trouble == "502_after":
                self._send(502, {"error": "bad_gateway"})
            elif trouble == "reset_after":
                self._reset()
            else:
                self._send(status, answer)


def main(argv: list[str] | None = None) -> int:
    a = argparse.ArgumentParser(prog="python -m sim.province", description="a flaky provincial 好差评 platform")
    a.add_argument("--host", default="127.0.0.1")
    a.add_argument("--port", type=int, default=8200)
    a.add_argument("--fail-rate", type=float, default=0.2)
    a.add_argument("--ack-twice-rate", type=float, default=0.1)
    a.add_argument("--slow", type=float, default=0.05, help="each request delayed by up to this many seconds")
    a.add_argument("--hang", type=float, default=3.0, help="a hung request's seconds before its reset")
    args = a.parse_args(argv)
    p = Province(args.host, args.port, args.fail_rate, args.ack_twice_rate, args.slow, args.hang).start()
    print(f"province: {p.url}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        p.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
