"""The case desk's API: callback cases for bad reviews, complaints, and their figures.

Callback officers and supervisors work cases, admins read them; only a callback
officer sees a citizen's unmasked identity and phone, and every such look is
audited. Staff may appeal their own case and, at the 办不成事 window, file complaints.
"""

import asyncio
import datetime as dt
from typing import Any, Callable

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from controller.backoffice.cases import CaseDesk, DeskError
from controller.core import callbacks as cb
from controller.core.errors import HallError
from controller.core.hall import StaffRole, WindowKind
from controller.runtime.hallcontroller import HallController
from controller.store.sessions import Session
from controller.web.auth import API, SessionDependency

_WORKERS = (StaffRole.CALLBACK_OFFICER, StaffRole.SUPERVISOR)
_READERS = (*_WORKERS, StaffRole.ADMIN)

Endpoint = Callable[..., Any]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AssignRequest(_Body):
    officer: str = Field(min_length=1, max_length=64)


class CallbackRequest(_Body):
    reached: bool
    summary: str = Field(max_length=2000)


class VerifyRequest(_Body):
    justified: bool
    finding: str = Field(max_length=2000)


class RectifyRequest(_Body):
    change: str = Field(max_length=2000)


class FeedbackRequest(_Body):
    summary: str = Field(max_length=2000)


class FollowUpRequest(_Body):
    grade: str = Field(max_length=10)


class AppealRequest(_Body):
    reason: str = Field(max_length=2000)


class AppealDecisionRequest(_Body):
    upheld: bool
    reason: str = Field(max_length=2000)
    # the acting supervisor; may be left out, and if given must be the one logged in
    reviewer: str | None = Field(default=None, max_length=64)


class ComplaintRequest(_Body):
    source: str = Field(description="desk (办不成事窗口), phone or comment_box")
    description: str = Field(min_length=1, max_length=4000)
    window: int | None = None
    staff_id: str | None = Field(default=None, max_length=64)
    service: str | None = Field(default=None, max_length=16)
    id_number: str | None = Field(default=None, max_length=32)
    name: str | None = Field(default=None, max_length=64)
    phone: str | None = Field(default=None, max_length=32)


def case_routes(ctrl: HallController, desk: CaseDesk, session: SessionDependency) -> APIRouter:
    r = APIRouter()
    _reading_routes(r, ctrl, desk, session)
    _work_routes(r, desk, session)
    _appeal_routes(r, ctrl, desk, session)
    _complaint_routes(r, ctrl, desk, session)
    return r


def _actor(s: Session) -> str:
    return f"staff:{s.staff_id}"


async def _refused(ctrl: HallController, s: Session, name: str, case_id: str | None) -> HallError:
    err = HallError("forbidden_role")
    await ctrl.arefuse(_actor(s), name, {"case": case_id}, err)
    return err


async def _acted(desk: CaseDesk, case_id: str, make: Callable[[], cb.Command],
                 s: Session) -> dict[str, Any]:
    """The case after the command (the desk's lock and audit: off the event loop), masked."""
    return await asyncio.to_thread(
        lambda: desk.view(desk.act(case_id, make(), _actor(s)), False, _actor(s)))


