"""/events: every change in the hall as server-sent events, for displays and pages.

A client that reconnects with Last-Event-ID (or ?after=) gets what it missed from the
database first, then the live events; each identity sees what it may (auth.READERS in
full, other staff views.public_event, a screen without a login views.anonymous_event).
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import datetime as dt
import json
import threading
import time
from typing import Any, AsyncGenerator, AsyncIterator, Callable

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse

from controller.core.events import Event, to_json as event_json
from controller.runtime.hallcontroller import HallController
from controller.store.replay import EventReader
from controller.store.sessions import Session, SessionStore
from controller.web import views
from controller.web.auth import API, READERS, OptionalSessionDependency, token_of
from controller.web.metrics import OpenStreams

SSE_HEARTBEAT_SECONDS = 15.0
# The streams are handed the events that waited at most this often: a call-next is two or
# three events, and a hundred displays woken for each at 100 calls a second kept the event
# loop busy with nothing else. An event on a quiet floor goes out at once.
SSE_BATCH_SECONDS = 0.1
SSE_QUEUE_EVENTS = 10_000
# how soon a stream whose session was revoked (logout, disable, the day change) closes
SSE_SESSION_CHECK_SECONDS = 0.5
# Replays read in threads of their own: a hundred displays reconnecting at once neither hold
# the hall's lock nor take the default pool's threads from a kiosk's printing.
_REPLAYS = concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="sse-replay")

EventView = Callable[[dict[str, Any]], dict[str, Any] | None]


def event_routes(ctrl: HallController, sessions: SessionStore,
                 optional_session: OptionalSessionDependency, replays: EventReader,
                 streams: OpenStreams | None = None) -> APIRouter:
    """`streams`: counts the open streams (/metrics)."""
    r = APIRouter()
    hub = _Hub(ctrl)

    @r.get(f"{API}/events", tags=["hall"],
           summary="Server-sent events for every change; resumes after Last-Event-ID")
    async def events(request: Request, after: int | None = None,
                     s: Session | None = Depends(optional_session)) -> StreamingResponse:
        start = after if after is not None else _last_event_id(request)
        # readers see everything; other staff the events without grades or who acted; a
        # screen without a login only what the hall display shows, and only today's
        view = (None if s is not None and s.role in READERS
                else views.public_event if s is not None else views.anonymous_event)
        token = token_of(request) if s is not None else None
        live = ((lambda: sessions.resolve(token, ctrl.clock().date()) is not None)
                if token else None)
        return StreamingResponse(_event_stream(ctrl, request, start, view, replays, live, hub, streams),
                                 media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    return r


def _last_event_id(request: Request) -> int | None:
    last = request.headers.get("last-event-id")
    # str.isdigit() is true of "²" and "٣", which int() refuses: ASCII digits only
    return int(last) if last and last.isascii() and last.isdigit() else None


class _Live:
    """One committed event as the streams send it: its JSON body, made once on the hall
    thread, and its SSE bytes as each view shows it, made once for every stream of that view
    (a hundred displays watching the hall get the same bytes)."""

    __slots__ = ("event_id", "body", "_shown")

    def __init__(self, event_id: int, body: dict[str, Any]) -> None:
        self.event_id, self.body = event_id, body
        self._shown: dict[EventView, bytes] = {}

    def chunk(self, view: EventView) -> bytes:
        """The event's SSE as `view` shows it; b"" when the view drops it."""
        out = self._shown.get(view)
        if out is None:
            shown = view({"id": self.event_id, **self.body})
            out = self._shown[view] = _sse(self.event_id, shown) if shown is not None else b""
        return out


