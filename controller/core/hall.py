"""The hall as configured: services, windows, staff, opening hours and rules.

Plain frozen data. Reading and validating the TOML file that describes a hall
is `controller.config.hall`'s job; the core only ever sees these values.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import StrEnum

from controller.core.assessment import AssessmentTable
from controller.core.workdays import WorkCalendar
from vocabulary import LABELS


class WindowKind(StrEnum):
    """窗口类型: the kinds of counter window a hall sets up (002, 制度12 第九条)."""

    GENERAL = "综合受理"
    CROSS_REGION = "跨域通办"
    THEMED = "主题集成服务"
    ASSISTED = "帮办代办"
    COMPLAINTS = "投诉咨询"
    TIDAL = "潮汐服务"


class StaffRole(StrEnum):
    STAFF = "staff"
    SUPERVISOR = "supervisor"
    CALLBACK_OFFICER = "callback_officer"
    ADMIN = "admin"


class NoShowPolicy(StrEnum):
    """What happens to a missed ticket (过号)."""

    DROP = "drop"
    REQUEUE_ONCE = "requeue_once"


class TransferPosition(StrEnum):
    """Where a transferred ticket joins the target service's queue."""

    ORIGINAL_TIME = "original_time"
    BACK = "back"


@dataclass(frozen=True)
class Service:
    """事项 / 业务: a service citizens queue for; tickets are numbered per prefix (A001…)."""

    prefix: str
    name: str
    kind: str
    mean_minutes: float
    priority_first: bool = True


@dataclass(frozen=True)
class Window:
    """窗口: a numbered counter window serving services in its priority order."""

    number: int
    name: str
    kind: WindowKind
    services: tuple[str, ...]
    tidal: bool = False
    # 绿色通道窗口: staff logged in here may give a ticket priority (controller.core.priority)
    green_channel: bool = False


@dataclass(frozen=True)
class Staff:
    """A member of staff. A-post (A岗) windows are their own; B-post (B岗) windows they may cover."""

    id: str
    name: str
    role: StaffRole
    pin_hash: str
    a_post: tuple[int, ...] = ()
    b_post: tuple[int, ...] = ()
    demo: bool = False
    # 导办台: may give a ticket priority, and log in without a window (controller.core.priority)
    guidance_desk: bool = False


@dataclass(frozen=True)
class Device:
    """A device on the hall floor and how the controller reaches it."""

    id: str
    kind: str
    transport: str
    port: str | None = None
    address: str | None = None
    topic: str | None = None
    window: int | None = None
    options: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class TimeSpan:
    start: dt.time
    end: dt.time

    def contains(self, t: dt.time) -> bool:
        return self.start <= t < self.end


@dataclass(frozen=True)
class DayHours:
    """Opening hours of one weekday: sessions (e.g. 9:00-12:00, 13:30-17:30) and staff breaks."""

    sessions: tuple[TimeSpan, ...] = ()
    breaks: tuple[TimeSpan, ...] = ()


@dataclass(frozen=True)
class Deadline:
    """A deadline such as "1 working day" or "15 days"."""

    amount: int
    working_days: bool


