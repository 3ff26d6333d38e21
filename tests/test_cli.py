"""hallctl: check-config, hash-pin, status, and run refusing a bad hall."""

from __future__ import annotations

import datetime as dt
import os
import socket
import subprocess
import sys
from pathlib import Path

from controller.security import pins
from controller.cli import main
from controller.runtime.clock import ManualClock
from tests.halls import at, small_hall
from tests.server import running_hall

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "config" / "demo-hall.toml"


def test_check_config_accepts_the_demo_hall(capsys):
    assert main(["check-config", str(DEMO)]) == 0
    out = capsys.readouterr().out
    assert "OK" in out and "万州区政务服务中心" in out


def test_check_config_names_the_bad_key(tmp_path, capsys):
    bad = tmp_path / "hall.toml"
    bad.write_text(DEMO.read_text(encoding="utf-8").replace("pause_limit_minutes = 15",
                                                            "pause_limit_minutes = -3"),
                   encoding="utf-8")
    assert main(["check-config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "rules.pause_limit_minutes" in err


def test_hash_pin(capsys):
    assert main(["hash-pin", "--pin", "864209"]) == 0
    assert pins.verify_pin("864209", capsys.readouterr().out.strip())
    assert main(["hash-pin", "--pin", "12"]) == 2


def test_run_refuses_a_live_hall_still_on_the_demo_pin(tmp_path):
    live = tmp_path / "hall.toml"
    live.write_text(DEMO.read_text(encoding="utf-8").replace("demo = true", "demo = false"),
                    encoding="utf-8")
    r = subprocess.run([sys.executable, "-m", "controller.cli", "run", "--config", str(live),
                        "--data-dir", str(tmp_path / "data")], capture_output=True, text=True,
                       timeout=60, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 2
    assert "pin_hash" in r.stderr and "1234" in r.stderr


def test_status_shows_windows_and_queues(tmp_path, capsys):
    with running_hall(small_hall(), tmp_path, ManualClock(at("09:00"))) as hall:
        with hall.client() as api:
            api.post("/api/v1/tickets", json={"service": "A"})
        hall.login("s1", 1)
        assert main(["status", "--url", hall.url]) == 0
    out = capsys.readouterr().out
    assert "A 社保医保: 1 人等候" in out
    assert "员工1(A岗)" in out


def test_status_says_when_nothing_answers(capsys):
    assert main(["status", "--url", "http://127.0.0.1:9"]) == 1
    assert "no controller answers" in capsys.readouterr().err


def test_run_says_which_port_is_taken(tmp_path, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["run", "--config", str(DEMO), "--data-dir", str(tmp_path),
                     "--port", str(port)]) == 1
    assert f"127.0.0.1:{port}" in capsys.readouterr().err


def test_a_restarted_demo_clock_goes_on_from_where_the_hall_stopped(tmp_path):
    """`--clock-start 09:00` on a hall that already worked until 10:15 starts at 10:15:
    a clock running backwards would put new calls before old ones."""
    from controller.assembly import hall_clock as _clock, open_hall
    from controller.core import commands as c

    hall = small_hall()
    day = _clock(hall, "09:00")().date()
    worked_until = at("10:15", day)
    ctrl, _ = open_hall(hall, tmp_path, ManualClock(worked_until))
    ctrl.execute(c.IssueTicket("A", "kiosk"), "kiosk")
    ctrl.store.close()

    restarted = _clock(hall, "09:00", tmp_path)()
    assert worked_until <= restarted < worked_until + dt.timedelta(minutes=1)
    # a hall with nothing recorded starts where it is told
    fresh = _clock(hall, "09:00", tmp_path / "empty")()
    assert fresh.time().replace(second=0, microsecond=0) == dt.time(9, 0)
