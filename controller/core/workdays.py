"""Working days (工作日) and the deadlines counted in them.

Working days follow the Chinese calendar: the State Council's yearly notice
sets the public holidays and the 调休 make-up working days, Saturdays or
Sundays worked in exchange for a longer holiday (hall-rules.md, "Bad reviews
and callbacks"). A `WorkCalendar` is that notice as plain data, for the years
it covers. Reading it from the `chinesecalendar` package and the hall's
`config/holidays.toml` is `controller.config.workdays`'s job.

For a year the calendar does not cover, Monday to Friday are working days.
That is a fallback, not an answer: callers ask `missing_years` and raise an
alert so the hall adds the year, rather than failing to compute a deadline.

A deadline is an instant: the end of its last day, i.e. midnight (00:00) at
the start of the following day, in the time zone of `start`. A case is late
once the clock reaches the deadline. So a case opened on Friday 2025-09-19 at
16:00 with 1 working day is due at 00:00 on Tuesday 2025-09-23: it may be
closed any time on Monday. Opened a week later, on Friday 2025-09-26, it is
due at the end of Sunday 2025-09-28, a 调休 working day before 国庆节.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

_DAY = dt.timedelta(days=1)


@dataclass(frozen=True)
class WorkCalendar:
    """工作日历: the holidays and 调休 working days of the years in `years`.

    `holidays` maps a day off that would otherwise be a working day, or a
    weekend day inside a holiday, to the holiday's name (`"国庆节"`).
    `workdays` maps a 调休 make-up working day (a Saturday or Sunday) to its
    name (`"国庆节调休"`). No day is in both. The dicts are not to be mutated;
    build a new calendar with `merge`.
    """

    holidays: dict[dt.date, str]
    workdays: dict[dt.date, str]
    years: frozenset[int]

    def __post_init__(self) -> None:
        both = sorted(self.holidays.keys() & self.workdays.keys())
        if both:
            raise ValueError(f"days both holiday and working day: {', '.join(map(str, both))}")

    def covers(self, year: int) -> bool:
        return year in self.years

    def is_working_day(self, day: dt.date) -> bool:
        """Whether `day` is a working day; Monday to Friday in a year not covered."""
        if isinstance(day, dt.datetime):
            day = day.date()
        if day.year in self.years:
            if day in self.workdays:
                return True
            if day in self.holidays:
                return False
        return day.weekday() < 5

    def missing_years(self, start: dt.date, end: dt.date) -> list[int]:
        """The years from `start`'s to `end`'s (inclusive) this calendar has no data for."""
        return [y for y in range(start.year, end.year + 1) if y not in self.years]

    def working_days_after(self, start: dt.datetime, n: int) -> dt.datetime:
        """The deadline `n` working days after `start`.

        The day of `start` never counts, even when it is a working day and
        the case was opened at 08:00: the deadline is the end of the n-th
        working day after it, i.e. midnight at the start of the next day,
        with `start`'s tzinfo. `n == 0` means the end of the day of `start`.
        """
        if n < 0:
            raise ValueError(f"a deadline needs n >= 0 working days, got {n}")
        day = start.date()
        for _ in range(n):
            day += _DAY
            while not self.is_working_day(day):
                day += _DAY
        return _end_of(day, start)

    def deadline(self, start: dt.datetime, amount: int, working_days: bool) -> dt.datetime:
        """The deadline of `amount` working days, or calendar days, after `start`.

        Calendar days: the end of the day `amount` days after the day of
        `start` (opened on 1 October with 15 days: due at 00:00 on 17 October).
        The same shape as a `controller.core.hall.Deadline`.
        """
        if working_days:
            return self.working_days_after(start, amount)
        if amount < 0:
            raise ValueError(f"a deadline needs amount >= 0 days, got {amount}")
        return _end_of(start.date() + dt.timedelta(days=amount), start)


def _end_of(day: dt.date, start: dt.datetime) -> dt.datetime:
    """The end of `day`: 00:00 on the next day, in the time zone of `start`."""
    return dt.datetime.combine(day + _DAY, dt.time(0), tzinfo=start.tzinfo)


def merge(base: WorkCalendar, override: WorkCalendar) -> WorkCalendar:
    """`base` with `override` on top: the override wins per date and adds its years.

    A day the override calls a holiday stops being a working day in `base`,
    and the other way round. Days the override does not mention keep `base`'s
    meaning, so an override cannot un-declare a holiday of `base` except by
    naming that day a 调休 working day.
    """
    holidays = {d: name for d, name in base.holidays.items() if d not in override.workdays}
    workdays = {d: name for d, name in base.workdays.items() if d not in override.holidays}
    holidays.update(override.holidays)
    workdays.update(override.workdays)
    return WorkCalendar(holidays, workdays, base.years | override.years)
