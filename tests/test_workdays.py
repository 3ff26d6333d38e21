"""Working days and deadlines: 国庆节 2025, 调休 weekends, a year only the hall's file knows."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import chinese_calendar
import pytest

from controller.core.workdays import WorkCalendar, merge
from controller.config.tomlkeys import ConfigError
from controller.config.workdays import from_chinesecalendar, hall_calendar, load_overrides

SHANGHAI = ZoneInfo("Asia/Shanghai")
SHIPPED = Path(__file__).resolve().parent.parent / "config" / "holidays.toml"


def at(y: int, m: int, d: int, hh: int = 0, mm: int = 0) -> dt.datetime:
    return dt.datetime(y, m, d, hh, mm, tzinfo=SHANGHAI)


@pytest.fixture(scope="module")
def package() -> WorkCalendar:
    return from_chinesecalendar()


# --- what the package knows ---------------------------------------------------


def test_package_years_are_the_range_chinese_calendar_accepts(package: WorkCalendar) -> None:
    first, last = min(package.years), max(package.years)
    assert first == 2004 and last >= 2026
    assert package.years == frozenset(range(first, last + 1))
    chinese_calendar.is_workday(dt.date(last, 12, 31))
    with pytest.raises(NotImplementedError):
        chinese_calendar.is_workday(dt.date(last + 1, 1, 4))


def test_every_covered_day_agrees_with_the_package(package: WorkCalendar) -> None:
    day, end = dt.date(min(package.years), 1, 1), dt.date(max(package.years), 12, 31)
    while day <= end:
        assert package.is_working_day(day) == chinese_calendar.is_workday(day), day
        day += dt.timedelta(days=1)


def test_names_are_in_chinese(package: WorkCalendar) -> None:
    assert package.holidays[dt.date(2025, 10, 1)] == "国庆节"
    assert package.workdays[dt.date(2025, 9, 28)] == "国庆节调休"


# --- 国庆节 2025: 1-8 October off, Sunday 28 September and Saturday 11 October worked


@pytest.mark.parametrize(
    ("day", "working"),
    [
        (dt.date(2025, 9, 26), True),  # Friday
        (dt.date(2025, 9, 27), False),  # Saturday
        (dt.date(2025, 9, 28), True),  # Sunday, 调休
        (dt.date(2025, 9, 30), True),  # Tuesday
        *[(dt.date(2025, 10, d), False) for d in range(1, 9)],  # 国庆节 and 中秋, Wed 1 to Wed 8
        (dt.date(2025, 10, 9), True),  # Thursday
        (dt.date(2025, 10, 10), True),  # Friday
        (dt.date(2025, 10, 11), True),  # Saturday, 调休
        (dt.date(2025, 10, 12), False),  # Sunday
    ],
)
def test_national_day_2025(package: WorkCalendar, day: dt.date, working: bool) -> None:
    assert package.is_working_day(day) is working
    assert chinese_calendar.is_workday(day) is working


def test_the_package_tables_say_the_same(package: WorkCalendar) -> None:
    assert all(dt.date(2025, 10, d) in chinese_calendar.holidays for d in range(1, 9))
    assert {d for d in chinese_calendar.workdays if dt.date(2025, 9, 1) <= d <= dt.date(2025, 10, 31)} == {
        dt.date(2025, 9, 28),
        dt.date(2025, 10, 11),
    }


@pytest.mark.parametrize(
    ("start", "amount", "working_days", "due"),
    [
        # Opened the day before the holiday: the first working day after it is Thursday 9 October.
        (at(2025, 9, 30, 16), 1, True, at(2025, 10, 10)),
        (at(2025, 9, 30, 8), 2, True, at(2025, 10, 11)),
        (at(2025, 9, 30, 8), 3, True, at(2025, 10, 12)),  # Saturday 11 October is 调休
        (at(2025, 9, 30, 8), 4, True, at(2025, 10, 14)),
        # Opened on a Friday, the 调休 Sunday is the next working day.
        (at(2025, 9, 26, 16), 1, True, at(2025, 9, 29)),
        # An ordinary week: Friday afternoon, 1 working day, due at the end of Monday.
        (at(2025, 9, 19, 16), 1, True, at(2025, 9, 23)),
        # Opened during the holiday, the day itself never counts.
        (at(2025, 10, 3, 10), 1, True, at(2025, 10, 10)),
        (at(2025, 9, 30, 23, 59), 0, True, at(2025, 10, 1)),
        # 5 working days (001 5.1.5.3), 15 working days (Sichuan) across the holiday.
        (at(2025, 9, 29, 9), 5, True, at(2025, 10, 14)),
        (at(2025, 9, 29, 9), 15, True, at(2025, 10, 28)),
        # Calendar days ignore the calendar: 15 days (Zhejiang) from 1 October.
        (at(2025, 10, 1, 9), 15, False, at(2025, 10, 17)),
        (at(2025, 9, 30, 16), 1, False, at(2025, 10, 2)),
        (at(2025, 9, 30, 16), 0, False, at(2025, 10, 1)),
    ],
)
def test_deadlines(
    package: WorkCalendar, start: dt.datetime, amount: int, working_days: bool, due: dt.datetime
) -> None:
    assert package.deadline(start, amount, working_days) == due
    assert package.deadline(start, amount, working_days).tzinfo is SHANGHAI


def test_a_case_is_on_time_all_through_its_last_working_day(package: WorkCalendar) -> None:
    due = package.working_days_after(at(2025, 9, 30, 16), 1)
    assert at(2025, 10, 9, 23, 59) < due <= at(2025, 10, 10, 0, 0)


def test_naive_times_stay_naive(package: WorkCalendar) -> None:
    assert package.working_days_after(dt.datetime(2025, 9, 30, 16), 1) == dt.datetime(2025, 10, 10)


def test_negative_amounts_are_programming_errors(package: WorkCalendar) -> None:
    with pytest.raises(ValueError):
        package.working_days_after(at(2025, 9, 30), -1)
    with pytest.raises(ValueError):
        package.deadline(at(2025, 9, 30), -1, working_days=False)


# --- a year the package does not know ---------------------------------------------


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "holidays.toml"
    path.write_text(text, encoding="utf-8")
    return path


HALL_2027 = """
[years.2027]
holidays = [
  { date = 2027-10-01, name = "国庆节" },
  { date = 2027-10-04, name = "国庆节" },
]
workdays = [{ date = 2027-10-09, name = "国庆节调休" }]
"""


def test_a_year_covered_only_by_the_hall_file(tmp_path: Path) -> None:
    calendar = hall_calendar(write(tmp_path, HALL_2027))
    assert 2027 in calendar.years and calendar.missing_years(at(2027, 1, 1), at(2027, 12, 31)) == []
    assert not calendar.is_working_day(dt.date(2027, 10, 1))  # Friday, 国庆节
    assert calendar.is_working_day(dt.date(2027, 10, 9))  # Saturday, 调休
    assert calendar.is_working_day(dt.date(2027, 10, 5))  # Tuesday, not listed
    # Thursday 30 September + 1 working day: Friday 1 and Monday 4 off, due at the end of Tuesday 5.
    assert calendar.working_days_after(at(2027, 9, 30, 16), 1) == at(2027, 10, 6)
    assert calendar.working_days_after(at(2027, 10, 8, 16), 1) == at(2027, 10, 10)
    # The package's own years are untouched.
    assert not calendar.is_working_day(dt.date(2025, 10, 8))


def test_the_hall_file_wins_per_day(package: WorkCalendar, tmp_path: Path) -> None:
    fix = """
