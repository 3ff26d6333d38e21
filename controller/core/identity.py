"""The numbers of the cards an ID-card reader reads, each checked as its own kind; birth date,
masking, and the citizen a real-name ticket carries.

- resident, 居民身份证: 18 characters, GB 11643 (6-digit region, YYYYMMDD birth, 3-digit
  sequence, MOD 11-2 check digit, X for 10).
- residence_permit, 港澳台居民居住证 (J card): the same, region 810000 Hong Kong, 820000
  Macau, 830000 Taiwan.
- foreign_2023, 外国人永久居留身份证 2023 (Y card): the same 18 with first digit 9 (then a
  2-digit region, a 3-digit country, YYYYMMDD, a 3-digit sequence and the check digit).
- foreign_2017, 外国人永久居留身份证 2017 (I card): 15 characters, the 3-letter nationality
  (ISO 3166-1), a 4-digit region, YYMMDD birth, a sequence digit (odd for men), a check digit.

The 2017 card's check digit is the machine-readable passport one (ICAO 9303: weights 7 3 1,
A = 10 … Z = 35, sum mod 10) over the first 14 characters. Its birth year has two digits: a
2017 card was issued from 2017 to 2023, so a holder born in 20YY has YY at most 23;
`birth_date` reads 00-23 as 20YY (a holder born 1900-1923 would read as a child and miss the
elderly priority: the number alone cannot tell). A typed or scanned number
says which kind it is by its shape; a number read from a card is checked as that card's kind.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Callable

from controller.core.errors import HallError

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK = "10X98765432"
_SHAPE = re.compile(r"^\d{17}[\dX]$")
_SHAPE_2017 = re.compile(r"^[A-Z]{3}\d{12}$")
_PERMIT_REGIONS = ("81", "82", "83")  # Hong Kong, Macau, Taiwan residents' residence permits
_MRZ_WEIGHTS = (7, 3, 1)
_LAST_2017_CARD_YEAR = 23  # the 2017 card was replaced by the 2023 one
# GB/T 2260 province codes, the first two digits of every region (000000 is none of them)
_PROVINCES = frozenset("11 12 13 14 15 21 22 23 31 32 33 34 35 36 37 41 42 43 44 45 46 50 51 "
                       "52 53 54 61 62 63 64 65 71 81 82 83".split())


class IdKind(StrEnum):
    """Which card's number: one check per kind."""

    RESIDENT = "resident"
    RESIDENCE_PERMIT = "residence_permit"
    FOREIGN_2017 = "foreign_2017"
    FOREIGN_2023 = "foreign_2023"


WRONG_NUMBER = {
    IdKind.RESIDENT: "身份证号码不正确",
    IdKind.RESIDENCE_PERMIT: "港澳台居民居住证号码不正确",
    IdKind.FOREIGN_2017: "外国人永久居留身份证号码不正确（15 位：3 位字母和 12 位数字）",
    IdKind.FOREIGN_2023: "外国人永久居留身份证号码不正确（18 位，以 9 开头）",
}


def check_digit(first17: str) -> str:
    """The 18th character of an ID number whose first 17 digits are given."""
    total = sum(int(c) * w for c, w in zip(first17, _WEIGHTS, strict=True))
    return _CHECK[total % 11]


def mrz_check_digit(text: str) -> str:
    """ICAO 9303 check digit: digits as themselves, A-Z as 10-35, weights 7 3 1, sum mod 10."""
    total = sum((int(ch) if ch.isdigit() else ord(ch) - ord("A") + 10) * _MRZ_WEIGHTS[i % 3]
                for i, ch in enumerate(text))
    return str(total % 10)


def normalise(id_number: str) -> str:
    return id_number.strip().upper()


def kind_of(id_number: str) -> IdKind:
    """The kind a number's shape says it is (a typed or scanned number names no card)."""
    n = normalise(id_number)
    if len(n) == 15 and n[:1].isalpha():
        return IdKind.FOREIGN_2017
    if n.startswith("9"):
        return IdKind.FOREIGN_2023
    if n.startswith(_PERMIT_REGIONS):
        return IdKind.RESIDENCE_PERMIT
    return IdKind.RESIDENT


def _province(n: str, kind: IdKind) -> str:
    """The province digits of the number's region, where the card puts them."""
    return {IdKind.FOREIGN_2017: n[3:5], IdKind.FOREIGN_2023: n[1:3]}.get(kind, n[:2])


def is_valid(id_number: str, kind: IdKind | None = None, today: dt.date | None = None) -> bool:
    """True when the number is a well-formed number of `kind` (by default, of the kind its
    shape says): the right length and characters, a real region, a real birth date (not after
    `today`, when given) and the right check digit."""
    n = normalise(id_number)
    kind = kind_of(n) if kind is None else IdKind(kind)
    if kind is IdKind.FOREIGN_2017:
        if not _SHAPE_2017.match(n) or mrz_check_digit(n[:14]) != n[14]:
            return False
    else:
        if not _SHAPE.match(n) or check_digit(n[:17]) != n[17]:
            return False
        first = {IdKind.FOREIGN_2023: n[0] == "9", IdKind.RESIDENCE_PERMIT: n.startswith(_PERMIT_REGIONS),
                 IdKind.RESIDENT: n[0] in "1234567" and not n.startswith(_PERMIT_REGIONS)}
        if not first[kind]:
            return False
        if kind is IdKind.RESIDENCE_PERMIT and n[2:6] != "0000":  # 810000, 820000, 830000
            return False
    if _province(n, kind) not in _PROVINCES:
        return False
    born = birth_date(n)
    return born is not None and (today is None or born <= today)


def birth_date(id_number: str) -> dt.date | None:
    """The birth date in the number (a 2017 foreign card's two-digit year as in the module)."""
    n = normalise(id_number)
    try:
        if len(n) == 15:
            yy = int(n[7:9])
            century = 2000 if yy <= _LAST_2017_CARD_YEAR else 1900
            return dt.datetime.strptime(f"{century + yy}{n[9:13]}", "%Y%m%d").date()
        return dt.datetime.strptime(n[6:14], "%Y%m%d").date()
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
            key: Callable[[str], str], kind: IdKind | None = None,
            today: dt.date | None = None) -> Citizen:
    """Check an ID number (typed or read from a card) and make the citizen of a ticket.

    `kind` is the card's, when the number was read from one; a typed number is checked as
    the kind its shape says. `seal` encrypts and `key` hashes; both are given by the caller,
    so this stays pure; `today` (the hall's day) refuses a birth date after it.
    """
    n = normalise(id_number)
    kind = kind_of(n) if kind is None else IdKind(kind)
    born = birth_date(n)
    if born is None or not is_valid(n, kind, today):
        raise HallError("invalid_id_number", WRONG_NUMBER[kind])
    name = name.strip() if name else None
    return Citizen(key=key(n), sealed=seal(n, name), id_masked=mask_id(n),
                   name_masked=mask_name(name) if name else None, birth_date=born)
