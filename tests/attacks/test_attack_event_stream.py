"""Attack (issue 14 item 5): the anonymous event stream as a window on personnel data, and
as a way to hold the hall up.

Through the real server (`hallctl run` as a child process). `GET /api/v1/events?after=0`
needs no login: every display in the hall reads it. It must carry what the hall display
shows and nothing more (no logins with staff ids and times, no service times, no pause
whereabouts, no grades), replay no further back than today, and a hundred clients
replaying it at once must not hold up a citizen's ticket.
"""

from __future__ import annotations

import datetime as dt
import json
import selectors
import socket
import threading
import time

import httpx
import pytest

from controller.cli import open_hall
from controller.runtime.clock import ManualClock
from controller.config.hall import load_hall
from controller.core import commands as c
from controller.core import events as ev
from controller.core.outcome import Outcome
from controller.store.hallstore import CommandRow
from tests.server import DEMO_CONFIG, HallProcess

PIN = "1234"
STAFF, SUPERVISOR = "chenjing", "huangjianguo"
STAFF_IDS = ("chenjing", "liuyang", "wangfang", "huangjianguo", "jiangwen", "yangfan")
WEDNESDAY, THURSDAY = "2026-12-02", "2026-12-03"
WHEREABOUTS = "二楼审批科找陈科长"
# what the anonymous stream may carry at all: what the hall display redraws on
DISPLAY_KINDS = {"ticket_issued", "ticket_called", "ticket_recalled", "ticket_missed",
                 "ticket_finished", "ticket_transferred", "ticket_cancelled", "ticket_requeued",
                 "window_opened", "window_closed", "window_paused", "window_resumed", "day_started"}


def start_at(proc: HallProcess, when: str) -> None:
    proc.extra_args = ("--clock-start", when)
    proc.start()


def login(api: httpx.Client, staff: str, window: int | None) -> dict[str, str]:
    r = api.post("/api/v1/auth/login", json={"staff_id": staff, "pin": PIN, "window": window})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


def a_visit_and_a_pause(api: httpx.Client) -> str:
    """chenjing opens window 1, serves a citizen, pauses saying where she went, comes back
    and logs out; a last citizen takes a ticket. The last ticket's id."""
    staff = login(api, STAFF, 1)
    api.post("/api/v1/tickets", json={"service": "A"}).raise_for_status()
    for step in ("call", "recall", "finish"):
        api.post(f"/api/v1/windows/1/{step}", headers=staff).raise_for_status()
    api.post("/api/v1/windows/1/pause", headers=staff,
             json={"reason": "会商", "minutes": 15, "whereabouts": WHEREABOUTS}).raise_for_status()
    api.post("/api/v1/windows/1/resume", headers=staff).raise_for_status()
    api.post("/api/v1/auth/logout", headers=staff).raise_for_status()
    return api.post("/api/v1/tickets", json={"service": "B"}).json()["id"]


def replay(proc: HallProcess, until_ticket: str, headers: dict[str, str] | None = None) -> list[dict]:
    """The stream from the first event on, until the event about `until_ticket`."""
    events = []
    with httpx.Client(base_url=proc.url, timeout=10, headers=headers or {}) as c, \
            c.stream("GET", "/api/v1/events", params={"after": 0}) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line[6:]))
                if events[-1]["ticket"] == until_ticket:
                    return events
    raise AssertionError("the stream ended early")


@pytest.fixture
def hall(tmp_path):
    proc = HallProcess(tmp_path)
    yield proc
    if proc.proc and proc.proc.poll() is None:
        proc.stop()


def test_the_anonymous_stream_shows_what_the_display_shows_and_only_today(hall):
    start_at(hall, f"{WEDNESDAY}T10:00:00+08:00")
    with hall.client() as api:
        a_visit_and_a_pause(api)
    hall.stop()
    start_at(hall, f"{THURSDAY}T10:00:00+08:00")  # the next morning
    with hall.client() as api:
        last = a_visit_and_a_pause(api)
        boss = login(api, SUPERVISOR, None)

    public = replay(hall, last)
    text = json.dumps(public, ensure_ascii=False)
    for word in (*STAFF_IDS, WHEREABOUTS, "actor", "seconds", "staff", "whereabouts"):
        assert word not in text, f"the anonymous stream carries {word!r}"
    assert {e["kind"] for e in public} <= DISPLAY_KINDS
    assert all(e["at"].startswith(THURSDAY) for e in public), "a replay older than today"
    # what the display needs is there: the call, the window's pause and its end
    called = next(e for e in public if e["kind"] == "ticket_called")
    assert (called["window"], called["data"]["label"]) == (1, "A001")
    paused = next(e for e in public if e["kind"] == "window_paused")
    assert (paused["data"]["reason"], paused["data"]["minutes"]) == ("会商", 15)

    # the supervisor's stream still carries all of it, yesterday's too
    full = replay(hall, last, boss)
    assert {e["at"][:10] for e in full} >= {WEDNESDAY, THURSDAY}
    assert any(e["kind"] == "window_opened" and e["data"]["staff"] == STAFF for e in full)
    assert any(e["data"].get("whereabouts") == WHEREABOUTS for e in full)


