"""案件台: the hall's callback and complaint cases, on the controller's database.

The workflow itself is pure (`controller.core.callbacks`); this module joins it
to the running hall:

- a bad review (不满意 / 非常不满意, never a `system_default` grade) becomes a
  callback case when it was given by name, with the ticket's sealed identity
  and phone; an anonymous one is a row in `anonymous_bad_reviews`, counted in
  the figures, with no case (nobody to call back);
- complaints from the 办不成事 window, the phone or the comment box;
- every transition is an audit row (`case_<verb>`), every look at a citizen's
  unmasked identity too (`case_personal_data_viewed`);
- deadlines count working days in the hall's calendar; a deadline running into
  a year the calendar does not know is an audit row `calendar_year_missing`
  (Monday to Friday are used meanwhile), never a crash.

ID numbers and phone numbers exist here only sealed (`ctrl.sealer`) and, when
shown, masked; the unmasked view is the only way to read them.
"""

from __future__ import annotations

import builtins
import datetime as dt
import json
import logging
from typing import Any, Callable

from controller.core import identity
from controller.backoffice.case_records import FAR_FUTURE, case_from_json, case_to_json, next_due, plain
from controller.core.callbacks import (
    STATE_LABELS, Appeal, Assign, Case, CaseError, CaseKind, CaseRules, CaseSource,
    CaseState, Close, Command, DecideAppeal, FollowUp, GiveFeedback, OpenCase, RecordCallback,
    Rectify, TRANSITIONS, Verify, apply, open_bad_review,
)
from controller.core.case_supervision import callback_rate, overdue
from controller.core.errors import Category, HallError
from controller.core.events import TICKET_EVALUATED, Event, TicketEvaluated, from_row
from controller.core.hall import Deadline
from controller.core.workdays import WorkCalendar
from controller.runtime.hallcontroller import HallController
from controller.security.privacy import PURGED, IdentitySealer
from controller.store import casebook
from vocabulary import SYSTEM

log = logging.getLogger(__name__)

# the case commands by the names the API and the pages use for them
ACTIONS: dict[type, str] = {
    Assign: "assign", RecordCallback: "callback", Verify: "verify", Rectify: "rectify",
    GiveFeedback: "feedback", FollowUp: "follow-up", Close: "close", Appeal: "appeal",
    DecideAppeal: "appeal-decision",
}
_ID_PREFIX = {CaseKind.BAD_REVIEW: "HP", CaseKind.COMPLAINT: "TS"}  # 差评 / 投诉

# mainland mobile: 1[3-9] and 9 digits; landline: area code 0xx / 0xxx, then 7 or 8 digits

_VERB: dict[type, str] = {
    Assign: "assign", RecordCallback: "callback", Verify: "verify", Rectify: "rectify",
    GiveFeedback: "feedback", FollowUp: "follow_up", Close: "close", Appeal: "appeal",
    DecideAppeal: "appeal_decision",
}

DESK_CODES: dict[str, tuple[Category, str]] = {
    "invalid_phone": (Category.INVALID, "电话号码不正确：手机号 11 位，固定电话请带区号"),
    "unknown_staff_member": (Category.NOT_FOUND, "没有这个工作人员"),
    "reviewer_not_you": (Category.FORBIDDEN, "复核人只能是登录的本人"),
}


class DeskError(CaseError):
    """A refusal of the case desk that the pure workflow has no code for."""

    codes = DESK_CODES


# --- phone numbers ---------------------------------------------------------------

def no_contact(case: Case) -> bool:
    """无联系方式: a real-name bad review whose visit left no phone, so nobody can call back."""
    return (case.kind is CaseKind.BAD_REVIEW and case.identity_sealed is not None
            and case.phone_sealed is None)


def normalise_phone(phone: str) -> str:
    """An 11-digit mobile or a landline with its area code; DeskError otherwise."""
    checked = identity.normalise_phone(phone)
    if checked is None:
        raise DeskError("invalid_phone")
    return checked


