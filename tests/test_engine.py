"""The engine's rules beyond routing: refusals, pause and cover, the cut-off, invariants."""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.core import commands as c
from controller.core.errors import HallError
from controller.core.model import TicketStatus, WindowStatus
from tests.halls import MONDAY, small_hall
from tests.story import Story


def refused(story: Story, cmd: c.Command) -> str:
    """Apply `cmd`, expect a refusal, and check that it changed nothing."""
    before = copy.deepcopy(story.state)
    with pytest.raises(HallError) as e:
        story.do(cmd)
    after = story.state
    assert after.tickets == before.tickets
    assert after.windows == before.windows
    assert after.last_number == before.last_number
    assert {p: dataclasses.astuple(q) for p, q in after.queues.services.items()} == \
           {p: dataclasses.astuple(q) for p, q in before.queues.services.items()}
    return e.value.code


@pytest.fixture
def story() -> Story:
    s = Story(small_hall())
    s.open(1, 2)
    return s


CUTOFF = [  # (time, day offset from Monday, expected refusal or None)
    ("08:29", 0, "before_opening"),
    ("08:30", 0, None),  # tickets open 30 minutes before the doors
    ("11:29", 0, None),
    ("11:30", 0, "before_opening"),  # the morning cut-off, 30 minutes before 12:00
    ("12:30", 0, "before_opening"),  # lunch: the afternoon tickets start at 13:00
    ("13:00", 0, None),
    ("16:59", 0, None),
    ("17:00", 0, "after_cutoff"),
    ("10:00", 5, "hall_closed"),  # Saturday
]


@pytest.mark.parametrize("hhmm,offset,expected", CUTOFF)
def test_ticket_cutoff(hhmm, offset, expected):
    story = Story(small_hall(), start=hhmm, day=MONDAY + dt.timedelta(days=offset))
    if expected is None:
        assert story.issue("A") == "A001"
    else:
        assert refused(story, c.IssueTicket("A")) == expected


@pytest.mark.parametrize("hhmm,says", [("17:10", "17:00 截止"), ("11:45", "13:00 起取号"),
                                       ("08:00", "08:30 起取号")])
def test_refusal_says_when_tickets_can_be_taken(story, hhmm, says):
    story.at(hhmm)
    with pytest.raises(HallError) as e:
        story.do(c.IssueTicket("A"))
    assert says in e.value.message


REFUSALS = [
    ("unknown service", c.IssueTicket("Z"), "unknown_service"),
    ("unknown priority class", c.IssueTicket("A", priority="vip"), "invalid_priority"),
    ("unknown channel", c.IssueTicket("A", channel="fax"), "invalid_channel"),
    ("appointment without a slot", c.IssueTicket("A", channel="appointment"), "invalid_appointment"),
    ("unknown window", c.CallNext(99), "unknown_window"),
    ("closed window calls", c.CallNext(3), "window_closed"),
    ("recall with nobody called", c.Recall(1), "no_current_ticket"),
    ("finish with nobody called", c.Finish(1), "no_current_ticket"),
    ("no-show with nobody called", c.NoShow(1), "no_current_ticket"),
    ("pause without a reason", c.Pause(1, "  ", 5), "invalid_reason"),
    ("pause for too long", c.Pause(1, "开会", 500), "invalid_minutes"),
    ("pause for no time", c.Pause(1, "开会", 0), "invalid_minutes"),
    ("resume when not paused", c.Resume(1), "window_not_paused"),
    ("log out a closed window", c.Logout(3), "window_closed"),
    ("log in somewhere not one's post", c.Login(3, "s1"), "already_logged_in"),
    ("take a window someone holds", c.Login(1, "s2"), "window_occupied"),
    ("unknown staff", c.Login(3, "nobody"), "unknown_staff"),
]


@pytest.mark.parametrize("name,cmd,code", REFUSALS, ids=[r[0] for r in REFUSALS])
def test_refusals_change_nothing(story, name, cmd, code):
    story.issue("A")
    assert refused(story, cmd) == code


