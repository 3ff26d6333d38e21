"""Routing: which ticket each window calls next. One row per rule."""

from __future__ import annotations

import datetime as dt

import pytest

from controller.core import commands as c
from tests.halls import at, small_hall
from tests.story import Story

# Each story is a list of steps:
#   ("issue", service, {kwargs})      take a ticket
#   ("call", window, expected label)  the window calls next; expect that label (or None)
#   ("noshow"|"finish", window)       act on the window's current ticket
#   ("transfer", window, service)
#   ("pause", window) / ("resume", window)
#   ("at", "HH:MM")                   the clock moves
ROUTING = {
    "oldest first within a service": (
        {}, [("issue", "A"), ("issue", "A"), ("issue", "A"),
             ("call", 1, "A001"), ("call", 1, "A002"), ("call", 1, "A003"), ("call", 1, None)]),
    "a window takes its services in its priority order": (
        {}, [("issue", "A"), ("issue", "B"), ("call", 2, "B001"), ("call", 2, "A001")]),
    "a window never takes a service it does not serve": (
        {}, [("issue", "B"), ("call", 1, None), ("call", 2, "B001")]),
    "priority tickets first within a service": (
        {}, [("issue", "A"), ("issue", "A", {"priority": "disabled", "staff_id": "boss"}),
             ("call", 1, "A002"), ("call", 1, "A001")]),
    "priority does not jump when the service says so": (
        {}, [("issue", "C"), ("issue", "C", {"priority": "pregnant", "staff_id": "boss"}),
             ("call", 3, "C001"), ("call", 3, "C002")]),
    "priority within a service does not beat a service earlier in the window's order": (
        {}, [("issue", "B"), ("issue", "A", {"priority": "urgent", "staff_id": "boss"}),
             ("call", 2, "B001"), ("call", 2, "A001")]),
    "elderly by ID card birth date get priority": (
        {"priority_age": 70},
        [("issue", "A", {"id_number": "110101199003070978"}),
         ("issue", "A", {"id_number": "11010119500307097X"}),
         ("call", 1, "A002"), ("call", 1, "A001")]),
    "younger than the threshold keep their place": (
        {"priority_age": 80},
        [("issue", "A", {"id_number": "110101199003070978"}),
         ("issue", "A", {"id_number": "11010119500307097X"}),
         ("call", 1, "A001"), ("call", 1, "A002")]),
    "an appointment is called at its slot": (
        {"appointment_early_minutes": 0},
        [("issue", "A"),
         ("issue", "A", {"channel": "appointment", "appointment_at": at("09:30")}),
         ("call", 1, "A001"), ("at", "09:30"), ("issue", "A"),
         ("call", 1, "A002"), ("call", 1, "A003")]),
    "an appointment may be called a little early": (
        {"appointment_early_minutes": 10},
        [("issue", "A"),
         ("issue", "A", {"channel": "appointment", "appointment_at": at("09:05")}),
         ("call", 1, "A002"), ("call", 1, "A001")]),
    "a missed ticket is requeued once, at the back": (
        {"no_show": "requeue_once"},
        [("issue", "A"), ("issue", "A"), ("call", 1, "A001"), ("noshow", 1),
         ("call", 1, "A002"), ("call", 1, "A001"), ("noshow", 1), ("call", 1, None)]),
    "a missed ticket is dropped": (
        {"no_show": "drop"},
        [("issue", "A"), ("issue", "A"), ("call", 1, "A001"), ("noshow", 1),
         ("call", 1, "A002"), ("call", 1, None)]),
    "a transferred ticket keeps its number and joins by its issue time": (
        {"transfer_position": "original_time"},
        [("issue", "A"), ("at", "09:05"), ("issue", "B"), ("call", 1, "A001"),
         ("transfer", 1, "B"), ("call", 2, "A001"), ("call", 2, "B001")]),
    "a transferred ticket joins at the back": (
        {"transfer_position": "back"},
        [("issue", "A"), ("at", "09:05"), ("issue", "B"), ("call", 1, "A001"),
         ("transfer", 1, "B"), ("call", 2, "B001"), ("call", 2, "A001")]),
    "a paused window gets nothing; others still do": (
        {"transfer_position": "back"},
        [("issue", "A"), ("pause", 1), ("call", 2, "A001"), ("resume", 1), ("call", 1, None)]),
    "two windows never get the same ticket": (
        {}, [("issue", "A"), ("issue", "A"), ("call", 1, "A001"), ("call", 2, "A002"),
             ("call", 2, None)]),
}


@pytest.mark.parametrize("name", ROUTING)
def test_routing(name):
    rules, steps = ROUTING[name]
    story = Story(small_hall(**rules))
    story.open(1, 2, 3)
    for step in steps:
        verb, *args = step
        if verb == "issue":
            story.issue(args[0], **(args[1] if len(args) > 1 else {}))
        elif verb == "call":
            window, expected = args
            assert story.call(window) == expected, f"{name}: window {window}"
        elif verb == "noshow":
            story.do(c.NoShow(args[0]))
        elif verb == "finish":
            story.do(c.Finish(args[0]))
        elif verb == "transfer":
            story.do(c.Transfer(args[0], args[1]))
        elif verb == "pause":
            story.do(c.Pause(args[0], "取材料", 5))
        elif verb == "resume":
            story.do(c.Resume(args[0]))
        elif verb == "at":
            story.at(args[0])
        else:
            raise AssertionError(verb)


def test_numbers_count_per_prefix_and_reset_each_day():
    story = Story(small_hall())
    assert [story.issue(p) for p in "AABAC"] == ["A001", "A002", "B001", "A003", "C001"]
    story.now = at("09:00", dt.date(2026, 11, 24))
    assert story.issue("A") == "A001"
    assert story.state.find_label("A001").day == dt.date(2026, 11, 24)
    assert len(story.state.tickets) == 1


def test_new_day_cancels_yesterdays_waiting_tickets_and_closes_windows():
    story = Story(small_hall())
    story.open(1)
    story.issue("A"), story.issue("A")
    story.call(1)
    story.now = at("09:00", dt.date(2026, 11, 24))
    story.do_new_day()
    cancelled = [e for e in story.events if e.kind == "ticket_cancelled"]
    # A001, still at window 1, was served, not cancelled (test_engine: the day change)
    assert [e.ticket for e in cancelled] == ["20261123-A002"]
    assert story.state.windows[1].status.value == "closed"
    assert story.state.windows[1].current is None
    assert story.state.queues.waiting("A") == 0
