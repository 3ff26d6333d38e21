"""The controller's REST API (FastAPI; OpenAPI at /docs, served with no outside assets).

This is the contract kiosks, keypads, displays and the hall's other systems
integrate against. Every error is `{"error": code, "message": text}` with a
4xx status; bad input never yields a 500. A storage fault (disk full, read-only
database) is 503 storage_unavailable: nothing changed, try again later.

Each area's routes are a router of their own (tickets_api, windows_api, kiosk_api,
events_api, ...); `create_app` assembles them with the error handlers, the body limit and
the tasks that run for the app's life.
"""

import asyncio
import contextlib
import inspect
import logging
import sqlite3
from typing import Any, AsyncIterator, Awaitable, Callable

from fastapi import FastAPI, HTTPException as FastAPIHTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi_offline import FastAPIOffline
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from controller.backoffice.cases import CaseDesk
from controller.core.errors import Category, HallError
from controller.backoffice.device_check import DeviceCheck
from controller.runtime.hallcontroller import HallController
from controller.entrance.kiosk import Kiosk
from controller.entrance.reminders import ReminderDesk
from controller.store.faults import StorageUnavailable, is_storage_error
from controller.store.kiosk_credentials import KioskCredentials
from controller.store.replay import EventReader
from controller.store.sessions import SessionStore
from controller.backoffice.alerts import FloorAlerts
from controller.config.settings import DisplaySettings, FloorLayout
from controller.web.admin_api import admin_routes
from controller.web.auth import session_dependencies
from controller.web.auth_api import auth_routes
from controller.web.cases_api import case_routes
from controller.web.events_api import event_routes
from controller.web.floor_api import floor_routes
from controller.web.hall_api import device_routes, hall_routes
from controller.web.guidance_api import guidance_routes
from controller.web.kiosk_api import kiosk_routes
from controller.web.limits import Limits
from controller.web.loop_lag import LoopLag
from controller.web.metrics import HallMetrics, OpenStreams, metrics_routes
from controller.web.pages import install_pages
from controller.web.patrol_api import patrol_routes
from controller.web.phone_api import phone_routes
from controller.web.reports_api import report_routes
from controller.web.shutdown import EndStreamsAtShutdown, Shutdown
from controller.web.rollup_api import rollup_routes
from controller.web.staff_api import staff_routes
from controller.web.tickets_api import ticket_routes
from controller.web import validation
from controller.web.windows_api import window_routes

log = logging.getLogger(__name__)

DOCS_ASSETS = "/static/docs"  # Swagger UI's and ReDoc's scripts and styles
MAX_BODY_BYTES = 64 * 1024
TOO_LARGE = f"请求体不能超过 {MAX_BODY_BYTES} 字节"
TICK_SECONDS = 5.0
CHECKPOINT_SECONDS = 2.0

# FastAPI 0.16x's own OpenTelemetry asks on every request whether anyone collects its spans,
# metrics or logs (a tenth of the request path's time); a hall sends them nowhere. Older
# FastAPI has no such option.
NO_TELEMETRY: dict[str, Any] = (
    {"telemetry": {"tracing": False, "metrics": False, "logs": False}}
    if "telemetry" in inspect.signature(FastAPI.__init__).parameters else {})

STATUS = {Category.INVALID: 422, Category.NOT_FOUND: 404, Category.CONFLICT: 409,
          Category.FORBIDDEN: 403, Category.UNAUTHORIZED: 401, Category.TOO_MANY: 429}


def error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": code, "message": message}, status_code=status)


