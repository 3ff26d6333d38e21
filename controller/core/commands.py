"""Commands: what someone asked the hall to do. Each is a value; the engine applies it."""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass
from typing import Any

from controller.core import identity


@dataclass(frozen=True)
class Command:
    def log_args(self) -> dict[str, Any]:
        """The arguments as they go into the audit log (personal data masked)."""
        out = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            out[f.name] = v.isoformat() if isinstance(v, dt.datetime | dt.date) else v
        return out

    @property
    def kind(self) -> str:
        return _snake(type(self).__name__)


def _snake(name: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")


@dataclass(frozen=True)
class IssueTicket(Command):
    """取号: take a ticket for a service."""

    service: str
    channel: str = "kiosk"
    citizen: identity.Citizen | None = None
    priority: str | None = None
    appointment_at: dt.datetime | None = None
    # the logged-in member of staff issuing it: only some may grant priority (core.priority)
    staff_id: str | None = None
    request_key: str | None = None  # a kiosk's idempotency key: one request, one ticket

    def log_args(self) -> dict[str, Any]:
        out = super().log_args()
        if self.citizen:  # the log keeps the masked ID and the lookup key, never the number
            out["citizen"] = {"id_masked": self.citizen.id_masked, "key": self.citizen.key}
        return out


@dataclass(frozen=True)
class CancelTicket(Command):
    """作废: a waiting ticket leaves the queue (not printed, or withdrawn at the desk)."""

    ticket: str
    reason: str


@dataclass(frozen=True)
class ReportDevice(Command):
    """A device's health changed (online, offline, fault such as paper out)."""

    device: str
    state: str
    detail: str = ""


@dataclass(frozen=True)
class CallNext(Command):
    """叫号: the window calls the next ticket (finishing the current one, if any)."""

    window: int


@dataclass(frozen=True)
class CallNumber(Command):
    """叫指定号: call one ticket out of order, for one of `priority.CALL_REASONS`: audited."""

    window: int
    number: str
    reason: str | None = None
    note: str | None = None  # required with the reason 其他


@dataclass(frozen=True)
class Recall(Command):
    """重呼: call the current ticket again."""

    window: int


@dataclass(frozen=True)
class NoShow(Command):
    """过号: the ticket was called and its holder did not come."""

    window: int


@dataclass(frozen=True)
class Finish(Command):
    """办结: the service of the current ticket is done."""

    window: int


@dataclass(frozen=True)
class Transfer(Command):
    """转办: send the current ticket to another service; it keeps its number."""

    window: int
    service: str


@dataclass(frozen=True)
class SetPhone(Command):
    """登记电话: the counter adds or corrects the phone of its current visit (real-name), so a
    bad review can be called back (DB50/T 1603-2024 6.5.2.1). The phone comes sealed."""

    window: int
    phone_sealed: str
    phone_masked: str

    def log_args(self) -> dict[str, Any]:
        return {"window": self.window, "phone_masked": self.phone_masked}


@dataclass(frozen=True)
class Pause(Command):
    """暂停服务: staff leave the window for a while."""

    window: int
    reason: str
    minutes: int
    whereabouts: str | None = None  # 去向告知: where staff went and how to reach them


@dataclass(frozen=True)
class Resume(Command):
    window: int


@dataclass(frozen=True)
class Login(Command):
    """Staff take a window: at their A post, or covering it as its B post (顶岗)."""

    window: int
    staff_id: str


@dataclass(frozen=True)
class Logout(Command):
    window: int
    # 停用 (an admin disables the account): the window closes even while serving, and the
    # ticket being served goes back to the head of its queue for another window to call
    requeue_current: bool = False


@dataclass(frozen=True)
class StartEvaluation(Command):
    """评价: staff start the window's pad for the visit being served (or just finished)."""

    window: int


@dataclass(frozen=True)
class Evaluate(Command):
    """A grade given on the window's pad: one per visit (一次一评), by name."""

    window: int
    grade: str
    channel: str = "pad"
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class Tick(Command):
    """Time passes: day change, pause-limit alerts, patrol reminders."""


@dataclass(frozen=True)
class RecordPatrol(Command):
    """巡查: the supervisor records a patrol round (000 巡查制度 第六条); who is at each window
    comes from the live state."""

    signer: str
    no_problems: bool
    findings: str = ""
    area: str = ""


@dataclass(frozen=True)
class CallGuidance(Command):
    """帮办代办: a citizen at a kiosk asks for help, and the guidance desk (导办台) is called
    (001 5.1.6.3: a help request is answered by someone at once)."""

    kiosk: str


@dataclass(frozen=True)
class AnswerGuidance(Command):
    """The guidance desk (or the supervisor) has gone to the kiosk: its call is answered."""

    kiosk: str
    staff_id: str


@dataclass(frozen=True)
class ApplyDistrictBundle(Command):
    """配置下发: version `version` of the district centre's configuration bundle taken into use
    (controller.federation.bundles). The windows the accounts in `disabled` (停用 at the centre,
    their logins and tokens already refused) are logged in at close, the visit being served
    back at the head of its queue, as when the admin disables them; the bundle's sections take
    effect at the hall's next start (`restart_needed`)."""

    version: int
    created_by: str
    disabled: tuple[str, ...] = ()
    enabled: tuple[str, ...] = ()
    restart_needed: bool = False
