"""The hall's changing state: tickets, windows and the queues, as plain data.

`Ticket` and `WindowState` are the persisted facts. `QueueIndex` and the
service-time averages are derived from them and rebuilt on load, so the
database holds one truth and memory only a faster view of it.
"""

from __future__ import annotations

import bisect
import datetime as dt
from dataclasses import dataclass, field
from enum import StrEnum


class TicketStatus(StrEnum):
    WAITING = "waiting"
    CALLED = "called"
    FINISHED = "finished"
    NO_SHOW = "no_show"
    CANCELLED = "cancelled"


OPEN_STATUSES = (TicketStatus.WAITING, TicketStatus.CALLED)


class Channel(StrEnum):
    """How the ticket was taken (取号渠道)."""

    KIOSK = "kiosk"
    STAFF = "staff"
    APPOINTMENT = "appointment"


class PriorityClass(StrEnum):
    """绿色通道: the special groups served first (老、弱、病、残、孕, and urgent cases)."""

    ELDERLY = "elderly"
    DISABLED = "disabled"
    ILL = "ill"
    PREGNANT = "pregnant"
    URGENT = "urgent"


class WindowStatus(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    PAUSED = "paused"


@dataclass(slots=True)
class Ticket:
    """号: one citizen's place in a service queue for one day."""

    id: str
    day: dt.date
    prefix: str
    number: int
    label: str
    service: str
    channel: Channel
    issued_at: dt.datetime
    queued_at: dt.datetime
    queue_seq: int
    status: TicketStatus = TicketStatus.WAITING
    priority: PriorityClass | None = None
    appointment_at: dt.datetime | None = None
    priority_by: str | None = None  # who granted it: "staff:<id>", or "rule:age" (core.priority)
    id_masked: str | None = None
    name_masked: str | None = None
    citizen_key: str | None = None
    identity_sealed: str | None = None
    window: int | None = None
    staff_id: str | None = None
    called_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None
    recalls: int = 0
    requeued: bool = False
    transfers: int = 0
    # what the ticket promised, kept so estimate accuracy can be measured
    ahead_at_issue: int | None = None
    eta_p10: float | None = None
    eta_p50: float | None = None
    eta_p90: float | None = None
    # 好差评: the grade by name, how it was given, when; the phone for a callback, sealed
    grade: str | None = None
    grade_channel: str | None = None
    graded_at: dt.datetime | None = None
    grade_tags: str | None = None
    phone_sealed: str | None = None
    # the kiosk's idempotency key ("kiosk:<id>:<key>"): a repeated request gets this ticket
    request_key: str | None = None

    @property
    def real_name(self) -> bool:
        return self.id_masked is not None


@dataclass(slots=True)
class WindowState:
    """What a window is doing now: closed, open (idle or serving) or paused (暂停服务)."""

    number: int
    status: WindowStatus = WindowStatus.CLOSED
    staff_id: str | None = None
    post: str | None = None  # "A" or "B"
    logged_in_at: dt.datetime | None = None
    current: str | None = None
    paused_at: dt.datetime | None = None
    pause_reason: str | None = None
    pause_minutes: int | None = None
    pause_alerted: bool = False
    pause_whereabouts: str | None = None
    evaluating: str | None = None  # the ticket the window's pad asks about now
    prompted_at: dt.datetime | None = None


QueueKey = tuple[dt.datetime, int, str]


@dataclass(slots=True)
class ServiceQueue:
    """Waiting tickets of one service in calling order, in three lanes."""

    appointments: list[QueueKey] = field(default_factory=list)
    priority: list[QueueKey] = field(default_factory=list)
    regular: list[QueueKey] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.appointments) + len(self.priority) + len(self.regular)


