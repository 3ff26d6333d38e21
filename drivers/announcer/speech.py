"""What the hall says when it calls a ticket: the Mandarin phrase, as plain text for the synthesizer.

The ticket number is spelled, not read as a quantity: letter, then each digit
as a Chinese numeral with spaces between ("A 零 零 一"). Given "A101",
espeak-ng's Mandarin voice says "A 一百 一" and given "A120" it says
"A 一百二十"; a citizen listening for "一 零 一" misses that. Checked with
`espeak-ng -v cmn-latn-pinyin -q -x A101`. The letter stays a Latin capital
with spaces round it so espeak-ng says its letter name ("AB" together is read
as an English word). The digit 1 is 一, not 幺: halls say 一 on their calls.

The window is read as a number ("十二号窗口"), the way staff say it.
No I/O here.

`speakable` is what the synthesizer is given, whatever the phrase: espeak-ng
reads `[[...]]` as raw phonemes (`espeak-ng -q -x "[[h@l'oU]]"` says them),
control characters as embedded commands, and `<...>` as SSML when a hall
turns markup on; so those go, and the phrase is bounded (drivers/text.py).
"""

from __future__ import annotations

import re
from typing import Iterable

from drivers import text as device_text

DIGITS = {
    "0": "零", "1": "一", "2": "二", "3": "三", "4": "四",
    "5": "五", "6": "六", "7": "七", "8": "八", "9": "九",
}

# Chinese numerals by place, largest first; windows never reach 万.
PLACES = ((1000, "千"), (100, "百"), (10, "十"), (1, ""))

RECALL_PREFIX = "再次呼叫，"
SPEECH_MAX_CHARS = 100  # a call is about 25; a longer text is cut, not read for a minute
_MARKUP = str.maketrans({c: " " for c in "[]<>&\\{}"})

TICKET_NUMBER = re.compile(r"([A-Za-z]*)([0-9]+)")


def spell_ticket(number: str) -> str:
    """'A001' → 'A 零 零 一'; letters are upper-cased and every character stands alone."""
    match = TICKET_NUMBER.fullmatch(number.strip())
    if match is None:
        raise ValueError(f"ticket number {number!r} is not letters followed by digits, like A001")
    letters, digits = match.groups()
    return " ".join([*letters.upper(), *(DIGITS[d] for d in digits)])


def chinese_number(n: int) -> str:
    """3 → '三', 12 → '十二', 20 → '二十', 101 → '一百零一', 110 → '一百一十'."""
    if not 1 <= n <= 9999:
        raise ValueError(f"window number {n} is outside 1..9999")
    if n < 10:
        return DIGITS[str(n)]
    if n < 20:  # 十二, not 一十二
        return "十" + (DIGITS[str(n - 10)] if n > 10 else "")
    parts: list[str] = []
    zero_skipped = False
    for value, place in PLACES:
        digit = n // value % 10
        if digit == 0:
            zero_skipped = bool(parts)
            continue
        if zero_skipped:  # one 零 stands for any run of inner zeros: 1001 → 一千零一
            parts.append("零")
            zero_skipped = False
        parts.append(DIGITS[str(digit)] + place)
    return "".join(parts)


def call_phrase(number: str, window: int) -> str:
    """'请 A 零 零 一 号 到 三号窗口 办理' for ticket A001 at window 3."""
    return f"请 {spell_ticket(number)} 号 到 {chinese_number(window)}号窗口 办理"


def announcement_text(number: str, window: int, recall: bool = False) -> str:
    """The whole phrase; a recall starts with '再次呼叫，'."""
    return (RECALL_PREFIX if recall else "") + call_phrase(number, window)


def speakable(text: str) -> str:
    """`text` as the synthesizer may read it: no control characters, no phoneme brackets or
    markup, at most SPEECH_MAX_CHARS characters."""
    return device_text.fit(text.translate(_MARKUP), None, max_chars=SPEECH_MAX_CHARS)


def vocabulary(prefixes: Iterable[str], windows: Iterable[int]) -> list[str]:
    """Phrases that hold every word the calls of a hall say: each window's call with every
    letter of the service prefixes and every digit, and a recall's prefix."""
    letters = "".join(sorted({c.upper() for p in prefixes for c in p if c.isascii() and c.isalpha()}))
    return [RECALL_PREFIX, *(call_phrase(letters + "0123456789", n) for n in windows)]
