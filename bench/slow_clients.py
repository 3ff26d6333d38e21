"""/health while slow clients flood the controller: `hallctl run` for the demo hall limited to
256 open files, 400 half-sent requests from 127.0.0.1 held open (sim/process.py; tests/attacks/
test_slow_clients.py makes the same attack and checks the answers; this measures them).

    python -m bench.slow_clients
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import httpx

from sim.process import FLOOD, OPEN_FILES, LimitedHall, half_sent

SAMPLES = 20


def _health_ms(url: str) -> list[float]:
    times = []
    for _ in range(SAMPLES):
        start = time.perf_counter()
        httpx.get(f"{url}/api/v1/health", timeout=5).raise_for_status()
        times.append((time.perf_counter() - start) * 1000)
    return times


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        hall = LimitedHall(Path(tmp), OPEN_FILES)
        hall.start()
        held = []
        try:
            before = _health_ms(hall.url)
            start = time.perf_counter()
            held = half_sent(int(hall.url.rsplit(":", 1)[1]), FLOOD, within=60)
            opened = time.perf_counter() - start
            during = _health_ms(hall.url)
            files = len(list(Path(f"/proc/{hall.proc.pid}/fd").iterdir()))
        finally:
            for s in held:
                s.close()
            hall.stop()
    print(f"open-file limit {OPEN_FILES}: {FLOOD} half-sent requests opened in {opened:.1f} s; "
          f"the controller then held {files} descriptors")
    print(f"/health: median {statistics.median(before):.0f} ms before the flood, "
          f"{statistics.median(during):.0f} ms (max {max(during):.0f} ms) during it")


if __name__ == "__main__":
    main()
