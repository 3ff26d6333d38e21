"""The REST API over a real loopback socket: the contract kiosks and counters rely on."""

from __future__ import annotations

import json
import threading

import httpx
import pytest

from controller.runtime.clock import ManualClock
from controller.web.views import ANONYMOUS_EVENT_DATA
from tests.halls import at, small_hall
from tests.server import running_hall


@pytest.fixture
def hall(tmp_path):
    clock = ManualClock(at("09:00"))
    with running_hall(small_hall(), tmp_path, clock) as h:
        yield h


def test_a_citizen_takes_a_ticket_and_a_window_serves_it(hall):
    with hall.client() as api:
        r = api.post("/api/v1/tickets", json={"service": "A"})
        assert r.status_code == 201
        body = r.json()
        assert {"id", "number", "service", "people_ahead", "eta", "issued_at"} <= body.keys()
        assert (body["number"], body["service"], body["people_ahead"]) == ("A001", "A", 0)
        assert set(body["eta"]) == {"p10", "p50", "p90"}
        assert api.post("/api/v1/tickets", json={"service": "A"}).json()["people_ahead"] == 1

        staff = hall.login("s1", 1)
        called = api.post("/api/v1/windows/1/call", headers=staff).json()["ticket"]
        assert (called["number"], called["status"], called["window"]) == ("A001", "called", 1)
        assert api.post("/api/v1/windows/1/recall", headers=staff).json()["ticket"]["recalls"] == 1
        hall.clock.advance(minutes=7)
        done = api.post("/api/v1/windows/1/finish", headers=staff).json()["ticket"]
        assert done["status"] == "finished"

        ticket = api.get(f"/api/v1/tickets/{body['id']}", headers=staff).json()
        assert [h["kind"] for h in ticket["history"]] == [
            "ticket_issued", "ticket_called", "ticket_recalled", "ticket_finished",
            "evaluation_prompted"]
        # who acted: for supervisors (as on the event stream), not for the counters
        assert "actor" not in ticket["history"][1]
        managed = api.get(f"/api/v1/tickets/{body['id']}", headers=hall.login("boss", None)).json()
        assert managed["history"][1]["actor"] == "staff:s1"

        view = api.get("/api/v1/hall", headers=staff).json()
        w1 = view["windows"][0]
        assert (w1["number"], w1["state"], w1["staff"]["id"], w1["staff"]["post"]) == (1, "open", "s1", "A")
        # a screen without a login: the window's state, not the 工号 behind it
        assert "id" not in api.get("/api/v1/hall").json()["windows"][0]["staff"]
        assert {q["service"]: q["waiting"] for q in view["queues"]} == {"A": 1, "B": 0, "C": 0}


def test_pause_transfer_no_show_and_resume(hall):
    with hall.client() as api:
        staff = hall.login("s2", 2)
        api.post("/api/v1/tickets", json={"service": "B"})
        api.post("/api/v1/windows/2/call", headers=staff)
        moved = api.post("/api/v1/windows/2/transfer", headers=staff, json={"service": "A"}).json()
        assert (moved["ticket"]["number"], moved["ticket"]["service"]) == ("B001", "A")
        api.post("/api/v1/windows/2/call", headers=staff)  # window 2 serves B, then A
        missed = api.post("/api/v1/windows/2/no-show", headers=staff).json()
        assert missed["ticket"]["requeued"] is True
        r = api.post("/api/v1/windows/2/pause", headers=staff, json={"reason": "去后台复印", "minutes": 10})
        assert r.status_code == 200
        w2 = api.get("/api/v1/hall").json()["windows"][1]
        assert (w2["state"], w2["pause"]["reason"], w2["pause"]["minutes"]) == ("paused", "去后台复印", 10)
        assert api.post("/api/v1/windows/2/call", headers=staff).json()["error"] == "window_paused"
        assert api.post("/api/v1/windows/2/resume", headers=staff).json()["events"] == ["window_resumed"]


