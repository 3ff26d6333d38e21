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
            r["token_hash"]: Session(r["staff_id"], r["role"], r["window"])
            for r in db.query("SELECT * FROM sessions WHERE revoked_at IS NULL")}

    def create(self, staff_id: str, role: str, window: int | None, now: dt.datetime) -> str:
        token = secrets.token_urlsafe(32)
        session = Session(staff_id, role, window)
        with self._lock:
            self.db.execute(
                "INSERT INTO sessions (token_hash, staff_id, role, window, created_at) "
                "VALUES (?, ?, ?, ?, ?)", [_digest(token), staff_id, role, window, now.isoformat()])
            self._cache[_digest(token)] = session
        return token

    def resolve(self, token: str) -> Session | None:
        return self._cache.get(_digest(token))

    def revoke(self, token: str, now: dt.datetime) -> None:
        self._revoke_where("token_hash = ?", [_digest(token)], now)

    def revoke_window(self, window: int, now: dt.datetime) -> None:
        """Every token acting for `window` (its window was closed by someone else, or the day ended)."""
        self._revoke_where("window = ?", [window], now)

    def _revoke_where(self, where: str, params: list, now: dt.datetime) -> None:
        with self._lock:
            rows = list(self.db.query(
                f"SELECT token_hash FROM sessions WHERE revoked_at IS NULL AND {where}", params))
            self.db.execute(f"UPDATE sessions SET revoked_at = ? WHERE revoked_at IS NULL AND {where}",
                            [now.isoformat(), *params])
            for r in rows:
                self._cache.pop(r["token_hash"], None)
