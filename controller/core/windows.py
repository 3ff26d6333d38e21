"""Window commands: logins at the A post or as B-post cover, pause and resume, and time passing
(pause-limit alerts, tidal window proposals). Pure, like the engine."""

from __future__ import annotations

import datetime as dt

from controller.core import commands as c
from controller.core import events as ev
from controller.core.context import Context
from controller.core.errors import HallError
from controller.core.evaluation import end_prompt, end_stale_prompts
from controller.core.hall import Hall, StaffRole
from controller.core.lookups import known_window, open_window, priority_first
from controller.core.model import HallState, TicketStatus, WindowState, WindowStatus
from controller.core.outcome import Outcome
from controller.core.patrol import remind_patrols
from controller.core.routing import a_posts, b_posts, estimate, next_for

MAX_PAUSE_MINUTES = 240
MAX_REASON_CHARS = 50


def close_window(w: WindowState) -> None:
    w.evaluating = w.prompted_at = None
    w.status = WindowStatus.CLOSED
    w.staff_id = w.post = w.logged_in_at = None
    w.paused_at = w.pause_reason = w.pause_minutes = w.pause_whereabouts = None
    w.pause_alerted = False


def pause(ctx: Context, cmd: c.Pause) -> None:
    state, now, out = ctx.state, ctx.now, ctx.out
    w = open_window(state, cmd.window)
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
    # The visit's prompt stays (国办发〔2019〕51号: nobody may influence the grade); the pad
    # blanks for the pause once it is graded or times out.
    w.status = WindowStatus.PAUSED
    w.pause_whereabouts = whereabouts
    w.paused_at = now
    w.pause_reason = reason
    w.pause_minutes = cmd.minutes
    w.pause_alerted = False
    out.touch(w)
    out.emit(ev.WindowPaused(
        at=now, window=w.number, staff=w.staff_id, reason=reason, minutes=cmd.minutes,
        whereabouts=whereabouts, until=(now + dt.timedelta(minutes=cmd.minutes)).isoformat()))


def resume(ctx: Context, cmd: c.Resume) -> None:
    hall, state, now, out = ctx.hall, ctx.state, ctx.now, ctx.out
    w = known_window(state, cmd.window)
    if w.status is not WindowStatus.PAUSED:
        raise HallError("window_not_paused")
    paused = now - w.paused_at if w.paused_at else dt.timedelta()
    limit = dt.timedelta(minutes=hall.rules.pause_limit_minutes)
    w.status = WindowStatus.OPEN
    w.paused_at = w.pause_reason = w.pause_minutes = w.pause_whereabouts = None
    w.pause_alerted = False
    out.touch(w)
    out.emit(ev.WindowResumed(at=now, window=w.number, staff=w.staff_id,
                              paused_seconds=int(paused.total_seconds()),
                              over_limit=paused > limit))


def login(ctx: Context, cmd: c.Login) -> None:
    hall, state, now, out = ctx.hall, ctx.state, ctx.now, ctx.out
    w = known_window(state, cmd.window)
    staff = hall.staff.get(cmd.staff_id)
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
    takeover = (w.status is WindowStatus.PAUSED and w.post == "A" and post == "B")
    if w.status is not WindowStatus.CLOSED and not takeover:
        raise HallError("window_occupied", f"{w.number} 号窗口已由 {w.staff_id} 登录")
    elsewhere = [o.number for o in state.windows.values() if o.staff_id == staff.id]
    if elsewhere:
        raise HallError("already_logged_in", f"您已在 {elsewhere[0]} 号窗口登录，请先退出")
    cover_for = w.staff_id
    if takeover:
        hand_over(hall, w, staff.id, now, out)
    w.status = WindowStatus.OPEN
    w.staff_id = staff.id
    w.post = post
    w.logged_in_at = now
    out.touch(w)
    out.emit(ev.WindowOpened(at=now, window=w.number, staff=staff.id, post=post,
                             cover_for=cover_for if takeover else None))


def hand_over(hall: Hall, w: WindowState, cover: str, now: dt.datetime, out: Outcome) -> None:
    """顶岗补位: a B post takes over a window its A post paused. The pause ends and the A
    post's login with it (reason `cover`), so each has their own attendance and records;
    the caller then opens the B post's login."""
    paused = now - w.paused_at if w.paused_at else dt.timedelta()
    limit = dt.timedelta(minutes=hall.rules.pause_limit_minutes)
    staff, since = w.staff_id, w.logged_in_at
    out.emit(ev.WindowResumed(at=now, window=w.number, staff=staff,
                              paused_seconds=int(paused.total_seconds()),
                              over_limit=paused > limit, cover=cover))
    # the A post's last visit keeps its prompt, as a logout leaves it (nobody may influence it)
    prompt = w.evaluating, w.prompted_at
    close_window(w)
    w.evaluating, w.prompted_at = prompt
    out.emit(ev.WindowClosed(at=now, window=w.number, staff=staff, reason="cover", cover=cover,
                             seconds=int((now - since).total_seconds()) if since else None))


