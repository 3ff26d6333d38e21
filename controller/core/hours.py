"""When tickets may be taken: opening hours, the early start and the cut-off (取号截止)."""

from __future__ import annotations

import datetime as dt

from controller.core.errors import HallError
from controller.core.hall import Hall


def _shift(t: dt.time, minutes: int) -> dt.time:
    moment = dt.datetime.combine(dt.date(2000, 1, 1), t) + dt.timedelta(minutes=minutes)
    return moment.time() if moment.date() == dt.date(2000, 1, 1) else (
        dt.time.min if minutes < 0 else dt.time.max)


def issuing_spans(hall: Hall, day: dt.date) -> list[tuple[dt.time, dt.time]]:
    """The times of `day` at which a ticket may be taken, one span per session."""
    rules = hall.rules
    return [(_shift(s.start, -rules.tickets_open_before_minutes),
             _shift(s.end, -rules.ticket_cutoff_minutes))
            for s in hall.hours_on(day).sessions]


def check_issuing(hall: Hall, now: dt.datetime) -> None:
    """Raise unless a ticket may be taken at `now`; the message says when it can."""
    spans = issuing_spans(hall, now.date())
    if not spans:
        raise HallError("hall_closed")
    t = now.time()
    if any(start <= t < end for start, end in spans):
        return
    later = [start for start, _ in spans if start > t]
    ended = [end for _, end in spans if end <= t]
    if later and ended:
        raise HallError("before_opening",
                        f"本时段取号已于 {ended[-1]:%H:%M} 截止，{later[0]:%H:%M} 起取号")
    if later:
        raise HallError("before_opening", f"还未到取号时间，{later[0]:%H:%M} 起取号")
    raise HallError("after_cutoff", f"今日取号已于 {spans[-1][1]:%H:%M} 截止，请明天再来")


def closing_time(hall: Hall, day: dt.date) -> dt.time | None:
    sessions = hall.hours_on(day).sessions
    return sessions[-1].end if sessions else None
