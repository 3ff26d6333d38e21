"""请求内容不正确: FastAPI's refusals of a request's fields (a field missing, a number out of
range, a date that is none) in the hall's words, naming the field.

The answer keeps the API's error shape, `{"error": "invalid_request", "message": …}`: the code
stays for machines, the message is for the person at the kiosk, counter or desk (Pydantic's
English never reaches them). An error type this table does not know still names its field.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Mapping, Sequence

# the fields people meet, in their words; any other is named by its key alone
FIELDS: dict[str, str] = {
    "service": "业务", "id_number": "身份证号", "name": "姓名", "phone": "联系电话",
    "priority": "优先类别", "channel": "取号渠道", "appointment_at": "预约时间", "slot": "预约时段",
    "staff_id": "工号", "pin": "PIN", "window": "窗口", "number": "号码", "reason": "原因",
    "note": "说明", "minutes": "分钟数", "whereabouts": "去向", "kiosk": "取号机",
    "key": "密钥", "from": "开始日期", "to": "结束日期", "month": "月份", "by": "分组",
    "mapping": "评价代码表", "format": "文件格式", "tolerance": "容差分钟数",
    "officer": "承办人", "grade": "评价", "description": "内容",
    "no": "窗口号",  # /windows/{no}/…
}

# where a field came from: not part of its name
_SOURCES = ("body", "query", "path", "header", "cookie")

Ctx = Mapping[str, Any]


def _choices(ctx: Ctx) -> str:
    expected = str(ctx.get("expected", ""))
    return "、".join(re.findall(r"'([^']*)'", expected)) or expected


# Pydantic's error type: what to say after the field's name
SAY: dict[str, Callable[[Ctx], str]] = {
    "missing": lambda c: "未填写",
    "extra_forbidden": lambda c: "不是本接口的字段",
    "greater_than_equal": lambda c: f"应大于或等于 {c['ge']}",
    "greater_than": lambda c: f"应大于 {c['gt']}",
    "less_than_equal": lambda c: f"应小于或等于 {c['le']}",
    "less_than": lambda c: f"应小于 {c['lt']}",
    "string_too_short": lambda c: f"至少 {c['min_length']} 个字",
    "string_too_long": lambda c: f"最多 {c['max_length']} 个字",
    "too_short": lambda c: f"至少 {c['min_length']} 项",
    "too_long": lambda c: f"最多 {c['max_length']} 项",
    "string_pattern_mismatch": lambda c: "格式不正确",
    "string_type": lambda c: "应为文字",
    "int_type": lambda c: "应为整数",
    "int_parsing": lambda c: "应为整数",
    "int_from_float": lambda c: "应为整数",
    "float_type": lambda c: "应为数字",
    "float_parsing": lambda c: "应为数字",
    "bool_type": lambda c: "应为 true 或 false",
    "bool_parsing": lambda c: "应为 true 或 false",
    "literal_error": lambda c: f"应为以下之一：{_choices(c)}",
    "enum": lambda c: f"应为以下之一：{_choices(c)}",
    "date_type": lambda c: "应为日期，格式如 2026-12-03",
    "date_parsing": lambda c: "应为日期，格式如 2026-12-03",
    "date_from_datetime_parsing": lambda c: "应为日期，格式如 2026-12-03",
    "date_from_datetime_inexact": lambda c: "应为日期，格式如 2026-12-03",
    "datetime_type": lambda c: "应为时间，格式如 2026-12-03T09:15",
    "datetime_parsing": lambda c: "应为时间，格式如 2026-12-03T09:15",
    "datetime_from_date_parsing": lambda c: "应为时间，格式如 2026-12-03T09:15",
    "dict_type": lambda c: "应为 JSON 对象",
    "model_type": lambda c: "应为 JSON 对象",
    "model_attributes_type": lambda c: "应为 JSON 对象",
    "list_type": lambda c: "应为列表",
    "json_invalid": lambda c: "不是有效的 JSON",
}


def field_name(loc: Sequence[Any]) -> str:
    """The field as a person reads it: its word and its key (分钟数（minutes）), or the key."""
    parts = [str(p) for p in loc if p not in _SOURCES]
    if not parts:
        return "请求内容"
    key = ".".join(parts)
    word = FIELDS.get(parts[-1]) if isinstance(loc[-1], str) else None
    return f"{word}（{key}）" if word else f"“{key}”"


def problem(err: Mapping[str, Any]) -> str:
    """One refused field: "分钟数（minutes）应小于或等于 240"."""
    say = SAY.get(str(err.get("type")))
    ctx = err.get("ctx") or {}
    try:
        what = say(ctx) if say else "不正确"
    except KeyError:  # a context this Pydantic version names otherwise
        what = "不正确"
    return f"{field_name(err.get('loc', ()))}{what}"


def message(errors: Sequence[Mapping[str, Any]], most: int = 5) -> str:
    """The answer's message: the first `most` refused fields."""
    problems = "；".join(problem(e) for e in errors[:most])
    more = f"（另有 {len(errors) - most} 项）" if len(errors) > most else ""
    return f"请求内容不正确：{problems}{more}"
