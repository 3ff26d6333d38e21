"""Crash soak: a power cord pulled mid-rush, again and again. The controller runs as
`hallctl run --simulate` on the demo hall, kiosks and windows work it flat out, pads
grade visits, and it is killed with SIGKILL at random moments and restarted.

After each restart: every acknowledged ticket and evaluation exists, no number was
reused, no ticket is current at two windows, and every simulated display (the
RS-485 window bars, the MQTT bars and the main hall display) shows the current
state again within 2 s. Only answers a kiosk, a window or a pad's reader actually
received count as acknowledged; a request cut off by the kill may or may not have
happened.

CI runs a few kills; `make soak` runs 50 (SOAK_KILLS) and prints the figures that
docs/reliability.md records. SOAK_SEED reruns a seed.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import json
import statistics
from pathlib import Path

import httpx

from controller.cli import DB_NAME
from tests.server import HallProcess
KILLS = int(os.environ.get("SOAK_KILLS", 3))  # `make soak`: 50
DISPLAYS_WITHIN_SECONDS = 2.0
SUMMARY = Path(__file__).resolve().parents[1] / "var" / "soak" / "summary.json"
# Windows of the demo hall and the staff whose A post they are.
WINDOWS = {1: "chenjing", 2: "liuyang", 4: "liqiang", 7: "wujuan"}
SERVICES = ("A", "B", "C", "F")
KIOSKS = 4
EVENT_OF = {"call": "ticket_called", "finish": "ticket_finished", "no-show": "ticket_missed"}
GRADES = ("非常满意", "满意", "基本满意", "不满意", "非常不满意")  # a pad's keys 1-5


@dataclass
class Ledger:
    """What kiosks and windows were told: the facts the hall owes them after a crash."""

    tickets: dict[str, dict] = field(default_factory=dict)         # id -> the 201 body
    acts: list[tuple[int, str, str]] = field(default_factory=list)  # (window, action, ticket)
    grades: dict[str, str] = field(default_factory=dict)           # ticket -> acknowledged grade
    failures: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def guarded(ledger: Ledger, name: str, target, *args) -> threading.Thread:
    """A thread whose unexpected exception fails the test instead of vanishing."""
    def run() -> None:
        try:
            target(*args)
        except Exception as e:  # noqa: BLE001 - reported through the ledger
            with ledger.lock:
                ledger.failures.append(f"{name}: {type(e).__name__}: {e}")
    return threading.Thread(target=run, name=name)


def kiosk(ctl: HallProcess, ledger: Ledger, rng: random.Random, stop: threading.Event) -> None:
    with ctl.client() as client:
        while not stop.is_set():
            try:
                r = client.post("/api/v1/tickets", json={"service": rng.choice(SERVICES)})
            except httpx.TransportError:
                return  # killed: this ticket was never acknowledged
            if r.status_code != 201:
                with ledger.lock:
                    ledger.failures.append(f"kiosk: {r.status_code} {r.text}")
                return
            body = r.json()
            with ledger.lock:
                if body["id"] in ledger.tickets:
                    ledger.failures.append(f"number {body['number']} given out twice: "
                                           f"{ledger.tickets[body['id']]} and {body}")
                    return
                ledger.tickets[body["id"]] = body


def window(ctl: HallProcess, ledger: Ledger, number: int, token: str, rng: random.Random,
           stop: threading.Event) -> None:
    base = f"/api/v1/windows/{number}"
    with ctl.client(headers={"Authorization": f"Bearer {token}"}) as client:
        while not stop.is_set():
            action = rng.choices(["call", "finish", "no-show"], [6, 3, 1])[0]
            try:
                r = client.post(f"{base}/{action}")
            except httpx.TransportError:
                return
            if r.status_code == 200:
                ticket = r.json()["ticket"]
                if ticket is not None:
                    with ledger.lock:
                        ledger.acts.append((number, action, ticket["id"]))
                    if action == "finish":
                        time.sleep(rng.uniform(0.2, 0.6))  # the citizen at the pad a moment
                elif action == "call":
                    time.sleep(0.01)  # nobody waiting yet
            elif not (r.status_code == 409 and r.json().get("error") == "no_current_ticket"):
                with ledger.lock:
                    ledger.failures.append(f"window {number} {action}: {r.status_code} {r.text}")
                return


def pad(ctl: HallProcess, ledger: Ledger, number: int, token: str, rng: random.Random,
        stop: threading.Event, reader: str) -> None:
    """A citizen at window `number` grading on its pad whenever it asks; a grade counts as
    acknowledged once the ticket's history shows it to the supervisor (`reader`: a counter's
    own staff do not see the grades they were given)."""
    with ctl.client(headers={"Authorization": f"Bearer {token}"}) as client, \
            ctl.client(headers={"Authorization": f"Bearer {reader}"}) as supervisor:
        while not stop.is_set():
            try:
                asking = client.get(f"/api/v1/windows/{number}").json().get("evaluating")
                if not asking:
                    time.sleep(0.02)
                    continue
                key = rng.randint(1, 5)
                client.post(f"/sim/pads/{number}/grade", json={"grade": key})
                deadline = time.monotonic() + 1.0
                while time.monotonic() < deadline:
                    history = supervisor.get(f"/api/v1/tickets/{asking}").json().get("history", [])
                    graded = [e for e in history if e["kind"] == "ticket_evaluated"]
                    if graded:
                        with ledger.lock:
                            if asking in ledger.grades:
                                ledger.failures.append(f"{asking} graded twice: {graded}")
                            ledger.grades[asking] = graded[0]["data"]["grade"]
                        break
                    time.sleep(0.02)
            except httpx.TransportError:
                return


SUPERVISOR = "huangjianguo"  # reads the grades the pads gave


def login_all(ctl: HallProcess) -> dict[int, str]:
    tokens = {}
    with ctl.client() as client:
        for number, staff in WINDOWS.items():
            r = client.post("/api/v1/auth/login",
                            json={"staff_id": staff, "pin": "1234", "window": number})
            assert r.status_code == 200, r.text
            tokens[number] = r.json()["token"]
    return tokens


def burst(ctl: HallProcess, ledger: Ledger, tokens: dict[int, str], rng: random.Random) -> float:
    """Kiosks and windows at full speed until SIGKILL; returns how long it ran."""
    stop = threading.Event()
    threads = [guarded(ledger, f"kiosk-{k}", kiosk, ctl, ledger, random.Random(rng.random()), stop)
               for k in range(KIOSKS)]
    threads += [guarded(ledger, f"window-{n}", window, ctl, ledger, n, tokens[n],
                        random.Random(rng.random()), stop)
                for n in WINDOWS]
    with ctl.client() as client:
        r = client.post("/api/v1/auth/login", json={"staff_id": SUPERVISOR, "pin": "1234"})
        assert r.status_code == 200, r.text
        reader = r.json()["token"]
    threads += [guarded(ledger, f"pad-{n}", pad, ctl, ledger, n, tokens[n],
                        random.Random(rng.random()), stop, reader)
                for n in WINDOWS]
    after = rng.uniform(0.2, 1.5)
    for t in threads:
        t.start()
    time.sleep(after)
    ctl.kill()
    stop.set()
    for t in threads:
        t.join(15)
        assert not t.is_alive(), "a request hung after the controller was killed"
    return after


def read_db(ctl: HallProcess) -> tuple[dict[str, dict], dict[int, str | None], list[dict]]:
    """Tickets, window currents and ticket events as the database holds them."""
    conn = sqlite3.connect(f"file:{ctl.data / DB_NAME}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        tickets = {r["id"]: dict(r) for r in conn.execute("SELECT * FROM tickets")}
        windows = {r["number"]: r["current"] for r in conn.execute("SELECT * FROM windows")}
        events = [dict(r) for r in conn.execute(
            "SELECT id, kind, window, ticket_id FROM events WHERE ticket_id IS NOT NULL ORDER BY id")]
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        conn.close()
    return tickets, windows, events


def check_database(ledger: Ledger, tickets: dict[str, dict], windows: dict[int, str | None],
                   events: list[dict]) -> None:
    # No number was reused: per prefix, 1..n with no gap and no repeat.
    numbers = defaultdict(list)
    for t in tickets.values():
        assert t["label"] == f"{t['prefix']}{t['number']:03d}", t
        numbers[(t["day"], t["prefix"])].append(t["number"])
    for key, got in numbers.items():
        assert sorted(got) == list(range(1, len(got) + 1)), f"{key}: numbers {sorted(got)}"

    # Every acknowledged ticket is there with the number and service it was given.
    for tid, body in ledger.tickets.items():
        assert tid in tickets, f"acknowledged ticket {body['number']} is lost"
        t = tickets[tid]
        assert t["label"] == body["number"] and t["prefix"] == body["service"], (body, t)

    # Every acknowledged call, finish and 过号 is in the log and left its mark on the ticket.
    logged = Counter((e["window"], e["kind"], e["ticket_id"]) for e in events)
    acked = Counter((w, EVENT_OF[action], tid) for w, action, tid in ledger.acts)
    lost = acked - logged
    assert not lost, f"acknowledged but not in the event log: {dict(lost)}"
    for _, action, tid in ledger.acts:
        t = tickets[tid]
        if action == "finish":
            assert t["status"] == "finished", (action, t)
        elif action == "no-show":
            assert t["requeued"] or t["status"] == "no_show", (action, t)
        else:
            assert t["status"] != "waiting" or t["requeued"], (action, t)

    # Every acknowledged evaluation is there, once, with its grade.
    for tid, grade in ledger.grades.items():
        assert tickets[tid]["grade"] == grade, (tid, grade, tickets[tid]["grade"])
    graded = Counter(e["ticket_id"] for e in events if e["kind"] == "ticket_evaluated")
    assert all(n == 1 for n in graded.values()), f"a visit graded twice: {graded.most_common(3)}"

    # A called ticket is current at exactly its own window, and no ticket at two.
    current = {w: tid for w, tid in windows.items() if tid}
    assert len(set(current.values())) == len(current), f"a ticket at two windows: {current}"
    called = {tid: t["window"] for tid, t in tickets.items() if t["status"] == "called"}
    assert called == {tid: w for w, tid in current.items()}, (called, current)


def check_api(ctl: HallProcess, ledger: Ledger, new: list[str], old_tokens: dict[int, str]) -> None:
    with ctl.client() as client:
        # The API answers for the tickets acknowledged just before the kill.
        for tid in new:
            r = client.get(f"/api/v1/tickets/{tid}")
            assert r.status_code == 200, f"{tid}: {r.status_code} {r.text}"
            body = r.json()
            assert body["number"] == ledger.tickets[tid]["number"]
            assert body["number"].startswith(body["service"])
        hall = client.get("/api/v1/hall").json()
        current = [(w["number"], w["current"]["id"]) for w in hall["windows"] if w["current"]]
        assert len({tid for _, tid in current}) == len(current), current
        for number, tid in current:
            t = client.get(f"/api/v1/tickets/{tid}").json()
            assert t["status"] == "called" and t["window"] == number, t
        # Logins survive the restart: the token from before the kill still acts for its window.
        for number, token in old_tokens.items():
            r = client.post(f"/api/v1/windows/{number}/recall",
                            headers={"Authorization": f"Bearer {token}"})
            assert r.status_code in (200, 409), f"window {number}: {r.status_code} {r.text}"


BOARD_TEXT = {"closed": "未开放", "paused": "暂停服务"}


def display_agrees(shown, window: dict) -> bool:
    """Whether a display's content matches its window as the API reports it: a serial bar's
    lines, or an MQTT bar's JSON."""
    if shown is None:
        return False
    text = " ".join(shown) if isinstance(shown, list) else json.dumps(shown, ensure_ascii=False)
    if window["state"] == "closed":
        return "停止服务" in text
    if window["state"] == "paused":
        return "暂停服务" in text
    return window["current"]["number"] in text if window["current"] else "欢迎光临" in text \
        or "顶岗" in text


