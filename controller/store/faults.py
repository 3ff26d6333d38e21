"""Storage faults: the disk is full, the database is read-only, the disk fails.

None of these is a bug and none is the caller's fault: the hall's records cannot be written,
so nothing changed and nobody may be told otherwise. Such an error is named here once, so
the API answers it as 503 storage_unavailable, /health turns degraded and the start-up
check refuses with one line naming the path and what to do about it.
"""

from __future__ import annotations

import datetime as dt
import errno
import sqlite3
from dataclasses import dataclass
from pathlib import Path

MESSAGE = "系统暂时无法保存数据（{reason}），本次操作未生效，请稍后再试或到导办台办理；已通知管理员"

# (what SQLite or the OS says, the hall's words, what the hall's IT person does about it)
_KINDS = (
    (("database or disk is full", "sqlite_full", "no space left"),
     "磁盘已满", "disk_full", "free space on the disk that holds {path}"),
    (("readonly", "read-only", "sqlite_readonly"),
     "数据库只读", "read_only",
     "make {path} writable by the user that runs hallctl (chmod/chown, chattr -i, "
     "or remount its filesystem read-write)"),
    (("unable to open", "cantopen", "permission denied"),
     "无法打开数据库", "cannot_open",
     "give the user that runs hallctl read and write access to {path}"),
    (("disk i/o error", "ioerr", "input/output error"),
     "磁盘读写错误", "io_error", "check the disk that holds {path} (dmesg, SMART) and its backups"),
    (("malformed", "not a database", "corrupt"),
     "数据库文件损坏", "corrupt", "restore {path} from the last backup"),
    (("locked", "busy"),
     "数据库被占用", "locked", "stop the other program that holds {path}"),
)


@dataclass(frozen=True)
class StorageFault:
    """What went wrong with the store, for /health, the log and the start-up line."""

    kind: str  # disk_full, read_only, cannot_open, io_error, corrupt, locked, other
    reason: str  # the hall's words
    detail: str  # what SQLite or the OS said
    fix: str
    path: str
    at: dt.datetime | None = None

    def json(self) -> dict[str, str | None]:
        return {"state": "unavailable", "kind": self.kind, "reason": self.reason,
                "detail": self.detail, "path": self.path, "fix": self.fix,
                "since": self.at.isoformat() if self.at else None}

    def line(self) -> str:
        """One line for the start-up refusal and the log."""
        return f"cannot write the hall's data at {self.path} ({self.detail}): {self.fix}"


class StorageUnavailable(Exception):
    """The hall's records cannot be written or read: nothing changed (HTTP 503)."""

    def __init__(self, fault: StorageFault) -> None:
        self.fault = fault
        self.code = "storage_unavailable"
        self.message = MESSAGE.format(reason=fault.reason)
        super().__init__(fault.line())


def is_storage_error(e: BaseException) -> bool:
    """A fault of the disk or the file, not of the program: SQLite's operational errors (full,
    read-only, I/O, cannot open, locked), a corrupt file, and the OS's own errors on the files."""
    if isinstance(e, StorageUnavailable):
        return True
    if isinstance(e, sqlite3.OperationalError):
        return True
    if type(e) is sqlite3.DatabaseError:  # "file is not a database", "malformed"
        return True
    return isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EROFS, errno.EACCES,
                                                  errno.EPERM, errno.EIO, errno.EDQUOT)


_OS_ERRORS = {errno.ENOSPC: "no space left", errno.EDQUOT: "no space left",
              errno.EROFS: "read-only", errno.EACCES: "permission denied",
              errno.EPERM: "permission denied", errno.EIO: "input/output error"}


def describe(e: BaseException, path: str | Path, at: dt.datetime | None = None) -> StorageFault:
    if isinstance(e, StorageUnavailable):
        return e.fault
    name = getattr(e, "sqlite_errorname", "") or ""
    if isinstance(e, OSError):
        detail = f"{e.strerror or e}" + (f": {e.filename}" if e.filename else "")
        name = _OS_ERRORS.get(e.errno, "") if e.errno is not None else ""
    else:
        detail = f"{e}" + (f" [{name}]" if name else "")
    text = f"{detail} {name}".lower()
    for needles, reason, kind, fix in _KINDS:
        if any(n in text for n in needles):
            return StorageFault(kind, reason, detail, fix.format(path=path), str(path), at)
    return StorageFault("other", "存储故障", detail, f"check {path} and the disk that holds it",
                        str(path), at)
