"""A PostgreSQL cluster of the centre's own in a directory, on a free loopback port: for the
tests and for trying a district on one machine (`districtctl local`). Debian's `postgresql`
package provides the server (/usr/lib/postgresql/<version>/bin); a production centre uses
the district's PostgreSQL instead, named by `--database`.

PostgreSQL refuses to run as root: as root the cluster runs as the `postgres` user, which
owns its directory.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

HOST = "127.0.0.1"


def server_bin() -> Path:
    """The newest installed PostgreSQL server's bin directory."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[4]))
    if not found:
        raise RuntimeError("PostgreSQL server not found under /usr/lib/postgresql: install the Debian "
                           "package postgresql (`make test` does)")
    return Path(found[-1]).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


class LocalPostgres:
    """`initdb` in `directory` (a new temporary one by default), `start()` on a free port,
    `stop()`; `dsn` for psycopg. Trust authentication, listening on 127.0.0.1 only."""

    def __init__(self, directory: Path | None = None, port: int | None = None, fsync: bool = True) -> None:
        self.bin = server_bin()
        self.owned = directory is None
        self.directory = Path(directory or tempfile.mkdtemp(prefix="centre-pg-"))
        self.data = self.directory / "data"
        self.port = port or free_port()
        self.fsync = fsync  # off only for a test's throw-away cluster
        self.user = "postgres" if os.geteuid() == 0 else None
        self.dsn = f"postgresql://postgres@{HOST}:{self.port}/postgres"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        cmd = [str(self.bin / args[0]), *args[1:]]
        if self.user:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        return subprocess.run(cmd, check=check, capture_output=True, text=True, cwd="/")

    def init(self) -> None:
        if (self.data / "PG_VERSION").exists():
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        if self.user:
            entry = pwd.getpwnam(self.user)
            os.chown(self.directory, entry.pw_uid, entry.pw_gid)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8",
                  "--locale=C.UTF-8", "--no-sync")

    def start(self) -> LocalPostgres:
        self.init()
        options = (f"-c listen_addresses={HOST} -p {self.port} -k {self.directory} "
                   f"-c fsync={'on' if self.fsync else 'off'} -c max_connections=100")
        result = self._run("pg_ctl", "-D", str(self.data), "-l", str(self.directory / "server.log"),
                           "-o", options, "-w", "-t", "30", "start", check=False)
        if result.returncode != 0:
            log = self.directory / "server.log"
            raise RuntimeError(f"PostgreSQL did not start: {result.stderr}\n"
                               f"{log.read_text() if log.exists() else ''}")
        self._wait()
        return self

    def _wait(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                socket.create_connection((HOST, self.port), 0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"PostgreSQL not listening on {HOST}:{self.port}")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop", check=False)

    def remove(self) -> None:
        self.stop()
        if self.owned:
            shutil.rmtree(self.directory, ignore_errors=True)
