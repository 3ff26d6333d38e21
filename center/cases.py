"""Bad-review cases and complaints (差评回访 / 投诉案件) of every hall, as the halls' logs tell
them: opened with the hall's deadlines (by the hall's own working-day calendar, which the centre
has not), moved on by each step, called back or not.

    hall_cases   one row per (hall, case): its state, deadlines, callbacks and last step

The store folds each hall's case events here, in the log's order, when the hall's mark moves
over them (center.store), so a case is never folded twice nor out of order. The centre shows
the cases; working them (assigning, calling back) is the hall's: nothing goes down from here.

    GET /api/v1/cases?hall=&state=&overdue=&at=   the cases, overdue first, then by the next deadline
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import psycopg
from fastapi import APIRouter, Depends, Query
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

# centre schema 4 (province, cases): the halls' cases
MIGRATION = """
    CREATE TABLE hall_cases (
        hall_id text NOT NULL REFERENCES halls (hall_id),
        case_id text NOT NULL,
        kind text NOT NULL,
        state text NOT NULL,
        appeal_from text,
        opened_at text NOT NULL,
        source text,
        window_no integer,
        ticket text,
        staff text,
        grade text,
        due jsonb NOT NULL DEFAULT '{}',
        callbacks integer NOT NULL DEFAULT 0,
        reached boolean,
        last_callback_at text,
        justified boolean,
        updated_at text NOT NULL,
        last_event_id bigint NOT NULL,
        PRIMARY KEY (hall_id, case_id)
    );
    CREATE INDEX hall_cases_open ON hall_cases (hall_id) WHERE state <> 'closed';
