"""The web API's HTTP protocol: uvicorn's (httptools) with the request deadline and the
connection cap that `controller.security.http_limits` explains. Imports uvicorn: only `hallctl run`
loads this module (`http_limits.bounded_protocol`)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger("controller.security.http_limits")


class BoundedHttp(HttpToolsProtocol):
    """A connection that must deliver each request within `request_seconds`, and that, over
    the `cap` of kept connections, closes the one waiting longest for its request."""

    request_seconds: ClassVar[float]
    cap: ClassVar[int]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.request_deadline: asyncio.TimerHandle | None = None
        self.waiting_since: float | None = None  # waiting for a request: may give way

    # uvicorn's own override narrows the transport to asyncio.Transport the same way
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._await_request()
        self._make_room()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self.request_deadline is None:  # the next request on a kept-alive connection
            self._await_request()

    def on_message_complete(self) -> None:
        self._request_arrived()
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.timeout_keep_alive_task is not None:  # idle until the next request
            self.waiting_since = self.loop.time()

    def handle_websocket_upgrade(self) -> None:
        self._request_arrived()  # the WebSocket protocol owns the connection from here
        super().handle_websocket_upgrade()

    def connection_lost(self, exc: Exception | None) -> None:
        self._request_arrived()
        super().connection_lost(exc)

    def _await_request(self) -> None:
        self.request_deadline = self.loop.call_later(self.request_seconds, self._too_slow)
        if self.waiting_since is None:
            self.waiting_since = self.loop.time()

    def _request_arrived(self) -> None:
        if self.request_deadline is not None:
            self.request_deadline.cancel()
            self.request_deadline = None
        self.waiting_since = None

    def _too_slow(self) -> None:
        self.request_deadline = None
        if not self.transport.is_closing():
            log.info("%s: request not complete within %.0f s; connection closed",
                     _address(self.client), self.request_seconds)
            self.transport.close()

    def _make_room(self) -> None:
        live = [p for p in self.connections if not p.transport.is_closing()]
        if len(live) <= self.cap:
            return
        # a WebSocket's protocol, after its upgrade, never gives way
        waiting = [(p.waiting_since, p) for p in live if p is not self
                   and isinstance(p, BoundedHttp) and p.waiting_since is not None]
        if waiting:
            oldest = min(waiting, key=lambda since: since[0])[1]
            oldest._request_arrived()
            oldest.transport.close()
            _note_full(self.cap, f"closed a connection from {_address(oldest.client)} that had "
                                 "waited longest for its request")
        else:
            self._request_arrived()
            self.transport.close()
            _note_full(self.cap, f"every connection is busy; refused {_address(self.client)}")


_last_note = 0.0


def _note_full(cap: int, what: str) -> None:
    """One warning a minute at most: a flood would otherwise write a line per connection."""
    global _last_note
    now = asyncio.get_running_loop().time()
    if now - _last_note >= 60:
        _last_note = now
        log.warning("web API at its %d connections (a flood of slow clients?): %s", cap, what)


def _address(client: tuple[str, int] | None) -> str:
    return f"{client[0]}:{client[1]}" if client else "a client"
