"""The case desk on a running hall: a bad review given at window 2 becomes a callback case with
working-day deadlines, is worked to closed, and never leaves an ID or phone number in plain text."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from controller.backoffice.cases import CaseDesk, normalise_phone
from controller.core.identity import mask_phone
from controller.cli import open_hall
from controller.runtime.clock import ManualClock
from controller.core import commands as c
from controller.core.callbacks import (
    Appeal, Assign, CaseError, CaseRules, CaseState, Close, DecideAppeal, FollowUp, GiveFeedback,
    RecordCallback, Rectify, Verify,
)
from controller.core.hall import Staff, StaffRole, WindowKind
from controller.store import casebook
from controller.web.app import create_app
from controller.config.workdays import hall_calendar
from tests.halls import PIN_HASH, TZ, at, small_hall

ID = "11010119500307097X"
PHONE = "13812341234"
S = CaseState

OVERRIDE_2027 = """
[years.2027]
holidays = [
  { date = 2027-10-01, name = "国庆节" }, { date = 2027-10-02, name = "国庆节" },
  { date = 2027-10-03, name = "国庆节" }, { date = 2027-10-04, name = "国庆节" },
  { date = 2027-10-05, name = "国庆节" }, { date = 2027-10-06, name = "国庆节" },
  { date = 2027-10-07, name = "国庆节" },
]
workdays = [ { date = 2027-10-09, name = "国庆节调休" } ]
"""


class Hall:
    """A hall on disk with its case desk, the clock in the test's hand."""

    def __init__(self, tmp_path: Path, when: dt.datetime, calendar_file: Path | None = None) -> None:
        hall = small_hall({1: ("A",), 2: ("B", "A"), 3: ("C",), 4: ("A",)})
        windows = dict(hall.windows)
        windows[4] = dataclasses.replace(windows[4], kind=WindowKind.COMPLAINTS)  # 办不成事
        # cases are handed to an account of the hall (an unknown id is refused)
        staff = {**hall.staff, "officer1": Staff("officer1", "回访专员", StaffRole.CALLBACK_OFFICER,
                                                 PIN_HASH, demo=True)}
        self.hall = dataclasses.replace(hall, windows=windows, staff=staff)
        self.clock = ManualClock(when)
        self.dir = tmp_path / "hall"
        self.ctrl, self.sessions = open_hall(self.hall, self.dir, self.clock)
        self.desk = CaseDesk(self.ctrl, hall_calendar(calendar_file),
                             CaseRules.from_rules(self.hall.rules))
        self.desk.start()
        self.logged_in = False

    def visit(self, when: dt.datetime, id_number: str | None = ID, name: str = "张三") -> str:
        """A citizen served at window 2 by s2: the finished ticket's id."""
        self.clock.now = when
        if not self.logged_in:
            self.ctrl.execute(c.Login(2, "s2"), "staff:s2")
            self.logged_in = True
        citizen = self.ctrl.citizen(id_number, name) if id_number else None
        ticket = self.ctrl.execute(c.IssueTicket("A", citizen=citizen), "kiosk").ticket
        self.ctrl.execute(c.CallNext(2), "staff:s2")
        self.ctrl.execute(c.Finish(2), "staff:s2")
        return ticket.id

    def evaluate(self, ticket_id: str, grade: str = "非常不满意", channel: str = "pad",
                 real_name: bool = True) -> None:
        """The citizen grades the visit just finished at window 2, on its pad."""
        self.ctrl.execute(c.Evaluate(2, grade, channel), "pad:2")

    def bad_review(self, when: dt.datetime, **kw) -> str:
        ticket = self.visit(when, **{k: v for k, v in kw.items() if k in ("id_number", "name")})
        self.evaluate(ticket, **{k: v for k, v in kw.items() if k in ("grade", "channel", "real_name")})
        return ticket

    def case_for(self, ticket_id: str):
        [case] = [x for x in self.desk.list() if x.ticket_id == ticket_id]
        return case

    def notes(self, name: str) -> list[dict]:
        return [{**r, "args": json.loads(r["args"])} for r in self.ctrl.store.query(
            "SELECT * FROM commands WHERE name = ? ORDER BY id", [name])]

    def close(self) -> None:
        self.desk.stop()
        self.ctrl.store.close()


