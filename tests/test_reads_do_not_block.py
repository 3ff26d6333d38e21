"""Reading the hall's history never holds up the floor.

Given a supervisor's report half-way through and a display replaying the event log, when
window 1 presses call-next, then it is answered while both are still in progress: reports and
the replay read on read-only connections of their own, not under the hall's lock.

The readers are paused by hooks, so "in progress" is a fact of the test, not a race; the
timeout is generous on purpose (benchmarks check speed, docs/benchmarks.md).
"""

from __future__ import annotations

import threading

import httpx
import pytest

from controller.backoffice import evaluation_reports as er
from controller.runtime.clock import ManualClock
from controller.store.replay import EventReader
from tests.halls import at, small_hall
from tests.server import running_hall

PATIENCE = 20.0  # seconds; only a reader blocking the floor comes near it


class Paused:
    """Wraps a reading function: the first call says it has started, then waits for `go`."""

    def __init__(self, fn) -> None:
        self.fn = fn
        self.started = threading.Event()
        self.go = threading.Event()

    def __call__(self, *args, **kwargs):
        if not self.started.is_set():
            self.started.set()
            self.go.wait(PATIENCE * 2)
        return self.fn(*args, **kwargs)


@pytest.fixture
def hall(tmp_path):
    clock = ManualClock(at("09:00"))
    with running_hall(small_hall(), tmp_path, clock) as h:
        yield h


def test_call_next_is_answered_while_a_report_and_a_replay_are_in_progress(hall, monkeypatch):
    with hall.client() as api:
        for _ in range(3):
            assert api.post("/api/v1/tickets", json={"service": "A"}).status_code == 201
    staff = hall.login("s1", 1)
    boss = hall.login("boss", None)

    report = Paused(er.evaluation_report)
    monkeypatch.setattr(er, "evaluation_report", report)
    replay = Paused(EventReader.events_after)
    monkeypatch.setattr(EventReader, "events_after",
                        lambda self, *a, **kw: replay(self, *a, **kw))
    answers: dict[str, object] = {}

    def read_report() -> None:
        with httpx.Client(base_url=hall.url, timeout=PATIENCE * 3) as c:
            answers["report"] = c.get("/api/v1/reports/hall", headers=boss,
                                      params={"from": "2000-01-01", "to": "2099-12-31"})

    def read_replay() -> None:
        with httpx.Client(base_url=hall.url, timeout=PATIENCE * 3) as c, \
                c.stream("GET", "/api/v1/events", headers={**boss, "Last-Event-ID": "0"}) as r:
            for line in r.iter_lines():
                if line.startswith("id: "):
                    answers["replayed"] = int(line[4:])
                    return

    readers = [threading.Thread(target=read_report), threading.Thread(target=read_replay)]
    try:
        for t in readers:
            t.start()
        assert report.started.wait(PATIENCE), "the report never began"
        assert replay.started.wait(PATIENCE), "the replay never began"

        with httpx.Client(base_url=hall.url, timeout=PATIENCE) as c:
            called = c.post("/api/v1/windows/1/call", headers=staff)
        assert called.status_code == 200
        assert called.json()["ticket"]["number"] == "A001"
        # both readers were still in the middle of their work when the window was answered
        assert not report.go.is_set() and not replay.go.is_set()
        assert all(t.is_alive() for t in readers)
    finally:
        report.go.set()
        replay.go.set()
        for t in readers:
            t.join(PATIENCE * 3)

    assert answers["report"].status_code == 200
    assert sum(row["issued"] for row in answers["report"].json()) == 3
    assert answers["replayed"] == 1
