"""The supervisor's floor through the real server (issue 17 item 5): [layout] read from the hall
file with a clear error naming the key, and the alerts the controller knows, listed by
GET /api/v1/alerts whenever it is asked (a page opened late sees what stood before)."""

from __future__ import annotations

import copy

import pytest

from controller.config.hall import parse_config
from controller.config.settings import FloorLayout, FloorZone
from controller.config.tomlkeys import ConfigError
from controller.core.commands import ReportDevice
from controller.runtime.clock import ManualClock
from tests.halls import at
from tests.server import running_hall
from tests.test_config import minimal_hall_dict
from tests.test_floor import floor_hall


def with_layout(*zones: dict) -> dict:
    data = copy.deepcopy(minimal_hall_dict())
    data["layout"] = {"zones": list(zones)}
    return data


def test_the_layout_places_each_window_by_zone_and_row():
    config = parse_config(with_layout({"name": "综合受理区", "rows": [[2, 0, 1]]}))
    assert config.layout == FloorLayout((FloorZone("综合受理区", ((2, 0, 1),)),))
    assert config.layout.json() == {"zones": [{"name": "综合受理区", "rows": [[2, 0, 1]]}]}


def test_without_a_layout_the_windows_stand_in_number_order():
    data = minimal_hall_dict()
    assert parse_config(data).layout == FloorLayout((FloorZone("服务大厅", ((1, 2),)),))
    assert FloorLayout.default(range(1, 11)).zones[0].rows == ((1, 2, 3, 4, 5, 6, 7, 8), (9, 10))


BAD_LAYOUTS = [
    ("unknown window", [{"name": "一区", "rows": [[1, 2, 3]]}], "layout.zones[0].rows[0][2]", "there is no window 3"),
    ("window twice", [{"name": "一区", "rows": [[1, 2]]}, {"name": "二区", "rows": [[2]]}],
     "layout.zones[1].rows[0][0]", "duplicate window 2; already used at layout.zones[0].rows[0][1]"),
    ("window left out", [{"name": "一区", "rows": [[1]]}], "layout.zones", "window(s) 2 have no place"),
    ("row not an array", [{"name": "一区", "rows": [1, 2]}], "layout.zones[0].rows[0]", "an array of 1-12"),
    ("row too wide", [{"name": "一区", "rows": [[1, 2] + [0] * 11]}], "layout.zones[0].rows[0]", "1-12"),
    ("number as text", [{"name": "一区", "rows": [["1", 2]]}], "layout.zones[0].rows[0][0]", "a window number"),
    ("no rows", [{"name": "一区", "rows": []}], "layout.zones[0].rows", "at least one row"),
    ("no name", [{"rows": [[1, 2]]}], "layout.zones[0].name", "missing"),
    ("zone typo", [{"name": "一区", "row": [[1, 2]]}], "layout.zones[0].row", "did you mean 'rows'"),
    ("no zones", [], "layout.zones", "at least one [[zones]]"),
]


@pytest.mark.parametrize(("zones", "key", "reason"), [c[1:] for c in BAD_LAYOUTS], ids=[c[0] for c in BAD_LAYOUTS])
def test_a_bad_layout_names_its_key(zones, key, reason):
    with pytest.raises(ConfigError) as caught:
        parse_config(with_layout(*zones), source="hall.toml")
    assert (caught.value.key, caught.value.source) == (key, "hall.toml")
    assert reason in caught.value.reason, caught.value.reason


@pytest.fixture
def morning(tmp_path):
    clock = ManualClock(at("08:55"))
    layout = FloorLayout((FloorZone("东区", ((2, 1),)), FloorZone("西区", ((3, 0, 4),))))
    with running_hall(floor_hall(), tmp_path, clock, layout=layout) as hall:
        hall.ctrl.tick()
        clock.advance(minutes=5)
        hall.boss = hall.login("boss", None)
        yield hall


def alerts(hall) -> list[dict]:
    with hall.client() as api:
        r = api.get("/api/v1/alerts", headers=hall.boss)
    assert r.status_code == 200, r.text
    return r.json()


