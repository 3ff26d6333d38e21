"""make bench-center: 200 simulated halls into one district centre on this machine.

    make bench-center                 # = python -m bench.center; rewrites docs/benchmarks.md
    python -m bench.center --quick    # 20 halls, a smaller backlog; prints only

The halls' event streams are the hall-day simulator's: `demo-day` (seed 1) is simulated once
through the real controller, and its event log, read as the shipper reads it
(controller.store.outbox), is what each of the 200 halls sends under its own hall id. They go
as the shipper sends them (vocabulary.district.Batch, `batch_events` 500, at most
`window_events` 5,000 unacknowledged per hall, QoS 1) to a real Mosquitto, and from it through
`districtctl consume` processes (the shared subscription) into a real PostgreSQL cluster of
the benchmark's own (fsync on). Measured:

- sustained events per second into PostgreSQL: every hall's whole day sent at once, from the
  first batch to the last hall's mark acknowledged (target at least 10,000/s);
- link-to-centre lag: 200 halls each sending a batch a second, from a batch's publish to the
  centre's acknowledgement of it, P50 and P99;
- a 24-hour backlog of a 300-window hall drained: the demo day's tickets' events repeated up
  to big-hall-rush's 20,028 tickets' worth, sent as a shipper sends a backlog (target 60 s);
- the district page's data, `GET /api/v1/halls` with 200 halls, over HTTP (target 200 ms).

The machine is shared: its load average is written with the figures. Benchmarks inform; a
missed target is printed as MISS and the exit status is still 0.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import paho.mqtt.client as mqtt
import psycopg
import uvicorn
from paho.mqtt.enums import CallbackAPIVersion

from bench.core import DOCS, ROOT, Result, Run, machine, percentile, section, write_docs
from center import store
from center.api import create_app
from center.local import LocalPostgres, free_port
from controller.store.outbox import Outbox
from sim.hallday import HallDay
from sim.scenario import load_scenario
from vocabulary import district

START, END = "<!-- bench-center:start -->", "<!-- bench-center:end -->"
COMMAND = "make bench-center"
MOSQUITTO = "/usr/sbin/mosquitto"
HALLS = 200
BATCH, WINDOW = 500, 5000  # the shipper's batch_events and window_events
BIG_HALL_TICKETS = 20_028  # big-hall-rush, seed 1 (make bench-hallday)
CONSUMERS = 2
RESEND = 20.0  # the shipper's resend_seconds
TARGETS = {"rate": 10_000.0, "drain": 60.0, "page": 200.0}


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.1f} / {five:.1f} / {fifteen:.1f} (1, 5, 15 min) on {os.cpu_count()} cores"


def template_day(directory: Path, scenario: str = "demo-day", seed: int = 1) -> list[dict]:
    """A simulated hall day's event log, as the shipper reads it."""
    HallDay(load_scenario(scenario), seed=seed, data_dir=directory).run()
    outbox = Outbox(directory / "hall.sqlite3")
    try:
        return outbox.after(0, 10**8)
    finally:
        outbox.close()


