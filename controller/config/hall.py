"""Reading the hall config file (TOML) into the frozen `Hall` of `controller.core.hall`.

Every mistake is a `ConfigError` that names the key path (`windows[3].services[1]`)
and says what was expected and what was found.
"""

from __future__ import annotations

import datetime as dt
import functools
import ipaddress
import re
from collections import Counter
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from controller.core.hall import (
    EVALUATION_GRADES, WEEKDAYS, DayHours, Deadline, Device, Hall, NoShowPolicy, OpenDay,
    OpeningCalendar, Rules, Service, Staff, StaffRole, TimeSpan, TransferPosition, Window,
    WindowKind,
)
from controller.config import ledger as ledger_config
from controller.floor.device_kinds import device_kinds
from controller.core.workdays import WorkCalendar
from controller.security.pins import DEMO_PIN, is_valid_pin_hash, verify_pin
from controller.config.settings import (
    DisplaySettings, FederationSettings, FloorLayout, FloorZone, HallConfig, MqttSettings,
    ReminderSettings, VoiceSettings,
)
from vocabulary import district
from drivers import mqtt as _mqtt_transport  # noqa: F401  (registers the "mqtt" transport)
from drivers.transport import HOST_PORT, TRANSPORTS
from controller.config.tomlkeys import (
    ConfigError, Table, check, claim, found, is_int, is_text, matches, read_toml,
)

# Device kinds and transports are registries (controller.floor.device_kinds, drivers.transport):
# the config accepts what is registered and asks each for its checks.


HOLIDAYS_FILE = "holidays.toml"


def load_config(path: str | Path) -> HallConfig:
    """Read and validate the hall config file at `path`: the hall and its settings. Its
    opening days follow the working-day calendar: chinesecalendar, with the `holidays.toml`
    beside the file on top."""
    from controller.config.workdays import hall_calendar

    source = str(path)
    data = read_toml(path)
    holidays = Path(path).parent / HOLIDAYS_FILE
    return parse_config(data, source, hall_calendar(holidays if holidays.exists() else None))


def load_hall(path: str | Path) -> Hall:
    """The hall the config file at `path` describes (`load_config` for its settings too)."""
    return load_config(path).hall


def parse_config(data: dict[str, Any], source: str = "<config>",
                 workdays: WorkCalendar | None = None) -> HallConfig:
    """Validate a parsed TOML document and build the hall and settings it describes; without
    `workdays`, its dates open by their weekday's hours alone."""
    try:
        return _config(Table(data, "", _TOP_KEYS), workdays)
    except ConfigError as e:
        raise ConfigError(e.key, e.reason, source) from None


def parse_hall(data: dict[str, Any], source: str = "<config>",
               workdays: WorkCalendar | None = None) -> Hall:
    """The `Hall` a parsed TOML document describes (`parse_config` for its settings too)."""
    return parse_config(data, source, workdays).hall


# --- the sections ------------------------------------------------------------

_TOP_KEYS = ("hall", "hours", "calendar", "open_days", "closed_days", "rules", "services",
             "windows", "staff", "devices", "mqtt", "voice", "export", "display", "patrol",
             "assessment", "layout", "federation", "reminders")
_ID_EXPECTED = "an id of 1-32 letters, digits, '_' or '-'"
_is_id = matches(r"[A-Za-z0-9_-]{1,32}")


def _config(top: Table, workdays: WorkCalendar | None = None) -> HallConfig:
    head = top.table("hall", ("name", "region_code", "timezone"), required=True)
    name = head.text("name")
    region = head.get("region_code", 'a quoted string of 6 digits, e.g. "500101"', matches("[0-9]{6}"))
    timezone = _timezone(head)
    hours = _hours(top)
    calendar = _calendar(top, hours, workdays)
    rules = _rules(top)
    services = _services(top)
    windows = _windows(top, services)
    _check_every_service_served(services, windows)
    staff = _staff(top, windows)
    devices = _devices(top, windows)
    mqtt = _mqtt(top, demo=any(s.demo for s in staff.values()))
    _check_device_accounts(top, devices, mqtt.username)
    hall = Hall(name, region, timezone, hours, services, windows, staff, devices, rules,
                **_export(top),
                **ledger_config.patrol(top), **ledger_config.assessment(top), calendar=calendar)
    return HallConfig(hall, mqtt, _voice(top), _display(top), _layout(top, windows), _federation(top),
                      reminders=_reminders(top))


