"""The hash chain's cost on the hall's hot path (vocabulary.chain): what the store adds to
each event it writes (the stored JSON read back, the canonical form, one SHA-256), and the
whole log checked again (`hallctl verify-log`, the shipper's audit).

    python -m bench.chain [--events N]

Prints only: the figures and their command are in docs/center.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from vocabulary import chain

# events as a hall's log holds them (a ticket's life: issued, called, finished, graded)
SAMPLES = [
    {"kind": "ticket_issued", "window": None, "ticket": "20261123-A017",
     "data": {"service": "A", "label": "A017", "channel": "kiosk", "priority": None, "appointment_at": None,
              "id_masked": "1101**********097X", "name_masked": "张*国", "queue_seq": 17, "waiting_ahead": 4}},
    {"kind": "ticket_called", "window": 3, "ticket": "20261123-A017",
     "data": {"label": "A017", "staff_id": "s3", "recall": 0, "waited_seconds": 742}},
    {"kind": "ticket_finished", "window": 3, "ticket": "20261123-A017",
     "data": {"label": "A017", "staff_id": "s3", "service_seconds": 418, "outcome": "done"}},
    {"kind": "ticket_evaluated", "window": 3, "ticket": "20261123-A017",
     "data": {"grade": "非常满意", "channel": "pad", "staff_id": "s3", "service": "A",
              "item_code": "11500101MB1234567X", "tags": ["态度热情"], "indicator_version": "GB/T 39735-2020"}},
]


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.chain")
    p.add_argument("--events", type=int, default=100_000)
    n = p.parse_args().events
    events = []
    for i in range(n):
        s = SAMPLES[i % len(SAMPLES)]
        events.append({"id": i + 1, "at": f"2026-11-23T09:{i % 60:02d}:{i % 60:02d}+08:00", **s})
    stored = [json.dumps(e["data"], ensure_ascii=False, separators=(",", ":")) for e in events]

    rounds = []
    for _ in range(5):  # what HallStore._link adds to each event written: read back, link
        previous = chain.GENESIS
        t0 = time.perf_counter()
        for e, data in zip(events, stored, strict=True):
            previous = chain.link(previous, {**e, "data": json.loads(data)})
        rounds.append((time.perf_counter() - t0) / n)
    per_event = statistics.median(rounds)
    print(f"chain link on the write path: {per_event * 1e6:.1f} µs per event "
          f"(median of 5 rounds of {n:,}; {1 / per_event:,.0f} events/s on one core)")
    t0 = time.perf_counter()
    list(chain.recompute({**e, "data": json.loads(d)} for e, d in zip(events, stored, strict=True)))
    print(f"whole-log check (verify-log, audit; hashing only): {n / (time.perf_counter() - t0):,.0f} events/s")


if __name__ == "__main__":
    main()
