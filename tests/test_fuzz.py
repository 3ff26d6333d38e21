"""The short fuzz run CI does: every codec takes garbage without a surprise, the API without a 5xx.

`make fuzz` is the long version (a million inputs per codec entry point, atheris, a longer
schemathesis run) and writes its figures to docs/reliability.md.
"""

from __future__ import annotations

import random
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from drivers.caller_display import onbon_codec
from drivers.evaluator_pad.json_codec import PadProtocolError, parse_grade_json
from fuzz.api import fuzz_api
from fuzz.hall import fuzzed_hall
from fuzz.mutate import Mutator, Seed
from fuzz.run import fuzz_target, quiet_codec_logs
from fuzz.targets import TARGETS, FuzzFailure, Target
from tests.server import free_port

CASES = 3000  # per target; `make fuzz` runs a million
STREAMS = [name for name, t in TARGETS.items() if t.stream]


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_a_codec_takes_random_and_mutated_frames_without_a_surprise(name, tmp_path):
    stats = fuzz_target(name, CASES, seed=0, out=tmp_path, watchdog=30)
    assert stats.unexpected == 0, "\n".join(f"{kind}: {path}" for kind, path in stats.failures.items())
    assert stats.cases >= CASES
    # the inputs reach both sides: some decode, some are refused or skipped as garbage
    assert stats.decoded > 0 and stats.refused + stats.empty > 0


@pytest.mark.parametrize("name", sorted(TARGETS))
@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(data=st.one_of(st.binary(max_size=600),
                      st.randoms(use_true_random=False).map(lambda rng: rng.getrandbits(64))))
def test_hypothesis_finds_no_input_a_codec_does_not_expect(name, data):
    """Hypothesis drives the same targets: raw bytes, or a seed mutated by a random it chose."""
    target = TARGETS[name]
    if isinstance(data, int):
        data = Mutator(target.seeds, target.tokens, target.max_size, random.Random(data)).next()
    with quiet_codec_logs():
        try:
            target.run(data)
        except target.errors:
            pass


@pytest.mark.parametrize("name", STREAMS)
def test_a_stream_decoder_holds_no_more_than_one_frame_of_garbage(name):
    """A long run of each protocol token, then noise: the decoder's buffer stays within its bound."""
    target = TARGETS[name]
    rng = random.Random(1)
    for token in target.tokens + (b"\x00", b"\xff"):
        flood = token * (40_000 // len(token)) + rng.randbytes(20_000)
        with quiet_codec_logs():
            try:
                target.run(flood)  # raises FuzzFailure past the bound, or if chunking changed the output
            except target.errors:
                pass


def test_found_by_fuzzing_a_pad_message_nested_a_thousand_deep_is_a_pad_error():
    with pytest.raises(PadProtocolError):
        parse_grade_json(b"[" * 100_000)
    with pytest.raises(PadProtocolError):
        parse_grade_json(b'{"id":' * 5_000)


def test_found_by_fuzzing_an_onbon_preamble_flood_does_not_stay_in_the_buffer():
    decoder = onbon_codec.OnbonDecoder()
    decoder.feed(b"\xa5" * 100_000 + b"\x00")
    assert len(decoder._buf) <= len(onbon_codec.PREAMBLE) + 1
    frame = onbon_codec.encode_dynamic_text(1, "A012")
    assert [m.text for m in decoder.feed(frame)] == ["A012"]


def test_the_fuzzer_reports_an_exception_the_codec_does_not_document(tmp_path):
    """A harness that can only pass proves nothing: a planted bug is found and saved."""

    def fragile(data: bytes) -> tuple[int, int]:
        if len(data) > 3 and data[0] == 0x68:
            raise KeyError("planted")
        if data[:1] == b"\x00":
            raise ValueError("documented refusal")
        return 1, 0

    planted = Target("planted", "test", fragile, (ValueError,), (Seed(b"\x68\x01\x02\x03\x04"),), (b"\x68",), 64)
    stats = fuzz_target(planted, 2000, out=tmp_path)
    assert stats.unexpected > 0 and stats.refused > 0
    [(kind, path)] = stats.failures.items()
    assert kind.startswith("KeyError") and Path(path).read_bytes()[0] == 0x68
    assert "planted" in Path(path).with_suffix(".txt").read_text()


def test_the_fuzzer_reports_a_decoder_that_keeps_garbage(tmp_path):
    class Hoarder:
        def __init__(self) -> None:
            self.kept = bytearray()

        def feed(self, data: bytes) -> list[bytes]:
            self.kept += data
            return []

    from fuzz.targets import _stream

    hoarding = Target("hoarding", "test", _stream(Hoarder, lambda d: len(d.kept), 100), (), (Seed(b"x" * 10),),
                      max_size=1000, stream=True, bound=100)
    stats = fuzz_target(hoarding, 500, out=tmp_path)
    assert list(stats.failures) == ["FuzzFailure (buffer over its bound)"]
    with pytest.raises(FuzzFailure):
        hoarding.run(b"x" * 101)


# --- the API ---------------------------------------------------------------------------------

def test_schemathesis_finds_no_5xx_and_no_response_outside_the_schema():
    """A few hundred schema-valid and schema-breaking requests: no token, the supervisor, the admin."""
    with fuzzed_hall() as (url, identities):
        chosen = {who: identities[who] for who in ("no token", "supervisor", "admin")}
        report = fuzz_api(url, chosen, examples=1, timeout=10)
    assert report.cases >= 200
    assert not report.failures, "\n".join(
        f"{f.operation} as {f.who}: {f.kind} (status {f.status})\n  {f.curl}\n  {f.detail[:300]}"
        for f in report.failures.values())


def test_found_by_fuzzing_attendance_for_year_one_is_refused_not_a_server_error():
    """Found by fuzzing: the attendance report stepped a day past date.min / date.max (a 500).
    Every report now refuses a span outside 2000-2099, or one that runs backwards."""
    with fuzzed_hall() as (url, identities):
        supervisor = identities["supervisor"]()
        for query in ("from=0001-01-01&to=0001-01-05", "from=9999-12-25&to=9999-12-31",
                      "from=2026-11-23&to=2026-11-01"):
            for report in ("attendance", "overtime", "hall", "evaluations"):
                answer = httpx.get(f"{url}/api/v1/reports/{report}?{query}", headers=supervisor,
                                   timeout=10)
                assert answer.status_code == 422, (report, query, answer.text)
                assert answer.json()["error"] == "invalid_date_range"


@contextmanager
def _serving(app: FastAPI) -> Iterator[str]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="critical"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("the test app did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def test_the_api_fuzzer_reports_a_server_error_and_a_response_outside_the_schema():
    """The same harness against an app with a planted 500 and a reply that breaks its own schema."""
    app = FastAPI()

    class Reply(BaseModel):
        count: int

    @app.get("/crash/{n}")
    async def crash(n: int) -> dict[str, int]:
        return {"odd": 1 // (n % 2)}  # an even n: ZeroDivisionError, a 500

    @app.get("/liar", response_model=None, responses={200: {"model": Reply}})
    async def liar() -> dict[str, str]:
        return {"count": "not a number"}

    with _serving(app) as url:
        report = fuzz_api(url, {"no token": dict}, examples=30, skip=())
    kinds = {(f.operation, f.kind) for f in report.failures.values()}
    assert ("GET /crash/{n}", "not_a_server_error") in kinds
    assert ("GET /liar", "response_schema_conformance") in kinds
