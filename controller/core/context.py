"""What a rule works on: the hall as configured, its state, the moment, and what the command did.

Every rule of the engine is a function of a `Context` and its command, so a reader follows a
command from `engine.HANDLERS` into its rule by name."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from controller.core.hall import Hall
from controller.core.model import HallState
from controller.core.outcome import Outcome


@dataclass
class Context:
    hall: Hall
    state: HallState
    now: dt.datetime
    out: Outcome
