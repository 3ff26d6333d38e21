"""叫号: what the hall sees and hears when a window calls — window bars, the main hall
display, pause-service signs and the voice — kept in step with the hall's state.

Events arrive from the controller (inside its lock, so nothing here may block);
a worker thread does the device I/O. What each device should show is derived
from the hall's state, so a device that comes back after a pulled cable or a
broker restart is simply shown the current state again.
"""

from __future__ import annotations

import datetime as dt
import logging
import queue
import threading
from collections import deque
from typing import Any, Protocol

from controller.core import events as ev
from controller.core.events import Event
from controller.core.model import WindowStatus
from controller.hallcontroller import HallController
from drivers.caller_display import Calling, Closed, HallBoard, Idle, PauseSign, board_json

log = logging.getLogger(__name__)

BOARD_CALLS = 8  # the main display lists this many recent calls
# How often a bar that lost its line is tried again: a replugged bar shows the hall within 2 s.
RESYNC_SECONDS = 0.5


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
    def announce(self, number: str, window: int, recall: bool = False) -> None: ...


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
        self._work: queue.Queue[Event | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, daemon=True, name="calling")
        self._unsubscribe = None

    def start(self) -> "CallingFloor":
        with self.ctrl.lock:
            self._unsubscribe = self.ctrl.subscribe(lambda _id, event: self._work.put(event))
            self._seed_calls()
        self._thread.start()
        self.resync()
        return self

    def close(self) -> None:
        if self._unsubscribe:
            self._unsubscribe()
        self._work.put(None)
        self._thread.join(5)
        if self.voice is not None and hasattr(self.voice, "close"):
            self.voice.close()

    # -- what each device should show ------------------------------------------

    def bar_state(self, window: int) -> Any:
        """The window's bar and sign as the hall's state says now."""
        with self.ctrl.lock:
            w = self.ctrl.state.windows[window]
            if w.status is WindowStatus.CLOSED:
                return Closed(window)
            if w.status is WindowStatus.PAUSED:
                back = (w.paused_at + dt.timedelta(minutes=w.pause_minutes)
                        if w.paused_at and w.pause_minutes else None)
                return PauseSign(window, w.pause_reason or "", back, w.pause_whereabouts)
            t = self.ctrl.state.tickets.get(w.current) if w.current else None
            if t is not None:
                return Calling(window, t.label, self.ctrl.hall.services[t.service].name)
            staff = self.ctrl.hall.staff.get(w.staff_id) if w.staff_id else None
            if w.post == "B" and staff:  # 顶岗: the citizen sees who covers the window
                return Idle(window, f"{staff.name} 顶岗服务")
            return Idle(window)

    def board_state(self) -> HallBoard:
        with self.ctrl.lock:
            windows = []
            for number in sorted(self.ctrl.hall.windows):
                w = self.ctrl.state.windows[number]
                text = {WindowStatus.CLOSED: "未开放", WindowStatus.PAUSED: "暂停服务",
                        WindowStatus.OPEN: "办理中" if w.current else "空闲"}[w.status]
                staff = self.ctrl.hall.staff.get(w.staff_id) if w.staff_id else None
                if staff:
                    text += f" {staff.name}" + ("(顶岗)" if w.post == "B" else "")
                windows.append((number, text))
        return HallBoard(list(self.calls), windows)

    def resync(self, window: int | None = None) -> None:
        """Show every device (or one window's) the current state: after a reconnect."""
        for number in ([window] if window is not None else list(self.bars)):
            self._show_bar(number)
        if window is None:
            self._publish_board()

    # -- the worker --------------------------------------------------------------

    def _seed_calls(self) -> None:
        """After a restart, the board lists the tickets being served, newest call first."""
        current = [t for t in self.ctrl.state.tickets.values()
                   if t.status.value == "called" and t.called_at and t.window]
        for t in sorted(current, key=lambda t: t.called_at):
            self.calls.appendleft((t.label, t.window))

    def _run(self) -> None:
        while True:
            try:
                event = self._work.get(timeout=RESYNC_SECONDS)
            except queue.Empty:
                self._resync_lost()
                continue
            if event is None:
                return
            try:
                self.handle(event)
            except Exception:
                log.exception("calling devices: %s failed", event.kind)

    def _resync_lost(self) -> None:
        """A bar that lost its line is shown its state again as soon as the line is back."""
        for bars in self.bars.values():
            for bar in bars:
                if not getattr(bar, "in_sync", True):
                    try:
                        bar.resync()
                    except Exception:
                        log.exception("resync failed")

    def handle(self, event: Event) -> None:
        kind, window = event.kind, event.window
        if kind == ev.TICKET_CALLED:
            self.calls.appendleft((event.data["label"], window))
            if self.voice:
                self.voice.announce(event.data["label"], window)
        elif kind == ev.TICKET_RECALLED and self.voice:
            self.voice.announce(event.data["label"], window, recall=True)
        self._drive_pads(event)
        if window is not None and kind in (
                ev.TICKET_CALLED, ev.TICKET_RECALLED, ev.TICKET_FINISHED, ev.TICKET_MISSED,
                ev.TICKET_TRANSFERRED, ev.WINDOW_OPENED, ev.WINDOW_CLOSED, ev.WINDOW_PAUSED,
                ev.WINDOW_RESUMED):
            self._show_bar(window)
            self._publish_board()

    def _drive_pads(self, event: Event) -> None:
        pads = self.pads.get(event.window) if event.window is not None else None
        if not pads:
            return
        kind = event.kind
        for pad in pads:
            try:
                if kind == ev.EVALUATION_PROMPTED:
                    staff = self.ctrl.hall.staff.get(event.data.get("staff") or "")
                    pad.prompt(event.window, staff.name if staff else None, event.data["label"])
                elif kind == ev.TICKET_EVALUATED and event.data.get("channel") != "system_default":
                    pad.thanks()
                elif kind in (ev.EVALUATION_ENDED, ev.WINDOW_PAUSED, ev.WINDOW_CLOSED):
                    pad.blank()
            except Exception:
                log.exception("pad at window %s", event.window)

    def _show_bar(self, window: int) -> None:
        bars = self.bars.get(window)
        if not bars:
            return
        state = self.bar_state(window)
        for bar in bars:
            bar.show(state)

    def _publish_board(self) -> None:
        if self.board is not None:
            self.board.publish_state(self.board_topic, board_json(self.board_state()))
