"""Running a hall (README, Running a hall): `hallctl install` into a temporary root, checked by
systemd's own `systemd-analyze verify` and `systemd-sysusers`, then `hallctl uninstall` leaving
nothing; `hallctl doctor` on the installed hall, healthy and with faults; and the watchdog: a
real `hallctl run` telling a real unix datagram socket (as systemd's NOTIFY_SOCKET) READY=1,
then WATCHDOG=1 pings, then STOPPING=1. And a hall's life on its PC end to end (issue 18's
acceptance): a first-schema database, install, doctor, run (the database migrates), backup while
it runs, restore into a fresh data directory, run again, uninstall.

No systemd runs as this machine's init, so the units are installed into a temporary root and
verified, not started; everything the service does at run time (the notify protocol, the
devices on ptys, the doctor) runs for real."""

from __future__ import annotations

import os
import pwd
import re
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from controller.cli import main
from sim.counter_bus import SimulatedCounterBus
from sim.id_card_reader import SimulatedIdCardReader
from sim.served import free_port
from sim.ticket_printer import PtyPrinter, SimulatedPrinter
from tests.server import HallProcess

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "config" / "demo-hall.toml"
HALLCTL = [sys.executable, "-m", "controller.cli"]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
UNITS = ("hall-controller.service", "hall-backup.service", "hall-backup.timer")

needs_systemd_tools = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None or shutil.which("systemctl") is None,
    reason="Debian package systemd (make deps-debian installs it)")


def hall_file(folder: Path, devices: str) -> Path:
    """The demo hall with `devices` (TOML) in place of its floor, its broker on a free port,
    and the demo's holidays.toml beside it."""
    text = DEMO.read_text(encoding="utf-8")
    text = text[:text.index("\n[[devices]]")] + "\n" + devices + text[text.index("\n[mqtt]"):]
    text = re.sub(r'embedded_listen = "127\.0\.0\.1:\d+"',
                  f'embedded_listen = "127.0.0.1:{free_port()}"', text)
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(DEMO.with_name("holidays.toml"), folder / "holidays.toml")
    path = folder / "hall.toml"
    path.write_text(text, encoding="utf-8")
    return path


def kiosk_and_counter(printer: str, reader: str, bus: str) -> str:
    return f"""
[[devices]]
id = "kiosk-printer"
kind = "ticket_printer"
transport = "serial"
port = "{printer}"

[[devices]]
id = "kiosk-id-reader"
kind = "id_reader"
transport = "serial"
port = "{reader}"
options = {{ baud = "115200" }}

[[devices]]
id = "keypad-01"
kind = "counter_keypad"
transport = "serial"
port = "{bus}"
window = 1
options = {{ address = "1", baud = "9600" }}
"""


@pytest.fixture
def floor(tmp_path):
    """The kiosk's printer and ID card reader and a counter bus, simulated on real ptys behind
    stable links (as /dev/serial/by-id gives them)."""
    links = tmp_path / "serial"
    links.mkdir()
    printer = PtyPrinter(SimulatedPrinter(), link=str(links / "printer"))
    reader = SimulatedIdCardReader(link=str(links / "id-reader"))
    bus = SimulatedCounterBus(link=str(links / "counter-bus"))
    for device in (printer, reader, bus):
        device.start()
    yield printer, reader, bus
    for device in (printer, reader, bus):
        device.stop()


def tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def install(root: Path, config: Path, *more: str) -> None:
    assert main(["install", "--config", str(config), "--data-dir", "/var/lib/hall",
                 "--root", str(root), *more]) == 0


def doctor(config: Path, data_dir: Path, *more: str) -> tuple[int, str]:
    r = subprocess.run([*HALLCTL, "doctor", "--config", str(config), "--data-dir", str(data_dir),
                        "--port", str(free_port()), *more],
                       capture_output=True, text=True, timeout=60, cwd=ROOT, env=ENV)
    return r.returncode, r.stdout + r.stderr


def line(out: str, mark: str, *words: str) -> str:
    """The doctor's line with `mark` that has all of `words`; fail if there is none."""
    found = [x for x in out.splitlines() if x.startswith(mark) and all(w in x for w in words)]
    assert found, f"no {mark} line with {words} in:\n{out}"
    return found[0]


