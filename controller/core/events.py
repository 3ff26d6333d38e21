"""Events: what a command changed, in the hall's words. Displays, the audit log
and the supervisor all read these.

One frozen dataclass per kind, with the fields that kind carries. Every event has
`at`, and `window` and `ticket` where it concerns one; the rest is its own. The kind's
name (`TICKET_CALLED`, "ticket_called") is what the store, the event stream and MQTT
call it; `to_json` and `from_json` are the one place an event becomes JSON and back:

    {"kind": "ticket_called", "at": "...", "window": 3, "ticket": "20250301-A012",
     "data": {"label": "A012", "service": "A", "waited_seconds": 300}}

The `data` object keeps the shape events always had in the database, so a database
written before the events were typed reads back as typed events, and the pages and
the stream see the same JSON. A field whose value is absent (None) for this event is
left out of `data` where the event never carried it in that case (`optional()` below).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypedDict

from vocabulary import is_bad_review

TICKET_ISSUED = "ticket_issued"
TICKET_CALLED = "ticket_called"
TICKET_RECALLED = "ticket_recalled"
TICKET_MISSED = "ticket_missed"
TICKET_FINISHED = "ticket_finished"
TICKET_TRANSFERRED = "ticket_transferred"
TICKET_CANCELLED = "ticket_cancelled"
# the window serving it was closed (its staff disabled): back at the head of its queue
TICKET_REQUEUED = "ticket_requeued"
TICKET_PHONE_SET = "ticket_phone_set"
WINDOW_OPENED = "window_opened"
WINDOW_CLOSED = "window_closed"
WINDOW_PAUSED = "window_paused"
WINDOW_RESUMED = "window_resumed"
PAUSE_OVER_LIMIT = "pause_over_limit"
# 顶岗补位制: an A-post window closed in opening hours past the pause limit with nobody covering
WINDOW_UNCOVERED = "window_uncovered"
# 顶岗补位制: a window's A post and its B posts all away at once
POSTS_AWAY = "posts_away"
# 先外后内: an open window idle while people it could call wait
WINDOW_IDLE = "window_idle"
DAY_STARTED = "day_started"
DEVICE_HEALTH = "device_health"
EVALUATION_PROMPTED = "evaluation_prompted"
EVALUATION_ENDED = "evaluation_ended"
TICKET_EVALUATED = "ticket_evaluated"
TIDAL_OPEN_PROPOSED = "tidal_open_proposed"
TIDAL_CLOSE_PROPOSED = "tidal_close_proposed"
# the clock went back behind what the hall recorded, and when it is right again (the runtime's)
CLOCK_FAULT = "clock_fault"
CLOCK_RESTORED = "clock_restored"
PATROL_DUE = "patrol_due"
PATROL_RECORDED = "patrol_recorded"
# 帮办代办: a kiosk called the guidance desk, and the call was answered
GUIDANCE_CALLED = "guidance_called"
GUIDANCE_ANSWERED = "guidance_answered"
# 配置下发: the district centre's configuration bundle taken into use
DISTRICT_BUNDLE_APPLIED = "district_bundle_applied"

# a field left out of `data` when it is None: some cases of the event never carried it
_OPTIONAL = {"optional": True}


def optional(default: Any = None) -> Any:
    return field(default=default, metadata=_OPTIONAL)


@dataclass(frozen=True, kw_only=True)
class Event:
    """Something that happened in the hall at `at`; a subclass per kind."""

    kind: ClassVar[str]
    at: dt.datetime
    window: int | None = None
    ticket: str | None = None
    # fields a stored event carried that this version does not know: kept, so that reading
    # an event and writing it out again loses nothing
    extra: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    # fields a stored event did not carry (an earlier version's): None here, and left out again
    absent: frozenset[str] = field(default=frozenset(), compare=False, repr=False)

    def omitted(self, name: str, value: Any) -> bool:
        """Whether `data` leaves the field `name` out."""
        return value is None and (name in self.absent or bool(_FIELD_META[type(self)].get(name)))

    @classmethod
    def upgrade(cls, data: dict[str, Any]) -> dict[str, Any]:
        """`data` of an event stored by an earlier version, completed to this version's."""
        return data

    def payload_head(self) -> dict[str, Any]:
        """What `data` says before the event's own fields (a case's opening names its kind)."""
        return {}


