"""导出用语: the words of the CSV and Excel files, which go to the hall's leadership.

The JSON API keeps its English keys and raw values: machines read it. A file carries the
same rows as `file_rows` gives them: Chinese column headers, Chinese words for the values
(是/否, 上午/下午, 迟到/早退 …, the words the pages use), times as the hall's clock shows them
(2026-12-03 09:15), minutes to one decimal and rates as percentages. Codes meant for another
system (the upload's grade_code and channel_code) stay as they are, under Chinese headers.

One table of words for every file: a column is named the same in every report, unless a
sheet names it apart (`IN_SHEET`: in the monthly roll-up `late` is a count, in attendance a
yes or no).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Any, Iterable

COLUMNS: dict[str, str] = {
    # what a row is about
    "service": "业务", "window": "窗口", "staff": "工号", "day": "日期", "month": "月份",
    "name": "姓名", "ticket": "票号",
    # tickets (大厅统计)
    "issued": "取号", "served": "办结", "no_show": "过号", "cancelled": "取消", "transferred": "转办",
    "wait_minutes_mean": "等候均值（分钟）", "wait_minutes_p50": "等候P50（分钟）",
    "wait_minutes_p90": "等候P90（分钟）", "service_minutes_mean": "办理均值（分钟）",
    "service_minutes_p50": "办理P50（分钟）", "service_minutes_p90": "办理P90（分钟）",
    "out_of_order_calls": "不按顺序叫号",
    # 好差评
    "visits": "办件数", "evaluated": "评价数", "default_graded": "系统默认评价", "ungraded": "未评价",
    "evaluation_rate": "评价率", "satisfaction_rate": "满意率", "bad_reviews": "差评",
    "bad_reviews_real_name": "实名差评", "bad_reviews_anonymous": "匿名差评",
    "prompts_cut_short": "评价被中断", "bad_review_cases": "差评案件", "callback_rate": "回访率",
    "rectification_rate": "整改率", "overdue_cases": "超期案件",
    "assessment_month": "考核月份", "assessment_points": "考核扣分", "satisfaction_points": "满意度得分",
    # graded visits for the upload (评价明细)
    "finished_at": "办结时间", "graded_at": "评价时间", "grade": "评价", "grade_code": "评价代码",
    "channel": "评价渠道", "channel_code": "渠道代码", "system_default": "是否系统默认评价",
    "id_masked": "身份证号（脱敏）", "name_masked": "姓名（脱敏）",
    # 延时服务
    "windows": "窗口", "closing": "下班时间", "tickets": "号码", "last_finished_at": "最后办结",
    "minutes_past_closing": "延时（分钟）", "ended_by_day_change": "跨日自动办结",
    # 考勤
    "session": "时段", "session_start": "时段开始", "session_end": "时段结束", "a_post": "A岗窗口",
    "first_login": "首次登录", "last_logout": "最后退出", "late": "迟到", "early_leave": "早退",
    "absent": "未登录", "status": "考勤",
    # 月度考核
    "late_minutes": "迟到分钟", "early_minutes": "早退分钟", "sessions_without_login": "未登录时段数",
    "absences": "脱岗次数", "absence_minutes": "脱岗分钟",
    "overtime_days": "延时服务天数", "overtime_minutes": "延时服务分钟",
    "complaints": "经核实投诉", "late_early_points": "迟到早退扣分", "absence_points": "脱岗扣分",
    "half_day_absences": "计旷工半天次数", "half_day_points": "旷工扣分",
    "case_points": "差评投诉扣分", "out_of_order_points": "不按顺序叫号扣分",
    "points_deducted": "合计扣分",
}

# a column a sheet names apart from the others (the sheet names are the files' sheets)
IN_SHEET: dict[str, dict[str, str]] = {
    "月度考核": {"late": "迟到次数", "early_leave": "早退次数", "bad_reviews": "经核实差评"},
    "延时服务": {"visits": "延时办件"},
}

# `name` names what the row is about: a service's or a window's name, else a person's
NAME_OF = {"service": "业务名称", "window": "窗口名称"}

# the values' words, as the pages say them (reports.html, callbacks.html)
VALUES: dict[str, dict[str, str]] = {
    "session": {"morning": "上午", "afternoon": "下午", "evening": "晚间"},
    "status": {"present": "正常", "late": "迟到", "early_leave": "早退",
               "late_and_early_leave": "迟到、早退", "absent": "未登录"},
    "channel": {"pad": "评价器", "tablet": "平板评价器", "system_default": "系统默认"},
}
YES, NO = "是", "否"

TIMES = frozenset({"finished_at", "graded_at", "last_finished_at", "first_login", "last_logout"})
RATES = frozenset({"evaluation_rate", "satisfaction_rate", "callback_rate", "rectification_rate"})


class Percent(float):
    """A rate as a share of one (0.933), written 93.3% in a file: as text in a CSV, as a number
    with a percentage format in Excel."""

    def __str__(self) -> str:
        return f"{self:.1%}"


def plain_time(value: str | dt.datetime, zone: dt.tzinfo | None = None) -> str:
    """2026-12-03 09:15: a stored ISO time (offset, seconds, microseconds) as the hall's clock
    shows it; `zone` is the hall's, for a time stored with another offset."""
    moment = dt.datetime.fromisoformat(value) if isinstance(value, str) else value
    if zone is not None and moment.tzinfo is not None:
        moment = moment.astimezone(zone)
    return f"{moment:%Y-%m-%d %H:%M}"


