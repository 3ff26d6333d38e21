"""巡查台账: the supervisor's patrol rounds and the reminders at the fixed patrol times.

000 巡查制度 第三条: fixed rounds at 9:30 and 13:40 besides unannounced ones; 第六条: every
round's time, place, what was found and the problems are recorded as a ledger. A round
records who is at each window from the live state, so nobody types it in. Pure, like the
engine.
"""

from __future__ import annotations

from controller.core import commands as c
from controller.core import events as ev
from controller.core.context import Context
from controller.core.errors import HallError
from controller.core.hall import Hall
from controller.core.model import HallState

MAX_FINDINGS_CHARS = 500
MAX_AREA_CHARS = 50
DEFAULT_AREA = "大厅"


def window_snapshot(hall: Hall, state: HallState) -> list[ev.WindowSnapshot]:
    """Who is at each window now (在岗情况), in the hall's words."""
    out: list[ev.WindowSnapshot] = []
    for number in sorted(state.windows):
        w = state.windows[number]
        staff = hall.staff.get(w.staff_id) if w.staff_id else None
        current = state.current_at(number)
        out.append({
            "window": number, "name": hall.windows[number].name, "status": w.status.value,
            "staff": w.staff_id, "staff_name": staff.name if staff else None, "post": w.post,
            "pause_reason": w.pause_reason, "serving": current.label if current else None,
        })
    return out


def record_patrol(ctx: Context, cmd: c.RecordPatrol) -> None:
    hall, now = ctx.hall, ctx.now
    findings = cmd.findings.strip() if isinstance(cmd.findings, str) else None
    area = (cmd.area.strip() if isinstance(cmd.area, str) else "") or DEFAULT_AREA
    if findings is None or len(findings) > MAX_FINDINGS_CHARS:
        raise HallError("invalid_reason", f"巡查中发现的问题不超过 {MAX_FINDINGS_CHARS} 字")
    if not isinstance(cmd.no_problems, bool) or cmd.no_problems == bool(findings):
        raise HallError("invalid_reason",
                        "请选择“今日巡查无异常”，或填写巡查中发现的问题（二者选一）")
    if len(area) > MAX_AREA_CHARS:
        raise HallError("invalid_reason", f"巡查地点不超过 {MAX_AREA_CHARS} 字")
    signer = hall.staff.get(cmd.signer) if isinstance(cmd.signer, str) else None
    if signer is None:
        raise HallError("no_such_staff", "巡查人员签字须为本厅工作人员的工号")
    open_today = bool(hall.hours_on(now.date()).sessions)
    passed = [t for t in hall.patrol_times if t <= now.time()] if open_today else []
    ctx.out.emit(ev.PatrolRecorded(
        at=now, day=now.date().isoformat(), scheduled=f"{passed[-1]:%H:%M}" if passed else None,
        area=area, no_problems=cmd.no_problems, findings=findings, signer=signer.id,
        signer_name=signer.name, windows=window_snapshot(hall, ctx.state)))


def remind_patrols(ctx: Context) -> None:
    """One reminder per configured time per open day, at the first tick past it. A time
    already followed by a later one (the controller was off) is passed over."""
    hall, now = ctx.hall, ctx.now
    if not hall.hours_on(now.date()).sessions:
        return
    passed = [f"{t:%H:%M}" for t in hall.patrol_times if t <= now.time()]
    if not passed or passed[-1] in ctx.state.patrols_reminded:
        return
    ctx.state.patrols_reminded.update(passed)
    ctx.out.emit(ev.PatrolDue(at=now, time=passed[-1], day=now.date().isoformat()))