# -- tickets ------------------------------------------------------------------------

@dataclass(frozen=True, kw_only=True)
class TicketIssued(Event):
    kind = TICKET_ISSUED
    label: str
    service: str
    channel: str
    priority: str | None
    priority_by: str | None
    real_name: bool
    people_ahead: int
    eta: dict[str, Any]  # WaitEstimate.to_json()
    warning: str | None


@dataclass(frozen=True, kw_only=True)
class TicketCalled(Event):
    """Called by call-next, or out of order by number (叫指定号: with why and by whom)."""

    kind = TICKET_CALLED
    label: str
    service: str
    waited_seconds: int
    out_of_order: bool = False
    staff: str | None = None
    reason: str | None = None
    note: str | None = None

    def omitted(self, name: str, value: Any) -> bool:
        # a call-next's event never carried the fields of a call by number
        return (super().omitted(name, value)
                or not self.out_of_order and name in ("out_of_order", "staff", "reason", "note"))


@dataclass(frozen=True, kw_only=True)
class TicketRecalled(Event):
    kind = TICKET_RECALLED
    label: str
    recalls: int


@dataclass(frozen=True, kw_only=True)
class TicketMissed(Event):
    """过号: the ticket was called and its holder did not come."""

    kind = TICKET_MISSED
    label: str
    requeued: bool


@dataclass(frozen=True, kw_only=True)
class TicketFinished(Event):
    kind = TICKET_FINISHED
    label: str
    service: str
    staff: str | None
    auto: bool
    service_seconds: int | None
    # finished by the day's end (reason "day_end"), at `finished_at` rather than `at`
    reason: str | None = optional()
    finished_at: str | None = optional()


@dataclass(frozen=True, kw_only=True)
class TicketTransferred(Event):
    kind = TICKET_TRANSFERRED
    label: str
    source: str
    target: str


@dataclass(frozen=True, kw_only=True)
class TicketCancelled(Event):
    kind = TICKET_CANCELLED
    reason: str | None
    label: str | None = optional()  # the day's end cancels without one


@dataclass(frozen=True, kw_only=True)
class TicketRequeued(Event):
    kind = TICKET_REQUEUED
    label: str
    service: str
    reason: str


@dataclass(frozen=True, kw_only=True)
class TicketPhoneSet(Event):
    kind = TICKET_PHONE_SET
    label: str
    corrected: bool


# -- windows ------------------------------------------------------------------------

@dataclass(frozen=True, kw_only=True)
class WindowOpened(Event):
    kind = WINDOW_OPENED
    staff: str
    post: str  # "A" or "B"
    cover_for: str | None = optional()  # 顶岗: the A post whose paused window a B post took


@dataclass(frozen=True, kw_only=True)
class WindowClosed(Event):
    kind = WINDOW_CLOSED
    staff: str | None
    reason: str | None = optional()  # "day_end", "cover"; a logout has none
    cover: str | None = optional()
    seconds: int | None = optional()  # how long the login lasted


@dataclass(frozen=True, kw_only=True)
class WindowPaused(Event):
    kind = WINDOW_PAUSED
    staff: str | None
    reason: str
    minutes: int
    whereabouts: str | None
    until: str


@dataclass(frozen=True, kw_only=True)
class WindowResumed(Event):
    kind = WINDOW_RESUMED
    staff: str | None
    paused_seconds: int
    over_limit: bool
    cover: str | None = optional()


@dataclass(frozen=True, kw_only=True)
class PauseOverLimit(Event):
    kind = PAUSE_OVER_LIMIT
    staff: str | None
    reason: str | None
    paused_seconds: int


@dataclass(frozen=True, kw_only=True)
class WindowUncovered(Event):
    kind = WINDOW_UNCOVERED
    staff: list[str]  # the window's A posts
    names: list[str]
    since: str
    closed_seconds: int