def _reading_routes(r: APIRouter, ctrl: HallController, desk: CaseDesk,
                    session: SessionDependency) -> None:
    @r.get(f"{API}/cases", tags=["cases"],
           summary="Cases, overdue first then by deadline (callback officer, supervisor, admin)")
    async def list_cases(state: str | None = None, kind: str | None = None, overdue: bool = False,
                         s: Session = Depends(session)) -> list[dict[str, Any]]:
        s.require(*_READERS)
        return await asyncio.to_thread(
            lambda: [desk.view(c, False, _actor(s)) for c in desk.list(state, overdue, kind)])

    @r.get(f"{API}/case-officers", tags=["cases"],
           summary="Whom a case may be handed to (问题交办): callback officers and supervisors, by name")
    async def case_officers(s: Session = Depends(session)) -> list[dict[str, Any]]:
        s.require(*_WORKERS)
        return [{"id": st.id, "name": st.name, "role": str(st.role)}
                for st in ctrl.hall.staff.values() if st.role in _WORKERS]

    @r.get(f"{API}/cases/{{case_id}}", tags=["cases"], summary="One case, personal data masked")
    async def get_case(case_id: str, s: Session = Depends(session)) -> dict[str, Any]:
        s.require(*_READERS)
        return await asyncio.to_thread(lambda: desk.view(desk.get(case_id), False, _actor(s)))

    @r.get(f"{API}/cases/{{case_id}}/personal-data", tags=["cases"],
           summary="The citizen's ID number, name and phone for the call (callback officer; audited)")
    async def personal_data(case_id: str, s: Session = Depends(session)) -> dict[str, Any]:
        if s.role != StaffRole.CALLBACK_OFFICER:
            raise await _refused(ctrl, s, "case_personal_data_viewed", case_id)
        return await asyncio.to_thread(lambda: desk.view(desk.get(case_id), True, _actor(s)))


def _work_routes(r: APIRouter, desk: CaseDesk, session: SessionDependency) -> None:
    """POST /cases/{case_id}/<step>: the callback officer's (or supervisor's) steps of a case."""

    def step(path: str, summary: str) -> Callable[[Endpoint], Endpoint]:
        return r.post(f"{API}/cases/{{case_id}}/{path}", tags=["cases"], summary=summary,
                      name=f"case_{path.replace('-', '_')}")

    async def work(case_id: str, s: Session, make: Callable[[], cb.Command]) -> dict[str, Any]:
        s.require(*_WORKERS)  # before the body's command is made
        return await _acted(desk, case_id, make, s)

    @step("assign", "问题交办: hand the case to a callback officer")
    async def assign(case_id: str, body: AssignRequest, s: Session = Depends(session)) -> dict[str, Any]:
        return await work(case_id, s, lambda: cb.Assign(body.officer))

    @step("callback", "回访: record a call to the citizen")
    async def callback(case_id: str, body: CallbackRequest,
                       s: Session = Depends(session)) -> dict[str, Any]:
        return await work(case_id, s, lambda: cb.RecordCallback(body.reached, body.summary))

    @step("verify", "调查核实: justified or not")
    async def verify(case_id: str, body: VerifyRequest, s: Session = Depends(session)) -> dict[str, Any]:
        return await work(case_id, s, lambda: cb.Verify(body.justified, body.finding))

    @step("rectify", "整改: what changed")
    async def rectify(case_id: str, body: RectifyRequest,
                      s: Session = Depends(session)) -> dict[str, Any]:
        return await work(case_id, s, lambda: cb.Rectify(body.change))

    @step("feedback", "反馈: report back to the citizen")
    async def feedback(case_id: str, body: FeedbackRequest,
                       s: Session = Depends(session)) -> dict[str, Any]:
        return await work(case_id, s, lambda: cb.GiveFeedback(body.summary))

    @step("follow-up", "追评: the citizen's second grade")
    async def follow_up(case_id: str, body: FollowUpRequest,
                        s: Session = Depends(session)) -> dict[str, Any]:
        return await work(case_id, s, lambda: cb.FollowUp(body.grade))

    @step("close", "办结: close the case")
    async def close(case_id: str, s: Session = Depends(session)) -> dict[str, Any]:
        return await work(case_id, s, cb.Close)


