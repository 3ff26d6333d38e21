"""Who may put a ticket first, and why a window may call a number out of order.

004 行为规范 3: "不得因个人关系或其他原因对事务进行优先处理"; 000 行为规范 四.2:
"来早、来晚一样接待". Priority (绿色通道) comes from the age rule on the ID card, or
from a member of staff whose post may grant it:

- a supervisor (现场负责人);
- a member of staff marked `guidance_desk = true` in the hall config (导办台);
- whoever is logged in at a window marked `green_channel = true` (绿色通道窗口).

Anybody else asking for it (a kiosk, a bare client, staff at an ordinary window) is
refused with `priority_not_allowed` and nothing is issued. The ticket records who
granted it in `priority_by`: `staff:<id>`, or `rule:age` for the card's age rule.

Calling a number out of order (叫指定号) takes one of `CALL_REASONS`; 其他 needs a
note saying why. The reason goes with the call into the event log, where the
supervisor sees it at once and the reports count it per member of staff.
"""

from __future__ import annotations

import datetime as dt

from controller.core import identity
from controller.core.errors import HallError
from controller.core.hall import Hall, StaffRole
from controller.core.model import HallState, PriorityClass, WindowStatus

AGE_RULE = "rule:age"

# 叫指定号的原因. A counter keypad has no text: its call-number key means 过号返回,
# the common case (a citizen back after missing the call).
CALL_REASONS = ("过号返回", "预约到达", "绿色通道", "转办返回", "其他")
KEYPAD_CALL_REASON = "过号返回"
OTHER_REASON = "其他"
NOTE_MAX = 50


def may_grant(hall: Hall, state: HallState, staff_id: str | None) -> bool:
    """Whether `staff_id` (the logged-in member of staff issuing) may grant priority now."""
    staff = hall.staff.get(staff_id) if staff_id else None
    if staff is None:
        return False
    if staff.role is StaffRole.SUPERVISOR or staff.guidance_desk:
        return True
    return any(w.staff_id == staff.id and w.status is not WindowStatus.CLOSED
               and hall.windows[n].green_channel for n, w in state.windows.items()
               if n in hall.windows)


def granted(hall: Hall, state: HallState, requested: PriorityClass | None,
            staff_id: str | None, born: dt.date | None,
            today: dt.date) -> tuple[PriorityClass | None, str | None]:
    """The ticket's priority and who granted it; refuses a request nobody may grant."""
    if requested is not None:
        if not may_grant(hall, state, staff_id):
            raise HallError("priority_not_allowed")
        return requested, f"staff:{staff_id}"
    if born and identity.age_on(born, today) >= hall.rules.priority_age:
        return PriorityClass.ELDERLY, AGE_RULE
    return None, None


def call_reason(reason: object, note: object) -> tuple[str, str | None]:
    """The reason (and note) of an out-of-order call, or a refusal saying what to give."""
    if reason is None or (isinstance(reason, str) and not reason.strip()):
        raise HallError("call_reason_required")
    if not isinstance(reason, str) or reason.strip() not in CALL_REASONS:
        raise HallError("invalid_call_reason")
    reason = reason.strip()
    text = note.strip() if isinstance(note, str) else None
    if note is not None and not isinstance(note, str):
        raise HallError("invalid_call_reason", "说明应为文字")
    if text and len(text) > NOTE_MAX:
        raise HallError("invalid_call_reason", f"说明不能超过 {NOTE_MAX} 个字")
    if reason == OTHER_REASON and not text:
        raise HallError("call_reason_required", "选择“其他”时请写明原因")
    return reason, text or None
