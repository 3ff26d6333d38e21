"""月度考核汇总: November 2026 at a three-window hall, lived day by day through the real server,
then rolled up per staff member and checked against figures worked out from the story itself
with the clauses' own numbers (003 考核, 004 考勤规范 六, 002 考核), not read off the code.

Every weekday of November each of s1 (window 1), s2 (window 2) and s3 (window 3) logs in at
08:55 and out at 17:30, except as the tables below tell.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
import re

import pytest
from openpyxl import load_workbook

from controller.backoffice import rollup
from controller.runtime.clock import ManualClock
from controller.config.hall import parse_hall
from controller.core import callbacks as cb
from controller.core import commands as c
from controller.config.tomlkeys import ConfigError
from tests.halls import TZ, access_hall
from tests.server import running_hall
from tests.test_config import minimal_hall_dict

NOV = [dt.date(2026, 11, d) for d in range(1, 31) if dt.date(2026, 11, d).weekday() < 5]
DEC_1 = dt.date(2026, 12, 1)
ID = "11010119500307097X"
STAFF = ("s1", "s2", "s3")
SESSIONS = (("09:00", "12:00"), ("13:30", "17:30"))

# who came in late (login time) and who left early (logout time), by day of the month
LATE = {("s1", 3): "09:12", ("s1", 10): "09:40", ("s1", 17): "09:08", ("s1", 24): "10:15",
        ("s2", 9): "09:04"}  # 4 minutes: on time (5 minutes' grace, 004 考勤规范 六(二)4)
EARLY = {("s2", 4): "17:00", ("s2", 11): "16:40"}
ON_LEAVE = {("s3", 27)}  # no login all day
# pauses (暂停服务): staff, day, paused, resumed; the pause limit is 15 minutes
PAUSES = [("s1", 5, "10:00", "10:25"),   # 25 minutes: past the limit
          ("s1", 12, "14:00", "14:10"),  # 10 minutes: a short absence, allowed
          ("s2", 25, "11:50", "13:40")]  # over lunch: 10 + 10 minutes in opening hours
# logged out mid-session and back: staff, day, out, back, and who covered the window when
GAPS = [("s1", 19, "15:00", "15:40", None),
        ("s2", 18, "10:00", "10:50", ("leaver", "10:05", "10:50")),
        ("s3", 20, "10:00", "11:20", None)]
# out-of-order calls (叫指定号): staff, window, day, service
OUT_OF_ORDER = [("s1", 1, 6, "A"), ("s3", 3, 13, "C")]
# served past closing (延时服务): staff, window, day, service, called, finished
OVERTIME = [("s3", 3, 26, "C", "17:25", "17:50"), ("s1", 1, 30, "A", "17:20", "17:42")]
# evaluations on day 16: staff, window, service, grade, by name
GRADES = ([("s3", 3, "C", "满意", False)] * 9 + [("s3", 3, "C", "不满意", False)]
          + [("s1", 1, "A", "非常满意", False), ("s1", 1, "A", "非常不满意", True)])
# complaints about s2 on day 20: (justified?) — only the verified one counts
COMPLAINTS = [("s2", True), ("s2", False)]


def hm(day: dt.date, hhmm: str) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.fromisoformat(hhmm), TZ)


Step = tuple[str, c.Command, str]  # at (HH:MM), the command, the actor


def attendance(n: int) -> list[Step]:
    """Day `n`'s logins and logouts: on time, late, early, or on leave."""
    plan: list[Step] = []
    for i, s in enumerate(STAFF, 1):
        if (s, n) in ON_LEAVE:
            continue
        plan.append((LATE.get((s, n), "08:55"), c.Login(i, s), f"staff:{s}"))
        plan.append((EARLY.get((s, n), "17:30"), c.Logout(i), f"staff:{s}"))
    return plan


def pauses(n: int) -> list[Step]:
    plan: list[Step] = []
    for s, d, start, end in PAUSES:
        if d == n:
            i = int(s[1])
            plan += [(start, c.Pause(i, "取档案", 15), f"staff:{s}"),
                     (end, c.Resume(i), f"staff:{s}")]
    return plan