def test_not_at_post():
    story = Story(small_hall({1: ("A",), 2: ("A",)}))
    hall = story.engine.hall
    s1 = dataclasses.replace(hall.staff["s1"], b_post=())
    story.engine.hall = dataclasses.replace(hall, staff={**hall.staff, "s1": s1})
    assert refused(story, c.Login(2, "s1")) == "not_at_post"


def test_transfer_refusals(story):
    story.issue("A")
    story.call(1)
    assert refused(story, c.Transfer(1, "A")) == "same_service"
    assert refused(story, c.Transfer(1, "Q")) == "unknown_service"
    assert refused(story, c.Pause(1, "取材料", 5)) == "window_busy"
    assert refused(story, c.Logout(1)) == "window_busy"


def test_call_next_finishes_the_current_ticket(story):
    story.issue("A"), story.issue("A")
    story.call(1)
    story.later(minutes=6)
    assert story.call(1) == "A002"
    assert story.label_status("A001") == "finished"
    assert story.state.find_label("A001").finished_at == story.now


def test_recall_is_counted(story):
    story.issue("A")
    story.call(1)
    story.do(c.Recall(1))
    out = story.do(c.Recall(1))
    assert out.ticket.recalls == 2
    assert [e.kind for e in out.events] == ["ticket_recalled"]


def test_pause_limit_alerts_once_and_resume_reports_overrun(story):
    story.do(c.Pause(1, "去后台复印", 10))
    assert story.state.windows[1].status is WindowStatus.PAUSED
    story.later(minutes=15)
    assert story.do(c.Tick()).events == []  # exactly at the limit: not over it yet
    story.later(seconds=1)
    alerts = story.do(c.Tick()).events
    assert [(e.kind, e.window) for e in alerts] == [("pause_over_limit", 1)]
    assert story.do(c.Tick()).events == []  # once per pause
    resumed = story.do(c.Resume(1)).events[0]
    assert resumed.over_limit is True


def test_b_post_cover_and_supervisor_cover():
    story = Story(small_hall())
    story.do(c.Login(2, "s1"))  # s1's B post is every other window
    assert story.state.windows[2].post == "B"
    story.do(c.Login(3, "boss"))
    assert (story.state.windows[3].staff_id, story.state.windows[3].post) == ("boss", "B")
    story.do(c.Login(1, "s2"))
    assert story.state.windows[1].post == "B"


def test_logging_in_again_changes_nothing(story):
    assert story.do(c.Login(1, "s1")).events == []


def test_logout_closes_the_window(story):
    story.do(c.Logout(1))
    assert story.state.windows[1] == story.state.windows[1].__class__(1)
    assert refused(story, c.CallNext(1)) == "window_closed"


def test_estimate_grows_with_the_queue(story):
    etas = [story.do(c.IssueTicket("A")).estimate.p50 for _ in range(6)]
    assert etas == sorted(etas) and etas[-1] > etas[0]


# -- invariants under any sequence of commands -------------------------------

OPS = st.lists(st.tuples(
    st.sampled_from(["issue", "call", "finish", "noshow", "transfer", "pause", "resume",
                     "recall", "login", "logout", "later"]),
    st.integers(1, 3), st.sampled_from("ABC")), max_size=60)


@settings(max_examples=150, deadline=None)
@given(OPS)
def test_invariants_hold_for_any_command_sequence(ops):
    story = Story(small_hall())
    story.open(1, 2, 3)
    for op, window, service in ops:
        cmd = {"issue": c.IssueTicket(service), "call": c.CallNext(window),
               "finish": c.Finish(window), "noshow": c.NoShow(window),
               "transfer": c.Transfer(window, service), "pause": c.Pause(window, "离开", 5),
               "resume": c.Resume(window), "recall": c.Recall(window),
               "login": c.Login(window, f"s{window}"), "logout": c.Logout(window)}.get(op)
        if cmd is None:
            story.later(minutes=3)
            continue
        try:
            story.do(cmd)
        except HallError:
            pass
        check_invariants(story)