@needs_systemd_tools
def test_install_into_a_root_systemd_accepts_and_uninstall_leaves_nothing(tmp_path, capsys):
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (root / "etc" / "group").write_text("root:x:0:\n")
    before = tree(root)

    install(root, DEMO)
    units = root / "etc" / "systemd" / "system"
    verify = subprocess.run(["systemd-analyze", "verify", *(str(units / u) for u in UNITS)],
                            capture_output=True, text=True, timeout=60)
    # an unknown key or a missing program is only a warning to verify: nothing may be said
    assert (verify.returncode, verify.stdout + verify.stderr) == (0, "")

    service = (units / "hall-controller.service").read_text(encoding="utf-8")
    settings = [x for x in service.splitlines() if "=" in x and not x.startswith("#")]
    for expected in ("Type=notify", "User=hallctl", "Restart=on-failure", "WatchdogSec=30s",
                     "ProtectSystem=strict", "PrivateTmp=yes", "NoNewPrivileges=yes",
                     "DevicePolicy=closed", "SupplementaryGroups=dialout", "CapabilityBoundingSet=",
                     "WantedBy=multi-user.target"):
        assert expected in settings
    # writable: the data directory alone; of /dev: the demo hall's devices alone
    assert [x for x in settings if x.startswith("ReadWritePaths=")] == ["ReadWritePaths=/var/lib/hall"]
    assert {x for x in settings if x.startswith("DeviceAllow=")} == {
        "DeviceAllow=/dev/ttyACM0 rw", "DeviceAllow=/dev/ttyUSB0 rw", "DeviceAllow=/dev/ttyUSB1 rw",
        "DeviceAllow=/dev/ttyUSB2 rw", "DeviceAllow=char-ttyUSB rw", "DeviceAllow=char-ttyACM rw",
        "DeviceAllow=char-usb_device rw"}  # the kiosk printer on USB 0416:5011
    start = next(x for x in settings if x.startswith("ExecStart="))
    assert start.startswith(f"ExecStart={Path(sys.executable).with_name('hallctl')} run "
                            "--config /etc/hall/hall.toml --data-dir /var/lib/hall")
    backup = (units / "hall-backup.service").read_text(encoding="utf-8")
    assert "backup --config /etc/hall/hall.toml --data-dir /var/lib/hall" in backup
    assert "ReadWritePaths=/var/lib/hall" in backup and "DeviceAllow" not in backup
    assert "OnCalendar=*-*-* 02:30:00" in (units / "hall-backup.timer").read_text(encoding="utf-8")

    # enabled at boot, the backup every night
    assert (units / "multi-user.target.wants" / "hall-controller.service").is_symlink()
    assert (units / "timers.target.wants" / "hall-backup.timer").is_symlink()
    # the service's user, as systemd-sysusers would make it in that root
    users = subprocess.run(["systemd-sysusers", f"--root={root}", "--dry-run"],
                           capture_output=True, text=True, timeout=30)
    assert users.returncode == 0 and "Creating user 'hallctl'" in users.stdout + users.stderr
    assert (root / "etc/hall/hall.toml").read_text(encoding="utf-8") == DEMO.read_text(encoding="utf-8")
    assert (root / "etc/hall/holidays.toml").exists()
    assert oct((root / "etc/hall/hall.env").stat().st_mode & 0o777) == oct(0o600)
    assert (root / "var/lib/hall").is_dir()

    assert main(["uninstall", "--root", str(root)]) == 0
    assert tree(root) == before
    assert main(["uninstall", "--root", str(root)]) == 1  # nothing left to remove, and it says so
    assert "nothing to uninstall" in capsys.readouterr().err


def test_install_refuses_a_bad_hall_file_and_writes_nothing(tmp_path, capsys):
    bad = tmp_path / "hall.toml"
    bad.write_text(DEMO.read_text(encoding="utf-8").replace('region_code = "500101"', "region_code = 500101"),
                   encoding="utf-8")
    root = tmp_path / "root"
    root.mkdir()
    assert main(["install", "--config", str(bad), "--data-dir", "/var/lib/hall", "--root", str(root)]) == 2
    assert "hall.region_code" in capsys.readouterr().err
    assert tree(root) == set()