[years.2025]
holidays = [{ date = 2025-10-09, name = "国庆节(本地延长)" }]
workdays = [{ date = 2025-10-05, name = "本地调休" }]
"""
    calendar = merge(package, load_overrides(write(tmp_path, fix)))
    assert not calendar.is_working_day(dt.date(2025, 10, 9))
    assert calendar.is_working_day(dt.date(2025, 10, 5)) and dt.date(2025, 10, 5) not in calendar.holidays
    assert not calendar.is_working_day(dt.date(2025, 10, 8))  # not mentioned: the package's answer


def test_a_year_with_no_data_falls_back_to_monday_to_friday(package: WorkCalendar) -> None:
    year = max(package.years) + 5
    start = dt.datetime(year, 10, 1, 9, tzinfo=SHANGHAI)
    friday = start + dt.timedelta(days=(4 - start.weekday()) % 7)
    assert package.missing_years(start, start) == [year]
    assert package.missing_years(at(2025, 12, 1), start) == list(range(max(package.years) + 1, year + 1))
    assert package.missing_years(at(2025, 1, 1), at(2025, 12, 31)) == []
    assert package.is_working_day(friday) and not package.is_working_day(friday + dt.timedelta(days=1))
    assert package.working_days_after(friday, 1) == friday.replace(hour=0) + dt.timedelta(days=4)


def test_an_empty_calendar_is_monday_to_friday() -> None:
    empty = WorkCalendar({}, {}, frozenset())
    assert empty.working_days_after(at(2025, 9, 30, 16), 1) == at(2025, 10, 2)
    assert empty.missing_years(at(2025, 9, 30), at(2026, 1, 1)) == [2025, 2026]


def test_the_shipped_file_loads_and_adds_nothing(package: WorkCalendar) -> None:
    shipped = load_overrides(SHIPPED)
    assert shipped.years == frozenset() and hall_calendar(SHIPPED) == package


def test_a_day_cannot_be_both_off_and_worked() -> None:
    day = dt.date(2027, 10, 2)
    with pytest.raises(ValueError, match="2027-10-02"):
        WorkCalendar({day: "国庆节"}, {day: "调休"}, frozenset({2027}))


# --- mistakes in the hall file name their key ---------------------------------------


@pytest.mark.parametrize(
    ("text", "key", "says"),
    [
        ("[year.2027]\nholidays = []\nworkdays = []\n", "year", "did you mean 'years'"),
        ("years = 2027\n", "years", "expected a table"),
        ("[years.next]\nholidays = []\nworkdays = []\n", "years.next", "four-digit year"),
        ("[years.2027]\nworkdays = []\n", "years.2027.holidays", "missing"),
        ("[years.2027]\nholidays = []\n", "years.2027.workdays", "missing"),
        ("[years.2027]\nholiday = []\nworkdays = []\n", "years.2027.holiday", "did you mean 'holidays'"),
        ("[years.2027]\nholidays = {}\nworkdays = []\n", "years.2027.holidays", "expected an array"),
        (
            '[years.2027]\nholidays = [{ date = "2027-10-01", name = "国庆节" }]\nworkdays = []\n',
            "years.2027.holidays[0].date",
            "local date",
        ),
        (
            '[years.2027]\nholidays = [{ date = 2027-10-01T00:00:00, name = "国庆节" }]\nworkdays = []\n',
            "years.2027.holidays[0].date",
            "local date",
        ),
        (
            '[years.2027]\nholidays = [{ date = 2027-10-01 }]\nworkdays = []\n',
            "years.2027.holidays[0].name",
            "missing",
        ),
        (
            '[years.2027]\nholidays = [{ date = 2027-10-01, name = "国庆节", half = true }]\nworkdays = []\n',
            "years.2027.holidays[0].half",
            "unknown key",
        ),
        (
            '[years.2027]\nholidays = [{ date = 2028-01-01, name = "元旦" }]\nworkdays = []\n',
            "years.2027.holidays[0].date",
            "[years.2028]",
        ),
        (
            '[years.2027]\nholidays = []\nworkdays = [{ date = 2027-10-08, name = "国庆节调休" }]\n',
            "years.2027.workdays[0].date",
            "Saturday or Sunday",
        ),
        (
            "[years.2027]\n"
            'holidays = [{ date = 2027-10-02, name = "国庆节" }]\n'
            'workdays = [{ date = 2027-10-02, name = "国庆节调休" }]\n',
            "years.2027.workdays[0]",
            "duplicate day",
        ),
        ("[years.2027\n", "(file)", "not valid TOML"),
    ],
)
def test_mistakes_name_the_key(tmp_path: Path, text: str, key: str, says: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_overrides(path)
    assert caught.value.key == key
    assert says in caught.value.reason
    assert caught.value.source == str(path)


def test_a_missing_file_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        hall_calendar(tmp_path / "nope.toml")
    assert caught.value.key == "(file)" and "nope.toml" in str(caught.value)