def board_agrees(board, windows: list[dict]) -> bool:
    """The main display's window list against the API's windows."""
    if not board:
        return False
    texts = {w["window"]: w["text"] for w in board["windows"]}
    for w in windows:
        text = texts.get(w["number"], "")
        if w["state"] in BOARD_TEXT and not text.startswith(BOARD_TEXT[w["state"]]):
            return False
        if w["state"] == "open" and not text.startswith("办理中" if w["current"] else "空闲"):
            return False
    return True


def out_of_step(shown: dict, hall: dict, bars: dict[int, str]) -> dict:
    windows = {w["number"]: w for w in hall["windows"]}
    late = {device: shown.get(device) for w, device in bars.items()
            if not display_agrees(shown.get(device), windows[w])}
    if not board_agrees(shown.get("hall-display"), hall["windows"]):
        late["hall-display"] = shown.get("hall-display")
    return late


def displays_in_step(ctl: HallProcess) -> float:
    """Seconds from a healthy restart until every simulated display shows the hall's state."""
    bars = {w: f"display-{w:02d}" for w in range(1, 5)}          # RS-485 bars
    bars.update({w: f"display-{w:02d}" for w in (5, 7, 13)})      # some MQTT bars
    started = time.monotonic()
    late: dict = {}
    with ctl.client() as client:
        while True:
            hall = client.get("/api/v1/hall").json()
            shown = client.get("/sim/displays").json()
            windows = {w["number"]: w for w in hall["windows"]}
            if (all(display_agrees(shown.get(device), windows[w]) for w, device in bars.items())
                    and board_agrees(shown.get("hall-display"), hall["windows"])):
                took = time.monotonic() - started
                if took > DISPLAYS_WITHIN_SECONDS:
                    print(f"slow restart: {took:.2f} s; last out of step: {list(late)}")
                return took
            late = out_of_step(shown, hall, bars)
            if time.monotonic() - started > 15:
                raise AssertionError(f"displays out of step 15 s after a restart: "
                                     f"{out_of_step(shown, hall, bars)}")
            time.sleep(0.05)