# -- a hundred replaying clients and a citizen at the kiosk --------------------------------

CLIENTS = 100
EARLIER_DAYS, EVENTS_A_DAY = 20, 2500  # the log since installation: 50,000 events
SEEDED_TICKETS = 2400  # with the calls below, some 2,700 events today
PROMPT = 1.0  # seconds: far from the 4 s a ticket took on main, not a benchmark


def seed_a_busy_day(proc: HallProcess, when: dt.datetime) -> int:
    """The log since installation and today's as a long morning left it, written straight
    to the controller's database before it starts (quickly: earlier days as bare rows,
    without fsync); the id of its last event."""
    hall = load_hall(DEMO_CONFIG)
    clock = ManualClock(when)
    ctrl, _ = open_hall(hall, proc.data, clock, durable=False)
    try:
        # bare rows, written by the store (the logs' one encoding) as one command's events
        ctrl.store.write([CommandRow(
            when - dt.timedelta(days=EARLIER_DAYS), "kiosk", "issue_ticket", {},
            outcome=Outcome(events=[ev.UnknownEvent(
                at=when - dt.timedelta(days=d, seconds=-n), ticket=f"old-{d}-{n}",
                name="ticket_issued", data={"label": f"A{n % 999 + 1:03d}", "service": "A"})
                for d in range(EARLIER_DAYS, 0, -1) for n in range(EVENTS_A_DAY)]))])
        ctrl.execute(c.Login(1, STAFF), f"staff:{STAFF}")
        for i in range(SEEDED_TICKETS):
            clock.advance(seconds=1)
            ctrl.execute(c.IssueTicket(list(hall.services)[i % 10], "kiosk", None, None, None), "kiosk")
            if i % 8 == 0:
                try:
                    ctrl.execute(c.CallNext(1), f"staff:{STAFF}")
                except Exception:
                    pass
        ctrl.execute(c.IssueTicket("B", "kiosk", None, None, None), "kiosk")
        return ctrl.store.last_event_id()
    finally:
        ctrl.store.close()


class Replayers:
    """`CLIENTS` raw connections asking for the whole stream at once, read in one thread."""

    def __init__(self, port: int, last_id: int) -> None:
        self.marker = f"id: {last_id}\n".encode()
        self.selector = selectors.DefaultSelector()
        self.received: dict[socket.socket, bytearray] = {}
        for _ in range(CLIENTS):
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(b"GET /api/v1/events?after=0 HTTP/1.1\r\nHost: hall\r\n\r\n")
            s.setblocking(False)
            self.selector.register(s, selectors.EVENT_READ)
            self.received[s] = bytearray()
        self.done: set[socket.socket] = set()
        self.started = threading.Event()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        deadline = time.monotonic() + 120
        while len(self.done) < CLIENTS and time.monotonic() < deadline:
            for key, _ in self.selector.select(0.5):
                s = key.fileobj
                data = s.recv(65536)
                buf = self.received[s]
                buf += data
                if len(buf) > 1000:
                    self.started.set()
                if not data or self.marker in buf[-65536 - len(self.marker):]:
                    self.done.add(s)
                    self.selector.unregister(s)

    def close(self) -> None:
        self.thread.join(120)
        for s in self.received:
            s.close()


def test_a_ticket_is_issued_promptly_while_a_hundred_clients_replay(hall):
    last = seed_a_busy_day(hall, dt.datetime.fromisoformat(f"{THURSDAY}T09:00:00+08:00"))
    start_at(hall, f"{THURSDAY}T11:00:00+08:00")
    port = int(hall.url.rsplit(":", 1)[1])
    with hall.client() as api:
        # the morning goes on: a citizen takes a ticket before the displays reconnect
        assert api.post("/api/v1/tickets", json={"service": "C"}).status_code == 201
        replayers = Replayers(port, last)
        try:
            assert replayers.started.wait(30), "no replay began"
            took = []
            for _ in range(3):
                t0 = time.monotonic()
                try:
                    r = api.post("/api/v1/tickets", json={"service": "C"})
                except httpx.TimeoutException:  # held up past the client's patience
                    took.append(time.monotonic() - t0)
                    break
                took.append(time.monotonic() - t0)
                assert r.status_code == 201, r.text
                time.sleep(0.2)
            busy = CLIENTS - len(replayers.done)
        finally:
            replayers.close()
    figure = f"ticket issues took {[round(t, 2) for t in took]} s ({busy} of {CLIENTS} replaying)"
    print(figure)  # pytest -s shows it (docs/reliability.md, Attacks)
    assert max(took) <= PROMPT, figure
    assert len(replayers.done) == CLIENTS, "every client got its whole replay"
