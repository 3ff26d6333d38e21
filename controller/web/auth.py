"""Who a request acts for: the staff session of its bearer token or page cookie.

Every router takes the session dependency `create_app` makes here. A route that needs a
login depends on `session` (401 not_logged_in without one); a route a screen or a kiosk
also reads without a login depends on `optional_session`.
"""

from __future__ import annotations

import datetime as dt
from typing import Awaitable, Callable

from fastapi import Request

from controller.core.errors import HallError
from controller.core.hall import StaffRole
from controller.runtime.hallcontroller import HallController
from controller.store.sessions import Session, SessionStore
from controller.web.pages import COOKIE, PAGE_HEADER

API = "/api/v1"
# Who reads every detail of the event stream and of a ticket's history; other staff see
# views.public_event, a screen or a citizen without a login views.anonymous_event / _ticket.
READERS = (StaffRole.SUPERVISOR, StaffRole.ADMIN, StaffRole.CALLBACK_OFFICER)

# FastAPI dependencies answering the request's session. The app's are coroutines; a test
# that mounts one router may pass a plain function (FastAPI takes either).
SessionDependency = Callable[..., Awaitable[Session] | Session]
OptionalSessionDependency = Callable[..., Awaitable[Session | None] | Session | None]


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


def session_dependencies(ctrl: HallController, sessions: SessionStore) -> tuple[
        Callable[[Request], Awaitable[Session]], Callable[[Request], Awaitable[Session | None]]]:
    """(session, optional_session): the dependencies every router's routes take."""

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

    return session, optional_session