def create_app(ctrl: HallController, sessions: SessionStore,
               background: list[Callable[[], Any]] | None = None,
               kiosks: dict[str, Kiosk] | None = None,
               desk: CaseDesk | None = None,
               before_stop: list[Callable[[], Any]] | None = None,
               device_check: DeviceCheck | None = None,
               display: DisplaySettings | None = None,
               layout: FloorLayout | None = None,
               reminders: ReminderDesk | None = None) -> FastAPI:
    """The API for one running hall. `background` are async startables run for the app's life;
    `before_stop` are plain callables run first at shutdown (devices, the MQTT client), so
    the embedded broker has no client left when it stops. `display`: the hall display page's
    [display] settings (its notices); `layout`: the supervisor's floor ([layout]; None: the
    windows in number order); `reminders`: the hall's 到号提醒 desk, if it has one."""
    kiosks = kiosks or {}
    limits = Limits(ctrl)
    kiosk_credentials = KioskCredentials(ctrl.store)
    lag = LoopLag()
    streams = OpenStreams()
    metrics = HallMetrics(ctrl, lag, streams)
    ctrl.timing = metrics  # the hall thread notes each command's latency and each commit

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        tasks = [asyncio.create_task(_ticker(ctrl, desk)), asyncio.create_task(_checkpointer(ctrl)),
                 asyncio.create_task(lag.run())]
        stops = [await start() for start in (background or [])]
        try:
            yield
        finally:
            for t in tasks:
                t.cancel()
            await _stop(before_stop or [], stops)

    # /docs and /redoc from the controller itself (fastapi-offline ships Swagger UI and ReDoc):
    # a hall has no internet, and FastAPI's own pages load their scripts from a CDN
    app = FastAPIOffline(title="Hall controller API", version="1",
                         description="政务服务中心 hall controller: tickets, windows, calling.",
                         lifespan=lifespan, static_url=DOCS_ASSETS, **NO_TELEMETRY)
    _install_error_handlers(app, ctrl)
    session, optional_session = session_dependencies(ctrl, sessions)

    # the order of the routes is the order of /docs
    app.include_router(ticket_routes(ctrl, optional_session, limits, kiosk_credentials))
    app.include_router(kiosk_routes(ctrl, kiosks, session, limits, kiosk_credentials))
    app.include_router(guidance_routes(ctrl, session, kiosk_credentials))
    app.include_router(phone_routes(ctrl, reminders, optional_session, kiosk_credentials))
    app.include_router(staff_routes(ctrl, sessions, session))
    if desk is not None:
        app.include_router(case_routes(ctrl, desk, session))
    app.include_router(report_routes(ctrl, session))
    app.include_router(patrol_routes(ctrl, session))
    app.include_router(rollup_routes(ctrl, session))
    if device_check is not None:
        app.include_router(admin_routes(ctrl, device_check, session))
    app.include_router(device_routes(ctrl, session))
    app.include_router(floor_routes(FloorAlerts(ctrl), layout or FloorLayout.default(ctrl.hall.windows),
                                    session))
    app.include_router(window_routes(ctrl, session))
    app.include_router(hall_routes(ctrl, optional_session, lag, display))
    app.include_router(event_routes(ctrl, sessions, optional_session, EventReader(ctrl.store),
                                    streams))
    app.include_router(metrics_routes(metrics))
    app.include_router(auth_routes(ctrl, sessions, session, limits))
    install_pages(app, ctrl, sessions, kiosks)
    # `hallctl run` calls app.state.shutdown.begin() when told to stop (controller/web/shutdown.py)
    app.state.shutdown = Shutdown()
    app.add_middleware(EndStreamsAtShutdown, shutdown=app.state.shutdown)
    app.add_middleware(LimitBody)
    return app


async def _stop(before_stop: list[Callable[[], Any]],
                stops: list[Callable[[], Awaitable[Any]] | None]) -> None:
    """At shutdown: the plain callables first (devices, the MQTT client), each in a thread, one
    that fails logged and passed over; then the stops the background startables returned."""
    for fn in before_stop:
        try:
            await asyncio.to_thread(fn)
        except Exception:
            log.exception("stopping %s", fn)
    for stop in stops:
        if stop is not None:
            await stop()


