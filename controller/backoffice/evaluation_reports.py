"""好差评 figures: evaluation and satisfaction per window, staff member, service, day or month,
and the graded visits exported with an upload interface's code table.

Over the finished visits (tickets with status `finished`) whose `day` lies in the range:

- **evaluated**: visits the citizen graded (`grade_channel` anything but `system_default`);
  the five grade counts are over these real evaluations only.
- **default_graded**: visits the system graded after the evaluation period
  (`system_default`); counted apart and never mixed with real evaluations (hall rules).
- **evaluation rate** = evaluated / visits finished.
- **satisfaction rate** = (非常满意 + 满意 + 基本满意) / evaluated: system defaults are
  excluded from both sides. None when the group has no real evaluation.
- **bad reviews** (不满意, 非常不满意, real evaluations only), real-name (the ticket has a masked
  ID) and anonymous apart.
- **prompts cut short**: visits whose pad prompt ended before a grade or its timeout (the
  window's next visit finished first; in older logs, a pause or logout), for the supervisor:
  evaluation is the citizen's, and nobody may influence it (国办发〔2019〕51号).

Where the database has the case desk's `cases` table (controller.backoffice.cases), for the group's
bad-review cases (those opened for the group's visits): **callback rate** = closed / cases
(case_supervision.callback_rate, the 100% of 001 6.5.2.1) and **rectification rate** = cases
rectified or beyond (整改, 反馈, 追评, 办结; an appealed case by the state it was appealed from) /
cases; and `overdue_cases`, the ids of the group's cases past a deadline at `now`, complaints
opened in the range against the group included. By staff member also the assessment points
lost in the month of `day_to` (case_supervision.assessment_points over every case of that
member: 1 per verified bad review, 2 per complaint, 10 at most; 003 考核制度 (5)) and the
satisfaction points (100% → 10, ≥90% → 9, ≥80% → 7, below → 5; 002 考核).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlite_utils

from controller.backoffice.case_records import case_from_json
from controller.backoffice import day_figures
from controller.backoffice.export_words import to_csv, to_xlsx  # noqa: F401  (the reports' files: er.to_csv)
from controller.core.callbacks import STATE_ORDER, Case, CaseState
from controller.core.case_supervision import assessment_points, callback_rate, overdue
from controller.core.figures import satisfaction_points
from controller.core.hall import EVALUATION_GRADES
from controller.backoffice.day_figures import Figures, span_figures
from controller.store import history
from vocabulary import SYSTEM_DEFAULT

SATISFIED = day_figures.SATISFIED  # 非常满意, 满意, 基本满意
GROUPINGS = ("window", "staff", "service", "day", "month")
# the column (or expression) each grouping is on; tickets and cases name them alike
_KEY = {"window": "window", "staff": "staff_id", "service": "service", "day": "day",
        "month": "substr(day, 1, 7)"}
# the same of a visit's ticket, `t`, beside its case
_CASE_KEY = {"window": "t.window", "staff": "t.staff_id", "service": "t.service", "day": "t.day",
             "month": "substr(t.day, 1, 7)"}

# 好差评 grade codes of the upload interfaces: the one table of them. The five grades are those
# of GB/T 39734-2020 (政务服务"一次一评""一事一评"工作规范, 7.3) and GB/T 39735-2020 (政务服务
# 评价工作指南); neither numbers them for an upload. The provincial 好差评 interfaces, as they
# publish it, code 非常满意 = 5 … 非常不满意 = 1: that is the national export and the default
# (`[export] grade_codes`). "reversed" (非常满意 = 1 … 非常不满意 = 5, the pads' key order)
# stays for a platform that asks for it. (GB/T 39046-2020 is the service platform's basic
# data specification, not a grade table.)
GRADE_CODES: dict[str, dict[str, int]] = {
    "national": {"非常满意": 5, "满意": 4, "基本满意": 3, "不满意": 2, "非常不满意": 1},
    "reversed": {"非常满意": 1, "满意": 2, "基本满意": 3, "不满意": 4, "非常不满意": 5},
}
DEFAULT_GRADE_CODES = "national"
assert all(set(codes) == set(EVALUATION_GRADES) for codes in GRADE_CODES.values())
DEFAULT_CHANNEL_CODES = {"pad": "1", "tablet": "2", "system_default": "9"}


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _rectified(case: Case) -> bool:
    state = case.appeal_from if case.state is CaseState.APPEALED and case.appeal_from else case.state
    return state in STATE_ORDER and STATE_ORDER.index(state) >= STATE_ORDER.index(CaseState.RECTIFIED)




def _in_key_order(key: Any) -> tuple[int, Any]:
    """SQLite's order of the keys: none first, then numbers, then text."""
    if key is None:
        return (0, 0)
    return (1, key) if isinstance(key, int | float) else (2, key)