@dataclass(frozen=True)
class Rules:
    """The hall's rules, each a setting because halls and provinces differ."""

    # DB50/T 1603-2024 4.2.2: a short absence without cover is 15 minutes at most.
    pause_limit_minutes: int = 15
    no_show: NoShowPolicy = NoShowPolicy.REQUEUE_ONCE
    transfer_position: TransferPosition = TransferPosition.ORIGINAL_TIME
    # DB50/T 1603-2024 5.1.6.2: special groups may get priority; the age is local.
    priority_age: int = 70
    tickets_open_before_minutes: int = 30
    ticket_cutoff_minutes: int = 30
    appointment_early_minutes: int = 10
    # DB50/T 1603-2024 5.3.4.2: near closing, tell the citizen the wait at ticket time.
    near_closing_minutes: int = 30
    # so nobody hoards numbers: waiting tickets one person may hold per service (0: no limit)
    waiting_tickets_per_person: int = 1
    # and tickets one person may take in a day, all services together (0: no limit)
    tickets_per_person_per_day: int = 10
    # ticket flooding: tickets a minute one kiosk, or one address without a login, may take
    # (0: no limit); a kiosk with a queue of people in front of it issues a few a minute
    kiosk_tickets_per_minute: int = 20
    address_tickets_per_minute: int = 30
    # one identity, one ticket: a card read or a typed ID number waits at the kiosk this many
    # seconds after the citizen last touched it, then the next person starts anonymous
    kiosk_identity_seconds: int = 15
    # PIN guessing: failed logins allowed per staff id and per address within the minutes
    login_failures_per_staff: int = 5
    login_failures_per_address: int = 20
    login_failure_minutes: int = 5
    # 潮汐窗口: propose opening a tidal window when a service it serves has this many
    # waiting, or this long an estimated wait; propose closing it when they drain.
    tidal_open_waiting: int = 20
    tidal_open_wait_minutes: int = 30
    # staff expected for a session: a window with an A post counts as opening at the session's
    # start, for the wait estimate, until the session is this old (then it is late, and its
    # A-post window closed in hours is an alert once the pause limit has passed)
    staff_expected_minutes: int = 15
    # 先外后内 (000 文明服务制 第五条(一)4): an open window idle this long while a service it
    # serves has people waiting is an alert
    idle_alert_seconds: int = 60
    evaluation_default_grade: str = "基本满意"
    evaluation_default_days: int = 7
    # a pad's prompt ends after this long: evaluation is voluntary, nobody is nagged
    evaluation_prompt_seconds: int = 60
    callback_deadline: Deadline = Deadline(1, True)
    rectify_deadline: Deadline = Deadline(5, True)
    complaint_feedback_deadline: Deadline = Deadline(2, True)
    complaint_resolve_deadline: Deadline = Deadline(5, True)
    # "keep it no longer than needed" (hall-rules, privacy): days a closed visit's personal
    # data is kept before the day change purges it; the figures stay (controller.retention)
    personal_data_days: int = 180


WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
WEEKDAY_NAMES = ("周一", "周二", "周三", "周四", "周五", "周六", "周日")


@dataclass(frozen=True)
class OpenDay:
    """A date the hall config opens beyond its calendar: 延时服务 at lunchtime or on a
    Saturday (002 制度14 一(六)). Its sessions are added to the day's own, if it has any."""

    day: dt.date
    hours: DayHours
    note: str = ""


@dataclass(frozen=True)
class OpeningDay:
    """One date as the hall opens it.

    `hours` are the sessions tickets are issued in; `regular` those the calendar gives
    (the weekday's, a 调休 day's make-up weekday's, none on a holiday), which attendance
    counts, without the config's extra sessions. A closed day says why (`closed_reason`:
    "国庆节放假", "周六休息", a config reason); `note` names a 调休 day or an extra session.
    """

    day: dt.date
    hours: DayHours
    regular: DayHours
    closed_reason: str | None = None
    note: str | None = None
    # the calendar has no data for the date's year: Monday to Friday by the weekday hours
    calendar_missing: bool = False

    @property
    def open(self) -> bool:
        return bool(self.hours.sessions)


# how long before a year the calendar lacks begins that is an alert: the State Council
# publishes the next year's holidays in November or December
CALENDAR_NOTICE_DAYS = 45


@dataclass(frozen=True)
class OpeningCalendar:
    """开放日历: which dates the hall opens, and in which hours.

    000 考勤管理办法 第三条: the weekday hours "除国家法定节假日外". The working days are
    the same calendar as the callback deadlines (`workdays`: chinesecalendar with the hall's
    holidays.toml on top, read by `controller.config.workdays`): a statutory holiday is
    closed, a 调休 make-up working day opens with the hours of `make_up_day_hours`. On top,
    the hall config's dated `open_days` (extra sessions) and `closed_days` (date: reason),
    a closure winning. Without `workdays` (a hall built in a test) every date follows its
    weekday's hours.
    """

    workdays: WorkCalendar | None = None
    make_up_day_hours: str = "mon"
    open_days: dict[dt.date, OpenDay] = field(default_factory=dict)
    closed_days: dict[dt.date, str] = field(default_factory=dict)

    def missing_years(self, day: dt.date, ahead_days: int = CALENDAR_NOTICE_DAYS) -> list[int]:
        """The years from `day` to `ahead_days` later that the working-day calendar lacks:
        an alert, as those dates open Monday to Friday until holidays.toml has the year."""
        if self.workdays is None:
            return []
        return self.workdays.missing_years(day, day + dt.timedelta(days=ahead_days))

    def day(self, week: dict[str, DayHours], day: dt.date) -> OpeningDay:
        """`day` as the hall opens it, given its weekday hours `week`."""
        if isinstance(day, dt.datetime):
            day = day.date()
        if day in self.closed_days:
            return OpeningDay(day, DayHours(), DayHours(), self.closed_days[day])
        regular = week.get(WEEKDAYS[day.weekday()], DayHours())
        note: str | None = None
        reason: str | None = None
        cal = self.workdays
        missing = cal is not None and not cal.covers(day.year)
        if cal is not None and not missing:
            if day in cal.workdays:
                regular, note = week.get(self.make_up_day_hours, DayHours()), cal.workdays[day]
            elif day in cal.holidays:
                regular, reason = DayHours(), f"{cal.holidays[day]}放假"
        if reason is None and not regular.sessions:
            reason = f"{WEEKDAY_NAMES[day.weekday()]}休息"
        hours = regular
        extra = self.open_days.get(day)
        if extra is not None:
            hours = _with_extra(regular, extra.hours)
            note = "；".join(n for n in (note, extra.note) if n) or None
        return OpeningDay(day, hours, regular, None if hours.sessions else reason, note, missing)


