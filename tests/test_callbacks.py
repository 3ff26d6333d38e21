"""Callback and complaint cases: a bad review is called back, verified, rectified and closed."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.core.callbacks import (
    STATE_LABELS, TRANSITIONS, Appeal, Assign, Case, CaseError, CaseKind, CaseRules, CaseSource,
    CaseState, Close, DecideAppeal, FollowUp, GiveFeedback, OpenCase, RecordCallback, Rectify,
    Verify, apply, open_bad_review,
)
from controller.core.case_supervision import assessment_points, callback_rate, overdue
from controller.core.errors import Category
from controller.core.hall import Deadline, Rules

S = CaseState
T0 = dt.datetime(2025, 3, 3, 10, 0)  # a Monday
RULES = CaseRules()


def calendar_days(start: dt.datetime, d: Deadline) -> dt.datetime:
    """Tests ignore the working-day calendar: N days after, working or not."""
    return start + dt.timedelta(days=d.amount)


def review_cmd(case_id="C1", staff="S01", grade="不满意", identity="sealed-id") -> OpenCase:
    return OpenCase(case_id, CaseKind.BAD_REVIEW, CaseSource.PAD, "态度不好", ticket_id="A001",
                    window=3, staff_id=staff, service="A", citizen_key="ck1",
                    identity_sealed=identity, phone_sealed="sealed-phone" if identity else None,
                    grade=grade)


def complaint_cmd(case_id="K1", staff="S01") -> OpenCase:
    return OpenCase(case_id, CaseKind.COMPLAINT, CaseSource.DESK, "材料被退回三次",
                    window=9, staff_id=staff, service="A")


def run(case, *steps, at=T0):
    """Apply (cmd, actor) steps one minute apart; returns the case and all events."""
    events = []
    for i, (cmd, actor) in enumerate(steps):
        case, ev = apply(case, cmd, at + dt.timedelta(minutes=i), actor, calendar_days, RULES)
        events += ev
    return case, events


def opened(cmd=None) -> Case:
    case, _ = apply(None, cmd or review_cmd(), T0, "system", calendar_days, RULES)
    return case


# Every state reached by a walk from open, and the steps that get there.
WALK = {
    S.OPEN: [],
    S.ASSIGNED: [(Assign("CB1"), "sup")],
    S.CALLED_BACK: [(Assign("CB1"), "sup"), (RecordCallback(True, "已联系"), "CB1")],
    S.VERIFIED: [(Assign("CB1"), "sup"), (RecordCallback(True, "已联系"), "CB1"),
                 (Verify(True, "属实"), "sup")],
    S.RECTIFIED: [(Assign("CB1"), "sup"), (RecordCallback(True, "已联系"), "CB1"),
                  (Verify(True, "属实"), "sup"), (Rectify("加强培训"), "sup")],
    S.FEEDBACK_GIVEN: [(Assign("CB1"), "sup"), (RecordCallback(True, "已联系"), "CB1"),
                       (Verify(True, "属实"), "sup"), (Rectify("加强培训"), "sup"),
                       (GiveFeedback("已告知整改结果"), "CB1")],
    S.FOLLOW_UP: [(Assign("CB1"), "sup"), (RecordCallback(True, "已联系"), "CB1"),
                  (Verify(True, "属实"), "sup"), (Rectify("加强培训"), "sup"),
                  (GiveFeedback("已告知整改结果"), "CB1"), (FollowUp("满意"), "citizen")],
    S.CLOSED: [(Assign("CB1"), "sup"), (RecordCallback(True, "已联系"), "CB1"),
               (Verify(True, "属实"), "sup"), (Rectify("加强培训"), "sup"),
               (GiveFeedback("已告知整改结果"), "CB1"), (Close(), "sup")],
}
WALK[S.APPEALED] = WALK[S.VERIFIED] + [(Appeal("群众误评"), "S01")]
NOT_JUSTIFIED = "verified_not_justified"
WALK[NOT_JUSTIFIED] = WALK[S.CALLED_BACK] + [(Verify(False, "不属实"), "sup")]


def case_in(state: CaseState | str) -> Case:
    case, _ = run(opened(), *WALK[state])
    assert case.state is (S.VERIFIED if state == NOT_JUSTIFIED else state)
    return case


# (from, command, actor, to) — every allowed transition in TRANSITIONS
ALLOWED = [
    (S.OPEN, Assign("CB1"), "sup", S.ASSIGNED),
    (S.ASSIGNED, Assign("CB2"), "sup", S.ASSIGNED),
    (S.ASSIGNED, RecordCallback(True, "已联系"), "CB1", S.CALLED_BACK),
    (S.CALLED_BACK, Verify(True, "属实"), "sup", S.VERIFIED),
    (S.VERIFIED, Rectify("加强培训"), "sup", S.RECTIFIED),
    (S.RECTIFIED, GiveFeedback("已告知"), "CB1", S.FEEDBACK_GIVEN),
    (NOT_JUSTIFIED, GiveFeedback("已解释"), "CB1", S.FEEDBACK_GIVEN),
    (S.FEEDBACK_GIVEN, FollowUp("满意"), "citizen", S.FOLLOW_UP),
    (S.FEEDBACK_GIVEN, Close(), "sup", S.CLOSED),
    (S.FOLLOW_UP, Close(), "sup", S.CLOSED),
    (S.VERIFIED, Appeal("误评"), "S01", S.APPEALED),
    (S.RECTIFIED, Appeal("误评"), "S01", S.APPEALED),
    (S.FEEDBACK_GIVEN, Appeal("误评"), "S01", S.APPEALED),
    (S.FOLLOW_UP, Appeal("误评"), "S01", S.APPEALED),
    (S.APPEALED, DecideAppeal(False, "REV", "评价属实"), "REV", S.VERIFIED),
]


def test_allowed_table_covers_every_transition():
    covered = {(type(cmd), case_in(setup).state) for setup, cmd, _, _ in ALLOWED}
    expected = {(ct, frm) for ct, (froms, _) in TRANSITIONS.items() for frm in froms}
    assert covered == expected


@pytest.mark.parametrize(("setup", "cmd", "actor", "to"), ALLOWED,
                         ids=[f"{f}-{type(c).__name__}" for f, c, _, _ in ALLOWED])
def test_allowed_transition(setup, cmd, actor, to):
    case = case_in(setup)
    frm = case.state
    before = list(case.history)
    new, events = apply(case, cmd, T0 + dt.timedelta(hours=1), actor, calendar_days, RULES)
    assert new.state is to
    assert new.history[:-1] == before and case.history == before  # old case untouched
    last = new.history[-1]
    assert (last.from_state, last.to_state, last.actor) == (frm, to, actor)
    assert len(events) == 1 and events[0].to_state == str(to)


ILLEGAL = [
    (S.OPEN, RecordCallback(True, "x")),
    (S.OPEN, Close()),
    (S.ASSIGNED, Verify(True, "x")),
    (S.ASSIGNED, Close()),
    (S.CALLED_BACK, Rectify("x")),
    (S.CALLED_BACK, Appeal("x")),
    (S.VERIFIED, Close()),
    (S.RECTIFIED, Rectify("x")),
    (S.FEEDBACK_GIVEN, Assign("CB1")),
    (S.CLOSED, Assign("CB1")),
    (S.CLOSED, Appeal("x")),
    (S.CLOSED, FollowUp("满意")),
    (S.APPEALED, Close()),
    (S.VERIFIED, DecideAppeal(True, "REV", "x")),
]


@pytest.mark.parametrize(("frm", "cmd"), ILLEGAL, ids=[f"{f}-{type(c).__name__}" for f, c in ILLEGAL])
def test_illegal_transition_names_both_states(frm, cmd):
    case = case_in(frm)
    with pytest.raises(CaseError) as err:
        apply(case, cmd, T0, "S01", calendar_days, RULES)
    assert err.value.code == "illegal_transition"
    assert err.value.category is Category.CONFLICT
    assert STATE_LABELS[frm] in err.value.message
    to = TRANSITIONS[type(cmd)][1]
    assert (STATE_LABELS[to] if to else "申诉前的状态") in err.value.message


def test_full_walk_to_closed_keeps_every_step_in_history():
    case, events = run(opened(), *WALK[S.FOLLOW_UP], (Close(), "sup"))
    assert case.state is S.CLOSED
    assert [(t.from_state, t.to_state) for t in case.history] == [
        (None, S.OPEN), (S.OPEN, S.ASSIGNED), (S.ASSIGNED, S.CALLED_BACK),
        (S.CALLED_BACK, S.VERIFIED), (S.VERIFIED, S.RECTIFIED), (S.RECTIFIED, S.FEEDBACK_GIVEN),
        (S.FEEDBACK_GIVEN, S.FOLLOW_UP), (S.FOLLOW_UP, S.CLOSED)]
    assert case.assignee == "CB1" and case.justified is True and case.follow_up_grade == "满意"
    assert case.history[2].note == {"reached": True, "summary": "已联系"}
    assert case.history[2].actor == "CB1"
    assert [e.kind for e in events] == [
        "case_assigned", "callback_recorded", "case_verified", "case_rectified", "feedback_given",
        "follow_up_recorded", "case_closed"]
    assert all("sealed" not in repr(e) for e in events)  # no identity or phone in events


def test_opening_a_bad_review_sets_deadlines_from_rules():
    rules = CaseRules.from_rules(Rules(callback_deadline=Deadline(1, False),
                                       rectify_deadline=Deadline(15, False)))
    case, events = apply(None, review_cmd(), T0, "system", calendar_days, rules)
    assert case.state is S.OPEN and case.kind is CaseKind.BAD_REVIEW
    assert case.callback_due == T0 + dt.timedelta(days=1)
    assert case.rectify_due == T0 + dt.timedelta(days=15)
    assert case.feedback_due is None and case.resolve_due is None
    assert (case.ticket_id, case.window, case.staff_id, case.service) == ("A001", 3, "S01", "A")
    assert events[0].kind == "case_opened"


def test_complaint_gets_its_own_deadlines():
    case = opened(complaint_cmd())
    assert case.kind is CaseKind.COMPLAINT
    assert case.feedback_due == T0 + dt.timedelta(days=2)
    assert case.resolve_due == T0 + dt.timedelta(days=5)
    assert case.callback_due is None and case.rectify_due is None


def test_default_rules():
    assert CaseRules() == CaseRules(Deadline(1, True), Deadline(5, True), Deadline(2, True),
                                    Deadline(5, True))
    assert CaseRules.from_rules(Rules()) == CaseRules()


def test_not_reached_callback_stays_assigned_but_is_recorded():
    case = case_in(S.ASSIGNED)
    case, events = run(case, (RecordCallback(False, "无人接听"), "CB1"),
                       (RecordCallback(True, "已联系，群众认可"), "CB1"))
    first, second = case.history[-2:]
    assert (first.from_state, first.to_state, first.note["reached"]) == (S.ASSIGNED, S.ASSIGNED, False)
    assert second.to_state is S.CALLED_BACK
    assert [e.reached for e in events] == [False, True]


def test_anonymous_bad_review_is_counted_not_opened():
    case, events = open_bad_review("C9", T0, calendar_days, RULES, grade="非常不满意", window=3,
                                   staff_id="S01")
    assert case is None
    assert [e.kind for e in events] == ["anonymous_bad_review"]
    assert events[0].grade == "非常不满意"


def test_real_name_bad_review_through_helper():
    case, _ = open_bad_review("C9", T0, calendar_days, RULES, grade="不满意", staff_id="S01",
                              identity_sealed=b"x", phone_sealed=b"y")
    assert case is not None and case.state is S.OPEN and case.source is CaseSource.PAD


@pytest.mark.parametrize(("grade", "code"), [("满意", "not_bad_review"), ("很好", "invalid_grade")])
def test_only_bad_grades_open_a_callback_case(grade, code):
    with pytest.raises(CaseError) as err:
        apply(None, review_cmd(grade=grade), T0, "system", calendar_days, RULES)
    assert err.value.code == code and err.value.category is Category.INVALID


def test_command_on_missing_case_and_reopening():
    with pytest.raises(CaseError, match="unknown_case"):
        apply(None, Assign("CB1"), T0, "sup", calendar_days, RULES)
    with pytest.raises(CaseError, match="case_exists"):
        apply(opened(), review_cmd(), T0, "sup", calendar_days, RULES)


def test_empty_summary_is_refused():
    with pytest.raises(CaseError) as err:
        apply(case_in(S.ASSIGNED), RecordCallback(True, "  "), T0, "CB1", calendar_days, RULES)
    assert err.value.code == "empty_text" and "回访情况" in err.value.message


def test_not_justified_goes_straight_to_feedback():
    case, _ = run(case_in(S.CALLED_BACK), (Verify(False, "群众误解"), "sup"))
    with pytest.raises(CaseError, match="nothing_to_rectify"):
        apply(case, Rectify("x"), T0, "sup", calendar_days, RULES)
    case, _ = run(case, (GiveFeedback("已解释"), "CB1"), (Close(), "sup"))
    assert case.state is S.CLOSED and case.justified is False


def test_justified_needs_rectification_before_feedback():
    with pytest.raises(CaseError, match="rectify_first"):
        apply(case_in(S.VERIFIED), GiveFeedback("x"), T0, "CB1", calendar_days, RULES)


def test_appeal_upheld_drops_the_points_and_keeps_the_record():
    case = case_in(S.RECTIFIED)
    assert assessment_points([case], "S01", "2025-03") == 1
    case, events = run(case, (Appeal("群众恶意差评"), "S01"),
                       (DecideAppeal(True, "REV", "录像显示服务规范"), "REV"))
    assert case.state is S.RECTIFIED and case.justified is False and case.appeal_upheld is True
    assert [t.to_state for t in case.history[-2:]] == [S.APPEALED, S.RECTIFIED]
    assert case.history[-1].note == {"upheld": True, "reviewer": "REV", "reason": "录像显示服务规范"}
    assert events[-1].kind == "appeal_decided"
    assert assessment_points([case], "S01", "2025-03") == 0
    case, _ = run(case, (GiveFeedback("已告知复核结果"), "CB1"), (Close(), "sup"))
    assert case.state is S.CLOSED and len(case.history) == 9


def test_appeal_upheld_before_rectification_goes_to_feedback():
    case, _ = run(case_in(S.APPEALED), (DecideAppeal(True, "REV", "误评"), "REV"))
    assert case.state is S.VERIFIED and case.justified is False
    case, _ = run(case, (GiveFeedback("已告知"), "CB1"))
    assert case.state is S.FEEDBACK_GIVEN


def test_appeal_rejected_returns_and_cannot_be_repeated():
    case, _ = run(case_in(S.APPEALED), (DecideAppeal(False, "REV", "评价属实"), "REV"))
    assert case.state is S.VERIFIED and case.justified is True and case.appeal_upheld is False
    assert assessment_points([case], "S01", "2025-03") == 1
    with pytest.raises(CaseError, match="already_appealed"):
        apply(case, Appeal("再次申诉"), T0, "S01", calendar_days, RULES)


@pytest.mark.parametrize(("state", "actor", "code"), [
    (S.VERIFIED, "S02", "not_case_staff"),
    (S.CLOSED, "S01", "illegal_transition"),
])
def test_who_and_when_may_appeal(state, actor, code):
    with pytest.raises(CaseError) as err:
        apply(case_in(state), Appeal("x"), T0, actor, calendar_days, RULES)
    assert err.value.code == code


def test_not_justified_case_cannot_be_appealed():
    case, _ = run(case_in(S.CALLED_BACK), (Verify(False, "不属实"), "sup"))
    with pytest.raises(CaseError, match="appeal_not_allowed"):
        apply(case, Appeal("x"), T0, "S01", calendar_days, RULES)


def test_staff_cannot_review_their_own_appeal():
    with pytest.raises(CaseError) as err:
        apply(case_in(S.APPEALED), DecideAppeal(True, "S01", "x"), T0, "S01", calendar_days, RULES)
    assert err.value.code == "reviewer_is_staff" and err.value.category is Category.FORBIDDEN


# --- overdue ---------------------------------------------------------------

@pytest.mark.parametrize(("state", "days_later", "expected"), [
    (S.OPEN, 0.5, []),
    (S.OPEN, 1.5, ["callback_due"]),
    (S.ASSIGNED, 1.5, ["callback_due"]),
    (S.CALLED_BACK, 1.5, []),
    (S.CALLED_BACK, 5.5, ["rectify_due"]),
    (S.ASSIGNED, 5.5, ["callback_due", "rectify_due"]),
    (S.VERIFIED, 5.5, ["rectify_due"]),
    (S.APPEALED, 5.5, ["rectify_due"]),
    (S.RECTIFIED, 5.5, []),
    (S.CLOSED, 30, []),
])
def test_overdue_bad_review(state, days_later, expected):
    case = case_in(state)
    found = overdue([case], T0 + dt.timedelta(days=days_later))
    assert [which for c, which in found] == expected
    assert all(c is case for c, _ in found)


@pytest.mark.parametrize(("steps", "days_later", "expected"), [
    ([], 1.5, []),
    ([], 2.5, ["feedback_due"]),
    ([(Assign("CB1"), "sup")], 5.5, ["feedback_due", "resolve_due"]),
    ([(Assign("CB1"), "sup"), (RecordCallback(True, "已答复"), "CB1")], 5.5, ["resolve_due"]),
    ([(Assign("CB1"), "sup"), (RecordCallback(True, "已答复"), "CB1"),
      (Verify(False, "不属实"), "sup")], 5.5, []),
])
def test_overdue_complaint(steps, days_later, expected):
    case, _ = run(opened(complaint_cmd()), *steps)
    assert [w for _, w in overdue([case], T0 + dt.timedelta(days=days_later))] == expected


# --- callback rate and assessment --------------------------------------------

def test_callback_rate_is_100_percent_only_when_every_real_name_review_is_closed():
    assert callback_rate([]) == (0, 0, None)
    closed = case_in(S.CLOSED)
    pending = case_in(S.FEEDBACK_GIVEN)
    complaint = opened(complaint_cmd())  # complaints don't count
    assert callback_rate([closed, complaint]) == (1, 1, 1.0)
    assert callback_rate([closed, pending, complaint]) == (1, 2, 0.5)
    pending, _ = run(pending, (Close(), "sup"))
    assert callback_rate([closed, pending, complaint]) == (2, 2, 1.0)


def verified_case(case_id, kind, staff="S01", justified=True, at=T0) -> Case:
    cmd = review_cmd(case_id, staff) if kind is CaseKind.BAD_REVIEW else complaint_cmd(case_id, staff)
    case, _ = apply(None, cmd, at, "system", calendar_days, RULES)
    case, _ = run(case, *WALK[S.CALLED_BACK], (Verify(justified, "核实"), "sup"), at=at)
    return case


def test_assessment_points():
    march = [verified_case(f"B{i}", CaseKind.BAD_REVIEW) for i in range(2)]
    march += [verified_case("K1", CaseKind.COMPLAINT)]
    march += [verified_case("B9", CaseKind.BAD_REVIEW, justified=False)]
    march += [verified_case("B8", CaseKind.BAD_REVIEW, staff="S02")]
    march += [opened(review_cmd("B7"))]  # not yet verified
    april = [verified_case("B6", CaseKind.BAD_REVIEW, at=dt.datetime(2025, 4, 1, 9))]
    assert assessment_points(march + april, "S01", "2025-03") == 1 + 1 + 2
    assert assessment_points(march + april, "S01", "2025-04") == 1
    assert assessment_points(march + april, "S02", "2025-03") == 1


def test_assessment_points_are_capped_at_10_a_month():
    cases = [verified_case(f"K{i}", CaseKind.COMPLAINT) for i in range(4)]
    cases += [verified_case(f"B{i}", CaseKind.BAD_REVIEW) for i in range(3)]
    assert assessment_points(cases, "S01", "2025-03") == 10


# --- any sequence of commands --------------------------------------------------

TEXT = st.sampled_from(["", "已处理", "  "])
ACTORS = st.sampled_from(["S01", "S02", "CB1", "REV", "sup"])
COMMANDS = st.one_of(
    st.builds(Assign, st.sampled_from(["CB1", "CB2", ""])),
    st.builds(RecordCallback, st.booleans(), TEXT),
    st.builds(Verify, st.booleans(), TEXT),
    st.builds(Rectify, TEXT),
    st.builds(GiveFeedback, TEXT),
    st.builds(FollowUp, st.sampled_from(["满意", "非常不满意", "好"])),
    st.just(Close()),
    st.builds(Appeal, TEXT),
    st.builds(DecideAppeal, st.booleans(), st.sampled_from(["REV", "S01"]), TEXT),
    st.builds(lambda k: review_cmd() if k else complaint_cmd(), st.booleans()),
)


@settings(max_examples=300, deadline=None)
@given(start=st.sampled_from([None, "review", "complaint", "anonymous"]),
       steps=st.lists(st.tuples(COMMANDS, ACTORS), max_size=25))
def test_any_sequence_applies_or_refuses_and_never_loses_history(start, steps):
    case = None
    if start:
        cmd = {"review": review_cmd(), "complaint": complaint_cmd(),
               "anonymous": review_cmd(identity=None)}[start]
        case, _ = apply(None, cmd, T0, "system", calendar_days, RULES)
    for i, (cmd, actor) in enumerate(steps):
        before = None if case is None else (case.state, list(case.history))
        try:
            new, events = apply(case, cmd, T0 + dt.timedelta(minutes=i), actor, calendar_days, RULES)
        except CaseError as err:
            assert err.message and err.category in set(Category)
            if case is not None:  # refused: nothing changed
                assert (case.state, case.history) == before
            continue
        if new is None:
            assert events[0].kind == "anonymous_bad_review"
            continue
        old_history = [] if before is None else before[1]
        assert new.history[:len(old_history)] == old_history
        assert len(new.history) == len(old_history) + 1
        assert new.history[-1].to_state is new.state
        case = new
