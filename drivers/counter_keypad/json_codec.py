"""The tablets' keypad JSON: one MQTT message per key pressed on a networked counter terminal.

Pure: no I/O. The topic (`hall/window/<n>/keypad`) names the window, so the
payload does not, and `parse_key_json` takes the window as an argument:

    {"id": "5f0c2a", "key": "pause", "reason": "meal", "minutes": 30}

| field | for | value |
|---|---|---|
| id | every key, required | 1-64 characters, unique per press; a repeated delivery has the same id |
| key | every key, required | a `Key` value (call_next, recall, no_show, finish, start_evaluation, pause, |
|   |   | resume, transfer, call_number) |
| reason | pause, optional | away, materials, consult, meal, other (`PauseReason`, lower case) |
| minutes | pause, optional | whole number 1-255 |
| service | transfer, required | the target's prefix letter ("B"), or "1"-"9": its place in the service list |
| number | call_number, required | ticket number: optional letter A-Z and 1-4 digits ("A012") |

Any other field, or a field its key does not take, is a BusProtocolError: a
tablet sending it has a bug worth seeing in the log, not guessing around.
The message becomes the same `KeyPress` a bus keypad gives (its `address` is
the window: a tablet has no bus address), so the controller has one path.
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass
from typing import Any

from drivers.counter_keypad.codec import BusProtocolError, Key, KeyPress, PauseReason, _is_int, check_press

MAX_ID = 64
FIELDS = ("id", "key", "reason", "minutes", "service", "number")
_REASONS = {reason.name.lower(): reason for reason in PauseReason}
_TAKES = {Key.PAUSE: {"reason", "minutes"}, Key.TRANSFER: {"service"}, Key.CALL_NUMBER: {"number"}}
_NEEDS = {Key.TRANSFER: "service", Key.CALL_NUMBER: "number"}


@dataclass(frozen=True)
class KeyMessage:
    """One key pressed on a tablet: the press and the id that makes a repeated delivery harmless."""

    id: str
    window: int
    press: KeyPress


def _fail(problem: str) -> BusProtocolError:
    return BusProtocolError(f"keypad message: {problem}")


def parse_key_json(payload: bytes | str, window: int) -> KeyMessage:
    """The key press in `payload`, received on window `window`'s keypad topic."""
    if not _is_int(window) or not 1 <= window <= 255:
        raise _fail(f"window must be 1-255, not {window!r}")
    doc = _document(_text(payload))
    message_id = doc.get("id")
    if not isinstance(message_id, str) or not 1 <= len(message_id) <= MAX_ID:
        raise _fail(f"id must be text of 1-{MAX_ID} characters, not {message_id!r}")
    key = _key(doc)
    # the service is a digit (its place in the list) or, anything else, taken as the prefix
    service = doc.get("service")
    digit = int(service) if isinstance(service, str) and len(service) == 1 and service in "123456789" else None
    # a field's JSON value as sent: check_press says what is wrong with it
    press = KeyPress(window, key, reason=_reason(doc), minutes=doc.get("minutes"), service_digit=digit,
                     service_letter=service if digit is None else None, number=doc.get("number"))
    try:
        check_press(press)
    except BusProtocolError as e:
        raise _fail(str(e)) from None
    return KeyMessage(message_id, window, press)


def _text(payload: bytes | str) -> str:
    if isinstance(payload, bytes | bytearray):
        try:
            return bytes(payload).decode("utf-8")
        except UnicodeDecodeError as e:
            raise _fail(f"not UTF-8 at byte {e.start}") from None
    if not isinstance(payload, str):
        raise _fail(f"payload must be bytes or text, not {type(payload).__name__}")
    return payload


def _document(text: str) -> dict[str, Any]:
    """The JSON object in `text`, with no field the message does not have."""
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError) as e:  # JSONDecodeError, or an integer of thousands of digits
        raise _fail(f"not JSON ({e})") from None
    if not isinstance(doc, dict):
        raise _fail(f"a JSON object is expected, not {type(doc).__name__}")
    unknown = sorted(set(doc) - set(FIELDS))
    if unknown:
        raise _fail(f"unknown field {', '.join(map(repr, unknown))}; fields are {', '.join(FIELDS)}")
    return doc


def _key(doc: dict[str, Any]) -> Key:
    """The key pressed, when `doc` has the fields it takes and needs."""
    value = doc.get("key")
    try:
        if not isinstance(value, str):
            raise ValueError(value)
        key = Key(value)
    except ValueError:
        raise _fail(f"key must be one of {', '.join(Key)}, not {value!r}") from None
    extra = sorted(set(doc) - {"id", "key"} - _TAKES.get(key, set()))
    if extra:
        raise _fail(f"{key} takes no {', '.join(extra)}")
    if key in _NEEDS and _NEEDS[key] not in doc:
        raise _fail(f"{key} needs {_NEEDS[key]}")
    return key


def _reason(doc: dict[str, Any]) -> PauseReason | None:
    if "reason" not in doc:
        return None
    reason = doc["reason"]
    if not isinstance(reason, str) or reason not in _REASONS:
        raise _fail(f"reason must be one of {', '.join(_REASONS)}, not {reason!r}")
    return _REASONS[reason]


def encode_key_json(message: KeyMessage) -> bytes:
    """The JSON a tablet sends for `message` (the simulator's side)."""
    press = message.press
    check_press(press)
    if not isinstance(message.id, str) or not 1 <= len(message.id) <= MAX_ID:
        raise _fail(f"id must be text of 1-{MAX_ID} characters, not {message.id!r}")
    doc: dict[str, object] = {"id": message.id, "key": press.key.value}
    if press.reason is not None:
        doc["reason"] = PauseReason(press.reason).name.lower()
    if press.minutes is not None:
        doc["minutes"] = press.minutes
    if press.service_digit is not None:
        doc["service"] = str(press.service_digit)
    if press.service_letter is not None:
        doc["service"] = press.service_letter
    if press.number is not None:
        doc["number"] = press.number
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class RepeatFilter:
    """The last `size` message ids seen, so a press delivered twice (MQTT QoS 1) is acted on once."""

    def __init__(self, size: int = 256) -> None:
        self._order: deque[str] = deque()
        self._seen: set[str] = set()
        self.size = size

    def first_time(self, message_id: str) -> bool:
        if message_id in self._seen:
            return False
        self._seen.add(message_id)
        self._order.append(message_id)
        if len(self._order) > self.size:
            self._seen.discard(self._order.popleft())
        return True