def gaps(n: int) -> list[Step]:
    """Logged out mid-session and back, someone else at the window meanwhile or not."""
    plan: list[Step] = []
    for s, d, out, back, cover in GAPS:
        if d == n:
            i = int(s[1])
            plan.append((out, c.Logout(i), f"staff:{s}"))
            if cover:
                who, start, end = cover
                plan += [(start, c.Login(i, who), f"staff:{who}"),
                         (end, c.Logout(i), f"staff:{who}")]
            plan.append((back, c.Login(i, s), f"staff:{s}"))
    return plan


def out_of_order(n: int) -> list[Step]:
    plan: list[Step] = []
    for s, i, d, service in OUT_OF_ORDER:
        if d == n:
            plan += [("10:30", c.IssueTicket(service), "kiosk"),
                     ("10:30:10", c.IssueTicket(service), "kiosk"),
                     ("10:35", c.CallNumber(i, f"{service}002", "过号返回"), f"staff:{s}"),
                     ("10:40", c.Finish(i), f"staff:{s}"),
                     ("10:41", c.CallNext(i), f"staff:{s}"),
                     ("10:45", c.Finish(i), f"staff:{s}")]
    return plan


def with_overtime(plan: list[Step], n: int) -> list[Step]:
    """The day's plan with its visits served past closing, the staff's logout after them."""
    for s, i, d, service, called, finished in OVERTIME:
        if d == n:
            plan += [("16:50", c.IssueTicket(service), "kiosk"),
                     (called, c.CallNext(i), f"staff:{s}"),
                     (finished, c.Finish(i), f"staff:{s}")]
            # the logout waits for the visit: staff leave when it is done
            plan = [(("17:55" if p[1] == c.Logout(i) and p[0] == "17:30" else p[0]), *p[1:])
                    for p in plan]
    return plan


def graded_visits(ctrl) -> list[Step]:
    """Day 16's visits, each graded on the pad."""
    plan: list[Step] = []
    for k, (s, i, service, grade, by_name) in enumerate(GRADES):
        citizen = ctrl.citizen(ID, "张三") if by_name else None
        plan += [(f"10:{k * 2:02d}:00", c.IssueTicket(service, citizen=citizen), "kiosk"),
                 (f"10:{k * 2:02d}:10", c.CallNext(i), f"staff:{s}"),
                 (f"10:{k * 2 + 1:02d}:00", c.Finish(i), f"staff:{s}"),
                 (f"10:{k * 2 + 1:02d}:10", c.Evaluate(i, grade), f"pad:{i}")]
    return plan


def call_back_and_verify_bad_reviews(h) -> None:
    """Day 16, 17:40: every bad review's case is called back and verified as justified."""
    desk = h.desk
    desk.catch_up()
    for case in desk.list():
        for cmd in (cb.Assign("officer"), cb.RecordCallback(True, "已回访"),
                    cb.Verify(True, "态度生硬属实")):
            desk.act(case.id, cmd, "staff:officer")


def complain_about_s2(h) -> None:
    """Day 20, 11:30: two complaints by phone, one found justified."""
    for s, justified in COMPLAINTS:
        case = h.desk.open_complaint("phone", "窗口人员态度差", "staff:boss",
                                     window=int(s[1]), staff_id=s)
        for cmd in (cb.Assign("officer"), cb.RecordCallback(True, "已联系"),
                    cb.Verify(justified, "核实")):
            h.desk.act(case.id, cmd, "staff:officer")


@pytest.fixture(scope="module")
def november(tmp_path_factory):
    clock = ManualClock(hm(NOV[0], "08:00"))
    with running_hall(access_hall(), tmp_path_factory.mktemp("november"), clock) as h:
        ctrl = h.ctrl

        def do(day: dt.date, hhmm: str, cmd: c.Command, actor: str):
            clock.now = hm(day, hhmm)
            return ctrl.execute(cmd, actor)

        for day in NOV:
            n = day.day
            plan = with_overtime(attendance(n) + pauses(n) + gaps(n) + out_of_order(n), n)
            if n == 16:
                plan += graded_visits(ctrl)
            # stable sort: at one minute, the table's order (the cover leaves, then s2 returns)
            plan.sort(key=lambda p: p[0])
            for hhmm, cmd, actor in plan:
                do(day, hhmm, cmd, actor)
            if n == 16:
                clock.now = hm(day, "17:40")
                call_back_and_verify_bad_reviews(h)
            if n == 20:
                clock.now = hm(day, "11:30")
                complain_about_s2(h)
        # 1 December: s1 late again, which is December's, not November's
        do(DEC_1, "09:30", c.Login(1, "s1"), "staff:s1")
        clock.now = hm(DEC_1, "10:00")
        yield h


