"""Small halls for tests: they live in `sim.halls`, which the benchmarks and the fuzzers
use too (nothing outside tests imports `tests`)."""

from sim.halls import (  # noqa: F401
    CALLING_VOICE, MONDAY, PIN_HASH, SEALER, TZ, WEEKDAY_HOURS, access_hall, at, calling_hall, kiosk_hall,
    many_windows, small_hall, span,
)