BAD_REQUESTS = [
    # (method, path, json body or raw bytes, auth, status, error code)
    ("post", "/api/v1/tickets", {"service": "Z"}, None, 404, "unknown_service"),
    ("post", "/api/v1/tickets", {"service": 1}, None, 422, "invalid_request"),
    ("post", "/api/v1/tickets", {}, None, 422, "invalid_request"),
    ("post", "/api/v1/tickets", {"service": "A", "colour": "red"}, None, 422, "invalid_request"),
    ("post", "/api/v1/tickets", b"{not json", None, 422, "invalid_request"),
    ("post", "/api/v1/tickets", [1, 2], None, 422, "invalid_request"),
    ("post", "/api/v1/tickets", {"service": "A", "id_number": "110101199003070971"}, None, 422,
     "invalid_id_number"),
    ("post", "/api/v1/tickets", {"service": "A", "priority": "vip"}, None, 422, "invalid_priority"),
    ("post", "/api/v1/tickets", {"service": "A", "channel": "staff"}, None, 401, "not_logged_in"),
    ("post", "/api/v1/tickets", {"service": "A" * 100}, None, 422, "invalid_request"),
    ("get", "/api/v1/tickets/nope", None, None, 404, "unknown_ticket"),
    ("post", "/api/v1/windows/1/call", None, None, 401, "not_logged_in"),
    ("post", "/api/v1/windows/1/call", None, "Bearer forged", 401, "not_logged_in"),
    ("post", "/api/v1/windows/abc/call", None, "own", 422, "invalid_request"),
    ("post", "/api/v1/windows/2/call", None, "own", 403, "not_your_window"),
    ("post", "/api/v1/windows/1/pause", {"reason": "", "minutes": 5}, "own", 422, "invalid_request"),
    ("post", "/api/v1/windows/1/pause", {"reason": "开会", "minutes": "5"}, "own", 422, "invalid_request"),
    ("post", "/api/v1/windows/1/pause", {"reason": "开会", "minutes": 9999}, "own", 422, "invalid_request"),
    ("post", "/api/v1/windows/1/transfer", {"service": "B"}, "own", 409, "no_current_ticket"),
    ("post", "/api/v1/windows/1/resume", None, "own", 409, "window_not_paused"),
    ("post", "/api/v1/auth/login", {"staff_id": "s1", "pin": "0000", "window": 1}, None, 401,
     "bad_credentials"),
    ("post", "/api/v1/auth/login", {"staff_id": "ghost", "pin": "1234", "window": 1}, None, 401,
     "bad_credentials"),
    ("post", "/api/v1/auth/login", {"staff_id": "s3", "pin": "1234"}, None, 404, "unknown_window"),
    ("post", "/api/v1/auth/login", {"staff_id": "s2", "pin": "1234", "window": 1}, "own", 409,
     "window_occupied"),
    ("get", "/api/v1/nothing-here", None, None, 404, "not_found"),
    ("delete", "/api/v1/hall", None, None, 405, "method_not_allowed"),
]


@pytest.mark.parametrize("method,path,body,auth,status,code", BAD_REQUESTS,
                         ids=[f"{r[0]} {r[1]} {r[5]}" for r in BAD_REQUESTS])
def test_bad_input_gets_a_clear_4xx_and_changes_nothing(hall, method, path, body, auth, status, code):
    headers = {}
    if auth == "own":
        headers = hall.login("s1", 1)
    elif auth:
        headers = {"Authorization": auth}
    with hall.client() as api:
        before = api.get("/api/v1/hall").json()
        kw = {"content": body} if isinstance(body, bytes) else ({"json": body} if body is not None else {})
        if isinstance(body, bytes):
            headers = {**headers, "content-type": "application/json"}
        r = api.request(method.upper(), path, headers=headers, **kw)
        assert (r.status_code, r.json()["error"]) == (status, code), r.text
        assert r.json()["message"]
        after = api.get("/api/v1/hall").json()
    assert after["queues"] == before["queues"]
    assert [w["current"] for w in after["windows"]] == [w["current"] for w in before["windows"]]