def evaluation_report(db: sqlite_utils.Database, day_from: dt.date, day_to: dt.date, by: str,
                      now: dt.datetime | None = None,
                      figures: dict[Any, Figures] | None = None) -> list[dict[str, Any]]:
    """One row per group of the finished visits from `day_from` to `day_to` (inclusive).

    `by` is window, staff, service, day or month; the row's first key is that name. Overdue
    cases are those past a deadline at `now` (the hall's clock; the wall clock if left out).
    The visits are counted from the days' figures (controller.backoffice.day_figures): `figures` when the
    caller has them already (the hall report), else read here; the cases as they are now.
    """
    if by not in GROUPINGS:
        raise ValueError(f"by must be one of {', '.join(GROUPINGS)}, not {by!r}")
    span = [day_from.isoformat(), day_to.isoformat()]
    if figures is None:
        figures = span_figures(db, None, day_from, day_to, by)
    groups = {k: f for k, f in figures.items() if f["visits"]}

    has_cases = history.has_cases(db)
    bad_cases: dict[Any, list[Case]] = {}
    complaints: dict[Any, list[Case]] = {}
    if has_cases:
        now = now or dt.datetime.now(dt.timezone.utc)
        for key, body in history.bad_review_cases_by(db, _CASE_KEY[by], span):
            bad_cases.setdefault(key, []).append(case_from_json(body))
        for key, body in history.complaints_by(db, _KEY[by], span):
            complaints.setdefault(key, []).append(case_from_json(body))
    month = day_to.strftime("%Y-%m")

    rows: list[dict[str, Any]] = []
    for key in sorted(groups, key=_in_key_order):
        f = groups[key]
        row: dict[str, Any] = {
            by: key,
            "visits": f["visits"],
            **{g: f[g] for g in EVALUATION_GRADES},
            "evaluated": f["evaluated"],
            "default_graded": f["default_graded"],
            "ungraded": f["ungraded"],
            "evaluation_rate": _ratio(f["evaluated"], f["visits"]),
            "satisfaction_rate": _ratio(f["satisfied"], f["evaluated"]),
            "bad_reviews_real_name": f["bad_reviews_real_name"],
            "bad_reviews_anonymous": f["bad_reviews_anonymous"],
            "prompts_cut_short": f["prompts_cut_short"],
        }
        if has_cases:
            mine = bad_cases.get(key, [])
            closed, total, rate = callback_rate(mine)
            theirs = mine + complaints.get(key, [])
            row.update({
                "bad_review_cases": total,
                "callback_rate": round(rate, 4) if rate is not None else None,
                "rectification_rate": _ratio(sum(1 for c in mine if _rectified(c)), len(mine)),
                "overdue_cases": sorted({c.id for c, _ in overdue(theirs, now)}),  # type: ignore[arg-type]
            })
            if by == "staff":
                row["assessment_month"] = month
                row["assessment_points"] = assessment_points(
                    [case_from_json(b) for b in history.cases_of_staff(db, key)], key, month)
        if by == "staff":
            row["satisfaction_points"] = satisfaction_points(f["satisfied"], f["evaluated"])
        rows.append(row)
    return rows


def grade_export(db: sqlite_utils.Database, day_from: dt.date, day_to: dt.date,
                 mapping: str = DEFAULT_GRADE_CODES,
                 channel_codes: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """One row per graded visit, the grade and channel mapped to an upload interface's codes.

    `mapping` names a table of `GRADE_CODES`: national (非常满意 = 5 … 非常不满意 = 1) or
    reversed (非常满意 = 1 … 非常不满意 = 5). A channel missing from `channel_codes` is a
    ValueError: a code is never guessed. Identity leaves only masked.
    """
    if mapping not in GRADE_CODES:
        raise ValueError(f"mapping must be one of {', '.join(GRADE_CODES)}, not {mapping!r}")
    codes = GRADE_CODES[mapping]
    channels = DEFAULT_CHANNEL_CODES if channel_codes is None else channel_codes
    rows = []
    for t in history.graded_visits(db, [day_from.isoformat(), day_to.isoformat()]):
        if t["grade_channel"] not in channels:
            raise ValueError(f"no upload code for the evaluation channel {t['grade_channel']!r}")
        rows.append({
            "ticket": t["id"], "day": t["day"], "service": t["service"], "window": t["window"],
            "staff": t["staff_id"], "finished_at": t["finished_at"], "graded_at": t["graded_at"],
            "grade": t["grade"], "grade_code": codes[t["grade"]],
            "channel": t["grade_channel"], "channel_code": channels[t["grade_channel"]],
            "system_default": t["grade_channel"] == SYSTEM_DEFAULT,
            "id_masked": t["id_masked"], "name_masked": t["name_masked"],
        })
    return rows