def _timezone(head: Table) -> str:
    name = head.text("timezone", "Asia/Shanghai")
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        head.fail("timezone", f'unknown time zone {name!r}; expected an IANA name such as "Asia/Shanghai"')
    return name


_SPAN = re.compile(r"([0-9]{1,2}):([0-9]{2})\s*-\s*([0-9]{1,2}):([0-9]{2})")


def _span(key: str, value: Any) -> TimeSpan:
    match = _SPAN.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None:
        expected = 'a time span "HH:MM-HH:MM" such as "09:00-12:00"'
        raise ConfigError(key, f"expected {expected}, found {found(value)}")
    try:
        start, end = dt.time(int(match[1]), int(match[2])), dt.time(int(match[3]), int(match[4]))
    except ValueError:
        raise ConfigError(key, f"{value!r} is not a time of day (hours 00-23, minutes 00-59)") from None
    if start >= end:
        raise ConfigError(key, f"{value!r} ends before it starts; expected start < end")
    return TimeSpan(start, end)


def _hours(top: Table) -> dict[str, DayHours]:
    """Opening hours per weekday; a weekday left out is closed."""
    week = top.table("hours", WEEKDAYS, required=True)
    hours = {day: _day(week.table(day, ("sessions", "breaks"))) for day in WEEKDAYS if day in week.data}
    if not hours:
        top.fail("hours", "no weekday is open; expected at least one of mon..sun with sessions")
    return hours


def _day(day: Table, closing_hint: str = "to close the day, leave it out") -> DayHours:
    sessions = [_span(key, value) for key, value in day.items("sessions")]
    if not sessions:
        day.fail("sessions", f'expected a session such as "09:00-12:00"; {closing_hint}')
    for i in range(1, len(sessions)):
        if sessions[i].start < sessions[i - 1].end:
            raise ConfigError(
                f"{day.key('sessions')}[{i}]",
                f"starts at {sessions[i].start:%H:%M}, before the previous session ends at "
                f"{sessions[i - 1].end:%H:%M}; sessions must be in order and not overlap",
            )
    breaks = [_span(key, value) for key, value in day.items("breaks", [])]
    for i, b in enumerate(breaks):
        if not any(s.start <= b.start and b.end <= s.end for s in sessions):
            within = ", ".join(f"{s.start:%H:%M}-{s.end:%H:%M}" for s in sessions)
            raise ConfigError(f"{day.key('breaks')}[{i}]", f"break is not inside any session ({within})")
    return DayHours(tuple(sessions), tuple(breaks))


def _date(t: Table) -> dt.date:
    """A date as a TOML local date (2026-10-03) or a quoted "2026-10-03"."""
    expected = 'a date such as 2026-10-03 (a TOML date, or quoted "2026-10-03")'
    value = t.get("date", expected, lambda v: type(v) is dt.date or isinstance(v, str))
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value.strip())
        except ValueError:
            t.fail("date", f"expected {expected}, found {found(value)}")
    return value


def _calendar(top: Table, hours: dict[str, DayHours],
              workdays: WorkCalendar | None) -> OpeningCalendar:
    """Which dates open: the working-day calendar, then the config's dated changes.

    [calendar] make_up_day_hours: the weekday whose hours a 调休 working day keeps;
    [[open_days]] date, sessions, breaks, note: extra sessions on a date (延时服务);
    [[closed_days]] date, reason: a date closed, the reason shown at the kiosk and on
    the display.
    """
    head = top.table("calendar", ("make_up_day_hours",))
    # unset: Monday's hours, or a hall closed on Mondays its first open weekday's
    make_up = head.choice("make_up_day_hours", WEEKDAYS,
                          "mon" if "mon" in hours else next(d for d in WEEKDAYS if d in hours))
    if make_up not in hours:
        head.fail("make_up_day_hours", f"{make_up!r} has no hours in [hours]; a 调休 working day "
                  f"opens with the hours of an open weekday: one of {', '.join(hours)}")
    seen: dict[object, str] = {}
    closed: dict[dt.date, str] = {}
    for t in top.tables("closed_days", ("date", "reason"), False):
        day = _date(t)
        claim(seen, day, t.key("date"), "date")
        reason = t.get("reason", 'the reason shown to citizens, 1-40 characters, e.g. "系统升级"',
                       lambda v: isinstance(v, str) and 0 < len(v.strip()) <= 40)
        closed[day] = reason.strip()
    opened: dict[dt.date, OpenDay] = {}
    for t in top.tables("open_days", ("date", "sessions", "breaks", "note"), False):
        day = _date(t)
        claim(seen, day, t.key("date"), "date")
        note = t.get("note", "a note of at most 40 characters, e.g. \"国庆延时服务\"",
                     lambda v: isinstance(v, str) and len(v.strip()) <= 40, "延时服务")
        opened[day] = OpenDay(day, _day(t, "to close the date, use [[closed_days]]"), note.strip())
    return OpeningCalendar(workdays, make_up, opened, closed)


