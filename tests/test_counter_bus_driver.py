"""The counter bus driver against a simulated row of keypads and pads on a real pty.

The row is windows 1-4 of the demo hall: keypads at bus addresses 1-4 and
evaluation pads at 11-14, one RS-485 bus.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

import pytest

from drivers.counter_keypad import (
    BusFrame, CounterBus, Display, GradePress, Key, KeyPress, PauseReason, pad_blank, pad_prompt, pad_thanks,
    show_text,
)
from drivers.counter_keypad.codec import PAD_BLANK, PAD_PROMPT, PAD_THANKS, SHOW_TEXT
from drivers.transport import Backoff, DeviceHealth, DeviceLink, Health, SerialTransport
from sim.counter_bus import SimulatedCounterBus

WINDOWS = {1: 1, 2: 2, 3: 3, 4: 4, 11: 1, 12: 2, 13: 3, 14: 4}
DRIVER_LOG = "drivers.counter_keypad.driver"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Row:
    """One row of counters: the simulated bus and what the controller hears from the driver."""

    sim: SimulatedCounterBus
    link: DeviceLink
    bus: CounterBus = None  # type: ignore[assignment]
    keys: list[tuple[int, KeyPress]] = field(default_factory=list)
    grades: list[tuple[int, GradePress]] = field(default_factory=list)
    health: list[DeviceHealth] = field(default_factory=list)

    def poll_until(self, done, seconds: float = 2.0) -> None:
        deadline = time.monotonic() + seconds
        while not done():
            assert time.monotonic() < deadline, "the bus never got there"
            self.bus.poll_once(0.02)

    def polls(self, n: int) -> None:
        for _ in range(n):
            self.bus.poll_once(0.02)

    @property
    def states(self) -> list[Health]:
        """Changes of state (DeviceLink reports OFFLINE again when only the error text changes)."""
        out: list[Health] = []
        for report in self.health:
            if not out or out[-1] is not report.state:
                out.append(report.state)
        return out


@pytest.fixture
def make_row(tmp_path):
    rows: list[Row] = []

    def make(clock=time.monotonic, **sim_options) -> Row:
        sim = SimulatedCounterBus(link=str(tmp_path / "ttyBUS1"), **sim_options).start()
        health: list[DeviceHealth] = []
        link = DeviceLink("bus-1", SerialTransport(sim.path, 9600), health.append, Backoff(first=0.05, most=0.2))
        row = Row(sim, link, health=health)
        row.bus = CounterBus("bus-1", link, WINDOWS, lambda w, p: row.keys.append((w, p)),
                             lambda w, g: row.grades.append((w, g)), clock=clock)
        rows.append(row)
        assert link.ensure_open()  # the bus is listening before anyone presses (opening flushes the line)
        return row

    yield make
    for row in rows:
        row.link.close()
        row.sim.unplug()


@pytest.fixture
def row(make_row) -> Row:
    return make_row()


def test_presses_reach_their_window_and_each_frame_is_echoed(row):
    frames = [
        row.sim.press(2, Key.CALL_NEXT),
        row.sim.press(3, Key.PAUSE, reason=PauseReason.MEAL, minutes=30),
        row.sim.press(4, "transfer", service_letter="B"),
        row.sim.press(1, Key.CALL_NUMBER, number="A012"),
    ]
    row.poll_until(lambda: len(row.keys) == 4)
    assert row.keys == [
        (2, KeyPress(2, Key.CALL_NEXT)),
        (3, KeyPress(3, Key.PAUSE, reason=4, minutes=30)),
        (4, KeyPress(4, Key.TRANSFER, service_letter="B")),
        (1, KeyPress(1, Key.CALL_NUMBER, number="A012")),
    ]
    assert row.keys[1][1].reason.label == "就餐"
    assert row.sim.wait_for_acks(4) and row.sim.acks == frames
    assert row.states == [Health.ONLINE]


def test_a_grade_on_the_pad_reaches_its_window(row):
    row.sim.press(1, Key.START_EVALUATION)
    row.sim.grade(11, 1)
    row.sim.grade(14, 5)
    row.poll_until(lambda: len(row.grades) == 2)
    assert row.keys == [(1, KeyPress(1, Key.START_EVALUATION))]
    assert row.grades == [(1, GradePress(11, 1)), (4, GradePress(14, 5))]
    assert row.sim.wait_for_acks(3)


def test_a_bounced_key_calls_once_and_both_frames_are_echoed(make_row):
    row = make_row(bounce=True)
    frame = row.sim.press(2, Key.CALL_NEXT)
    row.poll_until(lambda: len(row.sim.acks) == 2)
    row.polls(3)
    assert row.keys == [(2, KeyPress(2, Key.CALL_NEXT))]
    assert row.sim.sent == [frame, frame] and row.bus.repeats == 1


def test_a_lost_echo_makes_the_keypad_send_again_and_the_repeat_is_not_acted_on(make_row):
    row = make_row(drop_echo=1, retry_after=0.1)
    frame = row.sim.press(3, Key.FINISH)
    row.poll_until(lambda: row.sim.acks == [frame])
    row.polls(3)
    assert row.keys == [(3, KeyPress(3, Key.FINISH))]
    assert row.sim.lost_echoes == 1 and row.sim.sent == [frame, frame]


def test_a_grade_is_echoed_only_after_the_controller_has_it_and_a_failed_one_is_sent_again(make_row):
    row = make_row(retry_after=0.2, retries=5)
    tries: list[GradePress] = []

    def record(window, grade):  # the controller's commit: the disk is full the first two times
        tries.append(grade)
        if len(tries) <= 2:
            raise OSError("database or disk is full")
        row.grades.append((window, grade))

    row.bus.on_grade = record
    frame = row.sim.grade(12, 4)
    row.poll_until(lambda: len(tries) == 1)
    assert row.sim.acks == []  # not recorded, not acknowledged
    row.poll_until(lambda: row.sim.acks == [frame])
    row.polls(5)
    assert row.grades == [(2, GradePress(12, 4))] and len(tries) == 3
    assert row.sim.sent[:3] == [frame, frame, frame]  # a fourth only if the echo was slow: a repeat


def test_the_same_key_after_the_debounce_is_a_new_press_and_another_key_at_once_is_too(make_row):
    clock = FakeClock()
    row = make_row(clock=clock)
    row.sim.press(1, Key.RECALL)
    row.poll_until(lambda: len(row.keys) == 1)
    row.sim.press(1, Key.RECALL)  # same frame, no time passed: a repeat
    row.poll_until(lambda: len(row.sim.acks) == 2)
    clock.now += 0.31
    row.sim.press(1, Key.RECALL)
    row.sim.press(1, Key.NO_SHOW)
    row.poll_until(lambda: len(row.keys) == 3)
    assert [p.key for _, p in row.keys] == [Key.RECALL, Key.RECALL, Key.NO_SHOW]
    assert row.bus.repeats == 1


def test_a_press_from_an_address_no_window_has_is_ignored_and_not_acknowledged(row, caplog):
    caplog.set_level(logging.WARNING, DRIVER_LOG)
    row.sim.press(9, Key.CALL_NEXT)
    known = row.sim.press(2, Key.CALL_NEXT)
    row.poll_until(lambda: len(row.keys) == 1)
    assert row.keys == [(2, KeyPress(2, Key.CALL_NEXT))]
    assert row.sim.wait_for_acks(1) and row.sim.acks == [known]
    assert row.bus.strays == 1
    assert caplog.messages == ["bus-1: function 0C from bus address 9, which no window has; not acknowledged"]


def test_a_frame_with_impossible_data_is_echoed_logged_and_not_acted_on(row, caplog):
    caplog.set_level(logging.WARNING, DRIVER_LOG)
    bad = BusFrame(12, 0x11, b"\x09")  # grade 9
    row.sim.send_frame(bad)
    row.sim.grade(12, 2)
    row.poll_until(lambda: len(row.grades) == 1)
    assert row.grades == [(2, GradePress(12, 2))]
    assert row.sim.wait_for_acks(2) and row.sim.acks[0] == bad
    assert caplog.messages == ["bus-1: window 2: address 12: a grade is one byte 1-5, not '09'"]


def test_noise_and_a_broken_frame_on_the_line_do_not_stop_the_next_press(row):
    row.sim.send_raw(b"\x00\x13\xff\xfe\x68\x68")
    row.sim.send_raw(bytes.fromhex("FF 68 02 02 68 01 0C 0E 16"))  # bad SUM
    time.sleep(0.05)
    row.sim.press(1, Key.CALL_NEXT)
    row.poll_until(lambda: len(row.keys) == 1)
    assert row.keys == [(1, KeyPress(1, Key.CALL_NEXT))]
    assert row.bus.decoder.rejected >= 1


def test_a_frame_cut_short_is_given_up_after_a_quiet_moment_and_the_next_press_reads(row):
    row.sim.send_raw(bytes.fromhex("FF 68 40 40 68 01 0C"))  # the keypad lost power mid-frame
    time.sleep(0.15)
    row.polls(3)
    row.sim.press(1, Key.RESUME)
    row.poll_until(lambda: len(row.keys) == 1)
    assert row.keys == [(1, KeyPress(1, Key.RESUME))]


def test_text_prompts_blank_and_thanks_reach_the_devices(row):
    row.bus.send(show_text(1, "请 A012 到 1 号窗口"))
    row.bus.send(pad_prompt(11, 1, "张喆"))
    row.bus.send(pad_thanks(11))
    row.bus.send(pad_blank(12))
    deadline = time.monotonic() + 2
    while len(row.sim.shown) < 4:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert row.sim.shown == [
        (1, SHOW_TEXT, "请 A012 到 1 号窗口"), (11, PAD_PROMPT, "张喆"), (11, PAD_THANKS, ""), (12, PAD_BLANK, ""),
    ]
    assert row.sim.screens[11] == Display(11, PAD_THANKS)
    assert row.sim.acks == []  # controller frames are not echoes


def test_a_pad_that_acknowledges_the_controllers_frame_is_not_answered_back(make_row):
    row = make_row(echo_commands=True)
    row.bus.send(pad_prompt(13, 3, "李四"))
    row.polls(10)
    assert row.sim.shown == [(13, PAD_PROMPT, "李四")]  # no ping-pong of echoes
    assert row.keys == [] and row.grades == []


def test_an_unplugged_bus_goes_offline_and_presses_work_again_when_plugged_back(row):
    row.sim.press(1, Key.CALL_NEXT)
    row.poll_until(lambda: len(row.keys) == 1)
    row.sim.unplug()
    row.polls(2)
    assert row.states == [Health.ONLINE, Health.OFFLINE]
    row.polls(3)  # still unplugged: no crash, no repeated report
    assert row.states == [Health.ONLINE, Health.OFFLINE]

    row.sim.plug()  # same /dev/serial/by-id style path, a new pty behind it
    row.poll_until(lambda: row.states[-1] is Health.ONLINE)
    assert row.states == [Health.ONLINE, Health.OFFLINE, Health.ONLINE]
    frame = row.sim.press(2, Key.CALL_NEXT)
    row.poll_until(lambda: len(row.keys) == 2)
    assert row.keys[1] == (2, KeyPress(2, Key.CALL_NEXT))
    assert row.sim.wait_for_acks(2) and row.sim.acks[1:] == [frame]


def test_the_bus_thread_runs_until_stopped(row):
    stop = threading.Event()
    thread = threading.Thread(target=row.bus.run, args=(stop, 0.02), daemon=True)
    thread.start()
    try:
        row.sim.press(4, Key.PAUSE)
        row.sim.grade(13, 3)
        deadline = time.monotonic() + 2
        while len(row.keys) + len(row.grades) < 2:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        row.bus.send(pad_thanks(13))  # from the controller's thread while the bus thread reads
        assert row.sim.wait_for_acks(2)
        while not row.sim.shown:
            assert time.monotonic() < deadline
            time.sleep(0.01)
    finally:
        stop.set()
        thread.join(2)
    assert not thread.is_alive()
    assert row.keys == [(4, KeyPress(4, Key.PAUSE))] and row.grades == [(3, GradePress(13, 3))]
    assert row.sim.shown == [(13, PAD_THANKS, "")]
