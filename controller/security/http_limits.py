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
import resource

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
    from controller.security.bounded_http import BoundedHttp  # uvicorn: only `hallctl run`

    class Bounded(BoundedHttp):
        """This server's bounds."""

    Bounded.request_seconds, Bounded.cap = request_seconds, cap
    return Bounded
