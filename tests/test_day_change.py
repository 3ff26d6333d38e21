"""The day change and the clock: a window still serving at midnight is closed cleanly, and a
clock set back never takes the hall to an earlier day (issue 12, items 1 and 2).

The core's stories (the pure engine), then the running controller on a real database with a
hand-moved clock; tests/test_day_change_server.py does the same through `hallctl run`.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest

from controller.backoffice import hall_reports as hr
from controller.runtime.clock import CLOCK_FAULT_SECONDS, HallTime, ManualClock
from controller.core import commands as c
from controller.core.errors import HallError
from controller.core.model import TicketStatus, WindowStatus
from controller.runtime.hallcontroller import HallController
from controller.store.hallstore import HallStore
from tests.halls import MONDAY, at, small_hall
from tests.story import Story

TUESDAY = MONDAY + dt.timedelta(days=1)
MIDNIGHT = at("00:00", TUESDAY)


def served_past_closing(story: Story) -> None:
    """Window 1 calls A001 at 17:20 and its staff go home without pressing finish."""
    story.open(1)
    story.at("16:50")
    story.issue("A")
    story.at("17:20")
    story.call(1)


# -- the core -----------------------------------------------------------------------------


@pytest.mark.parametrize("first", ["tick", "login", "call"])
def test_a_window_left_serving_is_free_the_next_morning(first):
    story = Story(small_hall())
    served_past_closing(story)
    a001 = story.state.current_at(1)
    story.now = at("08:50", TUESDAY)
    # whatever the new day's first command is, the day changes first
    if first == "tick":
        story.do(c.Tick())
    elif first == "login":
        story.do(c.Login(1, "s1"))
    else:
        with pytest.raises(HallError) as e:
            story.do(c.CallNext(1))
        assert e.value.code == "window_closed"  # closed by the day, not a KeyError
    assert a001.status is TicketStatus.FINISHED
    assert a001.finished_at == MIDNIGHT  # its end was never recorded: the end of its day
    finished = [e for e in story.events if e.kind == "ticket_finished" and e.ticket == a001.id]
    assert [e.reason for e in finished] == ["day_end"]
    assert not [e for e in story.events if e.kind in ("ticket_missed", "ticket_cancelled")]
    w = story.state.windows[1]
    assert w.current is None
    if first != "login":
        assert w.status is WindowStatus.CLOSED
        story.do(c.Login(1, "s1"))
    # the next morning at window 1: every button works again
    story.issue("A")
    story.issue("A")
    assert story.call(1) == "A001"
    story.do(c.Recall(1))
    story.do(c.NoShow(1))
    assert story.call(1) == "A002"
    story.do(c.Finish(1))
    story.do(c.Pause(1, "取材料", 5))
    story.do(c.Resume(1))
    story.do(c.Logout(1))


def test_a_visit_ended_by_the_day_gets_no_prompt_the_next_morning():
    story = Story(small_hall())
    story.open(1, 2)
    story.issue("A")
    story.issue("A")
    story.call(1)
    story.at("17:40")
    story.do(c.Finish(1))  # window 1's pad asks about A001 ...
    story.call(2)          # ... and window 2 still serves A002
    assert story.state.windows[1].evaluating is not None
    story.now = at("00:00:05", TUESDAY)
    story.do(c.Tick())
    ended = {e.window: e.reason for e in story.events if e.kind == "evaluation_ended"}
    assert ended == {1: "day_end"}
    day_end = [e for e in story.events if e.at == story.now]
    assert "evaluation_prompted" not in [e.kind for e in day_end]
    assert all(w.evaluating is None for w in story.state.windows.values())
    story.at("09:00")
    story.open(1, 2)
    for window in (1, 2):  # a citizen pressing the pad finds nothing to grade
        with pytest.raises(HallError) as e:
            story.do(c.Evaluate(window, "满意"))
        assert e.value.code == "no_evaluation"


def test_at_midnight_the_visit_ends_at_midnight_not_later():
    story = Story(small_hall())
    served_past_closing(story)
    a001 = story.state.current_at(1)
    story.now = at("00:00:05", TUESDAY)
    story.do(c.Tick())
    assert a001.finished_at == MIDNIGHT


def test_a_clock_set_back_starts_no_earlier_day():
    story = Story(small_hall())
    story.open(1)
    story.issue("A")
    assert not story.engine.needs_new_day(story.state, at("09:00", MONDAY - dt.timedelta(days=7)))
    assert not story.engine.needs_new_day(story.state, at("23:59"))
    assert story.engine.needs_new_day(story.state, at("00:00", TUESDAY))


def test_a_window_pointing_at_an_earlier_days_ticket_is_closed_and_free():
    story = Story(small_hall())
    served_past_closing(story)
    yesterday = story.state.current_at(1)
    # what a controller before this fix left behind: the day begun, window 1 still "serving"
    story.now = at("08:50", TUESDAY)
    story.do(c.Tick())
    story.state.windows[1].current = yesterday.id
    yesterday.status = TicketStatus.CALLED
    out = story.engine.close_stale_windows(story.state, story.now, {yesterday.id: yesterday})
    assert [e.reason for e in out.events if e.kind == "ticket_finished"] == ["day_end"]
    assert yesterday.status is TicketStatus.FINISHED and yesterday.finished_at == MIDNIGHT
    assert story.state.windows[1].current is None
    story.open(1)
    story.issue("A")
    assert story.call(1) == "A001"
    assert story.engine.close_stale_windows(story.state, story.now, {}).events == []


# -- the hall's time ------------------------------------------------------------------------


def test_the_halls_time_never_runs_backwards():
    wall = ManualClock(at("10:00"))
    clock = HallTime(wall)
    assert clock() == at("10:00")
    wall.now = at("09:59:30")  # an NTP correction: waited out, no fault
    assert clock() == at("10:00")
    assert clock.fault is None and clock.take_changes() == []
    wall.now = at("10:00:10")
    assert clock() == at("10:00:10")


def test_a_clock_a_week_behind_is_a_fault_until_it_is_right_again():
    wall = ManualClock(at("10:00"))
    clock = HallTime(wall, floor=at("10:00"))
    wall.now = at("10:00") - dt.timedelta(days=7)
    now = clock()
    assert at("10:00") <= now < at("10:01")
    assert clock.fault is not None and clock.fault.behind_seconds == 7 * 86400
    [fault] = clock.take_changes()
    assert (fault.kind, fault.wall_clock) == ("clock_fault", wall.now)
    assert clock() >= now  # the hall's time goes on from where it was
    wall.now = at("10:05")
    assert clock() == at("10:05")
    assert clock.fault is None
    assert [ch.kind for ch in clock.take_changes()] == ["clock_restored"]


def test_a_step_back_just_past_the_limit_is_a_fault():
    wall = ManualClock(at("10:00"))
    clock = HallTime(wall, floor=at("10:00"))
    wall.now = at("10:00") - dt.timedelta(seconds=CLOCK_FAULT_SECONDS + 1)
    clock()
    assert clock.fault is not None


# -- the running controller ---------------------------------------------------------------


def controller(tmp_path, clock) -> HallController:
    return HallController(small_hall(), HallStore(tmp_path / "hall.sqlite3"), clock)


def events(ctrl: HallController, kind: str) -> list[dict]:
    return [{**r, "data": json.loads(r["data"])} for r in ctrl.store.query(
        "SELECT * FROM events WHERE kind = ? ORDER BY id", [kind])]


def morning(ctrl: HallController, clock: ManualClock) -> list[str]:
    """s1 at window 1 serves A001; A002-A004 wait. The ticket ids."""
    ctrl.execute(c.Login(1, "s1"), "staff:s1")
    ids = [ctrl.execute(c.IssueTicket("A"), "kiosk").ticket.id for _ in range(4)]
    clock.advance(minutes=5)
    ctrl.execute(c.CallNext(1), "staff:s1")
    return ids


def test_a_clock_set_back_a_week_cancels_nothing_and_is_recorded(tmp_path):
    clock = ManualClock(at("10:00"))
    ctrl = controller(tmp_path, clock)
    ids = morning(ctrl, clock)
    clock.now = at("10:06") - dt.timedelta(days=7)
    ctrl.tick()
    # the hall serves on its day: numbers go on, the queue is whole
    a005 = ctrl.execute(c.IssueTicket("A"), "kiosk").ticket
    assert (a005.label, a005.day) == ("A005", MONDAY)
    assert ctrl.execute(c.Finish(1), "staff:s1").ticket.id == ids[0]
    assert ctrl.execute(c.CallNext(1), "staff:s1").ticket.id == ids[1]
    assert ctrl.day() == MONDAY
    assert ctrl.store.query("SELECT COUNT(*) AS n FROM tickets WHERE status = 'cancelled'") == [{"n": 0}]
    status = ctrl.clock_status()
    assert (status["state"], status["day"]) == ("behind", "2026-11-23")
    assert status["behind_seconds"] >= 7 * 86400 - 3600
    [fault] = events(ctrl, "clock_fault")
    assert fault["data"]["day"] == "2026-11-23"
    assert fault["data"]["wall_clock"].startswith("2026-11-16T10:06")
    # the clock is put right: the fault ends, is recorded, and nothing collides
    clock.now = at("10:20")
    ctrl.tick()
    assert ctrl.execute(c.IssueTicket("A"), "kiosk").ticket.label == "A006"
    assert ctrl.clock_status()["state"] == "ok"
    assert len(events(ctrl, "clock_restored")) == 1
    assert [r["name"] for r in ctrl.store.query(
        "SELECT name FROM commands WHERE actor = 'system' AND name LIKE 'clock%' ORDER BY id")
    ] == ["clock_fault", "clock_restored"]


def test_a_restart_with_the_clock_a_week_behind_serves_on_the_stored_day(tmp_path):
    clock = ManualClock(at("10:00"))
    ctrl = controller(tmp_path, clock)
    ids = morning(ctrl, clock)
    ctrl.store.close()
    behind = ManualClock(at("10:30") - dt.timedelta(days=7))
    again = controller(tmp_path, behind)
    # found at the start, before anyone asks
    assert again.clock_status()["state"] == "behind"
    assert len(events(again, "clock_fault")) == 1
    again.tick()
    assert again.state.day == MONDAY
    assert [t.status for t in again.state.tickets.values()] == [
        TicketStatus.CALLED, TicketStatus.WAITING, TicketStatus.WAITING, TicketStatus.WAITING]
    assert again.execute(c.IssueTicket("A"), "kiosk").ticket.id == "20261123-A005"
    assert again.execute(c.CallNext(1), "staff:s1").ticket.id == ids[1]
    again.store.close()
    # back at the right time: no IntegrityError, the numbers go on
    right = ManualClock(at("10:40"))
    third = controller(tmp_path, right)
    assert third.clock_status()["state"] == "ok"
    # the fault the last run recorded is recorded as ended, once
    assert [e["kind"] for e in events(third, "clock_fault") + events(third, "clock_restored")] == [
        "clock_fault", "clock_restored"]
    third.store.close()
    third = controller(tmp_path, right)
    assert len(events(third, "clock_restored")) == 1
    assert third.execute(c.IssueTicket("A"), "kiosk").ticket.label == "A006"
    assert third.store.query("SELECT COUNT(*) AS n FROM tickets WHERE status = 'cancelled'") == [{"n": 0}]


def test_a_restart_in_the_night_closes_the_window_left_serving(tmp_path):
    clock = ManualClock(at("16:50"))
    ctrl = controller(tmp_path, clock)
    ctrl.execute(c.Login(1, "s1"), "staff:s1")
    a001, a002 = (ctrl.execute(c.IssueTicket("A"), "kiosk").ticket.id for _ in range(2))
    clock.now = at("17:25")
    ctrl.execute(c.CallNext(1), "staff:s1")
    clock.now = at("17:40")
    ctrl.execute(c.CallNext(1), "staff:s1")  # A001 finished past closing, A002 called
    ctrl.store.close()  # the controller is killed for the night with window 1 serving

    night = ManualClock(at("02:00", TUESDAY))
    ctrl = controller(tmp_path, night)
    ctrl.tick()  # the first tick of the night changes the day
    by_staff, by_day = events(ctrl, "ticket_finished")
    assert by_staff["ticket_id"] == a001 and "reason" not in by_staff["data"]
    assert (by_day["ticket_id"], by_day["data"]["reason"]) == (a002, "day_end")
    row = ctrl.store.ticket(a002)
    assert (row.status, row.finished_at) == (TicketStatus.FINISHED, MIDNIGHT)
    [closed] = events(ctrl, "window_closed")
    assert (closed["window"], closed["data"]["reason"]) == (1, "day_end")
    night.now = at("08:55", TUESDAY)
    ctrl.execute(c.Login(1, "s1"), "staff:s1")
    ctrl.execute(c.IssueTicket("A"), "kiosk")
    assert ctrl.execute(c.CallNext(1), "staff:s1").ticket.id == "20261124-A001"
    ctrl.execute(c.Finish(1), "staff:s1")
    ctrl.execute(c.Logout(1), "staff:s1")
    # and in the overtime register it is a visit served past closing, not a 过号
    [row] = hr.overtime_register(ctrl.store.db, ctrl.hall, MONDAY, MONDAY)
    assert (row["staff"], row["tickets"], row["ended_by_day_change"]) == (
        "s1", ["A001", "A002"], ["A002"])
    assert row["minutes_past_closing"] == (MIDNIGHT - at("17:30")).total_seconds() / 60
    [figures] = hr.hall_figures(ctrl.store.db, ctrl.hall, MONDAY, MONDAY, "service")
    assert (figures["served"], figures["no_show"], figures["cancelled"]) == (2, 0, 0)


def test_a_database_left_with_a_stale_window_is_repaired_at_start(tmp_path):
    """A database written before this fix: the day begun, window 1 closed but still pointing
    at yesterday's (cancelled) ticket, then logged in again today."""
    clock = ManualClock(at("16:50"))
    ctrl = controller(tmp_path, clock)
    ctrl.execute(c.Login(1, "s1"), "staff:s1")
    yesterday = ctrl.execute(c.IssueTicket("A"), "kiosk").ticket.id
    ctrl.execute(c.CallNext(1), "staff:s1")
    clock.now = at("08:55", TUESDAY)
    ctrl.execute(c.Login(2, "s2"), "staff:s2")  # the day changes
    with ctrl.store.lock:  # as the old day change left it
        ctrl.store.db.execute("UPDATE tickets SET status = 'cancelled' WHERE id = ?", [yesterday])
        ctrl.store.db.execute("UPDATE windows SET current = ?, status = 'open', staff_id = 's1', "
                              "logged_in_at = ? WHERE number = 1",
                              [yesterday, at("08:56", TUESDAY).isoformat()])
    ctrl.store.close()

    clock.now = at("09:00", TUESDAY)
    ctrl = controller(tmp_path, clock)
    assert ctrl.window(1).current is None
    assert ctrl.window(1).status is WindowStatus.OPEN  # s1 logged in today stays in
    [repair] = ctrl.store.query("SELECT args FROM commands WHERE name = 'close_stale_windows'")
    assert yesterday in repair["args"]
    ctrl.execute(c.IssueTicket("A"), "kiosk")
    assert ctrl.execute(c.CallNext(1), "staff:s1").ticket.label == "A001"
    ctrl.execute(c.Finish(1), "staff:s1")
    ctrl.execute(c.Logout(1), "staff:s1")