# -- the figures, worked out from the story --------------------------------------------------

def minutes(a: str, b: str) -> float:
    return (hm(DEC_1, b) - hm(DEC_1, a)).total_seconds() / 60


def in_hours(a: str, b: str) -> float:
    return sum(max(0.0, minutes(max(a, s0), min(b, s1))) for s0, s1 in SESSIONS)


def story(s: str) -> dict:
    late = [minutes("09:00", t) for (who, _), t in LATE.items() if who == s]
    late = [m for m in late if m > 5]
    early = [minutes(t, "17:30") for (who, _), t in EARLY.items() if who == s]
    early = [m for m in early if m > 5]
    away = [in_hours(a, b) for who, _, a, b in PAUSES if who == s]
    away = [m for m in away if m > 15]
    for who, _, out, back, cover in GAPS:
        if who == s:
            away.append(minutes(out, back) - (minutes(cover[1], cover[2]) if cover else 0))
    mine = [g for g in GRADES if g[0] == s]
    satisfied = sum(1 for g in mine if g[3] in ("非常满意", "满意", "基本满意"))
    return {"late": late, "early": early, "away": away,
            "bad_reviews": sum(1 for g in mine if g[3] in ("不满意", "非常不满意") and g[4]),
            "complaints": sum(1 for who, justified in COMPLAINTS if who == s and justified),
            "out_of_order": sum(1 for x in OUT_OF_ORDER if x[0] == s),
            "overtime": [minutes("17:30", x[5]) for x in OVERTIME if x[0] == s],
            "leave_sessions": 2 * sum(1 for who, _ in ON_LEAVE if who == s),
            "satisfied": satisfied, "evaluated": len(mine)}


def points(f: dict) -> dict:
    """003 考核 (二)(1)(3), 004 六(二)4-5, 003 (5), 002 考核, as the clauses say them."""
    half_days = sum(1 for m in f["late"] + f["early"] + f["away"] if m > 60)
    half_days += 1 if len(f["late"]) + len(f["early"]) >= 4 else 0
    late_early = sum(1 if m <= 30 else 2 for m in f["late"] + f["early"] if m <= 60)
    away = sum(1 if m <= 30 else 2 for m in f["away"] if m <= 60)
    cases = min(f["bad_reviews"] * 1 + f["complaints"] * 2, 10)
    rate = f["satisfied"] / f["evaluated"] if f["evaluated"] else None
    satisfaction = (None if rate is None else 10 if rate == 1 else 9 if rate >= 0.9
                    else 7 if rate >= 0.8 else 5)
    return {"late_early_points": late_early, "absence_points": away,
            "half_day_absences": half_days, "points_deducted": late_early + away + cases + 1.5 * half_days,
            "case_points": cases, "satisfaction_points": satisfaction}


def rows_of(h, month="2026-11", **headers) -> dict[str, dict]:
    with h.client() as http:
        r = http.get("/api/v1/reports/rollup", params={"month": month}, headers=headers)
        assert r.status_code == 200, r.text
        return {row["staff"]: row for row in r.json()}


