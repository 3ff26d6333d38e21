"""Staff PINs: stored only as salted PBKDF2-SHA256 hashes, never in plain text."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

# Only for accounts marked `demo = true`; the config loader refuses it elsewhere.
DEMO_PIN = "1234"
ITERATIONS = 60_000
# Bounds keep a hand-edited hash from being uselessly weak or hanging a login.
MIN_ITERATIONS = 1_000
MAX_ITERATIONS = 10_000_000

# What a login with an unknown staff id is checked against, so that it costs the same
# PBKDF2 as a known one: the answer's time must not tell which 工号 exist.
UNKNOWN_STAFF_HASH = ""  # set below, once hash_pin is defined

_HASH = re.compile(r"pbkdf2_sha256\$([0-9]{1,9})\$([0-9a-fA-F]{32})\$([0-9a-fA-F]{64})")


def hash_pin(pin: str, iterations: int = ITERATIONS) -> str:
    """Hash a PIN as `pbkdf2_sha256$<iterations>$<salt hex>$<hash hex>` with a fresh salt."""
    salt = secrets.token_bytes(16)
    return f"pbkdf2_sha256${iterations}${salt.hex()}${_derive(pin, salt, iterations).hex()}"


def verify_pin(pin: str, pin_hash: str) -> bool:
    """True when `pin` matches `pin_hash`; False for a wrong PIN or a malformed hash."""
    parts = _parse(pin_hash)
    if parts is None:
        return False
    iterations, salt, digest = parts
    return hmac.compare_digest(_derive(pin, salt, iterations), digest)


def is_valid_pin_hash(s: object) -> bool:
    """True when `s` has the form `hash_pin` produces."""
    return _parse(s) is not None


def _parse(pin_hash: object) -> tuple[int, bytes, bytes] | None:
    match = _HASH.fullmatch(pin_hash) if isinstance(pin_hash, str) else None
    if match is None:
        return None
    iterations = int(match[1])
    if not MIN_ITERATIONS <= iterations <= MAX_ITERATIONS:
        return None
    return iterations, bytes.fromhex(match[2]), bytes.fromhex(match[3])


def _derive(pin: str, salt: bytes, iterations: int) -> bytes:
    return hashlib.pbkdf2_hmac("sha256", pin.encode("utf-8"), salt, iterations)


UNKNOWN_STAFF_HASH = hash_pin(secrets.token_hex(16))
