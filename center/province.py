"""好差评 delivery to the provincial platform (全量汇聚): every evaluation the centre ingests is
pushed, once by its idempotency key, to the province's HTTP endpoint.

    enqueue   in the consumer's transaction, when a hall's mark moves over its
              `ticket_evaluated` events: one `province_deliveries` row each (unique on
              hall and event id, so a batch ingested twice queues nothing twice)
    Deliverer worker threads (`districtctl deliver`, or `districtctl run --province URL`):
              each claims due rows with SELECT ... FOR UPDATE SKIP LOCKED, so several workers
              (threads or processes) never hold one row at once, POSTs each as JSON with the
              header `Idempotency-Key: <hall_id>:<event_id>`, and records the outcome before
              it lets the row go

A delivery's state: `pending` (not tried, or the request never reached the platform),
`sent` (it may have reached it: a timeout, a reset, a 5xx; tried again with the same key),
`acknowledged` (a 2xx with the platform's acknowledgement id, kept; a second acknowledgement
of the same key keeps the first id), `failed` (the platform refused it with a 4xx, or
`max_attempts` were used up: `districtctl deliver --retry-failed` queues them again). Retries
back off exponentially, from `backoff_seconds` up to `max_backoff_seconds`.

A record is what the evaluation event carries, in the platform's codes, plus the hall's
行政区划代码 (region code), which the events do not carry: the deliverer is given each hall's
code (`--region HALL_ID=CODE`); a hall without one is not delivered (its rows wait) until it
is given. What neither the events nor the hall's config carry is not sent: the 政务服务事项编码
(the service's item code: the hall knows its services by ticket prefix only), the indicator
system's version, and the visit's issue and service times (the evaluation event has its own
time only; they are in the ticket's other events).
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import psycopg
from psycopg.types.json import Jsonb

import controller.core.events as ev
from vocabulary import SYSTEM_DEFAULT, by_label

log = logging.getLogger(__name__)

# centre schema 4 (province): the deliveries, one per evaluation
MIGRATION = """
    CREATE TABLE province_deliveries (
        hall_id text NOT NULL REFERENCES halls (hall_id),
        event_id bigint NOT NULL,
        idempotency_key text NOT NULL UNIQUE,
        record jsonb NOT NULL,
        state text NOT NULL DEFAULT 'pending'
            CHECK (state IN ('pending', 'sent', 'acknowledged', 'failed')),
        attempts integer NOT NULL DEFAULT 0,
        next_attempt_at timestamptz NOT NULL DEFAULT now(),
        last_error text,
        ack_id text,
        queued_at timestamptz NOT NULL DEFAULT now(),
        acknowledged_at timestamptz,
        PRIMARY KEY (hall_id, event_id)
    );
    CREATE INDEX province_deliveries_due ON province_deliveries (next_attempt_at)
        WHERE state IN ('pending', 'sent');
"""

# The platform's codes: grades as the national upload table has them (非常满意 5 … 非常不满意 1,
# GB/T 39734-2020), channels as the hall's own export codes them.
GRADE_CODES = {"非常满意": 5, "满意": 4, "基本满意": 3, "不满意": 2, "非常不满意": 1}
CHANNEL_CODES = {"pad": "1", "tablet": "2", SYSTEM_DEFAULT: "9"}


def key_of(hall: str, event_id: int) -> str:
    """The evaluation's idempotency key: the hall and its event id (both never reused)."""
    return f"{hall}:{event_id}"


def record(hall: str, event: dict[str, Any]) -> dict[str, Any] | None:
    """The platform's record of a `ticket_evaluated` event; None for an event that is not one
    or whose grade is not one of the five (never sent: a code is never guessed)."""
    if event.get("kind") != ev.TICKET_EVALUATED:
        return None
    data = event.get("data") or {}
    grade = by_label(data.get("grade"))
    if grade is None:
        return None
    channel = data.get("channel")
    return {
        "idempotency_key": key_of(hall, event["id"]),
        "hall_id": hall, "event_id": event["id"],
        "grade": grade.label, "grade_code": GRADE_CODES[grade.label],
        "channel": channel, "channel_code": CHANNEL_CODES.get(str(channel)),
        # 默认好评: the hall filled the grade in when the citizen gave none
        "default_grade": channel == SYSTEM_DEFAULT,
        "bad_review": bool(data.get("bad")),
        "real_name": bool(data.get("real_name")),
        "window": event.get("window"), "staff_id": data.get("staff"),
        "service": data.get("service"), "visit_id": event.get("ticket"),
        "evaluated_at": event.get("at"),
    }


def enqueue(conn: psycopg.Connection, hall: str, events: Sequence[dict[str, Any]]) -> int:
    """Queue the evaluations among `events` (in the caller's transaction); how many were new."""
    rows = [(hall, r["event_id"], r["idempotency_key"], Jsonb(r))
            for r in (record(hall, e) for e in events) if r is not None]
    if not rows:
        return 0
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO province_deliveries (hall_id, event_id, idempotency_key, record) "
                        "VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING", rows)
        return max(cur.rowcount, 0)


# -- the worker --------------------------------------------------------------------------

@dataclass(frozen=True)
class Outcome:
    state: str  # pending, sent, acknowledged, failed
    ack_id: str | None = None
    error: str | None = None


def outcome_of(response: httpx.Response) -> Outcome:
    """What the platform's answer means for the delivery."""
    if response.is_success:
        try:
            ack = response.json().get("ack_id")
        except (ValueError, AttributeError):
            ack = None
        if not isinstance(ack, str) or not ack:
            return Outcome("sent", error=f"HTTP {response.status_code} without an ack_id")
        return Outcome("acknowledged", ack_id=ack)
    error = f"HTTP {response.status_code}: {response.text[:200]}"
    if response.status_code in (408, 409, 425, 429) or response.status_code >= 500:
        return Outcome("sent", error=error)  # it may have been taken: the same key again
    return Outcome("failed", error=error)  # refused: sending it again changes nothing


