"""Access control: every route of the API and every page, against every role.

The table below says, for each route the real app serves, who may use it. A route added
without a row fails `test_every_route_has_a_row`: no endpoint ships whose access nobody
decided.

The roles:
- none: a bare HTTP client: no token, no page header.
- page: a browser on the hall LAN (the hall display, or a kiosk page nobody enrolled): no
  login, but the page header (x-hall-page) every page sends. It must get exactly what
  `none` gets: the header alone grants nothing.
- kiosk: the enrolled kiosk page of the kiosk `entrance`: the page header and the kiosk's
  key in its HttpOnly cookie (controller.store.kiosk_credentials). The key opens that
  kiosk's routes and the kiosk channel of POST /tickets, and nothing a login opens.
- here: staff s1 logged in at window 1, the window the probes act on.
- other: staff s2 logged in at window 2.
- supervisor (boss, no window), officer (the callback officer), admin.

Allowed means the request got past authorization: any answer but 401 or 403 (for a
page: 200). Each request is a valid one, so when allowed it does what it says (2xx) or
meets a business rule (409, 404): the assertion is about who, not what. Refused means
401 without a login and 403 with the wrong one (for a page: 303 to the login page, or
the 403 page); a route that only a kiosk's key opens (`device`) refuses everyone else with
401, logged in or not: a staff login is no kiosk.

Not in the table: /sim/..., served only by `hallctl run --simulate` to work simulated
devices, never in a live hall; the running hall here simulates its devices, so it
serves them, and the matrix skips them on purpose.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable

import pytest
from starlette.routing import Mount

try:
    from fastapi.routing import iter_route_contexts  # routers included lazily (FastAPI 0.16x)
except ImportError:
    def iter_route_contexts(routes):
        return routes

from controller.runtime.clock import ManualClock
from controller.core import callbacks as cb
from controller.core import commands as c
from tests.halls import access_hall, at
from tests.server import running_hall

NONE, PAGE, KIOSK, HERE, OTHER, SUP, OFFICER, ADMIN = (
    "none", "page", "kiosk", "here", "other", "supervisor", "officer", "admin")
ROLES = (NONE, PAGE, KIOSK, HERE, OTHER, SUP, OFFICER, ADMIN)
LOGGED_IN = frozenset({HERE, OTHER, SUP, OFFICER, ADMIN})
# what the 403 page calls each account's role (the pages' own words, hall.js role.*)
ROLE_WORDS = {HERE: "窗口人员", OTHER: "窗口人员", SUP: "现场管理", OFFICER: "回访专员", ADMIN: "系统管理员"}
ANYONE = frozenset(ROLES)
ACCOUNTS = {HERE: ("s1", 1), OTHER: ("s2", 2), SUP: ("boss", None), OFFICER: ("officer", None),
            ADMIN: ("admin", None)}
SIM = "/sim"
# the codes of a refusal that is about who asks
REFUSALS = {"not_logged_in", "forbidden_role", "not_your_window", "not_case_staff",
            "kiosk_key_required", "bad_kiosk_key", "kiosk_key_other"}


def roles(*names: str) -> frozenset[str]:
    return frozenset(names)


WINDOW = roles(HERE, SUP)  # its own window's staff, or a supervisor (acting_for)
MANAGERS = roles(SUP, ADMIN)
READERS = roles(SUP, ADMIN, OFFICER)
CASE_WORKERS = roles(OFFICER, SUP)
KIOSK_ONLY = roles(KIOSK)  # the kiosk's own key, nobody else


# -- what the probes act on -------------------------------------------------------------

def a_ticket(hall) -> dict[str, Any]:
    out = hall.ctrl.execute(c.IssueTicket("C", "kiosk", None, None, None), "kiosk")
    return {"ticket_id": out.ticket.id}


def a_ticket_link(hall) -> dict[str, Any]:
    """A ticket and its slip's secret (the phone page's link): whoever holds the slip."""
    ticket_id = a_ticket(hall)["ticket_id"]
    return {"ticket_id": f"{ticket_id}?k={hall.ctrl.sealer.ticket_secret(ticket_id)}"}


def a_case(hall) -> dict[str, Any]:
    case = hall.desk.open_complaint("phone", "等了很久没人理", "staff:boss", window=1, staff_id="s1")
    return {"case_id": case.id}


def a_justified_case(hall) -> dict[str, Any]:
    """A complaint about s1 found justified: only s1 may appeal it."""
    case_id = a_case(hall)["case_id"]
    hall.desk.act(case_id, cb.Assign("officer"), "staff:boss")
    hall.desk.act(case_id, cb.RecordCallback(True, "已联系"), "staff:officer")
    hall.desk.act(case_id, cb.Verify(True, "属实"), "staff:officer")
    return {"case_id": case_id}


@dataclass(frozen=True)
class Probe:
    method: str
    template: str  # the route's path, as the app declares it
    allowed: frozenset[str]
    body: Any = None
    fill: dict[str, Any] | Callable[[Any], dict[str, Any]] = field(default_factory=dict)
    page: bool = False  # an HTML page: its session is the cookie, refusal a redirect or 403 page
    device: bool = False  # only a kiosk's key opens it: 401 for everyone else
    stream: bool = False  # server-sent events: only the status is read

    @property
    def route(self) -> tuple[str, str]:
        if self.template.startswith("/static/"):  # a file of a mounted directory (/static, /static/docs)
            return ("MOUNT", self.template.rsplit("/", 1)[0])
        return (self.method, self.template)

    def path(self, hall) -> str:
        values = {"no": 1, "kiosk_id": "entrance", "staff_id": "leaver"}
        values.update(self.fill(hall) if callable(self.fill) else self.fill)
        return self.template.format(**values)

    def __str__(self) -> str:
        return f"{self.method} {self.template}"


def api(method: str, template: str, allowed: frozenset[str], body: Any = None, **kw) -> Probe:
    return Probe(method, f"/api/v1{template}", allowed, body, **kw)


def page(path: str, allowed: frozenset[str]) -> Probe:
    return Probe("GET", path, allowed, page=True)


def kiosk_route(method: str, template: str, body: Any = None) -> Probe:
    return Probe(method, f"/api/v1{template}", KIOSK_ONLY, body, device=True)


def entrance_key(hall) -> dict[str, str]:
    return {"key": hall.kiosk_keys["entrance"]}


TODAY = "2026-11-23"

PROBES: list[Probe] = [
    # tickets and the kiosk: no login
    # the kiosk channel: a kiosk's key, or a login (staff issue tickets too)
    api("POST", "/tickets", roles(KIOSK) | LOGGED_IN, {"service": "A"}),
    api("GET", "/tickets/{ticket_id}", ANYONE, fill=a_ticket),
    api("POST", "/tickets/{ticket_id}/reprint", LOGGED_IN, {"kiosk": "entrance"}, fill=a_ticket),
    kiosk_route("POST", "/kiosks/{kiosk_id}/tickets", {"service": "B"}),
    # the citizen's phone: whoever holds the slip's link (tests/test_page_phone.py: nobody else);
    # 到号提醒 signed up by the kiosk or staff (this hall has none: 409 once past who asks)
    api("GET", "/phone/tickets/{ticket_id}", ANYONE, fill=a_ticket_link),
    api("GET", "/reminders", ANYONE),
    api("POST", "/tickets/{ticket_id}/reminder", roles(KIOSK) | LOGGED_IN, {"phone": "13800131234"},
        fill=a_ticket),
    kiosk_route("POST", "/kiosks/{kiosk_id}/scan", {"code": "APT-NOSUCH1"}),
    kiosk_route("GET", "/kiosks/{kiosk_id}"),
    kiosk_route("POST", "/kiosks/{kiosk_id}/identity", {"id_number": "11010519491231002X"}),
    kiosk_route("POST", "/kiosks/{kiosk_id}/identity/phone", {"phone": "13800131234"}),
    kiosk_route("POST", "/kiosks/{kiosk_id}/identity/touch"),
    kiosk_route("DELETE", "/kiosks/{kiosk_id}/identity"),
    kiosk_route("GET", "/kiosk/me"),
    # 帮办代办: the kiosk calls the guidance desk; the supervisor sees and answers the calls
    kiosk_route("POST", "/kiosk/guidance"),
    api("GET", "/guidance-calls", MANAGERS),
    api("POST", "/guidance-calls/{kiosk}/answer", roles(SUP), fill={"kiosk": "entrance"}),
    # enrolling: the key in the body is what authorises, whoever sends it
    api("POST", "/kiosk/enrol", ANYONE, entrance_key),
    # the admin sets up and revokes keys (another kiosk's: the probes' own stays good)
    api("POST", "/kiosks/{kiosk_id}/credential", roles(ADMIN), fill={"kiosk_id": "lobby-tablet"}),
    api("DELETE", "/kiosks/{kiosk_id}/credential", roles(ADMIN), fill={"kiosk_id": "lobby-tablet"}),
    api("POST", "/appointments", MANAGERS, {"service": "A", "slot": f"{TODAY}T10:00:00+08:00"}),
    api("GET", "/appointments", MANAGERS),
    # the hall, for displays and kiosks: no citizen in them (test_the_open_routes_...); a
    # window's staff name and 工号 are on its desk sign anyway. Device health is for staff:
    # device names, ports and faults tell an outsider how the floor is wired.
    api("GET", "/hall", ANYONE),
    api("GET", "/services", ANYONE),
    api("GET", "/health", ANYONE),
    api("GET", "/events", ANYONE, stream=True),
    # the hall's monitoring: loopback clients only (these probes are), or a bearer token set
    # with HALL_METRICS_TOKEN; tests/test_metrics.py refuses another address and a wrong token
    Probe("GET", "/metrics", ANYONE),
    api("GET", "/pages", ANYONE),
    api("GET", "/devices", LOGGED_IN),
    # the supervisor's floor: its layout and the alerts standing (personnel and device matters)
    api("GET", "/floor", MANAGERS),
    api("GET", "/alerts", MANAGERS),
    # windows: their own staff, or a supervisor
    api("POST", "/windows/{no}/call", WINDOW),
    api("POST", "/windows/{no}/call-number", WINDOW, {"number": "A999", "reason": "过号返回"}),
    api("POST", "/windows/{no}/recall", WINDOW),
    api("POST", "/windows/{no}/no-show", WINDOW),
    api("POST", "/windows/{no}/finish", WINDOW),
    api("POST", "/windows/{no}/transfer", WINDOW, {"service": "B"}),
    api("POST", "/windows/{no}/pause", WINDOW, {"reason": "复印材料", "minutes": 5}),
    api("POST", "/windows/{no}/resume", WINDOW),
    api("POST", "/windows/{no}/phone", WINDOW, {"phone": "13800131234"}),
    api("GET", "/windows/{no}", roles(HERE, SUP, ADMIN)),
    # logging in and out
    api("POST", "/auth/login", ANYONE, {"staff_id": "s3", "pin": "1234", "window": 3}),
    api("GET", "/auth/me", LOGGED_IN),
    api("POST", "/auth/logout", LOGGED_IN),
    # callback cases and complaints
    api("GET", "/cases", READERS),
    api("GET", "/cases/{case_id}", READERS, fill=a_case),
    api("GET", "/case-officers", CASE_WORKERS),
    api("GET", "/cases/{case_id}/personal-data", roles(OFFICER), fill=a_case),
    api("POST", "/cases/{case_id}/assign", CASE_WORKERS, {"officer": "officer"}, fill=a_case),
    api("POST", "/cases/{case_id}/callback", CASE_WORKERS, {"reached": True, "summary": "已回访"},
        fill=a_case),
    api("POST", "/cases/{case_id}/verify", CASE_WORKERS, {"justified": False, "finding": "不属实"},
        fill=a_case),
    api("POST", "/cases/{case_id}/rectify", CASE_WORKERS, {"change": "加强培训"}, fill=a_case),
    api("POST", "/cases/{case_id}/feedback", CASE_WORKERS, {"summary": "已反馈"}, fill=a_case),
    api("POST", "/cases/{case_id}/follow-up", CASE_WORKERS, {"grade": "满意"}, fill=a_case),
    api("POST", "/cases/{case_id}/close", CASE_WORKERS, fill=a_case),
    # only the staff member the case is about (s1) may appeal it
    api("POST", "/cases/{case_id}/appeal", roles(HERE), {"reason": "当时在处理急件"},
        fill=a_justified_case),
    api("GET", "/my-cases", roles(HERE, OTHER)),  # the cases about oneself, to appeal one
    api("POST", "/cases/{case_id}/appeal-decision", roles(SUP), {"upheld": False, "reason": "维持"},
        fill=a_case),
    # the 办不成事 window's staff may file complaints; window 1 is a general window
    api("POST", "/complaints", CASE_WORKERS, {"source": "desk", "description": "材料被退回三次"}),
    api("GET", "/cases-figures", READERS),
    # reports
    api("GET", "/reports/estimates", MANAGERS),
    *[api("GET", f"/reports/{name}", READERS)
      for name in ("evaluations", "evaluations.csv", "evaluations.xlsx", "hall", "hall.csv",
                   "hall.xlsx")],
    api("GET", "/exports/grades", READERS),
    *[api("GET", f"/reports/{name}", MANAGERS)
      for name in ("overtime", "overtime.csv", "overtime.xlsx", "attendance", "attendance.csv",
                   "attendance.xlsx")],
    # the monthly roll-up (月度考核) and the patrol ledger (巡查台账): personnel records
    *[api("GET", f"/reports/{name}", MANAGERS) for name in ("rollup", "rollup.csv", "rollup.xlsx")],
    api("POST", "/patrols", roles(SUP), {"no_problems": True}),
    api("GET", "/patrols", MANAGERS),
    # the admin: device check, end of day, staff accounts
    api("POST", "/admin/device-check", roles(ADMIN)),
    api("GET", "/admin/device-check", roles(ADMIN)),
    api("POST", "/admin/end-of-day", roles(ADMIN)),
    api("GET", "/admin/staff", roles(ADMIN)),
    api("POST", "/admin/staff/{staff_id}/disable", roles(ADMIN), {"reason": "离职"}),
    api("POST", "/admin/staff/{staff_id}/enable", roles(ADMIN)),
    # the API's own documents
    Probe("GET", "/openapi.json", ANYONE),
    Probe("GET", "/docs", ANYONE),
    Probe("GET", "/docs/oauth2-redirect", ANYONE),
    Probe("GET", "/redoc", ANYONE),
    Probe("GET", "/static/hall.css", ANYONE),
    Probe("GET", "/static/docs/swagger-ui.css", ANYONE),  # /docs's own assets, served offline
    # the pages (controller.web.pages.PAGES)
    page("/", ANYONE),
    page("/login", ANYONE),
    page("/kiosk", ANYONE),
    page("/display", ANYONE),
    Probe("GET", "/t/{ticket_id}", ANYONE, page=True, fill=a_ticket_link),
    page("/counter", roles(HERE, OTHER, SUP)),
    page("/supervisor", roles(SUP, ADMIN)),
    page("/callbacks", roles(OFFICER, SUP)),
    page("/appeals", roles(HERE, OTHER)),  # 申诉: the staff member a case is about
    page("/admin", roles(ADMIN)),
    page("/reports", roles(SUP, ADMIN, OFFICER)),
]


@pytest.fixture(scope="module")
def hall(tmp_path_factory):
    with running_hall(access_hall(), tmp_path_factory.mktemp("access"), ManualClock(at("09:00")),
                      simulate=True) as h, h.client(kiosk=False) as client:
        h.tokens = {}
        h.shared = client  # one connection for all the probes: a client per probe is slow
        yield h


def as_role(hall, role: str, page_: bool) -> dict[str, str]:
    """The headers that make a request come from `role`: one login per role, made again
    after a probe logged it out (logging out ends every token of that login)."""
    if role == NONE:
        return {}
    if role == PAGE:
        return {"x-hall-page": "1"}
    if role == KIOSK:
        return {"x-hall-page": "1", "Cookie": f"hall_kiosk={hall.kiosk_keys['entrance']}"}
    staff_id, window = ACCOUNTS[role]
    token = hall.tokens.get(role)
    if token is None:
        token = hall.login(staff_id, window)["Authorization"].split()[1]
        hall.tokens[role] = token
    if page_:
        return {"Cookie": f"hall_session={token}"}
    return {"Authorization": f"Bearer {token}"}


def served_routes(app) -> set[tuple[str, str]]:
    """(method, path) of every route `app` serves; ("MOUNT", path) for a mounted app."""
    served = set()
    for route in iter_route_contexts(app.routes):
        if isinstance(getattr(route, "original_route", route), Mount):
            served.add(("MOUNT", route.path))
        else:
            served |= {(m, route.path) for m in route.methods - {"HEAD"}}
    return served


def test_every_route_has_a_row(hall):
    served = served_routes(hall.app)
    assert any(path.startswith(SIM) for _, path in served), "the hall simulates its devices"
    served = {(m, path) for m, path in served if not path.startswith(SIM)}
    table = {p.route for p in PROBES}
    assert served - table == set(), "routes nobody decided access for"
    assert table - served == set(), "rows for routes the app no longer serves"


@pytest.mark.parametrize("probe", PROBES, ids=str)
@pytest.mark.parametrize("role", ROLES)
def test_access(hall, probe: Probe, role: str):
    path = probe.path(hall)
    body = probe.body(hall) if callable(probe.body) else probe.body
    kw = {"json": body} if body is not None else {}
    kw["headers"] = as_role(hall, role, probe.page)
    client = hall.shared
    client.cookies.clear()  # a login probe's answer sets one: it must not follow other roles
    if probe.stream:
        with client.stream(probe.method, path, **kw) as r:
            status = r.status_code
            text = "" if status == 200 else r.read().decode()
    else:
        r = client.request(probe.method, path, **kw)
        status, text = r.status_code, r.text
    if probe.template.endswith("/logout"):
        # logging out ends the whole login at that window, the role's shared token too
        hall.tokens.pop(role, None)
    allowed = role in probe.allowed
    logged_in = role in LOGGED_IN
    if probe.page:
        if allowed:
            assert status == 200, text
        elif logged_in:
            assert status == 403 and "无权访问" in text
            assert f"您当前登录的身份（{ROLE_WORDS[role]}）" in text  # the role in the hall's words
        else:
            assert status == 303 and r.headers["location"].startswith("/login?next=")
        return
    assert status < 500, text
    if allowed:
        assert status not in (401, 403), f"{role} refused: {text}"
    else:
        assert status == (403 if logged_in and not probe.device else 401), \
            f"{role} let in: {status} {text}"
        assert json.loads(text)["error"] in REFUSALS


def test_a_refusal_is_in_the_audit_log(hall):
    other = hall.login("s2", 2)
    with hall.client() as client:
        assert client.post("/api/v1/admin/staff/leaver/disable", headers=other).status_code == 403
    rows = hall.ctrl.store.query(
        "SELECT actor, name, result FROM commands WHERE name = 'staff_disable' ORDER BY id DESC LIMIT 1")
    assert rows == [{"actor": "staff:s2", "name": "staff_disable", "result": "forbidden_role"}]


# -- what the open routes show ------------------------------------------------------------

ELDER_ID = "11010119500307097X"
PERSONAL = ("张", "1101", "097X", "138", "5678")  # the name, the ID number, the phone, masked or not


def replayed_events(client, headers: dict[str, str], upto: int) -> list[dict[str, Any]]:
    events = []
    with client.stream("GET", "/api/v1/events", headers={**headers, "Last-Event-ID": "0"}) as r:
        for line in r.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line[6:]))
                if events[-1]["id"] >= upto:
                    return events
    raise AssertionError("the stream ended early")


def test_the_open_routes_show_nobody_and_no_grade(tmp_path):
    """Displays, kiosks and a slip's QR code read /hall, /services, /events and
    /tickets/{id} without a login, and ticket ids are guessable (20261123-C001): they show
    neither the citizen (not even masked), nor who acted, nor the grade a visit got."""
    with running_hall(access_hall(), tmp_path, ManualClock(at("09:00"))) as hall, \
            hall.client() as client:
        r = client.post("/api/v1/tickets", json={"service": "C", "id_number": ELDER_ID,
                                                 "name": "张建国", "phone": "13812345678"})
        ticket = r.json()["id"]
        s3 = hall.login("s3", 3)
        client.post("/api/v1/windows/3/call", headers=s3).raise_for_status()
        client.post("/api/v1/windows/3/finish", headers=s3).raise_for_status()
        hall.ctrl.execute(c.Evaluate(3, "非常满意"), "device:pad-3")
        # the next citizen: an event every stream carries, so each replay has a known end
        hall.ctrl.execute(c.IssueTicket("C", "kiosk", None, None, None), "kiosk")
        last = hall.ctrl.store.last_event_id()

        seen = {path: client.get(path).text
                for path in ("/api/v1/hall", "/api/v1/services", f"/api/v1/tickets/{ticket}")}
        public = replayed_events(client, {}, last)
        seen["/api/v1/events"] = json.dumps(public, ensure_ascii=False)
        for path, text in seen.items():
            for word in (*PERSONAL, "非常满意", "staff:s3", "id_masked", "name_masked"):
                assert word not in text, f"{path} shows {word!r}"
        # a screen is not told a visit was graded at all, nor who served it, nor for how long
        assert "ticket_evaluated" not in {e["kind"] for e in public}
        finished = next(e for e in public if e["kind"] == "ticket_finished")
        assert finished["ticket"] == ticket and set(finished["data"]) == {"label", "service"}
        assert client.get(f"/api/v1/tickets/{ticket}").json()["status"] == "finished"

        # staff see the masked identity and who acted; managers the grade
        boss = hall.login("boss", None)
        full = client.get(f"/api/v1/tickets/{ticket}", headers=boss).json()
        assert (full["id_masked"], full["name_masked"]) == ("1101**********097X", "张**")
        assert full["history"][1]["actor"] == "staff:s3"
        graded = [e for e in replayed_events(client, boss, last) if e["kind"] == "ticket_evaluated"]
        assert graded[0]["data"]["grade"] == "非常满意"
        # a counter's staff member follows the stream like a display does
        staff_view = replayed_events(client, s3, last)
        assert "grade" not in next(e for e in staff_view if e["kind"] == "ticket_evaluated")["data"]
        # and reads the ticket's history the same way: a counter officer looking the visit up
        # afterwards is not shown the grade it got, nor which colleague did what
        looked_up = client.get(f"/api/v1/tickets/{ticket}", headers=s3)
        assert looked_up.status_code == 200 and looked_up.json()["status"] == "finished"
        for word in ("非常满意", "staff:s3"):
            assert word not in looked_up.text, f"a counter's staff member is shown {word!r}"


def test_device_health_needs_a_login(hall):
    """Device names, ports and faults tell an outsider how the floor is wired: staff only."""
    client = hall.shared
    client.cookies.clear()
    r = client.get("/api/v1/devices")
    assert (r.status_code, r.json()["error"]) == (401, "not_logged_in")
    devices = client.get("/api/v1/devices", headers=hall.login("s2", 2)).json()
    assert {d["device"] for d in devices} == {"printer-1", "reader-1", "scanner-1"}


# -- revocation timing ----------------------------------------------------------------------

STREAM_CLOSES_WITHIN = 1.0  # seconds


def end_by_logout(hall, api) -> None:
    """s1 logs out on another device of the same login."""
    assert api.post("/api/v1/auth/logout", headers=hall.login("s1", 1)).status_code == 200


def end_by_another_login(hall, api) -> None:
    """s1 pauses; leaver, B post of window 1, takes the window over (顶岗)."""
    with hall.client() as own:
        assert own.post("/api/v1/windows/1/pause", headers=hall.s1,
                        json={"reason": "取材料", "minutes": 5}).status_code == 200
    hall.login("leaver", 1)


def end_by_disable(hall, api) -> None:
    r = api.post("/api/v1/admin/staff/s1/disable", headers=hall.login("admin", None))
    assert r.status_code == 200, r.text


def end_by_the_day(hall, api) -> None:
    """The hall's clock passes midnight; no command has run on the new day yet."""
    hall.clock.advance(hours=15, minutes=1)  # 09:00 -> 00:01 the next day


