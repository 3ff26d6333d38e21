"""Personal data over time: the retention purge and the key rotation.

Where a citizen's personal data lives in the hall database:

| table | columns |
|---|---|
| tickets | identity_sealed, phone_sealed, citizen_key, id_masked, name_masked |
| appointments | identity_sealed, citizen_key, id_masked, name_masked |
| cases | `body` JSON: identity_sealed, phone_sealed, citizen_key |
| reminders | phone_sealed (到号提醒; kept until its messages are done, its day at most) |

**Purge** (保存期限, `[rules] personal_data_days`): the personal data of visits more than that
many days old, and of cases closed that long ago, is removed; what the figures count stays
(tickets, times, grades, case states and deadlines). A purged visit still reads "real name"
(the masked forms become `PURGED_ID_MASK` / `PURGED_NAME_MASK`, a case's sealed fields
`PURGED`), so the real-name counts and the callback rate do not change, but no longer whose.
The controller runs it at the first tick of each day; `hallctl purge` runs it on demand.

**Rotation** (`hallctl rotate-key`): every sealed field is opened with the old key and sealed
with a new one, and every lookup key (`citizen_key`) re-made with the new key, in one
transaction with its audit row. The new key waits in `secret.key.new` until the database is
committed; then the old key becomes `secret.key.old-<timestamp>` and the new one `secret.key`.

Neither touches the append-only audit log (`commands`, `events`): it holds masked forms and
lookup keys only, never a number or a name, and the lookup keys made with a rotated-out key
mean nothing once its old key file is deleted.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from controller.core.model import OPEN_STATUSES
from controller.security.privacy import (
    KEY_FILE, NEW_KEY_FILE, PURGED, PURGED_ID_MASK, PURGED_NAME_MASK, IdentitySealer, new_secret,
    read_secret, write_secret,
)
from controller.store import personal
from controller.store import reminders as reminder_rows
from controller.store.hallstore import HallStore

_OPEN = tuple(str(s) for s in OPEN_STATUSES)


# --- purge -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Purged:
    """How many records lost their personal data."""

    tickets: int = 0
    appointments: int = 0
    cases: int = 0
    reminders: int = 0

    @property
    def total(self) -> int:
        return self.tickets + self.appointments + self.cases + self.reminders


def purge(store: HallStore, now: dt.datetime, days: int, actor: str,
          audit_nothing: bool = True) -> Purged:
    """Remove the personal data of visits on days before `now - days` and of cases closed
    before then; one transaction with its audit row `personal_data_purged` (with the counts).

    `audit_nothing=False`: a purge that found nothing writes no row (the daily run)."""
    cutoff = now - dt.timedelta(days=days)
    before = cutoff.date().isoformat()
    # freed bytes are zeroed, not left on disk
    with store.lock, personal.secure_transaction(store) as conn:
        tickets = personal.purge_tickets(conn, before, _OPEN, PURGED_ID_MASK, PURGED_NAME_MASK)
        appointments = personal.purge_appointments(conn, before, PURGED_ID_MASK,
                                                   PURGED_NAME_MASK)
        cases = 0
        for case_id, updated_at, data in personal.closed_cases(conn):
            if dt.datetime.fromisoformat(updated_at) >= cutoff:
                continue
            if not _purge_case(data):
                continue
            # updated_at stays: it is when the case was closed, and the purge is no step of it
            personal.rewrite_case(conn, case_id, data)
            cases += 1
        # a reminder's phone serves its day only, whatever `days` keeps of the visit
        reminders = reminder_rows.purge(conn, now.date().isoformat())
        done = Purged(tickets, appointments, cases, reminders)
        if done.total or audit_nothing:
            store._log_command(now, actor, "personal_data_purged",
                               {"days": days, "before": before, **asdict(done)}, "ok", None)
    return done


def _purge_case(data: dict[str, Any]) -> bool:
    changed = False
    if data.get("citizen_key") is not None:
        data["citizen_key"] = None
        changed = True
    for name in ("identity_sealed", "phone_sealed"):
        if data.get(name) not in (None, PURGED):
            data[name] = PURGED
            changed = True
    return changed


# --- key rotation ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Rotation:
    """What a key rotation re-sealed, and where the old key now is."""

    sealed: int  # sealed fields re-sealed
    keys: int  # lookup keys re-made
    old_key: Path | None
    finished_interrupted: bool = False


def rotate_key(data_dir: Path, db_name: str, now: dt.datetime, actor: str) -> Rotation:
    """Re-seal the hall database in `data_dir` with a new secret key (the caller holds the data
    directory: no controller may run meanwhile). RuntimeError when it cannot be done."""
    if os.environ.get("HALL_SECRET_KEY"):
        raise RuntimeError(
            "the hall's key comes from HALL_SECRET_KEY, which rotate-key cannot rewrite: write it "
            f"to {data_dir / KEY_FILE} (mode 600), unset HALL_SECRET_KEY and rotate; then move "
            "the new secret.key into the variable if you keep it there")
    key_path, pending = data_dir / KEY_FILE, data_dir / NEW_KEY_FILE
    db_path = data_dir / db_name
    if not db_path.exists() or not key_path.exists():
        raise RuntimeError(f"no hall database and key in {data_dir} ({db_name}, {KEY_FILE})")
    old = IdentitySealer(read_secret(key_path))
    store = HallStore(db_path)
    try:
        if pending.exists():
            new = IdentitySealer(read_secret(pending))
            live = _sealed_with(store, new, old)
            if live is new:
                # the database was committed with the new key, the files not yet swapped
                return Rotation(0, 0, _swap_key_files(data_dir, now), finished_interrupted=True)
            if live is None:
                raise RuntimeError(f"neither {KEY_FILE} nor {NEW_KEY_FILE} opens the sealed data "
                                   f"in {db_path}; restore the key that belongs to this database")
            pending.unlink()  # it never reached the database: start again
        if _sealed_with(store, old) is None:
            raise RuntimeError(f"{key_path} does not open the sealed data in {db_path}: "
                               "is it this hall's key?")
        secret = new_secret()
        write_secret(pending, secret)
        try:
            counts = _reseal(store, old, IdentitySealer(secret), now, actor)
        except BaseException:
            pending.unlink()  # rolled back: the database is still sealed with the old key
            raise
        # the old ciphertexts leave the WAL for the zeroed pages of the main file
        personal.truncate_wal(store)
    finally:
        store.db.conn.close()
    return Rotation(*counts, _swap_key_files(data_dir, now))


def _swap_key_files(data_dir: Path, now: dt.datetime) -> Path:
    old = data_dir / f"{KEY_FILE}.old-{now:%Y%m%dT%H%M%S}"
    os.replace(data_dir / KEY_FILE, old)
    os.replace(data_dir / NEW_KEY_FILE, data_dir / KEY_FILE)
    fd = os.open(data_dir, os.O_RDONLY)
    try:
        os.fsync(fd)  # the renames, on disk
    finally:
        os.close(fd)
    return old


def _sealed_values(store: HallStore):
    return (v for v in personal.sealed_values(store.db.conn) if v != PURGED)


def _sealed_with(store: HallStore, *sealers: IdentitySealer) -> IdentitySealer | None:
    """Which of `sealers` opens the database's sealed data (the first when it holds none)."""
    for value in _sealed_values(store):
        for sealer in sealers:
            try:
                sealer.open(value)
                return sealer
            except Exception:
                continue
        return None
    return sealers[0]


