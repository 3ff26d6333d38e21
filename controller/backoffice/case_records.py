"""A callback case as it is stored: the JSON `body` column of the `cases` table, and the
deadlines still to be met."""

from __future__ import annotations

import dataclasses
import datetime as dt
from enum import Enum
from typing import Any

from controller.core.callbacks import Case, CaseKind, CaseSource, CaseState, Transition
from controller.core.case_supervision import overdue

# a moment after every deadline: what `overdue` then lists is what is still to be met
FAR_FUTURE = dt.datetime(9999, 1, 1, tzinfo=dt.timezone.utc)


_DATETIMES = {"opened_at", "callback_due", "rectify_due", "feedback_due", "resolve_due"}
_ENUMS = {"kind": CaseKind, "source": CaseSource, "state": CaseState, "appeal_from": CaseState}


def plain(v: Any) -> Any:
    if isinstance(v, Enum):
        return v.value
    if isinstance(v, dt.datetime):
        return v.isoformat()
    return v


def case_to_json(case: Case) -> dict[str, Any]:
    out = {f.name: plain(getattr(case, f.name)) for f in dataclasses.fields(Case)
           if f.name != "history"}
    out["history"] = [{"at": t.at.isoformat(), "actor": t.actor, "from": plain(t.from_state),
                       "to": plain(t.to_state), "note": t.note} for t in case.history]
    return out


def case_from_json(data: dict[str, Any]) -> Case:
    values = dict(data)
    for name in _DATETIMES:
        if values.get(name) is not None:
            values[name] = dt.datetime.fromisoformat(values[name])
    for name, kind in _ENUMS.items():
        if values.get(name) is not None:
            values[name] = kind(values[name])
    values["history"] = [
        Transition(dt.datetime.fromisoformat(t["at"]), t["actor"],
                   CaseState(t["from"]) if t["from"] else None, CaseState(t["to"]), t["note"])
        for t in data.get("history", [])]
    return Case(**values)


def pending_deadlines(case: Case) -> list[str]:
    """The deadline fields the case has still to meet (none once closed)."""
    return [name for _, name in overdue([case], FAR_FUTURE)]


def next_due(case: Case) -> dt.datetime | None:
    dues = [getattr(case, name) for name in pending_deadlines(case)]
    return min(dues) if dues else None


