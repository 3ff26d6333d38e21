"""Random and mutated frames against every codec entry point; prints a table of what happened.

    python -m fuzz.run [--cases N] [--seconds S] [--target NAME] [--seed N] [--jobs J]
    python -m fuzz.run --engine atheris [--cases N] [--seconds S] [--target NAME]   # --cases 0: no limit
    make fuzz            # 1,000,000 cases per target, atheris, schemathesis; rewrites docs/reliability.md

Each input either decodes or raises the codec's own documented error; any
other exception, a stream decoder whose buffer outgrows its bound, messages
that change with the chunking, or an input still running after the watchdog
(`--watchdog`, 5 s) is a failure. The first input of each kind of failure is
saved under var/fuzz/ (the bytes, and a .txt with the traceback) and the run
exits 1. The same seed gives the same inputs.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import random
import re
import signal
import sys
import time
import traceback
from collections import Counter
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from fuzz.mutate import Mutator
from fuzz.targets import TARGETS, FuzzFailure, Target

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "var" / "fuzz"
DOCS = ROOT / "docs" / "reliability.md"
JOB_CASES = 100_000  # cases per worker job; each job has its own seed
MAX_REPRODUCERS = 10  # per target
LOG_EVERY = 16  # one input in this many has its log records formatted; logging is most of the cost


class Hang(BaseException):
    """The watchdog fired: an input ran too long. BaseException, so no codec can swallow it."""


class _CheckFormatting(logging.Handler):
    """Formats every log record a codec emits (a bad `%d` would raise here), then drops it."""

    def emit(self, record: logging.LogRecord) -> None:
        record.getMessage()


@dataclass
class Stats:
    target: str
    cases: int = 0
    decoded: int = 0  # messages (or values) decoded
    refused: int = 0  # codec errors: the input, or a message in it, refused as documented
    empty: int = 0  # inputs that gave nothing and raised nothing: garbage skipped
    unexpected: int = 0
    failures: dict[str, str] = field(default_factory=dict)  # signature -> reproducer path
    slowest: float = 0.0  # CPU seconds of the slowest input
    slowest_size: int = 0
    seconds: float = 0.0  # CPU time of the process(es) that ran it

    def merge(self, other: "Stats") -> None:
        self.cases += other.cases
        self.decoded += other.decoded
        self.refused += other.refused
        self.empty += other.empty
        self.unexpected += other.unexpected
        for k, v in other.failures.items():
            self.failures.setdefault(k, v)
        if other.slowest > self.slowest:
            self.slowest, self.slowest_size = other.slowest, other.slowest_size
        self.seconds += other.seconds


@contextmanager
def quiet_codec_logs() -> Iterator[None]:
    """Codec warnings are formatted and dropped while fuzzing: a million would be noise."""
    loggers = [logging.getLogger(name) for name in ("drivers", "fuzz")]
    saved = [(lg.handlers[:], lg.propagate, lg.level) for lg in loggers]
    for logger in loggers:
        logger.handlers[:] = [_CheckFormatting()]
        logger.propagate = False
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for logger, (handlers, propagate, level) in zip(loggers, saved, strict=True):
            logger.handlers[:], logger.propagate = handlers, propagate
            logger.setLevel(level)


def signature(error: BaseException) -> str:
    """Exception type and the innermost frame inside the project: one line per kind of failure."""
    frames = [f for f in traceback.extract_tb(error.__traceback__) if str(ROOT) in f.filename]
    where = f"{Path(frames[-1].filename).relative_to(ROOT)}:{frames[-1].lineno}" if frames else "?"
    if isinstance(error, FuzzFailure):
        return f"FuzzFailure ({error.kind})"
    return f"{type(error).__name__} at {where}"


def save(target: Target, data: bytes, error: BaseException, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    stem = f"{target.name}-{hashlib.sha1(data).hexdigest()[:12]}"
    (out / f"{stem}.bin").write_bytes(data)
    text = "".join(traceback.format_exception(error))
    (out / f"{stem}.txt").write_text(f"target {target.name} ({target.note})\ninput {len(data)} bytes: "
                                     f"{data[:200].hex(' ')}{' ...' if len(data) > 200 else ''}\n\n{text}")
    return out / f"{stem}.bin"


def _alarm(signum: int, frame: object) -> None:
    raise Hang()


def run_one(target: Target, data: bytes, stats: Stats, watchdog: float, out: Path) -> None:
    """One input through one target, its outcome counted in `stats`."""
    start = time.thread_time()  # CPU time: the slowest input is the codec's, not the machine's load
    signal.setitimer(signal.ITIMER_REAL, watchdog)
    try:
        decoded, refused = target.run(data)
        signal.setitimer(signal.ITIMER_REAL, 0)
        stats.decoded += decoded
        stats.refused += refused
        stats.empty += not (decoded or refused)
    except target.errors:
        signal.setitimer(signal.ITIMER_REAL, 0)
        stats.refused += 1
    except (Exception, Hang) as e:  # everything else is the finding
        signal.setitimer(signal.ITIMER_REAL, 0)
        stats.unexpected += 1
        key = signature(e) if not isinstance(e, Hang) else f"Hang (over {watchdog} s)"
        if key not in stats.failures and len(stats.failures) < MAX_REPRODUCERS:
            stats.failures[key] = str(save(target, data, e, out))
    took = time.thread_time() - start
    stats.cases += 1
    if took > stats.slowest:
        stats.slowest, stats.slowest_size = took, len(data)


def fuzz_target(target: str | Target, cases: int, seed: int = 0, job: int = 0, seconds: float | None = None,
                watchdog: float = 5.0, out: Path = OUT) -> Stats:
    """`cases` inputs (or as many as fit in `seconds`) for one target; the same seed and job, the same inputs."""
    target = TARGETS[target] if isinstance(target, str) else target
    with quiet_codec_logs():
        return _fuzz(target, cases, seed, job, seconds, watchdog, out)


def _fuzz(target: Target, cases: int, seed: int, job: int, seconds: float | None, watchdog: float,
          out: Path) -> Stats:
    name = target.name
    disabled = logging.root.manager.disable
    old = signal.signal(signal.SIGALRM, _alarm)
    rng = random.Random(f"{seed}:{name}:{job}")
    mutator = Mutator(target.seeds, target.tokens, target.max_size, rng)
    stats = Stats(name)
    cpu = time.process_time()
    deadline = time.perf_counter() + seconds if seconds else None
    try:
        # the valid frames themselves first, so each is seen whole at least once
        for s in target.seeds if job == 0 else ():
            run_one(target, s.data, stats, watchdog, out)
        while stats.cases < cases:
            if stats.cases % LOG_EVERY == 0:
                logging.disable(disabled)
            elif stats.cases % LOG_EVERY == 1:
                logging.disable(logging.CRITICAL)
            run_one(target, mutator.next(), stats, watchdog, out)
            if deadline and stats.cases % 256 == 0 and time.perf_counter() > deadline:
                break
    finally:
        logging.disable(disabled)
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    stats.seconds = time.process_time() - cpu
    return stats


def _job(args: tuple[str, int, int, int, float | None, float]) -> Stats:
    name, cases, seed, job, seconds, watchdog = args
    return fuzz_target(name, cases, seed, job, seconds, watchdog)


def fuzz_all(names: list[str], cases: int, seed: int = 0, jobs: int = 1, seconds: float | None = None,
             watchdog: float = 5.0, progress: bool = False) -> dict[str, Stats]:
    """Every named target; cases are split into jobs of JOB_CASES run on `jobs` processes."""
    work: list[tuple[str, int, int, int, float | None, float]] = []
    for name in names:
        parts = max(1, -(-cases // JOB_CASES)) if jobs > 1 else 1
        for job in range(parts):
            share = cases // parts + (job < cases % parts)
            work.append((name, share, seed, job, seconds / parts if seconds else None, watchdog))
    results: dict[str, Stats] = {name: Stats(name) for name in names}
    left = Counter(item[0] for item in work)

    def done(stats: Stats) -> None:
        results[stats.target].merge(stats)
        left[stats.target] -= 1
        if progress and not left[stats.target]:
            whole = results[stats.target]
            print(f"  {stats.target}: {whole.cases:,} cases, {whole.unexpected} unexpected", flush=True)

    if jobs > 1:
        with ProcessPoolExecutor(jobs) as pool:
            for future in as_completed([pool.submit(_job, item) for item in work]):
                done(future.result())
    else:
        for item in work:
            done(_job(item))
    return results


def table(results: dict[str, Stats]) -> list[str]:
    head = ("| target | cases | decoded | codec errors | nothing | unexpected | slowest input (CPU) | CPU s |",
            "|---|---:|---:|---:|---:|---:|---:|---:|")
    rows = [f"| {s.target} | {s.cases:,} | {s.decoded:,} | {s.refused:,} | {s.empty:,} | {s.unexpected} | "
            f"{s.slowest * 1000:.1f} ms ({s.slowest_size:,} B) | {s.seconds:.1f} |" for s in results.values()]
    return list(head) + rows


def machine() -> str:
    cpu = "unknown CPU"
    try:
        found = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.M)
        cpu = found.group(1).strip() if found else cpu
    except OSError:
        pass
    return f"{os.cpu_count()} cores, {cpu}, Python {sys.version.split()[0]}"


def write_docs(text: str, *, start: str, end: str, path: Path = DOCS) -> None:
    """Rewrite the part of `path` between `start` and `end` (appended if the markers are missing)."""
    doc = path.read_text(encoding="utf-8") if path.exists() else "# Reliability\n"
    if start not in doc or end not in doc:
        doc = doc.rstrip("\n") + f"\n\n{start}\n{end}\n"
    head, rest = doc.split(start, 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(head + start + "\n" + text.strip("\n") + "\n" + end + rest.split(end, 1)[1],
                    encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m fuzz.run", description=__doc__.splitlines()[0])
    p.add_argument("--cases", type=int, default=10_000, help="inputs per target (default %(default)s)")
    p.add_argument("--seconds", type=float, help="stop each target after this long, whatever --cases says")
    p.add_argument("--target", action="append", choices=sorted(TARGETS), help="only this target (repeatable)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1), help="worker processes")
    p.add_argument("--watchdog", type=float, default=5.0, help="seconds one input may take")
    p.add_argument("--engine", choices=("mutate", "atheris"), default="mutate")
    p.add_argument("--docs", action="store_true", help=f"rewrite the figures in {DOCS.relative_to(ROOT)}")
    args = p.parse_args(argv)
    names = args.target or sorted(TARGETS)
    if args.engine == "atheris":
        from fuzz.atheris_run import run_all
        return run_all(names, args.cases, args.seconds, args.docs)

    for old in [*OUT.glob("*.bin"), *OUT.glob("*.txt")] if OUT.exists() else []:
        old.unlink()  # the last run's reproducers; a failure that is still there is found again
    print(f"machine: {machine()}")
    print(f"engine mutate, seed {args.seed}, {args.cases:,} cases per target, {args.jobs} processes")
    t0 = time.perf_counter()
    results = fuzz_all(names, args.cases, args.seed, args.jobs, args.seconds, args.watchdog, progress=True)
    wall = time.perf_counter() - t0
    lines = table(results)
    print("\n".join(lines))
    failures = [(s.target, k, v) for s in results.values() for k, v in s.failures.items()]
    for target, kind, path in failures:
        print(f"FAIL {target}: {kind}; reproducer {path}")
    total = sum(s.cases for s in results.values())
    print(f"{total:,} cases in {wall:.0f} s wall clock, {sum(s.seconds for s in results.values()):.0f} s CPU; "
          f"{'no unexpected exception' if not failures else f'{len(failures)} kinds of failure'}")
    if args.docs:
        write_docs(docs_text(args, results, wall), start="<!-- fuzz-mutate:start -->",
                   end="<!-- fuzz-mutate:end -->")
    return 1 if failures else 0


def docs_text(args: argparse.Namespace, results: dict[str, Stats], wall: float) -> str:
    total = sum(s.cases for s in results.values())
    unexpected = sum(s.unexpected for s in results.values())
    return "\n".join([
        f"Written by `python -m fuzz.run --cases {args.cases} --docs` (part of `make fuzz`) on "
        f"{time.strftime('%Y-%m-%d')}: {machine()}; seed {args.seed}, {args.jobs} processes, "
        f"{total:,} inputs in {wall:.0f} s wall clock ({sum(s.seconds for s in results.values()):.0f} s CPU; "
        f"other work shared the machine if the two differ much), {unexpected} unexpected.",
        "",
        *table(results),
    ])


if __name__ == "__main__":
    sys.exit(main())
