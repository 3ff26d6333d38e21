"""Resident ID numbers (居民身份证号码, GB 11643): check digit, birth date, masking,
and the citizen a real-name ticket carries."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Callable

from controller.core.errors import HallError

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK = "10X98765432"
_SHAPE = re.compile(r"^\d{17}[\dX]$")


def check_digit(first17: str) -> str:
    """The 18th character of an ID number whose first 17 digits are given."""
    total = sum(int(c) * w for c, w in zip(first17, _WEIGHTS, strict=True))
    return _CHECK[total % 11]


def normalise(id_number: str) -> str:
    return id_number.strip().upper()


def is_valid(id_number: str) -> bool:
    """True when the number has 18 characters, a real birth date and the right check digit."""
    n = normalise(id_number)
    if not _SHAPE.match(n) or check_digit(n[:17]) != n[17]:
        return False
    return birth_date(n) is not None


def birth_date(id_number: str) -> dt.date | None:
    try:
        return dt.datetime.strptime(id_number[6:14], "%Y%m%d").date()
    except ValueError:
        return None


def age_on(born: dt.date, day: dt.date) -> int:
    return day.year - born.year - ((day.month, day.day) < (born.month, born.day))


def mask_id(id_number: str) -> str:
    """5001**********123X: the region's first four and the last four stay."""
    n = normalise(id_number)
    return n[:4] + "*" * (len(n) - 8) + n[-4:]


def mask_name(name: str) -> str:
    """张* / 欧阳** : the family name's first character stays."""
    name = name.strip()
    return name[:1] + "*" * max(len(name) - 1, 1) if name else ""


_MOBILE = re.compile(r"1[3-9]\d{9}")
_LANDLINE = re.compile(r"0\d{2,3}-?\d{7,8}")


def normalise_phone(phone: str | None) -> str | None:
    """An 11-digit mainland mobile or a landline with its area code, as digits; None if neither."""
    p = re.sub(r"[\s()]", "", phone or "")
    if p.startswith("+86"):
        p = p[3:]
    return p if _MOBILE.fullmatch(p) or _LANDLINE.fullmatch(p) else None


def mask_phone(phone: str) -> str:
    """138****1234; a landline keeps its first three and last four digits the same way."""
    digits = phone.replace("-", "")
    return digits[:3] + "****" + digits[-4:] if len(digits) > 7 else "****"


@dataclass(frozen=True)
class Citizen:
    """持证人: who holds a real-name ticket, as the hall may keep it.

    The ID number itself is never here: `key` is a keyed hash that finds the
    same person again (one waiting ticket per service), `sealed` is the
    encrypted identity only a callback officer's unmasked view opens.
    """

    key: str
    sealed: str
    id_masked: str
    name_masked: str | None
    birth_date: dt.date
    phone_sealed: str | None = None  # for the callback of a bad review, sealed like the rest


def citizen(id_number: str, name: str | None, seal: Callable[[str, str | None], str],
            key: Callable[[str], str]) -> Citizen:
    """Check an ID number (typed or read from a card) and make the citizen of a ticket.

    `seal` encrypts and `key` hashes; both are given by the caller, so this stays pure.
    """
    n = normalise(id_number)
    if not is_valid(n):
        raise HallError("invalid_id_number")
    name = name.strip() if name else None
    return Citizen(key=key(n), sealed=seal(n, name), id_masked=mask_id(n),
                   name_masked=mask_name(name) if name else None, birth_date=birth_date(n))
