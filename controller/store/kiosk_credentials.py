"""Kiosk device credentials (取号机密钥): what lets a kiosk take tickets and hold identities.

A kiosk is a device, not a person: the admin sets up a key for it (`hallctl
kiosk-credential KIOSK`, or the admin API), sees it once, and enters it once on the
kiosk machine, whose page keeps it in an HttpOnly cookie. A kiosk that is not a page
sends it in the `X-Kiosk-Key` header. The key is `KIOSK.SECRET`, so it names its kiosk;
only its SHA-256 is stored (the secret is 32 random bytes: a copied database grants
nothing and no slow hash is needed). One live key per kiosk: a new one replaces the
old, and revoking ends it at once, also when `hallctl` does it beside a running
controller (every check reads the table).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from controller.store.hallstore import HallStore

KIOSK_ID = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class KioskKey:
    """A key as given to the admin, once."""
    kiosk_id: str
    key: str


class KioskCredentials:
    def __init__(self, store: HallStore) -> None:
        self.store = store

    def issue(self, kiosk_id: str, by: str, now: dt.datetime) -> KioskKey:
        """A new key for `kiosk_id` (replacing its old one). The row keeps when and by whom;
        the web API and the demo also put it in the audit log (`hallctl`, an offline tool like
        rotate-key and purge, does not write the hall's log, whose clock it does not know)."""
        if not KIOSK_ID.match(kiosk_id):
            raise ValueError(f"a kiosk id is 1 to 32 letters, digits, '-' or '_': {kiosk_id!r}")
        secret = secrets.token_urlsafe(32)
        self._write(
            "INSERT INTO kiosk_credentials (kiosk_id, key_hash, created_at, created_by) "
            "VALUES (?, ?, ?, ?) ON CONFLICT (kiosk_id) DO UPDATE SET key_hash = excluded.key_hash, "
            "created_at = excluded.created_at, created_by = excluded.created_by, "
            "revoked_at = NULL, revoked_by = NULL",
            [kiosk_id, _digest(secret), now.isoformat(), by])
        return KioskKey(kiosk_id, f"{kiosk_id}.{secret}")

    def revoke(self, kiosk_id: str, by: str, now: dt.datetime) -> bool:
        """End `kiosk_id`'s key at once; False if it had none."""
        return self._write(
            "UPDATE kiosk_credentials SET revoked_at = ?, revoked_by = ? "
            "WHERE kiosk_id = ? AND revoked_at IS NULL", [now.isoformat(), by, kiosk_id]) > 0

    def kiosk_of(self, key: str | None) -> str | None:
        """The kiosk a presented key belongs to, if it is live; None for anything else."""
        if not key or len(key) > 200:
            return None
        kiosk_id, _, secret = key.rpartition(".")
        if not kiosk_id or not secret:
            return None
        rows = self.store.query(
            "SELECT key_hash FROM kiosk_credentials WHERE kiosk_id = ? AND revoked_at IS NULL",
            [kiosk_id])
        if rows and hmac.compare_digest(rows[0]["key_hash"], _digest(secret)):
            return kiosk_id
        return None

    def live(self) -> set[str]:
        """The kiosks that have a live key."""
        return {r["kiosk_id"] for r in self.store.query(
            "SELECT kiosk_id FROM kiosk_credentials WHERE revoked_at IS NULL")}

    def _write(self, sql: str, params: list) -> int:
        with self.store.lock:
            return self.store.db.conn.execute(sql, params).rowcount
