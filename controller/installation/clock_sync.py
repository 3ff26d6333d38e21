"""Whether the clock is synchronised, asked of whatever this machine has: timedatectl
(systemd-timesyncd or any NTP daemon systemd knows of), chronyc, timesyncd's flag file, or the
kernel itself (adjtimex). None when nothing can tell."""

from __future__ import annotations

import ctypes
import ctypes.util
import shutil
import subprocess
from pathlib import Path


def clock_sync() -> tuple[bool | None, str]:
    """(synchronised, how it was told); None when nothing here can tell."""
    for ask in (_timedatectl, _chronyc, _timesyncd, _adjtimex):
        said = ask()
        if said is not None:
            return said
    return None, "no timedatectl, chronyc or adjtimex answer"


def _run(*cmd: str) -> str | None:
    if shutil.which(cmd[0]) is None:
        return None
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=3)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return r.stdout if r.returncode == 0 else None


def _timedatectl() -> tuple[bool, str] | None:
    out = _run("timedatectl", "show", "--property=NTPSynchronized", "--value")
    if out is None or out.strip() not in ("yes", "no"):
        return None
    return out.strip() == "yes", "timedatectl"


def _chronyc() -> tuple[bool, str] | None:
    out = _run("chronyc", "-n", "tracking")
    if out is None or "Leap status" not in out:
        return None
    return "Not synchronised" not in out, "chronyc tracking"


def _timesyncd() -> tuple[bool, str] | None:
    if Path("/run/systemd/timesync/synchronized").exists():
        return True, "systemd-timesyncd"
    return None


_TIME_ERROR = 5  # adjtimex's answer while the kernel's clock is marked unsynchronised


def _adjtimex() -> tuple[bool, str] | None:
    """The kernel's own view: an NTP daemon (chrony, ntpd, timesyncd) that disciplines the
    clock clears its 'unsynchronised' status; modes 0 only reads."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        adjtimex = ctypes.CDLL(name, use_errno=True).adjtimex
    except (OSError, AttributeError):
        return None
    timex = ctypes.create_string_buffer(512)  # struct timex, modes = 0 (its first field)
    state = adjtimex(timex)
    if state < 0:
        return None
    return state != _TIME_ERROR, "the kernel (adjtimex)"