@pytest.fixture
def make_hall(tmp_path):
    halls: list[Hall] = []

    def make(when: dt.datetime, calendar_file: Path | None = None) -> Hall:
        h = Hall(tmp_path / str(len(halls)), when, calendar_file)
        halls.append(h)
        return h

    yield make
    for h in halls:
        h.close()


def midnight(y: int, m: int, d: int) -> dt.datetime:
    return dt.datetime(y, m, d, tzinfo=TZ)


# --- deadlines ---------------------------------------------------------------------

def test_a_bad_review_before_national_day_is_due_after_the_holiday(make_hall):
    h = make_hall(at("10:00", dt.date(2025, 9, 30)))
    ticket = h.bad_review(at("10:00", dt.date(2025, 9, 30)))
    case = h.case_for(ticket)
    assert case.state is S.OPEN and case.staff_id == "s2" and case.window == 2
    # 国庆 1-8 October: 1 working day is Thursday 9 October, due at its end
    assert case.callback_due == midnight(2025, 10, 10)
    # 5 working days: 9, 10, 11 (a 调休 Saturday), 13, 14 October
    assert case.rectify_due == midnight(2025, 10, 15)
    assert h.notes("calendar_year_missing") == []
    assert h.notes("case_open")[0]["args"]["case"] == case.id


def test_a_2027_deadline_comes_from_the_hall_override_file(make_hall, tmp_path):
    override = tmp_path / "holidays.toml"
    override.write_text(OVERRIDE_2027, encoding="utf-8")
    h = make_hall(at("10:00", dt.date(2027, 9, 30)), override)
    case = h.case_for(h.bad_review(at("10:00", dt.date(2027, 9, 30))))
    assert case.callback_due == midnight(2027, 10, 9)  # Friday 8 October
    assert case.rectify_due == midnight(2027, 10, 14)  # 8, 9 (调休), 11, 12, 13
    assert h.notes("calendar_year_missing") == []


def test_a_year_without_calendar_data_falls_back_and_alerts(make_hall):
    h = make_hall(at("10:00", dt.date(2028, 3, 1)))  # a Wednesday; nobody has 2028 yet
    case = h.case_for(h.bad_review(at("10:00", dt.date(2028, 3, 1))))
    assert case.callback_due == midnight(2028, 3, 3)  # Monday to Friday meanwhile
    [note] = h.notes("calendar_year_missing")
    assert note["args"] == {"case": case.id, "years": [2028]}


def test_complaints_get_their_deadlines_and_a_sealed_phone(make_hall):
    h = make_hall(at("10:00", dt.date(2025, 9, 30)))
    case = h.desk.open_complaint("desk", "材料被退回三次", "staff:s4", window=2, staff_id="s2",
                                 service="A", id_number=ID, name="张三", phone="138 1234 1234")
    assert case.id.startswith("TS20250930-")
    assert case.feedback_due == midnight(2025, 10, 11)  # 9 October, then the 调休 Saturday
    assert case.resolve_due == midnight(2025, 10, 15)
    assert PHONE not in case.phone_sealed
    assert h.ctrl.sealer.open(case.phone_sealed) == (PHONE, None)
    view = h.desk.view(case, False, "staff:boss")
    assert view["citizen"] == {"id_masked": "1101**********097X", "name_masked": "张*",
                               "phone_masked": "138****1234"}
    with pytest.raises(CaseError) as bad:
        h.desk.open_complaint("phone", "电话打不通", "staff:boss", phone="12345")
    assert bad.value.code == "invalid_phone"
    landline = h.desk.open_complaint("comment_box", "意见箱", "staff:boss", phone="023-61234567")
    assert h.ctrl.sealer.open(landline.phone_sealed)[0] == "023-61234567"


@pytest.mark.parametrize("phone,ok", [
    ("13812341234", True), ("+86 138 1234 1234", True), ("12812341234", False),
    ("1381234123", False), ("02361234567", True), ("010-12345678", True), ("61234567", False),
])
def test_phone_numbers(phone, ok):
    if ok:
        assert normalise_phone(phone)
    else:
        with pytest.raises(CaseError):
            normalise_phone(phone)


def test_mask_phone():
    assert mask_phone(PHONE) == "138****1234"


# --- what is and is not a case -----------------------------------------------------

def test_anonymous_bad_review_is_counted_without_a_case(make_hall):
    day = dt.date(2025, 9, 30)
    h = make_hall(at("10:00", day))
    h.bad_review(at("10:00", day), id_number=None)
    assert h.desk.list() == []
    figures = h.desk.figures(day, day)
    assert figures["anonymous_bad_reviews"] == 1
    assert figures["bad_reviews"] == 0 and figures["callback_rate"] is None


