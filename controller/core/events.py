"""Events: what a command changed, in the hall's words. Displays, the audit log
and the supervisor all read these."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

TICKET_ISSUED = "ticket_issued"
TICKET_CALLED = "ticket_called"
TICKET_RECALLED = "ticket_recalled"
TICKET_MISSED = "ticket_missed"
TICKET_FINISHED = "ticket_finished"
TICKET_TRANSFERRED = "ticket_transferred"
TICKET_CANCELLED = "ticket_cancelled"
# the window serving it was closed (its staff disabled): back at the head of its queue
TICKET_REQUEUED = "ticket_requeued"
TICKET_PHONE_SET = "ticket_phone_set"
WINDOW_OPENED = "window_opened"
WINDOW_CLOSED = "window_closed"
WINDOW_PAUSED = "window_paused"
WINDOW_RESUMED = "window_resumed"
PAUSE_OVER_LIMIT = "pause_over_limit"
# 顶岗补位制: an A-post window closed in opening hours past the pause limit with nobody covering
WINDOW_UNCOVERED = "window_uncovered"
# 顶岗补位制: a window's A post and its B posts all away at once
POSTS_AWAY = "posts_away"
# 先外后内: an open window idle while people it could call wait
WINDOW_IDLE = "window_idle"
DAY_STARTED = "day_started"
DEVICE_HEALTH = "device_health"
EVALUATION_PROMPTED = "evaluation_prompted"
EVALUATION_ENDED = "evaluation_ended"
TICKET_EVALUATED = "ticket_evaluated"
TIDAL_OPEN_PROPOSED = "tidal_open_proposed"
TIDAL_CLOSE_PROPOSED = "tidal_close_proposed"
# the clock went back behind what the hall recorded, and when it is right again (the runtime's)
CLOCK_FAULT = "clock_fault"
CLOCK_RESTORED = "clock_restored"
PATROL_DUE = "patrol_due"
PATROL_RECORDED = "patrol_recorded"


@dataclass(frozen=True)
class Event:
    kind: str
    at: dt.datetime
    window: int | None = None
    ticket: str | None = None
    data: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "at": self.at.isoformat(), "window": self.window,
                "ticket": self.ticket, "data": self.data}