@dataclass(frozen=True, kw_only=True)
class PostsAway(Event):
    kind = POSTS_AWAY
    staff: list[str]  # the window's A posts
    names: list[str]
    b_posts: list[str]
    b_names: list[str]


@dataclass(frozen=True, kw_only=True)
class WindowIdle(Event):
    kind = WINDOW_IDLE
    staff: str | None
    idle_seconds: int
    service: str
    waiting: int


@dataclass(frozen=True, kw_only=True)
class TidalOpenProposed(Event):
    kind = TIDAL_OPEN_PROPOSED
    service: str
    waiting: int
    eta_p50: float


@dataclass(frozen=True, kw_only=True)
class TidalCloseProposed(Event):
    kind = TIDAL_CLOSE_PROPOSED


# -- the hall -----------------------------------------------------------------------

@dataclass(frozen=True, kw_only=True)
class DayStarted(Event):
    kind = DAY_STARTED
    day: str


@dataclass(frozen=True, kw_only=True)
class DeviceHealth(Event):
    kind = DEVICE_HEALTH
    device: str
    state: str
    detail: str | None


@dataclass(frozen=True, kw_only=True)
class ClockFault(Event):
    kind = CLOCK_FAULT
    hall_time: str
    wall_clock: str
    behind_seconds: int
    day: str | None


@dataclass(frozen=True, kw_only=True)
class ClockRestored(Event):
    kind = CLOCK_RESTORED
    hall_time: str
    wall_clock: str
    behind_seconds: int
    day: str | None


@dataclass(frozen=True, kw_only=True)
class PatrolDue(Event):
    kind = PATROL_DUE
    time: str  # "09:30"
    day: str


@dataclass(frozen=True, kw_only=True)
class GuidanceCalled(Event):
    kind = GUIDANCE_CALLED
    kiosk: str


@dataclass(frozen=True, kw_only=True)
class GuidanceAnswered(Event):
    kind = GUIDANCE_ANSWERED
    kiosk: str
    staff: str
    staff_name: str
    waited_seconds: int


class WindowSnapshot(TypedDict):
    """在岗情况: who was at one window when a patrol was recorded."""

    window: int
    name: str
    status: str
    staff: str | None
    staff_name: str | None
    post: str | None
    pause_reason: str | None
    serving: str | None


@dataclass(frozen=True, kw_only=True)
class PatrolRecorded(Event):
    kind = PATROL_RECORDED
    day: str
    scheduled: str | None
    area: str
    no_problems: bool
    findings: str | None
    signer: str
    signer_name: str
    windows: list[WindowSnapshot]  # who was at each window (patrol.window_snapshot)


# -- evaluation ---------------------------------------------------------------------

@dataclass(frozen=True, kw_only=True)
class EvaluationPrompted(Event):
    kind = EVALUATION_PROMPTED
    label: str
    staff: str | None


@dataclass(frozen=True, kw_only=True)
class EvaluationEnded(Event):
    kind = EVALUATION_ENDED
    reason: str  # controller.core.evaluation: "timeout", "superseded", "day_end", "requeued"


@dataclass(frozen=True, kw_only=True)
class TicketEvaluated(Event):
    kind = TICKET_EVALUATED
    grade: str
    channel: str  # vocabulary.GradeChannel
    real_name: bool
    staff: str | None
    service: str | None
    tags: list[str]
    bad: bool  # a bad review (vocabulary.is_bad_review), decided once, here

    @classmethod
    def upgrade(cls, data: dict[str, Any]) -> dict[str, Any]:
        if "bad" not in data:
            data = {**data, "bad": is_bad_review(data.get("grade"), data.get("channel"))}
        return data


# -- cases (回访 / 投诉) ----------------------------------------------------------------
# The case workflow's events (controller.core.callbacks) name their case besides the window,
# the ticket and the staff member; `data` holds the transition and what was recorded with it.

