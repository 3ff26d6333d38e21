"""体检: `hallctl doctor` looks over everything a hall needs to run and prints one line each.

✓ fine, ! worth a look (the hall runs), ✗ a fault (the hall cannot run, or runs wrong): the
hall file, the devices it names (present, usable by the service's user, answering), the web
and broker ports, the data directory (room, write access), the personal-data key's
permissions, the clock's synchronisation, the working-day calendar's years and the broker.
The exit status is 1 when any line is ✗.

While the controller runs (it holds hall.lock), the doctor leaves its devices alone (a second
reader on a serial line would take its bytes) and only looks at them; it never logs in to the
broker as the controller then (Mosquitto's use_username_as_clientid would end the controller's
own session).
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import pwd
import shutil
import socket
import sqlite3
import stat
import threading
import urllib.error
import urllib.request
from pathlib import Path

from controller.config.hall import load_config
from controller.config.settings import HallConfig
from controller.config.tomlkeys import ConfigError
from controller.floor import device_names
from controller.installation.clock_sync import clock_sync
from controller.installation.device_checks import device_findings
from controller.installation.findings import Finding, Mark, Patient, may_use, who
from controller.runtime.data_lock import LOCK_FILE
from controller.security.privacy import ENV_KEY, KEY_FILE, NEW_KEY_FILE
from controller.store.copies import schema_version_of

DB_NAME = "hall.sqlite3"  # controller.assembly.DB_NAME, without importing the whole assembly
SEALED_SINCE = 2  # the schema version that brought sealed identities (and the key)
DISK_FAULT_BYTES = 200 * 1024**2
DISK_WARN_BYTES = 1024**3


def examine(p: Patient) -> list[Finding]:
    """Every check, in the order they are printed."""
    config, found = _config_findings(p.config_path)
    running = controller_running(p.data_dir)
    found += data_dir_findings(p)
    found.append(key_finding(p))
    found += port_findings(p, config, running)
    if config is not None:
        found += device_findings(p, config, running)
        found.append(calendar_finding(config))
        found.append(broker_finding(config, running))
    found.append(clock_finding())
    return found


def _config_findings(path: Path) -> tuple[HallConfig | None, list[Finding]]:
    try:
        config = load_config(path)
    except ConfigError as e:
        return None, [Finding(Mark.FAULT, "配置 config", str(e))]
    except OSError as e:
        return None, [Finding(Mark.FAULT, "配置 config", f"cannot read {path}: {e.strerror}")]
    found = [Finding(Mark.OK, "配置 config", f"{path}: {config.hall.name}, "
                     f"{len(config.hall.windows)} windows, {len(config.hall.devices)} devices")]
    found += [Finding(Mark.WARN, "设备名 device name", w) for w in device_names.unstable_warnings(config)]
    return config, found


def report(findings: list[Finding]) -> tuple[str, int]:
    """The lines to print and the exit status (1 on any fault)."""
    faults = sum(f.mark is Mark.FAULT for f in findings)
    warnings = sum(f.mark is Mark.WARN for f in findings)
    tail = (f"{faults} 个故障 fault(s), {warnings} 个提示 warning(s)" if faults or warnings
            else "一切正常 all well")
    return "\n".join([*(f.line() for f in findings), tail]), 1 if faults else 0


# --- the data directory and the key ------------------------------------------------------------


def controller_running(data_dir: Path) -> bool:
    """A controller holds the data directory's lock (controller.runtime.data_lock)."""
    try:
        f = open(data_dir / LOCK_FILE, "rb")
    except OSError:
        return False
    with f:
        try:
            fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(f, fcntl.LOCK_UN)
    return False


def _gb(n: float) -> str:
    return f"{n / 1024**3:.1f} GB"


