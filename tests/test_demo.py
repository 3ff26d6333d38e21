"""The newcomer's demo (issue 17 item 9), against `hallctl run` as a child process: `make demo`
takes PORT=, DATA= and CONFIG=; the start banner points at the start page; /docs and /redoc
draw with no request leaving the machine; the 设备模拟 page (/sim, a demo's only) places a
card, empties the printer and grades on a pad with no curl; Ctrl+C stops the demo within
2 s with no traceback, even with pages holding their event streams, and it starts again at
once on the same port and data directory.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from playwright.sync_api import expect

from tests.browser import open_page, screenshot
from tests.server import DEMO_CONFIG, REPO, HallProcess, free_port, wait_for

SMALL_DESK = {"width": 1280, "height": 1024}  # a visitor's laptop or an office monitor
STOP_SECONDS = 2.0


class InterruptibleHall(HallProcess):
    """A hall that takes SIGINT as a terminal's Ctrl+C does: a child started from a background
    job (CI, a test runner) inherits SIGINT ignored, and Python keeps it so."""

    def popen_options(self) -> dict:
        return {"preexec_fn": lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)}

    def this_start(self) -> str:
        """What the controller printed since it was last started."""
        return self.log.read_text(encoding="utf-8", errors="replace").rsplit("--- start on port", 1)[-1]


def demo_hall_file(tmp_path: Path, name: str) -> Path:
    """The demo hall under another name, with its embedded broker on a free port."""
    text = DEMO_CONFIG.read_text(encoding="utf-8")
    text, n = re.subn(r'embedded_listen = "127\.0\.0\.1:\d+"',
                      f'embedded_listen = "127.0.0.1:{free_port()}"', text)
    assert n == 1
    text = text.replace('name = "万州区政务服务中心"', f'name = "{name}"', 1)
    path = tmp_path / "my-hall.toml"
    path.write_text(text, encoding="utf-8")
    return path


def open_event_stream(port: int) -> socket.socket:
    """What every display and counter page holds open: /api/v1/events, headers received."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(b"GET /api/v1/events HTTP/1.1\r\nHost: hall\r\nAccept: text/event-stream\r\n\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(4096)
    assert head.startswith(b"HTTP/1.1 200"), head
    return s


def rest_of(stream: socket.socket) -> bytes:
    """Everything the server still sends on `stream`, until it closes the connection."""
    got = b""
    while chunk := stream.recv(65536):
        got += chunk
    return got


# -- make demo, the banner ---------------------------------------------------------------------

def test_make_demo_takes_the_port_the_data_directory_and_the_hall_file(tmp_path):
    port, data = free_port(), tmp_path / "my-data"
    config = demo_hall_file(tmp_path, "演示大厅乙")
    dry = subprocess.run(["make", "-n", "demo", f"PORT={port}", f"DATA={data}", f"CONFIG={config}"],
                         cwd=REPO, capture_output=True, text=True, check=True)
    command = shlex.split(next(line for line in dry.stdout.splitlines() if "hallctl run" in line))
    assert command[0].endswith("bin/hallctl") and command[1] == "run"
    # the command make would run, with this checkout's interpreter
    log = tmp_path / "demo.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "controller.cli", *command[1:], "--log-level", "warning"],
                                cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        def healthy() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=1).status_code == 200
            except httpx.TransportError:
                assert proc.poll() is None, log.read_text(encoding="utf-8")
                return False
        wait_for(healthy, 30)
        assert httpx.get(f"http://127.0.0.1:{port}/api/v1/hall", timeout=5).json()["hall"]["name"] == "演示大厅乙"
        assert (data / "hall.sqlite3").exists()
        assert httpx.get(f"http://127.0.0.1:{port}/sim/devices", timeout=5).status_code == 200  # --simulate
    finally:
        proc.terminate()
        proc.wait(15)
    assert proc.returncode == 0, log.read_text(encoding="utf-8")


