"""/events: every change in the hall as server-sent events, for displays and pages.

A client that reconnects with Last-Event-ID (or ?after=) gets what it missed from the
database first, then the live events; each identity sees what it may (auth.READERS in
full, other staff views.public_event, a screen without a login views.anonymous_event).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import datetime as dt
import json
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
        return StreamingResponse(_event_stream(ctrl, request, start, view, replays, live, streams),
                                 media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    return r


def _last_event_id(request: Request) -> int | None:
    last = request.headers.get("last-event-id")
    # str.isdigit() is true of "²" and "٣", which int() refuses: ASCII digits only
    return int(last) if last and last.isascii() and last.isdigit() else None


class _LiveEvents:
    """Events as the hall thread commits them, queued for one client's stream."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.queue: asyncio.Queue[tuple[int, dict[str, Any]]] = asyncio.Queue(maxsize=SSE_QUEUE_EVENTS)
        self.lagging = asyncio.Event()

    def push(self, event_id: int, event: Event) -> None:
        """On the hall thread."""
        self.loop.call_soon_threadsafe(_put, self.queue, self.lagging, (event_id, event_json(event)))

    async def next(self, wait: float) -> tuple[int, dict[str, Any]] | None:
        """The next event, or None after `wait` seconds without one."""
        try:
            return await asyncio.wait_for(self.queue.get(), wait)
        except asyncio.TimeoutError:
            return None


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
        while not await self.request.is_disconnected() and not self.live_events.lagging.is_set():
            got = await self.live_events.next(wait)
            if not self.still_live():
                return
            if got is None:
                if time.monotonic() - checked >= SSE_HEARTBEAT_SECONDS:
                    checked = time.monotonic()
                    yield b": heartbeat\n\n"
                continue
            chunk = self.live_chunk(*got)
            if chunk is not None:
                checked = time.monotonic()
                yield chunk

    def live_chunk(self, event_id: int, body: dict[str, Any]) -> bytes | None:
        if event_id <= self.sent:
            return None
        self.sent = event_id
        shown = self.shown({"id": event_id, **body})
        return _sse(event_id, shown) if shown is not None else None


async def _event_stream(ctrl: HallController, request: Request, after: int | None,
                        view: EventView | None = None, reader: EventReader | None = None,
                        live: Callable[[], bool] | None = None,
                        streams: OpenStreams | None = None) -> AsyncIterator[bytes]:
    """Every event after `after`, each as `view` shows it (None: in full; a view answering
    None drops the event). With a `view`, the replay goes back no further than today. With
    `live`, the stream ends within SSE_SESSION_CHECK_SECONDS of it answering False (the
    session was revoked)."""
    loop = asyncio.get_running_loop()
    live_events = _LiveEvents(loop)
    reader = reader or EventReader(ctrl.store)

    # Subscribed first, then the last id read: an event committed in between comes both ways,
    # and the live loop passes over ids the replay already sent.
    unsubscribe = ctrl.subscribe(live_events.push)
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


def _put(queue: asyncio.Queue[tuple[int, dict[str, Any]]], lagging: asyncio.Event,
         item: tuple[int, dict[str, Any]]) -> None:
    """A client too slow to keep up is cut off; it reconnects with Last-Event-ID and the
    database replays what it missed, so nothing is dropped silently."""
    try:
        queue.put_nowait(item)
    except asyncio.QueueFull:
        lagging.set()


def _sse(event_id: int, body: dict[str, Any]) -> bytes:
    return (f"id: {event_id}\nevent: {body['kind']}\n"
            f"data: {json.dumps(body, ensure_ascii=False)}\n\n").encode()