"""

# the workflow's states in their order (controller.core.callbacks.STATE_ORDER); 申诉 (appealed)
# stands where the case was when appealed
STATE_ORDER = ("open", "assigned", "called_back", "verified", "rectified", "feedback_given", "follow_up", "closed")
# per kind: the deadline met by a callback, and the one met by rectifying (or resolving)
DEADLINES = {"bad_review": ("callback_due", "rectify_due"), "complaint": ("feedback_due", "resolve_due")}
CASE_KINDS = ("case_opened", "case_assigned", "callback_recorded", "case_verified", "case_rectified",
              "feedback_given", "follow_up_recorded", "case_closed", "case_appealed", "appeal_decided")


def fold(conn: psycopg.Connection, hall: str, events: Sequence[dict[str, Any]]) -> None:
    """The case events among `events` (in the log's order) into `hall_cases`, in the caller's
    transaction."""
    for e in events:
        data = e.get("data") or {}
        case = data.get("case")
        if e.get("kind") not in CASE_KINDS or not isinstance(case, str):
            continue
        if e["kind"] == "case_opened":
            conn.execute(
                "INSERT INTO hall_cases (hall_id, case_id, kind, state, opened_at, source, window_no, ticket, "
                "staff, grade, due, updated_at, last_event_id) VALUES (%s, %s, %s, 'open', %s, %s, %s, %s, %s, "
                "%s, %s, %s, %s) ON CONFLICT DO NOTHING",
                (hall, case, data.get("case_kind") or data.get("kind"), e["at"], data.get("source"), e.get("window"),
                 e.get("ticket"), data.get("staff"), data.get("grade"), Jsonb(data.get("due") or {}), e["at"], e["id"]))
            continue
        _step(conn, hall, case, e, data)


def _step(conn: psycopg.Connection, hall: str, case: str, e: dict[str, Any], data: dict[str, Any]) -> None:
    to_state = data.get("to_state")
    sets = ["state = COALESCE(%s, state)", "updated_at = %s", "last_event_id = %s"]
    args: list[Any] = [to_state, e["at"], e["id"]]
    if to_state == "appealed":
        sets.append("appeal_from = %s")
        args.append(data.get("from_state"))
    if e["kind"] == "callback_recorded":
        sets += ["callbacks = callbacks + 1", "reached = %s", "last_callback_at = %s"]
        args += [data.get("reached"), e["at"]]
    elif e["kind"] == "case_verified":
        sets.append("justified = %s")
        args.append(data.get("justified"))
    elif e["kind"] == "appeal_decided" and data.get("upheld"):
        sets.append("justified = false")  # an upheld appeal: the review was not justified
    conn.execute(f"UPDATE hall_cases SET {', '.join(sets)} "  # noqa: S608 (fixed column names)
                 "WHERE hall_id = %s AND case_id = %s AND last_event_id < %s", (*args, hall, case, e["id"]))


def _when(text: object) -> dt.datetime | None:
    try:
        when = dt.datetime.fromisoformat(text) if isinstance(text, str) else None
    except ValueError:
        return None
    return when if when is not None and when.tzinfo is not None else None


def overdue(row: dict[str, Any], now: dt.datetime) -> list[str]:
    """The deadlines the case has passed at `now` unmet, as the hall judges them
    (controller.core.case_supervision.overdue)."""
    first, second = DEADLINES.get(row["kind"], DEADLINES["bad_review"])
    state = row["appeal_from"] if row["state"] == "appealed" and row["appeal_from"] else row["state"]
    progress = STATE_ORDER.index(state) if state in STATE_ORDER else 0
    out = []
    due = _when(row["due"].get(first))
    if due is not None and now > due and progress < STATE_ORDER.index("called_back"):
        out.append(first)
    due = _when(row["due"].get(second))
    done = (progress >= STATE_ORDER.index("rectified")
            or row["justified"] is False and progress >= STATE_ORDER.index("verified"))
    if due is not None and now > due and not done:
        out.append(second)
    return out


def view(row: dict[str, Any], now: dt.datetime) -> dict[str, Any]:
    late = overdue(row, now)
    unmet = [n for n in DEADLINES.get(row["kind"], ()) if n in row["due"] and n not in late]
    return {
        "hall_id": row["hall_id"], "case": row["case_id"], "kind": row["kind"], "state": row["state"],
        "opened_at": row["opened_at"], "source": row["source"], "window": row["window_no"],
        "ticket": row["ticket"], "staff": row["staff"], "grade": row["grade"], "due": row["due"],
        "overdue": late, "next_due": min((row["due"][n] for n in unmet), default=None),
        "callbacks": {"count": row["callbacks"], "reached": row["reached"], "last_at": row["last_callback_at"]},
        "justified": row["justified"], "updated_at": row["updated_at"],
    }


def listed(conn: psycopg.Connection, hall: str | None, state: str | None) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT * FROM hall_cases WHERE (%(hall)s::text IS NULL OR hall_id = %(hall)s) "
            "AND (%(state)s::text IS NULL OR state = %(state)s) ORDER BY hall_id, opened_at, case_id",
            {"hall": hall, "state": state}).fetchall()


def overdue_counts(conn: psycopg.Connection, now: dt.datetime) -> dict[str, int]:
    """Per hall, its cases past a deadline at `now` (closed ones never are)."""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute("SELECT * FROM hall_cases WHERE state <> 'closed'").fetchall()
    out: dict[str, int] = {}
    for row in rows:
        if overdue(row, now):
            out[row["hall_id"]] = out.get(row["hall_id"], 0) + 1
    return out


def router(database: Callable[[], Iterator[Any]], error: Callable[[int, str, str], Exception]) -> APIRouter:
    r = APIRouter()

    @r.get("/api/v1/cases")
    def cases(hall: str | None = None, state: str | None = None, overdue: bool | None = None,
              at: str | None = Query(None, description="judge deadlines at this time (ISO 8601 with its "
                                                       "offset); the centre's clock when left out"),
              conn=Depends(database)) -> dict[str, Any]:
        now = dt.datetime.now(dt.timezone.utc) if at is None else _when(at)
        if now is None:
            raise error(422, "invalid_time", "时间须为带时区的 ISO 8601 格式，如 2026-11-24T09:00:00+08:00")
        if state is not None and state not in (*STATE_ORDER, "appealed"):
            raise error(422, "invalid_state", f"案件状态须为 {'、'.join((*STATE_ORDER, 'appealed'))} 之一")
        shown = [view(row, now) for row in listed(conn, hall, state)]
        if overdue is not None:
            shown = [c for c in shown if bool(c["overdue"]) == overdue]
        # overdue first, then by the next deadline to meet
        far = dt.datetime.max.replace(tzinfo=dt.timezone.utc)
        shown.sort(key=lambda c: (not c["overdue"], _when(c["next_due"]) or far, c["hall_id"], c["case"]))
        return {"at": now.isoformat(), "cases": shown}

    return r