@needs_systemd_tools
def test_a_hall_installed_into_a_root_is_healthy_by_the_doctor(tmp_path, floor):
    printer, reader, bus = floor
    config = hall_file(tmp_path / "source", kiosk_and_counter(printer.path, reader.path, bus.path))
    root = tmp_path / "root"
    install(root, config)

    status, out = doctor(root / "etc/hall/hall.toml", root / "var/lib/hall")
    assert status == 0, out
    line(out, "✓", "配置 config", "万州区政务服务中心", "3 devices")
    line(out, "✓", "kiosk-printer", "paper ok")  # asked DLE EOT, the printer answered
    line(out, "✓", "kiosk-id-reader", "SAM")  # asked the SAM's status
    line(out, "✓", "keypad-01", "opens")
    line(out, "✓", "数据目录 data dir", "writable")
    line(out, "✓", "端口 web port", "free")
    line(out, "✓", "端口 broker port", "free")
    line(out, "!", "密钥 key", "made at the first start")
    line(out, "✓", "消息服务 broker", "embedded")
    assert re.search(r"^[✓!] 时钟 clock: ", out, re.MULTILINE)
    assert re.search(r"^[✓!] 日历 calendar: holidays and 调休 days 2004-", out, re.MULTILINE)
    assert "✗" not in out


def test_the_doctor_names_a_missing_device_a_silent_one_and_a_key_others_can_read(tmp_path, floor):
    printer, reader, bus = floor
    config = hall_file(tmp_path / "hall", kiosk_and_counter(printer.path, reader.path, bus.path))
    data = tmp_path / "data"
    data.mkdir()
    key = data / "secret.key"
    key.write_text("c2VjcmV0LWtleS1zZWNyZXQta2V5LXNlY3JldC1rZXk=\n")
    key.chmod(0o644)
    bus.unplug()  # its by-id link goes with it
    reader.silent = True
    printer.paper = "out"

    status, out = doctor(config, data)
    assert status == 1, out
    line(out, "✗", "keypad-01", "is missing")
    line(out, "✗", "kiosk-id-reader", "does not answer")
    line(out, "✗", "密钥 key", "0644", "chmod 600")
    line(out, "✗", "kiosk-printer", "paper is out")

    key.chmod(0o600)
    bus.plug()
    reader.silent = False
    printer.paper = "ok"
    status, out = doctor(config, data)
    assert status == 0, out
    line(out, "✓", "密钥 key", "0600")


def test_the_doctor_names_a_data_dir_the_services_user_cannot_write(tmp_path):
    config = hall_file(tmp_path / "hall", "")
    data = tmp_path / "data"
    data.mkdir()
    data.chmod(0o555)
    # as root every directory is writable: ask as the service's user, as `sudo hallctl doctor
    # --user hallctl` does; an unprivileged run is refused by the write itself too
    user = "nobody" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
    try:
        status, out = doctor(config, data, "--user", user)
    finally:
        data.chmod(0o755)
    assert status == 1, out
    line(out, "✗", "数据目录 data dir", str(data))


def test_the_doctor_names_a_port_another_program_holds(tmp_path):
    config = hall_file(tmp_path / "hall", "")
    (tmp_path / "data").mkdir()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        status, out = doctor(config, tmp_path / "data", "--port", str(port))
    assert status == 1, out
    line(out, "✗", "端口 web port", f"127.0.0.1:{port}", "taken by another program")


def test_the_doctor_faults_a_calendar_without_this_year():
    import datetime as dt

    from controller.config.hall import load_config
    from controller.installation.doctor import calendar_finding
    from controller.installation.findings import Mark

    config = load_config(DEMO)
    last = max(config.hall.calendar.workdays.years)
    soon = calendar_finding(config, dt.date(last, 12, 1))
    assert soon.mark is Mark.WARN and f"[years.{last + 1}]" in soon.detail
    this_year = calendar_finding(config, dt.date(last + 1, 3, 2))
    assert this_year.mark is Mark.FAULT and f"this year {last + 1} is missing" in this_year.detail
    assert calendar_finding(config, dt.date(last, 3, 2)).mark is Mark.OK


