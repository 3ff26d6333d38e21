"""The hall config's `[patrol]` and `[assessment]` sections (read by `controller.config.hall`).

    [patrol]
    times = ["09:30", "13:40"]          # 000 巡查制度 第三条

    [assessment]                        # any key left out keeps its default (AssessmentTable)
    late_early_points = 1
    satisfaction_bands = [[100, 10], [90, 9], [80, 7], [0, 5]]

Every mistake is a `ConfigError` naming the key.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from typing import Any

from controller.core.assessment import AssessmentTable
from controller.config.tomlkeys import ConfigError, Table, found, is_int

_TIME = re.compile(r"([0-9]{1,2}):([0-9]{2})")

_MINUTES = {  # name -> (low, high)
    "tolerance_minutes": (0, 60), "late_early_long_minutes": (1, 480),
    "absence_short_minutes": (1, 480), "half_day_minutes": (1, 480),
}
_COUNTS = {"late_early_half_day_count": (1, 100)}
_POINTS = ("late_early_points", "late_early_long_points", "absence_short_points",
           "absence_long_points", "half_day_points", "bad_review_points", "complaint_points",
           "cases_points_cap", "out_of_order_points")
_BANDS = "satisfaction_bands"


def patrol(top: Table) -> dict[str, Any]:
    """The fixed patrol times, each reminded once a day."""
    t = top.table("patrol", ("times",))
    if "times" not in t.data:
        return {}
    times: list[dt.time] = []
    for key, value in t.items("times", expected='an array of times, e.g. ["09:30", "13:40"]'):
        match = _TIME.fullmatch(value.strip()) if isinstance(value, str) else None
        try:
            at = dt.time(int(match[1]), int(match[2])) if match else None
        except ValueError:
            at = None
        if at is None:
            raise ConfigError(key, f'expected a time "HH:MM" such as "09:30", found {found(value)}')
        if times and at <= times[-1]:
            raise ConfigError(key, f"{value!r} is not after {times[-1]:%H:%M}; list the times in order, each once")
        times.append(at)
    return {"patrol_times": tuple(times)}


def _is_points(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= 100


def assessment(top: Table) -> dict[str, Any]:
    """The monthly roll-up's scoring table; defaults from 003, 004 and 002 (AssessmentTable)."""
    t = top.table("assessment", (*_MINUTES, *_COUNTS, *_POINTS, _BANDS))
    if not t.data:
        return {}
    values: dict[str, Any] = {}
    for name in t.data:
        if name in _MINUTES:
            values[name] = t.integer(name, *_MINUTES[name])
        elif name in _COUNTS:
            values[name] = t.integer(name, *_COUNTS[name])
        elif name in _POINTS:
            values[name] = t.get(name, "a number of points from 0 to 100", _is_points)
        else:
            values[name] = _bands(t)
    table = AssessmentTable(**values)
    if table.half_day_minutes < table.late_early_long_minutes:
        t.fail("half_day_minutes", f"expected at least late_early_long_minutes "
               f"({table.late_early_long_minutes}): half a day's absence is the longest")
    if table.half_day_minutes < table.absence_short_minutes:
        t.fail("half_day_minutes", f"expected at least absence_short_minutes "
               f"({table.absence_short_minutes})")
    return {"assessment": table}


def _bands(t: Table) -> tuple[tuple[int, float], ...]:
    expected = "a pair [percent from 0 to 100, points], e.g. [90, 9]"
    bands: list[tuple[int, float]] = []
    for key, pair in t.items(_BANDS, expected="an array of [percent, points] pairs, highest first"):
        if not (isinstance(pair, list) and len(pair) == 2 and is_int(pair[0])
                and 0 <= pair[0] <= 100 and _is_points(pair[1])):
            raise ConfigError(key, f"expected {expected}, found {found(pair)}")
        if bands and pair[0] >= bands[-1][0]:
            raise ConfigError(key, f"{pair[0]}% is not below {bands[-1][0]}%; list the bands highest first")
        bands.append((pair[0], pair[1]))
    if not bands or bands[-1][0] != 0:
        t.fail(_BANDS, "expected the last band to start at 0%, so every month has its points")
    return tuple(bands)


assert {f.name for f in dataclasses.fields(AssessmentTable)} == {*_MINUTES, *_COUNTS, *_POINTS, _BANDS}