class _Hub:
    """The one subscriber of the hall's events for every stream the app serves: each event
    becomes JSON once on the hall thread, and the events that waited reach the event loop in
    one call (at most every SSE_BATCH_SECONDS), which hands them to every stream. (Each
    stream subscribing for itself made a hundred JSON bodies, a hundred loop calls and a
    hundred encodings of every event.)"""

    def __init__(self, ctrl: HallController) -> None:
        self.ctrl = ctrl
        self.streams: set[_LiveEvents] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: list[_Live] = []
        self._guard = threading.Lock()
        self._unsubscribe: Callable[[], None] | None = None
        self._delivered_at = -SSE_BATCH_SECONDS  # loop.time() of the last hand-over

    def join(self, stream: _LiveEvents) -> Callable[[], None]:
        """On the event loop: `stream` gets every event committed from now on; returns the leave."""
        if self._unsubscribe is None:
            self._loop = asyncio.get_running_loop()
            self._unsubscribe = self.ctrl.subscribe(self._push)
        self.streams.add(stream)
        return lambda: self.streams.discard(stream)

    def _push(self, event_id: int, event: Event) -> None:
        """On the hall thread, after the commit."""
        if not self.streams or self._loop is None:
            return  # a stream joining now reads the last id after this event: its replay has it
        with self._guard:
            self._pending.append(_Live(event_id, event_json(event)))
            if len(self._pending) > 1:
                return  # the loop has been called for these already
        try:
            self._loop.call_soon_threadsafe(self._deliver)
        except RuntimeError:  # the loop has closed: the app is stopping
            pass

    def _deliver(self) -> None:
        """On the event loop: at once, or SSE_BATCH_SECONDS after the last hand-over."""
        assert self._loop is not None
        later = self._delivered_at + SSE_BATCH_SECONDS - self._loop.time()
        if later > 0:
            self._loop.call_later(later, self._deliver)
            return
        self._delivered_at = self._loop.time()
        with self._guard:
            live, self._pending = self._pending, []
        for stream in list(self.streams):
            stream.put(live)


class _LiveEvents:
    """Events as the hall thread commits them, waiting for one client's stream."""

    def __init__(self) -> None:
        self.waiting: collections.deque[_Live] = collections.deque()
        self.ready = asyncio.Event()
        self.lagging = asyncio.Event()

    def put(self, live: list[_Live]) -> None:
        """On the event loop. A client too slow to keep up is cut off; it reconnects with
        Last-Event-ID and the database replays what it missed, so nothing is dropped silently."""
        if len(self.waiting) + len(live) > SSE_QUEUE_EVENTS:
            self.lagging.set()
            self.ready.set()
            return
        self.waiting.extend(live)
        self.ready.set()

    async def next(self, wait: float) -> list[_Live]:
        """The events waiting, or none after `wait` seconds without one."""
        if not self.waiting:
            self.ready.clear()
            try:
                await asyncio.wait_for(self.ready.wait(), wait)
            except asyncio.TimeoutError:
                return []
        got = list(self.waiting)
        self.waiting.clear()
        return got


class _Stream:
    """One client's stream: `sent` is the last event id it has been given (or passed over)."""

    def __init__(self, request: Request, live_events: _LiveEvents, reader: EventReader,
                 shown: EventView, live: Callable[[], bool] | None, sent: int) -> None:
        self.request, self.live_events, self.reader = request, live_events, reader
        self.shown, self.live, self.sent = shown, live, sent
        self.revoked = False

    def still_live(self) -> bool:
        """False once the stream's session was revoked (the stream ends)."""
        if self.live is not None and not self.live():
            self.revoked = True
        return not self.revoked

    async def replay(self, upto: int) -> AsyncGenerator[bytes, None]:
        """What the client missed, page by page, read and formatted off the event loop;
        what happens meanwhile waits in the queue."""
        loop = asyncio.get_running_loop()
        while self.sent < upto:
            if not self.still_live():
                return
            last, chunk = await loop.run_in_executor(_REPLAYS, _replay_page, self.reader, self.sent,
                                                     upto, self.shown)
            if last is None:
                break
            self.sent = last
            if chunk:
                yield chunk

    async def follow(self) -> AsyncGenerator[bytes, None]:
        """The live events, passing over ids the replay already sent; a heartbeat when quiet.
        Ends when the client goes, falls too far behind, or its session is revoked."""
        checked = time.monotonic()
        wait = SSE_HEARTBEAT_SECONDS if self.live is None else SSE_SESSION_CHECK_SECONDS
        while not self.live_events.lagging.is_set():
            got = await self.live_events.next(wait)
            if not self.still_live() or self.live_events.lagging.is_set():
                return
            if not got:
                # a client gone is also seen by Starlette, which ends the stream; asked here
                # when quiet only, not on every batch of events (a hundred streams asked
                # ten times a second)
                if await self.request.is_disconnected():
                    return
                if time.monotonic() - checked >= SSE_HEARTBEAT_SECONDS:
                    checked = time.monotonic()
                    yield b": heartbeat\n\n"
                continue
            chunk = self.live_chunk(got)
            if chunk:
                checked = time.monotonic()
                yield chunk

    def live_chunk(self, live: list[_Live]) -> bytes:
        """The events not sent yet, as this stream's view shows them, in one chunk."""
        fresh = [e for e in live if e.event_id > self.sent]
        if fresh:
            self.sent = fresh[-1].event_id
        return b"".join(e.chunk(self.shown) for e in fresh)


