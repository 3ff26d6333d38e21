"""好差评 on the pad: one grade per visit, a prompt that ends, a default grade that is the system's."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from controller.runtime.clock import ManualClock
from controller.cli import open_hall
from controller.core import commands as c
from controller.core.errors import HallError
from tests.halls import at, small_hall
from tests.story import Story


@pytest.fixture
def story() -> Story:
    s = Story(small_hall())
    s.open(1, 2)
    return s


def kinds(out) -> list[str]:
    return [e.kind for e in out.events]


def test_finishing_prompts_the_pad_and_one_grade_is_taken(story):
    story.issue("A")
    story.call(1)
    out = story.do(c.Finish(1))
    assert kinds(out) == ["ticket_finished", "evaluation_prompted"]
    graded = story.do(c.Evaluate(1, "非常满意"))
    assert kinds(graded) == ["ticket_evaluated"]
    assert (graded.ticket.grade, graded.ticket.grade_channel) == ("非常满意", "pad")
    with pytest.raises(HallError) as e:  # a second press finds no prompt: ignored, and logged
        story.do(c.Evaluate(1, "非常不满意"))
    assert e.value.code == "no_evaluation"
    assert story.state.find_label("A001").grade == "非常满意"


def test_staff_may_start_the_pad_at_reception(story):
    story.issue("A")
    story.call(1)
    assert kinds(story.do(c.StartEvaluation(1))) == ["evaluation_prompted"]
    story.do(c.Evaluate(1, "满意"))
    assert kinds(story.do(c.Finish(1))) == ["ticket_finished"]  # graded already: no second prompt
    with pytest.raises(HallError) as e:  # the window's last visit is graded: nothing to ask
        story.do(c.StartEvaluation(1))
    assert e.value.code == "already_evaluated"


def test_a_prompt_ends_after_the_timeout_and_is_not_repeated(story):
    story.issue("A")
    story.call(1)
    story.do(c.Finish(1))
    story.later(seconds=61)
    assert [(e.kind, e.reason) for e in story.do(c.Tick()).events] == [
        ("evaluation_ended", "timeout")]
    assert story.do(c.Tick()).events == []
    with pytest.raises(HallError):
        story.do(c.Evaluate(1, "满意"))


def test_pausing_right_after_finishing_leaves_the_citizen_the_prompt(story):
    story.issue("A")
    story.call(1)
    story.do(c.Finish(1))
    out = story.do(c.Pause(1, "取材料", 5))
    assert kinds(out) == ["window_paused"]  # no evaluation_ended: the prompt is not staff's to end
    graded = story.do(c.Evaluate(1, "非常不满意"))
    assert (graded.ticket.label, graded.ticket.grade) == ("A001", "非常不满意")


def test_logging_out_right_after_finishing_leaves_the_citizen_the_prompt(story):
    story.issue("A")
    story.call(1)
    story.do(c.Finish(1))
    assert kinds(story.do(c.Logout(1))) == ["window_closed"]
    assert story.do(c.Evaluate(1, "不满意")).ticket.grade == "不满意"
    story.do(c.Login(1, "s1"))  # the window opens again as usual
    assert story.state.windows[1].evaluating is None


def test_a_prompt_left_at_a_paused_window_still_times_out(story):
    story.issue("A")
    story.call(1)
    story.do(c.Finish(1))
    story.do(c.Pause(1, "就餐", 30))
    story.later(seconds=61)
    assert [(e.kind, e.reason) for e in story.do(c.Tick()).events] == [
        ("evaluation_ended", "timeout")]


def test_the_next_visit_finishing_cuts_the_last_prompt_short(story):
    story.issue("A")
    story.issue("A")
    story.call(1)
    story.do(c.Finish(1))
    story.call(1)
    out = story.do(c.Finish(1))
    assert [(e.kind, getattr(e, "reason", None)) for e in out.events] == [
        ("ticket_finished", None), ("evaluation_ended", "superseded"), ("evaluation_prompted", None)]
    assert out.events[1].ticket == story.state.find_label("A001").id


def test_the_keypad_restarts_the_prompt_for_the_last_finished_ungraded_visit(story):
    story.issue("A")
    story.call(1)
    story.do(c.Finish(1))
    story.later(seconds=61)
    story.do(c.Tick())  # the citizen was still reading the receipt: the prompt timed out
    story.do(c.Pause(1, "取材料", 5))
    out = story.do(c.StartEvaluation(1))  # staff start it again, paused or not
    assert kinds(out) == ["evaluation_prompted"] and out.events[0].label == "A001"
    story.later(seconds=30)
    story.do(c.Tick())  # the timeout counts from the restart
    assert story.do(c.Evaluate(1, "满意")).ticket.label == "A001"
    with pytest.raises(HallError) as e:
        story.do(c.StartEvaluation(1))
    assert e.value.code == "already_evaluated"


def test_the_keypad_has_nothing_to_restart_before_the_first_visit(story):
    with pytest.raises(HallError) as e:
        story.do(c.StartEvaluation(2))
    assert e.value.code == "no_evaluation"


def test_grades_are_names(story):
    story.issue("A")
    story.call(1)
    story.do(c.Finish(1))
    with pytest.raises(HallError) as e:
        story.do(c.Evaluate(1, "5"))
    assert e.value.code == "invalid_grade"


def test_a_bad_review_event_says_so(story):
    story.issue("A", id_number="11010119500307097X", name="张三")
    story.call(1)
    story.do(c.Finish(1))
    ev = story.do(c.Evaluate(1, "非常不满意", "pad", ("态度",))).events[0]
    assert (ev.bad, ev.real_name, ev.tags) == (True, True, ["态度"])


def test_unevaluated_visits_get_the_default_grade_after_the_period(tmp_path):
    clock = ManualClock(at("09:00"))
    ctrl, _ = open_hall(small_hall(evaluation_default_days=7, evaluation_default_grade="基本满意"),
                        tmp_path, clock)
    ctrl.execute(c.Login(1, "s1"), "staff:s1")
    ctrl.execute(c.IssueTicket("A"), "kiosk")
    ctrl.execute(c.IssueTicket("A"), "kiosk")
    ctrl.execute(c.CallNext(1), "staff:s1")
    ctrl.execute(c.CallNext(1), "staff:s1")  # finishes A001
    ctrl.execute(c.Evaluate(1, "满意"), "pad:1")  # A001 graded by the citizen
    ctrl.execute(c.Finish(1), "staff:s1")  # A002 left unevaluated
    clock.now = at("09:00", dt.date(2026, 11, 30))
    assert ctrl.apply_default_grades() == 0  # 7 days not yet passed since 09:0x on the 23rd
    clock.now = at("10:00", dt.date(2026, 11, 30))
    ctrl.tick()
    a1, a2 = ctrl.store.ticket("20261123-A001"), ctrl.store.ticket("20261123-A002")
    assert (a1.grade, a1.grade_channel) == ("满意", "pad")
    assert (a2.grade, a2.grade_channel) == ("基本满意", "system_default")
    assert ctrl.apply_default_grades() == 0  # once
    audit = list(ctrl.store.query("SELECT actor, args FROM commands WHERE name = 'default_grades'"))
    assert [{**a, "args": json.loads(a["args"])} for a in audit] == [
        {"actor": "system", "args": {"grade": "基本满意", "count": 1}}]


def test_a_prompt_whose_visit_goes_back_to_the_queue_is_not_held_against_the_staff(story):
    """An admin disables a member of staff mid-visit: the visit goes back to its place in the
    queue and its pad stops asking. Nobody cut the citizen short: the next window asks."""
    from controller.core.evaluation import SUPERSEDED, cut_short
    story.issue("A")
    story.call(1)
    story.do(c.StartEvaluation(1))  # the pad started at reception
    out = story.do(c.Logout(1, requeue_current=True))
    ended = [e for e in out.events if e.kind == "evaluation_ended"]
    assert [e.reason for e in ended] == ["requeued"]
    assert not cut_short(ended[0].reason)
    assert cut_short(SUPERSEDED)  # while the next visit finishing first still is
    assert story.state.find_label("A001").status == "waiting"