def backlog(template: list[dict], tickets: int) -> list[dict]:
    """`template`'s events repeated (tickets renamed per round) until they hold the events of
    `tickets` tickets, numbered 1, 2, ... as one log."""
    per_round = len({e["ticket"] for e in template if e["kind"] == "ticket_issued"})
    rounds = -(-tickets // per_round)
    out = []
    for r in range(rounds):
        for e in template:
            ticket = f"{e['ticket']}-{r}" if e.get("ticket") else e.get("ticket")
            out.append({**e, "id": len(out) + 1, "ticket": ticket})
    return out


class Broker:
    """Mosquitto with the district's settings for a bench: no persistence, no queue limit."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        conf = directory / "mosquitto.conf"
        conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                        "max_queued_messages 0\nmax_inflight_messages 100\nlog_dest none\n")
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


class Halls:
    """The halls' shippers as one MQTT client: batches out in each hall's order, at most
    `window` events unacknowledged per hall, the centre's acks in."""

    def __init__(self, port: int, window: int = WINDOW) -> None:
        self.window = window
        self.acked: dict[str, int] = {}
        self.sent_at: dict[tuple[str, int], float] = {}  # (hall, last) -> when its batch went
        self.lags: list[float] = []
        self.changed = threading.Condition()
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-halls-{os.getpid()}", protocol=mqtt.MQTTv5)
        c.max_inflight_messages_set(1000)
        c.max_queued_messages_set(0)
        c.on_message = self._ack
        c.connect("127.0.0.1", port)
        c.subscribe("district/+/ack", qos=1)
        c.loop_start()
        self.client = c

    def _ack(self, client, userdata, message) -> None:
        hall = district.hall_of(message.topic)
        mark = json.loads(message.payload)["acked"]
        now = time.perf_counter()
        with self.changed:
            if hall is None or mark <= self.acked.get(hall, 0):
                return
            self.acked[hall] = mark
            for key in [k for k in self.sent_at if k[0] == hall and k[1] <= mark]:
                self.lags.append(now - self.sent_at.pop(key))
            self.changed.notify_all()

    def send(self, hall: str, after: int, events: list[dict]) -> None:
        batch = district.Batch(hall, after, events[-1]["id"], tuple(events))
        self.sent_at[(hall, batch.last)] = time.perf_counter()
        self.client.publish(district.events_topic(hall), batch.encode(), qos=1)

    def wait_for_consumers(self, dsn: str, count: int) -> None:
        """Until every consumer takes its share of the halls' messages: a probe hall's heartbeat,
        sent until each consumer has written one (what is published before then is lost)."""
        with psycopg.connect(dsn, autocommit=True) as conn:
            for _ in range(600):
                for n in range(count * 4):
                    self.client.publish(district.link_topic(f"bench-probe-{n}"),
                                        district.Link("online", None, 0).encode(), qos=1)
                time.sleep(0.1)
                row = conn.execute("SELECT count(*) FROM halls WHERE hall_id LIKE 'bench-probe-%'").fetchone()
                if row and row[0] >= count * 4:
                    break
            conn.execute("DELETE FROM halls WHERE hall_id LIKE 'bench-probe-%'")

    def ship(self, logs: dict[str, list[dict]]) -> None:
        """Every hall's log, in batches, round-robin across the halls, as far as each hall's
        window allows, sent again from the mark when nothing was acknowledged for RESEND
        seconds (as the shipper does); returns once every hall's last event is acknowledged."""
        sent = dict.fromkeys(logs, 0)  # index into each log of the next event to send
        index = {h: {e["id"]: i for i, e in enumerate(log)} for h, log in logs.items()}
        heard = time.perf_counter()
        while True:
            with self.changed:
                if all(self.acked.get(h, 0) >= log[-1]["id"] for h, log in logs.items()):
                    return
                if time.perf_counter() - heard > RESEND:
                    for h in logs:
                        mark = self.acked.get(h, 0)
                        sent[h] = index[h][mark] + 1 if mark in index[h] else 0
                    heard = time.perf_counter()
                progress = False
                for hall, log in logs.items():
                    i = sent[hall]
                    if i < len(log) and log[i]["id"] - self.acked.get(hall, 0) <= self.window:
                        chunk = log[i:i + BATCH]
                        self.send(hall, log[i - 1]["id"] if i else 0, chunk)
                        sent[hall] = i + len(chunk)
                        progress = True
                if not progress:
                    before = dict(self.acked)
                    self.changed.wait(1.0)
                    if self.acked != before:
                        heard = time.perf_counter()

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def consumers(dsn: str, port: int, count: int) -> list[subprocess.Popen]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return [subprocess.Popen([sys.executable, "-m", "center.cli", "consume", "--database", dsn, "--broker",
                              f"127.0.0.1:{port}", "--name", f"bench-{i}"], cwd=ROOT, env=env,
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for i in range(1, count + 1)]


def api_server(dsn: str) -> tuple[uvicorn.Server, str]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(dsn), host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return server, f"http://127.0.0.1:{port}"


def bench_ingest(run: Run, halls: Halls, template: list[dict], count: int, dsn: str, processes: int) -> None:
    logs = {f"hall-{n:04d}": template for n in range(1, count + 1)}
    total = len(template) * count
    t0, load_before = time.perf_counter(), load()
    halls.ship(logs)
    wall = time.perf_counter() - t0
    with psycopg.connect(dsn) as conn:
        held = conn.execute("SELECT count(*) FROM hall_events").fetchone()[0]
        size = conn.execute("SELECT pg_total_relation_size('hall_events')").fetchone()[0]
    run.add(Result(f"events into PostgreSQL, {count} halls at once", total / wall, "/s", TARGETS["rate"],
                   detail=f"{count} halls' whole `demo-day` ({len(template):,} events each, {total:,} in all; "
                          f"{held:,} rows held after) from the first batch to the last hall's mark acknowledged, "
                          f"{wall:.1f} s, {processes} `districtctl consume` processes; load average {load_before} "
                          f"before, {load()} after"))
    run.notes.append(f"PostgreSQL holds {size / held:.0f} bytes per event (hall_events with its primary key, "
                     f"{size / 2**20:.0f} MiB for {held:,} events).")


def bench_lag(run: Run, halls: Halls, count: int, seconds: int, per_batch: int) -> None:
    """Each hall sends a batch of `per_batch` events a second, on top of what it sent before."""
    names = [f"hall-{n:04d}" for n in range(1, count + 1)]
    with halls.changed:
        halls.lags.clear()
        marks = {h: halls.acked.get(h, 0) for h in names}
    for _ in range(seconds):
        tick = time.perf_counter()
        for h in names:
            first = marks[h] + 1
            events = [{"id": i, "kind": "device_health", "at": dt.datetime.now(dt.timezone.utc).isoformat(),
                       "window": None, "ticket": None, "data": {"device": "bench", "state": "online"}}
                      for i in range(first, first + per_batch)]
            halls.send(h, marks[h], events)
            marks[h] += per_batch
        time.sleep(max(0.0, 1.0 - (time.perf_counter() - tick)))
    deadline = time.perf_counter() + 60
    with halls.changed:
        while any(halls.acked.get(h, 0) < marks[h] for h in names) and time.perf_counter() < deadline:
            halls.changed.wait(1.0)
        lags = [x * 1000 for x in halls.lags]
    rate = count * per_batch
    run.add(Result(f"link-to-centre lag P99, {count} halls", percentile(lags, 99), "ms",
                   detail=f"each hall a batch of {per_batch} events a second ({rate:,} events/s in all) for "
                          f"{seconds} s: from the batch's publish to the centre's ack covering it, "
                          f"{len(lags):,} batches; P50 {percentile(lags, 50):.0f} ms, max {max(lags):.0f} ms; "
                          f"load average {load()}"))


def bench_backlog(run: Run, halls: Halls, template: list[dict], tickets: int) -> None:
    log = backlog(template, tickets)
    t0 = time.perf_counter()
    halls.ship({"hall-300-windows": log})
    wall = time.perf_counter() - t0
    run.add(Result("24-hour backlog of a 300-window hall drained", wall, "s", TARGETS["drain"],
                   higher_is_better=False,
                   detail=f"{len(log):,} events ({tickets:,} tickets' worth of `demo-day`'s events, as many "
                          f"as big-hall-rush's day) sent as the shipper sends a backlog (batches of {BATCH}, "
                          f"at most {WINDOW:,} unacknowledged) until the last is acknowledged; "
                          f"{len(log) / wall:,.0f} events/s; load average {load()}"))


def bench_page(run: Run, base: str, count: int) -> None:
    times = []
    with httpx.Client(base_url=base, timeout=30) as client:
        for _ in range(21):
            t0 = time.perf_counter()
            r = client.get("/api/v1/halls")
            times.append((time.perf_counter() - t0) * 1000)
            assert r.status_code == 200 and len(r.json()["halls"]) >= count
    body = len(r.content)
    run.add(Result(f"district page's data, GET /api/v1/halls, {count}+ halls", statistics.median(times[1:]),
                   "ms", TARGETS["page"], higher_is_better=False,
                   detail=f"median of 20 requests over HTTP after one to warm up, {body / 1024:.0f} KiB each; "
                          f"P90 {percentile(times[1:], 90):.0f} ms; load average {load()}"))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.center", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="20 halls, a smaller backlog; docs not rewritten")
    p.add_argument("--halls", type=int, default=HALLS)
    p.add_argument("--consumers", type=int, default=CONSUMERS)
    p.add_argument("--no-docs", action="store_true", help="print the figures only")
    args = p.parse_args(argv)
    count = 20 if args.quick else args.halls
    for name in ("drivers", "controller", "sim", "center"):
        logging.getLogger(name).setLevel(logging.ERROR)
    started = dt.datetime.now(dt.timezone.utc)
    t0 = time.perf_counter()
    info = {**machine(), "Load average at the start": load()}
    info.pop("Server", None)
    for k, v in info.items():
        print(f"{k}: {v}")
    run = Run()
    with tempfile.TemporaryDirectory(prefix="bench-center-") as tmp:
        directory = Path(tmp)
        template = template_day(directory / "hall")
        print(f"simulated a day: {len(template):,} events", flush=True)
        tickets = sum(e["kind"] == "ticket_issued" for e in template)
        run.notes.append(f"A simulated `demo-day` (500 tickets, 20 windows, seed 1) is {len(template):,} events, "
                         f"{len(template) / tickets:.1f} per ticket; as the shipper sends them, "
                         f"{len(district.Batch('h', 0, 0, tuple(template)).encode()) / len(template):.0f} bytes "
                         "per event of JSON.")
        database = LocalPostgres().start()
        with store.connect(database.dsn) as conn:
            store.migrate(conn)
        broker = Broker(directory)
        procs = consumers(database.dsn, broker.port, args.consumers)
        halls = Halls(broker.port)
        server, base = api_server(database.dsn)
        try:
            halls.wait_for_consumers(database.dsn, args.consumers)
            bench_ingest(run, halls, template, count, database.dsn, args.consumers)
            print(run.results[-1].name, run.results[-1].measured(), flush=True)
            bench_lag(run, halls, count, 10 if args.quick else 30, 10)
            bench_page(run, base, count)
            bench_backlog(run, halls, template, 2000 if args.quick else BIG_HALL_TICKETS)
        finally:
            server.should_exit = True
            halls.stop()
            for proc in procs:
                proc.terminate()
                proc.wait(10)
            broker.stop()
            database.remove()
    run.notes.append("Everything on this one machine: the halls' publisher, Mosquitto, the consumers, "
                     "PostgreSQL and the API share its cores with whatever else runs (see the load averages).")
    seconds = time.perf_counter() - t0
    for r in run.results:
        print(f"{r.name}: {r.measured()} {r.verdict()}")
    missed = [r.name for r in run.results if r.passed is False]
    print(f"done in {seconds:.0f} s; " + (f"targets missed: {', '.join(missed)}" if missed else "every target met"))
    if not (args.quick or args.no_docs):
        write_docs(DOCS, section(run, info, started, seconds, START, END, COMMAND), START, END)
        print(f"wrote {DOCS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
