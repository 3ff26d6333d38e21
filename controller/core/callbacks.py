"""回访 / 投诉案件: callback cases for real-name bad reviews, and complaint cases.

Pure: a case is plain data, a command is a value, `apply` returns the new case
and the events it caused. Time and the deadline calendar are arguments, so the
working-day calendar (调休, override files) stays outside this module.

Rules (hall-rules.md "Bad reviews and callbacks"): every real-name bad review is
called back and rectified, rate 100% (001 6.5.2.1); 问题交办 → 调查核实 → 整改反馈
→ 回访评价 (001 6.5.2.2); appeals are recorded, never deleted; monthly points
1 per verified bad review, 2 per complaint, 10 at most (003 考核制度 (5)).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from controller.core import events as ev
from controller.core.errors import Category, HallError
from controller.core.hall import EVALUATION_GRADES, Deadline, Rules
from vocabulary import BAD_LABELS, SYSTEM, by_label


class CaseKind(StrEnum):
    BAD_REVIEW = "bad_review"
    COMPLAINT = "complaint"


class CaseSource(StrEnum):
    PAD = "pad"
    PHONE = "phone"
    COMMENT_BOX = "comment_box"
    DESK = "desk"  # 办不成事 window


class CaseState(StrEnum):
    OPEN = "open"
    ASSIGNED = "assigned"
    CALLED_BACK = "called_back"
    VERIFIED = "verified"
    RECTIFIED = "rectified"
    FEEDBACK_GIVEN = "feedback_given"
    FOLLOW_UP = "follow_up"
    CLOSED = "closed"
    APPEALED = "appealed"


STATE_LABELS: dict[CaseState, str] = {
    CaseState.OPEN: "待交办",
    CaseState.ASSIGNED: "已交办",
    CaseState.CALLED_BACK: "已回访",
    CaseState.VERIFIED: "已核实",
    CaseState.RECTIFIED: "已整改",
    CaseState.FEEDBACK_GIVEN: "已反馈",
    CaseState.FOLLOW_UP: "已追评",
    CaseState.CLOSED: "已办结",
    CaseState.APPEALED: "申诉复核中",
}

BAD_GRADES = BAD_LABELS  # 001 6.5.1.1, defined in vocabulary.grades

# 003 考核制度 (5)
BAD_REVIEW_POINTS = 1
COMPLAINT_POINTS = 2
MONTHLY_POINTS_CAP = 10

# code -> (category, default Chinese message) of the case workflow's refusals
CASE_CODES: dict[str, tuple[Category, str]] = {
    "illegal_transition": (Category.CONFLICT, "案件当前状态不能做这项操作"),
    "unknown_case": (Category.NOT_FOUND, "没有这个案件"),
    "case_exists": (Category.CONFLICT, "案件已存在"),
    "not_bad_review": (Category.INVALID, "只有不满意、非常不满意的评价才是差评"),
    "invalid_grade": (Category.INVALID, "评价等级不正确"),
    "invalid_source": (Category.INVALID, "案件来源不正确"),
    "empty_text": (Category.INVALID, "请填写说明"),
    "nothing_to_rectify": (Category.CONFLICT, "核实为不属实，无需整改，请直接反馈"),
    "rectify_first": (Category.CONFLICT, "核实属实，请先整改再反馈"),
    "appeal_not_allowed": (Category.CONFLICT, "只有核实属实、尚未办结的案件可以申诉"),
    "already_appealed": (Category.CONFLICT, "这个案件已经申诉过"),
    "not_case_staff": (Category.FORBIDDEN, "只有被评价的工作人员本人可以申诉"),
    "reviewer_is_staff": (Category.FORBIDDEN, "复核人不能是被评价的工作人员本人"),
    "assignee_is_staff": (Category.FORBIDDEN, "案件不能交给被评价、被投诉的工作人员本人承办"),
}


class CaseError(HallError):
    """A refused case command: nothing changed."""

    codes = CASE_CODES


@dataclass(frozen=True)
class CaseRules:
    """Case deadlines, local settings (Zhejiang, Sichuan and Dezhou differ)."""

    callback: Deadline = Deadline(1, True)
    rectify: Deadline = Deadline(5, True)
    # 000 投诉处理 第九条(二): report back within 2 working days
    complaint_feedback: Deadline = Deadline(2, True)
    # 001 5.1.5.3: complex complaints within 5 working days
    complaint_resolve: Deadline = Deadline(5, True)

    @classmethod
    def from_rules(cls, rules: Rules) -> CaseRules:
        return cls(rules.callback_deadline, rules.rectify_deadline,
                   rules.complaint_feedback_deadline, rules.complaint_resolve_deadline)


@dataclass(frozen=True)
class Transition:
    at: dt.datetime
    actor: str
    from_state: CaseState | None
    to_state: CaseState
    note: dict[str, Any] = field(default_factory=dict)


@dataclass
class Case:
    """回访案件 (kind bad_review) or 投诉案件 (kind complaint)."""

    id: str
    kind: CaseKind
    opened_at: dt.datetime
    source: CaseSource
    description: str = ""
    ticket_id: str | None = None
    window: int | None = None
    staff_id: str | None = None
    service: str | None = None
    citizen_key: str | None = None
    identity_sealed: Any = None  # opaque, sealed by controller.core.identity
    phone_sealed: Any = None  # opaque
    grade: str | None = None
    state: CaseState = CaseState.OPEN
    assignee: str | None = None
    callback_due: dt.datetime | None = None
    rectify_due: dt.datetime | None = None
    feedback_due: dt.datetime | None = None
    resolve_due: dt.datetime | None = None
    justified: bool | None = None
    follow_up_grade: str | None = None
    appeal_from: CaseState | None = None
    appeal_upheld: bool | None = None
    history: list[Transition] = field(default_factory=list)


# --- commands -----------------------------------------------------------------

@dataclass(frozen=True)
class OpenCase:
    """Open a case from a real-name bad review or a complaint."""

    case_id: str
    kind: CaseKind
    source: CaseSource
    description: str = ""
    ticket_id: str | None = None
    window: int | None = None
    staff_id: str | None = None
    service: str | None = None
    citizen_key: str | None = None
    identity_sealed: Any = None
    phone_sealed: Any = None
    grade: str | None = None


@dataclass(frozen=True)
class Assign:
    """问题交办: hand the case to a callback officer (again, to reassign)."""

    officer: str


@dataclass(frozen=True)
class RecordCallback:
    """回访: a call to the citizen; not reached, the case stays assigned to be called again."""

    reached: bool
    summary: str


@dataclass(frozen=True)
class Verify:
    """调查核实: was the review or complaint justified?"""

    justified: bool
    finding: str


@dataclass(frozen=True)
class Rectify:
    """整改: what changed."""

    change: str


@dataclass(frozen=True)
class GiveFeedback:
    """反馈: report the outcome to the citizen."""

    summary: str


@dataclass(frozen=True)
class FollowUp:
    """追评: the citizen's optional second evaluation after rectification."""

    grade: str