def _with_extra(day: DayHours, extra: DayHours) -> DayHours:
    """A day's hours with extra sessions: sessions that overlap or meet become one (a
    lunchtime session joins the morning and the afternoon into a day without a gap)."""
    merged: list[TimeSpan] = []
    for s in sorted(day.sessions + extra.sessions, key=lambda s: (s.start, s.end)):
        if merged and s.start <= merged[-1].end:
            last = merged.pop()
            s = TimeSpan(last.start, max(last.end, s.end))
        merged.append(s)
    return DayHours(tuple(merged), day.breaks + extra.breaks)


EVALUATION_GRADES = LABELS  # vocabulary.grades: the pads and the core share one table


@dataclass(frozen=True)
class Hall:
    """政务服务中心 / 便民服务中心: one hall, one controller, one config file."""

    name: str
    region_code: str
    timezone: str
    hours: dict[str, DayHours]
    services: dict[str, Service]
    windows: dict[int, Window]
    staff: dict[str, Staff]
    devices: tuple[Device, ...] = ()
    rules: Rules = field(default_factory=Rules)
    # (the MQTT broker and the controller's login to it are installation settings, not the
    # hall's rules: controller.config.settings.MqttSettings)
    # (the voice, 语音播报, is an installation setting too: controller.config.settings.VoiceSettings)
    # the provincial upload's code for each evaluation channel ([export] channel_codes)
    export_channel_codes: tuple[tuple[str, str], ...] = (
        ("pad", "1"), ("tablet", "2"), ("system_default", "9"))
    # the grade code table of the 好差评 export by default ([export] grade_codes; the tables are
    # controller.backoffice.evaluation_reports.GRADE_CODES): national, 非常满意 = 5 … 非常不满意 = 1
    export_grade_codes: str = "national"
    # (the display's scrolling notices are a setting of the page, not a rule:
    # controller.config.settings.DisplaySettings)
    # 巡查: the fixed patrol times, reminded once a day each (000 巡查制度 第三条; [patrol] times)
    patrol_times: tuple[dt.time, ...] = (dt.time(9, 30), dt.time(13, 40))
    # 月度考核: the monthly roll-up's scoring table ([assessment])
    assessment: AssessmentTable = field(default_factory=AssessmentTable)
    # which dates open, in which hours: holidays, 调休 days, the config's dated changes
    calendar: OpeningCalendar = field(default_factory=OpeningCalendar)

    def opening_on(self, day: dt.date) -> OpeningDay:
        """`day` as the hall opens it: its hours, or why it is closed."""
        # asked at every call and estimate; the hall is frozen, so each date is worked out once
        days: dict[dt.date, OpeningDay] | None = self.__dict__.get("_opening")
        if days is None:
            days = {}
            object.__setattr__(self, "_opening", days)
        if isinstance(day, dt.datetime):
            day = day.date()
        if day not in days:
            days[day] = self.calendar.day(self.hours, day)
        return days[day]

    def hours_on(self, day: dt.date) -> DayHours:
        return self.opening_on(day).hours

    def next_open_day(self, after: dt.date, within_days: int = 31) -> OpeningDay | None:
        """The first date after `after` the hall opens (a long holiday is 9 days)."""
        for n in range(1, within_days + 1):
            opening = self.opening_on(after + dt.timedelta(days=n))
            if opening.open:
                return opening
        return None

    def windows_serving(self, prefix: str) -> list[Window]:
        # asked for every ticket and every estimate: worked out once per service, as the hall
        # is frozen (a 300-window hall would otherwise scan every window each time)
        serving = self.__dict__.get("_serving")
        if serving is None:
            serving = {p: tuple(w for w in self.windows.values() if p in w.services)
                       for p in self.services}
            object.__setattr__(self, "_serving", serving)
        if prefix not in serving:
            return [w for w in self.windows.values() if prefix in w.services]
        return list(serving[prefix])
