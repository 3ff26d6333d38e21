"""A grade nobody can stop: window 3's keypad (bus address 3) and evaluation pad (13) on a
simulated RS-485 counter bus (a real pty), the real counter bus driver, the controller and its
HTTP API. Staff who pause or log out the moment a visit is finished, and staff who finish the
next visit before the citizen has graded the last one."""

from __future__ import annotations

import datetime as dt
import sqlite3
import time

import pytest

from controller.runtime.clock import ManualClock
from drivers.counter_keypad.codec import GRADE, PAD_BLANK, PAD_PROMPT, PAD_THANKS, BusFrame
from tests.halls import CALLING_VOICE, at, calling_hall
from tests.server import running_hall, wait_for

PAD, KEYPAD = 13, 3
DAY = "2026-11-23"


@pytest.fixture
def hall(tmp_path):
    clock = ManualClock(at("09:00"))
    with running_hall(calling_hall(), tmp_path, clock, simulate=True, voice=CALLING_VOICE) as h:
        h.bus = next(iter(h.sim.buses.values()))
        h.staff3 = h.login("s3", 3)
        yield h


def issue(hall, n=1) -> list[str]:
    with hall.client() as api:
        return [api.post("/api/v1/tickets", json={"service": "A"}).json()["id"] for _ in range(n)]


def pad_frames(hall, since: int = 0) -> list[int]:
    """What the pad was told since the `since`-th controller frame on the bus: its functions."""
    return [f for a, f, _ in hall.bus.shown[since:] if a == PAD]


def serve(hall, ticket: str) -> None:
    """Staff at window 3 call the next citizen and finish the visit, on the keypad."""
    hall.bus.press(KEYPAD, "call_next")
    wait_for(lambda: hall.ctrl.window(3).current == ticket)
    shown = len(hall.bus.shown)
    hall.bus.press(KEYPAD, "finish")
    wait_for(lambda: PAD_PROMPT in pad_frames(hall, shown))


def grade_lands(hall, ticket: str) -> tuple[str, str]:
    t = wait_for(lambda: (lambda t: t if t.grade else None)(hall.ctrl.store.ticket(ticket)))
    return t.grade, t.grade_channel


def test_staff_who_pause_at_once_cannot_stop_the_citizens_bad_grade(hall):
    [ticket] = issue(hall)
    serve(hall, ticket)
    prompted = len(hall.bus.shown)
    hall.bus.press(KEYPAD, "pause", reason=1, minutes=10)  # 临时离开, the moment the visit ends
    bar = hall.sim.bars["bar-3"]
    assert bar.wait_until(lambda b: b.showing and b.showing[0] == "暂停服务", 2)  # the sign follows at once
    assert PAD_BLANK not in pad_frames(hall, prompted)  # the pad does not: the citizen is still asked
    assert hall.bus.screens[PAD].function == PAD_PROMPT

    hall.bus.grade(PAD, 5)  # 非常不满意
    assert grade_lands(hall, ticket) == ("非常不满意", "pad")
    # thanks, then blank: the window is paused, the pad switches off like the window's devices
    wait_for(lambda: pad_frames(hall, prompted)[-2:] == [PAD_THANKS, PAD_BLANK], 6)
    with hall.client() as api:
        boss = hall.login("boss", None)
        [row] = [r for r in api.get(f"/api/v1/reports/evaluations?from={DAY}&to={DAY}&by=staff",
                                    headers=boss).json() if r["staff"] == "s3"]
    assert (row["非常不满意"], row["default_graded"], row["prompts_cut_short"]) == (1, 0, 0)


def test_staff_who_log_out_at_once_cannot_stop_the_grade(hall):
    [ticket] = issue(hall)
    serve(hall, ticket)
    prompted = len(hall.bus.shown)
    with hall.client() as api:
        assert api.post("/api/v1/auth/logout", headers=hall.staff3).status_code == 200
    assert hall.sim.bars["bar-3"].wait_until(lambda b: b.showing and "暂停" not in b.showing[0]
                                             and hall.ctrl.window(3).staff_id is None, 2)
    assert PAD_BLANK not in pad_frames(hall, prompted)
    hall.bus.grade(PAD, 4)  # 不满意
    assert grade_lands(hall, ticket) == ("不满意", "pad")
    wait_for(lambda: pad_frames(hall, prompted)[-2:] == [PAD_THANKS, PAD_BLANK], 6)


def test_the_keypads_evaluation_key_asks_again_about_the_last_visit(hall):
    [ticket] = issue(hall)
    serve(hall, ticket)
    hall.clock.advance(seconds=61)  # the citizen was putting documents away: the prompt timed out
    shown = len(hall.bus.shown)
    hall.ctrl.tick()
    wait_for(lambda: PAD_BLANK in pad_frames(hall, shown))

    hall.bus.press(KEYPAD, "pause", reason=2, minutes=5)
    wait_for(lambda: hall.ctrl.window(3).status.value == "paused")
    shown = len(hall.bus.shown)
    hall.bus.press(KEYPAD, "start_evaluation")  # 0x0B: works at a paused window too
    wait_for(lambda: PAD_PROMPT in pad_frames(hall, shown))
    assert hall.bus.screens[PAD].text == "员工3"  # the staff member the visit is graded for
    hall.bus.grade(PAD, 2)  # 满意
    assert grade_lands(hall, ticket) == ("满意", "pad")

    time.sleep(0.4)  # past the bus debounce: a real second press
    shown = len(hall.bus.shown)
    hall.bus.press(KEYPAD, "start_evaluation")  # graded: nothing to ask, and the keypad says so
    wait_for(lambda: any("评价过" in text for a, _, text in hall.bus.shown[shown:] if a == KEYPAD))
    assert PAD_PROMPT not in pad_frames(hall, shown)
    audit = list(hall.ctrl.store.query(
        "SELECT result FROM commands WHERE name = 'start_evaluation' ORDER BY id"))
    assert [r["result"] for r in audit] == ["ok", "already_evaluated"]


