"""What a window bar and the main hall display should show, in the hall's words.

Pure: no I/O and no clock (a pause's return time is part of the state). The
driver turns a state into lines with `bar_lines` and a colour with
`bar_colour`, then hands both to a vendor codec.

Widths are counted the way an LED bar is built: `width_chars` is the number of
16-dot Hanzi the bar holds (a 128x16 bar holds 8); a digit or Latin letter
takes half a Hanzi. A line wider than the bar is still sent as one line: the
bar scrolls it.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any, Sequence

from drivers.protocol import ProtocolError


class DisplayProtocolError(ProtocolError):
    """Bytes that are not a valid display frame, or text a display frame cannot carry.

    Every display codec raises this one type, so the driver and the simulator
    catch one thing whatever the vendor.
    """


class Colour(Enum):
    """The colours a red-green LED bar can show (yellow is both LEDs lit)."""

    RED = "red"
    GREEN = "green"
    YELLOW = "yellow"


@dataclass(frozen=True)
class Calling:
    """A ticket called to this window: its number and, where known, its service."""

    window: int
    number: str
    service_name: str | None = None


@dataclass(frozen=True)
class Idle:
    """The window is open and waiting for the next ticket."""

    window: int
    text: str = "欢迎光临"


@dataclass(frozen=True)
class PauseSign:
    """The pause-service sign: staff are away (001 4.2.2), why, where, and when they are back."""

    window: int
    reason: str = ""
    back_at: datetime | None = None
    whereabouts: str | None = None  # 去向告知 (000 顶岗补位制 第四条(八)), where a hall shows it


@dataclass(frozen=True)
class Closed:
    """The window is not open (end of day, or a tidal window that has drained)."""

    window: int


WindowBarState = Calling | Idle | PauseSign | Closed

PAUSE_TITLE = "暂停服务"
CLOSED_TEXT = "停止服务"


def display_width(text: str) -> int:
    """Half-Hanzi columns `text` takes on a bar: 2 for Hanzi and full-width signs, 1 otherwise."""
    return sum(2 if unicodedata.east_asian_width(c) in ("W", "F") else 1 for c in text)


def fits(text: str, width_chars: int) -> bool:
    return display_width(text) <= 2 * width_chars


def _window_name(window: int) -> str:
    return f"{window}号窗口"


def call_text(number: str, window: int) -> str:
    """The full call as the main display and a wide bar show it."""
    return f"{number} 请到{_window_name(window)}"


def pause_detail(sign: PauseSign) -> str:
    """The second line of the sign: reason, whereabouts and expected return, as given."""
    parts = [sign.reason.strip()] if sign.reason and sign.reason.strip() else []
    if sign.whereabouts and sign.whereabouts.strip():
        parts.append(f"去向 {sign.whereabouts.strip()}")
    if sign.back_at is not None:
        parts.append(f"预计 {sign.back_at:%H:%M} 恢复")
    return " ".join(parts)


def bar_lines(state: WindowBarState, width_chars: int = 8) -> list[str]:
    """The one or two lines a window bar shows for `state`; a line too wide for the bar scrolls."""
    if width_chars < 1:
        raise ValueError(f"a bar is at least one character wide, not {width_chars}")
    if isinstance(state, Calling):
        full, short = call_text(state.number, state.window), f"请 {state.number} 号"
        first = full if fits(full, width_chars) else short if fits(short, width_chars) else state.number
        return [first, state.service_name] if state.service_name else [first]
    if isinstance(state, Idle):
        name = _window_name(state.window)
        if not state.text:
            return [name]
        together = f"{name} {state.text}"
        return [together] if fits(together, width_chars) else [name, state.text]
    if isinstance(state, PauseSign):
        detail = pause_detail(state)
        return [PAUSE_TITLE, detail] if detail else [PAUSE_TITLE]
    if isinstance(state, Closed):
        return [_window_name(state.window), CLOSED_TEXT]
    raise TypeError(f"not a window bar state: {state!r}")


def bar_colour(state: WindowBarState) -> Colour:
    """Green invites (a call), red stops (paused, closed), yellow is the quiet idle text."""
    if isinstance(state, Calling):
        return Colour.GREEN
    if isinstance(state, (PauseSign, Closed)):
        return Colour.RED
    return Colour.YELLOW


def state_text(state: WindowBarState) -> str:
    """One short phrase for the window's row on the main hall display."""
    if isinstance(state, Calling):
        return state.number
    if isinstance(state, PauseSign):
        return PAUSE_TITLE
    if isinstance(state, Closed):
        return CLOSED_TEXT
    return state.text or _window_name(state.window)


@dataclass(frozen=True)
class HallBoard:
    """The main hall display: recent calls (newest first) and each window's state in a phrase."""

    calls: Sequence[tuple[str, int]] = field(default_factory=tuple)  # (number, window)
    windows: Sequence[tuple[int, str]] = field(default_factory=tuple)  # (window, state text)

    def __post_init__(self) -> None:
        object.__setattr__(self, "calls", tuple((str(n), int(w)) for n, w in self.calls))
        object.__setattr__(self, "windows", tuple((int(w), str(t)) for w, t in self.windows))


def board_json(board: HallBoard) -> dict[str, Any]:
    """The board as the retained MQTT state a display renders (plain JSON types only).

    `latest` is the newest call (what the display flashes and the voice says),
    or None when nobody has been called yet.
    """
    calls = [{"number": n, "window": w, "text": call_text(n, w)} for n, w in board.calls]
    return {
        "latest": calls[0] if calls else None,
        "calls": calls,
        "windows": [{"window": w, "text": t} for w, t in board.windows],
    }
