"""The controller's REST API (FastAPI; OpenAPI at /docs).

This is the contract kiosks, keypads, displays and the hall's other systems
integrate against. Every error is `{"error": code, "message": text}` with a
4xx status; bad input never yields a 500. A storage fault (disk full, read-only
database) is 503 storage_unavailable: nothing changed, try again later.
"""


import asyncio
import concurrent.futures
import contextlib
import copy
import datetime as dt
import json
import time
import logging
import sqlite3
from typing import Any, AsyncIterator, Callable

from fastapi import Depends, FastAPI, HTTPException as FastAPIHTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from controller import pins
from controller.core import commands as c, identity
from controller.core.errors import Category, HallError
from controller.core.events import to_json as event_json
from controller.core.hall import StaffRole
from controller.core.model import HallState
from controller.hallcontroller import HallController
from controller.cases import CaseDesk
from controller.kiosk import Kiosk
from controller.store.kiosk_credentials import KioskCredentials
from controller.store.faults import StorageFault, StorageUnavailable, is_storage_error
from controller.store.replay import EventReader
from controller.store.sessions import Session, SessionStore
from controller.web import schemas, views
from controller.web.kiosk_api import kiosk_of_request, kiosk_routes
from controller.web.reports_api import report_routes
from controller.web.patrol_api import patrol_routes
from controller.web.rollup_api import rollup_routes
from controller.web.cases_api import case_routes
from controller.web.admin_api import admin_routes
from controller.web.limits import Limits, client_address
from controller.web.loop_lag import LoopLag
from controller.web.staff_api import staff_routes
from controller.device_check import DeviceCheck
from controller.web.pages import COOKIE, PAGE_HEADER, install_pages

log = logging.getLogger(__name__)

API = "/api/v1"
MAX_BODY_BYTES = 64 * 1024
TOO_LARGE = f"请求体不能超过 {MAX_BODY_BYTES} 字节"
TICK_SECONDS = 5.0
CHECKPOINT_SECONDS = 2.0
SSE_HEARTBEAT_SECONDS = 15.0
SSE_QUEUE_EVENTS = 10_000
# how soon a stream whose session was revoked (logout, disable, the day change) closes
SSE_SESSION_CHECK_SECONDS = 0.5
# Replays read in threads of their own: a hundred displays reconnecting at once neither hold
# the hall's lock nor take the default pool's threads from a kiosk's printing.
_REPLAYS = concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="sse-replay")

STATUS = {Category.INVALID: 422, Category.NOT_FOUND: 404, Category.CONFLICT: 409,
          Category.FORBIDDEN: 403, Category.UNAUTHORIZED: 401, Category.TOO_MANY: 429}
# Who reads every detail of the event stream and of a ticket's history; other staff see
# views.public_event, a screen or a citizen without a login views.anonymous_event / _ticket.
READERS = (StaffRole.SUPERVISOR, StaffRole.ADMIN, StaffRole.CALLBACK_OFFICER)


def error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": code, "message": message}, status_code=status)