@pytest.mark.parametrize("end", [end_by_logout, end_by_another_login, end_by_disable, end_by_the_day],
                         ids=lambda f: f.__name__)
def test_a_session_that_ends_is_refused_at_once_and_its_stream_closes_within_a_second(tmp_path, end):
    """s1's counter (a bearer token), its page (the same login's cookie) and its open event
    stream: whichever way the session ends, the next request is refused and the stream
    closes within STREAM_CLOSES_WITHIN."""
    import threading
    import time

    with running_hall(access_hall(), tmp_path, ManualClock(at("09:00"))) as hall, \
            hall.client() as api:
        hall.s1 = hall.login("s1", 1)
        page = {"Cookie": f"hall_session={hall.login('s1', 1)['Authorization'].split()[1]}"}
        assert api.get("/counter", headers=page).status_code == 200
        opened, ended = threading.Event(), []

        def follow() -> None:
            with hall.client() as c, c.stream("GET", "/api/v1/events", headers=hall.s1) as r:
                opened.set()
                for _ in r.iter_bytes():
                    pass
            ended.append(time.monotonic())

        reader = threading.Thread(target=follow, daemon=True)
        reader.start()
        assert opened.wait(5)
        end(hall, api)
        revoked_at = time.monotonic()
        r = api.post("/api/v1/windows/1/call", headers=hall.s1)
        assert (r.status_code, r.json()["error"]) == (401, "not_logged_in")
        assert api.get("/api/v1/auth/me", headers=hall.s1).status_code == 401
        assert api.get("/counter", headers=page).status_code == 303
        reader.join(STREAM_CLOSES_WITHIN + 2)
        assert ended, "the stream stayed open"
        assert ended[0] - revoked_at <= STREAM_CLOSES_WITHIN