def logout(ctx: Context, cmd: c.Logout) -> None:
    hall, state, now, out = ctx.hall, ctx.state, ctx.now, ctx.out
    w = known_window(state, cmd.window)
    if w.status is WindowStatus.CLOSED:
        raise HallError("window_closed")
    if w.current is not None and not cmd.requeue_current:
        raise HallError("window_busy")
    if w.current is not None:
        requeue_current(hall, state, w, now, out)
    staff, since = w.staff_id, w.logged_in_at
    prompt = w.evaluating, w.prompted_at  # the last visit's prompt outlives the login
    close_window(w)
    w.evaluating, w.prompted_at = prompt
    out.touch(w)
    out.emit(ev.WindowClosed(at=now, window=w.number, staff=staff,
                             seconds=int((now - since).total_seconds()) if since else None))


def requeue_current(hall: Hall, state: HallState, w: WindowState, now: dt.datetime,
                    out: Outcome) -> None:
    """The visit at `w` was not finished by its staff: the ticket waits again in the place
    it had in its queue (at its head, by now), to be called at another window; not a 过号."""
    t = state.tickets.get(w.current) if w.current is not None else None
    w.current = None
    out.touch(w)
    if t is None or t.status is not TicketStatus.CALLED:
        return
    if w.evaluating == t.id:  # the visit goes on elsewhere: it is graded there
        end_prompt(w, now, out, "requeued")
    t.status = TicketStatus.WAITING
    t.window = None
    # its own place again: as it joined the queue, ahead of everyone who came after it
    state.queues.add(t, priority_first(hall, t.service))
    out.emit(ev.TicketRequeued(at=now, window=w.number, ticket=t.id, label=t.label,
                               service=t.service, reason="window_closed"), t)


def tick(ctx: Context, cmd: c.Tick) -> None:
    hall, state, now, out = ctx.hall, ctx.state, ctx.now, ctx.out
    propose_tidal(ctx)
    end_stale_prompts(ctx)
    remind_patrols(ctx)
    limit = dt.timedelta(minutes=hall.rules.pause_limit_minutes)
    for w in state.windows.values():
        if (w.status is WindowStatus.PAUSED and not w.pause_alerted and w.paused_at
                and now - w.paused_at > limit):
            w.pause_alerted = True
            out.touch(w)
            out.emit(ev.PauseOverLimit(
                at=now, window=w.number, staff=w.staff_id, reason=w.pause_reason,
                paused_seconds=int((now - w.paused_at).total_seconds())))
    watch_posts(ctx)


def watch_posts(ctx: Context) -> None:
    """The supervisor's alerts about who is at the windows, in opening hours; each is raised
    once and stands until its cause ends.

    - 顶岗补位制 / 002 制度10 第八条(二)1: an A-post window (not tidal) closed for longer
      than the pause limit with nobody covering it, counted from the logout or the
      session's start (a window paused too long is `pause_over_limit`);
    - 顶岗补位制: a window's A posts and its B posts all away (not at an open window) once
      the session is `staff_expected_minutes` old;
    - 先外后内 (000 文明服务制 第五条(一)4): an open window with nothing called for longer
      than `idle_alert_seconds` while a ticket it could call waits, counted from the later
      of its last visit (or login, or resume), that ticket's arrival and the opening.
    """
    state, now = ctx.state, ctx.now
    session = session_on(ctx.hall, now)
    at_work = {w.staff_id for w in state.windows.values() if w.status is WindowStatus.OPEN}
    standing: dict[tuple[str, int], dt.datetime] = {}
    for n, w in state.windows.items():
        closed_since = None
        if w.status is WindowStatus.CLOSED:
            closed_since = state.closed_since.setdefault(n, now)
        else:
            state.closed_since.pop(n, None)
        if w.status is not WindowStatus.OPEN or w.current is not None:
            state.idle_since.pop(n, None)
        if session is None:
            continue
        alerts = (_uncovered(ctx, n, max(closed_since, session)) if closed_since is not None else None,
                  _posts_away(ctx, n, at_work, session),
                  _idle(ctx, n, session))
        for alert in alerts:
            if alert is None:
                continue
            key = (alert.kind, n)
            standing[key] = state.alerted.get(key, now)
            if key not in state.alerted:
                ctx.out.emit(alert)
    state.alerted = standing


def _uncovered(ctx: Context, n: int, closed_since: dt.datetime) -> ev.WindowUncovered | None:
    """An A-post window (not tidal) closed past the pause limit, counted from the logout or
    the session's start."""
    hall, now = ctx.hall, ctx.now
    a_staff = a_posts(hall, n)
    limit = dt.timedelta(minutes=hall.rules.pause_limit_minutes)
    if not a_staff or hall.windows[n].tidal or now - closed_since <= limit:
        return None
    return ev.WindowUncovered(
        at=now, window=n, staff=[s.id for s in a_staff], names=[s.name for s in a_staff],
        since=closed_since.isoformat(), closed_seconds=int((now - closed_since).total_seconds()))