class LimitBody:
    """Refuse a body over MAX_BODY_BYTES: a declared one before anything reads it, one
    sent without a length (chunked) as soon as it grows past the limit while being read.

    Plain ASGI rather than `@app.middleware("http")`: Starlette's BaseHTTPMiddleware
    spends a task group and memory streams on every request, a large share of the
    controller's CPU per ticket issue (`make bench-core`, docs/benchmarks.md).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        size = next((v for k, v in scope["headers"] if k == b"content-length"), None)
        if size and (not size.isdigit() or int(size) > MAX_BODY_BYTES):
            reply = error(413, "body_too_large", TOO_LARGE)
            await reply(scope, receive, send)
            return
        if size:  # declared and small: the server reads no more than that
            await self.app(scope, receive, send)
            return
        read = 0

        async def counted() -> Message:
            nonlocal read
            message = await receive()
            if message["type"] == "http.request":
                read += len(message.get("body", b""))
                if read > MAX_BODY_BYTES:
                    # FastAPI passes an HTTPException from the body read on to the handler
                    raise FastAPIHTTPException(413, TOO_LARGE)
            return message

        await self.app(scope, counted, send)


async def _checkpointer(ctrl: HallController) -> None:
    """Keep the WAL short from a thread of its own, so no request pays for a checkpoint."""
    while True:
        await asyncio.sleep(CHECKPOINT_SECONDS)
        try:
            await asyncio.to_thread(ctrl.store.checkpoint)
        except Exception as e:
            if not is_storage_error(e):
                log.exception("checkpoint failed")
            else:  # a full disk: logged once (HallStore.failed), /health degraded, no traceback
                ctrl.store.failed(e, ctrl.clock())


async def _ticker(ctrl: HallController, desk: CaseDesk | None = None) -> None:
    """Time passing is a command too: pause-limit alerts, the day change, default grades,
    and overdue callback cases."""
    while True:
        await asyncio.sleep(TICK_SECONDS)
        def tick() -> None:
            ctrl.tick()
            if desk is not None:
                desk.sweep(ctrl.clock())
        try:
            await ctrl.arun(tick)
        except Exception as e:
            if not is_storage_error(e):
                log.exception("tick failed")
            else:
                ctrl.store.failed(e, ctrl.clock())


def _install_error_handlers(app: FastAPI, ctrl: HallController) -> None:
    def unavailable(e: StorageUnavailable) -> JSONResponse:
        return JSONResponse({"error": e.code, "message": e.message, "storage": e.fault.json()},
                            status_code=503, headers={"Retry-After": "30"})

    @app.exception_handler(StorageUnavailable)
    async def storage_unavailable(request: Request, e: StorageUnavailable) -> JSONResponse:
        return unavailable(e)

    @app.exception_handler(sqlite3.OperationalError)
    async def storage_error(request: Request, e: sqlite3.OperationalError) -> JSONResponse:
        # writers beside the command log (sessions, appointments, cases) fail here
        return unavailable(ctrl.store.failed(e, ctrl.clock()))

    @app.exception_handler(HallError)  # and its areas' subclasses (CaseError, DeskError)
    async def hall_error(request: Request, e: HallError) -> JSONResponse:
        reply = error(STATUS[e.category], e.code, e.message)
        if e.retry_after:
            reply.headers["Retry-After"] = str(e.retry_after)
        return reply

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, e: RequestValidationError) -> JSONResponse:
        return error(422, "invalid_request", validation.message(e.errors()))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, e: StarletteHTTPException) -> JSONResponse:
        code, message = _HTTP_ERRORS.get(e.status_code, ("http_error", str(e.detail)))
        return error(e.status_code, code, str(e.detail) if e.status_code == 413 else message)


# Starlette's and FastAPI's own refusals, in the hall's words (413: LimitBody's message).
_HTTP_ERRORS = {
    400: ("invalid_request", "请求内容无法解析：应为 UTF-8 编码的 JSON"),
    404: ("not_found", "没有这个地址"),
    405: ("method_not_allowed", "不支持这种请求方法"),
    413: ("body_too_large", TOO_LARGE),
}