def check_invariants(story: Story) -> None:
    state = story.state
    current = [w.current for w in state.windows.values() if w.current]
    assert len(current) == len(set(current)), "a ticket is current at two windows"
    for w in state.windows.values():
        if w.current:
            t = state.tickets[w.current]
            assert t.status is TicketStatus.CALLED and t.window == w.number
        if w.status is WindowStatus.CLOSED:
            assert w.current is None and w.staff_id is None
    called = {t.id for t in state.tickets.values() if t.status is TicketStatus.CALLED}
    assert called == set(current)
    queued = [k[2] for q in state.queues.services.values()
              for lane in (q.appointments, q.priority, q.regular) for k in lane]
    waiting = {t.id for t in state.tickets.values() if t.status is TicketStatus.WAITING}
    assert sorted(queued) == sorted(waiting), "queues and waiting tickets disagree"
    for prefix in "ABC":
        numbers = sorted(t.number for t in state.tickets.values() if t.prefix == prefix)
        assert numbers == list(range(1, len(numbers) + 1))


# -- the kiosk path --------------------------------------------------------------

ELDER = "11010119500307097X"


def test_one_waiting_ticket_per_person_per_service(story):
    story.issue("A", id_number=ELDER, name="张三")
    with pytest.raises(HallError) as e:
        story.issue("A", id_number=ELDER)
    assert e.value.code == "already_waiting" and "A001" in e.value.message
    assert story.issue("B", id_number=ELDER) == "B001"  # another service is fine
    story.call(1)  # once called, they may queue again
    assert story.issue("A", id_number=ELDER) == "A002"


def test_no_hoarding_limit_when_set_to_zero():
    story = Story(small_hall(waiting_tickets_per_person=0))
    story.issue("A", id_number=ELDER)
    assert story.issue("A", id_number=ELDER) == "A002"


def test_one_person_takes_at_most_the_daily_number_of_tickets():
    story = Story(small_hall(tickets_per_person_per_day=3))
    story.open(1)
    for service in ("A", "B", "C"):
        story.issue(service, id_number=ELDER)
    story.call(1)  # A001 is no longer waiting, yet it was taken today
    with pytest.raises(HallError) as e:
        story.issue("A", id_number=ELDER)
    assert e.value.code == "daily_ticket_limit" and "3 次" in e.value.message
    assert story.issue("A") == "A002"  # an anonymous button press is not a person's ticket
    story.later(days=1)
    story.at("09:00")
    assert story.issue("A", id_number=ELDER) == "A001"  # a new day


def test_a_waiting_ticket_can_be_cancelled_and_leaves_the_queue(story):
    story.issue("A"), story.issue("A")
    t = story.state.find_label("A001")
    out = story.do(c.CancelTicket(t.id, "not_printed"))
    assert out.events[0].kind == "ticket_cancelled" and out.events[0].reason == "not_printed"
    assert story.call(1) == "A002"
    assert refused(story, c.CancelTicket(t.id, "again")) == "ticket_not_waiting"
    assert refused(story, c.CancelTicket("nope", "x")) == "unknown_ticket"


def test_device_health_is_an_event_only_when_it_changes(story):
    assert [e.kind for e in story.do(c.ReportDevice("printer-1", "fault", "缺纸")).events] == [
        "device_health"]
    assert story.do(c.ReportDevice("printer-1", "fault", "缺纸")).events == []
    assert story.do(c.ReportDevice("printer-1", "online")).events[0].state == "online"
    assert story.state.devices["printer-1"] == ("online", "")


