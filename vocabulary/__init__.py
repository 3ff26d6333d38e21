"""The hall's shared words: grades, grade channels and the system actor.

Defined once here because three parties speak them and may not import each other: the
hall core (`controller`), the device drivers (`drivers`) and, later, the district centre.
Plain values only: no I/O, and nothing imported from `controller` or `drivers`.
"""

from vocabulary.actors import SYSTEM
from vocabulary.channels import GradeChannel, SYSTEM_DEFAULT
from vocabulary.grades import (
    BAD_LABELS, GRADES, LABELS, Grade, by_code, by_label, is_bad_review,
)

__all__ = ["BAD_LABELS", "GRADES", "LABELS", "SYSTEM", "SYSTEM_DEFAULT", "Grade", "GradeChannel",
           "by_code", "by_label", "is_bad_review"]
