"""提醒: what the supervisor should see to now, from every part of the hall that knows it.

Each source answers the alerts standing at a moment, each as `Alert(kind, window, since,
text)`: the supervisor's page lists them when it opens (GET /api/v1/alerts) and again on
every change, and sounds when one it had not shown appears. What the hall knows today:

- in the hall's state (read together on the hall thread, `STATE_SOURCES`): a pause past
  the limit, a window unstaffed or its A and B posts all away, a window idle while people
  wait (controller.core.windows.watch_posts), a device faulty, offline or warning, a
  queue whose longest wait is past `tidal_open_wait_minutes`, and a kiosk's 帮办代办 call;
- in the database (read in a worker thread on a reading connection, `STORE_SOURCES`):
  callback and complaint cases past a deadline, and today's calls out of order.

A new kind of alert is one more source: a function of (hall, state, now) added to
`STATE_SOURCES`, or of (database, hall, now) to `STORE_SOURCES`, or any callable of `now`
given to `FloorAlerts.add` (a part of the hall with a state of its own).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from typing import Any, Callable, Iterable

import sqlite_utils

from controller.backoffice.case_records import case_from_json
from controller.core import events as ev
from controller.core.callbacks import CaseKind, CaseState
from controller.core.case_supervision import overdue
from controller.core.hall import Hall
from controller.core.model import HallState, WindowStatus
from controller.core.routing import a_posts, b_posts, next_for
from controller.core.windows import session_on
from controller.runtime.hallcontroller import HallController
from controller.store import casebook, history


@dataclasses.dataclass(frozen=True)
class Alert:
    """One thing standing on the floor that the supervisor should see to: its kind, the window
    it is about (None: the hall's), since when it stands, and what it is, in Chinese."""

    kind: str
    window: int | None
    since: dt.datetime
    text: str
    # what tells two alerts of a kind and window apart (a device's id, a case's id)
    subject: str | None = None
    # a fault or a rule broken now (red on the page), rather than a notice
    urgent: bool = False

    def json(self) -> dict[str, Any]:
        return {"kind": self.kind, "window": self.window, "since": self.since.isoformat(),
                "text": self.text, "subject": self.subject, "urgent": self.urgent}


StateSource = Callable[[Hall, HallState, dt.datetime], Iterable[Alert]]
StoreSource = Callable[[sqlite_utils.Database, Hall, dt.datetime], Iterable[Alert]]
Source = Callable[[dt.datetime], Iterable[Alert]]


def _minutes(seconds: float) -> int:
    return int(seconds // 60)


def _staff_name(hall: Hall, staff_id: str | None) -> str:
    staff = hall.staff.get(staff_id) if staff_id else None
    return staff.name if staff else (staff_id or "")


# -- in the hall's state ------------------------------------------------------------------

def paused_too_long(hall: Hall, state: HallState, now: dt.datetime) -> Iterable[Alert]:
    """暂停超时: a window paused past `pause_limit_minutes` (DB50/T 1603-2024 4.2.2)."""
    limit = dt.timedelta(minutes=hall.rules.pause_limit_minutes)
    for n, w in sorted(state.windows.items()):
        if w.status is WindowStatus.PAUSED and w.paused_at and now - w.paused_at > limit:
            who = "，".join(x for x in (_staff_name(hall, w.staff_id), w.pause_reason or "") if x)
            yield Alert(ev.PAUSE_OVER_LIMIT, n, w.paused_at + limit,
                        f"{n}号窗口暂停超过时限（{who}，已暂停 "
                        f"{_minutes((now - w.paused_at).total_seconds())} 分钟）", urgent=True)


def _names(staff: list) -> str:
    return "、".join(s.name for s in staff)


def nobody_at_work(hall: Hall, state: HallState, now: dt.datetime) -> Iterable[Alert]:
    """The floor alerts the core raised and that still stand (controller.core.windows
    watch_posts): a window unstaffed, its A and B posts all away, idle while people wait."""
    session = session_on(hall, now)
    for (kind, n), since in sorted(state.alerted.items(), key=lambda a: (a[0][1], a[0][0])):
        text = None
        if kind == ev.WINDOW_UNCOVERED and n in state.closed_since:
            closed = max(state.closed_since[n], session) if session else state.closed_since[n]
            text = (f"{n}号窗口（A岗 {_names(a_posts(hall, n))}）开放时间内无人在岗已 "
                    f"{_minutes((now - closed).total_seconds())} 分钟，无人顶岗")
        elif kind == ev.POSTS_AWAY:
            text = f"{n}号窗口 A岗 {_names(a_posts(hall, n))} 与 B岗 {_names(b_posts(hall, n))} 均不在岗"
        elif kind == ev.WINDOW_IDLE:
            text = _idle_text(hall, state, n, now)
        if text:
            yield Alert(kind, n, since, text, urgent=kind != ev.WINDOW_IDLE)


def _idle_text(hall: Hall, state: HallState, n: int, now: dt.datetime) -> str | None:
    """先外后内 (000 文明服务制 第五条(一)4): counted as the core counts it."""
    nxt = next_for(hall, state, n, now)
    idle = state.idle_since.get(n)
    if nxt is None or idle is None:
        return None
    session = session_on(hall, now)
    since = max(idle, nxt.queued_at, *((session,) if session else ()))
    waiting = sum(state.queues.waiting(p) for p in hall.windows[n].services)
    return (f"{n}号窗口空闲 {int((now - since).total_seconds())} 秒，"
            f"{nxt.service} 业务有 {waiting} 人等候（先外后内）")


# the device kinds in the hall's words (as the pages name them, hall.js kind.*)
DEVICE_WORDS = {"ticket_printer": "取号打印机", "id_reader": "身份证阅读器", "code_scanner": "扫码器",
                "counter_keypad": "呼叫器", "evaluator_pad": "评价器", "caller_display": "窗口屏",
                "hall_display": "综合屏"}
DEVICE_STATES = {"offline": "离线", "fault": "故障", "warning": "提醒"}
DEVICE_FAULT, DEVICE_WARNING = "device_fault", "device_warning"
CONTROLLER_LINK = "hall-controller"  # the controller's own link to the broker, reported as a device


def devices_not_well(hall: Hall, state: HallState, now: dt.datetime) -> Iterable[Alert]:
    """设备异常: a device offline or faulty (urgent), or warning (paper near its end); the
    controller's own link to its broker (device "hall-controller") too."""
    kinds = {d.id: d for d in hall.devices}
    for device, (health, detail) in sorted(state.devices.items()):
        if health not in DEVICE_STATES:
            continue
        d = kinds.get(device)
        what = (DEVICE_WORDS.get(d.kind, d.kind) if d
                else "控制器与 MQTT 服务器的连接" if device == CONTROLLER_LINK else "未配置的设备")
        where = f"，{d.window}号窗口" if d and d.window is not None else ""
        yield Alert(DEVICE_WARNING if health == "warning" else DEVICE_FAULT,
                    d.window if d else None, state.device_since.get(device, now),
                    f"设备 {device}（{what}{where}）{DEVICE_STATES[health]}"
                    + (f"：{detail}" if detail else ""),
                    subject=device, urgent=health != "warning")


LONG_WAIT = "long_wait"


def long_waits(hall: Hall, state: HallState, now: dt.datetime) -> Iterable[Alert]:
    """等候过长: a service whose longest-waiting ticket has waited past
    `tidal_open_wait_minutes`, the wait the hall counts as a queue running long."""
    limit = dt.timedelta(minutes=hall.rules.tidal_open_wait_minutes)
    for prefix, service in hall.services.items():
        q = state.queues.services[prefix]
        heads = [lane[0][0] for lane in (q.priority, q.regular) if lane]
        if heads and now - min(heads) > limit:
            yield Alert(LONG_WAIT, None, min(heads) + limit,
                        f"{prefix} {service.name} 最长已等 "
                        f"{_minutes((now - min(heads)).total_seconds())} 分钟，"
                        f"{state.queues.waiting(prefix)} 人等候", subject=prefix)


GUIDANCE = "guidance"


def guidance_called(hall: Hall, state: HallState, now: dt.datetime) -> Iterable[Alert]:
    """帮办代办 (001 5.1.6.3): a citizen at a kiosk asked for help; the call stands until the
    guidance desk or the supervisor answers it (controller.core.guidance)."""
    for kiosk, at in sorted(state.guidance_calls.items(), key=lambda kv: kv[1]):
        yield Alert(GUIDANCE, None, at,
                    f"取号机 {kiosk} 有群众请求帮办代办，请导办台立即安排人员"
                    f"（已等 {_minutes((now - at).total_seconds())} 分钟）",
                    subject=kiosk, urgent=True)


STATE_SOURCES: list[StateSource] = [guidance_called, devices_not_well, paused_too_long, nobody_at_work,
                                    long_waits]


# -- in the database ----------------------------------------------------------------------

CASE_OVERDUE = "case_overdue"
_DEADLINE_WORDS = {"callback_due": "回访", "rectify_due": "整改", "feedback_due": "答复",
                   "resolve_due": "办结"}


def overdue_cases(db: sqlite_utils.Database, hall: Hall, now: dt.datetime) -> Iterable[Alert]:
    """案件超期: a callback or complaint case past a deadline (controller.core.case_supervision)."""
    cases = [case_from_json(b) for b in casebook.case_bodies(db, not_state=str(CaseState.CLOSED))]
    for case, field in overdue(cases, now):
        due: dt.datetime = getattr(case, field)
        what = "差评回访" if case.kind is CaseKind.BAD_REVIEW else "投诉"
        window = f"，{case.window}号窗口" if case.window is not None else ""
        yield Alert(CASE_OVERDUE, case.window, due,
                    f"{what}案件 {case.id}{window}：{_DEADLINE_WORDS.get(field, field)}已超过期限 "
                    f"{due.astimezone(now.tzinfo):%m-%d %H:%M}", subject=f"{case.id}:{field}",
                    urgent=True)


OUT_OF_ORDER = "out_of_order_call"


def calls_out_of_order(db: sqlite_utils.Database, hall: Hall, now: dt.datetime) -> Iterable[Alert]:
    """叫指定号 today, with who and why (004 行为规范 3: the order is the controller's)."""
    midnight = dt.datetime.combine(now.date(), dt.time(), now.tzinfo)
    for row in history.out_of_order_calls(db, midnight.isoformat(),
                                          (now + dt.timedelta(seconds=1)).isoformat()):
        data = json.loads(row["data"]) if row["data"] else {}
        if not data.get("out_of_order"):
            continue
        note = f" {data['note']}" if data.get("note") else ""
        yield Alert(OUT_OF_ORDER, row["window"], dt.datetime.fromisoformat(row["at"]),
                    f"{row['window']}号窗口（{_staff_name(hall, data.get('staff'))}）叫指定号 "
                    f"{data.get('label', '')}：{data.get('reason', '')}{note}",
                    subject=data.get("label"))


STORE_SOURCES: list[StoreSource] = [overdue_cases, calls_out_of_order]


class FloorAlerts:
    """The alerts standing now, from the hall's state, its database and any source added."""

    def __init__(self, ctrl: HallController) -> None:
        self.ctrl = ctrl
        self.sources: list[Source] = []

    def add(self, source: Source) -> None:
        """One more source: called with the hall's time, in a worker thread."""
        self.sources.append(source)

    def current(self) -> list[Alert]:
        """Every alert standing now, urgent first, then the newest first. Blocks: call it in
        a worker thread (it waits for the hall thread and reads the database)."""
        ctrl, hall = self.ctrl, self.ctrl.hall
        now = ctrl.clock()
        found = ctrl.ask(lambda state: [a for source in STATE_SOURCES for a in source(hall, state, now)])
        with ctrl.store.reads.snapshot() as db:
            found += [a for source in STORE_SOURCES for a in source(db, hall, now)]
        for source in self.sources:
            found += source(now)
        return sorted(found, key=lambda a: (not a.urgent, -a.since.timestamp(), a.window or 0))