def test_a_bad_review_given_just_before_a_crash_gets_its_case_after_restart(make_hall):
    day = dt.date(2025, 9, 30)
    h = make_hall(at("10:00", day))
    first = h.bad_review(at("10:00", day))
    h.bad_review(at("10:20", day), grade="满意")
    h.desk.stop()  # the controller dies between committing the grade and opening its case
    lost = h.bad_review(at("10:40", day))
    assert [c.ticket_id for c in h.desk.list()] == [first]

    h.close()
    h.ctrl, h.sessions = open_hall(h.hall, h.dir, h.clock)
    h.desk = CaseDesk(h.ctrl, hall_calendar(None), CaseRules.from_rules(h.hall.rules))
    h.desk.start()
    assert sorted(c.ticket_id for c in h.desk.list()) == sorted([first, lost])
    assert len(h.notes("case_open")) == 2  # the first case was not opened twice
    # the next start reads only what came after this one: the mark is past every grade (the
    # log goes on with the case_opened events the desk wrote since)
    with h.ctrl.store.reads.snapshot() as db:
        graded = db.execute("SELECT max(id) FROM events WHERE kind = 'ticket_evaluated'").fetchone()[0]
        assert graded <= casebook.seen_until(db) <= casebook.last_event_id(db)


def test_the_desk_remembers_how_far_it_has_read_as_bad_reviews_come_in(make_hall):
    day = dt.date(2025, 9, 30)
    h = make_hall(at("10:00", day))
    h.bad_review(at("10:00", day))
    evaluated = h.ctrl.store.query(
        "SELECT MAX(id) AS id FROM events WHERE kind = 'ticket_evaluated'")[0]["id"]
    with h.ctrl.store.reads.snapshot() as db:
        assert casebook.seen_until(db) == evaluated


def test_good_and_system_default_grades_open_nothing(make_hall):
    day = dt.date(2025, 9, 30)
    h = make_hall(at("10:00", day))
    h.bad_review(at("10:00", day), grade="满意")
    h.bad_review(at("10:10", day), grade="不满意", channel="system_default")
    assert h.desk.list() == []
    assert h.desk.figures(day, day)["anonymous_bad_reviews"] == 0


# --- the workflow ------------------------------------------------------------------

WALK = [
    (Assign("officer1"), S.ASSIGNED),
    (RecordCallback(False, "无人接听"), S.ASSIGNED),
    (RecordCallback(True, "已联系本人"), S.CALLED_BACK),
    (Verify(True, "窗口人员态度生硬属实"), S.VERIFIED),
    (Rectify("批评教育，窗口培训"), S.RECTIFIED),
    (GiveFeedback("已电话告知整改情况"), S.FEEDBACK_GIVEN),
    (FollowUp("满意"), S.FOLLOW_UP),
    (Close(), S.CLOSED),
]


def test_a_case_is_walked_to_closed_and_the_callback_rate_reaches_100(make_hall):
    day = dt.date(2025, 9, 30)
    h = make_hall(at("10:00", day))
    first = h.case_for(h.bad_review(at("10:00", day)))
    second = h.case_for(h.bad_review(at("10:30", day), grade="不满意"))
    h.clock.now = at("11:00", day)
    for cmd, state in WALK:
        assert h.desk.act(first.id, cmd, "staff:officer1").state is state
    assert h.desk.figures(day, day)["callback_rate"] == 0.5  # the second is still open
    with pytest.raises(CaseError) as refused:
        h.desk.act(second.id, Close(), "staff:officer1")
    assert refused.value.code == "illegal_transition"
    for cmd, _ in WALK:
        h.desk.act(second.id, cmd, "staff:officer1")
    figures = h.desk.figures(day, day)
    assert (figures["bad_reviews"], figures["bad_reviews_closed"], figures["callback_rate"]) == (2, 2, 1.0)
    closed = h.desk.get(first.id)
    assert [t.to_state for t in closed.history][-1] is S.CLOSED and len(closed.history) == 9
    assigned = h.notes("case_assign")[0]
    assert assigned["actor"] == "staff:officer1"
    assert assigned["args"] == {"case": first.id, "from": "open", "to": "assigned"}
    # the refused close is on record too
    assert [n["result"] for n in h.notes("case_close")] == ["ok", "illegal_transition", "ok"]