def test_the_doctor_logs_in_to_the_halls_mosquitto_as_the_controller(tmp_path, make_mosquitto, monkeypatch,
                                                                      capsys):
    passwd = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwd), "hall-controller", "s3cret-pass"],
                   check=True, capture_output=True)
    broker = make_mosquitto(f"allow_anonymous false\npassword_file {passwd}\n")
    config = hall_file(tmp_path / "hall", "")
    config.write_text(re.sub(
        r'embedded_listen = "[^"]+"',
        f'host = "{broker.host}"\nport = {broker.port}\nusername = "hall-controller"\n'
        'password_env = "HALL_MQTT_PASSWORD"', config.read_text(encoding="utf-8")), encoding="utf-8")
    (tmp_path / "data").mkdir()

    def broker_line(password: str | None) -> tuple[int, str]:
        if password is None:
            monkeypatch.delenv("HALL_MQTT_PASSWORD", raising=False)
        else:
            monkeypatch.setenv("HALL_MQTT_PASSWORD", password)
        status = main(["doctor", "--config", str(config), "--data-dir", str(tmp_path / "data"),
                       "--port", str(free_port())])
        return status, next(x for x in capsys.readouterr().out.splitlines() if "消息服务 broker" in x)

    status, said = broker_line("s3cret-pass")
    assert status == 0 and said.startswith("✓") and "accepts the controller's account" in said
    status, said = broker_line("wrong")
    assert status == 1 and said.startswith("✗") and "login refused" in said
    # the password lives in /etc/hall/hall.env, which an admin's shell has not read: reachable
    status, said = broker_line(None)
    assert status == 0 and said.startswith("✓") and "login not tried" in said


class PtyHall(HallProcess):
    """`hallctl run` for a hall whose kiosk and counter devices are simulated on ptys."""

    def __init__(self, tmp_path: Path, config: Path) -> None:
        super().__init__(tmp_path)
        self.config = config

    def demo_config(self) -> Path:
        return self.config


def test_hallctl_run_tells_systemd_it_is_ready_then_pings_its_watchdog(tmp_path, floor, monkeypatch):
    printer, reader, bus = floor
    config = hall_file(tmp_path / "hall", kiosk_and_counter(printer.path, reader.path, bus.path))
    folder = tempfile.mkdtemp(prefix="notify-", dir="/tmp")  # a socket path must be short
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(f"{folder}/notify")
    notify.settimeout(30)
    # as systemd starts a Type=notify unit with WatchdogSec=2s
    monkeypatch.setenv("NOTIFY_SOCKET", f"{folder}/notify")
    monkeypatch.setenv("WATCHDOG_USEC", "2000000")
    hall = PtyHall(tmp_path, config)
    try:
        hall.start()
        said = notify.recv(4096).decode()
        assert said.startswith("READY=1") and f"MAINPID={hall.proc.pid}" in said
        assert [notify.recv(4096).decode() for _ in range(3)] == ["WATCHDOG=1"] * 3

        # the doctor beside the running controller: leaves its devices alone, finds it answering
        port = hall.url.rsplit(":", 1)[1]
        status, out = doctor(tmp_path / "hall.toml", hall.data, "--port", port)
        assert status == 0, out
        line(out, "✓", "控制器 controller", "answers", "万州区政务服务中心")
        line(out, "✓", "端口 web port", "in use by the running controller")
        line(out, "✓", "kiosk-printer", "in use by the running controller")
        line(out, "✓", "消息服务 broker", "accepts anonymous clients")

        assert hall.stop() == 0
        while (said := notify.recv(4096).decode()) == "WATCHDOG=1":
            pass
        assert said.startswith("STOPPING=1")
    finally:
        if hall.proc is not None and hall.proc.poll() is None:
            hall.kill()
        notify.close()
        shutil.rmtree(folder, ignore_errors=True)


