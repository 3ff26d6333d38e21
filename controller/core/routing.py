"""Routing: which ticket a window calls next, how many are ahead, and the wait estimate.
Pure, like the engine."""

from __future__ import annotations

import datetime as dt

import bisect

from controller.core.estimate import WaitEstimate, call_rate, estimate_wait, rate_window
from controller.core.hall import Hall, Staff, Window
from controller.core.lookups import priority_first
from controller.core.model import HallState, Ticket, WindowStatus


def next_for(hall: Hall, state: HallState, window: int, now: dt.datetime) -> Ticket | None:
    """The ticket this window calls next.

    Services in the window's priority order; within a service, appointments
    whose slot has come, then priority tickets (when the service says so),
    then the rest, oldest first.
    """
    due = now + dt.timedelta(minutes=hall.rules.appointment_early_minutes)
    for prefix in hall.windows[window].services:
        q = state.queues.services[prefix]
        if q.appointments and q.appointments[0][0] <= due:
            return state.tickets[q.appointments[0][2]]
        for lane in (q.priority, q.regular):
            if lane:
                return state.tickets[lane[0][2]]
    return None


def people_ahead(hall: Hall, state: HallState, t: Ticket) -> int:
    return state.queues.ahead_of(t, priority_first(hall, t.service))


def estimate(hall: Hall, state: HallState, prefix: str, ahead: int,
             now: dt.datetime) -> WaitEstimate:
    """P10/P50/P90 minutes for a ticket with `ahead` tickets before it in `prefix`, at `now`:
    the recent call rate and the time to opening depend on it."""
    configured = hall.windows_serving(prefix)
    serving, idle = _serving(state, configured)
    mean = state.service_minutes.get(prefix, hall.services[prefix].mean_minutes)
    delay = 0.0
    if not serving:
        # nobody serves it yet: the windows whose staff are expected for the session will
        # (those with an A post), opening at its start; once the session is older than
        # `staff_expected_minutes` without them, at the next session's
        expected = [w for w in configured if not w.tidal and a_posts(hall, w.number)]
        serving = expected or [w for w in configured if not w.tidal] or configured
        delay = _minutes_to_opening(hall, now, bool(expected)) if now else 0.0
        # not counted free when they open: on the hall-day simulator that promised the first
        # in line too short a wait (staff come a few minutes late, the rush starts at once)
    capacity = _capacity(state, prefix, serving) / mean
    rate = capacity
    # A short queue is no backlog: its windows call as fast as tickets come, so the recent
    # calls say how many came, not how fast the windows go; the capacity says that.
    backlog = state.queues.waiting(prefix) > len(serving)
    if backlog and now is not None and state.first_call is not None and not delay:
        calls = state.calls.get(prefix, [])
        calling = _minutes_calling(hall, state, now)
        window = min(rate_window(capacity), calling)
        recent = call_rate(_calls_since(calls, now, window), window, capacity)
        # a service served only when its windows' earlier services run dry is called in
        # bursts: over the whole session its rate is steadier than over the last minutes
        session = call_rate(_calls_since(calls, now, calling), calling, capacity)
        rate = max(recent, session)
    return estimate_wait(ahead, len(serving), idle, mean, rate=rate, delay_minutes=delay)


def _serving(state: HallState, configured: list[Window]) -> tuple[list[Window], int]:
    """The windows of `configured` not closed, and how many of them are open with nobody
    called (one pass: every ticket issued asks, and a hall has up to some 300 windows)."""
    serving = []
    idle = 0
    windows = state.windows
    closed, open_ = WindowStatus.CLOSED, WindowStatus.OPEN  # an enum's member read once, not 600 times
    for w in configured:
        ws = windows[w.number]
        if ws.status is closed:
            continue
        serving.append(w)
        if ws.status is open_ and ws.current is None:
            idle += 1
    return serving, idle


def _capacity(state: HallState, prefix: str, serving: list[Window]) -> float:
    """How many windows' worth of service `prefix` gets now: a window gives itself to its
    first service with a queue, so one busy with an earlier service gives little. Windows
    with the same services give the same share, worked out once."""
    total = 0.0
    shares: dict[tuple[str, ...], float] = {}
    for w in serving:
        share = shares.get(w.services)
        if share is None:
            earlier = w.services[:w.services.index(prefix)]
            busy_before = sum(1 for p in earlier if state.queues.waiting(p))
            share = shares[w.services] = 1.0 / (1 + busy_before)
        total += share
    return max(total, 0.5)


def _minutes_calling(hall: Hall, state: HallState, now: dt.datetime) -> float:
    """How long the windows have been calling in this session (a lunch break has no calls,
    and must not read as a slow hall)."""
    started = state.first_call
    for s in hall.hours_on(now.date()).sessions:
        start = dt.datetime.combine(now.date(), s.start, now.tzinfo)
        if start <= now and (started is None or start > started):
            started = start
    return max(0.0, (now - started).total_seconds() / 60) if started else 0.0


def _minutes_to_opening(hall: Hall, now: dt.datetime, expected: bool) -> float:
    """Minutes until the windows open: the next session's start, or none while the session
    on now is younger than `staff_expected_minutes` and staff are `expected` for it."""
    grace = dt.timedelta(minutes=hall.rules.staff_expected_minutes)
    for s in hall.hours_on(now.date()).sessions:
        start = dt.datetime.combine(now.date(), s.start, now.tzinfo)
        end = dt.datetime.combine(now.date(), s.end, now.tzinfo)
        if now < start:
            return (start - now).total_seconds() / 60
        if expected and now < min(start + grace, end):
            return 0.0
    return 0.0


def a_posts(hall: Hall, window: int) -> list[Staff]:
    """The staff whose A post (A岗) is `window`."""
    return _posts(hall)[0].get(window, [])


def b_posts(hall: Hall, window: int) -> list[Staff]:
    """The staff registered to cover `window` (B岗)."""
    return _posts(hall)[1].get(window, [])


# the posts of the halls in use, by window: the tick asks for every window's, every second
_POSTS: dict[int, tuple[Hall, tuple[dict[int, list[Staff]], dict[int, list[Staff]]]]] = {}


def _posts(hall: Hall) -> tuple[dict[int, list[Staff]], dict[int, list[Staff]]]:
    known = _POSTS.get(id(hall))
    if known is not None and known[0] is hall:
        return known[1]
    a: dict[int, list[Staff]] = {}
    b: dict[int, list[Staff]] = {}
    for staff in hall.staff.values():
        for n in staff.a_post:
            a.setdefault(n, []).append(staff)
        for n in staff.b_post:
            b.setdefault(n, []).append(staff)
    if len(_POSTS) > 16:  # tests and tools make many halls; a running controller has one
        _POSTS.clear()
    _POSTS[id(hall)] = (hall, (a, b))
    return a, b


def record_call(state: HallState, prefix: str, at: dt.datetime) -> None:
    """A waiting ticket of `prefix` was called: one step of its queue, for the call rate."""
    calls = state.calls.setdefault(prefix, [])
    if calls and at < calls[-1]:
        bisect.insort(calls, at)
    else:
        calls.append(at)
    if state.first_call is None or at < state.first_call:
        state.first_call = at


def _calls_since(calls: list[dt.datetime], now: dt.datetime, minutes: float) -> int:
    """Calls in the `minutes` up to `now` (calls are kept in time order)."""
    since = now - dt.timedelta(minutes=minutes)
    return bisect.bisect_right(calls, now) - bisect.bisect_right(calls, since)