@dataclass(frozen=True, kw_only=True)
class CaseEvent(Event):
    case: str | None
    case_kind: str  # controller.core.callbacks.CaseKind
    staff: str | None = None


@dataclass(frozen=True, kw_only=True)
class AnonymousBadReview(CaseEvent):
    """A bad review given without a name: counted, with no case (nobody to call back)."""

    kind = "anonymous_bad_review"
    grade: str
    service: str | None


@dataclass(frozen=True, kw_only=True)
class CaseOpened(CaseEvent):
    kind = "case_opened"
    source: str
    grade: str | None
    # the case's deadlines by the hall's calendar ({"callback_due": ISO time, ...}): what a
    # district centre, which has not the calendar, shows them by; cases opened before have none
    due: dict[str, str] | None = optional()

    def payload_head(self) -> dict[str, Any]:
        return {"kind": self.case_kind}


@dataclass(frozen=True, kw_only=True)
class CaseTransition(CaseEvent):
    from_state: str
    to_state: str


@dataclass(frozen=True, kw_only=True)
class CaseAssigned(CaseTransition):
    """问题交办"""

    kind = "case_assigned"
    officer: str


@dataclass(frozen=True, kw_only=True)
class CallbackRecorded(CaseTransition):
    """回访"""

    kind = "callback_recorded"
    reached: bool
    summary: str


@dataclass(frozen=True, kw_only=True)
class CaseVerified(CaseTransition):
    """调查核实"""

    kind = "case_verified"
    justified: bool
    finding: str


@dataclass(frozen=True, kw_only=True)
class CaseRectified(CaseTransition):
    """整改"""

    kind = "case_rectified"
    change: str


@dataclass(frozen=True, kw_only=True)
class FeedbackGiven(CaseTransition):
    """反馈"""

    kind = "feedback_given"
    summary: str


@dataclass(frozen=True, kw_only=True)
class FollowUpRecorded(CaseTransition):
    """追评"""

    kind = "follow_up_recorded"
    grade: str


@dataclass(frozen=True, kw_only=True)
class CaseClosed(CaseTransition):
    kind = "case_closed"


@dataclass(frozen=True, kw_only=True)
class CaseAppealed(CaseTransition):
    """申诉"""

    kind = "case_appealed"
    reason: str


@dataclass(frozen=True, kw_only=True)
class AppealDecided(CaseTransition):
    """复核"""

    kind = "appeal_decided"
    upheld: bool
    reviewer: str
    reason: str


@dataclass(frozen=True, kw_only=True)
class DistrictBundleApplied(Event):
    """配置下发: the district centre's bundle `version` (by `created_by`) is in use: the accounts
    in `disabled` were disabled and `enabled` enabled by it; its sections wait for the hall's
    next start when `restart_needed`."""

    kind = DISTRICT_BUNDLE_APPLIED
    version: int
    created_by: str
    disabled: list[str]
    enabled: list[str]
    restart_needed: bool


@dataclass(frozen=True, kw_only=True)
class UnknownEvent(Event):
    """An event of a kind this version does not know, read from the store: kept as it was."""

    kind = "unknown"
    name: str
    data: dict[str, Any]


KINDS: dict[str, type[Event]] = {
    cls.kind: cls for cls in (
        TicketIssued, TicketCalled, TicketRecalled, TicketMissed, TicketFinished,
        TicketTransferred, TicketCancelled, TicketRequeued, TicketPhoneSet,
        WindowOpened, WindowClosed, WindowPaused, WindowResumed, PauseOverLimit,
        WindowUncovered, PostsAway, WindowIdle, TidalOpenProposed, TidalCloseProposed,
        DayStarted, DeviceHealth, ClockFault, ClockRestored, PatrolDue, PatrolRecorded,
        GuidanceCalled, GuidanceAnswered,
        EvaluationPrompted, EvaluationEnded, TicketEvaluated,
        AnonymousBadReview, CaseOpened, CaseAssigned, CallbackRecorded, CaseVerified,
        CaseRectified, FeedbackGiven, FollowUpRecorded, CaseClosed, CaseAppealed, AppealDecided,
        DistrictBundleApplied,
    )
}
_COMMON = {"at", "window", "ticket", "extra", "absent"}
_CASE_COMMON = {"case", "case_kind", "staff"}
_FIELDS: dict[type[Event], tuple[dataclasses.Field[Any], ...]] = {
    cls: tuple(f for f in dataclasses.fields(cls) if f.name not in _COMMON
               and not (issubclass(cls, CaseEvent) and f.name in _CASE_COMMON))
    for cls in (*KINDS.values(), UnknownEvent)
}
_FIELD_META: dict[type[Event], dict[str, bool]] = {
    cls: {f.name: bool(f.metadata.get("optional")) for f in fs} for cls, fs in _FIELDS.items()
}