@dataclass(frozen=True)
class Close:
    pass


@dataclass(frozen=True)
class Appeal:
    """申诉: the staff member contests a verified bad review or complaint."""

    reason: str


@dataclass(frozen=True)
class DecideAppeal:
    """复核: upheld, the case is marked not justified (the points drop); the case
    returns to the state it was appealed from either way."""

    upheld: bool
    reviewer: str
    reason: str


Command = OpenCase | Assign | RecordCallback | Verify | Rectify | GiveFeedback | FollowUp | Close \
    | Appeal | DecideAppeal

_S = CaseState
# command -> (states it may be applied in, state it leads to). RecordCallback not
# reached stays in assigned; DecideAppeal (None) returns to the state appealed from.
TRANSITIONS: dict[type, tuple[frozenset[CaseState], CaseState | None]] = {
    Assign: (frozenset({_S.OPEN, _S.ASSIGNED}), _S.ASSIGNED),
    RecordCallback: (frozenset({_S.ASSIGNED}), _S.CALLED_BACK),
    Verify: (frozenset({_S.CALLED_BACK}), _S.VERIFIED),
    Rectify: (frozenset({_S.VERIFIED}), _S.RECTIFIED),
    GiveFeedback: (frozenset({_S.VERIFIED, _S.RECTIFIED}), _S.FEEDBACK_GIVEN),
    FollowUp: (frozenset({_S.FEEDBACK_GIVEN}), _S.FOLLOW_UP),
    Close: (frozenset({_S.FEEDBACK_GIVEN, _S.FOLLOW_UP}), _S.CLOSED),
    Appeal: (frozenset({_S.VERIFIED, _S.RECTIFIED, _S.FEEDBACK_GIVEN, _S.FOLLOW_UP}), _S.APPEALED),
    DecideAppeal: (frozenset({_S.APPEALED}), None),
}

_VERBS: dict[type, str] = {
    Assign: "交办", RecordCallback: "登记回访", Verify: "核实", Rectify: "整改",
    GiveFeedback: "反馈", FollowUp: "追评", Close: "办结", Appeal: "申诉", DecideAppeal: "申诉复核",
}

# progress along the walk to closed; appealed counts as the state it came from
STATE_ORDER = [_S.OPEN, _S.ASSIGNED, _S.CALLED_BACK, _S.VERIFIED, _S.RECTIFIED, _S.FEEDBACK_GIVEN,
          _S.FOLLOW_UP, _S.CLOSED]