def _reseal(store: HallStore, old: IdentitySealer, new: IdentitySealer, now: dt.datetime,
            actor: str) -> tuple[int, int]:
    sealed = keys = 0

    def again(value: str | None) -> str | None:
        nonlocal sealed
        if value is None or value == PURGED:
            return value
        number, name = old.open(value)  # an error here rolls the whole rotation back
        sealed += 1
        return new.seal(number, name)

    def rekey(key: str | None, identity: str | None) -> str | None:
        nonlocal keys
        if key is None or identity in (None, PURGED):
            return None  # a lookup key nobody can re-make finds nobody: drop it
        keys += 1
        return new.key(old.open(identity)[0])

    with personal.secure_transaction(store) as conn:
        for tid, key, identity, phone in personal.sealed_tickets(conn):
            personal.reseal_ticket(conn, tid, rekey(key, identity), again(identity), again(phone))
        for code, key, identity in personal.sealed_appointments(conn):
            personal.reseal_appointment(conn, code, rekey(key, identity), again(identity))
        for case_id, data in personal.all_cases(conn):
            if all(data.get(n) is None for n in ("citizen_key", "identity_sealed", "phone_sealed")):
                continue
            data["citizen_key"] = rekey(data.get("citizen_key"), data.get("identity_sealed"))
            data["identity_sealed"] = again(data.get("identity_sealed"))
            data["phone_sealed"] = again(data.get("phone_sealed"))
            personal.rewrite_case(conn, case_id, data)
        for tid, phone in reminder_rows.sealed(conn):
            reminder_rows.reseal(conn, tid, again(phone))
        store._log_command(now, actor, "secret_key_rotated", {"sealed": sealed, "keys": keys},
                           "ok", None)
    return sealed, keys

