"""A hall story for tests: the pure engine, a state and a hand-moved clock."""

from __future__ import annotations

import datetime as dt

from controller.core import commands as c
from controller.core.engine import Engine, Outcome
from controller.core.hall import Hall
from tests.halls import SEALER, at


class Story:
    def __init__(self, hall: Hall, start: str = "09:00", day: dt.date | None = None) -> None:
        self.engine = Engine(hall)
        self.state = self.engine.new_state()
        self.now = at(start, day) if day else at(start)
        self.events = []
        self.do_new_day()

    def do_new_day(self) -> None:
        if self.engine.needs_new_day(self.state, self.now):
            self.events += self.engine.start_day(self.state, self.now).events

    def at(self, hhmm: str) -> None:
        self.now = at(hhmm, self.now.date())

    def later(self, **delta) -> None:
        self.now += dt.timedelta(**delta)

    def do(self, cmd: c.Command) -> Outcome:
        self.do_new_day()
        out = self.engine.apply(self.state, cmd, self.now)
        self.events += out.events
        return out

    def issue(self, service: str, id_number: str | None = None, name: str | None = None,
              **kw) -> str:
        citizen = SEALER.citizen(id_number, name) if id_number else None
        return self.do(c.IssueTicket(service, citizen=citizen, **kw)).ticket.label

    def open(self, *windows: int) -> None:
        for n in windows:
            self.do(c.Login(n, f"s{n}"))

    def call(self, window: int) -> str | None:
        t = self.do(c.CallNext(window)).ticket
        return t.label if t else None

    def label_status(self, label: str) -> str:
        return self.state.find_label(label).status.value
