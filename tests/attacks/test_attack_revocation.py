"""Attack (issue 14 item 2): a session that should have ended goes on acting.

Through the real server (`hallctl run` as a child process). Each story is the way a hall
breaks it: a second device left logged in after logout, a tablet's token kept overnight, a
colleague who takes the window over while the old page is still open, a leaver disabled in
the middle of a visit whose keypad is still on the desk, and a supervisor's event stream
left open on a screen when the account is disabled.

Tokens end at logout (all of that login), at the day change, when another person logs in
at the window, and on disable (which also closes the window and stops its keypad); open
streams of a revoked session close within a second.
"""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from tests.server import HallProcess, wait_for

PIN = "1234"
STAFF, COVER, OTHER = "chenjing", "liuyang", "wangfang"  # A posts of 1, 2, 3; liuyang covers 1
SUPERVISOR, ADMIN = "huangjianguo", "jiangwen"
THURSDAY, FRIDAY = "2026-12-03", "2026-12-04"
CLOSE_WITHIN = 1.0  # seconds: how soon an open stream of a revoked session must end


def login(api: httpx.Client, staff: str, window: int | None) -> dict[str, str]:
    r = api.post("/api/v1/auth/login", json={"staff_id": staff, "pin": PIN, "window": window})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


class OpenStream:
    """An event stream held open in a thread, as a page or a screen holds it; `ended_after`
    is how long after `mark()` the server closed it (None while it is open)."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        self.opened = threading.Event()
        self.ended_at: float | None = None
        self.marked_at: float | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(url, headers), daemon=True)
        self.thread.start()
        assert self.opened.wait(10), "the stream did not open"

    def _run(self, url: str, headers: dict[str, str]) -> None:
        try:
            with httpx.Client(base_url=url, timeout=httpx.Timeout(5, read=30)) as c, \
                    c.stream("GET", "/api/v1/events", headers=headers) as r:
                assert r.status_code == 200, r.read()
                self.opened.set()
                for _ in r.iter_bytes():
                    pass
            self.ended_at = time.monotonic()
        except BaseException as e:  # a read timeout: the server never closed it
            self.error = e
            self.opened.set()

    def mark(self) -> None:
        self.marked_at = time.monotonic()

    def ended_after(self, wait: float) -> float | None:
        self.thread.join(wait)
        if self.ended_at is None:
            return None
        return max(0.0, self.ended_at - self.marked_at)


@pytest.fixture(scope="module")
def hall(tmp_path_factory):
    proc = HallProcess(tmp_path_factory.mktemp("revocation"), "--simulate")
    proc.start()
    yield proc
    proc.stop()


def test_logging_out_ends_every_token_of_that_login(hall):
    """chenjing logged in at window 1 on the counter page and on the desk tablet, and logs out
    on the page at lunch. The tablet's token, and the event stream it holds, end with it."""
    with hall.client() as api:
        page, tablet = login(api, STAFF, 1), login(api, STAFF, 1)
        stream = OpenStream(hall.url, tablet)
        assert api.post("/api/v1/auth/logout", headers=page).status_code == 200
        stream.mark()
        for h in (page, tablet):
            assert api.get("/api/v1/auth/me", headers=h).status_code == 401
            r = api.post("/api/v1/windows/1/call", headers=h)
            assert (r.status_code, r.json()["error"]) == (401, "not_logged_in")
        ended = stream.ended_after(CLOSE_WITHIN + 2)
        assert ended is not None and ended <= CLOSE_WITHIN, (ended, stream.error)


def test_a_colleague_taking_the_window_over_ends_the_old_login(hall):
    """wangfang pauses window 3 (A post) and leaves her page open; chenjing, B post of 3,
    takes the window over (顶岗). wangfang's token is over: it acts for nobody, anywhere."""
    with hall.client() as api:
        mine = login(api, OTHER, 3)
        assert api.post("/api/v1/windows/3/pause", headers=mine,
                        json={"reason": "取材料", "minutes": 5}).status_code == 200
        cover = login(api, STAFF, 3)
        for path in ("/api/v1/auth/me", "/api/v1/devices", "/api/v1/windows/3"):
            assert api.get(path, headers=mine).status_code == 401, path
        assert api.get("/api/v1/windows/3", headers=cover).status_code == 200
        assert api.post("/api/v1/auth/logout", headers=cover).status_code == 200


