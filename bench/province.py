"""好差评 deliveries per second to the provincial platform: a PostgreSQL cluster of its own
(center.local), EVALUATIONS evaluations of 20 halls queued as the consumer queues them
(center.province.enqueue), and a `districtctl deliver`-like Deliverer against sim.province
(a real HTTP server on loopback) first well-behaved and fast, then slow (up to 50 ms an answer),
failing 20% and losing 10% of its answers. Prints the figures for docs/center.md.

    python -m bench.province [--evaluations 3000] [--workers 8]
"""

from __future__ import annotations

import argparse
import time

import psycopg

from center import province, store
from center.local import LocalPostgres
from sim.province import Province

HALLS = [f"hall-{i:03d}" for i in range(20)]


def evaluation(n: int) -> dict:
    return {"id": n, "kind": "ticket_evaluated", "at": f"2026-11-23T10:{n % 60:02d}:00+08:00", "window": n % 30 + 1,
            "ticket": f"20261123-A{n % 1000:03d}",
            "data": {"grade": ("非常满意", "满意", "不满意")[n % 3], "channel": "pad", "real_name": n % 2 == 0,
                     "staff": f"s{n % 30}", "service": "A", "tags": [], "bad": n % 3 == 2}}


def run(dsn: str, platform: Province, evaluations: int, workers: int) -> tuple[float, int]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("TRUNCATE province_deliveries")
        with conn.transaction():
            for i, hall in enumerate(HALLS):
                conn.execute("INSERT INTO halls (hall_id) VALUES (%s) ON CONFLICT DO NOTHING", (hall,))
                province.enqueue(conn, hall, [evaluation(n) for n in range(i + 1, evaluations + 1, len(HALLS))])
        start = time.perf_counter()
        d = province.Deliverer(dsn, platform.url, {h: "500101" for h in HALLS}, workers=workers, timeout=0.5,
                               backoff_seconds=0.05, max_backoff_seconds=0.5, idle_seconds=0.02).start()
        try:
            while province.counts(conn)["acknowledged"] < evaluations:
                time.sleep(0.05)
            took = time.perf_counter() - start
        finally:
            d.stop()
    return took, d.posted


def main() -> None:
    a = argparse.ArgumentParser()
    a.add_argument("--evaluations", type=int, default=3000)
    a.add_argument("--workers", type=int, default=8)
    args = a.parse_args()
    pg = LocalPostgres(fsync=False).start()
    try:
        with store.connect(pg.dsn) as conn:
            store.migrate(conn)
        for name, platform in (("fast, never failing", Province()),
                               ("slow (≤50 ms), 20% failing, 10% answers lost",
                                Province(fail_rate=0.2, ack_twice_rate=0.1, slow_seconds=0.05, hang_seconds=0.6))):
            platform.start()
            try:
                took, posted = run(pg.dsn, platform, args.evaluations, args.workers)
            finally:
                platform.stop()
            held = len(platform.records)
            print(f"{name}: {args.evaluations} evaluations, {args.workers} workers: {took:.1f} s, "
                  f"{args.evaluations / took:.0f} deliveries/s acknowledged ({posted} requests, "
                  f"{held} records at the province)", flush=True)
    finally:
        pg.remove()


if __name__ == "__main__":
    main()
