"""好差评: the evaluation pad's prompt and the grade, one per service visit (一次一评).

The pad asks when the service finishes (or when staff start it at reception,
004 服务方式 1); a grade closes the prompt; later presses find no prompt and
are refused (and so logged); a prompt left unanswered ends after the hall's
timeout, because evaluation is voluntary and nobody is nagged (国办发〔2019〕51号).
Nobody may influence it either (same text): once a visit is finished its
prompt stays until graded or timed out, whatever the window does (pause,
logout). The one way a prompt still ends early is the window's next visit
finishing (one pad, one question); that is "cut short" and counted against
the staff member of the visit (`cut_short`, the evaluation report).
Pure, like the engine.
"""

from __future__ import annotations

import datetime as dt

from controller.core import commands as c
from controller.core import events as ev
from controller.core.context import Context
from controller.core.errors import HallError
from controller.core.hall import EVALUATION_GRADES
from controller.core.lookups import known_window
from controller.core.model import HallState, Ticket, TicketStatus, WindowState
from controller.core.outcome import Outcome
from vocabulary import SYSTEM_DEFAULT, is_bad_review

# Why a prompt ended without a grade. The timeout is the citizen's own choice; the day's end
# ends only a prompt the timeout would have ended (a controller that did not tick overnight).
# Every other reason (this module's "superseded", and "paused"/"closed" in logs from before the
# prompt survived them) is a prompt cut short.
PROMPT_TIMED_OUT = "timeout"
SUPERSEDED = "superseded"
# a prompt the timeout or the night ended, or whose visit went back to the queue when an admin
# disabled its staff (the visit is asked about at its next window), was cut short by nobody
NOT_CUT_SHORT = (PROMPT_TIMED_OUT, "day_end", "requeued")


def cut_short(reason: str | None) -> bool:
    """Whether an `evaluation_ended` reason means the citizen lost the chance to grade."""
    return reason not in NOT_CUT_SHORT


def prompt(w: WindowState, t: Ticket, now: dt.datetime, out: Outcome) -> None:
    """Ask the window's pad about `t`, unless that visit was graded already; asking again
    about the visit it asks about now starts its timeout again."""
    if t.grade is not None:
        return
    if w.evaluating is not None and w.evaluating != t.id:
        end_prompt(w, now, out, SUPERSEDED)
    w.evaluating, w.prompted_at = t.id, now
    out.touch(w)
    out.emit(ev.EvaluationPrompted(at=now, window=w.number, ticket=t.id, label=t.label,
                                   staff=w.staff_id), t)


def end_prompt(w: WindowState, now: dt.datetime, out: Outcome, reason: str) -> None:
    if w.evaluating is None:
        return
    ticket = w.evaluating
    w.evaluating = w.prompted_at = None
    out.touch(w)
    out.emit(ev.EvaluationEnded(at=now, window=w.number, ticket=ticket, reason=reason))


def start_evaluation(ctx: Context, cmd: c.StartEvaluation) -> None:
    """The keypad's 评价 key: ask about the visit being served (at reception), or else (again)
    about the window's last finished visit, if it is ungraded. Whatever the window's state:
    a prompt is never the staff member's to withhold."""
    w = known_window(ctx.state, cmd.window)
    t = ctx.state.current_at(w.number) or last_finished(ctx.state, w.number)
    if t is None:
        raise HallError("no_evaluation")
    if t.grade is not None:
        raise HallError("already_evaluated")
    prompt(w, t, ctx.now, ctx.out)


def evaluate(ctx: Context, cmd: c.Evaluate) -> None:
    now, out = ctx.now, ctx.out
    w = known_window(ctx.state, cmd.window)
    if cmd.grade not in EVALUATION_GRADES:
        raise HallError("invalid_grade", f"评价等级应为：{'、'.join(EVALUATION_GRADES)}")
    t = ctx.state.tickets.get(w.evaluating) if w.evaluating else None
    if t is None:
        raise HallError("no_evaluation")
    if t.grade is not None:
        raise HallError("already_evaluated")
    t.grade, t.grade_channel, t.graded_at = cmd.grade, cmd.channel, now
    t.grade_tags = ",".join(cmd.tags) or None
    w.evaluating = w.prompted_at = None
    out.touch(w)
    out.ticket = t
    out.emit(ev.TicketEvaluated(at=now, window=w.number, ticket=t.id, grade=cmd.grade,
                                channel=cmd.channel, real_name=t.real_name, staff=t.staff_id,
                                service=t.service, tags=list(cmd.tags),
                                bad=is_bad_review(cmd.grade, cmd.channel)), t)


def end_stale_prompts(ctx: Context) -> None:
    timeout = dt.timedelta(seconds=ctx.hall.rules.evaluation_prompt_seconds)
    for w in ctx.state.windows.values():
        if w.evaluating and w.prompted_at and ctx.now - w.prompted_at > timeout:
            end_prompt(w, ctx.now, ctx.out, PROMPT_TIMED_OUT)


def last_finished(state: HallState, window: int) -> Ticket | None:
    """The visit `window` finished last today (None before its first)."""
    finished = [(t.finished_at, t) for t in state.tickets.values()
                if t.window == window and t.status is TicketStatus.FINISHED and t.finished_at]
    latest = max(finished, key=lambda pair: pair[0], default=None)
    return latest[1] if latest else None


def default_grade(t: Ticket, grade: str, now: dt.datetime) -> ev.TicketEvaluated:
    """An unevaluated visit gets the hall's default grade, marked as the system's, never as
    a real evaluation (Guangdong: 7 days, 基本满意)."""
    t.grade, t.grade_channel, t.graded_at = grade, SYSTEM_DEFAULT, now
    return ev.TicketEvaluated(at=now, window=t.window, ticket=t.id, grade=grade,
                              channel=SYSTEM_DEFAULT, real_name=t.real_name, staff=t.staff_id,
                              service=t.service, tags=[], bad=False)
