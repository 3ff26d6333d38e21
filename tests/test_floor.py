"""The floor as the supervisor sees it (issue 12 items 5-7), on the pure engine: the first
tickets of a session, B-post cover taking over a paused window (顶岗补位制), the alerts about
who is at the windows, and a window idle while people wait (先外后内)."""

from __future__ import annotations

import dataclasses

import pytest

from controller.core import commands as c
from controller.core.events import payload
from controller.core.hall import Staff, StaffRole
from controller.core.model import WindowStatus
from tests.halls import PIN_HASH, small_hall
from tests.story import Story
from tests.test_engine import refused


def floor_hall(**rules):
    """Window 1 serves A, 2 B then A, 3 C, 4 (tidal) A. 李 is window 1's A post and 王 its
    B post; 王's A post is window 2, which 李 covers; 赵 has window 3 and nobody covers it;
    钱 has the tidal window 4; 主任 is the supervisor."""
    hall = small_hall({1: ("A",), 2: ("B", "A"), 3: ("C",), 4: ("A",)}, **rules)
    staff = {
        "li": Staff("li", "李娜", StaffRole.STAFF, PIN_HASH, a_post=(1,), b_post=(2,), demo=True),
        "wang": Staff("wang", "王强", StaffRole.STAFF, PIN_HASH, a_post=(2,), b_post=(1,), demo=True),
        "zhao": Staff("zhao", "赵敏", StaffRole.STAFF, PIN_HASH, a_post=(3,), demo=True),
        "qian": Staff("qian", "钱多", StaffRole.STAFF, PIN_HASH, a_post=(4,), b_post=(1,), demo=True),
        "boss": Staff("boss", "主任", StaffRole.SUPERVISOR, PIN_HASH, demo=True),
    }
    windows = {**hall.windows, 4: dataclasses.replace(hall.windows[4], tidal=True)}
    return dataclasses.replace(hall, staff=staff, windows=windows)


def kinds(events, *wanted):
    return [(e.kind, e.window) for e in events if e.kind in wanted]


ALERTS = ("window_uncovered", "posts_away", "window_idle", "pause_over_limit")


def tick(story: Story) -> list:
    return kinds(story.do(c.Tick()).events, *ALERTS)


# -- 5. the first tickets of a session ---------------------------------------------------------


def test_at_nine_before_staff_log_in_a_ticket_waits_for_the_morning_not_the_afternoon():
    story = Story(floor_hall(), start="09:00")
    out = story.do(c.IssueTicket("C"))  # 赵 is due at window 3 but not logged in yet
    assert out.people_ahead == 0
    assert out.estimate.p90 < 15, out.estimate  # it was 270 minutes: the 13:30 session's start
    story.later(minutes=5)
    second = story.do(c.IssueTicket("C")).estimate
    assert second.p50 > out.estimate.p50 and second.p90 < 30  # one ahead: a visit, not an afternoon


def test_before_the_doors_open_the_minutes_to_opening_are_added():
    story = Story(floor_hall(), start="08:40")
    eta = story.do(c.IssueTicket("C")).estimate
    assert 20 <= eta.p10 and eta.p90 <= 20 + 15


def test_staff_who_have_not_come_by_the_grace_are_no_longer_counted_on():
    """`staff_expected_minutes` (15): at 09:20 with nobody at window 3 all morning, the honest
    answer is the afternoon session, and the supervisor already has the alert."""
    story = Story(floor_hall(), start="09:14")
    assert story.do(c.IssueTicket("C")).estimate.p90 < 15
    story.at("09:20")
    late = story.do(c.IssueTicket("C")).estimate
    assert late.p10 >= (13 * 60 + 30) - (9 * 60 + 20)


def test_a_window_nobody_is_posted_to_is_not_expected():
    hall = floor_hall()
    hall = dataclasses.replace(hall, staff={k: s for k, s in hall.staff.items() if k != "zhao"})
    story = Story(hall, start="09:05")
    assert story.do(c.IssueTicket("C")).estimate.p10 >= 4 * 60  # told the afternoon


