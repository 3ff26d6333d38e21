"""Errors a person can cause: a stable code, a Chinese message, and a category.

One tree: `HallError` is the root, and each area that refuses with codes of its own (the
case workflow, `controller.core.callbacks.CaseError`; the case desk, `controller.backoffice.cases.
DeskError`) subclasses it with its table of codes. The web layer maps the category to an
HTTP status and `retry_after` to a Retry-After header; programming errors stay ordinary
exceptions.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import ClassVar


class Category(StrEnum):
    INVALID = "invalid"
    NOT_FOUND = "not_found"
    CONFLICT = "conflict"
    FORBIDDEN = "forbidden"
    UNAUTHORIZED = "unauthorized"
    # too many requests of one kind from one source: try again later (HTTP 429)
    TOO_MANY = "too_many"


# code -> (category, default Chinese message)
CODES: dict[str, tuple[Category, str]] = {
    "unknown_service": (Category.NOT_FOUND, "没有这项业务"),
    "unknown_window": (Category.NOT_FOUND, "没有这个窗口"),
    "unknown_ticket": (Category.NOT_FOUND, "没有这张号"),
    "unknown_staff": (Category.UNAUTHORIZED, "工号或密码不正确"),
    "bad_credentials": (Category.UNAUTHORIZED, "工号或密码不正确"),
    "invalid_id_number": (Category.INVALID, "身份证号码不正确"),
    "invalid_phone": (Category.INVALID, "电话号码不正确：手机号 11 位，固定电话请带区号"),
    "invalid_priority": (Category.INVALID, "优先类别不正确"),
    "priority_not_allowed": (Category.FORBIDDEN,
                             "优先办理只能由导办台、绿色通道窗口的工作人员或现场负责人给予"
                             "（老年人刷身份证取号按年龄自动优先）"),
    "call_reason_required": (Category.INVALID,
                             "叫指定号须选择原因：过号返回、预约到达、绿色通道、转办返回或其他（需说明）"),
    "invalid_call_reason": (Category.INVALID,
                            "叫指定号的原因只能是：过号返回、预约到达、绿色通道、转办返回或其他（需说明）"),
    "invalid_channel": (Category.INVALID, "取号渠道不正确"),
    "already_waiting": (Category.CONFLICT, "您已取过这项业务的号，请等候叫号"),
    "ticket_not_waiting": (Category.CONFLICT, "这张号不在等候中"),
    "printer_unavailable": (Category.CONFLICT, "打印机故障，请到导办台取号"),
    "paper_out": (Category.CONFLICT, "打印机缺纸，请到导办台取号"),
    "unknown_kiosk": (Category.NOT_FOUND, "没有这台取号机"),
    "no_guidance_call": (Category.CONFLICT, "这台取号机没有待处理的帮办代办呼叫（可能已有人处理）"),
    "unknown_appointment": (Category.NOT_FOUND, "没有找到这个预约"),
    "unknown_code": (Category.INVALID, "无法识别这个码，请出示身份证或预约码"),
    "appointment_exists": (Category.CONFLICT, "这个预约码已存在"),
    "appointment_used": (Category.CONFLICT, "这个预约已签到"),
    "appointment_not_due": (Category.CONFLICT, "还未到预约签到时间"),
    "appointment_expired": (Category.CONFLICT, "预约时段已过"),
    "forbidden_role": (Category.FORBIDDEN, "您的岗位不能做这项操作"),
    "invalid_grade": (Category.INVALID, "评价等级不正确"),
    "invalid_date_range": (Category.INVALID, "日期范围不正确"),
    "no_evaluation": (Category.CONFLICT, "评价器当前没有待评价的办件"),
    "already_evaluated": (Category.CONFLICT, "这次办件已经评价过了"),
    "invalid_reason": (Category.INVALID, "请填写暂停原因"),
    "invalid_minutes": (Category.INVALID, "预计时长不正确"),
    "invalid_bundle": (Category.INVALID, "区县中心下发的配置不正确，未采用"),
    "invalid_appointment": (Category.INVALID, "预约时段不正确"),
    "hall_closed": (Category.CONFLICT, "今天不办公"),
    "before_opening": (Category.CONFLICT, "还未到取号时间"),
    "after_cutoff": (Category.CONFLICT, "已过取号时间"),
    "window_closed": (Category.CONFLICT, "窗口未登录"),
    "window_occupied": (Category.CONFLICT, "窗口已有工作人员登录"),
    "window_paused": (Category.CONFLICT, "窗口暂停服务中"),
    "window_not_paused": (Category.CONFLICT, "窗口没有暂停"),
    "window_busy": (Category.CONFLICT, "请先办结或过号当前号"),
    "no_current_ticket": (Category.CONFLICT, "窗口当前没有号"),
    "not_callable": (Category.CONFLICT, "这张号不能叫（已办结或正在其他窗口）"),
    "not_served_here": (Category.CONFLICT, "本窗口不办理这项业务"),
    "same_service": (Category.CONFLICT, "转入的业务与当前业务相同"),
    "not_at_post": (Category.FORBIDDEN, "您不是这个窗口的A岗或B岗"),
    "already_logged_in": (Category.CONFLICT, "您已在其他窗口登录"),
    "not_your_window": (Category.FORBIDDEN, "只能操作本人登录的窗口"),
    "not_logged_in": (Category.UNAUTHORIZED, "请先登录"),
    "device_check_running": (Category.CONFLICT, "设备自检正在进行，请稍候再看结果"),
    "no_device_check": (Category.NOT_FOUND, "今天还没有做设备自检"),
    "windows_open": (Category.CONFLICT, "还有窗口未退出登录，请先退出再下班关机"),
    "account_disabled": (Category.FORBIDDEN, "该账号已停用，请联系系统管理员"),
    "weak_pin": (Category.FORBIDDEN,
                 "PIN 过于简单（如 0000、123456），不能登录；请系统管理员用 hallctl hash-pin 设置新的 PIN"),
    "no_such_staff": (Category.NOT_FOUND, "没有这个工号"),
    "cannot_disable_self": (Category.CONFLICT, "不能停用自己正在使用的账号"),
    "too_many_login_failures": (Category.TOO_MANY, "登录失败次数过多，请稍后再试"),
    "too_many_tickets": (Category.TOO_MANY, "取号过于频繁，请稍后再试或到导办台取号"),
    "daily_ticket_limit": (Category.CONFLICT, "您今天取号次数已达上限，请到导办台咨询"),
    "no_identity_waiting": (Category.CONFLICT, "请先放置身份证或输入身份证号码，再留电话"),
    "phone_needs_identity": (Category.INVALID, "留电话需要实名取号：请先放置身份证或输入身份证号码"),
    "request_key_used": (Category.CONFLICT, "这次取号请求已处理过，请重新点选业务"),
    "not_real_name": (Category.CONFLICT, "当前号不是实名取号，不能登记回访电话"),
    "kiosk_key_required": (Category.UNAUTHORIZED,
                           "本设备未登记为取号机：请管理员为它设置取号机密钥（hallctl kiosk-credential）"),
    "kiosk_key_other": (Category.FORBIDDEN, "本设备的取号机密钥属于另一台取号机"),
    "bad_kiosk_key": (Category.UNAUTHORIZED, "取号机密钥不正确或已停用"),
    "invalid_kiosk_id": (Category.INVALID, "取号机编号只能由字母、数字、- 或 _ 组成（最多 32 个）"),
}


class HallError(Exception):
    """A refused command: nothing changed.

    `code` is one of the class's `codes` (an unknown one is a programming error, KeyError);
    `retry_after`, for a refusal of too many requests, is the seconds until one is let in."""

    codes: ClassVar[Mapping[str, tuple[Category, str]]] = CODES

    def __init__(self, code: str, message: str | None = None, *,
                 retry_after: int | None = None) -> None:
        category, default = self.codes[code]
        self.code = code
        self.category = category
        self.message = message or default
        self.retry_after = retry_after
        super().__init__(f"{code}: {self.message}")
