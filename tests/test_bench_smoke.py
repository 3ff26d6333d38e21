"""The benchmark still runs (a short pass that only prints); its figures live in docs/benchmarks.md."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_bench_core_quick_runs():
    r = subprocess.run([sys.executable, "-m", "bench.core", "--quick"], cwd=ROOT, timeout=180,
                       capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 0, r.stdout + r.stderr
    for figure in ("ticket issues, engine+store", "ticket issues, HTTP, 8 clients",
                   "call-next latency p99, HTTP, 300 windows"):
        assert figure in r.stdout


def test_bench_calling_quick_runs():
    r = subprocess.run([sys.executable, "-m", "bench.calling", "--quick"], cwd=ROOT, timeout=180,
                       capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 0, r.stdout + r.stderr
    assert "keypad to window bar p99, 300 windows" in r.stdout


def test_bench_history_small_runs():
    r = subprocess.run([sys.executable, "-m", "bench.history", "--tickets", "300", "--per-day", "150"],
                       cwd=ROOT, timeout=180, capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 0, r.stdout + r.stderr
    for figure in ("the month's hall report", "restart to serving", "bytes per ticket on disk"):
        assert figure in r.stdout


def test_bench_deployed_quick_runs():
    """`hallctl run --simulate` on a 12-window hall: every figure is printed and is a number."""
    r = subprocess.run([sys.executable, "-m", "bench.deployed", "--quick"], cwd=ROOT, timeout=180,
                       capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 0, r.stdout + r.stderr
    for figure in ("durable ticket issues, HTTP, 8 clients", "call-next p99, 12 windows, 100/s, alone",
                   "call-next p99, 12 windows, 100/s, report loop + 5 SSE",
                   "event-loop lag, max over the run", "server CPU per call-next, 12 windows",
                   "call-next p99, four clients flat out", "keypad to window bar p99, 12 windows"):
        line = next((line for line in r.stdout.splitlines() if line.startswith(figure)), None)
        assert line is not None, f"{figure!r} missing:\n{r.stdout}"
        assert " nan " not in line, line


def test_bench_center_quick_runs():
    r = subprocess.run([sys.executable, "-m", "bench.center", "--quick"], cwd=ROOT, timeout=300,
                       capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 0, r.stdout + r.stderr
    for figure in ("events into PostgreSQL, 20 halls at once", "link-to-centre lag P99, 20 halls",
                   "district page's data", "24-hour backlog of a 300-window hall drained"):
        assert figure in r.stdout
