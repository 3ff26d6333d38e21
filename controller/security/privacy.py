"""Personal data at rest: ID numbers and names are sealed (AES-GCM) and found again by a keyed hash.

The hall's secret lives in `secret.key` beside the database (created on first
run, readable by the controller's user only) or in the environment variable
HALL_SECRET_KEY. A copied database without the key shows masked data only.

`hallctl rotate-key` re-seals everything with a new key (controller.security.personal_data); while it
runs the new key waits in `secret.key.new`, and a hall that finds that file does not start
until the rotation is finished.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
import hmac
import json
import os
import secrets
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from controller.core import identity
from controller.core.errors import HallError

KEY_FILE = "secret.key"
NEW_KEY_FILE = "secret.key.new"
ENV_KEY = "HALL_SECRET_KEY"
# What a purge (controller.security.personal_data) leaves of a visit older than the hall keeps personal
# data: a masked form that says "a real-name visit" and no more, and, in a case, a sealed
# field that says "there was one" (the figures count real-name bad reviews).
PURGED_ID_MASK = "*" * 18
PURGED_NAME_MASK = "*"
PURGED = "purged"


class IdentitySealer:
    """Seals and opens citizens' identities with the hall's secret key."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) != 32:
            raise ValueError("the hall secret key must be 32 bytes")
        self._aead = AESGCM(hashlib.sha256(b"seal:" + secret).digest())
        self._mac_key = hashlib.sha256(b"lookup:" + secret).digest()
        self._link_key = hashlib.sha256(b"ticket-page:" + secret).digest()

    def key(self, id_number: str) -> str:
        """The same person's lookup key every time; it reveals nothing without the secret."""
        return hmac.new(self._mac_key, id_number.encode(), hashlib.sha256).hexdigest()[:32]

    def ticket_secret(self, ticket_id: str) -> str:
        """The secret in a slip's QR link to its ticket's phone page: 128 bits, unguessable
        without the hall's key, the same for the ticket every time (nothing to store; a key
        rotation ends the links printed before it)."""
        mac = hmac.new(self._link_key, ticket_id.encode(), hashlib.sha256).digest()[:16]
        return base64.urlsafe_b64encode(mac).decode().rstrip("=")

    def ticket_secret_ok(self, ticket_id: str, given: str) -> bool:
        """`given` is the ticket's secret (compared in constant time)."""
        return hmac.compare_digest(self.ticket_secret(ticket_id).encode(),
                                   given.encode("utf-8", "replace"))

    def seal(self, id_number: str, name: str | None) -> str:
        nonce = secrets.token_bytes(12)
        plain = json.dumps({"id": id_number, "name": name}, ensure_ascii=False).encode()
        return base64.urlsafe_b64encode(nonce + self._aead.encrypt(nonce, plain, None)).decode()

    def open(self, sealed: str) -> tuple[str, str | None]:
        raw = base64.urlsafe_b64decode(sealed.encode())
        data = json.loads(self._aead.decrypt(raw[:12], raw[12:], None))
        return data["id"], data["name"]

    def citizen(self, id_number: str, name: str | None = None,
                phone: str | None = None, today: dt.date | None = None) -> identity.Citizen:
        """A checked, sealed citizen for a real-name ticket (HallError if a number is wrong,
        or born after `today`)."""
        return self.with_phone(identity.citizen(id_number, name, self.seal, self.key,
                                                today=today), phone)

    def with_phone(self, citizen: identity.Citizen, phone: str | None) -> identity.Citizen:
        """The citizen with a phone for the callback, checked and sealed (none: unchanged)."""
        if not phone:
            return citizen
        checked = identity.normalise_phone(phone)
        if checked is None:
            raise HallError("invalid_phone")
        return dataclasses.replace(citizen, phone_sealed=self.seal(checked, None))

    def phone_masked(self, phone_sealed: str | None) -> str | None:
        """138****1234 for a sealed phone; None when there is none (or it was purged)."""
        if phone_sealed in (None, PURGED):
            return None
        phone, _ = self.open(phone_sealed)
        return identity.mask_phone(phone)


def new_secret() -> bytes:
    return secrets.token_bytes(32)


def write_secret(path: Path, secret: bytes) -> None:
    """A key file readable by the controller's user only, on disk before this returns."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(base64.urlsafe_b64encode(secret).decode() + "\n")
        f.flush()
        os.fsync(f.fileno())


def read_secret(path: Path) -> bytes:
    return base64.urlsafe_b64decode(path.read_text().strip().encode())


def load_secret(data_dir: Path) -> bytes:
    """The hall's secret: from HALL_SECRET_KEY, else `secret.key` in the data dir (made once)."""
    env = os.environ.get(ENV_KEY)
    if env:
        return base64.urlsafe_b64decode(env.encode())
    if (data_dir / NEW_KEY_FILE).exists():
        raise RuntimeError(f"{data_dir / NEW_KEY_FILE} exists: a key rotation was interrupted. "
                           f"Run `hallctl rotate-key --data-dir {data_dir}` again to finish it")
    path = data_dir / KEY_FILE
    if not path.exists():
        write_secret(path, new_secret())
    return read_secret(path)