class QueueIndex:
    """The waiting tickets of every service, kept sorted for calling.

    Appointments are keyed by their slot, the others by the time they joined
    the queue; the queue sequence number breaks ties, so the order is total.
    """

    def __init__(self, prefixes: list[str]) -> None:
        self.services: dict[str, ServiceQueue] = {p: ServiceQueue() for p in prefixes}
        # (service, citizen key) -> that citizen's waiting tickets, so the one-ticket-per-person
        # check does not scan a rush hour's queue for every real-name ticket
        self.held: dict[tuple[str, str], list[str]] = {}

    def lane(self, t: Ticket, priority_first: bool) -> tuple[list[QueueKey], QueueKey]:
        q = self.services[t.service]
        if t.appointment_at is not None:
            return q.appointments, (t.appointment_at, t.queue_seq, t.id)
        key = (t.queued_at, t.queue_seq, t.id)
        return (q.priority if t.priority and priority_first else q.regular), key

    def add(self, t: Ticket, priority_first: bool) -> None:
        lane, key = self.lane(t, priority_first)
        bisect.insort(lane, key)
        if t.citizen_key is not None:
            self.held.setdefault((t.service, t.citizen_key), []).append(t.id)

    def remove(self, t: Ticket, priority_first: bool) -> None:
        lane, key = self.lane(t, priority_first)
        i = bisect.bisect_left(lane, key)
        if i == len(lane) or lane[i] != key:
            raise KeyError(f"ticket {t.id} is not queued")
        del lane[i]
        if t.citizen_key is not None:
            held = self.held.get((t.service, t.citizen_key), [])
            if t.id in held:
                held.remove(t.id)
            if not held:
                self.held.pop((t.service, t.citizen_key), None)

    def held_by(self, prefix: str, citizen_key: str) -> list[str]:
        """The ids of the waiting tickets of `prefix` that this citizen holds, oldest first."""
        return list(self.held.get((prefix, citizen_key), ()))

    def waiting(self, prefix: str) -> int:
        return len(self.services[prefix])

    def ahead_of(self, t: Ticket, priority_first: bool) -> int:
        """Tickets of the same service that would be called before `t`."""
        q = self.services[t.service]
        lane, key = self.lane(t, priority_first)
        before = bisect.bisect_left(lane, key)
        if lane is q.appointments:
            return before
        if lane is q.priority:
            return len(q.appointments) + before
        return len(q.appointments) + len(q.priority) + before


@dataclass
class HallState:
    """Everything the controller knows about the hall's day."""

    day: dt.date | None
    tickets: dict[str, Ticket]
    windows: dict[int, WindowState]
    queues: QueueIndex
    last_number: dict[str, int] = field(default_factory=dict)
    queue_seq: int = 0
    # exponentially weighted mean of service minutes per service
    service_minutes: dict[str, float] = field(default_factory=dict)
    # device id -> (health, detail) as the drivers last reported it
    devices: dict[str, tuple[str, str]] = field(default_factory=dict)
    # device id -> when it last changed its health: how long a fault has stood
    device_since: dict[str, dt.datetime] = field(default_factory=dict)
    # tidal window -> "open" or "close": the proposal standing for it, made once
    tidal: dict[int, str] = field(default_factory=dict)
    # citizen key -> the ids of the day's tickets taken with that identity (the daily limit
    # reads these rather than every ticket of the day)
    by_citizen: dict[str, list[str]] = field(default_factory=dict)
    # service -> when its waiting tickets were called today, in order, for the wait estimate
    calls: dict[str, list[dt.datetime]] = field(default_factory=dict)
    first_call: dt.datetime | None = None  # the day's first call: the hall has been calling since
    # the floor alerts' clocks (windows.py `_watch_posts`), kept in memory only: after a restart
    # they start again from the first tick, so an alert comes late rather than wrongly early
    closed_since: dict[int, dt.datetime] = field(default_factory=dict)
    idle_since: dict[int, dt.datetime] = field(default_factory=dict)
    # (alert kind, window) -> when raised: the alerts standing now, each raised once until its
    # cause ends
    alerted: dict[tuple[str, int], dt.datetime] = field(default_factory=dict)
    # the patrol times ("09:30") already reminded today (controller.core.patrol)
    patrols_reminded: set[str] = field(default_factory=set)
    # kiosk -> when its 帮办代办 call was made: the calls the guidance desk has not answered
    # (controller.core.guidance); rebuilt from today's events after a restart
    guidance_calls: dict[str, dt.datetime] = field(default_factory=dict)

    def current_at(self, window: int) -> Ticket | None:
        cur = self.windows[window].current
        return self.tickets[cur] if cur else None

    def find_label(self, label: str) -> Ticket | None:
        for t in self.tickets.values():
            if t.label == label:
                return t
        return None