def test_the_ticket_keeps_what_it_promised(story):
    for _ in range(3):
        story.issue("A")
    expected = story.engine.estimate(story.state, "A", 3, story.now)  # three ahead, windows as now
    t = story.do(c.IssueTicket("A")).ticket
    assert (t.ahead_at_issue, t.eta_p10, t.eta_p50, t.eta_p90) == (
        3, expected.p10, expected.p50, expected.p90)
    assert 0 < t.eta_p10 < t.eta_p50 < t.eta_p90


@pytest.mark.parametrize("hhmm,queue,warned", [
    ("16:00", 0, False),   # well before the cut-off
    ("16:45", 0, False),   # near closing, but no wait
    ("16:45", 40, True),   # near closing and the wait runs past 17:30
    ("11:00", 40, True),   # the morning session ends at 12:00
    ("10:00", 40, False),  # long queue, but far from closing: no warning
])
def test_near_closing_warning(hhmm, queue, warned):
    story = Story(small_hall(waiting_tickets_per_person=0), start="09:00")
    story.open(1)
    story.at(hhmm)
    for _ in range(queue):
        story.issue("A")
    out = story.do(c.IssueTicket("A"))
    assert (out.warning is not None) == warned
    if warned:
        assert "12:00" in out.warning or "17:30" in out.warning


# -- calling a number out of order; tidal windows ---------------------------------------------

def test_a_returning_citizen_is_called_out_of_order_and_it_shows(story):
    for _ in range(3):
        story.issue("A")
    story.call(1)
    story.do(c.NoShow(1))  # A001 requeued at the back
    story.call(1)          # A002
    out = story.do(c.CallNumber(1, "a003", "过号返回"))
    assert out.ticket.label == "A003" and out.events[-1].out_of_order is True
    assert story.label_status("A002") == "finished"  # the current one was finished first
    assert story.call(1) == "A001"
    assert refused(story, c.CallNumber(1, "A002", "过号返回")) == "not_callable"
    assert refused(story, c.CallNumber(1, "A999", "过号返回")) == "unknown_ticket"
    story.issue("C")
    assert refused(story, c.CallNumber(1, "C001", "过号返回")) == "not_served_here"


def test_a_missed_ticket_can_be_called_again_when_its_holder_returns():
    story = Story(small_hall(no_show="drop"))
    story.open(1)
    story.issue("A")
    story.call(1)
    story.do(c.NoShow(1))
    assert story.label_status("A001") == "no_show"
    assert story.do(c.CallNumber(1, "A001", "过号返回")).ticket.status.value == "called"


def tidal_story(**rules) -> Story:
    hall = small_hall({1: ("A",), 2: ("A", "B")}, tidal_open_waiting=5, **rules)
    tidal = dataclasses.replace(hall.windows[2], tidal=True)
    story = Story(dataclasses.replace(hall, windows={**hall.windows, 2: tidal}))
    story.open(1)
    return story


def test_a_tidal_window_is_proposed_when_the_queue_grows_and_again_for_closing():
    story = tidal_story(tidal_open_wait_minutes=600)
    for _ in range(4):
        story.issue("A")
    assert story.do(c.Tick()).events == []
    story.issue("A")
    [proposal] = story.do(c.Tick()).events
    assert (proposal.kind, proposal.window, proposal.service, proposal.waiting) == (
        "tidal_open_proposed", 2, "A", 5)
    assert story.do(c.Tick()).events == []  # proposed once
    story.open(2)
    while story.call(2):
        pass
    story.do(c.Finish(1)) if story.state.windows[1].current else None
    [closing] = story.do(c.Tick()).events
    assert (closing.kind, closing.window) == ("tidal_close_proposed", 2)


def test_a_long_estimated_wait_also_proposes_the_tidal_window():
    story = tidal_story(tidal_open_wait_minutes=20)
    for _ in range(3):  # few people, but 10-minute services at one window
        story.issue("A")
    kinds = [e.kind for e in story.do(c.Tick()).events]
    assert kinds == ["tidal_open_proposed"]
