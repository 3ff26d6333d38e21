"""好差评: the five grades of GB/T 39734-2020 (7.3), best first, and which are bad reviews.

`code` is the pads' key (1 非常满意 … 5 非常不满意), the order the keypads and the tablets
send; an upload's code table is another matter (controller.backoffice.evaluation_reports.GRADE_CODES).
"""

from __future__ import annotations

from dataclasses import dataclass

from vocabulary.channels import SYSTEM_DEFAULT


@dataclass(frozen=True)
class Grade:
    code: int
    label: str
    # 差评 (001 6.5.1.1): a bad review, to be called back and rectified when given by name
    is_bad: bool


GRADES: tuple[Grade, ...] = (
    Grade(1, "非常满意", False),
    Grade(2, "满意", False),
    Grade(3, "基本满意", False),
    Grade(4, "不满意", True),
    Grade(5, "非常不满意", True),
)
LABELS: tuple[str, ...] = tuple(g.label for g in GRADES)
BAD_LABELS: tuple[str, ...] = tuple(g.label for g in GRADES if g.is_bad)
_BY_LABEL = {g.label: g for g in GRADES}
_BY_CODE = {g.code: g for g in GRADES}


def by_label(label: object) -> Grade | None:
    """The grade named `label`, None for anything else."""
    return _BY_LABEL.get(label) if isinstance(label, str) else None


def by_code(code: object) -> Grade | None:
    """The grade of the pads' key `code` (1-5), None for anything else."""
    if isinstance(code, bool) or not isinstance(code, int):
        return None
    return _BY_CODE.get(code)


def is_bad_review(label: object, channel: object) -> bool:
    """Whether a grade given through `channel` is a bad review: a bad grade a person gave.
    The one place this is decided; the `ticket_evaluated` event carries the answer."""
    grade = by_label(label)
    return grade is not None and grade.is_bad and channel != SYSTEM_DEFAULT
