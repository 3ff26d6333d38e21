"""Request bodies of the REST API. Unknown fields and wrong types are refused (422)."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class TicketRequest(Strict):
    service: str = Field(min_length=1, max_length=8, description="service prefix, e.g. A")
    id_number: str | None = Field(None, max_length=32, description="18-digit resident ID number")
    name: str | None = Field(None, max_length=64, description="citizen's name (real-name ticket)")
    phone: str | None = Field(None, max_length=20, description="for a callback (real-name ticket)")
    priority: str | None = Field(
        None, max_length=16, description="elderly, disabled, ill, pregnant or urgent: only from "
        "a supervisor, the guidance desk or a green-channel window's staff (else 403)")
    channel: str = Field("kiosk", max_length=16, description="kiosk, staff or appointment")
    appointment_at: dt.datetime | None = Field(
        None, strict=False, description="appointment slot, ISO 8601 (channel appointment)")


class KioskTicketRequest(Strict):
    service: str = Field(min_length=1, max_length=8, description="service prefix, e.g. A")
    id_number: str | None = Field(None, max_length=32,
                                  description="typed ID number; without it a card just read is used")
    name: str | None = Field(None, max_length=64)
    phone: str | None = Field(None, max_length=20, description="for a callback, if the citizen wishes")
    priority: str | None = Field(None, max_length=16)


class KioskIdentityRequest(Strict):
    id_number: str = Field(min_length=1, max_length=32, description="ID number typed on the kiosk")


class ScanRequest(Strict):
    code: str = Field(min_length=1, max_length=512, description="what the scanner read")


class AppointmentRequest(Strict):
    service: str = Field(min_length=1, max_length=8)
    slot: dt.datetime = Field(strict=False, description="ISO 8601; hall time when no zone")
    id_number: str | None = Field(None, max_length=32)
    name: str | None = Field(None, max_length=64)
    code: str | None = Field(None, pattern=r"^APT-[A-Z0-9]{4,32}$")


class ReprintRequest(Strict):
    kiosk: str | None = Field(None, max_length=32, description="which kiosk prints; default the first")


class LoginRequest(Strict):
    staff_id: str = Field(min_length=1, max_length=32)
    pin: str = Field(min_length=1, max_length=32)
    window: int | None = Field(None, ge=1, le=9999,
                               description="the window to take; supervisors may omit it")


class TransferRequest(Strict):
    service: str = Field(min_length=1, max_length=8)


class CallNumberRequest(Strict):
    number: str = Field(min_length=2, max_length=8, description="the ticket number, e.g. A012")
    reason: str | None = Field(None, max_length=16,
                               description="过号返回, 预约到达, 绿色通道, 转办返回 or 其他 (required)")
    note: str | None = Field(None, max_length=50, description="why, required with 其他")


class PhoneRequest(Strict):
    phone: str = Field(min_length=1, max_length=20,
                       description="11-digit mobile, or a landline with its area code (0xx-xxxxxxxx)")


class PauseRequest(Strict):
    reason: str = Field(min_length=1, max_length=50)
    minutes: int = Field(ge=1, le=240)
    whereabouts: str | None = Field(None, max_length=50,
                                    description="去向告知: where staff went, how to reach them")