def test_only_the_staff_member_appeals_and_a_supervisor_decides(make_hall):
    day = dt.date(2025, 9, 30)
    h = make_hall(at("10:00", day))
    case = h.case_for(h.bad_review(at("10:00", day)))
    for cmd, _ in WALK[:1] + WALK[2:4]:
        h.desk.act(case.id, cmd, "staff:officer1")
    with pytest.raises(CaseError) as wrong:
        h.desk.act(case.id, Appeal("不是我"), "staff:s1")
    assert wrong.value.code == "not_case_staff"
    assert h.desk.act(case.id, Appeal("群众误评"), "staff:s2").state is S.APPEALED
    decided = h.desk.act(case.id, DecideAppeal(True, "boss", "查看录像属误评"), "staff:boss")
    assert decided.state is S.VERIFIED and decided.justified is False
    assert [r["args"]["to"] for r in h.notes("case_appeal_decision")] == ["verified"]


# --- supervision -------------------------------------------------------------------

def test_the_overdue_sweep_notes_each_passed_deadline_once(make_hall):
    day = dt.date(2025, 9, 30)
    h = make_hall(at("10:00", day))
    case = h.case_for(h.bad_review(at("10:00", day)))
    assert h.desk.sweep(midnight(2025, 10, 9)) == []
    # late once the clock passes the deadline (case_supervision.overdue)
    assert h.desk.sweep(at("00:01", dt.date(2025, 10, 10))) == [(case.id, "callback_due")]
    assert h.desk.sweep(at("09:00", dt.date(2025, 10, 10))) == []
    assert h.desk.sweep(midnight(2025, 10, 16)) == [(case.id, "rectify_due")]
    assert h.desk.sweep(midnight(2025, 10, 20)) == []
    notes = h.notes("case_overdue")
    assert [n["args"]["deadline"] for n in notes] == ["callback_due", "rectify_due"]
    h.clock.now = midnight(2025, 10, 11)
    assert [c.id for c in h.desk.list(overdue_only=True)] == [case.id]
    assert h.desk.figures(day, day)["overdue_ever"] == 1


def test_overdue_cases_are_listed_first(make_hall):
    day = dt.date(2025, 9, 30)
    h = make_hall(at("10:00", day))
    late = h.case_for(h.bad_review(at("10:00", day)))
    h.clock.now = at("10:00", dt.date(2025, 10, 13))
    fresh = h.desk.open_complaint("phone", "电话投诉", "staff:boss")
    h.clock.now = at("10:00", dt.date(2025, 10, 14))
    assert [c.id for c in h.desk.list()] == [late.id, fresh.id]


# --- privacy -----------------------------------------------------------------------

def test_the_unmasked_view_is_audited_and_masked_elsewhere(make_hall):
    day = dt.date(2025, 9, 30)
    h = make_hall(at("10:00", day))
    case = h.case_for(h.bad_review(at("10:00", day)))
    masked = h.desk.view(case, False, "staff:officer1")
    assert masked["citizen"]["id_masked"] == "1101**********097X"
    assert masked["citizen"]["name_masked"] == "张*"
    assert "id_number" not in masked["citizen"] and ID not in json.dumps(masked)
    assert h.notes("case_personal_data_viewed") == []
    opened = h.desk.view(case, True, "staff:officer1")
    assert opened["citizen"]["id_number"] == ID and opened["citizen"]["name"] == "张三"
    [note] = h.notes("case_personal_data_viewed")
    assert note["actor"] == "staff:officer1" and note["args"] == {"case": case.id}


def test_no_id_or_phone_number_is_on_disk_in_plain_text(make_hall):
    day = dt.date(2025, 9, 30)
    h = make_hall(at("10:00", day))
    ticket = h.visit(at("10:00", day))
    def leave_phone(state) -> None:  # the phone a citizen left for the callback, as stored
        state.tickets[ticket].phone_sealed = h.ctrl.sealer.seal(PHONE, None)
    h.ctrl.ask(leave_phone)
    h.evaluate(ticket)
    case = h.case_for(ticket)
    assert h.desk.view(case, False, "x")["citizen"]["phone_masked"] == "138****1234"
    h.desk.open_complaint("phone", "电话投诉", "staff:boss", id_number=ID, name="张三",
                          phone="13912345678")
    h.desk.view(case, True, "staff:officer1")
    h.desk.sweep(midnight(2025, 11, 1))
    h.ctrl.store.checkpoint()
    files = [p for p in h.dir.iterdir() if p.name.startswith("hall.sqlite3")]
    assert files and any(b"HP20250930-001" in p.read_bytes() for p in files)
    for path in files:
        raw = path.read_bytes()
        for secret in (ID, PHONE, "13912345678", "张三"):
            assert secret.encode() not in raw, (path.name, secret)