REFUSED_FIELDS = [
    # (method, path, json body or query, what the message says of the field)
    ("post", "/api/v1/windows/1/pause", {"reason": "开会", "minutes": 0}, "分钟数（minutes）应大于或等于 1"),
    ("post", "/api/v1/windows/1/pause", {"reason": "开会", "minutes": 9999},
     "分钟数（minutes）应小于或等于 240"),
    ("post", "/api/v1/windows/1/pause", {"minutes": 5}, "原因（reason）未填写"),
    ("post", "/api/v1/windows/1/pause", {"reason": "开会", "minutes": "5"}, "分钟数（minutes）应为整数"),
    ("post", "/api/v1/windows/1/pause", {"reason": "会" * 51, "minutes": 5}, "原因（reason）最多 50 个字"),
    ("post", "/api/v1/tickets", {"service": ""}, "业务（service）至少 1 个字"),
    ("post", "/api/v1/tickets", {"service": "A", "colour": "red"}, "“colour”不是本接口的字段"),
    ("post", "/api/v1/tickets", [1, 2], "请求内容应为 JSON 对象"),
    ("get", "/api/v1/reports/hall", {"by": "floor"},
     "分组（by）应为以下之一：service、day、month、staff、window"),
    ("get", "/api/v1/reports/hall", {"from": "2026-13-01"}, "开始日期（from）应为日期，格式如 2026-12-03"),
    ("get", "/api/v1/reports/attendance", {"tolerance": 61}, "容差分钟数（tolerance）应小于或等于 60"),
    ("get", "/api/v1/windows/abc", None, "窗口号（no）应为整数"),
]


@pytest.mark.parametrize("method,path,body,said", REFUSED_FIELDS, ids=[r[3] for r in REFUSED_FIELDS])
def test_a_refused_field_is_named_in_chinese(hall, method, path, body, said):
    """The person at the counter or the desk reads which field is wrong and why, in Chinese;
    the code stays the one machines match on."""
    headers = hall.login("s1", 1) if "/windows/" in path else hall.login("boss", None)
    with hall.client() as api:
        if method == "get":
            r = api.get(path, params=body or {}, headers=headers)
        else:
            r = api.post(path, json=body, headers=headers)
    assert (r.status_code, r.json()["error"]) == (422, "invalid_request"), r.text
    message = r.json()["message"]
    assert message.startswith("请求内容不正确：") and said in message, message
    assert not {"Input", "should", "Field required", "Extra inputs"} & set(message.split()), message
    assert set(r.json()) == {"error", "message"}


def test_a_huge_body_is_refused(hall):
    with hall.client() as api:
        r = api.post("/api/v1/tickets", content=b"x" * (1024 * 1024),
                     headers={"content-type": "application/json"})
        assert (r.status_code, r.json()["error"]) == (413, "body_too_large")


def test_supervisor_acts_on_any_window_and_staff_only_on_their_own(hall):
    with hall.client() as api:
        api.post("/api/v1/tickets", json={"service": "A"})
        hall.login("s1", 1)
        boss = hall.login("boss", None)
        assert api.post("/api/v1/windows/1/call", headers=boss).json()["ticket"]["number"] == "A001"
        s2 = hall.login("s2", 2)
        assert api.post("/api/v1/windows/1/finish", headers=s2).status_code == 403
        refusals = list(hall.ctrl.store.query(
            "SELECT actor, result FROM commands WHERE result = 'not_your_window'"))
        assert refusals == [{"actor": "staff:s2", "result": "not_your_window"}]


def test_logout_closes_the_window_and_revokes_the_token(hall):
    with hall.client() as api:
        staff = hall.login("s1", 1)
        assert api.post("/api/v1/auth/logout", headers=staff).json() == {"ok": True}
        assert api.get("/api/v1/hall").json()["windows"][0]["state"] == "closed"
        assert api.post("/api/v1/windows/1/call", headers=staff).status_code == 401
        assert hall.login("s2", 1)  # the window is free for its B post now


def test_server_sent_events_carry_every_change_and_resume(hall):
    received: list[dict] = []
    ready = threading.Event()

    def listen():
        with httpx.Client(base_url=hall.url, timeout=10) as c, c.stream("GET", "/api/v1/events") as r:
            ready.set()
            for line in r.iter_lines():
                if line.startswith("data: "):
                    received.append(json.loads(line[6:]))
                    if len(received) == 3:
                        return

    t = threading.Thread(target=listen)
    t.start()
    ready.wait(5)
    with hall.client() as api:
        api.post("/api/v1/tickets", json={"service": "A"})  # day_started + ticket_issued
        staff = hall.login("s1", 1)
        api.post("/api/v1/windows/1/call", headers=staff)
    t.join(10)
    assert [e["kind"] for e in received] == ["day_started", "ticket_issued", "window_opened"]

    # a display that was away asks for what it missed
    with httpx.Client(base_url=hall.url, timeout=10) as c, \
            c.stream("GET", "/api/v1/events", headers={"Last-Event-ID": str(received[1]["id"])}) as r:
        for line in r.iter_lines():
            if line.startswith("data: "):
                missed = json.loads(line[6:])
                break
    assert (missed["kind"], missed["id"]) == ("window_opened", received[2]["id"])


