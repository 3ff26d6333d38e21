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

# A new PIN (hallctl hash-pin): 6 to 12 digits, as a bank card's; nothing guessed first.
MIN_DIGITS = 6
MAX_DIGITS = 12
_COMMON = {"123123", "520520", "521521", "147258", "147258369", "159357", "741852", "789456",
           "123654", "654123", "135790", "246810", "102030", "112233", "010203"}
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


def trivial(pin: str) -> str | None:
    """Why `pin` is among the first ones a guesser tries, or None: one digit repeated (0000),
    a run up or down (123456, 4321, 890123), a short pattern repeated (121212, 123123), two
    digits only (110110), or a well-known one (520520, 147258). Checked at any length, so
    it holds for a PIN hashed before the length rule too."""
    if len(set(pin)) <= 2:
        return "只有一两个不同的数字"
    steps = {(int(b) - int(a)) % 10 for a, b in zip(pin, pin[1:], strict=False)}
    if len(steps) == 1 and steps <= {1, 9}:
        return "是连续的数字"
    for k in range(1, len(pin) // 2 + 1):
        if len(pin) % k == 0 and pin == pin[:k] * (len(pin) // k):
            return "是重复的数字组合"
    if pin in _COMMON:
        return "是常用的 PIN"
    return None


def weakness(pin: str) -> str | None:
    """Why `pin` may not be set as a new PIN, or None: its length, its characters, or `trivial`."""
    if not (pin.isascii() and pin.isdigit()) or not MIN_DIGITS <= len(pin) <= MAX_DIGITS:
        return f"PIN 须为 {MIN_DIGITS} 到 {MAX_DIGITS} 位数字"
    why = trivial(pin)
    return f"PIN 过于简单（{why}）" if why else None
UNKNOWN_STAFF_HASH = hash_pin(secrets.token_hex(16))