def test_a_prompt_cut_short_by_the_next_visit_is_counted_for_the_supervisor(hall):
    first, second = issue(hall, 2)
    serve(hall, first)
    serve(hall, second)  # finished before the first citizen graded: the pad now asks about A002
    assert hall.ctrl.window(3).evaluating == second
    hall.bus.grade(PAD, 1)
    assert grade_lands(hall, second) == ("非常满意", "pad")
    assert hall.ctrl.store.ticket(first).grade is None
    with hall.client() as api:
        boss = hall.login("boss", None)
        rows = api.get(f"/api/v1/reports/evaluations?from={DAY}&to={DAY}&by=staff", headers=boss).json()
        csv = api.get(f"/api/v1/reports/evaluations.csv?from={DAY}&to={DAY}&by=staff", headers=boss)
    [row] = [r for r in rows if r["staff"] == "s3"]
    assert (row["visits"], row["evaluated"], row["prompts_cut_short"]) == (2, 1, 1)
    assert "评价被中断" in csv.content.decode("utf-8-sig").splitlines()[0]  # prompts cut short


# -- a grade acknowledged on the bus is on disk -------------------------------------------------

GRADE_5 = BusFrame(PAD, GRADE, b"\x05")


def grades_on_disk(hall, ticket: str) -> list[str]:
    return [r["data"] for r in hall.ctrl.store.query(
        "SELECT data FROM events WHERE kind = 'ticket_evaluated' AND ticket_id = ?", [ticket])]


def test_a_grade_is_not_acknowledged_while_the_disk_is_full_and_lands_once_from_the_pads_resend(
        hall, monkeypatch):
    hall.bus.retry_after, hall.bus.retries = 0.4, 30  # a pad that hears no echo sends again
    [ticket] = issue(hall)
    serve(hall, ticket)
    store, write = hall.ctrl.store, hall.ctrl.store.write
    disk = {"full": True, "refused": 0}

    def write_on_a_full_disk(rows):
        if any(r.name == "evaluate" and r.result == "ok" for r in rows) and disk["full"]:
            disk["refused"] += 1
            raise sqlite3.OperationalError("database or disk is full")
        return write(rows)

    monkeypatch.setattr(store, "write", write_on_a_full_disk)
    hall.bus.grade(PAD, 5)  # 非常不满意
    wait_for(lambda: disk["refused"] >= 3)  # the first try and two of the pad's own
    assert GRADE_5 not in hall.bus.acks  # the pad never showed 谢谢 for a grade not on disk
    assert hall.bus.sent.count(GRADE_5) >= 3
    assert store.ticket(ticket).grade is None and hall.ctrl.window(3).evaluating == ticket

    disk["full"] = False  # space is freed: the next resend is recorded, then acknowledged
    wait_for(lambda: GRADE_5 in hall.bus.acks, 5)
    assert store.ticket(ticket).grade == "非常不满意"
    time.sleep(1.0)  # the pad has stopped sending: nothing more arrives
    assert len(grades_on_disk(hall, ticket)) == 1
    assert hall.bus.acks.count(GRADE_5) == 1


def test_a_grade_whose_echo_is_lost_is_sent_again_and_recorded_once(hall):
    hall.bus.retry_after, hall.bus.retries = 0.5, 3  # past the driver's 0.3 s debounce
    [ticket] = issue(hall)
    serve(hall, ticket)
    hall.bus.drop_echo = 1  # the line eats the echo of the committed grade
    hall.bus.grade(PAD, 5)
    wait_for(lambda: GRADE_5 in hall.bus.acks, 5)
    assert hall.bus.lost_echoes == 1 and hall.bus.sent.count(GRADE_5) == 2
    assert len(grades_on_disk(hall, ticket)) == 1
    refused = list(hall.ctrl.store.query(
        "SELECT result FROM commands WHERE name = 'evaluate' ORDER BY id"))
    assert [r["result"] for r in refused] == ["ok", "no_evaluation"]  # the repeat, refused and logged


def test_a_prompt_the_night_ended_is_not_counted_as_cut_short(hall):
    """The last visit of the day is finished and the citizen walks off without grading; the
    hall's PC sleeps before the prompt times out. Next morning the day change ends the prompt:
    nobody cut it short, and the supervisor's report must not count it against window 3."""
    [ticket] = issue(hall)
    serve(hall, ticket)
    hall.clock.now = at("08:30", dt.date(2026, 11, 24))
    hall.ctrl.tick()
    ended = list(hall.ctrl.store.query(
        "SELECT json_extract(data, '$.reason') AS reason FROM events "
        "WHERE kind = 'evaluation_ended' AND ticket_id = ?", [ticket]))
    assert [r["reason"] for r in ended] == ["day_end"]
    with hall.client() as api:
        boss = hall.login("boss", None)
        rows = api.get(f"/api/v1/reports/evaluations?from={DAY}&to={DAY}&by=staff", headers=boss).json()
    [row] = [r for r in rows if r["staff"] == "s3"]
    assert (row["visits"], row["evaluated"], row["prompts_cut_short"]) == (1, 0, 0)
