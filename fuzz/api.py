"""schemathesis against the controller's own OpenAPI schema, on a real controller on loopback.

    python -m fuzz.api [--examples N] [--seed N] [--timeout S] [--docs]

The controller is the one the API tests run (tests/server.py `running_hall`,
the access hall of sim/halls.py: staff s1-s3 at windows 1-3, supervisor
`boss`, admin `admin`), on a manual clock at 09:00 on a Monday, with a few
tickets taken and one called so that the lookups find something. Every
operation in /openapi.json is called with schema-valid (positive) and
schema-breaking (negative) requests, `--examples` of each, once per identity:
no token, staff s1's, the supervisor's, the admin's. Two checks:
`not_a_server_error` (no 5xx) and `response_schema_conformance` (the
response body fits the schema). A request still unanswered after `--timeout`
seconds is a failure too: a request that takes the hall's lock for minutes
stops every kiosk. The SSE stream (/events) never ends by design and is left
out. The first failing request of each operation, identity and check is
printed as a curl command.
"""

from __future__ import annotations

import argparse
import sys
import time
import zlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import ServerError
from schemathesis.specs.openapi.checks import response_schema_conformance

CHECKS = [not_a_server_error, response_schema_conformance]
STREAMS = ("/api/v1/events",)  # server-sent events: answered with a stream that does not end
MODES = (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE)


@dataclass
class Failure:
    operation: str
    who: str
    kind: str  # the check that failed, or "timeout"
    status: int | None
    curl: str
    detail: str


@dataclass
class Report:
    cases: int = 0
    statuses: Counter = field(default_factory=Counter)  # "2xx", "4xx", ... -> count
    operations: int = 0
    failures: dict[tuple[str, str, str], Failure] = field(default_factory=dict)
    seconds: float = 0.0
    stopped: str = ""  # why the run stopped early: after a timeout the server is still busy


Identity = Callable[[], dict[str, str]]  # the headers to send; called again after a logout


def fuzz_api(url: str, identities: dict[str, Identity], examples: int = 20, run_seed: int = 0,
             timeout: float = 10.0, skip: tuple[str, ...] = STREAMS) -> Report:
    """Every operation of `url`'s schema, `examples` positive and negative requests per identity."""
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    operations = [r.ok() for r in schema.get_all_operations()]
    operations = [op for op in operations if op.path not in skip]
    report = Report(operations=len(operations))
    http = requests.Session()
    started = time.perf_counter()
    for who, login in identities.items():
        caller = _Caller(who, login, login(), url, http, report, examples, run_seed, timeout)
        for op in operations:
            for mode in MODES:
                if report.stopped:
                    break
                caller.try_operation(op, mode)
    report.seconds = time.perf_counter() - started
    return report


@dataclass
class _Caller:
    """One identity's requests: its headers (a token, got again after a logout revoked it) and
    the report its failures go to."""

    who: str
    login: Identity
    headers: dict[str, str]
    url: str
    http: requests.Session
    report: Report
    examples: int
    run_seed: int
    timeout: float

    def try_operation(self, op: schemathesis.APIOperation, mode: schemathesis.GenerationMode) -> None:
        """`examples` requests of one generation mode to one operation, each its own draws."""
        @seed(zlib.crc32(f"{self.run_seed}:{self.who}:{op.label}:{mode}".encode()))
        @settings(max_examples=self.examples, deadline=None, database=None, phases=[Phase.generate],
                  suppress_health_check=list(HealthCheck))
        @given(case=op.as_strategy(generation_mode=mode))
        def one(case: schemathesis.Case) -> None:
            if not self.report.stopped:
                self._send(op, case)

        try:
            one()
        except Unsatisfiable:
            pass  # no request breaks a schema with nothing to break (no parameters, no body)

    def _send(self, op: schemathesis.APIOperation, case: schemathesis.Case) -> None:
        report, url, timeout = self.report, self.url, self.timeout
        report.cases += 1
        key = (op.label, self.who)
        try:
            response = case.call(base_url=url, session=self.http, headers=self.headers, timeout=timeout)
        except requests.Timeout:
            _note(report, Failure(*key, "timeout", None, case.as_curl_command(self.headers, base_url=url),
                                  f"no answer in {timeout} s"))
            # the server goes on with it, and what follows would time out behind it
            report.stopped = f"stopped after a timeout on {op.label} as {self.who}"
            return
        except requests.RequestException as e:  # the server closed the connection, say
            _note(report, Failure(*key, "no answer", None, case.as_curl_command(self.headers, base_url=url),
                                  f"{type(e).__name__}: {e}"[:2000]))
            return
        report.statuses[f"{response.status_code // 100}xx"] += 1
        try:
            case.validate_response(response, checks=CHECKS, headers=self.headers)
        except (AssertionError, BaseExceptionGroup) as e:  # failed checks: noted, the run goes on
            for problem in getattr(e, "exceptions", (e,)):
                kind = ("not_a_server_error" if isinstance(problem, ServerError)
                        else "response_schema_conformance")
                _note(report, Failure(*key, kind, response.status_code,
                                      case.as_curl_command(self.headers, base_url=url),
                                      f"{type(problem).__name__}: {problem}"[:2000]))
        if op.path.endswith("/auth/logout") and self.headers:
            try:
                self.headers = self.login()  # the token was just revoked
            except Exception as e:  # the rest of this identity's run goes on without a token
                _note(report, Failure(*key, "login again", None, "", f"{type(e).__name__}: {e}"))
                self.headers = {}


def _note(report: Report, failure: Failure) -> None:
    report.failures.setdefault((failure.operation, failure.who, failure.kind), failure)


def summary(report: Report) -> list[str]:
    statuses = ", ".join(f"{k} {v:,}" for k, v in sorted(report.statuses.items()))
    lines = [f"{report.operations} operations, {report.cases:,} requests in {report.seconds:.0f} s "
             f"({statuses}); {len(report.failures)} failing operation/identity/check combinations"
             + (f"; {report.stopped}" if report.stopped else "")]
    for f in report.failures.values():
        lines += [f"FAIL {f.operation} as {f.who}: {f.kind} (status {f.status})", f"  {f.curl}",
                  *("  " + line for line in f.detail.splitlines()[:6])]
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m fuzz.api", description=__doc__.splitlines()[0])
    p.add_argument("--examples", type=int, default=20,
                   help="requests per operation, generation mode and identity (default %(default)s)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--timeout", type=float, default=10.0, help="seconds a request may take")
    p.add_argument("--docs", action="store_true", help="rewrite the API figures in docs/reliability.md")
    args = p.parse_args(argv)

    from fuzz.hall import fuzzed_hall  # the test controller: only when run, never on import
    with fuzzed_hall() as (url, identities):
        report = fuzz_api(url, identities, args.examples, args.seed, args.timeout)
    lines = summary(report)
    print("\n".join(lines))
    if args.docs:
        from fuzz.run import machine, write_docs
        write_docs("\n".join([
            f"Written by `python -m fuzz.api --examples {args.examples} --docs` (part of `make fuzz`) on "
            f"{time.strftime('%Y-%m-%d')}: {machine()}; schemathesis {schemathesis.SCHEMATHESIS_VERSION}.",
            "",
            *(f"    {line}" for line in lines),
        ]), start="<!-- fuzz-api:start -->", end="<!-- fuzz-api:end -->")
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())
