"""The hall display page keeps up through a broker restart and a controller restart:
it reconnects by itself and shows the current state, never needing a reload (a TV
above the waiting area has nobody to press F5)."""

from __future__ import annotations

import httpx
from playwright.sync_api import expect

from tests.browser import TV, open_page
from tests.server import HallProcess


def login(url: str, staff_id: str, window: int) -> dict[str, str]:
    r = httpx.post(f"{url}/api/v1/auth/login",
                   json={"staff_id": staff_id, "pin": "1234", "window": window}, timeout=5)
    r.raise_for_status()
    return {"Authorization": f"Bearer {r.json()['token']}"}


def take_and_call(url: str, service: str, window: int, headers: dict[str, str]) -> str:
    # taken by the window's own staff member (the kiosk channel needs a kiosk's key or a login)
    httpx.post(f"{url}/api/v1/tickets", json={"service": service}, headers=headers,
               timeout=5).raise_for_status()
    r = httpx.post(f"{url}/api/v1/windows/{window}/call", headers=headers, timeout=5)
    r.raise_for_status()
    return r.json()["ticket"]["number"]


def test_the_display_keeps_up_through_a_broker_restart_and_a_controller_restart(
        browser, mosquitto, tmp_path):
    hall = HallProcess(tmp_path, "--simulate", mqtt=(mosquitto.host, mosquitto.port))
    hall.start()
    try:
        url = hall.url
        display = open_page(browser, f"{url}/display", TV)
        display.evaluate("window.__notReloaded = true")
        headers = login(url, "chenjing", 1)
        first = take_and_call(url, "A", 1, headers)
        expect(display.locator("#newest-number")).to_have_text(first, timeout=1000)

        # the MQTT broker restarts: the page's stream does not depend on it
        mosquitto.restart(down_for=0.5)
        second = take_and_call(url, "A", 1, headers)
        expect(display.locator("#newest-number")).to_have_text(second, timeout=2000)

        # the controller is killed; the page says it lost its line, and keeps trying
        hall.kill()
        expect(display.locator("#live")).to_be_visible(timeout=5000)
        expect(display.locator("#live")).to_contain_text("连接中断")
        hall.start(same_port=True)

        # back: it shows the state the controller kept (window 1 still serving `second`)
        # and what happens next, without a reload
        expect(display.locator("#live")).to_be_hidden(timeout=10_000)
        third = take_and_call(url, "A", 1, headers)  # the staff token survived the restart
        expect(display.locator("#newest-number")).to_have_text(third, timeout=2000)
        expect(display.locator(".win[data-window='1']")).to_contain_text(third)
        pause = httpx.post(f"{url}/api/v1/windows/1/finish", headers=headers, timeout=5)
        pause.raise_for_status()
        httpx.post(f"{url}/api/v1/windows/1/pause", headers=headers, timeout=5,
                   json={"reason": "工间休息", "minutes": 10}).raise_for_status()
        expect(display.locator(".win[data-window='1']")).to_have_attribute("data-state", "paused",
                                                                           timeout=2000)
        assert display.evaluate("window.__notReloaded === true"), "the page was reloaded"
        assert display.errors == []
    finally:
        hall.stop()