async def _event_stream(ctrl: HallController, request: Request, after: int | None,
                        view: EventView | None = None, reader: EventReader | None = None,
                        live: Callable[[], bool] | None = None,
                        hub: _Hub | None = None,
                        streams: OpenStreams | None = None) -> AsyncIterator[bytes]:
    """Every event after `after`, each as `view` shows it (None: in full; a view answering
    None drops the event). With a `view`, the replay goes back no further than today. With
    `live`, the stream ends within SSE_SESSION_CHECK_SECONDS of it answering False (the
    session was revoked)."""
    loop = asyncio.get_running_loop()
    live_events = _LiveEvents()
    reader = reader or EventReader(ctrl.store)

    # Joined first, then the last id read: an event committed in between comes both ways,
    # and the live loop passes over ids the replay already sent.
    unsubscribe = (hub or _Hub(ctrl)).join(live_events)
    try:
        upto = await loop.run_in_executor(_REPLAYS, reader.last_id)
    except BaseException:
        unsubscribe()
        raise
    stream = _Stream(request, live_events, reader, view or _in_full, live,
                     upto if after is None else after)
    if streams is not None:
        streams.count += 1
    try:
        if view is not None and stream.sent < upto:
            stream.sent = max(stream.sent, await _start_of_today(ctrl, reader))
        yield b"retry: 1000\n\n"
        async with contextlib.aclosing(stream.replay(upto)) as missed:
            async for chunk in missed:
                yield chunk
        if stream.revoked:
            return
        async with contextlib.aclosing(stream.follow()) as happening:
            async for chunk in happening:
                yield chunk
    finally:
        unsubscribe()
        if streams is not None:
            streams.count -= 1


def _in_full(body: dict[str, Any]) -> dict[str, Any] | None:
    return body


async def _start_of_today(ctrl: HallController, reader: EventReader) -> int:
    """The last event id before the hall's midnight: a screen's replay starts after it."""
    now = ctrl.clock()
    midnight = dt.datetime.combine(now.date(), dt.time(), now.tzinfo)
    return await asyncio.get_running_loop().run_in_executor(_REPLAYS, reader.before_day,
                                                            now.date(), midnight)


def _replay_page(reader: EventReader, after: int, upto: int,
                 shown: EventView) -> tuple[int | None, bytes]:
    """The next page of a replay as one chunk of SSE, and the last event id it covers."""
    page = reader.events_after(after, upto)
    if not page:
        return None, b""
    parts = []
    for event_id, body in page:
        out = shown(body)
        if out is not None:
            parts.append(_sse(event_id, out))
    return page[-1][0], b"".join(parts)


def _sse(event_id: int, body: dict[str, Any]) -> bytes:
    return (f"id: {event_id}\nevent: {body['kind']}\n"
            f"data: {json.dumps(body, ensure_ascii=False)}\n\n").encode()