class Deliverer:
    """`workers` threads delivering to the platform at `url`."""

    def __init__(self, dsn: str, url: str, regions: dict[str, str], workers: int = 2,
                 timeout: float = 5.0, claim: int = 10, max_attempts: int = 20,
                 backoff_seconds: float = 1.0, max_backoff_seconds: float = 300.0,
                 idle_seconds: float = 0.5) -> None:
        self.dsn, self.url, self.regions = dsn, url, dict(regions)
        self.workers, self.timeout, self.claim = workers, timeout, claim
        self.max_attempts = max_attempts
        self.backoff_seconds, self.max_backoff_seconds = backoff_seconds, max_backoff_seconds
        self.idle_seconds = idle_seconds
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self.posted = 0  # requests made, for a test or a benchmark to read
        self._count = threading.Lock()

    def start(self) -> Deliverer:
        from center import store  # the schema first: this may start before any consumer

        with store.connect(self.dsn) as conn:
            store.migrate(conn)
        for i in range(self.workers):
            t = threading.Thread(target=self._run, name=f"province-{i + 1}", daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self) -> None:
        """Stop; a delivery in flight is finished (or its transaction rolled back: due again)."""
        self._stopping.set()
        for t in self._threads:
            t.join(self.timeout + 10)

    def backoff(self, attempts: int) -> float:
        return min(self.max_backoff_seconds, self.backoff_seconds * 2 ** max(0, attempts - 1))

    def _run(self) -> None:
        conn: psycopg.Connection | None = None
        with httpx.Client(timeout=self.timeout, headers={"Content-Type": "application/json"}) as http:
            while not self._stopping.is_set():
                try:
                    if conn is None or conn.closed:
                        conn = psycopg.connect(self.dsn, autocommit=True)
                    done = self.deliver_some(conn, http)
                except psycopg.Error as e:
                    log.warning("province delivery: centre database: %s", e)
                    if conn is not None and not conn.closed:
                        conn.close()
                    conn = None
                    done = 0
                if not done:
                    self._stopping.wait(self.idle_seconds)
        if conn is not None:
            conn.close()

    def deliver_some(self, conn: psycopg.Connection, http: httpx.Client) -> int:
        """Claim up to `claim` due deliveries, POST each, record the outcomes; how many."""
        with conn.transaction():
            rows = conn.execute(
                "SELECT hall_id, event_id, idempotency_key, record, attempts FROM province_deliveries "
                "WHERE state IN ('pending', 'sent') AND next_attempt_at <= now() AND hall_id = ANY(%s) "
                "ORDER BY next_attempt_at, hall_id, event_id LIMIT %s FOR UPDATE SKIP LOCKED",
                (list(self.regions), self.claim)).fetchall()
            for hall, event_id, key, body, attempts in rows:
                if self._stopping.is_set():
                    break  # the rest stay as they were, due
                outcome = self.post(http, key, {**body, "region_code": self.regions[hall]})
                self._record(conn, hall, event_id, attempts + 1, outcome)
        return len(rows)

    def post(self, http: httpx.Client, key: str, body: dict[str, Any]) -> Outcome:
        with self._count:
            self.posted += 1
        try:
            return outcome_of(http.post(self.url, json=body, headers={"Idempotency-Key": key}))
        except httpx.ConnectError as e:  # never reached the platform
            return Outcome("pending", error=f"connect: {e}")
        except httpx.HTTPError as e:  # a timeout, a reset: it may have been taken
            return Outcome("sent", error=f"{type(e).__name__}: {e}")

    def _record(self, conn: psycopg.Connection, hall: str, event_id: int, attempts: int, outcome: Outcome) -> None:
        if outcome.state == "acknowledged":
            conn.execute("UPDATE province_deliveries SET state = 'acknowledged', attempts = %s, "
                         "ack_id = COALESCE(ack_id, %s), acknowledged_at = COALESCE(acknowledged_at, now()), "
                         "last_error = NULL WHERE hall_id = %s AND event_id = %s",
                         (attempts, outcome.ack_id, hall, event_id))
            return
        state = outcome.state
        if state != "failed" and attempts >= self.max_attempts:
            state = "failed"
        log.info("province delivery %s attempt %d: %s (%s)", key_of(hall, event_id), attempts, state, outcome.error)
        conn.execute("UPDATE province_deliveries SET state = %s, attempts = %s, last_error = %s, "
                     "next_attempt_at = now() + make_interval(secs => %s) WHERE hall_id = %s AND event_id = %s",
                     (state, attempts, outcome.error, self.backoff(attempts), hall, event_id))


def retry_failed(conn: psycopg.Connection) -> int:
    """Queue the failed deliveries again (after the platform's refusal was dealt with)."""
    return conn.execute("UPDATE province_deliveries SET state = 'pending', attempts = 0, next_attempt_at = now() "
                        "WHERE state = 'failed'").rowcount


def counts(conn: psycopg.Connection) -> dict[str, int]:
    """Deliveries per state."""
    rows = conn.execute("SELECT state, count(*) FROM province_deliveries GROUP BY state").fetchall()
    return {"pending": 0, "sent": 0, "acknowledged": 0, "failed": 0, **{s: n for s, n in rows}}


def oldest_due(conn: psycopg.Connection) -> dt.datetime | None:
    row = conn.execute("SELECT min(queued_at) FROM province_deliveries WHERE state IN ('pending', 'sent')").fetchone()
    return row[0] if row else None