def test_disabling_a_serving_member_closes_the_window_and_stops_its_keypad(hall):
    """liuyang is serving at window 2 when the admin disables the account (离职). The window
    closes at once, the keypad on the desk calls nobody for the account, the visit being
    served is not lost, and the supervisor's screen stream of liuyang's login ends."""
    with hall.client() as api:
        ids = [api.post("/api/v1/tickets", json={"service": "A"}).json()["id"] for _ in range(3)]
        leaver = login(api, COVER, 2)
        serving = api.post("/api/v1/windows/2/call", headers=leaver).json()["ticket"]
        assert serving["id"] == ids[0]
        stream = OpenStream(hall.url, leaver)
        admin, boss = login(api, ADMIN, None), login(api, SUPERVISOR, None)

        r = api.post(f"/api/v1/admin/staff/{COVER}/disable", headers=admin, json={"reason": "离职"})
        assert r.status_code == 200, r.text
        stream.mark()
        assert r.json()["windows_closed"] == [2]
        window = api.get("/api/v1/windows/2", headers=boss).json()
        assert (window["state"], window["staff"], window["current"]) == ("closed", None, None)
        ended = stream.ended_after(CLOSE_WITHIN + 2)
        assert ended is not None and ended <= CLOSE_WITHIN, (ended, stream.error)

        # the keypad on window 2's desk: its call key now calls nobody
        assert api.post("/sim/keypads/2/press", json={"key": "call_next"}).status_code == 200
        # a keypad that works, on the same bus: once its call is served, window 2's was seen
        chen = login(api, STAFF, 1)
        assert api.post("/sim/keypads/1/press", json={"key": "call_next"}).status_code == 200
        wait_for(lambda: (api.get("/api/v1/windows/1", headers=chen).json()["current"] or {}).get("id"), 5)
        time.sleep(0.3)
        window = api.get("/api/v1/windows/2", headers=boss).json()
        assert (window["state"], window["current"]) == ("closed", None)
        called = [api.get(f"/api/v1/tickets/{i}", headers=boss).json() for i in ids]
        assert [t["window"] for t in called if t["status"] == "called"] == [1]
        assert not [e for t in called for e in t["history"]
                    if e["kind"] == "ticket_called" and e["actor"] == f"staff:{COVER}@keypad"]
        # the visit liuyang was serving went back to its place: window 1 called it first
        assert called[0]["status"] == "called" and called[0]["window"] == 1
        assert api.post("/api/v1/windows/1/finish", headers=chen).status_code == 200
        assert api.post("/api/v1/auth/logout", headers=chen).status_code == 200


def test_a_disabled_supervisors_open_stream_closes_within_a_second(hall):
    """A supervisor's full event stream (logins, grades, pause whereabouts) open on a
    screen in the back office: disabling the account ends it, not the next reconnect."""
    with hall.client() as api:
        boss = login(api, SUPERVISOR, None)
        stream = OpenStream(hall.url, boss)
        r = api.post(f"/api/v1/admin/staff/{SUPERVISOR}/disable", headers=login(api, ADMIN, None))
        assert r.status_code == 200, r.text
        stream.mark()
        ended = stream.ended_after(CLOSE_WITHIN + 2)
        assert ended is not None and ended <= CLOSE_WITHIN, (ended, stream.error)
        assert api.get("/api/v1/auth/me", headers=boss).status_code == 401


@pytest.fixture
def night_hall(tmp_path):
    proc = HallProcess(tmp_path)
    yield proc
    if proc.proc and proc.proc.poll() is None:
        proc.stop()


def test_yesterdays_token_acts_for_nobody_today(night_hall):
    """chenjing's tablet keeps its token overnight (延时服务 till just before midnight), and
    a supervisor's page stays open. When the hall's clock passes midnight both tokens end,
    the open stream closes, and after a restart in the morning they are still refused."""
    night_hall.extra_args = ("--clock-start", f"{THURSDAY}T23:59:44+08:00")
    night_hall.start()
    with night_hall.client() as api:
        staff, boss = login(api, STAFF, 1), login(api, SUPERVISOR, None)
        assert api.get("/api/v1/auth/me", headers=staff).status_code == 200
        stream = OpenStream(night_hall.url, boss)
        # midnight passes in the hall's clock
        wait_for(lambda: api.get("/api/v1/health").json()["clock"]["hall_time"] >= f"{FRIDAY}T00:00",
                 timeout=45)
        stream.mark()
        for h in (staff, boss):
            assert api.get("/api/v1/auth/me", headers=h).status_code == 401
        r = api.post("/api/v1/windows/1/call", headers=staff)
        assert (r.status_code, r.json()["error"]) == (401, "not_logged_in")
        ended = stream.ended_after(CLOSE_WITHIN + 2)
        assert ended is not None and ended <= CLOSE_WITHIN, (ended, stream.error)
    night_hall.stop()
    night_hall.extra_args = ("--clock-start", f"{FRIDAY}T08:55:00+08:00")
    night_hall.start()
    with night_hall.client() as api:
        for h in (staff, boss):
            assert api.get("/api/v1/auth/me", headers=h).status_code == 401
        assert api.get("/api/v1/auth/me", headers=login(api, STAFF, 1)).status_code == 200
