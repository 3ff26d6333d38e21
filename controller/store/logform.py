"""The logs' stored form (issue 15: a ticket's bytes on disk): the one place that encodes a
command's moment and the JSON of a command's args and an event's data for `command_log` and
`event_log`. The views `commands` and `events` (migration 17, `controller/store/db.py`) decode
them in SQL, so every reader sees the text it always saw.

A payload (an event's `data`, a command's `args`) is stored against a shape (形状): its name
(the event kind or the command name) and a template, kept once in `log_shapes`. The template
has the payload's members in order, each with its type's empty value (null, false, 0, 0.0,
[]), except the few members the hall repeats from a small vocabulary (the channel, the grade,
the service, the staff member), which keep their value. The row stores only the members that
differ from the template, or NULL when none does; `json_patch(template, row)` gives the
payload back, text for text. A payload with a null inside a nested object cannot be said so
(a merge patch's null deletes) and is stored whole, against a shape with no template.

A command's moment is stored as an integer, microseconds since 1970 on the hall's wall clock,
with the zone's offset in minutes beside it; a moment that does not fit (no zone, an offset
with seconds) is kept as its ISO text.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from typing import Any

# members whose value the template keeps: few values, repeated on most rows
TEMPLATED = frozenset({"channel", "grade", "service", "staff"})

_EPOCH = dt.datetime(1970, 1, 1)
_US = dt.timedelta(microseconds=1)


def log_json(value: Any, default: Any = None) -> str:
    """The logs' JSON: compact (no spaces after "," and ":"), Chinese as it is."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=default)


def _empty(value: Any) -> Any:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return 0
    if isinstance(value, float):
        return 0.0
    if isinstance(value, list):
        return []
    return None


def _null_inside(value: Any) -> bool:
    """Whether a merge patch would drop a null of `value`: one in an object, or in an object
    of an object (an array is put in whole)."""
    return isinstance(value, dict) and any(v is None or _null_inside(v) for v in value.values())


def encode_payload(payload: Any, default: Any = None) -> tuple[str | None, str | None]:
    """(template, stored) of `payload`: the template of its shape (None: stored whole) and
    what its row keeps (None: nothing differs from the template)."""
    text = log_json(payload, default)
    value = json.loads(text) if default is not None else payload  # `default` made it JSON
    if not isinstance(value, dict) or any(_null_inside(v) for v in value.values()):
        return None, text
    template: dict[str, Any] = {}
    differs: dict[str, Any] = {}
    for key, v in value.items():
        template[key] = same = v if key in TEMPLATED and isinstance(v, str) else _empty(v)
        if type(v) is not type(same) or v != same or (isinstance(v, float) and math.copysign(1, v) < 0):
            differs[key] = v  # -0.0 == 0.0, and its text is not
    return log_json(template), (log_json(differs) if differs else None)


def payload_sql(template: str, stored: str) -> str:
    """The SQL that gives a payload's text back from its shape's `template` and its row's
    `stored` column."""
    return (f"CASE WHEN {template} IS NULL THEN {stored} "
            f"ELSE json_patch({template}, COALESCE({stored}, '{{}}')) END")


def encode_at(at: dt.datetime) -> tuple[int | str, int | None]:
    """(moment, zone) of a command's `at`: microseconds on the wall clock and the offset in
    minutes, or the ISO text and None where that would not give the same text back."""
    offset = at.utcoffset()
    if offset is None or offset % dt.timedelta(minutes=1) or at.year < 1970:
        return at.isoformat(), None
    return (at.replace(tzinfo=None) - _EPOCH) // _US, offset // dt.timedelta(minutes=1)


def at_sql(moment: str, zone: str) -> str:
    """The SQL that gives a command's `at` back as datetime.isoformat() wrote it."""
    return (f"CASE WHEN {zone} IS NULL THEN {moment} ELSE "
            f"strftime('%Y-%m-%dT%H:%M:%S', {moment} / 1000000, 'unixepoch') "
            f"|| CASE WHEN {moment} % 1000000 THEN printf('.%06d', {moment} % 1000000) ELSE '' END "
            f"|| printf('%s%02d:%02d', CASE WHEN {zone} < 0 THEN '-' ELSE '+' END, "
            f"abs({zone}) / 60, abs({zone}) % 60) END")


def events_by_moment(columns: str, where: str = "1") -> str:
    """SQL for `columns` of the events (as the `events` view has them) between the moments
    :lo and :hi (ISO text, `lo <= at < hi` as text compares, as the view's `at` always did),
    with `where` besides, in the order of the log; params from `moment_bounds`. The view
    would format every event's moment to compare it; this compares the stored integers and
    formats only the rare event with a moment of its own, and the ties."""
    bounds = ("(moment > :lo_us OR (moment = :lo_us AND at >= :lo) OR (moment IS NULL AND at >= :lo)) "
              "AND (moment < :hi_us OR (moment = :hi_us AND at < :hi) OR (moment IS NULL AND at < :hi))")
    return (f"SELECT {columns} FROM (SELECT e.id AS id, COALESCE(e.at, {at_sql('c.at', 'c.zone')}) AS at, "
            f"s.name AS kind, e.window AS window, e.ticket_id AS ticket_id, "
            f"{payload_sql('s.template', 'e.data')} AS data, "
            f"CASE WHEN e.at IS NULL AND c.zone IS NOT NULL THEN c.at END AS moment "
            f"FROM event_log e JOIN command_log c ON c.id = e.command_id "
            f"JOIN log_shapes s ON s.code = e.kind) WHERE {bounds} AND ({where}) ORDER BY id")


def moment_bounds(lo: str, hi: str) -> dict[str, Any]:
    """The params of `events_by_moment`: the moments as text and on the wall clock."""
    def wall(text: str) -> int:
        return (dt.datetime.fromisoformat(text).replace(tzinfo=None) - _EPOCH) // _US
    return {"lo": lo, "hi": hi, "lo_us": wall(lo), "hi_us": wall(hi)}