# How each rule is read: an integer in a range, one of some values, or a deadline.
_RULE_RANGES = {
    "pause_limit_minutes": (1, 240),
    "priority_age": (50, 120),
    "tickets_open_before_minutes": (0, 180),
    "ticket_cutoff_minutes": (0, 180),
    "appointment_early_minutes": (0, 120),
    "near_closing_minutes": (0, 240),
    "waiting_tickets_per_person": (0, 20),
    "tickets_per_person_per_day": (0, 100),
    "kiosk_tickets_per_minute": (0, 600),
    "address_tickets_per_minute": (0, 6000),
    "kiosk_identity_seconds": (3, 300),
    "login_failures_per_staff": (1, 100),
    "login_failures_per_address": (1, 1000),
    "login_failure_minutes": (1, 1440),
    "tidal_open_waiting": (1, 1000),
    "tidal_open_wait_minutes": (1, 600),
    "staff_expected_minutes": (0, 120),
    "idle_alert_seconds": (10, 3600),
    "evaluation_default_days": (1, 60),
    "evaluation_prompt_seconds": (10, 600),
    "personal_data_days": (1, 3650),
}
_RULE_CHOICES: dict[str, tuple[str, ...]] = {
    "no_show": tuple(NoShowPolicy),
    "transfer_position": tuple(TransferPosition),
    "evaluation_default_grade": EVALUATION_GRADES,
}
_RULE_DEADLINES = (
    "callback_deadline", "rectify_deadline", "complaint_feedback_deadline", "complaint_resolve_deadline",
)
_DEADLINE = re.compile(r"([0-9]+)\s+(working\s+)?days?", re.IGNORECASE)


def _rules(top: Table) -> Rules:
    """The hall's settings; any left out keep their default from `Rules`."""
    table = top.table("rules", (*_RULE_RANGES, *_RULE_CHOICES, *_RULE_DEADLINES))
    values: dict[str, Any] = {}
    for name in table.data:
        if name in _RULE_RANGES:
            values[name] = table.integer(name, *_RULE_RANGES[name])
        elif name in _RULE_CHOICES:
            values[name] = table.choice(name, _RULE_CHOICES[name])
        else:
            values[name] = _deadline(table, name)
    graded_for = values.get("evaluation_default_days", Rules.evaluation_default_days)
    if values.get("personal_data_days", Rules.personal_data_days) <= graded_for:
        # a visit may still be graded, and a bad review opened with its identity, until then
        table.fail("personal_data_days", f"expected more days than evaluation_default_days "
                   f"({graded_for}): a visit can be evaluated until then")
    values["no_show"] = NoShowPolicy(values.get("no_show", Rules.no_show))
    values["transfer_position"] = TransferPosition(values.get("transfer_position", Rules.transfer_position))
    return Rules(**values)


def _deadline(rules: Table, name: str) -> Deadline:
    expected = 'a deadline such as "1 working day", "5 working days" or "15 days"'
    text = rules.get(name, expected, lambda v: isinstance(v, str) and _DEADLINE.fullmatch(v.strip()))
    match = _DEADLINE.fullmatch(text.strip())
    assert match is not None
    amount = int(match[1])
    if not 1 <= amount <= 90:
        rules.fail(name, f"expected from 1 to 90 days, found {amount}")
    return Deadline(amount, match[2] is not None)


