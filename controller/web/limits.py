"""The API's rate limits, set in the hall's [rules]: PIN guessing and ticket flooding.

A request over a limit gets 429 with a Chinese message saying when to try again, and
the refusal is in the audit log like any other. Time is the controller's clock.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import Request

from controller.core.errors import HallError
from controller.runtime.hallcontroller import HallController
from controller.security.ratelimit import RateLimit, wait_text

MINUTE = dt.timedelta(minutes=1)


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


class Reservation:
    """A ticket counted against a limit before it is issued; `release` gives it back when the
    request is refused before any ticket was issued (unknown service, no paper, repeated tap)."""

    def __init__(self, limit: RateLimit, key: str, at: dt.datetime) -> None:
        self._limit, self._key, self._at = limit, key, at
        self._released = False

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._limit.release(self._key, self._at)
def _at(staff_id: str, address: str) -> str:
    return f"{staff_id}@{address}"


class Limits:
    """Failed logins per staff id at an address and per address; tickets per kiosk and per
    address.

    A staff id is locked out only at the address its PIN was mistyped from: failures
    anywhere else (a guesser on the LAN) must not keep its owner from logging in at the
    counter. Guessing across many ids from one address still meets the address's limit."""

    def __init__(self, ctrl: HallController) -> None:
        self.ctrl = ctrl
        rules = ctrl.hall.rules
        window = dt.timedelta(minutes=rules.login_failure_minutes)
        self.failures_by_staff = RateLimit(rules.login_failures_per_staff, window)
        self.failures_by_address = RateLimit(rules.login_failures_per_address, window)
        self.tickets_by_kiosk = RateLimit(rules.kiosk_tickets_per_minute, MINUTE)
        self.tickets_by_address = RateLimit(rules.address_tickets_per_minute, MINUTE)

    # -- logins -------------------------------------------------------------------------

    async def check_login(self, staff_id: str, address: str, args: dict[str, Any]) -> None:
        """Refuse (429) a login while its staff id or its address is locked out."""
        now = self.ctrl.clock()
        until = max((t for t in (self.failures_by_staff.blocked_until(_at(staff_id, address), now),
                                 self.failures_by_address.blocked_until(address, now)) if t),
                    default=None)
        if until is not None:
            await self._refuse("too_many_login_failures", f"登录失败次数过多，{wait_text(until, now)}",
                               until, now, f"staff:{staff_id}", "login",
                               {**args, "address": address})

    def login_failed(self, staff_id: str, address: str) -> None:
        now = self.ctrl.clock()
        self.failures_by_staff.hit(_at(staff_id, address), now)
        self.failures_by_address.hit(address, now)

    def login_succeeded(self, staff_id: str, address: str) -> None:
        """The right PIN: the person's own mistypes are forgiven (the address's are not)."""
        self.failures_by_staff.clear(_at(staff_id, address))

    # -- tickets ------------------------------------------------------------------------

    async def reserve_kiosk(self, kiosk_id: str, args: dict[str, Any]) -> Reservation:
        """One of the kiosk's tickets this minute, taken before the print (429 if none is left)."""
        return await self._reserve(self.tickets_by_kiosk, kiosk_id, f"kiosk:{kiosk_id}", args)

    async def reserve_address(self, address: str, args: dict[str, Any]) -> Reservation:
        """One of the address's tickets this minute, taken before the issue (429 if none is left)."""
        return await self._reserve(self.tickets_by_address, address, "kiosk",
                                   {**args, "address": address})

    async def _reserve(self, limit: RateLimit, key: str, actor: str,
                       args: dict[str, Any]) -> Reservation:
        # Reserved, not checked-then-counted: 32 requests arriving together once all passed
        # a check of 20 made before any of them was counted (issue 14).
        now = self.ctrl.clock()
        until = limit.reserve(key, now)
        if until is not None:
            await self._refuse("too_many_tickets",
                               f"取号过于频繁（每分钟最多 {limit.limit} 张），{wait_text(until, now)}，"
                               "或到导办台取号", until, now, actor, "issue_ticket", args)
        return Reservation(limit, key, now)

    async def _refuse(self, code: str, message: str, until: dt.datetime, now: dt.datetime,
                      actor: str, name: str, args: dict[str, Any]) -> None:
        err = HallError(code, message,
                        retry_after=max(1, int((until - now).total_seconds() + 0.999)))
        await self.ctrl.arefuse(actor, name, args, err)
        raise err
