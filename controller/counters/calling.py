"""叫号: what the hall sees and hears when a window calls — window bars, the main hall
display, pause-service signs and the voice — kept in step with the hall's state.

Events arrive from the controller (inside its lock, so nothing here may block);
a worker thread does the device I/O. What each device should show is derived
from the hall's state, so a device that comes back after a pulled cable or a
broker restart is simply shown the current state again.

The Admin page's device check (自检) shows a test text on a device for a few
seconds (`flash`, `flash_board`, `test_pads`); the worker then shows the state
again, in order with the hall's events. 下班关机 (`shut_down`) closes every
screen for the day; the main display keeps its closing screen until a window
opens or the day changes.
"""

from __future__ import annotations

import datetime as dt
import logging
import queue
import threading
import time
from collections import deque
from concurrent.futures import Future
from typing import Any, Callable, Protocol

from controller.core import events as ev
from controller.core.events import Event
from controller.core.model import HallState, WindowStatus
from controller.runtime.hallcontroller import HallController
from drivers.caller_display import Calling, Closed, HallBoard, Idle, PauseSign, WindowBar, board_json
from drivers.caller_display.state import CLOSED_TEXT
from vocabulary import SYSTEM_DEFAULT

log = logging.getLogger(__name__)

BOARD_CALLS = 8  # the main display lists this many recent calls
# How often a bar that lost its line is tried again, and an idle bar's line checked: a
# replugged bar shows the hall within 2 s, a pulled one is reported within about 1 s.
RESYNC_SECONDS = 0.5
# How long a device check's test text stays on a screen before the hall's state returns.
FLASH_SECONDS = 3.0
# The main hall display is sent at most this often: it is every window's row (at 300 windows
# some 10 KB, fitted and relayed by the broker each time), and at 100 calls a second sending
# it on each call was most of the controller's work. A call on a quiet floor still goes out
# at once; in a rush the board shows the hall as it stands at most this long later.
BOARD_SECONDS = 0.2
# The longest a burst of events keeps the bars it changed waiting for their state.
BURST_SECONDS = 0.05
TEST_TEXT = "设备自检"
CLOSING_TEXT = "今日服务已结束"

Task = Callable[[], Any]
_CHECK: Any = object()  # the worker's own turn to check the bars' lines


class Bar(Protocol):
    """A window's LED bar or pause-service sign, on whatever transport."""

    def show(self, state: Any) -> bool: ...


class Board(Protocol):
    def publish_state(self, topic: str, payload: dict) -> None: ...


class Pad(Protocol):
    """A window's evaluation pad (评价器)."""

    def prompt(self, window: int, staff: str | None, ticket: str) -> None: ...
    def thanks(self) -> None: ...
    def blank(self) -> None: ...


class Voice(Protocol):
    """The voice that speaks the calls; what `announce` returns (the announcer's queued
    announcement) is not used here."""

    def announce(self, number: str, window: int, recall: bool = False) -> object: ...