# -- the one serialisation ----------------------------------------------------------

def kind_of(event: Event) -> str:
    """The event's serialised kind name."""
    return event.name if isinstance(event, UnknownEvent) else event.kind


def payload(event: Event) -> dict[str, Any]:
    """The event's own fields as the `data` object of its JSON (and of the store's row)."""
    if isinstance(event, UnknownEvent):
        return dict(event.data)
    out = event.payload_head()
    for f in _FIELDS[type(event)]:
        value = getattr(event, f.name)
        if not event.omitted(f.name, value):
            out[f.name] = value
    out.update(event.extra)
    return out


def stored(event: Event) -> dict[str, Any]:
    """The event's `data` as the log stores it: a case's event names its case, the case's kind
    and the staff member there too (the log has no columns for them)."""
    out = payload(event)
    if isinstance(event, CaseEvent):
        out.update(case=event.case, case_kind=event.case_kind, staff=event.staff)
    return out


def to_json(event: Event) -> dict[str, Any]:
    """The event on the wire: the event stream, MQTT and the store use this shape; a case's
    event names its case, the case's kind and the staff member besides."""
    if isinstance(event, CaseEvent):
        return {"kind": event.kind, "at": event.at.isoformat(), "case": event.case,
                "case_kind": event.case_kind, "window": event.window, "ticket": event.ticket,
                "staff": event.staff, "data": payload(event)}
    return {"kind": kind_of(event), "at": event.at.isoformat(), "window": event.window,
            "ticket": event.ticket, "data": payload(event)}


def from_row(kind: str, at: dt.datetime | str, window: int | None, ticket: str | None,
             data: dict[str, Any] | None, **case: Any) -> Event:
    """The typed event of a stored row (`events`: kind, at, window, ticket_id, data), whatever
    version wrote it: a field it lacks takes its default (None where there is none), a field
    it has that this version does not know is kept in `extra`."""
    when = at if isinstance(at, dt.datetime) else dt.datetime.fromisoformat(at)
    data = dict(data or {})
    cls = KINDS.get(kind)
    if cls is None:
        return UnknownEvent(at=when, window=window, ticket=ticket, name=kind, data=data)
    data = cls.upgrade(data)
    args: dict[str, Any] = {}
    if issubclass(cls, CaseEvent):  # given apart (to_json's shape), or in the stored data
        args = {k: case[k] if k in case else data.get(k) for k in _CASE_COMMON}
        for k in _CASE_COMMON:
            data.pop(k, None)
    if cls is CaseOpened:
        data.pop("kind", None)  # the case's kind, said again
    absent = set()
    for f in _FIELDS[cls]:
        if f.name in data:
            args[f.name] = data.pop(f.name)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            args[f.name] = None
            absent.add(f.name)
    return cls(at=when, window=window, ticket=ticket, extra=data, absent=frozenset(absent), **args)


def from_json(obj: dict[str, Any]) -> Event:
    """The typed event of `to_json`'s shape (a stream or MQTT message, a stored row's dict)."""
    case = ({k: obj.get(k) for k in _CASE_COMMON} if "case_kind" in obj else {})
    return from_row(obj["kind"], obj["at"], obj.get("window"),
                    obj.get("ticket", obj.get("ticket_id")), obj.get("data"), **case)
