"""设备自检 and 下班关机: the Admin page's start-of-day device check and end-of-day shutdown.

The check asks every configured device to show that it works, each in the
way it can: a printer answers a paper query and prints a test slip, a window
bar or the main display shows a test text for a few seconds, a pad shows a
test prompt; keypads and scanners, which cannot be asked anything, are judged
by the health their drivers last reported. Devices are checked side by side
and the whole check ends within `CHECK_SECONDS`, however many are offline.
The result is kept for the page to show and print, and audited.

下班关机 blanks the pads and shows every screen its closing state, once every
window has logged out.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import threading
import time
from concurrent.futures import Future, TimeoutError as FutureTimeout, wait
from dataclasses import dataclass
from typing import Any, Callable

from controller.counters.calling import FLASH_SECONDS, CallingFloor
from controller.core import commands as c
from controller.core.errors import HallError
from controller.core.hall import Device
from controller.core.model import WindowStatus
from controller.floor.devices import Floor
from controller.runtime.hallcontroller import HallController
from controller.entrance.kiosk import NEAR_END
from drivers.id_reader import IdCardReader, ReaderStatus
from drivers.ticket_printer import PaperOut, PaperStatus, PrinterUnavailable, TicketPrint, TicketPrinter

log = logging.getLogger(__name__)

# The whole check, every device side by side: a printer that does not answer takes 1 s,
# a silent bar 0.5 s; past this a device is reported as not answering.
CHECK_SECONDS = 5.0

PRINT_TEST = "打印测试票"
FLASH = "屏幕闪烁"
PAD_TEST = "评价器测试提示"
QUERY = "状态查询"

KIND_NAMES = {
    "ticket_printer": "取号小票打印机", "id_reader": "身份证阅读器", "code_scanner": "扫码器",
    "counter_keypad": "呼叫器", "evaluator_pad": "评价器", "caller_display": "窗口屏",
    "hall_display": "综合屏",
}
STATE_NAMES = {"online": "在线", "offline": "离线", "fault": "故障", "warning": "警告",
               "unknown": "未上报状态"}


@dataclass(frozen=True)
class Answer:
    """How one device took its test. `ok` defaults to `answered`; a `problem` with ok=True
    is something to see to that does not stop the device (paper near its end)."""

    answered: bool
    action: str
    problem: str | None = None
    ok: bool | None = None


def _not_attached(action: str) -> Answer:
    return Answer(False, action, "控制器没有连上这台设备（配置有误或驱动未启动，请查看控制器日志）")


class DeviceCheck:
    """自检 of the hall's devices, and 下班关机, for the Admin page."""

    def __init__(self, ctrl: HallController, floor: Floor | None, calling: CallingFloor | None,
                 flash_seconds: float = FLASH_SECONDS, deadline: float = CHECK_SECONDS) -> None:
        self.ctrl = ctrl
        self.floor = floor
        self.calling = calling
        self.flash_seconds = flash_seconds
        self.deadline = deadline
        self._running = threading.Lock()
        self._last: dict[str, Any] | None = None

    # -- 设备自检 ---------------------------------------------------------------------

    def run(self, actor: str) -> dict[str, Any]:
        """Check every configured device; the result (also kept for `last()`, and audited)."""
        if not self._running.acquire(blocking=False):
            raise HallError("device_check_running")
        try:
            started, now = time.monotonic(), self.ctrl.clock()
            answers: dict[str, Answer] = {}
            jobs: list[tuple[list[Device], str, Future]] = []
            for devices, action, job in self._jobs(now):
                jobs.append((devices, action, _spawn(job)))
            for d in self.ctrl.hall.devices:
                if not any(d in devices for devices, _, _ in jobs):
                    answers[d.id] = self._by_health(d)
            wait([f for _, _, f in jobs], timeout=self.deadline)
            for devices, action, f in jobs:
                answers.update(self._collect(devices, action, f))
            rows = [self._row(d, answers[d.id]) for d in self.ctrl.hall.devices]
        finally:
            self._running.release()
        failed = [r["device"] for r in rows if not r["ok"]]
        result: dict[str, Any] = {
            "checked_at": now.isoformat(),
            "actor": actor,
            "seconds": round(time.monotonic() - started, 2),
            "ok": not failed,
            "counts": {"total": len(rows), "ok": len(rows) - len(failed), "failed": len(failed)},
            "devices": rows,
        }
        self._last = result
        self.ctrl.note(actor, "device_check", {**result["counts"], "failed_devices": failed})
        return result

    def last(self) -> dict[str, Any] | None:
        """Today's latest check, or None when there has been none today."""
        last = self._last
        if last is None or dt.datetime.fromisoformat(last["checked_at"]).date() != self.ctrl.clock().date():
            return None
        return last

    def _jobs(self, now: dt.datetime) -> list[tuple[list[Device], str, Callable[[], dict[str, Answer]]]]:
        """The checks that talk to devices, one per printer, reader, window's bars or pads, and
        the main display; everything else is judged by its health."""
        jobs: list[tuple[list[Device], str, Callable[[], dict[str, Answer]]]] = []
        by_window: dict[tuple[str, int], list[Device]] = {}
        # the devices checked one by one: how, and what the check does
        one_by_one: dict[str, tuple[str, Callable[[Device], Answer]]] = {
            "ticket_printer": (PRINT_TEST, lambda d: self._check_printer(d, now)),
            "id_reader": (QUERY, self._check_reader),
            "hall_display": (FLASH, self._check_board),
        }
        for d in self.ctrl.hall.devices:
            if d.kind in one_by_one:
                action, check = one_by_one[d.kind]
                jobs.append(([d], action, functools.partial(_answer_of, check, d)))
            elif d.kind in ("caller_display", "evaluator_pad") and d.window is not None:
                by_window.setdefault((d.kind, d.window), []).append(d)
        for (kind, window), devices in by_window.items():
            if kind == "caller_display":
                jobs.append((devices, FLASH, functools.partial(self._flash_bars, window, devices)))
            else:
                jobs.append((devices, PAD_TEST, functools.partial(self._test_pads, window, devices)))
        return jobs

    def _collect(self, devices: list[Device], action: str, f: Future) -> dict[str, Answer]:
        if not f.done():
            late = Answer(False, action, f"{self.deadline:g} 秒内没有完成检查，设备没有应答；"
                                         "请检查电源和连线")
            return {d.id: late for d in devices}
        if f.exception() is not None:
            log.error("device check of %s failed", [d.id for d in devices], exc_info=f.exception())
            broken = Answer(False, action, f"检查出错：{f.exception()}")
            return {d.id: broken for d in devices}
        got = f.result()
        return {d.id: got.get(d.id) or _not_attached(action) for d in devices}

    def _row(self, d: Device, answer: Answer) -> dict[str, Any]:
        state, detail = self._health(d)
        return {
            "device": d.id, "kind": d.kind, "kind_name": KIND_NAMES.get(d.kind, d.kind),
            "window": d.window, "answered": answer.answered, "state": state, "detail": detail,
            "action": answer.action, "ok": answer.answered if answer.ok is None else answer.ok,
            "problem": answer.problem,
        }

    def _health(self, d: Device) -> tuple[str, str]:
        return self.ctrl.devices().get(d.id, ("unknown", ""))

    # -- one kind of device each -----------------------------------------------------------

    def _by_health(self, d: Device) -> Answer:
        """Keypads, scanners and the like: what their drivers last reported."""
        state, detail = self._health(d)
        if state == "online":
            return Answer(True, QUERY)
        name = KIND_NAMES.get(d.kind, "设备")
        if state == "unknown":
            return Answer(False, QUERY, f"{name}从未上报状态：请检查是否接好、是否已通电")
        return Answer(False, QUERY, f"{name}{STATE_NAMES.get(state, state)}"
                                    f"{f'（{detail}）' if detail else ''}：请检查电源和连线")

    def _printer(self, d: Device) -> TicketPrinter | None:
        for kiosk in (self.floor.kiosks.values() if self.floor else ()):
            if kiosk.printer is not None and kiosk.printer.device_id == d.id:
                return kiosk.printer
        return None

    def _check_printer(self, d: Device, now: dt.datetime) -> Answer:
        printer = self._printer(d)
        if printer is None:
            return _not_attached(PRINT_TEST)
        slip = TicketPrint(hall_name=self.ctrl.hall.name, service_name="设备自检 测试票", number="自检",
                           people_ahead=0, wait_minutes=None, issued_at=now,
                           footer=(f"打印机 {d.id}", "本票仅供设备检查，不是排队号"))
        if not printer.can_answer:
            try:
                printer.print_ticket(slip)
            except PrinterUnavailable as e:
                return Answer(False, PRINT_TEST, f"打印机无法写入（{e}）：请检查电源和连线")
            return Answer(False, PRINT_TEST, "这条线路不能查询纸张状态：请看测试票是否打出", ok=True)
        try:
            if printer.paper_status() is PaperStatus.OUT:
                return Answer(True, PRINT_TEST, "打印机缺纸：请装入新纸卷", ok=False)
            result = printer.print_ticket(slip)
        except PaperOut:
            return Answer(True, PRINT_TEST, "打印中缺纸，测试票可能不完整：请装入新纸卷", ok=False)
        except PrinterUnavailable as e:
            return Answer(False, PRINT_TEST, f"打印机没有应答（{e}）：请检查电源、连线和纸仓盖")
        # as the kiosk does after a ticket: the roll running out is the supervisor's to know
        was = self.ctrl.devices().get(d.id, ("", ""))[0]
        if result.near_end:
            self.ctrl.execute(c.ReportDevice(d.id, "warning", NEAR_END), "system")
            return Answer(True, PRINT_TEST, NEAR_END, ok=True)
        if was == "warning":
            self.ctrl.execute(c.ReportDevice(d.id, "online"), "system")
        return Answer(True, PRINT_TEST)

    def _check_reader(self, d: Device) -> Answer:
        """The reader's SAM module answers a status query (the card polling goes on meanwhile:
        each question and answer holds the line)."""
        link = next((link for link in (self.floor.links if self.floor else ()) if link.device == d.id),
                    None)
        if link is None:
            return _not_attached(QUERY)
        try:
            status = IdCardReader(d.id, link, on_card=lambda card: None).check_sam()
        except Exception as e:  # TransportError, or an answer that is not a frame
            return Answer(False, QUERY, f"身份证阅读器没有应答（{e}）：请检查电源和连线")
        if status.sam_failure:
            return Answer(True, QUERY, f"身份证阅读器安全模块故障（{status.description}）：请联系厂家",
                          ok=False)
        if status is not ReaderStatus.OK:
            return Answer(True, QUERY, f"身份证阅读器答复异常（{status.description}）", ok=False)
        return Answer(True, QUERY)

    def _flash_bars(self, window: int, devices: list[Device]) -> dict[str, Answer]:
        if self.calling is None:
            return {}
        shown = self.calling.flash(window, self.flash_seconds)
        answers = {}
        for d in devices:
            bar, took = next(((b, ok) for b, ok in shown if _drives(b, d)), (None, False))
            if bar is None:
                continue
            mqtt = getattr(bar, "mqtt", None)  # an MQTT bar answers through its link
            if mqtt is not None:
                answers[d.id] = self._mqtt_answer(d, mqtt, FLASH, self._health(d)[0])
            elif took:
                answers[d.id] = Answer(True, FLASH)
            else:
                answers[d.id] = Answer(False, FLASH, f"{window}号窗口屏没有应答：请检查屏的电源和 RS-485 连线")
        return answers

    def _test_pads(self, window: int, devices: list[Device]) -> dict[str, Answer]:
        if self.calling is None:
            return {}
        tested = self.calling.test_pads(window, self.flash_seconds)
        answers = {}
        for d in devices:
            pad, prompted = next(((p, ok) for p, ok in tested if _drives(p, d)), (None, False))
            if pad is None:
                continue
            # a pad is a listener: the prompt went out, and whether it can arrive is the line's health
            action = PAD_TEST if prompted else f"{QUERY}（窗口正在请群众评价，未发测试提示）"
            state, detail = self._health(d)
            mqtt = getattr(pad, "mqtt", None)
            if mqtt is not None:
                answers[d.id] = self._mqtt_answer(d, mqtt, action, state)
            elif state == "online":
                answers[d.id] = Answer(True, action)
            else:
                answers[d.id] = Answer(False, action, f"评价器所在的总线{STATE_NAMES.get(state, state)}"
                                                      f"{f'（{detail}）' if detail else ''}：请检查连线和电源")
        return answers

    def _check_board(self, d: Device) -> Answer:
        calling = self.calling
        if calling is None or calling.board is None or calling.board_topic != d.topic:
            return _not_attached(FLASH)
        calling.flash_board(self.flash_seconds)
        return self._mqtt_answer(d, calling.board, FLASH, self._health(d)[0])

    def _mqtt_answer(self, d: Device, link: Any, action: str, state: str) -> Answer:
        """An MQTT screen answers through its retained status topic; the test itself went out
        through the controller's connection."""
        if not getattr(link, "connected", True):
            return Answer(False, action, "控制器与 MQTT 服务器断开，屏幕收不到内容：请检查 MQTT 服务器")
        if state != "online":
            return Answer(False, action, f"{KIND_NAMES.get(d.kind, '设备')}不在线（{d.topic}/status："
                                         f"{STATE_NAMES.get(state, state)}）：请检查设备电源和网络")
        return Answer(True, action)

    # -- 下班关机 ----------------------------------------------------------------------

    def end_of_day(self, actor: str) -> dict[str, Any]:
        """Blank every pad, close every window bar and put the closing screen on the main display.
        Refused (409 windows_open) while a window is still logged in, naming them."""
        def shut_down() -> Future | None:
            still_open = sorted(n for n, w in self.ctrl.state.windows.items()
                                if w.status is not WindowStatus.CLOSED)
            if still_open:
                names = "、".join(f"{n}号窗口" for n in still_open)
                err = HallError("windows_open", f"还有窗口未退出登录：{names}。请先退出登录，再下班关机")
                self.ctrl.refuse(actor, "end_of_day", {"open_windows": still_open}, err)
                raise err
            # queued on the hall thread: a login committed after this is handled after it
            return self.calling.shut_down() if self.calling else None
        done = self.ctrl.run(shut_down)
        now = self.ctrl.clock()
        bars: list[dict[str, Any]] = []
        pads: list[dict[str, Any]] = []
        problems: list[str] = []
        display = False
        if done is not None:
            try:
                got = done.result(self.deadline)
            except FutureTimeout:
                problems.append("屏幕仍在切换，请稍后查看各窗口屏")
                got = {"bars": [], "pads": [], "display": False}
            display = got["display"]
            for window, bar, shown in got["bars"]:
                device = self._device_for(bar, window, "caller_display")
                bars.append({"device": device, "window": window, "shown": shown})
                if not shown:
                    problems.append(f"{window}号窗口屏没有应答（{device}）")
            pads = [{"device": self._device_for(pad, window, "evaluator_pad"), "window": window}
                    for window, pad in got["pads"]]
        self.ctrl.note(actor, "end_of_day", {"bars": len(bars), "pads": len(pads), "display": display,
                                             "bars_not_shown": [b["device"] for b in bars
                                                                if not b["shown"]]})
        return {"at": now.isoformat(), "bars": bars, "pads": pads, "display": display,
                "problems": problems}

    def _device_for(self, driver: Any, window: int, kind: str) -> str | None:
        return next((d.id for d in self.ctrl.hall.devices
                     if d.kind == kind and d.window == window and _drives(driver, d)), None)


def _drives(driver: Any, d: Device) -> bool:
    """Whether `driver` (a bar or pad object of the calling path) is configured device `d`."""
    device_id = getattr(driver, "device_id", None)
    if device_id is not None:
        return device_id == d.id
    topic = getattr(driver, "topic", None)
    if topic is not None:
        return d.transport == "mqtt" and topic == d.topic
    address = getattr(driver, "address", None)
    if address is None or d.transport == "mqtt":
        return False
    option = dict(d.options).get("address")  # its bus address: the option, else its window's
    return address == (int(option) if option is not None else d.window)


def _answer_of(check: Callable[[Device], Answer], d: Device) -> dict[str, Answer]:
    return {d.id: check(d)}


def _spawn(job: Callable[[], dict[str, Answer]]) -> Future:
    """Run `job` in a daemon thread: one that never returns cannot hold up the check or exit."""
    f: Future = Future()

    def run() -> None:
        try:
            f.set_result(job())
        except BaseException as e:
            f.set_exception(e)

    threading.Thread(target=run, daemon=True, name="device-check").start()
    return f
