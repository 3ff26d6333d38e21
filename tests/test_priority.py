"""Nobody jumps the queue (004 行为规范 3: "不得因个人关系或其他原因对事务进行优先处理").

Priority comes from the ID card's age rule, or from staff whose post may grant it: the
guidance desk (导办台), the green-channel window (绿色通道) and the supervisor. Anyone else
asking for it gets a 403 and nothing is issued; the ticket records who granted which
priority. A number called out of order needs a reason from a short list; the supervisor
sees it at once and the reports count it per member of staff.

The attacks go through `hallctl run` for the demo hall as a child process, with its
simulated kiosk and keypads: 陈静 (chenjing) at ordinary window 1, 邓华 (denghua) at
window 17 (green_channel = true), 徐丹 (xudan) at the guidance desk, 黄建国
(huangjianguo) the supervisor.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import json
import sqlite3
import threading

import httpx
import pytest

from controller.backoffice import hall_reports as hr
from controller.runtime.clock import ManualClock
from controller.config.hall import ConfigError, parse_hall
from controller.core import commands as c
from controller.core.errors import HallError
from controller.core.hall import Staff, StaffRole
from controller.core.priority import CALL_REASONS
from controller.runtime.hallcontroller import HallController
from controller.store.hallstore import HallStore
from playwright.sync_api import expect

from tests.browser import DESK, log_in
from tests.halls import MONDAY, PIN_HASH, SEALER, at, small_hall
from tests.server import HallProcess, wait_for
from tests.story import Story
from tests.test_config import minimal_hall_dict, put

ELDER_ID = "11010119500307097X"  # born 1950: past the demo hall's priority_age of 70
YOUNG_ID = "110101199003070978"


@pytest.fixture
def demo(tmp_path):
    proc = HallProcess(tmp_path, "--simulate")
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


def login(api: httpx.Client, staff_id: str, window: int | None = None) -> dict[str, str]:
    r = api.post("/api/v1/auth/login", json={"staff_id": staff_id, "pin": "1234", "window": window})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


def waiting(api: httpx.Client, service: str) -> int:
    return next(s["waiting"] for s in api.get("/api/v1/services").json() if s["service"] == service)


def refusals(proc: HallProcess, code: str) -> list[tuple[str, dict]]:
    """The refused commands with `code` in the audit log, as (actor, args)."""
    with sqlite3.connect(f"file:{proc.data / 'hall.sqlite3'}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT actor, args FROM commands WHERE result = ?", (code,)).fetchall()
    return [(actor, json.loads(args)) for actor, args in rows]


# -- through the real server ------------------------------------------------------------------

def test_nobody_jumps_the_queue_but_staff_whose_post_may_grant_it(demo):
    with demo.client() as api:
        queue = [api.post("/api/v1/tickets", json={"service": "A"}).json()["number"] for _ in range(3)]
        assert queue == ["A001", "A002", "A003"]

        # a bare client, the entrance kiosk, and the kiosk channel with a typed elderly ID:
        # asking for priority is refused, whoever asks and whatever their age
        for path, body in [("/api/v1/tickets", {"service": "A", "priority": "urgent"}),
                           ("/api/v1/kiosks/entrance/tickets", {"service": "A", "priority": "ill"}),
                           ("/api/v1/tickets", {"service": "A", "priority": "elderly",
                                                "id_number": ELDER_ID, "name": "张建国"})]:
            r = api.post(path, json=body)
            assert (r.status_code, r.json()["error"]) == (403, "priority_not_allowed"), r.text
            assert "导办台" in r.json()["message"] and "绿色通道" in r.json()["message"]

        # 陈静 at her ordinary window is a member of staff, but not one who grants priority
        chenjing = login(api, "chenjing", 1)
        for channel in ("kiosk", "staff"):
            r = api.post("/api/v1/tickets", headers=chenjing,
                         json={"service": "A", "priority": "urgent", "channel": channel})
            assert (r.status_code, r.json()["error"]) == (403, "priority_not_allowed")

        # nothing was issued: the queue is as it was, the numbers run on without a gap
        assert waiting(api, "A") == 3
        assert api.post("/api/v1/tickets", json={"service": "A"}).json()["number"] == "A004"
        refused = refusals(demo, "priority_not_allowed")
        # the kiosk channel of /tickets acts as the kiosk whose key it holds
        assert [actor for actor, _ in refused] == ["kiosk:entrance", "kiosk:entrance",
                                                   "kiosk:entrance", "staff:chenjing", "staff:chenjing"]
        assert {args["priority"] for _, args in refused} == {"urgent", "ill", "elderly"}

        # the guidance desk logs in without a window; the green-channel window; the supervisor
        xudan = login(api, "xudan")
        # ...and that login grants priority, nothing more: no window, no reports
        for method, path in [("POST", "/api/v1/windows/1/call"), ("GET", "/api/v1/reports/hall")]:
            assert api.request(method, path, headers=xudan).status_code == 403
        denghua = login(api, "denghua", 17)
        boss = login(api, "huangjianguo")
        granted = {}
        for who, headers, priority in [("xudan", xudan, "disabled"), ("denghua", denghua, "pregnant"),
                                       ("huangjianguo", boss, "urgent")]:
            r = api.post("/api/v1/tickets", headers=headers,
                         json={"service": "A", "priority": priority, "channel": "staff"})
            assert r.status_code == 201, r.text
            assert r.json()["priority"] == priority
            granted[r.json()["id"]] = (f"staff:{who}", priority)
        ahead = [api.get(f"/api/v1/tickets/{i}").json()["people_ahead"] for i in granted]
        assert ahead == [0, 1, 2]  # first among the four who waited, in the order they came

        # the card's age rule still needs nobody's leave
        r = api.post("/api/v1/tickets", json={"service": "A", "id_number": ELDER_ID, "name": "张建国"})
        assert r.status_code == 201 and r.json()["priority"] == "elderly"
        granted[r.json()["id"]] = ("rule:age", "elderly")
        young = api.post("/api/v1/tickets", json={"service": "A", "id_number": YOUNG_ID, "name": "王五"})
        assert young.json()["priority"] is None

    # who granted which priority survives a restart; the public QR view names nobody
    demo.stop()
    demo.start()
    with demo.client() as api:
        boss = login(api, "huangjianguo")
        for ticket_id, (by, priority) in granted.items():
            seen = api.get(f"/api/v1/tickets/{ticket_id}", headers=boss).json()
            assert (seen["priority_by"], seen["priority"]) == (by, priority)
            issued = next(e for e in seen["history"] if e["kind"] == "ticket_issued")
            assert issued["data"]["priority_by"] == by
            public = httpx.get(f"{demo.url}/api/v1/tickets/{ticket_id}").json()  # no cookie
            assert "priority_by" not in public
            assert all("priority_by" not in e["data"] for e in public["history"])
        # and the queue serves them first: window 1 calls the guidance desk's ticket
        chenjing = login(api, "chenjing", 1)
        called = api.post("/api/v1/windows/1/call", headers=chenjing).json()["ticket"]
        assert called["id"] == next(iter(granted))


class Stream:
    """An event stream read in a thread, as the supervisor page and the hall display read it."""

    def __init__(self, url: str, headers: dict[str, str] | None = None) -> None:
        self.events: list[dict] = []
        self.ready = threading.Event()
        self.stop = False
        self.thread = threading.Thread(target=self._read, args=(url, headers or {}), daemon=True)
        self.thread.start()
        assert self.ready.wait(5), "the event stream did not open"

    def _read(self, url: str, headers: dict[str, str]) -> None:
        try:
            with httpx.Client(base_url=url, timeout=30) as client, \
                    client.stream("GET", "/api/v1/events", headers=headers) as r:
                self.ready.set()
                for line in r.iter_lines():
                    if self.stop:
                        return
                    if line.startswith("data: "):
                        self.events.append(json.loads(line[6:]))
        except httpx.HTTPError:
            if not self.stop:  # the controller went away while the test still listened
                raise

    def out_of_order(self) -> list[dict]:
        return [e for e in self.events if e["kind"] == "ticket_called" and e["data"].get("out_of_order")]


def test_calling_out_of_order_needs_a_reason_the_supervisor_sees_it_and_the_report_counts_it(
        demo, browser):
    with demo.client() as api:
        numbers = [api.post("/api/v1/tickets", json={"service": "A"}).json() for _ in range(4)]
        day = dt.date.fromisoformat(numbers[0]["issued_at"][:10])
        chenjing = login(api, "chenjing", 1)
        boss = login(api, "huangjianguo")
        supervisor, display = Stream(demo.url, boss), Stream(demo.url)
        page = log_in(browser, demo.url, "huangjianguo", None, "/supervisor", DESK)
        expect(page.locator("#windows tr[data-window='1']")).to_contain_text("陈静")
        assert api.post("/api/v1/windows/1/call", headers=chenjing).json()["ticket"]["number"] == "A001"

        # no reason, a made-up one, 其他 without saying why: refused, and nothing moves
        for body, code, says in [({"number": "A003"}, "call_reason_required", "过号返回"),
                                 ({"number": "A003", "reason": "关系户"}, "invalid_call_reason", "过号返回"),
                                 ({"number": "A003", "reason": "其他"}, "call_reason_required", "其他"),
                                 ({"number": "A003", "reason": "其他", "note": "   "},
                                  "call_reason_required", "其他")]:
            r = api.post("/api/v1/windows/1/call-number", headers=chenjing, json=body)
            assert (r.status_code, r.json()["error"]) == (422, code), r.text
            assert says in r.json()["message"]
        assert api.get(f"/api/v1/tickets/{numbers[2]['id']}").json()["status"] == "waiting"
        assert api.get("/api/v1/windows/1", headers=chenjing).json()["current"]["number"] == "A001"
        assert waiting(api, "A") == 3

        # with a reason from the list: called, and the supervisor is told at once, who and why
        r = api.post("/api/v1/windows/1/call-number", headers=chenjing,
                     json={"number": "A003", "reason": "预约到达"})
        assert r.status_code == 200 and r.json()["ticket"]["number"] == "A003"
        seen = wait_for(supervisor.out_of_order, timeout=3)
        assert (seen[0]["data"]["label"], seen[0]["data"]["staff"], seen[0]["data"]["reason"],
                seen[0]["window"]) == ("A003", "chenjing", "预约到达", 1)
        # and the supervisor's page lists it among the day's alerts, without a reload
        # (a standing alert, such as a coming year without holiday data, may stand above it)
        alert = page.locator("#alerts li", has_text="叫指定号 A003")
        expect(alert).to_contain_text("1号窗口（陈静）叫指定号 A003：预约到达", timeout=1000)

        # the keypad has no text: its call-number key means 过号返回
        assert api.post("/sim/keypads/1/press",
                        json={"key": "call_number", "number": "A004"}).status_code == 200
        wait_for(lambda: len(supervisor.out_of_order()) == 2, timeout=5)
        assert supervisor.out_of_order()[1]["data"]["reason"] == "过号返回"

        r = api.post("/api/v1/windows/1/call-number", headers=chenjing,
                     json={"number": "A002", "reason": "其他", "note": "系统故障后补叫"})
        assert r.status_code == 200
        wait_for(lambda: len(supervisor.out_of_order()) == 3, timeout=3)
        assert supervisor.out_of_order()[2]["data"]["note"] == "系统故障后补叫"

        # the hall display's stream shows the calls, not who made them, why, nor that they
        # were out of order (controller.web.views.anonymous_event)
        def display_calls() -> list[dict]:
            return [e for e in display.events if e["kind"] == "ticket_called"]
        wait_for(lambda: {"A002", "A003", "A004"} <= {e["data"]["label"] for e in display_calls()},
                 timeout=3)
        assert all(set(e["data"]) <= {"label", "service"} for e in display_calls())
        supervisor.stop = display.stop = True
        expect(page.locator("#alerts li", has_text="叫指定号").first).to_contain_text(
            "其他 系统故障后补叫")
        assert page.errors == []

        # the reports count them against 陈静, and nobody else
        rows = api.get("/api/v1/reports/hall", headers=boss,
                       params={"by": "staff", "from": day.isoformat(), "to": day.isoformat()}).json()
        counts = {row["staff"]: row["out_of_order_calls"] for row in rows}
        assert counts.pop("chenjing") == 3
        assert set(counts.values()) <= {0}


# -- the rule itself, in the pure core ---------------------------------------------------------

def granting_hall():
    """Window 2 is the green channel; `desk` works the guidance desk; officer and admin too."""
    hall = small_hall()
    windows = {**hall.windows, 2: dataclasses.replace(hall.windows[2], green_channel=True)}
    staff = {**hall.staff,
             "desk": Staff("desk", "导办员", StaffRole.STAFF, PIN_HASH, guidance_desk=True, demo=True),
             "officer": Staff("officer", "回访专员", StaffRole.CALLBACK_OFFICER, PIN_HASH, demo=True),
             "admin": Staff("admin", "管理员", StaffRole.ADMIN, PIN_HASH, demo=True)}
    return dataclasses.replace(hall, windows=windows, staff=staff)


# who asks, what the floor looks like, granted or not
WHO_MAY_GRANT = [
    ("nobody logged in (the kiosk)", None, [], False),
    ("staff at an ordinary window", "s1", [c.Login(1, "s1")], False),
    ("staff whose post is the green channel but who is not logged in", "s2", [], False),
    ("staff at the green-channel window", "s2", [c.Login(2, "s2")], True),
    ("staff at the green-channel window, paused", "s2", [c.Login(2, "s2"), c.Pause(2, "取件", 5)], True),
    ("staff who left the green-channel window", "s2", [c.Login(2, "s2"), c.Logout(2)], False),
    ("ordinary staff covering the green channel as its B post", "s1", [c.Login(2, "s1")], True),
    ("the guidance desk", "desk", [], True),
    ("the supervisor", "boss", [], True),
    ("the callback officer", "officer", [], False),
    ("the admin", "admin", [], False),
    ("an id nobody has", "ghost", [], False),
]


@pytest.mark.parametrize(("who", "before", "granted"), [r[1:] for r in WHO_MAY_GRANT],
                         ids=[r[0] for r in WHO_MAY_GRANT])
def test_who_may_grant_priority(who, before, granted):
    story = Story(granting_hall())
    for cmd in before:
        story.do(cmd)
    story.issue("A")
    cmd = c.IssueTicket("A", "staff", priority="disabled", staff_id=who)
    if granted:
        t = story.do(cmd).ticket
        assert (t.priority.value, t.priority_by, story.state.queues.ahead_of(t, True)) == (
            "disabled", f"staff:{who}", 0)
        assert story.events[-1].priority_by == f"staff:{who}"
    else:
        before_state = copy.deepcopy(story.state)
        with pytest.raises(HallError) as e:
            story.do(cmd)
        assert (e.value.code, e.value.category.value) == ("priority_not_allowed", "forbidden")
        assert story.state.tickets == before_state.tickets
        assert story.state.last_number == before_state.last_number


def test_the_card_gives_the_elderly_priority_and_staff_may_give_another_class():
    story = Story(granting_hall())  # priority_age 70
    elder = story.do(c.IssueTicket("A", citizen=SEALER.citizen(ELDER_ID, "张建国"))).ticket
    assert (elder.priority.value, elder.priority_by) == ("elderly", "rule:age")
    plain = story.do(c.IssueTicket("A")).ticket
    assert (plain.priority, plain.priority_by) == (None, None)
    ill = story.do(c.IssueTicket("A", "staff", priority="ill", staff_id="desk")).ticket
    assert (ill.priority.value, ill.priority_by) == ("ill", "staff:desk")


CALL_REASON_REFUSALS = [
    ("no reason", None, None, "call_reason_required"),
    ("an empty reason", "  ", None, "call_reason_required"),
    ("a reason not on the list", "熟人", None, "invalid_call_reason"),
    ("其他 without a note", "其他", None, "call_reason_required"),
    ("其他 with a blank note", "其他", "  ", "call_reason_required"),
    ("a note too long to be a note", "其他", "说" * 51, "invalid_call_reason"),
    ("a reason that is not text", 3, None, "invalid_call_reason"),
]


@pytest.mark.parametrize(("reason", "note", "code"), [r[1:] for r in CALL_REASON_REFUSALS],
                         ids=[r[0] for r in CALL_REASON_REFUSALS])
def test_an_out_of_order_call_without_a_proper_reason_changes_nothing(reason, note, code):
    story = Story(small_hall())
    story.open(1)
    story.issue("A")
    story.issue("A")
    story.call(1)
    before = copy.deepcopy(story.state)
    with pytest.raises(HallError) as e:
        story.do(c.CallNumber(1, "A002", reason, note))
    assert e.value.code == code and e.value.category.value == "invalid"
    assert story.state.tickets == before.tickets and story.state.windows == before.windows


@pytest.mark.parametrize("reason", [r for r in CALL_REASONS if r != "其他"])
def test_each_listed_reason_is_recorded_with_the_call(reason):
    story = Story(small_hall())
    story.open(1)
    story.issue("A")
    story.issue("A")
    event = story.do(c.CallNumber(1, "A002", reason)).events[-1]
    assert (event.out_of_order, event.reason, event.staff, event.note) == (True, reason, "s1", None)


# -- how a hall says it in its config -----------------------------------------------------------

def test_the_config_names_the_green_channel_and_the_guidance_desk():
    data = minimal_hall_dict()
    data["windows"][1]["green_channel"] = True
    data["staff"].append({"id": "daoban", "name": "导办员", "role": "staff",
                          "pin_hash": data["staff"][0]["pin_hash"], "demo": True,
                          "guidance_desk": True})
    hall = parse_hall(data)
    assert (hall.windows[1].green_channel, hall.windows[2].green_channel) == (False, True)
    assert hall.staff["daoban"].guidance_desk and not hall.staff["zhangli"].guidance_desk


BAD = [
    ("green channel as text", put("windows", 0, "green_channel")("yes"),
     "windows[0].green_channel", "true or false"),
    ("guidance desk as text", put("staff", 0, "guidance_desk")(1),
     "staff[0].guidance_desk", "true or false"),
    ("guidance desk for a supervisor", lambda d: d["staff"][0].update(role="supervisor", guidance_desk=True),
     "staff[0].guidance_desk", 'only role "staff"'),
    ("staff with no post and no desk", lambda d: d["staff"][0].pop("a_post"),
     "staff[0].a_post", "guidance_desk"),
]


@pytest.mark.parametrize(("edit", "key", "reason"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_a_bad_priority_setting_names_its_key(edit, key, reason):
    data = copy.deepcopy(minimal_hall_dict())
    edit(data)
    with pytest.raises(ConfigError) as caught:
        parse_hall(data, source="hall.toml")
    assert (caught.value.key, reason in caught.value.reason) == (key, True), str(caught.value)


def test_an_out_of_order_call_counts_against_whoever_made_it(tmp_path):
    """s1 calls A002 out of order and sends it on to B; window 2 serves it. The call is
    still s1's, though the ticket now names s2."""
    clock = ManualClock(at("09:00"))
    ctrl = HallController(small_hall(), HallStore(tmp_path / "hall.sqlite3"), clock)
    try:
        for n in (1, 2):
            ctrl.execute(c.Login(n, f"s{n}"), f"staff:s{n}")
        for _ in range(2):
            ctrl.execute(c.IssueTicket("A"), "kiosk")
        clock.advance(minutes=5)
        ctrl.execute(c.CallNumber(1, "A002", "转办返回"), "staff:s1")
        ctrl.execute(c.Transfer(1, "B"), "staff:s1")
        assert ctrl.execute(c.CallNext(2), "staff:s2").ticket.label == "A002"
        ctrl.execute(c.Finish(2), "staff:s2")
        rows = {r["staff"]: r for r in hr.hall_figures(ctrl.store.db, ctrl.hall, MONDAY, MONDAY, "staff")}
        assert (rows["s1"]["out_of_order_calls"], rows["s1"]["served"]) == (1, 0)
        assert (rows["s2"]["out_of_order_calls"], rows["s2"]["served"]) == (0, 1)
    finally:
        ctrl.store.close()