def create_app(ctrl: HallController, sessions: SessionStore,
               background: list[Callable[[], Any]] | None = None,
               kiosks: dict[str, Kiosk] | None = None,
               desk: CaseDesk | None = None,
               before_stop: list[Callable[[], Any]] | None = None,
               device_check: DeviceCheck | None = None) -> FastAPI:
    """The API for one running hall. `background` are async startables run for the app's life;
    `before_stop` are plain callables run first at shutdown (devices, the MQTT client), so
    the embedded broker has no client left when it stops."""
    kiosks = kiosks or {}
    limits = Limits(ctrl)
    kiosk_credentials = KioskCredentials(ctrl.store)
    replays = EventReader(ctrl.store)
    lag = LoopLag()

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
            for fn in before_stop or []:
                try:
                    await asyncio.to_thread(fn)
                except Exception:
                    log.exception("stopping %s", fn)
            for stop in stops:
                if stop is not None:
                    await stop()

    app = FastAPI(title="Hall controller API", version="1",
                  description="政务服务中心 hall controller: tickets, windows, calling.",
                  lifespan=lifespan)
    _install_error_handlers(app, ctrl)

    # `async def` because they do no I/O: FastAPI runs a plain `def` dependency in its
    # thread pool, a thread hop on every request that carries a token.
    async def session(request: Request) -> Session:
        found = session_of(sessions, request, ctrl.clock().date())
        if found is None:
            raise HallError("not_logged_in")
        return found

    async def optional_session(request: Request) -> Session | None:
        """A bearer token must be good; a page cookie that does not authorise is no session."""
        if request.headers.get("authorization"):
            return await session(request)
        return session_of(sessions, request, ctrl.clock().date())

    def acting_for(number: int, s: Session) -> str:
        """On the hall thread: the actor name, if `s` may act on window `number`: its own
        window, or a supervisor."""
        if s.role == StaffRole.SUPERVISOR:
            return f"staff:{s.staff_id}"
        w = ctrl.state.windows.get(number)
        # a B post who took the window over holds it now (顶岗): the A post's page no longer acts
        taken = w is not None and w.staff_id not in (None, s.staff_id)
        if s.window == number and not taken:
            return f"staff:{s.staff_id}"
        err = HallError("not_your_window")
        ctrl.refuse(f"staff:{s.staff_id}", "window_action", {"window": number}, err)
        raise err

    # -- tickets -----------------------------------------------------------

    @app.post(f"{API}/tickets", status_code=201, tags=["tickets"],
              summary="取号: take a ticket (the kiosk channel needs a kiosk's key instead of a login; "
                      "priority only from the guidance desk, a green-channel window or a supervisor)")
    async def issue_ticket(body: schemas.TicketRequest, request: Request,
                           s: Session | None = Depends(optional_session)) -> dict[str, Any]:
        if body.channel != "kiosk" and s is None:
            raise HallError("not_logged_in", "工作人员取号或预约签到需要登录")
        # the kiosk channel without a login: a kiosk's key (a kiosk page with no printer)
        kiosk_id = None if s else await kiosk_of_request(ctrl, kiosk_credentials, request,
                                                         "issue_ticket", {"service": body.service})
        actor = f"staff:{s.staff_id}" if s else f"kiosk:{kiosk_id}"
        # without a login, the address tells a flood from one kiosk; reserved before the issue
        held = (await limits.reserve_address(client_address(request), {"service": body.service})
                if s is None else None)
        try:
            citizen = ctrl.citizen(body.id_number, body.name, body.phone) if body.id_number else None
            # priority only from staff whose post may grant it (controller.core.priority)
            out = await ctrl.submit(c.IssueTicket(body.service, body.channel, citizen, body.priority,
                                                  body.appointment_at, s.staff_id if s else None),
                                    actor)
        except HallError:
            if held:
                held.release()
            raise
        return views.issued_json(ctrl.hall, out)

    @app.get(f"{API}/tickets/{{ticket_id}}", tags=["tickets"],
             summary="A ticket with its status history")
    async def get_ticket(ticket_id: str,
                         s: Session | None = Depends(optional_session)) -> dict[str, Any]:
        def read() -> dict[str, Any]:
            t = ctrl.state.tickets.get(ticket_id)
            body = views.ticket_json(ctrl.engine, ctrl.state, t, ctrl.clock()) if t else None
            if body is None:
                old = ctrl.store.ticket(ticket_id)
                if old is None:
                    raise HallError("unknown_ticket")
                body = views.ticket_json(ctrl.engine, None, old, ctrl.clock())
            body["history"] = ctrl.store.ticket_history(ticket_id)
            return body
        body = await ctrl.arun(read)
        # the slip's QR code leads here, and ticket ids are guessable: no login, no names
        if s is None:
            return views.anonymous_ticket(body)
        if s.role not in READERS:  # as on the event stream: no grades, nor who acted
            body["history"] = [views.public_event(e) for e in body["history"]]
        return body

    app.include_router(kiosk_routes(ctrl, kiosks, session, limits, kiosk_credentials))
    app.include_router(staff_routes(ctrl, sessions, session))
    if desk is not None:
        app.include_router(case_routes(ctrl, desk, session))
    app.include_router(report_routes(ctrl, session))
    app.include_router(patrol_routes(ctrl, session))
    app.include_router(rollup_routes(ctrl, session))
    if device_check is not None:
        app.include_router(admin_routes(ctrl, device_check, session))

    # Staff only: device names, ports and fault details tell an outsider how the floor is
    # wired and which device is down, and no display or kiosk needs them.
    @app.get(f"{API}/devices", tags=["hall"],
             summary="Every device's health as last reported (any login)")
    async def devices(s: Session = Depends(session)) -> list[dict[str, Any]]:
        seen = await ctrl.aask(lambda state: dict(state.devices))
        return [{"device": d.id, "kind": d.kind, "window": d.window,
                 "state": seen.get(d.id, ("unknown", ""))[0], "detail": seen.get(d.id, ("", ""))[1]}
                for d in ctrl.hall.devices]

    # -- windows -----------------------------------------------------------

    def window_action(path: str, summary: str, make: Callable[..., c.Command],
                      body_model: type | None = None) -> None:
        def command(no: int, s: Session, *body: Any) -> tuple[c.Command, str]:
            """Whose window first (403 before any check of the body), then the command; a
            refusal while building it (a wrong phone) is audited like the engine's own."""
            actor = acting_for(no, s)
            try:
                return make(no, *body), actor
            except HallError as e:
                ctrl.refuse(actor, f"window_{path.replace('-', '_')}", {"window": no}, e)
                raise

        # whose window, the command and its answer in one step on the hall thread
        if body_model is None:
            async def endpoint(no: int, s: Session = Depends(session)) -> dict[str, Any]:
                return await ctrl.arun(lambda: _run(ctrl, *command(no, s)))
        else:
            async def endpoint(no: int, body: body_model,  # type: ignore[valid-type]
                               s: Session = Depends(session)) -> dict[str, Any]:
                return await ctrl.arun(lambda: _run(ctrl, *command(no, s, body)))
        app.post(f"{API}/windows/{{no}}/{path}", tags=["windows"], summary=summary,
                 name=f"window_{path.replace('-', '_')}")(endpoint)

    window_action("call", "叫号: call the next ticket", c.CallNext)
    window_action("call-number", "叫指定号: call one ticket out of order (audited)",
                  lambda no, b: c.CallNumber(no, b.number, b.reason, b.note),
                  schemas.CallNumberRequest)
    window_action("recall", "重呼: call the current ticket again", c.Recall)
    window_action("no-show", "过号: the current ticket's holder did not come", c.NoShow)
    window_action("finish", "办结: the current service is done", c.Finish)
    window_action("transfer", "转办: send the current ticket to another service",
                  lambda no, b: c.Transfer(no, b.service), schemas.TransferRequest)
    window_action("pause", "暂停服务: pause with a reason and expected minutes",
                  lambda no, b: c.Pause(no, b.reason, b.minutes, b.whereabouts),
                  schemas.PauseRequest)
    window_action("resume", "恢复服务: resume after a pause", c.Resume)
    window_action("phone", "登记电话: add or correct the phone of the current (real-name) visit, "
                  "for the callback of a bad review", lambda no, b: _set_phone(ctrl, no, b.phone),
                  schemas.PhoneRequest)

    @app.get(f"{API}/windows/{{no}}", tags=["windows"],
             summary="One window for its counter: state, its queues, the last visit's grade")
    async def get_window(no: int, s: Session = Depends(session)) -> dict[str, Any]:
        if no not in ctrl.hall.windows:
            raise HallError("unknown_window")
        def read() -> tuple[dict[str, Any], Any]:
            if s.role not in (StaffRole.SUPERVISOR, StaffRole.ADMIN):
                acting_for(no, s)
            body = views.window_json(ctrl.engine, ctrl.state, no, ctrl.clock())
            current = ctrl.state.tickets.get(body["current"]["id"]) if body["current"] else None
            return body, copy.copy(current)
        body, current = await ctrl.arun(read)
        if current is not None:  # for the counter: whose visit, and whether a callback can reach them
            body["current"].update(
                real_name=current.real_name, name_masked=current.name_masked,
                phone_masked=ctrl.sealer.phone_masked(current.phone_sealed) if ctrl.sealer else None)
        return body

    # -- hall --------------------------------------------------------------

    @app.get(f"{API}/hall", tags=["hall"], summary="Windows and queues now")
    async def get_hall(s: Session | None = Depends(optional_session)) -> dict[str, Any]:
        body = await ctrl.aask(lambda state: views.hall_json(ctrl.engine, state, ctrl.clock()))
        # displays, kiosks and the login page read it without a login: no 工号 to guess PINs for
        return body if s is not None else views.anonymous_hall(body)

    @app.get(f"{API}/services", tags=["hall"], summary="Services with waiting counts and estimates")
    async def get_services() -> list[dict[str, Any]]:
        return await ctrl.aask(lambda state: views.services_json(ctrl.engine, state, ctrl.clock()))

    @app.get(f"{API}/health", tags=["hall"],
             summary="Liveness, and the hall's time: its day, and a clock fault while one stands")
    async def health() -> Any:
        # ok: the controller serves; a clock behind the hall's time is reported, not fatal.
        # A storage fault is: nothing can be issued or called, so the answer is 503.
        fault = await _storage_fault(ctrl)
        body = {"ok": fault is None, "hall": ctrl.hall.name, "clock": ctrl.clock_status(),
                "storage": fault.json() if fault else {"state": "ok"}, "loop_lag_ms": lag.json()}
        if fault is None:
            return body
        return JSONResponse({**body, "state": "degraded", "error": "storage_unavailable",
                             "message": StorageUnavailable(fault).message}, status_code=503)

    @app.get(f"{API}/events", tags=["hall"],
             summary="Server-sent events for every change; resumes after Last-Event-ID")
    async def events(request: Request, after: int | None = None,
                     s: Session | None = Depends(optional_session)) -> StreamingResponse:
        last = request.headers.get("last-event-id")
        # str.isdigit() is true of "²" and "٣", which int() refuses: ASCII digits only
        start = after if after is not None else (
            int(last) if last and last.isascii() and last.isdigit() else None)
        # readers see everything; other staff the events without grades or who acted; a
        # screen without a login only what the hall display shows, and only today's
        view = (None if s is not None and s.role in READERS
                else views.public_event if s is not None else views.anonymous_event)
        token = token_of(request) if s is not None else None
        live = ((lambda: sessions.resolve(token, ctrl.clock().date()) is not None)
                if token else None)
        return StreamingResponse(_event_stream(ctrl, request, start, view, replays, live),
                                 media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    # -- auth --------------------------------------------------------------

    @app.post(f"{API}/auth/login", tags=["auth"], summary="Window login; the token acts for that window")
    async def login(body: schemas.LoginRequest, request: Request,
                    response: Response) -> dict[str, Any]:
        staff = ctrl.hall.staff.get(body.staff_id)
        args = {"staff_id": body.staff_id, "window": body.window}
        address = client_address(request)
        # PIN guessing: a locked-out id or address gets no PIN check at all
        await limits.check_login(body.staff_id, address, args)
        # an unknown id costs the same hash as a known one: its answer time tells nothing
        if not pins.verify_pin(body.pin, staff.pin_hash if staff else pins.UNKNOWN_STAFF_HASH) \
                or staff is None:
            limits.login_failed(body.staff_id, address)
            err = HallError("bad_credentials")
            await ctrl.arefuse(f"staff:{body.staff_id}", "login", {**args, "address": address}, err)
            raise err
        limits.login_succeeded(staff.id, address)
        if sessions.is_disabled(staff.id):  # told only to whoever knows the PIN
            err = HallError("account_disabled")
            await ctrl.arefuse(f"staff:{staff.id}", "login", args, err)
            raise err
        if not staff.demo and pins.trivial(body.pin):  # 0000 is the first PIN a guesser tries
            err = HallError("weak_pin")
            await ctrl.arefuse(f"staff:{staff.id}", "login", args, err)
            raise err
        if body.window is None:
            if staff.role == StaffRole.STAFF and not staff.guidance_desk:  # 导办台 has no window
                raise HallError("unknown_window", "请选择要登录的窗口")
            await ctrl.anote(f"staff:{staff.id}", "login", args)
        else:
            await ctrl.submit(c.Login(body.window, staff.id), f"staff:{staff.id}")
        now = ctrl.clock()
        if body.window is not None:  # whoever held the window before holds nothing there now
            await asyncio.to_thread(sessions.revoke_others_at, body.window, staff.id, now)
        token = await asyncio.to_thread(sessions.create, staff.id, staff.role.value, body.window, now)
        # The pages' session: HttpOnly, so no script reads it; SameSite=Strict, so no other
        # site's page sends it; unsafe requests carrying it must also carry PAGE_HEADER.
        response.set_cookie(COOKIE, token, httponly=True, samesite="strict", path="/")
        return {"token": token, "staff": {"id": staff.id, "name": staff.name,
                                          "role": staff.role.value}, "window": body.window}

    @app.get(f"{API}/auth/me", tags=["auth"], summary="Who the token (or page session) acts for")
    async def me(s: Session = Depends(session)) -> dict[str, Any]:
        staff = ctrl.hall.staff.get(s.staff_id)
        def post_of(state: HallState) -> str | None:
            w = state.windows.get(s.window) if s.window is not None else None
            return w.post if w is not None and w.staff_id == s.staff_id else None
        post = await ctrl.aask(post_of)
        return {"staff": {"id": s.staff_id, "name": staff.name if staff else s.staff_id,
                          "role": s.role}, "window": s.window, "post": post}

    @app.post(f"{API}/auth/logout", tags=["auth"], summary="Log out (closes the window)")
    async def logout(request: Request, response: Response,
                     s: Session = Depends(session)) -> dict[str, Any]:
        def log_out() -> None:  # check-then-logout, on the hall thread
            if s.window is not None and ctrl.state.windows[s.window].staff_id == s.staff_id:
                ctrl.execute(c.Logout(s.window), f"staff:{s.staff_id}")
            else:
                ctrl.note(f"staff:{s.staff_id}", "logout", {"window": s.window})
        await ctrl.arun(log_out)
        # the whole login ends: every page and device that logged in for it at that window
        await asyncio.to_thread(sessions.revoke_login, s, token_of(request) or "", ctrl.clock())
        response.delete_cookie(COOKIE, path="/")
        return {"ok": True}

    install_pages(app, ctrl, sessions, kiosks)
    app.add_middleware(LimitBody)
    return app


def token_of(request: Request) -> str | None:
    """The bearer token of an API client, or the session cookie of a page."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return request.cookies.get(COOKIE)


def session_of(sessions: SessionStore, request: Request,
               today: dt.date | None = None) -> Session | None:
    """The session a request acts for. A cookie alone does not authorise a change: a page's
    unsafe request must also carry PAGE_HEADER, which no cross-site form can set."""
    token = token_of(request)
    if not token:
        return None
    by_cookie = not request.headers.get("authorization")
    if by_cookie and request.method not in ("GET", "HEAD") and PAGE_HEADER not in request.headers:
        return None
    return sessions.resolve(token, today)


class LimitBody:
    """Refuse a body over MAX_BODY_BYTES: a declared one before anything reads it, one
    sent without a length (chunked) as soon as it grows past the limit while being read.

    Plain ASGI rather than `@app.middleware("http")`: Starlette's BaseHTTPMiddleware
    spends a task group and memory streams on every request, a large share of the
    controller's CPU per ticket issue (`make bench-core`, docs/benchmarks.md).
    """

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
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

        async def counted():
            nonlocal read
            message = await receive()
            if message["type"] == "http.request":
                read += len(message.get("body", b""))
                if read > MAX_BODY_BYTES:
                    # FastAPI passes an HTTPException from the body read on to the handler
                    raise FastAPIHTTPException(413, TOO_LARGE)
            return message

        await self.app(scope, counted, send)


def _set_phone(ctrl: HallController, window: int, phone: str) -> c.SetPhone:
    """The counter's phone for its current visit, checked and sealed before the engine sees it."""
    checked = identity.normalise_phone(phone)
    if checked is None:
        raise HallError("invalid_phone")
    if ctrl.sealer is None:
        raise RuntimeError("this hall has no identity sealer: real-name tickets are off")
    return c.SetPhone(window, ctrl.sealer.seal(checked, None), identity.mask_phone(checked))


def _run(ctrl: HallController, cmd: c.Command, actor: str) -> dict[str, Any]:
    """On the hall thread: the command, and the ticket it moved as it stands after it."""
    out = ctrl.execute(cmd, actor)
    t = out.ticket
    ticket = views.ticket_json(ctrl.engine, ctrl.state, t, ctrl.clock()) if t else None
    return {"ticket": ticket, "events": [e.kind for e in out.events]}


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


async def _event_stream(ctrl: HallController, request: Request, after: int | None,
                        view: Callable[[dict[str, Any]], dict[str, Any] | None] | None = None,
                        reader: EventReader | None = None,
                        live: Callable[[], bool] | None = None) -> AsyncIterator[bytes]:
    """Every event after `after`, each as `view` shows it (None: in full; a view answering
    None drops the event). With a `view`, the replay goes back no further than today. With
    `live`, the stream ends within SSE_SESSION_CHECK_SECONDS of it answering False (the
    session was revoked)."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[int, dict[str, Any]]] = asyncio.Queue(maxsize=SSE_QUEUE_EVENTS)
    lagging = asyncio.Event()
    reader = reader or EventReader(ctrl.store)
    shown = view or (lambda body: body)

    def push(event_id: int, event) -> None:
        loop.call_soon_threadsafe(_put, queue, lagging, (event_id, event_json(event)))

    # Subscribed first, then the last id read: an event committed in between comes both ways,
    # and the live loop below passes over ids the replay already sent.
    unsubscribe = ctrl.subscribe(push)
    try:
        upto = await loop.run_in_executor(_REPLAYS, reader.last_id)
    except BaseException:
        unsubscribe()
        raise
    sent = upto if after is None else after
    try:
        if view is not None and sent < upto:
            now = ctrl.clock()
            midnight = dt.datetime.combine(now.date(), dt.time(), now.tzinfo)
            sent = max(sent, await loop.run_in_executor(_REPLAYS, reader.before_day,
                                                        now.date(), midnight))
        yield b"retry: 1000\n\n"
        # What the client missed, page by page, read and formatted off the event loop;
        # what happens meanwhile waits in the queue.
        while sent < upto:
            if live is not None and not live():
                return
            last, chunk = await loop.run_in_executor(_REPLAYS, _replay_page, reader, sent, upto,
                                                     shown)
            if last is None:
                break
            sent = last
            if chunk:
                yield chunk
        checked = time.monotonic()
        wait = SSE_HEARTBEAT_SECONDS if live is None else SSE_SESSION_CHECK_SECONDS
        while not await request.is_disconnected() and not lagging.is_set():
            try:
                event_id, body = await asyncio.wait_for(queue.get(), wait)
            except asyncio.TimeoutError:
                event_id = None
            if live is not None and not live():
                return
            if event_id is None:
                if time.monotonic() - checked >= SSE_HEARTBEAT_SECONDS:
                    checked = time.monotonic()
                    yield b": heartbeat\n\n"
                continue
            if event_id > sent:
                sent = event_id
                shown_body = shown({"id": event_id, **body})
                if shown_body is not None:
                    checked = time.monotonic()
                    yield _sse(event_id, shown_body)
    finally:
        unsubscribe()


def _replay_page(reader: EventReader, after: int, upto: int,
                 shown: Callable[[dict[str, Any]], dict[str, Any] | None]) -> tuple[int | None, bytes]:
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


def _put(queue: asyncio.Queue, lagging: asyncio.Event, item: Any) -> None:
    """A client too slow to keep up is cut off; it reconnects with Last-Event-ID and the
    database replays what it missed, so nothing is dropped silently."""
    try:
        queue.put_nowait(item)
    except asyncio.QueueFull:
        lagging.set()


def _sse(event_id: int, body: dict[str, Any]) -> bytes:
    return (f"id: {event_id}\nevent: {body['kind']}\n"
            f"data: {json.dumps(body, ensure_ascii=False)}\n\n").encode()


PROBE_SECONDS = 2.0


async def _storage_fault(ctrl: HallController) -> StorageFault | None:
    """The standing storage fault; while one stands, a write is tried (at most every
    PROBE_SECONDS) so that /health turns ok again once the disk has room."""
    if ctrl.store.fault is None:
        return None
    now = time.monotonic()
    if now - ctrl.store.probed_at >= PROBE_SECONDS:
        ctrl.store.probed_at = now
        return await asyncio.to_thread(ctrl.store.probe, ctrl.clock())
    return ctrl.store.fault


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
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'] if p != 'body') or 'body'}: {err['msg']}"
            for err in e.errors()[:5])
        return error(422, "invalid_request", f"请求内容不正确 ({problems})")

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