def data_dir_findings(p: Patient) -> list[Finding]:
    what = "数据目录 data dir"
    d = p.data_dir
    if not d.is_dir():
        return [Finding(Mark.FAULT, what, f"{d} does not exist (hallctl install makes it)")]
    out = []
    wrote = _try_write(d)
    if wrote is not None:
        out.append(Finding(Mark.FAULT, what, f"cannot write in {d} as {who(None)}: {wrote}"))
    elif p.user is not None and not may_use(d, p.user, os.R_OK | os.W_OK | os.X_OK):
        out.append(Finding(Mark.FAULT, what, f"{p.user} cannot write in {d}: chown {p.user} {d}"))
    else:
        db = d / DB_NAME
        has = "its database" if db.exists() else "no database yet (made at the first start)"
        out.append(Finding(Mark.OK, what, f"{d} writable by {who(p.user)}, {has}"))
    free = shutil.disk_usage(d).free
    room = "磁盘空间 disk space"
    if free < DISK_FAULT_BYTES:
        out.append(Finding(Mark.FAULT, room, f"only {free // 1024**2} MB free under {d}"))
    elif free < DISK_WARN_BYTES:
        out.append(Finding(Mark.WARN, room, f"{free // 1024**2} MB free under {d}; make room soon"))
    else:
        out.append(Finding(Mark.OK, room, f"{_gb(free)} free under {d}"))
    return out


def _try_write(d: Path) -> str | None:
    """None when a file can be written, synced and removed in `d`; else why not."""
    probe = d / f".doctor-{os.getpid()}"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, b"hall doctor\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        probe.unlink()
    except OSError as e:
        return e.strerror or str(e)
    return None


def _schema_version(db: Path) -> int | None:
    """The database's schema version; None without one; a file SQLite cannot read counts as
    the newest (it may hold sealed identities)."""
    try:
        return schema_version_of(db)
    except sqlite3.Error:
        return SEALED_SINCE


def key_finding(p: Patient) -> Finding:
    """The personal-data key (README, Personal data): secret.key, the service's user's alone."""
    what = "密钥 key"
    key = p.data_dir / KEY_FILE
    if os.environ.get(ENV_KEY):
        return Finding(Mark.OK, what, f"from {ENV_KEY} (the environment)")
    if (p.data_dir / NEW_KEY_FILE).exists():
        return Finding(Mark.FAULT, what, f"{p.data_dir / NEW_KEY_FILE} exists: a key rotation was cut "
                       f"short; run hallctl rotate-key --data-dir {p.data_dir} again")
    if not key.exists():
        version = _schema_version(p.data_dir / DB_NAME)
        if version is not None and version >= SEALED_SINCE:
            return Finding(Mark.FAULT, what, f"{key} is missing but the database exists: the sealed "
                           "identities cannot be opened; restore the key from the backup")
        made = "" if version is None else f"; the database is of schema version {version}, older than sealing"
        return Finding(Mark.WARN, what, f"no {KEY_FILE} yet (made at the first start{made}); back it up then")
    st = key.stat()
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o077:
        return Finding(Mark.FAULT, what, f"{key} is {mode:04o}, readable beyond its owner: chmod 600 {key}")
    if p.user is not None and st.st_uid != pwd.getpwnam(p.user).pw_uid:
        return Finding(Mark.FAULT, what, f"{key} belongs to uid {st.st_uid}, not {p.user}: "
                       f"chown {p.user} {key}")
    if p.user is None and not os.access(key, os.R_OK):
        return Finding(Mark.FAULT, what, f"{key} is not readable by {who(None)}")
    return Finding(Mark.OK, what, f"{key} {mode:04o}, its owner's only")


# --- ports and the broker ----------------------------------------------------------------------


def _bind_error(host: str, port: int) -> str | None:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as e:
            return e.strerror or str(e)
    return None


def _health(host: str, port: int) -> str | None:
    """The hall name a controller answering at host:port gives on /api/v1/health."""
    ask = "127.0.0.1" if host in ("0.0.0.0", "") else "::1" if host == "::" else host
    try:
        with urllib.request.urlopen(f"http://{ask}:{port}/api/v1/health", timeout=3) as r:
            return str(json.load(r).get("hall", "?"))
    except (urllib.error.URLError, OSError, ValueError):
        return None


def port_findings(p: Patient, config: HallConfig | None, running: bool) -> list[Finding]:
    wanted = [("端口 web port", p.host, p.port, "--port")]
    if config is not None and config.mqtt.embedded:
        host, port = config.mqtt.address()
        wanted.append(("端口 broker port", host, port, "[mqtt] embedded_listen"))
    out = []
    for what, host, port, key in wanted:
        taken = _bind_error(host, port)
        if taken is None:
            note = "; but the controller holds the data dir and does not listen there" if running else ""
            out.append(Finding(Mark.FAULT if running else Mark.OK, what, f"{host}:{port} free{note}"))
        elif running:
            out.append(Finding(Mark.OK, what, f"{host}:{port} in use by the running controller"))
        else:
            out.append(Finding(Mark.FAULT, what, f"{host}:{port} taken by another program ({taken}); "
                               f"stop it or change {key}"))
    if running:
        answer = _health(p.host, p.port)
        out.append(Finding(Mark.OK if answer else Mark.FAULT, "控制器 controller",
                           f"running, answers at {p.host}:{p.port} ({answer})" if answer else
                           f"holds {p.data_dir / LOCK_FILE} but /api/v1/health does not answer "
                           f"at {p.host}:{p.port}"))
    return out