def test_the_banner_points_at_the_start_page_and_names_every_page(tmp_path):
    hall = InterruptibleHall(tmp_path, "--simulate")
    hall.start()
    try:
        printed = hall.this_start()
    finally:
        hall.stop()
    lines = printed.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("万州区政务服务中心: "))
    assert lines[first].startswith(f"万州区政务服务中心: {hall.url}/  (data in ")
    listed = lines[first + 1:first + 11]
    for title, path in [("取号机", "/kiosk"), ("大厅叫号屏", "/display"), ("窗口工作台", "/counter"),
                        ("现场管理", "/supervisor"), ("设备模拟（演示）", "/sim"), ("接口文档 (API)", "/docs")]:
        assert f"  {title}  {hall.url}{path}" in listed, listed


def test_a_hall_without_simulate_has_no_simulator_page(tmp_path, browser):
    hall = HallProcess(tmp_path)
    hall.start()
    try:
        assert httpx.get(f"{hall.url}/sim", timeout=5).status_code == 404
        assert httpx.get(f"{hall.url}/sim/devices", timeout=5).status_code == 404
        assert "/sim" not in hall.output()
        index = open_page(browser, f"{hall.url}/", SMALL_DESK)
        expect(index.locator("#pages a[href='/kiosk']")).to_be_visible()
        index.wait_for_load_state("networkidle")  # the page has asked for the simulator's list
        expect(index.locator("#sim-link")).to_have_count(0)
        assert index.errors == []
    finally:
        hall.stop()


# -- Ctrl+C -------------------------------------------------------------------------------------

def test_ctrl_c_stops_within_2_s_with_no_traceback_and_the_hall_starts_again_at_once(tmp_path):
    hall = InterruptibleHall(tmp_path, "--simulate", "--log-level", "info")
    hall.start()
    port = int(hall.url.rsplit(":", 1)[1])
    # two screens hold their event streams, as a display and a counter page do
    streams = [open_event_stream(port) for _ in range(2)]
    try:
        started = time.monotonic()
        hall.proc.send_signal(signal.SIGINT)
        code = hall.proc.wait(15)
        took = time.monotonic() - started
        printed = hall.this_start()
        assert code == 0, printed
        assert took < STOP_SECONDS, f"Ctrl+C took {took:.2f} s:\n{printed}"
        assert "Traceback" not in printed and "ERROR" not in printed, printed
        # each stream was ended as a complete response: its page reconnects by itself
        for stream in streams:
            assert rest_of(stream).endswith(b"0\r\n\r\n")
    finally:
        for stream in streams:
            stream.close()

    # at once, on the same port and data directory (start() waits for /api/v1/health 200)
    hall.start(same_port=True)
    try:
        assert httpx.get(f"{hall.url}/api/v1/health", timeout=5).status_code == 200
    finally:
        hall.stop()


def test_sigterm_stops_as_ctrl_c_does(tmp_path):
    """A service manager's stop: the same prompt, clean end (the hall is closed, exit 0)."""
    hall = InterruptibleHall(tmp_path, "--simulate")
    hall.start()
    stream = open_event_stream(int(hall.url.rsplit(":", 1)[1]))
    try:
        started = time.monotonic()
        code = hall.stop()
        took = time.monotonic() - started
    finally:
        stream.close()
    printed = hall.this_start()
    assert code == 0 and took < STOP_SECONDS, f"exit {code} after {took:.2f} s:\n{printed}"
    assert "Traceback" not in printed, printed


# -- /docs with no internet ---------------------------------------------------------------------

def only_this_machine(page) -> list[str]:
    """Abort every request that would leave 127.0.0.1; the list of those aborted."""
    outside: list[str] = []

    def route(r) -> None:
        if urlsplit(r.request.url).hostname == "127.0.0.1":
            r.continue_()
        else:
            outside.append(r.request.url)
            r.abort()
    page.context.route("**/*", route)
    return outside


