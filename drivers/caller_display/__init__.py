"""Calling displays: the window bar (窗口屏) above each window, which also serves as its
pause-service sign (暂停服务牌), and the main hall display (综合屏).

`state` says what each should show in the hall's words (`Calling`, `Idle`,
`PauseSign`, `Closed`, `HallBoard`) and renders it as bar lines or the main
display's MQTT JSON. `generic_codec` (our own documented RS-485 frame) and
`onbon_codec` (Onbon BX-5/BX-6 dynamic text area) turn lines into bytes.
`WindowBar` joins one codec to one DeviceLink and re-shows its state after a
reconnect. A new vendor is one codec module and its `register_codec` call.
"""

from drivers.caller_display.driver import CODECS, BarCodec, WindowBar, register_codec
from drivers.caller_display.state import (
    Calling, Closed, Colour, DisplayProtocolError, HallBoard, Idle, PauseSign, WindowBarState,
    bar_colour, bar_lines, board_json, call_text, display_width, state_text,
)

__all__ = [
    "CODECS", "BarCodec", "Calling", "Closed", "Colour", "DisplayProtocolError", "HallBoard", "Idle",
    "PauseSign", "WindowBar", "WindowBarState", "bar_colour", "bar_lines", "board_json", "call_text",
    "display_width", "register_codec", "state_text",
]
