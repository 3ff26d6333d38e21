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