def header(key: str, sheet: str = "", about: str = "") -> str:
    """The column's Chinese header in `sheet`, for rows about `about` (the row's first key)."""
    if key == "name":
        return NAME_OF.get(about, COLUMNS["name"])
    return IN_SHEET.get(sheet, {}).get(key) or COLUMNS.get(key, key)


def word(key: str, value: Any, zone: dt.tzinfo | None = None) -> Any:
    """The value of column `key` as a file shows it."""
    if value is None:
        return None
    if isinstance(value, bool):
        return YES if value else NO
    if isinstance(value, (list, tuple)):
        return "、".join(str(word(key, v, zone)) for v in value)
    if key in VALUES:
        return VALUES[key].get(value, value)
    if key in TIMES:
        return plain_time(value, zone)
    if key in RATES:
        return Percent(value)
    if "minutes" in key and isinstance(value, float):
        return round(value, 1)
    return value


def file_rows(rows: list[dict[str, Any]], sheet: str = "",
              zone: dt.tzinfo | None = None) -> list[dict[str, Any]]:
    """`rows` keyed by their Chinese headers, with their values in words, for a file's `sheet`."""
    out = []
    for row in rows:
        about = next(iter(row), "")
        out.append({header(k, sheet, about): word(k, v, zone) for k, v in row.items()})
    return out


def _columns(rows: Iterable[dict[str, Any]]) -> list[str]:
    seen: dict[str, None] = {}
    for row in rows:
        seen.update(dict.fromkeys(row))
    return list(seen)


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return "; ".join(str(v) for v in value)
    return value


# a text cell starting with one of these is a formula to Excel, in a CSV as in a workbook
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _csv_cell(value: Any) -> Any:
    """A cell as the CSV writes it: text that Excel would run as a formula (a name such as
    =HYPERLINK(...)) gets a leading apostrophe, so it opens as the text it is."""
    value = _cell(value)
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def to_csv(rows: list[dict[str, Any]]) -> bytes:
    """CSV in UTF-8 with a BOM: without it Excel reads the Chinese as GBK and garbles it.
    The rows as given: a file for people has them from `export_words.file_rows`."""
    out = io.StringIO()
    columns = _columns(rows)
    w = csv.writer(out, lineterminator="\r\n")
    w.writerow(columns)
    for row in rows:
        w.writerow([str(v) if isinstance(v, Percent) else _csv_cell(v)
                    for v in (row.get(c) for c in columns)])
    return out.getvalue().encode("utf-8-sig")


def to_xlsx(rows: list[dict[str, Any]], sheet: str = "Sheet1") -> bytes:
    """An Excel workbook with one sheet: a header row, then the rows (a `Percent` a number
    Excel shows as 93.3%)."""
    from openpyxl import Workbook  # only the downloads need it

    wb = Workbook()
    ws = wb.active
    ws.title = sheet[:31]  # Excel's limit on sheet names
    columns = _columns(rows)
    for values in [columns, *([_cell(row.get(c)) for c in columns] for row in rows)]:
        ws.append([float(v) if isinstance(v, Percent) else v for v in values])
        for cell, value in zip(ws[ws.max_row], values, strict=False):  # no columns: no cells
            # openpyxl makes every string starting with "=" a formula: a name such as
            # =HYPERLINK(...) would run in the supervisor's Excel. Text stays text.
            if cell.data_type == "f":
                cell.data_type = "s"
            if isinstance(value, Percent):
                cell.number_format = "0.0%"
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()