def test_each_staff_members_month_adds_up_as_the_story_tells_it(november):
    rows = rows_of(november, **november.login("boss", None))
    for s in STAFF:
        f, row = story(s), rows[s]
        assert (row["late"], row["late_minutes"]) == (len(f["late"]), sum(f["late"])), s
        assert (row["early_leave"], row["early_minutes"]) == (len(f["early"]), sum(f["early"])), s
        assert (row["absences"], row["absence_minutes"]) == (len(f["away"]), sum(f["away"])), s
        assert row["sessions_without_login"] == f["leave_sessions"], s
        assert (row["overtime_days"], row["overtime_minutes"]) == (
            len(f["overtime"]), sum(f["overtime"])), s
        assert (row["bad_reviews"], row["complaints"], row["out_of_order_calls"]) == (
            f["bad_reviews"], f["complaints"], f["out_of_order"]), s
        assert row["evaluated"] == f["evaluated"], s
        for key, value in points(f).items():
            assert row[key] == value, (s, key)
    # the one who only covered has a row of nothing: covering is no absence
    assert rows["leaver"]["points_deducted"] == 0 and rows["leaver"]["absences"] == 0
    # s1's December lateness stays in December
    assert rows_of(november, "2026-12", **november.login("boss", None))["s1"]["late"] == 1


def test_the_hand_worked_figures_of_the_story(november):
    """The same month, read as a supervisor would tell it, so the derivation above is checked
    too: s1 late four times (12, 40, 8 and 75 minutes), away 25 minutes paused and 40 logged
    out; s2 early twice (30, 50), away 5 minutes (covered 45 of 50) and 20 over lunch."""
    rows = rows_of(november, **november.login("boss", None))
    s1, s2, s3 = rows["s1"], rows["s2"], rows["s3"]
    assert (s1["late_minutes"], s1["absence_minutes"], s1["half_day_absences"]) == (135, 65, 2)
    # 1 + 2 + 1 late (75 minutes is half a day), 1 + 2 away, 2 half days, 1 bad review
    assert s1["points_deducted"] == 4 + 3 + 3 + 1 and s1["satisfaction_points"] == 5
    assert (s2["early_minutes"], s2["absence_minutes"], s2["points_deducted"]) == (80, 25, 3 + 2 + 2)
    assert s2["satisfaction_points"] is None  # nobody graded s2: no band to fall in
    assert (s3["half_day_absences"], s3["points_deducted"], s3["satisfaction_points"]) == (1, 1.5, 9)


def test_the_roll_up_downloads_with_chinese_headers(november):
    boss = november.login("boss", None)
    with november.client(headers=boss) as http:
        r = http.get("/api/v1/reports/rollup.csv", params={"month": "2026-11"})
        assert r.status_code == 200 and 'filename="rollup-202611.csv"' in r.headers["content-disposition"]
        table = {row["工号"]: row for row in csv.DictReader(io.StringIO(r.content.decode("utf-8-sig")))}
        r = http.get("/api/v1/reports/rollup.xlsx", params={"month": "2026-11"})
        assert r.status_code == 200
        sheet = load_workbook(io.BytesIO(r.content)).active
    assert sheet.title == "月度考核"
    header, *lines = [list(line) for line in sheet.iter_rows(values_only=True)]
    assert header[:3] == ["月份", "工号", "姓名"]
    assert [h for h in header if not re.search("[\u4e00-\u9fff]", h)] == []  # no English left
    assert {"迟到次数", "早退次数", "脱岗分钟", "延时服务分钟", "经核实差评", "经核实投诉",
            "不按顺序叫号", "合计扣分", "满意度得分"} <= set(header)
    book = {line[1]: dict(zip(header, line, strict=True)) for line in lines}
    for s in STAFF:
        f, p = story(s), points(story(s))
        assert int(table[s]["迟到次数"]) == book[s]["迟到次数"] == len(f["late"])
        assert int(table[s]["早退次数"]) == book[s]["早退次数"] == len(f["early"])
        assert float(table[s]["合计扣分"]) == book[s]["合计扣分"] == p["points_deducted"]
        assert book[s]["姓名"] == table[s]["姓名"] == november.ctrl.hall.staff[s].name


def test_only_supervisors_and_admins_read_it_and_a_wrong_month_is_refused(november):
    with november.client() as http:
        for who, window in (("s1", 1), ("officer", None)):
            r = http.get("/api/v1/reports/rollup", headers=november.login(who, window))
            assert r.status_code == 403
        admin = november.login("admin", None)
        assert http.get("/api/v1/reports/rollup", headers=admin).status_code == 200
        for month in ("2026-13", "11-2026", "2027-01"):
            r = http.get("/api/v1/reports/rollup", params={"month": month}, headers=admin)
            assert r.status_code == 422 and r.json()["message"], month