def _posts_away(ctx: Context, n: int, at_work: set[str | None], session: dt.datetime) -> ev.PostsAway | None:
    """A window's A posts and B posts all away once the session is `staff_expected_minutes` old."""
    hall, now = ctx.hall, ctx.now
    a_staff, b_staff = a_posts(hall, n), b_posts(hall, n)
    grace = dt.timedelta(minutes=hall.rules.staff_expected_minutes)
    if (not a_staff or not b_staff or hall.windows[n].tidal
            or ctx.state.windows[n].status is WindowStatus.OPEN or now - session < grace
            or any(s.id in at_work for s in (*a_staff, *b_staff))):
        return None
    return ev.PostsAway(
        at=now, window=n, staff=[s.id for s in a_staff], names=[s.name for s in a_staff],
        b_posts=[s.id for s in b_staff], b_names=[s.name for s in b_staff])


def _idle(ctx: Context, n: int, session: dt.datetime) -> ev.WindowIdle | None:
    """An open window with nothing called past `idle_alert_seconds` while a ticket it could
    call waits, counted from the later of its last visit, that ticket's arrival and the opening."""
    hall, state, now = ctx.hall, ctx.state, ctx.now
    w = state.windows[n]
    if w.status is not WindowStatus.OPEN or w.current is not None:
        return None
    idle = state.idle_since.setdefault(n, now)
    nxt = next_for(hall, state, n, now)
    if nxt is None:
        return None
    # staff in early call from the opening: the tickets taken before it wait till then
    since = max(idle, nxt.queued_at, session)
    if now - since <= dt.timedelta(seconds=hall.rules.idle_alert_seconds):
        return None
    waiting = sum(state.queues.waiting(p) for p in hall.windows[n].services)
    return ev.WindowIdle(at=now, window=n, staff=w.staff_id,
                         idle_seconds=int((now - since).total_seconds()),
                         service=nxt.service, waiting=waiting)


def note_window_changes(state: HallState, out: Outcome, now: dt.datetime) -> None:
    """Start or stop the floor alerts' clocks of the windows a command changed: closed
    since, idle since (open with nothing called: a finish, a no-show, a login, a resume)."""
    for n, w in out.windows.items():
        if w.status is WindowStatus.CLOSED:
            state.closed_since.setdefault(n, now)
        else:
            state.closed_since.pop(n, None)
            state.alerted.pop((ev.WINDOW_UNCOVERED, n), None)
        if w.status is WindowStatus.OPEN:
            state.alerted.pop((ev.POSTS_AWAY, n), None)
        if w.status is WindowStatus.OPEN and w.current is None:
            state.idle_since.setdefault(n, now)
        else:
            state.idle_since.pop(n, None)
            state.alerted.pop((ev.WINDOW_IDLE, n), None)


def session_on(hall: Hall, now: dt.datetime) -> dt.datetime | None:
    """The start of the session of the opening hours `now` is in, if any."""
    for s in hall.hours_on(now.date()).sessions:
        if s.contains(now.time()):
            return dt.datetime.combine(now.date(), s.start, now.tzinfo)
    return None


def propose_tidal(ctx: Context) -> None:
    """潮汐窗口: propose opening a closed tidal window when a queue it serves runs long,
    and closing an open one when its queues are empty. Each proposal is made once."""
    hall, state, now, out = ctx.hall, ctx.state, ctx.now, ctx.out
    rules = hall.rules
    for cfg in hall.windows.values():
        if not cfg.tidal:
            continue
        w = state.windows[cfg.number]
        waiting = {p: state.queues.waiting(p) for p in cfg.services}
        if w.status is WindowStatus.CLOSED:
            for prefix, n in waiting.items():
                p50 = estimate(hall, state, prefix, n, now).p50 if n else 0.0
                if n >= rules.tidal_open_waiting or p50 >= rules.tidal_open_wait_minutes:
                    if state.tidal.get(cfg.number) != "open":
                        state.tidal[cfg.number] = "open"
                        out.emit(ev.TidalOpenProposed(at=now, window=cfg.number, service=prefix,
                                                      waiting=n, eta_p50=p50))
                    break
            else:
                state.tidal.pop(cfg.number, None)
        elif not any(waiting.values()) and w.current is None:
            if state.tidal.get(cfg.number) != "close":
                state.tidal[cfg.number] = "close"
                out.emit(ev.TidalCloseProposed(at=now, window=cfg.number))
        else:
            state.tidal.pop(cfg.number, None)


def apply_district_bundle(ctx: Context, cmd: c.ApplyDistrictBundle) -> None:
    """配置下发 (c.ApplyDistrictBundle): the windows of the accounts it disabled closed, as
    `logout` closes them for the admin's disable, and the bundle's event."""
    for number in sorted(n for n, w in ctx.state.windows.items()
                         if w.staff_id is not None and w.staff_id in cmd.disabled):
        logout(ctx, c.Logout(number, requeue_current=True))
    ctx.out.emit(ev.DistrictBundleApplied(at=ctx.now, version=cmd.version, created_by=cmd.created_by,
                                          disabled=list(cmd.disabled), enabled=list(cmd.enabled),
                                          restart_needed=cmd.restart_needed))