def test_the_watchdog_goes_quiet_while_the_hall_thread_does_not_answer(tmp_path):
    """A hall thread stuck on a command: no more pings, so systemd (WatchdogSec) restarts it."""
    import asyncio
    import threading

    from controller.assembly import open_hall
    from controller.runtime.clock import ManualClock
    from controller.runtime.service_notify import ServiceNotifier
    from tests.halls import at, small_hall

    ctrl, _ = open_hall(small_hall(), tmp_path / "data", ManualClock(at("09:00")))
    folder = tempfile.mkdtemp(prefix="notify-", dir="/tmp")
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(f"{folder}/notify")
    stuck, release = threading.Event(), threading.Event()
    asked = answered = 0

    async def alive() -> None:
        nonlocal asked, answered
        asked += 1
        if asked == 3:  # from the third question on, the hall thread is busy for ever
            threading.Thread(target=ctrl.run, args=(lambda: (stuck.set(), release.wait()),),
                             daemon=True).start()
            await asyncio.to_thread(stuck.wait)
        await ctrl.aask(lambda state: None)
        answered += 1

    async def serve() -> None:
        service = ServiceNotifier(f"{folder}/notify", watchdog_seconds=0.4)
        service.ready(alive)
        while asked < 6:  # four questions to the stuck hall thread, none answered
            await asyncio.sleep(0.05)
        service.stopping()

    try:
        asyncio.run(serve())
        notify.setblocking(False)
        said = []
        while True:
            try:
                said.append(notify.recv(4096).decode().split("\n")[0])
            except BlockingIOError:
                break
    finally:
        release.set()
        ctrl.close()
        ctrl.store.close()
        notify.close()
        shutil.rmtree(folder, ignore_errors=True)
    # a ping for each answer (the first two, unless a loaded machine let one time out), none after
    assert answered <= 2
    assert said == ["READY=1", *["WATCHDOG=1"] * answered, "STOPPING=1"]


def test_without_systemd_hallctl_run_says_nothing_to_anyone():
    from controller.runtime.service_notify import ServiceNotifier

    quiet = ServiceNotifier.from_environment({})
    assert not quiet.active and not quiet.send("READY=1")
    # a watchdog meant for another process (WATCHDOG_PID) is not this one's to ping
    other = ServiceNotifier.from_environment({"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "1000000",
                                              "WATCHDOG_PID": str(os.getpid() + 1)})
    assert other.active and other.watchdog_seconds is None


# --- a hall's life on its PC, end to end -------------------------------------------------------

FIXTURES = ROOT / "tests" / "fixtures" / "schema"


def hallctl(*args: str) -> subprocess.CompletedProcess:
    done = subprocess.run([*HALLCTL, *args], capture_output=True, text=True, timeout=60, cwd=ROOT, env=ENV)
    assert "Traceback" not in done.stderr, done.stderr
    return done


class InstalledHall(HallProcess):
    """`hallctl run` on an installed hall file and a data directory of the test's choosing.
    The harness gives the embedded broker a fresh port at every start (in a copy of the hall
    file in `work`, beside a copy of its holidays.toml); nothing else differs."""

    def __init__(self, work: Path, config: Path, data: Path) -> None:
        super().__init__(work)
        work.mkdir(parents=True, exist_ok=True)
        shutil.copy(config.with_name("holidays.toml"), work / "holidays.toml")
        self.config = config
        self.data = data

    def demo_config(self) -> Path:
        return self.config


def found(hall: HallProcess, tickets) -> dict[str, tuple[str, str, list[str]]]:
    """ticket id -> (number, status, what happened to it) for each of `tickets`, as the API gives
    it to anyone (the slip's QR code)."""
    out = {}
    with hall.client(kiosk=False) as client:
        for ticket_id in tickets:
            r = client.get(f"/api/v1/tickets/{ticket_id}")
            assert r.status_code == 200, (ticket_id, r.text)
            body = r.json()
            out[ticket_id] = (body["number"], body["status"], [e["kind"] for e in body["history"]])
    return out