def test_sigkill_during_a_rush_loses_no_acknowledged_ticket_and_reuses_no_number(tmp_path):
    seed = int(os.environ.get("SOAK_SEED", random.randrange(2**32)))
    print(f"soak seed {seed} (rerun with SOAK_SEED={seed})")
    rng = random.Random(seed)
    # one kiosk issuing as fast as it can is a flood by the hall's own rule: off for the rush
    ctl = HallProcess(tmp_path, "--simulate", rules={"address_tickets_per_minute": 0})
    ledger = Ledger()
    kills = 0
    in_step: list[float] = []
    ctl.start()
    try:
        for _ in range(KILLS):
            # Logging in again at a window one already holds is accepted.
            tokens = login_all(ctl)
            before = set(ledger.tickets)
            burst(ctl, ledger, tokens, rng)
            kills += 1
            assert not ledger.failures, f"seed {seed}: {ledger.failures[:5]}"
            ctl.start()
            in_step.append(displays_in_step(ctl))
            check_api(ctl, ledger, sorted(set(ledger.tickets) - before), tokens)
            check_database(ledger, *read_db(ctl))
        code = ctl.stop()
    finally:
        if ctl.proc is not None and ctl.proc.poll() is None:
            ctl.proc.kill()
            ctl.proc.wait()
    # uvicorn shuts down cleanly on SIGTERM, then re-raises it: -15 is a clean stop too.
    assert code in (0, -signal.SIGTERM), ctl.output()

    tickets, windows, events = read_db(ctl)
    check_database(ledger, tickets, windows, events)
    figures = {
        "seed": seed, "kills": kills, "acknowledged_tickets": len(ledger.tickets),
        "stored_tickets": len(tickets), "acknowledged_window_actions": len(ledger.acts),
        "acknowledged_evaluations": len(ledger.grades), "lost": 0, "numbers_reused": 0,
        "tickets_at_two_windows": 0,
        "displays_in_step_seconds": {"median": round(statistics.median(in_step), 2),
                                     "max": round(max(in_step), 2)},
    }
    SUMMARY.parent.mkdir(parents=True, exist_ok=True)
    SUMMARY.write_text(json.dumps(figures, indent=2), encoding="utf-8")
    print(f"soak: {json.dumps(figures)}")
    assert kills == KILLS and ledger.tickets and ledger.grades, figures
    # the hall's requirement: displays show the hall again within 2 s of a restart
    assert max(in_step) <= DISPLAYS_WITHIN_SECONDS, figures
