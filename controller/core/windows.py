"""Window commands: logins at the A post or as B-post cover, pause and resume, and time passing
(pause-limit alerts, tidal window proposals). A mixin of `Engine`: pure, like it."""

from __future__ import annotations

import datetime as dt

from controller.core import commands as c
from controller.core import events as ev
from controller.core.errors import HallError
from controller.core.hall import StaffRole
from controller.core.model import HallState, WindowState, WindowStatus
from controller.core.outcome import Outcome

MAX_PAUSE_MINUTES = 240
MAX_REASON_CHARS = 50


def close_window(w: WindowState) -> None:
    w.evaluating = w.prompted_at = None
    w.status = WindowStatus.CLOSED
    w.staff_id = w.post = w.logged_in_at = None
    w.paused_at = w.pause_reason = w.pause_minutes = w.pause_whereabouts = None
    w.pause_alerted = False


class WindowCommands:
    def _pause(self, state: HallState, cmd: c.Pause, now: dt.datetime, out: Outcome) -> None:
        w = self._open_window(state, cmd.window)
        reason = (cmd.reason or "").strip()
        if not reason or len(reason) > MAX_REASON_CHARS:
            raise HallError("invalid_reason", f"请填写暂停原因（不超过 {MAX_REASON_CHARS} 字）")
        if not isinstance(cmd.minutes, int) or not 1 <= cmd.minutes <= MAX_PAUSE_MINUTES:
            raise HallError("invalid_minutes", f"预计时长应为 1 到 {MAX_PAUSE_MINUTES} 分钟")
        whereabouts = (cmd.whereabouts or "").strip() or None
        if whereabouts and len(whereabouts) > MAX_REASON_CHARS:
            raise HallError("invalid_reason", f"去向说明不超过 {MAX_REASON_CHARS} 字")
        if w.current is not None:
            raise HallError("window_busy")
        self._end_prompt(w, now, out, "paused")  # the pad is blanked while staff are away
        w.status = WindowStatus.PAUSED
        w.pause_whereabouts = whereabouts
        w.paused_at = now
        w.pause_reason = reason
        w.pause_minutes = cmd.minutes
        w.pause_alerted = False
        out.touch(w)
        out.emit(ev.WINDOW_PAUSED, now, w.number, staff=w.staff_id, reason=reason,
                 minutes=cmd.minutes, whereabouts=whereabouts,
                 until=(now + dt.timedelta(minutes=cmd.minutes)).isoformat())

    def _resume(self, state: HallState, cmd: c.Resume, now: dt.datetime, out: Outcome) -> None:
        w = self._window(state, cmd.window)
        if w.status is not WindowStatus.PAUSED:
            raise HallError("window_not_paused")
        paused = now - w.paused_at if w.paused_at else dt.timedelta()
        limit = dt.timedelta(minutes=self.hall.rules.pause_limit_minutes)
        w.status = WindowStatus.OPEN
        w.paused_at = w.pause_reason = w.pause_minutes = w.pause_whereabouts = None
        w.pause_alerted = False
        out.touch(w)
        out.emit(ev.WINDOW_RESUMED, now, w.number, staff=w.staff_id,
                 paused_seconds=int(paused.total_seconds()), over_limit=paused > limit)

    def _login(self, state: HallState, cmd: c.Login, now: dt.datetime, out: Outcome) -> None:
        w = self._window(state, cmd.window)
        staff = self.hall.staff.get(cmd.staff_id)
        if staff is None:
            raise HallError("unknown_staff")
        if w.staff_id == staff.id:
            return  # already there: logging in again changes nothing
        if w.number in staff.a_post:
            post = "A"
        elif w.number in staff.b_post or staff.role is StaffRole.SUPERVISOR:
            post = "B"  # a supervisor may cover any window in a pinch
        else:
            raise HallError("not_at_post")
        if w.status is not WindowStatus.CLOSED:
            raise HallError("window_occupied", f"{w.number} 号窗口已由 {w.staff_id} 登录")
        elsewhere = [o.number for o in state.windows.values() if o.staff_id == staff.id]
        if elsewhere:
            raise HallError("already_logged_in", f"您已在 {elsewhere[0]} 号窗口登录，请先退出")
        w.status = WindowStatus.OPEN
        w.staff_id = staff.id
        w.post = post
        w.logged_in_at = now
        out.touch(w)
        out.emit(ev.WINDOW_OPENED, now, w.number, staff=staff.id, post=post)

    def _logout(self, state: HallState, cmd: c.Logout, now: dt.datetime, out: Outcome) -> None:
        w = self._window(state, cmd.window)
        if w.status is WindowStatus.CLOSED:
            raise HallError("window_closed")
        if w.current is not None:
            raise HallError("window_busy")
        staff, since = w.staff_id, w.logged_in_at
        self._end_prompt(w, now, out, "closed")
        close_window(w)
        out.touch(w)
        out.emit(ev.WINDOW_CLOSED, now, w.number, staff=staff,
                 seconds=int((now - since).total_seconds()) if since else None)

    def _tick(self, state: HallState, cmd: c.Tick, now: dt.datetime, out: Outcome) -> None:
        self._propose_tidal(state, now, out)
        self._end_stale_prompts(state, now, out)
        self._remind_patrols(state, now, out)
        limit = dt.timedelta(minutes=self.hall.rules.pause_limit_minutes)
        for w in state.windows.values():
            if (w.status is WindowStatus.PAUSED and not w.pause_alerted and w.paused_at
                    and now - w.paused_at > limit):
                w.pause_alerted = True
                out.touch(w)
                out.emit(ev.PAUSE_OVER_LIMIT, now, w.number, staff=w.staff_id,
                         reason=w.pause_reason,
                         paused_seconds=int((now - w.paused_at).total_seconds()))

    def _propose_tidal(self, state: HallState, now: dt.datetime, out: Outcome) -> None:
        """潮汐窗口: propose opening a closed tidal window when a queue it serves runs long,
        and closing an open one when its queues are empty. Each proposal is made once."""
        rules = self.hall.rules
        for cfg in self.hall.windows.values():
            if not cfg.tidal:
                continue
            w = state.windows[cfg.number]
            waiting = {p: state.queues.waiting(p) for p in cfg.services}
            if w.status is WindowStatus.CLOSED:
                for prefix, n in waiting.items():
                    p50 = self.estimate(state, prefix, n, now).p50 if n else 0.0
                    if n >= rules.tidal_open_waiting or p50 >= rules.tidal_open_wait_minutes:
                        if state.tidal.get(cfg.number) != "open":
                            state.tidal[cfg.number] = "open"
                            out.emit(ev.TIDAL_OPEN_PROPOSED, now, cfg.number, service=prefix,
                                     waiting=n, eta_p50=p50)
                        break
                else:
                    state.tidal.pop(cfg.number, None)
            elif not any(waiting.values()) and w.current is None:
                if state.tidal.get(cfg.number) != "close":
                    state.tidal[cfg.number] = "close"
                    out.emit(ev.TIDAL_CLOSE_PROPOSED, now, cfg.number)
            else:
                state.tidal.pop(cfg.number, None)