@needs_systemd_tools
def test_a_hall_of_the_first_schema_installed_checked_upgraded_backed_up_and_restored(tmp_path, floor):
    """Issue 18's acceptance, as a hall's IT person goes about it: the PC keeps the database of a
    hall that ran the first schema version; install the service (into a temporary root), ask
    the doctor, run it (the database migrates forward, its tickets read through the API), issue
    tickets, back up while it runs, stop it, restore into a fresh data directory with the key
    kept apart, run that, find every ticket; uninstall leaves the root as it was."""
    import json

    from controller.store.copies import schema_version_of
    from controller.store.db import MIGRATIONS

    printer, reader, bus = floor
    root = tmp_path / "root"
    data = root / "var/lib/hall"
    data.mkdir(parents=True)
    shutil.copy(FIXTURES / "v1.sqlite", data / "hall.sqlite3")  # a v1 hall: no key yet
    old = json.loads((FIXTURES / "v1.json").read_text(encoding="utf-8"))
    old_numbers = {t: t.split("-")[1] for t in old["tickets"]}  # 20261123-A001: A001
    before = tree(root)

    source = hall_file(tmp_path / "source", kiosk_and_counter(printer.path, reader.path, bus.path))
    done = hallctl("install", "--config", str(source), "--data-dir", "/var/lib/hall", "--root", str(root))
    assert done.returncode == 0, done.stderr
    config = root / "etc/hall/hall.toml"
    assert (data / "hall.sqlite3").read_bytes() == (FIXTURES / "v1.sqlite").read_bytes()

    status, out = doctor(config, data)
    assert status == 0, out
    line(out, "✓", "配置 config", "3 devices")
    line(out, "✓", "数据目录 data dir", "writable", "its database")
    line(out, "!", "密钥 key", "made at the first start", "schema version 1")  # nothing sealed in v1
    for device in ("kiosk-printer", "kiosk-id-reader", "keypad-01"):
        line(out, "✓", device)
    assert "✗" not in out

    first = InstalledHall(tmp_path / "first", config, data)
    first.start()
    try:
        assert schema_version_of(data / "hall.sqlite3") == len(MIGRATIONS)  # migrated at start
        seen = found(first, old["tickets"])  # the first schema's day, read by this controller
        assert {t: number for t, (number, _, _) in seen.items()} == old_numbers
        for ticket_id in old["finished"]:
            assert seen[ticket_id][1] == "finished", seen[ticket_id]
        assert all(kinds[0] == "ticket_issued" for _, _, kinds in seen.values())
        new = []
        with first.client() as client:
            for service in ("A", "B", "A"):
                r = client.post("/api/v1/tickets", json={"service": service})
                assert r.status_code == 201, r.text
                new.append(r.json()["id"])
        seen |= found(first, new)
        # the key off the machine once (README), then the nightly backup, taken while it runs
        usb = tmp_path / "usb"
        usb.mkdir()
        shutil.copy(data / "secret.key", usb / "secret.key")
        done = hallctl("backup", "--config", str(config), "--data-dir", str(data),
                       "--to", str(tmp_path / "backups"))
        assert done.returncode == 0, done.stderr
        assert f"{len(old_numbers) + len(new)} tickets" in done.stdout
    finally:
        assert first.stop() == 0
    [backup] = (tmp_path / "backups").glob("hall-*.sqlite3")

    fresh = tmp_path / "fresh" / "hall"
    done = hallctl("restore", "--from", str(backup), "--data-dir", str(fresh), "--key", str(usb / "secret.key"))
    assert done.returncode == 0, done.stderr
    second = InstalledHall(tmp_path / "second", config, fresh)
    second.start()
    try:
        assert found(second, seen) == seen  # every ticket, old and new, as it stood
    finally:
        assert second.stop() == 0

    done = hallctl("uninstall", "--root", str(root))
    assert done.returncode == 0, done.stderr
    assert "is kept" in done.stdout
    outside = {p for p in tree(root) if not p.startswith("var/lib/hall/")}
    assert outside == {p for p in before if not p.startswith("var/lib/hall/")}
    assert {"hall.sqlite3", "secret.key"} <= {p.name for p in data.iterdir()}  # the data stays


def test_the_doctor_faults_a_database_without_its_key_unless_it_is_older_than_sealing(tmp_path, monkeypatch):
    """A database with sealed identities and no key cannot open them: a fault. A first-schema
    database (from before sealed identities) has nothing the key opens: the first start makes
    one, as for an empty data directory."""
    from controller.installation.doctor import key_finding
    from controller.installation.findings import Mark, Patient

    monkeypatch.delenv("HALL_SECRET_KEY", raising=False)
    data = tmp_path / "data"
    data.mkdir()
    patient = Patient(DEMO, data, "127.0.0.1", 8000, None, False)
    shutil.copy(FIXTURES / "v2.sqlite", data / "hall.sqlite3")
    lost = key_finding(patient)
    assert lost.mark is Mark.FAULT and "restore the key from the backup" in lost.detail
    shutil.copy(FIXTURES / "v1.sqlite", data / "hall.sqlite3")
    first = key_finding(patient)
    assert first.mark is Mark.WARN and "schema version 1" in first.detail
    (data / "hall.sqlite3").write_bytes(b"not a database, perhaps a damaged one" * 100)
    assert key_finding(patient).mark is Mark.FAULT  # unreadable: it may hold sealed data