def own_case(desk: CaseDesk, case: cb.Case) -> dict[str, Any]:
    """A case as the staff member it is about sees it (申诉): what was found and whether it may
    be appealed; nothing of the citizen."""
    verified = [h for h in case.history if "justified" in h.note]
    appealed = [h for h in case.history if h.to_state is cb.CaseState.APPEALED]
    decided = [h for h in case.history if "upheld" in h.note]
    return {
        "id": case.id, "kind": str(case.kind), "state": str(case.state),
        "state_label": cb.STATE_LABELS[case.state], "opened_at": case.opened_at.isoformat(),
        "window": case.window, "service": case.service, "grade": case.grade,
        "description": case.description, "justified": case.justified,
        "finding": verified[-1].note.get("finding") if verified else None,
        "appeal_reason": appealed[-1].note.get("reason") if appealed else None,
        "appeal_upheld": case.appeal_upheld,
        "decision_reason": decided[-1].note.get("reason") if decided else None,
        "reviewer_name": desk.staff_name(decided[-1].note.get("reviewer")) if decided else None,
        "may_appeal": (case.justified is True and case.appeal_upheld is None
                       and case.state in cb.TRANSITIONS[cb.Appeal][0]),
    }


def _appeal_routes(r: APIRouter, ctrl: HallController, desk: CaseDesk,
                   session: SessionDependency) -> None:
    @r.get(f"{API}/my-cases", tags=["cases"],
           summary="申诉: the cases about the staff member logged in, and which may be appealed")
    async def my_cases(s: Session = Depends(session)) -> list[dict[str, Any]]:
        s.require(StaffRole.STAFF)
        return await asyncio.to_thread(lambda: [own_case(desk, c) for c in desk.list()
                                                if c.staff_id == s.staff_id])

    @r.post(f"{API}/cases/{{case_id}}/appeal", tags=["cases"],
            summary="申诉: the staff member on the case contests it")
    async def appeal(case_id: str, body: AppealRequest, s: Session = Depends(session)) -> dict[str, Any]:
        # the workflow refuses anyone but the case's staff member (not_case_staff)
        return await _acted(desk, case_id, lambda: cb.Appeal(body.reason), s)

    @r.post(f"{API}/cases/{{case_id}}/appeal-decision", tags=["cases"],
            summary="复核: a supervisor decides the appeal")
    async def appeal_decision(case_id: str, body: AppealDecisionRequest,
                              s: Session = Depends(session)) -> dict[str, Any]:
        if s.role != StaffRole.SUPERVISOR:
            raise await _refused(ctrl, s, "case_appeal_decision", case_id)
        if body.reviewer is not None and body.reviewer != s.staff_id:
            raise DeskError("reviewer_not_you")
        cmd = cb.DecideAppeal(body.upheld, s.staff_id, body.reason)
        return await _acted(desk, case_id, lambda: cmd, s)


def _complaint_routes(r: APIRouter, ctrl: HallController, desk: CaseDesk,
                      session: SessionDependency) -> None:
    @r.post(f"{API}/complaints", status_code=201, tags=["cases"],
            summary="投诉: file a complaint (办不成事 window staff, supervisor, callback officer)")
    async def complaint(body: ComplaintRequest, s: Session = Depends(session)) -> dict[str, Any]:
        if s.role not in _WORKERS and not _at_complaints_window(ctrl, s):
            raise await _refused(ctrl, s, "case_open", None)
        case = await asyncio.to_thread(
            desk.open_complaint, body.source, body.description, _actor(s), body.window,
            body.staff_id, body.service, body.id_number, body.name, body.phone)
        return await asyncio.to_thread(lambda: desk.view(case, False, _actor(s)))

    @r.get(f"{API}/cases-figures", tags=["cases"],
           summary="Callback rate, anonymous bad reviews, complaints and overdue cases")
    async def figures(from_: dt.date | None = Query(None, alias="from"), to: dt.date | None = None,
                      s: Session = Depends(session)) -> dict[str, Any]:
        s.require(*_READERS)
        today = ctrl.clock().date()
        return await asyncio.to_thread(desk.figures, from_ or today.replace(day=1), to or today)


def _at_complaints_window(ctrl: HallController, s: Session) -> bool:
    """Staff logged in at the 办不成事 window, who file complaints there."""
    window = ctrl.hall.windows.get(s.window) if s.window is not None else None
    return s.role == StaffRole.STAFF and window is not None and window.kind == WindowKind.COMPLAINTS
