"""Issue 14 item 6, as an attacker (or a bad Monday) would break it: the disk fills under a
running controller, the database is read-only, the data directory or the key cannot be read,
and the voice fills the disk beside the database. Every one through `hallctl run` as a child
process (tests/server.py), on a real small filesystem where the fault needs one."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import expect

from controller.cli import DB_NAME
from drivers.announcer.announcer import CACHE_PHRASES
from tests.browser import DESK, log_in
from tests.server import REPO, HallProcess, free_port, wait_for

NOBODY = 65534
STORAGE_LINE = "cannot write the hall's data at"


def ticket(client: httpx.Client, service: str = "A") -> httpx.Response:
    return client.post("/api/v1/tickets", json={"service": service, "channel": "kiosk"})


@contextlib.contextmanager
def small_disk(path: Path, size: str):
    """A tmpfs of `size` mounted at `path`, unmounted after (skips where the machine cannot)."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("mounting a small filesystem needs root")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"this machine cannot mount a tmpfs: {r.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(path: Path) -> Path:
    """Write a file into `path` until its filesystem is full; the file, to delete later.

    Unbuffered: a buffered file keeps what the full disk refused and tries it again when it
    is closed, which raised ENOSPC out of the `with` (whether it did hung on how the free
    space fell against the chunk size, so on the database's size)."""
    filler = path / "filler.bin"
    for size in (65536, 512):  # then the last partial block, too
        with contextlib.suppress(OSError), filler.open("ab", buffering=0) as f:
            while True:
                f.write(b"\0" * size)
    return filler


def test_a_full_disk_refuses_tickets_with_503_storage_unavailable_and_health_says_so(tmp_path, browser):
    """The data disk fills at 10:15 on a busy morning: every kiosk is told, in the hall's words,
    that its ticket was not taken (503 storage_unavailable, not a bare 500), /health turns
    degraded for the monitoring and the supervisor's page shows it, the log names SQLITE_FULL
    (not "cannot rollback"); once space is freed the hall serves again, the alert goes, and no
    acknowledged ticket is lost."""
    ctl = HallProcess(tmp_path, rules={"address_tickets_per_minute": 0})
    with small_disk(ctl.data, "6m"):
        ctl.start()
        filler = None
        try:
            supervisor = log_in(browser, ctl.url, "huangjianguo", None, "/supervisor", DESK)
            alert = supervisor.locator("[data-alert=storage]")
            taken: dict[str, str] = {}
            with ctl.client() as api:
                for _ in range(3):
                    r = ticket(api)
                    assert r.status_code == 201, r.text
                    taken[r.json()["id"]] = r.json()["number"]
                filler = fill(ctl.data)
                refused = None
                deadline = time.monotonic() + 60
                while refused is None and time.monotonic() < deadline:
                    r = ticket(api)
                    if r.status_code == 201:  # the WAL still had room for this one
                        taken[r.json()["id"]] = r.json()["number"]
                    else:
                        refused = r
                assert refused is not None, "a full disk never refused a ticket"
                assert refused.status_code == 503, refused.text
                assert refused.headers["content-type"].startswith("application/json")
                body = refused.json()
                assert body["error"] == "storage_unavailable"
                assert "磁盘已满" in body["message"] and "未生效" in body["message"]

                health = api.get("/api/v1/health")
                assert health.status_code == 503
                assert health.json()["ok"] is False and health.json()["state"] == "degraded"
                assert health.json()["storage"]["kind"] == "disk_full"

                log = ctl.output()
                assert "database or disk is full" in log
                assert "cannot rollback" not in log
                # the page looks at /health every 15 s: a full disk stops the events
                expect(alert).to_contain_text("磁盘已满", timeout=20_000)

                filler.unlink()
                filler = None
                wait_for(lambda: api.get("/api/v1/health").status_code == 200, timeout=15)
                expect(alert).to_have_count(0, timeout=20_000)
                assert supervisor.errors == []
                r = ticket(api)
                assert r.status_code == 201, r.text
                taken[r.json()["id"]] = r.json()["number"]
                # what the kiosks were told was taken is there, each number once
                for ticket_id in taken:
                    assert api.get(f"/api/v1/tickets/{ticket_id}").status_code == 200
                assert len(set(taken.values())) == len(taken)
        finally:
            if filler is not None:
                filler.unlink(missing_ok=True)
            ctl.stop()


def start_refused(ctl: HallProcess, *prefix: str, data_dir: Path | None = None,
                  config: Path | None = None) -> subprocess.CompletedProcess:
    """`hallctl run` that must refuse to start (it fails the test if it serves instead)."""
    cmd = [*prefix, sys.executable, "-m", "controller.cli", "run",
           "--config", str(config or ctl.tmp / "hall.toml"),
           "--data-dir", str(data_dir or ctl.data), "--port", str(free_port()),
           "--clock-start", "09:00", "--log-level", "warning", "--simulate"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO), "PYTHONDONTWRITEBYTECODE": "1"})
    try:
        out, err = proc.communicate(timeout=45)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"the controller started and served on a store it cannot use:\n{err[-3000:]}") from None
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def assert_one_line(r: subprocess.CompletedProcess, *names: str) -> str:
    """The refusal: a non-zero exit, no traceback, one `hallctl:` line naming `names`."""
    assert r.returncode != 0
    assert "Traceback" not in r.stderr, r.stderr
    lines = [line for line in r.stderr.splitlines() if line.startswith("hallctl:")]
    assert len(lines) == 1, r.stderr
    for name in names:
        assert name in lines[0], lines[0]
    return lines[0]