# --- the API -----------------------------------------------------------------------

def test_api_roles(make_hall):
    day = dt.date(2025, 9, 30)
    h = make_hall(at("10:00", day))
    case = h.case_for(h.bad_review(at("10:00", day)))
    client = TestClient(create_app(h.ctrl, h.sessions, desk=h.desk))

    def as_(staff: str, role: str, window: int | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {h.sessions.create(staff, role, window, h.clock())}"}

    officer, boss = as_("officer1", "callback_officer"), as_("boss", "supervisor")
    admin, staff = as_("admin1", "admin"), as_("s2", "staff", 2)

    got = client.get("/api/v1/cases", headers=admin)
    assert got.status_code == 200 and [c["id"] for c in got.json()] == [case.id]
    assert ID not in got.text
    assert client.get("/api/v1/cases", headers=staff).status_code == 403
    assert client.get("/api/v1/cases").status_code == 401

    assert client.get(f"/api/v1/cases/{case.id}/personal-data", headers=boss).status_code == 403
    opened = client.get(f"/api/v1/cases/{case.id}/personal-data", headers=officer)
    assert opened.status_code == 200 and opened.json()["citizen"]["id_number"] == ID

    assert client.post(f"/api/v1/cases/{case.id}/assign", json={"officer": "officer1"},
                       headers=admin).status_code == 403
    assert client.post(f"/api/v1/cases/{case.id}/assign", json={"officer": "o", "x": 1},
                       headers=officer).status_code == 422
    assigned = client.post(f"/api/v1/cases/{case.id}/assign", json={"officer": "officer1"},
                           headers=officer)
    assert assigned.status_code == 200 and assigned.json()["state"] == "assigned"
    # the case says what may happen next, and only that is accepted
    assert assigned.json()["actions"] == ["assign", "callback"]
    wrong = client.post(f"/api/v1/cases/{case.id}/close", headers=boss)
    assert wrong.status_code == 409 and wrong.json()["error"] == "illegal_transition"
    assert client.get("/api/v1/cases/HP-nope", headers=boss).json()["error"] == "unknown_case"

    client.post(f"/api/v1/cases/{case.id}/callback", json={"reached": True, "summary": "已联系"},
                headers=officer)
    client.post(f"/api/v1/cases/{case.id}/verify", json={"justified": True, "finding": "属实"},
                headers=officer)
    assert client.post(f"/api/v1/cases/{case.id}/appeal", json={"reason": "误评"},
                       headers=as_("s1", "staff", 1)).status_code == 403
    assert client.post(f"/api/v1/cases/{case.id}/appeal", json={"reason": "误评"},
                       headers=staff).json()["state"] == "appealed"
    assert client.post(f"/api/v1/cases/{case.id}/appeal-decision",
                       json={"upheld": False, "reason": "属实"}, headers=officer).status_code == 403
    decided = client.post(f"/api/v1/cases/{case.id}/appeal-decision",
                          json={"upheld": False, "reason": "属实", "reviewer": "boss"}, headers=boss)
    assert decided.status_code == 200 and decided.json()["state"] == "verified"

    complaint = {"source": "desk", "description": "办不成事", "phone": PHONE}
    assert client.post("/api/v1/complaints", json=complaint, headers=staff).status_code == 403
    filed = client.post("/api/v1/complaints", json=complaint, headers=as_("s4", "staff", 4))
    assert filed.status_code == 201 and filed.json()["citizen"]["phone_masked"] == "138****1234"
    bad = client.post("/api/v1/complaints", json={**complaint, "phone": "123"}, headers=boss)
    assert bad.status_code == 422 and bad.json()["error"] == "invalid_phone"

    figures = client.get("/api/v1/cases-figures?from=2025-09-01&to=2025-09-30", headers=admin)
    assert figures.status_code == 200
    assert figures.json()["bad_reviews"] == 1 and figures.json()["complaints"] == 1