def test_the_floor_is_served_as_the_hall_lays_it_out(morning):
    with morning.client() as api:
        assert api.get("/api/v1/floor", headers=morning.boss).json() == {
            "zones": [{"name": "东区", "rows": [[2, 1]]}, {"name": "西区", "rows": [[3, 0, 4]]}]}
        staff = morning.login("li", 1)
        assert api.get("/api/v1/floor", headers=staff).json()["error"] == "forbidden_role"
        assert api.get("/api/v1/alerts", headers=staff).json()["error"] == "forbidden_role"


def test_a_device_fault_stands_from_when_it_began_until_it_ends(morning):
    hall = morning
    for s in ("li", "wang", "zhao"):
        hall.login(s, {"li": 1, "wang": 2, "zhao": 3}[s])
    assert alerts(hall) == []
    hall.ctrl.execute(ReportDevice("hall-controller", "offline", "MQTT 服务器无应答"), "system")
    since = hall.clock().isoformat()
    hall.clock.advance(minutes=3)
    # the same fault reported again (a reconnect that failed): it still stands from its start
    hall.ctrl.execute(ReportDevice("hall-controller", "offline", "连接被拒绝"), "system")
    assert alerts(hall) == [{"kind": "device_fault", "window": None, "since": since, "subject": "hall-controller",
                             "text": "设备 hall-controller（控制器与 MQTT 服务器的连接）离线：连接被拒绝",
                             "urgent": True}]
    hall.ctrl.execute(ReportDevice("hall-controller", "online", ""), "system")
    assert alerts(hall) == []


def test_a_long_wait_an_out_of_order_call_and_an_overdue_case_are_listed(morning):
    hall = morning
    for staff, window in (("li", 1), ("wang", 2), ("zhao", 3)):
        hall.login(staff, window)
    with hall.client() as api:
        first = api.post("/api/v1/tickets", json={"service": "A"}).json()
        api.post("/api/v1/tickets", json={"service": "A"})
        hall.clock.advance(minutes=31)  # the hall's tidal_open_wait_minutes is 30
        hall.ctrl.tick()
        long = [a for a in alerts(hall) if a["kind"] == "long_wait"]
        assert [(a["subject"], a["since"], a["text"]) for a in long] == [
            ("A", first["issued_at"][:11] + "09:30:00+08:00", "A 社保医保 最长已等 31 分钟，2 人等候")]

    # a complaint about window 2 whose answer is not given within its 2 working days
    case = hall.desk.open_complaint("phone", "等了很久没人叫号", "staff:boss", window=2)
    hall.clock.advance(days=3)  # Thursday
    hall.ctrl.tick()
    hall.boss, wang = hall.login("boss", None), hall.login("wang", 2)
    with hall.client() as api:
        api.post("/api/v1/tickets", json={"service": "A"})
        second = api.post("/api/v1/tickets", json={"service": "A"}).json()
        # window 2 (B, then A) calls the second A ticket before the first, saying why
        r = api.post("/api/v1/windows/2/call-number", headers=wang,
                     json={"number": second["number"], "reason": "其他", "note": "陪同老人"})
        assert r.status_code == 200, r.text
    listed = alerts(hall)
    kinds = [a["kind"] for a in listed]
    assert "out_of_order_call" in kinds and "case_overdue" in kinds
    call = next(a for a in listed if a["kind"] == "out_of_order_call")
    assert (call["window"], call["urgent"]) == (2, False)
    assert call["text"] == f"2号窗口（王强）叫指定号 {second['number']}：其他 陪同老人"
    overdue = next(a for a in listed if a["kind"] == "case_overdue")
    assert (overdue["window"], overdue["subject"], overdue["urgent"]) == (2, f"{case.id}:feedback_due", True)
    assert overdue["since"] == case.feedback_due.isoformat()
    assert overdue["text"].startswith(f"投诉案件 {case.id}，2号窗口：答复已超过期限 ")
    # urgent first
    urgent = [a["urgent"] for a in listed]
    assert urgent == sorted(urgent, reverse=True)
