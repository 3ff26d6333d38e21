"""One program at a time rewrites a hall's data directory: `hallctl run` holds `hall.lock` while it
runs, and the commands that re-seal or purge the database offline (`rotate-key`, `purge`) refuse
to start while it does."""

from __future__ import annotations

import fcntl
from pathlib import Path
from typing import IO

LOCK_FILE = "hall.lock"


def hold_data_dir(data_dir: Path, doing: str) -> IO:
    """Take the data directory for `doing`; keep the returned file open as long as it is needed
    (the operating system lets go of it when the process ends, however it ends)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    f = open(data_dir / LOCK_FILE, "a")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.close()
        raise RuntimeError(f"cannot {doing}: another hallctl (a running controller?) holds "
                           f"{data_dir / LOCK_FILE}; stop it first") from None
    return f
