"""帮办代办 (001 5.1.6.3): a kiosk calls the guidance desk, through the real server.

The call is a command through the hall thread with its event; it stands until the guidance
desk or the supervisor answers it, across a restart; pressing again while it stands calls
nobody twice; only the desk and the supervisor answer it.
"""

from __future__ import annotations

import json
import sqlite3

import httpx

from controller.assembly import DB_NAME
from tests.server import HallProcess


def login(hall: HallProcess, staff_id: str, window: int | None = None) -> dict[str, str]:
    r = httpx.post(f"{hall.url}/api/v1/auth/login",
                   json={"staff_id": staff_id, "pin": "1234", "window": window}, timeout=5)
    r.raise_for_status()
    return {"Authorization": f"Bearer {r.json()['token']}"}


def guidance_events(hall: HallProcess) -> list[tuple[str, dict]]:
    db = sqlite3.connect(hall.data / DB_NAME)
    try:
        return [(kind, json.loads(data)) for kind, data in db.execute(
            "SELECT kind, data FROM events WHERE kind LIKE 'guidance_%' ORDER BY id")]
    finally:
        db.close()


def test_a_call_for_help_stands_until_the_guidance_desk_answers_it_across_a_restart(tmp_path):
    hall = HallProcess(tmp_path)
    hall.start()
    try:
        calls = f"{hall.url}/api/v1/guidance-calls"
        with hall.client() as kiosk:
            first = kiosk.post("/api/v1/kiosk/guidance")
            assert first.status_code == 200, first.text
            assert first.json()["kiosk"] == "entrance"
            assert "导办台" in first.json()["message"]
            again = kiosk.post("/api/v1/kiosk/guidance")  # a second press: the same call
            assert again.json()["called_at"] == first.json()["called_at"]
        # nobody without the kiosk's key calls the desk
        assert httpx.post(f"{hall.url}/api/v1/kiosk/guidance", timeout=5).status_code == 401
        boss = login(hall, "huangjianguo")
        assert [c["kiosk"] for c in httpx.get(calls, headers=boss, timeout=5).json()] == ["entrance"]

        hall.stop()
        hall.start(same_port=True)
        desk = login(hall, "xudan")  # 导办台: logs in without a window
        standing = httpx.get(calls, headers=desk, timeout=5).json()
        assert [c["kiosk"] for c in standing] == ["entrance"]
        assert standing[0]["called_at"] == first.json()["called_at"]

        # a window's staff neither read nor answer the desk's calls
        window = login(hall, "chenjing", 1)
        assert httpx.get(calls, headers=window, timeout=5).status_code == 403
        assert httpx.post(f"{calls}/entrance/answer", headers=window, timeout=5).status_code == 403

        answered = httpx.post(f"{calls}/entrance/answer", headers=desk, timeout=5)
        assert answered.status_code == 200 and answered.json() == []
        late = httpx.post(f"{calls}/entrance/answer", headers=boss, timeout=5)
        assert late.status_code == 409 and late.json()["error"] == "no_guidance_call"
        assert "帮办代办" in late.json()["message"]

        hall.stop()
        hall.start(same_port=True)
        assert httpx.get(calls, headers=login(hall, "huangjianguo"), timeout=5).json() == []
    finally:
        hall.stop()
    events = guidance_events(hall)
    assert [kind for kind, _ in events] == ["guidance_called", "guidance_answered"]
    assert events[1][1]["kiosk"] == "entrance" and events[1][1]["staff_name"] == "徐丹"
