"""What the doctor finds (`hallctl doctor`, controller.installation.doctor): one line per check,
and who may use a path (the service's user, with the groups its unit gives it)."""

from __future__ import annotations

import grp
import os
import pwd
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path


class Mark(StrEnum):
    OK = "✓"
    WARN = "!"
    FAULT = "✗"


@dataclass(frozen=True)
class Finding:
    mark: Mark
    what: str  # 中文 English, short
    detail: str

    def line(self) -> str:
        return f"{self.mark} {self.what}: {self.detail}"


@dataclass(frozen=True)
class Patient:
    """What the doctor looks at: the hall file, its data directory, where it serves, as whom."""

    config_path: Path
    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 8000
    user: str | None = None  # the service's user; None: whoever runs the doctor
    probe: bool = True  # ask idle devices whether they answer


# --- who may use a path ------------------------------------------------------------------------


def _groups_of(user: str, extra: tuple[str, ...]) -> set[int]:
    entry = pwd.getpwnam(user)
    gids = set(os.getgrouplist(user, entry.pw_gid))
    for name in extra:  # the unit's SupplementaryGroups
        try:
            gids.add(grp.getgrnam(name).gr_gid)
        except KeyError:
            pass
    return gids


def may_use(path: Path, user: str | None, want: int, groups: tuple[str, ...] = ()) -> bool:
    """Whether `user` (None: this process) may read and/or write `path` (`want`: os.R_OK |
    os.W_OK, with os.X_OK for a directory), by its mode bits; root may always."""
    if user is None:
        return os.access(path, want)
    entry = pwd.getpwnam(user)
    if entry.pw_uid == 0:
        return True
    st = path.stat()
    bits = {os.R_OK: 4, os.W_OK: 2, os.X_OK: 1}
    need = sum(b for flag, b in bits.items() if want & flag)
    if st.st_uid == entry.pw_uid:
        have = (st.st_mode >> 6) & 7
    elif st.st_gid in _groups_of(user, groups):
        have = (st.st_mode >> 3) & 7
    else:
        have = st.st_mode & 7
    return have & need == need


def who(user: str | None) -> str:
    return user or pwd.getpwuid(os.geteuid()).pw_name