def test_the_estimate_before_login_raises_no_tidal_proposal():
    story = Story(floor_hall(tidal_open_wait_minutes=30), start="09:00")
    story.do(c.IssueTicket("A"))  # nobody at window 1 yet; the tidal window 4 serves A too
    assert [e.kind for e in story.do(c.Tick()).events if e.kind.startswith("tidal")] == []


# -- 6. AB cover: B takes over a paused A window ------------------------------------------------


@pytest.fixture
def morning() -> Story:
    story = Story(floor_hall(), start="08:50")
    story.do(c.Tick())
    story.at("09:00")
    for window, staff in ((1, "li"), (2, "wang"), (3, "zhao")):
        story.do(c.Login(window, staff))
    return story


def test_b_takes_over_a_paused_a_window_and_the_records_go_to_b(morning):
    story = morning
    story.do(c.Logout(2))  # 王 leaves his own window to cover
    story.do(c.Pause(1, "去库房取档案", 10))
    story.later(minutes=16)
    # 李 paused past the limit, and her B posts are away too (王 on his way, 钱 not in)
    assert tick(story) == [("pause_over_limit", 1), ("posts_away", 1), ("window_uncovered", 2),
                           ("posts_away", 2)]
    out = story.do(c.Login(1, "wang"))
    assert [(e.kind, e.staff) for e in out.events] == [
        ("window_resumed", "li"), ("window_closed", "li"), ("window_opened", "wang")]
    resumed, closed, opened = out.events
    assert resumed.over_limit is True and resumed.cover == "wang"
    assert resumed.paused_seconds == 16 * 60
    assert closed.reason == "cover" and closed.seconds == 16 * 60
    assert payload(opened) == {"staff": "wang", "post": "B", "cover_for": "li"}
    w = story.state.windows[1]
    assert (w.status, w.staff_id, w.post, w.paused_at) == (WindowStatus.OPEN, "wang", "B", None)

    label = story.issue("A")
    assert story.call(1) == label
    assert story.state.find_label(label).staff_id == "wang"
    # 李 comes back: the window is 王's now, he logs out before she logs in again
    assert refused(story, c.Login(1, "li")) == "window_occupied"
    assert refused(story, c.Resume(1)) == "window_not_paused"
    story.do(c.Login(2, "li"))  # she covers his window meanwhile
    story.later(minutes=1)
    assert tick(story) == []


def test_b_cannot_take_over_a_window_that_is_serving(morning):
    assert refused(morning, c.Login(1, "qian")) == "window_occupied"


def test_b_still_logged_in_elsewhere_must_log_out_first(morning):
    morning.do(c.Pause(1, "接电话", 5))
    assert refused(morning, c.Login(1, "wang")) == "already_logged_in"  # 王 is at window 2
    assert morning.state.windows[1].status is WindowStatus.PAUSED


def test_only_a_registered_b_post_or_the_supervisor_takes_over(morning):
    morning.do(c.Pause(1, "接电话", 5))
    morning.do(c.Logout(3))
    assert refused(morning, c.Login(1, "zhao")) == "not_at_post"  # 赵 is nobody's B post
    out = morning.do(c.Login(1, "boss"))  # the supervisor may cover any window in a pinch
    assert [e.kind for e in out.events] == ["window_resumed", "window_closed", "window_opened"]


def test_a_b_post_paused_at_cover_is_not_taken_over_by_another_b(morning):
    story = morning
    story.do(c.Logout(1))
    story.do(c.Logout(2))
    story.do(c.Login(1, "wang"))
    story.do(c.Pause(1, "接电话", 5))
    assert refused(story, c.Login(1, "qian")) == "window_occupied"


# -- 6. alerts: an A-post window without cover, A and B both away -------------------------------


