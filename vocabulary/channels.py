"""How a grade was given (评价渠道): the pad's keys, a tablet, or the hall's default."""

from __future__ import annotations

from enum import StrEnum


class GradeChannel(StrEnum):
    PAD = "pad"
    TABLET = "tablet"
    # the hall filled the grade in itself after the evaluation period: never a real
    # evaluation, never a bad review (Guangdong: 7 days, 基本满意)
    SYSTEM_DEFAULT = "system_default"


SYSTEM_DEFAULT = GradeChannel.SYSTEM_DEFAULT.value