DeadlineFn = Callable[[dt.datetime, Deadline], dt.datetime]


# the event each transition is recorded by
_EVENTS: dict[type, type[ev.CaseTransition]] = {
    Assign: ev.CaseAssigned, RecordCallback: ev.CallbackRecorded, Verify: ev.CaseVerified,
    Rectify: ev.CaseRectified, GiveFeedback: ev.FeedbackGiven, FollowUp: ev.FollowUpRecorded,
    Close: ev.CaseClosed, Appeal: ev.CaseAppealed, DecideAppeal: ev.AppealDecided,
}


def _text(value: str, what: str) -> str:
    if not value or not value.strip():
        raise CaseError("empty_text", f"请填写{what}")
    return value.strip()


def _illegal(cmd: Any, current: CaseState) -> CaseError:
    allowed, to = TRANSITIONS[type(cmd)]
    to_label = STATE_LABELS[to] if to else "申诉前的状态"
    allowed_labels = "、".join(STATE_LABELS[s] for s in STATE_ORDER + [_S.APPEALED] if s in allowed)
    verb = _VERBS[type(cmd)]
    return CaseError("illegal_transition",
                     f"不能从「{STATE_LABELS[current]}」转为「{to_label}」：{verb}只能在「{allowed_labels}」时进行")


def is_anonymous(cmd: OpenCase) -> bool:
    """A review without a sealed identity is anonymous: recorded and counted, never called back."""
    return cmd.identity_sealed is None


def _deadlines(case: Case) -> dict[str, str]:
    names = ("callback_due", "rectify_due", "feedback_due", "resolve_due")
    return {n: due.isoformat() for n in names if (due := getattr(case, n)) is not None}


def _open(cmd: OpenCase, now: dt.datetime, actor: str, deadline: DeadlineFn,
          rules: CaseRules) -> tuple[Case | None, list[ev.CaseEvent]]:
    try:
        kind, source = CaseKind(cmd.kind), CaseSource(cmd.source)
    except ValueError:
        raise CaseError("invalid_source") from None
    if kind is CaseKind.BAD_REVIEW:
        grade = by_label(cmd.grade)
        if grade is None:
            raise CaseError("invalid_grade")
        if not grade.is_bad:
            raise CaseError("not_bad_review")
        if is_anonymous(cmd):
            return None, [ev.AnonymousBadReview(
                at=now, case=None, case_kind=str(kind), window=cmd.window, ticket=cmd.ticket_id,
                staff=cmd.staff_id, grade=grade.label, service=cmd.service)]
    elif cmd.grade is not None and cmd.grade not in EVALUATION_GRADES:
        raise CaseError("invalid_grade")
    case = Case(
        id=cmd.case_id, kind=kind, opened_at=now, source=source, description=cmd.description,
        ticket_id=cmd.ticket_id, window=cmd.window, staff_id=cmd.staff_id, service=cmd.service,
        citizen_key=cmd.citizen_key, identity_sealed=cmd.identity_sealed,
        phone_sealed=cmd.phone_sealed, grade=cmd.grade,
    )
    if kind is CaseKind.BAD_REVIEW:
        case.callback_due = deadline(now, rules.callback)
        case.rectify_due = deadline(now, rules.rectify)
    else:
        case.feedback_due = deadline(now, rules.complaint_feedback)
        case.resolve_due = deadline(now, rules.complaint_resolve)
    note = {"kind": str(kind), "source": str(source), "grade": cmd.grade}
    case.history = [Transition(now, actor, None, _S.OPEN, note)]
    # no sealed identity or phone: events go to displays and the audit log
    return case, [ev.CaseOpened(at=now, case=case.id, case_kind=str(kind), window=case.window,
                                ticket=case.ticket_id, staff=case.staff_id, source=str(source),
                                grade=cmd.grade, due=_deadlines(case))]


def apply(case: Case | None, cmd: Command, now: dt.datetime, actor: str, deadline: DeadlineFn,
          rules: CaseRules) -> tuple[Case | None, list[ev.CaseEvent]]:
    """Apply one command. Returns the new case (the old one is left untouched) and
    its events; the case is None only for an anonymous bad review, which is
    recorded by an "anonymous_bad_review" event. Raises CaseError, nothing changed."""
    if isinstance(cmd, OpenCase):
        if case is not None:
            raise CaseError("case_exists")
        return _open(cmd, now, actor, deadline, rules)
    if case is None:
        raise CaseError("unknown_case")
    allowed, to = TRANSITIONS[type(cmd)]
    current = case.state
    if current not in allowed:
        raise _illegal(cmd, current)

    step = _step(case, cmd, actor, to)
    to = step.to
    assert to is not None
    transition = Transition(now, actor, current, to, step.note)
    new = dataclasses.replace(case, state=to, history=[*case.history, transition], **step.changes)
    return new, [_EVENTS[type(cmd)](
        at=now, case=new.id, case_kind=str(new.kind), window=new.window, ticket=new.ticket_id,
        staff=new.staff_id, from_state=str(current), to_state=str(to), **step.note)]


