"""Backup and restore (issue 18 item 3) through the real program: `hallctl run` on the demo hall
in a rush, `hallctl backup` taken mid-rush, the controller killed, `hallctl restore` into a fresh
data directory, the controller started on it. Every ticket acknowledged before the backup began
is there, nothing acknowledged after the backup ended is, and numbering goes on after the last
restored number. Then what a restore refuses: a damaged file, another hall's key, a schema
newer than the controller, a running controller's data directory.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from controller.runtime.backups import key_fingerprint
from controller.security.privacy import read_secret
from controller.store.db import MIGRATIONS
from tests.server import REPO, HallProcess

SERVICES = ("A", "B", "C", "F")
KIOSKS = 4


def hallctl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "controller.cli", *args], cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO)},
                          capture_output=True, text=True, timeout=120)


def rush(ctl: HallProcess, stop: threading.Event, n: int,
         acknowledged: list[tuple[float, dict]], failures: list[str]) -> None:
    """Kiosk `n` issuing tickets until stopped or the controller is gone; each 201 is noted with
    the moment its answer arrived."""
    with ctl.client() as client:
        i = 0
        while not stop.is_set():
            try:
                r = client.post("/api/v1/tickets", json={"service": SERVICES[(n + i) % 4]})
            except httpx.TransportError:
                return  # killed: this one was never acknowledged
            i += 1
            if r.status_code != 201:
                failures.append(f"kiosk {n}: {r.status_code} {r.text[:200]}")
                return
            acknowledged.append((time.monotonic(), r.json()))


def test_a_backup_taken_mid_rush_restores_every_acknowledged_ticket(tmp_path):
    first = HallProcess(tmp_path / "first", rules={"address_tickets_per_minute": 0})
    first.tmp.mkdir()
    first.start()
    acknowledged: list[tuple[float, dict]] = []
    failures: list[str] = []
    stop = threading.Event()
    kiosks = [threading.Thread(target=rush, args=(first, stop, n, acknowledged, failures))
              for n in range(KIOSKS)]
    try:
        for k in kiosks:
            k.start()
        deadline = time.monotonic() + 20
        while len(acknowledged) < 40 and time.monotonic() < deadline:
            time.sleep(0.05)
        began = time.monotonic()
        backup = hallctl("backup", "--data-dir", str(first.data), "--to", str(tmp_path / "backups"))
        ended = time.monotonic()
        assert backup.returncode == 0, backup.stderr
        time.sleep(0.5)  # the rush goes on after the backup
        first.kill()  # the power cut
    finally:
        stop.set()
        for k in kiosks:
            k.join(10)
        if first.proc and first.proc.poll() is None:
            first.kill()
    assert failures == []
    before = {b["id"]: b for t, b in acknowledged if t < began}
    after = {b["id"]: b for t, b in acknowledged if t > ended}
    assert len(before) >= 40 and after, (len(before), len(after))

    [path] = sorted((tmp_path / "backups").glob("hall-*.sqlite3"))
    manifest = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
    assert manifest["integrity"] == "ok" and manifest["schema_version"] == len(MIGRATIONS)
    assert manifest["counts"]["tickets"] >= len(before)
    key = read_secret(first.data / "secret.key")
    assert manifest["key_fingerprint"] == key_fingerprint(key)
    assert (path.stat().st_mode & 0o077) == 0  # sealed data: the controller's user only
    assert (first.data / "secret.key").read_bytes().strip() not in path.read_bytes()
    assert not list((tmp_path / "backups").glob("*key*"))  # the key is never in a backup

    second = HallProcess(tmp_path / "second", rules={"address_tickets_per_minute": 0})
    second.tmp.mkdir()
    restored = hallctl("restore", "--from", str(path), "--data-dir", str(second.data),
                       "--key", str(first.data / "secret.key"))
    assert restored.returncode == 0, restored.stderr
    assert read_secret(second.data / "secret.key") == key
    second.start()
    try:
        with second.client() as client:
            for ticket_id, body in before.items():
                r = client.get(f"/api/v1/tickets/{ticket_id}")
                assert r.status_code == 200, (ticket_id, r.text)
                assert r.json()["number"] == body["number"]
            for ticket_id in after:
                assert client.get(f"/api/v1/tickets/{ticket_id}").status_code == 404
            with sqlite3.connect(f"file:{second.data / 'hall.sqlite3'}?mode=ro", uri=True) as db:
                held = dict(db.execute("SELECT prefix, MAX(number) FROM tickets GROUP BY prefix"))
                numbers = {row[0] for row in db.execute("SELECT label FROM tickets")}
            db.close()
            for service in SERVICES:
                r = client.post("/api/v1/tickets", json={"service": service})
                assert r.status_code == 201, r.text
                number = r.json()["number"]
                assert number not in numbers and int(number[1:]) == held.get(service, 0) + 1

        # a running controller's database is never overwritten
        again = hallctl("restore", "--from", str(path), "--data-dir", str(second.data))
        assert again.returncode == 1
        assert again.stderr.strip().splitlines() == [
            f"hallctl: cannot restore a backup: another hallctl (a running controller?) holds "
            f"{second.data / 'hall.lock'}; stop it first"]
    finally:
        second.stop()


@pytest.fixture(scope="module")
def a_backup(tmp_path_factory) -> tuple[Path, Path]:
    """A stopped demo hall with a real-name ticket, and one backup of it: (backup, data dir)."""
    tmp = tmp_path_factory.mktemp("hall")
    ctl = HallProcess(tmp)
    ctl.start()
    try:
        with ctl.client() as client:
            r = client.post("/api/v1/tickets", json={"service": "A", "id_number": "11010119500307097X",
                                                      "name": "张建国"})
            assert r.status_code == 201, r.text
    finally:
        ctl.stop()
    done = hallctl("backup", "--data-dir", str(ctl.data), "--to", str(tmp / "backups"))
    assert done.returncode == 0, done.stderr
    [path] = (tmp / "backups").glob("hall-*.sqlite3")
    return path, ctl.data


def copy_of(backup: Path, into: Path) -> Path:
    into.mkdir()
    for suffix in (".sqlite3", ".json"):
        (into / backup.with_suffix(suffix).name).write_bytes(backup.with_suffix(suffix).read_bytes())
    return into / backup.name


def refusal(*args: str) -> str:
    done = hallctl(*args)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    [line] = done.stderr.strip().splitlines()
    return line


def test_a_restore_refuses_a_damaged_backup_or_a_missing_manifest(a_backup, tmp_path):
    backup, data = a_backup
    damaged = copy_of(backup, tmp_path / "damaged")
    raw = bytearray(damaged.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    damaged.write_bytes(bytes(raw))
    line = refusal("restore", "--from", str(damaged), "--data-dir", str(tmp_path / "d1"),
                   "--key", str(data / "secret.key"))
    assert "SHA-256 differs" in line
    lone = copy_of(backup, tmp_path / "lone")
    lone.with_suffix(".json").unlink()
    assert "has no manifest" in refusal("restore", "--from", str(lone), "--data-dir",
                                        str(tmp_path / "d2"), "--key", str(data / "secret.key"))
    assert not (tmp_path / "d1" / "hall.sqlite3").exists()


def test_a_restore_refuses_a_key_that_is_not_the_backups(a_backup, tmp_path):
    backup, data = a_backup
    other = tmp_path / "other.key"
    other.write_text("b3RoZXItaGFsbC1rZXktb3RoZXItaGFsbC1rZXktMzI=\n")  # 32 other bytes
    line = refusal("restore", "--from", str(backup), "--data-dir", str(tmp_path / "d"),
                   "--key", str(other))
    assert "is not the key this backup was made with" in line
    assert "no personal-data key" in refusal("restore", "--from", str(backup), "--data-dir",
                                             str(tmp_path / "d"))
    garbage = tmp_path / "garbage.key"
    garbage.write_text("not a key\n")
    assert "is no hall key" in refusal("restore", "--from", str(backup), "--data-dir",
                                       str(tmp_path / "d"), "--key", str(garbage))
    assert not (tmp_path / "d" / "hall.sqlite3").exists()


def test_a_restore_refuses_a_schema_newer_than_the_controller(a_backup, tmp_path):
    backup, data = a_backup
    newer = copy_of(backup, tmp_path / "newer")
    with sqlite3.connect(newer) as conn:
        conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    conn.close()
    manifest = json.loads(newer.with_suffix(".json").read_text(encoding="utf-8"))
    manifest["sha256"] = hashlib.sha256(newer.read_bytes()).hexdigest()  # a consistent newer one
    newer.with_suffix(".json").write_text(json.dumps(manifest), encoding="utf-8")
    line = refusal("restore", "--from", str(newer), "--data-dir", str(tmp_path / "d"),
                   "--key", str(data / "secret.key"))
    assert f"has schema version {len(MIGRATIONS) + 1}, newer than this controller" in line


def test_a_restore_moves_the_old_database_and_its_wal_aside(a_backup, tmp_path):
    backup, data = a_backup
    target = tmp_path / "data"
    target.mkdir()
    (target / "hall.sqlite3").write_bytes(b"old")
    (target / "hall.sqlite3-wal").write_bytes(b"old wal")
    (target / "secret.key").write_bytes((data / "secret.key").read_bytes())
    done = hallctl("restore", "--from", str(backup), "--data-dir", str(target))
    assert done.returncode == 0, done.stderr
    assert not (target / "hall.sqlite3-wal").exists()
    aside = sorted(p.name.split(".before-restore-")[0] for p in target.glob("*.before-restore-*"))
    assert aside == ["hall.sqlite3", "hall.sqlite3-wal"]
    assert (target / "hall.sqlite3").read_bytes() == backup.read_bytes()


def test_backups_keep_the_newest_generations(a_backup, tmp_path):
    _, data = a_backup
    to = tmp_path / "backups"
    for _ in range(3):
        done = hallctl("backup", "--data-dir", str(data), "--to", str(to), "--keep", "2")
        assert done.returncode == 0, done.stderr
    kept = sorted(to.glob("hall-*.sqlite3"))
    assert len(kept) == 2 and len(list(to.glob("hall-*.json"))) == 2
    assert "removed" in done.stdout
