"""Stopping the web API promptly: Ctrl+C (or SIGTERM) ends the open event streams at once.

Every hall display, counter and supervisor page holds an event stream (/api/v1/events) open.
At shutdown uvicorn waits for open requests up to its grace time, then cancels them and logs
each one as an error with a traceback. So once the server is told to stop, the streams end as
a complete response would: the pages' EventSource reconnects, to the next controller, by
itself. Every other request runs to its end as before.
"""

from __future__ import annotations

import asyncio

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from controller.web.auth import API

STREAMS = frozenset({f"{API}/events"})


class Shutdown:
    """The server was told to stop. `begin()` is called from its signal handler, which runs on
    the event loop's thread between two steps of whatever ran: it only schedules the wake-up."""

    def __init__(self) -> None:
        self.begun = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._event: asyncio.Event | None = None

    def begin(self) -> None:
        self.begun = True
        if self._loop is not None and self._event is not None:
            self._loop.call_soon_threadsafe(self._event.set)

    async def wait(self) -> None:
        if self._event is None:
            self._loop, self._event = asyncio.get_running_loop(), asyncio.Event()
        if not self.begun:
            await self._event.wait()


class EndStreamsAtShutdown:
    """Plain ASGI (as LimitBody, for the same reason): a stream is served as a task beside a
    wait for the shutdown; the first to finish wins. Other requests pass straight through."""

    def __init__(self, app: ASGIApp, shutdown: Shutdown) -> None:
        self.app = app
        self.shutdown = shutdown

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in STREAMS:
            await self.app(scope, receive, send)
            return
        started = complete = False

        async def watched(message: Message) -> None:
            nonlocal started, complete
            if message["type"] == "http.response.start":
                started = True
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                complete = True
            await send(message)

        serving = asyncio.ensure_future(self.app(scope, receive, watched))
        stopping = asyncio.ensure_future(self.shutdown.wait())
        try:
            await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:  # uvicorn gave up on this request: so does the stream
            serving.cancel()
            raise
        finally:
            stopping.cancel()
        if serving.done():
            serving.result()  # the stream's own end, or its error as it was
            return
        serving.cancel()
        await asyncio.wait({serving})  # its cleanup (unsubscribing from the hall) runs first
        if complete:
            return
        if started:
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        await send({"type": "http.response.start", "status": 503,
                    "headers": [(b"content-type", b"text/plain; charset=utf-8"), (b"retry-after", b"1")]})
        await send({"type": "http.response.body", "body": "服务正在停止，请稍后重连".encode()})
