"""呼叫器: the staff keypad at a window, and the 评价器 (evaluation pad) on the same RS-485 bus.

`codec` turns the bus's frames into key presses and grades and back;
`json_codec` does the same for the tablets' JSON over MQTT; `CounterBus`
listens on one bus, acknowledges each frame and tells the controller which
window pressed what. The controller decides what a press means for the queue.
"""

from drivers.counter_keypad.codec import (
    DEVICE_FUNCTIONS, DISPLAY_FUNCTIONS, KEY_FUNCTIONS, LEN_OFFSET, MAX_DATA, BusFrame, BusProtocolError,
    Display, FrameDecoder, GradePress, Key, KeyPress, PauseReason, Unknown, check_press, encode_frame,
    encode_press, pad_blank, pad_prompt, pad_thanks, parse, parse_display, show_text,
)
from drivers.counter_keypad.driver import CounterBus
from drivers.counter_keypad.json_codec import KeyMessage, RepeatFilter, encode_key_json, parse_key_json

__all__ = [
    "DEVICE_FUNCTIONS", "DISPLAY_FUNCTIONS", "KEY_FUNCTIONS", "LEN_OFFSET", "MAX_DATA", "BusFrame",
    "BusProtocolError", "CounterBus", "Display", "FrameDecoder", "GradePress", "Key", "KeyMessage", "KeyPress",
    "PauseReason", "RepeatFilter", "Unknown", "check_press", "encode_frame", "encode_key_json", "encode_press",
    "pad_blank", "pad_prompt", "pad_thanks", "parse", "parse_display", "parse_key_json", "show_text",
]
