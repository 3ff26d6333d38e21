"""/metrics: the hall's figures in Prometheus' text format (prometheus_client), for the hall's
monitoring to scrape and alert on.

Read on scrape, not counted per event: a collector (`HallCollector`) takes the hall's read side
once per scrape (`ctrl.ask`: a copy of the queues' heads, the windows' states and the devices'
health, made on the hall thread between two groups) and the callback cases from a read-only
connection. The scrape runs in a worker thread: the event loop never waits for the hall thread
or the database. The hall thread itself only notes two timings per group (`Timing`): each
command's latency, from being queued to its answer, and the group's commit.

Access (decided here): no token configured, /metrics answers only to loopback clients (a
Prometheus or node agent on the hall PC itself); with HALL_METRICS_TOKEN set where `hallctl run`
runs, it answers to whoever sends `Authorization: Bearer <token>` (a Prometheus elsewhere on the
LAN: `authorization: {credentials_file: ...}` in its scrape config), loopback included. Behind
a reverse proxy, name it with --trusted-proxy so the client's own address counts. Nothing
personal is in any figure: services, windows, devices and case states by their codes only.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
from typing import Any, Iterator

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from controller.backoffice.case_records import case_from_json
from controller.core.callbacks import CaseState
from controller.core.case_supervision import overdue
from controller.core.model import HallState, WindowStatus
from controller.runtime.hallcontroller import HallController
from controller.store import gauges
from controller.web.loop_lag import LoopLag

METRICS_TOKEN_ENV = "HALL_METRICS_TOKEN"
# a command answers in milliseconds; a slow disk's fsync in tens of them
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
COMMIT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
LOOPBACK_ONLY = "/metrics 只对本机开放；从其他地址读取需要令牌（HALL_METRICS_TOKEN）"
BAD_TOKEN = "/metrics 的令牌不正确"


class OpenStreams:
    """How many event streams (/api/v1/events) are open; changed on the event loop only."""

    def __init__(self) -> None:
        self.count = 0


class HallMetrics:
    """The hall's metrics on a registry of its own (several halls may share a process: tests)."""

    def __init__(self, ctrl: HallController, lag: LoopLag, streams: OpenStreams) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self._commands = Histogram(
            "hall_command_seconds", "A command's time on the hall thread's queue and in it, "
            "from being queued to its answer (after its commit)", ["command"],
            buckets=LATENCY_BUCKETS, registry=self.registry)
        self._commit = Histogram(
            "hall_commit_seconds", "One group's write: the transaction and its fsync",
            buckets=COMMIT_BUCKETS, registry=self.registry)
        self._by_name: dict[str, Any] = {}
        self.registry.register(HallCollector(ctrl, lag, streams))

    # the hall thread's Timing (controller.runtime.hallcontroller)
    def command(self, name: str, seconds: float) -> None:
        child = self._by_name.get(name)
        if child is None:
            child = self._by_name[name] = self._commands.labels(name)
        child.observe(seconds)

    def commit(self, seconds: float) -> None:
        self._commit.observe(seconds)

    def text(self) -> bytes:
        return generate_latest(self.registry)


def _floor_now(ctrl: HallController):
    """What the scrape reads of the hall's state, copied on the hall thread."""
    def read(state: HallState) -> tuple[dict[str, tuple[int, float]], dict[str, int],
                                        dict[str, str]]:
        now = ctrl.clock()
        queues = {}
        for prefix, q in state.queues.services.items():
            heads = [lane[0][0] for lane in (q.appointments, q.priority, q.regular) if lane]
            longest = max(0.0, (now - min(heads)).total_seconds()) if heads else 0.0
            queues[prefix] = (len(q), longest)
        windows = {str(s): 0 for s in WindowStatus}
        for w in state.windows.values():
            windows[str(w.status)] += 1
        devices = {device: str(seen[0]) for device, seen in state.devices.items()}
        return queues, windows, devices
    return read


