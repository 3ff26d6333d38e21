"""The tablet evaluation pad's JSON over MQTT.

The controller publishes the pad's state, retained, on `<topic>/state`:
    {"state": "blank"}                                   (window paused or closed, or idle)
    {"state": "prompt", "window": 3, "staff": "陈静", "ticket": "A012"}
    {"state": "thanks"}
The pad publishes a grade (QoS 1, not retained) on `<topic>/grade`:
    {"id": "<unique>", "grade": "非常满意" | 1..5, "tags": ["态度", ...]}
A number is the pad's key: 1 非常满意 … 5 非常不满意 (`PAD_GRADES`, the pads' own order,
not an upload's code table: those are controller.backoffice.evaluation_reports.GRADE_CODES). The id
makes a repeated delivery harmless.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from drivers.protocol import ProtocolError
from vocabulary import LABELS, by_code

# The pads' keys, 1 = 非常满意 … 5 = 非常不满意 (GB/T 39734-2020's five grades, best first)
PAD_GRADES = LABELS
GRADES_GB39046 = PAD_GRADES  # the old, wrong name (GB/T 39046 is no grade table), for old code
MAX_TAGS = 8


class PadProtocolError(ProtocolError, ValueError):
    """A pad message that cannot be understood."""


@dataclass(frozen=True)
class PadGrade:
    id: str
    grade: str
    tags: tuple[str, ...] = ()


def parse_grade_json(payload: bytes | str) -> PadGrade:
    try:
        data = json.loads(payload)
    except (ValueError, RecursionError) as e:  # RecursionError: JSON nested a thousand deep
        raise PadProtocolError(f"pad message: not JSON ({e})") from None
    if not isinstance(data, dict):
        raise PadProtocolError("pad message: expected a JSON object")
    unknown = set(data) - {"id", "grade", "tags"}
    if unknown:
        raise PadProtocolError(f"pad message: unknown field(s) {', '.join(sorted(unknown))}")
    message_id, grade, tags = data.get("id"), data.get("grade"), data.get("tags", [])
    if not isinstance(message_id, str) or not 1 <= len(message_id) <= 64:
        raise PadProtocolError("pad message: id must be a string of 1-64 characters")
    if (keyed := by_code(grade)) is not None:
        grade = keyed.label
    if grade not in PAD_GRADES:
        raise PadProtocolError(f"pad message: grade must be 1-5 or one of {'、'.join(PAD_GRADES)}")
    if (not isinstance(tags, list) or len(tags) > MAX_TAGS
            or not all(isinstance(t, str) and 0 < len(t) <= 16 for t in tags)):
        raise PadProtocolError(f"pad message: tags must be at most {MAX_TAGS} short strings")
    return PadGrade(message_id, grade, tuple(tags))


def encode_grade_json(grade: PadGrade) -> bytes:
    return json.dumps({"id": grade.id, "grade": grade.grade, "tags": list(grade.tags)},
                      ensure_ascii=False).encode()


def pad_state_json(state: str, window: int | None = None, staff: str | None = None,
                   ticket: str | None = None) -> dict[str, Any]:
    if state == "prompt":
        return {"state": "prompt", "window": window, "staff": staff, "ticket": ticket}
    if state in ("blank", "thanks"):
        return {"state": state}
    raise PadProtocolError(f"pad state must be blank, prompt or thanks, not {state!r}")
