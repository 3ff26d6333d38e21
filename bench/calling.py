"""make bench-calling: from a keypad's call-next frame to the window bar's display frame.

A 300-window hall: keypads on two RS-485 buses and window bars on two more, all
simulated on real ptys and read and written by the real drivers. A press is
sent by the keypad simulator; the figure is the time until the controller has
written that window's new display frame to its bar's line (measured where the
driver writes). Presses come open-loop at a steady rate. The wire time of both
frames at 9600 baud, which a real bus adds, is reported separately.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import random
import tempfile
import threading
import time
from pathlib import Path

from bench.core import DOCS, Result, Run, machine, percentile, section, write_docs
from controller.assembly import attach_floor, open_hall
from controller.runtime.clock import ShiftedClock
from controller.core import commands as c
from controller.core.hall import Device
from controller.floor.devices import DeviceAddress
from drivers.caller_display import (
    Calling, DisplayProtocolError, bar_colour, bar_lines, generic_codec,
)
from drivers.counter_keypad.codec import BusFrame, CALL_NEXT, encode_frame
from sim.counter_bus import SimulatedCounterBus
from sim.pty_device import PtyDevice
from sim.halls import at, many_windows, small_hall

START, END = "<!-- bench-calling:start -->", "<!-- bench-calling:end -->"
COMMAND = "make bench-calling"
P99_MS = 10.0
PER_BUS = 150
BAUD = 9600


class BarBus(PtyDevice):
    """Every window bar on one RS-485 line: acknowledges each frame, as the bars would."""

    def __init__(self, link: str) -> None:
        super().__init__(link)
        self.decoder = generic_codec.FrameDecoder()

    def handle(self, data: bytes) -> None:
        for message in self.decoder.feed(data):
            if isinstance(message, generic_codec.ShowText):
                self.send(generic_codec.encode_ack(message.address))


def bench_hall(windows: int):
    hall = small_hall(many_windows(windows, ("A",)), waiting_tickets_per_person=0)
    devices = []
    for n in range(1, windows + 1):
        bus, address = divmod(n - 1, PER_BUS)
        devices.append(Device(f"keypad-{n}", "counter_keypad", "serial", port=f"/dev/kb{bus}",
                              window=n, options=(("address", str(address + 1)),)))
        devices.append(Device(f"bar-{n}", "caller_display", "serial", port=f"/dev/bar{bus}",
                              window=n, options=(("address", str(address + 1)),)))
    return dataclasses.replace(hall, devices=tuple(devices))


def run_calls(windows: int, calls: int, rate: float) -> tuple[list[float], dict[str, float]]:
    hall = bench_hall(windows)
    tmp = Path(tempfile.mkdtemp(prefix="bench-calling-"))
    buses = windows // PER_BUS + (1 if windows % PER_BUS else 0)
    keypads = [SimulatedCounterBus(link=str(tmp / f"kb{i}.tty")).start() for i in range(buses)]
    bar_buses = [BarBus(str(tmp / f"bar{i}.tty")).start() for i in range(buses)]
    substitutes = {}
    for d in hall.devices:
        bus = int(d.port[-1])
        substitutes[d.id] = DeviceAddress("serial", (keypads if d.kind == "counter_keypad"
                                                    else bar_buses)[bus].path)
    ctrl, _ = open_hall(hall, tmp / "data", ShiftedClock("Asia/Shanghai", at("09:00")))
    floor, calling = attach_floor(ctrl, tmp / "data", None, substitutes)
    written: dict[int, list[float]] = {}
    lock = threading.Lock()
    # where a bar frame is written to its line: (line, bus address) -> window
    window_of = {(id(bar.link), bar.address): window
                 for window, bars in calling.bars.items() for bar in bars}
    for link in {id(bar.link): bar.link for bars in calling.bars.values() for bar in bars}.values():
        real_write = link.transport.write

        def write(data: bytes, real_write=real_write, link=link) -> None:
            real_write(data)
            now = time.perf_counter()
            try:
                message = generic_codec.decode_frame(data)
            except DisplayProtocolError:
                return
            window = window_of.get((id(link), message.address))
            if isinstance(message, generic_codec.ShowText) and window is not None:
                with lock:
                    written.setdefault(window, []).append(now)
        link.transport.write = write
    for n in range(1, windows + 1):
        ctrl.execute(c.Login(n, f"s{n}"), f"staff:s{n}")
    for _ in range(calls + windows):
        ctrl.execute(c.IssueTicket("A"), "kiosk")
    time.sleep(1.0)  # the initial states reach every bar

    rng = random.Random(7)
    # every window in a shuffled turn: a window presses again only after all the others,
    # never inside the keypad's 0.3 s debounce (which would rightly drop the press)
    turn = rng.sample(range(1, windows + 1), windows)
    order = turn * (calls // windows + 1)
    latencies = []
    due = time.perf_counter()
    try:
        for window in order[:calls]:
            bus, address = divmod(window - 1, PER_BUS)
            due += rng.expovariate(rate)
            time.sleep(max(0.0, due - time.perf_counter()))
            with lock:
                before = len(written.get(window, []))
            t0 = time.perf_counter()
            keypads[bus].press(address + 1, "call_next")
            deadline = t0 + 2
            while time.perf_counter() < deadline:
                with lock:
                    seen = written.get(window, [])
                    if len(seen) > before:
                        latencies.append((seen[before] - t0) * 1000)
                        break
                time.sleep(0.0002)
            else:
                raise SystemExit(f"bench: window {window}'s bar was never written")
    finally:
        calling.close()
        floor.close()
        for device in (*keypads, *bar_buses):
            device.unplug()
        ctrl.store.close()
    key_frame = encode_frame(BusFrame(1, CALL_NEXT))
    state = Calling(123, "A1234", "社保医保")
    bar_frame = generic_codec.encode_bar(1, bar_lines(state, 8), bar_colour(state))
    wire = {"keypad": len(key_frame), "echo": len(key_frame), "display": len(bar_frame),
            "ack": len(generic_codec.encode_ack(1))}
    return latencies, wire


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.calling", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a short smoke run; docs not rewritten")
    p.add_argument("--no-docs", action="store_true")
    args = p.parse_args(argv)
    calls, rate, windows = (100, 50.0, 300) if args.quick else (2000, 50.0, 300)
    started = dt.datetime.now(dt.timezone.utc)
    t0 = time.perf_counter()
    info = machine()
    for k, v in info.items():
        print(f"{k}: {v}")
    latencies, wire = run_calls(windows, calls, rate)
    run = Run()
    how = (f"{len(latencies)} call-next presses, windows in shuffled turns of {windows}, {rate:.0f}/s "
           f"open-loop; from the keypad simulator's write to the bar frame's write")
    run.add(Result(f"keypad to window bar p50, {windows} windows", percentile(latencies, 50), "ms",
                   detail=how))
    run.add(Result(f"keypad to window bar p99, {windows} windows", percentile(latencies, 99), "ms",
                   P99_MS, higher_is_better=False, detail=how + f"; max {max(latencies):.2f} ms"))
    bits = 10 * (wire["keypad"] + wire["echo"] + wire["display"] + wire["ack"])
    run.add(Result("  serial wire time at 9600 baud (not included)", bits / BAUD * 1000, "ms",
                   detail=f"8N1: {wire['keypad']} B keypad frame + its echo, {wire['display']} B "
                          f"display frame + {wire['ack']} B ack, 10 bits a byte"))
    run.notes.append("Keypads: two simulated RS-485 buses of 150 addresses; bars: two more, on "
                     "ptys (no baud rate emulated), driven by the real CounterBus and WindowBar "
                     "drivers; every call is a durable commit (WAL, synchronous=FULL) before the "
                     "bar is written.")
    seconds = time.perf_counter() - t0
    print(f"done in {seconds:.0f} s")
    if not (args.quick or args.no_docs):
        write_docs(DOCS, section(run, info, started, seconds, START, END, COMMAND), START, END)
        print(f"wrote {DOCS.relative_to(DOCS.parent.parent)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