def test_openapi_docs_are_served(hall):
    with hall.client() as api:
        assert api.get("/docs").status_code == 200
        paths = api.get("/openapi.json").json()["paths"]
        for p in ("/api/v1/tickets", "/api/v1/tickets/{ticket_id}", "/api/v1/windows/{no}/call",
                  "/api/v1/windows/{no}/pause", "/api/v1/hall", "/api/v1/events", "/api/v1/auth/login"):
            assert p in paths


def test_a_supervisor_login_and_logout_are_in_the_audit_log(hall):
    boss = hall.login("boss", None)
    with hall.client() as api:
        api.post("/api/v1/auth/logout", headers=boss)
    rows = list(hall.ctrl.store.query(
        "SELECT actor, name, result FROM commands WHERE actor = 'staff:boss' ORDER BY id"))
    assert rows == [{"actor": "staff:boss", "name": "login", "result": "ok"},
                    {"actor": "staff:boss", "name": "logout", "result": "ok"}]


def test_a_display_that_was_away_long_gets_everything_it_missed(hall):
    with hall.client() as api:
        for _ in range(700):
            # one every 2 s: within the 30 a minute one address may take without a login
            hall.clock.advance(seconds=2)
            assert api.post("/api/v1/tickets", json={"service": "C"}).status_code == 201
    # every event a display without a login is shown: the tickets, and none of the supervisor's
    # alerts that the ticker may have raised meanwhile (posts away, a window uncovered)
    shown = [r["id"] for r in hall.ctrl.store.query("SELECT id, kind FROM events ORDER BY id")
             if r["kind"] in ANONYMOUS_EVENT_DATA]
    ids = []
    with httpx.Client(base_url=hall.url, timeout=10) as c, \
            c.stream("GET", "/api/v1/events", headers={"Last-Event-ID": "0"}) as r:
        for line in r.iter_lines():
            if line.startswith("id: "):
                ids.append(int(line[4:]))
                if ids[-1] == shown[-1]:
                    break
    assert ids == shown and len(shown) >= 700


def test_calling_a_number_out_of_order_is_audited_and_streamed(hall):
    with hall.client() as api:
        for _ in range(3):
            api.post("/api/v1/tickets", json={"service": "A"})
        staff = hall.login("s1", 1)
        r = api.post("/api/v1/windows/1/call-number", headers=staff,
                     json={"number": "A003", "reason": "过号返回"})
        assert r.json()["ticket"]["number"] == "A003"
        audit = list(hall.ctrl.store.query(
            "SELECT actor, args FROM commands WHERE name = 'call_number'"))
        assert [{**a, "args": json.loads(a["args"])} for a in audit] == [
            {"actor": "staff:s1",
             "args": {"window": 1, "number": "A003", "reason": "过号返回", "note": None}}]
        called = [e for _, e in hall.ctrl.store.events_after(0) if e["kind"] == "ticket_called"]
        assert called[-1]["data"]["out_of_order"] is True
        bad = api.post("/api/v1/windows/1/call-number", headers=staff,
                       json={"number": "A003", "reason": "过号返回"})
        assert (bad.status_code, bad.json()["error"]) == (409, "not_callable")


def test_an_error_type_without_words_still_names_its_field():
    from controller.web import validation

    assert validation.problem({"type": "url_parsing", "loc": ("body", "phone")}) == "联系电话（phone）不正确"
    assert validation.problem({"type": "greater_than_equal", "loc": ("query", "x"), "ctx": {}}) == "“x”不正确"
    many = [{"type": "missing", "loc": ("body", f"f{i}")} for i in range(7)]
    assert validation.message(many).endswith("“f4”未填写（另有 2 项）")
