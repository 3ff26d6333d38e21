"""The hall's web pages (页面): kiosk, counter, hall display, supervisor, callbacks, appeals, admin,
reports.

Each page is a static HTML file with its script, served by the controller
with every asset it needs (no CDN: a hall has no internet). The pages talk
to the REST API like any other client. Opening a page that needs a login
without one leads to the login page; opening one with the wrong role gets a
403 page and an audit record. The page session is the cookie set at login.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from controller.core.errors import HallError
from controller.core.hall import StaffRole
from controller.runtime.hallcontroller import HallController
from controller.entrance.kiosk import Kiosk
from controller.store.sessions import SessionStore

COOKIE = "hall_session"
# Sent by the pages' own scripts on every change (see controller.web.auth.session_of).
PAGE_HEADER = "x-hall-page"
HERE = Path(__file__).parent
STATIC = HERE / "static"


@dataclass(frozen=True)
class Page:
    file: str
    title: str
    roles: tuple[StaffRole, ...] | None  # None: no login (kiosk, hall display)


PAGES: dict[str, Page] = {
    "kiosk": Page("kiosk.html", "取号机", None),
    "display": Page("display.html", "大厅叫号屏", None),
    "counter": Page("counter.html", "窗口工作台", (StaffRole.STAFF, StaffRole.SUPERVISOR)),
    "supervisor": Page("supervisor.html", "现场管理", (StaffRole.SUPERVISOR, StaffRole.ADMIN)),
    "callbacks": Page("callbacks.html", "差评回访",
                      (StaffRole.CALLBACK_OFFICER, StaffRole.SUPERVISOR)),
    "appeals": Page("appeals.html", "我的申诉", (StaffRole.STAFF,)),
    "admin": Page("admin.html", "系统管理", (StaffRole.ADMIN,)),
    "reports": Page("reports.html", "统计报表",
                    (StaffRole.SUPERVISOR, StaffRole.ADMIN, StaffRole.CALLBACK_OFFICER)),
}

NO_STORE = {"Cache-Control": "no-store"}


# the roles as the pages name them (hall.js role.*)
ROLE_NAMES: dict[str, str] = {
    StaffRole.STAFF: "窗口人员", StaffRole.SUPERVISOR: "现场管理",
    StaffRole.CALLBACK_OFFICER: "回访专员", StaffRole.ADMIN: "系统管理员",
}


def role_name(role: str) -> str:
    """The role in the hall's words; a role this table does not know, as it is."""
    return ROLE_NAMES.get(role, role)


def _forbidden(page: Page, role: str) -> HTMLResponse:
    who = html.escape(role_name(role))
    allowed = "、".join(html.escape(role_name(r)) for r in page.roles or ())
    body = f"""<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">
<title>无权访问</title><link rel="stylesheet" href="/static/hall.css"></head>
<body class="page-message"><main><h1>无权访问 · Not allowed</h1>
<p>您当前登录的身份（{who}）不能打开“{html.escape(page.title)}”页面，该页面供{allowed}使用。</p>
<p>Your role ({html.escape(role)}) may not open this page.</p>
<p><a class="button" href="/login">换一个账号登录 · Log in as someone else</a>
<a class="button" href="/">返回首页 · Home</a></p></main></body></html>"""
    return HTMLResponse(body, status_code=403, headers=NO_STORE)


def install_pages(app: FastAPI, ctrl: HallController, sessions: SessionStore,
                  kiosks: dict[str, Kiosk]) -> None:
    """Serve the pages and their assets (/static) from `app`."""
    app.include_router(page_routes(ctrl, sessions, kiosks))
    app.mount("/static", StaticFiles(directory=STATIC), name="static")


def page_routes(ctrl: HallController, sessions: SessionStore,
                kiosks: dict[str, Kiosk]) -> APIRouter:
    r = APIRouter()

    async def page(name: str, request: Request) -> Response:
        spec = PAGES[name]
        if spec.roles is not None:
            token = request.cookies.get(COOKIE)
            s = sessions.resolve(token, ctrl.clock().date()) if token else None
            if s is None:
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                return RedirectResponse(f"/login?next={quote(target)}", status_code=303)
            if s.role not in spec.roles:
                await ctrl.arefuse(f"staff:{s.staff_id}", "page_opened", {"page": name},
                                   HallError("forbidden_role"))
                return _forbidden(spec, s.role)
        return FileResponse(STATIC / spec.file, headers=NO_STORE)

    @r.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> Response:
        return FileResponse(STATIC / "index.html", headers=NO_STORE)

    @r.get("/login", response_class=HTMLResponse, include_in_schema=False)
    async def login_page() -> Response:
        return FileResponse(STATIC / "login.html", headers=NO_STORE)

    for name in PAGES:
        async def endpoint(request: Request, name: str = name) -> Response:
            return await page(name, request)
        r.get(f"/{name}", response_class=HTMLResponse, name=f"page_{name}",
              include_in_schema=False)(endpoint)

    @r.get("/api/v1/pages", tags=["pages"], summary="The pages, with the roles that open them")
    async def pages() -> dict:
        return {"pages": [{"path": f"/{name}", "title": p.title,
                           "roles": [r.value for r in p.roles] if p.roles else None}
                          for name, p in PAGES.items()],
                "kiosks": list(kiosks), "hall": ctrl.hall.name}
    return r
