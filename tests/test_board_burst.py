"""The hall board in a rush: a burst of calls is published once it has been handled, and
what is published is the hall as it stands after the burst.

The calling floor's worker is held (a slow board publish) while windows log in and call;
when it is let go, the events that waited are handled together and the board goes out
fewer times than there were board-changing events, its last state showing every window's
last call. One call on a quiet floor still goes out (at once, or BOARD_SECONDS after the
board last went out).
"""

from __future__ import annotations

import threading

from controller.counters.calling import CallingFloor
from controller.runtime.clock import ManualClock
from controller.core import commands as c
from controller.runtime.hallcontroller import HallController
from controller.store.hallstore import HallStore
from tests.halls import at, small_hall
from tests.server import wait_for


class SlowBoard:
    """A display whose publishes from the calling floor's worker are held until `go` is set."""

    def __init__(self) -> None:
        self.published: list[dict] = []
        self.go = threading.Event()
        self.held = threading.Event()

    def publish_state(self, topic: str, payload: dict) -> None:
        if threading.current_thread().name == "calling" and not self.go.is_set():
            self.held.set()
            self.go.wait(10)
        self.published.append(payload)


def test_a_burst_of_calls_publishes_the_board_once_after_it(tmp_path):
    clock = ManualClock(at("09:00"))
    ctrl = HallController(small_hall(), HallStore(tmp_path / "hall.sqlite3"), clock)
    board = SlowBoard()
    floor = CallingFloor(ctrl, board=board).start()  # its resync publishes once, at once
    try:
        events = 0
        for window, staff in ((1, "s1"), (2, "s2"), (3, "s3")):
            ctrl.execute(c.Login(window, staff), f"staff:{staff}")
            events += 1
            if window == 1:
                assert board.held.wait(5)  # the worker is in its first publish: the rest wait
        for service in "AABC":
            ctrl.execute(c.IssueTicket(service), "kiosk")
        for window in (1, 2, 3):
            ctrl.execute(c.CallNext(window), "keypad")
            events += 1
        board.go.set()
        # the held publish (the first login's board) lands first; the burst's board follows it,
        # at most calling.BOARD_SECONDS after the held one began
        last = lambda: board.published[-1] if len(board.published) > 2 else None  # noqa: E731
        final = wait_for(last, 5)
        called = {call["window"]: call["number"] for call in reversed(final["calls"])}
        assert called == {w: ctrl.window(w).current and ctrl.ticket(ctrl.window(w).current).label
                          for w in (1, 2, 3)}
        # the resync's publish, the first login's, then the waiting events' board once (not
        # once per event)
        assert len(board.published) <= 3 < 1 + events, board.published
        # a quiet floor: one call, one publish, at once
        before = len(board.published)
        ctrl.execute(c.IssueTicket("A"), "kiosk")
        ctrl.execute(c.CallNext(1), "keypad")
        wait_for(lambda: len(board.published) > before, 5)
        assert board.published[-1]["latest"]["window"] == 1
    finally:
        board.go.set()
        floor.close()
        ctrl.close()
