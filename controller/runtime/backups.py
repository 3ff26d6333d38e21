"""Backups of a hall (备份与恢复): `hallctl backup` while the controller runs, `hallctl restore`.

A backup is two files in the backup directory (default `DATA_DIR/backups`):

- `hall-YYYYmmddTHHMMSS.sqlite3`: the database at one committed moment, copied with SQLite's
  backup API beside the running controller (controller.store.copies), checked (integrity,
  schema version, the counts read in the copy's own read transaction), mode 600;
- `hall-YYYYmmddTHHMMSS.json`, its manifest: when, the schema version, the counts, the day the
  hall was on, the file's SHA-256, and the fingerprint of the personal-data key.

The key itself (`secret.key`, or HALL_SECRET_KEY) is never in a backup: a stolen backup shows
masked data only. Keep it apart, as the README says (a copy off the machine, once, and again
after each `hallctl rotate-key`). The fingerprint tells a restore whether the key it is given is
the one the backup's sealed data needs, without holding the key.

The newest `keep` backups are kept; older ones (database and manifest) are removed.

A restore checks the backup (its SHA-256 against the manifest, SQLite's integrity check, the
counts, a schema version this controller can read), checks the key (present, with the
manifest's fingerprint, and opening the backup's sealed data), then takes the data directory
(controller.runtime.data_lock: a running controller holds it, so its database is never
overwritten), moves an existing database aside (with its WAL, which would otherwise be replayed
onto the restored file) and puts the backup in its place.
"""

from __future__ import annotations

import base64
import datetime as dt
import fcntl
import hashlib
import hmac
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from controller.runtime.data_lock import hold_data_dir
from controller.security.privacy import (
    ENV_KEY, KEY_FILE, PURGED, IdentitySealer, read_secret, write_secret,
)
from controller.store.copies import SCHEMA_TOO_NEW, check, first_sealed, online_copy
from controller.store.db import MIGRATIONS

DB_NAME = "hall.sqlite3"  # as controller.assembly names it
BACKUP_DIR = "backups"
KEEP = 7
PREFIX, SUFFIX = "hall-", ".sqlite3"
_COMPANIONS = ("-wal", "-shm", "-journal")


def key_fingerprint(secret: bytes) -> str:
    """A name for the key that reveals nothing of it (a keyed hash of a fixed text)."""
    return hmac.new(secret, b"hall personal-data key fingerprint", hashlib.sha256).hexdigest()[:16]


def hall_key(data_dir: Path) -> bytes | None:
    """The hall's personal-data key as the controller would read it (HALL_SECRET_KEY, else
    `secret.key` in `data_dir`), without making one; None when there is none."""
    env = os.environ.get(ENV_KEY)
    if env:
        return base64.urlsafe_b64decode(env.encode())
    path = data_dir / KEY_FILE
    return read_secret(path) if path.exists() else None