def test_the_halls_own_table_scores_the_same_month_differently(november):
    """A hall that charges 1 point per out-of-order call and halves at 95%: s1 and s3 pay for
    their out-of-order call; s3's 90% falls in the lower band."""
    ctrl = november.ctrl
    table = dataclasses.replace(ctrl.hall.assessment, out_of_order_points=1,
                                satisfaction_bands=((100, 10), (95, 8), (0, 4)))
    hall = dataclasses.replace(ctrl.hall, assessment=table)
    with ctrl.store.reads.snapshot() as db:
        rows = {r["staff"]: r for r in rollup.monthly_rollup(db, hall, "2026-11", ctrl.clock())}
    for s in STAFF:
        assert rows[s]["points_deducted"] == points(story(s))["points_deducted"] + story(s)["out_of_order"]
    assert rows["s3"]["satisfaction_points"] == 4


def test_the_assessment_table_is_read_from_the_config_and_a_wrong_entry_is_named():
    minimal = minimal_hall_dict()
    hall = parse_hall({**minimal, "assessment": {"late_early_points": 0.5, "complaint_points": 3,
                                                 "satisfaction_bands": [[100, 10], [0, 6]]}})
    assert (hall.assessment.late_early_points, hall.assessment.complaint_points) == (0.5, 3)
    assert hall.assessment.satisfaction_bands == ((100, 10), (0, 6))
    assert hall.assessment.bad_review_points == 1  # the rest keep 003's defaults
    for section, key in (({"late_early_points": -1}, "assessment.late_early_points"),
                         ({"tolerance_minutes": "5"}, "assessment.tolerance_minutes"),
                         ({"satisfaction_bands": [[90, 9], [100, 10], [0, 5]]},
                          "assessment.satisfaction_bands[1]"),
                         ({"satisfaction_bands": [[100, 10], [80, 7]]}, "assessment.satisfaction_bands"),
                         ({"satisfaction_bands": [[100, True]]}, "assessment.satisfaction_bands[0]"),
                         ({"half_day_minutes": 20}, "assessment.half_day_minutes"),
                         ({"lateness": 1}, "assessment.lateness")):
        with pytest.raises(ConfigError) as e:
            parse_hall({**minimal, "assessment": section})
        assert e.value.key == key, section


@pytest.mark.parametrize("takeover", [None, "window_cover_started", "b_post_took_over"])
def test_a_pause_ends_when_the_b_post_takes_the_window_however_that_is_recorded(tmp_path, takeover):
    """s1 pauses at 10:00 and comes back at 10:40. With nobody covering that is 40 minutes
    away from the post; when the B post (s2) takes the window over at 10:05, whatever the
    event is called, s1's pause ended then: 5 minutes, within the limit, no absence."""
    from controller.cli import open_hall
    from controller.core.events import from_row
    from controller.core.outcome import Outcome
    from tests.halls import MONDAY, small_hall

    clock = ManualClock(hm(MONDAY, "08:55"))
    ctrl, _ = open_hall(small_hall(), tmp_path, clock)
    try:
        ctrl.execute(c.Login(1, "s1"), "staff:s1")
        clock.now = hm(MONDAY, "10:00")
        ctrl.execute(c.Pause(1, "取档案", 15), "staff:s1")
        if takeover:
            clock.now = hm(MONDAY, "10:05")
            ctrl.store.commit(clock.now, "staff:s2", "take_over", {}, Outcome(
                events=[from_row(takeover, clock.now, 1, None, {"staff": "s2", "post": "B"})]))
        clock.now = hm(MONDAY, "10:40")
        ctrl.execute(c.Resume(1), "staff:s1")
        found = rollup.absences(ctrl.store.db, ctrl.hall, MONDAY, MONDAY, hm(MONDAY, "18:00"))
        assert [(a.staff, a.minutes) for a in found] == ([] if takeover else [("s1", 40)])
    finally:
        ctrl.store.close()