def test_the_api_documentation_draws_with_no_outside_request(browser, demo_hall):
    page = open_page(browser, "about:blank", SMALL_DESK)
    outside = only_this_machine(page)
    page.goto(f"{demo_hall.url}/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Hall controller API")
    expect(page.locator(".opblock-summary-path").first).to_be_visible()
    assert page.locator(".opblock").count() > 50  # every route, from /openapi.json
    expect(page.locator(".swagger-ui .info .description")).to_contain_text("政务服务中心")
    screenshot(page, "demo-docs", ".swagger-ui .info .description p")

    assert outside == []

    page.goto(f"{demo_hall.url}/redoc")
    expect(page.locator("h1").first).to_contain_text("Hall controller API")
    expect(page.get_by_text("Server-sent events for every change").first).to_be_attached()
    # ReDoc's own "API docs by Redocly" badge is an image on its makers' site: the one thing
    # that does not draw offline
    assert set(outside) <= {"https://cdn.redoc.ly/redoc/logo-mini.svg"}, outside
    assert page.errors == []


# -- the simulator's page -----------------------------------------------------------------------

def staff_login(url: str, staff_id: str, window: int | None) -> dict[str, str]:
    r = httpx.post(f"{url}/api/v1/auth/login", json={"staff_id": staff_id, "pin": "1234", "window": window},
                   timeout=5)
    r.raise_for_status()
    return {"Authorization": f"Bearer {r.json()['token']}"}


def test_a_visitor_works_the_devices_from_the_sim_page_with_no_curl(browser, demo_hall):
    url = demo_hall.url
    index = open_page(browser, f"{url}/", SMALL_DESK)
    expect(index.locator("#sim-link")).to_contain_text("设备模拟")
    index.click("#sim-link")
    index.wait_for_url(f"{url}/sim")
    page = index
    expect(page.locator("#card option[value='elderly']")).to_have_count(1)

    with demo_hall.client() as kiosk:
        # a card on the kiosk's reader: the kiosk reads 张建国's card
        page.select_option("#card", "elderly")
        page.click("#place")
        expect(page.locator("#toast")).to_contain_text("已放上身份证：张建国")
        wait_for(lambda: (kiosk.get("/api/v1/kiosks/entrance").json()["card"] or {})
                 .get("name_masked", "").startswith("张"), 10)
        page.click("#remove")
        expect(page.locator("#toast")).to_contain_text("已取走身份证")

        # the printer runs out of paper: the page and the kiosk both say so
        page.click("#paper-out")
        expect(page.locator("#paper-state")).to_have_text("缺纸")
        wait_for(lambda: kiosk.get("/api/v1/kiosks/entrance").json()["printer"]["state"] == "fault", 15)
        page.click("#paper-ok")
        expect(page.locator("#paper-state")).to_have_text("正常")
        wait_for(lambda: kiosk.get("/api/v1/kiosks/entrance").json()["printer"]["state"] == "online", 15)

        # window 1 calls with its keypad, ends the visit, and the citizen grades on the pad
        ticket = kiosk.post("/api/v1/tickets", json={"service": "A"}).json()
        staff = staff_login(url, "chenjing", 1)
        page.select_option("#keypad", "1")
        page.click("#key-call_next")
        expect(page.locator("#toast")).to_contain_text("已按下 1 号窗口的「叫号」键")
        window = lambda: httpx.get(f"{url}/api/v1/windows/1", headers=staff, timeout=5).json()  # noqa: E731
        wait_for(lambda: (window()["current"] or {}).get("id") == ticket["id"], 10)
        page.click("#key-finish")
        wait_for(lambda: window()["evaluating"], 10)
        page.select_option("#pad", "1")
        page.click("#grade-1")
        expect(page.locator("#toast")).to_contain_text("1 号窗口评价器：非常满意")
        wait_for(lambda: not window()["evaluating"], 10)
        boss = staff_login(url, "huangjianguo", None)
        day = httpx.get(f"{url}/api/v1/hall", timeout=5).json()["day"]
        grades = httpx.get(f"{url}/api/v1/exports/grades", headers=boss,
                           params={"from": day, "to": day}, timeout=5).json()
        assert [(g["ticket"], g["grade"]) for g in grades] == [(ticket["id"], "非常满意")], grades

    shot = screenshot(page, "demo-sim", "header.bar h1")
    assert shot.exists()
    # every card of the page fits the visitor's screen side by side, none cut off
    for card in ("#readers", "#printers", "#keypads", "#pads"):
        box = page.locator(card).bounding_box()
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= SMALL_DESK["width"], (card, box)
    assert page.errors == []
