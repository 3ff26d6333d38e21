"""Staff login sessions: bearer tokens, stored hashed so a copied database grants nothing."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import threading
from dataclasses import dataclass

import sqlite_utils

from controller.core.errors import HallError


@dataclass(frozen=True)
class Session:
    staff_id: str
    role: str
    window: int | None
    # the hall's day the login was made on: a token ends with its day (`resolve`)
    day: dt.date | None = None

    def require(self, *roles: str) -> None:
        """Refuse (403 forbidden_role) unless the session's role is one of `roles`."""
        if self.role not in roles:
            raise HallError("forbidden_role")


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class SessionStore:
    """Tokens survive a controller restart; revoking one takes effect at once."""

    def __init__(self, db: sqlite_utils.Database, lock: threading.RLock | None = None) -> None:
        """`lock` is the one guarding other writers on the same connection (the controller's)."""
        self.db = db
        self._lock = lock or threading.RLock()
        self._cache: dict[str, Session] = {
            r["token_hash"]: Session(r["staff_id"], r["role"], r["window"], _day(r["created_at"]))
            for r in db.query("SELECT * FROM sessions WHERE revoked_at IS NULL")}
        self._disabled: set[str] = {r["staff_id"] for r in db.query("SELECT staff_id FROM staff_disabled")}

    def create(self, staff_id: str, role: str, window: int | None, now: dt.datetime) -> str:
        token = secrets.token_urlsafe(32)
        session = Session(staff_id, role, window, now.date())
        with self._lock:
            self.db.execute(
                "INSERT INTO sessions (token_hash, staff_id, role, window, created_at) "
                "VALUES (?, ?, ?, ?, ?)", [_digest(token), staff_id, role, window, now.isoformat()])
            self._cache[_digest(token)] = session
        return token

    def resolve(self, token: str, today: dt.date | None = None) -> Session | None:
        """The live session of `token`; None once revoked, disabled, or (given the hall's day
        `today`) made on another day: yesterday's token acts for nobody today, whether or not
        the day change has run yet."""
        found = self._cache.get(_digest(token))
        # belt and braces: disabling revokes the tokens too
        if found is None or found.staff_id in self._disabled:
            return None
        if today is not None and found.day != today:
            return None
        return found

    def revoke(self, token: str, now: dt.datetime) -> None:
        self._revoke_where("token_hash = ?", [_digest(token)], now)

    def revoke_login(self, session: Session, token: str, now: dt.datetime) -> int:
        """Logging out ends the whole login: every token of that staff member at that window
        (each page or device they opened), or for a login without a window, this token."""
        if session.window is None:
            return self._revoke_where("token_hash = ?", [_digest(token)], now)
        return self._revoke_where("staff_id = ? AND window = ?", [session.staff_id, session.window], now)

    def revoke_others_at(self, window: int, staff_id: str, now: dt.datetime) -> int:
        """Someone else logged in at `window`: the tokens earlier logins there still hold end."""
        return self._revoke_where("window = ? AND staff_id != ?", [window, staff_id], now)

    def revoke_window(self, window: int, now: dt.datetime) -> None:
        """Every token acting for `window` (its window was closed by someone else, or the day ended)."""
        self._revoke_where("window = ?", [window], now)

    def revoke_staff(self, staff_id: str, now: dt.datetime) -> int:
        """Every token of `staff_id`, at once; how many were live."""
        return self._revoke_where("staff_id = ?", [staff_id], now)

    # -- disabled accounts (停用: staff who leave lose every access at once, 001 4.2.4) --------

    def is_disabled(self, staff_id: str) -> bool:
        return staff_id in self._disabled

    def disabled(self) -> list[dict]:
        with self._lock:
            return list(self.db.query("SELECT * FROM staff_disabled ORDER BY staff_id"))

    def disable(self, staff_id: str, by: str, reason: str | None, now: dt.datetime) -> int:
        """Mark `staff_id` disabled (kept across restarts) and revoke its tokens; how many."""
        with self._lock:
            self.db.execute(
                "INSERT INTO staff_disabled (staff_id, disabled_at, disabled_by, reason) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (staff_id) DO NOTHING",
                [staff_id, now.isoformat(), by, reason])
            self._disabled.add(staff_id)
            return self.revoke_staff(staff_id, now)

    def enable(self, staff_id: str) -> bool:
        """Let `staff_id` log in again (old tokens stay revoked); False if it was not disabled."""
        with self._lock:
            was = staff_id in self._disabled
            self.db.execute("DELETE FROM staff_disabled WHERE staff_id = ?", [staff_id])
            self._disabled.discard(staff_id)
            return was

    def _revoke_where(self, where: str, params: list, now: dt.datetime) -> int:
        with self._lock:
            rows = list(self.db.query(
                f"SELECT token_hash FROM sessions WHERE revoked_at IS NULL AND {where}", params))
            self.db.execute(f"UPDATE sessions SET revoked_at = ? WHERE revoked_at IS NULL AND {where}",
                            [now.isoformat(), *params])
            for r in rows:
                self._cache.pop(r["token_hash"], None)
            return len(rows)


def _day(created_at: str) -> dt.date | None:
    try:
        return dt.datetime.fromisoformat(created_at).date()
    except (TypeError, ValueError):
        return None