class CaseDesk:
    """The cases of one running hall. Every method reads and writes on the hall thread
    (`ctrl.run`), so a case is opened in order with the commands around it."""

    def __init__(self, ctrl: HallController, calendar: WorkCalendar, rules: CaseRules) -> None:
        self.ctrl = ctrl
        self.calendar = calendar
        self.rules = rules
        self._unsubscribe: Any = None
        # a bad review the desk failed to act on live: the high-water mark stays where it was,
        # so the next start's catch-up finds it
        self._missed = False

    @property
    def db(self):
        return self.ctrl.store.db

    # -- life ------------------------------------------------------------------

    def start(self) -> None:
        """Follow the hall's evaluations; first catch up on any given while the desk was down."""
        def start() -> None:
            self._unsubscribe = self.ctrl.subscribe(self._on_event)
            self.catch_up()
        self.ctrl.run(start)

    def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    def _on_event(self, event_id: int, event: Event) -> None:
        # Runs on the hall thread, after the evaluation is committed: opening the case is
        # a few rows, cheap enough to do here rather than in a thread.
        if not isinstance(event, TicketEvaluated):
            return
        try:
            acted = self.bad_review(event) is not None or self._is_bad(event)
        except BaseException:
            self._missed = True
            raise
        if acted and not self._missed:
            casebook.mark_seen(self.db, event_id)

    def catch_up(self) -> int:
        """Cases for evaluations given since the desk last looked (a bad review given while it
        was down, or just before a crash): the event log after the recorded high-water mark,
        not the whole history."""
        def catch_up() -> int:
            seen = casebook.seen_until(self.db)
            upto = casebook.last_event_id(self.db)
            rows = list(casebook.events_of_kind_after(self.db, TICKET_EVALUATED, seen))
            opened = 0
            for r in rows:
                event = from_row(r["kind"], r["at"], r["window"], r["ticket_id"],
                                 json.loads(r["data"]))
                if isinstance(event, TicketEvaluated) and self.bad_review(event) is not None:
                    opened += 1
            if upto > seen:
                casebook.mark_seen(self.db, upto)
            return opened
        return self.ctrl.run(catch_up)

    @staticmethod
    def _is_bad(event: TicketEvaluated) -> bool:
        return event.bad and event.ticket is not None

    # -- opening -----------------------------------------------------------------

    def bad_review(self, event: TicketEvaluated) -> Case | None:
        """A `ticket_evaluated` event: a callback case for a real-name bad review, a counted
        anonymous row for an anonymous one, nothing for any other grade."""
        grade, channel, ticket_id = event.grade, event.channel, event.ticket
        if not self._is_bad(event):
            return None
        if ticket_id is None:
            raise ValueError("a ticket_evaluated event names no ticket")
        return self.ctrl.run(lambda: self._open_bad_review(event, ticket_id, grade, channel))

    def _open_bad_review(self, event: TicketEvaluated, ticket_id: str, grade: str,
                         channel: str) -> Case | None:
        if casebook.bad_review_seen(self.db, ticket_id):
            return None
        ticket = self.ctrl.state.tickets.get(ticket_id) or self.ctrl.store.ticket(ticket_id)
        sealed = ticket.identity_sealed if ticket else None
        # an evaluation logged before the pads asked (no real_name) was by the ticket's name
        if event.real_name is not None and not event.real_name:
            sealed = None  # the citizen chose to evaluate anonymously
        window = event.window if event.window is not None else (ticket.window if ticket else None)
        staff = event.staff or (ticket.staff_id if ticket else None)
        service = event.service or (ticket.service if ticket else None)
        if sealed is None:
            casebook.count_anonymous(self.db, {
                "ticket_id": ticket_id, "at": event.at.isoformat(),
                "day": event.at.date().isoformat(), "grade": grade, "channel": channel,
                "window": window, "staff_id": staff, "service": service})
            self.ctrl.note(SYSTEM, "anonymous_bad_review",
                           {"ticket": ticket_id, "grade": grade, "window": window})
            return None
        case_id = self._next_id(CaseKind.BAD_REVIEW, event.at)
        deadline, missing = self._deadline_fn()
        case, events = open_bad_review(
            case_id, event.at, deadline, self.rules, grade=grade, ticket_id=ticket_id,
            window=window, staff_id=staff, service=service,
            citizen_key=ticket.citizen_key if ticket else None, identity_sealed=sealed,
            phone_sealed=ticket.phone_sealed if ticket else None, source=CaseSource.PAD,
            description="、".join(event.tags or ()))
        assert case is not None
        self._save(case, event.at)
        self.ctrl.record(SYSTEM, "case_open", {"case": case.id, "from": None, "to": str(case.state),
                                              "ticket": event.ticket, "no_contact": no_contact(case)},
                         list(events))
        self._missing_years(case, missing)
        return case

    def open_complaint(self, source: str, description: str, actor: str, window: int | None = None,
                       staff_id: str | None = None, service: str | None = None,
                       id_number: str | None = None, name: str | None = None,
                       phone: str | None = None) -> Case:
        """投诉: a complaint case from the 办不成事 window (`desk`), the phone or the comment box."""
        try:
            src = CaseSource(source)
        except ValueError:
            raise CaseError("invalid_source") from None
        if not description or not description.strip():
            raise CaseError("empty_text", "请填写投诉内容")
        if window is not None and window not in self.ctrl.hall.windows:
            raise HallError("unknown_window")
        if staff_id is not None and staff_id not in self.ctrl.hall.staff:
            raise DeskError("unknown_staff_member")
        if service is not None and service not in self.ctrl.hall.services:
            raise HallError("unknown_service")
        citizen = self.ctrl.citizen(id_number, name) if id_number else None
        phone_sealed = None
        if phone:
            phone_sealed = self._sealer().seal(normalise_phone(phone), None)
        def open_case() -> Case:
            now = self.ctrl.clock()
            deadline, missing = self._deadline_fn()
            cmd = OpenCase(self._next_id(CaseKind.COMPLAINT, now), CaseKind.COMPLAINT, src,
                           description.strip(), None, window, staff_id, service,
                           citizen.key if citizen else None, citizen.sealed if citizen else None,
                           phone_sealed)
            case, events = apply(None, cmd, now, _who(actor), deadline, self.rules)
            assert case is not None
            self._save(case, now)
            self.ctrl.record(actor, "case_open", {"case": case.id, "from": None, "to": str(case.state),
                                                 "source": str(src)}, list(events))
            self._missing_years(case, missing)
            return case
        return self.ctrl.run(open_case)

    # -- the workflow ----------------------------------------------------------------

    def act(self, case_id: str, command: Command, actor: str) -> Case:
        """Apply one workflow command for `actor` ("staff:s2"); CaseError if refused."""
        verb = _VERB[type(command)]
        def act() -> Case:
            try:
                if isinstance(command, Assign) and command.officer.strip() not in self.ctrl.hall.staff:
                    raise DeskError("unknown_staff_member", "没有这个工作人员：请按工号交办")
                case = self.get(case_id)
                now = self.ctrl.clock()
                deadline, _ = self._deadline_fn()
                new, events = apply(case, command, now, _who(actor), deadline, self.rules)
            except CaseError as e:
                self.ctrl.refuse(actor, f"case_{verb}", {"case": case_id}, e)
                raise
            assert new is not None
            self._save(new, now)
            self.ctrl.record(actor, f"case_{verb}",
                             {"case": case_id, "from": str(case.state), "to": str(new.state)}, list(events))
            return new
        return self.ctrl.run(act)

    # -- reading ------------------------------------------------------------------

    def get(self, case_id: str) -> Case:
        body = self.ctrl.run(lambda: casebook.case_body(self.db, case_id))
        if body is None:
            raise CaseError("unknown_case")
        return case_from_json(body)

    def list(self, state: str | None = None, overdue_only: bool = False,
             kind: str | None = None, now: dt.datetime | None = None) -> list[Case]:
        """Cases, overdue first, then by the next deadline they have to meet."""
        now = now or self.ctrl.clock()
        cases = [case_from_json(b) for b in
                 self.ctrl.run(lambda: casebook.case_bodies(self.db, state, kind))]
        late = {c.id for c, _ in overdue(cases, now)}
        if overdue_only:
            cases = [c for c in cases if c.id in late]

        def order(c: Case) -> tuple[bool, bool, dt.datetime, str]:
            due = next_due(c)
            return (c.id not in late, due is None, due or FAR_FUTURE, c.id)

        return sorted(cases, key=order)

    def sweep(self, now: dt.datetime) -> builtins.list[tuple[str, str]]:  # (`list` is a method here)
        """Audit rows `case_overdue`, once per case and deadline, for deadlines now passed.
        Call it periodically (the ticker); returns the (case, deadline) newly alerted."""
        def sweep() -> list[tuple[str, str]]:
            open_cases = [case_from_json(b) for b in
                          casebook.case_bodies(self.db, not_state=str(CaseState.CLOSED))]
            done = casebook.alerts_done(self.db)
            new: list[tuple[str, str]] = []
            for case, field in overdue(open_cases, now):
                if (case.id, field) in done:
                    continue
                due = getattr(case, field)
                casebook.record_alert(self.db, case.id, field, due, now)
                self.ctrl.note(SYSTEM, "case_overdue", {"case": case.id, "deadline": field,
                                                        "due": due.isoformat(), "state": str(case.state),
                                                        "staff": case.staff_id, "assignee": case.assignee})
                new.append((case.id, field))
            return new
        return self.ctrl.run(sweep)

    def figures(self, day_from: dt.date, day_to: dt.date, now: dt.datetime | None = None) -> dict[str, Any]:
        """Cases opened from `day_from` to `day_to` (inclusive): the callback rate the hall must
        keep at 100% (001 6.5.2.1), anonymous bad reviews, complaints and overdue cases."""
        span = [day_from.isoformat(), day_to.isoformat()]
        now = now or self.ctrl.clock()
        bodies, anonymous, alerted = self.ctrl.run(
            lambda: casebook.figures_rows(self.db, day_from, day_to))
        cases = [case_from_json(b) for b in bodies]
        closed, total, rate = callback_rate(cases)
        unreachable = sum(1 for c in cases if no_contact(c))
        return {
            "from": span[0], "to": span[1],
            "bad_reviews": total, "bad_reviews_closed": closed, "callback_rate": rate,
            # 6.5.2.1 asks 100% callback: a case without a phone cannot be called back
            "bad_reviews_reachable": total - unreachable, "bad_reviews_no_contact": unreachable,
            "anonymous_bad_reviews": anonymous,
            "complaints": sum(1 for c in cases if c.kind is CaseKind.COMPLAINT),
            "overdue_now": len({c.id for c, _ in overdue(cases, now)}),
            "overdue_ever": alerted,
        }

    def view(self, case: Case, unmasked: bool, actor: str) -> dict[str, Any]:
        """A case as JSON. Identity and phone masked; `unmasked` opens them and is audited."""
        citizen: dict[str, Any] | None = None
        if case.identity_sealed is not None or case.phone_sealed is not None:
            sealer = self._sealer()
            id_number = name = phone = None
            # a case closed longer ago than the hall keeps personal data has none left
            if case.identity_sealed not in (None, PURGED):
                id_number, name = sealer.open(case.identity_sealed)
            if case.phone_sealed not in (None, PURGED):
                phone, _ = sealer.open(case.phone_sealed)
            citizen = {
                "id_masked": identity.mask_id(id_number) if id_number else None,
                "name_masked": identity.mask_name(name) if name else None,
                "phone_masked": identity.mask_phone(phone) if phone else None,
            }
            if PURGED in (case.identity_sealed, case.phone_sealed):
                citizen["purged"] = True
            if unmasked:
                citizen.update({"id_number": id_number, "name": name, "phone": phone})
        if unmasked:
            self.ctrl.note(actor, "case_personal_data_viewed", {"case": case.id})
        now = self.ctrl.clock()
        late = [field for _, field in overdue([case], now)]
        due = next_due(case)
        return {
            "id": case.id, "kind": str(case.kind), "source": str(case.source),
            "state": str(case.state), "state_label": STATE_LABELS[case.state],
            "opened_at": case.opened_at.isoformat(), "description": case.description,
            "ticket": case.ticket_id, "window": case.window, "staff": case.staff_id,
            "staff_name": self.staff_name(case.staff_id),
            "service": case.service, "grade": case.grade, "assignee": case.assignee,
            "assignee_name": self.staff_name(case.assignee),
            "anonymous": case.identity_sealed is None,
            "no_contact": no_contact(case),
            "citizen": citizen,
            "deadlines": {f: plain(getattr(case, f)) for f in
                          ("callback_due", "rectify_due", "feedback_due", "resolve_due")},
            "next_due": plain(due), "overdue": late,
            "justified": case.justified, "follow_up_grade": case.follow_up_grade,
            "appeal_from": plain(case.appeal_from), "appeal_upheld": case.appeal_upheld,
            "history": [self._named(h) for h in case_to_json(case)["history"]],
            # what the workflow allows next, by the API's action names
            "actions": [path for cmd, path in ACTIONS.items()
                        if case.state in TRANSITIONS[cmd][0]],
        }

    def staff_name(self, staff_id: str | None) -> str | None:
        """The name of a member of staff by 工号 (None when nobody or not one of the hall's)."""
        staff = self.ctrl.hall.staff.get(staff_id) if staff_id else None
        return staff.name if staff else None

    def _named(self, step: dict[str, Any]) -> dict[str, Any]:
        """A history step with the names of whoever acted, was assigned and reviewed."""
        actor = step.get("actor") or ""  # a 工号, or "system"
        out = {**step, "actor_name": self.staff_name(actor.removeprefix("staff:"))}
        note = step.get("note")
        if isinstance(note, dict):
            for key in ("officer", "reviewer"):
                if isinstance(note.get(key), str):
                    out[f"{key}_name"] = self.staff_name(note[key])
        return out

    # -- inside ----------------------------------------------------------------------

    def _sealer(self) -> IdentitySealer:
        if self.ctrl.sealer is None:
            raise RuntimeError("this hall has no identity sealer: cases need one for personal data")
        return self.ctrl.sealer

    def _deadline_fn(self) -> tuple[Callable[[dt.datetime, Deadline], dt.datetime], dict[int, None]]:
        """The deadline function for the pure workflow, and the years it found missing."""
        missing: dict[int, None] = {}

        def deadline(start: dt.datetime, d: Deadline) -> dt.datetime:
            due = self.calendar.deadline(start, d.amount, d.working_days)
            if d.working_days:
                for year in self.calendar.missing_years(start.date(), due.date()):
                    missing[year] = None
            return due

        return deadline, missing

    def _missing_years(self, case: Case, missing: dict[int, None]) -> None:
        if missing:
            log.warning("case %s: the working-day calendar has no data for %s; Monday to Friday "
                        "used. Add the year to config/holidays.toml", case.id, sorted(missing))
            self.ctrl.note(SYSTEM, "calendar_year_missing", {"case": case.id, "years": sorted(missing)})

    def _next_id(self, kind: CaseKind, now: dt.datetime) -> str:
        prefix = f"{_ID_PREFIX[kind]}{now:%Y%m%d}-"
        found = casebook.last_case_id(self.db, prefix)
        last = int(found.rsplit("-", 1)[1]) if found else 0
        return f"{prefix}{last + 1:03d}"

    def _save(self, case: Case, now: dt.datetime) -> None:
        casebook.save_case(self.db, {
            "id": case.id, "kind": str(case.kind), "state": str(case.state),
            "source": str(case.source), "opened_at": case.opened_at.isoformat(),
            "day": case.opened_at.date().isoformat(), "staff_id": case.staff_id,
            "window": case.window, "service": case.service, "ticket_id": case.ticket_id,
            "assignee": case.assignee, "callback_due": plain(case.callback_due),
            "rectify_due": plain(case.rectify_due), "feedback_due": plain(case.feedback_due),
            "resolve_due": plain(case.resolve_due), "updated_at": now.isoformat(),
            "body": json.dumps(case_to_json(case), ensure_ascii=False)})


def _who(actor: str) -> str:
    """The workflow compares actors with staff ids: "staff:s2" acts as "s2"."""
    return actor.split(":", 1)[1] if actor.startswith("staff:") else actor
