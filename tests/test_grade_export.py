"""The 好差评 grade export on `hallctl run --simulate` with the demo hall: a visit graded on the
simulated pad, exported with the national code table (非常满意 = 5 … 非常不满意 = 1, as the
provincial 好差评 interfaces publish it) unless the hall's [export] grade_codes or the request
asks for the reversed one; and a grade whose prompt outlived a pause and a controller crash."""

from __future__ import annotations

from tests.server import HallProcess, wait_for

def graded_visit(api, grade_key: int) -> str:
    """chenjing serves one citizen at window 1 and the citizen presses `grade_key` on the pad."""
    ticket = api.post("/api/v1/tickets", json={"service": "A"}).json()["id"]
    r = api.post("/api/v1/auth/login", json={"staff_id": "chenjing", "pin": "1234", "window": 1})
    staff = {"Authorization": f"Bearer {r.json()['token']}"}
    assert api.post("/api/v1/windows/1/call", headers=staff).json()["ticket"]["id"] == ticket
    assert api.post("/api/v1/windows/1/finish", headers=staff).status_code == 200
    wait_for(lambda: api.get("/api/v1/windows/1", headers=staff).json()["evaluating"], 10)
    assert api.post("/sim/pads/1/grade", json={"grade": grade_key}).status_code == 200
    wait_for(lambda: not api.get("/api/v1/windows/1", headers=staff).json()["evaluating"], 10)
    return ticket


def supervisor(api) -> dict[str, str]:
    r = api.post("/api/v1/auth/login", json={"staff_id": "huangjianguo", "pin": "1234", "window": None})
    return {"Authorization": f"Bearer {r.json()['token']}"}


def today(api) -> dict[str, str]:
    day = api.get("/api/v1/hall").json()["day"]  # the hall's own clock's day
    return {"from": day, "to": day}


def codes(api, boss, **params) -> dict[str, int]:
    rows = api.get("/api/v1/exports/grades", headers=boss, params={**today(api), **params}).json()
    return {r["grade"]: r["grade_code"] for r in rows}


def test_the_national_table_is_the_default_and_the_reversed_one_is_selectable(tmp_path):
    proc = HallProcess(tmp_path, "--simulate")
    proc.start()
    try:
        with proc.client() as api:
            graded_visit(api, 5)  # 非常不满意, the pad's fifth key
            boss = supervisor(api)
            assert codes(api, boss) == {"非常不满意": 1}
            assert codes(api, boss, mapping="national") == {"非常不满意": 1}
            assert codes(api, boss, mapping="reversed") == {"非常不满意": 5}
            csv = api.get("/api/v1/exports/grades", headers=boss, params={**today(api), "format": "csv"})
            assert 'filename="grades-national-' in csv.headers["content-disposition"]
            old = api.get("/api/v1/exports/grades", headers=boss,
                          params={**today(api), "mapping": "gbt39046"})
            assert old.status_code == 422  # the misnamed table is gone, never silently remapped
    finally:
        proc.stop()

    # the hall whose platform numbers the other way says so once, in its config
    proc = HallProcess(tmp_path, "--simulate", rules={"grade_codes": '"reversed"'})
    proc.start()
    try:
        with proc.client() as api:
            boss = supervisor(api)
            assert codes(api, boss) == {"非常不满意": 5}
            assert codes(api, boss, mapping="national") == {"非常不满意": 1}
    finally:
        proc.stop()


def test_a_prompt_left_by_a_pause_survives_a_controller_crash_and_the_grade_lands(tmp_path):
    proc = HallProcess(tmp_path, "--simulate")
    proc.start()
    try:
        with proc.client() as api:
            ticket = api.post("/api/v1/tickets", json={"service": "A"}).json()["id"]
            r = api.post("/api/v1/auth/login", json={"staff_id": "chenjing", "pin": "1234", "window": 1})
            staff = {"Authorization": f"Bearer {r.json()['token']}"}
            api.post("/api/v1/windows/1/call", headers=staff)
            assert api.post("/api/v1/windows/1/finish", headers=staff).status_code == 200
            r = api.post("/api/v1/windows/1/pause", headers=staff, json={"reason": "临时离开", "minutes": 10})
            assert r.status_code == 200, r.text
            assert api.get("/api/v1/windows/1", headers=staff).json()["evaluating"] == ticket
        proc.kill()  # the controller dies while the citizen is still reading the pad
        proc.start(same_port=True)
        with proc.client() as api:
            assert api.post("/sim/pads/1/grade", json={"grade": 5}).status_code == 200
            boss = supervisor(api)
            assert wait_for(lambda: codes(api, boss), 10) == {"非常不满意": 1}
    finally:
        proc.stop()
