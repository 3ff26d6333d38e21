"""Small halls built directly from the core's dataclasses: the tests', the benchmarks' and the
fuzzers' halls (tests/halls.py re-exports them)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from zoneinfo import ZoneInfo

from controller.security.pins import DEMO_PIN, hash_pin
from controller.security.privacy import IdentitySealer
from controller.config.settings import VoiceSettings
from controller.core.hall import (
    DayHours, Device, Hall, Rules, Service, Staff, StaffRole, TimeSpan, Window, WindowKind,
)

TZ = ZoneInfo("Asia/Shanghai")
MONDAY = dt.date(2026, 11, 23)
# One fixed secret for tests; a hall's own is made on first run (controller.security.privacy).
SEALER = IdentitySealer(b"k" * 32)
# Every test account's PIN is 1234; few iterations keep logins fast in tests.
PIN_HASH = hash_pin(DEMO_PIN, iterations=1000)


def at(hhmm: str, day: dt.date = MONDAY) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.fromisoformat(hhmm), TZ)


def span(text: str) -> TimeSpan:
    a, b = text.split("-")
    return TimeSpan(dt.time.fromisoformat(a), dt.time.fromisoformat(b))


WEEKDAY_HOURS = DayHours(sessions=(span("09:00-12:00"), span("13:30-17:30")),
                         breaks=(span("10:30-10:50"), span("15:30-15:50")))


def many_windows(n: int, services: tuple[str, ...] = ("A", "B", "C")) -> dict[int, tuple[str, ...]]:
    """`n` windows that all serve `services`."""
    return {i: services for i in range(1, n + 1)}


def small_hall(windows: dict[int, tuple[str, ...]] | None = None, **rules) -> Hall:
    """Services A, B, C; by default window 1 serves A, window 2 B then A, window 3 C."""
    windows = windows or {1: ("A",), 2: ("B", "A"), 3: ("C",)}
    services = {
        "A": Service("A", "社保医保", "综合", 10),
        "B": Service("B", "不动产登记", "综合", 20),
        "C": Service("C", "户政", "综合", 5, priority_first=False),
    }
    staff = {f"s{n}": Staff(f"s{n}", f"员工{n}", StaffRole.STAFF, PIN_HASH, a_post=(n,),
                            b_post=tuple(m for m in windows if m != n), demo=True)
             for n in windows}
    staff["boss"] = Staff("boss", "主任", StaffRole.SUPERVISOR, PIN_HASH, demo=True)
    return Hall(
        name="测试大厅", region_code="500101", timezone="Asia/Shanghai",
        hours={d: WEEKDAY_HOURS for d in ("mon", "tue", "wed", "thu", "fri")},
        services=services,
        windows={n: Window(n, f"{n}号窗口", WindowKind.GENERAL, tuple(s)) for n, s in windows.items()},
        staff=staff,
        rules=dataclasses.replace(Rules(), **rules),
    )


def kiosk_hall(**rules) -> Hall:
    """The small hall with an entrance kiosk: a USB ticket printer and a serial ID-card reader."""
    return dataclasses.replace(small_hall(**rules), devices=(
        Device("printer-1", "ticket_printer", "usb", address="0416:5011"),
        Device("reader-1", "id_reader", "serial", port="/dev/ttyUSB0", options=(("baud", "115200"),)),
        Device("scanner-1", "code_scanner", "serial", port="/dev/ttyACM0"),
    ))


# the calling hall's voice: on, no sound device (the WAV files are written)
CALLING_VOICE = VoiceSettings()


def calling_hall(**rules) -> Hall:
    """Three windows serving A. Window 1 and 3 keypads, pads and bars on RS-485 (window 1's bar
    an Onbon), window 2 a tablet keypad and an MQTT bar; the main display on MQTT. Its calls
    are spoken when it runs with `CALLING_VOICE`."""
    hall = small_hall({1: ("A",), 2: ("A",), 3: ("A",)}, **rules)
    bus, bars = "/dev/ttyUSB1", "/dev/ttyUSB2"
    return dataclasses.replace(hall, devices=(
        Device("keypad-1", "counter_keypad", "serial", port=bus, window=1, options=(("address", "1"),)),
        Device("keypad-3", "counter_keypad", "serial", port=bus, window=3, options=(("address", "3"),)),
        Device("pad-3", "evaluator_pad", "serial", port=bus, window=3, options=(("address", "13"),)),
        Device("bar-1", "caller_display", "serial", port=bars, window=1,
               options=(("address", "1"), ("codec", "onbon"))),
        Device("bar-3", "caller_display", "serial", port=bars, window=3, options=(("address", "3"),)),
        Device("tablet-2", "counter_keypad", "mqtt", topic="hall/window/2/keypad", window=2),
        Device("bar-2", "caller_display", "mqtt", topic="hall/window/2/display", window=2),
        Device("pad-2", "evaluator_pad", "mqtt", topic="hall/window/2/pad", window=2),
        Device("main", "hall_display", "mqtt", topic="hall/display/main"),
    ))


def access_hall(**rules) -> Hall:
    """The kiosk hall with an account of every role: s1-s3 at their windows 1-3, the
    supervisor `boss`, the callback officer `officer`, the admin `admin`, and `leaver`
    (staff, B post at every window) for the stories where an account is disabled."""
    hall = kiosk_hall(**rules)
    extra = {
        "officer": Staff("officer", "回访专员", StaffRole.CALLBACK_OFFICER, PIN_HASH, demo=True),
        "admin": Staff("admin", "管理员", StaffRole.ADMIN, PIN_HASH, demo=True),
        "leaver": Staff("leaver", "即将离职", StaffRole.STAFF, PIN_HASH,
                        b_post=tuple(hall.windows), demo=True),
    }
    return dataclasses.replace(hall, staff={**hall.staff, **extra})
