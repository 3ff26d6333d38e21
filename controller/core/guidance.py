"""帮办代办: a citizen at a kiosk asks for help and the guidance desk (导办台) is called.

001 5.1.6.3: "服务对象提出帮办需求的，应当立即安排人员". The kiosk's 帮办代办 button calls
the desk; the call stands, on the supervisor's list of alerts, until someone at the guidance
desk (or the supervisor) answers it. One call per kiosk stands at a time: pressing again
while it stands calls nobody twice. Pure, like the engine.
"""

from __future__ import annotations

from controller.core import commands as c
from controller.core import events as ev
from controller.core.context import Context
from controller.core.errors import HallError


def call_guidance(ctx: Context, cmd: c.CallGuidance) -> None:
    calls = ctx.state.guidance_calls
    if cmd.kiosk in calls:
        return  # the desk is already on its way: the same call, not a second one
    calls[cmd.kiosk] = ctx.now
    ctx.out.emit(ev.GuidanceCalled(at=ctx.now, kiosk=cmd.kiosk))


def answer_guidance(ctx: Context, cmd: c.AnswerGuidance) -> None:
    calls = ctx.state.guidance_calls
    called_at = calls.get(cmd.kiosk)
    if called_at is None:
        raise HallError("no_guidance_call")
    staff = ctx.hall.staff.get(cmd.staff_id)
    if staff is None:
        raise HallError("no_such_staff")
    del calls[cmd.kiosk]
    ctx.out.emit(ev.GuidanceAnswered(
        at=ctx.now, kiosk=cmd.kiosk, staff=staff.id, staff_name=staff.name,
        waited_seconds=max(0, round((ctx.now - called_at).total_seconds()))))
