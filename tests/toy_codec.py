"""A toy vendor's window-bar protocol, for the registry tests: `TOY`, the bar's address byte,
its lines joined by `|` in UTF-8, and a newline. No acknowledgement."""

from __future__ import annotations

from typing import Callable, Sequence

from drivers.caller_display import Colour


def encode_bar(address: int, lines: Sequence[str], colour: Colour, charset: str | None = None) -> bytes:
    return b"TOY" + bytes([address]) + "|".join(lines).encode("utf-8") + b"\n"


def ack_waiter(address: int) -> Callable[[bytes], bool] | None:
    return None
