"""评价器: the five-grade evaluation pad on the counter.

RS-485 pads share the counter bus with the keypads (`drivers.counter_keypad`:
grade presses are function 0x11, prompt/thanks/blank frames 0x21-0x23); tablet
pads speak the JSON in `json_codec` over MQTT.
"""

from drivers.evaluator_pad.json_codec import (
    GRADES_GB39046, PAD_GRADES, PadProtocolError, PadGrade, encode_grade_json, pad_state_json, parse_grade_json,
)

__all__ = ["GRADES_GB39046", "PAD_GRADES", "PadGrade", "PadProtocolError", "encode_grade_json",
           "pad_state_json", "parse_grade_json"]