def _is_minutes(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value <= 240


def _services(top: Table) -> dict[str, Service]:
    services: dict[str, Service] = {}
    seen: dict[object, str] = {}
    for t in top.tables("services", ("prefix", "name", "kind", "mean_minutes", "priority_first"), True):
        prefix = t.get("prefix", "one uppercase letter A-Z", matches("[A-Z]"))
        claim(seen, prefix, t.key("prefix"), "service prefix")
        name, kind = t.text("name"), t.text("kind")
        mean = t.get("mean_minutes", "a number of minutes greater than 0 and at most 240", _is_minutes)
        services[prefix] = Service(prefix, name, kind, float(mean), t.flag("priority_first", True))
    return services


def _window_kind(t: Table) -> WindowKind:
    """The Chinese value ("综合受理") or the English member name ("general")."""
    kinds = {k.value: k for k in WindowKind} | {k.name.lower(): k for k in WindowKind}
    expected = "one of " + ", ".join(f'"{k.value}" ("{k.name.lower()}")' for k in WindowKind)
    value = t.get("kind", expected, lambda v: isinstance(v, str) and v.strip().lower() in kinds)
    return kinds[value.strip().lower()]


def _window_services(t: Table, services: dict[str, Service]) -> tuple[str, ...]:
    """Service prefixes in the window's priority order."""
    chosen: list[str] = []
    for key, prefix in t.items("services"):
        check(key, prefix, "a service prefix", lambda v: isinstance(v, str))
        if prefix not in services:
            raise ConfigError(key, f"no service has prefix {prefix!r}; known prefixes: {', '.join(services)}")
        if prefix in chosen:
            raise ConfigError(key, f"service {prefix!r} is listed twice; list each once, in priority order")
        chosen.append(prefix)
    if not chosen:
        t.fail("services", "expected at least one service prefix, found an empty array")
    return tuple(chosen)


def _windows(top: Table, services: dict[str, Service]) -> dict[int, Window]:
    windows: dict[int, Window] = {}
    seen: dict[object, str] = {}
    keys = ("number", "name", "kind", "services", "tidal", "green_channel")
    for t in top.tables("windows", keys, True):
        number = t.integer("number", 1, 9999)
        claim(seen, number, t.key("number"), "window number")
        name, kind, served = t.text("name"), _window_kind(t), _window_services(t, services)
        windows[number] = Window(number, name, kind, served, t.flag("tidal", False),
                                 t.flag("green_channel", False))
    return windows


def _check_every_service_served(services: dict[str, Service], windows: dict[int, Window]) -> None:
    served = {prefix for w in windows.values() for prefix in w.services}
    for i, service in enumerate(services.values()):
        if service.prefix not in served:
            raise ConfigError(
                f"services[{i}].prefix",
                f"no window serves {service.prefix!r} ({service.name}); add it to some window's services",
            )


def _window_number(key: str, value: Any, windows: dict[int, Window]) -> int:
    check(key, value, "a window number", is_int)
    if value not in windows:
        raise ConfigError(key, f"there is no window {value}; windows are {', '.join(map(str, windows))}")
    return value


def _posts(t: Table, name: str, windows: dict[int, Window]) -> tuple[int, ...]:
    posts: list[int] = []
    for key, value in t.items(name, []):
        number = _window_number(key, value, windows)
        if number in posts:
            raise ConfigError(key, f"window {number} is listed twice")
        posts.append(number)
    return tuple(posts)


@functools.lru_cache(maxsize=256)
def _is_demo_pin(pin_hash: str) -> bool:
    return verify_pin(DEMO_PIN, pin_hash)


def _pin_hash(t: Table, demo: bool) -> str:
    value = t.get("pin_hash", "a PIN hash made by `hallctl hash-pin`", lambda v: True)
    if not is_valid_pin_hash(value):
        # Never echo the value: it may be somebody's real PIN.
        looks_plain = str(value).strip().isdigit()
        problem = (
            "this looks like a plain PIN, but only PIN hashes belong here"
            if looks_plain
            else "expected a hash of the form pbkdf2_sha256$<iterations>$<salt hex>$<hash hex>"
        )
        t.fail("pin_hash", f"{problem}; run `hallctl hash-pin` and paste its output here")
    if not demo and _is_demo_pin(value):
        t.fail(
            "pin_hash",
            f"this is the demo PIN {DEMO_PIN}, only allowed for accounts marked demo = true; "
            "set a real PIN with `hallctl hash-pin`",
        )
    return value


def _staff(top: Table, windows: dict[int, Window]) -> dict[str, Staff]:
    staff: dict[str, Staff] = {}
    seen: dict[object, str] = {}
    keys = ("id", "name", "role", "pin_hash", "a_post", "b_post", "demo", "guidance_desk")
    for t in top.tables("staff", keys, True):
        sid = t.get("id", _ID_EXPECTED, _is_id)
        claim(seen, sid, t.key("id"), "staff id")
        name, role = t.text("name"), StaffRole(t.choice("role", tuple(StaffRole)))
        demo = t.flag("demo", False)
        pin_hash = _pin_hash(t, demo)
        a_post, b_post = _posts(t, "a_post", windows), _posts(t, "b_post", windows)
        for number in set(a_post) & set(b_post):
            t.fail("b_post", f"window {number} is already this person's A post")
        guidance_desk = t.flag("guidance_desk", False)
        if guidance_desk and role is not StaffRole.STAFF:
            t.fail("guidance_desk", 'only role "staff" takes guidance_desk (导办台); '
                   "a supervisor may grant priority already")
        if role is StaffRole.STAFF and not (a_post or b_post or guidance_desk):
            t.fail("a_post", 'role "staff" needs at least one window in a_post or b_post, '
                   "or guidance_desk = true (导办台)")
        staff[sid] = Staff(sid, name, role, pin_hash, a_post, b_post, demo, guidance_desk)
    return staff


def _host_port(value: object) -> bool:
    return bool(matches(r"[^\s:]\S*:[0-9]{1,5}")(value)) and 1 <= int(str(value).rpartition(":")[2]) <= 65535


_HOST_PORT = HOST_PORT


def _device_link(t: Table, transport: str) -> dict[str, str]:
    """The key that says where the device is, as its transport (drivers.transport) names it."""
    kind = TRANSPORTS[transport]
    for other in ("port", "address", "topic"):
        if other != kind.where and other in t.data:
            t.fail(other, f"not used by transport {transport!r}, which takes {kind.where!r}")
    return {kind.where: t.get(kind.where, kind.expected, kind.check)}


def _device_window(t: Table, kind: str, windows: dict[int, Window]) -> int | None:
    if "window" in t.data:
        return _window_number(t.key("window"), t.data["window"], windows)
    if device_kinds()[kind].at_window:
        t.fail("window", f"missing; every {kind} belongs to one counter window: give its window number")
    return None


def _is_option(value: object) -> bool:
    return is_int(value) or isinstance(value, str)


def _options(t: Table) -> tuple[tuple[str, str], ...]:
    table = t.get("options", 'an inline table such as { baud = "9600" }', lambda v: isinstance(v, dict), {})
    for name, value in table.items():
        check(f"{t.key('options')}.{name}", value, "a string or an integer", _is_option)
    return tuple(sorted((name, str(value)) for name, value in table.items()))


def _devices(top: Table, windows: dict[int, Window]) -> tuple[Device, ...]:
    devices: list[Device] = []
    seen: dict[object, str] = {}
    keys = ("id", "kind", "transport", "port", "address", "topic", "window", "options")
    hint = '; driver settings go in options = { baud = "9600" }'
    for t in top.tables("devices", keys, False, hint):
        did = t.get("id", _ID_EXPECTED, _is_id)
        claim(seen, did, t.key("id"), "device id")
        kind, transport = t.choice("kind", tuple(device_kinds())), t.choice("transport", tuple(TRANSPORTS))
        link = _device_link(t, transport)
        window = _device_window(t, kind, windows)
        options = _options(t)
        wrong = device_kinds()[kind].check(dict(options))
        if wrong is not None:
            option, reason = wrong
            raise ConfigError(f"{t.key('options')}.{option}", reason)
        devices.append(Device(did, kind, transport, window=window, options=options, **link))
    return tuple(devices)


def _voice(top: Table) -> VoiceSettings:
    """Voice announcements: on or off, the ALSA device (none: WAV files only), repeats."""
    t = top.table("voice", ("enabled", "device", "repeats"))
    return VoiceSettings(t.flag("enabled", True), t.text("device", None),
                         t.integer("repeats", 1, 5, 1))


def _display(top: Table) -> DisplaySettings:
    """The hall display page: the notices scrolling along its foot."""
    t = top.table("display", ("notices",))
    if "notices" not in t.data:
        return DisplaySettings()
    notices = t.items("notices", expected="an array of texts, e.g. [\"请留意叫号\"]")
    for key, text in notices:
        check(key, text, "a text of 1-200 characters",
              lambda v: isinstance(v, str) and 0 < len(v.strip()) <= 200)
    return DisplaySettings(tuple(text.strip() for _, text in notices))


# a row wider than this does not fit the supervisor's screen beside the alerts
MAX_ROW = 12
_ZONE_NAME = "a zone name of 1-20 characters, e.g. \"综合受理区\""


def _layout(top: Table, windows: dict[int, Window]) -> FloorLayout:
    """[layout] 现场布局: zones ([[layout.zones]] name, rows), each a list of rows of window
    numbers as they stand on the floor, 0 for a place with no window. Every window is placed
    once; without [layout], the windows in number order (FloorLayout.default)."""
    if "layout" not in top.data:
        return FloorLayout.default(windows)
    head = top.table("layout", ("zones",))
    zones = head.tables("zones", ("name", "rows"), True)
    placed: dict[object, str] = {}
    out = []
    for t in zones:
        name = t.get("name", _ZONE_NAME, lambda v: isinstance(v, str) and 0 < len(v.strip()) <= 20)
        rows = t.items("rows", expected="an array of rows, each an array of window numbers, "
                       "e.g. [[1, 2, 3], [4, 0, 5]] (0: a place with no window)")
        if not rows:
            t.fail("rows", "expected at least one row of window numbers, found an empty array")
        out.append(FloorZone(name.strip(), tuple(_layout_row(key, row, windows, placed)
                                                 for key, row in rows)))
    missing = [str(n) for n in windows if n not in placed]
    if missing:
        head.fail("zones", f"window(s) {', '.join(missing)} have no place on the floor; "
                  "add each to a zone's rows (every window appears once)")
    return FloorLayout(tuple(out))


def _layout_row(key: str, row: Any, windows: dict[int, Window],
                placed: dict[object, str]) -> tuple[int, ...]:
    check(key, row, f"an array of 1-{MAX_ROW} window numbers (0: a place with no window)",
          lambda v: isinstance(v, list) and 0 < len(v) <= MAX_ROW)
    numbers = []
    for i, value in enumerate(row):
        place = f"{key}[{i}]"
        if value != 0 or not is_int(value):
            claim(placed, _window_number(place, value, windows), place, "window")
        numbers.append(value)
    return tuple(numbers)


def _federation(top: Table) -> FederationSettings | None:
    """The district centre's link (vocabulary.district); none: the hall stands alone."""
    if "federation" not in top.data:
        return None
    t = top.table("federation", ("hall_id", "host", "port", "username", "password", "password_env",
                                 "tls", "ca_file", "batch_events"))
    username = t.get("username", _ACCOUNT, _is_account, None)
    password = t.text("password", None)
    env = t.get("password_env", 'an environment variable name such as "HALL_DISTRICT_PASSWORD"',
                matches(r"[A-Za-z_][A-Za-z0-9_]*"), None)
    if password is not None and env is not None:
        t.fail("password", "give password_env (preferred: the secret stays out of this file) "
               "or password, not both")
    if username is None and (password is not None or env is not None):
        t.fail("username", "missing; a password is set, so the shipper logs in as username")
    tls = t.flag("tls", False)
    ca_file = t.text("ca_file", None)
    if ca_file is not None and not tls:
        t.fail("ca_file", "is for TLS; set tls = true too")
    return FederationSettings(
        hall_id=t.get("hall_id", district.HALL_ID_EXPECTED, district.is_hall_id),
        host=t.text("host"), port=t.integer("port", 1, 65535, 8883 if tls else 1883),
        username=username, password=password, password_env=env, tls=tls, ca_file=ca_file,
        batch_events=t.integer("batch_events", 1, 5000, 500))


def _reminders(top: Table) -> ReminderSettings:
    """到号提醒 by text message: on when a gateway URL is given (drivers.sms)."""
    from drivers.sms import GATEWAYS

    t = top.table("reminders", ("enabled", "ahead", "gateway", "url", "token_env",
                                "timeout_seconds", "attempts"))
    url = t.get("url", "an http:// or https:// address of the SMS gateway",
                lambda v: isinstance(v, str) and v.startswith(("http://", "https://")), None)
    enabled = t.flag("enabled", url is not None)
    if enabled and url is None:
        t.fail("url", "reminders are enabled but no SMS gateway url is given")
    return ReminderSettings(
        enabled=enabled, ahead=t.integer("ahead", 1, 50, 3),
        gateway=t.choice("gateway", sorted(GATEWAYS), "http"), url=url,
        token_env=t.text("token_env", None),
        timeout_seconds=float(t.integer("timeout_seconds", 1, 60, 5)),
        attempts=t.integer("attempts", 1, 10, 3))


GRADE_CODE_TABLES = ("national", "reversed")  # controller.backoffice.evaluation_reports.GRADE_CODES


def _export(top: Table) -> dict[str, Any]:
    """The 好差评 upload's grade code table and its code for each evaluation channel."""
    t = top.table("export", ("channel_codes", "grade_codes"))
    out: dict[str, Any] = {}
    if "grade_codes" in t.data:
        check(t.key("grade_codes"), t.data["grade_codes"],
              "national (非常满意 = 5 … 非常不满意 = 1) or reversed (非常满意 = 1 … 非常不满意 = 5)",
              lambda v: v in GRADE_CODE_TABLES)
        out["export_grade_codes"] = t.data["grade_codes"]
    if "channel_codes" not in t.data:
        return out
    codes = t.table("channel_codes", ("pad", "tablet", "system_default", "staff"))
    for channel, code in codes.data.items():
        check(codes.key(channel), code, "a code as a quoted string, e.g. \"1\"", is_text)
    merged = dict(Hall.export_channel_codes) | codes.data  # the class attribute is the field's default
    out["export_channel_codes"] = tuple(sorted(merged.items()))
    return out


_ACCOUNT = "a broker user name of 1-64 letters, digits, '_', '-' or '.'"
_is_account = matches(r"[A-Za-z0-9_.-]{1,64}")


def _is_loopback(host: str) -> bool:
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name or an address on the network


def _mqtt(top: Table, demo: bool) -> MqttSettings:
    """Broker settings; no host means the controller runs its own embedded broker.

    With `username` the controller logs in to the broker; its password is `password_env`, the
    name of an environment variable (read at start), or `password` in this file.

    Without accounts, anyone who reaches the broker can press every window's keys and grade
    every visit: a hall that is not a demo and whose broker is reachable beyond this computer
    must either have accounts or say `allow_anonymous = true` (a closed network, on purpose).
    """
    t = top.table("mqtt", ("host", "port", "embedded_listen", "username", "password",
                           "password_env", "password_file", "allow_anonymous"))
    values = {
        "mqtt_host": t.text("host", None),
        "mqtt_port": t.integer("port", 1, 65535, None),
        "mqtt_embedded_listen": t.get("embedded_listen", _HOST_PORT, _host_port, None),
        "mqtt_username": t.get("username", _ACCOUNT, _is_account, None),
        "mqtt_password": t.text("password", None),
        "mqtt_password_env": t.get("password_env", "an environment variable name such as "
                                   '"HALL_MQTT_PASSWORD"', matches(r"[A-Za-z_][A-Za-z0-9_]*"), None),
        "mqtt_password_file": t.text("password_file", None),
    }
    user, password, env = (values[k] for k in ("mqtt_username", "mqtt_password", "mqtt_password_env"))
    if password is not None and env is not None:
        t.fail("password", "give password_env (preferred: the secret stays out of this file) "
               "or password, not both")
    if user is not None and password is None and env is None:
        t.fail("username", 'has no password; add password_env = "HALL_MQTT_PASSWORD" and set '
               "that variable where the controller runs")
    if user is None and (password is not None or env is not None):
        t.fail("password" if password is not None else "password_env",
               "is set but username is not; the controller logs in as username")
    if values["mqtt_password_file"] is not None:
        if values["mqtt_host"] is not None:
            t.fail("password_file", "is for the embedded broker only; an external broker (host) "
                   "keeps its own password_file (Mosquitto: see `hallctl mqtt-acl`)")
        if user is None:
            t.fail("username", "missing; with password_file the embedded broker refuses anonymous "
                   "clients, so the controller needs its own account in that file")
    elif user is not None and values["mqtt_host"] is None:
        t.fail("password_file", "missing; with username set the embedded broker checks passwords: "
               "make the file with `hallctl mqtt-passwd` (or set host to use Mosquitto)")
    anonymous = t.flag("allow_anonymous", False)
    if anonymous and user is not None:
        t.fail("allow_anonymous", "contradicts username: with accounts the broker refuses "
               "anonymous clients; remove one of them")
    where = values["mqtt_host"] or (values["mqtt_embedded_listen"] or "127.0.0.1:1883").rpartition(":")[0]
    if user is None and not anonymous and not demo and not _is_loopback(where):
        t.fail("allow_anonymous", f"missing; the broker ({where}) is reachable from the network and "
               "has no accounts, so anyone there can call and grade for every window. Give the "
               "controller and each MQTT device an account (username, password_env, "
               "options.username; see `hallctl mqtt-acl` and `hallctl mqtt-passwd`), or, on a "
               "closed network on purpose, set allow_anonymous = true")
    return MqttSettings(**{name.removeprefix("mqtt_"): value for name, value in values.items()
                           if value is not None})


def _check_device_accounts(top: Table, devices: tuple[Device, ...], controller: str | None) -> None:
    """Each MQTT device logs in with an account of its own (options.username), so the broker's
    ACL can keep it to its own window's topics; with a controller account, every one must."""
    seen: dict[object, str] = {}
    if controller is not None:
        seen[controller] = "mqtt.username"
    for i, d in enumerate(devices):
        key = f"devices[{i}].options.username"
        user = dict(d.options).get("username")
        if user is None:
            if d.transport == "mqtt" and controller is not None:
                raise ConfigError(key, "missing; [mqtt] username is set, so the broker refuses "
                                       "anonymous clients: give this device its own account")
            continue
        if d.transport != "mqtt":
            raise ConfigError(key, f"only MQTT devices log in to a broker; this one is {d.transport}")
        check(key, user, _ACCOUNT, _is_account)
        claim(seen, user, key, "broker account")


# --- summary -----------------------------------------------------------------


def summary(config: HallConfig) -> str:
    """A few lines for a person checking that the right file was loaded."""
    hall, mqtt = config.hall, config.mqtt
    kinds = Counter(w.kind for w in hall.windows.values())
    by_kind = ", ".join(f"{kinds[k]} {k.value}" for k in WindowKind if kinds[k])
    demo = sum(1 for s in hall.staff.values() if s.demo)
    broker = f"embedded on {mqtt.embedded_listen}"
    if mqtt.host:
        broker = f"external {mqtt.host}:{mqtt.port}"
    if mqtt.username:
        accounts = sum(1 for d in hall.devices if "username" in dict(d.options))
        broker += f", logged in as {mqtt.username} ({accounts} device accounts)"
    else:
        broker += ", anonymous (no [mqtt] username)"
    demo_line = f"yes ({demo}, PIN {DEMO_PIN}; not for a live hall)" if demo else "no"
    cal = hall.calendar
    years = sorted(cal.workdays.years) if cal.workdays else []
    calendar = (f"holidays and 调休 days {years[0]}-{years[-1]}" if years
                else "none (weekday hours only)")
    return (
        f"hall: {hall.name} (region {hall.region_code}, {hall.timezone})\n"
        f"open: {', '.join(hall.hours)}; 调休 days with {cal.make_up_day_hours} hours\n"
        f"calendar: {calendar}; {len(cal.open_days)} extra open days, "
        f"{len(cal.closed_days)} closed days\n"
        f"services: {len(hall.services)}\n"
        f"windows: {len(hall.windows)} ({by_kind})\n"
        f"staff: {len(hall.staff)}\n"
        f"devices: {len(hall.devices)}\n"
        f"mqtt broker: {broker}\n"
        f"demo accounts: {demo_line}"
    )