def test_a_post_window_left_closed_in_hours_past_the_limit_alerts_once(morning):
    story = morning
    story.at("10:00")
    story.do(c.Logout(3))  # 赵 goes to a meeting; nobody covers window 3
    story.at("10:15")
    assert tick(story) == []  # at the limit, not past it
    story.later(seconds=5)
    [alert] = story.do(c.Tick()).events
    assert (alert.kind, alert.window, alert.staff, alert.names) == (
        "window_uncovered", 3, ["zhao"], ["赵敏"])
    assert alert.closed_seconds == 15 * 60 + 5
    story.later(minutes=5)
    assert tick(story) == []  # once
    story.do(c.Login(3, "zhao"))
    story.do(c.Logout(3))
    story.later(minutes=16)
    assert tick(story) == [("window_uncovered", 3)]  # a new absence is a new alert


def test_an_a_post_who_never_comes_is_reported_after_the_limit_from_the_session_start():
    story = Story(floor_hall(), start="08:30")
    assert tick(story) == []  # before opening nobody is missing
    story.do(c.Login(1, "li"))
    story.do(c.Login(2, "wang"))
    story.at("09:15")
    assert tick(story) == []
    story.at("09:15:30")
    # 赵 never came; the tidal window 4 is closed by design and is no alert
    assert tick(story) == [("window_uncovered", 3)]


def test_windows_closed_after_hours_and_at_lunch_raise_nothing(morning):
    story = morning
    story.at("11:59")
    assert tick(story) == []
    for n in (1, 2, 3):
        story.do(c.Logout(n))
    story.at("13:00")
    assert tick(story) == []  # lunch
    story.at("13:44")
    assert tick(story) == []
    story.at("13:45:30")  # the afternoon session is past the limit without anyone
    assert sorted(tick(story)) == [("posts_away", 1), ("posts_away", 2), ("window_uncovered", 1),
                                   ("window_uncovered", 2), ("window_uncovered", 3)]


def test_a_covered_window_raises_no_alert(morning):
    story = morning
    story.do(c.Pause(1, "去库房取档案", 30))
    story.do(c.Logout(2))
    story.do(c.Login(1, "wang"))  # 王 covers 李's window; his own window 2 is closed
    story.do(c.Login(2, "li"))  # and 李, back, covers his
    story.later(minutes=30)
    assert tick(story) == []


def test_a_and_b_both_away_is_an_alert_at_once(morning):
    story = morning
    story.at("10:00")
    story.do(c.Pause(2, "接待来访", 10))  # 王 (window 1's B post) is away
    assert tick(story) == []
    story.do(c.Pause(1, "去洗手间", 5))  # and now 李, window 1's A post, too
    story.later(seconds=5)
    alerts = story.do(c.Tick()).events
    away = [e for e in alerts if e.kind == "posts_away"]
    # window 1: 李 and her B posts 王 and 钱 all away; window 2: 王 and his B post 李
    assert [(e.window, e.staff, e.b_posts) for e in away] == [
        (1, ["li"], ["wang", "qian"]), (2, ["wang"], ["li"])]
    assert tick(story) == []
    story.do(c.Resume(2))
    assert tick(story) == []
    story.do(c.Pause(2, "接待来访", 10))
    assert sorted(tick(story)) == [("posts_away", 1), ("posts_away", 2)]


# -- 7. 先外后内: an open window idle while people wait -----------------------------------------


def test_an_open_window_idle_while_its_queue_waits_alerts_after_a_minute(morning):
    story = morning
    story.at("09:30")
    story.issue("C")
    assert tick(story) == []
    story.later(seconds=60)
    assert tick(story) == []  # a minute is allowed: staff finish a note
    story.later(seconds=5)
    [alert] = story.do(c.Tick()).events
    assert (alert.kind, alert.window, alert.staff, alert.service,
            alert.waiting) == ("window_idle", 3, "zhao", "C", 1)
    assert alert.idle_seconds == 65
    story.later(seconds=30)
    assert tick(story) == []  # once
    story.call(3)
    assert tick(story) == []
    story.do(c.Finish(3))
    story.issue("C")
    story.later(seconds=61)
    assert tick(story) == [("window_idle", 3)]


