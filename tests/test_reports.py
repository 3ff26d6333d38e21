"""Estimate accuracy: what tickets promised against what citizens waited."""

from __future__ import annotations

from controller.runtime.clock import ManualClock
from controller.cli import open_hall
from controller.core import commands as c
from controller.backoffice.reports import estimate_accuracy
from tests.halls import MONDAY, at, small_hall


def test_estimate_accuracy_from_the_stored_tickets(tmp_path):
    clock = ManualClock(at("09:00"))
    ctrl, _ = open_hall(small_hall(), tmp_path, clock)
    ctrl.execute(c.Login(1, "s1"), "staff:s1")
    issued = [ctrl.execute(c.IssueTicket("A"), "kiosk").ticket for _ in range(3)]
    ctrl.execute(c.IssueTicket("C"), "kiosk")  # never called: not counted
    waits = []
    for minutes in (4, 6, 30):
        clock.advance(minutes=minutes)
        t = ctrl.execute(c.CallNext(1), "staff:s1").ticket
        waits.append((clock.now - t.issued_at).total_seconds() / 60)
    report = estimate_accuracy(ctrl.store.db, MONDAY)
    expected_mae = sum(abs(w - t.eta_p50) for w, t in zip(waits, issued, strict=True)) / 3
    inside = sum(1 for w, t in zip(waits, issued, strict=True) if t.eta_p10 <= w <= t.eta_p90) / 3
    assert report["tickets"] == 3
    assert report["p50_mean_abs_error_minutes"] == round(expected_mae, 2)
    assert report["inside_p10_p90"] == round(inside, 3)
    assert report["mean_wait_minutes"] == round(sum(waits) / 3, 2)
    assert list(report["services"]) == ["A"]