class HallCollector(Collector):
    """The figures read on each scrape."""

    def __init__(self, ctrl: HallController, lag: LoopLag, streams: OpenStreams) -> None:
        self.ctrl, self.lag, self.streams = ctrl, lag, streams

    def collect(self) -> Iterator[Metric]:
        queues, windows, devices = self.ctrl.ask(_floor_now(self.ctrl))
        yield from self._queues(queues)
        state = GaugeMetricFamily("hall_windows", "Windows by state", labels=["state"])
        for name, n in sorted(windows.items()):
            state.add_metric([name], n)
        yield state
        yield self._devices(devices)
        yield from self._cases()
        yield GaugeMetricFamily("hall_sse_clients", "Open event streams (/api/v1/events)",
                                value=self.streams.count)
        yield GaugeMetricFamily("hall_event_loop_lag_max_seconds", "The web server loop's worst "
                                "lateness since the start", value=self.lag.max_s)
        yield GaugeMetricFamily("hall_event_loop_lag_recent_seconds",
                                f"The loop's worst lateness over the last {self.lag.recent} s",
                                value=self.lag.recent_max_s())
        yield GaugeMetricFamily("hall_storage_ok", "1 while the database takes writes, 0 while a "
                                "storage fault stands", value=0 if self.ctrl.store.fault else 1)

    def _queues(self, queues: dict[str, tuple[int, float]]) -> Iterator[Metric]:
        waiting = GaugeMetricFamily("hall_queue_waiting", "Tickets waiting, by service",
                                    labels=["service"])
        longest = GaugeMetricFamily("hall_queue_longest_wait_seconds", "How long the ticket "
                                    "waiting longest has waited, by service", labels=["service"])
        for prefix, (n, seconds) in sorted(queues.items()):
            waiting.add_metric([prefix], n)
            longest.add_metric([prefix], seconds)
        yield waiting
        yield longest

    def _devices(self, seen: dict[str, str]) -> Metric:
        family = GaugeMetricFamily("hall_device_up", "1 if the device reports online, 0 if "
                                   "offline, faulty or not heard from yet; its state as a label",
                                   labels=["device", "kind", "state"])
        for d in self.ctrl.hall.devices:
            state = seen.get(d.id, "unknown")
            family.add_metric([d.id, d.kind, state], 1 if state == "online" else 0)
        return family

    def _cases(self) -> Iterator[Metric]:
        now = self.ctrl.clock()
        with self.ctrl.store.reads.snapshot() as db:
            states = gauges.cases_by_state(db)
            bodies = gauges.open_case_bodies(db, str(CaseState.CLOSED))
        late = {case.id for case, _ in overdue((case_from_json(b) for b in bodies), now)}
        family = GaugeMetricFamily("hall_callback_cases", "Callback and complaint cases by state",
                                   labels=["state"])
        for state in CaseState:
            family.add_metric([str(state)], states.get(str(state), 0))
        yield family
        yield GaugeMetricFamily("hall_callback_cases_overdue", "Open cases past a deadline now",
                                value=len(late))


def _loopback(host: str | None) -> bool:
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def metrics_routes(metrics: HallMetrics) -> APIRouter:
    r = APIRouter()

    # not in /docs: it is for the hall's monitoring, not an integration (README, Metrics)
    @r.get("/metrics", include_in_schema=False)
    async def get_metrics(request: Request) -> Response:
        token: str | None = getattr(request.app.state, "metrics_token", None)
        if token:
            given = request.headers.get("authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
                return JSONResponse({"error": "metrics_token_required", "message": BAD_TOKEN},
                                    status_code=401, headers={"WWW-Authenticate": "Bearer"})
        elif not _loopback(request.client.host if request.client else None):
            return JSONResponse({"error": "metrics_loopback_only", "message": LOOPBACK_ONLY},
                                status_code=403)
        # the collector asks the hall thread and reads the database: in a worker thread
        body = await asyncio.to_thread(metrics.text)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    return r
