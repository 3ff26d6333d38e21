"""Text a device may be given: what every codec does to a name, a reason or a notice before
it turns it into bytes.

A device reads some bytes as commands, not text: ESC, GS and DLE on an ESC/POS
printer (a name holding ESC * made the printer swallow the next ten thousand
bytes, status queries included), 0A and 0D on a bar, a backslash escape on an
Onbon controller. And a device's font holds one character set: a GB2312 bar
has no glyph for 堃 or 喆. So a codec passes every text through `fit` with its
own character set and limit:

- control characters are dropped (line breaks and tabs become a space, so
  words stay apart), and so are invisible format characters (zero-width
  spaces, bidirectional overrides);
- a character the device cannot show (outside its character set, a lone
  surrogate, a private-use or unassigned code point) becomes a visible
  stand-in, □, so the citizen sees that a character is missing rather than
  another character or nothing;
- the text is cut to the limit (encoded bytes, and characters where the
  device counts those), ending in … so a cut is visible.

Pure: no I/O. The result encodes in `charset` without error.
"""

from __future__ import annotations

import codecs
import functools
import unicodedata
from typing import Any, Callable

STAND_IN = "□"  # GB2312 A1F5: the "tofu" box a missing glyph shows as
ELLIPSIS = "…"  # GB2312 A1AD
_LINE_BREAKS = frozenset("\t\n\v\f\r\x85\u2028\u2029")
_UNSHOWABLE = frozenset(("Cs", "Co", "Cn"))  # lone surrogates, private use, unassigned
_DROPPED = frozenset(("Cc", "Cf"))  # controls, invisible format characters


def _encoded_size(charset: str | None) -> Callable[[str], int | None]:
    """Bytes one character takes in `charset` (UTF-8 for None), or None if it has none."""
    name = "utf-8" if charset is None else codecs.lookup(charset).name  # unknown: LookupError now

    def size(c: str) -> int | None:
        try:
            return len(c.encode(name))
        except UnicodeEncodeError:
            return None
    return size


def fit(text: str, charset: str | None = None, max_bytes: int | None = None,
        max_chars: int | None = None, stand_in: str = STAND_IN) -> str:
    """`text` as a device with `charset` (None: any Unicode) can take it, at most `max_bytes`
    encoded and `max_chars` characters long; see the module docstring."""
    if not isinstance(text, str):
        raise TypeError(f"device text must be str, not {type(text).__name__}")
    if len(text) > _REMEMBERED_CHARS:
        return _fit(text, charset, max_bytes, max_chars, stand_in)
    return _fit_remembered(text, charset, max_bytes, max_chars, stand_in)


def _fit(text: str, charset: str | None, max_bytes: int | None, max_chars: int | None,
         stand_in: str) -> str:
    size = _encoded_size(charset)
    stand_size = size(stand_in)
    if stand_size is None:  # a charset without □ (ASCII) shows "?"
        stand_in, stand_size = "?", 1
    ellipsis = ELLIPSIS if size(ELLIPSIS) is not None else "..."
    ellipsis_size = size(ellipsis) or len(ellipsis)
    out: list[str] = []
    sizes: list[int] = []
    used = 0
    cut = False
    for c in unicodedata.normalize("NFC", text.replace("\r\n", "\n")):
        if c in _LINE_BREAKS:
            c = " "
        category = unicodedata.category(c)
        if category in _DROPPED:
            continue
        n = None if category in _UNSHOWABLE else size(c)
        if n is None:
            c, n = (" ", 1) if category == "Zs" else (stand_in, stand_size)
        if (max_bytes is not None and used + n > max_bytes) or (
                max_chars is not None and len(out) >= max_chars):
            cut = True
            break
        out.append(c)
        sizes.append(n)
        used += n
    if cut:
        room_bytes = (max_bytes - ellipsis_size) if max_bytes is not None else None
        room_chars = (max_chars - len(ellipsis)) if max_chars is not None else None
        while out and ((room_bytes is not None and used > room_bytes)
                       or (room_chars is not None and len(out) > room_chars)):
            out.pop()
            used -= sizes.pop()
        fits_bytes = max_bytes is None or used + ellipsis_size <= max_bytes
        fits_chars = max_chars is None or len(out) + len(ellipsis) <= max_chars
        if fits_bytes and fits_chars:
            out.append(ellipsis)
    return "".join(out)


# The same few hundred texts (window names, staff names, states) reach the devices again and
# again: the hall board sends every window's row on every change. A short text's fitting is
# remembered; a long one (a notice) is fitted each time, so the memory stays small.
_REMEMBERED_CHARS = 64
_fit_remembered = functools.lru_cache(maxsize=4096)(_fit)


def encode(text: str, charset: str, max_bytes: int, stand_in: str = STAND_IN) -> bytes:
    """`fit` and encode in one step: at most `max_bytes` of `charset`, no control byte from the text."""
    return fit(text, charset, max_bytes, stand_in=stand_in).encode(charset)


def fit_json(value: Any, max_chars: int) -> Any:
    """Every string value in a JSON value through `fit` (any Unicode, at most `max_chars`), for a
    screen that reads JSON: it shows what a string holds, so a control character would reach it.
    Keys are the controller's own field names and stay as they are."""
    if isinstance(value, str):
        return fit(value, None, max_chars=max_chars)
    if isinstance(value, dict):
        return {k: fit_json(v, max_chars) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [fit_json(v, max_chars) for v in value]
    return value