def test_idle_is_counted_from_the_last_visit_or_the_ticket_whichever_is_later(morning):
    story = morning
    story.at("09:30")
    story.issue("C")
    story.call(3)
    story.do(c.Tick())
    story.later(minutes=8)
    story.do(c.Finish(3))  # the visit ends; the next citizen came in meanwhile
    story.issue("C")
    story.later(seconds=50)
    assert tick(story) == []
    story.later(seconds=15)
    assert tick(story) == [("window_idle", 3)]


def test_a_busy_a_paused_and_an_empty_window_are_not_idle(morning):
    story = morning
    story.at("09:30")
    story.issue("A")
    story.call(1)  # 李 serves; window 2 (B then A) is free, but A's only ticket is called
    story.issue("C")
    story.do(c.Pause(3, "接电话", 5))
    story.later(minutes=3)
    assert tick(story) == []


def test_the_idle_limit_is_the_halls_setting():
    story = Story(floor_hall(idle_alert_seconds=300), start="09:00")
    story.do(c.Login(3, "zhao"))
    story.issue("C")
    story.later(minutes=4)
    assert tick(story) == []
    story.later(minutes=2)
    assert tick(story) == [("window_idle", 3)]


def test_an_appointment_not_yet_due_leaves_the_window_free():
    story = Story(floor_hall(), start="09:00")
    story.do(c.Login(3, "zhao"))
    story.do(c.IssueTicket("C", "appointment", appointment_at=story.now.replace(hour=11)))
    story.later(minutes=5)
    assert tick(story) == []


def test_after_a_restart_the_alert_clocks_start_again_late_never_early(morning):
    """The clocks live in memory: a controller restarted at 10:10 with window 3 closed since
    10:00 first sees it closed at its first tick, and alerts 15 minutes after that."""
    story = morning
    story.at("10:00")
    story.do(c.Logout(3))
    story.at("10:10")
    state = story.state
    story.state = story.engine.restore(state.day, list(state.tickets.values()),
                                       list(state.windows.values()))
    assert tick(story) == []
    story.at("10:15:30")
    assert tick(story) == []  # 15½ minutes closed, but only 5½ seen
    story.at("10:25:30")
    assert tick(story) == [("window_uncovered", 3)]


def test_staff_in_early_have_from_the_opening_to_call_the_tickets_taken_before_it():
    story = Story(floor_hall(), start="08:40")
    story.issue("C")
    story.at("08:50")
    story.do(c.Login(3, "zhao"))  # 10 minutes early (000 文明服务制 第五条(一)1), checking devices
    story.do(c.Tick())
    story.at("09:00:30")
    assert tick(story) == []
    story.at("09:01:05")
    [alert] = story.do(c.Tick()).events
    assert (alert.kind, alert.window, alert.idle_seconds) == ("window_idle", 3, 65)


def test_a_b_post_taking_over_leaves_the_last_citizen_the_prompt(morning):
    """李 finishes a visit and pauses at once; 王 covers her window while the citizen is still
    at the pad: the prompt stays (nobody may influence the grade), and the grade is 李's."""
    story = morning
    story.do(c.Logout(2))
    label = story.issue("A")
    story.call(1)
    story.do(c.Finish(1))
    story.do(c.Pause(1, "去库房取档案", 10))
    story.later(seconds=20)
    out = story.do(c.Login(1, "wang"))
    assert "evaluation_ended" not in [e.kind for e in out.events]
    graded = story.do(c.Evaluate(1, "非常满意"))
    assert (graded.ticket.label, graded.ticket.grade, graded.ticket.staff_id) == (
        label, "非常满意", "li")
