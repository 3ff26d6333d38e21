"""呼叫器: a key pressed on a counter keypad (RS-485 bus or tablet over MQTT) becomes a command
for that window, acting for the staff logged in there."""

from __future__ import annotations

import logging
from typing import Callable

from controller.core import commands as c
from controller.core.errors import HallError
from controller.core.priority import KEYPAD_CALL_REASON
from controller.runtime.hallcontroller import HallController
from drivers.counter_keypad import Key, KeyPress, PauseReason

log = logging.getLogger(__name__)

# A pause from a keypad without a duration: the hall's short absence.
DEFAULT_PAUSE_MINUTES = 10
# The words the hall records for a keypad's pause code (the codec lets only these codes through).
_PAUSE_LABELS = {reason.value: reason.label for reason in PauseReason}


def command_for(ctrl: HallController, window: int, press: KeyPress) -> c.Command | None:
    """The command a key means at `window`; None for keys another path handles."""
    key = press.key
    if key is Key.CALL_NEXT:
        return c.CallNext(window)
    if key is Key.RECALL:
        return c.Recall(window)
    if key is Key.NO_SHOW:
        return c.NoShow(window)
    if key is Key.FINISH:
        return c.Finish(window)
    if key is Key.RESUME:
        return c.Resume(window)
    if key is Key.PAUSE:
        reason = _PAUSE_LABELS[press.reason] if press.reason else PauseReason.OTHER.label
        return c.Pause(window, reason, press.minutes or DEFAULT_PAUSE_MINUTES)
    if key is Key.TRANSFER:
        return c.Transfer(window, _service(ctrl, press))
    if key is Key.CALL_NUMBER:
        # a keypad has no text: its call-number key means 过号返回 (controller.core.priority)
        return c.CallNumber(window, press.number or "", KEYPAD_CALL_REASON)
    if key is Key.START_EVALUATION:
        return c.StartEvaluation(window)
    return None


def _service(ctrl: HallController, press: KeyPress) -> str:
    """A transfer names its service by letter, or by digit: its place in the hall's list."""
    if press.service_letter:
        return press.service_letter
    prefixes = list(ctrl.hall.services)
    if press.service_digit and press.service_digit <= len(prefixes):
        return prefixes[press.service_digit - 1]
    raise HallError("unknown_service", f"没有第 {press.service_digit} 项业务")


def key_pressed(ctrl: HallController, window: int, press: KeyPress,
                tell: Callable[[int, str], None] | None = None) -> None:
    """Act on a key at `window`; a refusal goes back to the keypad's screen via `tell`."""
    def act() -> None:  # on the hall thread: whose window, and the command, in one step
        w = ctrl.state.windows.get(window)
        staff = w.staff_id if w else None
        actor = f"staff:{staff}@keypad" if staff else f"keypad:{window}"
        try:
            cmd = command_for(ctrl, window, press)
        except HallError as e:
            ctrl.refuse(actor, press.key.value, {"window": window}, e)
            raise
        if cmd is None:
            log.info("window %s: key %s is not for the calling path", window, press.key)
            return
        ctrl.execute(cmd, actor)

    try:
        ctrl.run(act)
    except HallError as e:
        log.info("window %s: %s refused: %s", window, press.key, e.code)
        if tell:
            tell(window, e.message)


def grade_given(ctrl: HallController, window: int, grade: str, channel: str,
                tags: tuple[str, ...] = ()) -> None:
    """A grade pressed on the window's pad. A press with no visit to grade (a second press,
    a pad nobody asked) is refused, and the refusal is in the audit log. Returns once the
    grade or its refusal is on disk; raises when neither could be written (a full disk), and
    the counter bus then does not acknowledge the press, so the pad sends it again."""
    try:
        ctrl.execute(c.Evaluate(window, grade, channel, tuple(tags)), f"pad:{window}")
    except HallError as e:
        log.info("window %s: grade %s refused: %s", window, grade, e.code)
