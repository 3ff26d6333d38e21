"""How long a client may take over its request, and how many connections the web API keeps open,
so that slow or half-sent requests cannot use up the controller's file descriptors.

uvicorn closes an idle keep-alive connection after `timeout_keep_alive`, but it puts no limit
on the time a request takes to arrive: each half-sent request held a file descriptor for ever,
and 1,100 of them (against 1,024 descriptors) stopped /health and the kiosks. Three bounds:

- a request (its headers and body) must arrive within `request_seconds` of the connection
  opening, or of its first byte on a kept-alive connection; otherwise the connection is closed.
  Sending one byte at a time does not extend it (uvicorn's keep-alive timer restarts on every
  byte; this one does not);
- at most `cap` connections are kept. A connection over the cap closes the one that has waited
  longest for a request (half-sent, or idle between requests) — a citizen's kiosk or a staff
  page sends its request at once, so it is the flood that gives way, not them. Only when every
  kept connection is busy with a request or an event stream is the newcomer itself closed;
- the listen backlog: the server accepts at most `backlog` queued connections before it can run
  any code, so the cap leaves that many descriptors spare and accept() never fails for want of
  one (libuv, uvloop's loop, then drops every queued connection, /health's with the rest).
"""

from __future__ import annotations

import asyncio
import logging
import resource
from typing import Any

log = logging.getLogger(__name__)

REQUEST_SECONDS = 10.0
KEEP_ALIVE_SECONDS = 5
MAX_CONNECTIONS = 1000
BACKLOG = 64
# beyond the web connections: the database and its WAL, logs, the event loop's own, voice files
RESERVED_FILES = 64
MIN_CONNECTIONS = 16


def connection_cap(max_connections: int, devices: int, backlog: int = BACKLOG) -> int:
    """The web connections this process can keep with its open-file limit: the limit less the
    reserve (and one descriptor per device: a serial port, a printer's or a broker client's
    socket), less the backlog. Too few is a RuntimeError naming the fix."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return max_connections
    room = soft - RESERVED_FILES - devices - backlog
    if room < MIN_CONNECTIONS:
        raise RuntimeError(f"the open-file limit ({soft}) leaves room for {max(room, 0)} web "
                           f"connections, fewer than {MIN_CONNECTIONS}; raise it (`ulimit -n`, or "
                           "LimitNOFILE= in the systemd unit)")
    return min(max_connections, room)


def bounded_protocol(request_seconds: float, cap: int) -> type[asyncio.Protocol]:
    """uvicorn's HTTP protocol (httptools) with the request deadline and the connection cap."""
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol  # only `hallctl run`


    class BoundedHttp(HttpToolsProtocol):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.request_deadline: asyncio.TimerHandle | None = None
            self.waiting_since: float | None = None  # waiting for a request: may give way

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
            self.request_deadline = self.loop.call_later(request_seconds, self._too_slow)
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
                         _address(self.client), request_seconds)
                self.transport.close()

        def _make_room(self) -> None:
            live = [p for p in self.connections if not p.transport.is_closing()]
            if len(live) <= cap:
                return
            waiting = [p for p in live if p is not self
                       and getattr(p, "waiting_since", None) is not None]
            if waiting:
                oldest = min(waiting, key=lambda p: p.waiting_since)
                oldest._request_arrived()
                oldest.transport.close()
                _note_full(cap, f"closed a connection from {_address(oldest.client)} that had "
                                "waited longest for its request")
            else:
                self._request_arrived()
                self.transport.close()
                _note_full(cap, f"every connection is busy; refused {_address(self.client)}")

    return BoundedHttp


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