def broker_finding(config: HallConfig, running: bool) -> Finding:
    what = "消息服务 broker"
    mqtt = config.mqtt
    host, port = mqtt.address()
    if mqtt.embedded and not running:
        return Finding(Mark.OK, what, f"embedded, starts with the controller on {host}:{port}")
    password = None
    if mqtt.username is not None:
        password = os.environ.get(mqtt.password_env) if mqtt.password_env else mqtt.password
    if mqtt.username is not None and (running or not password):
        why = ("the controller is logged in" if running else
               f"{mqtt.password_env} is not set here (it is in /etc/hall/hall.env)")
        try:
            socket.create_connection((host, port), timeout=3).close()
        except OSError as e:
            return Finding(Mark.FAULT, what, f"{host}:{port} does not answer: {e.strerror or e}")
        return Finding(Mark.OK, what, f"{host}:{port} answers (login not tried: {why})")
    rc = mqtt_login(host, port, mqtt.username, password)
    if rc is None:
        return Finding(Mark.OK, what, f"{host}:{port} accepts " +
                       (f"the controller's account {mqtt.username}" if mqtt.username else "anonymous clients"))
    return Finding(Mark.FAULT, what, f"{host}:{port}: {rc}")


def mqtt_login(host: str, port: int, username: str | None, password: str | None,
               timeout: float = 3.0) -> str | None:
    """None when the broker takes an MQTT login; else what went wrong."""
    import paho.mqtt.client as paho

    done = threading.Event()
    result: list[str | None] = []
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"hall-doctor-{os.getpid()}")
    if username is not None:
        client.username_pw_set(username, password)

    def connected(c, userdata, flags, reason, properties) -> None:
        result.append(None if not reason.is_failure else f"login refused ({reason})")
        done.set()

    client.on_connect = connected
    try:
        client.connect(host, port, keepalive=10)
    except OSError as e:
        return f"does not answer: {e.strerror or e}"
    client.loop_start()
    try:
        if not done.wait(timeout):
            return f"no MQTT answer within {timeout:.0f} s"
    finally:
        client.disconnect()
        client.loop_stop()
    return result[0]


# --- the calendar and the clock ----------------------------------------------------------------


def calendar_finding(config: HallConfig, today: dt.date | None = None) -> Finding:
    what = "日历 calendar"
    cal = config.hall.calendar
    today = today or dt.datetime.now().date()
    years = sorted(cal.workdays.years) if cal.workdays else []
    if not years:
        return Finding(Mark.WARN, what, "no working-day calendar: opens by weekday hours only")
    missing = cal.missing_years(today)
    covered = f"holidays and 调休 days {years[0]}-{years[-1]}"
    if today.year in missing:
        return Finding(Mark.FAULT, what, f"{covered}; this year {today.year} is missing: the hall "
                       f"opens Monday to Friday on holidays too. Add [years.{today.year}] to holidays.toml")
    if missing:
        return Finding(Mark.WARN, what, f"{covered}; {', '.join(map(str, missing))} soon due is missing: "
                       f"add [years.{missing[0]}] to holidays.toml beside the hall file")
    return Finding(Mark.OK, what, covered)


def clock_finding() -> Finding:
    what = "时钟 clock"
    synced, how = clock_sync()
    now = dt.datetime.now().astimezone().isoformat(timespec="seconds")
    if synced is None:
        return Finding(Mark.WARN, what, f"{now}; synchronisation unknown ({how})")
    if synced:
        return Finding(Mark.OK, what, f"{now}, synchronised ({how})")
    return Finding(Mark.WARN, what, f"{now}, NOT synchronised ({how}): tickets, opening hours and "
                   "deadlines follow this clock; point chrony or systemd-timesyncd at the LAN's time server")
