"""Where the hall's working-day calendar comes from.

Two sources, merged: the `chinesecalendar` package, which knows the years it
shipped with (version 1.11.0: 2004 to 2026), and the hall-maintained
`config/holidays.toml`, which adds years published after that release or
corrects a day. The format of that file is described at its top; every
mistake in it is a `ConfigError` naming the key path (`years.2027.holidays[2].date`).
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

from controller.core.workdays import WorkCalendar, merge
from controller.config.tomlkeys import ConfigError, Table, claim, read_toml

_YEAR = re.compile(r"\d{4}")


def from_chinesecalendar() -> WorkCalendar:
    """The calendar in the installed `chinesecalendar` package, names in Chinese.

    Its years are those from the first to the last year of its holiday table,
    the same range outside which `chinese_calendar.is_workday` raises.
    """
    import chinese_calendar
    from chinese_calendar.constants import Holiday

    chinese = {h.value: h.chinese for h in Holiday}
    holidays = {d: chinese.get(name, name) for d, name in chinese_calendar.holidays.items()}
    workdays = {d: chinese.get(name, name) + "调休" for d, name in chinese_calendar.workdays.items()}
    years = frozenset(range(min(holidays).year, max(holidays).year + 1))
    return WorkCalendar(holidays, workdays, years)


def load_overrides(path: str | Path) -> WorkCalendar:
    """The hall's own holiday file (`config/holidays.toml`) as a calendar."""
    source = str(path)
    data = read_toml(path)
    try:
        return parse_overrides(data)
    except ConfigError as e:
        raise ConfigError(e.key, e.reason, source) from None


def parse_overrides(data: dict[str, Any]) -> WorkCalendar:
    """Validate a parsed holiday file and build the calendar it describes."""
    top = Table(data, "", ("years",))
    raw_years = top.get("years", "a table [years.YYYY]", lambda v: isinstance(v, dict), {})
    holidays: dict[dt.date, str] = {}
    workdays: dict[dt.date, str] = {}
    years: set[int] = set()
    seen: dict[object, str] = {}
    for name, value in raw_years.items():
        key = f"years.{name}"
        if not _YEAR.fullmatch(name):
            raise ConfigError(key, "expected a four-digit year such as [years.2027]")
        year = int(name)
        entry = Table(value, key, ("holidays", "workdays"))
        for day, label, at in _days(entry, "holidays", year):
            claim(seen, day.isoformat(), at, "day")
            holidays[day] = label
        for day, label, at in _days(entry, "workdays", year):
            claim(seen, day.isoformat(), at, "day")
            if day.weekday() < 5:
                raise ConfigError(
                    f"{at}.date",
                    f"{day} is a {day:%A}; a 调休 working day is a Saturday or Sunday "
                    "(Monday to Friday are working days anyway)",
                )
            workdays[day] = label
        years.add(year)
    return WorkCalendar(holidays, workdays, frozenset(years))


def _days(entry: Table, name: str, year: int) -> list[tuple[dt.date, str, str]]:
    """The `{ date = ..., name = "..." }` items of one list, with their key paths."""
    expected = f"an array of {{ date = {year}-10-01, name = \"...\" }} (may be empty: {name} = [])"
    days: list[tuple[dt.date, str, str]] = []
    for key, value in entry.items(name, expected=expected):
        item = Table(value, key, ("date", "name"))
        day = item.get(
            "date",
            f"a TOML local date such as {year}-10-01 (no quotes, no time)",
            lambda v: type(v) is dt.date,
        )
        if day.year != year:
            item.fail("date", f"{day} is not in {year}; list it under [years.{day.year}]")
        days.append((day, item.text("name"), key))
    return days


def hall_calendar(path: str | Path | None) -> WorkCalendar:
    """The `chinesecalendar` data with the hall's holiday file on top (none when `path` is None)."""
    base = from_chinesecalendar()
    if path is None:
        return base
    return merge(base, load_overrides(path))
