"""When tickets may be taken: opening hours, the early start and the cut-off (取号截止)."""

from __future__ import annotations

import datetime as dt

from controller.core.errors import HallError
from controller.core.hall import WEEKDAY_NAMES, Hall, OpeningDay


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
        raise HallError("hall_closed", closed_message(hall, now.date()))
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
    closed = f"今日取号已于 {spans[-1][1]:%H:%M} 截止"
    following = hall.next_open_day(now.date())
    if following is None or following.day == now.date() + dt.timedelta(days=1):
        raise HallError("after_cutoff", f"{closed}，请明天再来")
    # not tomorrow: a weekend or a holiday comes first
    raise HallError("after_cutoff", f"{closed}。{_opens_again(following)}")


def closed_message(hall: Hall, day: dt.date) -> str:
    """Why the hall is closed on `day`, and when it opens next: what the kiosk says."""
    opening = hall.opening_on(day)
    text = f"今天不办公：{opening.closed_reason}" if opening.closed_reason else "今天不办公"
    following = hall.next_open_day(day)
    return f"{text}。{_opens_again(following)}" if following is not None else text


def _opens_again(following: OpeningDay) -> str:
    """10月8日（周四）09:00 起办公"""
    day, first = following.day, following.hours.sessions[0].start
    return f"{day.month}月{day.day}日（{WEEKDAY_NAMES[day.weekday()]}）{first:%H:%M} 起办公"


def session_end(hall: Hall, now: dt.datetime) -> dt.time | None:
    """When the session a ticket taken at `now` belongs to ends (12:00 for a morning ticket)."""
    for session, (start, end) in zip(hall.hours_on(now.date()).sessions,
                                     issuing_spans(hall, now.date()), strict=True):
        if start <= now.time() < end:
            return session.end
    return None


def near_closing_warning(hall: Hall, now: dt.datetime, p90_minutes: float) -> str | None:
    """The warning a ticket carries when its wait may run past the end of the session."""
    end = session_end(hall, now)
    if end is None:
        return None
    cutoff = dt.datetime.combine(now.date(), end, now.tzinfo) - dt.timedelta(
        minutes=hall.rules.ticket_cutoff_minutes)
    if now < cutoff - dt.timedelta(minutes=hall.rules.near_closing_minutes):
        return None
    if now + dt.timedelta(minutes=p90_minutes) <= dt.datetime.combine(now.date(), end, now.tzinfo):
        return None
    return f"临近下班：预计等候可能超过 {end:%H:%M}，如未能办理请预约或改日再来"


def closing_time(hall: Hall, day: dt.date) -> dt.time | None:
    sessions = hall.hours_on(day).sessions
    return sessions[-1].end if sessions else None