def test_a_read_only_database_is_refused_at_start_with_the_path_and_the_fix(tmp_path):
    """Someone made the database immutable (chattr +i, a restored backup, a read-only mount):
    the controller used to start "healthy" and fail every ticket. It refuses instead, in one line."""
    ctl = HallProcess(tmp_path)
    ctl.start()
    with ctl.client() as api:
        assert ticket(api).status_code == 201
    ctl.stop()
    db = ctl.data / DB_NAME
    subprocess.run(["chattr", "+i", str(db)], check=True)
    try:
        line = assert_one_line(start_refused(ctl), str(db))
        assert "read" in line and "chattr -i" in line
    finally:
        subprocess.run(["chattr", "-i", str(db)], check=True)
    ctl.start()  # made writable again, it serves
    ctl.stop()


@pytest.fixture
def open_dir():
    """A directory another user can reach (pytest's own temporary directory is root's only)."""
    path = Path(tempfile.mkdtemp(prefix="hall-attack-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def as_nobody() -> list[str]:
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("running the controller as another user needs root and setpriv")
    for p in (REPO, Path(sys.executable).resolve()):
        if not os.access(p, os.R_OK) or (p.stat().st_mode & 0o005) != 0o005:
            pytest.skip(f"{p} is not readable by other users")
    return ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--"]


def test_a_data_dir_the_service_user_cannot_read_is_refused_with_one_line(tmp_path, open_dir):
    """The data directory was made by root (0700) and the service runs as its own user."""
    ctl = HallProcess(tmp_path)
    ctl.start()
    ctl.stop()
    config = open_dir / "hall.toml"
    shutil.copy(ctl.tmp / "hall.toml", config)
    config.chmod(0o644)
    data = open_dir / "data"
    shutil.copytree(ctl.data, data)
    data.chmod(0o700)
    assert_one_line(start_refused(ctl, *as_nobody(), data_dir=data, config=config), str(data))


def test_a_key_the_service_user_cannot_read_is_refused_with_one_line(tmp_path, open_dir):
    """The data directory is the service's, but secret.key was copied in by root (0600)."""
    ctl = HallProcess(tmp_path)
    ctl.start()
    ctl.stop()
    config = open_dir / "hall.toml"
    shutil.copy(ctl.tmp / "hall.toml", config)
    config.chmod(0o644)
    data = open_dir / "data"
    data.mkdir(mode=0o777)
    data.chmod(0o777)
    key = data / "secret.key"
    shutil.copy(ctl.data / "secret.key", key)
    key.chmod(0o600)
    line = assert_one_line(start_refused(ctl, *as_nobody(), data_dir=data, config=config), str(key))
    assert "access" in line


def test_voice_files_do_not_pile_up_beside_the_database(tmp_path):
    """A hall PC without speakers (no [voice] device) calls all day: the voice directory keeps
    the recent phrases a recall needs and no more (676 calls used to leave 133 MB)."""
    ctl = HallProcess(tmp_path, rules={"address_tickets_per_minute": 0})
    ctl.start()
    calls = CACHE_PHRASES + 30
    try:
        with ctl.client() as api:
            r = api.post("/api/v1/auth/login", json={"staff_id": "chenjing", "pin": "1234", "window": 1})
            assert r.status_code == 200, r.text
            staff = {"Authorization": f"Bearer {r.json()['token']}"}
            last = None
            for _ in range(calls):
                assert ticket(api).status_code == 201
                r = api.post("/api/v1/windows/1/call", headers=staff)
                assert r.status_code == 200, r.text
                last = r.json()["ticket"]["number"]
                assert api.post("/api/v1/windows/1/finish", headers=staff).status_code == 200
        voice = ctl.data / "voice"
        wait_for(lambda: list(voice.glob(f"*-{last}-w1*.wav")), timeout=60)
        wavs = list(voice.glob("*.wav"))
        assert len(wavs) <= CACHE_PHRASES + 1, f"{len(wavs)} WAV files after {calls} calls"
        assert sum(w.stat().st_size for w in wavs) < 40 * 1024 * 1024
    finally:
        ctl.stop()
