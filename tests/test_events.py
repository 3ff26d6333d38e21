"""Typed events: every kind the hall writes reads back as the same typed event, and a database
written before the events were typed (the old `data` dictionaries) still reads, serves the same
JSON to the pages and opens its cases."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from controller.runtime.clock import ManualClock
from controller.core import commands as c
from controller.core import events as ev
from controller.store.logform import encode_payload
from tests.halls import at
from tests.test_cases import Hall
from tests.test_store import busy_morning, controller

DAY = dt.date(2025, 9, 30)


def stored(ctrl) -> list[dict]:
    return ctrl.store.query("SELECT kind, at, window, ticket_id, data FROM events ORDER BY id")


def test_every_event_of_a_busy_morning_reads_back_as_the_same_typed_event(tmp_path):
    clock = ManualClock(at("09:00"))
    ctrl = controller(tmp_path, clock)
    emitted: list[ev.Event] = []
    ctrl.subscribe(lambda _id, e: emitted.append(e))
    busy_morning(ctrl, clock)
    clock.advance(minutes=30)
    ctrl.execute(c.Tick(), "system")  # the pause past its limit
    rows = stored(ctrl)
    ctrl.store.close()

    assert len(rows) == len(emitted) > 20
    for row, event in zip(rows, emitted, strict=True):
        back = ev.from_row(row["kind"], row["at"], row["window"], row["ticket_id"],
                           json.loads(row["data"]))
        assert type(back) is type(event) and back == event
        assert json.loads(row["data"]) == ev.payload(back)  # nothing lost, nothing added
    assert {type(e) for e in emitted} >= {ev.TicketIssued, ev.TicketCalled, ev.TicketMissed,
                                          ev.TicketTransferred, ev.TicketFinished,
                                          ev.WindowPaused, ev.PauseOverLimit}


# Rows as the hall wrote them before its events were typed (copied from a database of then).
OLD_ROWS = [
    ("ticket_called", "2025-09-30T09:05:00+08:00", 2, "20250930-A001",
     {"label": "A001", "service": "A", "waited_seconds": 300}),
    ("ticket_called", "2025-09-30T09:06:00+08:00", 1, "20250930-A002",
     {"label": "A002", "service": "A", "waited_seconds": 60, "out_of_order": True,
      "staff": "s1", "reason": "missed_return", "note": None}),
    ("window_closed", "2025-10-01T00:00:05+08:00", 1, None, {"staff": "s1", "reason": "day_end"}),
    ("ticket_cancelled", "2025-10-01T00:00:05+08:00", None, "20250930-A009", {"reason": "day_end"}),
    ("window_opened", "2025-09-30T09:00:00+08:00", 1, None, {"staff": "s1", "post": "A"}),
    # before the event said whether it was a bad review, or whether it was given by name
    ("ticket_evaluated", "2025-09-30T09:10:00+08:00", 2, "20250930-A001",
     {"grade": "非常不满意", "channel": "pad", "staff": "s2", "service": "A"}),
    # a field this version does not know, and a kind it does not know
    ("device_health", "2025-09-30T09:11:00+08:00", None, None,
     {"device": "printer-1", "state": "online", "detail": None, "firmware": "2.1"}),
    ("window_cover_started", "2025-09-30T09:12:00+08:00", 1, None, {"staff": "s2", "post": "B"}),
]


@pytest.mark.parametrize("kind, at_, window, ticket, data", OLD_ROWS, ids=[r[0] for r in OLD_ROWS])
def test_an_event_in_the_old_shape_reads_as_typed_and_serves_the_same_json(kind, at_, window,
                                                                           ticket, data):
    event = ev.from_row(kind, at_, window, ticket, data)
    assert ev.to_json(event) == {"kind": kind, "at": at_, "window": window, "ticket": ticket,
                                 "data": data if kind != "ticket_evaluated"
                                 else {**data, "bad": True}}
    assert ev.from_json(ev.to_json(event)) == event


def test_old_events_read_by_attribute():
    call = ev.from_row(*OLD_ROWS[0])
    assert isinstance(call, ev.TicketCalled) and (call.label, call.out_of_order) == ("A001", False)
    graded = ev.from_row(*OLD_ROWS[5])
    assert isinstance(graded, ev.TicketEvaluated) and graded.bad is True
    assert graded.real_name is None and graded.tags is None
    default = ev.from_row("ticket_evaluated", "2025-09-30T09:10:00+08:00", 2, "x",
                          {"grade": "不满意", "channel": "system_default"})
    assert default.bad is False  # the hall's own default grade is never a bad review
    unknown = ev.from_row(*OLD_ROWS[-1])
    assert isinstance(unknown, ev.UnknownEvent) and ev.kind_of(unknown) == "window_cover_started"


def test_a_bad_review_logged_before_the_events_were_typed_still_opens_its_case(tmp_path):
    """A controller stopped after writing an evaluation of the old shape (no `bad`, no
    `real_name`) and before its case was opened: the desk's catch-up opens it on restart."""
    h = Hall(tmp_path, at("10:00", DAY))
    try:
        ticket = h.visit(at("10:00", DAY))
        h.desk.stop()  # the desk is down when the grade arrives
        h.ctrl.execute(c.Evaluate(2, "非常不满意", "pad"), "pad:2")
        assert h.desk.list() == []
        # the row as the old controller wrote it, in the store's encoding (the log is
        # append-only: the test rewrites it, in the table under the `events` view)
        old = {"grade": "非常不满意", "channel": "pad", "staff": "s2", "service": "A"}
        template, stored = encode_payload(old)
        db = h.ctrl.store.db.conn
        db.execute("DROP TRIGGER events_append_only_u")
        db.execute("INSERT INTO log_shapes (name, template) VALUES ('ticket_evaluated', ?)", [template])
        db.execute("UPDATE event_log SET kind = last_insert_rowid(), data = ? WHERE id = "
                   "(SELECT id FROM events WHERE ticket_id = ? AND kind = 'ticket_evaluated')",
                   [stored, ticket])
        db.commit()
        assert h.desk.catch_up() == 1
        assert h.case_for(ticket).grade == "非常不满意"
    finally:
        h.close()


def test_a_case_event_keeps_the_shape_the_case_workflow_gave_it():
    from controller.core.callbacks import Assign, apply
    from tests.test_callbacks import RULES, T0, calendar_days, review_cmd

    case, [opened] = apply(None, review_cmd(), T0, "system", calendar_days, RULES)
    _, [assigned] = apply(case, Assign("officer1"), T0, "sup", calendar_days, RULES)
    assert ev.to_json(opened) == {
        "kind": "case_opened", "at": T0.isoformat(), "case": "C1", "case_kind": "bad_review",
        "window": case.window, "ticket": case.ticket_id, "staff": "S01",
        "data": {"kind": "bad_review", "source": "pad", "grade": "不满意",
                 "due": {"callback_due": case.callback_due.isoformat(), "rectify_due": case.rectify_due.isoformat()}}}
    assert ev.to_json(assigned)["data"] == {"from_state": "open", "to_state": "assigned",
                                            "officer": "officer1"}
    for event in (opened, assigned):
        assert ev.from_json(ev.to_json(event)) == event
