"""Coverage-guided fuzzing with atheris (libFuzzer for Python): one subprocess per target.

    python -m fuzz.run --engine atheris [--cases N] [--seconds S] [--target NAME] [--docs]

Each target runs as `python -m fuzz.atheris_run NAME <libFuzzer flags>` with
the codec modules instrumented, started from a corpus of the target's seeds
in var/fuzz/corpus/NAME (libFuzzer adds the inputs that found new coverage
there, so a later run starts where this one stopped). `-runs` is --cases,
`-max_total_time` is --seconds, `-timeout=5` makes an input that runs longer
than 5 s a failure, and a crash's input is written to var/fuzz/atheris-NAME-*.
Two targets run at a time (the machine has two cores).
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "var" / "fuzz"


@dataclass
class AtherisResult:
    target: str
    runs: int
    coverage: int  # libFuzzer's `cov`: instrumented edges reached
    corpus: int  # inputs kept for new coverage
    seconds: float
    slowest: int  # libFuzzer's slowest_unit_time_sec, whole seconds
    exit_code: int
    failure: str  # the first line of what went wrong, or ""


def _child(name: str, flags: list[str]) -> None:
    """Inside the subprocess: instrument the codecs, then hand the target to libFuzzer."""
    import atheris

    with atheris.instrument_imports(include=["drivers"]):
        from fuzz.targets import TARGETS
    from fuzz.run import quiet_codec_logs

    target = TARGETS[name]

    def one(data: bytes) -> None:
        try:
            target.run(data)
        except target.errors:
            pass

    with quiet_codec_logs():
        atheris.Setup([sys.argv[0], *flags], one)
        atheris.Fuzz()


def run_target(name: str, cases: int | None, seconds: float | None) -> AtherisResult:
    from fuzz.targets import TARGETS

    corpus = OUT / "corpus" / name
    corpus.mkdir(parents=True, exist_ok=True)
    for i, s in enumerate(TARGETS[name].seeds):
        (corpus / f"seed-{i:03}").write_bytes(s.data)
    flags = ["-timeout=5", "-rss_limit_mb=2048", "-max_len=16384", "-print_final_stats=1",
             f"-artifact_prefix={OUT}/atheris-{name}-"]
    if cases:
        flags.append(f"-runs={cases}")
    if seconds:
        flags.append(f"-max_total_time={int(seconds)}")
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "fuzz.atheris_run", name, *flags, str(corpus)],
                          cwd=ROOT, capture_output=True, text=True, errors="replace")
    took = time.perf_counter() - started
    log = proc.stdout + proc.stderr
    (OUT / f"atheris-{name}.log").write_text(log[-200_000:])

    def stat(pattern: str) -> int:
        found = re.findall(pattern, log)
        return int(found[-1]) if found else 0

    failure = ""
    if proc.returncode:
        lines = log.splitlines()
        errors = [line for line in lines if re.match(r"^[\w.]+(Error|Exception|Failure)\b", line)]
        fuzzer = [line for line in lines if "ERROR: libFuzzer" in line or line.startswith("ALARM")]
        failure = (errors or fuzzer or lines[-1:] or [f"exit code {proc.returncode}"])[-1].strip()
    return AtherisResult(name, stat(r"stat::number_of_executed_units:\s*(\d+)"), stat(r"cov: (\d+)"),
                         stat(r"corp: (\d+)/"), took, stat(r"stat::slowest_unit_time_sec:\s*(\d+)"),
                         proc.returncode, failure)


def table(results: list[AtherisResult]) -> list[str]:
    lines = ["| target | runs | edges covered | corpus | seconds | slowest input | result |",
             "|---|---:|---:|---:|---:|---:|---|"]
    for r in results:
        verdict = "ok" if r.exit_code == 0 else f"FAIL: {r.failure}"
        lines.append(f"| {r.target} | {r.runs:,} | {r.coverage:,} | {r.corpus:,} | {r.seconds:.0f} | "
                     f"{'< 1' if r.slowest == 0 else r.slowest} s | {verdict} |")
    return lines


def run_all(names: list[str], cases: int | None, seconds: float | None, docs: bool) -> int:
    from fuzz.run import machine, write_docs

    try:
        import atheris  # noqa: F401
    except ImportError:
        print("atheris is not installed: pip install -e '.[fuzz]'")
        return 2
    print(f"machine: {machine()}")
    print(f"engine atheris, {f'{cases:,} runs' if cases else 'no run limit'}"
          f"{f', at most {seconds:.0f} s' if seconds else ''} per target, 2 at a time")
    t0 = time.perf_counter()
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda n: run_target(n, cases, seconds), names))
    wall = time.perf_counter() - t0
    lines = table(results)
    print("\n".join(lines))
    print(f"{sum(r.runs for r in results):,} runs in {wall:.0f} s wall clock")
    if docs:
        write_docs("\n".join([
            f"Written by `python -m fuzz.run --engine atheris --cases {cases or 0}"
            f"{f' --seconds {seconds:.0f}' if seconds else ''} --docs` "
            f"(part of `make fuzz`) on {time.strftime('%Y-%m-%d')}: {machine()}.",
            "",
            *lines,
        ]), start="<!-- fuzz-atheris:start -->", end="<!-- fuzz-atheris:end -->")
    return 1 if any(r.exit_code for r in results) else 0


if __name__ == "__main__":
    _child(sys.argv[1], sys.argv[2:])