class CallingFloor:
    """Drives every calling device of the hall from the controller's events."""

    def __init__(self, ctrl: HallController, bars: dict[int, list[Bar]] | None = None,
                 board: Board | None = None, board_topic: str | None = None,
                 voice: Voice | None = None, pads: dict[int, list[Pad]] | None = None) -> None:
        self.ctrl = ctrl
        self.bars = bars or {}
        self.pads = pads or {}
        self.board = board
        self.board_topic = board_topic or f"hall/{ctrl.hall.region_code}/display/main"
        self.voice = voice
        self.calls: deque[tuple[str, int]] = deque(maxlen=BOARD_CALLS)
        # 下班关机 was done on this day and no window has opened since: the main display
        # shows the closing screen (only the worker thread reads and writes it)
        self.closed_on: dt.date | None = None
        self._work: queue.Queue[Event | Task | None] = queue.Queue()
        self._board_due = False  # the worker thread owes the board a publish (_board_changed)
        self._board_at = -BOARD_SECONDS  # when the board was last published (time.monotonic)
        self._bars_due: set[int] = set()  # windows whose bars the worker owes their state
        self._flushed_at = 0.0  # when the worker last showed the bars it owed (time.monotonic)
        self._thread = threading.Thread(target=self._run, daemon=True, name="calling")
        self._unsubscribe: Callable[[], None] | None = None
        self._timers: set[threading.Timer] = set()
        self._timers_lock = threading.Lock()

    def start(self) -> "CallingFloor":
        def subscribe() -> None:  # on the hall thread: no event slips between the two
            self._unsubscribe = self.ctrl.subscribe(lambda _id, event: self._work.put(event))
            self._seed_calls()
        self.ctrl.run(subscribe)
        self._thread.start()
        self.resync()
        return self

    def close(self) -> None:
        if self._unsubscribe:
            self._unsubscribe()
        with self._timers_lock:
            for timer in self._timers:
                timer.cancel()
            self._timers.clear()
        self._work.put(None)
        self._thread.join(5)
        if self.voice is not None and hasattr(self.voice, "close"):
            self.voice.close()

    # -- what each device should show ------------------------------------------

    def bar_state(self, window: int) -> Any:
        """The window's bar and sign as the hall's state says now."""
        return self.ctrl.ask(lambda state: self._bar_state(state, window))

    def _bar_state(self, state: HallState, window: int) -> Any:
        w = state.windows[window]
        if w.status is WindowStatus.CLOSED:
            return Closed(window)
        if w.status is WindowStatus.PAUSED:
            back = (w.paused_at + dt.timedelta(minutes=w.pause_minutes)
                    if w.paused_at and w.pause_minutes else None)
            return PauseSign(window, w.pause_reason or "", back, w.pause_whereabouts)
        t = state.tickets.get(w.current) if w.current else None
        if t is not None:
            return Calling(window, t.label, self.ctrl.hall.services[t.service].name)
        staff = self.ctrl.hall.staff.get(w.staff_id) if w.staff_id else None
        if w.post == "B" and staff:  # 顶岗: the citizen sees who covers the window
            return Idle(window, f"{staff.name} 顶岗服务")
        return Idle(window)

    def board_state(self) -> HallBoard:
        def rows(state: HallState) -> list[tuple[int, str]]:
            windows = []
            for number in sorted(self.ctrl.hall.windows):
                w = state.windows[number]
                text = {WindowStatus.CLOSED: "未开放", WindowStatus.PAUSED: "暂停服务",
                        WindowStatus.OPEN: "办理中" if w.current else "空闲"}[w.status]
                staff = self.ctrl.hall.staff.get(w.staff_id) if w.staff_id else None
                if staff:
                    text += f" {staff.name}" + ("(顶岗)" if w.post == "B" else "")
                windows.append((number, text))
            return windows
        return HallBoard(list(self.calls), self.ctrl.ask(rows))

    def resync(self, window: int | None = None) -> None:
        """Show every device (or one window's) the current state: after a reconnect."""
        for number in ([window] if window is not None else list(self.bars)):
            self._show_bar(number)
        if window is None:
            self._publish_board()

    # -- the device check and 下班关机 ------------------------------------------------

    def flash(self, window: int, seconds: float = FLASH_SECONDS) -> list[tuple[Bar, bool]]:
        """Show "N号窗口 设备自检" on the window's bars now, in the caller's thread; the worker
        shows the window's state again after `seconds`. Each bar with whether it took the text."""
        shown = [(bar, self._try_show(bar, Idle(window, TEST_TEXT)))
                 for bar in self.bars.get(window, [])]
        self._later(seconds, lambda: self._show_bar(window))
        return shown

    def flash_board(self, seconds: float = FLASH_SECONDS) -> bool:
        """A test screen on the main hall display, then the hall again; False without a board."""
        if self.board is None:
            return False
        rows = [{"window": n, "text": f"{TEST_TEXT} {n}号窗口"} for n in sorted(self.ctrl.hall.windows)]
        self.board.publish_state(self.board_topic, {"latest": None, "calls": [], "windows": rows,
                                                    "notice": f"{TEST_TEXT} 测试画面"})
        self._later(seconds, self._publish_board)
        return True

    def test_pads(self, window: int, seconds: float = FLASH_SECONDS) -> list[tuple[Pad, bool]]:
        """A test prompt on the window's pads (no evaluation is opened), blank again after
        `seconds`. A pad whose window is asking a citizen now is left alone (False)."""
        busy = self._asking(window)
        tested = []
        for pad in self.pads.get(window, []):
            if not busy:
                try:
                    pad.prompt(window, TEST_TEXT, TEST_TEXT)
                except Exception:
                    log.exception("pad at window %s: test prompt", window)
            tested.append((pad, not busy))
        if not busy:
            self._later(seconds, lambda: self._show_pads(window))
        return tested

    def shut_down(self) -> "Future[dict[str, Any]]":
        """下班关机: blank every pad, show every bar its closed state and the main display its
        closing screen, in the worker. Does not block (callable under the controller's lock),
        so a window opened after this call shows normal states again. The future holds what
        was done: {"bars": [(window, bar, shown)], "pads": [(window, pad)], "display": bool}."""
        done: Future[dict[str, Any]] = Future()

        def close_for_day() -> None:
            try:
                self.closed_on = self.ctrl.clock().date()
                self.calls.clear()
                for pads in self.pads.values():
                    for pad in pads:
                        self._try_blank(pad)
                bars = [(number, bar, self._try_show(bar, self.bar_state(number)))
                        for number, window_bars in self.bars.items() for bar in window_bars]
                self._publish_board()
                done.set_result({"bars": bars,
                                 "pads": [(n, pad) for n, pads in self.pads.items() for pad in pads],
                                 "display": self.board is not None})
            except Exception as e:
                done.set_exception(e)
                raise

        self._work.put(close_for_day)
        return done

    def _later(self, seconds: float, task: Task) -> None:
        """Run `task` in the worker after `seconds`, in order with the events that came first."""
        def due() -> None:
            with self._timers_lock:
                self._timers.discard(timer)
            self._work.put(task)

        timer = threading.Timer(seconds, due)
        timer.daemon = True
        with self._timers_lock:
            self._timers.add(timer)
        timer.start()

    @staticmethod
    def _try_show(bar: Bar, state: Any) -> bool:
        try:
            return bool(bar.show(state))
        except Exception:  # one broken bar must not stop the others
            log.exception("bar: cannot show %r", state)
            return False

    @staticmethod
    def _try_blank(pad: Pad) -> None:
        try:
            pad.blank()
        except Exception:
            log.exception("pad: cannot blank")

    def _show_pads(self, window: int) -> None:
        """The pads of `window` as the hall's state says: asking about a visit, or blank."""
        def asking(state: HallState) -> tuple[str | None, str | None]:
            w = state.windows.get(window)
            t = state.tickets.get(w.evaluating) if w and w.evaluating else None
            return (t.label if t else None), (w.staff_id if t is not None and w else None)
        label, staff_id = self.ctrl.ask(asking)
        staff = self.ctrl.hall.staff.get(staff_id or "") if label is not None else None
        for pad in self.pads.get(window, []):
            try:
                if label is not None:
                    pad.prompt(window, staff.name if staff else None, label)
                else:
                    pad.blank()
            except Exception:
                log.exception("pad at window %s", window)

    # -- the worker --------------------------------------------------------------

    def _seed_calls(self) -> None:
        """After a restart, the board lists the tickets being served, newest call first."""
        current = [(t.called_at, t.label, t.window) for t in self.ctrl.state.tickets.values()
                   if t.status.value == "called" and t.called_at and t.window]
        for _called_at, label, window in sorted(current, key=lambda call: call[0]):
            self.calls.appendleft((label, window))

    def _run(self) -> None:
        # Lines are checked every RESYNC_SECONDS however busy the hall is: a steady stream of
        # events must not keep a replugged bar dark.
        check_at = time.monotonic() + RESYNC_SECONDS
        while True:
            due = min(check_at, self._board_at + BOARD_SECONDS) if self._board_due else check_at
            try:
                event = self._work.get(timeout=max(due - time.monotonic(), 0.0))
            except queue.Empty:
                event = _CHECK
            if event is None:
                return
            if time.monotonic() >= check_at:
                self._resync_lost()
                check_at = time.monotonic() + RESYNC_SECONDS
            try:
                if isinstance(event, Event):
                    self.handle(event)
                elif event is not _CHECK:
                    event()
                # once the events waiting are handled, or in a steady stream of them at
                # least every BURST_SECONDS (a bar must not wait for a quiet moment)
                if self._work.empty() or time.monotonic() >= self._flushed_at + BURST_SECONDS:
                    self._flush()
            except Exception:
                log.exception("calling devices: %s failed", getattr(event, "kind", event))

    def _flush(self) -> None:
        """Once the events waiting are handled: each window they changed shows its state on its
        bars (read together, in one look at the hall), and the board goes out if it is due."""
        self._flushed_at = time.monotonic()
        if self._bars_due:
            windows, self._bars_due = sorted(self._bars_due), set()
            states = self.ctrl.ask(lambda state: [(w, self._bar_state(state, w)) for w in windows])
            for window, shown in states:
                for bar in self.bars.get(window, []):
                    self._try_show(bar, shown)
        if self._board_due and time.monotonic() >= self._board_at + BOARD_SECONDS:
            self._board_due = False
            self._publish_board()

    def _resync_lost(self) -> None:
        """A bar that lost its line is shown its state again as soon as the line is back; an
        idle bar's line is checked, so a cable pulled while nothing is called is seen too."""
        for bars in self.bars.values():
            for bar in bars:
                if not isinstance(bar, WindowBar):
                    continue  # an MQTT bar: the link re-publishes its retained states
                try:
                    if not bar.in_sync:
                        bar.resync()
                    else:
                        bar.check_line()
                except Exception:
                    log.exception("resync failed")

    def handle(self, event: Event) -> None:
        kind, window = event.kind, event.window
        if kind == ev.WINDOW_OPENED:
            self.closed_on = None  # a new working day, or staff back after 下班关机
        if isinstance(event, ev.TicketCalled) and window is not None:  # a call is always at a window
            self.calls.appendleft((event.label, window))
            if self.voice:
                self.voice.announce(event.label, window)
        elif isinstance(event, ev.TicketRecalled) and window is not None and self.voice:
            self.voice.announce(event.label, window, recall=True)
        self._drive_pads(event)
        if kind == ev.DAY_STARTED:
            self.calls.clear()  # the board starts the day empty: yesterday's calls are over
            self._board_changed()
        if window is not None and kind in (
                ev.TICKET_CALLED, ev.TICKET_RECALLED, ev.TICKET_FINISHED, ev.TICKET_MISSED,
                ev.TICKET_TRANSFERRED, ev.WINDOW_OPENED, ev.WINDOW_CLOSED, ev.WINDOW_PAUSED,
                ev.WINDOW_RESUMED):
            self._bar_changed(window)
            self._board_changed()

    def _bar_changed(self, window: int) -> None:
        """On the worker thread, the window's bars are shown its state once the events waiting
        are handled: a call-next is two events (the last visit finished, the next ticket
        called) and the bar shows only the second. Elsewhere (the hall-day simulator), at once."""
        if threading.current_thread() is self._thread:
            if window in self.bars:
                self._bars_due.add(window)
        else:
            self._show_bar(window)

    def _board_changed(self) -> None:
        """On the worker thread, the board is published once the events waiting are handled,
        and at most every BOARD_SECONDS: a burst of calls (a call-next is two events, and a
        rush many at once) rebuilds and sends the whole board once, not once per event (the
        board was seven tenths of the controller's time at 300 windows and 100 calls a
        second). Elsewhere, at once."""
        if threading.current_thread() is self._thread:
            self._board_due = True
        else:
            self._publish_board()

    def _drive_pads(self, event: Event) -> None:
        window = event.window
        pads = self.pads.get(window) if window is not None else None
        if window is None or not pads:
            return
        kind = event.kind
        for pad in pads:
            try:
                if isinstance(event, ev.EvaluationPrompted):
                    staff = self.ctrl.hall.staff.get(event.staff or "")
                    pad.prompt(window, staff.name if staff else None, event.label)
                elif isinstance(event, ev.TicketEvaluated) and event.channel != SYSTEM_DEFAULT:
                    pad.thanks()
                elif kind == ev.EVALUATION_ENDED:
                    pad.blank()
                elif kind in (ev.WINDOW_PAUSED, ev.WINDOW_CLOSED) and not self._asking(window):
                    # a finished visit's prompt outlives the pause or logout (国办发〔2019〕51号):
                    # the pad blanks when it is graded or times out
                    pad.blank()
            except Exception:
                log.exception("pad at window %s", window)
        if (isinstance(event, ev.TicketEvaluated) and event.channel != SYSTEM_DEFAULT
                and self._away(window)):
            # graded after staff left: the thanks, then the pad blanks like the window
            self._later(FLASH_SECONDS, lambda: self._show_pads(window))

    def _asking(self, window: int) -> bool:
        def asking(state: HallState) -> bool:
            w = state.windows.get(window)
            return w is not None and w.evaluating is not None
        return self.ctrl.ask(asking)

    def _away(self, window: int) -> bool:
        def away(state: HallState) -> bool:
            w = state.windows.get(window)
            return w is not None and w.status is not WindowStatus.OPEN
        return self.ctrl.ask(away)

    def _show_bar(self, window: int) -> None:
        bars = self.bars.get(window)
        if not bars:
            return
        state = self.bar_state(window)
        for bar in bars:
            bar.show(state)

    def _publish_board(self) -> None:
        if self.board is None:
            return
        self._board_at = time.monotonic()
        if self.closed_on is not None and self.closed_on == self.ctrl.clock().date():
            rows = [{"window": n, "text": CLOSED_TEXT} for n in sorted(self.ctrl.hall.windows)]
            self.board.publish_state(self.board_topic, {"latest": None, "calls": [], "windows": rows,
                                                        "notice": CLOSING_TEXT})
        else:
            self.board.publish_state(self.board_topic, board_json(self.board_state()))
