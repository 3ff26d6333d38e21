"""What one command did: the events it caused, the records it touched, and its answer."""

from __future__ import annotations

from dataclasses import dataclass, field

from controller.core import events as ev
from controller.core.estimate import WaitEstimate
from controller.core.model import Ticket, WindowState


@dataclass
class Outcome:
    """What one command did: its events, the records it touched, and its answer."""

    events: list[ev.Event] = field(default_factory=list)
    tickets: dict[str, Ticket] = field(default_factory=dict)
    created: set[str] = field(default_factory=set)
    windows: dict[int, WindowState] = field(default_factory=dict)
    ticket: Ticket | None = None
    estimate: WaitEstimate | None = None
    people_ahead: int | None = None
    warning: str | None = None

    def emit(self, event: ev.Event, ticket: Ticket | None = None) -> None:
        """Add `event`; `ticket`, the record it changed, is written with it."""
        if ticket is not None:
            self.tickets[ticket.id] = ticket
        self.events.append(event)

    def touch(self, w: WindowState) -> None:
        self.windows[w.number] = w