def _opens(secret: bytes, database: Path) -> bool | None:
    """Whether `secret` opens the sealed data in `database` (None: it holds none)."""
    sealed = first_sealed(database, PURGED)
    if sealed is None:
        return None
    try:
        IdentitySealer(secret).open(sealed)
    except Exception:
        return False
    return True


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_json(path: Path, value: dict[str, Any]) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(value, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    _fsync(partial)
    os.replace(partial, path)


# --- backup ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Backup:
    """A backup taken: its database file, its manifest, the older ones removed."""

    path: Path
    manifest: dict[str, Any]
    removed: list[Path] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def backups_in(directory: Path) -> list[Path]:
    """The backups in `directory`, oldest first."""
    found = [p for p in directory.glob(f"{PREFIX}*{SUFFIX}") if p.is_file()]
    return sorted(found, key=lambda p: (p.stat().st_mtime_ns, p.name))


def _free_name(directory: Path, now: dt.datetime) -> Path:
    stem = f"{PREFIX}{now:%Y%m%dT%H%M%S}"
    path, n = directory / f"{stem}{SUFFIX}", 1
    while path.exists():
        n += 1
        path = directory / f"{stem}-{n}{SUFFIX}"
    return path


def take_backup(data_dir: Path, to: Path | None, keep: int, now: dt.datetime,
                hall_name: str | None = None) -> Backup:
    """Back the hall in `data_dir` up into `to` (default DATA_DIR/backups), keeping the newest
    `keep`; RuntimeError when it cannot be done (nothing half-made is left behind)."""
    if keep < 1:
        raise RuntimeError("--keep: at least 1 backup is kept")
    source = data_dir / DB_NAME
    if not source.exists():
        raise RuntimeError(f"no hall database in {data_dir} ({DB_NAME})")
    to = to or data_dir / BACKUP_DIR
    to.mkdir(mode=0o700, parents=True, exist_ok=True)
    with open(to / ".backup.lock", "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RuntimeError(f"another backup into {to} is under way") from None
        target = _free_name(to, now)
        made = _copy_checked(source, target)
        warnings, fingerprint = _key_notes(data_dir, target)
        manifest = {
            "hall": hall_name, "created_at": now.isoformat(), "source": str(source.resolve()),
            "schema_version": made.schema_version, "day": made.day, "counts": made.counts,
            "integrity": "ok", "bytes": target.stat().st_size, "sha256": _sha256(target),
            "key_fingerprint": fingerprint,
        }
        _write_json(target.with_suffix(".json"), manifest)
        _fsync(to)
        removed = _prune(to, keep)
    return Backup(target, manifest, removed, warnings)


def _copy_checked(source: Path, target: Path):
    partial = target.with_name(target.name + ".partial")
    partial.unlink(missing_ok=True)
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # sealed data: private
    os.close(fd)
    try:
        copied = online_copy(source, partial)
        checked = check(partial)
        if (checked.schema_version, checked.counts) != (copied.schema_version, copied.counts):
            raise RuntimeError(f"the copy of {source} does not hold what was copied: "
                               f"{checked.counts} against {copied.counts}")
        _fsync(partial)
        os.replace(partial, target)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return checked


def _key_notes(data_dir: Path, backup: Path) -> tuple[list[str], str | None]:
    """The key's fingerprint for the manifest, and what to warn of."""
    secret = hall_key(data_dir)
    if secret is None:
        return [f"no personal-data key in {data_dir} or {ENV_KEY}: nothing can check a restore's "
                "key against this backup"], None
    warnings = []
    if _opens(secret, backup) is False:
        warnings.append(f"the hall's key ({data_dir / KEY_FILE} or {ENV_KEY}) does not open the "
                        "sealed data in this backup: find the key that belongs to this database")
    return warnings, key_fingerprint(secret)


def _prune(directory: Path, keep: int) -> list[Path]:
    removed = []
    for old in backups_in(directory)[:-keep]:
        for path in (old, old.with_suffix(".json")):
            if path.exists():
                path.unlink()
                removed.append(path)
    return removed


# --- restore ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Restored:
    """A backup put in place: what it holds, what was moved aside, whether the key was written."""

    manifest: dict[str, Any]
    moved_aside: list[Path]
    key_written: bool


def check_backup(source: Path, key_file: Path | None, data_dir: Path) -> tuple[dict[str, Any], bytes]:
    """Everything a restore checks before it changes anything: the manifest, the file, the
    schema version and the key. The manifest and the key to use; RuntimeError otherwise."""
    manifest_path = source.with_suffix(".json")
    if not source.is_file():
        raise RuntimeError(f"no backup at {source}")
    if not manifest_path.is_file():
        raise RuntimeError(f"{source} has no manifest ({manifest_path.name}) beside it: "
                           "restore a backup made by hallctl backup, with its manifest")
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    if _sha256(source) != manifest.get("sha256"):
        raise RuntimeError(f"{source} is not the file its manifest describes (SHA-256 differs): "
                           "damaged or changed since the backup")
    checked = check(source)
    if checked.schema_version > len(MIGRATIONS):
        raise RuntimeError(SCHEMA_TOO_NEW.format(path=source, found=checked.schema_version,
                                                 known=len(MIGRATIONS)))
    if checked.counts != manifest.get("counts"):
        raise RuntimeError(f"{source} holds {checked.counts}, its manifest says "
                           f"{manifest.get('counts')}")
    return manifest, _restore_key(source, manifest, key_file, data_dir)


def _restore_key(source: Path, manifest: dict[str, Any], key_file: Path | None,
                 data_dir: Path) -> bytes:
    there = hall_key(data_dir)
    given = _key_file(key_file) if key_file is not None else None
    if given is not None and there is not None and given != there:
        raise RuntimeError(f"--key {key_file} is not the key already in {data_dir / KEY_FILE} "
                           f"(or {ENV_KEY}); remove the one that does not belong")
    secret = given if given is not None else there
    if secret is None:
        raise RuntimeError(f"no personal-data key: give the hall's key file with --key, or put it "
                           f"at {data_dir / KEY_FILE} (mode 600); backups never hold it")
    wanted = manifest.get("key_fingerprint")
    if wanted is not None and key_fingerprint(secret) != wanted:
        raise RuntimeError("the key given is not the key this backup was made with (its "
                           f"fingerprint {key_fingerprint(secret)}, the backup's {wanted}); a key "
                           "rotated out is kept as secret.key.old-<time>")
    if _opens(secret, source) is False:
        raise RuntimeError(f"the key given does not open the sealed data in {source}")
    return secret


def _key_file(path: Path) -> bytes:
    try:
        secret = read_secret(path)
    except (ValueError, UnicodeDecodeError):
        secret = b""
    if len(secret) != 32:
        raise RuntimeError(f"--key {path} is no hall key (32 bytes in URL-safe base64, as "
                           "secret.key holds it)")
    return secret


def restore(source: Path, data_dir: Path, key_file: Path | None, now: dt.datetime) -> Restored:
    """Put the backup `source` in place as the hall database in `data_dir`. RuntimeError, with
    nothing changed, when a check fails or a controller runs on `data_dir`."""
    manifest, secret = check_backup(source, key_file, data_dir)
    held = hold_data_dir(data_dir, "restore a backup")  # a running controller holds it
    try:
        key_written = False
        if hall_key(data_dir) is None:
            write_secret(data_dir / KEY_FILE, secret)
            key_written = True
        moved = _move_aside(data_dir, now)
        partial = data_dir / f"{DB_NAME}.restoring"
        partial.unlink(missing_ok=True)
        shutil.copyfile(source, partial)
        os.chmod(partial, 0o600)
        _fsync(partial)
        os.replace(partial, data_dir / DB_NAME)
        _fsync(data_dir)
    finally:
        held.close()
    return Restored(manifest, moved, key_written)


def _move_aside(data_dir: Path, now: dt.datetime) -> list[Path]:
    """The database in `data_dir` and its companions (WAL, shared memory, journal) renamed
    `*.before-restore-<time>`: the WAL must not be replayed onto the restored file."""
    moved = []
    for name in (DB_NAME, *(DB_NAME + c for c in _COMPANIONS)):
        path = data_dir / name
        if path.exists():
            aside = data_dir / f"{name}.before-restore-{now:%Y%m%dT%H%M%S}"
            os.replace(path, aside)
            moved.append(aside)
    return moved
