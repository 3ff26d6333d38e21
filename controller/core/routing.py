"""Routing: which ticket a window calls next, how many are ahead, and the wait estimate.
A mixin of `Engine`: pure, like it."""

from __future__ import annotations

import datetime as dt

from controller.core.estimate import WaitEstimate, estimate_wait
from controller.core.model import HallState, Ticket, WindowStatus


class Routing:
    def _next_for(self, state: HallState, window: int, now: dt.datetime) -> Ticket | None:
        """The ticket this window calls next.

        Services in the window's priority order; within a service, appointments
        whose slot has come, then priority tickets (when the service says so),
        then the rest, oldest first.
        """
        due = now + dt.timedelta(minutes=self.hall.rules.appointment_early_minutes)
        for prefix in self.hall.windows[window].services:
            q = state.queues.services[prefix]
            if q.appointments and q.appointments[0][0] <= due:
                return state.tickets[q.appointments[0][2]]
            for lane in (q.priority, q.regular):
                if lane:
                    return state.tickets[lane[0][2]]
        return None

    def people_ahead(self, state: HallState, t: Ticket) -> int:
        return state.queues.ahead_of(t, self._priority_first(t.service))

    def estimate(self, state: HallState, prefix: str, ahead: int) -> WaitEstimate:
        """P10/P50/P90 minutes for a ticket with `ahead` tickets before it in `prefix`."""
        serving = [w for w in self.hall.windows_serving(prefix)
                   if state.windows[w.number].status is WindowStatus.OPEN]
        idle = sum(1 for w in serving if state.windows[w.number].current is None)
        count = len(serving) or len(self.hall.windows_serving(prefix))
        mean = state.service_minutes.get(prefix, self.hall.services[prefix].mean_minutes)
        return estimate_wait(ahead, count, idle if serving else 0, mean)