@dataclass(frozen=True)
class _Step:
    """What one command does to a case: the note its transition records, the state it
    leads to and the case's fields it changes."""

    note: dict[str, Any]
    to: CaseState | None
    changes: dict[str, Any] = field(default_factory=dict)


def _step(case: Case, cmd: Command, actor: str, to: CaseState | None) -> _Step:
    """`cmd`'s own checks and changes; `to` is where the transition table says it leads."""
    match cmd:
        case Assign():
            return _assign(case, cmd, to)
        case RecordCallback(reached=reached, summary=summary):
            # not reached: called again later; the attempt still goes on record
            return _Step({"reached": bool(reached), "summary": _text(summary, "回访情况")},
                         to if reached else case.state)
        case Verify(justified=justified, finding=finding):
            return _Step({"justified": bool(justified), "finding": _text(finding, "核实情况")}, to,
                         {"justified": bool(justified)})
        case Rectify():
            return _rectify(case, cmd, to)
        case GiveFeedback(summary=summary):
            if case.state is _S.VERIFIED and case.justified:
                raise CaseError("rectify_first")
            return _Step({"summary": _text(summary, "反馈内容")}, to)
        case FollowUp():
            return _follow_up(cmd, to)
        case Close():
            return _Step({}, to)
        case Appeal():
            return _appeal(case, cmd, actor, to)
        case DecideAppeal():
            return _decide_appeal(case, cmd)
        case _:  # pragma: no cover - the table above names every command
            raise TypeError(f"not a case command: {cmd!r}")


def _assign(case: Case, cmd: Assign, to: CaseState | None) -> _Step:
    officer = _text(cmd.officer, "承办人")
    if officer == case.staff_id:  # nobody handles the case against them
        raise CaseError("assignee_is_staff")
    return _Step({"officer": officer}, to, {"assignee": officer})


def _rectify(case: Case, cmd: Rectify, to: CaseState | None) -> _Step:
    if not case.justified:
        raise CaseError("nothing_to_rectify")
    return _Step({"change": _text(cmd.change, "整改措施")}, to)


def _follow_up(cmd: FollowUp, to: CaseState | None) -> _Step:
    if cmd.grade not in EVALUATION_GRADES:
        raise CaseError("invalid_grade")
    return _Step({"grade": cmd.grade}, to, {"follow_up_grade": cmd.grade})


def _appeal(case: Case, cmd: Appeal, actor: str, to: CaseState | None) -> _Step:
    if not case.justified:
        raise CaseError("appeal_not_allowed")
    if case.appeal_upheld is not None:
        raise CaseError("already_appealed")
    if case.staff_id is None or actor != case.staff_id:
        raise CaseError("not_case_staff")
    return _Step({"reason": _text(cmd.reason, "申诉理由")}, to, {"appeal_from": case.state})


def _decide_appeal(case: Case, cmd: DecideAppeal) -> _Step:
    """复核: back to the state the case was appealed from, upheld or not."""
    if cmd.reviewer == case.staff_id:
        raise CaseError("reviewer_is_staff")
    note = {"upheld": bool(cmd.upheld), "reviewer": _text(cmd.reviewer, "复核人"),
            "reason": _text(cmd.reason, "复核意见")}
    changes: dict[str, Any] = {"appeal_upheld": bool(cmd.upheld), "appeal_from": None}
    if cmd.upheld:
        changes["justified"] = False
    return _Step(note, case.appeal_from, changes)


def open_bad_review(case_id: str, now: dt.datetime, deadline: DeadlineFn, rules: CaseRules, *,
                    grade: str, ticket_id: str | None = None, window: int | None = None,
                    staff_id: str | None = None, service: str | None = None,
                    citizen_key: str | None = None, identity_sealed: Any = None,
                    phone_sealed: Any = None, description: str = "",
                    source: CaseSource = CaseSource.PAD,
                    actor: str = SYSTEM) -> tuple[Case | None, list[ev.CaseEvent]]:
    """A bad review from the pad: a callback case, or None and an "anonymous_bad_review" event."""
    cmd = OpenCase(case_id, CaseKind.BAD_REVIEW, source, description, ticket_id, window, staff_id,
                   service, citizen_key, identity_sealed, phone_sealed, grade)
    return apply(None, cmd, now, actor, deadline, rules)
